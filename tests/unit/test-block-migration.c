/*
 * The "block" live section (migration/block.c, block-load.c) on memory
 * streams, through the real writer and loader, over an in-memory block layer
 * (the stub below implements include/block.h for two sets of drives, the
 * source's and the destination's):
 *   - record bytes as QEMU 7.2 writes them (block-migration.md 2.3);
 *   - the spec's 4 MiB image (section 5) decodes to the same chunks, with
 *     zero-blocks on and off, and loads back byte for byte;
 *   - chunks written during the migration are sent again, read-only drives
 *     are skipped, an unaligned size is padded with zeros;
 *   - query-migrate's "disk" figures;
 *   - hostile and truncated sections, a smaller or read-only destination
 *     drive, an unknown name: each refused with its own error, and the
 *     destination drive left untouched.
 */
#include <check.h>
#include <string.h>
#include <glib.h>
#include "block.h"
#include "block-migration.h"
#include "options.h"
#include "savevm.h"
#include "vm.h"
#include "unit-test.h"

#define MiB (1024 * 1024)

/* ---- stubs: the BQL, capabilities ---- */

bool bql_locked(void)
{
    return true;
}

static bool caps[MIGRATION_CAPABILITY__MAX];

bool migrate_cap(MigrationCapability cap)
{
    return caps[cap];
}

/* ---- an in-memory block layer ---- */

struct BdrvDirtyBitmap {
    uint32_t granularity;
    int64_t size;
    guint8 *bits;              /* one byte per granule */
    BdrvDirtyBitmap *next;
};

struct BlockBackend {
    char *name;
    uint8_t *data;
    int64_t size;
    bool read_only;
    BdrvDirtyBitmap *bitmaps;
    BlockBackend *next;
};

enum { SRC, DST };
static BlockBackend *drives[2];
static int side = SRC;          /* whose drives blk_by_name / blk_next see */
static int writes;              /* blk_pwrite / blk_pwrite_zeroes calls */

static BlockBackend *drive_add(int which, const char *name, int64_t size, uint8_t fill, bool ro)
{
    BlockBackend *b = g_new0(BlockBackend, 1);
    b->name = g_strdup(name);
    b->size = size;
    b->data = g_malloc(size);
    memset(b->data, fill, size);
    b->read_only = ro;
    BlockBackend **tail = &drives[which];
    while (*tail) {
        tail = &(*tail)->next;
    }
    *tail = b;
    return b;
}

static void drives_free(void)
{
    for (int w = 0; w < 2; w++) {
        while (drives[w]) {
            BlockBackend *b = drives[w];
            drives[w] = b->next;
            ck_assert_msg(!b->bitmaps, "a bitmap of %s was not released", b->name);
            g_free(b->name);
            g_free(b->data);
            g_free(b);
        }
    }
}

BlockBackend *blk_by_name(const char *name)
{
    for (BlockBackend *b = drives[side]; b; b = b->next) {
        if (strcmp(b->name, name) == 0) {
            return b;
        }
    }
    return NULL;
}

BlockBackend *blk_next(BlockBackend *prev)
{
    return prev ? prev->next : drives[side];
}

const char *blk_name(const BlockBackend *blk)
{
    return blk->name;
}

int64_t blk_getlength(const BlockBackend *blk)
{
    return blk->size;
}

bool blk_is_read_only(const BlockBackend *blk)
{
    return blk->read_only;
}

static void mark_dirty(BlockBackend *blk, int64_t offset, size_t bytes)
{
    for (BdrvDirtyBitmap *bm = blk->bitmaps; bm; bm = bm->next) {
        dirty_bitmap_set(bm, offset, (int64_t)bytes);
    }
}

int blk_pread(BlockBackend *blk, int64_t offset, void *buf, size_t bytes)
{
    if (offset < 0 || offset + (int64_t)bytes > blk->size) {
        return -EIO;
    }
    memcpy(buf, blk->data + offset, bytes);
    return 0;
}

