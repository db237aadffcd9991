/*
 * KVM's dirty ring (-accel kvm,dirty-ring-size=N): each vCPU gets a ring of
 * N 16-byte entries {flags, slot, offset} that KVM fills with the pages the
 * vCPU writes while a slot has KVM_MEM_LOG_DIRTY_PAGES, in place of the
 * per-slot bitmap KVM_GET_DIRTY_LOG copies (KVM refuses that ioctl once the
 * ring is on).
 *
 * Protocol with KVM (one ring per vCPU, mmap'ed from the vCPU fd at page
 * KVM_DIRTY_LOG_PAGE_OFFSET):
 *   KVM   writes slot/offset, then sets flags = DIRTY (release); the page is
 *         write-protected again only when its entry is reset.
 *   we    from our fetch index on: while flags has DIRTY (acquire), record
 *         the page, store flags = RESET (release), fetch++.
 *   we    KVM_RESET_DIRTY_RINGS on the VM: KVM re-protects the pages of
 *         every RESET entry and frees those entries.
 *   KVM   a vCPU whose ring is (soft) full leaves KVM_RUN with
 *         KVM_EXIT_DIRTY_RING_FULL and may not run until entries are reset.
 *
 * Why harvested pages are staged: a page harvested but not yet reset is
 * writable without a new entry. If migration sent it in that window, a
 * write after the send and before the reset would be lost. So the harvest
 * goes into the slot's `dirty` buffer, and only a sync merges that buffer
 * into the migration bitmap, after it has reaped (harvest + reset) itself;
 * reaping always ends with the reset before dirty_lock is released.
 *
 * Who reaps, always under kvm_state.dirty_lock: the reaper thread every
 * REAP_INTERVAL_MS while dirty logging is on (keeps rings from filling and
 * the per-vCPU counts fresh), a vCPU that got KVM_EXIT_DIRTY_RING_FULL, a
 * sync (kvm-dirty.c), and kvm_vcpu_dirty_counts (dirty rate, dirty limit).
 * Each vCPU counts the entries harvested from its ring (ring_pages): a page
 * counts again once it was reset and written again, which is the per-vCPU
 * dirty rate QEMU 7.2's dirty-ring measurement and dirty limit report.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>
#include "accel.h"
#include "clock.h"
#include "kvm-int.h"

#define REAP_INTERVAL_MS 200

static struct {
    pthread_mutex_t lock;           /* guards the fields below */
    pthread_cond_t wake;            /* CLOCK_MONOTONIC */
    pthread_once_t once;
    bool running;                   /* [lock] a reaper thread exists */
    bool quit;                      /* [lock] it must return */
    pthread_t thread;               /* [lock] */
} reaper = { .lock = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT };

bool kvm_dirty_ring_parse(const char *value, Error **errp)
{
    char *end;
    unsigned long long n;

    /* QEMU's uint64 property parser: strtoull rules (base 0, a sign
     * allowed), the whole string, then the uint32 range. */
    errno = 0;
    n = strtoull(value, &end, 0);
    if (!*value || *end || errno || end == value) {
        error_setg(errp, "Parameter 'dirty-ring-size' expects uint64");
        return false;
    }
    if (n > UINT32_MAX) {
        error_setg(errp, "Parameter 'dirty-ring-size' expects uint32_t");
        return false;
    }
    if (n & (n - 1)) {
        error_setg(errp, "dirty-ring-size must be a power of two.");
        return false;
    }
    kvm_state.dirty_ring_size = (uint32_t)n;
    return true;
}

bool kvm_dirty_ring_enable(Error **errp)
{
    uint64_t bytes = (uint64_t)kvm_state.dirty_ring_size * sizeof(struct kvm_dirty_gfn);
    int max;

    if (!kvm_state.dirty_ring_size) {
        return true;
    }
    max = kvm_check_extension(KVM_CAP_DIRTY_LOG_RING);
    if (max <= 0) {
        warn_report("KVM dirty ring not available, using bitmap method");
        kvm_state.dirty_ring_size = 0;
        return true;
    }
    if (bytes > (uint64_t)max) {
        error_report("KVM dirty ring size %" PRIu32 " too big (maximum is %ld).  Please use a smaller value.",
                     kvm_state.dirty_ring_size, (long)(max / sizeof(struct kvm_dirty_gfn)));
        error_setg(errp, "%s", strerror(EINVAL));
        return false;
    }
    struct kvm_enable_cap ec = { .cap = KVM_CAP_DIRTY_LOG_RING, .args = { bytes } };
    int r = kvm_vm_ioctl(KVM_ENABLE_CAP, &ec);
    if (r < 0) {
        error_report("Enabling of KVM dirty ring failed: %s. Suggested minimum value is 1024.", strerror(-r));
        error_setg(errp, "%s", strerror(-r));
        return false;
    }
    return true;
}

