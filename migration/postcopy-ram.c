/*
 * Postcopy RAM on the destination, with Linux userfaultfd
 * (shared docs: postcopy.md sections 2 and 5).
 *
 *   ADVISE    page sizes checked; every block dropped (MADV_DONTNEED) and
 *             kept off huge pages, so a page never received is "missing";
 *             received map allocated (one bit per target page).
 *   precopy   pages land by plain copies and are marked received.
 *   DISCARD   re-dirtied or never-sent ranges dropped again, unmarked.
 *   LISTEN    every block registered MISSING; the fault thread starts: it
 *             reads faults (vCPUs inside KVM_RUN, the soft accelerator,
 *             device emulation, the monitor), maps the address to block +
 *             page and sends REQ_PAGES(_ID) once per page.
 *   pages     placed with UFFDIO_COPY / UFFDIO_ZEROPAGE: the page appears
 *             whole and the waiters wake; never a plain write (the loader
 *             would fault on its own page).
 *   end       fault thread stopped, blocks unregistered.
 * Host pages are 4 KiB here (anonymous RAM without hugetlbfs), the target
 * page size too, so every record is one host page.
 *
 * Threads: state and the maps are set up by the incoming thread before the
 * fault thread starts and freed after it stopped. Received bits are atomic
 * (the loading threads set them, the fault thread reads them); requested
 * bits belong to the fault thread. Blocktime figures are under bt_lock.
 */
#include "postcopy-ram.h"
#include "recv-bitmap.h"
#include "clock.h"
#include "cpus.h"
#include "options.h"
#include "savevm.h"
#include "tsan.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <glib.h>
#include <stdio.h>
#include <sys/stat.h>

typedef struct BlockMaps {
    RAMBlock *b;
    unsigned long *received;        /* atomic bits */
    unsigned long *requested;       /* atomic bits; set by the fault thread */
} BlockMaps;

typedef struct PostcopyIncoming {
    _Atomic int state;              /* PostcopyIncomingState */
    int uffd, wake_fd;
    GThread *fault_thread;
    /* [rp_lock] where requests go (NULL while paused: they wait in the
     * requested map) and the block the last one named (REQ_PAGES_ID vs
     * REQ_PAGES). */
    pthread_mutex_t rp_lock;
    MigStream *rp;
    RAMBlock *last_requested;
    BlockMaps *maps;
    int nmaps;
    /* Blocktime [bt_lock]: per vCPU the page it waits for and since when. */
    pthread_mutex_t bt_lock;
    bool bt_on;
    int nvcpus;
    uint64_t *bt_addr;              /* host address waited for, 0 = none */
    int64_t *bt_start, *bt_total;
    int blocked;                    /* vCPUs waiting now */
    int64_t all_since, all_total;   /* all vCPUs waiting at once */
} PostcopyIncoming;

static PostcopyIncoming pc = {
    .uffd = -1, .wake_fd = -1, .bt_lock = PTHREAD_MUTEX_INITIALIZER, .rp_lock = PTHREAD_MUTEX_INITIALIZER,
};

static int uffd_open(uint64_t features, uint64_t *offered, Error **errp)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        error_setg_errno(errp, errno, "userfaultfd");
        return -1;
    }
    struct uffdio_api api = { .api = UFFD_API, .features = features };
    if (ioctl(fd, UFFDIO_API, &api) < 0) {
        error_setg_errno(errp, errno, "UFFDIO_API");
        close(fd);
        return -1;
    }
    if (offered) {
        *offered = api.features;
    }
    return fd;
}

