/*
 * qapi-types.h / qapi-types.c: enums (names table, _str, _parse), structs,
 * unions, alternates, lists, and their free functions.
 */
#include "emit.h"
#include "cname.h"

#include <string.h>

/* ---- enums ---- */

static void enum_decl(GString *h, const Entity *e)
{
    g_autofree char *cn = c_type_name(e);
    g_autofree char *prefix = c_enum_prefix(e);

    g_string_append_printf(h, "typedef enum %s {\n", cn);
    for (guint i = 0; i < e->values->len; i++) {
        EnumValue *v = e->values->pdata[i];
        g_autofree char *k = c_enum_const(e, v->name);
        emit_if(h, v->cond);
        g_string_append_printf(h, "    %s,\n", k);
        emit_endif(h, v->cond);
    }
    g_string_append_printf(h, "    %s__MAX\n} %s;\n", prefix, cn);
    g_string_append_printf(h, "extern const char *const %s_names[%s__MAX];\n", cn, prefix);
    g_string_append_printf(h, "/* \"value\" as on the wire; \"(invalid)\" for an out-of-range value. */\n");
    g_string_append_printf(h, "const char *%s_str(%s v);\n", cn, cn);
    g_string_append_printf(h, "/* false if s is not a value of %s */\n", e->name);
    g_string_append_printf(h, "bool %s_parse(const char *s, %s *out);\n\n", cn, cn);
}

static void enum_defn(GString *c, const Entity *e)
{
    g_autofree char *cn = c_type_name(e);
    g_autofree char *prefix = c_enum_prefix(e);

    g_string_append_printf(c, "const char *const %s_names[%s__MAX] = {\n", cn, prefix);
    for (guint i = 0; i < e->values->len; i++) {
        EnumValue *v = e->values->pdata[i];
        g_autofree char *k = c_enum_const(e, v->name);
        emit_if(c, v->cond);
        g_string_append_printf(c, "    [%s] = ", k);
        emit_c_string(c, v->name);
        g_string_append(c, ",\n");
        emit_endif(c, v->cond);
    }
    g_string_append(c, "};\n\n");
    g_string_append_printf(c, "const char *%s_str(%s v)\n{\n"
                           "    return (unsigned)v < %s__MAX ? %s_names[v] : \"(invalid)\";\n}\n\n",
                           cn, cn, prefix, cn);
    g_string_append_printf(c, "bool %s_parse(const char *s, %s *out)\n{\n"
                           "    int i = qapi_enum_lookup(%s_names, %s__MAX, s);\n\n"
                           "    if (i < 0) {\n        return false;\n    }\n"
                           "    *out = (%s)i;\n    return true;\n}\n\n",
                           cn, cn, cn, prefix, cn);
}

/* ---- struct layouts ---- */

static int member_fields(GString *h, const Member *m)
{
    g_autofree char *cn = c_name(m->name);
    g_autofree char *ct = c_type(m->type);
    int n = 0;

    emit_if(h, m->cond);
    if (m->optional && entity_is_scalar(m->type)) {
        g_string_append_printf(h, "    bool has_%s;\n", cn);
        n++;
    }
    if (c_has_storage(m->type)) {
        g_string_append_printf(h, "    %s%s%s;\n", ct, g_str_has_suffix(ct, "*") ? "" : " ", cn);
        n++;
    }
    emit_endif(h, m->cond);
    return n;
}

static int members_fields(GString *h, const Entity *e)
{
    g_autoptr(GPtrArray) all = entity_all_members(e);
    int n = 0;

    for (guint i = 0; i < all->len; i++) {
        n += member_fields(h, all->pdata[i]);
    }
    return n;
}

/* Branches stored in the C union u: the non-empty ones. */
static bool variant_has_storage(const Entity *owner, const Variant *v)
{
    if (owner->meta == META_UNION) {
        return !v->implicit_empty && strcmp(v->type->name, "q_empty") != 0;
    }
    return c_has_storage(v->type);
}

/* The C type a branch is stored as inside u (structs by value). */
static char *variant_c_type(const Variant *v)
{
    if (entity_is_object(v->type)) {
        return c_type_name(v->type);
    }
    return c_type(v->type);
}

static void variants_fields(GString *h, const Entity *e)
{
    int n = 0;

    for (guint i = 0; i < e->variants->len; i++) {
        n += variant_has_storage(e, e->variants->pdata[i]);
    }
    if (!n) {
        return;
    }
    g_string_append(h, "    union {\n");
    for (guint i = 0; i < e->variants->len; i++) {
        Variant *v = e->variants->pdata[i];
        g_autofree char *ct = NULL;
        g_autofree char *vn = NULL;
        if (!variant_has_storage(e, v)) {
            continue;
        }
        ct = variant_c_type(v);
        vn = c_name(v->name);
        emit_if(h, v->cond);
        g_string_append_printf(h, "        %s%s%s;\n", ct, g_str_has_suffix(ct, "*") ? "" : " ", vn);
        emit_endif(h, v->cond);
    }
    g_string_append(h, "    } u;\n");
}

