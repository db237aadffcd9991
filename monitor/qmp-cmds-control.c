/*
 * QMP commands about the protocol and the monitor itself: qmp_capabilities,
 * query-version, query-commands, query-qmp-schema, getfd, closefd,
 * human-monitor-command.
 */
#include "monitor-int.h"

#include <unistd.h>
#include "cpus.h"
#include "json-writer.h"
#include "qmp-dispatch.h"
#include "qapi-commands.h"
#include "qapi-introspect.h"
#include "vm.h"

bool qmp_qmp_capabilities(const q_obj_qmp_capabilities_arg *arg, Error **errp)
{
    QmpDispatchState *state = qmp_dispatch_cur_state();
    if (!state) {
        return true;                /* not run by a QMP session: nothing to switch */
    }
    if (state->negotiated) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Capabilities negotiation is already complete, command ignored");
        return false;
    }
    bool oob = false;
    for (const QMPCapabilityList *l = arg->enable; l; l = l->next) {
        /* Every valid QMPCapability (only oob) is offered by our monitors. */
        if (l->value == QMP_CAPABILITY_OOB) {
            oob = true;
        }
    }
    state->oob_enabled = oob;
    state->negotiated = true;
    return true;
}

VersionInfo *qmp_query_version(Error **errp)
{
    VersionInfo *info = g_new0(VersionInfo, 1);
    info->qemu = g_new0(VersionTriple, 1);
    info->qemu->major = MIGVM_QEMU_MAJOR;
    info->qemu->minor = MIGVM_QEMU_MINOR;
    info->qemu->micro = MIGVM_QEMU_MICRO;
    info->package = g_strdup(MIGVM_PACKAGE);
    return info;
}

static CommandInfoList *command_info_prepend(CommandInfoList *list, const char *name)
{
    CommandInfoList *node = g_new0(CommandInfoList, 1);
    node->value = g_new0(CommandInfo, 1);
    node->value->name = g_strdup(name);
    node->next = list;
    return node;
}

CommandInfoList *qmp_query_commands(Error **errp)
{
    QmpDispatchState *state = qmp_dispatch_cur_state();
    CommandInfoList *list = NULL;
    if (state && !state->negotiated) {
        return command_info_prepend(NULL, "qmp_capabilities");
    }
    for (size_t i = qmp_commands_count; i > 0; i--) {
        list = command_info_prepend(list, qmp_commands[i - 1].name);
    }
    return list;
}

/* 'gen': false: the schema text is parsed once and shared by reference; its
 * reply text is made once too (tens of kilobytes, written at every call). */
void qmp_marshal_query_qmp_schema(json_object *args, json_object **ret, Error **errp)
{
    static json_object *schema;
    /* Hand-written ('gen': false), so check "no arguments" as a generated
     * marshaller would. */
    if (args) {
        json_object_object_foreach(args, key, val) {
            (void)val;
            error_setg(errp, "Parameter '%s' is unexpected", key);
            return;
        }
    }
    if (!schema) {
        schema = json_tokener_parse(qmp_schema_json);
        if (!schema) {
            error_setg(errp, "The QMP schema is not available");
            return;
        }
        json_write_set_constant(schema);
    }
    *ret = json_object_get(schema);
}

bool qmp_getfd(const q_obj_getfd_arg *arg, Error **errp)
{
    Monitor *mon = monitor_cur();
    int fd = mon ? monitor_take_received_fd(mon) : -1;
    if (fd < 0) {
        error_setg(errp, "No file descriptor supplied via SCM_RIGHTS");
        return false;
    }
    if (g_ascii_isdigit(arg->fdname[0])) {
        close(fd);
        error_setg(errp, "Parameter 'fdname' expects a name not starting with a digit");
        return false;
    }
    monitor_fd_add(mon, arg->fdname, fd);
    return true;
}

bool qmp_closefd(const q_obj_closefd_arg *arg, Error **errp)
{
    return monitor_fd_close(monitor_cur(), arg->fdname, errp);
}

char *qmp_human_monitor_command(const q_obj_human_monitor_command_arg *arg, Error **errp)
{
    /* The vCPUs that exist: none on -M none, as in QEMU 7.2. */
    if (arg->has_cpu_index && (arg->cpu_index < 0 || arg->cpu_index >= cpus_count())) {
        error_setg(errp, "Parameter 'cpu-index' expects a CPU number");
        return NULL;
    }
    return hmp_run_capture(arg->command_line, arg->has_cpu_index ? (int)arg->cpu_index : 0);
}
