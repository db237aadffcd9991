/*
 * The records inside the "block" and "dirty-bitmap" sections, checked one by
 * one.
 *
 * "block" v1 (block-migration.md 2): be64 word = byte offset | flags (low 9
 * bits). DEVICE_BLOCK 0x01: counted device name (not empty), offset a
 * multiple of 1 MiB, 1 MiB of data, or none with ZERO_BLOCK 0x08. PROGRESS
 * 0x04: percent (word >> 9) <= 100. EOS 0x02 ends every body.
 *
 * "dirty-bitmap" v1 (block-migration.md 4): u8 flags (0x80: one more byte,
 * and again 0x80: a be16 more), [counted node name if 0x08], [counted bitmap
 * name if 0x04]; START 0x10: be32 granularity (a power of two >= 512), u8
 * bitmap flags (0xF8 reserved); COMPLETE 0x20; BITS 0x40: be64 first sector,
 * be32 sector count, unless ZEROES 0x02: be64 size (<= 10 KiB, what the
 * range needs rounded up to 32 at most), the bits. EOS 0x01 ends the body.
 * Names persist across sections; BITS and COMPLETE need a started bitmap.
 */
#include "stream-check.h"
#include "block-migration.h"

#include <inttypes.h>
#include <string.h>

#define BM_FLAG_EOS 0x01
#define BM_FLAG_ZEROES 0x02
#define BM_FLAG_BITMAP_NAME 0x04
#define BM_FLAG_DEVICE_NAME 0x08
#define BM_FLAG_START 0x10
#define BM_FLAG_COMPLETE 0x20
#define BM_FLAG_BITS 0x40
#define BM_FLAG_EXTRA 0x80
#define BM_BITS_MAX (10 * 1024)
#define BM_START_RESERVED 0xF8

/* ---- block -------------------------------------------------------------------- */

static void blk_dev_free(gpointer p)
{
    BlkDevStat *d = p;
    g_free(d->name);
    g_array_free(d->offsets, true);
    g_free(d);
}

static BlkDevStat *blk_dev(Section *s, const char *name)
{
    if (!s->blk_devs) {
        s->blk_devs = g_ptr_array_new_with_free_func(blk_dev_free);
    }
    for (guint i = 0; i < s->blk_devs->len; i++) {
        BlkDevStat *d = s->blk_devs->pdata[i];
        if (!strcmp(d->name, name)) {
            return d;
        }
    }
    BlkDevStat *d = g_new0(BlkDevStat, 1);
    d->name = g_strdup(name);
    d->offsets = g_array_new(false, false, sizeof(uint64_t));
    g_ptr_array_add(s->blk_devs, d);
    return d;
}

static bool blk_chunk(Walk *w, Section *s, uint64_t off, uint64_t byte_off, uint64_t flags)
{
    char name[256];
    int len = mig_stream_get_counted_string(w->f, name);
    if (!walk_read_ok(w, off + 8, "a block device name")) {
        return false;
    }
    if (len == 0 || memchr(name, '\0', len)) {
        return walk_fail(w, off + 8, "expected a block device name, found an empty or invalid one");
    }
    if (byte_off % BLK_MIG_CHUNK_SIZE) {
        return walk_fail(w, off, "expected a block chunk offset that is a multiple of 1 MiB, found 0x%" PRIx64,
                         byte_off);
    }
    BlkDevStat *d = blk_dev(s, name);
    d->chunks++;
    g_array_append_val(d->offsets, byte_off);
    if (flags & BLK_MIG_FLAG_ZERO_BLOCK) {
        d->zero_chunks++;
        return true;
    }
    uint64_t poff = walk_offset(w);
    mig_stream_skip(w->f, BLK_MIG_CHUNK_SIZE);
    return walk_read_ok(w, poff, "a block chunk's 1048576 bytes");
}