static void struct_defn(GString *h, const Entity *e)
{
    g_autofree char *cn = c_type_name(e);
    int n = 0;

    g_string_append_printf(h, "struct %s {\n", cn);
    switch (e->meta) {
    case META_STRUCT:
        n = members_fields(h, e);
        break;
    case META_UNION:
        members_fields(h, e);
        variants_fields(h, e);
        n = 1;
        break;
    case META_ALTERNATE:
        g_string_append(h, "    QType type;\n");
        variants_fields(h, e);
        n = 1;
        break;
    case META_ARRAY: {
        g_autofree char *et = c_type(e->elem);
        g_string_append_printf(h, "    struct %s *next;\n    %s%svalue;\n", cn, et,
                               g_str_has_suffix(et, "*") ? "" : " ");
        n = 1;
        break;
    }
    default:
        break;
    }
    if (!n) {
        g_string_append(h, "    char qapi_dummy_for_empty_struct;\n");
    }
    g_string_append(h, "};\n\n");
}

/* Emit e after the types it embeds by value (union and alternate branches). */
static void struct_defn_ordered(GString *h, const Entity *e, GHashTable *done)
{
    if (!g_hash_table_add(done, (gpointer)e)) {
        return;
    }
    if (e->meta == META_UNION || e->meta == META_ALTERNATE) {
        for (guint i = 0; i < e->variants->len; i++) {
            Variant *v = e->variants->pdata[i];
            if (entity_is_object(v->type) && emit_wants_type(v->type)) {
                struct_defn_ordered(h, v->type, done);
            }
        }
    }
    emit_if(h, e->cond);
    struct_defn(h, e);
    emit_endif(h, e->cond);
}

/* ---- free functions ---- */

static void free_value(GString *c, const Entity *t, const char *lvalue, const char *indent)
{
    g_autofree char *tn = c_type_name(t);

    if (t->meta == META_BUILTIN) {
        if (t->bkind == BK_STR) {
            g_string_append_printf(c, "%sg_free(%s);\n", indent, lvalue);
        } else if (t->bkind == BK_ANY) {
            g_string_append_printf(c, "%sjson_object_put(%s);\n", indent, lvalue);
        }
    } else if (t->meta != META_ENUM) {
        g_string_append_printf(c, "%sqapi_free_%s(%s);\n", indent, tn, lvalue);
    }
}

static void free_members_body(GString *c, const Entity *e)
{
    g_autoptr(GPtrArray) all = entity_all_members(e);

    for (guint i = 0; i < all->len; i++) {
        Member *m = all->pdata[i];
        g_autofree char *cn = c_name(m->name);
        g_autofree char *lv = g_strdup_printf("obj->%s", cn);
        if (!c_is_pointer(m->type)) {
            continue;
        }
        emit_if(c, m->cond);
        free_value(c, m->type, lv, "    ");
        emit_endif(c, m->cond);
    }
}

static void free_variants_body(GString *c, const Entity *e)
{
    bool any = false;

    for (guint i = 0; i < e->variants->len; i++) {
        Variant *v = e->variants->pdata[i];
        any |= variant_has_storage(e, v) && c_is_pointer(v->type);
    }
    if (!any) {
        return;
    }
    if (e->meta == META_UNION) {
        g_autofree char *tag = c_name(e->tag->name);
        g_string_append_printf(c, "    switch (obj->%s) {\n", tag);
    } else {
        g_string_append(c, "    switch (obj->type) {\n");
    }
    for (guint i = 0; i < e->variants->len; i++) {
        Variant *v = e->variants->pdata[i];
        g_autofree char *vn = c_name(v->name);
        g_autofree char *lv = g_strdup_printf("obj->u.%s", vn);
        if (!variant_has_storage(e, v) || !c_is_pointer(v->type)) {
            continue;
        }
        emit_if(c, v->cond);
        if (e->meta == META_UNION) {
            g_autofree char *k = c_enum_const(e->tag->type, v->name);
            g_string_append_printf(c, "    case %s:\n", k);
        } else {
            g_string_append_printf(c, "    case %s:\n", c_qtype(v->type));
        }
        if (entity_is_object(v->type)) {
            g_autofree char *tn = c_type_name(v->type);
            g_string_append_printf(c, "        qapi_free_members_%s(&obj->u.%s);\n", tn, vn);
        } else {
            free_value(c, v->type, lv, "        ");
        }
        g_string_append(c, "        break;\n");
        emit_endif(c, v->cond);
    }
    g_string_append(c, "    default:\n        break;\n    }\n");
}

