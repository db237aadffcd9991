/*
 * Guest RAM pages that were never populated (system/ram-untouched.c).
 *
 * Guest RAM is private anonymous memory (system/memory.c): a page with no
 * page-table entry at all (neither present nor swapped out, as
 * /proc/self/pagemap reports it) reads as zero. A migration need not read
 * such a page: the source sends it as a ZERO record without the zero check
 * (which reads 4 KiB, after faulting in the shared zero page), and the
 * destination leaves it alone when a ZERO record names it (an untouched
 * page stays unallocated instead of being read, or cleared).
 *
 * A cursor caches one window of a block's entries (one pread per
 * RAM_UNTOUCHED_WINDOW pages). Its answer is a snapshot taken when the
 * window was read; the caller makes sure that nothing it must see wrote a
 * page since:
 *  - the source resets its cursor after every dirty-log sync: a guest write
 *    after the read is caught by the next sync and the page sent again,
 *    while one before it made the page present;
 *  - the destination marks what its loader writes (ram_untouched_written)
 *    and resets the cursor at each RAM section (multifd channels write only
 *    pages of rounds that an EOS closed before).
 * Pages that become populated with zeros (the destination's pre-faulting)
 * still read as zero, so they need no reset.
 * Without a readable /proc/self/pagemap every page counts as touched.
 */
#ifndef MIGVM_RAM_UNTOUCHED_H
#define MIGVM_RAM_UNTOUCHED_H

#include <stdbool.h>
#include <stdint.h>
#include "memory.h"

#define RAM_UNTOUCHED_WINDOW 4096ULL     /* pages per pagemap read: 16 MiB, a 32 KiB read */

/* One thread's cache. Zero-initialised or reset: empty. */
typedef struct RamUntouched {
    const RAMBlock *block;              /* NULL: nothing cached */
    uint64_t first;                     /* first page of the window */
    uint64_t n;                         /* pages in the window */
    uint64_t map[RAM_UNTOUCHED_WINDOW / 64];   /* bit set: untouched */
} RamUntouched;

static inline void ram_untouched_reset(RamUntouched *c)
{
    c->block = NULL;
}

/* True when page `page` of b certainly reads as zero without being read
 * (never populated when its window was read). False when it may hold
 * data, or when that cannot be known. */
bool ram_untouched(RamUntouched *c, const RAMBlock *b, uint64_t page);

/* The untouched pages among the 64 starting at page & ~63 (a bitmap word
 * of the block's dirty bitmap), bit i for page (page & ~63) + i. */
uint64_t ram_untouched_word(RamUntouched *c, const RAMBlock *b, uint64_t page);

/* The caller is about to write pages [page, page + n) of b: they no longer
 * count as untouched in the cached window. */
void ram_untouched_written(RamUntouched *c, const RAMBlock *b, uint64_t page, uint64_t n);

#endif
