/*
 * Migration transports (see channel.h for the URI forms).
 *
 * Source: the migration thread calls mig_channel_connect() and gets a
 * blocking fd. Destination: mig_listener_start() listens on the main loop;
 * the first connection (or the exec/fd/file channel, at once) is handed to
 * the `ready` callback, and the listener stops accepting.
 */
#include "channel.h"
#include "options.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <time.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <glib.h>
#include <glib-unix.h>

/* ---- URI parsing ------------------------------------------------------ */

static bool parse_host_port(const char *text, MigAddress *addr, Error **errp)
{
    /* QEMU 7.2's words for a bad address, by the form of its host part. */
    const char *what = text[0] == '[' ? "IPv6 address" : text[0] == ':' ? "port in address" : "address";
    const char *colon;
    if (text[0] == '[') {                         /* [IPv6]:port */
        const char *close = strchr(text, ']');
        colon = close && close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = strrchr(text, ':');
    }
    /* QEMU ignores ",options" after the port (e.g. ",ipv4=on"). */
    size_t plen = colon ? strcspn(colon + 1, ",") : 0;
    if (plen == 0 || strspn(colon + 1, "0123456789") != plen) {
        error_setg(errp, "error parsing %s '%s'", what, text);
        return false;
    }
    addr->host = text[0] == '[' ? g_strndup(text + 1, colon - text - 2) : g_strndup(text, colon - text);
    addr->port = g_strndup(colon + 1, plen);
    return true;
}

static bool parse_file(const char *text, MigAddress *addr, Error **errp)
{
    const char *opt = strstr(text, ",offset=");
    if (!opt) {
        addr->path = g_strdup(text);
    } else {
        char *end;
        errno = 0;
        unsigned long long off = strtoull(opt + 8, &end, 0);
        if (errno || *end || end == opt + 8) {
            error_setg(errp, "file URI has bad offset %s", opt + 8);
            return false;
        }
        addr->path = g_strndup(text, opt - text);
        addr->offset = off;
    }
    if (!addr->path[0]) {
        error_setg(errp, "file URI needs a path");
        return false;
    }
    return true;
}

static const char *const schemes[] = {
    [MIG_TRANSPORT_TCP] = "tcp:",
    [MIG_TRANSPORT_UNIX] = "unix:",
    [MIG_TRANSPORT_EXEC] = "exec:",
    [MIG_TRANSPORT_FD] = "fd:",
    [MIG_TRANSPORT_FILE] = "file:",
};

/* The transport whose scheme starts uri; *rest: what follows the scheme. */
static bool uri_scheme(const char *uri, MigTransport *transport, const char **rest)
{
    for (size_t i = 0; i < G_N_ELEMENTS(schemes); i++) {
        if (g_str_has_prefix(uri, schemes[i])) {
            *transport = (MigTransport)i;
            *rest = uri + strlen(schemes[i]);
            return true;
        }
    }
    return false;
}

bool mig_uri_scheme_known(const char *uri)
{
    MigTransport transport;
    const char *rest;

    return uri_scheme(uri, &transport, &rest);
}

bool mig_address_parse(const char *uri, bool for_incoming, MigAddress *addr, Error **errp)
{
    memset(addr, 0, sizeof(*addr));
    const char *rest;
    bool ok = true;
    if (!uri_scheme(uri, &addr->transport, &rest)) {
        if (for_incoming) {
            error_setg(errp, "unknown migration protocol: %s", uri);
        } else {
            error_setg(errp, "Parameter 'uri' expects a valid migration protocol");
        }
        return false;
    }
    switch (addr->transport) {
    case MIG_TRANSPORT_TCP:
        ok = parse_host_port(rest, addr, errp);
        break;
    case MIG_TRANSPORT_UNIX:
        addr->path = g_strdup(rest);
        if (!rest[0]) {
            error_setg(errp, "invalid Unix socket address");
            ok = false;
        } else if (strlen(rest) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
            error_setg(errp, "UNIX socket path '%s' is too long", rest);
            ok = false;
        }
        break;
    case MIG_TRANSPORT_EXEC:
        addr->command = g_strdup(rest);
        break;
    case MIG_TRANSPORT_FD:
        addr->fdname = g_strdup(rest);
        break;
    case MIG_TRANSPORT_FILE:
        ok = parse_file(rest, addr, errp);
        break;
    }
    if (!ok) {
        mig_address_clear(addr);
    }
    return ok;
}

