/*
 * Migration URI parsing (mig_address_parse): every scheme, IPv4, IPv6 and
 * host names, ports and their options, file: with ,offset=, and each bad
 * URI with the exact error a user sees (QEMU 7.2's text where QEMU has one).
 */
#include <check.h>
#include <string.h>
#include <sys/un.h>
#include <glib.h>
#include "channel.h"
#include "options.h"
#include "unit-test.h"

/* Stub: the sockets these tests make need no dead-link bound. */
uint32_t migrate_dead_link_timeout_ms(void)
{
    return 0;
}

/* Parse uri, which must succeed; the caller clears the address. */
static MigAddress parse_ok(const char *uri)
{
    MigAddress a;
    Error *err = NULL;
    bool ok = mig_address_parse(uri, false, &a, &err);
    ck_assert_msg(ok, "%s: %s", uri, err ? error_get_pretty(err) : "(no error set)");
    ck_assert_msg(err == NULL, "%s: error set on success", uri);
    return a;
}

/* Parse uri, which must fail with exactly `want` and leave nothing behind. */
static void parse_bad(const char *uri, bool for_incoming, const char *want)
{
    MigAddress a;
    Error *err = NULL;
    bool ok = mig_address_parse(uri, for_incoming, &a, &err);
    ck_assert_msg(!ok, "%s: accepted", uri);
    ck_assert_msg(err != NULL, "%s: refused without an error", uri);
    ck_assert_msg(!strcmp(error_get_pretty(err), want), "%s: got \"%s\", expected \"%s\"", uri,
                  error_get_pretty(err), want);
    ck_assert(!a.host && !a.port && !a.path && !a.command && !a.fdname);
    error_free(err);
}

/* Parse uri and compare the text that messages show for it. */
static void check_text(const char *uri, const char *want)
{
    MigAddress a = parse_ok(uri);
    char *s = mig_address_to_string(&a);
    ck_assert_str_eq(s, want);
    g_free(s);
    mig_address_clear(&a);
}

static void check_tcp(const char *uri, const char *host, const char *port)
{
    MigAddress a = parse_ok(uri);
    ck_assert_int_eq(a.transport, MIG_TRANSPORT_TCP);
    ck_assert_msg(!strcmp(a.host, host), "%s: host '%s', expected '%s'", uri, a.host, host);
    ck_assert_msg(!strcmp(a.port, port), "%s: port '%s', expected '%s'", uri, a.port, port);
    mig_address_clear(&a);
}

START_TEST(test_tcp)
{
    check_tcp("tcp:127.0.0.1:4444", "127.0.0.1", "4444");
    check_tcp("tcp:0.0.0.0:0", "0.0.0.0", "0");
    check_tcp("tcp:localhost:65535", "localhost", "65535");
    check_tcp("tcp:migration.example.org:1", "migration.example.org", "1");
    check_tcp("tcp::4444", "", "4444");                       /* any address (destination) */
    check_tcp("tcp:[::1]:4444", "::1", "4444");
    check_tcp("tcp:[::]:0", "::", "0");
    check_tcp("tcp:[fe80::1:2]:80", "fe80::1:2", "80");
    /* QEMU's ",options" after the port are ignored. */
    check_tcp("tcp:127.0.0.1:4444,ipv4=on", "127.0.0.1", "4444");
    check_tcp("tcp:[::1]:5,ipv6=on,to=9", "::1", "5");
    /* Text for messages: IPv6 in brackets again. */
    check_text("tcp:[::1]:4444", "[::1]:4444");
    check_text("tcp:10.0.0.1:7", "10.0.0.1:7");
}
END_TEST

START_TEST(test_tcp_bad)
{
    parse_bad("tcp:", false, "error parsing address ''");
    parse_bad("tcp:127.0.0.1", false, "error parsing address '127.0.0.1'");
    parse_bad("tcp:localhost", false, "error parsing address 'localhost'");
    parse_bad("tcp:127.0.0.1:", false, "error parsing address '127.0.0.1:'");
    parse_bad("tcp:127.0.0.1:,ipv4=on", false, "error parsing address '127.0.0.1:,ipv4=on'");
    parse_bad("tcp::", false, "error parsing port in address ':'");
    parse_bad("tcp::,ipv4=on", false, "error parsing port in address ':,ipv4=on'");
    parse_bad("tcp:[::1]", false, "error parsing IPv6 address '[::1]'");
    parse_bad("tcp:[::1", false, "error parsing IPv6 address '[::1'");
    parse_bad("tcp:[::1]4444", false, "error parsing IPv6 address '[::1]4444'");
    parse_bad("tcp:[::1]:", false, "error parsing IPv6 address '[::1]:'");
    /* A service name is not looked up: migvm wants a port number. */
    parse_bad("tcp:127.0.0.1:http", false, "error parsing address '127.0.0.1:http'");
    parse_bad("tcp:127.0.0.1:44x4", false, "error parsing address '127.0.0.1:44x4'");
    parse_bad("tcp:127.0.0.1:-1", false, "error parsing address '127.0.0.1:-1'");
}
END_TEST

