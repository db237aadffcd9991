/*
 * Run state and the VM life cycle (the big lock is in bql.c).
 *
 * Run states move only along the transitions QEMU allows (the table below
 * follows QEMU 7.2's). Typical paths:
 *
 *   prelaunch --cont/autostart--> running --stop--> paused --cont--> running
 *   running --migrate--> finish-migrate --> postmigrate (cont refused: handed over)
 *   prelaunch --> inmigrate --load--> running | paused | (state from the stream)
 *   any stopped state --system_reset--> prelaunch
 *
 * Events: RESUME when the guest starts running, STOP when it stops running,
 * SHUTDOWN {guest, reason} before the main loop exits, RESET {guest, reason}.
 */
#include <pthread.h>
#include <glib.h>
#include "vm.h"
#include "accel.h"
#include "block.h"
#include "machine.h"
#include "qapi-events.h"
#include "main-loop.h"

VMConfig vm_config;
bool vm_autostart = true;
bool vm_no_shutdown;

/* ---- run state --------------------------------------------------------------- */

typedef struct RunStateTransition {
    RunState from, to;
} RunStateTransition;

/* Written from QEMU's documented behaviour: where each state may go next. */
static const RunStateTransition transitions[] = {
    { RUN_STATE_PRELAUNCH, RUN_STATE_INMIGRATE },
    { RUN_STATE_PRELAUNCH, RUN_STATE_RUNNING },
    { RUN_STATE_PRELAUNCH, RUN_STATE_FINISH_MIGRATE },

    { RUN_STATE_DEBUG, RUN_STATE_RUNNING },
    { RUN_STATE_DEBUG, RUN_STATE_FINISH_MIGRATE },
    { RUN_STATE_DEBUG, RUN_STATE_PRELAUNCH },
    { RUN_STATE_DEBUG, RUN_STATE_SUSPENDED },

    /* An incoming migration may end in any state the source was in. */
    { RUN_STATE_INMIGRATE, RUN_STATE_INTERNAL_ERROR },
    { RUN_STATE_INMIGRATE, RUN_STATE_IO_ERROR },
    { RUN_STATE_INMIGRATE, RUN_STATE_PAUSED },
    { RUN_STATE_INMIGRATE, RUN_STATE_RUNNING },
    { RUN_STATE_INMIGRATE, RUN_STATE_SHUTDOWN },
    { RUN_STATE_INMIGRATE, RUN_STATE_SUSPENDED },
    { RUN_STATE_INMIGRATE, RUN_STATE_WATCHDOG },
    { RUN_STATE_INMIGRATE, RUN_STATE_GUEST_PANICKED },
    { RUN_STATE_INMIGRATE, RUN_STATE_FINISH_MIGRATE },
    { RUN_STATE_INMIGRATE, RUN_STATE_PRELAUNCH },
    { RUN_STATE_INMIGRATE, RUN_STATE_POSTMIGRATE },
    { RUN_STATE_INMIGRATE, RUN_STATE_COLO },

    { RUN_STATE_INTERNAL_ERROR, RUN_STATE_PAUSED },
    { RUN_STATE_INTERNAL_ERROR, RUN_STATE_FINISH_MIGRATE },
    { RUN_STATE_INTERNAL_ERROR, RUN_STATE_PRELAUNCH },

    { RUN_STATE_IO_ERROR, RUN_STATE_RUNNING },
    { RUN_STATE_IO_ERROR, RUN_STATE_FINISH_MIGRATE },
    { RUN_STATE_IO_ERROR, RUN_STATE_PRELAUNCH },

    { RUN_STATE_PAUSED, RUN_STATE_RUNNING },
    { RUN_STATE_PAUSED, RUN_STATE_FINISH_MIGRATE },
    { RUN_STATE_PAUSED, RUN_STATE_POSTMIGRATE },
    { RUN_STATE_PAUSED, RUN_STATE_PRELAUNCH },
    { RUN_STATE_PAUSED, RUN_STATE_COLO },

    { RUN_STATE_POSTMIGRATE, RUN_STATE_RUNNING },
    { RUN_STATE_POSTMIGRATE, RUN_STATE_FINISH_MIGRATE },
    { RUN_STATE_POSTMIGRATE, RUN_STATE_PRELAUNCH },

    /* A failed or cancelled migration returns the source to running or paused. */
    { RUN_STATE_FINISH_MIGRATE, RUN_STATE_RUNNING },
    { RUN_STATE_FINISH_MIGRATE, RUN_STATE_PAUSED },
    { RUN_STATE_FINISH_MIGRATE, RUN_STATE_POSTMIGRATE },
    { RUN_STATE_FINISH_MIGRATE, RUN_STATE_PRELAUNCH },
    { RUN_STATE_FINISH_MIGRATE, RUN_STATE_COLO },

    { RUN_STATE_RESTORE_VM, RUN_STATE_RUNNING },
    { RUN_STATE_RESTORE_VM, RUN_STATE_PRELAUNCH },

    { RUN_STATE_COLO, RUN_STATE_RUNNING },
    { RUN_STATE_COLO, RUN_STATE_PRELAUNCH },
    { RUN_STATE_COLO, RUN_STATE_SHUTDOWN },

    { RUN_STATE_RUNNING, RUN_STATE_DEBUG },
    { RUN_STATE_RUNNING, RUN_STATE_INTERNAL_ERROR },
    { RUN_STATE_RUNNING, RUN_STATE_IO_ERROR },
    { RUN_STATE_RUNNING, RUN_STATE_PAUSED },
    { RUN_STATE_RUNNING, RUN_STATE_FINISH_MIGRATE },
    { RUN_STATE_RUNNING, RUN_STATE_RESTORE_VM },
    { RUN_STATE_RUNNING, RUN_STATE_SAVE_VM },
    { RUN_STATE_RUNNING, RUN_STATE_SHUTDOWN },
    { RUN_STATE_RUNNING, RUN_STATE_WATCHDOG },
    { RUN_STATE_RUNNING, RUN_STATE_GUEST_PANICKED },
    { RUN_STATE_RUNNING, RUN_STATE_COLO },
    { RUN_STATE_RUNNING, RUN_STATE_SUSPENDED },

    { RUN_STATE_SAVE_VM, RUN_STATE_RUNNING },

    { RUN_STATE_SHUTDOWN, RUN_STATE_PAUSED },
    { RUN_STATE_SHUTDOWN, RUN_STATE_FINISH_MIGRATE },
    { RUN_STATE_SHUTDOWN, RUN_STATE_PRELAUNCH },
    { RUN_STATE_SHUTDOWN, RUN_STATE_COLO },

    { RUN_STATE_SUSPENDED, RUN_STATE_RUNNING },
    { RUN_STATE_SUSPENDED, RUN_STATE_FINISH_MIGRATE },
    { RUN_STATE_SUSPENDED, RUN_STATE_PRELAUNCH },
    { RUN_STATE_SUSPENDED, RUN_STATE_COLO },

    { RUN_STATE_WATCHDOG, RUN_STATE_RUNNING },
    { RUN_STATE_WATCHDOG, RUN_STATE_FINISH_MIGRATE },
    { RUN_STATE_WATCHDOG, RUN_STATE_PRELAUNCH },
    { RUN_STATE_WATCHDOG, RUN_STATE_COLO },

    { RUN_STATE_GUEST_PANICKED, RUN_STATE_RUNNING },
    { RUN_STATE_GUEST_PANICKED, RUN_STATE_FINISH_MIGRATE },
    { RUN_STATE_GUEST_PANICKED, RUN_STATE_PRELAUNCH },
};

