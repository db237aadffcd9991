/*
 * query-block: every drive in QEMU 7.2's BlockInfo shape.
 *
 * As QEMU: a drive no device uses is "removable" (its media could be
 * changed) with the tray closed and no tray_open member; a drive a device
 * uses names it in "qdev" and reports its "io-status". Throttling, zero
 * detection, encryption and backing files do not exist in migvm: their
 * members are the values QEMU reports when they are off.
 */
#include <sys/stat.h>
#include <glib.h>
#include "block-int.h"
#include "qapi-commands.h"
#include "vm.h"

static BlockDirtyInfoList *dirty_bitmaps_info(BlockBackend *blk)
{
    BlockDirtyInfoList *head = NULL;

    for (BdrvDirtyBitmap *bm = blk_dirty_bitmap_next(blk, NULL); bm; bm = blk_dirty_bitmap_next(blk, bm)) {
        if (!dirty_bitmap_name(bm)) {
            continue;                   /* block migration's own */
        }
        BlockDirtyInfo *info = g_new0(BlockDirtyInfo, 1);
        info->name = g_strdup(dirty_bitmap_name(bm));
        info->granularity = dirty_bitmap_granularity(bm);
        /* QEMU 7.2 counts whole granules, also the last one that sticks out
         * beyond the end of the drive */
        info->count = (dirty_bitmap_count(bm) + info->granularity - 1) / info->granularity *
                      info->granularity;
        info->recording = dirty_bitmap_enabled(bm);
        info->busy = dirty_bitmap_busy(bm);
        info->persistent = dirty_bitmap_persistent(bm);
        /* newest first, as QEMU 7.2 lists them */
        BlockDirtyInfoList *node = g_new0(BlockDirtyInfoList, 1);
        node->value = info;
        node->next = head;
        head = node;
    }
    return head;
}

static BlockDeviceInfo *inserted_info(BlockBackend *blk)
{
    BlockDeviceInfo *d = g_new0(BlockDeviceInfo, 1);
    struct stat st;

    d->file = g_strdup(blk->filename);
    d->node_name = g_strdup(blk->node_name);
    d->ro = blk->read_only;
    d->drv = g_strdup("raw");
    d->detect_zeroes = BLOCKDEV_DETECT_ZEROES_OPTIONS_OFF;
    d->image = g_new0(ImageInfo, 1);
    d->image->filename = g_strdup(blk->filename);
    d->image->format = g_strdup("raw");
    d->image->has_dirty_flag = true;
    d->image->dirty_flag = false;
    if (fstat(blk->fd, &st) == 0) {
        d->image->has_actual_size = true;
        d->image->actual_size = (int64_t)st.st_blocks * 512;
    }
    d->image->virtual_size = blk->size;
    d->cache = g_new0(BlockdevCacheInfo, 1);
    d->cache->writeback = blk->writeback;
    d->cache->direct = blk->direct;
    d->cache->no_flush = blk->no_flush;
    d->dirty_bitmaps = dirty_bitmaps_info(blk);
    return d;
}

BlockInfoList *qmp_query_block(Error **errp)
{
    assert(bql_locked());
    BlockInfoList *head = NULL, **tail = &head;

    for (BlockBackend *blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        BlockInfo *info = g_new0(BlockInfo, 1);
        info->device = g_strdup(blk->name);
        info->qdev = g_strdup(blk->attached_dev);
        info->type = g_strdup("unknown");
        info->removable = blk->attached_dev == NULL;
        info->locked = false;
        info->inserted = inserted_info(blk);
        if (blk->attached_dev) {
            info->has_io_status = true;
            info->io_status = blk->iostatus_nospace ? BLOCK_DEVICE_IO_STATUS_NOSPACE
                            : blk->iostatus_failed ? BLOCK_DEVICE_IO_STATUS_FAILED : BLOCK_DEVICE_IO_STATUS_OK;
        }
        *tail = g_new0(BlockInfoList, 1);
        (*tail)->value = info;
        tail = &(*tail)->next;
    }
    return head;
}

/* ---- query-blockstats ----------------------------------------------------------------- */

static BlockDeviceStats *node_stats(const BlockBackend *blk)
{
    BlockDeviceStats *s = g_new0(BlockDeviceStats, 1);

    s->wr_highest_offset = __atomic_load_n(&blk->wr_highest_offset, __ATOMIC_RELAXED);
    return s;
}

/* The file node under a drive's raw node: no counters of its own, as QEMU's. */
static BlockStats *file_node_stats(const BlockBackend *blk)
{
    BlockStats *f = g_new0(BlockStats, 1);

    f->node_name = g_strdup(blk->file_node_name);
    f->stats = node_stats(blk);
    f->driver_specific = g_new0(BlockStatsSpecific, 1);
    f->driver_specific->driver = BLOCKDEV_DRIVER_FILE;
    return f;
}

/* The raw node; with its drive's device-level counters when `drive`. */
static BlockStats *raw_node_stats(const BlockBackend *blk, bool drive)
{
    BlockStats *s = g_new0(BlockStats, 1);
    const BlockAcct *a = &blk->acct;

    s->node_name = g_strdup(blk->node_name);
    s->stats = node_stats(blk);
    s->parent = file_node_stats(blk);
    if (!drive) {
        return s;
    }
    s->device = g_strdup(blk->name);
    s->qdev = g_strdup(blk->attached_dev);
    s->stats->rd_bytes = a->bytes[0];
    s->stats->wr_bytes = a->bytes[1];
    s->stats->rd_operations = a->ops[0];
    s->stats->wr_operations = a->ops[1];
    s->stats->flush_operations = a->flush_ops;
    s->stats->rd_total_time_ns = a->total_ns[0];
    s->stats->wr_total_time_ns = a->total_ns[1];
    s->stats->flush_total_time_ns = a->flush_ns;
    s->stats->failed_rd_operations = a->failed[0];
    s->stats->failed_wr_operations = a->failed[1];
    s->stats->failed_flush_operations = a->flush_failed;
    s->stats->account_invalid = s->stats->account_failed = true;
    if (a->last_done_ns) {
        s->stats->has_idle_time_ns = true;
        s->stats->idle_time_ns = blk_clock_ns() - a->last_done_ns;
    }
    return s;
}

static void stats_append(BlockStatsList ***tail, BlockStats *s)
{
    **tail = g_new0(BlockStatsList, 1);
    (**tail)->value = s;
    *tail = &(**tail)->next;
}

/* query-nodes: every node, each file node before the raw node above it (QEMU's order). */
BlockStatsList *qmp_query_blockstats(const q_obj_query_blockstats_arg *arg, Error **errp)
{
    assert(bql_locked());
    BlockStatsList *head = NULL, **tail = &head;
    bool nodes = arg->has_query_nodes && arg->query_nodes;

    for (BlockBackend *blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        if (nodes) {
            stats_append(&tail, file_node_stats(blk));
        }
        stats_append(&tail, raw_node_stats(blk, !nodes));
    }
    return head;
}
