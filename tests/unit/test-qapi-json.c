/*
 * Tests of the code qapi-gen generates, on tests/qapi-schema/qapi-test.json
 * (argument validation and its exact error texts, C <-> JSON conversion,
 * marshallers, the command table, events, introspection), and of the real
 * schema's query-qmp-schema text.
 */
#include <check.h>
#include <glib.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "qapi-commands.h"
#include "qapi-events.h"
#include "qapi-json.h"
#include "qapi-runtime.h"
#include "json-streamer.h"
#include "monitor.h"

/* The test schema's introspection, under another name than the real one. */
#define qmp_schema_json test_schema_json
#include "qapi-introspect.c"
#include "unit-test.h"
#undef qmp_schema_json
extern const char qmp_schema_json[];

/* ---- hand-written side: handlers, the gen:false marshaller, the event hook ---- */

static int calls;
static char *last_name;
static int64_t last_count = -1;

bool qmp_test_no_args(Error **errp) { calls++; return true; }
bool qmp_test_oob(Error **errp) { calls++; return true; }
bool qmp_test_no_response(Error **errp) { calls++; return true; }
bool qmp_test_underscore(Error **errp) { calls++; return true; }

TestBase *qmp_test_args(const q_obj_test_args_arg *arg, Error **errp)
{
    TestBase *r;

    calls++;
    if (strcmp(arg->name, "fail") == 0) {
        error_setg(errp, "handler failed");
        return NULL;
    }
    g_free(last_name);
    last_name = g_strdup(arg->name);
    last_count = arg->has_count ? arg->count : -1;
    r = g_new0(TestBase, 1);
    r->base_name = g_strdup(arg->name);
    r->has_base_opt = arg->has_count;
    r->base_opt = arg->count;
    return r;
}

bool qmp_test_boxed(const TestUnion *arg, Error **errp)
{
    calls++;
    return true;
}

TestAlphaList *qmp_test_data_type(const TestAlpha *arg, Error **errp)
{
    TestAlphaList *l = g_new0(TestAlphaList, 1);

    calls++;
    l->value = g_new0(TestAlpha, 1);
    l->value->a = arg->a;
    l->value->opt = g_strdup(arg->opt);
    return l;
}

char *qmp_test_returns_str(Error **errp) { calls++; return g_strdup("text"); }
int64_t qmp_test_returns_int(Error **errp) { calls++; return -42; }

TestAll *qmp_test_all(const q_obj_test_all_arg *arg, Error **errp)
{
    json_object *j = qapi_to_json_TestAll(arg->all);
    TestAll *copy = NULL;

    calls++;
    qapi_from_json_TestAll(j, NULL, &copy, errp);
    json_object_put(j);
    return copy;
}

void qmp_marshal_test_not_generated(json_object *args, json_object **ret, Error **errp)
{
    *ret = json_object_new_array();
}

static char *event_name;
static json_object *event_data;

void qapi_event_emit(const char *name, json_object *data)
{
    g_free(event_name);
    json_object_put(event_data);
    event_name = g_strdup(name);
    event_data = data;
}

static void teardown(void)
{
    g_clear_pointer(&last_name, g_free);
    g_clear_pointer(&event_name, g_free);
    g_clear_pointer(&event_data, json_object_put);
}

/* ---- helpers ---- */

static json_object *parse(const char *text)
{
    json_object *o = json_tokener_parse(text);

    ck_assert_msg(o || strcmp(text, "null") == 0, "bad test JSON: %s", text);
    return o;
}

static void assert_json_eq(json_object *actual, const char *expected_text)
{
    json_object *expected = parse(expected_text);

    ck_assert_msg(json_object_equal(actual, expected), "got %s, expected %s",
                  json_object_to_json_string(actual), expected_text);
    json_object_put(expected);
}

/* Run a marshaller on JSON text (NULL = no arguments): NULL error text on success. */
static char *run(QmpMarshalFn *fn, const char *args_text, json_object **ret_out)
{
    json_object *args = args_text ? parse(args_text) : NULL;
    json_object *ret = NULL;
    Error *err = NULL;
    char *msg = NULL;

    fn(args, &ret, &err);
    json_object_put(args);
    if (err) {
        ck_assert_ptr_null(ret);
        msg = g_strdup(error_get_pretty(err));
        error_free(err);
    } else {
        ck_assert_ptr_nonnull(ret);
    }
    if (ret_out) {
        *ret_out = ret;
    } else {
        json_object_put(ret);
    }
    return msg;
}

typedef struct Case {
    const char *args;
    const char *error;       /* NULL: success */
} Case;

static void run_cases(QmpMarshalFn *fn, const Case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int before = calls;
        g_autofree char *msg = run(fn, cases[i].args, NULL);
        if (cases[i].error) {
            ck_assert_msg(msg && strcmp(msg, cases[i].error) == 0, "%s: got '%s', expected '%s'",
                          cases[i].args, msg ? msg : "(success)", cases[i].error);
            ck_assert_msg(calls == before, "%s: handler called despite invalid arguments", cases[i].args);
        } else {
            ck_assert_msg(!msg, "%s: unexpected error '%s'", cases[i].args, msg);
            ck_assert_int_eq(calls, before + 1);
        }
    }
}

