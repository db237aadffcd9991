/*
 * QMP input: cut a byte stream into top-level JSON values and parse them
 * (qmp-protocol.md section 6).
 *
 * Bytes go through the lexer (json-lexer.c). Tokens are counted here the way
 * QEMU's streamer counts them: a value is complete when a token brings the
 * brace and bracket counters back to zero (or below), or at once for a scalar
 * at top level. Unlike QEMU, tokens are not queued until then: they go
 * straight into an incremental recursive-descent parser that builds json-c
 * objects and keeps the first error, so what is reported (and when) matches
 * QEMU's parse-at-the-end.
 *
 * Errors:
 * - a lexical error reports "JSON parse error, stray '<token text>'" and
 *   drops the partial value; the lexer then skips to a resync point;
 * - a value over a limit (token text bytes, token count, nesting depth) is
 *   reported once; the rest of it is then only lexed and counted, never kept,
 *   until the counters say it is over;
 * - a grammar error is kept and reported when the value is complete.
 *
 * The emit callback may call json_streamer_reset() or json_streamer_free()
 * on its own streamer; a free takes effect when the current feed returns.
 */
#include "json-streamer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include "json-lexer.h"

#define DEFAULT_MAX_BYTES   (16u << 20)
#define DEFAULT_MAX_TOKENS  (2u << 20)
#define DEFAULT_MAX_DEPTH   1024u

/* ---- incremental parser ---------------------------------------------- */

typedef enum ParseState {
    ARRAY_FIRST,    /* after '[': value or ']' */
    ARRAY_NEXT,     /* after ',': value */
    ARRAY_SEP,      /* after a value: ',' or ']' */
    OBJECT_FIRST,   /* after '{': key or '}' */
    OBJECT_KEY,     /* after ',': key */
    OBJECT_COLON,   /* after a key: ':' */
    OBJECT_VALUE,   /* after ':': value */
    OBJECT_SEP,     /* after a value: ',' or '}' */
} ParseState;

typedef struct Frame {
    json_object *container;     /* owned here until attached to its parent */
    ParseState state;
    char *key;                  /* member name waiting for its value */
} Frame;

typedef struct JsonParser {
    GArray *frames;             /* of Frame, innermost last */
    bool done;                  /* top-level value complete */
    json_object *root;
    Error *err;                 /* first error; everything after is ignored */
} JsonParser;

static void parser_clear_frames(JsonParser *p)
{
    for (guint i = 0; i < p->frames->len; i++) {
        Frame *f = &g_array_index(p->frames, Frame, i);
        json_object_put(f->container);
        g_free(f->key);
    }
    g_array_set_size(p->frames, 0);
}

static void parser_reset(JsonParser *p)
{
    parser_clear_frames(p);
    json_object_put(p->root);
    p->root = NULL;
    p->done = false;
    error_free(p->err);
    p->err = NULL;
}

static void parse_error(JsonParser *p, const char *fmt, ...) MIGVM_PRINTF(2, 3);

static void parse_error(JsonParser *p, const char *fmt, ...)
{
    va_list ap;

    if (p->err) {
        return;
    }
    va_start(ap, fmt);
    g_autofree char *detail = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_setg(&p->err, "JSON parse error, %s", detail);
    parser_clear_frames(p);     /* nothing more will be built */
}

static int hex4(const char *s, size_t n)
{
    int cp = 0;

    if (n < 4) {
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        int d = g_ascii_xdigit_value(s[i]);
        if (d < 0) {
            return -1;
        }
        cp = cp << 4 | d;
    }
    return cp;
}

/* Decode \uXXXX (and a following low surrogate) at s[*i], just after the 'u'. */
static int decode_unicode_escape(const char *s, size_t end, size_t *i)
{
    int cp = hex4(s + *i, end - *i);

    if (cp < 0) {
        *i = MIN(*i + 4, end);
        return -1;
    }
    *i += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF && *i + 1 < end && s[*i] == '\\' && s[*i + 1] == 'u') {
        int low = hex4(s + *i + 2, end - *i - 2);
        if (low < 0xDC00 || low > 0xDFFF) {
            return -1;
        }
        *i += 6;
        return 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    return cp;
}

static char simple_escape(char c)
{
    switch (c) {
    case '"':  return '"';
    case '\'': return '\'';
    case '\\': return '\\';
    case '/':  return '/';
    case 'b':  return '\b';
    case 'f':  return '\f';
    case 'n':  return '\n';
    case 'r':  return '\r';
    case 't':  return '\t';
    default:   return 0;
    }
}

