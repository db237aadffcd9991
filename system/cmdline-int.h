/*
 * Between cmdline.c (the option table), cmdline-chardev.c (chardevs and the
 * options that use them) and cmdline-refused.c. Private to system/.
 */
#ifndef MIGVM_SYSTEM_CMDLINE_INT_H
#define MIGVM_SYSTEM_CMDLINE_INT_H

#include "cmdline.h"

bool opt_chardev(CmdlineOptions *o, const char *name, const char *arg, Error **errp);
bool opt_mon(CmdlineOptions *o, const char *name, const char *arg, Error **errp);
bool opt_qmp(CmdlineOptions *o, const char *name, const char *arg, Error **errp);
bool opt_monitor(CmdlineOptions *o, const char *name, const char *arg, Error **errp);
bool opt_serial(CmdlineOptions *o, const char *name, const char *arg, Error **errp);

/* Resolve chardev references, refuse a chardev with two users and stdio
 * used twice (cmdline_finish, after the -nographic defaults). */
bool cmdline_chardev_finish(CmdlineOptions *o, Error **errp);

/* Why migvm refuses a QEMU option it has no entry for, or NULL for an
 * option QEMU does not have either (system/cmdline-refused.c). */
const char *cmdline_refused_reason(const char *name);

/* GDestroyNotify for o->monitors and o->chardevs. */
void cmdline_monitor_free(gpointer p);
void cmdline_chardev_free(gpointer p);

#endif
