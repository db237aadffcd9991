/*
 * Runtime support of the generated QAPI code (see qapi-runtime.h): error
 * texts, member paths, scalar converters and the builtin list functions.
 */
#include "qapi-runtime.h"

#include <glib.h>
#include <inttypes.h>
#include <string.h>

const char *const QType_names[QTYPE__MAX] = {
    [QTYPE_NONE] = "none", [QTYPE_QNULL] = "qnull", [QTYPE_QNUM] = "qnum",
    [QTYPE_QSTRING] = "qstring", [QTYPE_QDICT] = "qdict", [QTYPE_QLIST] = "qlist",
    [QTYPE_QBOOL] = "qbool",
};

const char *QType_str(QType v)
{
    return (unsigned)v < QTYPE__MAX ? QType_names[v] : "(invalid)";
}

bool QType_parse(const char *s, QType *out)
{
    int i = qapi_enum_lookup(QType_names, QTYPE__MAX, s);

    if (i < 0) {
        return false;
    }
    *out = (QType)i;
    return true;
}

int qapi_enum_lookup(const char *const names[], int count, const char *s)
{
    for (int i = 0; s && i < count; i++) {
        if (names[i] && strcmp(names[i], s) == 0) {
            return i;
        }
    }
    return -1;
}

/* ---- paths and messages ---- */

char *qapi_path_member(const char *path, const char *name)
{
    return path ? g_strdup_printf("%s.%s", path, name) : g_strdup(name);
}

char *qapi_path_index(const char *path, size_t index)
{
    return g_strdup_printf("%s[%zu]", path ? path : "", index);
}

static const char *shown(const char *path)
{
    return path ? path : "null";
}

void qapi_error_missing(Error **errp, const char *path)
{
    error_setg(errp, "Parameter '%s' is missing", shown(path));
}

void qapi_error_missing_member(Error **errp, const char *path, const char *name)
{
    g_autofree char *p = qapi_path_member(path, name);

    qapi_error_missing(errp, p);
}

void qapi_error_type(Error **errp, const char *path, const char *expected)
{
    error_setg(errp, "Invalid parameter type for '%s', expected: %s", shown(path), expected);
}

void qapi_error_unexpected(Error **errp, const char *path)
{
    error_setg(errp, "Parameter '%s' is unexpected", shown(path));
}

/* QEMU 7.2 names a bad enum value by the member's own name, not its path
 * ("capability", not "capabilities[0].capability"); a list element has no
 * name of its own and shows as 'null'. */
void qapi_error_value(Error **errp, const char *path, const char *value)
{
    const char *leaf = path ? strrchr(path, '.') : NULL;
    leaf = leaf ? leaf + 1 : path;
    if (leaf && strchr(leaf, '[')) {
        leaf = NULL;
    }
    error_setg(errp, "Parameter '%s' does not accept value '%s'", shown(leaf), value);
}

void qapi_error_expects(Error **errp, const char *path, const char *what)
{
    error_setg(errp, "Parameter '%s' expects %s", shown(path), what);
}

/* ---- objects ---- */

bool qapi_check_object(json_object *src, const char *path, Error **errp)
{
    if (!json_object_is_type(src, json_type_object)) {
        qapi_error_type(errp, path, "object");
        return false;
    }
    return true;
}

static bool key_in(const char *const *keys, const char *key)
{
    for (; keys && *keys; keys++) {
        if (strcmp(*keys, key) == 0) {
            return true;
        }
    }
    return false;
}

bool qapi_check_unknown(json_object *src, const char *path, const char *const *keys,
                        const char *const *more_keys, Error **errp)
{
    json_object_object_foreach(src, key, val) {
        (void)val;
        if (!key_in(keys, key) && !key_in(more_keys, key)) {
            g_autofree char *p = qapi_path_member(path, key);
            qapi_error_unexpected(errp, p);
            return false;
        }
    }
    return true;
}

bool qapi_get_member(json_object *src, const char *name, json_object **value)
{
    return json_object_object_get_ex(src, name, value);
}

/* ---- scalars: JSON -> C ---- */

bool qapi_from_json_str(json_object *src, const char *path, char **out, Error **errp)
{
    if (!json_object_is_type(src, json_type_string)) {
        qapi_error_type(errp, path, "string");
        return false;
    }
    *out = g_strdup(json_object_get_string(src));
    return true;
}