static void free_defn(GString *c, const Entity *e)
{
    g_autofree char *cn = c_type_name(e);

    if (e->meta == META_ARRAY) {
        g_autofree char *lv = NULL;
        g_string_append_printf(c, "void qapi_free_%s(%s *l)\n{\n    while (l) {\n"
                               "        %s *next = l->next;\n\n", cn, cn, cn);
        free_value(c, e->elem, "l->value", "        ");
        g_string_append(c, "        g_free(l);\n        l = next;\n    }\n}\n\n");
        return;
    }
    g_string_append_printf(c, "static void qapi_free_members_%s(%s *obj)\n{\n", cn, cn);
    if (e->meta != META_ALTERNATE) {
        free_members_body(c, e);
    }
    if (e->meta != META_STRUCT) {
        free_variants_body(c, e);
    }
    g_string_append(c, "}\n\n");
    g_string_append_printf(c, "void qapi_free_%s(%s *obj)\n{\n    if (!obj) {\n        return;\n    }\n"
                           "    qapi_free_members_%s(obj);\n    g_free(obj);\n}\n\n", cn, cn, cn);
}

/* An enum's tables, or the free functions of any other type. */
static void type_defn(GString *c, const Entity *e)
{
    if (e->meta == META_ENUM) {
        enum_defn(c, e);
    } else {
        free_defn(c, e);
    }
}

void emit_types(const Schema *s, const Output *o)
{
    GString *h = g_string_new(NULL);
    GString *c = g_string_new(NULL);
    GHashTable *done = g_hash_table_new(NULL, NULL);

    emit_banner(h, o, "Schema types: enums, structs, unions, alternates, lists.");
    g_string_append(h, "#ifndef QAPI_TYPES_H\n#define QAPI_TYPES_H\n\n#include \"qapi-builtin.h\"\n\n");
    for (guint i = 0; i < s->entities->len; i++) {
        Entity *e = s->entities->pdata[i];
        if (e->meta == META_ENUM) {
            emit_if(h, e->cond);
            enum_decl(h, e);
            emit_endif(h, e->cond);
        }
    }
    for (guint i = 0; i < s->entities->len; i++) {
        Entity *e = s->entities->pdata[i];
        if (emit_wants_type(e) && e->meta != META_ENUM) {
            g_autofree char *cn = c_type_name(e);
            emit_if(h, e->cond);
            g_string_append_printf(h, "typedef struct %s %s;\n", cn, cn);
            emit_endif(h, e->cond);
        }
    }
    g_string_append(h, "\n");
    for (guint i = 0; i < s->entities->len; i++) {
        Entity *e = s->entities->pdata[i];
        if (emit_wants_type(e) && e->meta != META_ENUM) {
            struct_defn_ordered(h, e, done);
        }
    }
    g_string_append(h, "/* NULL-safe; free the object and everything it owns. */\n");
    for (guint i = 0; i < s->entities->len; i++) {
        Entity *e = s->entities->pdata[i];
        if (emit_wants_type(e) && e->meta != META_ENUM) {
            g_autofree char *cn = c_type_name(e);
            emit_if(h, e->cond);
            g_string_append_printf(h, "void qapi_free_%s(%s *obj);\n", cn, cn);
            emit_endif(h, e->cond);
        }
    }
    g_string_append(h, "\n#endif\n");

    emit_banner(c, o, "Schema types: enum tables and free functions.");
    g_string_append(c, "#include \"qapi-types.h\"\n#include \"qapi-runtime.h\"\n\n#include <glib.h>\n\n");
    for (guint i = 0; i < s->entities->len; i++) {
        Entity *e = s->entities->pdata[i];
        if (emit_wants_type(e) && e->meta != META_ENUM && e->meta != META_ARRAY) {
            g_autofree char *cn = c_type_name(e);
            emit_if(c, e->cond);
            g_string_append_printf(c, "static void qapi_free_members_%s(%s *obj);\n", cn, cn);
            emit_endif(c, e->cond);
        }
    }
    g_string_append(c, "\n");
    emit_each_type(c, s, type_defn);
    emit_write_file(o, "qapi-types.h", h);
    emit_write_file(o, "qapi-types.c", c);
    g_string_free(h, TRUE);
    g_string_free(c, TRUE);
    g_hash_table_destroy(done);
}
