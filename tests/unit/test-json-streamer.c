/* Unit tests for the QMP JSON streamer (util/json-streamer.c, util/json-lexer.c). */
#include <check.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "json-streamer.h"
#include "json-writer.h"
#include "unit-test.h"

/* Every emission, one line each: the value in QMP form, "null", or "ERR:<message>". */
typedef struct Collector {
    GString *log;
    unsigned count;
} Collector;

static void collect(void *opaque, json_object *value, Error *err)
{
    Collector *c = opaque;

    c->count++;
    if (err) {
        g_string_append_printf(c->log, "ERR:%s\n", error_get_pretty(err));
        error_free(err);
    } else {
        g_autofree char *s = json_to_string(value);
        g_string_append_printf(c->log, "%s\n", s);
        json_object_put(value);
    }
}

/* Feed `len` bytes of `in` in pieces of `chunk` bytes (0: all at once), return the log. */
static char *run_chunked(const JsonStreamerLimits *limits, const char *in, size_t len, size_t chunk)
{
    Collector c = { .log = g_string_new(NULL) };
    JsonStreamer *js = json_streamer_new(limits, collect, &c);

    if (!chunk) {
        chunk = len ? len : 1;
    }
    for (size_t off = 0; off < len; off += chunk) {
        json_streamer_feed(js, in + off, MIN(chunk, len - off));
    }
    json_streamer_free(js);
    return g_string_free(c.log, FALSE);
}

static char *run(const char *in)
{
    return run_chunked(NULL, in, strlen(in), 0);
}

#define ck_run(in, expected) do { \
        g_autofree char *got_ = run(in); \
        ck_assert_str_eq(got_, expected); \
    } while (0)

START_TEST(test_single_message)
{
    ck_run("{\"execute\":\"query-status\",\"id\":10}",
           "{\"execute\": \"query-status\", \"id\": 10}\n");
    ck_run("{\"z\":1,\"a\":2,\"m\":3}", "{\"z\": 1, \"a\": 2, \"m\": 3}\n");
    ck_run("{\"a\":[1,{\"b\":[]},{}],\"c\":false}",
           "{\"a\": [1, {\"b\": []}, {}], \"c\": false}\n");
}
END_TEST

static const char split_input[] =
    "{\"execute\":\"qmp_capabilities\"}\r\n"
    "{'execute': 'query-status', 'id': 'sq\\'x'}"
    "  [1, 2.5, -3e2, \"\\u00e9\\ud83d\\ude00\", true, null]\n"
    "\"top\" 42 {\"a\":{\"b\":{\"c\":[[]]}}}\t";

static const char split_expected[] =
    "{\"execute\": \"qmp_capabilities\"}\n"
    "{\"execute\": \"query-status\", \"id\": \"sq'x\"}\n"
    "[1, 2.5, -300, \"\\u00E9\\uD83D\\uDE00\", true, null]\n"
    "\"top\"\n"
    "42\n"
    "{\"a\": {\"b\": {\"c\": [[]]}}}\n";

START_TEST(test_split_every_boundary)
{
    size_t len = strlen(split_input);

    for (size_t cut = 0; cut <= len; cut++) {
        Collector c = { .log = g_string_new(NULL) };
        JsonStreamer *js = json_streamer_new(NULL, collect, &c);
        json_streamer_feed(js, split_input, cut);
        json_streamer_feed(js, split_input + cut, len - cut);
        json_streamer_free(js);
        ck_assert_msg(!strcmp(c.log->str, split_expected), "cut at %zu: %s", cut, c.log->str);
        g_string_free(c.log, TRUE);
    }
    for (size_t chunk = 1; chunk < 8; chunk++) {
        g_autofree char *got = run_chunked(NULL, split_input, len, chunk);
        ck_assert_str_eq(got, split_expected);
    }
}
END_TEST

START_TEST(test_merged_and_whitespace)
{
    ck_run("{\"a\":1}{\"b\":2}[3]", "{\"a\": 1}\n{\"b\": 2}\n[3]\n");
    ck_run(" \t\r\n{ \"a\" :\n\t1 } \r\n", "{\"a\": 1}\n");
    /* a top-level scalar ends at the next delimiter; "1" alone is not yet complete */
    ck_run("1 \"x\" true null [] ", "1\n\"x\"\ntrue\nnull\n[]\n");
    ck_run("7", "");
    ck_run("true1 ", "true\n1\n");
}
END_TEST

