/*
 * The "dirty-bitmap" live save-state entry (instance 0, version 1): the named
 * dirty bitmaps of every drive, in QEMU 7.2's format (shared docs:
 * block-migration.md section 4). Active when capability dirty-bitmaps is on
 * and setup finds at least one named bitmap; the source then also writes
 * COMMAND POSTCOPY_ADVISE with length 0 after the configuration (migration.c).
 *
 * Record (repeated; every section body ends with one whose flags hold EOS):
 *   flags     u8; 0x80 set: one more byte follows (flags = flags << 8 | byte),
 *             and if that one has 0x80 too, a be16 (flags = flags << 16 | be16).
 *             0x01 EOS, 0x02 ZEROES, 0x04 BITMAP_NAME, 0x08 DEVICE_NAME,
 *             0x10 START, 0x20 COMPLETE, 0x40 BITS. migvm writes one byte.
 *   [node]    counted string (u8 len + bytes)   if DEVICE_NAME
 *   [bitmap]  counted string                    if BITMAP_NAME
 *   START     be32 granularity (bytes), u8 bitmap flags: 0x01 enabled,
 *             0x02 persistent, 0x04 ignored, others refused.
 *   COMPLETE  nothing
 *   BITS      be64 first sector, be32 sector count (512-byte sectors); unless
 *             ZEROES: be64 buffer size, buffer (bit i = granule first + i, at
 *             byte i / 8, value 1 << (i % 8); ceil(granules / 64) * 8 bytes,
 *             zero-padded up to a multiple of 32).
 * Names are written only when they differ from the previous record's, over
 * the whole migration; the reader keeps the current node and bitmap likewise.
 *
 * Source: setup = START per bitmap, then EOS (the bitmaps are busy until
 * cleanup). No PART (precopy on a running guest sends no bits, as QEMU 7.2).
 * Complete (guest stopped) = BITS over the whole disk per bitmap, at most
 * 8192 granules per record, ZEROES when the padded buffer is all zero, then
 * COMPLETE per bitmap, then EOS. So writes made during the migration arrive.
 *
 * Destination: the node is a drive name. An unknown drive cancels bitmap
 * migration (as QEMU: the rest of this entry is read and ignored, bitmaps
 * created so far by it are dropped, the migration goes on). START creates
 * the bitmap (a name already there fails the load), not recording until its
 * COMPLETE, which enables it if START said so. A failed load drops the bitmaps
 * it created and did not complete. Records are read without the BQL and
 * applied with it.
 */
#include "block-dirty-bitmap.h"
#include "savevm.h"
#include "options.h"
#include "block.h"
#include "vm.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#define DBM_VERSION 1

enum {
    DBM_FLAG_EOS = 0x01,
    DBM_FLAG_ZEROES = 0x02,
    DBM_FLAG_BITMAP_NAME = 0x04,
    DBM_FLAG_DEVICE_NAME = 0x08,
    DBM_FLAG_START = 0x10,
    DBM_FLAG_COMPLETE = 0x20,
    DBM_FLAG_BITS = 0x40,
    DBM_FLAG_EXTRA = 0x80,
};
#define DBM_KNOWN_FLAGS 0x7fu

enum {
    DBM_START_ENABLED = 0x01,
    DBM_START_PERSISTENT = 0x02,
    DBM_START_AUTOLOAD = 0x04,      /* obsolete, ignored */
    DBM_START_RESERVED = 0xf8,
};

#define DBM_CHUNK_GRANULES 8192u            /* bits per BITS record: 1 KiB */
#define DBM_MAX_BUFFER (10u * 1024)         /* QEMU's bound on a record's buffer */
#define DBM_BUFFER_ALIGN 32u
/* What one load may create (docs/hostile-streams.md): each START allocates a
 * bitmap of the drive's size / granularity bits, so without a bound a stream
 * of a few bytes per START could take any amount of memory. */
#define DBM_LOAD_MAX_BITMAPS 1024u
#define DBM_LOAD_MAX_BYTES (128u << 20)

/* Buffer bytes for `granules` bits: whole 64-bit words. */
static uint64_t bits_bytes(uint64_t granules)
{
    return (granules + 63) / 64 * 8;
}

