/*
 * QMP commands about the run state: query-status, query-name, query-kvm,
 * stop, cont, system_reset, quit. Each runs on the main thread with the BQL.
 *
 * Events a command raises go out before its response (the monitor's rule):
 *   cont          -> RESUME, {"return": {}}; refused after a completed outgoing
 *                    migration unless x-force-after-migration (no split brain)
 *   stop          -> STOP, {"return": {}}       (no event if already stopped)
 *   system_reset  -> RESET {guest: false, reason: host-qmp-system-reset}, {"return": {}}
 *   quit          -> SHUTDOWN {guest: false, reason: host-qmp-quit}, {"return": {}}, exit
 */
#include <glib.h>
#include "block.h"
#include "vm.h"
#include "qapi-commands.h"

StatusInfo *qmp_query_status(Error **errp)
{
    StatusInfo *info = g_new0(StatusInfo, 1);

    info->running = runstate_is_running();
    info->singlestep = false;
    info->status = runstate_get();
    return info;
}

NameInfo *qmp_query_name(Error **errp)
{
    NameInfo *info = g_new0(NameInfo, 1);

    info->name = g_strdup(vm_config.name);   /* absent without -name */
    return info;
}

KvmInfo *qmp_query_kvm(Error **errp)
{
    KvmInfo *info = g_new0(KvmInfo, 1);

    info->enabled = vm_config.kvm_enabled;
    info->present = vm_config.kvm_present;
    return info;
}

bool qmp_stop(Error **errp)
{
    if (runstate_check(RUN_STATE_INMIGRATE)) {
        /* The incoming VM stays paused once the migration completes. */
        vm_autostart = false;
        return true;
    }
    return vm_stop(RUN_STATE_PAUSED, errp);
}

bool qmp_cont(const q_obj_cont_arg *arg, Error **errp)
{
    if (runstate_needs_reset()) {
        error_setg(errp, "Resetting the Virtual Machine is required");
        return false;
    }
    if (runstate_check(RUN_STATE_FINISH_MIGRATE)) {
        error_setg(errp, "Migration is not finalized yet");
        return false;
    }
    if (runstate_check(RUN_STATE_SUSPENDED)) {
        return true;        /* QEMU: only a wakeup resumes a suspended guest */
    }
    if (runstate_check(RUN_STATE_INMIGRATE)) {
        vm_autostart = true;
        return true;
    }
    bool was_handed_over = vm_is_handed_over();
    if (arg->has_x_force_after_migration && arg->x_force_after_migration) {
        vm_set_handed_over(false);      /* the operator says the destination is gone */
    }
    blk_iostatus_reset_all();      /* as QEMU: a retried request starts from "ok" */
    if (!vm_start(errp)) {
        vm_set_handed_over(was_handed_over);
        return false;
    }
    return true;
}

bool qmp_system_reset(Error **errp)
{
    /* Synchronous, so RESET precedes the response and query-status right
     * after sees the result (prelaunch when it was stopped). */
    vm_system_reset(SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET);
    return true;
}

bool qmp_quit(Error **errp)
{
    /* SHUTDOWN now; the main loop exits after this response is written. */
    vm_request_shutdown(SHUTDOWN_CAUSE_HOST_QMP_QUIT);
    return true;
}