void mig_address_clear(MigAddress *addr)
{
    g_free(addr->host);
    g_free(addr->port);
    g_free(addr->path);
    g_free(addr->command);
    g_free(addr->fdname);
    memset(addr, 0, sizeof(*addr));
}

char *mig_address_to_string(const MigAddress *addr)
{
    switch (addr->transport) {
    case MIG_TRANSPORT_TCP:
        return strchr(addr->host, ':') ? g_strdup_printf("[%s]:%s", addr->host, addr->port)
                                       : g_strdup_printf("%s:%s", addr->host, addr->port);
    case MIG_TRANSPORT_UNIX:
    case MIG_TRANSPORT_FILE:
        return g_strdup(addr->path);
    case MIG_TRANSPORT_EXEC:
        return g_strdup_printf("exec:%s", addr->command);
    case MIG_TRANSPORT_FD:
        return g_strdup_printf("fd:%s", addr->fdname);
    }
    return g_strdup("?");
}

/* ---- sockets ---------------------------------------------------------- */

static int unix_address(const char *path, struct sockaddr_un *sun)
{
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    g_strlcpy(sun->sun_path, path, sizeof(sun->sun_path));
    return 0;
}

/*
 * A dead link is bounded (x-dead-link-timeout, T ms): TCP_USER_TIMEOUT
 * fails a connection whose sent data stays unacknowledged for T (the
 * source's side when every packet is lost), and keepalive probes after
 * T/3 of silence make a side that only receives (the destination) notice
 * the same within about T. A peer that is alive but not reading still
 * acknowledges zero-window probes, so a stalled destination is not
 * mistaken for a dead one. 0 leaves TCP's own limits (about 15 minutes of
 * retransmissions, no keepalive), which is QEMU 7.2's behaviour.
 */
static void bound_dead_link(int fd)
{
    unsigned ms = migrate_dead_link_timeout_ms();
    if (!ms) {
        return;
    }
    int one = 1, idle = MAX(1, (int)(ms / 3000)), cnt = 3;
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
}

static void tune_socket(int fd, bool tcp)
{
    /* Large buffers: the hot path writes 1 MiB batches. */
    int size = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    if (tcp) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        bound_dead_link(fd);
    }
}

/* connect() that a cancel can interrupt: non-blocking, then poll the socket
 * and cancel_fd. Returns 0 or an errno value; the socket is left blocking. */
static int connect_cancellable(int fd, const struct sockaddr *sa, socklen_t len, int cancel_fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        return errno;
    }
    int err = 0;
    if (connect(fd, sa, len) < 0) {
        err = errno;
    }
    /* A tcp connect is bounded by the dead-link timeout too (else ~2 minutes
     * of SYN retries to a host that does not answer). */
    unsigned limit_ms = sa->sa_family == AF_UNIX ? 0 : migrate_dead_link_timeout_ms();
    gint64 deadline = limit_ms ? g_get_monotonic_time() + (gint64)limit_ms * 1000 : 0;
    while (err == EINPROGRESS || err == EAGAIN || err == EINTR) {
        struct pollfd pfd[2] = { { .fd = fd, .events = POLLOUT }, { .fd = cancel_fd, .events = POLLIN } };
        int wait_ms = -1;
        if (deadline) {
            gint64 left = deadline - g_get_monotonic_time();
            if (left <= 0) {
                err = ETIMEDOUT;
                break;
            }
            wait_ms = (int)MIN(left / 1000 + 1, 1000);
        }
        int n = poll(pfd, cancel_fd >= 0 ? 2 : 1, wait_ms);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            err = errno;
            break;
        }
        if (n == 0) {
            continue;       /* not connected yet: check the deadline again */
        }
        if (cancel_fd >= 0 && (pfd[1].revents & POLLIN)) {
            err = ECANCELED;
            break;
        }
        if (err == EAGAIN) {
            /* unix sockets: backlog full; try again when the listener accepts */
            err = connect(fd, sa, len) < 0 ? errno : 0;
            if (err == EAGAIN) {
                struct timespec ts = { 0, 10 * 1000 * 1000 };
                nanosleep(&ts, NULL);
            }
            continue;
        }
        socklen_t elen = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) {
            err = errno;    /* else poll would report the same POLLOUT forever */
        }
    }
    /* The stream expects a blocking fd: failing to restore it fails the connect. */
    if (fcntl(fd, F_SETFL, flags) < 0 && err == 0) {
        err = errno;
    }
    return err;
}

