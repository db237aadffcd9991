/*
 * The QMP dispatcher and control commands: envelope checks of
 * qmp-protocol.md table 3.1 with their exact texts, negotiation mode, id
 * echo, argument validation, fds, events.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "json-streamer.h"
#include "json-writer.h"
#include "../../monitor/monitor-int.h"
#include "qmp-dispatch.h"
#include "qapi-commands.h"
#include "qapi-introspect.h"
#include "unit-test.h"

static QmpDispatchState command_mode = { .negotiated = true };

/* Dispatch `text` and return the response as QMP would print it. */
static char *dispatch_text(const char *text, QmpDispatchState *st, Monitor *mon)
{
    Error *err = NULL;
    json_object *req = json_parse_qmp(text, &err);
    ck_assert_msg(req || !err, "test request does not parse: %s", text);
    json_object *rsp = qmp_dispatch(req, st, mon);
    ck_assert_ptr_nonnull(rsp);
    char *out = json_to_string(rsp);
    json_object_put(rsp);
    json_object_put(req);
    return out;
}

/* Dispatch request in state st (on monitor mon, or none) and compare the reply's text. */
static void expect_in(QmpDispatchState *st, Monitor *mon, const char *request, const char *response)
{
    char *out = dispatch_text(request, st, mon);
    ck_assert_str_eq(out, response);
    g_free(out);
}

static void expect(const char *request, const char *response)
{
    QmpDispatchState st = command_mode;
    expect_in(&st, NULL, request, response);
}

static void expect_error(const char *request, const char *cls, const char *desc)
{
    char *want = g_strdup_printf("{\"error\": {\"class\": \"%s\", \"desc\": \"%s\"}}", cls, desc);
    expect(request, want);
    g_free(want);
}

static void expect_generic(const char *request, const char *desc)
{
    expect_error(request, "GenericError", desc);
}

START_TEST(test_not_an_object)
{
    expect_generic("[1, 2]", "QMP input must be a JSON object");
    expect_generic("\"x\"", "QMP input must be a JSON object");
    expect_generic("42", "QMP input must be a JSON object");
    expect_generic("true", "QMP input must be a JSON object");
    json_object *rsp = qmp_dispatch(NULL, &command_mode, NULL);     /* JSON null */
    char *out = json_to_string(rsp);
    ck_assert_str_eq(out, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input must be a JSON object\"}}");
    g_free(out);
    json_object_put(rsp);
}
END_TEST

START_TEST(test_envelope_table)
{
    expect_generic("{\"execute\": \"query-version\", \"bogus\": 1}", "QMP input member 'bogus' is unexpected");
    expect_generic("{\"exec-oob\": \"query-version\"}", "QMP input member 'exec-oob' is unexpected");
    expect_generic("{\"execute\": 1}", "QMP input member 'execute' must be a string");
    expect_generic("{\"execute\": null}", "QMP input member 'execute' must be a string");
    expect_generic("{\"execute\": \"query-version\", \"arguments\": []}",
                   "QMP input member 'arguments' must be an object");
    expect_generic("{\"arguments\": {}}", "QMP input lacks member 'execute'");
    expect_generic("{}", "QMP input lacks member 'execute'");
    expect_error("{\"execute\": \"nosuch\"}", "CommandNotFound", "The command nosuch has not been found");
}
END_TEST

START_TEST(test_envelope_oob)
{
    QmpDispatchState st = { .negotiated = true, .oob_enabled = true };
    expect_in(&st, NULL, "{\"execute\": \"query-version\", \"exec-oob\": \"query-version\"}",
              "{\"error\": {\"class\": \"GenericError\", "
              "\"desc\": \"QMP input member 'execute' clashes with 'exec-oob'\"}}");
    expect_in(&st, NULL, "{\"exec-oob\": \"query-version\", \"execute\": \"query-version\"}",
              "{\"error\": {\"class\": \"GenericError\", "
              "\"desc\": \"QMP input member 'execute' clashes with 'exec-oob'\"}}");
    expect_in(&st, NULL, "{\"exec-oob\": \"query-version\", \"id\": 8}",
              "{\"id\": 8, \"error\": {\"class\": \"GenericError\", "
              "\"desc\": \"The command query-version does not support OOB\"}}");
    expect_in(&st, NULL, "{\"exec-oob\": 3}",
              "{\"error\": {\"class\": \"GenericError\", "
              "\"desc\": \"QMP input member 'exec-oob' must be a string\"}}");
    expect_in(&st, NULL, "{\"exec-oob\": \"nosuch\"}",
              "{\"error\": {\"class\": \"CommandNotFound\", "
              "\"desc\": \"The command nosuch has not been found\"}}");
}
END_TEST

