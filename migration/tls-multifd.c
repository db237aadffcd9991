/*
 * TLS on multifd channels. Source: each channel connects to the migration
 * address and runs its own full client handshake, checking the same host
 * name as the main channel (QEMU 7.2: tls.md 4). The channel then moves
 * plain bytes over the relay's socketpair; closing it ends the session.
 * Destination: incoming.c runs the server handshake on every accepted
 * connection before multifd sees it.
 */
#include "tls.h"
#include "multifd.h"

#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static ssize_t plain_writev(MultifdConn *c, const struct iovec *iov, int cnt)
{
    struct msghdr msg = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)cnt };
    return sendmsg(c->fd, &msg, MSG_NOSIGNAL);
}

static ssize_t plain_readv(MultifdConn *c, const struct iovec *iov, int cnt)
{
    return readv(c->fd, iov, cnt);
}

/* Close the plain end first: the relay then delivers what is left and ends. */
static void tls_conn_free(MultifdConn *c)
{
    close(c->fd);
    c->fd = -1;
    mig_tls_layer_end(c->opaque, false);
    c->opaque = NULL;
}

static const MultifdConnIO tls_conn_io = {
    .writev = plain_writev,
    .readv = plain_readv,
    .free = tls_conn_free,
};

bool mig_tls_multifd_connect(const MigAddress *addr, int cancel_fd, MultifdConn *c, Error **errp)
{
    MigChannel ch;
    c->fd = -1;
    c->io = NULL;
    c->opaque = NULL;
    if (!mig_channel_connect(addr, -1, cancel_fd, &ch, errp)) {
        return false;
    }
    if (!mig_tls_channel_client(&ch, addr, cancel_fd, errp)) {
        mig_channel_close(&ch, true, NULL);
        return false;
    }
    c->fd = ch.fd;
    c->opaque = ch.layer;
    c->io = &tls_conn_io;
    return true;
}
