/*
 * HMP `info block [-n] [-v] [device]` in QEMU 7.2's text, from query-block:
 *
 *   d0 (#block157): x.img (raw, read-only)
 *       Attached to:      /machine/peripheral/vd
 *       I/O status:       nospace                     (only when not ok)
 *       Removable device: not locked, tray closed     (no device attached)
 *       Cache mode:       writeback, direct, ignore flushes
 *
 * Drives are separated by a blank line. -v adds the image ("Images:" and
 * `qemu-img info`'s lines); -n lists the block nodes instead, without device
 * lines: each drive's raw node and the file node under it.
 *
 * `info blockstats`: QEMU's one line of counters per drive.
 */
#include <string.h>
#include <glib.h>
#include "hmp-int.h"
#include "qapi-commands.h"

/* A byte count as QEMU writes sizes for people: three significant digits
 * and the largest binary unit that keeps the number below 1000. */
static char *human_size(uint64_t bytes)
{
    static const char *const units[] = { "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei" };
    int i = 0;

    while (i < 6 && (double)bytes >= 1000.0 * (double)(1ULL << (10 * i))) {
        i++;
    }
    return g_strdup_printf("%0.3g %sB", (double)bytes / (double)(1ULL << (10 * i)), units[i]);
}

/* format: the node's driver ("raw", or "file" for the node below it). */
static void format_image(GString *out, const ImageInfo *image, const char *format)
{
    g_autofree char *vsize = human_size(image->virtual_size);

    g_string_append_printf(out, "\nImages:\nimage: %s\nfile format: %s\nvirtual size: %s (%" PRId64 " bytes)\n",
                           image->filename, format, vsize, image->virtual_size);
    if (image->has_actual_size) {
        g_autofree char *dsize = human_size(image->actual_size);
        g_string_append_printf(out, "disk size: %s\n", dsize);
    }
}

/* One drive (info != NULL) or one node (info == NULL, name given). */
static void format_block(GString *out, const BlockInfo *info, const char *node, const BlockDeviceInfo *ins,
                         const char *drv, bool verbose)
{
    if (info) {
        g_string_append(out, info->device);
        if (ins && ins->node_name) {
            g_string_append_printf(out, " (%s)", ins->node_name);
        }
    } else {
        g_string_append(out, node);
    }
    if (ins) {
        g_string_append_printf(out, ": %s (%s%s%s)\n", ins->file, drv, ins->ro ? ", read-only" : "",
                               ins->encrypted ? ", encrypted" : "");
    } else {
        g_string_append(out, ": [not inserted]\n");
    }
    if (info) {
        if (info->qdev) {
            g_string_append_printf(out, "    Attached to:      %s\n", info->qdev);
        }
        if (info->has_io_status && info->io_status != BLOCK_DEVICE_IO_STATUS_OK) {
            g_string_append_printf(out, "    I/O status:       %s\n", BlockDeviceIoStatus_str(info->io_status));
        }
        if (info->removable) {
            g_string_append_printf(out, "    Removable device: %slocked, tray %s\n", info->locked ? "" : "not ",
                                   info->has_tray_open && info->tray_open ? "open" : "closed");
        }
    }
    if (!ins) {
        return;
    }
    /* writethrough is the drive's, not its nodes': a node always says writeback (QEMU). */
    g_string_append_printf(out, "    Cache mode:       %s%s%s\n",
                           ins->cache->writeback || !info ? "writeback" : "writethrough",
                           ins->cache->direct ? ", direct" : "", ins->cache->no_flush ? ", ignore flushes" : "");
    if (verbose && ins->image) {
        format_image(out, ins->image, drv);
    }
}

/* The file node under raw node `raw`, from query-blockstats' node list. */
static const char *file_node_of(const BlockStatsList *nodes, const char *raw)
{
    for (; nodes; nodes = nodes->next) {
        const BlockStats *s = nodes->value;
        if (s->node_name && !strcmp(s->node_name, raw) && s->parent) {
            return s->parent->node_name;
        }
    }
    return NULL;
}