int blk_pwrite(BlockBackend *blk, int64_t offset, const void *buf, size_t bytes)
{
    if (blk->read_only) {
        return -EPERM;
    }
    if (offset < 0 || offset + (int64_t)bytes > blk->size) {
        return -EIO;
    }
    writes++;
    memcpy(blk->data + offset, buf, bytes);
    mark_dirty(blk, offset, bytes);
    return 0;
}

int blk_pwrite_zeroes(BlockBackend *blk, int64_t offset, size_t bytes)
{
    if (blk->read_only) {
        return -EPERM;
    }
    if (offset < 0 || offset + (int64_t)bytes > blk->size) {
        return -EIO;
    }
    writes++;
    memset(blk->data + offset, 0, bytes);
    mark_dirty(blk, offset, bytes);
    return 0;
}

BdrvDirtyBitmap *blk_dirty_bitmap_create(BlockBackend *blk, uint32_t granularity, const char *name,
                                         Error **errp)
{
    ck_assert_ptr_null(name);
    BdrvDirtyBitmap *bm = g_new0(BdrvDirtyBitmap, 1);
    bm->granularity = granularity;
    bm->size = blk->size;
    bm->bits = g_malloc0((blk->size + granularity - 1) / granularity);
    bm->next = blk->bitmaps;
    blk->bitmaps = bm;
    return bm;
}

void blk_dirty_bitmap_release(BlockBackend *blk, BdrvDirtyBitmap *bm)
{
    for (BdrvDirtyBitmap **p = &blk->bitmaps; *p; p = &(*p)->next) {
        if (*p == bm) {
            *p = bm->next;
            g_free(bm->bits);
            g_free(bm);
            return;
        }
    }
    ck_abort_msg("released an unknown bitmap");
}

static int64_t granules(const BdrvDirtyBitmap *bm)
{
    return (bm->size + bm->granularity - 1) / bm->granularity;
}

static void set_range(BdrvDirtyBitmap *bm, int64_t offset, int64_t bytes, guint8 v)
{
    int64_t end = MIN(granules(bm), (offset + bytes + bm->granularity - 1) / bm->granularity);
    for (int64_t g = offset / bm->granularity; g < end; g++) {
        bm->bits[g] = v;
    }
}

void dirty_bitmap_set(BdrvDirtyBitmap *bm, int64_t offset, int64_t bytes)
{
    set_range(bm, offset, bytes, 1);
}

void dirty_bitmap_reset(BdrvDirtyBitmap *bm, int64_t offset, int64_t bytes)
{
    set_range(bm, offset, bytes, 0);
}

uint64_t dirty_bitmap_count(const BdrvDirtyBitmap *bm)
{
    uint64_t n = 0;
    for (int64_t g = 0; g < granules(bm); g++) {
        if (bm->bits[g]) {
            n += MIN((int64_t)bm->granularity, bm->size - g * bm->granularity);
        }
    }
    return n;
}

int64_t dirty_bitmap_next_dirty(const BdrvDirtyBitmap *bm, int64_t offset)
{
    for (int64_t g = offset / bm->granularity; g < granules(bm); g++) {
        if (bm->bits[g]) {
            return g * bm->granularity;
        }
    }
    return -1;
}

/* ---- helpers ---- */

static void setup(void)
{
    savevm_unregister_all();
    memset(caps, 0, sizeof(caps));
    caps[MIGRATION_CAPABILITY_BLOCK] = true;
    side = SRC;
    writes = 0;
    block_mig_set_progress_silent(true);
    ck_assert(block_mig_init(NULL));
}

static void teardown(void)
{
    savevm_unregister_all();
    drives_free();
}