static uint64_t size_sectors(int64_t bytes)
{
    return ((uint64_t)bytes + BDRV_SECTOR_SIZE - 1) / BDRV_SECTOR_SIZE;
}

/* Granules a record [sector, sector + nr) covers of a bitmap of `size` bytes. */
static uint64_t record_granules(uint64_t sector, uint64_t nr, int64_t size, uint32_t gran)
{
    uint64_t start = sector * BDRV_SECTOR_SIZE;
    uint64_t end = MIN((sector + nr) * BDRV_SECTOR_SIZE, (uint64_t)size);
    return end > start ? (end - start + gran - 1) / gran : 0;
}

/* ------------------------------------------------------------------ */
/* source                                                             */

typedef struct SaveBitmap {
    BlockBackend *blk;
    BdrvDirtyBitmap *bm;
} SaveBitmap;

typedef struct DbmSaveState {
    GArray *bitmaps;                 /* SaveBitmap, in send order [BQL] */
    const BlockBackend *prev_blk;    /* names already on the wire [BQL] */
    const BdrvDirtyBitmap *prev_bm;
} DbmSaveState;

typedef struct LoadBitmap {
    BlockBackend *blk;
    BdrvDirtyBitmap *bm;
    bool enable;                 /* START said enabled: enable at COMPLETE */
    bool completed;
} LoadBitmap;

/* Only the incoming thread touches it; the bitmaps it points at change
 * under the BQL. */
typedef struct DbmLoadState {
    char node[256];
    char name[256];
    BlockBackend *blk;           /* the current node, NULL if none yet */
    GArray *created;             /* LoadBitmap: bitmaps this load created */
    uint64_t created_bytes;      /* their bits, in bytes (DBM_LOAD_MAX_BYTES) */
    bool cancelled;
    bool done;                   /* every bitmap created got its COMPLETE */
} DbmLoadState;

typedef struct DbmState {
    DbmSaveState save;
    DbmLoadState load;
} DbmState;

static DbmState dbm_state;


/* Named bitmaps of every drive, drives in creation order, each drive's newest
 * first (QEMU 7.2's order). [BQL] */
static void collect_bitmaps(GArray *out)
{
    for (BlockBackend *blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        guint first = out->len;
        for (BdrvDirtyBitmap *bm = blk_dirty_bitmap_next(blk, NULL); bm;
             bm = blk_dirty_bitmap_next(blk, bm)) {
            if (dirty_bitmap_name(bm)) {
                SaveBitmap sb = { blk, bm };
                g_array_insert_val(out, first, sb);
            }
        }
    }
}

static bool dbm_is_active(void *opaque)
{
    (void)opaque;
    if (!migrate_cap(MIGRATION_CAPABILITY_DIRTY_BITMAPS)) {
        return false;
    }
    g_autoptr(GArray) all = g_array_new(false, false, sizeof(SaveBitmap));
    collect_bitmaps(all);
    return all->len > 0;
}

static void put_header(MigStream *f, DbmSaveState *s, const SaveBitmap *sb, uint8_t flags)
{
    if (s->prev_blk != sb->blk) {
        flags |= DBM_FLAG_DEVICE_NAME;
    }
    if (s->prev_bm != sb->bm) {
        flags |= DBM_FLAG_BITMAP_NAME;
    }
    s->prev_blk = sb->blk;
    s->prev_bm = sb->bm;
    mig_stream_put_u8(f, flags);
    if (flags & DBM_FLAG_DEVICE_NAME) {
        mig_stream_put_counted_string(f, blk_name(sb->blk));
    }
    if (flags & DBM_FLAG_BITMAP_NAME) {
        mig_stream_put_counted_string(f, dirty_bitmap_name(sb->bm));
    }
}

static void dbm_save_cleanup(void *opaque)
{
    DbmSaveState *s = &((DbmState *)opaque)->save;
    assert(bql_locked());
    for (guint i = 0; s->bitmaps && i < s->bitmaps->len; i++) {
        dirty_bitmap_set_busy(g_array_index(s->bitmaps, SaveBitmap, i).bm, false);
    }
    if (s->bitmaps) {
        g_array_free(s->bitmaps, true);
    }
    *s = (DbmSaveState){ 0 };
}

