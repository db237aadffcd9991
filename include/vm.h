/*
 * Run state, the big lock, and the VM life cycle (system/vm.c).
 *
 * Threads: the glib main loop (main thread) owns monitors, listeners and
 * run-state changes; it holds the big lock ("BQL") except while polling.
 * vCPU threads and the migration thread take the BQL only for short
 * critical sections (device I/O, migration setup and completion).
 * Functions marked [BQL] (here and in other headers) must be called with
 * the lock held, and assert it on entry: assert(bql_locked()), a
 * thread-local flag, cheap enough for every call.
 */
#ifndef MIGVM_VM_H
#define MIGVM_VM_H

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include "error.h"
#include "qapi-types.h"     /* RunState, ShutdownCause (generated) */

void bql_lock(void);
void bql_unlock(void);
bool bql_locked(void);      /* true if the calling thread holds the BQL */

/* [BQL] */
RunState runstate_get(void);
bool runstate_check(RunState state);
bool runstate_is_running(void);
/* Move to new_state if the transition table allows it (as QEMU's RunState
 * transitions); otherwise set errp and change nothing. [BQL] */
bool runstate_set(RunState new_state, Error **errp);
/* True for states from which `cont` would need a reset first. [BQL] */
bool runstate_needs_reset(void);

/* autostart: false with -S; on an incoming VM `cont`/`stop` toggle it. */
extern bool vm_autostart;
/* -no-shutdown: a guest-initiated shutdown stops the VM (run state shutdown)
 * instead of ending the process; quit and signals still exit. [BQL] */
extern bool vm_no_shutdown;

/* Start or resume the guest: vCPUs run, state RUNNING, RESUME event.
 * Refused while the guest is handed over (below). [BQL] */
bool vm_start(Error **errp);

/* A completed outgoing migration handed the guest to the destination: from
 * then on nothing here may start it again (cont, cont after system_reset),
 * or two copies would run. Only `cont` with x-force-after-migration clears
 * it; a failed or cancelled migration never sets it. [BQL] */
void vm_set_handed_over(bool handed_over);
bool vm_is_handed_over(void);
#define VM_HANDED_OVER_ERROR                                                            \
    "The guest was handed over to the destination by a completed migration; "          \
    "running it here too would run two copies. If the destination is gone, "           \
    "override with 'cont' and 'x-force-after-migration': true (HMP: cont -f)"
/* Stop the guest in `state` (PAUSED, FINISH_MIGRATE, SHUTDOWN, ...):
 * every vCPU is out of guest code when this returns; STOP event if it was
 * running. Returns false only if the accelerator could not sync state. [BQL] */
bool vm_stop(RunState state, Error **errp);
/* Like vm_stop but when already stopped just changes the run state. [BQL] */
bool vm_stop_force_state(RunState state, Error **errp);

/* Code that acts when the guest starts or stops running (QEMU's
 * vm-change-state handlers), e.g. a disk retrying the requests an I/O error
 * stopped. vm_start calls every handler with running=true before the vCPUs
 * resume, vm_stop with false after they paused. [BQL] */
typedef void VMChangeStateHandler(void *opaque, bool running);
void vm_change_state_handler_add(VMChangeStateHandler *fn, void *opaque);
void vm_change_state_handler_del(VMChangeStateHandler *fn, void *opaque);

/* Ask the main loop to shut down (emits SHUTDOWN {guest, reason} then exits
 * the main loop). Safe from any thread. */
void vm_request_shutdown(ShutdownCause cause);
/* Ask for a system reset (emits RESET {guest, reason}). Safe from any thread. */
void vm_request_reset(ShutdownCause cause);
/* Reset now. [BQL] */
void vm_system_reset(ShutdownCause cause);

/* Run a function on the main loop thread (with the BQL held) soon. Safe from any thread. */
void main_loop_schedule(void (*fn)(void *opaque), void *opaque);
/* True once the process is on its way out (quit, a signal, a guest shutdown
 * without -no-shutdown): a monitor peer leaving then is no news. Any thread. */
bool main_loop_exit_requested(void);

/* What query-name and query-kvm report, filled from the command line by
 * system/main.c. The board gets its own MachineConfig (machine.h). */
typedef struct VMConfig {
    char *name;               /* -name, or NULL */
    bool kvm_present;         /* /dev/kvm usable */
    bool kvm_enabled;         /* this VM runs on KVM */
} VMConfig;
extern VMConfig vm_config;

#endif
