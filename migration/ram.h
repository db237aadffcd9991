/*
 * The "ram" live save-state entry (version 4): every RAM block, page by
 * page, in QEMU's format (shared docs: migration-stream.md section 5).
 */
#ifndef MIGRATION_RAM_H
#define MIGRATION_RAM_H

#include <stdbool.h>
#include <stdint.h>
#include "error.h"
#include "stream.h"

/* Record flags: the low bits of each record's be64 word (below the page size). */
#define RAM_SAVE_FLAG_FULL          0x01
#define RAM_SAVE_FLAG_ZERO          0x02
#define RAM_SAVE_FLAG_MEM_SIZE      0x04
#define RAM_SAVE_FLAG_PAGE          0x08
#define RAM_SAVE_FLAG_EOS           0x10
#define RAM_SAVE_FLAG_CONTINUE      0x20
#define RAM_SAVE_FLAG_XBZRLE        0x40
#define RAM_SAVE_FLAG_HOOK          0x80
#define RAM_SAVE_FLAG_COMPRESS_PAGE 0x100
#define RAM_SAVE_FLAG_MULTIFD_FLUSH 0x200

#define RAM_VERSION 4

/* Told of each bitmap sync (a pass) with the new dirty-sync-count and the
 * pages it found dirty, on the migration thread: the MIGRATION_PASS event
 * and the flight recorder. */
typedef void RamPassFn(uint64_t dirty_sync_count, uint64_t dirtied_pages);

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
    uint64_t postcopy_bytes;     /* page records sent after the switch to postcopy */
    uint64_t postcopy_requests;  /* pages the destination asked for */
} RamStats;
void ram_get_stats(RamStats *out);

/* Postcopy switch-over [guest stopped, migration thread]: last sync, the
 * discard commands; afterwards requested pages go before the others. */
#define POSTCOPY_DISCARD_MAX_RANGES 12
bool ram_postcopy_send_discard(MigStream *f, Error **errp);

#endif