bool qapi_from_json_number(json_object *src, const char *path, double *out, Error **errp)
{
    if (!json_object_is_type(src, json_type_double) && !json_object_is_type(src, json_type_int)) {
        qapi_error_type(errp, path, "number");
        return false;
    }
    if (json_object_is_type(src, json_type_int) && json_object_get_int64(src) >= 0) {
        *out = (double)json_object_get_uint64(src);
    } else {
        *out = json_object_get_double(src);
    }
    return true;
}

bool qapi_from_json_bool(json_object *src, const char *path, bool *out, Error **errp)
{
    if (!json_object_is_type(src, json_type_boolean)) {
        qapi_error_type(errp, path, "boolean");
        return false;
    }
    *out = json_object_get_boolean(src);
    return true;
}

static bool in_signed(json_object *src, const char *path, int64_t min, int64_t max,
                      const char *desc, int64_t *out, Error **errp)
{
    int64_t v;

    /* json-c stores integers above INT64_MAX as uint64; get_int64 saturates them */
    if (!json_object_is_type(src, json_type_int) ||
        (json_object_get_int64(src) == INT64_MAX && json_object_get_uint64(src) > INT64_MAX)) {
        qapi_error_type(errp, path, "integer");
        return false;
    }
    v = json_object_get_int64(src);
    if (v < min || v > max) {
        qapi_error_expects(errp, path, desc);
        return false;
    }
    *out = v;
    return true;
}

/* QEMU 7.2's uint64 visitor takes any JSON integer that fits uint64 or
 * int64, a negative one wrapped modulo 2^64 ("-1" is 2^64-1), so a narrow
 * type then sees a huge value and says "expects uint8_t". What fits
 * neither (the parser made it a double) is "expects uint64". */
static bool in_unsigned(json_object *src, const char *path, uint64_t max, const char *desc,
                        uint64_t *out, Error **errp)
{
    uint64_t v;

    if (!json_object_is_type(src, json_type_int)) {
        qapi_error_expects(errp, path, "uint64");
        return false;
    }
    if (json_object_get_int64(src) < 0) {
        v = (uint64_t)json_object_get_int64(src);
    } else {
        v = json_object_get_uint64(src);
    }
    if (v > max) {
        qapi_error_expects(errp, path, desc);
        return false;
    }
    *out = v;
    return true;
}

/* A JSON <-> C pair for one integer type: range-checked in the wide type
 * (in_range takes the range arguments), then narrowed. */
#define INT_CONVERTER(name, ctype, wide_t, in_range, new_json, ...)                           \
    bool qapi_from_json_##name(json_object *src, const char *path, ctype *out, Error **errp) \
    {                                                                                        \
        wide_t v;                                                                            \
        if (!in_range(src, path, __VA_ARGS__, &v, errp)) {                                   \
            return false;                                                                    \
        }                                                                                    \
        *out = (ctype)v;                                                                     \
        return true;                                                                         \
    }                                                                                        \
    json_object *qapi_to_json_##name(ctype v)                                                \
    {                                                                                        \
        return new_json(v);                                                                  \
    }
#define SIGNED_CONVERTER(name, ctype, min, max, desc) \
    INT_CONVERTER(name, ctype, int64_t, in_signed, json_object_new_int64, min, max, desc)
#define UNSIGNED_CONVERTER(name, ctype, max, desc) \
    INT_CONVERTER(name, ctype, uint64_t, in_unsigned, json_object_new_uint64, max, desc)

SIGNED_CONVERTER(int, int64_t, INT64_MIN, INT64_MAX, "int64")
SIGNED_CONVERTER(int8, int8_t, INT8_MIN, INT8_MAX, "int8_t")
SIGNED_CONVERTER(int16, int16_t, INT16_MIN, INT16_MAX, "int16_t")
SIGNED_CONVERTER(int32, int32_t, INT32_MIN, INT32_MAX, "int32_t")
SIGNED_CONVERTER(int64, int64_t, INT64_MIN, INT64_MAX, "int64")
UNSIGNED_CONVERTER(uint8, uint8_t, UINT8_MAX, "uint8_t")
UNSIGNED_CONVERTER(uint16, uint16_t, UINT16_MAX, "uint16_t")
UNSIGNED_CONVERTER(uint32, uint32_t, UINT32_MAX, "uint32_t")
UNSIGNED_CONVERTER(uint64, uint64_t, UINT64_MAX, "uint64")
UNSIGNED_CONVERTER(size, uint64_t, UINT64_MAX, "uint64")

