/*
 * Between monitor.c (Monitor objects, output, events) and monitor-server.c
 * (listeners and connections). Private to monitor/.
 */
#ifndef MIGVM_MONITOR_SERVER_H
#define MIGVM_MONITOR_SERVER_H

#include "monitor-int.h"

/* The mutex guarding the monitor list and every output queue. */
void monitor_lock(void);
void monitor_unlock(void);

/* [monitor lock held] Queue bytes on a connection; past MONITOR_OUTPUT_MAX
 * the client is marked dead. Schedules a flush on the main loop. */
void monitor_conn_append_locked(MonitorConn *conn, const char *buf, size_t len);
/* Free the connection's resources (fds, sources, queue). [main thread] */
void monitor_conn_free(MonitorConn *conn);
/* Close every connection and listener (monitor_cleanup). */
void monitor_server_cleanup(void);

#endif