bool postcopy_ram_supported(Error **errp)
{
    Error *local = NULL;
    int fd = uffd_open(0, NULL, &local);
    bool ok = false;
    if (fd < 0) {
        goto out;
    }
    /* One anonymous page registered, filled and zeroed: what postcopy does. */
    size_t len = 2 * MIGVM_PAGE_SIZE;
    uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        error_setg_errno(&local, errno, "mmap");
        close(fd);
        goto out;
    }
    struct uffdio_register reg = { .range = { (uintptr_t)p, len }, .mode = UFFDIO_REGISTER_MODE_MISSING };
    uint64_t want = (1ULL << _UFFDIO_COPY) | (1ULL << _UFFDIO_ZEROPAGE) | (1ULL << _UFFDIO_WAKE);
    static uint8_t src[MIGVM_PAGE_SIZE];
    struct uffdio_copy cp = { .dst = (uintptr_t)p, .src = (uintptr_t)src, .len = MIGVM_PAGE_SIZE };
    struct uffdio_zeropage zp = { .range = { (uintptr_t)p + MIGVM_PAGE_SIZE, MIGVM_PAGE_SIZE } };
    if (ioctl(fd, UFFDIO_REGISTER, &reg) < 0) {
        error_setg_errno(&local, errno, "UFFDIO_REGISTER");
    } else if ((reg.ioctls & want) != want) {
        error_setg(&local, "userfaultfd lacks COPY/ZEROPAGE/WAKE");
    } else if (ioctl(fd, UFFDIO_COPY, &cp) < 0 || ioctl(fd, UFFDIO_ZEROPAGE, &zp) < 0) {
        error_setg_errno(&local, errno, "UFFDIO_COPY/ZEROPAGE");
    } else {
        ok = true;
    }
    munmap(p, len);
    close(fd);
out:
    if (!ok) {
        error_report("postcopy: %s", error_get_pretty(local));  /* QEMU 7.2: cause on stderr */
        error_free(local);
        error_setg(errp, "Postcopy is not supported");
    }
    return ok;
}

PostcopyIncomingState postcopy_incoming_state(void)
{
    return atomic_load(&pc.state);
}

static BlockMaps *maps_of(const RAMBlock *b)
{
    for (int i = 0; i < pc.nmaps; i++) {
        if (pc.maps[i].b == b) {
            return &pc.maps[i];
        }
    }
    return NULL;
}

static bool bit_test(const unsigned long *map, uint64_t page)
{
    return __atomic_load_n(&map[page / MIGVM_BITS_PER_LONG], __ATOMIC_ACQUIRE) &
           (1UL << (page % MIGVM_BITS_PER_LONG));
}

static void bit_set(unsigned long *map, uint64_t page)
{
    __atomic_fetch_or(&map[page / MIGVM_BITS_PER_LONG], 1UL << (page % MIGVM_BITS_PER_LONG), __ATOMIC_RELEASE);
}

static void bit_clear(unsigned long *map, uint64_t page)
{
    __atomic_fetch_and(&map[page / MIGVM_BITS_PER_LONG], ~(1UL << (page % MIGVM_BITS_PER_LONG)),
                       __ATOMIC_RELEASE);
}

bool postcopy_incoming_advise(uint64_t page_summary, uint64_t target_page, Error **errp)
{
    if (postcopy_incoming_state() != POSTCOPY_INCOMING_NONE) {
        error_setg(errp, "CMD_POSTCOPY_ADVISE in wrong postcopy state (%d)", postcopy_incoming_state());
        return false;
    }
    if (!postcopy_ram_supported(errp)) {
        return false;
    }
    if (page_summary != MIGVM_PAGE_SIZE) {
        error_setg(errp, "Postcopy needs matching RAM page sizes (s=%" PRIx64 " d=%llx)", page_summary,
                   MIGVM_PAGE_SIZE);
        return false;
    }
    if (target_page != MIGVM_TARGET_PAGE_SIZE) {
        error_setg(errp, "Postcopy needs matching target page sizes (s=%d d=%u)", (int)target_page,
                   MIGVM_TARGET_PAGE_SIZE);
        return false;
    }
    pc.nmaps = ram_block_count();
    pc.maps = g_new0(BlockMaps, pc.nmaps);
    int i = 0;
    RAMBLOCK_FOREACH(b) {
        size_t words = (b->npages + MIGVM_BITS_PER_LONG - 1) / MIGVM_BITS_PER_LONG;
        pc.maps[i].b = b;
        pc.maps[i].received = g_new0(unsigned long, words);
        pc.maps[i].requested = g_new0(unsigned long, words);
        i++;
        /* Whatever the destination built (boot image, pre-faulted zeros)
         * goes: a page the source never sends must fault, not read stale
         * data. 4 KiB pages only: UFFDIO_COPY places host pages whole. */
        madvise(b->host, b->used_length, MADV_NOHUGEPAGE);
        tsan_ignore_begin();
        if (madvise(b->host, b->used_length, MADV_DONTNEED) < 0) {
            tsan_ignore_end();
            error_setg_errno(errp, errno, "Failed to drop RAM block %s for postcopy", b->name);
            return false;
        }
        tsan_ignore_end();
    }
    atomic_store(&pc.state, POSTCOPY_INCOMING_ADVISE);
    return true;
}

