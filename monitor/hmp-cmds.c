/*
 * HMP commands for help, run state, version and descriptors. HMP prints,
 * QMP decides: each handler calls the qmp_* implementation and prints its
 * answer, or "Error: <desc>".
 */
#include <inttypes.h>
#include <unistd.h>

#include "hmp-int.h"
#include "cpus.h"
#include "hmp-print.h"
#include "qapi-commands.h"
#include "user-object.h"
#include "vm.h"

static void print_gstring(Monitor *mon, GString *text)
{
    monitor_puts(mon, text->str);
}

void hmp_help(Monitor *mon, const HmpArgs *args)
{
    hmp_help_cmd(mon, hmp_args_str(args, "name"));
}

void hmp_info_help(Monitor *mon, const HmpArgs *args)
{
    hmp_help_cmd(mon, "info");
}

void hmp_info_version(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    VersionInfo *info = qmp_query_version(&err);
    g_autoptr(GString) out = g_string_new(NULL);

    if (err) {
        hmp_handle_error(mon, err);
        return;
    }
    hmp_format_version(out, info);
    print_gstring(mon, out);
    qapi_free_VersionInfo(info);
}

void hmp_info_status(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    StatusInfo *info = qmp_query_status(&err);
    g_autoptr(GString) out = g_string_new(NULL);

    if (err) {
        hmp_handle_error(mon, err);
        return;
    }
    hmp_format_status(out, info);
    print_gstring(mon, out);
    qapi_free_StatusInfo(info);
}

void hmp_info_kvm(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    KvmInfo *info = qmp_query_kvm(&err);
    g_autoptr(GString) out = g_string_new(NULL);

    if (err) {
        hmp_handle_error(mon, err);
        return;
    }
    hmp_format_kvm(out, info);
    print_gstring(mon, out);
    qapi_free_KvmInfo(info);
}

void hmp_info_name(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    NameInfo *info = qmp_query_name(&err);

    if (err) {
        hmp_handle_error(mon, err);
        return;
    }
    if (info->name) {
        monitor_printf(mon, "%s\n", info->name);
    }
    qapi_free_NameInfo(info);
}

void hmp_info_chardev(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    ChardevInfoList *list = qmp_query_chardev(&err);

    if (err) {
        hmp_handle_error(mon, err);
        return;
    }
    for (ChardevInfoList *l = list; l; l = l->next) {
        monitor_printf(mon, "%s: filename=%s\n", l->value->label, l->value->filename);
    }
    qapi_free_ChardevInfoList(list);
}

void hmp_stop(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;

    qmp_stop(&err);
    hmp_handle_error(mon, err);
}

void hmp_cont(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    bool force = hmp_args_bool(args, "force");
    q_obj_cont_arg arg = { .has_x_force_after_migration = force, .x_force_after_migration = force };

    qmp_cont(&arg, &err);
    hmp_handle_error(mon, err);
}

void hmp_system_reset(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;

    qmp_system_reset(&err);
    hmp_handle_error(mon, err);
}

void hmp_quit(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;

    /* No prompt and no more input: the connection ends with the process. */
    hmp_monitor_suspend(mon);
    qmp_quit(&err);
    hmp_handle_error(mon, err);
}

void hmp_getfd(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    q_obj_getfd_arg arg = { .fdname = (char *)hmp_args_str(args, "fdname") };

    qmp_getfd(&arg, &err);
    hmp_handle_error(mon, err);
}

/* The text is QEMU's -object syntax, which user-object.c turns into object-add's arguments. */
void hmp_object_add(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    user_object_add_text(hmp_args_str(args, "object"), &err);
    hmp_handle_error(mon, err);
}

void hmp_object_del(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    q_obj_object_del_arg arg = { .id = (char *)hmp_args_str(args, "id") };
    qmp_object_del(&arg, &err);
    hmp_handle_error(mon, err);
}

void hmp_closefd(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    q_obj_closefd_arg arg = { .fdname = (char *)hmp_args_str(args, "fdname") };

    qmp_closefd(&arg, &err);
    hmp_handle_error(mon, err);
}

void hmp_memsave(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    q_obj_memsave_arg arg = {
        .val = hmp_args_int(args, "val"),
        .size = hmp_args_int(args, "size"),
        .filename = (char *)hmp_args_str(args, "filename"),
        .has_cpu_index = true,
        .cpu_index = mon->cpu_index,    /* the monitor's current CPU */
    };

    if (mon->cpu_index >= cpus_count()) {
        monitor_printf(mon, "No CPU available\n");     /* -M none, as QEMU 7.2 */
        return;
    }
    qmp_memsave(&arg, &err);
    hmp_handle_error(mon, err);
}

void hmp_pmemsave(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    q_obj_pmemsave_arg arg = {
        .val = hmp_args_int(args, "val"),
        .size = hmp_args_int(args, "size"),
        .filename = (char *)hmp_args_str(args, "filename"),
    };

    qmp_pmemsave(&arg, &err);
    hmp_handle_error(mon, err);
}
