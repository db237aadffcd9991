/*
 * Which pages a broken migration connection carried: the destination's
 * received map and the source's sent / re-sent maps, one bit per target page
 * of each RAM block (fields of RAMBlock, include/memory.h), and the received
 * map on the wire as QEMU 7.2's recovery sends it (format at the top of
 * recv-bitmap.c).
 *
 * Destination: recv_bitmap_setup at the start of a load, recv_bitmap_set for
 * every page placed (incoming thread; atomic, so a postcopy fault thread may
 * test it), recv_bitmap_cleanup at the end.
 * Source (migration thread only): sent_bitmap_setup when a resumable
 * migration starts, sent_bitmap_note for each page sent,
 * sent_bitmap_checkpoint between rounds, sent_bitmap_cleanup.
 *
 * Why pages sent more than once matter: a page received in pass 1, dirtied,
 * sent again in pass 3 and lost in the cut is marked received, but holds the
 * pass-1 contents. So the source remembers re-sent pages until the
 * destination acknowledges a checkpoint after them: it sends PING(n) (any
 * destination answers with PONG(n) once it has read everything before it)
 * and, when PONG(n) arrives, forgets the pages re-sent before PING(n).
 */
#ifndef MIGRATION_RECV_BITMAP_H
#define MIGRATION_RECV_BITMAP_H

#include <stdbool.h>
#include <stdint.h>
#include "error.h"
#include "memory.h"
#include "stream.h"

/* The blob's end mark, after the bitmap words. */
#define RECV_BITMAP_END_MARK 0x0123456789ABCDEFULL

/* ---- destination ---- */
void recv_bitmap_setup(void);
void recv_bitmap_cleanup(void);

static inline void recv_bitmap_set(RAMBlock *b, uint64_t page)
{
    if (b->receivedmap) {
        __atomic_fetch_or(&b->receivedmap[page / MIGVM_BITS_PER_LONG],
                          1UL << (page % MIGVM_BITS_PER_LONG), __ATOMIC_RELAXED);
    }
}

static inline bool recv_bitmap_test(const RAMBlock *b, uint64_t page)
{
    return b->receivedmap &&
           (__atomic_load_n(&b->receivedmap[page / MIGVM_BITS_PER_LONG], __ATOMIC_RELAXED) >>
            (page % MIGVM_BITS_PER_LONG) & 1);
}

/* Clear [first, first + n) (postcopy discards re-dirtied pages). */
void recv_bitmap_clear_range(RAMBlock *b, uint64_t first, uint64_t n);
uint64_t recv_bitmap_count(const RAMBlock *b);

/* Bytes of the blob's bitmap for b: ceil(pages / 8) rounded up to 8. */
uint64_t recv_bitmap_wire_size(const RAMBlock *b);
/* be64 size, the map as little-endian 64-bit words, be64 end mark. A block
 * without a map (nothing was loaded) sends all zeroes. */
void recv_bitmap_write(MigStream *f, const RAMBlock *b);
/* The same from another map of b's pages (e.g. postcopy's, whose discards
 * clear pages): map holds recv_bitmap_wire_size(b) / 8 words. */
void recv_bitmap_write_map(MigStream *f, const RAMBlock *b, const unsigned long *map);
/* Source: read a blob for b and mark every page it says was NOT received
 * dirty in b's migration bitmap (plus, with with_resent, every page sent
 * more than once: its last copy may have been lost). *marked: pages that
 * became dirty. Checks size and end mark before touching anything. */
bool recv_bitmap_read_merge(MigStream *rp, RAMBlock *b, bool with_resent, uint64_t *marked,
                            Error **errp);

/* ---- source ---- */
void sent_bitmap_setup(void);
void sent_bitmap_cleanup(void);
bool sent_bitmap_active(void);
/* Between rounds: read the PONGs that arrived on rp (without blocking);
 * when the outstanding checkpoint is acknowledged, forget what was re-sent
 * before it; then send a new PING on f if none is outstanding. */
void sent_bitmap_checkpoint(MigStream *f, MigStream *rp);
/* After a recovery handshake marked all of them dirty again: start afresh. */
void sent_bitmap_resumed(void);

/* Page `page` of b goes on the wire now. [migration thread] */
static inline void sent_bitmap_note(RAMBlock *b, uint64_t page)
{
    if (b->sentmap) {
        unsigned long bit = 1UL << (page % MIGVM_BITS_PER_LONG);
        uint64_t w = page / MIGVM_BITS_PER_LONG;
        if (b->sentmap[w] & bit) {
            b->resentmap[w] |= bit;         /* since the outstanding PING */
        }
        b->sentmap[w] |= bit;
    }
}

#endif