bool postcopy_incoming_discard(const char *block, uint64_t start, uint64_t len, Error **errp)
{
    PostcopyIncomingState st = postcopy_incoming_state();
    if (st != POSTCOPY_INCOMING_ADVISE && st != POSTCOPY_INCOMING_DISCARD) {
        error_setg(errp, "CMD_POSTCOPY_RAM_DISCARD in wrong postcopy state (%d)", st);
        return false;
    }
    atomic_store(&pc.state, POSTCOPY_INCOMING_DISCARD);
    RAMBlock *b = ram_block_by_name(block);
    BlockMaps *m = b ? maps_of(b) : NULL;
    if (!m) {
        error_setg(errp, "RAM block '%s' not found", block);
        return false;
    }
    if ((start | len) % MIGVM_PAGE_SIZE || start > b->used_length || len > b->used_length - start) {
        error_setg(errp, "Discard range 0x%" PRIx64 "+0x%" PRIx64 " outside block %s", start, len, block);
        return false;
    }
    tsan_ignore_begin();
    int r = madvise(b->host + start, len, MADV_DONTNEED);
    tsan_ignore_end();
    if (r < 0) {
        error_setg_errno(errp, errno, "Failed to discard 0x%" PRIx64 "+0x%" PRIx64 " of %s", start, len,
                         block);
        return false;
    }
    for (uint64_t p = start / MIGVM_PAGE_SIZE; p < (start + len) / MIGVM_PAGE_SIZE; p++) {
        bit_clear(m->received, p);
    }
    /* The recovery's received map too (recv-bitmap.h): a discarded page
     * must be asked for again after a resume. */
    recv_bitmap_clear_range(b, start / MIGVM_PAGE_SIZE, len / MIGVM_PAGE_SIZE);
    return true;
}

void postcopy_mark_received(RAMBlock *b, uint64_t offset)
{
    BlockMaps *m = maps_of(b);
    if (m) {
        bit_set(m->received, offset / MIGVM_PAGE_SIZE);
    }
}

/* ---- blocktime ---------------------------------------------------------- */

static int vcpu_of_tid(long tid)
{
    for (int i = 0; i < pc.nvcpus; i++) {
        if (cpus_thread_id(i) == tid) {
            return i;
        }
    }
    return -1;
}

/* KVM on this host resolves a vCPU's fault on a registered page from a
 * kernel worker (asynchronous page faults), not from the vCPU thread: a
 * fault from a thread outside this process is counted for the first vCPU
 * not already waiting (exact with one vCPU). */
static bool tid_is_ours(long tid)
{
    char path[64];
    struct stat st;
    snprintf(path, sizeof(path), "/proc/self/task/%ld", tid);
    return stat(path, &st) == 0;
}

static int vcpu_of_fault(long tid)
{
    int cpu = vcpu_of_tid(tid);
    if (cpu >= 0 || tid_is_ours(tid)) {
        return cpu;
    }
    for (int i = 0; i < pc.nvcpus; i++) {
        if (!pc.bt_addr[i]) {
            return i;
        }
    }
    return -1;
}

