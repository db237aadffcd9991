/* Unit tests for the QMP JSON writer (util/json-writer.c). */
#include <check.h>
#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "json-streamer.h"
#include "json-writer.h"
#include "unit-test.h"

/* Write obj (compact or pretty), compare, drop obj. */
static void check_written(json_object *obj, bool pretty, const char *expected)
{
    GString *out = g_string_new(NULL);

    json_write(out, obj, pretty);
    ck_assert_str_eq(out->str, expected);
    g_string_free(out, TRUE);
    json_object_put(obj);
}

#define ck_compact(obj, expected) check_written((obj), false, (expected))
#define ck_pretty(obj, expected) check_written((obj), true, (expected))

static json_object *str_len(const char *s, int len)
{
    return json_object_new_string_len(s, len);
}

START_TEST(test_scalars)
{
    ck_compact(NULL, "null");
    ck_compact(json_object_new_boolean(1), "true");
    ck_compact(json_object_new_boolean(0), "false");
    ck_compact(json_object_new_int64(0), "0");
    ck_compact(json_object_new_int64(-1), "-1");
    ck_compact(json_object_new_int64(INT64_MIN), "-9223372036854775808");
    ck_compact(json_object_new_int64(INT64_MAX), "9223372036854775807");
    ck_compact(json_object_new_uint64((uint64_t)1 << 63), "9223372036854775808");
    ck_compact(json_object_new_uint64(UINT64_MAX), "18446744073709551615");
    ck_compact(json_object_new_uint64(42), "42");
    ck_compact(json_object_new_string(""), "\"\"");
    ck_compact(json_object_new_string("query-status"), "\"query-status\"");
}
END_TEST

START_TEST(test_doubles)
{
    ck_compact(json_object_new_double(774.762), "774.76199999999994");
    ck_compact(json_object_new_double(0.5), "0.5");
    ck_compact(json_object_new_double(1500.0), "1500");
    ck_compact(json_object_new_double(0.1), "0.10000000000000001");
    ck_compact(json_object_new_double(-0.0), "-0");
    ck_compact(json_object_new_double(1e300), "1.0000000000000001e+300");
    ck_compact(json_object_new_double(DBL_MIN), "2.2250738585072014e-308");
    ck_compact(json_object_new_double(18446744073709551616.0), "1.8446744073709552e+19");
}
END_TEST

START_TEST(test_string_escapes)
{
    ck_compact(json_object_new_string("\"\\/"), "\"\\\"\\\\/\"");
    ck_compact(json_object_new_string("\b\f\n\r\t"), "\"\\b\\f\\n\\r\\t\"");
    ck_compact(json_object_new_string("\x01\x1f\x7f"), "\"\\u0001\\u001F\\u007F\"");
    ck_compact(json_object_new_string("caf\xC3\xA9"), "\"caf\\u00E9\"");
    ck_compact(json_object_new_string("\xE2\x82\xAC"), "\"\\u20AC\"");
    ck_compact(json_object_new_string("\xF0\x9F\x98\x80"), "\"\\uD83D\\uDE00\"");
    ck_compact(json_object_new_string("\xF4\x8F\xBF\xBD"), "\"\\uDBFF\\uDFFD\"");
    /* invalid UTF-8 prints as U+FFFD, one per bad sequence */
    ck_compact(json_object_new_string("a\xFF" "b\xC3z\xED\xA0\x80"),
               "\"a\\uFFFDb\\uFFFDz\\uFFFD\"");
    /* U+0000, as modified UTF-8 or as a real NUL */
    ck_compact(json_object_new_string("\xC0\x80"), "\"\\u0000\"");
    ck_compact(str_len("a\0b", 3), "\"a\\u0000b\"");
    /* object member names are escaped the same way */
    json_object *o = json_object_new_object();
    json_object_object_add(o, "k\xC3\xA9y\n", json_object_new_int(1));
    ck_compact(o, "{\"k\\u00E9y\\n\": 1}");
}
END_TEST

START_TEST(test_containers)
{
    json_object *o = json_object_new_object();
    json_object *a = json_object_new_array();

    ck_compact(json_object_new_object(), "{}");
    ck_compact(json_object_new_array(), "[]");

    json_object_object_add(o, "return", json_object_new_object());
    ck_compact(o, "{\"return\": {}}");

    json_object_array_add(a, json_object_new_array());
    json_object_array_add(a, json_object_new_object());
    json_object_array_add(a, NULL);
    json_object_array_add(a, json_object_new_int(3));
    ck_compact(a, "[[], {}, null, 3]");

    o = json_object_new_object();
    json_object_object_add(o, "status", json_object_new_string("running"));
    json_object_object_add(o, "singlestep", json_object_new_boolean(0));
    json_object_object_add(o, "running", json_object_new_boolean(1));
    json_object_object_add(o, "nothing", NULL);
    ck_compact(o, "{\"status\": \"running\", \"singlestep\": false, \"running\": true, \"nothing\": null}");
}
END_TEST

