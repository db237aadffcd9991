/*
 * Directives: 'include' (path relative to the including file; a file
 * included again is skipped, a file including one of its includers is a
 * loop) and 'pragma'. Everything else is passed on as a definition.
 */
#include "schema.h"

#include <stdlib.h>
#include <string.h>

typedef struct Loader {
    GHashTable *seen;           /* real paths already read */
    GPtrArray *stack;           /* real paths being read */
    Pragmas *pragmas;
    SchemaExpr *head, **tail;
} Loader;

static GPtrArray *pragma_name_list(json_object *v, const Loc *loc, const char *pragma)
{
    GPtrArray *list = g_ptr_array_new();

    if (!json_object_is_type(v, json_type_array)) {
        diag_fatal(loc, "pragma '%s' must be a list of strings", pragma);
    }
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        json_object *s = json_object_array_get_idx(v, i);
        if (!json_object_is_type(s, json_type_string)) {
            diag_fatal(loc, "pragma '%s' must be a list of strings", pragma);
        }
        g_ptr_array_add(list, g_strdup(json_object_get_string(s)));
    }
    return list;
}

static void append_list(GPtrArray **dst, GPtrArray *src)
{
    if (!*dst) {
        *dst = src;
        return;
    }
    for (guint i = 0; i < src->len; i++) {
        g_ptr_array_add(*dst, src->pdata[i]);
    }
    g_ptr_array_free(src, TRUE);
}

static void load_pragma(Loader *ld, json_object *p, const Loc *loc)
{
    if (!json_object_is_type(p, json_type_object)) {
        diag_fatal(loc, "value of 'pragma' must be an object");
    }
    json_object_object_foreach(p, key, v) {
        if (strcmp(key, "doc-required") == 0) {
            if (!json_object_is_type(v, json_type_boolean)) {
                diag_fatal(loc, "pragma 'doc-required' must be true or false");
            }
            ld->pragmas->doc_required = json_object_get_boolean(v);
        } else if (strcmp(key, "command-name-exceptions") == 0) {
            append_list(&ld->pragmas->command_name_exceptions, pragma_name_list(v, loc, key));
        } else if (strcmp(key, "command-returns-exceptions") == 0) {
            append_list(&ld->pragmas->command_returns_exceptions, pragma_name_list(v, loc, key));
        } else if (strcmp(key, "member-name-exceptions") == 0) {
            append_list(&ld->pragmas->member_name_exceptions, pragma_name_list(v, loc, key));
        } else {
            diag_fatal(loc, "unknown pragma '%s'", key);
        }
    }
}

static void load_file(Loader *ld, const char *path, const Loc *from);

static void load_include(Loader *ld, SchemaExpr *e, const char *cur_file)
{
    json_object *v = NULL;
    g_autofree char *dir = g_path_get_dirname(cur_file);
    char *path;

    if (json_object_object_length(e->obj) != 1) {
        diag_fatal(&e->loc, "'include' takes no other keys");
    }
    json_object_object_get_ex(e->obj, "include", &v);
    if (!json_object_is_type(v, json_type_string)) {
        diag_fatal(&e->loc, "value of 'include' must be a string");
    }
    path = strcmp(dir, ".") == 0 ? g_strdup(json_object_get_string(v))
                                 : g_build_filename(dir, json_object_get_string(v), NULL);
    load_file(ld, path, &e->loc);
}

static void load_file(Loader *ld, const char *path, const Loc *from)
{
    char *real = realpath(path, NULL);
    SchemaExpr *e, *next;

    if (!real) {
        diag_fatal(from, "can't read %s file '%s'", from ? "include" : "schema", path);
    }
    for (guint i = 0; i < ld->stack->len; i++) {
        if (strcmp(ld->stack->pdata[i], real) == 0) {
            diag_fatal(from, "inclusion loop for %s", path);
        }
    }
    if (g_hash_table_contains(ld->seen, real)) {
        free(real);
        return;
    }
    g_hash_table_add(ld->seen, g_strdup(real));
    g_ptr_array_add(ld->stack, real);

    for (e = lexer_parse_file(path); e; e = next) {
        next = e->next;
        e->next = NULL;
        if (json_object_object_get_ex(e->obj, "include", NULL)) {
            load_include(ld, e, path);
        } else if (json_object_object_get_ex(e->obj, "pragma", NULL)) {
            if (json_object_object_length(e->obj) != 1) {
                diag_fatal(&e->loc, "'pragma' takes no other keys");
            }
            json_object *p = NULL;
            json_object_object_get_ex(e->obj, "pragma", &p);
            load_pragma(ld, p, &e->loc);
        } else {
            *ld->tail = e;
            ld->tail = &e->next;
        }
    }
    g_ptr_array_remove_index(ld->stack, ld->stack->len - 1);
    free(real);
}

SchemaExpr *loader_read(const char *main_file, Pragmas *pragmas)
{
    Loader ld = {
        .seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL),
        .stack = g_ptr_array_new(),
        .pragmas = pragmas,
    };

    ld.tail = &ld.head;
    load_file(&ld, main_file, NULL);
    g_hash_table_destroy(ld.seen);
    g_ptr_array_free(ld.stack, TRUE);
    return ld.head;
}
