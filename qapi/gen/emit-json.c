/*
 * qapi-json.h / qapi-json.c: json-c converters for every type.
 *
 * Per struct S (and union U) the .c file has static helpers:
 *   members_from_json_S  read the members (base included) into an existing S
 *   members_to_json_S    add the members to a JSON object (unions: with the branch)
 *   inplace_from_json_S  object check + members (+ branch) + unknown-member check
 *   S_keys               the member names, for the unknown-member check
 * and the public qapi_from_json_S / qapi_to_json_S wrap them.
 * Member code is straight-line: look the member up, build its path, convert.
 */
#include "emit.h"
#include "cname.h"

#include <string.h>

static void member_from_json(GString *c, const Member *m)
{
    g_autofree char *cn = c_name(m->name);
    g_autofree char *tn = c_type_name(m->type);

    emit_if(c, m->cond);
    g_string_append(c, "    if (qapi_get_member(src, ");
    emit_c_string(c, m->name);
    g_string_append(c, ", &v)) {\n        g_autofree char *p = qapi_path_member(path, ");
    emit_c_string(c, m->name);
    g_string_append(c, ");\n\n");
    if (c_has_storage(m->type)) {
        g_string_append_printf(c, "        if (!qapi_from_json_%s(v, p, &obj->%s, errp)) {\n", tn, cn);
    } else {
        g_string_append(c, "        if (!qapi_from_json_null(v, p, errp)) {\n");
    }
    g_string_append(c, "            return false;\n        }\n");
    if (m->optional && entity_is_scalar(m->type)) {
        g_string_append_printf(c, "        obj->has_%s = true;\n", cn);
    }
    g_string_append(c, "    }");
    if (!m->optional) {
        g_string_append(c, " else {\n        qapi_error_missing_member(errp, path, ");
        emit_c_string(c, m->name);
        g_string_append(c, ");\n        return false;\n    }");
    }
    g_string_append(c, "\n");
    emit_endif(c, m->cond);
}

static void member_to_json(GString *c, const Member *m)
{
    g_autofree char *cn = c_name(m->name);
    g_autofree char *tn = c_type_name(m->type);
    const char *indent = "    ";

    emit_if(c, m->cond);
    if (m->optional) {
        if (entity_is_scalar(m->type)) {
            g_string_append_printf(c, "    if (obj->has_%s) {\n", cn);
        } else {
            g_string_append_printf(c, "    if (obj->%s) {\n", cn);
        }
        indent = "        ";
    }
    g_string_append_printf(c, "%sjson_object_object_add(dst, ", indent);
    emit_c_string(c, m->name);
    if (c_has_storage(m->type)) {
        g_string_append_printf(c, ", qapi_to_json_%s(obj->%s));\n", tn, cn);
    } else {
        g_string_append(c, ", NULL);\n");
    }
    if (m->optional) {
        g_string_append(c, "    }\n");
    }
    emit_endif(c, m->cond);
}

static bool union_branch_stored(const Variant *v)
{
    return !v->implicit_empty && strcmp(v->type->name, "q_empty") != 0;
}

/*
 * One "case" of a union's switch on its tag for every branch that stores
 * members, each inside its #if: fn(c, tag constant, branch type, member name).
 */
static void union_cases(GString *c, const Entity *e,
                        void (*fn)(GString *c, const char *k, const char *bt, const char *vn))
{
    for (guint i = 0; i < e->variants->len; i++) {
        Variant *v = e->variants->pdata[i];
        if (!union_branch_stored(v)) {
            continue;
        }
        g_autofree char *k = c_enum_const(e->tag->type, v->name);
        g_autofree char *vn = c_name(v->name);
        g_autofree char *bt = c_type_name(v->type);
        emit_if(c, v->cond);
        fn(c, k, bt, vn);
        emit_endif(c, v->cond);
    }
}

static void branch_to_json(GString *c, const char *k, const char *bt, const char *vn)
{
    g_string_append_printf(c, "    case %s:\n        members_to_json_%s(&obj->u.%s, dst);\n"
                           "        break;\n", k, bt, vn);
}

static void branch_from_json(GString *c, const char *k, const char *bt, const char *vn)
{
    g_string_append_printf(c, "    case %s:\n"
                           "        if (!members_from_json_%s(src, path, &obj->u.%s, errp)) {\n"
                           "            return false;\n        }\n"
                           "        branch_keys = %s_keys;\n        break;\n", k, bt, vn, bt);
}

