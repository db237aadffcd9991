/*
 * Received / sent page maps for recovering a broken migration connection.
 *
 * Wire format of a received map (QEMU 7.2's postcopy recovery, after the
 * return-path message RECV_BITMAP that names the block, see recovery.c):
 *   be64 size        bytes of bitmap = ceil(pages / 8) rounded up to 8
 *   size bytes       the map as little-endian 64-bit words: bit i of word w
 *                    is target page 64 * w + i of the block, 1 = received
 *   be64 0x0123456789ABCDEF   end mark
 * The source checks the size against its own block and the end mark, then
 * treats every page not received as dirty.
 *
 * The maps are plain words on this host (x86-64: unsigned long is a
 * little-endian 64-bit word, so the wire words are the map's words).
 */
#include "recv-bitmap.h"
#include "savevm.h"

#include <inttypes.h>
#include <string.h>
#include <glib.h>

G_STATIC_ASSERT(sizeof(unsigned long) == 8 && G_BYTE_ORDER == G_LITTLE_ENDIAN);

static uint64_t map_words(const RAMBlock *b)
{
    return (b->npages + MIGVM_BITS_PER_LONG - 1) / MIGVM_BITS_PER_LONG;
}

void recv_bitmap_setup(void)
{
    RAMBLOCK_FOREACH(b) {
        g_free(b->receivedmap);
        b->receivedmap = g_new0(unsigned long, map_words(b));
    }
}

void recv_bitmap_cleanup(void)
{
    RAMBLOCK_FOREACH(b) {
        g_free(b->receivedmap);
        b->receivedmap = NULL;
    }
}

void recv_bitmap_clear_range(RAMBlock *b, uint64_t first, uint64_t n)
{
    if (!b->receivedmap) {
        return;
    }
    for (uint64_t p = first; p < first + n && p < b->npages; p++) {
        __atomic_fetch_and(&b->receivedmap[p / MIGVM_BITS_PER_LONG],
                           ~(1UL << (p % MIGVM_BITS_PER_LONG)), __ATOMIC_RELAXED);
    }
}

uint64_t recv_bitmap_count(const RAMBlock *b)
{
    uint64_t n = 0;
    for (uint64_t w = 0; b->receivedmap && w < map_words(b); w++) {
        n += (uint64_t)__builtin_popcountl(__atomic_load_n(&b->receivedmap[w], __ATOMIC_RELAXED));
    }
    return n;
}

uint64_t recv_bitmap_wire_size(const RAMBlock *b)
{
    return map_words(b) * 8;
}

void recv_bitmap_write_map(MigStream *f, const RAMBlock *b, const unsigned long *map)
{
    uint64_t words = map_words(b);
    mig_stream_put_be64(f, words * 8);
    for (uint64_t w = 0; w < words; w++) {
        uint64_t v = map ? __atomic_load_n(&map[w], __ATOMIC_RELAXED) : 0;
        mig_stream_put_buffer(f, &v, 8);        /* little-endian word (static assert above) */
    }
    mig_stream_put_be64(f, RECV_BITMAP_END_MARK);
}

void recv_bitmap_write(MigStream *f, const RAMBlock *b)
{
    recv_bitmap_write_map(f, b, b->receivedmap);
}