static RunState current_state = RUN_STATE_PRELAUNCH;

static bool transition_allowed(RunState from, RunState to)
{
    if (from == to) {
        return true;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(transitions); i++) {
        if (transitions[i].from == from && transitions[i].to == to) {
            return true;
        }
    }
    return false;
}

RunState runstate_get(void)
{
    assert(bql_locked());
    return current_state;
}

bool runstate_check(RunState state)
{
    assert(bql_locked());
    return current_state == state;
}

bool runstate_is_running(void)
{
    assert(bql_locked());
    return current_state == RUN_STATE_RUNNING;
}

bool runstate_set(RunState new_state, Error **errp)
{
    assert(bql_locked());
    if ((unsigned)new_state >= RUN_STATE__MAX) {
        error_setg(errp, "Invalid run state %d", (int)new_state);
        return false;
    }
    if (!transition_allowed(current_state, new_state)) {
        error_setg(errp, "Invalid run state transition from '%s' to '%s'",
                   RunState_str(current_state), RunState_str(new_state));
        return false;
    }
    current_state = new_state;
    return true;
}

bool runstate_needs_reset(void)
{
    assert(bql_locked());
    return current_state == RUN_STATE_INTERNAL_ERROR || current_state == RUN_STATE_SHUTDOWN ||
           current_state == RUN_STATE_GUEST_PANICKED;
}

/* ---- start and stop ------------------------------------------------------------ */

typedef struct VMChangeStateEntry {
    VMChangeStateHandler *fn;
    void *opaque;
} VMChangeStateEntry;

static GList *vm_change_state_handlers;     /* [BQL] of VMChangeStateEntry */

void vm_change_state_handler_add(VMChangeStateHandler *fn, void *opaque)
{
    VMChangeStateEntry *e = g_new(VMChangeStateEntry, 1);

    assert(bql_locked());
    *e = (VMChangeStateEntry) { .fn = fn, .opaque = opaque };
    vm_change_state_handlers = g_list_append(vm_change_state_handlers, e);
}

void vm_change_state_handler_del(VMChangeStateHandler *fn, void *opaque)
{
    assert(bql_locked());
    for (GList *l = vm_change_state_handlers; l; l = l->next) {
        VMChangeStateEntry *e = l->data;
        if (e->fn == fn && e->opaque == opaque) {
            vm_change_state_handlers = g_list_delete_link(vm_change_state_handlers, l);
            g_free(e);
            return;
        }
    }
}

