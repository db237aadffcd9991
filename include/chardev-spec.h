/*
 * Character device specs as -qmp, -monitor and -serial take them
 * (system/chardev-spec.c parses them; monitors and hw/chardev.c open them).
 */
#ifndef MIGVM_CHARDEV_SPEC_H
#define MIGVM_CHARDEV_SPEC_H

#include <stdbool.h>
#include "error.h"

/* A -qmp / -monitor / -serial style character device spec, parsed:
 *   stdio | unix:PATH[,server=on][,wait=off] | tcp:HOST:PORT[,server=on][,wait=off]
 *   | file:PATH | none   (file/none only make sense for -serial) */
typedef enum ChardevKind { CHARDEV_NONE, CHARDEV_STDIO, CHARDEV_UNIX, CHARDEV_TCP, CHARDEV_FILE } ChardevKind;
typedef struct ChardevSpec {
    ChardevKind kind;
    char *path;               /* unix, file */
    char *host, *port;        /* tcp */
    bool server;              /* server=on (default on for monitors) */
    bool wait;                /* wait=on: block at startup until a client connects */
    bool pretty;              /* pretty=on (QMP) */
} ChardevSpec;
bool chardev_spec_parse(const char *text, ChardevSpec *spec, Error **errp);
void chardev_spec_clear(ChardevSpec *spec);

#endif
