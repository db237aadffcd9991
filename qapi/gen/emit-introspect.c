/*
 * qapi-introspect.h / qapi-introspect.c: the query-qmp-schema answer as one
 * C string, in QEMU's style:
 *   - commands and events first, in schema order, with their real names;
 *   - then every type they use, transitively, in order of first use;
 *   - type names are masked as decimal numbers in order of first use, "0"
 *     being the empty object; arrays are "[N]"; integer builtins collapse to
 *     "int" (and their lists to "[int]");
 *   - optional members carry "default": null; enums carry "members" and
 *     the older "values".
 * 'if' conditions become #if around the pieces of the string; a separator
 * ", " is emitted only when an earlier element of the same list exists.
 */
#include "emit.h"
#include "cname.h"

#include <string.h>

typedef struct Intro {
    const Schema *s;
    GPtrArray *used;            /* Entity *, the work queue of types */
    GHashTable *names;          /* Entity * -> masked name */
    int next_number;
} Intro;

/* One element of a JSON list (or the top-level array): C code and its condition. */
typedef struct Elem {
    const char *cond;
    GString *code;
} Elem;

static void lit(GString *c, const char *text)
{
    g_string_append(c, "    ");
    emit_c_string(c, text);
    g_string_append_c(c, '\n');
}

static void litf(GString *c, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static void litf(GString *c, const char *fmt, ...)
{
    va_list ap;
    g_autofree char *text = NULL;

    va_start(ap, fmt);
    text = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    lit(c, text);
}

static Elem *elem_new(GPtrArray *list, const char *cond)
{
    Elem *e = g_new0(Elem, 1);

    e->cond = cond;
    e->code = g_string_new(NULL);
    g_ptr_array_add(list, e);
    return e;
}

/* Append the elements separated by ", ", each under its condition. */
static void join(GString *c, GPtrArray *elems)
{
    GString *prev_conds = g_string_new(NULL);
    bool prev_always = false;

    for (guint i = 0; i < elems->len; i++) {
        Elem *e = elems->pdata[i];
        emit_if(c, e->cond);
        if (prev_always) {
            lit(c, ", ");
        } else if (prev_conds->len) {
            g_string_append_printf(c, "#if %s\n", prev_conds->str);
            lit(c, ", ");
            g_string_append(c, "#endif\n");
        }
        g_string_append(c, e->code->str);
        emit_endif(c, e->cond);
        if (!e->cond) {
            prev_always = true;
        } else {
            g_string_append_printf(prev_conds, "%s(%s)", prev_conds->len ? " || " : "", e->cond);
        }
        g_string_free(e->code, TRUE);
        g_free(e);
    }
    g_ptr_array_set_size(elems, 0);
    g_string_free(prev_conds, TRUE);
}

static const char *use_type(Intro *in, const Entity *t)
{
    const char *name;

    if (t->meta == META_BUILTIN && (t->bkind == BK_INT || t->bkind == BK_UINT)) {
        t = schema_lookup((Schema *)in->s, "int");
    } else if (t->meta == META_ARRAY && t->elem->meta == META_BUILTIN &&
               (t->elem->bkind == BK_INT || t->elem->bkind == BK_UINT)) {
        t = schema_array_of((Schema *)in->s, schema_lookup((Schema *)in->s, "int"));
    }
    if (!g_ptr_array_find(in->used, t, NULL)) {
        g_ptr_array_add(in->used, (gpointer)t);
    }
    if (t->meta == META_BUILTIN) {
        return t->name;
    }
    name = g_hash_table_lookup(in->names, t);
    if (name) {
        return name;
    }
    if (t->meta == META_ARRAY) {
        name = g_strdup_printf("[%s]", use_type(in, t->elem));
    } else {
        name = g_strdup_printf("%d", in->next_number++);
    }
    g_hash_table_insert(in->names, (gpointer)t, (gpointer)name);
    return name;
}

static void features(GString *c, GPtrArray *feats)
{
    GPtrArray *elems = g_ptr_array_new();
    bool any = false;

    for (guint i = 0; feats && i < feats->len; i++) {
        Feature *f = feats->pdata[i];
        Elem *e = elem_new(elems, f->cond);
        litf(e->code, "\"%s\"", f->name);
        any = true;
    }
    if (any) {
        lit(c, ", \"features\": [");
        join(c, elems);
        lit(c, "]");
    }
    g_ptr_array_free(elems, TRUE);
}

static void members(Intro *in, GString *c, const Entity *t)
{
    g_autoptr(GPtrArray) all = entity_all_members(t);
    GPtrArray *elems = g_ptr_array_new();

    lit(c, ", \"members\": [");
    for (guint i = 0; i < all->len; i++) {
        Member *m = all->pdata[i];
        Elem *e = elem_new(elems, m->cond);
        litf(e->code, "{\"name\": \"%s\"%s, \"type\": \"%s\"", m->name,
             m->optional ? ", \"default\": null" : "", use_type(in, m->type));
        features(e->code, m->features);
        lit(e->code, "}");
    }
    join(c, elems);
    lit(c, "]");
    g_ptr_array_free(elems, TRUE);
}

static void enum_entry(GString *c, const Entity *t)
{
    GPtrArray *elems = g_ptr_array_new();

    lit(c, ", \"members\": [");
    for (guint i = 0; i < t->values->len; i++) {
        EnumValue *v = t->values->pdata[i];
        Elem *e = elem_new(elems, v->cond);
        litf(e->code, "{\"name\": \"%s\"", v->name);
        features(e->code, v->features);
        lit(e->code, "}");
    }
    join(c, elems);
    lit(c, "], \"values\": [");
    for (guint i = 0; i < t->values->len; i++) {
        EnumValue *v = t->values->pdata[i];
        Elem *e = elem_new(elems, v->cond);
        litf(e->code, "\"%s\"", v->name);
    }
    join(c, elems);
    lit(c, "]");
    g_ptr_array_free(elems, TRUE);
}

static void variants(Intro *in, GString *c, const Entity *t)
{
    GPtrArray *elems = g_ptr_array_new();

    litf(c, ", \"tag\": \"%s\", \"variants\": [", t->tag->name);
    for (guint i = 0; i < t->variants->len; i++) {
        Variant *v = t->variants->pdata[i];
        Elem *e = elem_new(elems, v->cond);
        litf(e->code, "{\"case\": \"%s\", \"type\": \"%s\"}", v->name, use_type(in, v->type));
    }
    join(c, elems);
    lit(c, "]");
    g_ptr_array_free(elems, TRUE);
}

static void alternate_entry(Intro *in, GString *c, const Entity *t)
{
    GPtrArray *elems = g_ptr_array_new();

    lit(c, ", \"members\": [");
    for (guint i = 0; i < t->variants->len; i++) {
        Variant *v = t->variants->pdata[i];
        Elem *e = elem_new(elems, v->cond);
        litf(e->code, "{\"type\": \"%s\"}", use_type(in, v->type));
    }
    join(c, elems);
    lit(c, "]");
    g_ptr_array_free(elems, TRUE);
}

static void type_entry(Intro *in, GString *c, const Entity *t)
{
    const char *name = use_type(in, t);

    switch (t->meta) {
    case META_BUILTIN:
        litf(c, "{\"name\": \"%s\", \"meta-type\": \"builtin\", \"json-type\": \"%s\"", name, t->json_type);
        break;
    case META_ENUM:
        litf(c, "{\"name\": \"%s\", \"meta-type\": \"enum\"", name);
        enum_entry(c, t);
        break;
    case META_ARRAY:
        litf(c, "{\"name\": \"%s\", \"meta-type\": \"array\", \"element-type\": \"%s\"", name,
             use_type(in, t->elem));
        break;
    case META_ALTERNATE:
        litf(c, "{\"name\": \"%s\", \"meta-type\": \"alternate\"", name);
        alternate_entry(in, c, t);
        break;
    default:
        litf(c, "{\"name\": \"%s\", \"meta-type\": \"object\"", name);
        members(in, c, t);
        if (t->meta == META_UNION) {
            variants(in, c, t);
        }
    }
    features(c, t->features);
    lit(c, "}");
}

static void command_or_event_entry(Intro *in, GString *c, const Entity *e)
{
    const Entity *arg = e->arg_type ? e->arg_type : in->s->empty_object;

    if (e->meta == META_COMMAND) {
        const Entity *ret = e->ret_type ? e->ret_type : in->s->empty_object;
        const char *a = use_type(in, arg);
        litf(c, "{\"name\": \"%s\", \"meta-type\": \"command\", \"arg-type\": \"%s\", \"ret-type\": \"%s\"%s",
             e->name, a, use_type(in, ret), e->allow_oob ? ", \"allow-oob\": true" : "");
    } else {
        litf(c, "{\"name\": \"%s\", \"meta-type\": \"event\", \"arg-type\": \"%s\"", e->name, use_type(in, arg));
    }
    features(c, e->features);
    lit(c, "}");
}

void emit_introspect(const Schema *s, const Output *o)
{
    GString *h = g_string_new(NULL);
    GString *c = g_string_new(NULL);
    GPtrArray *entries = g_ptr_array_new();
    Intro in = {
        .s = s,
        .used = g_ptr_array_new(),
        .names = g_hash_table_new_full(NULL, NULL, NULL, g_free),
    };

    /* "0" is the empty object, whatever comes first */
    g_hash_table_insert(in.names, s->empty_object, g_strdup("0"));
    in.next_number = 1;

    for (guint i = 0; i < s->entities->len; i++) {
        Entity *e = s->entities->pdata[i];
        if (e->meta == META_COMMAND || e->meta == META_EVENT) {
            command_or_event_entry(&in, elem_new(entries, e->cond)->code, e);
        }
    }
    for (guint i = 0; i < in.used->len; i++) {
        Entity *t = in.used->pdata[i];
        type_entry(&in, elem_new(entries, t->cond)->code, t);
    }

    emit_banner(h, o, "query-qmp-schema");
    g_string_append(h, "#ifndef QAPI_INTROSPECT_H\n#define QAPI_INTROSPECT_H\n\n"
                    "/* The exact query-qmp-schema return value: a JSON array. */\n"
                    "extern const char qmp_schema_json[];\n\n#endif\n");
    emit_banner(c, o, "query-qmp-schema");
    g_string_append(c, "#include \"qapi-introspect.h\"\n\nconst char qmp_schema_json[] =\n");
    lit(c, "[");
    join(c, entries);
    lit(c, "]");
    g_string_append(c, "    ;\n");
    emit_write_file(o, "qapi-introspect.h", h);
    emit_write_file(o, "qapi-introspect.c", c);
    g_string_free(h, TRUE);
    g_string_free(c, TRUE);
    g_ptr_array_free(entries, TRUE);
    g_ptr_array_free(in.used, TRUE);
    g_hash_table_destroy(in.names);
}
