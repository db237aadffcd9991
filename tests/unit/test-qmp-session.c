/*
 * QMP sessions: bytes in, bytes out. First through a sink monitor (greeting,
 * negotiation, split and merged input, parse errors, events before the
 * response), then over real UNIX sockets driven by the glib main loop
 * (several clients, SCM_RIGHTS getfd, disconnect mid-message, cleanup).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../monitor/monitor-int.h"
#include "qapi-commands.h"
#include "unit-test.h"

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, " \
                 "\"package\": \"migvm 0.1\"}, \"capabilities\": [\"oob\"]}}\r\n"
#define NEGOTIATE "{\"execute\": \"qmp_capabilities\"}"

/* A handler made to raise an event while it runs. */
bool qmp_stop(Error **errp)
{
    qapi_event_emit("STOP", NULL);
    return true;
}

typedef struct Session {
    Monitor *mon;
    GString *out;
} Session;

static Session *session_open(void)
{
    Session *s = g_new0(Session, 1);
    s->out = g_string_new("");
    s->mon = monitor_new(true, gstring_sink, s->out);
    qmp_server_ops.opened(s->mon);
    return s;
}

static void feed(Session *s, const char *text)
{
    qmp_server_ops.input(s->mon, text, strlen(text));
}

/* Everything written since the last call. */
static char *take(Session *s)
{
    char *text = g_strdup(s->out->str);
    g_string_truncate(s->out, 0);
    return text;
}

static void expect_out(Session *s, const char *want)
{
    char *got = take(s);
    ck_assert_str_eq(got, want);
    g_free(got);
}

static void session_close(Session *s)
{
    qmp_server_ops.closed(s->mon);
    monitor_free(s->mon);
    g_string_free(s->out, TRUE);
    g_free(s);
}

START_TEST(test_greeting_and_negotiation)
{
    Session *s = session_open();
    expect_out(s, GREETING);
    feed(s, "{\"execute\": \"query-version\"}");
    expect_out(s, "{\"error\": {\"class\": \"CommandNotFound\", "
                  "\"desc\": \"Expecting capabilities negotiation with 'qmp_capabilities'\"}}\r\n");
    qapi_event_emit("STOP", NULL);                  /* no events before negotiation */
    expect_out(s, "");
    feed(s, "{\"execute\": \"qmp_capabilities\", \"arguments\": {\"enable\": [\"oob\"]}, \"id\": \"n\"}");
    expect_out(s, "{\"return\": {}, \"id\": \"n\"}\r\n");
    feed(s, NEGOTIATE);
    expect_out(s, "{\"error\": {\"class\": \"CommandNotFound\", "
                  "\"desc\": \"Capabilities negotiation is already complete, command ignored\"}}\r\n");
    feed(s, "{\"exec-oob\": \"query-version\", \"id\": 8}");
    expect_out(s, "{\"id\": 8, \"error\": {\"class\": \"GenericError\", "
                  "\"desc\": \"The command query-version does not support OOB\"}}\r\n");
    session_close(s);
}
END_TEST

START_TEST(test_split_and_merged_input)
{
    Session *s = session_open();
    g_free(take(s));
    feed(s, NEGOTIATE "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": \"a\"}, \"id\": 1}");
    expect_out(s, "{\"return\": {}}\r\n"
                  "{\"id\": 1, \"error\": {\"class\": \"GenericError\", \"desc\": \"File descriptor named 'a' not found\"}}\r\n");
    feed(s, "{\"execute\":");
    expect_out(s, "");
    feed(s, " \"closefd\", \"arguments\": {\"fdname\": \"b\"}, ");
    feed(s, "\"id\": \"split\"}");
    expect_out(s, "{\"id\": \"split\", \"error\": {\"class\": \"GenericError\", "
                  "\"desc\": \"File descriptor named 'b' not found\"}}\r\n");
    feed(s, "{'execute': 'closefd', 'arguments': {'fdname': 'c'}, 'id': 'single-quoted'}");
    expect_out(s, "{\"id\": \"single-quoted\", \"error\": {\"class\": \"GenericError\", "
                  "\"desc\": \"File descriptor named 'c' not found\"}}\r\n");
    session_close(s);
}
END_TEST

