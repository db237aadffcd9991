/*
 * The "dirty-bitmap" section (migration/block-dirty-bitmap.c) on memory
 * streams through the real writer and loader: the bytes QEMU 7.2 writes for
 * shared/docs/block-migration.md 4.3's stream5, round trips, and hostile
 * records (each refused with its own error, or ignored as QEMU's cancelled
 * bitmap migration). The block layer is a small fake in this file: drives
 * with a size and bitmaps of one byte per granule.
 */
#include <check.h>
#include <string.h>
#include <glib.h>
#include "block.h"
#include "block-dirty-bitmap.h"
#include "options.h"
#include "savevm.h"
#include "vm.h"
#include "unit-test.h"

/* ---- fake block layer ---- */

struct BdrvDirtyBitmap {
    char *name;
    uint32_t gran;
    int64_t size;
    bool enabled, persistent, busy;
    uint64_t n;                 /* granules */
    uint8_t *bits;              /* one byte per granule */
};

struct BlockBackend {
    char name[32];
    int64_t size;
    GPtrArray *bitmaps;         /* creation order */
};

static BlockBackend drives[2];
static int n_drives;
static bool cap_dirty_bitmaps = true;

bool migrate_cap(MigrationCapability cap)
{
    return cap == MIGRATION_CAPABILITY_DIRTY_BITMAPS && cap_dirty_bitmaps;
}

static BlockBackend *add_drive(const char *name, int64_t size)
{
    BlockBackend *blk = &drives[n_drives++];
    g_strlcpy(blk->name, name, sizeof(blk->name));
    blk->size = size;
    blk->bitmaps = g_ptr_array_new();
    return blk;
}

BlockBackend *blk_next(BlockBackend *prev)
{
    int i = prev ? (int)(prev - drives) + 1 : 0;
    return i < n_drives ? &drives[i] : NULL;
}

BlockBackend *blk_by_name(const char *name)
{
    for (int i = 0; i < n_drives; i++) {
        if (strcmp(drives[i].name, name) == 0) {
            return &drives[i];
        }
    }
    return NULL;
}

const char *blk_name(const BlockBackend *blk)
{
    return blk->name;
}

int64_t blk_getlength(const BlockBackend *blk)
{
    return blk->size;
}

BdrvDirtyBitmap *blk_dirty_bitmap_create(BlockBackend *blk, uint32_t granularity,
                                         const char *name, Error **errp)
{
    ck_assert(bql_locked());
    if (granularity < 512 || (granularity & (granularity - 1))) {
        error_setg(errp, "Granularity must be power of 2 and at least 512");
        return NULL;
    }
    if (name && blk_dirty_bitmap_find(blk, name)) {
        error_setg(errp, "Bitmap already exists: %s", name);
        return NULL;
    }
    BdrvDirtyBitmap *bm = g_new0(BdrvDirtyBitmap, 1);
    bm->name = g_strdup(name);
    bm->gran = granularity;
    bm->size = blk->size;
    bm->enabled = true;
    bm->n = ((uint64_t)blk->size + granularity - 1) / granularity;
    bm->bits = g_malloc0(bm->n);
    g_ptr_array_add(blk->bitmaps, bm);
    return bm;
}

void blk_dirty_bitmap_release(BlockBackend *blk, BdrvDirtyBitmap *bm)
{
    ck_assert(bql_locked());
    g_ptr_array_remove(blk->bitmaps, bm);
    g_free(bm->name);
    g_free(bm->bits);
    g_free(bm);
}

BdrvDirtyBitmap *blk_dirty_bitmap_find(BlockBackend *blk, const char *name)
{
    for (guint i = 0; i < blk->bitmaps->len; i++) {
        BdrvDirtyBitmap *bm = blk->bitmaps->pdata[i];
        if (bm->name && strcmp(bm->name, name) == 0) {
            return bm;
        }
    }
    return NULL;
}

BdrvDirtyBitmap *blk_dirty_bitmap_next(BlockBackend *blk, BdrvDirtyBitmap *prev)
{
    guint i = 0;
    if (prev) {
        ck_assert(g_ptr_array_find(blk->bitmaps, prev, &i));
        i++;
    }
    return i < blk->bitmaps->len ? blk->bitmaps->pdata[i] : NULL;
}

