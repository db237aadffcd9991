/*
 * HMP `info cpus`: query-cpus-fast as QEMU 7.2 prints it, one line per vCPU
 * ("* CPU #0: thread_id=TID", the '*' on the monitor's current CPU), nothing
 * on a board without vCPUs.
 *
 * HMP `info registers [-a|vcpu]`: the vCPU registers as QEMU 7.2 prints
 * them, each vCPU under a "\nCPU#n\n" header (7.2 prints it with and
 * without -a). Without arguments: the monitor's current CPU (CPU 0, or
 * human-monitor-command's cpu-index).
 *
 * Registers can only be read with every vCPU out of guest code. A running
 * VM is paused for the read and let go again right after, without a run
 * state change (no STOP/RESUME events, guest clocks keep going); a paused
 * VM stays paused.
 */
#include <inttypes.h>
#include "hmp-int.h"
#include "accel.h"
#include "cpus.h"
#include "machine.h"
#include "qapi-commands.h"
#include "vm.h"

void hmp_info_cpus(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    CpuInfoFastList *list = qmp_query_cpus_fast(&err);

    if (err) {
        hmp_handle_error(mon, err);
        return;
    }
    for (CpuInfoFastList *l = list; l; l = l->next) {
        monitor_printf(mon, "%c CPU #%" PRId64 ": thread_id=%" PRId64 "\n",
                       l->value->cpu_index == mon->cpu_index ? '*' : ' ', l->value->cpu_index,
                       l->value->thread_id);
    }
    qapi_free_CpuInfoFastList(list);
}

/* Append the registers of vCPUs [first, last] to out, each with its header. */
static bool dump_cpus(int first, int last, GString *out, Error **errp)
{
    for (int i = first; i <= last; i++) {
        g_string_append_printf(out, "\nCPU#%d\n", i);
        if (!accel_dump_registers(i, out, errp)) {
            return false;
        }
    }
    return true;
}

void hmp_info_registers(Monitor *mon, const HmpArgs *args)
{
    const AccelOps *ops = accel_current();
    int n = cpus_count();
    int first = mon->cpu_index, last = mon->cpu_index;
    Error *err = NULL;
    g_autoptr(GString) out = g_string_new(NULL);

    if (hmp_args_bool(args, "cpustate_all")) {
        if (n == 0) {
            return;                     /* QEMU 7.2 prints nothing */
        }
        first = 0;
        last = n - 1;
    } else if (hmp_args_has(args, "vcpu")) {
        first = last = (int)hmp_args_int(args, "vcpu");
        if (first < 0 || first >= n) {
            monitor_printf(mon, "CPU#%d not available\n", first);
            return;
        }
    }
    if (n == 0) {
        monitor_printf(mon, "No CPU available\n");     /* QEMU 7.2's words on -M none */
        return;
    }
    if (!ops || !ops->dump_registers) {
        error_setg(&err, "No CPU state to show: the %s accelerator has no CPU registers",
                   ops ? ops->name : "(none)");
        hmp_handle_error(mon, err);
        return;
    }
    /* Pause only what runs, and let it go only if the VM still runs: while
     * cpus_pause_all waits without the BQL, someone may stop the VM. */
    bool paused_here = !cpus_are_paused();
    if (paused_here) {
        cpus_pause_all();
    }
    bool ok = dump_cpus(first, last, out, &err);
    if (paused_here && runstate_is_running()) {
        cpus_resume_all();
    }
    monitor_puts(mon, out->str);
    if (!ok) {
        hmp_handle_error(mon, err);
    }
}
