/*
 * Character device specs: what -chardev, -qmp, -monitor and -serial name
 * (system/chardev-spec.c parses them; monitors and hw/chardev.c open them,
 * both through the socket helpers of chardev-socket.h).
 */
#ifndef MIGVM_CHARDEV_SPEC_H
#define MIGVM_CHARDEV_SPEC_H

#include <stdbool.h>
#include "error.h"

/*
 * CHARDEV_NONE is QEMU's "null" (and -serial none): output dropped, no input.
 * CHARDEV_FD is a socket chardev on an inherited descriptor (fd=N): a
 * listening socket with server=on, a connected one with server=off.
 */
typedef enum ChardevKind {
    CHARDEV_NONE, CHARDEV_STDIO, CHARDEV_UNIX, CHARDEV_TCP, CHARDEV_FILE, CHARDEV_PIPE, CHARDEV_FD,
} ChardevKind;

typedef struct ChardevSpec {
    ChardevKind kind;
    char *id;                 /* -chardev id= (generated for shorthands) */
    char *path;               /* unix, file, pipe */
    char *host, *port;        /* tcp */
    int fd;                   /* fd */
    bool server;              /* listen (server=on) rather than connect */
    bool wait;                /* server: block at startup until a client connects */
    int reconnect;            /* client: seconds between connection attempts, 0 = never */
    bool append;              /* file: append rather than truncate */
    bool pretty;              /* pretty=on (QMP, -qmp shorthand) */
} ChardevSpec;

/* The -qmp / -monitor / -serial shorthand:
 *   stdio | none | null | file:PATH | pipe:PATH
 *   | unix:PATH[,server=on|off][,wait=on|off]
 *   | tcp:HOST:PORT[,server=...][,wait=...][,reconnect=N] ...
 * Sockets connect out unless server=on, as in QEMU. */
bool chardev_spec_parse(const char *text, ChardevSpec *spec, Error **errp);

/* -chardev BACKEND,id=ID[,key=value...] with QEMU 7.2's keys; backends
 * socket, stdio, file, pipe and null. Sockets default to server=off. */
bool chardev_spec_parse_chardev(const char *text, ChardevSpec *spec, Error **errp);

bool chardev_spec_is_socket(const ChardevSpec *spec);
/* "unix:PATH", "tcp:HOST:PORT", "fd:N", ... for messages (g_free it). */
char *chardev_spec_describe(const ChardevSpec *spec);
void chardev_spec_copy(ChardevSpec *dst, const ChardevSpec *src);
void chardev_spec_clear(ChardevSpec *spec);

#endif
