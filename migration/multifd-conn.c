/*
 * Multifd channel I/O: where a channel's bytes move, and where the
 * destination takes a connection (multifd_conn_accept; the source's
 * counterpart is multifd_conn_connect in multifd-connect.c). A wrapping
 * transport (TLS) does its handshake in those two and sets conn->io;
 * everything above uses multifd_conn_writev_all / readv_all only.
 */
#include "multifd.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/errqueue.h>

bool multifd_conn_accept(int fd, MultifdConn *c, Error **errp)
{
    c->fd = fd;
    c->io = NULL;
    c->opaque = NULL;
    return true;
}

int multifd_iov_advance(struct iovec **iov, int cnt, size_t n)
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
        cnt = multifd_iov_advance(&iov, cnt, (size_t)n);
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
        cnt = multifd_iov_advance(&iov, cnt, (size_t)n);
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

/* ---- MSG_ZEROCOPY (capability zero-copy-send; plain sockets only) ---- */

bool multifd_zero_copy_enable(int fd, Error **errp)
{
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof(one)) < 0) {
        error_setg(errp, "Zero copy send feature not detected in host kernel");
        return false;
    }
    return true;
}

bool multifd_conn_writev_zero_copy(MultifdConn *c, struct iovec *iov, int cnt, MultifdZeroCopy *zc,
                                   Error **errp)
{
    while (cnt > 0) {
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)(cnt < IOV_CHUNK ? cnt : IOV_CHUNK) };
        ssize_t n = sendmsg(c->fd, &msg, MSG_NOSIGNAL | MSG_ZEROCOPY);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == ENOBUFS) {
            error_setg(errp, "Process can't lock enough memory for using MSG_ZEROCOPY");
            return false;
        }
        if (n <= 0) {
            error_setg_errno(errp, n < 0 ? errno : EIO, "Unable to write to socket");
            return false;
        }
        zc->queued++;       /* each sendmsg that moved bytes gets one notification id */
        cnt = multifd_iov_advance(&iov, cnt, (size_t)n);
    }
    return true;
}

/* Read what the error queue holds; false on a real error. */
static bool zero_copy_reap(MultifdConn *c, MultifdZeroCopy *zc, Error **errp)
{
    for (;;) {
        char control[CMSG_SPACE(sizeof(struct sock_extended_err)) + 64];
        struct msghdr msg = { .msg_control = control, .msg_controllen = sizeof(control) };
        if (recvmsg(c->fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return true;
            }
            error_setg_errno(errp, errno, "Unable to read the zero copy notifications");
            return false;
        }
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
            if (!((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
                  (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR))) {
                continue;
            }
            struct sock_extended_err ee;
            memcpy(&ee, CMSG_DATA(cm), sizeof(ee));
            if (ee.ee_origin != SO_EE_ORIGIN_ZEROCOPY || ee.ee_errno) {
                error_setg(errp, "Zero copy notification error %u", ee.ee_errno);
                return false;
            }
            zc->done += (uint64_t)(ee.ee_data - ee.ee_info) + 1;
            if (ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED) {
                zc->copied = true;
            }
        }
    }
}

bool multifd_zero_copy_flush(MultifdConn *c, MultifdZeroCopy *zc, bool *copied, Error **errp)
{
    zc->copied = false;
    while (zc->done < zc->queued) {
        if (!zero_copy_reap(c, zc, errp)) {
            return false;
        }
        if (zc->done >= zc->queued) {
            break;
        }
        struct pollfd pfd = { .fd = c->fd, .events = 0 };
        if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
            error_setg_errno(errp, errno, "Unable to wait for zero copy notifications");
            return false;
        }
        if ((pfd.revents & (POLLHUP | POLLNVAL)) && !(pfd.revents & POLLERR)) {
            error_setg(errp, "Unable to write to socket: connection closed during a zero copy flush");
            return false;
        }
    }
    *copied = zc->copied;
    return true;
}
