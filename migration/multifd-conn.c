/*
 * Multifd channel I/O: where a channel's bytes move, and where the
 * destination takes a connection (multifd_conn_accept; the source's
 * counterpart is multifd_conn_connect in multifd-connect.c). A wrapping
 * transport (TLS) does its handshake in those two and sets conn->io;
 * everything above uses multifd_conn_writev_all / readv_all only.
 */
#include "multifd.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

bool multifd_conn_accept(int fd, MultifdConn *c, Error **errp)
{
    c->fd = fd;
    c->io = NULL;
    c->opaque = NULL;
    return true;
}

/* Move the iovec forward past n bytes; returns the new count. */
static int iov_advance(struct iovec **iov, int cnt, size_t n)
{
    while (cnt > 0 && n >= (*iov)->iov_len) {
        n -= (*iov)->iov_len;
        (*iov)++;
        cnt--;
    }
    if (cnt > 0) {
        (*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
        (*iov)->iov_len -= n;
    }
    return cnt;
}

static ssize_t conn_writev(MultifdConn *c, const struct iovec *iov, int cnt)
{
    if (c->io) {
        return c->io->writev(c, iov, cnt);
    }
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt };
    return sendmsg(c->fd, &msg, MSG_NOSIGNAL);
}

static ssize_t conn_readv(MultifdConn *c, const struct iovec *iov, int cnt)
{
    if (c->io) {
        return c->io->readv(c, iov, cnt);
    }
    return readv(c->fd, iov, cnt);
}

#define IOV_CHUNK 1024      /* below IOV_MAX */

bool multifd_conn_writev_all(MultifdConn *c, struct iovec *iov, int cnt, Error **errp)
{
    while (cnt > 0) {
        ssize_t n = conn_writev(c, iov, cnt < IOV_CHUNK ? cnt : IOV_CHUNK);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            error_setg_errno(errp, n < 0 ? errno : EIO, "Unable to write to socket");
            return false;
        }
        cnt = iov_advance(&iov, cnt, (size_t)n);
    }
    return true;
}

bool multifd_conn_readv_all(MultifdConn *c, struct iovec *iov, int cnt, bool *eof, Error **errp)
{
    bool first = true;
    if (eof) {
        *eof = false;
    }
    while (cnt > 0) {
        ssize_t n = conn_readv(c, iov, cnt < IOV_CHUNK ? cnt : IOV_CHUNK);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            error_setg_errno(errp, errno, "Unable to read from socket");
            return false;
        }
        if (n == 0) {
            if (first && eof) {
                *eof = true;
            }
            error_setg(errp, "Unexpected end of multifd channel");
            return false;
        }
        first = false;
        cnt = iov_advance(&iov, cnt, (size_t)n);
    }
    return true;
}

void multifd_conn_shutdown(MultifdConn *c)
{
    if (c->fd >= 0) {
        shutdown(c->fd, SHUT_RDWR);
    }
}

void multifd_conn_close(MultifdConn *c)
{
    if (c->io && c->io->free) {
        c->io->free(c);
    }
    c->io = NULL;
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
}
