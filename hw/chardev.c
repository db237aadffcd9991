/*
 * Character backends (see chardev.h). Sockets (chardev-socket.h opens them):
 * a listening socket accepts one client at a time (the listener is not
 * watched while a client is connected); wait=on blocks in chardev_open until
 * the first client comes; a client (server=off) whose peer goes away is
 * reported and, with reconnect=N, connects again every N seconds. A pipe is
 * PATH.in/PATH.out, or PATH both ways.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <poll.h>
#include <glib.h>
#include <glib-unix.h>
#include "chardev.h"
#include "vm.h"
#include "fd-io.h"
#include "chardev-socket.h"
#include "chardev-info.h"

struct Chardev {
    ChardevKind kind;
    char *label;                /* the spec's id, for query-chardev */
    int out_fd;                 /* where output goes, -1 = drop */
    int in_fd;                  /* where input comes from, -1 = none */
    int listen_fd;              /* socket servers */
    guint in_watch, listen_watch;
    bool input_blocked;         /* device full: in_watch removed */
    bool hangup_watch;          /* in_watch waits for a hang-up only (nobody reads) */
    char *unlink_path;          /* UNIX server socket file */
    ChardevSpec client;         /* server=off socket: where to connect (again) */
    guint retry_timer;          /* reconnect= while the peer is away */
    ChardevCanReceive can_receive;
    ChardevReceive receive;
    void *opaque;
};

static void chardev_watch_input(Chardev *chr);
static void chardev_watch_listener(Chardev *chr);
static void chardev_client_lost(Chardev *chr);

/* ---- sockets ---- */

static bool is_socket(const Chardev *chr)
{
    return chr->kind == CHARDEV_UNIX || chr->kind == CHARDEV_TCP || chr->kind == CHARDEV_FD;
}

static void chardev_drop_client(Chardev *chr)
{
    if (chr->in_watch) {
        g_source_remove(chr->in_watch);
        chr->in_watch = 0;
    }
    chr->hangup_watch = false;
    if (chr->in_fd >= 0 && chr->in_fd != STDIN_FILENO) {
        chardev_info_disconnected(chr->label, chr->in_fd);
        close(chr->in_fd);
    }
    chr->in_fd = chr->out_fd = -1;
    chr->input_blocked = false;
    chardev_watch_listener(chr);
    if (chr->listen_fd < 0) {
        chardev_client_lost(chr);
    }
}

static void chardev_take_client(Chardev *chr, int fd)
{
    chr->in_fd = chr->out_fd = fd;
    chardev_info_connected(chr->label, fd);
    chardev_watch_input(chr);
}

static gboolean chardev_on_listen(int fd, GIOCondition cond, gpointer opaque)
{
    Chardev *chr = opaque;
    int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

    if (client < 0) {
        return G_SOURCE_CONTINUE;
    }
    chr->listen_watch = 0;
    chardev_take_client(chr, client);
    return G_SOURCE_REMOVE;
}

static void chardev_watch_listener(Chardev *chr)
{
    if (chr->listen_fd >= 0 && !chr->listen_watch) {
        chr->listen_watch = g_unix_fd_add(chr->listen_fd, G_IO_IN, chardev_on_listen, chr);
    }
}

/* ---- input ---- */

static gboolean chardev_on_input(int fd, GIOCondition cond, gpointer opaque)
{
    Chardev *chr = opaque;
    uint8_t buf[64];
    int space = chr->can_receive ? chr->can_receive(chr->opaque) : 0;

    if (space <= 0 && chr->receive && !(cond & (G_IO_HUP | G_IO_ERR))) {
        chr->in_watch = 0;
        chr->input_blocked = true;          /* chardev_accept_input resumes */
        return G_SOURCE_REMOVE;
    }
    ssize_t n = read(fd, buf, MIN((size_t)MAX(space, 1), sizeof(buf)));
    if (n <= 0 && !(n < 0 && (errno == EINTR || errno == EAGAIN))) {
        chr->in_watch = 0;
        if (chr->listen_fd >= 0 || is_socket(chr)) {
            chardev_drop_client(chr);
        }
        return G_SOURCE_REMOVE;             /* EOF on stdin: stop reading */
    }
    if (n > 0 && chr->receive) {
        chr->receive(chr->opaque, buf, (int)n);
    }
    return G_SOURCE_CONTINUE;
}

/* A socket nobody reads (a chardev without a user) still notices a peer that
 * hangs up, as QEMU's does: a UNIX peer's close is a hang-up, a TCP peer's is
 * not until something is written, so such a TCP chardev keeps its peer. */