/* ---- tests ---- */

START_TEST(test_enum)
{
    TestEnum e;

    ck_assert_int_eq(TE__MAX, 4);           /* 'three' is compiled out */
    ck_assert_str_eq(TestEnum_str(TE_ONE), "one");
    ck_assert_str_eq(TestEnum_str(TE_5_FIVE), "5-five");
    ck_assert_str_eq(TestEnum_str(TE__MAX), "(invalid)");
    ck_assert(TestEnum_parse("four", &e) && e == TE_FOUR);
    ck_assert(TestEnum_parse("5-five", &e) && e == TE_5_FIVE);
    ck_assert(!TestEnum_parse("three", &e));
    ck_assert(!TestEnum_parse("ONE", &e));
    ck_assert(!TestEnum_parse(NULL, &e));
    ck_assert_str_eq(TestEnum_names[TE_TWO], "two");
    ck_assert_int_eq(TEST_CHOICE__MAX, 3);
    ck_assert_str_eq(QType_str(QTYPE_QNULL), "qnull");
}
END_TEST

START_TEST(test_command_args)
{
    static const Case cases[] = {
        { "{}", "Parameter 'name' is missing" },
        { "{\"name\": 1}", "Invalid parameter type for 'name', expected: string" },
        { "{\"name\": null}", "Invalid parameter type for 'name', expected: string" },
        { "{\"name\": \"x\", \"bogus\": 1}", "Parameter 'bogus' is unexpected" },
        { "{\"bogus\": 1}", "Parameter 'name' is missing" },
        { "{\"name\": \"x\", \"count\": -1}", "Parameter 'count' expects uint8_t" },
        { "{\"name\": \"x\", \"count\": 256}", "Parameter 'count' expects uint8_t" },
        { "{\"name\": \"x\", \"count\": 1.0}", "Parameter 'count' expects uint64" },
        { "{\"name\": \"x\", \"count\": \"1\"}", "Parameter 'count' expects uint64" },
        { "{\"name\": \"x\", \"flag\": \"yes\"}", "Invalid parameter type for 'flag', expected: boolean" },
        { "{\"name\": \"x\", \"items\": {}}", "Invalid parameter type for 'items', expected: array" },
        { "{\"name\": \"x\", \"items\": [5]}", "Invalid parameter type for 'items[0]', expected: object" },
        { "{\"name\": \"x\", \"items\": [{\"base-name\": \"a\"}, {}]}", "Parameter 'items[1].base-name' is missing" },
        { "{\"name\": \"x\", \"items\": [{\"base-name\": \"a\", \"zz\": 1}]}", "Parameter 'items[0].zz' is unexpected" },
        { "{\"name\": \"x\", \"items\": [{\"base-name\": \"a\", \"base-opt\": 1.5}]}",
          "Invalid parameter type for 'items[0].base-opt', expected: integer" },
        { "[]", "Invalid parameter type for 'null', expected: object" },
        { "{\"name\": \"x\"}", NULL },
        { "{\"name\": \"x\", \"count\": 255, \"flag\": false, \"items\": []}", NULL },
        { "{\"name\": \"x\", \"count\": 0, \"items\": [{\"base-name\": \"a\", \"base-opt\": -3}]}", NULL },
        { "{\"name\": \"fail\"}", "handler failed" },
    };

    run_cases(qmp_marshal_test_args, cases, G_N_ELEMENTS(cases) - 1);
    /* the failing handler is called */
    int before = calls;
    g_autofree char *msg = run(qmp_marshal_test_args, cases[G_N_ELEMENTS(cases) - 1].args, NULL);
    ck_assert_str_eq(msg, "handler failed");
    ck_assert_int_eq(calls, before + 1);
}
END_TEST

START_TEST(test_command_result)
{
    json_object *ret = NULL;
    char *msg = run(qmp_marshal_test_args, "{\"name\": \"abc\", \"count\": 7}", &ret);

    ck_assert_ptr_null(msg);
    ck_assert_str_eq(last_name, "abc");
    ck_assert_int_eq(last_count, 7);
    assert_json_eq(ret, "{\"base-name\": \"abc\", \"base-opt\": 7}");
    json_object_put(ret);

    msg = run(qmp_marshal_test_args, "{\"name\": \"abc\"}", &ret);
    ck_assert_ptr_null(msg);
    ck_assert_int_eq(last_count, -1);
    assert_json_eq(ret, "{\"base-name\": \"abc\"}");
    json_object_put(ret);

    msg = run(qmp_marshal_test_returns_str, NULL, &ret);
    ck_assert_ptr_null(msg);
    assert_json_eq(ret, "\"text\"");
    json_object_put(ret);

    msg = run(qmp_marshal_test_returns_int, "{}", &ret);
    ck_assert_ptr_null(msg);
    assert_json_eq(ret, "-42");
    json_object_put(ret);

    msg = run(qmp_marshal_test_data_type, "{\"a\": 3, \"opt\": \"o\"}", &ret);
    ck_assert_ptr_null(msg);
    assert_json_eq(ret, "[{\"a\": 3, \"opt\": \"o\"}]");
    json_object_put(ret);
}
END_TEST