/* Every bitmap must be free and nameable on the wire; all of them become
 * busy, so no command changes them while they travel. [BQL] */
static bool dbm_save_setup(MigStream *f, void *opaque, Error **errp)
{
    DbmSaveState *s = &((DbmState *)opaque)->save;
    assert(bql_locked());
    s->bitmaps = g_array_new(false, false, sizeof(SaveBitmap));
    s->prev_blk = NULL;
    s->prev_bm = NULL;
    collect_bitmaps(s->bitmaps);
    for (guint i = 0; i < s->bitmaps->len; i++) {
        SaveBitmap *sb = &g_array_index(s->bitmaps, SaveBitmap, i);
        const char *name = dirty_bitmap_name(sb->bm);
        if (dirty_bitmap_busy(sb->bm)) {
            error_setg(errp, "Bitmap '%s' is currently in use by another operation and cannot be used",
                       name);
            g_array_set_size(s->bitmaps, i);
            return false;
        }
        if (strlen(name) > 255 || strlen(blk_name(sb->blk)) > 255) {
            error_setg(errp, "Cannot migrate bitmap '%s' on node '%s': Name is longer than 255 bytes",
                       name, blk_name(sb->blk));
            g_array_set_size(s->bitmaps, i);
            return false;
        }
        dirty_bitmap_set_busy(sb->bm, true);
    }
    for (guint i = 0; i < s->bitmaps->len; i++) {
        SaveBitmap *sb = &g_array_index(s->bitmaps, SaveBitmap, i);
        uint8_t bflags = (dirty_bitmap_enabled(sb->bm) ? DBM_START_ENABLED : 0) |
                         (dirty_bitmap_persistent(sb->bm) ? DBM_START_PERSISTENT : 0);
        put_header(f, s, sb, DBM_FLAG_START);
        mig_stream_put_be32(f, dirty_bitmap_granularity(sb->bm));
        mig_stream_put_u8(f, bflags);
    }
    mig_stream_put_u8(f, DBM_FLAG_EOS);
    return mig_stream_get_error(f, errp);
}

static bool buffer_is_zero(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i]) {
            return false;
        }
    }
    return true;
}

/* BITS records over the whole of one bitmap. */
static void save_bits(MigStream *f, DbmSaveState *s, const SaveBitmap *sb)
{
    uint32_t gran = dirty_bitmap_granularity(sb->bm);
    int64_t size = dirty_bitmap_size(sb->bm);
    uint64_t total = size_sectors(size);
    uint64_t chunk = (uint64_t)DBM_CHUNK_GRANULES * (gran / BDRV_SECTOR_SIZE);
    uint64_t gran_sectors = gran / BDRV_SECTOR_SIZE;
    /* the sector count is a be32: keep whole granules below 2^32 */
    chunk = MIN(chunk, (UINT32_MAX / gran_sectors) * gran_sectors);
    uint8_t buf[DBM_CHUNK_GRANULES / 8];

    for (uint64_t sector = 0; sector < total;) {
        uint64_t nr = MIN(total - sector, chunk);
        uint64_t granules = record_granules(sector, nr, size, gran);
        uint64_t len = bits_bytes(granules);
        len = (len + DBM_BUFFER_ALIGN - 1) / DBM_BUFFER_ALIGN * DBM_BUFFER_ALIGN;
        memset(buf, 0, len);
        dirty_bitmap_serialize(sb->bm, sector * BDRV_SECTOR_SIZE / gran, granules, buf);
        bool zero = buffer_is_zero(buf, len);
        put_header(f, s, sb, DBM_FLAG_BITS | (zero ? DBM_FLAG_ZEROES : 0));
        mig_stream_put_be64(f, sector);
        mig_stream_put_be32(f, (uint32_t)nr);
        if (!zero) {
            mig_stream_put_be64(f, len);
            mig_stream_put_buffer(f, buf, len);
        }
        sector += nr;
    }
}

