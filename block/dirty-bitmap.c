/*
 * Dirty bitmaps: one bit per granule of a drive, set by every completed write
 * while the bitmap is enabled.
 *
 * Bits live in unsigned long words changed with atomic read-modify-write
 * operations, so the I/O workers marking writes, the migration thread testing
 * and clearing, and the monitor counting need no lock between them. A count
 * or a serialized range taken while writers run is a snapshot of some moment.
 * The flags (enabled, busy, persistent) are atomic too: writers read
 * `enabled` on every write.
 */
#include <string.h>
#include <glib.h>
#include "block-int.h"

#define BITS_PER_WORD (8 * sizeof(unsigned long))

struct BdrvDirtyBitmap {
    char *name;                 /* NULL: unnamed */
    uint32_t granularity;
    int64_t size;               /* bytes covered */
    uint64_t nbits;
    unsigned long *words;       /* atomic */
    bool enabled, busy, persistent;     /* atomic */
};

BdrvDirtyBitmap *dirty_bitmap_new(int64_t size, uint32_t granularity, const char *name)
{
    BdrvDirtyBitmap *bm = g_new0(BdrvDirtyBitmap, 1);

    bm->name = g_strdup(name);
    bm->granularity = granularity;
    bm->size = size;
    bm->nbits = (size + granularity - 1) / granularity;
    bm->words = g_new0(unsigned long, (bm->nbits + BITS_PER_WORD - 1) / BITS_PER_WORD + 1);
    bm->enabled = true;
    return bm;
}

void dirty_bitmap_free(BdrvDirtyBitmap *bm)
{
    if (bm) {
        g_free(bm->name);
        g_free(bm->words);
        g_free(bm);
    }
}

const char *dirty_bitmap_name(const BdrvDirtyBitmap *bm)
{
    return bm->name;
}

uint32_t dirty_bitmap_granularity(const BdrvDirtyBitmap *bm)
{
    return bm->granularity;
}

int64_t dirty_bitmap_size(const BdrvDirtyBitmap *bm)
{
    return bm->size;
}

bool dirty_bitmap_enabled(const BdrvDirtyBitmap *bm)
{
    return __atomic_load_n(&bm->enabled, __ATOMIC_ACQUIRE);
}

void dirty_bitmap_set_enabled(BdrvDirtyBitmap *bm, bool enabled)
{
    __atomic_store_n(&bm->enabled, enabled, __ATOMIC_RELEASE);
}

bool dirty_bitmap_persistent(const BdrvDirtyBitmap *bm)
{
    return __atomic_load_n(&bm->persistent, __ATOMIC_ACQUIRE);
}

void dirty_bitmap_set_persistent(BdrvDirtyBitmap *bm, bool persistent)
{
    __atomic_store_n(&bm->persistent, persistent, __ATOMIC_RELEASE);
}

bool dirty_bitmap_busy(const BdrvDirtyBitmap *bm)
{
    return __atomic_load_n(&bm->busy, __ATOMIC_ACQUIRE);
}

void dirty_bitmap_set_busy(BdrvDirtyBitmap *bm, bool busy)
{
    __atomic_store_n(&bm->busy, busy, __ATOMIC_RELEASE);
}

/* ---- bits ------------------------------------------------------------------ */

static bool bit_get(const BdrvDirtyBitmap *bm, uint64_t bit)
{
    unsigned long w = __atomic_load_n(&bm->words[bit / BITS_PER_WORD], __ATOMIC_RELAXED);

    return (w >> (bit % BITS_PER_WORD)) & 1;
}

/* Set (or clear) bits [first, end): whole words at once in the middle. */
static void bits_change(BdrvDirtyBitmap *bm, uint64_t first, uint64_t end, bool set)
{
    while (first < end) {
        uint64_t w = first / BITS_PER_WORD, shift = first % BITS_PER_WORD;
        uint64_t n = MIN(end - first, BITS_PER_WORD - shift);
        unsigned long mask = (n == BITS_PER_WORD ? ~0UL : ((1UL << n) - 1)) << shift;

        if (set) {
            __atomic_fetch_or(&bm->words[w], mask, __ATOMIC_RELAXED);
        } else {
            __atomic_fetch_and(&bm->words[w], ~mask, __ATOMIC_RELAXED);
        }
        first += n;
    }
}

/* Granules [*first, *end) touched by a byte range, clamped to the bitmap. */
static bool byte_range_to_bits(const BdrvDirtyBitmap *bm, int64_t offset, int64_t bytes,
                               uint64_t *first, uint64_t *end)
{
    if (offset < 0 || bytes <= 0 || offset >= bm->size) {
        return false;
    }
    int64_t last = MIN(offset + bytes, bm->size) - 1;
    *first = offset / bm->granularity;
    *end = last / bm->granularity + 1;
    return true;
}

void dirty_bitmap_set(BdrvDirtyBitmap *bm, int64_t offset, int64_t bytes)
{
    uint64_t first, end;

    if (byte_range_to_bits(bm, offset, bytes, &first, &end)) {
        bits_change(bm, first, end, true);
    }
}

