/*
 * Dirty logging for live migration: on only between dirty_log_start and
 * dirty_log_stop, so the guest runs without write protection otherwise.
 *
 *   start  KVM_MEM_LOG_DIRTY_PAGES on every slot. With INITIALLY_SET (enabled
 *          in kvm.c) KVM starts with every page dirty and write-protects
 *          nothing yet, so the first sync reports all of RAM, which is what
 *          the first migration pass needs anyway.
 *   sync   per slot: KVM_GET_DIRTY_LOG copies KVM's bitmap (bit i = page i of
 *          the slot, which is block page offset/4 KiB + i: a split block's
 *          high slot merges behind its low part). Under
 *          MANUAL_DIRTY_LOG_PROTECT2 that copy does not re-arm anything; we
 *          then walk it in chunks of SYNC_CHUNK_PAGES: KVM_CLEAR_DIRTY_LOG on
 *          the chunk's set bits (re-protects those pages), then merge the
 *          chunk into the block's migration bitmap. Each CLEAR holds KVM's
 *          MMU lock only for one chunk, so the guest is never stalled for the
 *          whole bitmap. A write between GET and CLEAR is already in memory
 *          when the page is sent (after this sync); a write after CLEAR faults
 *          and is reported by the next sync. Without MANUAL_PROTECT2,
 *          KVM_GET_DIRTY_LOG re-protects the whole slot itself.
 *   stop   logging off again.
 * With the dirty ring (kvm-dirty-ring.c) start and stop are the same (KVM
 * write-protects every page when the flag goes on, INITIALLY_SET is not
 * enabled then) and start the reaper thread; a sync reaps every ring (harvest
 * into the slots' `dirty` buffers, KVM_RESET_DIRTY_RINGS), then merges and
 * empties those buffers: no KVM_GET_DIRTY_LOG, no bitmap copy from KVM.
 * Pages written by the VMM itself are not in KVM's log: system/memory.c's
 * software log covers those.
 *
 * Bench hook: with MIGVM_DIRTY_SYNC_STATS=FILE in the environment (read at
 * start-up), each stop appends one line to FILE with what tracking cost
 * since the start: "mode ring|bitmap syncs N sync_ns T sync_max_ns M
 * reaps N reap_ns T harvested N overflows N" (reaps: the ring's reaper and
 * ring-full reaps, outside syncs; overflows: harvests that found a ring
 * KVM overflowed, see kvm-dirty-ring.c).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <glib.h>
#include "accel.h"
#include "clock.h"
#include "kvm-int.h"

#define SYNC_CHUNK_PAGES (16384ULL)          /* 64 MiB; a multiple of 64 */
#define BITS_PER_U64 64

bool kvm_slot_set_flags(KvmSlot *slot, uint32_t flags, Error **errp)
{
    RAMBlock *b = slot->block;
    struct kvm_userspace_memory_region region = {
        .slot = slot->id,
        .flags = flags,
        .guest_phys_addr = slot->gpa,
        .memory_size = slot->size,
        .userspace_addr = (uintptr_t)(b->host + slot->offset),
    };
    int r = kvm_vm_ioctl(KVM_SET_USER_MEMORY_REGION, &region);

    if (r < 0) {
        error_setg_errno(errp, -r, "KVM_SET_USER_MEMORY_REGION (slot %u, RAM block %s, 0x%llx+0x%llx)",
                         slot->id, b->name, (unsigned long long)slot->gpa, (unsigned long long)slot->size);
        return false;
    }
    slot->flags = flags;
    return true;
}

static uint64_t slot_npages(const KvmSlot *slot)
{
    return slot->size >> MIGVM_PAGE_BITS;
}

/* Merge n bits of the slot's bitmap, from slot page `first` on, into the
 * block's bitmap at the slot's place in the block (the offset is a multiple
 * of RAM_BLOCK_SPLIT_ALIGN, so this stays word-aligned). */
uint64_t kvm_slot_merge(KvmSlot *slot, const unsigned long *bits, uint64_t first, uint64_t n)
{
    return ram_block_merge_dirty(slot->block, bits, (slot->offset >> MIGVM_PAGE_BITS) + first, n);
}

static void slot_log_off(KvmSlot *slot)
{
    Error *err = NULL;

    if ((slot->flags & KVM_MEM_LOG_DIRTY_PAGES) &&
        !kvm_slot_set_flags(slot, slot->flags & ~KVM_MEM_LOG_DIRTY_PAGES, &err)) {
        error_report_err(err);
    }
    g_free(slot->dirty);
    slot->dirty = NULL;
    slot->dirty_words = 0;
}

bool kvm_dirty_log_start(Error **errp)
{
    bool ok = true;

    pthread_mutex_lock(&kvm_state.dirty_lock);
    for (int i = 0; ok && i < kvm_state.n_slots; i++) {
        KvmSlot *slot = &kvm_state.slots[i];
        slot->dirty_words = (slot_npages(slot) + BITS_PER_U64 - 1) / BITS_PER_U64;
        slot->dirty = g_new0(unsigned long, slot->dirty_words);
        ok = kvm_slot_set_flags(slot, slot->flags | KVM_MEM_LOG_DIRTY_PAGES, errp);
    }
    if (!ok) {
        for (int i = 0; i < kvm_state.n_slots; i++) {
            slot_log_off(&kvm_state.slots[i]);
        }
    }
    kvm_state.dirty_logging = ok;
    pthread_mutex_unlock(&kvm_state.dirty_lock);
    if (ok) {
        kvm_dirty_ring_reaper_start();
    }
    return ok;
}