/* -n: the nodes as QEMU lists them, newest drive first, each raw node then
 * the file node under it; a blank line before each node printed but the
 * first of the list (even when that one was filtered out). */
static void format_nodes(GString *out, BlockInfoList *list, const char *device, bool verbose)
{
    const q_obj_query_blockstats_arg arg = { .has_query_nodes = true, .query_nodes = true };
    BlockStatsList *stats = qmp_query_blockstats(&arg, NULL);
    g_autoptr(GPtrArray) drives = g_ptr_array_new();
    bool first = true;

    for (BlockInfoList *l = list; l; l = l->next) {
        if (l->value->inserted) {
            g_ptr_array_add(drives, l->value->inserted);
        }
    }
    for (guint i = drives->len; i-- > 0;) {
        const BlockDeviceInfo *ins = drives->pdata[i];
        const char *names[2] = { ins->node_name, file_node_of(stats, ins->node_name) };
        for (int n = 0; n < 2; n++) {
            if (!names[n]) {
                continue;
            }
            if (!device || !strcmp(device, names[n])) {
                g_string_append(out, first ? "" : "\n");
                format_block(out, NULL, names[n], ins, n ? "file" : "raw", verbose);
            }
            first = false;
        }
    }
    qapi_free_BlockStatsList(stats);
}

void hmp_info_block(Monitor *mon, const HmpArgs *args)
{
    const char *device = hmp_args_str(args, "device");
    bool verbose = hmp_args_bool(args, "verbose"), nodes = hmp_args_bool(args, "nodes");
    Error *err = NULL;
    BlockInfoList *list = qmp_query_block(&err);
    g_autoptr(GString) out = g_string_new(NULL);

    if (err) {
        hmp_handle_error(mon, err);
        return;
    }
    for (BlockInfoList *l = list; l && !nodes; l = l->next) {
        if (device && strcmp(device, l->value->device)) {
            continue;
        }
        if (l != list) {
            g_string_append(out, "\n");     /* as QEMU: even when the first was filtered out */
        }
        format_block(out, l->value, NULL, l->value->inserted, "raw", verbose);
    }
    if (nodes) {
        format_nodes(out, list, device, verbose);
    }
    monitor_puts(mon, out->str);
    qapi_free_BlockInfoList(list);
}

/* `info blockstats`: one line of query-blockstats' counters per drive. */
void hmp_info_blockstats(Monitor *mon, const HmpArgs *args)
{
    const q_obj_query_blockstats_arg arg = { 0 };
    Error *err = NULL;
    BlockStatsList *list = qmp_query_blockstats(&arg, &err);
    g_autoptr(GString) out = g_string_new(NULL);

    if (err) {
        hmp_handle_error(mon, err);
        return;
    }
    for (BlockStatsList *l = list; l; l = l->next) {
        const BlockDeviceStats *s = l->value->stats;
        g_string_append_printf(out, "%s: rd_bytes=%" PRId64 " wr_bytes=%" PRId64 " rd_operations=%" PRId64
                               " wr_operations=%" PRId64 " flush_operations=%" PRId64 " wr_total_time_ns=%" PRId64
                               " rd_total_time_ns=%" PRId64 " flush_total_time_ns=%" PRId64 " rd_merged=%" PRId64
                               " wr_merged=%" PRId64 " idle_time_ns=%" PRId64 "\n",
                               l->value->device ? l->value->device : "", s->rd_bytes, s->wr_bytes,
                               s->rd_operations, s->wr_operations, s->flush_operations, s->wr_total_time_ns,
                               s->rd_total_time_ns, s->flush_total_time_ns, s->rd_merged, s->wr_merged,
                               s->idle_time_ns);
    }
    monitor_puts(mon, out->str);
    qapi_free_BlockStatsList(list);
}