void dirty_bitmap_reset(BdrvDirtyBitmap *bm, int64_t offset, int64_t bytes)
{
    uint64_t first, end;

    if (byte_range_to_bits(bm, offset, bytes, &first, &end)) {
        bits_change(bm, first, end, false);
    }
}

void dirty_bitmap_clear_all(BdrvDirtyBitmap *bm)
{
    bits_change(bm, 0, bm->nbits, false);
}

bool dirty_bitmap_get(const BdrvDirtyBitmap *bm, int64_t offset)
{
    return offset >= 0 && offset < bm->size && bit_get(bm, offset / bm->granularity);
}

uint64_t dirty_bitmap_count(const BdrvDirtyBitmap *bm)
{
    uint64_t nwords = (bm->nbits + BITS_PER_WORD - 1) / BITS_PER_WORD, granules = 0;

    for (uint64_t w = 0; w < nwords; w++) {
        granules += __builtin_popcountl(__atomic_load_n(&bm->words[w], __ATOMIC_RELAXED));
    }
    if (!granules) {
        return 0;
    }
    uint64_t bytes = granules * bm->granularity;
    /* The last granule may stick out beyond the end of the drive. */
    if (bit_get(bm, bm->nbits - 1)) {
        bytes -= (uint64_t)bm->nbits * bm->granularity - bm->size;
    }
    return bytes;
}

int64_t dirty_bitmap_next_dirty(const BdrvDirtyBitmap *bm, int64_t offset)
{
    if (offset < 0) {
        offset = 0;
    }
    if (offset >= bm->size) {
        return -1;
    }
    uint64_t bit = offset / bm->granularity;
    uint64_t w = bit / BITS_PER_WORD;
    unsigned long word = __atomic_load_n(&bm->words[w], __ATOMIC_RELAXED) & (~0UL << (bit % BITS_PER_WORD));

    for (;;) {
        if (word) {
            uint64_t found = w * BITS_PER_WORD + __builtin_ctzl(word);
            /* As QEMU: inside a dirty granule, the offset itself. */
            return found < bm->nbits ? MAX(offset, (int64_t)(found * bm->granularity)) : -1;
        }
        if (++w * BITS_PER_WORD >= bm->nbits) {
            return -1;
        }
        word = __atomic_load_n(&bm->words[w], __ATOMIC_RELAXED);
    }
}

bool dirty_bitmap_merge(BdrvDirtyBitmap *dst, const BdrvDirtyBitmap *src, Error **errp)
{
    if (dirty_bitmap_busy(dst)) {
        error_setg(errp, "Bitmap '%s' is currently in use by another operation and cannot be used",
                   dst->name ? dst->name : "");
        return false;
    }
    if (dst->size != src->size) {
        error_setg(errp, "Bitmaps are incompatible and can't be merged");
        return false;
    }
    /* Each dirty granule of src dirties the granules of dst it overlaps. */
    for (int64_t off = dirty_bitmap_next_dirty(src, 0); off >= 0;
         off = dirty_bitmap_next_dirty(src, off + src->granularity)) {
        dirty_bitmap_set(dst, off, src->granularity);
    }
    return true;
}

/* The 8 bits from `bit` on (a multiple of 8), as the stream has them. */
static uint8_t byte_get(const BdrvDirtyBitmap *bm, uint64_t bit)
{
    unsigned long w = __atomic_load_n(&bm->words[bit / BITS_PER_WORD], __ATOMIC_RELAXED);

    return (uint8_t)(w >> (bit % BITS_PER_WORD));
}

/* Whole bytes where the range allows (a 4 GiB drive at 512-byte granules is
 * 8 Mbit), single bits at the ragged ends. */
void dirty_bitmap_serialize(const BdrvDirtyBitmap *bm, uint64_t first, uint64_t count, uint8_t *buf)
{
    uint64_t end = MIN(first + count, bm->nbits);

    memset(buf, 0, (count + 7) / 8);
    for (uint64_t i = 0; first + i < end;) {
        if ((first + i) % 8 == 0 && i % 8 == 0 && first + i + 8 <= end) {
            buf[i / 8] = byte_get(bm, first + i);
            i += 8;
            continue;
        }
        if (bit_get(bm, first + i)) {
            buf[i / 8] |= 1u << (i % 8);
        }
        i++;
    }
}

void dirty_bitmap_deserialize(BdrvDirtyBitmap *bm, uint64_t first, uint64_t count, const uint8_t *buf)
{
    uint64_t end = MIN(first + count, bm->nbits);

    for (uint64_t i = 0; first + i < end;) {
        uint64_t bit = first + i;
        if (bit % 8 == 0 && i % 8 == 0 && bit + 8 <= end) {
            unsigned long *w = &bm->words[bit / BITS_PER_WORD];
            unsigned long shift = bit % BITS_PER_WORD;
            __atomic_fetch_and(w, ~(0xffUL << shift), __ATOMIC_RELAXED);
            __atomic_fetch_or(w, (unsigned long)buf[i / 8] << shift, __ATOMIC_RELAXED);
            i += 8;
            continue;
        }
        bits_change(bm, bit, bit + 1, (buf[i / 8] >> (i % 8)) & 1);
        i++;
    }
}