START_TEST(test_single_quotes)
{
    ck_run("{'execute': 'query-status', 'id': 'single-quoted'}",
           "{\"execute\": \"query-status\", \"id\": \"single-quoted\"}\n");
    ck_run("'it\\'s'", "\"it's\"\n");
    ck_run("\"a\\'b\"", "\"a'b\"\n");
    ck_run("'say \"hi\"'", "\"say \\\"hi\\\"\"\n");
    ck_run("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\\"\\\\/\\b\\f\\n\\r\\t\"\n");
}
END_TEST

START_TEST(test_unicode_escapes)
{
    Error *err = NULL;
    json_object *v = json_parse_qmp("\"\\ud83d\\ude00\\u00E9\"", &err);

    ck_assert_ptr_null(err);
    ck_assert_str_eq(json_object_get_string(v), "\xF0\x9F\x98\x80\xC3\xA9");
    json_object_put(v);

    ck_run("\"\\u00e9\"", "\"\\u00E9\"\n");
    ck_run("\"\\ud83d\\ude00\"", "\"\\uD83D\\uDE00\"\n");
    ck_run("\"\\u0000\"", "\"\\u0000\"\n");
    ck_run("\"\\ud800\" ", "ERR:JSON parse error, \\ud800 is not a valid Unicode character\n");
    ck_run("\"\\udc00\"", "ERR:JSON parse error, \\udc00 is not a valid Unicode character\n");
    ck_run("\"\\ud800\\u0041\"", "ERR:JSON parse error, \\ud800 is not a valid Unicode character\n");
    ck_run("\"\\uffff\"", "ERR:JSON parse error, \\uffff is not a valid Unicode character\n");
    ck_run("\"\\u12g4\"", "ERR:JSON parse error, \\u12g4 is not a valid Unicode character\n");
    ck_run("\"\\x\"", "ERR:JSON parse error, invalid escape sequence in string\n");
}
END_TEST

START_TEST(test_invalid_utf8)
{
    static const char *const bad[] = {
        "\"\xC1\x81\"",             /* overlong 'A' */
        "\"\xE0\x80\xAF\"",         /* overlong '/' */
        "\"\xF0\x80\x80\xAF\"",     /* overlong, 4 bytes */
        "\"\x80\"",                 /* lone continuation */
        "\"a\xBF z\"",
        "\"\xED\xA0\x80\"",         /* U+D800 encoded */
        "\"\xED\xBF\xBF\"",         /* U+DFFF encoded */
        "\"\xC3\"",                 /* truncated */
        "\"\xE2\x82\"",
        "\"\xF4\x90\x80\x80\"",     /* beyond U+10FFFF */
        "\"\xEF\xBF\xBF\"",         /* noncharacter U+FFFF */
        "{\"k\":\"\xFC\x80\x80\x80\x80\x80\"}",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autofree char *got = run(bad[i]);
        ck_assert_msg(!strcmp(got, "ERR:JSON parse error, invalid UTF-8 sequence in string\n"),
                      "case %zu: %s", i, got);
    }
    ck_run("\"\xC3\xA9\xF0\x9F\x98\x80\"", "\"\\u00E9\\uD83D\\uDE00\"\n");
    ck_run("\"\xC0\x80\"", "\"\\u0000\"\n");   /* modified UTF-8 NUL, as QEMU */
}
END_TEST

START_TEST(test_numbers)
{
    Error *err = NULL;
    json_object *v;

    ck_run("[9223372036854775807, 9223372036854775808, 18446744073709551615]",
           "[9223372036854775807, 9223372036854775808, 18446744073709551615]\n");
    ck_run("[-9223372036854775808, -9223372036854775809, 18446744073709551616]",
           "[-9223372036854775808, -9.2233720368547758e+18, 1.8446744073709552e+19]\n");
    ck_run("[1.5e3, -0, 0, 774.762, 0.1, 1E2, 2e-1, -1.25]",
           "[1500, 0, 0, 774.76199999999994, 0.10000000000000001, 100, 0.20000000000000001, -1.25]\n");

    v = json_parse_qmp("18446744073709551615", &err);
    ck_assert(json_object_is_type(v, json_type_int));
    ck_assert_uint_eq(json_object_get_uint64(v), UINT64_MAX);
    json_object_put(v);
    v = json_parse_qmp("9223372036854775808", &err);
    ck_assert(json_object_is_type(v, json_type_int));
    ck_assert_uint_eq(json_object_get_uint64(v), (uint64_t)1 << 63);
    json_object_put(v);
    v = json_parse_qmp("-9223372036854775808", &err);
    ck_assert(json_object_is_type(v, json_type_int));
    ck_assert_int_eq(json_object_get_int64(v), INT64_MIN);
    json_object_put(v);
    v = json_parse_qmp("18446744073709551616", &err);
    ck_assert(json_object_is_type(v, json_type_double));
    ck_assert(json_object_get_double(v) == 18446744073709551616.0);
    json_object_put(v);
    v = json_parse_qmp("1.0", &err);
    ck_assert(json_object_is_type(v, json_type_double));
    json_object_put(v);
    ck_assert_ptr_null(err);

    ck_run("00 ", "ERR:JSON parse error, stray '00'\n");
    ck_run("-x ", "ERR:JSON parse error, stray '-x'\n");
    ck_run("1.e5 ", "ERR:JSON parse error, stray '1.e'\n");
}
END_TEST