static void vm_change_state_notify(bool running)
{
    /* A handler may remove itself: step before calling. */
    for (GList *l = vm_change_state_handlers, *next; l; l = next) {
        VMChangeStateEntry *e = l->data;
        next = l->next;
        e->fn(e->opaque, running);
    }
}

static bool handed_over;    /* [BQL] */

void vm_set_handed_over(bool value)
{
    assert(bql_locked());
    handed_over = value;
}

bool vm_is_handed_over(void)
{
    assert(bql_locked());
    return handed_over;
}

bool vm_start(Error **errp)
{
    assert(bql_locked());
    if (runstate_is_running()) {
        return true;
    }
    if (handed_over) {
        /* Every path that runs the guest comes here: one guard for all. */
        error_setg(errp, VM_HANDED_OVER_ERROR);
        return false;
    }
    if (!runstate_set(RUN_STATE_RUNNING, errp)) {
        return false;
    }
    qapi_event_send_resume();
    accel_vm_state_change(true);
    vm_change_state_notify(true);
    cpus_resume_all();
    return true;
}

bool vm_stop(RunState state, Error **errp)
{
    assert(bql_locked());
    if (!runstate_is_running()) {
        /* Already stopped: the state stays (QEMU's stop in prelaunch keeps prelaunch). */
        cpus_pause_all();
        blk_drain_all();
        return true;
    }
    if (!runstate_set(state, errp)) {
        return false;
    }
    cpus_pause_all();
    /* As QEMU's do_vm_stop: requests the guest started complete before
     * anyone saves device state. */
    blk_drain_all();
    accel_vm_state_change(false);
    vm_change_state_notify(false);
    qapi_event_send_stop();
    /* vCPU state now lives in the accelerator (KVM): pull it out so device
     * and CPU sections save what the guest really has. */
    return accel_synchronize_state(errp);
}

bool vm_stop_force_state(RunState state, Error **errp)
{
    assert(bql_locked());
    if (runstate_is_running()) {
        return vm_stop(state, errp);
    }
    cpus_pause_all();
    blk_drain_all();
    return runstate_set(state, errp) && accel_synchronize_state(errp);
}

/* ---- shutdown and reset -------------------------------------------------------- */

static bool shutdown_caused_by_guest(ShutdownCause cause)
{
    return cause == SHUTDOWN_CAUSE_GUEST_SHUTDOWN || cause == SHUTDOWN_CAUSE_GUEST_RESET ||
           cause == SHUTDOWN_CAUSE_GUEST_PANIC;
}

static void shutdown_now(ShutdownCause cause)
{
    if (main_loop_exit_requested()) {
        return;                 /* SHUTDOWN is announced once */
    }
    qapi_event_send_shutdown(shutdown_caused_by_guest(cause), cause);
    if (vm_no_shutdown && shutdown_caused_by_guest(cause)) {
        /* QEMU's -no-shutdown: the VM stops; quit or a signal ends the process. */
        vm_stop(RUN_STATE_SHUTDOWN, NULL);
        return;
    }
    main_loop_request_exit();
}

static void shutdown_scheduled(void *opaque)
{
    shutdown_now((ShutdownCause)GPOINTER_TO_INT(opaque));
}

void vm_request_shutdown(ShutdownCause cause)
{
    /* With the BQL held (a monitor command, a signal handler on the main loop)
     * announce now so SHUTDOWN precedes the command's response (`quit`). */
    if (bql_locked()) {
        shutdown_now(cause);
    } else {
        main_loop_schedule(shutdown_scheduled, GINT_TO_POINTER(cause));
    }
}

static void reset_scheduled(void *opaque)
{
    vm_system_reset((ShutdownCause)GPOINTER_TO_INT(opaque));
}

void vm_request_reset(ShutdownCause cause)
{
    /* Always deferred: a vCPU thread asking cannot pause itself. */
    main_loop_schedule(reset_scheduled, GINT_TO_POINTER(cause));
}

void vm_system_reset(ShutdownCause cause)
{
    Error *err = NULL;

    assert(bql_locked());
    cpus_pause_all();
    if (!machine_reset(&err)) {
        /* As for a vCPU that cannot go on: a half-reset machine must not run
         * (the vCPUs are paused already, so vm_stop has no state to sync). */
        error_report_err(err);
        if (runstate_is_running()) {
            vm_stop(RUN_STATE_INTERNAL_ERROR, NULL);
        }
        return;
    }
    if (cause != SHUTDOWN_CAUSE_NONE && cause != SHUTDOWN_CAUSE_SUBSYSTEM_RESET &&
        cause != SHUTDOWN_CAUSE_SNAPSHOT_LOAD) {
        qapi_event_send_reset(shutdown_caused_by_guest(cause), cause);
    }
    if (runstate_is_running()) {
        cpus_resume_all();
    } else if (current_state != RUN_STATE_INMIGRATE && current_state != RUN_STATE_FINISH_MIGRATE &&
               transition_allowed(current_state, RUN_STATE_PRELAUNCH)) {
        /* A stopped VM that was reset is fresh again: like QEMU, `cont` boots it. */
        current_state = RUN_STATE_PRELAUNCH;
    }
}