/* Append the cost line (see the top) and start counting afresh. [dirty_lock] */
static void write_sync_stats(void)
{
    KvmState *s = &kvm_state;
    FILE *f = s->sync_stats_path ? fopen(s->sync_stats_path, "a") : NULL;

    if (f) {
        fprintf(f, "mode %s syncs %" PRIu64 " sync_ns %" PRIu64 " sync_max_ns %" PRIu64 " reaps %" PRIu64
                " reap_ns %" PRIu64 " harvested %" PRIu64 " overflows %" PRIu64 "\n",
                s->dirty_ring_size ? "ring" : "bitmap", s->sync_count, s->sync_ns, s->sync_max_ns, s->reap_count,
                s->reap_ns, s->harvested, s->overflows);
        fclose(f);
    }
    s->sync_count = s->sync_ns = s->sync_max_ns = s->reap_count = s->reap_ns = s->harvested = s->overflows = 0;
}

void kvm_dirty_log_stop(void)
{
    kvm_dirty_ring_reaper_stop();
    pthread_mutex_lock(&kvm_state.dirty_lock);
    write_sync_stats();
    for (int i = 0; i < kvm_state.n_slots; i++) {
        slot_log_off(&kvm_state.slots[i]);
    }
    /* Drop what the rings still hold, so the next start begins empty. */
    kvm_dirty_ring_reap_locked();
    kvm_state.dirty_logging = false;
    pthread_mutex_unlock(&kvm_state.dirty_lock);
}

static bool chunk_is_clean(const unsigned long *bits, uint64_t npages)
{
    for (uint64_t w = 0; w < (npages + BITS_PER_U64 - 1) / BITS_PER_U64; w++) {
        if (bits[w]) {
            return false;
        }
    }
    return true;
}

/* Re-protect and merge one chunk of the slot's copied bitmap. */
static uint64_t sync_chunk(KvmSlot *slot, uint64_t first, uint64_t n)
{
    unsigned long *bits = slot->dirty + first / BITS_PER_U64;

    if (chunk_is_clean(bits, n)) {
        return 0;
    }
    struct kvm_clear_dirty_log clear = {
        .slot = slot->id, .first_page = first, .num_pages = n, .dirty_bitmap = bits,
    };
    int r = kvm_vm_ioctl(KVM_CLEAR_DIRTY_LOG, &clear);
    if (r < 0) {
        /* Merge anyway: sending a page twice is harmless, missing one is not. */
        error_report("KVM_CLEAR_DIRTY_LOG (slot %u, pages %llu+%llu): %s", slot->id,
                     (unsigned long long)first, (unsigned long long)n, strerror(-r));
    }
    return kvm_slot_merge(slot, bits, first, n);
}

static uint64_t sync_slot(KvmSlot *slot)
{
    uint64_t npages = slot_npages(slot);
    uint64_t added = 0;
    struct kvm_dirty_log log = { .slot = slot->id, .dirty_bitmap = slot->dirty };
    int r = kvm_vm_ioctl(KVM_GET_DIRTY_LOG, &log);

    if (r < 0) {
        /* Be safe: everything is dirty. */
        error_report("KVM_GET_DIRTY_LOG (slot %u): %s", slot->id, strerror(-r));
        memset(slot->dirty, 0xff, slot->dirty_words * sizeof(unsigned long));
        return kvm_slot_merge(slot, slot->dirty, 0, npages);
    }
    if (!kvm_state.cap_manual_dirty) {
        return kvm_slot_merge(slot, slot->dirty, 0, npages);
    }
    for (uint64_t first = 0; first < npages; first += SYNC_CHUNK_PAGES) {
        uint64_t n = npages - first < SYNC_CHUNK_PAGES ? npages - first : SYNC_CHUNK_PAGES;
        added += sync_chunk(slot, first, n);
    }
    return added;
}

/* The ring's pages harvested into slot->dirty: merge them, then empty it. */
static uint64_t sync_slot_ring(KvmSlot *slot)
{
    uint64_t added = kvm_slot_merge(slot, slot->dirty, 0, slot_npages(slot));

    memset(slot->dirty, 0, slot->dirty_words * sizeof(unsigned long));
    return added;
}

uint64_t kvm_dirty_log_sync(void)
{
    uint64_t added = 0;

    pthread_mutex_lock(&kvm_state.dirty_lock);
    int64_t t0 = now_ns();
    if (kvm_state.dirty_ring_size && kvm_state.dirty_logging) {
        kvm_dirty_ring_reap_locked();
    }
    for (int i = 0; kvm_state.dirty_logging && i < kvm_state.n_slots; i++) {
        KvmSlot *slot = &kvm_state.slots[i];
        added += kvm_state.dirty_ring_size ? sync_slot_ring(slot) : sync_slot(slot);
    }
    if (kvm_state.dirty_logging) {
        uint64_t ns = (uint64_t)(now_ns() - t0);
        kvm_state.sync_count++;
        kvm_state.sync_ns += ns;
        kvm_state.sync_max_ns = ns > kvm_state.sync_max_ns ? ns : kvm_state.sync_max_ns;
    }
    pthread_mutex_unlock(&kvm_state.dirty_lock);
    return added;
}
