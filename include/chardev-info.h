/*
 * What query-chardev and `info chardev` report: every chardev by label, in
 * the order they were created, with its backend's current address and
 * whether a user holds it open. The command line adds the entries; the code
 * that opens a chardev (monitors, hw/chardev.c) reports what happens to its
 * sockets. Calls naming a label that was never added (a NULL label, a unit
 * test's spec) do nothing. Main thread.
 */
#ifndef MIGVM_CHARDEV_INFO_H
#define MIGVM_CHARDEV_INFO_H

#include <stdbool.h>
#include "chardev-spec.h"

void chardev_info_add(const ChardevSpec *spec);      /* spec->id is the label */
void chardev_info_clear(void);

/* Somebody opened the chardev's backend (a monitor, the serial port or,
 * for a chardev nobody uses, main.c): see chardev_info_is_opened. */
void chardev_info_set_opened(const char *label);
bool chardev_info_is_opened(const char *label);
/* A monitor or a device uses the chardev (marks it opened too). */
void chardev_info_set_frontend_open(const char *label);

/* A server=on chardev listens on fd: its disconnected name is fd's address. */
void chardev_info_listening(const char *label, int listen_fd);
/* A connection on fd (accepted, or made out) begins / ends: call before
 * closing fd. The first live connection names the chardev. */
void chardev_info_connected(const char *label, int fd);
void chardev_info_disconnected(const char *label, int fd);

#endif
