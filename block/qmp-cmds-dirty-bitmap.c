/*
 * QMP block-dirty-bitmap-add/-remove/-clear/-enable/-disable/-merge, with
 * QEMU 7.2's arguments, checks (in its order) and error texts. A drive is
 * named by its -drive id or its node name (query-block's "#blockNNN"), as
 * QEMU accepts both. Every command runs in the main thread with the BQL.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <glib.h>

#include "block.h"
#include "block-int.h"
#include "vm.h"
#include "qapi-commands.h"

/* QEMU 7.2's default for an image without clusters (raw), measured. */
#define DEFAULT_GRANULARITY 65536u
/* QEMU's BDRV_BITMAP_MAX_NAME_SIZE. */
#define MAX_BITMAP_NAME 1023u

/* By drive name first, then by node name. */
static BlockBackend *lookup(const char *node)
{
    BlockBackend *blk = blk_by_name(node);
    for (BlockBackend *b = blk_next(NULL); b && !blk; b = blk_next(b)) {
        if (b->node_name && strcmp(b->node_name, node) == 0) {
            blk = b;
        }
    }
    return blk;
}

static BlockBackend *find_node(const char *node, Error **errp)
{
    BlockBackend *blk = lookup(node);
    if (!blk) {
        error_setg(errp, "Node '%s' not found", node);
    }
    return blk;
}

static BdrvDirtyBitmap *find_bitmap(const char *node, const char *name, Error **errp)
{
    BlockBackend *blk = find_node(node, errp);
    if (!blk) {
        return NULL;
    }
    BdrvDirtyBitmap *bm = blk_dirty_bitmap_find(blk, name);
    if (!bm) {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
    }
    return bm;
}

/* A busy bitmap (being migrated) may not be changed or read by a command. */
static bool check_not_busy(const BdrvDirtyBitmap *bm, Error **errp)
{
    if (dirty_bitmap_busy(bm)) {
        error_setg(errp, "Bitmap '%s' is currently in use by another operation and cannot be used",
                   dirty_bitmap_name(bm));
        return false;
    }
    return true;
}

bool qmp_block_dirty_bitmap_add(const BlockDirtyBitmapAdd *arg, Error **errp)
{
    assert(bql_locked());
    if (!arg->name[0]) {
        error_setg(errp, "Bitmap name cannot be empty");
        return false;
    }
    BlockBackend *blk = lookup(arg->node);
    if (!blk) {
        error_setg(errp, "Cannot find device='%s' nor node-name='%s'", arg->node, arg->node);
        return false;
    }
    uint32_t granularity = DEFAULT_GRANULARITY;
    if (arg->has_granularity) {
        granularity = arg->granularity;
        if (granularity < BDRV_SECTOR_SIZE || (granularity & (granularity - 1))) {
            error_setg(errp, "Granularity must be power of 2 and at least 512");
            return false;
        }
    }
    if (arg->has_persistent && arg->persistent) {
        /* raw images have nowhere to store a bitmap */
        error_setg_errno(errp, ENOTSUP, "Can't store persistent bitmaps to %s", blk_name(blk));
        return false;
    }
    if (blk_dirty_bitmap_find(blk, arg->name)) {
        error_setg(errp, "Bitmap already exists: %s", arg->name);
        return false;
    }
    if (strlen(arg->name) > MAX_BITMAP_NAME) {
        error_setg(errp, "Bitmap name too long: %s", arg->name);
        return false;
    }
    BdrvDirtyBitmap *bm = blk_dirty_bitmap_create(blk, granularity, arg->name, errp);
    if (!bm) {
        return false;
    }
    if (arg->has_disabled && arg->disabled) {
        dirty_bitmap_set_enabled(bm, false);
    }
    return true;
}

bool qmp_block_dirty_bitmap_remove(const BlockDirtyBitmap *arg, Error **errp)
{
    assert(bql_locked());
    BdrvDirtyBitmap *bm = find_bitmap(arg->node, arg->name, errp);
    if (!bm || !check_not_busy(bm, errp)) {
        return false;
    }
    blk_dirty_bitmap_release(lookup(arg->node), bm);
    return true;
}

bool qmp_block_dirty_bitmap_clear(const BlockDirtyBitmap *arg, Error **errp)
{
    assert(bql_locked());
    BdrvDirtyBitmap *bm = find_bitmap(arg->node, arg->name, errp);
    if (!bm || !check_not_busy(bm, errp)) {
        return false;
    }
    dirty_bitmap_clear_all(bm);
    return true;
}

static bool set_enabled(const BlockDirtyBitmap *arg, bool enabled, Error **errp)
{
    assert(bql_locked());
    BdrvDirtyBitmap *bm = find_bitmap(arg->node, arg->name, errp);
    if (!bm || !check_not_busy(bm, errp)) {
        return false;
    }
    dirty_bitmap_set_enabled(bm, enabled);
    return true;
}

bool qmp_block_dirty_bitmap_enable(const BlockDirtyBitmap *arg, Error **errp)
{
    return set_enabled(arg, true, errp);
}

bool qmp_block_dirty_bitmap_disable(const BlockDirtyBitmap *arg, Error **errp)
{
    return set_enabled(arg, false, errp);
}

/* Every source is found and checked before the target changes, so a
 * failure leaves it as it was (QEMU merges into a scratch copy first). An
 * empty list merges nothing (QEMU 7.2 aborts on it). */
bool qmp_block_dirty_bitmap_merge(const BlockDirtyBitmapMerge *arg, Error **errp)
{
    assert(bql_locked());
    BdrvDirtyBitmap *dst = find_bitmap(arg->node, arg->target, errp);
    if (!dst || !check_not_busy(dst, errp)) {
        return false;
    }
    g_autoptr(GPtrArray) srcs = g_ptr_array_new();
    for (const BlockDirtyBitmapOrStrList *l = arg->bitmaps; l; l = l->next) {
        const BlockDirtyBitmapOrStr *s = l->value;
        BdrvDirtyBitmap *src;
        if (s->type == QTYPE_QSTRING) {
            src = blk_dirty_bitmap_find(lookup(arg->node), s->u.local);
            if (!src) {
                error_setg(errp, "Dirty bitmap '%s' not found", s->u.local);
                return false;
            }
        } else {
            src = find_bitmap(s->u.external.node, s->u.external.name, errp);
            if (!src) {
                return false;
            }
        }
        if (!check_not_busy(src, errp)) {
            return false;
        }
        g_ptr_array_add(srcs, src);
    }
    for (guint i = 0; i < srcs->len; i++) {
        if (!dirty_bitmap_merge(dst, srcs->pdata[i], errp)) {
            return false;
        }
    }
    return true;
}