const char *dirty_bitmap_name(const BdrvDirtyBitmap *bm) { return bm->name; }
uint32_t dirty_bitmap_granularity(const BdrvDirtyBitmap *bm) { return bm->gran; }
int64_t dirty_bitmap_size(const BdrvDirtyBitmap *bm) { return bm->size; }
bool dirty_bitmap_enabled(const BdrvDirtyBitmap *bm) { return bm->enabled; }
void dirty_bitmap_set_enabled(BdrvDirtyBitmap *bm, bool enabled) { bm->enabled = enabled; }
bool dirty_bitmap_persistent(const BdrvDirtyBitmap *bm) { return bm->persistent; }
void dirty_bitmap_set_persistent(BdrvDirtyBitmap *bm, bool p) { bm->persistent = p; }
bool dirty_bitmap_busy(const BdrvDirtyBitmap *bm) { return bm->busy; }
void dirty_bitmap_set_busy(BdrvDirtyBitmap *bm, bool busy) { bm->busy = busy; }

void dirty_bitmap_set(BdrvDirtyBitmap *bm, int64_t offset, int64_t bytes)
{
    for (int64_t g = offset / bm->gran; g * bm->gran < offset + bytes && (uint64_t)g < bm->n; g++) {
        bm->bits[g] = 1;
    }
}

void dirty_bitmap_reset(BdrvDirtyBitmap *bm, int64_t offset, int64_t bytes)
{
    for (int64_t g = offset / bm->gran; g * bm->gran < offset + bytes && (uint64_t)g < bm->n; g++) {
        bm->bits[g] = 0;
    }
}

void dirty_bitmap_serialize(const BdrvDirtyBitmap *bm, uint64_t first, uint64_t count, uint8_t *buf)
{
    ck_assert(first + count <= bm->n);
    memset(buf, 0, (count + 7) / 8);
    for (uint64_t i = 0; i < count; i++) {
        buf[i / 8] |= bm->bits[first + i] << (i % 8);
    }
}

void dirty_bitmap_deserialize(BdrvDirtyBitmap *bm, uint64_t first, uint64_t count, const uint8_t *buf)
{
    ck_assert(first + count <= bm->n);
    for (uint64_t i = 0; i < count; i++) {
        bm->bits[first + i] = (buf[i / 8] >> (i % 8)) & 1;
    }
}

static uint64_t dirty_granules(const BdrvDirtyBitmap *bm)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < bm->n; i++) {
        n += bm->bits[i];
    }
    return n;
}

/* ---- fixtures ---- */

static void setup(void)
{
    bql_lock();
    Error *err = NULL;
    ck_assert(dirty_bitmap_mig_init(&err));
    bql_unlock();
    cap_dirty_bitmaps = true;
}

static void remove_drives(void)
{
    bql_lock();
    for (int i = 0; i < n_drives; i++) {
        while (drives[i].bitmaps->len) {
            blk_dirty_bitmap_release(&drives[i], drives[i].bitmaps->pdata[0]);
        }
        g_ptr_array_free(drives[i].bitmaps, true);
    }
    n_drives = 0;
    bql_unlock();
}

static void teardown(void)
{
    remove_drives();
    bql_lock();
    savevm_unregister_all();
    bql_unlock();
}

static BdrvDirtyBitmap *add_bitmap(BlockBackend *blk, const char *name, uint32_t gran)
{
    bql_lock();
    BdrvDirtyBitmap *bm = blk_dirty_bitmap_create(blk, gran, name, NULL);
    bql_unlock();
    ck_assert_ptr_nonnull(bm);
    return bm;
}

/* A whole stream: header (no configuration), what setup and completion
 * write, EOF. start_body, end_body: offsets of the two section bodies. */
static GByteArray *save_stream(size_t *start_body, size_t *end_body, bool *busy_during)
{
    MigStream *f = mig_stream_new_mem_writer();
    Error *err = NULL;
    mig_stream_put_be32(f, QEMU_VM_FILE_MAGIC);
    mig_stream_put_be32(f, QEMU_VM_FILE_VERSION);
    bql_lock();
    ck_assert_msg(savevm_state_setup(f, &err), "%s", err ? error_get_pretty(err) : "");
    size_t mid;
    mig_stream_mem_data(f, &mid);
    if (busy_during) {
        *busy_during = true;
        for (BlockBackend *blk = blk_next(NULL); blk; blk = blk_next(blk)) {
            for (guint i = 0; i < blk->bitmaps->len; i++) {
                *busy_during &= dirty_bitmap_busy(blk->bitmaps->pdata[i]);
            }
        }
    }
    ck_assert(savevm_state_complete_precopy(f, false, &err));
    savevm_state_cleanup();
    bql_unlock();
    size_t len;
    const uint8_t *data = mig_stream_mem_data(f, &len);
    GByteArray *b = g_byte_array_new();
    g_byte_array_append(b, data, len);
    mig_stream_close(f, NULL);
    /* START: 01, be32 id, 0c "dirty-bitmap", be32 instance, be32 version */
    if (start_body) {
        *start_body = 8 + 1 + 4 + 1 + 12 + 4 + 4;
    }
    if (end_body) {
        *end_body = mid + 1 + 4;     /* END: 03 be32 id */
    }
    return b;
}