static int tcp_connect(const MigAddress *addr, int cancel_fd, Error **errp)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_family = AF_UNSPEC };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(addr->host, addr->port, &hints, &res);
    if (rc) {
        error_setg(errp, "address resolution failed for %s:%s: %s", addr->host, addr->port,
                   gai_strerror(rc));
        return -1;
    }
    int fd = -1, last_errno = ECONNREFUSED;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        last_errno = connect_cancellable(fd, ai->ai_addr, ai->ai_addrlen, cancel_fd);
        if (last_errno == 0) {
            break;
        }
        close(fd);
        fd = -1;
        if (last_errno == ECANCELED) {
            break;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        g_autofree char *text = mig_address_to_string(addr);
        error_setg(errp, "Failed to connect to '%s': %s", text, g_strerror(last_errno));
        return -1;
    }
    tune_socket(fd, true);
    return fd;
}

static int unix_connect(const char *path, int cancel_fd, Error **errp)
{
    struct sockaddr_un sun;
    unix_address(path, &sun);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Failed to create socket");
        return -1;
    }
    int err = connect_cancellable(fd, (struct sockaddr *)&sun, sizeof(sun), cancel_fd);
    if (err) {
        error_setg_errno(errp, err, "Failed to connect to '%s'", path);
        close(fd);
        return -1;
    }
    tune_socket(fd, false);
    return fd;
}

static bool fd_is_socket(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* ---- exec ------------------------------------------------------------- */

/* Spawn /bin/sh -c cmd with one end of a pipe as its stdin (to_child) or
 * stdout (!to_child); returns our end. */
static int exec_spawn(const char *cmd, bool to_child, pid_t *child, Error **errp)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        error_setg_errno(errp, errno, "Unable to create pipe");
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        error_setg_errno(errp, errno, "Unable to fork for exec migration");
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        setpgid(0, 0);      /* its own group: an abort kills the shell's children too */
        int devnull = open("/dev/null", O_RDWR);
        if (to_child) {
            dup2(p[0], 0);
            dup2(devnull, 1);
        } else {
            dup2(devnull, 0);
            dup2(p[1], 1);
        }
        signal(SIGPIPE, SIG_DFL);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid);      /* also here: whichever of the two runs first */
    *child = pid;
    if (to_child) {
        close(p[0]);
        return p[1];
    }
    close(p[1]);
    return p[0];
}

/* ---- source side ------------------------------------------------------ */

bool mig_channel_connect(const MigAddress *addr, int passed_fd, int cancel_fd,
                         MigChannel *ch, Error **errp)
{
    ch->fd = -1;
    ch->child = 0;
    ch->bidirectional = false;
    switch (addr->transport) {
    case MIG_TRANSPORT_TCP:
        ch->fd = tcp_connect(addr, cancel_fd, errp);
        ch->bidirectional = true;
        break;
    case MIG_TRANSPORT_UNIX:
        ch->fd = unix_connect(addr->path, cancel_fd, errp);
        ch->bidirectional = true;
        break;
    case MIG_TRANSPORT_EXEC:
        ch->fd = exec_spawn(addr->command, true, &ch->child, errp);
        break;
    case MIG_TRANSPORT_FD:
        ch->fd = passed_fd;
        ch->bidirectional = fd_is_socket(passed_fd);
        break;
    case MIG_TRANSPORT_FILE:
        ch->fd = open(addr->path, O_WRONLY | O_CREAT | O_CLOEXEC | (addr->offset ? 0 : O_TRUNC), 0600);
        if (ch->fd < 0) {
            error_setg_errno(errp, errno, "Failed to open file '%s'", addr->path);
        } else if (addr->offset && lseek(ch->fd, (off_t)addr->offset, SEEK_SET) < 0) {
            error_setg_errno(errp, errno, "Failed to seek file '%s'", addr->path);
            close(ch->fd);
            ch->fd = -1;
        }
        break;
    }
    return ch->fd >= 0;
}

static bool child_status_ok(int status, Error **errp)
{
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        error_setg(errp, "migration command exited with %s %d",
                   WIFEXITED(status) ? "status" : "signal",
                   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return false;
    }
    return true;
}

bool mig_channel_close(MigChannel *ch, bool abort, Error **errp)
{
    bool ok = true;
    if (ch->fd >= 0) {
        close(ch->fd);
        ch->fd = -1;
    }
    if (ch->layer) {
        ch->layer_end(ch->layer, abort);
        ch->layer = NULL;
    }
    if (ch->child > 0 && abort) {
        kill(-ch->child, SIGKILL);
    }
    if (ch->child > 0) {
        int status;
        while (waitpid(ch->child, &status, 0) < 0 && errno == EINTR) {
        }
        ok = child_status_ok(status, errp);
        ch->child = 0;
    }
    return ok;
}

