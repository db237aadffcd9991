/*
 * Monitors: QMP and HMP over stdio or sockets (monitor/).
 *
 * Each monitor belongs to the main loop. A command runs on the main thread
 * with the BQL held; monitor_cur() tells it which monitor it runs for
 * (HMP output, fds passed with getfd).
 */
#ifndef MIGVM_MONITOR_H
#define MIGVM_MONITOR_H

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>
#include "chardev-spec.h"
#include "error.h"

typedef struct Monitor Monitor;


/* Create monitors from command-line specs. Sockets are listened on now; on
 * failure errp says why (e.g. address in use). [main thread] */
bool monitor_init_qmp(const ChardevSpec *spec, Error **errp);
bool monitor_init_hmp(const ChardevSpec *spec, Error **errp);
/* Close every monitor, remove UNIX socket files. */
void monitor_cleanup(void);

/* The monitor whose command is running now (NULL outside a command). */
Monitor *monitor_cur(void);
/* Make the current monitor `mon` (NULL allowed); returns the previous one.
 * For dispatchers, around the command they run. */
Monitor *monitor_set_cur(Monitor *mon);
bool monitor_is_qmp(const Monitor *mon);

/* HMP output of the running command: to the console, or captured by
 * human-monitor-command. Lines end "\n"; the monitor converts to "\r\n". */
void monitor_printf(Monitor *mon, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* File descriptors passed with getfd (SCM_RIGHTS), per monitor. */
/* Take ownership of named fd: removes it from the monitor. -1 + errp if absent. */
int monitor_fd_take(Monitor *mon, const char *fdname, Error **errp);

/* Broadcast a QMP event to every monitor in command mode. `data` (may be NULL)
 * is consumed. Adds the timestamp. Safe from any thread; events raised while a
 * command runs are written before that command's response. */
void qapi_event_emit(const char *event_name, json_object *data);

/* Run one HMP command line, capturing the output (human-monitor-command),
 * with vCPU cpu_index as the monitor's current CPU. */
char *hmp_run_capture(const char *cmdline, int cpu_index);

#endif