bool kvm_dirty_ring_vcpu_map(KvmVcpu *v, Error **errp)
{
    size_t bytes = (size_t)kvm_state.dirty_ring_size * sizeof(struct kvm_dirty_gfn);

    if (!kvm_state.dirty_ring_size) {
        return true;
    }
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd,
                   (off_t)sysconf(_SC_PAGESIZE) * KVM_DIRTY_LOG_PAGE_OFFSET);
    if (p == MAP_FAILED) {
        error_setg_errno(errp, errno, "vCPU %d: mmap of the dirty ring", v->cpu->index);
        return false;
    }
    v->ring = p;
    return true;
}

void kvm_dirty_ring_vcpu_unmap(KvmVcpu *v)
{
    if (v->ring) {
        munmap(v->ring, (size_t)kvm_state.dirty_ring_size * sizeof(struct kvm_dirty_gfn));
        v->ring = NULL;
    }
}

/* Record one harvested entry in its slot's staging buffer. */
static void record_entry(uint32_t slot_id, uint64_t offset)
{
    uint32_t id = slot_id & 0xffff;         /* high half: address space 0 */

    if ((slot_id >> 16) || id >= (uint32_t)kvm_state.n_slots) {
        return;
    }
    KvmSlot *slot = &kvm_state.slots[id];
    if (!slot->dirty || offset >= slot->size >> MIGVM_PAGE_BITS) {
        return;                             /* logging off: nobody wants it */
    }
    slot->dirty[offset / MIGVM_BITS_PER_LONG] |= 1UL << (offset % MIGVM_BITS_PER_LONG);
}

/* Every page of every slot dirty: what a ring that overflowed leaves us. */
static void record_everything(void)
{
    for (int i = 0; i < kvm_state.n_slots; i++) {
        KvmSlot *slot = &kvm_state.slots[i];
        if (slot->dirty) {
            memset(slot->dirty, 0xff, slot->dirty_words * sizeof(unsigned long));
        }
    }
}

/* Harvest one vCPU's ring; returns the entries taken.
 *
 * One lap from the fetch index, taking every DIRTY entry, not only the run
 * that starts at it: KVM's instruction emulator (all of guest ring 0 on PVM
 * hosts) can write many pages in one KVM_RUN without honouring the ring's
 * soft limit. KVM then overwrites entries we have not harvested (it warns
 * "kvm_dirty_ring_push" in the kernel log) and its index no longer follows
 * ours. Taking the whole lap brings the two back in step; a ring found
 * completely full may have lost entries, so every page counts as dirty. */
static uint64_t harvest_vcpu(KvmVcpu *v)
{
    uint32_t size = kvm_state.dirty_ring_size, mask = size - 1;
    uint64_t n = 0, next = v->ring_fetch;

    for (uint32_t i = 0; i < size; i++) {
        uint64_t pos = v->ring_fetch + i;
        struct kvm_dirty_gfn *e = &v->ring[pos & mask];
        if (!(__atomic_load_n(&e->flags, __ATOMIC_ACQUIRE) & KVM_DIRTY_GFN_F_DIRTY)) {
            continue;
        }
        record_entry(__atomic_load_n(&e->slot, __ATOMIC_RELAXED),
                     __atomic_load_n(&e->offset, __ATOMIC_RELAXED));
        __atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
        next = pos + 1;
        n++;
    }
    if (n == size) {
        record_everything();
        kvm_state.overflows++;
    }
    v->ring_fetch = next;
    v->ring_pages += n;
    __atomic_store_n(&v->ring_harvests, v->ring_harvests + 1, __ATOMIC_RELAXED);
    kvm_state.harvested += n;
    return n;
}

void kvm_dirty_ring_reap_locked(void)
{
    uint64_t taken = 0;

    if (!kvm_state.dirty_ring_size) {
        return;
    }
    for (int i = 0; i < cpus_count(); i++) {
        KvmVcpu *v = cpus_get(i)->accel;
        if (v && v->ring) {
            taken += harvest_vcpu(v);
        }
    }
    if (taken) {
        int r = kvm_vm_ioctl(KVM_RESET_DIRTY_RINGS, NULL);
        if (r < 0) {
            /* The entries stay RESET and the next reset retries them; the
             * pages were recorded, so nothing is lost meanwhile. */
            error_report("KVM_RESET_DIRTY_RINGS: %s", strerror(-r));
        }
    }
}

void kvm_dirty_ring_reap(void)
{
    pthread_mutex_lock(&kvm_state.dirty_lock);
    int64_t t0 = now_ns();
    kvm_dirty_ring_reap_locked();
    kvm_state.reap_count++;
    kvm_state.reap_ns += (uint64_t)(now_ns() - t0);
    pthread_mutex_unlock(&kvm_state.dirty_lock);
}