bool recv_bitmap_read_merge(MigStream *rp, RAMBlock *b, bool with_resent, uint64_t *marked,
                            Error **errp)
{
    uint64_t size = mig_stream_get_be64(rp);
    if (!mig_stream_check(rp, errp, "Failed to read the received bitmap of '%s'", b->name)) {
        return false;
    }
    if (size != recv_bitmap_wire_size(b)) {
        error_setg(errp, "Received bitmap of '%s': bitmap size mismatch (0x%" PRIx64
                   " bytes, expected 0x%" PRIx64 ")", b->name, size, recv_bitmap_wire_size(b));
        return false;
    }
    uint64_t words = map_words(b);
    unsigned long *todo = g_new(unsigned long, words);
    mig_stream_get_buffer(rp, todo, size);
    uint64_t mark = mig_stream_get_be64(rp);
    if (!mig_stream_check(rp, errp, "Failed to read the received bitmap of '%s'", b->name)) {
        g_free(todo);
        return false;
    }
    if (mark != RECV_BITMAP_END_MARK) {
        error_setg(errp, "Received bitmap of '%s': end mark incorrect (0x%" PRIx64 ")", b->name, mark);
        g_free(todo);
        return false;
    }
    for (uint64_t w = 0; w < words; w++) {
        todo[w] = ~todo[w];
        if (with_resent && b->resentmap) {
            todo[w] |= b->resentmap[w] | b->resentmap_old[w];
        }
    }
    if (b->npages % MIGVM_BITS_PER_LONG) {
        todo[words - 1] &= (1UL << (b->npages % MIGVM_BITS_PER_LONG)) - 1;
    }
    *marked += ram_block_merge_dirty(b, todo, 0, b->npages);
    g_free(todo);
    return true;
}

/* Source state: the migration thread only. */
static bool sent_on;
static uint32_t ping_out;           /* the outstanding checkpoint, 0: none */
static uint32_t ping_next;

/* Checkpoint PINGs: a range no other PING of migvm or QEMU 7.2 uses. */
#define CHECKPOINT_PING_BASE 0x6d720000u
#define CHECKPOINT_PING_MASK 0xffffu

void sent_bitmap_setup(void)
{
    RAMBLOCK_FOREACH(b) {
        g_free(b->sentmap);
        g_free(b->resentmap);
        g_free(b->resentmap_old);
        b->sentmap = g_new0(unsigned long, map_words(b));
        b->resentmap = g_new0(unsigned long, map_words(b));
        b->resentmap_old = g_new0(unsigned long, map_words(b));
    }
    sent_on = true;
    ping_out = ping_next = 0;
}

void sent_bitmap_cleanup(void)
{
    RAMBLOCK_FOREACH(b) {
        g_free(b->sentmap);
        g_free(b->resentmap);
        g_free(b->resentmap_old);
        b->sentmap = b->resentmap = b->resentmap_old = NULL;
    }
    sent_on = false;
}

void sent_bitmap_resumed(void)
{
    RAMBLOCK_FOREACH(b) {
        if (b->resentmap) {
            memset(b->resentmap, 0, map_words(b) * 8);
            memset(b->resentmap_old, 0, map_words(b) * 8);
        }
    }
    ping_out = 0;       /* its PONG went with the old connection */
}

/* PING(ping_out) acknowledged: the pages re-sent before it arrived. */
static void checkpoint_acked(void)
{
    RAMBLOCK_FOREACH(b) {
        memset(b->resentmap_old, 0, map_words(b) * 8);
    }
    ping_out = 0;
}

/* A new checkpoint: what was re-sent so far waits for its PONG, and the
 * current generation starts empty (old is empty here: just acknowledged,
 * or never used). */
static void checkpoint_send(MigStream *f)
{
    RAMBLOCK_FOREACH(b) {
        unsigned long *old = b->resentmap_old;
        b->resentmap_old = b->resentmap;
        b->resentmap = old;
    }
    ping_next = ping_next % CHECKPOINT_PING_MASK + 1;       /* 1 .. mask: never 0 */
    ping_out = CHECKPOINT_PING_BASE | ping_next;
    savevm_send_ping(f, ping_out);
}

void sent_bitmap_checkpoint(MigStream *f, MigStream *rp)
{
    if (!sent_on || !rp) {
        return;
    }
    while (!mig_stream_has_error(rp) && mig_stream_readable(rp)) {
        uint16_t type, len;
        uint8_t payload[MIG_RP_MAX_LEN];
        if (!mig_rp_read(rp, &type, payload, &len, NULL)) {
            break;      /* the main stream will fail too */
        }
        uint32_t v = (uint32_t)payload[0] << 24 | payload[1] << 16 | payload[2] << 8 | payload[3];
        if (type == MIG_RP_MSG_PONG && ping_out && v == ping_out) {
            checkpoint_acked();
        }
    }
    if (!ping_out) {
        checkpoint_send(f);
    }
}