bool block_body(Walk *w, Section *s)
{
    for (;;) {
        uint64_t off = walk_offset(w);
        uint64_t word = mig_stream_get_be64(w->f);
        if (!walk_read_ok(w, off, "a block record (be64 offset | flags)")) {
            return false;
        }
        uint64_t flags = word & BLK_MIG_FLAGS_MASK;
        switch (flags) {
        case BLK_MIG_FLAG_DEVICE_BLOCK:
        case BLK_MIG_FLAG_DEVICE_BLOCK | BLK_MIG_FLAG_ZERO_BLOCK:
            if (!blk_chunk(w, s, off, word & ~(uint64_t)BLK_MIG_FLAGS_MASK, flags)) {
                return false;
            }
            break;
        case BLK_MIG_FLAG_PROGRESS:
            if ((word >> 9) > 100) {
                return walk_fail(w, off, "expected a block progress of at most 100%%, found %" PRIu64 "%%",
                                 word >> 9);
            }
            s->progress = (int)(word >> 9);
            break;
        case BLK_MIG_FLAG_EOS:
            if (word >> 9) {
                return walk_fail(w, off, "expected a block EOS record 0x2, found 0x%" PRIx64, word);
            }
            return true;
        default:
            return walk_fail(w, off + 6, "expected block record flags DEVICE_BLOCK 0x01 (with ZERO_BLOCK 0x08), "
                             "PROGRESS 0x04 or EOS 0x02, found 0x%" PRIx64, flags);
        }
    }
}

/* ---- dirty-bitmap -------------------------------------------------------------- */

static void bitmap_free(gpointer p)
{
    BitmapStat *b = p;
    g_free(b->node);
    g_free(b->name);
    g_free(b);
}

static BitmapStat *bitmap_find(Walk *w, Section *s)
{
    for (guint i = 0; s->bitmaps && i < s->bitmaps->len; i++) {
        BitmapStat *b = s->bitmaps->pdata[i];
        if (!strcmp(b->node, w->bm_node) && !strcmp(b->name, w->bm_name)) {
            return b;
        }
    }
    return NULL;
}

static bool bm_names(Walk *w, uint64_t flags)
{
    char name[256];
    if (flags & BM_FLAG_DEVICE_NAME) {
        uint64_t off = walk_offset(w);
        mig_stream_get_counted_string(w->f, name);
        if (!walk_read_ok(w, off, "a node name")) {
            return false;
        }
        g_free(w->bm_node);
        w->bm_node = g_strdup(name);
    }
    if (flags & BM_FLAG_BITMAP_NAME) {
        uint64_t off = walk_offset(w);
        int len = mig_stream_get_counted_string(w->f, name);
        if (!walk_read_ok(w, off, "a bitmap name")) {
            return false;
        }
        if (len == 0) {
            return walk_fail(w, off, "expected a bitmap name, found an empty one");
        }
        g_free(w->bm_name);
        w->bm_name = g_strdup(name);
    }
    return true;
}

static bool bm_start(Walk *w, Section *s, uint64_t off)
{
    uint64_t goff = walk_offset(w);
    uint32_t gran = mig_stream_get_be32(w->f);
    uint8_t bflags = mig_stream_get_u8(w->f);
    if (!walk_read_ok(w, goff, "a bitmap's be32 granularity and u8 flags")) {
        return false;
    }
    if (gran < 512 || (gran & (gran - 1))) {
        return walk_fail(w, goff, "expected a bitmap granularity that is a power of two >= 512, found %" PRIu32, gran);
    }
    if (bflags & BM_START_RESERVED) {
        return walk_fail(w, goff + 4, "expected bitmap flags within 0x07, found 0x%02x", bflags);
    }
    if (bitmap_find(w, s)) {
        return walk_fail(w, off, "bitmap '%s' of node '%s' started twice", w->bm_name, w->bm_node);
    }
    BitmapStat *b = g_new0(BitmapStat, 1);
    b->node = g_strdup(w->bm_node);
    b->name = g_strdup(w->bm_name);
    b->granularity = gran;
    b->flags = bflags;
    g_ptr_array_add(s->bitmaps, b);
    return true;
}