/* The spec's 4 MiB image (block-migration.md section 5). */
static void fill_spec_image(uint8_t *p)
{
    memset(p, 'A', MiB);
    memcpy(p, "MIGVM-BLOCK-TEST", 16);
    memset(p + MiB, 0, MiB);
    for (int i = 0; i < MiB; i++) {
        p[2 * MiB + i] = (uint8_t)i;
    }
    memset(p + 3 * MiB, 0, MiB);
    memset(p + 3 * MiB, 'D', 4096);
}

/* A whole stream: header, START, PARTs until the bulk phase is over (with
 * between(round) called after each), END, EOF. */
static GByteArray *save_stream(void (*between)(int round))
{
    MigStream *f = mig_stream_new_mem_writer();
    Error *err = NULL;
    MigConfigOptions cfg = { .machine_type = "none" };
    side = SRC;
    ck_assert(savevm_state_header(f, &cfg, &err));
    ck_assert(savevm_state_setup(f, &err));
    for (int round = 0; round < 12; round++) {
        mig_stream_set_rate_limit(f, 10 * MiB);     /* one 1 MiB chunk per round */
        ck_assert_int_ge(savevm_state_iterate(f, &err), 0);
        if (between) {
            between(round);
        }
    }
    ck_assert(savevm_state_complete_precopy(f, false, &err));
    savevm_state_cleanup();
    ck_assert_ptr_null(err);
    size_t len;
    const uint8_t *data = mig_stream_mem_data(f, &len);
    GByteArray *out = g_byte_array_new();
    g_byte_array_append(out, data, len);
    mig_stream_close(f, NULL);
    return out;
}

/* Load into the destination's drives; NULL on success or the error. */
static char *load_stream(const GByteArray *b)
{
    side = DST;
    MigStream *f = mig_stream_new_mem_reader(b->data, b->len);
    LoadvmOptions opts = { .local = { .machine_type = "none" } };
    Error *err = NULL;
    bool ok = qemu_loadvm_state(f, &opts, &err);
    ck_assert(ok == !err);
    mig_stream_close(f, NULL);
    char *msg = err ? g_strdup(error_get_pretty(err)) : NULL;
    error_free(err);
    side = SRC;
    return msg;
}

/* One decoded record of a block section. */
typedef struct Rec {
    uint64_t word;
    char name[256];
    size_t data_off;           /* payload position in the stream (DEVICE_BLOCK) */
} Rec;

