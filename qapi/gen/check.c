/*
 * Semantic rules: names, references, union and alternate rules, clashes,
 * the 'returns' rule, documentation. The first violation stops the build.
 */
#include "schema.h"
#include "cname.h"

#include <ctype.h>
#include <string.h>

static bool in_list(GPtrArray *list, const char *name)
{
    for (guint i = 0; list && i < list->len; i++) {
        if (strcmp(list->pdata[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* Skip a downstream extension prefix "__RFQDN_". */
static const char *strip_downstream(const char *name)
{
    if (strncmp(name, "__", 2) == 0) {
        const char *u = strchr(name + 2, '_');
        if (u && u > name + 2) {
            return u + 1;
        }
    }
    return name;
}

static bool all_chars(const char *s, const char *accept)
{
    return *s && strspn(s, accept) == strlen(s);
}

#define LOWER "abcdefghijklmnopqrstuvwxyz"
#define UPPER "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#define DIGITS "0123456789"

/* Member, enum value, command and feature names: lower-case words joined by '-'. */
static void check_name_lower(const char *name, const Loc *loc, const char *what,
                             bool permit_upper, bool permit_underscore, bool permit_digit_start)
{
    const char *stem = strip_downstream(name);
    GString *accept = g_string_new(LOWER DIGITS "-");

    if (permit_upper) {
        g_string_append(accept, UPPER);
    }
    if (permit_underscore) {
        g_string_append_c(accept, '_');
    }
    if (!all_chars(stem, accept->str) ||
        !(isalpha((unsigned char)stem[0]) || (permit_digit_start && isdigit((unsigned char)stem[0])))) {
        diag_fatal(loc, "%s has an invalid name '%s' (use lower-case letters, digits and '-'%s)",
                   what, name, permit_digit_start ? "" : ", starting with a letter");
    }
    g_string_free(accept, TRUE);
    if (g_str_has_prefix(stem, "q_")) {
        diag_fatal(loc, "%s '%s' uses the reserved prefix 'q_'", what, name);
    }
}

static void check_type_name(const Entity *e)
{
    const char *stem = strip_downstream(e->name);
    bool has_lower = false;

    for (const char *p = stem; *p; p++) {
        has_lower |= islower((unsigned char)*p) != 0;
    }
    if (!all_chars(stem, LOWER UPPER DIGITS) || !isupper((unsigned char)stem[0]) || !has_lower) {
        diag_fatal(&e->loc, "type name '%s' should be CamelCase (letters and digits, "
                   "starting with an upper-case letter)", e->name);
    }
    if (g_str_has_suffix(e->name, "List") || g_str_has_suffix(e->name, "Kind")) {
        diag_fatal(&e->loc, "type name '%s' must not end in '%s'", e->name, e->name + strlen(e->name) - 4);
    }
}

static void check_features(GPtrArray *features, const Loc *loc, const char *what)
{
    GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);

    for (guint i = 0; features && i < features->len; i++) {
        Feature *f = features->pdata[i];
        g_autofree char *fwhat = g_strdup_printf("feature of %s", what);
        check_name_lower(f->name, loc, fwhat, false, false, false);
        if (!g_hash_table_add(seen, f->name)) {
            diag_fatal(loc, "%s has duplicate feature '%s'", what, f->name);
        }
    }
    g_hash_table_destroy(seen);
}

static void check_entity_name(Schema *s, const Entity *e)
{
    g_autofree char *what = NULL;

    if (e->implicit) {
        return;
    }
    switch (e->meta) {
    case META_COMMAND:
        what = g_strdup_printf("command '%s'", e->name);
        check_name_lower(e->name, &e->loc, "command", false,
                         in_list(s->pragmas.command_name_exceptions, e->name), false);
        break;
    case META_EVENT:
        what = g_strdup_printf("event '%s'", e->name);
        if (!all_chars(strip_downstream(e->name), UPPER DIGITS "_") || !isupper((unsigned char)e->name[0])) {
            diag_fatal(&e->loc, "event name '%s' should be upper-case (letters, digits, '_')", e->name);
        }
        break;
    default:
        what = g_strdup_printf("type '%s'", e->name);
        check_type_name(e);
    }
    check_features(e->features, &e->loc, what);
}

static void check_doc(Schema *s, const Entity *e)
{
    if (!s->pragmas.doc_required || e->implicit || e->meta == META_BUILTIN) {
        return;
    }
    if (!e->doc_symbol) {
        diag_fatal(&e->loc, "documentation comment required for '%s'", e->name);
    }
    if (strcmp(e->doc_symbol, e->name) != 0) {
        diag_fatal(&e->loc, "documentation comment is for '%s', not '%s'", e->doc_symbol, e->name);
    }
}

/* "Foo" or "[Foo]" -> entity; creates FooList on demand. */
static Entity *resolve(Schema *s, const char *ref, const Loc *loc, const char *what)
{
    bool array = ref[0] == '[';
    g_autofree char *name = array ? g_strndup(ref + 1, strlen(ref) - 2) : g_strdup(ref);
    Entity *t = schema_lookup(s, name);

    if (!t || t->meta == META_COMMAND || t->meta == META_EVENT || t->meta == META_ARRAY ||
        strcmp(name, "q_empty") == 0) {
        diag_fatal(loc, "%s uses unknown type '%s'", what, name);
    }
    return array ? schema_array_of(s, t) : t;
}

GPtrArray *entity_all_members(const Entity *e)
{
    GPtrArray *all = e->base ? entity_all_members(e->base) : g_ptr_array_new();

    for (guint i = 0; e->members && i < e->members->len; i++) {
        g_ptr_array_add(all, e->members->pdata[i]);
    }
    return all;
}

bool entity_is_scalar(const Entity *e)
{
    if (e->meta == META_ENUM) {
        return true;
    }
    return e->meta == META_BUILTIN && e->bkind != BK_STR && e->bkind != BK_ANY;
}

bool entity_is_object(const Entity *e)
{
    return e->meta == META_STRUCT || e->meta == META_UNION;
}

static void check_members(Schema *s, Entity *owner, GPtrArray *members, const char *owner_what)
{
    bool exc = in_list(s->pragmas.member_name_exceptions, owner->name);

    for (guint i = 0; members && i < members->len; i++) {
        Member *m = members->pdata[i];
        g_autofree char *what = g_strdup_printf("member '%s' of %s", m->name, owner_what);

        check_name_lower(m->name, &m->loc, what, exc, exc, false);
        if (strcmp(m->name, "u") == 0 || g_str_has_prefix(m->name, "has-") ||
            g_str_has_prefix(m->name, "has_")) {
            diag_fatal(&m->loc, "%s uses a reserved name", what);
        }
        check_features(m->features, &m->loc, what);
        m->type = resolve(s, m->type_ref, &m->loc, what);
    }
}

/* No two members (base included) may share a C name. */
static void check_clash(GPtrArray *members, const Loc *loc, const char *what)
{
    GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

    for (guint i = 0; i < members->len; i++) {
        Member *m = members->pdata[i];
        char *cn = c_name(m->name);
        Member *old = g_hash_table_lookup(seen, cn);
        if (old && strcmp(old->name, m->name) == 0) {
            diag_fatal(loc, "%s: member '%s' is defined twice (base, branch and own members "
                       "share one namespace)", what, m->name);
        }
        if (old) {
            diag_fatal(loc, "%s: member '%s' clashes with member '%s'", what, m->name, old->name);
        }
        g_hash_table_insert(seen, cn, m);
    }
    g_hash_table_destroy(seen);
}

static void check_base_loop(Entity *e)
{
    int depth = 0;

    for (Entity *b = e->base; b; b = b->base) {
        if (b == e || ++depth > 1000) {
            diag_fatal(&e->loc, "the base of struct '%s' loops back to itself", e->name);
        }
    }
}

static Entity *resolve_base(Schema *s, Entity *e, const char *what)
{
    g_autofree char *bwhat = g_strdup_printf("base of %s", what);
    Entity *b = resolve(s, e->base_ref, &e->loc, bwhat);

    if (b->meta != META_STRUCT) {
        diag_fatal(&e->loc, "%s: base '%s' must be a struct type", what, e->base_ref);
    }
    return b;
}

/* Structs are checked in three passes so that bases and members defined
 * later in the schema are resolved before anybody looks at them. */
static void check_struct_base(Schema *s, Entity *e, const char *what)
{
    if (e->base_ref) {
        e->base = resolve_base(s, e, what);
    }
}

static void check_struct(Schema *s, Entity *e, const char *what)
{
    g_autoptr(GPtrArray) all = NULL;

    check_base_loop(e);
    all = entity_all_members(e);
    check_clash(all, &e->loc, what);
}

static void add_empty_branches(Schema *s, Entity *u)
{
    Entity *en = u->tag->type;

    for (guint i = 0; i < en->values->len; i++) {
        EnumValue *ev = en->values->pdata[i];
        bool found = false;
        for (guint j = 0; j < u->variants->len; j++) {
            found |= strcmp(((Variant *)u->variants->pdata[j])->name, ev->name) == 0;
        }
        if (!found) {
            Variant *v = g_new0(Variant, 1);
            v->name = g_strdup(ev->name);
            v->type = s->empty_object;
            v->cond = ev->cond ? g_strdup(ev->cond) : NULL;
            v->implicit_empty = true;
            g_ptr_array_add(u->variants, v);
        }
    }
}

static void check_union(Schema *s, Entity *u, const char *what)
{
    Entity *base = resolve_base(s, u, what);
    g_autoptr(GPtrArray) base_members = entity_all_members(base);

    /* the union's C struct holds the base members inline */
    u->members = g_ptr_array_new();
    for (guint i = 0; i < base_members->len; i++) {
        g_ptr_array_add(u->members, base_members->pdata[i]);
    }
    for (guint i = 0; i < base_members->len; i++) {
        Member *m = base_members->pdata[i];
        if (strcmp(m->name, u->discriminator) == 0) {
            u->tag = m;
        }
    }
    if (!u->tag) {
        diag_fatal(&u->loc, "%s: discriminator '%s' is not a member of the base", what, u->discriminator);
    }
    if (u->tag->optional) {
        diag_fatal(&u->loc, "%s: discriminator member '%s' must not be optional", what, u->discriminator);
    }
    if (u->tag->type->meta != META_ENUM) {
        diag_fatal(&u->loc, "%s: discriminator member '%s' must be of enum type", what, u->discriminator);
    }
    for (guint i = 0; i < u->variants->len; i++) {
        Variant *v = u->variants->pdata[i];
        Entity *en = u->tag->type;
        bool known = false;
        g_autofree char *vwhat = g_strdup_printf("branch '%s' of %s", v->name, what);
        g_autoptr(GPtrArray) all = NULL;

        for (guint j = 0; j < en->values->len; j++) {
            known |= strcmp(((EnumValue *)en->values->pdata[j])->name, v->name) == 0;
        }
        if (!known) {
            diag_fatal(&u->loc, "%s: branch '%s' is not a value of enum '%s'", what, v->name, en->name);
        }
        v->type = resolve(s, v->type_ref, &u->loc, vwhat);
        if (v->type->meta != META_STRUCT) {
            diag_fatal(&u->loc, "%s must be a struct type, not '%s'", vwhat, v->type->name);
        }
        all = entity_all_members(v->type);
        for (guint j = 0; j < base_members->len; j++) {
            g_ptr_array_add(all, base_members->pdata[j]);
        }
        check_clash(all, &u->loc, vwhat);
    }
    add_empty_branches(s, u);
}

/* The JSON type an alternate branch is chosen by. */
static const char *alternate_json_type(const Entity *t)
{
    switch (t->meta) {
    case META_ENUM:
        return "string";
    case META_BUILTIN:
        switch (t->bkind) {
        case BK_STR: return "string";
        case BK_NUMBER: case BK_INT: case BK_UINT: return "number";
        case BK_BOOL: return "boolean";
        case BK_NULL: return "null";
        default: return NULL;
        }
    case META_STRUCT:
    case META_UNION:
        return "object";
    default:
        return NULL;
    }
}

static void check_alternate(Schema *s, Entity *a, const char *what)
{
    GHashTable *seen = g_hash_table_new(g_str_hash, g_str_equal);

    for (guint i = 0; i < a->variants->len; i++) {
        Variant *v = a->variants->pdata[i];
        g_autofree char *vwhat = g_strdup_printf("branch '%s' of %s", v->name, what);
        const char *jt;
        Variant *old;

        check_name_lower(v->name, &a->loc, vwhat, false, false, false);
        v->type = resolve(s, v->type_ref, &a->loc, vwhat);
        jt = alternate_json_type(v->type);
        if (!jt) {
            diag_fatal(&a->loc, "%s cannot use type '%s'", vwhat, v->type->name);
        }
        old = g_hash_table_lookup(seen, jt);
        if (old) {
            diag_fatal(&a->loc, "%s can't be distinguished from branch '%s' (both are JSON %s)",
                       vwhat, old->name, jt);
        }
        g_hash_table_insert(seen, (char *)jt, v);
    }
    g_hash_table_destroy(seen);
}

static void check_enum(Schema *s, Entity *e, const char *what)
{
    GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    bool exc = in_list(s->pragmas.member_name_exceptions, e->name);

    if (e->prefix && !all_chars(e->prefix, UPPER LOWER DIGITS "_")) {
        diag_fatal(&e->loc, "%s: 'prefix' '%s' is not a valid C identifier", what, e->prefix);
    }
    for (guint i = 0; i < e->values->len; i++) {
        EnumValue *v = e->values->pdata[i];
        g_autofree char *vwhat = g_strdup_printf("value '%s' of %s", v->name, what);
        char *cn = c_enum_const(e, v->name);

        check_name_lower(v->name, &e->loc, vwhat, exc, exc, true);
        check_features(v->features, &e->loc, vwhat);
        if (g_hash_table_contains(seen, cn)) {
            diag_fatal(&e->loc, "%s: value '%s' clashes with value '%s'", what, v->name,
                       (char *)g_hash_table_lookup(seen, cn));
        }
        g_hash_table_insert(seen, cn, v->name);
    }
    g_hash_table_destroy(seen);
}

static void check_args(Schema *s, Entity *e, const char *what)
{
    if (e->data_ref) {
        g_autofree char *dwhat = g_strdup_printf("'data' of %s", what);
        e->arg_type = resolve(s, e->data_ref, &e->loc, dwhat);
        if (!entity_is_object(e->arg_type)) {
            diag_fatal(&e->loc, "%s must name a struct%s type", dwhat, e->boxed ? " or union" : "");
        }
        if (e->arg_type->meta == META_UNION && !e->boxed) {
            diag_fatal(&e->loc, "%s: union type '%s' needs 'boxed': true", dwhat, e->data_ref);
        }
    }
}

static void check_command(Schema *s, Entity *e, const char *what)
{
    check_args(s, e, what);
    if (e->returns_ref) {
        g_autofree char *rwhat = g_strdup_printf("'returns' of %s", what);
        Entity *r = resolve(s, e->returns_ref, &e->loc, rwhat);
        Entity *obj = r->meta == META_ARRAY ? r->elem : r;
        e->ret_type = r;
        if (!entity_is_object(obj) && !in_list(s->pragmas.command_returns_exceptions, e->name)) {
            diag_fatal(&e->loc, "%s cannot return '%s': only objects or lists of objects "
                       "(or list the command in pragma 'command-returns-exceptions')",
                       what, r->meta == META_ARRAY ? e->returns_ref : r->name);
        }
    }
    if (e->allow_oob && !e->success_response) {
        diag_fatal(&e->loc, "%s: 'allow-oob' and 'success-response': false don't mix", what);
    }
}

static char *entity_what(const Entity *e)
{
    static const char *const meta_names[] = {
        "builtin", "enum", "struct", "union", "alternate", "array", "command", "event",
    };

    return g_strdup_printf("%s '%s'", meta_names[e->meta], e->name);
}

void schema_check(Schema *s)
{
    /* the list grows while we resolve array types; those need no checks */
    guint n = s->entities->len;

    for (guint i = 0; i < n; i++) {
        Entity *e = s->entities->pdata[i];
        g_autofree char *what = entity_what(e);
        if (e->meta != META_BUILTIN && e != s->empty_object) {
            check_entity_name(s, e);
            check_doc(s, e);
        }
        if (e->meta == META_STRUCT && e != s->empty_object) {
            check_struct_base(s, e, what);
        }
    }
    for (guint i = 0; i < n; i++) {
        Entity *e = s->entities->pdata[i];
        g_autofree char *what = entity_what(e);
        if (e->meta == META_STRUCT && e != s->empty_object) {
            check_base_loop(e);
            check_members(s, e, e->members, what);
        }
    }
    for (guint i = 0; i < n; i++) {
        Entity *e = s->entities->pdata[i];
        g_autofree char *what = NULL;

        if (e->meta == META_BUILTIN || e == s->empty_object) {
            continue;
        }
        what = entity_what(e);
        switch (e->meta) {
        case META_ENUM: check_enum(s, e, what); break;
        case META_STRUCT: check_struct(s, e, what); break;
        case META_UNION: check_union(s, e, what); break;
        case META_ALTERNATE: check_alternate(s, e, what); break;
        case META_COMMAND: check_command(s, e, what); break;
        case META_EVENT: check_args(s, e, what); break;
        default: break;
        }
    }
    /* like QEMU, every named type has a list type (FooList) */
    for (guint i = 0; i < n; i++) {
        Entity *e = s->entities->pdata[i];
        if (!e->implicit && (e->meta == META_ENUM || e->meta == META_STRUCT ||
                             e->meta == META_UNION || e->meta == META_ALTERNATE)) {
            schema_array_of(s, e);
        }
    }
}