START_TEST(test_no_args)
{
    static const Case cases[] = {
        { NULL, NULL },
        { "{}", NULL },
        { "{\"x\": 1}", "Parameter 'x' is unexpected" },
        { "1", "Invalid parameter type for 'null', expected: object" },
    };
    json_object *ret = NULL;
    char *msg;

    run_cases(qmp_marshal_test_no_args, cases, G_N_ELEMENTS(cases));
    msg = run(qmp_marshal_test_no_args, NULL, &ret);
    ck_assert_ptr_null(msg);
    assert_json_eq(ret, "{}");
    json_object_put(ret);
    /* a command with arguments called without any */
    msg = run(qmp_marshal_test_args, NULL, NULL);
    ck_assert_str_eq(msg, "Parameter 'name' is missing");
    g_free(msg);
}
END_TEST

START_TEST(test_union)
{
    static const Case cases[] = {
        { "{\"kind\": \"alpha\", \"a\": 1}", NULL },
        { "{\"kind\": \"alpha\", \"a\": 1, \"common\": \"c\", \"opt\": \"o\"}", NULL },
        { "{\"kind\": \"gamma\"}", NULL },
        { "{\"kind\": \"alpha\"}", "Parameter 'a' is missing" },
        { "{\"kind\": \"beta\", \"a\": 1, \"b\": true}", "Parameter 'a' is unexpected" },
        { "{\"kind\": \"gamma\", \"a\": 1}", "Parameter 'a' is unexpected" },
        { "{\"kind\": \"delta\"}", "Parameter 'kind' does not accept value 'delta'" },
        { "{\"kind\": 1}", "Invalid parameter type for 'kind', expected: string" },
        { "{}", "Parameter 'kind' is missing" },
    };

    run_cases(qmp_marshal_test_boxed, cases, G_N_ELEMENTS(cases));
}
END_TEST

/* Scalar rules, on TestScalars with one member replaced. */
static char *scalars_error(const char *member, json_object *value)
{
    json_object *o = parse("{\"s\": \"x\", \"n\": 1.5, \"b\": true, \"i\": -1, \"i8\": -128,"
                           " \"i16\": 32767, \"i32\": -5, \"i64\": 9223372036854775807,"
                           " \"u8\": 255, \"u16\": 65535, \"u32\": 4294967295,"
                           " \"u64\": 18446744073709551615, \"sz\": 0}");
    TestScalars *s = NULL;
    Error *err = NULL;
    char *msg = NULL;

    if (member) {
        json_object_object_add(o, member, value);
    }
    if (!qapi_from_json_TestScalars(o, NULL, &s, &err)) {
        ck_assert_ptr_null(s);
        msg = g_strdup(error_get_pretty(err));
        error_free(err);
    } else {
        ck_assert_ptr_nonnull(s);
        if (!member) {
            ck_assert_int_eq(s->i64, INT64_MAX);
            ck_assert(s->u64 == UINT64_MAX);
            ck_assert_int_eq(s->i8, -128);
            ck_assert(s->u32 == 4294967295u);
            ck_assert(fabs(s->n - 1.5) < 1e-9);
            ck_assert(!s->has_e && !s->a);
        }
        qapi_free_TestScalars(s);
    }
    json_object_put(o);
    return msg;
}