void kvm_dirty_ring_full(KvmVcpu *v)
{
    pthread_mutex_lock(&kvm_state.dirty_lock);
    int64_t t0 = now_ns();
    uint64_t before = v->ring_pages;
    bool reaped_since_run = v->ring_harvests != v->ring_harvests_at_run;
    kvm_dirty_ring_reap_locked();
    /* Another reaper (the reaper thread, a sync, a dirty-rate or dirty-limit
     * count) may have emptied the ring between this exit and our lock: then
     * the ring has room and there is nothing more to do. Marking an entry
     * below would mark one KVM has not filled yet, and its reset would move
     * KVM's reset index past its fill index: its count of used entries then
     * wraps, every entry to KVM_RUN is a ring-full exit, and the guest never
     * runs again. */
    if (v->ring_pages == before && !reaped_since_run) {
        /* Full, yet nothing to harvest: KVM counted entries it overwrote
         * (see harvest_vcpu), and its reset only moves over entries marked
         * harvested, from its own reset index, which we do not know. This
         * vCPU is out of KVM_RUN, so nothing writes its ring now: mark one
         * entry at a time until a reset takes it (our fetch index first),
         * which moves KVM's count down by exactly one. The vCPU exits again
         * until the count is below the soft limit; never more, so the count
         * cannot wrap. The lost entries' pages are unknown: all are dirty. */
        uint32_t mask = kvm_state.dirty_ring_size - 1;
        record_everything();
        kvm_state.overflows++;
        for (uint32_t i = 0; i < kvm_state.dirty_ring_size; i++) {
            struct kvm_dirty_gfn *e = &v->ring[(v->ring_fetch + i) & mask];
            __atomic_store_n(&e->flags, KVM_DIRTY_GFN_F_RESET, __ATOMIC_RELEASE);
            int r = kvm_vm_ioctl(KVM_RESET_DIRTY_RINGS, NULL);
            if (r > 0) {
                v->ring_fetch += i + 1;
                break;
            }
            __atomic_store_n(&e->flags, 0, __ATOMIC_RELEASE);
            if (r < 0) {
                error_report("KVM_RESET_DIRTY_RINGS: %s", strerror(-r));
                break;
            }
        }
    }
    kvm_state.reap_count++;
    kvm_state.reap_ns += (uint64_t)(now_ns() - t0);
    pthread_mutex_unlock(&kvm_state.dirty_lock);
}

static void reaper_cond_init(void)
{
    pthread_condattr_t a;

    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&reaper.wake, &a);
    pthread_condattr_destroy(&a);
}

static void *reaper_fn(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&reaper.lock);
    while (!reaper.quit) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + REAP_INTERVAL_MS * 1000000LL;
        ts.tv_sec += ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        pthread_cond_timedwait(&reaper.wake, &reaper.lock, &ts);
        if (reaper.quit) {
            break;
        }
        pthread_mutex_unlock(&reaper.lock);
        kvm_dirty_ring_reap();
        pthread_mutex_lock(&reaper.lock);
    }
    pthread_mutex_unlock(&reaper.lock);
    return NULL;
}

void kvm_dirty_ring_reaper_start(void)
{
    if (!kvm_state.dirty_ring_size) {
        return;
    }
    pthread_once(&reaper.once, reaper_cond_init);
    pthread_mutex_lock(&reaper.lock);
    if (!reaper.running) {
        reaper.quit = false;
        int err = pthread_create(&reaper.thread, NULL, reaper_fn, NULL);
        if (err) {
            /* Ring-full exits and syncs still reap: slower, not wrong. */
            error_report("cannot start the dirty ring reaper thread: %s", strerror(err));
        } else {
            reaper.running = true;
        }
    }
    pthread_mutex_unlock(&reaper.lock);
}

void kvm_dirty_ring_reaper_stop(void)
{
    pthread_once(&reaper.once, reaper_cond_init);
    pthread_mutex_lock(&reaper.lock);
    bool join = reaper.running;
    pthread_t t = reaper.thread;
    reaper.quit = true;
    reaper.running = false;
    pthread_cond_broadcast(&reaper.wake);
    pthread_mutex_unlock(&reaper.lock);
    if (join) {
        pthread_join(t, NULL);
    }
}

bool kvm_dirty_ring_enabled(void)
{
    return kvm_state.dirty_ring_size != 0;
}

bool kvm_vcpu_dirty_counts(uint64_t *pages, int n)
{
    if (!kvm_state.dirty_ring_size) {
        return false;
    }
    pthread_mutex_lock(&kvm_state.dirty_lock);
    kvm_dirty_ring_reap_locked();
    for (int i = 0; i < n; i++) {
        CPUState *cpu = cpus_get(i);
        KvmVcpu *v = cpu ? cpu->accel : NULL;
        pages[i] = v ? v->ring_pages : 0;
    }
    pthread_mutex_unlock(&kvm_state.dirty_lock);
    return true;
}