START_TEST(test_pretty)
{
    json_object *o = json_object_new_object();
    json_object *a = json_object_new_array();
    json_object *inner = json_object_new_object();

    ck_pretty(json_object_new_int(5), "5");
    ck_pretty(json_object_new_object(), "{}");
    ck_pretty(json_object_new_array(), "[]");

    json_object_object_add(o, "return", json_object_new_object());
    ck_pretty(o, "{\n    \"return\": {}\n}");

    o = json_object_new_object();
    json_object_array_add(a, json_object_new_int(1));
    json_object_array_add(a, json_object_new_array());
    json_object_array_add(a, json_object_new_string("x"));
    json_object_object_add(o, "a", a);
    json_object_object_add(inner, "c", NULL);
    json_object_object_add(o, "b", inner);
    json_object_object_add(o, "d", json_object_new_double(0.5));
    ck_pretty(o,
              "{\n"
              "    \"a\": [\n"
              "        1,\n"
              "        [],\n"
              "        \"x\"\n"
              "    ],\n"
              "    \"b\": {\n"
              "        \"c\": null\n"
              "    },\n"
              "    \"d\": 0.5\n"
              "}");
}
END_TEST

START_TEST(test_appends)
{
    GString *out = g_string_new("prefix ");
    json_object *o = json_object_new_object();

    json_object_object_add(o, "a", json_object_new_int(1));
    json_write(out, o, true);
    ck_assert_str_eq(out->str, "prefix {\n    \"a\": 1\n}");
    json_write(out, o, false);
    ck_assert_str_eq(out->str, "prefix {\n    \"a\": 1\n}{\"a\": 1}");
    g_string_free(out, TRUE);

    char *s = json_to_string(o);
    ck_assert_str_eq(s, "{\"a\": 1}");
    g_free(s);
    s = json_to_string(NULL);
    ck_assert_str_eq(s, "null");
    g_free(s);
    json_object_put(o);
}
END_TEST

/* Runs of plain characters are copied whole: escapes at either end, between
 * runs and alone, in a string longer than any buffer's first size. */
START_TEST(test_string_runs)
{
    GString *in = g_string_new(NULL), *want = g_string_new("\"");

    for (int i = 0; i < 200; i++) {
        g_string_append(in, "\"plain text \\\n\x01\xC3\xA9~");
        g_string_append(want, "\\\"plain text \\\\\\n\\u0001\\u00E9~");
    }
    g_string_append_c(want, '"');
    ck_compact(str_len(in->str, (int)in->len), want->str);
    ck_compact(json_object_new_string("x\""), "\"x\\\"\"");
    ck_compact(json_object_new_string("\tx"), "\"\\tx\"");
    g_string_free(in, TRUE);
    g_string_free(want, TRUE);
}
END_TEST

/* A constant value (the QMP schema) is written from its kept text: the same
 * text as before, wherever it sits; pretty output is made afresh; a second
 * constant is ignored and still written right. */
START_TEST(test_constant)
{
    json_object *c = json_object_new_object(), *arr = json_object_new_array();
    json_object *other = json_object_new_array();
    json_object *reply = json_object_new_object();

    json_object_array_add(arr, json_object_new_string("a\"b"));
    json_object_array_add(arr, json_object_new_int(7));
    json_object_object_add(c, "list", arr);
    json_object_object_add(c, "e", json_object_new_object());
    json_object_array_add(other, json_object_new_int(1));
    json_write_set_constant(c);
    json_write_set_constant(other);

    ck_compact(json_object_get(c), "{\"list\": [\"a\\\"b\", 7], \"e\": {}}");
    ck_compact(json_object_get(other), "[1]");
    json_object_object_add(reply, "return", json_object_get(c));
    json_object_object_add(reply, "id", json_object_new_int(3));
    ck_compact(json_object_get(reply), "{\"return\": {\"list\": [\"a\\\"b\", 7], \"e\": {}}, \"id\": 3}");
    ck_pretty(reply,
              "{\n"
              "    \"return\": {\n"
              "        \"list\": [\n"
              "            \"a\\\"b\",\n"
              "            7\n"
              "        ],\n"
              "        \"e\": {}\n"
              "    },\n"
              "    \"id\": 3\n"
              "}");
    json_object_put(other);
    /* c is never freed, by contract: the writer keeps it */
}
END_TEST

/* What the QMP id rule (section 3.4) needs: parse, then re-serialise. */
START_TEST(test_reserialise)
{
    static const struct { const char *in, *out; } cases[] = {
        { "1.5e3", "1500" },
        { "-0", "0" },
        { "\"\\u00e9\"", "\"\\u00E9\"" },
        { "18446744073709551615", "18446744073709551615" },
        { "{'a': [1, 'b\\'c', {}], \"d\": -9223372036854775808}",
          "{\"a\": [1, \"b'c\", {}], \"d\": -9223372036854775808}" },
        { "\"a/b\"", "\"a/b\"" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        Error *err = NULL;
        json_object *v = json_parse_qmp(cases[i].in, &err);
        ck_assert_ptr_null(err);
        char *s = json_to_string(v);
        ck_assert_str_eq(s, cases[i].out);
        g_free(s);
        json_object_put(v);
    }
}
END_TEST

static Suite *json_writer_suite(void)
{
    Suite *s = suite_create("json-writer");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_scalars);
    tcase_add_test(tc, test_doubles);
    tcase_add_test(tc, test_string_escapes);
    tcase_add_test(tc, test_string_runs);
    tcase_add_test(tc, test_constant);
    tcase_add_test(tc, test_containers);
    tcase_add_test(tc, test_pretty);
    tcase_add_test(tc, test_appends);
    tcase_add_test(tc, test_reserialise);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(json_writer_suite());
}