START_TEST(test_scalars)
{
    static const struct { const char *member, *value, *error; } cases[] = {
        { NULL, NULL, NULL },
        { "u64", "1.0", "Parameter 'u64' expects uint64" },
        { "u64", "1.5", "Parameter 'u64' expects uint64" },
        { "u64", "-1", NULL },
        { "sz", "-1", NULL },
        { "u64", "\"1\"", "Parameter 'u64' expects uint64" },
        { "u8", "-1", "Parameter 'u8' expects uint8_t" },
        { "u8", "256", "Parameter 'u8' expects uint8_t" },
        { "u16", "65536", "Parameter 'u16' expects uint16_t" },
        { "u32", "4294967296", "Parameter 'u32' expects uint32_t" },
        { "i8", "128", "Parameter 'i8' expects int8_t" },
        { "i8", "-129", "Parameter 'i8' expects int8_t" },
        { "i16", "-32769", "Parameter 'i16' expects int16_t" },
        { "i32", "2147483648", "Parameter 'i32' expects int32_t" },
        { "i", "9223372036854775808", "Invalid parameter type for 'i', expected: integer" },
        { "i", "1.0", "Invalid parameter type for 'i', expected: integer" },
        { "i", "\"1\"", "Invalid parameter type for 'i', expected: integer" },
        { "n", "\"1\"", "Invalid parameter type for 'n', expected: number" },
        { "n", "3", NULL },
        { "b", "0", "Invalid parameter type for 'b', expected: boolean" },
        { "s", "[]", "Invalid parameter type for 's', expected: string" },
        { "e", "\"nope\"", "Parameter 'e' does not accept value 'nope'" },
        { "e", "\"three\"", "Parameter 'e' does not accept value 'three'" },
        { "e", "\"four\"", NULL },
        { "a", "{\"any\": [1, null]}", NULL },
        { "a", "null", NULL },
        { "zz", "1", "Parameter 'zz' is unexpected" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        json_object *v = cases[i].value ? json_tokener_parse(cases[i].value) : NULL;
        g_autofree char *msg = scalars_error(cases[i].member, v);
        if (cases[i].error) {
            ck_assert_msg(msg && strcmp(msg, cases[i].error) == 0, "%s=%s: got '%s', expected '%s'",
                          cases[i].member, cases[i].value, msg ? msg : "(ok)", cases[i].error);
        } else {
            ck_assert_msg(!msg, "%s=%s: unexpected '%s'", cases[i].member, cases[i].value, msg);
        }
    }
    /* 2^64 arrives as a double from a parser that does not saturate */
    g_autofree char *msg = scalars_error("u64", json_object_new_double(18446744073709551616.0));
    ck_assert_str_eq(msg, "Parameter 'u64' expects uint64");
}
END_TEST

/* Every integer type at and beyond its limits, around 2^31, 2^32, 2^53 and
 * 2^63, negatives included, parsed by the QMP parser (json_parse_qmp: what
 * fits neither int64 nor uint64 becomes a double) and converted as QEMU
 * 7.2's QMP input visitor does; `want` is the stored value or the error. */
static char *convert_member(const char *member, const char *text)
{
    g_autofree char *doc = g_strdup_printf("{\"%s\": %s}", member, text);
    Error *err = NULL;
    json_object *o = json_parse_qmp(doc, &err);
    json_object *v = NULL;
    char *out = NULL;

    ck_assert_msg(o, "bad test JSON %s", doc);
    json_object_object_get_ex(o, member, &v);
    union { int64_t i; uint64_t u; int8_t i8; int16_t i16; int32_t i32; uint8_t u8; uint16_t u16;
            uint32_t u32; double n; } r;
    bool ok, is_signed = member[0] == 'i', is_number = member[0] == 'n';
    if (!strcmp(member, "i") || !strcmp(member, "i64")) {
        ok = qapi_from_json_int64(v, member, &r.i, &err);
    } else if (!strcmp(member, "i8")) {
        ok = qapi_from_json_int8(v, member, &r.i8, &err);
        r.i = r.i8;
    } else if (!strcmp(member, "i16")) {
        ok = qapi_from_json_int16(v, member, &r.i16, &err);
        r.i = r.i16;
    } else if (!strcmp(member, "i32")) {
        ok = qapi_from_json_int32(v, member, &r.i32, &err);
        r.i = r.i32;
    } else if (!strcmp(member, "u8")) {
        ok = qapi_from_json_uint8(v, member, &r.u8, &err);
        r.u = r.u8;
    } else if (!strcmp(member, "u16")) {
        ok = qapi_from_json_uint16(v, member, &r.u16, &err);
        r.u = r.u16;
    } else if (!strcmp(member, "u32")) {
        ok = qapi_from_json_uint32(v, member, &r.u32, &err);
        r.u = r.u32;
    } else if (!strcmp(member, "u64")) {
        ok = qapi_from_json_uint64(v, member, &r.u, &err);
    } else if (!strcmp(member, "sz")) {
        ok = qapi_from_json_size(v, member, &r.u, &err);
    } else {
        ok = qapi_from_json_number(v, member, &r.n, &err);
    }
    ck_assert(ok == !err);
    if (!ok) {
        out = g_strdup(error_get_pretty(err));
        error_free(err);
    } else if (is_number) {
        out = g_strdup_printf("%.17g", r.n);
    } else {
        out = is_signed ? g_strdup_printf("%" PRId64, r.i) : g_strdup_printf("%" PRIu64, r.u);
    }
    json_object_put(o);
    return out;
}

START_TEST(test_integer_limits)
{
#define TYPE_ERR(m, t) "Invalid parameter type for '" m "', expected: " t
#define EXPECTS(m, t) "Parameter '" m "' expects " t
    static const struct { const char *member, *text, *want; } cases[] = {
        /* int / int64: INT64_MIN..INT64_MAX, nothing else */
        { "i", "-9223372036854775808", "-9223372036854775808" },
        { "i", "-9223372036854775809", TYPE_ERR("i", "integer") },
        { "i", "9223372036854775807", "9223372036854775807" },
        { "i", "9223372036854775808", TYPE_ERR("i", "integer") },
        { "i", "18446744073709551615", TYPE_ERR("i", "integer") },
        { "i", "18446744073709551616", TYPE_ERR("i", "integer") },
        { "i", "2147483648", "2147483648" },
        { "i", "4294967296", "4294967296" },
        { "i", "9007199254740993", "9007199254740993" },
        { "i", "-1", "-1" },
        { "i", "1.0", TYPE_ERR("i", "integer") },
        { "i", "1e3", TYPE_ERR("i", "integer") },
        { "i64", "-9223372036854775809", TYPE_ERR("i64", "integer") },
        { "i64", "9223372036854775807", "9223372036854775807" },
        /* narrow signed: the 64-bit rule first, then the range */
        { "i8", "-128", "-128" },
        { "i8", "-129", EXPECTS("i8", "int8_t") },
        { "i8", "127", "127" },
        { "i8", "128", EXPECTS("i8", "int8_t") },
        { "i8", "9223372036854775808", TYPE_ERR("i8", "integer") },
        { "i16", "-32768", "-32768" },
        { "i16", "32768", EXPECTS("i16", "int16_t") },
        { "i32", "-2147483648", "-2147483648" },
        { "i32", "-2147483649", EXPECTS("i32", "int32_t") },
        { "i32", "2147483647", "2147483647" },
        { "i32", "2147483648", EXPECTS("i32", "int32_t") },
        { "i32", "4294967296", EXPECTS("i32", "int32_t") },
        /* uint64 / size: INT64_MIN..UINT64_MAX, negatives wrapped modulo 2^64 */
        { "u64", "18446744073709551615", "18446744073709551615" },
        { "u64", "18446744073709551616", EXPECTS("u64", "uint64") },
        { "u64", "9223372036854775808", "9223372036854775808" },
        { "u64", "9007199254740993", "9007199254740993" },
        { "u64", "4294967296", "4294967296" },
        { "u64", "-1", "18446744073709551615" },
        { "u64", "-2147483649", "18446744071562067967" },
        { "u64", "-9223372036854775808", "9223372036854775808" },
        { "u64", "-9223372036854775809", EXPECTS("u64", "uint64") },
        { "u64", "1.0", EXPECTS("u64", "uint64") },
        { "u64", "\"1\"", EXPECTS("u64", "uint64") },
        { "sz", "-1", "18446744073709551615" },
        { "sz", "-2", "18446744073709551614" },
        { "sz", "18446744073709551615", "18446744073709551615" },
        { "sz", "18446744073709551616", EXPECTS("sz", "uint64") },
        { "sz", "-9223372036854775809", EXPECTS("sz", "uint64") },
        { "sz", "1e3", EXPECTS("sz", "uint64") },
        /* narrow unsigned: wrapped like uint64, then the range */
        { "u8", "255", "255" },
        { "u8", "256", EXPECTS("u8", "uint8_t") },
        { "u8", "-1", EXPECTS("u8", "uint8_t") },
        { "u8", "-9223372036854775808", EXPECTS("u8", "uint8_t") },
        { "u8", "-9223372036854775809", EXPECTS("u8", "uint64") },
        { "u8", "18446744073709551616", EXPECTS("u8", "uint64") },
        { "u8", "1.0", EXPECTS("u8", "uint64") },
        { "u16", "65535", "65535" },
        { "u16", "65536", EXPECTS("u16", "uint16_t") },
        { "u32", "4294967295", "4294967295" },
        { "u32", "4294967296", EXPECTS("u32", "uint32_t") },
        { "u32", "2147483648", "2147483648" },
        { "u32", "-1", EXPECTS("u32", "uint32_t") },
        /* number: any JSON number, integers beyond 2^64 included */
        { "n", "9007199254740993", "9007199254740992" },
        { "n", "18446744073709551615", "1.8446744073709552e+19" },
        { "n", "18446744073709551616", "1.8446744073709552e+19" },
        { "n", "-9223372036854775809", "-9.2233720368547758e+18" },
        { "n", "-1", "-1" },
        { "n", "\"1\"", TYPE_ERR("n", "number") },
    };
#undef TYPE_ERR
#undef EXPECTS

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *got = convert_member(cases[i].member, cases[i].text);
        ck_assert_msg(!strcmp(got, cases[i].want), "%s=%s: got '%s', expected '%s'",
                      cases[i].member, cases[i].text, got, cases[i].want);
    }
}
END_TEST

