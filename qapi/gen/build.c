/*
 * From expressions to entities: which keys each definition takes, and the
 * shape of every value ('if' conditions, features, members, type references).
 * Names and references are checked later (check.c).
 */
#include "schema.h"

#include <string.h>

typedef struct Keys {
    const char *meta;
    const char *required[4];
    const char *optional[12];
} Keys;

static const Keys keys_table[] = {
    { "enum", { "enum", "data" }, { "prefix", "if", "features" } },
    { "struct", { "struct", "data" }, { "base", "if", "features" } },
    { "union", { "union", "base", "discriminator", "data" }, { "if", "features" } },
    { "alternate", { "alternate", "data" }, { "if", "features" } },
    { "command", { "command" }, { "data", "returns", "boxed", "if", "features", "gen",
                                  "success-response", "allow-oob", "allow-preconfig",
                                  "coroutine" } },
    { "event", { "event" }, { "data", "boxed", "if", "features" } },
};

static const struct {
    const char *name, *c_type, *json_type, *int_desc;
    BuiltinKind kind;
    int bits;
} builtins[] = {
    { "str", "char *", "string", NULL, BK_STR, 0 },
    { "number", "double", "number", NULL, BK_NUMBER, 0 },
    { "int", "int64_t", "int", "int64", BK_INT, 64 },
    { "int8", "int8_t", "int", "int8_t", BK_INT, 8 },
    { "int16", "int16_t", "int", "int16_t", BK_INT, 16 },
    { "int32", "int32_t", "int", "int32_t", BK_INT, 32 },
    { "int64", "int64_t", "int", "int64", BK_INT, 64 },
    { "uint8", "uint8_t", "int", "uint8_t", BK_UINT, 8 },
    { "uint16", "uint16_t", "int", "uint16_t", BK_UINT, 16 },
    { "uint32", "uint32_t", "int", "uint32_t", BK_UINT, 32 },
    { "uint64", "uint64_t", "int", "uint64", BK_UINT, 64 },
    { "size", "uint64_t", "int", "uint64", BK_UINT, 64 },
    { "bool", "bool", "boolean", NULL, BK_BOOL, 0 },
    { "null", "", "null", NULL, BK_NULL, 0 },
    { "any", "json_object *", "value", NULL, BK_ANY, 0 },
};

static json_object *get(json_object *obj, const char *key)
{
    json_object *v = NULL;

    json_object_object_get_ex(obj, key, &v);
    return v;
}

static const char *get_string(json_object *obj, const char *key, const Loc *loc, const char *what)
{
    json_object *v = get(obj, key);

    if (!v) {
        return NULL;
    }
    if (!json_object_is_type(v, json_type_string)) {
        diag_fatal(loc, "%s: '%s' must be a string", what, key);
    }
    return json_object_get_string(v);
}

static bool get_bool(json_object *obj, const char *key, bool dflt, const Loc *loc, const char *what)
{
    json_object *v = get(obj, key);

    if (!v) {
        return dflt;
    }
    if (!json_object_is_type(v, json_type_boolean)) {
        diag_fatal(loc, "%s: '%s' must be true or false", what, key);
    }
    return json_object_get_boolean(v);
}

