/*
 * Migration transports: parse a migration URI, connect (source) or listen
 * (destination). Schemes as QEMU 7.2 plus 8.2's file:
 *   tcp:HOST:PORT   (IPv4, [IPv6], or a host name; PORT 0 = any, destination only)
 *   unix:PATH
 *   exec:COMMAND    (/bin/sh -c COMMAND; source writes its stdin, destination reads its stdout)
 *   fd:NAME         (a descriptor passed with getfd on the monitor running the command)
 *   file:PATH[,offset=N]
 * tcp, unix and socket fds are bidirectional (a return path is possible);
 * exec, file and non-socket fds are not.
 */
#ifndef MIGRATION_CHANNEL_H
#define MIGRATION_CHANNEL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "error.h"
#include "qapi-types.h"

typedef enum MigTransport {
    MIG_TRANSPORT_TCP,
    MIG_TRANSPORT_UNIX,
    MIG_TRANSPORT_EXEC,
    MIG_TRANSPORT_FD,
    MIG_TRANSPORT_FILE,
} MigTransport;

typedef struct MigAddress {
    MigTransport transport;
    char *host, *port;      /* tcp (host without brackets) */
    char *path;             /* unix, file */
    char *command;          /* exec */
    char *fdname;           /* fd */
    uint64_t offset;        /* file */
} MigAddress;

/* Parse uri. for_incoming selects QEMU's error text for an unknown scheme:
 * "unknown migration protocol: X" (migrate-incoming) or
 * "Parameter 'uri' expects a valid migration protocol" (migrate). */
bool mig_address_parse(const char *uri, bool for_incoming, MigAddress *addr, Error **errp);
void mig_address_clear(MigAddress *addr);
/* uri starts with a scheme above (its address may still be bad). */
bool mig_uri_scheme_known(const char *uri);
/* "tcp:127.0.0.1:4444" style text of an address, for messages. */
char *mig_address_to_string(const MigAddress *addr);

/* For fd:NAME, take the descriptor NAME passed with getfd to the monitor
 * running the command (channel-fd.c); false + errp if it has none. Other
 * transports take nothing: *fd = -1. */
bool mig_address_take_fd(const MigAddress *addr, int *fd, Error **errp);

/* An open channel: the fd, whether it can carry a return path, and the
 * child process of exec: (reaped by mig_channel_close). A layer put between
 * the fd and the connection (TLS: migration/tls.c) leaves its state in
 * `layer` and is ended by `layer_end` once the fd is closed (abort: at once,
 * else after what was written reached the peer). */
typedef struct MigChannel {
    int fd;
    bool bidirectional;
    pid_t child;
    void *layer;
    void (*layer_end)(void *layer, bool abort);
} MigChannel;

/* Source side: open the channel to addr. For fd:, passed_fd is the descriptor
 * already taken from the monitor (ownership moves to the channel). Blocks
 * until connected, refused, or cancel_fd (an eventfd, or -1) becomes
 * readable: call it from the migration thread. */
bool mig_channel_connect(const MigAddress *addr, int passed_fd, int cancel_fd,
                         MigChannel *ch, Error **errp);
/* Close the fd and reap an exec child. With abort, the child is killed
 * first (a failed or cancelled migration must not wait for it). Returns false
 * (errp) if the child exited with an error, so a failed `exec:` command fails
 * the migration. */
bool mig_channel_close(MigChannel *ch, bool abort, Error **errp);
/* Source, once the whole stream is written: close the fd (the command sees
 * the end of its input) and wait for an exec: command to exit. False (errp)
 * if it exited with an error or a signal, or if cancel_fd (an eventfd, or -1)
 * became readable first; then the child, if still running, is left for
 * mig_channel_close(abort) to kill. */
bool mig_channel_finish(MigChannel *ch, int cancel_fd, Error **errp);

/* Destination side: listen on a socket address, or open exec/fd/file at once.
 * `ready` is called on the main loop (with the BQL) once with the connected
 * channel; the listener stops listening after the first connection. */
typedef struct MigListener MigListener;
typedef void MigChannelReadyFn(MigChannel *ch, void *opaque);
MigListener *mig_listener_start(const MigAddress *addr, int passed_fd,
                                MigChannelReadyFn *ready, void *opaque, Error **errp);
/* Accept the next connection after one was delivered (and turned out not to
 * be a migration: a pre-flight check). Sockets only. [main loop] */
void mig_listener_resume(MigListener *l);
/* The listening sockets' addresses, as query-migrate's socket-address shows
 * them: a new list (qapi_free_SocketAddressList); NULL for exec/fd/file. */
SocketAddressList *mig_listener_addresses(const MigListener *l);
/* Stop listening (removes a unix socket file it created). */
void mig_listener_free(MigListener *l);

#endif