START_TEST(test_alternate)
{
    static const Case cases[] = {
        { "{\"all\": {\"alt\": 1.5}}", "Invalid parameter type for 'all.alt', expected: integer" },
        { "{\"all\": {\"alt\": []}}", "Invalid parameter type for 'all.alt', expected: TestAlt" },
        { "{\"all\": {\"alt\": {\"a\": \"x\"}}}", "Invalid parameter type for 'all.alt.a', expected: integer" },
        { "{\"all\": {\"alt\": {\"a\": 1, \"b\": 2}}}", "Parameter 'all.alt.b' is unexpected" },
        { "{\"all\": {\"alts\": [1, \"x\", {}]}}", "Parameter 'all.alts[2].a' is missing" },
        { "{\"all\": {\"alt2\": true}}", "Invalid parameter type for 'all.alt2', expected: TestAltEnum" },
        { "{\"all\": {\"alt2\": \"bad\"}}", "Parameter 'alt2' does not accept value 'bad'" },
        { "{\"all\": {\"alt2\": {\"kind\": \"beta\"}}}", "Parameter 'all.alt2.b' is missing" },
        { "{\"all\": {\"nul\": 1}}", "Invalid parameter type for 'all.nul', expected: null" },
        { "{\"all\": {\"sub\": {\"common\": {}}}}", "Parameter 'all.sub.common.x' is missing" },
        { "{\"all\": {\"derived\": {\"base-name\": \"b\", \"count\": 300}}}",
          "Parameter 'all.derived.count' expects uint8_t" },
        { "{\"all\": {\"strs\": [\"a\", 1]}}", "Invalid parameter type for 'all.strs[1]', expected: string" },
        { "{\"all\": {}}", NULL },
    };

    run_cases(qmp_marshal_test_all, cases, G_N_ELEMENTS(cases));
}
END_TEST