static char *load(const uint8_t *data, size_t len)
{
    MigStream *f = mig_stream_new_mem_reader(data, len);
    LoadvmOptions opts = { .local = { .machine_type = "none" }, .allow_no_configuration = true };
    Error *err = NULL;
    bool ok = qemu_loadvm_state(f, &opts, &err);
    ck_assert(ok == (err == NULL));
    mig_stream_close(f, NULL);
    char *msg = err ? g_strdup(error_get_pretty(err)) : NULL;
    error_free(err);
    return msg;
}

/* d0 4 MiB: bm0 (64 KiB, recording, persistent) then bm1 (64 KiB, not
 * recording), both dirty at 0 (64 KiB) and 3 MiB (4 KiB): spec 4.3. */
static void stream5_source(void)
{
    BlockBackend *d0 = add_drive("d0", 4 << 20);
    BdrvDirtyBitmap *bm0 = add_bitmap(d0, "bm0", 65536);
    BdrvDirtyBitmap *bm1 = add_bitmap(d0, "bm1", 65536);
    dirty_bitmap_set_persistent(bm0, true);
    for (int i = 0; i < 2; i++) {
        BdrvDirtyBitmap *bm = i ? bm1 : bm0;
        dirty_bitmap_set(bm, 0, 65536);
        dirty_bitmap_set(bm, 3 << 20, 4096);
    }
    dirty_bitmap_set_enabled(bm1, false);
}

static const uint8_t stream5_setup[] = {
    0x1c, 0x02, 'd', '0', 0x03, 'b', 'm', '1', 0x00, 0x01, 0x00, 0x00, 0x00,
    0x14, 0x03, 'b', 'm', '0', 0x00, 0x01, 0x00, 0x00, 0x03,
    0x01, 0x7e,
};

#define STREAM5_BITS(n) \
    0x44, 0x03, 'b', 'm', n, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x20, 0x00, \
    0, 0, 0, 0, 0, 0, 0, 0x20, 0x01, 0, 0, 0, 0, 0, 0x01, 0, \
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0

static const uint8_t stream5_end[] = {
    STREAM5_BITS('1'), STREAM5_BITS('0'),
    0x24, 0x03, 'b', 'm', '1', 0x24, 0x03, 'b', 'm', '0',
    0x01, 0x7e,
};

START_TEST(test_writer_matches_qemu_stream5)
{
    stream5_source();
    size_t start, end;
    bool busy;
    g_autoptr(GByteArray) b = save_stream(&start, &end, &busy);
    ck_assert(busy);
    ck_assert_mem_eq(b->data + 8, "\x01\x00\x00\x00\x01\x0c" "dirty-bitmap" "\x00\x00\x00\x00\x00\x00\x00\x01",
                     26);
    ck_assert_mem_eq(b->data + start, stream5_setup, sizeof(stream5_setup));
    ck_assert_mem_eq(b->data + end, stream5_end, sizeof(stream5_end));
    ck_assert_uint_eq(b->len, end + sizeof(stream5_end) + 4 + 1);   /* footer id, EOF */
    /* busy while migrating only */
    ck_assert(!dirty_bitmap_busy(drives[0].bitmaps->pdata[0]));
}
END_TEST

START_TEST(test_inactive_without_capability_or_bitmaps)
{
    BlockBackend *d0 = add_drive("d0", 1 << 20);
    g_autoptr(GByteArray) none = save_stream(NULL, NULL, NULL);
    ck_assert_uint_eq(none->len, 8 + 1);        /* header, EOF */
    add_bitmap(d0, "a", 65536);
    cap_dirty_bitmaps = false;
    g_autoptr(GByteArray) off = save_stream(NULL, NULL, NULL);
    ck_assert_uint_eq(off->len, 8 + 1);
}
END_TEST

/* Move the source's drives away and give the destination same-sized ones. */
static void swap_to_destination(int64_t size)
{
    remove_drives();
    add_drive("d0", size);
}