static void object_static_protos(GString *c, const Entity *e)
{
    g_autofree char *cn = c_type_name(e);

    if (e->meta != META_ALTERNATE) {
        g_string_append_printf(c, "static bool members_from_json_%s(json_object *src, const char *path, "
                               "%s *obj, Error **errp);\n", cn, cn);
        g_string_append_printf(c, "static void members_to_json_%s(const %s *obj, json_object *dst);\n", cn, cn);
    }
    g_string_append_printf(c, "static bool inplace_from_json_%s(json_object *src, const char *path, "
                           "%s *obj, Error **errp);\n", cn, cn);
}

static void object_keys(GString *c, const Entity *e)
{
    g_autofree char *cn = c_type_name(e);
    g_autoptr(GPtrArray) all = entity_all_members(e);

    g_string_append_printf(c, "static const char *const %s_keys[] = {\n", cn);
    for (guint i = 0; i < all->len; i++) {
        Member *m = all->pdata[i];
        emit_if(c, m->cond);
        g_string_append(c, "    ");
        emit_c_string(c, m->name);
        g_string_append(c, ",\n");
        emit_endif(c, m->cond);
    }
    g_string_append(c, "    NULL\n};\n\n");
}

static void object_members(GString *c, const Entity *e)
{
    g_autofree char *cn = c_type_name(e);
    g_autoptr(GPtrArray) all = entity_all_members(e);

    g_string_append_printf(c, "static bool members_from_json_%s(json_object *src, const char *path, "
                           "%s *obj, Error **errp)\n{\n    json_object *v = NULL;\n\n    (void)v;\n", cn, cn);
    for (guint i = 0; i < all->len; i++) {
        member_from_json(c, all->pdata[i]);
    }
    g_string_append(c, "    return true;\n}\n\n");

    g_string_append_printf(c, "static void members_to_json_%s(const %s *obj, json_object *dst)\n{\n", cn, cn);
    for (guint i = 0; i < all->len; i++) {
        member_to_json(c, all->pdata[i]);
    }
    if (e->meta == META_UNION) {
        g_autofree char *tag = c_name(e->tag->name);
        g_string_append_printf(c, "    switch (obj->%s) {\n", tag);
        union_cases(c, e, branch_to_json);
        g_string_append(c, "    default:\n        break;\n    }\n");
    }
    g_string_append(c, "}\n\n");
}

static void object_inplace(GString *c, const Entity *e)
{
    g_autofree char *cn = c_type_name(e);

    g_string_append_printf(c, "static bool inplace_from_json_%s(json_object *src, const char *path, "
                           "%s *obj, Error **errp)\n{\n", cn, cn);
    if (e->meta == META_STRUCT) {
        g_string_append_printf(c, "    return qapi_check_object(src, path, errp) &&\n"
                               "           members_from_json_%s(src, path, obj, errp) &&\n"
                               "           qapi_check_unknown(src, path, %s_keys, NULL, errp);\n}\n\n",
                               cn, cn);
        return;
    }
    /* union */
    g_autofree char *tag = c_name(e->tag->name);
    g_string_append_printf(c, "    const char *const *branch_keys = NULL;\n\n"
                           "    if (!qapi_check_object(src, path, errp) ||\n"
                           "        !members_from_json_%s(src, path, obj, errp)) {\n"
                           "        return false;\n    }\n"
                           "    switch (obj->%s) {\n", cn, tag);
    union_cases(c, e, branch_from_json);
    g_string_append_printf(c, "    default:\n        break;\n    }\n"
                           "    return qapi_check_unknown(src, path, %s_keys, branch_keys, errp);\n}\n\n", cn);
}

static const char *const json_types_for_qtype[][3] = {
    { "QTYPE_QSTRING", "json_type_string", NULL },
    { "QTYPE_QNUM", "json_type_int", "json_type_double" },
    { "QTYPE_QBOOL", "json_type_boolean", NULL },
    { "QTYPE_QNULL", "json_type_null", NULL },
    { "QTYPE_QDICT", "json_type_object", NULL },
};