/* JSON -> C -> JSON must give back the input. */
START_TEST(test_round_trip)
{
    static const char *const inputs[] = {
        "{\"alt\": \"s\", \"alt2\": \"one\", \"nul\": null}",
        "{\"alt\": 5, \"alt2\": 2.5}",
        "{\"alt\": true, \"alt2\": {\"kind\": \"alpha\", \"a\": 1, \"common\": \"c\"}}",
        "{\"alt\": null, \"alts\": [1, \"two\", false, null, {\"a\": 3, \"opt\": \"x\"}]}",
        "{\"scalars\": {\"s\": \"\\u00e9\", \"n\": -0.5, \"b\": false, \"i\": -9223372036854775808,"
        " \"i8\": 1, \"i16\": 2, \"i32\": 3, \"i64\": 4, \"u8\": 5, \"u16\": 6, \"u32\": 7,"
        " \"u64\": 18446744073709551615, \"sz\": 9, \"a\": {\"x\": [1, \"y\"]}, \"e\": \"5-five\"}}",
        "{\"derived\": {\"base-name\": \"b\", \"base-opt\": 1, \"count\": 2, \"default\": true,"
        " \"nested\": {\"base-name\": \"n\"}, \"list\": [{\"base-name\": \"l1\"}, {\"base-name\": \"l2\"}],"
        " \"ints\": [1, -2], \"u32s\": [4294967295], \"enums\": [\"one\", \"four\"], \"feat\": \"f\"}}",
        "{\"union\": {\"kind\": \"gamma\"}, \"sub\": {\"common\": {\"x\": 1}}}",
    };

    for (size_t i = 0; i < G_N_ELEMENTS(inputs); i++) {
        g_autofree char *args = g_strdup_printf("{\"all\": %s}", inputs[i]);
        json_object *ret = NULL;
        g_autofree char *msg = run(qmp_marshal_test_all, args, &ret);
        ck_assert_msg(!msg, "%s: %s", inputs[i], msg);
        assert_json_eq(ret, inputs[i]);
        json_object_put(ret);
    }
}
END_TEST

/* C -> JSON for values built in C. */
START_TEST(test_to_json)
{
    TestDerived d = { 0 };
    TestBase nested = { .base_name = (char *)"n" };
    TestEnumList e2 = { .next = NULL, .value = TE_TWO };
    TestEnumList e1 = { .next = &e2, .value = TE_ONE };
    TestUnion u = { .kind = TEST_CHOICE_BETA, .u.beta.b = true };
    TestAlt alt = { .type = QTYPE_QNULL };
    json_object *j;

    d.base_name = (char *)"b";
    d.count = 200;
    d.has_q_default = true;
    d.q_default = false;
    d.nested = &nested;
    d.enums = &e1;
    j = qapi_to_json_TestDerived(&d);
    assert_json_eq(j, "{\"base-name\": \"b\", \"count\": 200, \"default\": false,"
                      " \"nested\": {\"base-name\": \"n\"}, \"enums\": [\"one\", \"two\"]}");
    json_object_put(j);

    j = qapi_to_json_TestUnion(&u);
    assert_json_eq(j, "{\"kind\": \"beta\", \"b\": true}");
    json_object_put(j);

    j = qapi_to_json_TestAlt(&alt);
    ck_assert_ptr_null(j);                  /* JSON null */
    j = qapi_to_json_TestEnumList(NULL);
    assert_json_eq(j, "[]");
    json_object_put(j);
    j = qapi_to_json_TestBase(NULL);
    assert_json_eq(j, "{}");
    json_object_put(j);

    /* free functions are NULL-safe */
    qapi_free_TestAll(NULL);
    qapi_free_TestAltList(NULL);
    qapi_free_strList(NULL);
}
END_TEST

START_TEST(test_command_table)
{
    const QmpCommand *c;

    ck_assert_uint_eq(qmp_commands_count, 11);      /* test-conditional is compiled out */
    for (size_t i = 1; i < qmp_commands_count; i++) {
        ck_assert_int_lt(strcmp(qmp_commands[i - 1].name, qmp_commands[i].name), 0);
    }
    for (size_t i = 0; i < qmp_commands_count; i++) {
        ck_assert_ptr_eq(qmp_command_find(qmp_commands[i].name), &qmp_commands[i]);
    }
    c = qmp_command_find("test-args");
    ck_assert_ptr_nonnull(c);
    ck_assert(c->fn == qmp_marshal_test_args);
    ck_assert_uint_eq(c->flags, 0);
    ck_assert_uint_eq(qmp_command_find("test-oob")->flags, QCO_ALLOW_OOB | QCO_ALLOW_PRECONFIG);
    ck_assert_uint_eq(qmp_command_find("test-no-response")->flags, QCO_NO_SUCCESS_RESP);
    ck_assert(qmp_command_find("test-not-generated")->fn == qmp_marshal_test_not_generated);
    ck_assert_ptr_nonnull(qmp_command_find("test_underscore"));
    ck_assert_ptr_null(qmp_command_find("test-conditional"));
    ck_assert_ptr_null(qmp_command_find("nosuch"));
    ck_assert_ptr_null(qmp_command_find(""));
    ck_assert_ptr_null(qmp_command_find(NULL));
}
END_TEST

