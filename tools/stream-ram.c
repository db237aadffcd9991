/*
 * The records inside the "ram" section, checked one by one, and the
 * dispatch of the live sections this tool knows ("block" and
 * "dirty-bitmap": stream-block.c).
 *
 * "ram" v4 (migration-stream.md 5): be64 word = page offset | flags, exactly
 * one record kind per word (CONTINUE aside). MEM_SIZE: the block list (names
 * unique, lengths summing to the announced total; with x-ignore-shared a be64
 * address after each length). ZERO: fill byte 0. PAGE: 4096 bytes. XBZRLE:
 * 0x01, be16 n <= 4096, n bytes. COMPRESS_PAGE: be32 n, n bytes. Page
 * offsets inside their block; CONTINUE only after a named block (the last
 * block persists across sections). EOS ends every body.
 */
#include "stream-check.h"
#include "ram.h"
#include "block-migration.h"

#include <inttypes.h>
#include <string.h>

bool walk_is_known_live(const char *name)
{
    return !strcmp(name, "ram") || !strcmp(name, "block") || !strcmp(name, "dirty-bitmap");
}

bool walk_live_version_ok(Walk *w, Section *s, uint64_t version_off)
{
    uint32_t want = !strcmp(s->name, "ram") ? RAM_VERSION : !strcmp(s->name, "block") ? BLK_MIG_VERSION : 1;
    if (s->version != want) {
        return walk_fail(w, version_off, "expected version %" PRIu32 " of section '%s', found %" PRIu32, want,
                         s->name, s->version);
    }
    return true;
}

/* ---- ram ---------------------------------------------------------------------- */

static void ram_block_free(gpointer p)
{
    RamBlockStat *b = p;
    g_free(b->name);
    g_free(b);
}

static RamBlockStat *ram_find(Section *s, const char *name)
{
    for (guint i = 0; s->ram_blocks && i < s->ram_blocks->len; i++) {
        RamBlockStat *b = s->ram_blocks->pdata[i];
        if (!strcmp(b->name, name)) {
            return b;
        }
    }
    return NULL;
}

static bool ram_block_list(Walk *w, Section *s, uint64_t off, uint64_t total)
{
    if (s->ram_blocks) {
        return walk_fail(w, off, "a second RAM block list (expected one, in SECTION_START)");
    }
    s->ram_blocks = g_ptr_array_new_with_free_func(ram_block_free);
    uint64_t left = total;
    while (left > 0) {
        char name[256];
        uint64_t noff = walk_offset(w);
        int len = mig_stream_get_counted_string(w->f, name);
        uint64_t size = mig_stream_get_be64(w->f);
        if (w->x_ignore_shared) {
            mig_stream_get_be64(w->f);
        }
        if (!walk_read_ok(w, noff, "a RAM block name and be64 length")) {
            return false;
        }
        if (len == 0) {
            return walk_fail(w, noff, "expected a RAM block name, found an empty one");
        }
        if (ram_find(s, name)) {
            return walk_fail(w, noff, "RAM block \"%s\" listed twice", name);
        }
        if (size == 0 || size > left) {
            return walk_fail(w, noff + 1 + len, "RAM block \"%s\": expected a length of 1 to 0x%" PRIx64
                             " (what is left of the announced total 0x%" PRIx64 "), found 0x%" PRIx64,
                             name, left, total, size);
        }
        left -= size;
        RamBlockStat *b = g_new0(RamBlockStat, 1);
        b->name = g_strdup(name);
        b->size = size;
        g_ptr_array_add(s->ram_blocks, b);
    }
    return true;
}

static RamBlockStat *ram_record_block(Walk *w, Section *s, uint64_t off, uint64_t flags)
{
    if (flags & RAM_SAVE_FLAG_CONTINUE) {
        if (!w->last_ram_block) {
            walk_fail(w, off, "RAM record with CONTINUE (0x20) before any record named its block");
        }
        return w->last_ram_block;
    }
    char name[256];
    mig_stream_get_counted_string(w->f, name);
    if (!walk_read_ok(w, off + 8, "a RAM block name")) {
        return NULL;
    }
    RamBlockStat *b = ram_find(s, name);
    if (!b) {
        g_autofree char *esc = g_strescape(name, NULL);
        walk_fail(w, off + 8, "RAM record for block \"%s\", which the block list does not name", esc);
        return NULL;
    }
    w->last_ram_block = b;
    return b;
}

