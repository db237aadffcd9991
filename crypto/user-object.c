/*
 * The registry of user-creatable objects: id -> refcounted object.
 * QMP object-add takes ObjectOptions (qapi/qom.json); -object and HMP
 * object_add take QEMU's "TYPE,id=ID,key=value" text, which is turned into
 * the same JSON and checked by the same generated converter, so both give
 * QEMU 7.2's errors, or that JSON itself (text starting with '{').
 */
#include "object-types.h"
#include "qapi-commands.h"
#include "qapi-json.h"
#include "json-streamer.h"
#include "../system/opts.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <json-c/json.h>

struct UserObject {
    ObjectType type;
    char *id;
    void *data;
    int refs;                   /* [registry_lock] */
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static GHashTable *registry;    /* id -> UserObject *, [registry_lock] */

/* QEMU's id_wellformed: a letter, then letters, digits, '-', '.', '_'. */
static bool id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id + 1; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

static void object_free(UserObject *obj)
{
    if (obj->type == OBJECT_TYPE_TLS_CREDS_X509) {
        tls_creds_x509_free(obj->data);
    } else {
        authz_free(obj->data);
    }
    g_free(obj->id);
    g_free(obj);
}

void user_object_unref(UserObject *obj)
{
    if (!obj) {
        return;
    }
    pthread_mutex_lock(&registry_lock);
    bool last = --obj->refs == 0;
    pthread_mutex_unlock(&registry_lock);
    if (last) {
        object_free(obj);
    }
}

static bool id_taken(const char *id)
{
    pthread_mutex_lock(&registry_lock);
    bool taken = registry && g_hash_table_contains(registry, id);
    pthread_mutex_unlock(&registry_lock);
    return taken;
}

bool user_object_add(const ObjectOptions *opts, Error **errp)
{
    if (!id_wellformed(opts->id)) {
        error_setg(errp, "Parameter 'id' expects an identifier");
        return false;
    }
    /* Checked before the files are read, as QEMU 7.2 reports it first. */
    if (id_taken(opts->id)) {
        error_setg(errp, "attempt to add duplicate property '%s' to object (type 'container')", opts->id);
        return false;
    }
    void *data;
    switch (opts->qom_type) {
    case OBJECT_TYPE_TLS_CREDS_X509:
        data = tls_creds_x509_create(opts->id, &opts->u.tls_creds_x509, errp);
        break;
    case OBJECT_TYPE_AUTHZ_SIMPLE:
        data = authz_simple_create(opts->id, &opts->u.authz_simple, errp);
        break;
    case OBJECT_TYPE_AUTHZ_LIST:
        data = authz_list_create(opts->id, &opts->u.authz_list, errp);
        break;
    default:
        error_setg(errp, "Parameter 'qom-type' does not accept value '%s'", ObjectType_str(opts->qom_type));
        return false;
    }
    if (!data) {
        return false;
    }
    UserObject *obj = g_new0(UserObject, 1);
    obj->type = opts->qom_type;
    obj->id = g_strdup(opts->id);
    obj->data = data;
    obj->refs = 1;
    pthread_mutex_lock(&registry_lock);
    if (!registry) {
        registry = g_hash_table_new(g_str_hash, g_str_equal);
    }
    bool dup = g_hash_table_contains(registry, obj->id);
    if (!dup) {
        g_hash_table_insert(registry, obj->id, obj);
    }
    pthread_mutex_unlock(&registry_lock);
    if (dup) {          /* another thread added the same id meanwhile */
        error_setg(errp, "attempt to add duplicate property '%s' to object (type 'container')", obj->id);
        object_free(obj);
        return false;
    }
    return true;
}

bool user_object_del(const char *id, Error **errp)
{
    pthread_mutex_lock(&registry_lock);
    UserObject *obj = registry ? g_hash_table_lookup(registry, id) : NULL;
    if (obj) {
        g_hash_table_remove(registry, id);
    }
    pthread_mutex_unlock(&registry_lock);
    if (!obj) {
        error_setg(errp, "object '%s' not found", id);
        return false;
    }
    user_object_unref(obj);
    return true;
}

void user_object_del_all(void)
{
    pthread_mutex_lock(&registry_lock);
    GHashTable *all = registry;
    registry = NULL;
    pthread_mutex_unlock(&registry_lock);
    if (!all) {
        return;
    }
    GHashTableIter it;
    gpointer value;
    g_hash_table_iter_init(&it, all);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        user_object_unref(value);
    }
    g_hash_table_destroy(all);
}