static void alternate_inplace(GString *c, const Entity *e)
{
    g_autofree char *cn = c_type_name(e);

    g_string_append_printf(c, "static bool inplace_from_json_%s(json_object *src, const char *path, "
                           "%s *obj, Error **errp)\n{\n    switch (json_object_get_type(src)) {\n", cn, cn);
    for (guint i = 0; i < e->variants->len; i++) {
        Variant *v = e->variants->pdata[i];
        const char *qt = c_qtype(v->type);
        g_autofree char *vn = c_name(v->name);
        g_autofree char *tn = c_type_name(v->type);

        emit_if(c, v->cond);
        for (size_t j = 0; j < G_N_ELEMENTS(json_types_for_qtype); j++) {
            if (strcmp(json_types_for_qtype[j][0], qt) == 0) {
                g_string_append_printf(c, "    case %s:\n", json_types_for_qtype[j][1]);
                if (json_types_for_qtype[j][2]) {
                    g_string_append_printf(c, "    case %s:\n", json_types_for_qtype[j][2]);
                }
            }
        }
        g_string_append_printf(c, "        obj->type = %s;\n", qt);
        if (!c_has_storage(v->type)) {
            g_string_append(c, "        return true;\n");
        } else if (entity_is_object(v->type)) {
            g_string_append_printf(c, "        return inplace_from_json_%s(src, path, &obj->u.%s, errp);\n", tn, vn);
        } else {
            g_string_append_printf(c, "        return qapi_from_json_%s(src, path, &obj->u.%s, errp);\n", tn, vn);
        }
        emit_endif(c, v->cond);
    }
    g_string_append(c, "    default:\n        break;\n    }\n    qapi_error_type(errp, path, ");
    emit_c_string(c, e->name);
    g_string_append(c, ");\n    return false;\n}\n\n");
}

static void alternate_to_json(GString *c, const Entity *e)
{
    g_autofree char *cn = c_type_name(e);

    g_string_append_printf(c, "json_object *qapi_to_json_%s(const %s *src)\n{\n"
                           "    json_object *dst = NULL;\n\n"
                           "    if (!src) {\n        return NULL;\n    }\n"
                           "    switch (src->type) {\n", cn, cn);
    for (guint i = 0; i < e->variants->len; i++) {
        Variant *v = e->variants->pdata[i];
        g_autofree char *vn = c_name(v->name);
        g_autofree char *tn = c_type_name(v->type);
        if (!c_has_storage(v->type)) {
            continue;
        }
        emit_if(c, v->cond);
        g_string_append_printf(c, "    case %s:\n", c_qtype(v->type));
        if (entity_is_object(v->type)) {
            g_string_append_printf(c, "        dst = json_object_new_object();\n"
                                   "        members_to_json_%s(&src->u.%s, dst);\n        break;\n", tn, vn);
        } else {
            g_string_append_printf(c, "        dst = qapi_to_json_%s(src->u.%s);\n        break;\n", tn, vn);
        }
        emit_endif(c, v->cond);
    }
    g_string_append(c, "    default:\n        break;\n    }\n    return dst;\n}\n\n");
}

static void public_object_functions(GString *c, const Entity *e)
{
    g_autofree char *cn = c_type_name(e);

    g_string_append_printf(c, "bool qapi_from_json_%s(json_object *src, const char *path, %s **out, Error **errp)\n{\n"
                           "    %s *obj = g_new0(%s, 1);\n\n"
                           "    if (!inplace_from_json_%s(src, path, obj, errp)) {\n"
                           "        qapi_free_%s(obj);\n        *out = NULL;\n        return false;\n    }\n"
                           "    *out = obj;\n    return true;\n}\n\n", cn, cn, cn, cn, cn, cn);
    if (e->meta == META_ALTERNATE) {
        alternate_to_json(c, e);
        return;
    }
    g_string_append_printf(c, "json_object *qapi_to_json_%s(const %s *src)\n{\n"
                           "    json_object *dst = json_object_new_object();\n\n"
                           "    if (src) {\n        members_to_json_%s(src, dst);\n    }\n"
                           "    return dst;\n}\n\n", cn, cn, cn);
}

static void list_functions(GString *c, const Entity *e)
{
    g_autofree char *cn = c_type_name(e);
    g_autofree char *en = c_type_name(e->elem);

    g_string_append_printf(c, "bool qapi_from_json_%s(json_object *src, const char *path, %s **out, Error **errp)\n{\n"
                           "    %s **tail = out;\n    size_t n;\n\n    *out = NULL;\n"
                           "    if (!json_object_is_type(src, json_type_array)) {\n"
                           "        qapi_error_type(errp, path, \"array\");\n        return false;\n    }\n"
                           "    n = json_object_array_length(src);\n"
                           "    for (size_t i = 0; i < n; i++) {\n"
                           "        g_autofree char *p = qapi_path_index(path, i);\n"
                           "        %s *e = g_new0(%s, 1);\n\n"
                           "        *tail = e;\n        tail = &e->next;\n"
                           "        if (!qapi_from_json_%s(json_object_array_get_idx(src, i), p, &e->value, errp)) {\n"
                           "            qapi_free_%s(*out);\n            *out = NULL;\n            return false;\n"
                           "        }\n    }\n    return true;\n}\n\n", cn, cn, cn, cn, cn, en, cn);
    g_string_append_printf(c, "json_object *qapi_to_json_%s(const %s *l)\n{\n"
                           "    json_object *arr = json_object_new_array();\n\n"
                           "    for (; l; l = l->next) {\n"
                           "        json_object_array_add(arr, qapi_to_json_%s(l->value));\n    }\n"
                           "    return arr;\n}\n\n", cn, cn, en);
}

