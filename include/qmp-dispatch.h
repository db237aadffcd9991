/*
 * The QMP dispatcher (qapi/dispatch.c): one parsed request in, one response out.
 * Pure apart from running the command: no I/O, so unit tests drive it directly.
 */
#ifndef MIGVM_QMP_DISPATCH_H
#define MIGVM_QMP_DISPATCH_H

#include <stdbool.h>
#include <json-c/json.h>
#include "error.h"
#include "monitor.h"

/* Per-session protocol state. qmp_capabilities changes it while it runs. */
typedef struct QmpDispatchState {
    bool negotiated;            /* command mode (qmp_capabilities succeeded) */
    bool oob_enabled;           /* negotiated with {"enable": ["oob"]} */
} QmpDispatchState;

/* Run one request. `request` is borrowed (NULL = a JSON null); the command
 * runs with monitor_cur() == cur. Returns a new response object
 * {"return": ..., "id": ...} or {"id": ..., "error": {...}}, or NULL when the
 * command succeeded and is flagged QCO_NO_SUCCESS_RESP. */
json_object *qmp_dispatch(json_object *request, QmpDispatchState *state, Monitor *cur);

/* {"error": {"class": ..., "desc": ...}}, no id (JSON parse errors). */
json_object *qmp_error_response(const Error *err);

/* The state of the session whose command is running (NULL outside one):
 * lets qmp_capabilities switch its session to command mode. */
QmpDispatchState *qmp_dispatch_cur_state(void);

#endif
