/*
 * Monitor internals shared by QMP (monitor/qmp.c) and HMP (monitor/hmp*.c).
 *
 * A Monitor is one client session: a QMP or HMP socket client, the stdio
 * console, or a capture monitor (human-monitor-command). The server code in
 * monitor/monitor-server.c owns listening sockets and connections; the
 * protocol (QMP or HMP) plugs in with MonitorServerOps:
 *
 *   listener --accept--> monitor created --ops->opened()--> greeting/banner
 *   bytes arrive ------> ops->input(mon, buf, len)   (main thread, BQL held)
 *   EOF/error/drop ----> ops->closed(mon)            then the Monitor is freed
 *
 * Ownership:
 *  - The server creates and frees socket/stdio monitors. A protocol keeps its
 *    per-session state in mon->proto: allocate it in opened(), free it in
 *    closed(). Never free a server monitor yourself; use
 *    monitor_close_after_flush() (safe even from inside input()).
 *  - Monitors made with monitor_new()/monitor_new_capture() belong to the
 *    caller, who frees them with monitor_free() (no ops are called).
 *
 * Output: monitor_write() appends raw bytes to the monitor's queue; the main
 * loop writes them without blocking. More than MONITOR_OUTPUT_MAX queued bytes
 * (a client that never reads) drops the client. Output and the session list
 * are guarded by one internal mutex, so qapi_event_emit() can run on any
 * thread; everything else here is [main thread].
 *
 * Input: while a monitor is suspended, input() is not called. Bytes of the
 * chunk that was being delivered when the protocol called monitor_suspend()
 * remain the protocol's business (keep them, process them after resuming).
 */
#ifndef MIGVM_MONITOR_INT_H
#define MIGVM_MONITOR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <glib.h>
#include "monitor.h"

#define MONITOR_OUTPUT_MAX ((size_t)64 << 20)

/* The version QMP reports (greeting, query-version): QEMU 7.2's protocol. */
#define MIGVM_QEMU_MAJOR 7
#define MIGVM_QEMU_MINOR 2
#define MIGVM_QEMU_MICRO 0
#define MIGVM_PACKAGE "migvm 0.1"

/* A sink for monitor_new(): gets every byte written to the monitor, possibly
 * from a non-main thread (events), with the monitor mutex held: it must not
 * call back into monitor functions. */
typedef void MonitorWriteFn(void *opaque, const char *buf, size_t len);

typedef struct MonitorConn MonitorConn;     /* server-private: fds, sources, queue */

struct Monitor {
    bool is_qmp;
    bool pretty;                /* QMP pretty=on */
    bool suspended;             /* input not read (monitor_suspend) */
    bool events;                /* QMP in command mode: receives events (set with monitor_set_events) */
    bool closing;               /* close requested / connection lost: ignore further input */

    /* Output sink: exactly one of conn (socket/stdio), capture, write. */
    MonitorConn *conn;
    GString *capture;           /* monitor_new_capture() */
    MonitorWriteFn *write;
    void *write_opaque;

    GHashTable *named_fds;      /* getfd: name (char *) -> fd (GINT_TO_POINTER) */
    GArray *recv_fds;           /* int fds received (SCM_RIGHTS) with the latest read, not yet claimed */

    int cpu_index;              /* HMP: the current CPU (info cpus '*', info registers), 0 by default */

    void *proto;                /* protocol state (QmpSession, HMP line editor, ...) */
    const struct MonitorServerOps *ops;
};

typedef struct MonitorServerOps {
    void (*opened)(Monitor *mon);                               /* greeting/banner */
    void (*input)(Monitor *mon, const char *buf, size_t len);   /* bytes received */
    void (*closed)(Monitor *mon);                               /* free mon->proto */
} MonitorServerOps;

/* --- Monitor objects (monitor/monitor.c) --- */

/* A monitor writing to `write` (NULL: output discarded). Caller frees it. */
Monitor *monitor_new(bool is_qmp, MonitorWriteFn *write, void *opaque);
/* Closes the named and received fds; does not call ops. */
void monitor_free(Monitor *mon);
/* An HMP monitor whose output collects in a string (human-monitor-command). */
Monitor *monitor_new_capture(void);
/* The captured output so far (g_free it); the capture restarts empty. */
char *monitor_capture_take(Monitor *mon);

/* Queue raw bytes for the client (no newline conversion). */
void monitor_write(Monitor *mon, const char *buf, size_t len);
/* QMP: start/stop receiving events (command mode). */
void monitor_set_events(Monitor *mon, bool on);

/* Take ownership of the first fd received with the current message (the
 * others are closed); -1 if none. */
int monitor_take_received_fd(Monitor *mon);
/* Replace the fds received with the latest read (closing unclaimed ones);
 * takes ownership of fds[0..n-1]. */
void monitor_set_received_fds(Monitor *mon, const int *fds, size_t n);
/* getfd / closefd on the per-monitor table. monitor_fd_add takes ownership of
 * fd, replacing (closing) an older fd of that name. */
void monitor_fd_add(Monitor *mon, const char *name, int fd);
bool monitor_fd_close(Monitor *mon, const char *name, Error **errp);

/* --- Servers (monitor/monitor-server.c) --- */

/* Put monitors on a chardev: a listening socket (server=on: UNIX, TCP or
 * an inherited fd; many clients at once, each its own Monitor; with wait=on,
 * blocks until the first client connects), a connection out (server=off:
 * reported when the peer goes, made again every reconnect= seconds), stdio
 * or a pipe (one Monitor), a file (output only) or null. [main thread] */
bool monitor_server_start(const ChardevSpec *spec, bool is_qmp, const MonitorServerOps *ops, Error **errp);
/* Stop / restart reading a monitor's input (HMP `migrate` without -d). */
void monitor_suspend(Monitor *mon);
void monitor_resume(Monitor *mon);
/* Write what is queued, then close (HMP quit). No further input is read. */
void monitor_close_after_flush(Monitor *mon);

/* --- QMP (monitor/qmp.c) --- */
extern const MonitorServerOps qmp_server_ops;
/* One QMP message as sent: JSON (compact, or indented if pretty), every line
 * ending "\r\n". [monitor/monitor.c] */
GString *qmp_format_message(json_object *msg, bool pretty);

#endif