static void enum_functions(GString *c, const Entity *e)
{
    g_autofree char *cn = c_type_name(e);
    g_autofree char *prefix = c_enum_prefix(e);

    g_string_append_printf(c, "bool qapi_from_json_%s(json_object *src, const char *path, %s *out, Error **errp)\n{\n"
                           "    int v;\n\n"
                           "    if (!qapi_from_json_enum(src, path, %s_names, %s__MAX, &v, errp)) {\n"
                           "        return false;\n    }\n    *out = (%s)v;\n    return true;\n}\n\n",
                           cn, cn, cn, prefix, cn);
    g_string_append_printf(c, "json_object *qapi_to_json_%s(%s v)\n{\n"
                           "    return json_object_new_string(%s_str(v));\n}\n\n", cn, cn, cn);
}

static void header_decls(GString *h, const Entity *e)
{
    g_autofree char *cn = c_type_name(e);

    if (e->meta == META_ENUM) {
        g_string_append_printf(h, "bool qapi_from_json_%s(json_object *src, const char *path, %s *out, Error **errp);\n"
                               "json_object *qapi_to_json_%s(%s v);\n", cn, cn, cn, cn);
    } else {
        g_string_append_printf(h, "bool qapi_from_json_%s(json_object *src, const char *path, %s **out, Error **errp);\n"
                               "json_object *qapi_to_json_%s(const %s *src);\n", cn, cn, cn, cn);
    }
}

/* Everything qapi-json.c defines for one type. */
static void type_functions(GString *c, const Entity *e)
{
    switch (e->meta) {
    case META_ENUM:
        enum_functions(c, e);
        break;
    case META_ARRAY:
        list_functions(c, e);
        break;
    case META_ALTERNATE:
        alternate_inplace(c, e);
        public_object_functions(c, e);
        break;
    default:
        object_members(c, e);
        object_inplace(c, e);
        public_object_functions(c, e);
    }
}

void emit_json(const Schema *s, const Output *o)
{
    GString *h = g_string_new(NULL);
    GString *c = g_string_new(NULL);

    emit_banner(h, o, "JSON converters for every schema type.");
    g_string_append(h, "#ifndef QAPI_JSON_H\n#define QAPI_JSON_H\n\n#include \"qapi-types.h\"\n\n"
                    "/*\n * qapi_from_json_T(src, path, &out, errp): convert and validate; path names src in\n"
                    " * error messages (\"capabilities[0]\"), NULL at top level. On failure *out is NULL\n"
                    " * (0 for enums) and errp says why.\n"
                    " * qapi_to_json_T(value): a new json-c reference.\n */\n\n");
    emit_banner(c, o, "JSON converters for every schema type.");
    g_string_append(c, "#include \"qapi-json.h\"\n#include \"qapi-runtime.h\"\n\n#include <glib.h>\n\n");

    for (guint i = 0; i < s->entities->len; i++) {
        Entity *e = s->entities->pdata[i];
        if (!emit_wants_type(e)) {
            continue;
        }
        emit_if(h, e->cond);
        header_decls(h, e);
        emit_endif(h, e->cond);
        if (entity_is_object(e) || e->meta == META_ALTERNATE) {
            emit_if(c, e->cond);
            object_static_protos(c, e);
            if (e->meta != META_ALTERNATE) {
                object_keys(c, e);
            }
            emit_endif(c, e->cond);
        }
    }
    g_string_append(h, "\n#endif\n");
    g_string_append(c, "\n");
    emit_each_type(c, s, type_functions);
    emit_write_file(o, "qapi-json.h", h);
    emit_write_file(o, "qapi-json.c", c);
    g_string_free(h, TRUE);
    g_string_free(c, TRUE);
}