static gboolean chardev_on_hangup(int fd, GIOCondition cond, gpointer opaque)
{
    Chardev *chr = opaque;

    chr->in_watch = 0;
    chr->hangup_watch = false;
    chardev_drop_client(chr);
    return G_SOURCE_REMOVE;
}

static void chardev_watch_input(Chardev *chr)
{
    if (chr->in_fd < 0 || chr->in_watch) {
        return;
    }
    if (chr->receive) {
        chr->in_watch = g_unix_fd_add(chr->in_fd, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                      chardev_on_input, chr);
    } else if (is_socket(chr)) {
        chr->in_watch = g_unix_fd_add(chr->in_fd, G_IO_HUP | G_IO_ERR, chardev_on_hangup, chr);
        chr->hangup_watch = true;
    }
}

void chardev_set_handlers(Chardev *chr, ChardevCanReceive can_receive,
                          ChardevReceive receive, void *opaque)
{
    if (!chr) {
        return;
    }
    chr->can_receive = can_receive;
    chr->receive = receive;
    chr->opaque = opaque;
    if (chr->hangup_watch) {
        g_source_remove(chr->in_watch);
        chr->in_watch = 0;
        chr->hangup_watch = false;
    }
    if (receive) {
        chardev_info_set_frontend_open(chr->label);
    }
    chardev_watch_input(chr);
}

void chardev_accept_input(Chardev *chr)
{
    assert(bql_locked());
    if (chr && chr->input_blocked) {
        chr->input_blocked = false;
        chardev_watch_input(chr);
    }
}

/* ---- output ---- */