/* 'if': 'SYMBOL' | { 'all': [COND...] } | { 'any': [COND...] } | { 'not': COND } -> C expression */
static char *cond_to_c(json_object *v, const Loc *loc, const char *what)
{
    if (json_object_is_type(v, json_type_string)) {
        const char *sym = json_object_get_string(v);
        if (!*sym || strspn(sym, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") != strlen(sym)) {
            diag_fatal(loc, "%s: 'if' condition '%s' is not a valid identifier", what, sym);
        }
        return g_strdup_printf("defined(%s)", sym);
    }
    if (!json_object_is_type(v, json_type_object) || json_object_object_length(v) != 1) {
        diag_fatal(loc, "%s: 'if' condition must be a string or an object with one of 'all', 'any', 'not'", what);
    }
    json_object_object_foreach(v, op, arg) {
        if (strcmp(op, "not") == 0) {
            g_autofree char *inner = cond_to_c(arg, loc, what);
            return g_strdup_printf("!%s", inner);
        }
        if (strcmp(op, "all") == 0 || strcmp(op, "any") == 0) {
            GString *out = g_string_new("(");
            if (!json_object_is_type(arg, json_type_array) || json_object_array_length(arg) == 0) {
                diag_fatal(loc, "%s: 'if' '%s' needs a non-empty list", what, op);
            }
            for (size_t i = 0; i < json_object_array_length(arg); i++) {
                g_autofree char *c = cond_to_c(json_object_array_get_idx(arg, i), loc, what);
                g_string_append_printf(out, "%s%s", i ? (op[1] == 'l' ? " && " : " || ") : "", c);
            }
            g_string_append_c(out, ')');
            return g_string_free(out, FALSE);
        }
        diag_fatal(loc, "%s: unknown 'if' operator '%s'", what, op);
    }
    return NULL;
}

static char *get_cond(json_object *obj, const Loc *loc, const char *what)
{
    json_object *v = get(obj, "if");

    return v ? cond_to_c(v, loc, what) : NULL;
}

static GPtrArray *get_features(json_object *obj, const Loc *loc, const char *what)
{
    json_object *v = get(obj, "features");
    GPtrArray *list = g_ptr_array_new();

    if (!v) {
        return list;
    }
    if (!json_object_is_type(v, json_type_array)) {
        diag_fatal(loc, "%s: 'features' must be an array", what);
    }
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *f = json_object_array_get_idx(v, i);
        Feature *feat = g_new0(Feature, 1);
        if (json_object_is_type(f, json_type_string)) {
            feat->name = g_strdup(json_object_get_string(f));
        } else if (json_object_is_type(f, json_type_object)) {
            json_object_object_foreach(f, k, fv) {
                (void)fv;
                if (strcmp(k, "name") && strcmp(k, "if")) {
                    diag_fatal(loc, "%s: feature has unknown key '%s'", what, k);
                }
            }
            feat->name = g_strdup(get_string(f, "name", loc, what));
            if (!feat->name) {
                diag_fatal(loc, "%s: feature lacks 'name'", what);
            }
            feat->cond = get_cond(f, loc, what);
        } else {
            diag_fatal(loc, "%s: a feature must be a string or an object", what);
        }
        g_ptr_array_add(list, feat);
    }
    return list;
}

/* TYPE is 'Name' or [ 'Name' ]; returns "Name" or "[Name]". */
static char *type_ref(json_object *v, const Loc *loc, const char *what, bool allow_array)
{
    if (json_object_is_type(v, json_type_string)) {
        return g_strdup(json_object_get_string(v));
    }
    if (json_object_is_type(v, json_type_array)) {
        if (!allow_array) {
            diag_fatal(loc, "%s cannot be an array", what);
        }
        if (json_object_array_length(v) != 1 ||
            !json_object_is_type(json_object_array_get_idx(v, 0), json_type_string)) {
            diag_fatal(loc, "%s: an array type must contain exactly one type name", what);
        }
        return g_strdup_printf("[%s]", json_object_get_string(json_object_array_get_idx(v, 0)));
    }
    diag_fatal(loc, "%s should be a type name", what);
}

/* 'data' of a struct/command/event: { '[*]name': TYPE or { 'type': TYPE, 'if', 'features' } } */
static GPtrArray *get_members(json_object *data, const Loc *loc, const char *owner)
{
    GPtrArray *members = g_ptr_array_new();

    if (!json_object_is_type(data, json_type_object)) {
        diag_fatal(loc, "%s: 'data' must be an object", owner);
    }
    json_object_object_foreach(data, key, v) {
        Member *m = g_new0(Member, 1);
        g_autofree char *what = NULL;
        m->optional = key[0] == '*';
        m->name = g_strdup(key + m->optional);
        m->loc = *loc;
        what = g_strdup_printf("%s member '%s'", owner, m->name);
        if (json_object_is_type(v, json_type_object)) {
            json_object_object_foreach(v, k, mv) {
                (void)mv;
                if (strcmp(k, "type") && strcmp(k, "if") && strcmp(k, "features")) {
                    diag_fatal(loc, "%s has unknown key '%s'", what, k);
                }
            }
            if (!get(v, "type")) {
                diag_fatal(loc, "%s lacks 'type'", what);
            }
            m->type_ref = type_ref(get(v, "type"), loc, what, true);
            m->cond = get_cond(v, loc, what);
            m->features = get_features(v, loc, what);
        } else {
            m->type_ref = type_ref(v, loc, what, true);
            m->features = g_ptr_array_new();
        }
        g_ptr_array_add(members, m);
    }
    return members;
}