START_TEST(test_unix)
{
    MigAddress a = parse_ok("unix:/tmp/mig.sock");
    ck_assert_int_eq(a.transport, MIG_TRANSPORT_UNIX);
    ck_assert_str_eq(a.path, "/tmp/mig.sock");
    mig_address_clear(&a);
    a = parse_ok("unix:relative/path:with:colons");
    ck_assert_str_eq(a.path, "relative/path:with:colons");
    mig_address_clear(&a);

    /* The longest path sockaddr_un holds with its terminating NUL. */
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
    char *longest = g_strnfill(max, 'p');
    char *uri = g_strconcat("unix:", longest, NULL);
    a = parse_ok(uri);
    ck_assert_uint_eq(strlen(a.path), max);
    mig_address_clear(&a);
    g_free(uri);

    parse_bad("unix:", false, "invalid Unix socket address");
    char *too_long = g_strnfill(max + 1, 'p');
    uri = g_strconcat("unix:", too_long, NULL);
    char *want = g_strdup_printf("UNIX socket path '%s' is too long", too_long);
    parse_bad(uri, false, want);
    g_free(want);
    g_free(uri);
    g_free(too_long);
    g_free(longest);
}
END_TEST

START_TEST(test_exec_and_fd)
{
    MigAddress a = parse_ok("exec:cat > /tmp/x; echo done");
    ck_assert_int_eq(a.transport, MIG_TRANSPORT_EXEC);
    ck_assert_str_eq(a.command, "cat > /tmp/x; echo done");
    mig_address_clear(&a);
    check_text("exec:cat > /tmp/x; echo done", "exec:cat > /tmp/x; echo done");
    /* An empty command is QEMU's too: /bin/sh -c "" exits at once. */
    a = parse_ok("exec:");
    ck_assert_str_eq(a.command, "");
    mig_address_clear(&a);

    a = parse_ok("fd:migfd");
    ck_assert_int_eq(a.transport, MIG_TRANSPORT_FD);
    ck_assert_str_eq(a.fdname, "migfd");
    mig_address_clear(&a);
    check_text("fd:migfd", "fd:migfd");
    /* The name is looked up later ("File descriptor named '' has not been found"). */
    a = parse_ok("fd:");
    ck_assert_str_eq(a.fdname, "");
    mig_address_clear(&a);
}
END_TEST

START_TEST(test_file)
{
    MigAddress a = parse_ok("file:/tmp/stream.bin");
    ck_assert_int_eq(a.transport, MIG_TRANSPORT_FILE);
    ck_assert_str_eq(a.path, "/tmp/stream.bin");
    ck_assert_uint_eq(a.offset, 0);
    mig_address_clear(&a);

    a = parse_ok("file:/tmp/stream.bin,offset=4096");
    ck_assert_str_eq(a.path, "/tmp/stream.bin");
    ck_assert_uint_eq(a.offset, 4096);
    mig_address_clear(&a);
    a = parse_ok("file:/tmp/s,offset=0x1000");
    ck_assert_uint_eq(a.offset, 0x1000);
    mig_address_clear(&a);
    a = parse_ok("file:/tmp/s,offset=0");
    ck_assert_uint_eq(a.offset, 0);
    mig_address_clear(&a);
    a = parse_ok("file:/tmp/s,offset=18446744073709551615");
    ck_assert_uint_eq(a.offset, UINT64_MAX);
    mig_address_clear(&a);

    parse_bad("file:", false, "file URI needs a path");
    parse_bad("file:,offset=0", false, "file URI needs a path");
    parse_bad("file:/tmp/s,offset=", false, "file URI has bad offset ");
    parse_bad("file:/tmp/s,offset=abc", false, "file URI has bad offset abc");
    parse_bad("file:/tmp/s,offset=12k", false, "file URI has bad offset 12k");
    parse_bad("file:/tmp/s,offset=1,offset=2", false, "file URI has bad offset 1,offset=2");
    parse_bad("file:/tmp/s,offset=18446744073709551616", false,
              "file URI has bad offset 18446744073709551616");
}
END_TEST

START_TEST(test_unknown_scheme)
{
    /* migrate and migrate-incoming word an unknown scheme as QEMU 7.2 does. */
    const char *bad[] = { "", "bogus:x", "TCP:127.0.0.1:1", "tcp", "unix", "rdma:1.2.3.4:5", "/tmp/file" };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        parse_bad(bad[i], false, "Parameter 'uri' expects a valid migration protocol");
        char *want = g_strdup_printf("unknown migration protocol: %s", bad[i]);
        parse_bad(bad[i], true, want);
        g_free(want);
    }
}
END_TEST

static Suite *address_suite(void)
{
    Suite *s = suite_create("channel-address");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_tcp);
    tcase_add_test(tc, test_tcp_bad);
    tcase_add_test(tc, test_unix);
    tcase_add_test(tc, test_exec_and_fd);
    tcase_add_test(tc, test_file);
    tcase_add_test(tc, test_unknown_scheme);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(address_suite());
}
