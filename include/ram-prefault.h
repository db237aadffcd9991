/*
 * Pre-faulting guest RAM on the destination of a migration
 * (system/ram-prefault.c).
 *
 * Worker threads fault the destination's RAM in, 2 MiB piece by 2 MiB piece
 * (MADV_POPULATE_WRITE: the kernel allocates and zeroes the memory, one
 * transparent huge page per piece where it can), a window ahead of where
 * page data arrives, so the incoming threads write into memory that is
 * already there instead of paying the first touch of every page on their
 * own thread. Nothing waits for them: a page that arrives before its piece
 * is populated is simply written (and faults).
 *
 * The window: the workers start with the listener (-incoming URI,
 * migrate-incoming) but populate nothing until the first page with data
 * (a PAGE record or a multifd packet) arrives, and then only pieces less
 * than RAM_PREFAULT_WINDOW ahead of the furthest piece that received data
 * (pieces in block order, then address order: the order of a first pass).
 * They skip pieces the stream has already reached with any record
 * (ram_prefault_loaded), and jump ahead when the stream overtakes them.
 * So RAM that arrives as zero pages, as the whole of an idle guest does,
 * is never allocated (the RAM loader leaves a never-populated page alone
 * when a ZERO record names it: ram-untouched.h), and at most a window of
 * zero pages is populated behind a run of data.
 *
 * Cost: the destination's memory grows only with what the source sends as
 * data, plus at most one window; the workers take the CPU the kernel needs
 * to clear that memory, at nice 10 (CPU time nothing else wants).
 * Off altogether with the migration parameter x-prefault-ram=false, and
 * when postcopy is wanted: pages postcopy fetches on demand must stay
 * missing, so whoever enables postcopy on a destination calls
 * ram_prefault_set_allowed(false) (incoming.c also starts no workers while
 * the postcopy-ram capability is on).
 */
#ifndef MIGVM_RAM_PREFAULT_H
#define MIGVM_RAM_PREFAULT_H

#include <stdbool.h>
#include <stdint.h>
#include "memory.h"

#define RAM_PREFAULT_PIECE_BITS 21
#define RAM_PREFAULT_PIECE (1ULL << RAM_PREFAULT_PIECE_BITS)
#define RAM_PREFAULT_WINDOW 32      /* pieces (64 MiB) ahead of the data */

/* Postcopy's switch: with false, pages not received yet must stay missing
 * (userfaultfd fetches them on first touch): running workers stop, none
 * start, and the RAM loader no longer reads payloads ahead into pages it
 * has not received (migration/ram.c). Default true. [main thread, BQL] */
void ram_prefault_set_allowed(bool allowed);
bool ram_prefault_allowed(void);        /* any thread */

/* Start the workers over every RAM block (no-op when already running or
 * not allowed). [main thread, BQL] */
void ram_prefault_start(void);
/* Stop them and wait: each ends the piece it is on. Idempotent. [main
 * thread, BQL; before the blocks are freed] */
void ram_prefault_stop(void);
/* Tell the workers to stop after their current piece, without waiting
 * (ram_prefault_stop joins them later). Any thread: the loader calls it
 * when the source advises postcopy. */
void ram_prefault_cancel(void);
/* True while workers exist (started and not yet stopped). [main thread] */
bool ram_prefault_running(void);

typedef struct RamPrefaultStats {
    uint64_t populated;     /* pieces faulted in by the workers */
    uint64_t skipped;       /* pieces the stream had reached first */
    uint64_t total;         /* pieces in all blocks */
} RamPrefaultStats;
void ram_prefault_get_stats(RamPrefaultStats *out);    /* any thread */

/* Where page data has arrived: piece index + 1 of the furthest piece (0:
 * none yet). Atomic (__atomic builtins): loaders write, workers read. */
extern uint64_t ram_prefault_data_front;
/* Workers asleep until the front moves (atomic); a loader that moved it
 * wakes them with ram_prefault_wake. */
extern uint32_t ram_prefault_waiters;
void ram_prefault_wake(void);

/* A record for [offset, offset + 4 KiB) of b was loaded (`data`: a page
 * with contents, not a ZERO record): the workers leave the pieces up to it
 * alone and, for data, move their window. Any loader thread; lock-free. */
static inline void ram_prefault_loaded(RAMBlock *b, uint64_t offset, bool data)
{
    uint64_t end = offset + MIGVM_PAGE_SIZE;
    /* Several loaders may race: a lost update only means less skipping. */
    if (end > __atomic_load_n(&b->loaded_upto, __ATOMIC_RELAXED)) {
        __atomic_store_n(&b->loaded_upto, end, __ATOMIC_RELAXED);
    }
    if (data) {
        uint64_t front = b->prefault_first + (offset >> RAM_PREFAULT_PIECE_BITS) + 1;
        if (front > __atomic_load_n(&ram_prefault_data_front, __ATOMIC_RELAXED)) {
            __atomic_store_n(&ram_prefault_data_front, front, __ATOMIC_SEQ_CST);
            if (__atomic_load_n(&ram_prefault_waiters, __ATOMIC_SEQ_CST)) {
                ram_prefault_wake();
            }
        }
    }
}

#endif