/* 'data' of a union/alternate: { 'name': TYPE or { 'type': TYPE, 'if' } } */
static GPtrArray *get_variants(json_object *data, const Loc *loc, const char *owner)
{
    GPtrArray *variants = g_ptr_array_new();

    if (!json_object_is_type(data, json_type_object)) {
        diag_fatal(loc, "%s: 'data' must be an object", owner);
    }
    if (json_object_object_length(data) == 0) {
        diag_fatal(loc, "%s: 'data' must not be empty", owner);
    }
    json_object_object_foreach(data, key, v) {
        Variant *var = g_new0(Variant, 1);
        g_autofree char *what = g_strdup_printf("%s branch '%s'", owner, key);
        var->name = g_strdup(key);
        if (json_object_is_type(v, json_type_object)) {
            json_object_object_foreach(v, k, bv) {
                (void)bv;
                if (strcmp(k, "type") && strcmp(k, "if")) {
                    diag_fatal(loc, "%s has unknown key '%s'", what, k);
                }
            }
            if (!get(v, "type")) {
                diag_fatal(loc, "%s lacks 'type'", what);
            }
            var->type_ref = type_ref(get(v, "type"), loc, what, false);
            var->cond = get_cond(v, loc, what);
        } else {
            var->type_ref = type_ref(v, loc, what, false);
        }
        g_ptr_array_add(variants, var);
    }
    return variants;
}

static GPtrArray *get_enum_values(json_object *data, const Loc *loc, const char *owner)
{
    GPtrArray *values = g_ptr_array_new();

    if (!json_object_is_type(data, json_type_array)) {
        diag_fatal(loc, "%s: 'data' must be an array", owner);
    }
    for (size_t i = 0; i < json_object_array_length(data); i++) {
        json_object *v = json_object_array_get_idx(data, i);
        EnumValue *ev = g_new0(EnumValue, 1);
        if (json_object_is_type(v, json_type_string)) {
            ev->name = g_strdup(json_object_get_string(v));
            ev->features = g_ptr_array_new();
        } else if (json_object_is_type(v, json_type_object)) {
            json_object_object_foreach(v, k, x) {
                (void)x;
                if (strcmp(k, "name") && strcmp(k, "if") && strcmp(k, "features")) {
                    diag_fatal(loc, "%s: value has unknown key '%s'", owner, k);
                }
            }
            if (!get_string(v, "name", loc, owner)) {
                diag_fatal(loc, "%s: value lacks 'name'", owner);
            }
            ev->name = g_strdup(get_string(v, "name", loc, owner));
            ev->cond = get_cond(v, loc, owner);
            ev->features = get_features(v, loc, owner);
        } else {
            diag_fatal(loc, "%s: 'data' values must be strings or objects", owner);
        }
        g_ptr_array_add(values, ev);
    }
    return values;
}

