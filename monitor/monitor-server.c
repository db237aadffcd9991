/*
 * Monitor transports: any chardev spec (chardev-spec.h).
 *
 *   server=on socket (UNIX, TCP, inherited fd): every client its own Monitor
 *   server=off socket: one connection out; when the peer goes away it is
 *       reported and, with reconnect=N, tried again every N seconds
 *   stdio, pipe (PATH.in/PATH.out or PATH): one Monitor on the two fds
 *   file: output only; null: no Monitor at all
 *
 *   listener fd --G_IO_IN--> accept --> Monitor + MonitorConn --> ops->opened
 *   client fd  --G_IO_IN--> recvmsg (bytes + SCM_RIGHTS fds) --> ops->input
 *              --EOF/error--> ops->closed, monitor_free
 *   output queue --(idle flush, G_IO_OUT watch)--> non-blocking send
 *
 * Every client is independent; one that disconnects mid-message just goes
 * away, one that stops reading is dropped once MONITOR_OUTPUT_MAX bytes are
 * queued. All of this runs on the main thread, except appends to the output
 * queue (monitor_conn_append_locked), which may come from any thread under
 * the monitor lock and only schedule a flush.
 */
#include "monitor-server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib-unix.h>
#include "chardev-info.h"
#include "chardev-socket.h"
#include "fd-io.h"
#include "vm.h"

#define MAX_RECV_FDS 16
#define READ_CHUNK 65536
#define STDIO_WRITE_CHUNK 4096

typedef struct MonitorClient MonitorClient;

struct MonitorConn {
    Monitor *mon;
    char *label;                /* the chardev's id, for query-chardev */
    int in_fd, out_fd;          /* in_fd -1: output only (file) */
    bool is_socket;             /* recvmsg/send; else read/write (stdio, pipe, file) */
    bool own_fds;               /* close in_fd and out_fd when freed (not stdio's) */
    MonitorClient *client;      /* server=off: who reconnects when this one goes */
    guint in_watch, out_watch;
    GString *out;               /* queued output [monitor lock] */
    bool dead;                  /* write failed or overflow: close [monitor lock] */
    bool close_when_flushed;
    int busy;                   /* inside ops->input: defer closing */
};

typedef struct MonitorListener {
    int fd;
    guint watch;
    char *unix_path;            /* to unlink at cleanup */
    char *label;
    bool is_qmp, pretty;
    const MonitorServerOps *ops;
} MonitorListener;

/* A server=off monitor: the connection out, made again after a loss when
 * spec.reconnect is set. [main thread] */
struct MonitorClient {
    ChardevSpec spec;
    bool is_qmp;
    const MonitorServerOps *ops;
    MonitorConn *conn;          /* live connection, or NULL */
    guint retry;                /* reconnect timer */
};

static GList *conn_list;        /* MonitorConn, main thread only */
static GList *listener_list;
static GList *client_list;      /* MonitorClient, main thread only */
static bool cleaning_up;        /* monitor_server_cleanup: losses are not news */
static guint flush_idle;        /* [monitor lock] */

static void conn_start_reading(MonitorConn *conn);
static gboolean flush_idle_cb(gpointer opaque);
static void client_lost(MonitorClient *client);

/* --- output --- */

void monitor_conn_append_locked(MonitorConn *conn, const char *buf, size_t len)
{
    if (conn->dead) {
        return;
    }
    if (conn->out->len + len > MONITOR_OUTPUT_MAX) {
        /* The client is not reading: drop it rather than grow forever. */
        conn->dead = true;
        conn->mon->closing = true;
        g_string_truncate(conn->out, 0);
    } else {
        g_string_append_len(conn->out, buf, len);
    }
    if (!flush_idle) {
        flush_idle = g_idle_add_full(G_PRIORITY_DEFAULT, flush_idle_cb, NULL, NULL);
    }
}