START_TEST(test_parse_errors)
{
    Session *s = session_open();
    g_free(take(s));
    feed(s, NEGOTIATE);
    g_free(take(s));
    feed(s, "{\"execute\": \"stop\", \"id\": 10} garbage {\"execute\": \"stop\", \"id\": 11}");
    char *out = take(s);
    gchar **lines = g_strsplit(out, "\r\n", -1);
    ck_assert_uint_eq(g_strv_length(lines), 6);     /* event, return, error, event, return, "" */
    ck_assert_ptr_nonnull(strstr(lines[0], "\"event\": \"STOP\""));
    ck_assert_str_eq(lines[1], "{\"return\": {}, \"id\": 10}");
    ck_assert(g_str_has_prefix(lines[2], "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON parse error, "));
    ck_assert_ptr_null(strstr(lines[2], "\"id\""));
    ck_assert_ptr_nonnull(strstr(lines[3], "\"event\": \"STOP\""));
    ck_assert_str_eq(lines[4], "{\"return\": {}, \"id\": 11}");
    g_strfreev(lines);
    g_free(out);

    feed(s, "[1, 2]");
    expect_out(s, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input must be a JSON object\"}}\r\n");
    feed(s, "null\n");             /* a keyword ends at the next character */
    expect_out(s, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP input must be a JSON object\"}}\r\n");
    session_close(s);
}
END_TEST

/* Events raised while a command runs come before its response. */
START_TEST(test_event_before_response)
{
    Session *a = session_open(), *b = session_open();
    feed(a, NEGOTIATE);
    feed(b, NEGOTIATE);
    g_free(take(a));
    g_free(take(b));
    feed(a, "{\"execute\": \"stop\"}");
    char *out = take(a);
    ck_assert(g_regex_match_simple("^\\{\"timestamp\": \\{\"seconds\": [0-9]+, \"microseconds\": [0-9]+\\}, "
                                   "\"event\": \"STOP\"\\}\r\n\\{\"return\": \\{\\}\\}\r\n$", out, 0, 0));
    g_free(out);
    out = take(b);          /* the other session sees the event only */
    ck_assert(g_regex_match_simple("^\\{\"timestamp\": .*\"event\": \"STOP\"\\}\r\n$", out, 0, 0));
    g_free(out);
    session_close(a);
    session_close(b);
}
END_TEST

START_TEST(test_pretty)
{
    Session *s = session_open();
    s->mon->pretty = true;
    g_free(take(s));
    feed(s, NEGOTIATE);
    char *out = take(s);
    /* multi-line, every line ending \r\n, and it still parses */
    ck_assert(g_str_has_suffix(out, "\r\n"));
    for (char *p = strchr(out, '\n'); p; p = strchr(p + 1, '\n')) {
        ck_assert_int_eq(p[-1], '\r');
    }
    ck_assert_ptr_nonnull(strstr(out, "\"return\""));
    g_free(out);
    session_close(s);
}
END_TEST

/* --- real sockets --- */

static char *sock_path;

static int client_connect(void)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    g_strlcpy(addr.sun_path, sock_path, sizeof(addr.sun_path));
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    return fd;
}

static void client_send(int fd, const char *text, int pass_fd)
{
    struct iovec iov = { .iov_base = (void *)text, .iov_len = strlen(text) };
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    memset(&control, 0, sizeof(control));
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (pass_fd >= 0) {
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof(control.buf);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
    }
    ck_assert_int_eq(sendmsg(fd, &msg, 0), (ssize_t)strlen(text));
}

