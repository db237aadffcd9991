/*
 * Block migration, source side: the "block" live handler, version 1
 * (shared docs: block-migration.md sections 1-3; records in block-load.c).
 *
 *   setup     [BQL] the device list: every writable drive with a size > 0,
 *             in creation order (read-only ones are skipped, as QEMU); an
 *             unnamed 1 MiB dirty bitmap per drive records guest writes from
 *             now on; EOS.
 *   iterate   bulk phase: every chunk of every drive once, each drive's last
 *             chunk first (so a destination too small for it refuses the
 *             migration before any of that drive's data is written), then
 *             the others in order; PROGRESS whenever the integer percent
 *             changes (counted at submission, so it lags, as QEMU's). Then
 *             the dirty phase: chunks the guest wrote since they were sent.
 *             Each chunk's dirty bit is cleared BEFORE it is read, so a write
 *             that lands during the read marks it again. Stops at the
 *             stream's rate limit (shared with RAM) or after ~50 ms; EOS.
 *   pending   dirty bytes plus what the bulk phase has still to read, so the
 *             switch-over waits until the disk fits the downtime limit too.
 *   complete  [BQL, guest stopped and drained] what the bulk phase has left,
 *             every still-dirty chunk, PROGRESS 100, EOS (a test can leave
 *             that final pass out: "block/final-pass", include/vmstate.h).
 *   cleanup   [BQL] bitmaps released; success or not. The source image is
 *             only ever read.
 *
 * Reads are synchronous blk_pread calls on the migration thread, without the
 * BQL (measured in bench/README.md: a 1 MiB read from the page cache costs
 * far less than sending it). A chunk past a drive's end is padded with
 * zeros; with capability zero-blocks an all-zero chunk goes out as a
 * ZERO_BLOCK record without payload.
 *
 * Threads: the device list and cursors belong to the migration thread
 * between setup and cleanup (both run on it with the BQL); query-migrate
 * reads only the _Atomic statistics.
 */
#include "block-migration.h"
#include "block.h"
#include "clock.h"
#include "options.h"
#include "savevm.h"
#include "vm.h"
#include "vmstate.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>
#include <glib.h>

#define ITERATE_MAX_NS (50 * 1000 * 1000LL)

typedef struct BlkMigDevice {
    BlockBackend *blk;
    int64_t size;
    uint64_t chunks;             /* ceil(size / 1 MiB) */
    uint64_t bulk_sent;          /* chunks the bulk phase has sent */
    uint64_t completed_sectors;  /* QEMU's: the sent chunks' start, before the current one */
    int64_t dirty_cursor;        /* dirty phase: where to look next */
    BdrvDirtyBitmap *dirty;
} BlkMigDevice;

typedef struct BlkMigState {
    GPtrArray *devices;          /* BlkMigDevice *; see the top for who may touch them */
    bool bulk_done;
    int prev_progress;
    uint64_t total_sectors;
    uint8_t *buf;                /* one chunk */
    /* query-migrate (any thread) */
    _Atomic bool active;
    _Atomic uint64_t total_bytes, transferred_bytes;
    _Atomic uint64_t stream_bytes;   /* written by the migration thread only */
} BlkMigState;

static BlkMigState blk_state;

bool block_mig_bulk_active(void)
{
    /* bulk_done: the migration thread's, as is the caller. */
    return atomic_load(&blk_state.active) && !blk_state.bulk_done;
}

MigrationStats *block_mig_disk_stats(void)
{
    if (!atomic_load(&blk_state.active)) {
        return NULL;
    }
    MigrationStats *s = g_new0(MigrationStats, 1);
    uint64_t total = atomic_load(&blk_state.total_bytes);
    uint64_t done = MIN(atomic_load(&blk_state.transferred_bytes), total);
    s->transferred = (int64_t)done;
    s->total = (int64_t)total;
    s->remaining = (int64_t)(total - done);
    return s;
}

uint64_t block_mig_stream_bytes(void)
{
    return atomic_load(&blk_state.stream_bytes);
}

void block_mig_stats_reset(void)
{
    atomic_store(&blk_state.stream_bytes, 0);
}

static void count_stream_bytes(BlkMigState *s, MigStream *f, uint64_t before)
{
    atomic_store(&s->stream_bytes, atomic_load(&s->stream_bytes) + mig_stream_bytes_written(f) - before);
}

static bool block_is_active(void *opaque)
{
    return migrate_cap(MIGRATION_CAPABILITY_BLOCK);
}

static void devices_free(BlkMigState *s)
{
    atomic_store(&s->active, false);
    if (s->devices) {
        for (guint i = 0; i < s->devices->len; i++) {
            BlkMigDevice *d = s->devices->pdata[i];
            if (d->dirty) {
                blk_dirty_bitmap_release(d->blk, d->dirty);
            }
            g_free(d);
        }
        g_ptr_array_free(s->devices, true);
        s->devices = NULL;
    }
    g_free(s->buf);
    s->buf = NULL;
}