/* A string token (quotes included) to a json-c string, or NULL after parse_error. */
static json_object *parse_string(JsonParser *p, const char *s, size_t len)
{
    g_autoptr(GString) out = g_string_sized_new(len);
    size_t end = len - 1, i = 1;

    while (i < end) {
        if (s[i] != '\\') {
            size_t used;
            if (json_utf8_decode(s + i, end - i, &used) < 0) {
                parse_error(p, "invalid UTF-8 sequence in string");
                return NULL;
            }
            g_string_append_len(out, s + i, used);
            i += used;
            continue;
        }
        size_t beg = i;
        char c = s[i + 1];
        i += 2;
        if (c == 'u') {
            int cp = decode_unicode_escape(s, end, &i);
            if (!json_utf8_append(out, cp)) {
                parse_error(p, "%.*s is not a valid Unicode character", (int)(i - beg), s + beg);
                return NULL;
            }
        } else if (simple_escape(c)) {
            g_string_append_c(out, simple_escape(c));
        } else {
            parse_error(p, "invalid escape sequence in string");
            return NULL;
        }
    }
    return json_object_new_string_len(out->str, (int)out->len);
}

/* int64 if it fits, else uint64 if it fits, else double (QEMU's rule). */
static json_object *parse_integer(const char *s)
{
    errno = 0;
    long long i = strtoll(s, NULL, 10);
    if (errno != ERANGE) {
        return json_object_new_int64(i);
    }
    if (s[0] != '-') {
        errno = 0;
        unsigned long long u = strtoull(s, NULL, 10);
        if (errno != ERANGE) {
            return json_object_new_uint64(u);
        }
    }
    return json_object_new_double(g_ascii_strtod(s, NULL));
}

/* A scalar token to a value; false after parse_error. null is NULL. */
static bool parse_scalar(JsonParser *p, JsonTokenType type, const char *s, size_t len,
                         json_object **value)
{
    *value = NULL;
    switch (type) {
    case JSON_TOK_STRING:
        *value = parse_string(p, s, len);
        return *value != NULL;
    case JSON_TOK_INTEGER:
        *value = parse_integer(s);
        return true;
    case JSON_TOK_FLOAT:
        *value = json_object_new_double(g_ascii_strtod(s, NULL));
        return true;
    default:
        if (!strcmp(s, "true") || !strcmp(s, "false")) {
            *value = json_object_new_boolean(s[0] == 't');
        } else if (strcmp(s, "null")) {
            parse_error(p, "invalid keyword '%s'", s);
            return false;
        }
        return true;
    }
}

static Frame *top_frame(JsonParser *p)
{
    return p->frames->len ? &g_array_index(p->frames, Frame, p->frames->len - 1) : NULL;
}

/* A value (scalar or closed container) is finished: hand it to its parent. */
static void complete_value(JsonParser *p, json_object *v)
{
    Frame *f = top_frame(p);

    if (!f) {
        p->root = v;
        p->done = true;
        return;
    }
    switch (f->state) {
    case ARRAY_FIRST:
    case ARRAY_NEXT:
        json_object_array_add(f->container, v);
        f->state = ARRAY_SEP;
        break;
    case OBJECT_FIRST:
    case OBJECT_KEY:
        if (!json_object_is_type(v, json_type_string)) {
            json_object_put(v);
            parse_error(p, "key is not a string in object");
            return;
        }
        f->key = g_strdup(json_object_get_string(v));
        json_object_put(v);
        f->state = OBJECT_COLON;
        break;
    default: /* OBJECT_VALUE */
        if (json_object_object_get_ex(f->container, f->key, NULL)) {
            json_object_put(v);
            parse_error(p, "duplicate key");
            return;
        }
        json_object_object_add_ex(f->container, f->key, v, JSON_C_OBJECT_ADD_KEY_IS_NEW);
        g_clear_pointer(&f->key, g_free);
        f->state = OBJECT_SEP;
        break;
    }
}

static void close_container(JsonParser *p)
{
    Frame f = *top_frame(p);

    g_array_set_size(p->frames, p->frames->len - 1);
    complete_value(p, f.container);
}

/* A token where a value must start. */
static void parse_value_token(JsonParser *p, JsonTokenType type, const char *s, size_t len)
{
    Frame f = { 0 };
    json_object *v;

    switch (type) {
    case JSON_TOK_LCURLY:
        f.container = json_object_new_object();
        f.state = OBJECT_FIRST;
        g_array_append_val(p->frames, f);
        break;
    case JSON_TOK_LSQUARE:
        f.container = json_object_new_array();
        f.state = ARRAY_FIRST;
        g_array_append_val(p->frames, f);
        break;
    case JSON_TOK_STRING:
    case JSON_TOK_INTEGER:
    case JSON_TOK_FLOAT:
    case JSON_TOK_KEYWORD:
        if (parse_scalar(p, type, s, len, &v)) {
            complete_value(p, v);
        }
        break;
    default:
        parse_error(p, "expecting value");
        break;
    }
}

