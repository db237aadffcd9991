/*
 * The soft accelerator's built-in workload (accel-soft/workload.c): the test
 * guest's memory behaviour without a CPU to run it.
 *
 *   once:    write 'A' to the serial port
 *   forever: for each page p in [first_page, end_page): first byte of p += 1
 *            after each full pass write 'B'
 *
 * Invariant (what tests check after migration): with n = passes,
 * pages in [first_page, next_page) hold n + 1 and pages in
 * [next_page, end_page) hold n (mod 256). next_page and passes are vCPU
 * state, migrated in the "soft-cpu" section so the destination continues
 * exactly where the source stopped.
 */
#ifndef MIGVM_ACCEL_SOFT_WORKLOAD_H
#define MIGVM_ACCEL_SOFT_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>
#include "disk-workload.h"
#include "memory.h"
#include "vmstate.h"

typedef struct SoftWorkload {
    /* Migrated. */
    uint64_t first_page, end_page;  /* page indices in `block`; must match on load */
    uint64_t next_page;             /* the next page to increment */
    uint64_t passes;                /* full passes done */
    uint8_t announced;              /* 'A' was written */
    /* Not migrated. */
    RAMBlock *block;
    uint64_t pages_per_sec;         /* 0 = as fast as possible */
    double bucket_start_ns;         /* token bucket: time of page 0 of this run */
    uint64_t bucket_pages;          /* pages written since bucket_start_ns */
    void (*out)(void *opaque, uint8_t byte);    /* serial output */
    void *out_opaque;
    /* The disk workload (disk-workload.h): its position is migrated in the
     * "soft-cpu/disk" subsection while it runs. */
    SoftDiskWorkload disk;
} SoftWorkload;

extern const VMStateDescription vmstate_soft_workload;

/* Work on [start, top) of the block (byte offsets, page aligned down/up;
 * top 0 = end of block). dirty_rate_mib: MiB/s of page writes, 0 = no limit. */
bool workload_init(SoftWorkload *w, RAMBlock *block, uint64_t start, uint64_t top,
                   uint64_t dirty_rate_mib, Error **errp);
/* Back to power-on: not announced, pass 0, first page. */
void workload_reset(SoftWorkload *w);
/* True if there is at least one page to work on. */
bool workload_has_pages(const SoftWorkload *w);
/* Pages or a disk to work on. */
bool workload_has_work(const SoftWorkload *w);
/* Run until should_stop(opaque) is true; stops only between two page
 * increments or disk steps, so the state is always consistent. */
void workload_run(SoftWorkload *w, bool (*should_stop)(void *opaque), void *opaque);

#endif
