/*
 * JSON output in QEMU's QMP style.
 *
 * Compact: `{"a": 1, "b": [true, null]}`: ", " between items, ": " after
 * names, empty containers as {} and []. Pretty: every item on its own line,
 * indented four spaces per level, a closing bracket on its own line unless
 * the container is empty:
 *
 *     {
 *         "return": {}
 *     }
 *
 * Strings come out pure ASCII: '"' and '\' escaped, \b \f \n \r \t by name,
 * other control characters and everything from DEL up as \uXXXX (upper-case
 * hex, a surrogate pair above U+FFFF); '/' is not escaped. Input is read as
 * modified UTF-8 ("\xC0\x80" is U+0000); an invalid sequence prints as \uFFFD.
 * Numbers: int64 and uint64 exactly, doubles as "%.17g" (locale-independent).
 */
#include "json-writer.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>
#include <json-c/json_object_iterator.h>
#include "json-lexer.h"

typedef struct Writer {
    GString *out;
    bool pretty;
    bool need_comma;    /* an item precedes in the current container */
    bool started;       /* something was written (no newline before the first item) */
    int depth;
} Writer;

static void newline(Writer *w)
{
    if (w->pretty) {
        g_string_append_c(w->out, '\n');
        for (int i = 0; i < w->depth; i++) {
            g_string_append(w->out, "    ");
        }
    }
}

static void write_string(GString *out, const char *s, size_t len)
{
    g_string_append_c(out, '"');
    for (size_t i = 0; i < len;) {
        /* A run of printable ASCII that needs no escape is copied at once:
         * byte by byte, a large reply (query-qmp-schema) cost most of its
         * time here. */
        size_t run = i;
        while (run < len && s[run] >= 0x20 && s[run] < 0x7F && s[run] != '"' && s[run] != '\\') {
            run++;
        }
        if (run > i) {
            g_string_append_len(out, s + i, run - i);
            i = run;
            continue;
        }
        size_t used;
        int cp = json_utf8_decode(s + i, len - i, &used);

        i += used;
        switch (cp) {
        case '"':  g_string_append(out, "\\\""); continue;
        case '\\': g_string_append(out, "\\\\"); continue;
        case '\b': g_string_append(out, "\\b"); continue;
        case '\f': g_string_append(out, "\\f"); continue;
        case '\n': g_string_append(out, "\\n"); continue;
        case '\r': g_string_append(out, "\\r"); continue;
        case '\t': g_string_append(out, "\\t"); continue;
        default: break;
        }
        if (cp < 0) {
            cp = 0xFFFD;
        }
        if (cp > 0xFFFF) {
            cp -= 0x10000;
            g_string_append_printf(out, "\\u%04X\\u%04X", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
        } else if (cp < 0x20 || cp >= 0x7F) {
            g_string_append_printf(out, "\\u%04X", (unsigned)cp);
        } else {
            g_string_append_c(out, (char)cp);
        }
    }
    g_string_append_c(out, '"');
}

/* Separator, line break and member name before an item. */
static void begin_item(Writer *w, const char *name)
{
    if (w->need_comma) {
        g_string_append_c(w->out, ',');
        if (w->pretty) {
            newline(w);
        } else {
            g_string_append_c(w->out, ' ');
        }
    } else if (w->started) {
        newline(w);
    }
    w->need_comma = true;
    w->started = true;
    if (name) {
        write_string(w->out, name, strlen(name));
        g_string_append(w->out, ": ");
    }
}

static void write_int(GString *out, json_object *obj)
{
    int64_t i = json_object_get_int64(obj);

    /* json-c clamps a uint64 above INT64_MAX to INT64_MAX: ask again unsigned. */
    if (i == INT64_MAX) {
        g_string_append_printf(out, "%" PRIu64, json_object_get_uint64(obj));
    } else {
        g_string_append_printf(out, "%" PRId64, i);
    }
}

static void write_double(GString *out, double d)
{
    char buf[G_ASCII_DTOSTR_BUF_SIZE];

    g_string_append(out, g_ascii_formatd(buf, sizeof(buf), "%.17g", d));
}

static void write_value(Writer *w, const char *name, json_object *obj);

static void write_object(Writer *w, json_object *obj)
{
    struct json_object_iterator it = json_object_iter_begin(obj);
    struct json_object_iterator end = json_object_iter_end(obj);

    for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
        write_value(w, json_object_iter_peek_name(&it), json_object_iter_peek_value(&it));
    }
}

static void write_array(Writer *w, json_object *obj)
{
    size_t n = json_object_array_length(obj);

    for (size_t i = 0; i < n; i++) {
        write_value(w, NULL, json_object_array_get_idx(obj, i));
    }
}

static void write_container(Writer *w, json_object *obj, bool is_object)
{
    g_string_append_c(w->out, is_object ? '{' : '[');
    w->depth++;
    w->need_comma = false;
    if (is_object) {
        write_object(w, obj);
    } else {
        write_array(w, obj);
    }
    w->depth--;
    if (w->need_comma) {
        newline(w);
    }
    g_string_append_c(w->out, is_object ? '}' : ']');
    w->need_comma = true;
}

/* The value of json_write_set_constant and its compact text, published
 * once (release/acquire) and never freed; read by every writer thread. */
typedef struct ConstantText {
    json_object *obj;
    GString *text;
} ConstantText;
static _Atomic(ConstantText *) constant;

void json_write_set_constant(json_object *obj)
{
    ConstantText *c = g_new(ConstantText, 1), *expected = NULL;

    c->obj = obj;
    c->text = g_string_new(NULL);
    json_write(c->text, obj, false);
    if (!atomic_compare_exchange_strong_explicit(&constant, &expected, c, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        g_string_free(c->text, TRUE);
        g_free(c);
    }
}

static void write_value(Writer *w, const char *name, json_object *obj)
{
    begin_item(w, name);
    if (!w->pretty) {
        /* Compact text does not depend on where the value sits. */
        const ConstantText *c = atomic_load_explicit(&constant, memory_order_acquire);
        if (c && c->obj == obj) {
            g_string_append_len(w->out, c->text->str, c->text->len);
            return;
        }
    }
    switch (json_object_get_type(obj)) {
    case json_type_null:
        g_string_append(w->out, "null");
        break;
    case json_type_boolean:
        g_string_append(w->out, json_object_get_boolean(obj) ? "true" : "false");
        break;
    case json_type_int:
        write_int(w->out, obj);
        break;
    case json_type_double:
        write_double(w->out, json_object_get_double(obj));
        break;
    case json_type_string:
        write_string(w->out, json_object_get_string(obj), (size_t)json_object_get_string_len(obj));
        break;
    case json_type_object:
        write_container(w, obj, true);
        break;
    case json_type_array:
        write_container(w, obj, false);
        break;
    }
}

void json_write(GString *out, json_object *obj, bool pretty)
{
    Writer w = { .out = out, .pretty = pretty };

    write_value(&w, NULL, obj);
}

char *json_to_string(json_object *obj)
{
    GString *out = g_string_new(NULL);

    json_write(out, obj, false);
    return g_string_free(out, FALSE);
}