static void parser_feed(JsonParser *p, JsonTokenType type, const char *s, size_t len)
{
    Frame *f = top_frame(p);

    if (p->err || p->done) {
        return;             /* done cannot be followed by a token: the counters balance */
    }
    if (!f) {
        parse_value_token(p, type, s, len);
        return;
    }
    switch (f->state) {
    case ARRAY_FIRST:
    case OBJECT_FIRST:
        if (type == (f->state == ARRAY_FIRST ? JSON_TOK_RSQUARE : JSON_TOK_RCURLY)) {
            close_container(p);
        } else {
            parse_value_token(p, type, s, len);
        }
        break;
    case ARRAY_SEP:
    case OBJECT_SEP: {
        bool array = f->state == ARRAY_SEP;
        if (type == JSON_TOK_COMMA) {
            f->state = array ? ARRAY_NEXT : OBJECT_KEY;
        } else if (type == (array ? JSON_TOK_RSQUARE : JSON_TOK_RCURLY)) {
            close_container(p);
        } else {
            parse_error(p, "expected separator in %s", array ? "list" : "dict");
        }
        break;
    }
    case OBJECT_COLON:
        if (type == JSON_TOK_COLON) {
            f->state = OBJECT_VALUE;
        } else {
            parse_error(p, "missing : in object pair");
        }
        break;
    default: /* ARRAY_NEXT, OBJECT_KEY, OBJECT_VALUE */
        parse_value_token(p, type, s, len);
        break;
    }
}

/* The token stream of this value ended: take its result (value or error). */
static void parser_finish(JsonParser *p, json_object **value, Error **err)
{
    if (!p->err && !p->done) {
        parse_error(p, "premature EOI");
    }
    *value = p->root;
    *err = p->err;
    p->root = NULL;
    p->err = NULL;
    parser_reset(p);
}

/* ---- streamer -------------------------------------------------------- */

struct JsonStreamer {
    JsonLexer lexer;
    JsonParser parser;
    JsonStreamerLimits limits;
    JsonEmitFn *emit;
    void *opaque;
    long brace_count;           /* may go negative on stray closers */
    long bracket_count;
    size_t value_bytes;         /* token text of the current value */
    size_t value_tokens;
    bool discarding;            /* over a limit: skip to the end of the value */
    unsigned feeding;           /* feed nesting depth (callbacks may feed) */
    bool free_requested;
};

static bool value_complete(const JsonStreamer *js)
{
    return !((js->brace_count > 0 || js->bracket_count > 0)
             && js->brace_count >= 0 && js->bracket_count >= 0);
}

/* Start afresh between values. */
static void value_reset(JsonStreamer *js)
{
    parser_reset(&js->parser);
    js->brace_count = js->bracket_count = 0;
    js->value_bytes = js->value_tokens = 0;
    js->discarding = false;
    js->lexer.keep_text = true;
    js->lexer.text_limit = js->limits.max_bytes;
}

static void emit_error(JsonStreamer *js, Error *err)
{
    js->emit(js->opaque, NULL, err);
}

/* Error text must be valid UTF-8: invalid bytes become U+FFFD (as QEMU's
 * writer would print them). */
static char *sanitize_utf8(const char *s, size_t len)
{
    GString *out = g_string_sized_new(len);

    for (size_t i = 0; i < len;) {
        size_t used;
        if (json_utf8_decode(s + i, len - i, &used) < 0) {
            g_string_append(out, "\xEF\xBF\xBD");
        } else {
            g_string_append_len(out, s + i, used);
        }
        i += used;
    }
    return g_string_free(out, FALSE);
}

static void report_stray(JsonStreamer *js, const char *text, size_t len)
{
    g_autofree char *clean = sanitize_utf8(text, len);
    Error *err = NULL;

    error_setg(&err, "JSON parse error, stray '%s'", clean);
    value_reset(js);
    emit_error(js, err);
}

/* Report the current value once and drop the rest of it as it arrives. */
static void report_limit(JsonStreamer *js, const char *msg, bool mid_token)
{
    Error *err = NULL;

    error_setg(&err, "%s", msg);
    parser_reset(&js->parser);
    js->value_bytes = js->value_tokens = 0;
    if (!mid_token && value_complete(js)) {
        value_reset(js);
    } else {
        js->discarding = true;
        js->lexer.keep_text = false;
    }
    emit_error(js, err);
}

static const char *limit_exceeded(const JsonStreamer *js, size_t len)
{
    if (js->value_bytes + len > js->limits.max_bytes) {
        return "JSON token size limit exceeded";
    }
    if (js->value_tokens + 1 > js->limits.max_tokens) {
        return "JSON token count limit exceeded";
    }
    if (js->brace_count + js->bracket_count > (long)js->limits.max_depth) {
        return "JSON nesting depth limit exceeded";
    }
    return NULL;
}