/* QEMU visits members in its hash order: 'bogus' is seen before 'execute'. */
START_TEST(test_envelope_order)
{
    expect_generic("{\"execute\": 1, \"bogus\": 1}", "QMP input member 'bogus' is unexpected");
    expect_generic("{\"arguments\": 1, \"execute\": 1}", "QMP input member 'execute' must be a string");
}
END_TEST

START_TEST(test_errors_carry_id)
{
    expect("{\"execute\": \"nosuch\", \"id\": \"a\"}",
           "{\"id\": \"a\", \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nosuch has not been found\"}}");
    expect("{\"bogus\": 1, \"id\": 7}",
           "{\"id\": 7, \"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input member 'bogus' is unexpected\"}}");
}
END_TEST

START_TEST(test_argument_errors)
{
    expect_generic("{\"execute\": \"query-status\", \"arguments\": {\"x\": 1}}", "Parameter 'x' is unexpected");
    expect_generic("{\"execute\": \"query-version\", \"arguments\": {\"x\": 1}}", "Parameter 'x' is unexpected");
    expect_generic("{\"execute\": \"getfd\"}", "Parameter 'fdname' is missing");
    expect_generic("{\"execute\": \"getfd\", \"arguments\": {}}", "Parameter 'fdname' is missing");
    expect_generic("{\"execute\": \"closefd\", \"arguments\": {\"fdname\": 1}}",
                   "Invalid parameter type for 'fdname', expected: string");
    expect_generic("{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"x\", \"cpu-index\": 1.5}}",
                   "Invalid parameter type for 'cpu-index', expected: integer");
}
END_TEST

START_TEST(test_negotiation_mode)
{
    QmpDispatchState st = { 0 };
    const char *nf = "{\"error\": {\"class\": \"CommandNotFound\", "
                     "\"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}";
    expect_in(&st, NULL, "{\"execute\": \"query-version\"}", nf);
    expect_in(&st, NULL, "{\"execute\": \"nosuch\"}", nf);
    expect_in(&st, NULL, "{\"exec-oob\": \"qmp_capabilities\"}",
              "{\"error\": {\"class\": \"GenericError\", "
              "\"desc\": \"QMP input member 'exec-oob' is unexpected\"}}");
    ck_assert(!st.negotiated);

    char *out = dispatch_text("{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"bogus\"]}}",
                              &st, NULL);
    ck_assert_ptr_nonnull(strstr(out, "\"GenericError\""));
    ck_assert_ptr_nonnull(strstr(out, "does not accept value 'bogus'"));
    g_free(out);
    ck_assert(!st.negotiated);

    expect_in(&st, NULL, "{\"execute\": \"qmp_capabilities\", \"id\": 1}", "{\"return\": {}, \"id\": 1}");
    ck_assert(st.negotiated);
    ck_assert(!st.oob_enabled);

    expect_in(&st, NULL, "{\"execute\": \"qmp_capabilities\"}",
              "{\"error\": {\"class\": \"CommandNotFound\", "
              "\"desc\": \"Capabilities negotiation is already complete, command ignored\"}}");
}
END_TEST

START_TEST(test_negotiate_oob)
{
    QmpDispatchState st = { 0 };
    expect_in(&st, NULL, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"oob\"]}}",
              "{\"return\": {}}");
    ck_assert(st.negotiated && st.oob_enabled);
}
END_TEST

START_TEST(test_id_echo)
{
    static const char *const cases[][2] = {
        { "1", "1" },
        { "1.5e3", "1500" },
        { "-0", "0" },
        { "null", "null" },
        { "\"\\u00e9\"", "\"\\u00E9\"" },
        { "'single'", "\"single\"" },
        { "18446744073709551615", "18446744073709551615" },
        { "-9223372036854775808", "-9223372036854775808" },
        { "true", "true" },
        { "[1, \"a\", {}]", "[1, \"a\", {}]" },
        { "{\"a\": {\"b\": [null]}}", "{\"a\": {\"b\": [null]}}" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        char *req = g_strdup_printf("{\"execute\": \"qmp_capabilities\", \"id\": %s}", cases[i][0]);
        char *want = g_strdup_printf("{\"error\": {\"class\": \"CommandNotFound\", "
                                     "\"desc\": \"Capabilities negotiation is already complete, command ignored\"}}");
        /* error responses put the id first */
        char *want_id = g_strdup_printf("{\"id\": %s, %s", cases[i][1], want + 1);
        expect(req, want_id);
        g_free(req);
        g_free(want);
        g_free(want_id);
    }
}
END_TEST

START_TEST(test_query_version)
{
    expect("{\"execute\": \"query-version\", \"id\": {\"x\": 1.5e3}}",
           "{\"return\": {\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}, \"package\": \"migvm 0.1\"}, "
           "\"id\": {\"x\": 1500}}");
}
END_TEST

START_TEST(test_query_commands)
{
    QmpDispatchState st = command_mode;
    json_object *req = json_parse_qmp("{\"execute\": \"query-commands\"}", NULL);
    json_object *rsp = qmp_dispatch(req, &st, NULL);
    json_object *list = json_object_object_get(rsp, "return");
    ck_assert(json_object_is_type(list, json_type_array));
    ck_assert_uint_eq(json_object_array_length(list), qmp_commands_count);
    bool seen_caps = false, seen_migrate = false;
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        const char *name = json_object_get_string(json_object_object_get(json_object_array_get_idx(list, i), "name"));
        seen_caps |= !strcmp(name, "qmp_capabilities");
        seen_migrate |= !strcmp(name, "migrate");
    }
    ck_assert(seen_caps && seen_migrate);
    json_object_put(rsp);
    json_object_put(req);
}
END_TEST