static const Keys *check_keys(json_object *obj, const Loc *loc)
{
    const Keys *keys = NULL;

    for (size_t i = 0; i < G_N_ELEMENTS(keys_table); i++) {
        if (get(obj, keys_table[i].meta)) {
            if (keys) {
                diag_fatal(loc, "expression has both '%s' and '%s'", keys->meta, keys_table[i].meta);
            }
            keys = &keys_table[i];
        }
    }
    if (!keys) {
        const char *first = "";
        json_object_object_foreach(obj, k, v) {
            (void)v;
            first = k;
            break;
        }
        diag_fatal(loc, "unknown top-level keyword '%s' (expected one of include, pragma, enum, "
                   "struct, union, alternate, command, event)", first);
    }
    json_object_object_foreach(obj, key, val) {
        bool ok = false;
        (void)val;
        for (int i = 0; i < 4 && keys->required[i]; i++) {
            ok |= strcmp(key, keys->required[i]) == 0;
        }
        for (int i = 0; i < 12 && keys->optional[i]; i++) {
            ok |= strcmp(key, keys->optional[i]) == 0;
        }
        if (!ok) {
            diag_fatal(loc, "%s '%s' has unknown key '%s'", keys->meta,
                       json_object_get_string(get(obj, keys->meta)), key);
        }
    }
    for (int i = 0; i < 4 && keys->required[i]; i++) {
        if (!get(obj, keys->required[i])) {
            diag_fatal(loc, "%s '%s' lacks '%s'", keys->meta,
                       json_object_get_string(get(obj, keys->meta)), keys->required[i]);
        }
    }
    return keys;
}

static Entity *implicit_struct(Schema *s, const char *name, GPtrArray *members, const Entity *owner)
{
    Entity *e = g_new0(Entity, 1);

    e->meta = META_STRUCT;
    e->name = g_strdup(name);
    e->loc = owner->loc;
    e->cond = owner->cond ? g_strdup(owner->cond) : NULL;
    e->features = g_ptr_array_new();
    e->members = members;
    e->implicit = true;
    schema_add(s, e, &owner->loc);
    return e;
}

static void build_command_or_event(Schema *s, Entity *e, json_object *obj, const char *what)
{
    json_object *data = get(obj, "data");

    e->boxed = get_bool(obj, "boxed", false, &e->loc, what);
    if (data && json_object_is_type(data, json_type_string)) {
        e->data_ref = g_strdup(json_object_get_string(data));
    } else if (data) {
        g_autofree char *name = g_strdup_printf("q_obj_%s-arg", e->name);
        GPtrArray *members = get_members(data, &e->loc, what);
        if (e->boxed) {
            diag_fatal(&e->loc, "%s: 'boxed': true requires 'data' to name a type", what);
        }
        if (members->len) {
            e->arg_type = implicit_struct(s, name, members, e);
        }
    } else if (e->boxed) {
        diag_fatal(&e->loc, "%s: 'boxed': true requires 'data'", what);
    }
}

static Entity *build_entity(Schema *s, SchemaExpr *x)
{
    const Keys *keys = check_keys(x->obj, &x->loc);
    Entity *e = g_new0(Entity, 1);
    json_object *name = get(x->obj, keys->meta);
    g_autofree char *what = NULL;

    if (!json_object_is_type(name, json_type_string)) {
        diag_fatal(&x->loc, "value of '%s' must be a string", keys->meta);
    }
    e->name = g_strdup(json_object_get_string(name));
    e->loc = x->loc;
    e->doc_symbol = x->doc_symbol;
    what = g_strdup_printf("%s '%s'", keys->meta, e->name);
    e->cond = get_cond(x->obj, &x->loc, what);
    e->features = get_features(x->obj, &x->loc, what);

    if (strcmp(keys->meta, "enum") == 0) {
        e->meta = META_ENUM;
        e->values = get_enum_values(get(x->obj, "data"), &x->loc, what);
        e->prefix = g_strdup(get_string(x->obj, "prefix", &x->loc, what));
    } else if (strcmp(keys->meta, "struct") == 0) {
        e->meta = META_STRUCT;
        e->members = get_members(get(x->obj, "data"), &x->loc, what);
        e->base_ref = g_strdup(get_string(x->obj, "base", &x->loc, what));
    } else if (strcmp(keys->meta, "union") == 0) {
        json_object *base = get(x->obj, "base");
        e->meta = META_UNION;
        e->discriminator = g_strdup(get_string(x->obj, "discriminator", &x->loc, what));
        e->variants = get_variants(get(x->obj, "data"), &x->loc, what);
        if (json_object_is_type(base, json_type_string)) {
            e->base_ref = g_strdup(json_object_get_string(base));
        } else if (json_object_is_type(base, json_type_object)) {
            g_autofree char *bname = g_strdup_printf("q_obj_%s-base", e->name);
            GPtrArray *members = get_members(base, &x->loc, what);
            e->base_ref = g_strdup(bname);
            implicit_struct(s, bname, members, e);
        } else {
            diag_fatal(&x->loc, "%s: 'base' must be a type name or an object", what);
        }
    } else if (strcmp(keys->meta, "alternate") == 0) {
        e->meta = META_ALTERNATE;
        e->variants = get_variants(get(x->obj, "data"), &x->loc, what);
    } else if (strcmp(keys->meta, "command") == 0) {
        json_object *ret = get(x->obj, "returns");
        e->meta = META_COMMAND;
        build_command_or_event(s, e, x->obj, what);
        e->returns_ref = ret ? type_ref(ret, &x->loc, "'returns'", true) : NULL;
        e->gen = get_bool(x->obj, "gen", true, &x->loc, what);
        e->success_response = get_bool(x->obj, "success-response", true, &x->loc, what);
        e->allow_oob = get_bool(x->obj, "allow-oob", false, &x->loc, what);
        e->allow_preconfig = get_bool(x->obj, "allow-preconfig", false, &x->loc, what);
        e->coroutine = get_bool(x->obj, "coroutine", false, &x->loc, what);
    } else {
        e->meta = META_EVENT;
        build_command_or_event(s, e, x->obj, what);
    }
    return e;
}