/* [BQL, guest stopped] */
static bool dbm_save_complete(MigStream *f, void *opaque, Error **errp)
{
    DbmSaveState *s = &((DbmState *)opaque)->save;
    assert(bql_locked());
    for (guint i = 0; i < s->bitmaps->len; i++) {
        save_bits(f, s, &g_array_index(s->bitmaps, SaveBitmap, i));
    }
    for (guint i = 0; i < s->bitmaps->len; i++) {
        put_header(f, s, &g_array_index(s->bitmaps, SaveBitmap, i), DBM_FLAG_COMPLETE);
    }
    mig_stream_put_u8(f, DBM_FLAG_EOS);
    return mig_stream_get_error(f, errp);
}

/* ------------------------------------------------------------------ */
/* destination                                                        */


/* One record as read from the stream, before it is applied. */
typedef struct DbmRecord {
    uint32_t flags;
    uint32_t granularity;        /* START */
    uint8_t bitmap_flags;        /* START */
    uint64_t first_sector;       /* BITS */
    uint32_t nr_sectors;         /* BITS */
    uint64_t buf_size;           /* BITS without ZEROES */
    uint8_t *buf;
} DbmRecord;

static bool read_flags(MigStream *f, uint32_t *out, Error **errp)
{
    uint32_t flags = mig_stream_get_u8(f);
    uint32_t continuation = 0;      /* where the 0x80 bits ended up */
    if (flags & DBM_FLAG_EXTRA) {
        flags = flags << 8 | mig_stream_get_u8(f);
        continuation = DBM_FLAG_EXTRA << 8;
        if (flags & DBM_FLAG_EXTRA) {
            flags = flags << 16 | mig_stream_get_be16(f);
            continuation = continuation << 16 | DBM_FLAG_EXTRA << 16;
        }
    }
    if (!mig_stream_check(f, errp, "Failed to read a dirty bitmap record")) {
        return false;
    }
    if (flags & ~(continuation | DBM_KNOWN_FLAGS)) {
        error_setg(errp, "Unknown dirty bitmap migration flags: 0x%" PRIx32, flags);
        return false;
    }
    *out = flags & DBM_KNOWN_FLAGS;
    return true;
}

static bool read_name(MigStream *f, char out[256], const char *what, Error **errp)
{
    int len = mig_stream_get_counted_string(f, out);
    if (len < 0 || !mig_stream_check(f, errp, "Unable to read %s string", what)) {
        if (errp && !*errp) {
            error_setg(errp, "Unable to read %s string", what);
        }
        return false;
    }
    if (memchr(out, '\0', len)) {
        error_setg(errp, "Invalid %s string", what);
        return false;
    }
    return true;
}

/* Reads one record whole (names into s, payload into r) without the BQL. */
static bool read_record(MigStream *f, DbmLoadState *s, DbmRecord *r, bool *node_changed,
                        Error **errp)
{
    *r = (DbmRecord){ 0 };
    *node_changed = false;
    if (!read_flags(f, &r->flags, errp)) {
        return false;
    }
    if (r->flags & DBM_FLAG_DEVICE_NAME) {
        if (!read_name(f, s->node, "node alias", errp)) {
            return false;
        }
        *node_changed = true;
    }
    if ((r->flags & DBM_FLAG_BITMAP_NAME) && !read_name(f, s->name, "bitmap alias", errp)) {
        return false;
    }
    if (r->flags & DBM_FLAG_START) {
        r->granularity = mig_stream_get_be32(f);
        r->bitmap_flags = mig_stream_get_u8(f);
    } else if (r->flags & DBM_FLAG_BITS) {
        r->first_sector = mig_stream_get_be64(f);
        r->nr_sectors = mig_stream_get_be32(f);
        if (!(r->flags & DBM_FLAG_ZEROES)) {
            r->buf_size = mig_stream_get_be64(f);
            if (!mig_stream_has_error(f) && r->buf_size > DBM_MAX_BUFFER) {
                error_setg(errp, "Bitmap migration stream buffer allocation request is too large");
                return false;
            }
            if (!mig_stream_has_error(f)) {
                r->buf = g_malloc(r->buf_size ? r->buf_size : 1);
                if (!mig_stream_get_buffer(f, r->buf, r->buf_size)) {
                    error_setg(errp, "Failed to read bitmap bits");
                    return false;
                }
            }
        }
    }
    return mig_stream_check(f, errp, "Failed to read a dirty bitmap record");
}

