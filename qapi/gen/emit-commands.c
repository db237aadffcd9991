/*
 * qapi-commands.h / qapi-commands.c: handler prototypes, marshallers that
 * validate everything before calling the handler, and the sorted command
 * table with qmp_command_find().
 */
#include "emit.h"
#include "cname.h"

#include <string.h>

static char *handler_ret_type(const Entity *cmd)
{
    return cmd->ret_type ? c_type(cmd->ret_type) : g_strdup("bool");
}

static char *handler_params(const Entity *cmd)
{
    if (cmd->arg_type) {
        g_autofree char *an = c_type_name(cmd->arg_type);
        return g_strdup_printf("const %s *arg, Error **errp", an);
    }
    return g_strdup("Error **errp");
}

static void free_result(GString *c, const Entity *t, const char *indent)
{
    g_autofree char *tn = c_type_name(t);

    if (t->meta == META_BUILTIN) {
        if (t->bkind == BK_STR) {
            g_string_append_printf(c, "%sg_free(r);\n", indent);
        } else if (t->bkind == BK_ANY) {
            g_string_append_printf(c, "%sjson_object_put(r);\n", indent);
        }
    } else if (t->meta != META_ENUM) {
        g_string_append_printf(c, "%sqapi_free_%s(r);\n", indent, tn);
    }
}

static void marshaller(GString *c, const Entity *cmd)
{
    g_autofree char *cn = c_ident(cmd->name);
    g_autofree char *rt = handler_ret_type(cmd);
    g_autofree char *an = cmd->arg_type ? c_type_name(cmd->arg_type) : NULL;

    g_string_append_printf(c, "void qmp_marshal_%s(json_object *args, json_object **ret, Error **errp)\n{\n"
                           "    json_object *empty = NULL;\n    Error *err = NULL;\n", cn);
    if (an) {
        g_string_append_printf(c, "    %s *arg = NULL;\n", an);
    }
    g_string_append_printf(c, "    %s%sr;\n    bool ok;\n\n", rt, g_str_has_suffix(rt, "*") ? "" : " ");
    g_string_append(c, "    if (!args) {\n        args = empty = json_object_new_object();\n    }\n");
    if (an) {
        g_string_append_printf(c, "    ok = qapi_from_json_%s(args, NULL, &arg, errp);\n", an);
    } else {
        g_string_append(c, "    ok = qapi_check_object(args, NULL, errp) &&\n"
                        "         qapi_check_unknown(args, NULL, NULL, NULL, errp);\n");
    }
    g_string_append(c, "    json_object_put(empty);\n    if (!ok) {\n        return;\n    }\n");
    g_string_append_printf(c, "    r = qmp_%s(%s&err);\n", cn, an ? "arg, " : "");
    if (an) {
        g_string_append_printf(c, "    qapi_free_%s(arg);\n", an);
    }
    g_string_append(c, "    if (err) {\n        error_propagate(errp, err);\n");
    if (cmd->ret_type) {
        free_result(c, cmd->ret_type, "        ");
    }
    g_string_append(c, "        return;\n    }\n");
    if (cmd->ret_type) {
        g_autofree char *rn = c_type_name(cmd->ret_type);
        g_string_append_printf(c, "    *ret = qapi_to_json_%s(r);\n", rn);
        free_result(c, cmd->ret_type, "    ");
    } else {
        g_string_append(c, "    (void)r;\n    *ret = json_object_new_object();\n");
    }
    g_string_append(c, "}\n\n");
}

static gint cmp_name(gconstpointer a, gconstpointer b)
{
    const Entity *x = *(Entity *const *)a;
    const Entity *y = *(Entity *const *)b;

    return strcmp(x->name, y->name);
}