bool qapi_from_json_null(json_object *src, const char *path, Error **errp)
{
    if (src) {
        qapi_error_type(errp, path, "null");
        return false;
    }
    return true;
}

bool qapi_from_json_any(json_object *src, const char *path, json_object **out, Error **errp)
{
    *out = json_object_get(src);
    return true;
}

bool qapi_from_json_enum(json_object *src, const char *path, const char *const names[], int count,
                         int *out, Error **errp)
{
    int i;

    if (!json_object_is_type(src, json_type_string)) {
        qapi_error_type(errp, path, "string");
        return false;
    }
    i = qapi_enum_lookup(names, count, json_object_get_string(src));
    if (i < 0) {
        qapi_error_value(errp, path, json_object_get_string(src));
        return false;
    }
    *out = i;
    return true;
}

/* ---- scalars: C -> JSON ---- */

json_object *qapi_to_json_str(const char *v)
{
    return json_object_new_string(v ? v : "");
}

json_object *qapi_to_json_number(double v)
{
    return json_object_new_double(v);
}

json_object *qapi_to_json_bool(bool v)
{
    return json_object_new_boolean(v);
}

json_object *qapi_to_json_any(json_object *v)
{
    return json_object_get(v);
}

json_object *qapi_to_json_null(void)
{
    return NULL;
}

/* ---- lists of builtins ---- */

#define BUILTIN_LIST(name, free_value)                                                        \
    void qapi_free_##name##List(name##List *l)                                                \
    {                                                                                         \
        while (l) {                                                                           \
            name##List *next = l->next;                                                       \
            free_value;                                                                       \
            g_free(l);                                                                        \
            l = next;                                                                         \
        }                                                                                     \
    }                                                                                         \
    bool qapi_from_json_##name##List(json_object *src, const char *path, name##List **out,    \
                                     Error **errp)                                            \
    {                                                                                         \
        name##List **tail = out;                                                              \
        size_t n;                                                                             \
        *out = NULL;                                                                          \
        if (!json_object_is_type(src, json_type_array)) {                                     \
            qapi_error_type(errp, path, "array");                                             \
            return false;                                                                     \
        }                                                                                     \
        n = json_object_array_length(src);                                                    \
        for (size_t i = 0; i < n; i++) {                                                      \
            g_autofree char *p = qapi_path_index(path, i);                                    \
            name##List *e = g_new0(name##List, 1);                                            \
            *tail = e;                                                                        \
            tail = &e->next;                                                                  \
            if (!qapi_from_json_##name(json_object_array_get_idx(src, i), p, &e->value, errp)) { \
                qapi_free_##name##List(*out);                                                 \
                *out = NULL;                                                                  \
                return false;                                                                 \
            }                                                                                 \
        }                                                                                     \
        return true;                                                                          \
    }                                                                                         \
    json_object *qapi_to_json_##name##List(const name##List *l)                               \
    {                                                                                         \
        json_object *arr = json_object_new_array();                                           \
        for (; l; l = l->next) {                                                              \
            json_object_array_add(arr, qapi_to_json_##name(l->value));                        \
        }                                                                                     \
        return arr;                                                                           \
    }

BUILTIN_LIST(str, g_free(l->value))
BUILTIN_LIST(number, (void)0)
BUILTIN_LIST(int, (void)0)
BUILTIN_LIST(int8, (void)0)
BUILTIN_LIST(int16, (void)0)
BUILTIN_LIST(int32, (void)0)
BUILTIN_LIST(int64, (void)0)
BUILTIN_LIST(uint8, (void)0)
BUILTIN_LIST(uint16, (void)0)
BUILTIN_LIST(uint32, (void)0)
BUILTIN_LIST(uint64, (void)0)
BUILTIN_LIST(size, (void)0)
BUILTIN_LIST(bool, (void)0)
BUILTIN_LIST(any, json_object_put(l->value))