/* Write as much as the fd takes without blocking. [monitor lock] */
static void conn_write_locked(MonitorConn *conn)
{
    while (conn->out->len && !conn->dead) {
        size_t want = conn->out->len, done;
        if (conn->is_socket) {
            done = fd_send_full(conn->out_fd, conn->out->str, want, MSG_NOSIGNAL | MSG_DONTWAIT);
        } else {
            /* stdout may be a blocking pipe or tty: write only what poll promises. */
            struct pollfd pfd = { .fd = conn->out_fd, .events = POLLOUT };
            if (poll(&pfd, 1, 0) != 1 || !(pfd.revents & POLLOUT)) {
                if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL)) {
                    conn->dead = true;
                }
                return;
            }
            want = MIN(want, STDIO_WRITE_CHUNK);
            done = fd_write_full(conn->out_fd, conn->out->str, want);
        }
        g_string_erase(conn->out, 0, done);
        if (done < want) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                conn->dead = true;
            }
            return;
        }
    }
}

static void conn_close(MonitorConn *conn);

static gboolean out_ready_cb(gint fd, GIOCondition cond, gpointer opaque)
{
    MonitorConn *conn = opaque;
    conn->out_watch = 0;
    flush_idle_cb(NULL);
    return G_SOURCE_REMOVE;
}

/* Flush one connection; true if it was closed. [main thread] */
static bool conn_flush(MonitorConn *conn)
{
    monitor_lock();
    conn_write_locked(conn);
    bool pending = conn->out->len > 0;
    bool dead = conn->dead;
    monitor_unlock();

    if (dead || (!pending && conn->close_when_flushed)) {
        if (conn->busy) {
            conn->mon->closing = true;  /* closed when input() returns */
            return false;
        }
        conn_close(conn);
        return true;
    }
    if (pending && !conn->out_watch) {
        conn->out_watch = g_unix_fd_add(conn->out_fd, G_IO_OUT | G_IO_ERR | G_IO_HUP, out_ready_cb, conn);
    }
    return false;
}

static gboolean flush_idle_cb(gpointer opaque)
{
    monitor_lock();
    flush_idle = 0;
    monitor_unlock();
    GList *l = conn_list;
    while (l) {
        GList *next = l->next;      /* conn_flush may unlink l */
        conn_flush(l->data);
        l = next;
    }
    return G_SOURCE_REMOVE;
}

/* --- connections --- */

static MonitorConn *conn_new(const char *label, int in_fd, int out_fd, bool is_socket, bool is_qmp, bool pretty,
                             const MonitorServerOps *ops)
{
    MonitorConn *conn = g_new0(MonitorConn, 1);
    conn->label = g_strdup(label);
    if (is_socket) {
        chardev_info_connected(label, in_fd);
    }
    conn->in_fd = in_fd;
    conn->out_fd = out_fd;
    conn->is_socket = is_socket;
    conn->own_fds = is_socket;
    conn->out = g_string_new("");
    Monitor *mon = monitor_new(is_qmp, NULL, NULL);
    mon->pretty = pretty;
    mon->ops = ops;
    monitor_lock();
    mon->conn = conn;
    conn->mon = mon;
    monitor_unlock();
    conn_list = g_list_append(conn_list, conn);
    if (ops->opened) {
        ops->opened(mon);
    }
    conn_start_reading(conn);
    return conn;
}

/* Called from monitor_free(). */
void monitor_conn_free(MonitorConn *conn)
{
    conn_list = g_list_remove(conn_list, conn);
    if (conn->in_watch) {
        g_source_remove(conn->in_watch);
    }
    if (conn->out_watch) {
        g_source_remove(conn->out_watch);
    }
    if (conn->is_socket) {
        chardev_info_disconnected(conn->label, conn->in_fd);
    }
    g_free(conn->label);
    if (conn->own_fds) {
        if (conn->in_fd >= 0) {
            close(conn->in_fd);
        }
        if (conn->out_fd >= 0 && conn->out_fd != conn->in_fd) {
            close(conn->out_fd);
        }
    }
    MonitorClient *client = conn->client;
    g_string_free(conn->out, TRUE);
    g_free(conn);
    if (client) {
        client->conn = NULL;
        client_lost(client);
    }
}

static void conn_close(MonitorConn *conn)
{
    Monitor *mon = conn->mon;
    mon->closing = true;
    if (conn->in_watch) {
        g_source_remove(conn->in_watch);
        conn->in_watch = 0;
    }
    if (mon->ops && mon->ops->closed) {
        mon->ops->closed(mon);
    }
    monitor_free(mon);              /* frees conn too */
}