static uint64_t be64_at(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

/* Decode every block record of a stream (block is section id 1 here). */
static GArray *block_records(const GByteArray *b)
{
    GArray *recs = g_array_new(false, true, sizeof(Rec));
    const uint8_t *d = b->data;
    size_t pos = 8 + 1 + 4 + 4;                       /* header, CONFIGURATION "none" */
    while (pos < b->len && d[pos] != 0x00) {
        uint8_t type = d[pos];
        uint32_t id = (uint32_t)d[pos + 1] << 24 | d[pos + 2] << 16 | d[pos + 3] << 8 | d[pos + 4];
        pos += 5;
        if (type == 0x01) {
            pos += 1 + d[pos] + 8;
        }
        ck_assert_uint_eq(id, 1);                     /* only the block section here */
        for (;;) {
            Rec r = { .word = be64_at(d + pos) };
            pos += 8;
            if (r.word & BLK_MIG_FLAG_DEVICE_BLOCK) {
                memcpy(r.name, d + pos + 1, d[pos]);
                pos += 1 + d[pos];
                if (!(r.word & BLK_MIG_FLAG_ZERO_BLOCK)) {
                    r.data_off = pos;
                    pos += MiB;
                }
            }
            g_array_append_val(recs, r);
            if (r.word == BLK_MIG_FLAG_EOS) {
                break;
            }
        }
        ck_assert_uint_eq(d[pos], 0x7e);
        pos += 5;
    }
    return recs;
}

/* ---- records ---- */

START_TEST(test_record_bytes)
{
    MigStream *f = mig_stream_new_mem_writer();
    block_mig_put_chunk(f, "d0", MiB, NULL);
    block_mig_put_progress(f, 25);
    block_mig_put_progress(f, 100);
    block_mig_put_eos(f);
    static const uint8_t want[] = {
        0, 0, 0, 0, 0, 0x10, 0, 0x09, 0x02, 'd', '0',
        0, 0, 0, 0, 0, 0, 0x32, 0x04,
        0, 0, 0, 0, 0, 0, 0xc8, 0x04,
        0, 0, 0, 0, 0, 0, 0, 0x02,
    };
    size_t len;
    const uint8_t *got = mig_stream_mem_data(f, &len);
    ck_assert_uint_eq(len, sizeof(want));
    ck_assert_mem_eq(got, want, sizeof(want));
    mig_stream_close(f, NULL);

    uint8_t chunk[MiB] = { 0 };
    ck_assert(block_mig_buffer_is_zero(chunk, sizeof(chunk)));
    chunk[MiB - 1] = 1;
    ck_assert(!block_mig_buffer_is_zero(chunk, sizeof(chunk)));
    ck_assert(block_mig_buffer_is_zero(chunk, MiB - 1));
}
END_TEST

/* ---- the spec's image ---- */

static void check_spec_image(bool zero_blocks)
{
    BlockBackend *src = drive_add(SRC, "d0", 4 * MiB, 0, false);
    fill_spec_image(src->data);
    drive_add(SRC, "ro", 2 * MiB, 0x55, true);
    BlockBackend *dst = drive_add(DST, "d0", 4 * MiB, 0xff, false);
    caps[MIGRATION_CAPABILITY_ZERO_BLOCKS] = zero_blocks;

    g_autoptr(GByteArray) s = save_stream(NULL);
    GArray *recs = block_records(s);
    /* START{EOS}, then P0 c3 P25 c0 P50 c1 P75 c2 in the PARTs (last chunk
     * first), END{P100 EOS}. */
    uint64_t progress[8];
    int n_progress = 0, n_chunks = 0;
    bool seen[4] = { false };
    uint64_t order[4];
    for (guint i = 0; i < recs->len; i++) {
        Rec *r = &g_array_index(recs, Rec, i);
        uint64_t flags = r->word & BLK_MIG_FLAGS_MASK;
        if (flags == BLK_MIG_FLAG_PROGRESS) {
            ck_assert_int_lt(n_progress, 8);
            progress[n_progress++] = r->word >> 9;
        } else if (flags & BLK_MIG_FLAG_DEVICE_BLOCK) {
            uint64_t off = r->word & ~(uint64_t)BLK_MIG_FLAGS_MASK;
            ck_assert_str_eq(r->name, "d0");
            ck_assert_uint_lt(off / MiB, 4);
            ck_assert(!seen[off / MiB]);
            seen[off / MiB] = true;
            order[n_chunks++] = off / MiB;
            bool want_zero = zero_blocks && off == MiB;
            ck_assert_uint_eq(flags, want_zero ? 0x09 : 0x01);
            if (!want_zero) {
                ck_assert_mem_eq(s->data + r->data_off, src->data + off, MiB);
            }
        }
    }
    ck_assert_int_eq(n_chunks, 4);
    ck_assert_uint_eq(order[0], 3);
    ck_assert_uint_eq(order[1], 0);
    ck_assert_int_eq(n_progress, 5);
    static const uint64_t want_progress[] = { 0, 25, 50, 75, 100 };
    ck_assert_mem_eq(progress, want_progress, sizeof(want_progress));
    ck_assert_uint_eq(g_array_index(recs, Rec, 0).word, BLK_MIG_FLAG_EOS);     /* setup body */
    g_array_free(recs, true);

    g_autofree char *err = load_stream(s);
    ck_assert_msg(!err, "load failed: %s", err);
    ck_assert_mem_eq(dst->data, src->data, 4 * MiB);
}

START_TEST(test_spec_image)
{
    check_spec_image(false);
}
END_TEST

START_TEST(test_spec_image_zero_blocks)
{
    check_spec_image(true);
}
END_TEST

/* ---- writes during the migration ---- */

static BlockBackend *guest_drive;

static void guest_writes(int round)
{
    /* After the bulk phase sent chunk 1, the guest writes it (twice). */
    if (round == 6 || round == 9) {
        uint8_t buf[512];
        memset(buf, 0x40 + round, sizeof(buf));
        ck_assert_int_eq(blk_pwrite(guest_drive, MiB + 4096, buf, sizeof(buf)), 0);
    }
    if (round == 11) {
        uint8_t buf[512];
        memset(buf, 0x77, sizeof(buf));
        /* written after the last iterate: only the completion can carry it */
        ck_assert_int_eq(blk_pwrite(guest_drive, 3 * MiB + 512, buf, sizeof(buf)), 0);
    }
}

START_TEST(test_dirty_chunks_resent)
{
    guest_drive = drive_add(SRC, "d0", 4 * MiB, 0x11, false);
    BlockBackend *dst = drive_add(DST, "d0", 4 * MiB, 0, false);
    g_autoptr(GByteArray) s = save_stream(guest_writes);
    GArray *recs = block_records(s);
    int sends[4] = { 0 };
    for (guint i = 0; i < recs->len; i++) {
        Rec *r = &g_array_index(recs, Rec, i);
        if (r->word & BLK_MIG_FLAG_DEVICE_BLOCK) {
            sends[(r->word >> 20) & 3]++;
        }
    }
    g_array_free(recs, true);
    ck_assert_int_eq(sends[0], 1);
    ck_assert_int_eq(sends[1], 3);
    ck_assert_int_eq(sends[3], 2);
    g_autofree char *err = load_stream(s);
    ck_assert_msg(!err, "load failed: %s", err);
    ck_assert_mem_eq(dst->data, guest_drive->data, 4 * MiB);
    ck_assert_uint_eq(dst->data[MiB + 4096], 0x49);
    ck_assert_uint_eq(dst->data[3 * MiB + 512], 0x77);
}
END_TEST

/* The final pass left out (a test hook): the last write never arrives. */
START_TEST(test_final_pass_omitted)
{
    ck_assert(vmstate_test_omit_set("block/final-pass", NULL));
    guest_drive = drive_add(SRC, "d0", 4 * MiB, 0x11, false);
    BlockBackend *dst = drive_add(DST, "d0", 4 * MiB, 0, false);
    g_autoptr(GByteArray) s = save_stream(guest_writes);
    ck_assert(vmstate_test_omit_set(NULL, NULL));
    g_autofree char *err = load_stream(s);
    ck_assert_msg(!err, "load failed: %s", err);
    ck_assert_uint_eq(dst->data[3 * MiB + 512], 0x11);
}
END_TEST

/* ---- sizes, read-only drives, several drives ---- */

START_TEST(test_unaligned_size_and_two_drives)
{
    int64_t odd = 2 * MiB + 64 * 1024;
    BlockBackend *a = drive_add(SRC, "a", odd, 0x5a, false);
    drive_add(SRC, "ro", MiB, 0x33, true);
    BlockBackend *b = drive_add(SRC, "b", MiB, 0x6b, false);
    BlockBackend *da = drive_add(DST, "a", odd, 0, false);
    BlockBackend *db = drive_add(DST, "b", MiB, 0, false);
    BlockBackend *dro = drive_add(DST, "ro", MiB, 0, false);
    g_autoptr(GByteArray) s = save_stream(NULL);
    GArray *recs = block_records(s);
    int per_drive[3] = { 0 };
    for (guint i = 0; i < recs->len; i++) {
        Rec *r = &g_array_index(recs, Rec, i);
        if (r->word & BLK_MIG_FLAG_DEVICE_BLOCK) {
            ck_assert_str_ne(r->name, "ro");
            per_drive[strcmp(r->name, "a") == 0 ? 0 : 1]++;
            if (strcmp(r->name, "a") == 0 && (r->word >> 20) == 2) {
                /* the last chunk: 64 KiB of data, zeros to 1 MiB */
                ck_assert_uint_eq(s->data[r->data_off + 64 * 1024 - 1], 0x5a);
                ck_assert(block_mig_buffer_is_zero(s->data + r->data_off + 64 * 1024, MiB - 64 * 1024));
            }
        }
    }
    g_array_free(recs, true);
    ck_assert_int_eq(per_drive[0], 3);
    ck_assert_int_eq(per_drive[1], 1);
    g_autofree char *err = load_stream(s);
    ck_assert_msg(!err, "load failed: %s", err);
    ck_assert_mem_eq(da->data, a->data, odd);
    ck_assert_mem_eq(db->data, b->data, MiB);
    ck_assert_uint_eq(dro->data[0], 0);
}
END_TEST

START_TEST(test_smaller_destination_refused_before_data)
{
    BlockBackend *src = drive_add(SRC, "d0", 4 * MiB, 0, false);
    fill_spec_image(src->data);
    BlockBackend *dst = drive_add(DST, "d0", 2 * MiB, 0xff, false);
    g_autoptr(GByteArray) s = save_stream(NULL);
    g_autofree char *err = load_stream(s);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, "error while loading state for instance 0x0 of device 'block': "
                              "Block device 'd0' is smaller than the source's: 2097152 bytes here, "
                              "the source sends data at offset 3145728"), "%s", err);
    ck_assert_int_eq(writes, 0);
    ck_assert_uint_eq(dst->data[0], 0xff);
}
END_TEST