static bool add_device(BlkMigState *s, BlockBackend *blk, Error **errp)
{
    const char *name = blk_name(blk);
    int64_t size = blk_getlength(blk);
    if (size < 0) {
        error_setg_errno(errp, (int)-size, "Error getting length of block device %s", name);
        return false;
    }
    if (size == 0) {
        return true;        /* nothing to copy */
    }
    if (strlen(name) == 0 || strlen(name) > 255) {
        error_setg(errp, "Block device name '%.32s' cannot be migrated (1 to 255 bytes)", name);
        return false;
    }
    BlkMigDevice *d = g_new0(BlkMigDevice, 1);
    d->blk = blk;
    d->size = size;
    d->chunks = ((uint64_t)size + BLK_MIG_CHUNK_SIZE - 1) / BLK_MIG_CHUNK_SIZE;
    g_ptr_array_add(s->devices, d);
    d->dirty = blk_dirty_bitmap_create(blk, BLK_MIG_CHUNK_SIZE, NULL, errp);
    if (!d->dirty) {
        return false;
    }
    s->total_sectors += ((uint64_t)size + BDRV_SECTOR_SIZE - 1) / BDRV_SECTOR_SIZE;
    atomic_store(&s->total_bytes, atomic_load(&s->total_bytes) + (uint64_t)size);
    return true;
}

static bool block_save_setup(MigStream *f, void *opaque, Error **errp)
{
    BlkMigState *s = opaque;
    assert(bql_locked());
    devices_free(s);
    s->devices = g_ptr_array_new();
    s->bulk_done = false;
    s->prev_progress = -1;
    s->total_sectors = 0;
    atomic_store(&s->total_bytes, 0);
    atomic_store(&s->transferred_bytes, 0);
    atomic_store(&s->stream_bytes, 8);          /* the EOS below (migration_reset zeroed it) */
    for (BlockBackend *blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        if (!blk_is_read_only(blk) && !add_device(s, blk, errp)) {
            return false;
        }
    }
    s->buf = g_malloc(BLK_MIG_CHUNK_SIZE);
    atomic_store(&s->active, s->devices->len > 0);
    block_mig_put_eos(f);
    return mig_stream_get_error(f, errp);
}

/* Read chunk `index` of d (its dirty bit cleared first) and send it. */
static bool send_chunk(MigStream *f, BlkMigState *s, BlkMigDevice *d, uint64_t index, Error **errp)
{
    uint64_t offset = index * BLK_MIG_CHUNK_SIZE;
    size_t len = (size_t)MIN((uint64_t)BLK_MIG_CHUNK_SIZE, (uint64_t)d->size - offset);
    dirty_bitmap_reset(d->dirty, (int64_t)offset, BLK_MIG_CHUNK_SIZE);
    int ret = blk_pread(d->blk, (int64_t)offset, s->buf, len);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Error reading %zu bytes at 0x%" PRIx64 " of block device %s",
                         len, offset, blk_name(d->blk));
        return false;
    }
    memset(s->buf + len, 0, BLK_MIG_CHUNK_SIZE - len);
    bool zero = migrate_cap(MIGRATION_CAPABILITY_ZERO_BLOCKS) &&
                block_mig_buffer_is_zero(s->buf, BLK_MIG_CHUNK_SIZE);
    block_mig_put_chunk(f, blk_name(d->blk), offset, zero ? NULL : s->buf);
    return true;
}

static void update_progress(MigStream *f, BlkMigState *s)
{
    uint64_t sum = 0;
    for (guint i = 0; i < s->devices->len; i++) {
        sum += ((BlkMigDevice *)s->devices->pdata[i])->completed_sectors;
    }
    atomic_store(&s->transferred_bytes, sum * BDRV_SECTOR_SIZE);
    int progress = s->total_sectors ? (int)(sum * 100 / s->total_sectors) : 100;
    if (progress != s->prev_progress) {
        s->prev_progress = progress;
        block_mig_put_progress(f, (unsigned)progress);
    }
}

/* The next bulk chunk: 1 sent, 0 the bulk phase is over, -1 error. */
static int send_bulk(MigStream *f, BlkMigState *s, Error **errp)
{
    for (guint i = 0; i < s->devices->len; i++) {
        BlkMigDevice *d = s->devices->pdata[i];
        if (d->bulk_sent == d->chunks) {
            continue;
        }
        /* last chunk first, then 0, 1, ... */
        uint64_t index = d->bulk_sent == 0 ? d->chunks - 1 : d->bulk_sent - 1;
        d->completed_sectors = d->bulk_sent * BLK_MIG_CHUNK_SECTORS;
        d->bulk_sent++;
        update_progress(f, s);
        return send_chunk(f, s, d, index, errp) ? 1 : -1;
    }
    s->bulk_done = true;
    return 0;
}