static void blocktime_fault(long tid, uint64_t addr)
{
    pthread_mutex_lock(&pc.bt_lock);
    int cpu = pc.bt_on ? vcpu_of_fault(tid) : -1;
    if (cpu >= 0 && !pc.bt_addr[cpu]) {
        int64_t now = now_ns();
        pc.bt_addr[cpu] = addr;
        pc.bt_start[cpu] = now;
        if (++pc.blocked == pc.nvcpus) {
            pc.all_since = now;
        }
    }
    pthread_mutex_unlock(&pc.bt_lock);
}

static void blocktime_placed(uint64_t addr)
{
    pthread_mutex_lock(&pc.bt_lock);
    if (pc.bt_on && pc.blocked) {
        int64_t now = now_ns();
        for (int i = 0; i < pc.nvcpus; i++) {
            if (pc.bt_addr[i] == addr) {
                if (pc.blocked == pc.nvcpus) {
                    pc.all_total += now - pc.all_since;
                }
                pc.blocked--;
                pc.bt_total[i] += now - pc.bt_start[i];
                pc.bt_addr[i] = 0;
            }
        }
    }
    pthread_mutex_unlock(&pc.bt_lock);
}

static void blocktime_start(void)
{
    pthread_mutex_lock(&pc.bt_lock);
    g_free(pc.bt_addr);
    g_free(pc.bt_start);
    g_free(pc.bt_total);
    pc.nvcpus = cpus_count();
    pc.bt_addr = g_new0(uint64_t, pc.nvcpus + 1);
    pc.bt_start = g_new0(int64_t, pc.nvcpus + 1);
    pc.bt_total = g_new0(int64_t, pc.nvcpus + 1);
    pc.blocked = 0;
    pc.all_total = 0;
    pc.bt_on = migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_BLOCKTIME) && pc.nvcpus > 0;
    pthread_mutex_unlock(&pc.bt_lock);
}

bool postcopy_blocktime_get(uint32_t *total_ms, uint32_t **per_vcpu_ms, int *nvcpus)
{
    pthread_mutex_lock(&pc.bt_lock);
    bool have = pc.bt_total != NULL && migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_BLOCKTIME);
    if (have) {
        *total_ms = (uint32_t)(pc.all_total / 1000000);
        *nvcpus = pc.nvcpus;
        *per_vcpu_ms = g_new0(uint32_t, pc.nvcpus + 1);
        for (int i = 0; i < pc.nvcpus; i++) {
            (*per_vcpu_ms)[i] = (uint32_t)(pc.bt_total[i] / 1000000);
        }
    }
    pthread_mutex_unlock(&pc.bt_lock);
    return have;
}

/* ---- the fault thread --------------------------------------------------- */

/* [rp_lock] */
static bool request_page(BlockMaps *m, uint64_t offset)
{
    if (!pc.rp) {
        return false;       /* paused: sent again on resume (requested map) */
    }
    uint8_t msg[13 + 256];
    RAMBlock *b = m->b;
    for (int i = 0; i < 8; i++) {
        msg[i] = (uint8_t)(offset >> (56 - 8 * i));
    }
    uint32_t len = MIGVM_PAGE_SIZE;
    msg[8] = len >> 24; msg[9] = len >> 16; msg[10] = len >> 8; msg[11] = (uint8_t)len;
    uint16_t type = MIG_RP_MSG_REQ_PAGES, n = 12;
    if (b != pc.last_requested) {
        size_t nl = strlen(b->name);
        msg[12] = (uint8_t)nl;
        memcpy(msg + 13, b->name, nl);
        type = MIG_RP_MSG_REQ_PAGES_ID;
        n = (uint16_t)(13 + nl);
        pc.last_requested = b;
    }
    Error *err = NULL;
    if (!mig_rp_send(pc.rp, type, msg, n, &err)) {
        /* The source is gone: the loader sees it on the stream too. */
        error_free(err);
        return false;
    }
    return true;
}

