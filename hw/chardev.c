/*
 * Character backends (see chardev.h). Sockets: a listening socket accepts
 * one client at a time (the listener is not watched while a client is
 * connected); wait=on blocks in chardev_open until the first client comes.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib.h>
#include <glib-unix.h>
#include "chardev.h"
#include "vm.h"
#include "fd-io.h"

struct Chardev {
    ChardevKind kind;
    int out_fd;                 /* where output goes, -1 = drop */
    int in_fd;                  /* where input comes from, -1 = none */
    int listen_fd;              /* socket servers */
    guint in_watch, listen_watch;
    bool input_blocked;         /* device full: in_watch removed */
    char *unlink_path;          /* UNIX server socket file */
    ChardevCanReceive can_receive;
    ChardevReceive receive;
    void *opaque;
};

static void chardev_watch_input(Chardev *chr);
static void chardev_watch_listener(Chardev *chr);

/* ---- sockets ---- */

static int unix_socket(const char *path, bool server, Error **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };

    if (strlen(path) >= sizeof(sa.sun_path)) {
        error_setg(errp, "UNIX socket path '%s' is too long", path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "cannot create socket");
        return -1;
    }
    if (server) {
        unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
            error_setg_errno(errp, errno, "Failed to bind socket to %s", path);
            close(fd);
            return -1;
        }
    } else if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        error_setg_errno(errp, errno, "Failed to connect to '%s'", path);
        close(fd);
        return -1;
    }
    return fd;
}

static int tcp_socket(const char *host, const char *port, bool server, Error **errp)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = server ? AI_PASSIVE : 0 };
    struct addrinfo *res;
    int rc = getaddrinfo(host && *host ? host : NULL, port, &hints, &res);

    if (rc) {
        error_setg(errp, "address resolution failed for %s:%s: %s",
                   host ? host : "", port, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        bool ok = server ? bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1) == 0
                         : connect(fd, ai->ai_addr, ai->ai_addrlen) == 0;
        if (!ok) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        error_setg_errno(errp, err, "Failed to %s %s:%s", server ? "listen on" : "connect to",
                         host ? host : "", port);
    }
    return fd;
}

static void chardev_drop_client(Chardev *chr)
{
    if (chr->in_watch) {
        g_source_remove(chr->in_watch);
        chr->in_watch = 0;
    }
    if (chr->in_fd >= 0 && chr->in_fd != STDIN_FILENO) {
        close(chr->in_fd);
    }
    chr->in_fd = chr->out_fd = -1;
    chr->input_blocked = false;
    chardev_watch_listener(chr);
}

static void chardev_take_client(Chardev *chr, int fd)
{
    chr->in_fd = chr->out_fd = fd;
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
        if (chr->listen_fd >= 0 || chr->kind == CHARDEV_UNIX || chr->kind == CHARDEV_TCP) {
            chardev_drop_client(chr);
        }
        return G_SOURCE_REMOVE;             /* EOF on stdin: stop reading */
    }
    if (n > 0 && chr->receive) {
        chr->receive(chr->opaque, buf, (int)n);
    }
    return G_SOURCE_CONTINUE;
}

static void chardev_watch_input(Chardev *chr)
{
    if (chr->in_fd >= 0 && !chr->in_watch && chr->receive) {
        chr->in_watch = g_unix_fd_add(chr->in_fd, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                      chardev_on_input, chr);
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
    if (chr->kind == CHARDEV_UNIX || chr->kind == CHARDEV_TCP) {
        /* A socket peer that does not read must not stall the vCPU: drop. */
        fd_send_full(chr->out_fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    } else {
        fd_write_full(chr->out_fd, buf, len);
    }
}

/* ---- open / close ---- */

static bool chardev_open_socket(Chardev *chr, const ChardevSpec *spec, Error **errp)
{
    int fd = spec->kind == CHARDEV_UNIX ? unix_socket(spec->path, spec->server, errp)
                                        : tcp_socket(spec->host, spec->port, spec->server, errp);
    if (fd < 0) {
        return false;
    }
    if (!spec->server) {
        chardev_take_client(chr, fd);
        return true;
    }
    chr->listen_fd = fd;
    if (spec->kind == CHARDEV_UNIX) {
        chr->unlink_path = g_strdup(spec->path);
    }
    if (spec->wait) {
        int client = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (client >= 0) {
            chardev_take_client(chr, client);
            return true;
        }
    }
    chardev_watch_listener(chr);
    return true;
}

Chardev *chardev_open(const ChardevSpec *spec, Error **errp)
{
    Chardev *chr = g_new0(Chardev, 1);
    bool ok = true;

    chr->kind = spec ? spec->kind : CHARDEV_NONE;
    chr->out_fd = chr->in_fd = chr->listen_fd = -1;
    switch (chr->kind) {
    case CHARDEV_NONE:
        break;
    case CHARDEV_STDIO:
        chr->out_fd = STDOUT_FILENO;
        chr->in_fd = STDIN_FILENO;
        break;
    case CHARDEV_FILE:
        /* Appended, unbuffered: a reader sees each byte once write() returns. */
        chr->out_fd = open(spec->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (chr->out_fd < 0) {
            error_setg_errno(errp, errno, "Could not open '%s'", spec->path);
            ok = false;
        }
        break;
    case CHARDEV_UNIX:
    case CHARDEV_TCP:
        ok = chardev_open_socket(chr, spec, errp);
        break;
    }
    if (!ok) {
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
    if (chr->kind == CHARDEV_FILE || chr->kind == CHARDEV_UNIX || chr->kind == CHARDEV_TCP) {
        if (chr->out_fd >= 0) {
            close(chr->out_fd);
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