static void count_nesting(JsonStreamer *js, JsonTokenType type)
{
    switch (type) {
    case JSON_TOK_LCURLY:  js->brace_count++;   break;
    case JSON_TOK_RCURLY:  js->brace_count--;   break;
    case JSON_TOK_LSQUARE: js->bracket_count++; break;
    case JSON_TOK_RSQUARE: js->bracket_count--; break;
    default: break;
    }
}

static void finish_value(JsonStreamer *js)
{
    json_object *value;
    Error *err;

    parser_finish(&js->parser, &value, &err);
    value_reset(js);
    js->emit(js->opaque, value, err);
}

static void on_token(void *opaque, JsonTokenType type, const char *text, size_t len)
{
    JsonStreamer *js = opaque;
    const char *limit;

    if (js->free_requested) {
        return;
    }
    if (type == JSON_TOK_ERROR) {
        report_stray(js, text, len);
        return;
    }
    if (type == JSON_TOK_OVERSIZE) {
        if (!js->discarding) {
            report_limit(js, "JSON token size limit exceeded", true);
        }
        return;
    }
    count_nesting(js, type);
    if (js->discarding) {
        if (value_complete(js)) {
            value_reset(js);
        }
        return;
    }
    limit = limit_exceeded(js, len);
    if (limit) {
        report_limit(js, limit, false);
        return;
    }
    js->value_bytes += len;
    js->value_tokens++;
    js->lexer.text_limit = js->limits.max_bytes - js->value_bytes;
    parser_feed(&js->parser, type, text, len);
    if (value_complete(js)) {
        finish_value(js);
    }
}

JsonStreamer *json_streamer_new(const JsonStreamerLimits *limits, JsonEmitFn *emit, void *opaque)
{
    JsonStreamer *js = g_new0(JsonStreamer, 1);

    js->limits.max_bytes = limits && limits->max_bytes ? limits->max_bytes : DEFAULT_MAX_BYTES;
    js->limits.max_tokens = limits && limits->max_tokens ? limits->max_tokens : DEFAULT_MAX_TOKENS;
    js->limits.max_depth = limits && limits->max_depth ? limits->max_depth : DEFAULT_MAX_DEPTH;
    js->emit = emit;
    js->opaque = opaque;
    js->parser.frames = g_array_new(FALSE, FALSE, sizeof(Frame));
    json_lexer_init(&js->lexer, on_token, js);
    value_reset(js);
    return js;
}

static void streamer_destroy(JsonStreamer *js)
{
    parser_reset(&js->parser);
    g_array_free(js->parser.frames, TRUE);
    json_lexer_destroy(&js->lexer);
    g_free(js);
}

void json_streamer_feed(JsonStreamer *js, const char *buf, size_t len)
{
    js->feeding++;
    json_lexer_feed(&js->lexer, buf, len);
    js->feeding--;
    if (js->free_requested) {
        js->lexer.stop = true;      /* unwind outer feeds too */
        if (!js->feeding) {
            streamer_destroy(js);
        }
    }
}

void json_streamer_reset(JsonStreamer *js)
{
    json_lexer_reset(&js->lexer);
    value_reset(js);
}

void json_streamer_free(JsonStreamer *js)
{
    if (!js) {
        return;
    }
    if (js->feeding) {
        js->free_requested = true;
        js->lexer.stop = true;
        return;
    }
    streamer_destroy(js);
}

/* End of input: a pending token ends, a partial value is parsed as is. */
static void streamer_flush(JsonStreamer *js)
{
    js->feeding++;
    json_lexer_flush(&js->lexer);
    js->feeding--;
    if (js->value_tokens && !js->discarding) {
        finish_value(js);
    }
    value_reset(js);
}

/* ---- one value from a string ----------------------------------------- */

typedef struct ParseOne {
    unsigned values;            /* values and errors seen */
    json_object *value;
    Error *err;
} ParseOne;

static void parse_one_emit(void *opaque, json_object *value, Error *err)
{
    ParseOne *one = opaque;

    if (one->values++ && !one->err) {
        g_clear_pointer(&one->value, json_object_put);
        error_setg(&one->err, "Expecting at most one JSON value");
    }
    if (one->err) {
        json_object_put(value);
        error_free(err);
        return;
    }
    one->value = value;
    one->err = err;
}

json_object *json_parse_qmp(const char *text, Error **errp)
{
    ParseOne one = { 0 };
    JsonStreamer *js = json_streamer_new(NULL, parse_one_emit, &one);

    json_streamer_feed(js, text, strlen(text));
    streamer_flush(js);
    json_streamer_free(js);
    if (!one.err && !one.values) {
        error_setg(&one.err, "Expecting a JSON value");
    } else if (!one.err && !one.value) {
        error_setg(&one.err, "Expecting a JSON value other than null");
    }
    if (one.err) {
        error_propagate(errp, one.err);
        return NULL;
    }
    return one.value;
}