/* Smaller by less than a chunk: the data past the end gives it away. */
START_TEST(test_slightly_smaller_destination_refused)
{
    BlockBackend *src = drive_add(SRC, "d0", 2 * MiB, 0x22, false);
    drive_add(DST, "d0", 2 * MiB - 4096, 0xff, false);
    g_autoptr(GByteArray) s = save_stream(NULL);
    g_autofree char *err = load_stream(s);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(err, "Block device 'd0' is smaller than the source's: 2093056 bytes here, "
                              "the source has data past that"), "%s", err);
    ck_assert_int_eq(writes, 0);
    (void)src;
}
END_TEST

START_TEST(test_larger_destination_keeps_its_tail)
{
    BlockBackend *src = drive_add(SRC, "d0", 2 * MiB, 0x22, false);
    BlockBackend *dst = drive_add(DST, "d0", 3 * MiB, 0xff, false);
    g_autoptr(GByteArray) s = save_stream(NULL);
    g_autofree char *err = load_stream(s);
    ck_assert_msg(!err, "%s", err);
    ck_assert_mem_eq(dst->data, src->data, 2 * MiB);
    ck_assert_uint_eq(dst->data[3 * MiB - 1], 0xff);
}
END_TEST

/* ---- query-migrate's "disk" ---- */