static void handle_fault(uint64_t addr, long tid)
{
    for (int i = 0; i < pc.nmaps; i++) {
        BlockMaps *m = &pc.maps[i];
        RAMBlock *b = m->b;
        if (addr < (uintptr_t)b->host || addr >= (uintptr_t)b->host + b->used_length) {
            continue;
        }
        uint64_t offset = (addr - (uintptr_t)b->host) & ~(MIGVM_PAGE_SIZE - 1);
        uint64_t page = offset / MIGVM_PAGE_SIZE;
        blocktime_fault(tid, (uintptr_t)b->host + offset);
        if (bit_test(m->received, page) || bit_test(m->requested, page)) {
            return;     /* placed meanwhile (the waiter woke), or already asked for */
        }
        bit_set(m->requested, page);
        pthread_mutex_lock(&pc.rp_lock);
        request_page(m, offset);
        pthread_mutex_unlock(&pc.rp_lock);
        return;
    }
    warn_report("postcopy: fault at 0x%" PRIx64 " outside guest RAM", addr);
}

static gpointer fault_thread(gpointer opaque)
{
    for (;;) {
        struct pollfd pfd[2] = { { .fd = pc.uffd, .events = POLLIN }, { .fd = pc.wake_fd, .events = POLLIN } };
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            error_report("postcopy fault thread: poll: %s", strerror(errno));
            return NULL;
        }
        if (pfd[1].revents) {
            return NULL;
        }
        struct uffd_msg msgs[16];
        ssize_t n = read(pc.uffd, msgs, sizeof(msgs));
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                continue;
            }
            error_report("postcopy fault thread: read: %s", strerror(errno));
            return NULL;
        }
        for (size_t i = 0; i < (size_t)n / sizeof(msgs[0]); i++) {
            if (msgs[i].event == UFFD_EVENT_PAGEFAULT) {
                handle_fault(msgs[i].arg.pagefault.address, (long)msgs[i].arg.pagefault.feat.ptid);
            }
        }
    }
}

bool postcopy_incoming_listen(MigStream *rp, Error **errp)
{
    PostcopyIncomingState st = postcopy_incoming_state();
    if (st != POSTCOPY_INCOMING_ADVISE && st != POSTCOPY_INCOMING_DISCARD) {
        error_setg(errp, "CMD_POSTCOPY_LISTEN in wrong postcopy state (%d)", st);
        return false;
    }
    if (!rp) {
        error_setg(errp, "CMD_POSTCOPY_LISTEN without a return path");
        return false;
    }
    uint64_t offered = 0;
    int probe = uffd_open(0, &offered, errp);
    if (probe < 0) {
        return false;
    }
    close(probe);
    pc.uffd = uffd_open(offered & UFFD_FEATURE_THREAD_ID, NULL, errp);
    if (pc.uffd < 0) {
        return false;
    }
    for (int i = 0; i < pc.nmaps; i++) {
        RAMBlock *b = pc.maps[i].b;
        struct uffdio_register reg = {
            .range = { (uintptr_t)b->host, b->used_length }, .mode = UFFDIO_REGISTER_MODE_MISSING,
        };
        if (ioctl(pc.uffd, UFFDIO_REGISTER, &reg) < 0) {
            error_setg_errno(errp, errno, "Failed to register RAM block %s with userfaultfd", b->name);
            return false;
        }
    }
    pc.wake_fd = eventfd(0, EFD_CLOEXEC);
    pthread_mutex_lock(&pc.rp_lock);
    pc.rp = rp;
    pc.last_requested = NULL;
    pthread_mutex_unlock(&pc.rp_lock);
    blocktime_start();
    atomic_store(&pc.state, POSTCOPY_INCOMING_LISTENING);
    pc.fault_thread = g_thread_new("postcopy/fault", fault_thread, NULL);
    return true;
}

/* ---- recovery (postcopy.md 6.3) ------------------------------------------ */

void postcopy_incoming_pause(void)
{
    pthread_mutex_lock(&pc.rp_lock);
    pc.rp = NULL;
    pthread_mutex_unlock(&pc.rp_lock);
}

