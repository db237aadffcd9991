/*
 * Sockets of socket chardevs, for every user of a chardev (monitors in
 * monitor/monitor-server.c, the serial port's backend in hw/chardev.c):
 * one implementation of listening, connecting and inherited descriptors.
 */
#ifndef MIGVM_CHARDEV_SOCKET_H
#define MIGVM_CHARDEV_SOCKET_H

#include "chardev-spec.h"

#define CHARDEV_SOCKET_MAX_LISTEN 8

/* The listening sockets of a server=on spec: a UNIX socket (a stale file is
 * replaced), a TCP socket on every address HOST resolves to, or the
 * inherited fd (checked to be a listening socket; it is ours from now on).
 * Non-blocking and close-on-exec. Fills fds; returns how many (>= 1), or -1
 * with errp set. */
int chardev_socket_listen(const ChardevSpec *spec, int fds[CHARDEV_SOCKET_MAX_LISTEN], Error **errp);

/* A connected socket for a server=off spec: connect to the UNIX path or
 * HOST:PORT, or take the inherited fd (checked to be a socket). Returns the
 * fd (close-on-exec), or -1 with errp set. */
int chardev_socket_connect(const ChardevSpec *spec, Error **errp);

#endif
