/*
 * The QEMU-style command line, parsed into plain data (system/cmdline.c).
 * Nothing here touches the machine: main.c acts on the result.
 */
#ifndef MIGVM_SYSTEM_CMDLINE_H
#define MIGVM_SYSTEM_CMDLINE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <glib.h>
#include "error.h"
#include "monitor.h"
#include "opts.h"

#define CMDLINE_DEFAULT_RAM_SIZE (128ULL << 20)
#define CMDLINE_MAX_CPUS 64

/* One accelerator candidate, in the order the user listed them. */
typedef struct CmdlineAccel {
    char *name;               /* "kvm" or "soft" ("tcg" is accepted as "soft") */
    char *opts;               /* options after the name, or NULL */
    const char *origin;       /* option that named it, for messages */
} CmdlineAccel;

/* A monitor: -mon, or what -qmp / -monitor imply. */
typedef struct CmdlineMonitor {
    char *chardev;            /* id of one of CmdlineOptions.chardevs */
    bool is_qmp;              /* mode=control */
    bool pretty;              /* QMP pretty=on */
    const char *origin;       /* "-mon", "-qmp" or "-monitor", for messages */
} CmdlineMonitor;

typedef struct CmdlineOptions {
    char *name;               /* -name */
    uint64_t ram_size;        /* -m, bytes */
    int smp_cpus;             /* -smp */
    int smp_sockets, smp_dies, smp_cores, smp_threads;  /* -smp topology, QEMU 7.2's defaults */
    GPtrArray *accels;        /* CmdlineAccel*, tried in order; empty: automatic */
    char *machine;            /* -machine type */
    GPtrArray *chardevs;      /* ChardevSpec*, each with an id: -chardev, and those the
                               * shorthands -qmp, -monitor and -serial imply */
    GPtrArray *monitors;      /* CmdlineMonitor*: -mon, -qmp, -monitor (none dropped) */
    int compat_monitors;      /* ids given to -qmp / -monitor chardevs so far */
    bool monitor_given;       /* any -monitor, including none */
    char *serial;             /* -serial text (validated), NULL = default */
    bool isa_serial;          /* -device isa-serial given */
    char *serial_device;      /* its chardev=, or NULL */
    char *serial_chardev;     /* after cmdline_finish: the serial port's chardev id, NULL = none */
    GPtrArray *drives;        /* char*: each -drive's text, in order */
    GPtrArray *devices;       /* DeviceSpec*: each -device, in order */
    GPtrArray *objects;       /* char*: each -object's text, in order */
    char *incoming;           /* -incoming URI or "defer" */
    char *pidfile;
    bool start_paused;        /* -S */
    bool no_shutdown;         /* -no-shutdown: a guest shutdown stops the VM instead of exiting */
    bool nodefaults;
    bool nographic;
    bool daemonize;
    bool mem_prealloc;          /* -mem-prealloc */
    bool show_help;           /* -help: print usage, exit 0 */
    bool show_version;        /* -version */
    bool machine_help;        /* -machine help */
} CmdlineOptions;

void cmdline_options_init(CmdlineOptions *o);
void cmdline_options_clear(CmdlineOptions *o);

/* Parse argv[1..]. On failure errp holds one line naming the option
 * ("-m: invalid size 'x'"); the caller prefixes "migvm: ". */
bool cmdline_parse(int argc, char **argv, CmdlineOptions *out, Error **errp);

/* Apply -nographic / -nodefaults defaults (serial and monitor on stdio),
 * resolve chardev references and check the combinations (a chardev used
 * twice, stdio used twice, -daemonize with stdio). */
bool cmdline_finish(CmdlineOptions *o, Error **errp);

/* The chardev named id, or NULL. */
const ChardevSpec *cmdline_find_chardev(const CmdlineOptions *o, const char *id);
/* Note -device isa-serial (the serial port) before the -nographic defaults. */
bool cmdline_scan_serial_devices(CmdlineOptions *o, Error **errp);

/* Pick the accelerator. kvm_error is NULL when /dev/kvm is usable, else
 * why not. *warning gets a message to print when falling back silently
 * would surprise (automatic choice without KVM), or NULL. */
bool cmdline_choose_accel(const CmdlineOptions *o, const char *kvm_error, char **accel,
                          char **accel_opts, char **warning, Error **errp);

void cmdline_print_help(FILE *out);

#endif
