/*
 * Pre-faulting guest RAM on the destination of a migration
 * (system/ram-prefault.c).
 *
 * From the moment a destination listens (-incoming URI, migrate-incoming),
 * worker threads fault its RAM blocks in, 2 MiB piece by 2 MiB piece
 * (MADV_POPULATE_WRITE: the kernel allocates and zeroes the memory, one
 * transparent huge page per piece where it can), so the incoming stream
 * writes into memory that is already there instead of paying the first
 * touch of every page on its own thread. Nothing waits for it: a page that
 * arrives before its piece is populated is simply written (and faults).
 *
 * Cost: the destination's guest RAM becomes resident as a whole, as with
 * QEMU's -mem-prealloc, instead of only what the guest ever used; the
 * workers take the CPU the kernel needs to clear it (about 4 GiB/s per
 * worker here); they run at nice 10, on CPU time nothing else wants.
 *
 * Skipped: pieces the stream has already reached (the loader reports each
 * page record with ram_prefault_loaded): what arrived there as zero pages
 * stays unallocated, and the rest was faulted in by the writes themselves.
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

#define RAM_PREFAULT_PIECE (2ULL << 20)

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

/* A page record for [offset, offset + 4 KiB) of b was loaded: the workers
 * leave the pieces up to it alone. Any loader thread; lock-free. */
static inline void ram_prefault_loaded(RAMBlock *b, uint64_t offset)
{
    uint64_t end = offset + MIGVM_PAGE_SIZE;
    /* Several loaders may race: a lost update only means less skipping. */
    if (end > __atomic_load_n(&b->loaded_upto, __ATOMIC_RELAXED)) {
        __atomic_store_n(&b->loaded_upto, end, __ATOMIC_RELAXED);
    }
}

#endif