static LoadBitmap *find_created(DbmLoadState *s, BdrvDirtyBitmap *bm)
{
    for (guint i = 0; s->created && i < s->created->len; i++) {
        LoadBitmap *lb = &g_array_index(s->created, LoadBitmap, i);
        if (lb->bm == bm) {
            return lb;
        }
    }
    return NULL;
}

/* Drop the bitmaps this load created and did not complete (all of them
 * when `all`). [BQL] */
static void drop_created(DbmLoadState *s, bool all)
{
    for (guint i = 0; s->created && i < s->created->len;) {
        LoadBitmap *lb = &g_array_index(s->created, LoadBitmap, i);
        if (all || !lb->completed) {
            blk_dirty_bitmap_release(lb->blk, lb->bm);
            g_array_remove_index(s->created, i);
        } else {
            i++;
        }
    }
}

/* QEMU's "cancelled" bitmap migration: tell the user, forget what came so
 * far, read and ignore the rest. [BQL] */
static void cancel_load(DbmLoadState *s, const char *why)
{
    warn_report("dirty bitmap migration cancelled: %s", why);
    s->cancelled = true;
    s->blk = NULL;
    drop_created(s, false);
}

static bool apply_start(DbmLoadState *s, const DbmRecord *r, Error **errp)
{
    if (blk_dirty_bitmap_find(s->blk, s->name)) {
        error_setg(errp, "Bitmap with the same name ('%s') already exists on destination", s->name);
        return false;
    }
    if (r->bitmap_flags & DBM_START_RESERVED) {
        error_setg(errp, "Unknown flags in migrated dirty bitmap header: %x", r->bitmap_flags);
        return false;
    }
    /* An invalid granularity is refused by the create below, with its own error. */
    uint64_t bytes = bits_bytes((uint64_t)blk_getlength(s->blk) / MAX(r->granularity, BDRV_SECTOR_SIZE) + 1);
    if (s->created->len >= DBM_LOAD_MAX_BITMAPS || bytes > DBM_LOAD_MAX_BYTES - s->created_bytes) {
        error_setg(errp, "Dirty bitmap '%s' on '%s' (granularity %" PRIu32 ") would take migrated "
                   "bitmaps past what one migration may create: %u bitmaps, %u MiB",
                   s->name, blk_name(s->blk), r->granularity, DBM_LOAD_MAX_BITMAPS,
                   DBM_LOAD_MAX_BYTES >> 20);
        return false;
    }
    BdrvDirtyBitmap *bm = blk_dirty_bitmap_create(s->blk, r->granularity, s->name, errp);
    if (!bm) {
        return false;
    }
    s->created_bytes += bytes;
    dirty_bitmap_set_enabled(bm, false);
    dirty_bitmap_set_persistent(bm, r->bitmap_flags & DBM_START_PERSISTENT);
    LoadBitmap lb = { s->blk, bm, r->bitmap_flags & DBM_START_ENABLED, false };
    g_array_append_val(s->created, lb);
    return true;
}

static bool apply_bits(DbmLoadState *s, BdrvDirtyBitmap *bm, const DbmRecord *r, Error **errp)
{
    uint32_t gran = dirty_bitmap_granularity(bm);
    int64_t size = dirty_bitmap_size(bm);
    uint64_t start = r->first_sector * BDRV_SECTOR_SIZE;
    if (r->first_sector >= size_sectors(size) || r->nr_sectors == 0 ||
        r->nr_sectors > size_sectors(size) - r->first_sector || start % gran) {
        error_setg(errp, "Bitmap '%s' bits for sectors %" PRIu64 "+%" PRIu32
                   " do not fit it (%" PRId64 " bytes, granularity %" PRIu32 ")",
                   s->name, r->first_sector, r->nr_sectors, size, gran);
        return false;
    }
    uint64_t granules = record_granules(r->first_sector, r->nr_sectors, size, gran);
    if (r->flags & DBM_FLAG_ZEROES) {
        dirty_bitmap_reset(bm, start, (int64_t)(granules * gran));
        return true;
    }
    uint64_t needed = bits_bytes(granules);
    uint64_t padded = (needed + DBM_BUFFER_ALIGN - 1) / DBM_BUFFER_ALIGN * DBM_BUFFER_ALIGN;
    if (r->buf_size < needed || r->buf_size > padded) {
        g_autofree char *why = g_strdup_printf("Migrated bitmap granularity doesn't match the "
                                               "destination bitmap '%s' granularity", s->name);
        cancel_load(s, why);
        return true;
    }
    dirty_bitmap_deserialize(bm, start / gran, granules, r->buf);
    return true;
}