START_TEST(test_events)
{
    TestBase base = { .base_name = (char *)"bb", .has_base_opt = true, .base_opt = 9 };
    TestUnion u = { .kind = TEST_CHOICE_ALPHA, .common = (char *)"c", .u.alpha.a = 4 };

    qapi_event_send_test_event_none();
    ck_assert_str_eq(event_name, "TEST_EVENT_NONE");
    ck_assert_ptr_null(event_data);

    qapi_event_send_test_event(TE_TWO, "nm", false, 0, NULL);
    ck_assert_str_eq(event_name, "TEST_EVENT");
    assert_json_eq(event_data, "{\"status\": \"two\", \"name\": \"nm\"}");

    qapi_event_send_test_event(TE_ONE, "nm", true, -1, &base);
    assert_json_eq(event_data, "{\"status\": \"one\", \"name\": \"nm\", \"opt\": -1,"
                               " \"base\": {\"base-name\": \"bb\", \"base-opt\": 9}}");

    qapi_event_send_test_event_boxed(&u);
    ck_assert_str_eq(event_name, "TEST_EVENT_BOXED");
    assert_json_eq(event_data, "{\"kind\": \"alpha\", \"common\": \"c\", \"a\": 4}");
}
END_TEST

START_TEST(test_paths)
{
    g_autofree char *a = qapi_path_member(NULL, "x");
    g_autofree char *b = qapi_path_member("capabilities[0]", "state");
    g_autofree char *c = qapi_path_index("capabilities", 12);

    ck_assert_str_eq(a, "x");
    ck_assert_str_eq(b, "capabilities[0].state");
    ck_assert_str_eq(c, "capabilities[12]");
}
END_TEST

/* ---- introspection ---- */

static json_object *find_entry(json_object *schema, const char *name)
{
    for (size_t i = 0; i < json_object_array_length(schema); i++) {
        json_object *e = json_object_array_get_idx(schema, i);
        if (strcmp(json_object_get_string(json_object_object_get(e, "name")), name) == 0) {
            return e;
        }
    }
    return NULL;
}

static const char *str_member(json_object *o, const char *key)
{
    json_object *v = json_object_object_get(o, key);

    return v ? json_object_get_string(v) : NULL;
}

static bool is_masked(const char *name)
{
    return name && *name && strspn(name, "0123456789") == strlen(name);
}

/* Checks that hold for any schema's introspection. */
static void check_introspection_rules(json_object *schema)
{
    GHashTable *names = g_hash_table_new(g_str_hash, g_str_equal);

    ck_assert(json_object_is_type(schema, json_type_array));
    for (size_t i = 0; i < json_object_array_length(schema); i++) {
        json_object *e = json_object_array_get_idx(schema, i);
        const char *name = str_member(e, "name");
        const char *meta = str_member(e, "meta-type");

        ck_assert_msg(g_hash_table_add(names, (char *)name), "duplicate entry %s", name);
        if (strcmp(meta, "builtin") == 0) {
            static const char *const ok[] = { "str", "any", "bool", "int", "null", "number" };
            bool found = false;
            for (size_t j = 0; j < G_N_ELEMENTS(ok); j++) {
                found |= strcmp(name, ok[j]) == 0;
            }
            ck_assert_msg(found, "builtin %s not collapsed", name);
        } else if (strcmp(meta, "array") == 0) {
            g_autofree char *want = g_strdup_printf("[%s]", str_member(e, "element-type"));
            ck_assert_str_eq(name, want);
        } else if (strcmp(meta, "enum") == 0) {
            json_object *members = json_object_object_get(e, "members");
            json_object *values = json_object_object_get(e, "values");
            ck_assert(is_masked(name));
            ck_assert_uint_eq(json_object_array_length(members), json_object_array_length(values));
        } else if (strcmp(meta, "object") == 0) {
            json_object *members = json_object_object_get(e, "members");
            ck_assert(is_masked(name));
            ck_assert(json_object_is_type(members, json_type_array));
            for (size_t j = 0; j < json_object_array_length(members); j++) {
                json_object *m = json_object_array_get_idx(members, j);
                json_object *d = NULL;
                if (json_object_object_get_ex(m, "default", &d)) {
                    ck_assert_ptr_null(d);      /* "default": null */
                }
            }
        } else if (strcmp(meta, "command") == 0) {
            ck_assert_ptr_nonnull(str_member(e, "ret-type"));
            ck_assert_ptr_nonnull(str_member(e, "arg-type"));
        } else if (strcmp(meta, "event") == 0) {
            ck_assert_ptr_nonnull(str_member(e, "arg-type"));
        }
    }
    /* every reference resolves */
    for (size_t i = 0; i < json_object_array_length(schema); i++) {
        json_object *e = json_object_array_get_idx(schema, i);
        static const char *const refs[] = { "arg-type", "ret-type", "element-type" };
        for (size_t j = 0; j < G_N_ELEMENTS(refs); j++) {
            const char *r = str_member(e, refs[j]);
            ck_assert_msg(!r || g_hash_table_contains(names, r), "dangling %s", r);
        }
    }
    g_hash_table_destroy(names);
}