START_TEST(test_query_qmp_schema)
{
    QmpDispatchState st = command_mode;
    json_object *req = json_parse_qmp("{\"execute\": \"query-qmp-schema\"}", NULL);
    /* The reply's text, kept after the first call, is the schema written
     * afresh from its own parse. */
    json_object *fresh = json_object_new_object();
    json_object_object_add(fresh, "return", json_tokener_parse(qmp_schema_json));
    char *want = json_to_string(fresh);
    for (int round = 0; round < 2; round++) {
        json_object *rsp = qmp_dispatch(req, &st, NULL);
        json_object *list = json_object_object_get(rsp, "return");
        ck_assert(json_object_is_type(list, json_type_array));
        ck_assert_uint_gt(json_object_array_length(list), 10);
        char *text = json_to_string(rsp);
        ck_assert_str_eq(text, want);
        g_free(text);
        json_object_put(rsp);
    }
    g_free(want);
    json_object_put(fresh);
    json_object_put(req);
}
END_TEST

static bool fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1 || errno != EBADF;
}

/* Hand mon the read end of a new pipe, as if it came with the next command; returns it. */
static int pass_pipe(Monitor *mon)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    close(p[1]);
    monitor_set_received_fds(mon, p, 1);
    return p[0];
}

/* The reply to getfd NAME, as text (g_free it). */
static char *getfd(const char *name, QmpDispatchState *st, Monitor *mon)
{
    g_autofree char *req = g_strdup_printf("{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"%s\"}}", name);
    return dispatch_text(req, st, mon);
}

START_TEST(test_getfd_closefd)
{
    Monitor *mon = monitor_new(true, NULL, NULL);
    QmpDispatchState st = command_mode;
    int p[2];
    ck_assert_int_eq(pipe(p), 0);

    char *out = getfd("mig", &st, mon);
    ck_assert_str_eq(out, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"No file descriptor supplied via SCM_RIGHTS\"}}");
    g_free(out);

    monitor_set_received_fds(mon, p, 2);       /* the first is taken, the rest closed */
    out = getfd("mig", &st, mon);
    ck_assert_str_eq(out, "{\"return\": {}}");
    g_free(out);
    ck_assert(fd_is_open(p[0]));
    ck_assert(!fd_is_open(p[1]));

    /* A second fd under the same name replaces (closes) the first. */
    int q = pass_pipe(mon);
    out = getfd("mig", &st, mon);
    ck_assert_str_eq(out, "{\"return\": {}}");
    g_free(out);
    ck_assert(!fd_is_open(p[0]));

    Error *err = NULL;
    ck_assert_int_eq(monitor_fd_take(mon, "nosuch", &err), -1);
    ck_assert_str_eq(error_get_pretty(err), "File descriptor named 'nosuch' has not been found");
    error_free(err);

    /* Names starting with a digit: refused, and the fd is closed. */
    int r = pass_pipe(mon);
    out = getfd("1x", &st, mon);
    ck_assert_str_eq(out, "{\"error\": {\"class\": \"GenericError\", "
                          "\"desc\": \"Parameter 'fdname' expects a name not starting with a digit\"}}");
    g_free(out);
    ck_assert(!fd_is_open(r));

    expect_in(&st, mon, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": \"mig\"}}", "{\"return\": {}}");
    ck_assert(!fd_is_open(q));
    expect_in(&st, mon, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": \"mig\"}}",
              "{\"error\": {\"class\": \"GenericError\", \"desc\": \"File descriptor named 'mig' not found\"}}");

    /* fd taken by a command (migrate fd:NAME) */
    int s = pass_pipe(mon);
    g_free(getfd("m2", &st, mon));
    ck_assert_int_eq(monitor_fd_take(mon, "m2", NULL), s);
    close(s);
    monitor_free(mon);
}
END_TEST

