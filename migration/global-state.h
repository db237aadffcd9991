/*
 * The "globalstate" section: the source's run state, so the destination can
 * end up in the same one (running -> start if autostart; else that state).
 */
#ifndef MIGVM_MIGRATION_GLOBAL_STATE_H
#define MIGVM_MIGRATION_GLOBAL_STATE_H

#include <stdbool.h>
#include "error.h"
#include "vm.h"

/* Register the "globalstate" section (instance 0). Call once at startup,
 * in the registration order the machine wants (QEMU: after "timer"). */
bool global_state_register(Error **errp);
/* Snapshot runstate_get() now; the migration thread calls this before it
 * stops the guest (otherwise the section would say "finish-migrate"). If
 * never called, the run state at save time is used. [BQL] */
void global_state_store(void);
/* Forget what was stored or received (before each migration / load). */
void global_state_reset(void);
/* Destination: true (and *out) if a valid globalstate section was loaded. */
bool global_state_received(RunState *out);

#endif