START_TEST(test_introspect_test_schema)
{
    json_object *schema = json_tokener_parse(test_schema_json);
    json_object *e, *members;

    ck_assert_ptr_nonnull(schema);
    check_introspection_rules(schema);
    ck_assert_ptr_null(find_entry(schema, "test-conditional"));
    e = find_entry(schema, "test-oob");
    ck_assert(json_object_get_boolean(json_object_object_get(e, "allow-oob")));
    ck_assert_str_eq(str_member(e, "arg-type"), "0");
    ck_assert_ptr_null(json_object_object_get(find_entry(schema, "test-args"), "allow-oob"));
    assert_json_eq(json_object_object_get(find_entry(schema, "test_underscore"), "features"), "[\"deprecated\"]");
    e = find_entry(schema, "0");
    assert_json_eq(e, "{\"name\": \"0\", \"meta-type\": \"object\", \"members\": []}");
    /* TestEnum is the type of TEST_EVENT's first member */
    e = find_entry(schema, "TEST_EVENT");
    members = json_object_object_get(find_entry(schema, str_member(e, "arg-type")), "members");
    e = find_entry(schema, str_member(json_object_array_get_idx(members, 0), "type"));
    assert_json_eq(json_object_object_get(e, "values"), "[\"one\", \"two\", \"four\", \"5-five\"]");
    assert_json_eq(json_object_object_get(e, "members"),
                   "[{\"name\": \"one\"}, {\"name\": \"two\"}, {\"name\": \"four\", \"features\": [\"deprecated\"]},"
                   " {\"name\": \"5-five\"}]");
    assert_json_eq(json_object_object_get(e, "features"), "[\"enum-feature\"]");
    /* the boxed union: tag and variants, with the empty branch */
    e = find_entry(schema, str_member(find_entry(schema, "test-boxed"), "arg-type"));
    ck_assert_str_eq(str_member(e, "tag"), "kind");
    ck_assert_uint_eq(json_object_array_length(json_object_object_get(e, "variants")), 3);
    ck_assert_str_eq(str_member(json_object_array_get_idx(json_object_object_get(e, "variants"), 2), "type"), "0");
    json_object_put(schema);
}
END_TEST

START_TEST(test_introspect_real_schema)
{
    json_object *schema = json_tokener_parse(qmp_schema_json);
    json_object *e, *arg, *members;

    ck_assert_ptr_nonnull(schema);
    check_introspection_rules(schema);
    /* first entry: an argument-less command, arguments "0" */
    e = find_entry(schema, "query-status");
    ck_assert_str_eq(str_member(e, "arg-type"), "0");
    assert_json_eq(find_entry(schema, "0"), "{\"name\": \"0\", \"meta-type\": \"object\", \"members\": []}");
    e = find_entry(schema, "migrate");
    ck_assert_str_eq(str_member(e, "meta-type"), "command");
    ck_assert(is_masked(str_member(e, "arg-type")));
    ck_assert_str_eq(str_member(e, "ret-type"), "0");
    arg = find_entry(schema, str_member(e, "arg-type"));
    members = json_object_object_get(arg, "members");
    assert_json_eq(members, "[{\"name\": \"uri\", \"type\": \"str\"},"
                            " {\"name\": \"blk\", \"default\": null, \"type\": \"bool\"},"
                            " {\"name\": \"inc\", \"default\": null, \"type\": \"bool\"},"
                            " {\"name\": \"detach\", \"default\": null, \"type\": \"bool\"},"
                            " {\"name\": \"resume\", \"default\": null, \"type\": \"bool\"}]");
    /* query-migrate-capabilities returns an array "[N]" */
    e = find_entry(schema, "query-migrate-capabilities");
    ck_assert(str_member(e, "ret-type")[0] == '[');
    ck_assert_ptr_nonnull(find_entry(schema, str_member(e, "ret-type")));
    ck_assert_ptr_nonnull(find_entry(schema, "MIGRATION"));
    ck_assert_ptr_nonnull(find_entry(schema, "query-qmp-schema"));
    ck_assert_ptr_null(find_entry(schema, "uint8"));
    ck_assert_ptr_null(find_entry(schema, "MigrationStatus"));   /* type names are masked */
    /* human-monitor-command returns str and carries its feature */
    e = find_entry(schema, "human-monitor-command");
    ck_assert_str_eq(str_member(e, "ret-type"), "str");
    assert_json_eq(json_object_object_get(e, "features"), "[\"savevm-monitor-nodes\"]");
    json_object_put(schema);
}
END_TEST

static Suite *qapi_suite(void)
{
    Suite *s = suite_create("qapi-json");
    TCase *tc = tcase_create("generated");

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_enum);
    tcase_add_test(tc, test_command_args);
    tcase_add_test(tc, test_command_result);
    tcase_add_test(tc, test_no_args);
    tcase_add_test(tc, test_union);
    tcase_add_test(tc, test_scalars);
    tcase_add_test(tc, test_integer_limits);
    tcase_add_test(tc, test_alternate);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_to_json);
    tcase_add_test(tc, test_command_table);
    tcase_add_test(tc, test_events);
    tcase_add_test(tc, test_paths);
    tcase_add_test(tc, test_introspect_test_schema);
    tcase_add_test(tc, test_introspect_real_schema);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(qapi_suite());
}