/* Run the main loop until `want` lines have arrived on fd (5 s deadline). */
static char *client_read_lines(int fd, int want)
{
    GString *in = g_string_new("");
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    int lines = 0;
    while (lines < want && g_get_monotonic_time() < deadline) {
        g_main_context_iteration(NULL, FALSE);
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, 10) == 1) {
            char buf[4096];
            ssize_t n = read(fd, buf, sizeof(buf));
            if (n <= 0) {
                break;
            }
            g_string_append_len(in, buf, n);
            lines = 0;
            for (char *p = in->str; (p = strstr(p, "\r\n")); p += 2) {
                lines++;
            }
        }
    }
    return g_string_free(in, FALSE);
}

static void spin(int ms)
{
    gint64 end = g_get_monotonic_time() + ms * 1000;
    while (g_get_monotonic_time() < end) {
        g_main_context_iteration(NULL, FALSE);
        g_usleep(1000);
    }
}

static void setup_server(void)
{
    sock_path = g_strdup_printf("/tmp/migvm-test-qmp-%d.sock", (int)getpid());
    ChardevSpec spec = { .kind = CHARDEV_UNIX, .path = sock_path, .server = true };
    Error *err = NULL;
    ck_assert_msg(monitor_server_start(&spec, true, &qmp_server_ops, &err), "%s",
                  err ? error_get_pretty(err) : "");
}

static void teardown_server(void)
{
    monitor_cleanup();
    struct stat st;
    ck_assert_int_eq(stat(sock_path, &st), -1);     /* socket file removed */
    g_free(sock_path);
}

START_TEST(test_socket_clients)
{
    setup_server();
    int a = client_connect(), b = client_connect();
    char *out = client_read_lines(a, 1);
    ck_assert_str_eq(out, GREETING);
    g_free(out);
    out = client_read_lines(b, 1);
    ck_assert_str_eq(out, GREETING);
    g_free(out);

    client_send(a, NEGOTIATE, -1);
    out = client_read_lines(a, 1);
    ck_assert_str_eq(out, "{\"return\": {}}\r\n");
    g_free(out);

    /* b disconnects in the middle of a message: a is unaffected */
    client_send(b, "{\"execute\": \"qmp_capa", -1);
    close(b);
    spin(50);

    /* getfd with SCM_RIGHTS on the same sendmsg */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    client_send(a, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"mig\"}, \"id\": 1}", p[1]);
    close(p[1]);
    out = client_read_lines(a, 1);
    ck_assert_str_eq(out, "{\"return\": {}, \"id\": 1}\r\n");
    g_free(out);
    client_send(a, "{\"execute\": \"getfd\", \"arguments\": {\"fdname\": \"x\"}}", -1);
    out = client_read_lines(a, 1);
    ck_assert_str_eq(out, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"No file descriptor supplied via SCM_RIGHTS\"}}\r\n");
    g_free(out);
    client_send(a, "{\"execute\": \"closefd\", \"arguments\": {\"fdname\": \"mig\"}}", -1);
    out = client_read_lines(a, 1);
    ck_assert_str_eq(out, "{\"return\": {}}\r\n");
    g_free(out);
    /* the server's copy of the pipe's write end is closed: EOF on the read end */
    char c;
    ck_assert_int_eq(read(p[0], &c, 1), 0);
    close(p[0]);

    /* events reach the socket client */
    qapi_event_emit("RESUME", NULL);
    out = client_read_lines(a, 1);
    ck_assert_ptr_nonnull(strstr(out, "\"event\": \"RESUME\"}\r\n"));
    g_free(out);

    close(a);
    spin(20);
    teardown_server();
}
END_TEST

START_TEST(test_socket_close_after_flush)
{
    setup_server();
    int a = client_connect();
    char *out = client_read_lines(a, 1);
    g_free(out);
    /* cleanup flushes what is queued, then closes: the client sees EOF */
    client_send(a, NEGOTIATE, -1);
    spin(50);
    teardown_server();
    out = client_read_lines(a, 2);
    ck_assert_str_eq(out, "{\"return\": {}}\r\n");
    g_free(out);
    close(a);
}
END_TEST

