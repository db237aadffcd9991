/*
 * The soft workload's loop (see workload.h). Dirty tracking is exact: every
 * increment records its page in the block's software dirty log right after
 * the write (memory.h explains the ordering).
 *
 * Throttling is a token bucket in pages: page k of a run may be written at
 * bucket_start + k / pages_per_sec; the disk workload (disk-workload.h) has
 * its own bucket in bytes, and the loop does whichever is due. The vCPU
 * sleeps (clock_nanosleep, at most SLEEP_SLICE_NS at a time) until the
 * earlier of the two, checking for a stop request between slices, so a pause
 * is honoured within a couple of milliseconds (plus one disk step).
 */
#include <math.h>
#include <time.h>
#include <glib.h>
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
    disk_workload_reset(&w->disk);
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

/* When the next page chunk may be written (now_ns() clock); 0: now. */
static double pages_due_ns(const SoftWorkload *w)
{
    if (!w->pages_per_sec) {
        return 0;
    }
    return w->bucket_start_ns + w->bucket_pages * 1e9 / (double)w->pages_per_sec;
}

/* Sleep until `until` or a stop request, whichever comes first, in slices. */
static void sleep_until(double until, bool (*should_stop)(void *), void *opaque)
{
    for (double now = now_ns(); now < until && !should_stop(opaque); now = now_ns()) {
        double left = until - now;
        long long slice = left < SLEEP_SLICE_NS ? (long long)left : SLEEP_SLICE_NS;
        struct timespec ts = { slice / 1000000000LL, slice % 1000000000LL };
        clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
    }
}

bool workload_has_work(const SoftWorkload *w)
{
    return workload_has_pages(w) || disk_workload_active(&w->disk);
}

void workload_run(SoftWorkload *w, bool (*should_stop)(void *opaque), void *opaque)
{
    if (!w->announced) {
        w->announced = 1;
        workload_out(w, 'A');
    }
    bool pages = workload_has_pages(w), disk = disk_workload_active(&w->disk);
    if (!pages && !disk) {
        return;
    }
    double start = now_ns();
    w->bucket_start_ns = start;
    w->bucket_pages = 0;
    disk_workload_restart_bucket(&w->disk, start);
    bool throttled = (pages && w->pages_per_sec) || (disk && w->disk.bytes_per_sec);
    while (!should_stop(opaque)) {
        double now = throttled ? now_ns() : 0;
        double pdue = pages ? pages_due_ns(w) : INFINITY;
        double ddue = disk ? disk_workload_due_ns(&w->disk) : INFINITY;
        bool worked = false;

        /* More than MAX_LAG_NS behind: restart the bucket, no catch-up burst. */
        if (now - pdue > MAX_LAG_NS) {
            w->bucket_start_ns = now;
            w->bucket_pages = 0;
            pdue = now;
        }
        if (now - ddue > MAX_LAG_NS) {
            disk_workload_restart_bucket(&w->disk, now);
            ddue = now;
        }
        if (pdue <= now) {
            for (int i = 0; i < CHUNK_PAGES; i++) {
                workload_step(w);
            }
            w->bucket_pages += CHUNK_PAGES;
            worked = true;
        }
        if (ddue <= now) {
            disk_workload_step(&w->disk);
            worked = true;
        }
        if (!worked) {
            sleep_until(MIN(pdue, ddue), should_stop, opaque);
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

static bool disk_needed(void *opaque)
{
    SoftWorkload *w = opaque;

    return disk_workload_active(&w->disk);
}

static const VMStateField workload_disk_fields[] = {
    VMSTATE_STRUCT(disk, SoftWorkload, vmstate_soft_disk_workload, SoftDiskWorkload),
    VMSTATE_END_OF_LIST()
};

/* Only while disk-rate= runs the disk workload, so streams without it are
 * unchanged. */
static const VMStateDescription vmstate_soft_workload_disk = {
    .name = "soft-cpu/disk",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = disk_needed,
    .fields = workload_disk_fields,
};

static const VMStateDescription *const workload_subsections[] = {
    &vmstate_soft_workload_disk,
    NULL
};

const VMStateDescription vmstate_soft_workload = {
    .name = "soft-cpu",
    .version_id = 1,
    .minimum_version_id = 1,
    .post_load = workload_post_load,
    .fields = workload_fields,
    .subsections = workload_subsections,
};