static void check_stats(int round)
{
    g_autofree MigrationStats *st = block_mig_disk_stats();
    ck_assert_ptr_nonnull(st);
    ck_assert_int_eq(st->total, 4 * MiB);
    ck_assert_int_eq(st->transferred + st->remaining, st->total);
    /* QEMU's count lags by one chunk: rounds 0..3 submitted chunks 0..3 */
    ck_assert_int_eq(st->transferred, MIN(round, 3) * MiB);
    ck_assert_int_eq(st->normal, 0);
    ck_assert_int_eq(st->page_size, 0);
}

START_TEST(test_disk_stats)
{
    drive_add(SRC, "d0", 4 * MiB, 1, false);
    drive_add(DST, "d0", 4 * MiB, 0, false);
    ck_assert_ptr_null(block_mig_disk_stats());
    g_autoptr(GByteArray) s = save_stream(check_stats);
    ck_assert_ptr_null(block_mig_disk_stats());

    /* no writable drive: no "disk" member at all */
    drives_free();
    drive_add(SRC, "ro", MiB, 1, true);
    MigStream *f = mig_stream_new_mem_writer();
    ck_assert(savevm_state_setup(f, NULL));
    ck_assert_ptr_null(block_mig_disk_stats());
    savevm_state_cleanup();
    mig_stream_close(f, NULL);
}
END_TEST