START_TEST(test_keywords)
{
    ck_run("[true, false, null]", "[true, false, null]\n");
    ck_run("garbage ", "ERR:JSON parse error, invalid keyword 'garbage'\n");
    ck_run("{\"a\": nul}", "ERR:JSON parse error, invalid keyword 'nul'\n");
    ck_run("TRUE ", "ERR:JSON parse error, stray 'T'\n");
}
END_TEST

START_TEST(test_grammar_errors)
{
    ck_run("{\"a\" 1}", "ERR:JSON parse error, missing : in object pair\n");
    ck_run("{\"a\":1 \"b\":2}", "ERR:JSON parse error, expected separator in dict\n");
    ck_run("[1 2]", "ERR:JSON parse error, expected separator in list\n");
    ck_run("{\"a\":}", "ERR:JSON parse error, expecting value\n");
    ck_run("[1,]", "ERR:JSON parse error, expecting value\n");
    ck_run("{,}", "ERR:JSON parse error, expecting value\n");
    ck_run("]", "ERR:JSON parse error, expecting value\n");
    ck_run(":", "ERR:JSON parse error, expecting value\n");
    ck_run("{1:2}", "ERR:JSON parse error, key is not a string in object\n");
    ck_run("{[1]:2}", "ERR:JSON parse error, key is not a string in object\n");
    ck_run("{\"a\":1,\"a\":2}", "ERR:JSON parse error, duplicate key\n");
    ck_run("{\"a\":{\"b\":1,\"b\":{}},\"c\":3}", "ERR:JSON parse error, duplicate key\n");
    ck_run("\x01", "ERR:JSON parse error, stray '\x01'\n");
    ck_run("@", "ERR:JSON parse error, stray '@'\n");
    /* reported when the counters balance, as QEMU does */
    ck_run("[{]}", "ERR:JSON parse error, expecting value\n");
    ck_run("{]", "ERR:JSON parse error, expecting value\n");
}
END_TEST

START_TEST(test_recovery)
{
    ck_run("{\"execute\":\"query-status\",\"id\":10} garbage {\"execute\":\"query-status\",\"id\":11}",
           "{\"execute\": \"query-status\", \"id\": 10}\n"
           "ERR:JSON parse error, invalid keyword 'garbage'\n"
           "{\"execute\": \"query-status\", \"id\": 11}\n");
    /* 0xFF mid-message: its own error, the partial message is gone */
    ck_run("{\"execute\": \xFF{\"id\":1}",
           "ERR:JSON parse error, stray '\xEF\xBF\xBD'\n{\"id\": 1}\n");
    /* a control character inside a string ends it as an error */
    ck_run("{\"execute\": \"qu\x1b {\"id\":2}",
           "ERR:JSON parse error, stray '\"qu\x1b'\n{\"id\": 2}\n");
    ck_run("{\"a\": 1, \x1b{\"b\":2}", "ERR:JSON parse error, stray '\x1b'\n{\"b\": 2}\n");
    /* after a lexical error, skip to a structural character */
    ck_run("@@@ junk, [1]", "ERR:JSON parse error, stray '@'\nERR:JSON parse error, expecting value\n[1]\n");
    /* recovery stops at a control character, which is an error of its own */
    ck_run("@abc\x1b" "def [2]",
           "ERR:JSON parse error, stray '@'\nERR:JSON parse error, stray '\x1b'\n[2]\n");
    /* a newline ends recovery without an error of its own */
    ck_run("@abc\n5 ", "ERR:JSON parse error, stray '@'\n5\n");
}
END_TEST