bool postcopy_incoming_resume(MigStream *rp)
{
    bool ok = true;
    pthread_mutex_lock(&pc.rp_lock);
    pc.rp = rp;
    pc.last_requested = NULL;       /* the first request names its block again */
    for (int i = 0; i < pc.nmaps && ok; i++) {
        BlockMaps *m = &pc.maps[i];
        for (uint64_t page = 0; page < m->b->npages && ok; page++) {
            if (bit_test(m->requested, page) && !bit_test(m->received, page)) {
                ok = request_page(m, page * MIGVM_PAGE_SIZE);
            }
        }
    }
    pthread_mutex_unlock(&pc.rp_lock);
    return ok;
}

uint64_t postcopy_received_map(const RAMBlock *b, unsigned long *out)
{
    BlockMaps *m = maps_of(b);
    size_t words = (b->npages + MIGVM_BITS_PER_LONG - 1) / MIGVM_BITS_PER_LONG;
    for (size_t w = 0; w < words; w++) {
        out[w] = m ? __atomic_load_n(&m->received[w], __ATOMIC_ACQUIRE) : 0;
    }
    return b->npages;
}

void postcopy_incoming_set_running(void)
{
    atomic_store(&pc.state, POSTCOPY_INCOMING_RUNNING);
}

bool postcopy_place_page(RAMBlock *b, uint64_t offset, const void *data, Error **errp)
{
    BlockMaps *m = maps_of(b);
    uint64_t dst = (uintptr_t)b->host + offset;
    if (!m || pc.uffd < 0) {
        error_setg(errp, "postcopy page for %s placed while not listening", b->name);
        return false;
    }
    for (;;) {
        int r;
        tsan_ignore_begin();
        if (data) {
            struct uffdio_copy cp = { .dst = dst, .src = (uintptr_t)data, .len = MIGVM_PAGE_SIZE };
            r = ioctl(pc.uffd, UFFDIO_COPY, &cp);
        } else {
            struct uffdio_zeropage zp = { .range = { dst, MIGVM_PAGE_SIZE } };
            r = ioctl(pc.uffd, UFFDIO_ZEROPAGE, &zp);
        }
        tsan_ignore_end();
        /* EEXIST: present already (a page sent twice): nothing to place. */
        if (r == 0 || errno == EEXIST) {
            break;
        }
        if (errno != EAGAIN && errno != EINTR) {
            error_setg_errno(errp, errno, "Failed to place page 0x%" PRIx64 " of %s", offset, b->name);
            return false;
        }
    }
    bit_set(m->received, offset / MIGVM_PAGE_SIZE);
    recv_bitmap_set(b, offset / MIGVM_PAGE_SIZE);
    blocktime_placed(dst);
    return true;
}

void postcopy_incoming_cleanup(bool keep_registered)
{
    if (pc.fault_thread) {
        uint64_t one = 1;
        if (write(pc.wake_fd, &one, sizeof(one)) < 0) {
            /* an eventfd write does not fail below its maximum */
        }
        g_thread_join(pc.fault_thread);
        pc.fault_thread = NULL;
    }
    if (keep_registered) {
        /* Closing would let waiting vCPUs fault in zero pages and run on a
         * guest with holes: they wait for good (the fd and maps are kept). */
        atomic_store(&pc.state, POSTCOPY_INCOMING_END);
        return;
    }
    if (pc.uffd >= 0) {
        close(pc.uffd);     /* unregisters: every page is here by now */
        pc.uffd = -1;
    }
    if (pc.wake_fd >= 0) {
        close(pc.wake_fd);
        pc.wake_fd = -1;
    }
    for (int i = 0; i < pc.nmaps; i++) {
        g_free(pc.maps[i].received);
        g_free(pc.maps[i].requested);
    }
    g_free(pc.maps);
    pc.maps = NULL;
    pc.nmaps = 0;
    pthread_mutex_lock(&pc.rp_lock);
    pc.rp = NULL;
    pthread_mutex_unlock(&pc.rp_lock);
    pthread_mutex_lock(&pc.bt_lock);
    pc.bt_on = false;
    pthread_mutex_unlock(&pc.bt_lock);
    atomic_store(&pc.state, POSTCOPY_INCOMING_NONE);
}