START_TEST(test_monitor_cur_during_command)
{
    Monitor *mon = monitor_new(true, NULL, NULL);
    QmpDispatchState st = command_mode;
    ck_assert_ptr_null(monitor_cur());
    int p = pass_pipe(mon);
    char *out = getfd("a", &st, mon);
    ck_assert_str_eq(out, "{\"return\": {}}");
    g_free(out);
    ck_assert_ptr_null(monitor_cur());
    monitor_free(mon);      /* closes the named fd */
    ck_assert(!fd_is_open(p));
}
END_TEST

START_TEST(test_human_monitor_command)
{
    expect("{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"info status\"}}",
           "{\"return\": \"hmp: info status\\r\\n\"}");
    expect("{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"x\", \"cpu-index\": 1}}",
           "{\"return\": \"hmp: x\\r\\n\"}");
    expect_generic("{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"x\", \"cpu-index\": 2}}",
                   "Parameter 'cpu-index' expects a CPU number");
    expect_generic("{\"execute\": \"human-monitor-command\", \"arguments\": {\"command-line\": \"x\", \"cpu-index\": -1}}",
                   "Parameter 'cpu-index' expects a CPU number");
}
END_TEST

START_TEST(test_event_shape)
{
    GString *a = g_string_new(""), *b = g_string_new("");
    Monitor *on = monitor_new(true, gstring_sink, a);
    Monitor *off = monitor_new(true, gstring_sink, b);
    monitor_set_events(on, true);

    qapi_event_emit("STOP", NULL);
    json_object *data = json_object_new_object();
    json_object_object_add(data, "status", json_object_new_string("setup"));
    qapi_event_emit("MIGRATION", data);

    ck_assert_uint_eq(b->len, 0);
    gchar **lines = g_strsplit(a->str, "\r\n", -1);
    ck_assert_uint_eq(g_strv_length(lines), 3);
    ck_assert_str_eq(lines[2], "");
    ck_assert(g_regex_match_simple("^\\{\"timestamp\": \\{\"seconds\": [0-9]+, \"microseconds\": [0-9]+\\}, "
                                   "\"event\": \"STOP\"\\}$", lines[0], 0, 0));
    ck_assert(g_regex_match_simple("^\\{\"timestamp\": \\{\"seconds\": [0-9]+, \"microseconds\": [0-9]+\\}, "
                                   "\"event\": \"MIGRATION\", \"data\": \\{\"status\": \"setup\"\\}\\}$", lines[1], 0, 0));
    json_object *ev = json_parse_qmp(lines[0], NULL);
    int64_t sec = json_object_get_int64(json_object_object_get(json_object_object_get(ev, "timestamp"), "seconds"));
    int64_t usec = json_object_get_int64(json_object_object_get(json_object_object_get(ev, "timestamp"), "microseconds"));
    ck_assert_int_le(llabs(sec - (int64_t)time(NULL)), 2);
    ck_assert_int_lt(usec, 1000000);
    json_object_put(ev);
    g_strfreev(lines);

    monitor_free(on);
    monitor_free(off);
    g_string_free(a, TRUE);
    g_string_free(b, TRUE);
}
END_TEST

START_TEST(test_capture_monitor)
{
    Monitor *mon = monitor_new_capture();
    ck_assert(!monitor_is_qmp(mon));
    monitor_write(mon, "ab", 2);
    monitor_write(mon, "c\r\n", 3);
    char *text = monitor_capture_take(mon);
    ck_assert_str_eq(text, "abc\r\n");
    g_free(text);
    text = monitor_capture_take(mon);
    ck_assert_str_eq(text, "");
    g_free(text);
    qapi_event_emit("STOP", NULL);         /* not a QMP monitor: nothing */
    text = monitor_capture_take(mon);
    ck_assert_str_eq(text, "");
    g_free(text);
    monitor_free(mon);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("qmp-dispatch");
    TCase *tc = tcase_create("dispatch");
    tcase_add_test(tc, test_not_an_object);
    tcase_add_test(tc, test_envelope_table);
    tcase_add_test(tc, test_envelope_oob);
    tcase_add_test(tc, test_envelope_order);
    tcase_add_test(tc, test_errors_carry_id);
    tcase_add_test(tc, test_argument_errors);
    tcase_add_test(tc, test_negotiation_mode);
    tcase_add_test(tc, test_negotiate_oob);
    tcase_add_test(tc, test_id_echo);
    tcase_add_test(tc, test_query_version);
    tcase_add_test(tc, test_query_commands);
    tcase_add_test(tc, test_query_qmp_schema);
    tcase_add_test(tc, test_getfd_closefd);
    tcase_add_test(tc, test_monitor_cur_during_command);
    tcase_add_test(tc, test_human_monitor_command);
    tcase_add_test(tc, test_event_shape);
    tcase_add_test(tc, test_capture_monitor);
    suite_add_tcase(s, tc);
    return check_run_suite(s);
}