static ssize_t conn_read(MonitorConn *conn, char *buf, size_t size)
{
    if (!conn->is_socket) {
        return read(conn->in_fd, buf, size);
    }
    union {
        char buf[CMSG_SPACE(sizeof(int) * MAX_RECV_FDS)];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = buf, .iov_len = size };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = control.buf, .msg_controllen = sizeof(control.buf) };
    ssize_t n = recvmsg(conn->in_fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0) {
        return n;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            size_t nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int fds[MAX_RECV_FDS];
            memcpy(fds, CMSG_DATA(c), MIN(nfds, (size_t)MAX_RECV_FDS) * sizeof(int));
            monitor_set_received_fds(conn->mon, fds, MIN(nfds, (size_t)MAX_RECV_FDS));
        }
    }
    return n;
}

static gboolean in_ready_cb(gint fd, GIOCondition cond, gpointer opaque)
{
    MonitorConn *conn = opaque;
    Monitor *mon = conn->mon;
    char buf[READ_CHUNK];

    ssize_t n = conn_read(conn, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        conn->in_watch = 0;
        mon->closing = true;
        /* Let what is queued go out (a stdio client may still read), then close. */
        conn->close_when_flushed = true;
        conn_flush(conn);
        return G_SOURCE_REMOVE;
    }
    if (!mon->closing && mon->ops && mon->ops->input) {
        conn->busy++;
        mon->ops->input(mon, buf, n);
        conn->busy--;
    }
    if (mon->closing) {
        conn->in_watch = 0;
        conn->close_when_flushed = true;
        conn_flush(conn);
        return G_SOURCE_REMOVE;
    }
    if (mon->suspended) {
        conn->in_watch = 0;
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static void conn_start_reading(MonitorConn *conn)
{
    if (conn->in_fd >= 0 && !conn->in_watch && !conn->mon->suspended && !conn->mon->closing) {
        conn->in_watch = g_unix_fd_add(conn->in_fd, G_IO_IN | G_IO_HUP | G_IO_ERR, in_ready_cb, conn);
    }
}

void monitor_suspend(Monitor *mon)
{
    mon->suspended = true;
    if (mon->conn && mon->conn->in_watch && !mon->conn->busy) {
        g_source_remove(mon->conn->in_watch);
        mon->conn->in_watch = 0;
    }
}

void monitor_resume(Monitor *mon)
{
    mon->suspended = false;
    if (mon->conn && !mon->conn->busy) {
        conn_start_reading(mon->conn);
    }
}

void monitor_close_after_flush(Monitor *mon)
{
    mon->closing = true;
    if (!mon->conn) {
        return;
    }
    if (mon->conn->in_watch && !mon->conn->busy) {
        g_source_remove(mon->conn->in_watch);
        mon->conn->in_watch = 0;
    }
    mon->conn->close_when_flushed = true;
    monitor_lock();
    if (!flush_idle) {
        flush_idle = g_idle_add_full(G_PRIORITY_DEFAULT, flush_idle_cb, NULL, NULL);
    }
    monitor_unlock();
}

/* --- listeners --- */

static gboolean accept_cb(gint fd, GIOCondition cond, gpointer opaque)
{
    MonitorListener *ls = opaque;
    int client = accept4(ls->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (client < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
            warn_report("monitor: accept failed: %s", g_strerror(errno));
        }
        return G_SOURCE_CONTINUE;
    }
    conn_new(ls->label, client, client, true, ls->is_qmp, ls->pretty, ls->ops);
    return G_SOURCE_CONTINUE;
}

static MonitorListener *listener_add(const char *label, int fd, const char *unix_path, bool is_qmp, bool pretty,
                                     const MonitorServerOps *ops)
{
    MonitorListener *ls = g_new0(MonitorListener, 1);
    ls->label = g_strdup(label);
    ls->fd = fd;
    ls->unix_path = g_strdup(unix_path);
    ls->is_qmp = is_qmp;
    ls->pretty = pretty;
    ls->ops = ops;
    ls->watch = g_unix_fd_add(fd, G_IO_IN, accept_cb, ls);
    listener_list = g_list_append(listener_list, ls);
    return ls;
}

/* wait=on: block until a client connects to one of fds. */
static void wait_first_client(MonitorListener **ls, int n, const ChardevSpec *spec)
{
    g_autofree char *where = chardev_spec_describe(spec);

    fprintf(stderr, "migvm: waiting for connection on: disconnected:%s,server=on\n", where);
    struct pollfd pfds[CHARDEV_SOCKET_MAX_LISTEN];
    for (int i = 0; i < n; i++) {
        pfds[i] = (struct pollfd){ .fd = ls[i]->fd, .events = POLLIN };
    }
    for (;;) {
        if (poll(pfds, n, -1) < 0 && errno != EINTR) {
            return;
        }
        for (int i = 0; i < n; i++) {
            if (pfds[i].revents & POLLIN) {
                accept_cb(ls[i]->fd, G_IO_IN, ls[i]);
                return;
            }
        }
    }
}

static bool start_listening(const ChardevSpec *spec, bool is_qmp, const MonitorServerOps *ops, Error **errp)
{
    int fds[CHARDEV_SOCKET_MAX_LISTEN];
    int n = chardev_socket_listen(spec, fds, errp);

    if (n < 0) {
        return false;
    }
    MonitorListener *ls[CHARDEV_SOCKET_MAX_LISTEN];
    for (int i = 0; i < n; i++) {
        ls[i] = listener_add(spec->id, fds[i], spec->kind == CHARDEV_UNIX ? spec->path : NULL, is_qmp, spec->pretty,
                             ops);
    }
    chardev_info_listening(spec->id, fds[0]);     /* QEMU names its first listener */
    if (spec->wait) {
        wait_first_client(ls, n, spec);
    }
    return true;
}

/* --- connecting out (server=off) --- */

static bool client_connect(MonitorClient *client, Error **errp)
{
    int fd = chardev_socket_connect(&client->spec, errp);

    if (fd < 0) {
        return false;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    MonitorConn *conn = conn_new(client->spec.id, fd, fd, true, client->is_qmp, client->spec.pretty, client->ops);
    conn->client = client;
    client->conn = conn;
    return true;
}

static gboolean client_retry_cb(gpointer opaque)
{
    MonitorClient *client = opaque;
    Error *err = NULL;

    if (client_connect(client, &err)) {
        client->retry = 0;
        return G_SOURCE_REMOVE;
    }
    error_free(err);                /* reported once, when the peer went away */
    return G_SOURCE_CONTINUE;
}

static void client_schedule_retry(MonitorClient *client)
{
    if (client->spec.reconnect > 0 && !client->retry) {
        client->retry = g_timeout_add_seconds(client->spec.reconnect, client_retry_cb, client);
    }
}

static void client_lost(MonitorClient *client)
{
    if (cleaning_up || main_loop_exit_requested()) {
        return;                     /* e.g. QEMUMachine closing its end after quit */
    }
    g_autofree char *where = chardev_spec_describe(&client->spec);
    if (client->spec.reconnect > 0) {
        warn_report("chardev '%s': monitor peer %s disconnected, reconnecting every %d s",
                    client->spec.id ? client->spec.id : "", where, client->spec.reconnect);
        client_schedule_retry(client);
    } else {
        warn_report("chardev '%s': monitor peer %s disconnected", client->spec.id ? client->spec.id : "", where);
    }
}

static bool start_client(const ChardevSpec *spec, bool is_qmp, const MonitorServerOps *ops, Error **errp)
{
    MonitorClient *client = g_new0(MonitorClient, 1);
    Error *err = NULL;

    chardev_spec_copy(&client->spec, spec);
    client->is_qmp = is_qmp;
    client->ops = ops;
    if (!client_connect(client, &err)) {
        if (spec->reconnect <= 0) {
            error_propagate(errp, err);
            chardev_spec_clear(&client->spec);
            g_free(client);
            return false;
        }
        /* As QEMU: with reconnect= a peer that is not there yet is no error. */
        warn_report("Unable to connect character device %s: %s", spec->id ? spec->id : "",
                    error_get_pretty(err));
        error_free(err);
        client_schedule_retry(client);
    }
    client_list = g_list_append(client_list, client);
    return true;
}

/* --- stdio, pipes, files --- */

static bool start_pipe(const ChardevSpec *spec, bool is_qmp, const MonitorServerOps *ops, Error **errp)
{
    g_autofree char *in_path = g_strdup_printf("%s.in", spec->path);
    g_autofree char *out_path = g_strdup_printf("%s.out", spec->path);
    /* O_RDWR: opening a FIFO does not wait for the other end, and its reader
     * never sees end-of-file when a writer goes. */
    int in_fd = open(in_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    int out_fd = open(out_path, O_RDWR | O_CLOEXEC);

    if (in_fd < 0 || out_fd < 0) {
        if (in_fd >= 0) {
            close(in_fd);
        }
        if (out_fd >= 0) {
            close(out_fd);
        }
        in_fd = open(spec->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (in_fd < 0) {
            error_setg_errno(errp, errno, "Could not open '%s'", spec->path);
            return false;
        }
        out_fd = in_fd;
    }
    conn_new(spec->id, in_fd, out_fd, false, is_qmp, spec->pretty, ops)->own_fds = true;
    return true;
}

static bool start_file(const ChardevSpec *spec, bool is_qmp, const MonitorServerOps *ops, Error **errp)
{
    int fd = open(spec->path, O_WRONLY | O_CREAT | O_CLOEXEC | (spec->append ? O_APPEND : O_TRUNC), 0666);

    if (fd < 0) {
        error_setg_errno(errp, errno, "Could not open '%s'", spec->path);
        return false;
    }
    conn_new(spec->id, -1, fd, false, is_qmp, spec->pretty, ops)->own_fds = true;
    return true;
}

bool monitor_server_start(const ChardevSpec *spec, bool is_qmp, const MonitorServerOps *ops, Error **errp)
{
    chardev_info_set_opened(spec->id);
    switch (spec->kind) {
    case CHARDEV_STDIO:
        conn_new(spec->id, STDIN_FILENO, STDOUT_FILENO, false, is_qmp, spec->pretty, ops);
        return true;
    case CHARDEV_UNIX:
    case CHARDEV_TCP:
    case CHARDEV_FD:
        return spec->server ? start_listening(spec, is_qmp, ops, errp) : start_client(spec, is_qmp, ops, errp);
    case CHARDEV_PIPE:
        return start_pipe(spec, is_qmp, ops, errp);
    case CHARDEV_FILE:
        return start_file(spec, is_qmp, ops, errp);
    case CHARDEV_NONE:
        return true;                /* a monitor nobody can reach */
    }
    error_setg(errp, "unknown chardev kind");
    return false;
}

/* --- shutdown --- */

/* Give queued output (e.g. the response to quit) up to a deadline to leave. */
static void conn_drain(MonitorConn *conn, gint64 deadline)
{
    for (;;) {
        monitor_lock();
        conn_write_locked(conn);
        bool pending = conn->out->len > 0 && !conn->dead;
        monitor_unlock();
        gint64 left = (deadline - g_get_monotonic_time()) / 1000;
        if (!pending || left <= 0) {
            return;
        }
        struct pollfd pfd = { .fd = conn->out_fd, .events = POLLOUT };
        poll(&pfd, 1, (int)MIN(left, 100));
    }
}

void monitor_server_cleanup(void)
{
    gint64 deadline = g_get_monotonic_time() + G_USEC_PER_SEC;

    cleaning_up = true;
    while (conn_list) {
        MonitorConn *conn = conn_list->data;
        conn_drain(conn, deadline);
        conn_close(conn);
    }
    while (listener_list) {
        MonitorListener *ls = listener_list->data;
        listener_list = g_list_delete_link(listener_list, listener_list);
        g_source_remove(ls->watch);
        close(ls->fd);
        if (ls->unix_path) {
            unlink(ls->unix_path);
        }
        g_free(ls->unix_path);
        g_free(ls->label);
        g_free(ls);
    }
    while (client_list) {
        MonitorClient *client = client_list->data;
        client_list = g_list_delete_link(client_list, client_list);
        if (client->retry) {
            g_source_remove(client->retry);
        }
        chardev_spec_clear(&client->spec);
        g_free(client);
    }
    monitor_lock();
    if (flush_idle) {
        g_source_remove(flush_idle);
        flush_idle = 0;
    }
    monitor_unlock();
    cleaning_up = false;
}