bool mig_channel_finish(MigChannel *ch, int cancel_fd, Error **errp)
{
    if (ch->fd >= 0) {
        close(ch->fd);
        ch->fd = -1;
    }
    while (ch->child > 0) {
        int status;
        pid_t r = waitpid(ch->child, &status, WNOHANG);
        if (r == ch->child) {
            ch->child = 0;
            return child_status_ok(status, errp);
        }
        if (r < 0 && errno != EINTR) {
            error_setg_errno(errp, errno, "Unable to wait for the migration command");
            ch->child = 0;
            return false;
        }
        /* The child has no fd to poll: look again every 10 ms, or at once on a cancel. */
        struct pollfd pfd = { .fd = cancel_fd, .events = POLLIN };
        if (poll(&pfd, cancel_fd >= 0 ? 1 : 0, 10) > 0) {
            error_setg(errp, "Migration cancelled while the migration command was finishing");
            return false;
        }
    }
    return true;
}

/* ---- destination side ------------------------------------------------- */

/* Room for a main channel and its multifd channels connecting at once. */
#define MIG_LISTEN_BACKLOG 16

struct MigListener {
    int fds[8];                 /* listening sockets (one per resolved address) */
    guint watches[8];
    int nfds;
    struct sockaddr_storage bound[8];   /* fds[i]'s address (tcp) */
    char *unix_path;            /* unlinked when freed */
    MigChannelReadyFn *ready;
    void *opaque;
    MigChannel pending;         /* exec/fd/file: delivered from an idle callback */
    guint idle;
};

static void listener_stop_watching(MigListener *l)
{
    for (int i = 0; i < l->nfds; i++) {
        if (l->watches[i]) {
            g_source_remove(l->watches[i]);
            l->watches[i] = 0;
        }
    }
}

static gboolean listener_accept(int fd, GIOCondition cond, gpointer opaque)
{
    MigListener *l = opaque;
    int conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (conn < 0) {
        return G_SOURCE_CONTINUE;   /* EAGAIN or a client that went away: keep listening */
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    getsockname(conn, (struct sockaddr *)&ss, &len);
    tune_socket(conn, ss.ss_family != AF_UNIX);
    /* Stop accepting before the callback, which may free the listener. */
    for (int i = 0; i < l->nfds; i++) {
        if (l->fds[i] == fd) {
            l->watches[i] = 0;
        }
    }
    listener_stop_watching(l);
    MigChannel ch = { .fd = conn, .bidirectional = true, .child = 0 };
    l->ready(&ch, l->opaque);
    return G_SOURCE_REMOVE;
}

static gboolean listener_deliver_pending(gpointer opaque)
{
    MigListener *l = opaque;
    l->idle = 0;
    MigChannel ch = l->pending;
    l->pending.fd = -1;
    l->pending.child = 0;
    l->ready(&ch, l->opaque);
    return G_SOURCE_REMOVE;
}

/* A bound IPv4/IPv6 address as QMP's SocketAddress, with the family it
 * listens on (as QEMU reports it). */
static SocketAddress *socket_address_from_inet(const struct sockaddr_storage *ss)
{
    SocketAddress *sa = g_new0(SocketAddress, 1);
    char host[INET6_ADDRSTRLEN] = "";
    unsigned port;

    sa->type = SOCKET_ADDRESS_TYPE_INET;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const void *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        sa->u.inet.has_ipv4 = sa->u.inet.ipv4 = true;
    } else {
        const struct sockaddr_in6 *in6 = (const void *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        sa->u.inet.has_ipv6 = sa->u.inet.ipv6 = true;
    }
    sa->u.inet.host = g_strdup(host);
    sa->u.inet.port = g_strdup_printf("%u", port);
    return sa;
}

static bool listen_tcp(MigListener *l, const MigAddress *addr, Error **errp)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *res = NULL;
    const char *host = addr->host[0] ? addr->host : NULL;
    int rc = getaddrinfo(host, addr->port, &hints, &res);
    if (rc) {
        error_setg(errp, "address resolution failed for %s:%s: %s", addr->host, addr->port,
                   gai_strerror(rc));
        return false;
    }
    int last_errno = 0;
    for (struct addrinfo *ai = res; ai && l->nfds < 8; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (ai->ai_family == AF_INET6) {
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        }
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, MIG_LISTEN_BACKLOG) < 0) {
            last_errno = errno;
            close(fd);
            continue;
        }
        /* The bound port (PORT 0 picks one): the address as query-migrate shows it. */
        socklen_t len = sizeof(l->bound[l->nfds]);
        if (getsockname(fd, (struct sockaddr *)&l->bound[l->nfds], &len) < 0) {
            last_errno = errno;
            close(fd);
            continue;
        }
        l->fds[l->nfds++] = fd;
    }
    freeaddrinfo(res);
    if (l->nfds == 0) {
        error_setg(errp, "Failed to bind socket for %s:%s: %s", addr->host, addr->port,
                   g_strerror(last_errno ? last_errno : EADDRNOTAVAIL));
        return false;
    }
    return true;
}

