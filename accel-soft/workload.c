/*
 * The soft workload's loop (see workload.h). Dirty tracking is exact: every
 * increment records its page in the block's software dirty log right after
 * the write (memory.h explains the ordering).
 *
 * Throttling is a token bucket in pages: page k of a run may be written at
 * bucket_start + k / pages_per_sec. The vCPU sleeps (clock_nanosleep, at most
 * SLEEP_SLICE_NS at a time) until then, checking for a stop request between
 * slices, so a pause is honoured within a couple of milliseconds.
 */
#include <time.h>
#include "clock.h"
#include "workload.h"

#define CHUNK_PAGES 16
#define SLEEP_SLICE_NS 2000000LL
#define MAX_LAG_NS 100000000.0      /* forget more than 100 ms of backlog */

bool workload_init(SoftWorkload *w, RAMBlock *block, uint64_t start, uint64_t top,
                   uint64_t dirty_rate_mib, Error **errp)
{
    if (!top || top > block->used_length) {
        top = block->used_length;
    }
    w->block = block;
    w->first_page = (start + MIGVM_PAGE_SIZE - 1) >> MIGVM_PAGE_BITS;
    w->end_page = top >> MIGVM_PAGE_BITS;
    if (w->end_page < w->first_page) {
        w->end_page = w->first_page;
    }
    if (dirty_rate_mib > UINT64_MAX / 256) {
        error_setg(errp, "dirty-rate %llu is too large", (unsigned long long)dirty_rate_mib);
        return false;
    }
    w->pages_per_sec = dirty_rate_mib * ((1024 * 1024) / MIGVM_PAGE_SIZE);
    workload_reset(w);
    return true;
}

void workload_reset(SoftWorkload *w)
{
    w->announced = 0;
    w->passes = 0;
    w->next_page = w->first_page;
}

bool workload_has_pages(const SoftWorkload *w)
{
    return w->block && w->end_page > w->first_page;
}

static void workload_out(SoftWorkload *w, uint8_t byte)
{
    if (w->out) {
        w->out(w->out_opaque, byte);
    }
}

/* The guest's store (see GUEST_RAM_ACCESS in memory.h). */
GUEST_RAM_ACCESS
static void workload_touch(SoftWorkload *w, uint64_t page)
{
    uint8_t *p = w->block->host + (page << MIGVM_PAGE_BITS);

    __atomic_store_n(p, (uint8_t)(__atomic_load_n(p, __ATOMIC_RELAXED) + 1), __ATOMIC_RELAXED);
    ram_block_set_dirty(w->block, page);
}

static void workload_step(SoftWorkload *w)
{
    workload_touch(w, w->next_page);
    if (++w->next_page == w->end_page) {
        w->next_page = w->first_page;
        w->passes++;
        workload_out(w, 'B');
    }
}

/* Sleep until the bucket allows `bucket_pages`; false if asked to stop. */
static bool workload_throttle(SoftWorkload *w, bool (*should_stop)(void *), void *opaque)
{
    double due = w->bucket_start_ns + w->bucket_pages * 1e9 / (double)w->pages_per_sec;
    double now = now_ns();

    if (now - due > MAX_LAG_NS) {
        w->bucket_start_ns = now;           /* we fell behind: no catch-up burst */
        w->bucket_pages = 0;
        return true;
    }
    while (now < due) {
        if (should_stop(opaque)) {
            return false;
        }
        double left = due - now;
        long long slice = left < SLEEP_SLICE_NS ? (long long)left : SLEEP_SLICE_NS;
        struct timespec ts = { slice / 1000000000LL, slice % 1000000000LL };
        clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
        now = now_ns();
    }
    return true;
}

void workload_run(SoftWorkload *w, bool (*should_stop)(void *opaque), void *opaque)
{
    if (!w->announced) {
        w->announced = 1;
        workload_out(w, 'A');
    }
    if (!workload_has_pages(w)) {
        return;
    }
    w->bucket_start_ns = now_ns();
    w->bucket_pages = 0;
    while (!should_stop(opaque)) {
        for (int i = 0; i < CHUNK_PAGES; i++) {
            workload_step(w);
        }
        if (w->pages_per_sec) {
            w->bucket_pages += CHUNK_PAGES;
            if (!workload_throttle(w, should_stop, opaque)) {
                return;
            }
        }
    }
}

/* ---- VMState "soft-cpu" ---- */

static bool workload_post_load(void *opaque, int version_id, Error **errp)
{
    SoftWorkload *w = opaque;

    if (w->next_page < w->first_page || w->next_page >= w->end_page) {
        if (workload_has_pages(w) || w->next_page != w->first_page) {
            error_setg(errp, "soft-cpu: position %llu outside [%llu, %llu)",
                       (unsigned long long)w->next_page, (unsigned long long)w->first_page,
                       (unsigned long long)w->end_page);
            return false;
        }
    }
    return true;
}

static const VMStateField workload_fields[] = {
    VMSTATE_UINT64_EQUAL(first_page, SoftWorkload),
    VMSTATE_UINT64_EQUAL(end_page, SoftWorkload),
    VMSTATE_UINT64(next_page, SoftWorkload),
    VMSTATE_UINT64(passes, SoftWorkload),
    VMSTATE_UINT8(announced, SoftWorkload),
    VMSTATE_END_OF_LIST()
};

const VMStateDescription vmstate_soft_workload = {
    .name = "soft-cpu",
    .version_id = 1,
    .minimum_version_id = 1,
    .post_load = workload_post_load,
    .fields = workload_fields,
};
