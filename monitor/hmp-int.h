/*
 * HMP internals: the command tables, the dispatcher and the command
 * handlers (monitor/hmp*.c). Private to monitor/.
 */
#ifndef MIGVM_HMP_INT_H
#define MIGVM_HMP_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include "monitor-int.h"
#include "hmp-parse.h"

typedef void HmpCommandFn(Monitor *mon, const HmpArgs *args);

typedef struct HmpCommand {
    const char *name;           /* "stop|s": the name, then aliases */
    const char *args_type;      /* see hmp-parse.h */
    const char *params;         /* usage shown by help */
    const char *help;
    HmpCommandFn *cmd;          /* NULL: not linked in (command hidden) */
    const struct HmpCommand *sub_table;     /* `info` */
} HmpCommand;

/* NULL-name terminated. [hmp-commands.c] */
extern const HmpCommand hmp_cmds[];
extern const HmpCommand hmp_info_cmds[];

/* --- hmp.c --- */
/* Run one command line on `mon` (which must be current). */
void hmp_handle_command(Monitor *mon, const char *line);
/* `help` with the words after it (NULL: everything). */
void hmp_help_cmd(Monitor *mon, const char *name);
/* Print the text as is, converting "\n" to "\r\n". */
void monitor_puts(Monitor *mon, const char *text);
/* "Error: <desc>" and free the error. */
void hmp_handle_error(Monitor *mon, Error *err);
/* Stop reading the monitor's input and showing the prompt (a command that
 * finishes later, e.g. synchronous migrate). false if this monitor cannot
 * be suspended (human-monitor-command capture). */
bool hmp_monitor_suspend(Monitor *mon);
/* Undo hmp_monitor_suspend: prompt, then process input that waited. */
void hmp_monitor_resume(Monitor *mon);
/* A glib source working for a suspended monitor; removed if the client
 * goes away first (0 to forget it). */
void hmp_monitor_set_source(Monitor *mon, guint source_id);
/* True for the interactive console (readline on a terminal). */
bool hmp_monitor_is_interactive(Monitor *mon);
/* True if the monitor is still open (the client did not disconnect). */
bool hmp_monitor_alive(Monitor *mon);

/* --- handlers: hmp-cmds.c --- */
HmpCommandFn hmp_help, hmp_info_help, hmp_info_version, hmp_info_status, hmp_info_name, hmp_info_chardev, hmp_info_kvm,
    hmp_info_cpus, hmp_stop, hmp_cont, hmp_system_reset, hmp_quit, hmp_getfd, hmp_closefd, hmp_object_add, hmp_object_del, hmp_memsave, hmp_pmemsave;

/* --- handlers: hmp-cmds-migration.c --- */
HmpCommandFn hmp_migrate, hmp_migrate_incoming, hmp_migrate_cancel, hmp_migrate_continue, hmp_migrate_pause, hmp_migrate_recover,
    hmp_migrate_start_postcopy,
    hmp_migrate_set_capability, hmp_migrate_set_parameter, hmp_info_migrate, hmp_info_migrate_capabilities,
    hmp_info_migrate_parameters;
/* --- handlers: hmp-cmds-history.c --- */
HmpCommandFn hmp_info_migrate_history;
/* --- handlers: hmp-cmds-block.c --- */
HmpCommandFn hmp_info_block, hmp_info_blockstats;
/* --- handlers: hmp-cmds-check.c --- */
HmpCommandFn hmp_migrate_check;
/* --- handlers: hmp-cmds-dirtyrate.c --- */
HmpCommandFn hmp_calc_dirty_rate, hmp_info_dirty_rate;
HmpCommandFn hmp_set_vcpu_dirty_limit, hmp_cancel_vcpu_dirty_limit, hmp_info_vcpu_dirty_limit;
/* --- handlers: hmp-cmds-cpu.c --- */
HmpCommandFn hmp_info_registers;
/* hmp-cmds-qemu-io.c: reads and writes a drive through the block layer. */
HmpCommandFn hmp_qemu_io;

#endif
