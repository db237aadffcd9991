/*
 * The flight recorder: a bounded record of each migration, on both sides,
 * for x-query-migration-history / info migrate_history (history.c).
 *
 * Source (migration.c): begin at `migrate`, one pass per dirty-bitmap sync
 * (the MIGRATION_PASS event's count), the downtime phases as the
 * switch-over crosses them, close with the stream's final byte count.
 * Destination (incoming.c): begin when the stream arrives, loaded (EOF
 * read), close when the guest runs (or the load failed).
 * Status changes of either side are mirrored with mig_history_status.
 *
 * Every function may be called from any thread (one mutex inside).
 */
#ifndef MIGVM_MIGRATION_HISTORY_H
#define MIGVM_MIGRATION_HISTORY_H

#include <stdbool.h>
#include <stdint.h>
#include "error.h"
#include "qapi-types.h"

/* How many migrations are kept, and how many passes of each: the first
 * HEAD and the last TAIL (the ones between are counted, not kept). */
#define MIG_HISTORY_RECORDS 8
#define MIG_HISTORY_HEAD_PASSES 8
#define MIG_HISTORY_TAIL_PASSES 56

/* The downtime's phases, in the order the switch-over crosses them. */
typedef enum MigHistoryPhase {
    MIG_PHASE_STOP,         /* vCPUs stopped (state synced from the accelerator) */
    MIG_PHASE_LIVE_END,     /* final pass of the live sections: RAM (and disks) */
    MIG_PHASE_DEVICES,      /* device state saved, EOF, VMDESCRIPTION */
    MIG_PHASE_FLUSH,        /* stream flushed to the channel */
    MIG_PHASE_DEST,         /* destination loaded, started and said SHUT (return path only) */
    MIG_PHASE_DEST_LOAD,    /* migvm destination: the same split: the rest loaded ... */
    MIG_PHASE_DEST_START,   /* ... and the guest started (reported over the return path) */
    MIG_PHASE__MAX
} MigHistoryPhase;

/* The source's cumulative counters at one instant (migration.c fills them
 * from the stream and RAM's statistics). */
typedef struct MigHistoryCounters {
    uint64_t stream_bytes, normal_pages, zero_pages;
    uint64_t remaining_bytes, dirty_rate;       /* now: bytes still dirty, pages/s */
    uint64_t throttle;                          /* now: vCPU throttle, percent */
} MigHistoryCounters;

/* Cumulative bytes of a further live section (disks), read at each pass. */
typedef uint64_t MigHistoryCounterFn(void);
void mig_history_set_disk_counter(MigHistoryCounterFn *fn);

void mig_history_source_begin(const char *uri);
/* A pass starts (bitmap sync number `pass`, `dirtied` pages found dirty by
 * the sync), the counters as the sync left them. [migration thread] */
void mig_history_pass(uint64_t pass, uint64_t dirtied, const MigHistoryCounters *c);
/* The convergence controller decided something during the current pass
 * (appended to the pass's record, bounded). [migration thread] */
void mig_history_pass_note(const char *note);
/* The guest is about to stop: downtime starts at t0_ns (now_ns clock). */
void mig_history_downtime_start(int64_t t0_ns);
/* The phase ended at t_ns. */
void mig_history_phase_end(MigHistoryPhase phase, int64_t t_ns);
/* The migration thread is done: close the last pass; err (may be NULL) is
 * the reason of a failure (copied). */
void mig_history_source_close(const MigHistoryCounters *c, const Error *err);

void mig_history_dest_begin(void);
void mig_history_dest_loaded(uint64_t stream_bytes, const Error *err);
void mig_history_dest_close(void);

/* A status change of the current source or destination migration. */
void mig_history_status(bool source, MigrationStatus status);

/* Forget everything (tests). */
void mig_history_reset(void);

#endif