static void command_table(GString *c, const Schema *s)
{
    g_autoptr(GPtrArray) cmds = g_ptr_array_new();

    for (guint i = 0; i < s->entities->len; i++) {
        Entity *e = s->entities->pdata[i];
        if (e->meta == META_COMMAND) {
            g_ptr_array_add(cmds, e);
        }
    }
    g_ptr_array_sort(cmds, cmp_name);
    g_string_append(c, "/* Sorted by strcmp() of the name, for qmp_command_find(). */\n"
                    "const QmpCommand qmp_commands[] = {\n");
    for (guint i = 0; i < cmds->len; i++) {
        Entity *e = cmds->pdata[i];
        g_autofree char *cn = c_ident(e->name);
        GString *flags = g_string_new(NULL);
        if (e->allow_oob) {
            g_string_append(flags, " | QCO_ALLOW_OOB");
        }
        if (e->allow_preconfig) {
            g_string_append(flags, " | QCO_ALLOW_PRECONFIG");
        }
        if (!e->success_response) {
            g_string_append(flags, " | QCO_NO_SUCCESS_RESP");
        }
        if (e->coroutine) {
            g_string_append(flags, " | QCO_COROUTINE");
        }
        emit_if(c, e->cond);
        g_string_append(c, "    { ");
        emit_c_string(c, e->name);
        g_string_append_printf(c, ", qmp_marshal_%s, %s },\n", cn, flags->len ? flags->str + 3 : "0");
        emit_endif(c, e->cond);
        g_string_free(flags, TRUE);
    }
    g_string_append(c, "};\n\nconst size_t qmp_commands_count = sizeof(qmp_commands) / sizeof(qmp_commands[0]);\n\n"
                    "static int command_cmp(const void *key, const void *elem)\n{\n"
                    "    return strcmp(key, ((const QmpCommand *)elem)->name);\n}\n\n"
                    "const QmpCommand *qmp_command_find(const char *name)\n{\n"
                    "    if (!name) {\n        return NULL;\n    }\n"
                    "    return bsearch(name, qmp_commands, qmp_commands_count, sizeof(qmp_commands[0]), command_cmp);\n"
                    "}\n");
}

void emit_commands(const Schema *s, const Output *o)
{
    GString *h = g_string_new(NULL);
    GString *c = g_string_new(NULL);

    emit_banner(h, o, "QMP commands: handler prototypes, marshallers, command table.");
    g_string_append(h, "#ifndef QAPI_COMMANDS_H\n#define QAPI_COMMANDS_H\n\n#include \"qapi-types.h\"\n\n"
                    "/*\n * Handlers (hand-written). A handler without 'returns' returns true on success;\n"
                    " * otherwise it returns the result (NULL is an empty list). Either way the\n"
                    " * marshaller decides success by *errp alone.\n */\n");
    for (guint i = 0; i < s->entities->len; i++) {
        Entity *e = s->entities->pdata[i];
        g_autofree char *cn = NULL;
        g_autofree char *rt = NULL;
        g_autofree char *params = NULL;
        if (e->meta != META_COMMAND || !e->gen) {
            continue;
        }
        cn = c_ident(e->name);
        rt = handler_ret_type(e);
        params = handler_params(e);
        emit_if(h, e->cond);
        g_string_append_printf(h, "%s%sqmp_%s(%s);\n", rt, g_str_has_suffix(rt, "*") ? "" : " ", cn, params);
        emit_endif(h, e->cond);
    }
    g_string_append(h, "\n/*\n * Marshallers: args may be NULL (no arguments). On success *ret is the\n"
                    " * result ({} for commands without 'returns'); on failure errp is set and the\n"
                    " * handler was not called if the arguments were invalid. Commands with\n"
                    " * 'gen': false have hand-written marshallers.\n */\n"
                    "typedef void QmpMarshalFn(json_object *args, json_object **ret, Error **errp);\n");
    for (guint i = 0; i < s->entities->len; i++) {
        Entity *e = s->entities->pdata[i];
        g_autofree char *cn = NULL;
        if (e->meta != META_COMMAND) {
            continue;
        }
        cn = c_ident(e->name);
        emit_if(h, e->cond);
        g_string_append_printf(h, "QmpMarshalFn qmp_marshal_%s;\n", cn);
        emit_endif(h, e->cond);
    }
    g_string_append(h, "\nenum { QCO_ALLOW_OOB = 1, QCO_ALLOW_PRECONFIG = 2, QCO_NO_SUCCESS_RESP = 4, QCO_COROUTINE = 8 };\n"
                    "typedef struct QmpCommand {\n    const char *name;\n    QmpMarshalFn *fn;\n    unsigned flags;\n"
                    "} QmpCommand;\n"
                    "extern const QmpCommand qmp_commands[];\nextern const size_t qmp_commands_count;\n"
                    "/* Binary search; NULL if unknown. */\n"
                    "const QmpCommand *qmp_command_find(const char *name);\n\n#endif\n");

    emit_banner(c, o, "QMP commands: marshallers and command table.");
    g_string_append(c, "#include \"qapi-commands.h\"\n#include \"qapi-json.h\"\n#include \"qapi-runtime.h\"\n\n"
                    "#include <glib.h>\n#include <stdlib.h>\n#include <string.h>\n\n");
    for (guint i = 0; i < s->entities->len; i++) {
        Entity *e = s->entities->pdata[i];
        if (e->meta == META_COMMAND && e->gen) {
            emit_if(c, e->cond);
            marshaller(c, e);
            emit_endif(c, e->cond);
        }
    }
    command_table(c, s);
    emit_write_file(o, "qapi-commands.h", h);
    emit_write_file(o, "qapi-commands.c", c);
    g_string_free(h, TRUE);
    g_string_free(c, TRUE);
}
