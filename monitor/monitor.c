/*
 * Monitor objects: output sinks, the current monitor, per-monitor file
 * descriptors, and QMP event broadcast.
 *
 * Threads: monitors are created, fed and freed on the main thread. Events may
 * be raised on any thread (migration, vCPUs): qapi_event_emit() walks the
 * monitor list and appends to output queues under one mutex, and the
 * connection code flushes the queues from the main loop.
 */
#include "monitor-server.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "json-writer.h"

static pthread_mutex_t mon_mutex = PTHREAD_MUTEX_INITIALIZER;  /* pthread, not GMutex: visible to ThreadSanitizer */
static GList *mon_list;                         /* every live Monitor [mon_mutex] */
static _Thread_local Monitor *cur_mon;

void monitor_lock(void)
{
    pthread_mutex_lock(&mon_mutex);
}

void monitor_unlock(void)
{
    pthread_mutex_unlock(&mon_mutex);
}

static void close_fd_value(gpointer value)
{
    close(GPOINTER_TO_INT(value));
}

Monitor *monitor_new(bool is_qmp, MonitorWriteFn *write, void *opaque)
{
    Monitor *mon = g_new0(Monitor, 1);
    mon->is_qmp = is_qmp;
    mon->write = write;
    mon->write_opaque = opaque;
    mon->named_fds = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, close_fd_value);
    mon->recv_fds = g_array_new(FALSE, FALSE, sizeof(int));
    monitor_lock();
    mon_list = g_list_prepend(mon_list, mon);
    monitor_unlock();
    return mon;
}

Monitor *monitor_new_capture(void)
{
    Monitor *mon = monitor_new(false, NULL, NULL);
    mon->capture = g_string_new("");
    return mon;
}

static void close_received_fds(Monitor *mon)
{
    for (guint i = 0; i < mon->recv_fds->len; i++) {
        close(g_array_index(mon->recv_fds, int, i));
    }
    g_array_set_size(mon->recv_fds, 0);
}

void monitor_free(Monitor *mon)
{
    if (!mon) {
        return;
    }
    monitor_lock();
    mon_list = g_list_remove(mon_list, mon);
    monitor_unlock();
    if (cur_mon == mon) {
        cur_mon = NULL;
    }
    if (mon->conn) {
        monitor_conn_free(mon->conn);
    }
    close_received_fds(mon);
    g_array_free(mon->recv_fds, TRUE);
    g_hash_table_destroy(mon->named_fds);
    if (mon->capture) {
        g_string_free(mon->capture, TRUE);
    }
    g_free(mon);
}

char *monitor_capture_take(Monitor *mon)
{
    if (!mon->capture) {
        return g_strdup("");
    }
    monitor_lock();
    char *text = g_string_free(mon->capture, FALSE);
    mon->capture = g_string_new("");
    monitor_unlock();
    return text;
}

static void monitor_write_locked(Monitor *mon, const char *buf, size_t len)
{
    if (mon->capture) {
        g_string_append_len(mon->capture, buf, len);
    } else if (mon->conn) {
        monitor_conn_append_locked(mon->conn, buf, len);
    } else if (mon->write) {
        mon->write(mon->write_opaque, buf, len);
    }
}

void monitor_write(Monitor *mon, const char *buf, size_t len)
{
    monitor_lock();
    monitor_write_locked(mon, buf, len);
    monitor_unlock();
}

Monitor *monitor_set_cur(Monitor *mon)
{
    Monitor *old = cur_mon;
    cur_mon = mon;
    return old;
}

Monitor *monitor_cur(void)
{
    return cur_mon;
}

bool monitor_is_qmp(const Monitor *mon)
{
    return mon && mon->is_qmp;
}

void monitor_set_events(Monitor *mon, bool on)
{
    monitor_lock();
    mon->events = on;
    monitor_unlock();
}

/* --- file descriptors --- */

void monitor_set_received_fds(Monitor *mon, const int *fds, size_t n)
{
    close_received_fds(mon);
    g_array_append_vals(mon->recv_fds, fds, n);
}

int monitor_take_received_fd(Monitor *mon)
{
    if (mon->recv_fds->len == 0) {
        return -1;
    }
    int fd = g_array_index(mon->recv_fds, int, 0);
    g_array_remove_index(mon->recv_fds, 0);
    close_received_fds(mon);
    return fd;
}

void monitor_fd_add(Monitor *mon, const char *name, int fd)
{
    g_hash_table_replace(mon->named_fds, g_strdup(name), GINT_TO_POINTER(fd));
}

bool monitor_fd_close(Monitor *mon, const char *name, Error **errp)
{
    if (!mon || !g_hash_table_remove(mon->named_fds, name)) {
        error_setg(errp, "File descriptor named '%s' not found", name);
        return false;
    }
    return true;
}

int monitor_fd_take(Monitor *mon, const char *fdname, Error **errp)
{
    gpointer key, value;
    if (!mon || !g_hash_table_lookup_extended(mon->named_fds, fdname, &key, &value)) {
        error_setg(errp, "File descriptor named '%s' has not been found", fdname);
        return -1;
    }
    g_hash_table_steal(mon->named_fds, fdname);
    g_free(key);
    return GPOINTER_TO_INT(value);
}

/* --- QMP messages and events --- */

GString *qmp_format_message(json_object *msg, bool pretty)
{
    GString *json = g_string_new("");
    json_write(json, msg, pretty);
    if (!pretty) {
        g_string_append(json, "\r\n");   /* compact JSON has no line break */
        return json;
    }
    GString *out = g_string_sized_new(json->len + json->len / 8 + 8);
    for (const char *p = json->str, *end = p + json->len; p < end;) {
        const char *nl = memchr(p, '\n', end - p);
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        g_string_append_len(out, p, n);
        if (nl) {
            g_string_append_len(out, "\r\n", 2);
            n++;
        }
        p += n;
    }
    g_string_append(out, "\r\n");
    g_string_free(json, TRUE);
    return out;
}

static json_object *event_timestamp(void)
{
    struct timespec ts;
    int64_t sec = -1, usec = -1;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0) {
        sec = ts.tv_sec;
        usec = ts.tv_nsec / 1000;
    }
    json_object *stamp = json_object_new_object();
    json_object_object_add(stamp, "seconds", json_object_new_int64(sec));
    json_object_object_add(stamp, "microseconds", json_object_new_int64(usec));
    return stamp;
}

void qapi_event_emit(const char *event_name, json_object *data)
{
    json_object *msg = json_object_new_object();
    json_object_object_add(msg, "timestamp", event_timestamp());
    json_object_object_add(msg, "event", json_object_new_string(event_name));
    if (data) {
        json_object_object_add(msg, "data", data);
    }
    GString *text[2] = { NULL, NULL };          /* compact, pretty: made on demand */

    monitor_lock();
    for (GList *l = mon_list; l; l = l->next) {
        Monitor *mon = l->data;
        if (!mon->is_qmp || !mon->events || mon->closing) {
            continue;
        }
        int style = mon->pretty ? 1 : 0;
        if (!text[style]) {
            text[style] = qmp_format_message(msg, mon->pretty);
        }
        monitor_write_locked(mon, text[style]->str, text[style]->len);
    }
    monitor_unlock();

    for (int i = 0; i < 2; i++) {
        if (text[i]) {
            g_string_free(text[i], TRUE);
        }
    }
    json_object_put(msg);
}

void monitor_cleanup(void)
{
    monitor_server_cleanup();
}