UserObject *user_object_get(const char *id)
{
    pthread_mutex_lock(&registry_lock);
    UserObject *obj = registry ? g_hash_table_lookup(registry, id) : NULL;
    if (obj) {
        obj->refs++;
    }
    pthread_mutex_unlock(&registry_lock);
    return obj;
}

ObjectType user_object_type(const UserObject *obj)
{
    return obj->type;
}

const char *user_object_id(const UserObject *obj)
{
    return obj->id;
}

void *user_object_data(const UserObject *obj)
{
    return obj->data;
}

/* ---- QEMU's option text -> the JSON object-add takes --------------------- */

/* Members the option text gives as on/off. */
static bool is_bool_member(const char *key)
{
    return !strcmp(key, "verify-peer") || !strcmp(key, "sanity-check");
}

/* rules.N.member=value: into rules[N] (rules given in index order). */
static bool put_rule(json_object *o, const char *key, const char *value, Error **errp)
{
    char *end;
    unsigned long n = strtoul(key, &end, 10);
    if (end == key || *end != '.' || !end[1] || n > 1000) {
        error_setg(errp, "Parameter 'rules.%s' is unexpected", key);
        return false;
    }
    json_object *rules;
    if (!json_object_object_get_ex(o, "rules", &rules)) {
        rules = json_object_new_array();
        json_object_object_add(o, "rules", rules);
    }
    while (json_object_array_length(rules) <= n) {
        json_object_array_add(rules, json_object_new_object());
    }
    json_object_object_add(json_object_array_get_idx(rules, n), end + 1, json_object_new_string(value));
    return true;
}

static json_object *text_to_json(const char *text, Error **errp)
{
    GPtrArray *items = split_opts(text);
    json_object *o = json_object_new_object();
    bool ok = items->len > 0;
    if (!ok) {
        error_setg(errp, "Parameter 'qom-type' is missing");
    }
    for (guint i = 0; ok && i < items->len; i++) {
        const char *item = items->pdata[i];
        const char *eq = strchr(item, '=');
        if (i == 0 && !eq) {
            json_object_object_add(o, "qom-type", json_object_new_string(item));
            continue;
        }
        if (!eq) {
            error_setg(errp, "Expected '=' after parameter '%s'", item);
            ok = false;
            break;
        }
        g_autofree char *key = g_strndup(item, eq - item);
        const char *value = eq + 1;
        if (g_str_has_prefix(key, "rules.")) {
            ok = put_rule(o, key + strlen("rules."), value, errp);
        } else if (is_bool_member(key)) {
            bool b;
            if (!parse_bool(value, &b)) {
                error_setg(errp, "Parameter '%s' expects 'on' or 'off'", key);
                ok = false;
            } else {
                json_object_object_add(o, key, json_object_new_boolean(b));
            }
        } else {
            json_object_object_add(o, key, json_object_new_string(value));
        }
    }
    g_ptr_array_free(items, TRUE);
    if (!ok) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

bool user_object_add_text(const char *text, Error **errp)
{
    /* QEMU 7.2 also takes object-add's JSON, as libvirt writes -object:
     * {"qom-type": "tls-creds-x509", "id": "t0", "verify-peer": false}. */
    json_object *j = text[0] == '{' ? json_parse_qmp(text, errp) : text_to_json(text, errp);
    if (!j) {
        return false;
    }
    ObjectOptions *opts = NULL;
    bool ok = qapi_from_json_ObjectOptions(j, NULL, &opts, errp) && user_object_add(opts, errp);
    qapi_free_ObjectOptions(opts);
    json_object_put(j);
    return ok;
}

/* ---- QMP ------------------------------------------------------------------- */

bool qmp_object_add(const ObjectOptions *arg, Error **errp)
{
    return user_object_add(arg, errp);
}

bool qmp_object_del(const q_obj_object_del_arg *arg, Error **errp)
{
    return user_object_del(arg->id, errp);
}
