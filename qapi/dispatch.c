/*
 * QMP request dispatch (qmp-protocol.md 3.1, 3.4):
 *
 *   request --envelope checks--> command lookup --mode checks--> marshaller
 *           --> {"return": R, "id": ID} | {"id": ID, "error": {"class", "desc"}}
 *
 * Envelope checks visit the members in the order QEMU 7.2's dictionary
 * iterates them (its hash-bucket order), so that a request with several
 * faults gets the same message QEMU gives. Responses put their members in
 * the order QEMU prints them (return before id, id before error).
 */
#include "qmp-dispatch.h"

#include <string.h>
#include <glib.h>
#include "qapi-commands.h"

#define NEGOTIATION_COMMAND "qmp_capabilities"

static _Thread_local QmpDispatchState *cur_state;

QmpDispatchState *qmp_dispatch_cur_state(void)
{
    return cur_state;
}

/* QEMU 7.2's QDict bucket for a key (the tdb hash, 512 buckets). */
static unsigned qdict_bucket(const char *key)
{
    size_t len = strlen(key);
    unsigned value = 0x238F13AFu * (unsigned)len;
    for (size_t i = 0; i < len; i++) {
        value += (unsigned)(unsigned char)key[i] << (i * 5 % 24);
    }
    return (1103515243u * value + 12345u) % 512;
}

typedef struct KeyOrder {
    const char *key;
    json_object *value;
    unsigned bucket;
    size_t pos;
} KeyOrder;

static int key_order_cmp(const void *a, const void *b)
{
    const KeyOrder *x = a, *y = b;
    if (x->bucket != y->bucket) {
        return x->bucket < y->bucket ? -1 : 1;
    }
    return x->pos > y->pos ? -1 : 1;    /* same bucket: newest first */
}

static bool is_type(json_object *v, json_type t)
{
    return v && json_object_get_type(v) == t;
}

/* The envelope rules of table 3.1; sets *exec_key to "execute" or "exec-oob". */
static bool check_envelope(json_object *req, bool oob_enabled, const char **exec_key, Error **errp)
{
    size_t n = (size_t)json_object_object_length(req), i = 0;
    g_autofree KeyOrder *keys = g_new(KeyOrder, n ? n : 1);
    json_object_object_foreach(req, member, member_value) {
        keys[i] = (KeyOrder){ member, member_value, qdict_bucket(member), i };
        i++;
    }
    qsort(keys, n, sizeof(*keys), key_order_cmp);

    *exec_key = NULL;
    for (i = 0; i < n; i++) {
        const char *key = keys[i].key;
        json_object *value = keys[i].value;
        if (!strcmp(key, "execute") || (!strcmp(key, "exec-oob") && oob_enabled)) {
            if (!is_type(value, json_type_string)) {
                error_setg(errp, "QMP input member '%s' must be a string", key);
                return false;
            }
            if (*exec_key) {
                error_setg(errp, "QMP input member '%s' clashes with '%s'", key, *exec_key);
                return false;
            }
            *exec_key = !strcmp(key, "execute") ? "execute" : "exec-oob";
        } else if (!strcmp(key, "arguments")) {
            if (!is_type(value, json_type_object)) {
                error_setg(errp, "QMP input member 'arguments' must be an object");
                return false;
            }
        } else if (strcmp(key, "id") != 0) {
            error_setg(errp, "QMP input member '%s' is unexpected", key);
            return false;
        }
    }
    if (!*exec_key) {
        error_setg(errp, "QMP input lacks member 'execute'");
        return false;
    }
    return true;
}

static const QmpCommand *find_command(const char *name, bool oob, const QmpDispatchState *state, Error **errp)
{
    if (!state->negotiated && strcmp(name, NEGOTIATION_COMMAND) != 0) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Expecting capabilities negotiation with '" NEGOTIATION_COMMAND "'");
        return NULL;
    }
    const QmpCommand *cmd = qmp_command_find(name);
    if (!cmd) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND, "The command %s has not been found", name);
        return NULL;
    }
    if (oob && !(cmd->flags & QCO_ALLOW_OOB)) {
        error_setg(errp, "The command %s does not support OOB", name);
        return NULL;
    }
    return cmd;
}

static json_object *run_command(const QmpCommand *cmd, json_object *args, QmpDispatchState *state,
                                Monitor *cur, Error **errp)
{
    json_object *ret = NULL;
    Error *err = NULL;
    Monitor *old_mon = monitor_set_cur(cur);
    QmpDispatchState *old_state = cur_state;
    cur_state = state;
    cmd->fn(args, &ret, &err);
    cur_state = old_state;
    monitor_set_cur(old_mon);
    if (err) {
        json_object_put(ret);
        error_propagate(errp, err);
        return NULL;
    }
    return ret ? ret : json_object_new_object();
}

static json_object *error_object(const Error *err)
{
    json_object *e = json_object_new_object();
    json_object_object_add(e, "class", json_object_new_string(error_class_name(error_get_class(err))));
    json_object_object_add(e, "desc", json_object_new_string(error_get_pretty(err)));
    return e;
}

json_object *qmp_error_response(const Error *err)
{
    json_object *rsp = json_object_new_object();
    json_object_object_add(rsp, "error", error_object(err));
    return rsp;
}

json_object *qmp_dispatch(json_object *request, QmpDispatchState *state, Monitor *cur)
{
    Error *err = NULL;
    json_object *ret = NULL, *id = NULL;
    bool has_id = false;
    const char *exec_key;

    if (!is_type(request, json_type_object)) {
        error_setg(&err, "QMP input must be a JSON object");
        json_object *rsp = qmp_error_response(err);
        error_free(err);
        return rsp;
    }
    has_id = json_object_object_get_ex(request, "id", &id);

    if (check_envelope(request, state->oob_enabled, &exec_key, &err)) {
        const char *name = json_object_get_string(json_object_object_get(request, exec_key));
        bool oob = !strcmp(exec_key, "exec-oob");
        const QmpCommand *cmd = find_command(name, oob, state, &err);
        if (cmd) {
            json_object *args = json_object_object_get(request, "arguments");
            ret = run_command(cmd, args, state, cur, &err);
            if (!err && (cmd->flags & QCO_NO_SUCCESS_RESP)) {
                json_object_put(ret);
                return NULL;
            }
        }
    }

    json_object *rsp = json_object_new_object();
    if (err) {
        if (has_id) {
            json_object_object_add(rsp, "id", json_object_get(id));
        }
        json_object_object_add(rsp, "error", error_object(err));
        error_free(err);
    } else {
        json_object_object_add(rsp, "return", ret);
        if (has_id) {
            json_object_object_add(rsp, "id", json_object_get(id));
        }
    }
    return rsp;
}