static char *nested(unsigned depth, const char *open, const char *close, const char *tail)
{
    GString *s = g_string_new(NULL);

    for (unsigned i = 0; i < depth; i++) {
        g_string_append(s, open);
    }
    for (unsigned i = 0; i < depth; i++) {
        g_string_append(s, close);
    }
    g_string_append(s, tail);
    return g_string_free(s, FALSE);
}

START_TEST(test_depth_limit)
{
    g_autofree char *ok = nested(1024, "[", "]", "");
    g_autofree char *deep = nested(1025, "[", "]", "{\"after\":1}");
    g_autofree char *deep_obj = nested(1100, "{\"a\":", "}", "[7]");
    g_autofree char *got_ok = run(ok);
    g_autofree char *got_deep = run(deep);
    g_autofree char *got_deep_obj = run(deep_obj);

    g_autofree char *want_ok = g_strdup_printf("%s\n", ok);

    ck_assert_str_eq(got_ok, want_ok);  /* 1024 nested arrays echo unchanged */
    ck_assert_str_eq(got_deep, "ERR:JSON nesting depth limit exceeded\n{\"after\": 1}\n");
    ck_assert_str_eq(got_deep_obj, "ERR:JSON nesting depth limit exceeded\n[7]\n");

    JsonStreamerLimits lim = { .max_depth = 2 };
    g_autofree char *small = run_chunked(&lim, "[[1]] [[[1]]] [3]", 17, 1);
    ck_assert_str_eq(small, "[[1]]\nERR:JSON nesting depth limit exceeded\n[3]\n");
}
END_TEST

START_TEST(test_size_limit)
{
    JsonStreamerLimits lim = { .max_bytes = 64 };
    GString *in = g_string_new("{\"execute\":\"x\",\"arguments\":{\"data\":\"");

    for (int i = 0; i < 1000; i++) {
        g_string_append_c(in, 'a' + i % 26);
    }
    g_string_append(in, "\", \"n\":[1,2,{\"x\":\"}\"}]}}{\"execute\":\"query-status\"}");
    for (size_t chunk = 1; chunk < 10; chunk += 4) {
        g_autofree char *got = run_chunked(&lim, in->str, in->len, chunk);
        ck_assert_str_eq(got, "ERR:JSON token size limit exceeded\n{\"execute\": \"query-status\"}\n");
    }
    g_string_free(in, TRUE);

    /* a top-level string over the limit is dropped to its closing quote */
    g_autofree char *s = g_strdup_printf("'%0200d' [1]", 0);
    g_autofree char *got = run_chunked(&lim, s, strlen(s), 3);
    ck_assert_str_eq(got, "ERR:JSON token size limit exceeded\n[1]\n");

    /* right at the limit is fine; one byte more is not */
    g_autofree char *at = g_strdup_printf("\"%062d\"", 0);
    g_autofree char *over = g_strdup_printf("\"%063d\" 5 ", 0);
    g_autofree char *got_at = run_chunked(&lim, at, strlen(at), 0);
    g_autofree char *got_over = run_chunked(&lim, over, strlen(over), 0);
    g_autofree char *want_at = g_strdup_printf("%s\n", at);
    ck_assert_str_eq(got_at, want_at);
    ck_assert_str_eq(got_over, "ERR:JSON token size limit exceeded\n5\n");
}
END_TEST

/* Bytes allocated with malloc, small and mmapped blocks alike. */
static size_t heap_in_use(void)
{
    struct mallinfo2 m = mallinfo2();

    return m.uordblks + m.hblkhd;
}

/* An endless over-limit value must not grow the heap: its text is never kept.
 * (Under valgrind mallinfo2 reports nothing and this checks only behaviour.) */
START_TEST(test_size_limit_memory_bounded)
{
    JsonStreamerLimits lim = { .max_bytes = 4096 };
    Collector c = { .log = g_string_new(NULL) };
    JsonStreamer *js = json_streamer_new(&lim, collect, &c);
    char chunk[65536];

    memset(chunk, 'x', sizeof(chunk));
    json_streamer_feed(js, "[\"", 2);
    json_streamer_feed(js, chunk, sizeof(chunk));
    size_t before = heap_in_use();
    for (int i = 0; i < 256; i++) {             /* 16 MiB */
        json_streamer_feed(js, chunk, sizeof(chunk));
    }
    size_t after = heap_in_use();
    json_streamer_feed(js, "\"]{\"ok\":true}", 13);
    json_streamer_free(js);

    ck_assert_msg(after < before + (256 << 10), "heap grew from %zu to %zu", before, after);
    ck_assert_str_eq(c.log->str, "ERR:JSON token size limit exceeded\n{\"ok\": true}\n");
    g_string_free(c.log, TRUE);
}
END_TEST