/* Apply one record. [BQL] */
static bool apply_record(DbmLoadState *s, const DbmRecord *r, bool node_changed, Error **errp)
{
    if (s->cancelled) {
        return true;
    }
    if (node_changed) {
        s->blk = blk_by_name(s->node);
        if (!s->blk) {
            g_autofree char *why = g_strdup_printf("Cannot find device='%s' nor node-name='%s'",
                                                   s->node, s->node);
            cancel_load(s, why);
            return true;
        }
    }
    if (!(r->flags & (DBM_FLAG_START | DBM_FLAG_COMPLETE | DBM_FLAG_BITS))) {
        return true;
    }
    if (!s->blk) {
        error_setg(errp, "Error: block device name is not set");
        return false;
    }
    if (!s->name[0]) {
        error_setg(errp, "Error: bitmap name is not set");
        return false;
    }
    if (r->flags & DBM_FLAG_START) {
        return apply_start(s, r, errp);
    }
    BdrvDirtyBitmap *bm = blk_dirty_bitmap_find(s->blk, s->name);
    LoadBitmap *lb = bm ? find_created(s, bm) : NULL;
    if (!lb) {
        error_setg(errp, "Error: unknown dirty bitmap '%s' for block device '%s'", s->name, s->node);
        return false;
    }
    if (r->flags & DBM_FLAG_COMPLETE) {
        if (lb->enable) {
            dirty_bitmap_set_enabled(bm, true);
        }
        lb->completed = true;
        return true;
    }
    if (lb->completed) {
        error_setg(errp, "Bits for dirty bitmap '%s' after its COMPLETE", s->name);
        return false;
    }
    return apply_bits(s, bm, r, errp);
}

static bool dbm_load_setup(void *opaque, Error **errp)
{
    (void)errp;
    DbmLoadState *s = &((DbmState *)opaque)->load;
    *s = (DbmLoadState){ 0 };
    s->created = g_array_new(false, false, sizeof(LoadBitmap));
    return true;
}

static bool dbm_load_state(MigStream *f, void *opaque, int version_id, Error **errp)
{
    DbmLoadState *s = &((DbmState *)opaque)->load;
    if (version_id != DBM_VERSION) {
        error_setg(errp, "Unsupported dirty-bitmap section version %d", version_id);
        return false;
    }
    uint32_t flags;
    do {
        DbmRecord r;
        bool node_changed;
        bool ok = read_record(f, s, &r, &node_changed, errp);
        if (ok) {
            bql_lock();
            ok = apply_record(s, &r, node_changed, errp);
            bql_unlock();
        }
        g_free(r.buf);
        if (!ok) {
            return false;
        }
        flags = r.flags;
    } while (!(flags & DBM_FLAG_EOS));
    s->done = s->created->len > 0;
    for (guint i = 0; i < s->created->len; i++) {
        s->done &= g_array_index(s->created, LoadBitmap, i).completed;
    }
    return true;
}

static void dbm_load_cleanup(void *opaque)
{
    DbmLoadState *s = &((DbmState *)opaque)->load;
    bql_lock();
    drop_created(s, !s->done);     /* a load that failed half-way leaves none */
    bql_unlock();
    g_array_free(s->created, true);
    s->created = NULL;
}

static const SaveVMHandlers dbm_handlers = {
    .is_active = dbm_is_active,
    .save_setup = dbm_save_setup,
    .save_live_complete_precopy = dbm_save_complete,
    .save_cleanup = dbm_save_cleanup,
    .load_setup = dbm_load_setup,
    .load_state = dbm_load_state,
    .load_cleanup = dbm_load_cleanup,
};

bool dirty_bitmap_mig_init(Error **errp)
{
    return register_savevm_live("dirty-bitmap", 0, DBM_VERSION, &dbm_handlers, &dbm_state, errp);
}