START_TEST(test_inactive_without_capability)
{
    caps[MIGRATION_CAPABILITY_BLOCK] = false;
    drive_add(SRC, "d0", MiB, 1, false);
    MigStream *f = mig_stream_new_mem_writer();
    ck_assert(savevm_state_setup(f, NULL));
    size_t len;
    mig_stream_mem_data(f, &len);
    ck_assert_uint_eq(len, 0);
    ck_assert_ptr_null(drives[SRC]->bitmaps);
    savevm_state_cleanup();
    mig_stream_close(f, NULL);
}
END_TEST

/* ---- hostile sections (block_mig_load on one body) ---- */

typedef struct Hostile {
    const char *name;
    const uint8_t *bytes;
    size_t len;
    bool with_payload;          /* append 1 MiB of 0x42 after the bytes */
    const char *error;
} Hostile;

#define B(...) (const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ })

static const Hostile hostile[] = {
    { "unknown name", B(0, 0, 0, 0, 0, 0, 0, 1, 2, 'x', 'y'), true,
      "Unknown block device 'xy': no drive with that id here" },
    { "name_len 0", B(0, 0, 0, 0, 0, 0, 0, 1, 0), true, "Block migration chunk without a valid device name" },
    { "NUL in name", B(0, 0, 0, 0, 0, 0, 0, 1, 2, 'd', 0), true,
      "Block migration chunk without a valid device name" },
    { "read-only drive", B(0, 0, 0, 0, 0, 0, 0, 1, 2, 'r', 'o'), true,
      "Block device 'ro' is read-only and cannot receive migrated data" },
    { "unaligned offset", B(0, 0, 0, 0, 0, 0, 0x02, 0x01, 2, 'd', '0'), true,
      "Block migration chunk of 'd0' at 0x200 is not 1 MiB aligned" },
    { "offset beyond the drive", B(0, 0, 0, 0, 0, 0x40, 0, 0x09, 2, 'd', '0'), false,
      "Block device 'd0' is smaller than the source's: 4194304 bytes here, the source sends data at offset 4194304" },
    { "huge offset", B(0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0, 0x01, 2, 'd', '0'), true,
      "Block device 'd0' is smaller than the source's" },
    { "unknown flag 0x10", B(0, 0, 0, 0, 0, 0, 0, 0x10), false, "Unknown block migration flags: 0x10" },
    { "unknown flag 0x100", B(0, 0, 0, 0, 0, 0, 0x01, 0x00), false, "Unknown block migration flags: 0x100" },
    { "zero without chunk", B(0, 0, 0, 0, 0, 0, 0, 0x08), false, "Unknown block migration flags: 0x8" },
    { "chunk and progress", B(0, 0, 0, 0, 0, 0, 0, 0x05, 2, 'd', '0'), true, "Unknown block migration flags: 0x5" },
    { "EOS with an offset", B(0, 0, 0, 0, 0, 0x10, 0, 0x02), false, "Unknown block migration flags: 0x2" },
    { "progress 101 %", B(0, 0, 0, 0, 0, 0, 0xca, 0x04), false, "Block migration progress 101 % is out of range" },
    { "truncated word", B(0, 0, 0, 0), false, "Failed to read a block migration record" },
    { "truncated name", B(0, 0, 0, 0, 0, 0, 0, 1, 5, 'd'), false, "Failed to read a block device name" },
    { "truncated payload", B(0, 0, 0, 0, 0, 0, 0, 1, 2, 'd', '0', 1, 2, 3), false,
      "Failed to read the chunk at 0x0 of block device d0" },
    { "no EOS", B(0, 0, 0, 0, 0, 0, 0, 0x04), false, "Failed to read a block migration record" },
};

