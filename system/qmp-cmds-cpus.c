/*
 * query-cpus-fast: the vCPUs as QEMU 7.2's pc machine lists them, read
 * without stopping them. One entry per vCPU in cpu-index order (none on a
 * board without vCPUs, -M none):
 *   cpu-index   0-based
 *   qom-path    "/machine/unattached/device[N]": N is 0 for vCPU 0 and
 *               index + 1 for the others (QEMU creates one other device,
 *               the APIC's vapic, right after vCPU 0)
 *   thread-id   the host TID of the thread that runs the vCPU (system/cpus.c)
 *   props       socket-id, die-id (only with more than one die), core-id,
 *               thread-id from the -smp topology (hw/machine.c)
 *   target      "x86_64"
 */
#include <glib.h>
#include "cpus.h"
#include "machine.h"
#include "qapi-commands.h"

static CpuInstanceProperties *cpu_props(int index)
{
    CpuInstanceProperties *p = g_new0(CpuInstanceProperties, 1);
    CpuPosition pos;

    machine_cpu_position(index, &pos);
    p->has_socket_id = true;
    p->socket_id = pos.socket;
    p->has_die_id = pos.dies > 1;
    p->die_id = pos.die;
    p->has_core_id = true;
    p->core_id = pos.core;
    p->has_thread_id = true;
    p->thread_id = pos.thread;
    return p;
}

CpuInfoFastList *qmp_query_cpus_fast(Error **errp)
{
    CpuInfoFastList *head = NULL, **tail = &head;

    for (int i = 0; i < cpus_count(); i++) {
        CpuInfoFast *info = g_new0(CpuInfoFast, 1);
        info->cpu_index = i;
        info->qom_path = g_strdup_printf("/machine/unattached/device[%d]", i ? i + 1 : 0);
        info->thread_id = cpus_thread_id(i);
        info->props = cpu_props(i);
        info->target = SYS_EMU_TARGET_X86_64;
        *tail = g_new0(CpuInfoFastList, 1);
        (*tail)->value = info;
        tail = &(*tail)->next;
    }
    return head;
}
