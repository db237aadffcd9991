/*
 * Sockets of socket chardevs (see chardev-socket.h): listen, connect, and
 * take over inherited descriptors, as libvirt passes them (fd=N).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <glib.h>
#include "chardev-socket.h"

#define LISTEN_BACKLOG 16

static bool unix_address(const char *path, struct sockaddr_un *sa, Error **errp)
{
    *sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof(sa->sun_path)) {
        error_setg(errp, "UNIX socket path '%s' is too long", path);
        return false;
    }
    strcpy(sa->sun_path, path);
    return true;
}

static int listen_unix(const char *path, Error **errp)
{
    struct sockaddr_un sa;

    if (!unix_address(path, &sa, errp)) {
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Failed to create socket");
        return -1;
    }
    unlink(path);                   /* a stale socket from an earlier run */
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        error_setg_errno(errp, errno, "Failed to bind socket to %s", path);
        close(fd);
        return -1;
    }
    return fd;
}

static int listen_inet_one(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
    if (fd < 0) {
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int listen_tcp(const char *host, const char *port, int *fds, Error **errp)
{
    struct addrinfo hints = { .ai_flags = AI_PASSIVE, .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host && *host ? host : NULL, port, &hints, &res);

    if (rc != 0) {
        error_setg(errp, "address resolution failed for %s:%s: %s", host ? host : "", port, gai_strerror(rc));
        return -1;
    }
    int count = 0, last_errno = 0;
    for (struct addrinfo *ai = res; ai && count < CHARDEV_SOCKET_MAX_LISTEN; ai = ai->ai_next) {
        int fd = listen_inet_one(ai);
        if (fd < 0) {
            last_errno = errno;
        } else {
            fds[count++] = fd;
        }
    }
    freeaddrinfo(res);
    if (count == 0) {
        error_setg_errno(errp, last_errno, "Failed to bind socket");
        return -1;
    }
    return count;
}

/* An inherited descriptor must be a stream socket, listening iff we serve. */
static bool check_inherited(int fd, bool listening, Error **errp)
{
    struct stat st;
    int type = 0, accepting = 0;
    socklen_t len = sizeof(type);

    if (fstat(fd, &st) < 0) {
        error_setg_errno(errp, errno, "File descriptor '%d' is not open", fd);
        return false;
    }
    if (!S_ISSOCK(st.st_mode) || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM) {
        error_setg(errp, "File descriptor '%d' is not a socket", fd);
        return false;
    }
    len = sizeof(accepting);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) < 0) {
        accepting = 0;
    }
    if (listening != (accepting != 0)) {
        error_setg(errp, "File descriptor '%d' is %s socket, but server=%s", fd,
                   accepting ? "a listening" : "not a listening", listening ? "on" : "off");
        return false;
    }
    /* Ours from now on: not inherited by anything we start. */
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return true;
}

int chardev_socket_listen(const ChardevSpec *spec, int fds[CHARDEV_SOCKET_MAX_LISTEN], Error **errp)
{
    switch (spec->kind) {
    case CHARDEV_UNIX:
        fds[0] = listen_unix(spec->path, errp);
        return fds[0] < 0 ? -1 : 1;
    case CHARDEV_TCP:
        return listen_tcp(spec->host, spec->port, fds, errp);
    case CHARDEV_FD:
        if (!check_inherited(spec->fd, true, errp)) {
            return -1;
        }
        fcntl(spec->fd, F_SETFL, fcntl(spec->fd, F_GETFL) | O_NONBLOCK);
        fds[0] = spec->fd;
        return 1;
    default:
        error_setg(errp, "not a socket chardev");
        return -1;
    }
}

static int connect_tcp(const char *host, const char *port, Error **errp)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res;
    int rc = getaddrinfo(host, port, &hints, &res);

    if (rc) {
        error_setg(errp, "address resolution failed for %s:%s: %s", host, port, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            err = errno;
            close(fd);
            fd = -1;
        } else if (fd < 0) {
            err = errno;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        error_setg_errno(errp, err, "Failed to connect to '%s:%s'", host, port);
    }
    return fd;
}

int chardev_socket_connect(const ChardevSpec *spec, Error **errp)
{
    struct sockaddr_un sa;
    int fd;

    switch (spec->kind) {
    case CHARDEV_UNIX:
        if (!unix_address(spec->path, &sa, errp)) {
            return -1;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            error_setg_errno(errp, errno, "Failed to create socket");
            return -1;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            error_setg_errno(errp, errno, "Failed to connect to '%s'", spec->path);
            close(fd);
            return -1;
        }
        return fd;
    case CHARDEV_TCP:
        return connect_tcp(spec->host, spec->port, errp);
    case CHARDEV_FD:
        return check_inherited(spec->fd, false, errp) ? spec->fd : -1;
    default:
        error_setg(errp, "not a socket chardev");
        return -1;
    }
}