/* A client that never reads is dropped once too much output is queued. */
START_TEST(test_slow_reader_dropped)
{
    setup_server();
    int a = client_connect();
    int small = 4096;
    setsockopt(a, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    spin(20);
    client_send(a, NEGOTIATE, -1);
    spin(20);
    char *big = g_strnfill(1 << 20, 'x');
    for (int i = 0; i < 70; i++) {
        json_object *d = json_object_new_object();
        json_object_object_add(d, "blob", json_object_new_string(big));
        qapi_event_emit("BIG", d);
    }
    g_free(big);
    spin(100);
    /* the connection is gone: reading drains what was sent, then EOF */
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;
    ssize_t n = 1;
    char buf[65536];
    while (n > 0 && g_get_monotonic_time() < deadline) {
        n = read(a, buf, sizeof(buf));
    }
    ck_assert_int_le(n, 0);
    close(a);
    teardown_server();
}
END_TEST

static gpointer emit_thread(gpointer opaque)
{
    for (int i = 0; i < 100; i++) {
        json_object *d = json_object_new_object();
        json_object_object_add(d, "pass", json_object_new_int(i));
        qapi_event_emit("MIGRATION_PASS", d);
    }
    return NULL;
}

/* Events from another thread reach the client, in order. */
START_TEST(test_events_from_thread)
{
    setup_server();
    int a = client_connect();
    g_free(client_read_lines(a, 1));
    client_send(a, NEGOTIATE, -1);
    g_free(client_read_lines(a, 1));
    GThread *t = g_thread_new("emit", emit_thread, NULL);
    char *out = client_read_lines(a, 100);
    g_thread_join(t);
    gchar **lines = g_strsplit(out, "\r\n", -1);
    ck_assert_uint_eq(g_strv_length(lines), 101);
    for (int i = 0; i < 100; i++) {
        char *want = g_strdup_printf("\"data\": {\"pass\": %d}}", i);
        ck_assert(g_str_has_suffix(lines[i], want));
        g_free(want);
    }
    g_strfreev(lines);
    g_free(out);
    close(a);
    teardown_server();
}
END_TEST

START_TEST(test_tcp_listener)
{
    char port[16];
    ChardevSpec spec = { .kind = CHARDEV_TCP, .host = (char *)"127.0.0.1", .port = port, .server = true };
    Error *err = NULL;
    bool listening = false;
    for (int i = 0; i < 50 && !listening; i++) {      /* find a free port */
        g_snprintf(port, sizeof(port), "%d", 20000 + (int)((getpid() * 7 + i * 131) % 40000));
        listening = monitor_server_start(&spec, true, &qmp_server_ops, &err);
        if (!listening) {
            error_free(err);
            err = NULL;
        }
    }
    ck_assert(listening);
    /* the same port again: a clean error */
    ck_assert(!monitor_server_start(&spec, true, &qmp_server_ops, &err));
    ck_assert_ptr_nonnull(err);
    error_free(err);

    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res;
    ck_assert_int_eq(getaddrinfo("127.0.0.1", port, &hints, &res), 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_eq(connect(fd, res->ai_addr, res->ai_addrlen), 0);
    freeaddrinfo(res);
    char *out = client_read_lines(fd, 1);
    ck_assert_str_eq(out, GREETING);
    g_free(out);
    close(fd);
    monitor_cleanup();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("qmp-session");
    TCase *tc = tcase_create("session");
    tcase_add_test(tc, test_greeting_and_negotiation);
    tcase_add_test(tc, test_split_and_merged_input);
    tcase_add_test(tc, test_parse_errors);
    tcase_add_test(tc, test_event_before_response);
    tcase_add_test(tc, test_pretty);
    tcase_add_test(tc, test_socket_clients);
    tcase_add_test(tc, test_socket_close_after_flush);
    tcase_add_test(tc, test_slow_reader_dropped);
    tcase_add_test(tc, test_events_from_thread);
    tcase_add_test(tc, test_tcp_listener);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return check_run_suite(s);
}