START_TEST(test_round_trip_stream5)
{
    stream5_source();
    g_autoptr(GByteArray) b = save_stream(NULL, NULL, NULL);
    swap_to_destination(4 << 20);
    g_autofree char *m = load(b->data, b->len);
    ck_assert_msg(m == NULL, "%s", m);
    BdrvDirtyBitmap *bm0 = blk_dirty_bitmap_find(&drives[0], "bm0");
    BdrvDirtyBitmap *bm1 = blk_dirty_bitmap_find(&drives[0], "bm1");
    ck_assert(bm0 && bm1);
    ck_assert(bm0->enabled && bm0->persistent && !bm0->busy);
    ck_assert(!bm1->enabled && !bm1->persistent);
    ck_assert_uint_eq(bm0->gran, 65536);
    ck_assert_uint_eq(dirty_granules(bm0), 2);
    ck_assert(bm0->bits[0] && bm0->bits[48] && bm1->bits[0] && bm1->bits[48]);
    /* loading the same stream again: the names exist now */
    g_autofree char *again = load(b->data, b->len);
    ck_assert(again && strstr(again, "Bitmap with the same name ('bm1') already exists on destination"));
}
END_TEST

/* Several records per bitmap (8192 granules each), an all-zero one sent as
 * ZEROES, a size that is no multiple of the granularity, two drives. */
START_TEST(test_round_trip_chunks)
{
    int64_t size = 20 * 512 * 1024 + 100;      /* 20480 full granules + part of one */
    BlockBackend *d0 = add_drive("d0", size);
    BlockBackend *d1 = add_drive("d1", 1 << 20);
    BdrvDirtyBitmap *a = add_bitmap(d0, "a", 512);
    BdrvDirtyBitmap *c = add_bitmap(d1, "c", 4096);
    dirty_bitmap_set(a, 0, 1);
    dirty_bitmap_set(a, 8191 * 512, 1024);      /* across the first record's end */
    dirty_bitmap_set(a, size - 1, 1);           /* the partial last granule */
    dirty_bitmap_set(c, 12345, 1);
    size_t end;
    g_autoptr(GByteArray) b = save_stream(NULL, &end, NULL);
    /* record 2 of "a" (granules 8192..16383) has only granule 8192 set;
     * record 3 (16384..20480) only the last: no ZEROES for "a"; "c" is one record */
    ck_assert_uint_eq(b->data[end], 0x4c);      /* BITS, node d0, bitmap a */

    remove_drives();
    add_drive("d0", size);
    add_drive("d1", 1 << 20);
    g_autofree char *m = load(b->data, b->len);
    ck_assert_msg(m == NULL, "%s", m);
    BdrvDirtyBitmap *a2 = blk_dirty_bitmap_find(&drives[0], "a");
    BdrvDirtyBitmap *c2 = blk_dirty_bitmap_find(&drives[1], "c");
    ck_assert(a2 && c2 && a2->enabled && c2->enabled);
    ck_assert_uint_eq(a2->n, 20481);
    ck_assert_uint_eq(dirty_granules(a2), 4);
    ck_assert(a2->bits[0] && a2->bits[8191] && a2->bits[8192] && a2->bits[20480]);
    ck_assert_uint_eq(dirty_granules(c2), 1);
    ck_assert(c2->bits[3]);
}
END_TEST

START_TEST(test_zeroes_record)
{
    BlockBackend *d0 = add_drive("d0", 8 << 20);
    add_bitmap(d0, "z", 512);       /* 16384 granules: two records, both zero */
    size_t end;
    g_autoptr(GByteArray) b = save_stream(NULL, &end, NULL);
    static const uint8_t want[] = {
        /* names as in START: not repeated */
        0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, 0x00,
        0x42, 0, 0, 0, 0, 0, 0, 0x20, 0x00, 0, 0, 0x20, 0x00,
        0x20, 0x01, 0x7e,
    };
    ck_assert_mem_eq(b->data + end, want, sizeof(want));
}
END_TEST

/* One END body after the stream5 START body: replace it and load. */
static char *load_with_end(const uint8_t *body, size_t len)
{
    stream5_source();
    size_t end;
    g_autoptr(GByteArray) b = save_stream(NULL, &end, NULL);
    swap_to_destination(4 << 20);
    g_autoptr(GByteArray) s = g_byte_array_new();
    g_byte_array_append(s, b->data, end);
    g_byte_array_append(s, body, len);
    g_byte_array_append(s, (const uint8_t *)"\x7e\x00\x00\x00\x01\x00", 6);
    return load(s->data, s->len);
}

