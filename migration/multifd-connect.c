/*
 * A source multifd channel is created here and only here: connect to the
 * migration address (with the transport's socket options, channel.c). A
 * wrapping transport (TLS) replaces this with its own connect + handshake
 * and sets conn->io (multifd.h). migration.c hands this function to
 * multifd_send_setup, so RAM's tests and fuzz targets link multifd without
 * the transports.
 */
#include "multifd.h"
#include "channel.h"

bool multifd_conn_connect(const MigAddress *addr, int cancel_fd, MultifdConn *c, Error **errp)
{
    MigChannel ch;
    c->fd = -1;
    c->io = NULL;
    c->opaque = NULL;
    if (!mig_channel_connect(addr, -1, cancel_fd, &ch, errp)) {
        return false;
    }
    c->fd = ch.fd;
    return true;
}