START_TEST(test_token_limit)
{
    JsonStreamerLimits lim = { .max_tokens = 10 };
    const char *in = "[1,2,3,4]" "[1,2,3,4,5,6,7,8,9,10]" "[5]";
    g_autofree char *got = run_chunked(&lim, in, strlen(in), 0);

    ck_assert_str_eq(got, "[1, 2, 3, 4]\nERR:JSON token count limit exceeded\n[5]\n");
}
END_TEST

START_TEST(test_reset_and_null)
{
    Collector c = { .log = g_string_new(NULL) };
    JsonStreamer *js = json_streamer_new(NULL, collect, &c);

    json_streamer_feed(js, "{\"a\": [1, \"x", 12);
    json_streamer_reset(js);
    json_streamer_feed(js, "{\"b\":1}", 7);
    json_streamer_feed(js, "@", 1);
    json_streamer_reset(js);            /* also leaves error recovery */
    json_streamer_feed(js, "null ", 5);
    json_streamer_free(js);
    ck_assert_str_eq(c.log->str, "{\"b\": 1}\nERR:JSON parse error, stray '@'\nnull\n");
    ck_assert_uint_eq(c.count, 3);
    g_string_free(c.log, TRUE);
}
END_TEST

typedef struct SelfFree {
    JsonStreamer *js;
    unsigned calls;
} SelfFree;

static void free_on_first(void *opaque, json_object *value, Error *err)
{
    SelfFree *sf = opaque;

    sf->calls++;
    json_object_put(value);
    error_free(err);
    json_streamer_free(sf->js);
}

START_TEST(test_free_from_callback)
{
    SelfFree sf = { 0 };

    sf.js = json_streamer_new(NULL, free_on_first, &sf);
    json_streamer_feed(sf.js, "[1][2][3]", 9);
    ck_assert_uint_eq(sf.calls, 1);
}
END_TEST

START_TEST(test_parse_one)
{
    Error *err = NULL;
    json_object *v;

    v = json_parse_qmp(" {\"a\": 42} ", &err);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(json_object_get_int(json_object_object_get(v, "a")), 42);
    json_object_put(v);

    v = json_parse_qmp("42", &err);     /* ends at end of input */
    ck_assert_int_eq(json_object_get_int(v), 42);
    json_object_put(v);

    static const struct { const char *in, *msg; } bad[] = {
        { "{\"a\":1", "JSON parse error, premature EOI" },
        { "[1, [2", "JSON parse error, premature EOI" },
        { "1 2", "Expecting at most one JSON value" },
        { "{\"a\":1} x", "Expecting at most one JSON value" },
        { "\"abc", "JSON parse error, stray '\"abc'" },
        { "", "Expecting a JSON value" },
        { "  ", "Expecting a JSON value" },
        { "null", "Expecting a JSON value other than null" },
        { "nope", "JSON parse error, invalid keyword 'nope'" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        v = json_parse_qmp(bad[i].in, &err);
        ck_assert_ptr_null(v);
        ck_assert_ptr_nonnull(err);
        ck_assert_str_eq(error_get_pretty(err), bad[i].msg);
        error_free_or_abort(&err);
    }
    ck_assert_ptr_null(json_parse_qmp("[", NULL));
}
END_TEST

static Suite *json_streamer_suite(void)
{
    Suite *s = suite_create("json-streamer");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_single_message);
    tcase_add_test(tc, test_split_every_boundary);
    tcase_add_test(tc, test_merged_and_whitespace);
    tcase_add_test(tc, test_single_quotes);
    tcase_add_test(tc, test_unicode_escapes);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_numbers);
    tcase_add_test(tc, test_keywords);
    tcase_add_test(tc, test_grammar_errors);
    tcase_add_test(tc, test_recovery);
    tcase_add_test(tc, test_depth_limit);
    tcase_add_test(tc, test_size_limit);
    tcase_add_test(tc, test_size_limit_memory_bounded);
    tcase_add_test(tc, test_token_limit);
    tcase_add_test(tc, test_reset_and_null);
    tcase_add_test(tc, test_free_from_callback);
    tcase_add_test(tc, test_parse_one);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(json_streamer_suite());
}