#define LOAD_END(lit) load_with_end((const uint8_t *)(lit), sizeof(lit) - 1)

START_TEST(test_load_flag_continuation)
{
    /* 0x80 0x01: two-byte flags, EOS; 0x80 0x80 be16 0x0001: four bytes */
    g_autofree char *two = LOAD_END("\x80\x01");
    ck_assert_msg(two == NULL, "%s", two);
    g_autofree char *four = LOAD_END("\x80\x80\x00\x01");
    ck_assert_msg(four == NULL, "%s", four);
    /* the bitmaps exist (not completed: dropped at the end of the load) */
    ck_assert_ptr_null(blk_dirty_bitmap_find(&drives[0], "bm0"));
    g_autofree char *unknown = LOAD_END("\x81\x01");
    ck_assert(unknown && strstr(unknown, "Unknown dirty bitmap migration flags: 0x8101"));
}
END_TEST

START_TEST(test_load_hostile_records)
{
    static const struct {
        const char *what, *body;
        size_t len;
        const char *error;
    } cases[] = {
        { "bits too large", "\x40" "\0\0\0\0\0\0\0\0" "\0\0\x20\0" "\0\0\0\0\0\0\x28\x01", 21,
          "Bitmap migration stream buffer allocation request is too large" },
        { "bits truncated", "\x40" "\0\0\0\0\0\0\0\0" "\0\0\x20\0" "\0\0\0\0\0\0\0\x20" "\x01", 22,
          "Failed to read bitmap bits" },
        { "bits past the end", "\x42" "\0\0\0\0\0\0\x20\0" "\0\0\0\x01", 13, "do not fit it" },
        { "bits longer than the disk", "\x42" "\0\0\0\0\0\0\0\0" "\0\0\x20\x01", 13, "do not fit it" },
        { "bits not granule-aligned", "\x42" "\0\0\0\0\0\0\0\x01" "\0\0\0\x01", 13, "do not fit it" },
        { "unknown bitmap", "\x46\x02xx" "\0\0\0\0\0\0\0\0" "\0\0\0\x01", 16,
          "Error: unknown dirty bitmap 'xx' for block device 'd0'" },
        { "start: unknown flags", "\x14\x02xx" "\0\x01\0\0" "\x09", 9,
          "Unknown flags in migrated dirty bitmap header: 9" },
        { "start: bad granularity", "\x14\x02xx" "\0\0\x03\xe8" "\x01", 9,
          "Granularity must be power of 2 and at least 512" },
        { "name with NUL", "\x24\x02x\0", 4, "Invalid bitmap alias string" },
        { "complete, then bits", "\x20\x42" "\0\0\0\0\0\0\0\0" "\0\0\0\x01", 14,
          "after its COMPLETE" },
        { "truncated record", "\x42\0\0", 3, "Failed to read a dirty bitmap record" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *m = load_with_end((const uint8_t *)cases[i].body, cases[i].len);
        ck_assert_msg(m && strstr(m, cases[i].error), "%s: '%s' lacks '%s'", cases[i].what,
                      m ? m : "(loaded)", cases[i].error);
        /* a failed load leaves no half-migrated bitmap behind */
        ck_assert_msg(drives[0].bitmaps->len == 0, "%s: %u bitmaps left", cases[i].what,
                      drives[0].bitmaps->len);
        remove_drives();
    }
}
END_TEST

/* START records for `n` bitmaps named n0, n1, ... of granularity `gran`, EOS. */
static GByteArray *starts(unsigned n, uint32_t gran)
{
    GByteArray *b = g_byte_array_new();
    for (unsigned i = 0; i < n; i++) {
        char name[16];
        int len = g_snprintf(name, sizeof(name), "n%u", i);
        uint8_t rec[2 + 16 + 5] = { 0x14, (uint8_t)len };
        memcpy(rec + 2, name, len);
        rec[2 + len] = gran >> 24, rec[3 + len] = gran >> 16, rec[4 + len] = gran >> 8;
        rec[5 + len] = gran, rec[6 + len] = 0x01;
        g_byte_array_append(b, rec, 7 + len);
    }
    g_byte_array_append(b, (const uint8_t *)"\x01", 1);
    return b;
}

/* A stream cannot make the destination allocate bitmaps without bound: one
 * START of a 1 TiB drive at 512 bytes (256 MiB of bits), or more than 1024
 * bitmaps, fails the load with the bound in the error. */
START_TEST(test_load_bitmap_budget)
{
    const char *bound = "would take migrated bitmaps past what one migration may create: "
                        "1024 bitmaps, 128 MiB";
    /* stream5's START already created bm0 and bm1 */
    g_autoptr(GByteArray) many = starts(1023, 512);
    g_autofree char *m = load_with_end(many->data, many->len);
    ck_assert_msg(m && strstr(m, bound), "%s", m ? m : "(loaded)");
    ck_assert_uint_eq(drives[0].bitmaps->len, 0);
    remove_drives();

    g_autoptr(GByteArray) fits = starts(1022, 512);
    g_autofree char *ok = load_with_end(fits->data, fits->len);
    ck_assert_msg(ok == NULL, "%s", ok);        /* none completed: all dropped */
    remove_drives();

    stream5_source();
    size_t end;
    g_autoptr(GByteArray) b = save_stream(NULL, &end, NULL);
    swap_to_destination((int64_t)1 << 40);
    g_autoptr(GByteArray) huge = starts(1, 512);
    g_autoptr(GByteArray) s = g_byte_array_new();
    g_byte_array_append(s, b->data, end);
    g_byte_array_append(s, huge->data, huge->len);
    g_byte_array_append(s, (const uint8_t *)"\x7e\x00\x00\x00\x01\x00", 6);
    g_autofree char *big = load(s->data, s->len);
    ck_assert_msg(big && strstr(big, "Dirty bitmap 'n0' on 'd0' (granularity 512) would take"), "%s",
                  big ? big : "(loaded)");
}
END_TEST

/* QEMU's "cancelled": an unknown drive, or bits of another granularity, make
 * the rest of the section be read and ignored; the migration goes on. */
START_TEST(test_load_cancelled)
{
    g_autofree char *node = LOAD_END("\x4c\x02zz\x02xx" "\0\0\0\0\0\0\0\0" "\0\0\x20\0"
                                     "\0\0\0\0\0\0\0\x20" "0123456789abcdef0123456789abcdef" "\x01");
    ck_assert_msg(node == NULL, "%s", node);
    ck_assert_uint_eq(drives[0].bitmaps->len, 0);
    remove_drives();
    /* 64 granules need 8 bytes, padded 32: 40 is "granularity doesn't match" */
    g_autofree char *gran = LOAD_END("\x40" "\0\0\0\0\0\0\0\0" "\0\0\x20\0" "\0\0\0\0\0\0\0\x28"
                                     "0123456789abcdef0123456789abcdef01234567" "\x20\x01");
    ck_assert_msg(gran == NULL, "%s", gran);
    ck_assert_uint_eq(drives[0].bitmaps->len, 0);
}
END_TEST

/* Every truncation of a real stream fails cleanly (no crash, no leak). */
START_TEST(test_load_truncated_everywhere)
{
    stream5_source();
    size_t end;
    g_autoptr(GByteArray) b = save_stream(NULL, &end, NULL);
    swap_to_destination(4 << 20);
    for (size_t cut = 0; cut < b->len; cut++) {
        g_autofree char *m = load(b->data, cut);
        ck_assert_msg(m != NULL, "cut at %zu loaded", cut);
        /* until the END body's EOS, a failed load leaves no bitmap; after
         * it, the bitmaps are complete and stay */
        if (cut < end + sizeof(stream5_end) - 1) {
            ck_assert_uint_eq(drives[0].bitmaps->len, 0);
        } else {
            ck_assert_uint_eq(drives[0].bitmaps->len, 2);
            remove_drives();
            add_drive("d0", 4 << 20);
        }
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dirty-bitmap-mig");
    TCase *tc = tcase_create("dirty-bitmap-mig");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_writer_matches_qemu_stream5);
    tcase_add_test(tc, test_inactive_without_capability_or_bitmaps);
    tcase_add_test(tc, test_round_trip_stream5);
    tcase_add_test(tc, test_round_trip_chunks);
    tcase_add_test(tc, test_zeroes_record);
    tcase_add_test(tc, test_load_flag_continuation);
    tcase_add_test(tc, test_load_hostile_records);
    tcase_add_test(tc, test_load_cancelled);
    tcase_add_test(tc, test_load_bitmap_budget);
    tcase_add_test(tc, test_load_truncated_everywhere);
    suite_add_tcase(s, tc);
    return check_run_suite(s);
}
