/*
 * The "ram" live save-state entry (version 4): every RAM block, page by
 * page, in QEMU's format (shared docs: migration-stream.md section 5).
 */
#ifndef MIGRATION_RAM_H
#define MIGRATION_RAM_H

#include <stdbool.h>
#include <stdint.h>
#include "error.h"

/* Told of each bitmap sync (a pass) with the new dirty-sync-count, on the
 * migration thread: the MIGRATION_PASS event. */
typedef void RamPassFn(uint64_t dirty_sync_count);

/* Register the "ram" handler; on_pass may be NULL. [BQL, at start-up] */
bool ram_mig_init(RamPassFn *on_pass, Error **errp);

/* Source statistics for query-migrate (any thread). */
typedef struct RamStats {
    uint64_t normal_pages;       /* PAGE records */
    uint64_t zero_pages;         /* ZERO records ("duplicate") */
    uint64_t dirty_sync_count;   /* bitmap syncs = passes */
    uint64_t dirty_pages_rate;   /* pages/s dirtied, measured at each sync */
    uint64_t remaining_pages;    /* still dirty in the migration bitmap */
    uint64_t total_bytes;        /* RAM being migrated */
    uint64_t precopy_bytes;      /* page records sent while the guest ran */
    uint64_t downtime_bytes;     /* page records sent with the guest stopped */
} RamStats;
void ram_get_stats(RamStats *out);

#endif
