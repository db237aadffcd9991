/*
 * The migration state machine, source and destination.
 *
 * Source (migration.c):
 *   qmp_migrate ─► migrate_prepare (checks, URI parse, fd: taken now)
 *   ─► migration thread: connect ─► header ─► [return path + ping] ─► setup
 *      ─► iterate until pending <= bandwidth × downtime-limit ─► complete
 *      (vCPUs stopped, state synced, live handlers finished, devices saved)
 *      ─► [wait for the destination's SHUT] ─► completed, run state postmigrate
 *   Failure or cancel at any point: the channel is closed, dirty logging is
 *   stopped and the VM runs again exactly as before.
 *   Status: none → setup → active → [pre-switchover → device] → completed
 *                                   | failed | cancelling → cancelled
 *   postcopy-active: a broken channel or return path goes to postcopy-paused
 *   (guest stopped) ⇄ postcopy-recover → postcopy-active (migrate resume:true;
 *   migration.c "postcopy recovery"), or cancelled.
 *   With x-resumable-precopy a broken channel during active goes to
 *   x-precopy-paused (guest running) ⇄ x-precopy-recover → active (migrate
 *   resume:true; migration.c "resumable precopy"), or cancelled.
 *
 * Destination (incoming.c):
 *   -incoming URI / migrate-incoming ─► listener ─► incoming thread: load
 *   ─► main loop: resume (RESUME) or fail cleanly (the guest never runs).
 *   Status: none → setup → active → completed | failed
 *   With x-resumable-precopy: active → x-precopy-paused → (migrate-recover,
 *   the source connects) x-precopy-recover → active (incoming.c).
 *   Postcopy: active → postcopy-active → completed; a broken channel after RUN
 *   → postcopy-paused (guest running) → (migrate-recover, the source
 *   connects) postcopy-recover → postcopy-active (incoming.c).
 */
#ifndef MIGVM_MIGRATION_H
#define MIGVM_MIGRATION_H

#include <stdbool.h>
#include <stdint.h>
#include "error.h"
#include "qapi-types.h"

/* Register the migration's own save-state entries ("ram", "globalstate").
 * [BQL, after machine_init] */
bool migration_init(Error **errp);
/* Cancel a running outgoing migration and wait for its thread (quit). [BQL] */
void migration_shutdown(void);

/* Stop a running dirty rate measurement and wait for its thread (quit,
 * before the RAM blocks go; migration_shutdown calls it). [BQL] */
void dirty_rate_shutdown(void);

/* True while an outgoing migration is between setup and its end. */
bool migration_is_running(void);
/* Bandwidth or downtime changed: wake a rate-limited migration thread. */
void migration_parameters_changed(void);

/* Set the status and emit MIGRATION when the events capability is on. */
void migration_emit_status(MigrationStatus status);

/* Destination entry point (system/main.c for -incoming). */
bool migration_incoming_start(const char *uri, Error **errp);
/* Destination status for query-migrate, or false when no incoming migration exists. */
bool migration_incoming_fill_info(MigrationInfo *info);
/* migrate-pause on the destination: break the incoming channel if the
 * load would pause (postcopy after RUN, x-resumable-precopy); false if it
 * would not. [BQL] */
bool migration_incoming_pause(void);
/* The incoming postcopy is paused (postcopy-paused / postcopy-recover): the
 * guest's vCPUs may be waiting for pages inside page faults. Any thread. */
bool migration_incoming_postcopy_paused(void);
/* True after an incoming migration failed: the guest must not run. */
bool migration_incoming_failed(void);

#endif