static bool listen_unix(MigListener *l, const char *path, Error **errp)
{
    struct sockaddr_un sun;
    unix_address(path, &sun);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Failed to create socket");
        return false;
    }
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, MIG_LISTEN_BACKLOG) < 0) {
        error_setg_errno(errp, errno, "Failed to bind socket to %s", path);
        close(fd);
        return false;
    }
    l->fds[l->nfds++] = fd;
    l->unix_path = g_strdup(path);
    return true;
}

MigListener *mig_listener_start(const MigAddress *addr, int passed_fd,
                                MigChannelReadyFn *ready, void *opaque, Error **errp)
{
    MigListener *l = g_new0(MigListener, 1);
    l->ready = ready;
    l->opaque = opaque;
    l->pending.fd = -1;
    bool ok = true;
    switch (addr->transport) {
    case MIG_TRANSPORT_TCP:
        ok = listen_tcp(l, addr, errp);
        break;
    case MIG_TRANSPORT_UNIX:
        ok = listen_unix(l, addr->path, errp);
        break;
    case MIG_TRANSPORT_EXEC:
        l->pending.fd = exec_spawn(addr->command, false, &l->pending.child, errp);
        ok = l->pending.fd >= 0;
        break;
    case MIG_TRANSPORT_FD:
        l->pending.fd = passed_fd;
        l->pending.bidirectional = fd_is_socket(passed_fd);
        break;
    case MIG_TRANSPORT_FILE:
        l->pending.fd = open(addr->path, O_RDONLY | O_CLOEXEC);
        if (l->pending.fd < 0) {
            error_setg_errno(errp, errno, "Failed to open file '%s'", addr->path);
            ok = false;
        } else if (addr->offset && lseek(l->pending.fd, (off_t)addr->offset, SEEK_SET) < 0) {
            error_setg_errno(errp, errno, "Failed to seek file '%s'", addr->path);
            ok = false;
        }
        break;
    }
    if (!ok) {
        mig_listener_free(l);
        return NULL;
    }
    for (int i = 0; i < l->nfds; i++) {
        l->watches[i] = g_unix_fd_add(l->fds[i], G_IO_IN, listener_accept, l);
    }
    if (l->pending.fd >= 0) {
        l->idle = g_idle_add(listener_deliver_pending, l);
    }
    return l;
}

void mig_listener_resume(MigListener *l)
{
    for (int i = 0; i < l->nfds; i++) {
        if (!l->watches[i]) {
            l->watches[i] = g_unix_fd_add(l->fds[i], G_IO_IN, listener_accept, l);
        }
    }
}

SocketAddressList *mig_listener_addresses(const MigListener *l)
{
    SocketAddressList *head = NULL, **tail = &head;

    for (int i = 0; i < l->nfds; i++) {
        SocketAddress *sa;
        if (l->unix_path) {
            sa = g_new0(SocketAddress, 1);
            sa->type = SOCKET_ADDRESS_TYPE_UNIX;
            sa->u.q_unix.path = g_strdup(l->unix_path);
        } else {
            sa = socket_address_from_inet(&l->bound[i]);
        }
        *tail = g_new0(SocketAddressList, 1);
        (*tail)->value = sa;
        tail = &(*tail)->next;
    }
    return head;
}

void mig_listener_free(MigListener *l)
{
    if (!l) {
        return;
    }
    listener_stop_watching(l);
    if (l->idle) {
        g_source_remove(l->idle);
    }
    for (int i = 0; i < l->nfds; i++) {
        close(l->fds[i]);
    }
    if (l->pending.fd >= 0) {
        mig_channel_close(&l->pending, true, NULL);
    }
    if (l->unix_path) {
        unlink(l->unix_path);
        g_free(l->unix_path);
    }
    g_free(l);
}