/* The next dirty chunk of any drive: 1 sent, 0 none dirty, -1 error. */
static int send_dirty(MigStream *f, BlkMigState *s, Error **errp)
{
    for (guint i = 0; i < s->devices->len; i++) {
        BlkMigDevice *d = s->devices->pdata[i];
        int64_t off = dirty_bitmap_next_dirty(d->dirty, d->dirty_cursor);
        if (off < 0 && d->dirty_cursor > 0) {
            off = dirty_bitmap_next_dirty(d->dirty, 0);       /* wrap around */
        }
        if (off < 0 || off >= d->size) {
            d->dirty_cursor = 0;
            continue;
        }
        uint64_t index = (uint64_t)off / BLK_MIG_CHUNK_SIZE;
        d->dirty_cursor = (int64_t)((index + 1) * BLK_MIG_CHUNK_SIZE);
        return send_chunk(f, s, d, index, errp) ? 1 : -1;
    }
    return 0;
}

static int block_save_iterate(MigStream *f, void *opaque, Error **errp)
{
    BlkMigState *s = opaque;
    int64_t deadline = now_ns() + ITERATE_MAX_NS;
    uint64_t before = mig_stream_bytes_written(f);
    /* At most half of a rate-limit slot, so RAM gets the rest: a guest that
     * keeps re-dirtying chunks would otherwise take the whole budget for
     * its disk, every slot, and RAM's first pass would never end. */
    uint64_t limit = mig_stream_get_rate_limit(f);
    uint64_t share = limit ? MAX(limit / (1000000000LL / MIG_STREAM_RATE_SLOT_NS) / 2, BLK_MIG_CHUNK_SIZE)
                           : UINT64_MAX;
    while (!mig_stream_rate_limit_exceeded(f) && now_ns() < deadline &&
           mig_stream_bytes_written(f) - before < share) {
        int r = s->bulk_done ? send_dirty(f, s, errp) : send_bulk(f, s, errp);
        if (r < 0) {
            return -1;
        }
        if (r == 0 && s->bulk_done) {
            break;      /* (a bulk phase that just ended goes on with dirty chunks) */
        }
    }
    block_mig_put_eos(f);
    count_stream_bytes(s, f, before);
    if (!mig_stream_get_error(f, errp)) {
        return -1;
    }
    return 1;       /* as QEMU: RAM gets its turn after every block round */
}

static void block_state_pending(void *opaque, uint64_t *must_precopy)
{
    BlkMigState *s = opaque;
    for (guint i = 0; s->devices && i < s->devices->len; i++) {
        BlkMigDevice *d = s->devices->pdata[i];
        *must_precopy += dirty_bitmap_count(d->dirty) + (d->chunks - d->bulk_sent) * BLK_MIG_CHUNK_SIZE;
    }
}

static bool block_save_complete(MigStream *f, void *opaque, Error **errp)
{
    BlkMigState *s = opaque;
    assert(bql_locked());
    uint64_t before = mig_stream_bytes_written(f);
    if (!vmstate_test_omitted("block/final-pass", 0)) {
        int r;
        while ((r = send_bulk(f, s, errp)) > 0) {
            /* what the bulk phase has left */
        }
        if (r < 0) {
            return false;
        }
        for (guint i = 0; i < s->devices->len; i++) {
            BlkMigDevice *d = s->devices->pdata[i];
            d->dirty_cursor = 0;
        }
        while ((r = send_dirty(f, s, errp)) > 0) {
            /* every chunk still dirty: the guest is stopped, none becomes dirty */
        }
        if (r < 0) {
            return false;
        }
    }
    block_mig_put_progress(f, 100);
    block_mig_put_eos(f);
    count_stream_bytes(s, f, before);
    atomic_store(&s->active, false);     /* the completed reply has no "disk" */
    return mig_stream_get_error(f, errp);
}

static void block_save_cleanup(void *opaque)
{
    assert(bql_locked());
    devices_free(opaque);
}

static bool block_load_state(MigStream *f, void *opaque, int version_id, Error **errp)
{
    return block_mig_load(f, version_id, errp);
}

static const SaveVMHandlers block_handlers = {
    .is_active = block_is_active,
    .save_setup = block_save_setup,
    .state_pending = block_state_pending,
    .save_live_iterate = block_save_iterate,
    .save_live_complete_precopy = block_save_complete,
    .save_cleanup = block_save_cleanup,
    .load_state = block_load_state,
};

bool block_mig_init(Error **errp)
{
    return register_savevm_live("block", 0, BLK_MIG_VERSION, &block_handlers, &blk_state, errp);
}
