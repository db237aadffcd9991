/*
 * Character backends (hw/chardev.c) for guest-facing devices (the serial
 * port), and for the chardevs nobody uses, which main.c opens as QEMU does:
 * file, stdio, pipe, UNIX/TCP socket (server with one client, or client),
 * none. Input is read on the glib main loop (BQL held there) and handed to
 * the device through its receive callback, never more than can_receive
 * allows; without one, a socket is only watched for its peer hanging up.
 */
#ifndef MIGVM_HW_CHARDEV_H
#define MIGVM_HW_CHARDEV_H

#include <stddef.h>
#include <stdint.h>
#include "chardev-spec.h"

typedef struct Chardev Chardev;
typedef int (*ChardevCanReceive)(void *opaque);
typedef void (*ChardevReceive)(void *opaque, const uint8_t *buf, int len);

/* spec NULL or CHARDEV_NONE gives a backend that drops output. */
Chardev *chardev_open(const ChardevSpec *spec, Error **errp);
void chardev_close(Chardev *chr);                    /* NULL-safe */
void chardev_set_handlers(Chardev *chr, ChardevCanReceive can_receive,
                          ChardevReceive receive, void *opaque);
/* Write now (file: appended and on disk when this returns). Output with
 * nobody connected is dropped. Any thread, BQL held. */
void chardev_write(Chardev *chr, const uint8_t *buf, size_t len);
/* The device can take input again: resume reading. [BQL] */
void chardev_accept_input(Chardev *chr);

#endif
