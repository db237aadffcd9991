/*
 * TLS on migration channels (migration/tls.c): with the tls-creds
 * parameter set, every migration connection is TLS from its first byte, as
 * in QEMU 7.2. The handshake runs first; the caller then keeps using a plain
 * fd (a socket, so the return path and shutdown work as before) whose bytes a
 * relay thread carries through the TLS session.
 */
#ifndef MIGRATION_TLS_H
#define MIGRATION_TLS_H

#include <stdbool.h>
#include "channel.h"
#include "error.h"

/* tls-creds is set: migration channels must be TLS. */
bool mig_tls_enabled(void);

/* Source: the client handshake on ch (a connected socket), checking the
 * destination's certificate against tls-hostname, else the tcp: host of addr.
 * On success ch->fd is the plain end and ch->layer the session (ended by
 * mig_channel_close). On failure ch is unchanged (the caller closes it) and
 * errp names the cause. No-op without tls-creds. Blocks until done,
 * cancel_fd (an eventfd, or -1) becomes readable, or a timeout.
 * Any channel can be wrapped this way: multifd channels call it on each of
 * their connections with the main channel's address. */
bool mig_tls_channel_client(MigChannel *ch, const MigAddress *addr, int cancel_fd, Error **errp);

/* Destination: the server handshake on ch, checking the client's
 * certificate (verify-peer) and its name against tls-authz. Same contract. */
bool mig_tls_channel_server(MigChannel *ch, Error **errp);

/* Release a session (ch->layer) whose plain fd the caller closed. It ends
 * on its own, without blocking the caller: with abort after at most 100 ms,
 * else once every dup of the plain fd is closed too and what was written
 * reached the peer (bounded by a peer that stops reading). */
void mig_tls_layer_end(void *layer, bool abort);

/* multifd's connect (MultifdConnectFn, multifd.h) for TLS: connect as
 * multifd_conn_connect does, then mig_tls_channel_client with the main
 * channel's address (migration/tls-multifd.c). */
struct MultifdConn;
bool mig_tls_multifd_connect(const MigAddress *addr, int cancel_fd, struct MultifdConn *c, Error **errp);

/* The same on a thread of its own, for the main loop: `done` is called on
 * the main loop [BQL] with the channel (wrapped, or closed when err is set;
 * err is the callee's to free). */
typedef void MigTlsAcceptedFn(MigChannel *ch, Error *err, void *opaque);
void mig_tls_channel_server_async(const MigChannel *ch, MigTlsAcceptedFn *done, void *opaque);

/* After a channel error: the TLS layer's own error (a fatal alert from the
 * peer, a failed record), which names the cause better than the broken pipe
 * the plain side saw. True (nothing set) when there is none. */
bool mig_tls_channel_error(const MigChannel *ch, Error **errp);

#endif