void schema_add(Schema *s, Entity *e, const Loc *loc)
{
    Entity *old = g_hash_table_lookup(s->by_name, e->name);

    if (old) {
        if (old->loc.file) {
            diag_fatal(loc, "'%s' is already defined at %s:%d", e->name, old->loc.file, old->loc.line);
        }
        diag_fatal(loc, "'%s' is a built-in type and cannot be redefined", e->name);
    }
    g_hash_table_insert(s->by_name, e->name, e);
    g_ptr_array_add(s->entities, e);
}

Entity *schema_lookup(Schema *s, const char *name)
{
    return g_hash_table_lookup(s->by_name, name);
}

Entity *schema_array_of(Schema *s, Entity *elem)
{
    g_autofree char *name = g_strdup_printf("%sList", elem->name);
    Entity *e = schema_lookup(s, name);

    if (e) {
        return e;
    }
    e = g_new0(Entity, 1);
    e->meta = META_ARRAY;
    e->name = g_strdup(name);
    e->elem = elem;
    e->implicit = true;
    e->loc = elem->loc;
    e->cond = elem->cond ? g_strdup(elem->cond) : NULL;
    e->features = g_ptr_array_new();
    g_hash_table_insert(s->by_name, e->name, e);
    g_ptr_array_add(s->entities, e);
    return e;
}

static void add_builtins(Schema *s)
{
    for (size_t i = 0; i < G_N_ELEMENTS(builtins); i++) {
        Entity *e = g_new0(Entity, 1);
        e->meta = META_BUILTIN;
        e->name = g_strdup(builtins[i].name);
        e->bkind = builtins[i].kind;
        e->c_type = builtins[i].c_type;
        e->json_type = builtins[i].json_type;
        e->int_desc = builtins[i].int_desc;
        e->bits = builtins[i].bits;
        e->features = g_ptr_array_new();
        schema_add(s, e, NULL);
    }
    s->empty_object = g_new0(Entity, 1);
    s->empty_object->meta = META_STRUCT;
    s->empty_object->name = g_strdup("q_empty");
    s->empty_object->members = g_ptr_array_new();
    s->empty_object->features = g_ptr_array_new();
    s->empty_object->implicit = true;
    schema_add(s, s->empty_object, NULL);
}

Schema *schema_build(SchemaExpr *exprs, Pragmas *pragmas)
{
    Schema *s = g_new0(Schema, 1);

    s->entities = g_ptr_array_new();
    s->by_name = g_hash_table_new(g_str_hash, g_str_equal);
    s->pragmas = *pragmas;
    add_builtins(s);
    for (SchemaExpr *x = exprs; x; x = x->next) {
        Entity *e = build_entity(s, x);
        schema_add(s, e, &x->loc);
    }
    return s;
}