static bool bm_bits(Walk *w, BitmapStat *b, uint64_t flags)
{
    uint64_t off = walk_offset(w);
    uint64_t first = mig_stream_get_be64(w->f);
    uint32_t count = mig_stream_get_be32(w->f);
    if (!walk_read_ok(w, off, "a BITS range (be64 first sector, be32 count)")) {
        return false;
    }
    (void)first;
    b->bits_records++;
    if (flags & BM_FLAG_ZEROES) {
        return true;
    }
    uint64_t soff = walk_offset(w);
    uint64_t size = mig_stream_get_be64(w->f);
    if (!walk_read_ok(w, soff, "the be64 size of the bits")) {
        return false;
    }
    uint64_t granules = ((uint64_t)count * 512 + b->granularity - 1) / b->granularity;
    uint64_t need = (granules + 63) / 64 * 8;
    if (size > BM_BITS_MAX || size < need || size > (need + 31) / 32 * 32) {
        return walk_fail(w, soff, "expected %" PRIu64 " to %" PRIu64 " bytes of bits for %" PRIu32 " sectors at "
                         "granularity %" PRIu32 ", found %" PRIu64, need, (need + 31) / 32 * 32, count,
                         b->granularity, size);
    }
    uint8_t buf[BM_BITS_MAX];
    mig_stream_get_buffer(w->f, buf, size);
    if (!walk_read_ok(w, soff + 8, "the bits")) {
        return false;
    }
    for (uint64_t i = 0; i < size; i++) {
        b->dirty_bits += __builtin_popcount(buf[i]);
    }
    return true;
}

bool dirty_bitmap_body(Walk *w, Section *s)
{
    if (!s->bitmaps) {
        s->bitmaps = g_ptr_array_new_with_free_func(bitmap_free);
    }
    for (;;) {
        uint64_t off = walk_offset(w);
        uint64_t flags = mig_stream_get_u8(w->f);
        if (flags & BM_FLAG_EXTRA) {
            flags = flags << 8 | mig_stream_get_u8(w->f);
            if (flags & BM_FLAG_EXTRA) {
                flags = flags << 16 | mig_stream_get_be16(w->f);
            }
        }
        if (!walk_read_ok(w, off, "a dirty-bitmap record's flags")) {
            return false;
        }
        uint64_t kind = flags & (BM_FLAG_START | BM_FLAG_COMPLETE | BM_FLAG_BITS | BM_FLAG_EOS);
        uint64_t known = BM_FLAG_EOS | BM_FLAG_ZEROES | BM_FLAG_BITMAP_NAME | BM_FLAG_DEVICE_NAME | BM_FLAG_START |
                         BM_FLAG_COMPLETE | BM_FLAG_BITS;
        if (flags > 0xFF || (flags & ~known) || (kind & (kind - 1)) || !kind ||
            ((flags & BM_FLAG_ZEROES) && kind != BM_FLAG_BITS)) {
            return walk_fail(w, off, "expected dirty-bitmap flags with one of START 0x10, COMPLETE 0x20, BITS 0x40 "
                             "(ZEROES 0x02 only with BITS) or EOS 0x01, names 0x08/0x04, found 0x%" PRIx64, flags);
        }
        if (kind == BM_FLAG_EOS) {
            if (flags != BM_FLAG_EOS) {
                return walk_fail(w, off, "expected a lone EOS 0x01, found flags 0x%" PRIx64, flags);
            }
            return true;
        }
        if (!bm_names(w, flags)) {
            return false;
        }
        if (!w->bm_node || !w->bm_name) {
            return walk_fail(w, off, "dirty-bitmap record before any record named its node and bitmap");
        }
        if (kind == BM_FLAG_START) {
            if (!bm_start(w, s, off)) {
                return false;
            }
            continue;
        }
        BitmapStat *b = bitmap_find(w, s);
        if (!b) {
            return walk_fail(w, off, "%s for bitmap '%s' of node '%s', which no START record announced",
                             kind == BM_FLAG_BITS ? "BITS" : "COMPLETE", w->bm_name, w->bm_node);
        }
        if (kind == BM_FLAG_COMPLETE) {
            b->complete = true;
        } else if (!bm_bits(w, b, flags)) {
            return false;
        }
    }
}
