/*
 * HMP `calc_dirty_rate [-r] [-b] second [sample_pages_per_GB]` and
 * `info dirty_rate`: calc-dirty-rate / query-dirty-rate with QEMU 7.2's text:
 *
 *   Status: measured
 *   Start Time: 16017 (ms)        (seconds in fact, as QEMU prints it)
 *   Sample Pages: 512 (per GB)
 *   Period: 2 (sec)
 *   Mode: page-sampling
 *   Dirty rate: 243 (MB/s)        or "(not ready)" until measured
 *   vcpu[0], Dirty rate: 243 (MB/s)   (dirty-ring mode: one line per vCPU)
 */
#include <inttypes.h>

#include "hmp-int.h"
#include "qapi-commands.h"

void hmp_calc_dirty_rate(Monitor *mon, const HmpArgs *args)
{
    bool ring = hmp_args_bool(args, "dirty_ring");
    bool bitmap = hmp_args_bool(args, "dirty_bitmap");
    Error *err = NULL;
    q_obj_calc_dirty_rate_arg arg = {
        .calc_time = hmp_args_int(args, "second"),
        .has_sample_pages = hmp_args_has(args, "sample_pages_per_GB"),
        .has_mode = true,
        .mode = ring ? DIRTY_RATE_MEASURE_MODE_DIRTY_RING
                     : bitmap ? DIRTY_RATE_MEASURE_MODE_DIRTY_BITMAP : DIRTY_RATE_MEASURE_MODE_PAGE_SAMPLING,
    };

    if (arg.has_sample_pages) {
        arg.sample_pages = hmp_args_int(args, "sample_pages_per_GB");
    }
    if (ring && bitmap) {
        monitor_puts(mon, "Either dirty ring or dirty bitmap can be specified!\n");
        return;
    }
    if (arg.calc_time <= 0) {
        monitor_puts(mon, "Incorrect period length specified!\n");
        return;
    }
    if (!qmp_calc_dirty_rate(&arg, &err)) {
        hmp_handle_error(mon, err);
        return;
    }
    g_autofree char *text = g_strdup_printf("Starting dirty rate measurement with period %" PRId64 " seconds\n"
                                            "[Please use 'info dirty_rate' to check results]\n", arg.calc_time);
    monitor_puts(mon, text);
}

void hmp_info_dirty_rate(Monitor *mon, const HmpArgs *args)
{
    (void)args;
    DirtyRateInfo *info = qmp_query_dirty_rate(NULL);
    g_autoptr(GString) out = g_string_new(NULL);

    g_string_append_printf(out, "Status: %s\n", DirtyRateStatus_str(info->status));
    g_string_append_printf(out, "Start Time: %" PRId64 " (ms)\n", info->start_time);
    g_string_append_printf(out, "Sample Pages: %" PRIu64 " (per GB)\n", info->sample_pages);
    g_string_append_printf(out, "Period: %" PRId64 " (sec)\n", info->calc_time);
    g_string_append_printf(out, "Mode: %s\n", DirtyRateMeasureMode_str(info->mode));
    if (info->status == DIRTY_RATE_STATUS_MEASURED && info->has_dirty_rate) {
        g_string_append_printf(out, "Dirty rate: %" PRId64 " (MB/s)\n", info->dirty_rate);
        for (DirtyRateVcpuList *v = info->vcpu_dirty_rate; v; v = v->next) {
            g_string_append_printf(out, "vcpu[%" PRId64 "], Dirty rate: %" PRId64 " (MB/s)\n", v->value->id,
                                   v->value->dirty_rate);
        }
    } else {
        g_string_append(out, "Dirty rate: (not ready)\n");
    }
    monitor_puts(mon, out->str);
    qapi_free_DirtyRateInfo(info);
}
