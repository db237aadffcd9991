/*
 * HMP `set_vcpu_dirty_limit dirty_rate [cpu_index]`,
 * `cancel_vcpu_dirty_limit [cpu_index]` and `info vcpu_dirty_limit`, with
 * QEMU 7.2's text:
 *
 *   vcpu[0], limit rate 50 (MB/s), current rate 12 (MB/s)
 *   Dirty page limit not enabled!          (no vCPU has a limit)
 */
#include <inttypes.h>

#include "dirtylimit.h"
#include "hmp-int.h"
#include "qapi-commands.h"

static const char hint[] = "[Please use 'info vcpu_dirty_limit' to query dirty limit for virtual CPU]\n";

void hmp_set_vcpu_dirty_limit(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    q_obj_set_vcpu_dirty_limit_arg arg = {
        .dirty_rate = (uint64_t)hmp_args_int(args, "dirty_rate"),
        /* As QEMU 7.2: a cpu_index of -1 is every vCPU. */
        .has_cpu_index = hmp_args_has(args, "cpu_index") && hmp_args_int(args, "cpu_index") != -1,
    };

    if (arg.has_cpu_index) {
        arg.cpu_index = hmp_args_int(args, "cpu_index");
    }
    if (!qmp_set_vcpu_dirty_limit(&arg, &err)) {
        hmp_handle_error(mon, err);
        return;
    }
    monitor_puts(mon, hint);
}

void hmp_cancel_vcpu_dirty_limit(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    q_obj_cancel_vcpu_dirty_limit_arg arg = {
        .has_cpu_index = hmp_args_has(args, "cpu_index") && hmp_args_int(args, "cpu_index") != -1,
    };

    if (arg.has_cpu_index) {
        arg.cpu_index = hmp_args_int(args, "cpu_index");
    }
    if (!qmp_cancel_vcpu_dirty_limit(&arg, &err)) {
        hmp_handle_error(mon, err);
        return;
    }
    monitor_puts(mon, hint);
}

void hmp_info_vcpu_dirty_limit(Monitor *mon, const HmpArgs *args)
{
    (void)args;
    if (!dirty_limit_in_service()) {
        monitor_puts(mon, "Dirty page limit not enabled!\n");
        return;
    }
    DirtyLimitInfoList *list = qmp_query_vcpu_dirty_limit(NULL);
    g_autoptr(GString) out = g_string_new(NULL);

    for (DirtyLimitInfoList *l = list; l; l = l->next) {
        /* QEMU prints the unsigned rates as signed numbers. */
        g_string_append_printf(out, "vcpu[%" PRId64 "], limit rate %" PRId64 " (MB/s), current rate %" PRId64
                               " (MB/s)\n", l->value->cpu_index, (int64_t)l->value->limit_rate,
                               (int64_t)l->value->current_rate);
    }
    monitor_puts(mon, out->str);
    qapi_free_DirtyLimitInfoList(list);
}