static bool ram_page_record(Walk *w, Section *s, uint64_t off, uint64_t addr, uint64_t flags)
{
    uint64_t kind = flags & ~(uint64_t)RAM_SAVE_FLAG_CONTINUE;
    if (!s->ram_blocks) {
        return walk_fail(w, off, "RAM page record before the RAM block list (MEM_SIZE)");
    }
    RamBlockStat *b = ram_record_block(w, s, off, flags);
    if (!b) {
        return false;
    }
    if (addr >= b->size || b->size - addr < MIGVM_TARGET_PAGE_SIZE) {
        return walk_fail(w, off, "expected a page offset below 0x%" PRIx64 " (block \"%s\"), found 0x%" PRIx64,
                         b->size, b->name, addr);
    }
    uint64_t poff = walk_offset(w);
    switch (kind) {
    case RAM_SAVE_FLAG_ZERO: {
        uint8_t fill = mig_stream_get_u8(w->f);
        if (!walk_read_ok(w, poff, "a zero page's fill byte")) {
            return false;
        }
        if (fill != 0) {
            return walk_fail(w, poff, "expected fill byte 0 for a zero page, found 0x%02x", fill);
        }
        b->zero++;
        return true;
    }
    case RAM_SAVE_FLAG_PAGE:
        mig_stream_skip(w->f, MIGVM_TARGET_PAGE_SIZE);
        b->normal++;
        return walk_read_ok(w, poff, "a 4096-byte page");
    case RAM_SAVE_FLAG_XBZRLE: {
        uint8_t enc = mig_stream_get_u8(w->f);
        uint16_t n = mig_stream_get_be16(w->f);
        if (!walk_read_ok(w, poff, "an XBZRLE header")) {
            return false;
        }
        if (enc != 1 || n > MIGVM_TARGET_PAGE_SIZE) {
            return walk_fail(w, poff, "expected XBZRLE encoding 1 and at most 4096 bytes, found %u and %u", enc, n);
        }
        mig_stream_skip(w->f, n);
        b->xbzrle++;
        return walk_read_ok(w, poff + 3, "XBZRLE data");
    }
    default: {      /* COMPRESS_PAGE */
        uint32_t n = mig_stream_get_be32(w->f);
        if (!walk_read_ok(w, poff, "a compressed page's length")) {
            return false;
        }
        if (n > 2 * MIGVM_TARGET_PAGE_SIZE) {
            return walk_fail(w, poff, "expected a compressed page of at most %u bytes, found %" PRIu32,
                             2 * MIGVM_TARGET_PAGE_SIZE, n);
        }
        mig_stream_skip(w->f, n);
        b->compressed++;
        return walk_read_ok(w, poff + 4, "compressed page data");
    }
    }
}

static bool ram_body(Walk *w, Section *s, uint8_t type)
{
    for (;;) {
        uint64_t off = walk_offset(w);
        uint64_t word = mig_stream_get_be64(w->f);
        if (!walk_read_ok(w, off, "a RAM record (be64 offset | flags)")) {
            return false;
        }
        uint64_t addr = word & ~(uint64_t)(MIGVM_TARGET_PAGE_SIZE - 1);
        uint64_t flags = word & (MIGVM_TARGET_PAGE_SIZE - 1);
        switch (flags & ~(uint64_t)RAM_SAVE_FLAG_CONTINUE) {
        case RAM_SAVE_FLAG_MEM_SIZE:
            if (type != QEMU_VM_SECTION_START || (flags & RAM_SAVE_FLAG_CONTINUE)) {
                return walk_fail(w, off, "RAM block list (MEM_SIZE) outside SECTION_START or with CONTINUE");
            }
            if (!ram_block_list(w, s, off, addr)) {
                return false;
            }
            break;
        case RAM_SAVE_FLAG_ZERO:
        case RAM_SAVE_FLAG_PAGE:
        case RAM_SAVE_FLAG_XBZRLE:
        case RAM_SAVE_FLAG_COMPRESS_PAGE:
            if (!ram_page_record(w, s, off, addr, flags)) {
                return false;
            }
            break;
        case RAM_SAVE_FLAG_MULTIFD_FLUSH:
            break;
        case RAM_SAVE_FLAG_EOS:
            return true;
        default:
            return walk_fail(w, off + 6, "expected one RAM record kind (ZERO 0x02, MEM_SIZE 0x04, PAGE 0x08, "
                             "EOS 0x10, XBZRLE 0x40, COMPRESS 0x100, MULTIFD_FLUSH 0x200; CONTINUE 0x20 aside), "
                             "found flags 0x%" PRIx64, flags);
        }
    }
}

/* ---- dispatch ---------------------------------------------------------------- */

bool walk_live_body(Walk *w, Section *s, uint8_t type)
{
    if (!strcmp(s->name, "ram")) {
        return ram_body(w, s, type);
    }
    if (!strcmp(s->name, "block")) {
        return block_body(w, s);
    }
    return dirty_bitmap_body(w, s);
}

bool walk_live_finished(Walk *w, Section *s)
{
    if (!strcmp(s->name, "ram") && !s->ram_blocks) {
        return walk_fail(w, s->offset, "RAM section without a block list (MEM_SIZE record in SECTION_START)");
    }
    return true;
}