START_TEST(test_hostile_sections)
{
    const Hostile *h = &hostile[_i];
    BlockBackend *dst = drive_add(DST, "d0", 4 * MiB, 0xee, false);
    drive_add(DST, "ro", 4 * MiB, 0xee, true);
    GByteArray *b = g_byte_array_new();
    g_byte_array_append(b, h->bytes, h->len);
    if (h->with_payload) {
        static uint8_t payload[MiB];
        memset(payload, 0x42, sizeof(payload));
        g_byte_array_append(b, payload, sizeof(payload));
        static const uint8_t eos[8] = { 0, 0, 0, 0, 0, 0, 0, 2 };
        g_byte_array_append(b, eos, sizeof(eos));
    }
    side = DST;
    MigStream *f = mig_stream_new_mem_reader(b->data, b->len);
    Error *err = NULL;
    ck_assert_msg(!block_mig_load(f, 1, &err), "%s: loaded", h->name);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(error_get_pretty(err), h->error), "%s: '%s' lacks '%s'", h->name,
                  error_get_pretty(err), h->error);
    error_free(err);
    mig_stream_close(f, NULL);
    g_byte_array_free(b, true);
    ck_assert_int_eq(writes, 0);
    ck_assert_uint_eq(dst->data[0], 0xee);
}
END_TEST

START_TEST(test_bad_version)
{
    static const uint8_t eos[8] = { 0, 0, 0, 0, 0, 0, 0, 2 };
    MigStream *f = mig_stream_new_mem_reader(eos, sizeof(eos));
    Error *err = NULL;
    ck_assert(!block_mig_load(f, 2, &err));
    ck_assert_str_eq(error_get_pretty(err), "Unsupported block migration version 2");
    error_free(err);
    mig_stream_close(f, NULL);
}
END_TEST

/* Every truncation of a good stream is refused, never crashes. */
START_TEST(test_truncated_streams)
{
    BlockBackend *src = drive_add(SRC, "d0", 2 * MiB, 0, false);
    memset(src->data, 0x31, 4096);
    drive_add(DST, "d0", 2 * MiB, 0, false);
    caps[MIGRATION_CAPABILITY_ZERO_BLOCKS] = true;
    g_autoptr(GByteArray) s = save_stream(NULL);
    for (size_t cut = 0; cut < s->len; cut += (cut < 200 || s->len - cut < 200) ? 1 : 65537) {
        GByteArray part = { .data = s->data, .len = (guint)cut };
        g_autofree char *err = load_stream(&part);
        ck_assert_msg(err, "a stream cut at %zu of %u loaded", cut, s->len);
    }
}
END_TEST

static Suite *block_migration_suite(void)
{
    Suite *s = suite_create("block-migration");
    TCase *tc = tcase_create("block");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_record_bytes);
    tcase_add_test(tc, test_spec_image);
    tcase_add_test(tc, test_spec_image_zero_blocks);
    tcase_add_test(tc, test_dirty_chunks_resent);
    tcase_add_test(tc, test_final_pass_omitted);
    tcase_add_test(tc, test_unaligned_size_and_two_drives);
    tcase_add_test(tc, test_smaller_destination_refused_before_data);
    tcase_add_test(tc, test_slightly_smaller_destination_refused);
    tcase_add_test(tc, test_larger_destination_keeps_its_tail);
    tcase_add_test(tc, test_disk_stats);
    tcase_add_test(tc, test_inactive_without_capability);
    tcase_add_loop_test(tc, test_hostile_sections, 0, G_N_ELEMENTS(hostile));
    tcase_add_test(tc, test_bad_version);
    tcase_add_test(tc, test_truncated_streams);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(block_migration_suite());
}