void chardev_write(Chardev *chr, const uint8_t *buf, size_t len)
{
    assert(bql_locked());
    if (!chr || chr->out_fd < 0) {
        return;
    }
    if (is_socket(chr)) {
        /* A socket peer that does not read must not stall the vCPU: drop. */
        fd_send_full(chr->out_fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    } else {
        fd_write_full(chr->out_fd, buf, len);
    }
}

/* ---- open / close ---- */

/* ---- connecting out (server=off), again every reconnect= seconds ---- */

static gboolean chardev_retry_cb(gpointer opaque)
{
    Chardev *chr = opaque;
    Error *err = NULL;
    int fd = chardev_socket_connect(&chr->client, &err);

    if (fd < 0) {
        error_free(err);            /* reported once, when the peer went away */
        return G_SOURCE_CONTINUE;
    }
    chr->retry_timer = 0;
    chardev_take_client(chr, fd);
    return G_SOURCE_REMOVE;
}

static void chardev_client_lost(Chardev *chr)
{
    g_autofree char *where = chardev_spec_describe(&chr->client);
    const char *id = chr->client.id ? chr->client.id : "serial";

    if (main_loop_exit_requested()) {
        return;                     /* the peer closing after quit is no news */
    }
    if (chr->client.reconnect > 0) {
        warn_report("chardev '%s': peer %s disconnected, reconnecting every %d s", id, where,
                    chr->client.reconnect);
        if (!chr->retry_timer) {
            chr->retry_timer = g_timeout_add_seconds(chr->client.reconnect, chardev_retry_cb, chr);
        }
    } else {
        warn_report("chardev '%s': peer %s disconnected", id, where);
    }
}

static bool chardev_connect(Chardev *chr, const ChardevSpec *spec, Error **errp)
{
    Error *err = NULL;
    int fd;

    chardev_spec_copy(&chr->client, spec);
    fd = chardev_socket_connect(spec, &err);
    if (fd >= 0) {
        chardev_take_client(chr, fd);
        return true;
    }
    if (spec->reconnect <= 0) {
        error_propagate(errp, err);
        return false;
    }
    /* As QEMU: with reconnect= a peer that is not there yet is no error. */
    warn_report("Unable to connect character device %s: %s", spec->id ? spec->id : "serial",
                error_get_pretty(err));
    error_free(err);
    chr->retry_timer = g_timeout_add_seconds(spec->reconnect, chardev_retry_cb, chr);
    return true;
}

static bool chardev_open_socket(Chardev *chr, const ChardevSpec *spec, Error **errp)
{
    if (!spec->server) {
        return chardev_connect(chr, spec, errp);
    }
    int fds[CHARDEV_SOCKET_MAX_LISTEN];
    int n = chardev_socket_listen(spec, fds, errp);
    if (n < 0) {
        return false;
    }
    for (int i = 1; i < n; i++) {
        close(fds[i]);              /* one listener: the first address */
    }
    chr->listen_fd = fds[0];
    chardev_info_listening(chr->label, chr->listen_fd);
    if (spec->kind == CHARDEV_UNIX) {
        chr->unlink_path = g_strdup(spec->path);
    }
    if (spec->wait) {
        g_autofree char *where = chardev_spec_describe(spec);
        fprintf(stderr, "migvm: waiting for connection on: disconnected:%s,server=on\n", where);
        struct pollfd pfd = { .fd = chr->listen_fd, .events = POLLIN };
        int client = -1;
        while (client < 0 && (poll(&pfd, 1, -1) >= 0 || errno == EINTR)) {
            client = accept4(chr->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        }
        if (client >= 0) {
            chardev_take_client(chr, client);
            return true;
        }
    }
    chardev_watch_listener(chr);
    return true;
}

static bool chardev_open_pipe(Chardev *chr, const char *path, Error **errp)
{
    g_autofree char *in_path = g_strdup_printf("%s.in", path);
    g_autofree char *out_path = g_strdup_printf("%s.out", path);

    /* O_RDWR: the open does not wait for the other end of a FIFO. */
    chr->in_fd = open(in_path, O_RDWR | O_CLOEXEC);
    chr->out_fd = open(out_path, O_RDWR | O_CLOEXEC);
    if (chr->in_fd >= 0 && chr->out_fd >= 0) {
        return true;
    }
    if (chr->in_fd >= 0) {
        close(chr->in_fd);
    }
    if (chr->out_fd >= 0) {
        close(chr->out_fd);
    }
    chr->in_fd = chr->out_fd = open(path, O_RDWR | O_CLOEXEC);
    if (chr->in_fd < 0) {
        error_setg_errno(errp, errno, "Could not open '%s'", path);
        return false;
    }
    return true;
}

Chardev *chardev_open(const ChardevSpec *spec, Error **errp)
{
    Chardev *chr = g_new0(Chardev, 1);
    bool ok = true;

    chr->kind = spec ? spec->kind : CHARDEV_NONE;
    chr->label = g_strdup(spec ? spec->id : NULL);
    chardev_info_set_opened(chr->label);
    chr->out_fd = chr->in_fd = chr->listen_fd = -1;
    switch (chr->kind) {
    case CHARDEV_NONE:
        break;
    case CHARDEV_STDIO:
        chr->out_fd = STDOUT_FILENO;
        chr->in_fd = STDIN_FILENO;
        break;
    case CHARDEV_FILE:
        /* Unbuffered: a reader sees each byte once write() returns. */
        chr->out_fd = open(spec->path, O_WRONLY | O_CREAT | O_CLOEXEC | (spec->append ? O_APPEND : O_TRUNC),
                           0644);
        if (chr->out_fd < 0) {
            error_setg_errno(errp, errno, "Could not open '%s'", spec->path);
            ok = false;
        }
        break;
    case CHARDEV_PIPE:
        ok = chardev_open_pipe(chr, spec->path, errp);
        break;
    case CHARDEV_UNIX:
    case CHARDEV_TCP:
    case CHARDEV_FD:
        ok = chardev_open_socket(chr, spec, errp);
        break;
    }
    if (!ok) {
        chardev_spec_clear(&chr->client);
        g_free(chr->label);
        g_free(chr);
        return NULL;
    }
    return chr;
}

void chardev_close(Chardev *chr)
{
    if (!chr) {
        return;
    }
    if (chr->in_watch) {
        g_source_remove(chr->in_watch);
    }
    if (chr->listen_watch) {
        g_source_remove(chr->listen_watch);
    }
    if (chr->retry_timer) {
        g_source_remove(chr->retry_timer);
    }
    chardev_spec_clear(&chr->client);
    if (is_socket(chr) && chr->in_fd >= 0) {
        chardev_info_disconnected(chr->label, chr->in_fd);
    }
    g_free(chr->label);
    if (chr->kind != CHARDEV_STDIO) {
        if (chr->out_fd >= 0) {
            close(chr->out_fd);
        }
        if (chr->in_fd >= 0 && chr->in_fd != chr->out_fd) {
            close(chr->in_fd);
        }
    }
    if (chr->listen_fd >= 0) {
        close(chr->listen_fd);
    }
    if (chr->unlink_path) {
        unlink(chr->unlink_path);
        g_free(chr->unlink_path);
    }
    g_free(chr);
}
