/*
 * Unit tests for monitor/hmp-parse.c: the args_type language, words,
 * expressions and sizes, with the messages QEMU 7.2 prints.
 */
#include <errno.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../../monitor/hmp-parse.h"
#include "unit-test.h"

#define MIGRATE_ARGS "detach:-d,blk:-b,inc:-i,resume:-r,uri:s"

/* Parse and expect success. */
static HmpArgs *ok_parse(const char *name, const char *types, const char *line)
{
    g_autoptr(GString) err = g_string_new(NULL);
    HmpArgs *a = hmp_args_parse(name, types, line, err);

    ck_assert_msg(a != NULL, "'%s' failed: %s", line, err->str);
    ck_assert_str_eq(err->str, "");
    return a;
}

/* Parse and expect failure with exactly `msg`. */
static void bad_parse(const char *name, const char *types, const char *line, const char *msg)
{
    g_autoptr(GString) err = g_string_new(NULL);
    HmpArgs *a = hmp_args_parse(name, types, line, err);

    ck_assert_msg(a == NULL, "'%s' parsed", line);
    ck_assert_str_eq(err->str, msg);
}

START_TEST(test_string_words)
{
    HmpArgs *a = ok_parse("getfd", "fdname:s", "  mig  ");
    ck_assert_str_eq(hmp_args_str(a, "fdname"), "mig");
    hmp_args_free(a);

    a = ok_parse("migrate", MIGRATE_ARGS, "-d \"exec:cat > /tmp/vm.mig\"");
    ck_assert_str_eq(hmp_args_str(a, "uri"), "exec:cat > /tmp/vm.mig");
    ck_assert(hmp_args_bool(a, "detach"));
    ck_assert(!hmp_args_bool(a, "blk"));
    hmp_args_free(a);

    a = ok_parse("closefd", "fdname:s", "\"a\\nb\\r\\\\\\'\\\"\"");
    ck_assert_str_eq(hmp_args_str(a, "fdname"), "a\nb\r\\'\"");
    hmp_args_free(a);
}
END_TEST

START_TEST(test_string_errors)
{
    bad_parse("getfd", "fdname:s", "", "getfd: string expected\n");
    bad_parse("getfd", "fdname:s", "   ", "getfd: string expected\n");
    bad_parse("getfd", "fdname:s", "\"a b", "unterminated string\ngetfd: string expected\n");
    bad_parse("getfd", "fdname:s", "\"a\\qb\"",
              "unsupported escape code: '\\q'\ngetfd: string expected\n");
    bad_parse("getfd", "fdname:s", "\"a b\" c", "getfd: extraneous characters at the end of line\n");
    bad_parse("migrate_set_parameter", "parameter:s,value:s", "max-bandwidth",
              "migrate_set_parameter: string expected\n");
}
END_TEST

START_TEST(test_optional_and_rest)
{
    HmpArgs *a = ok_parse("help|?", "name:S?", "");
    ck_assert(!hmp_args_has(a, "name"));
    ck_assert_ptr_null(hmp_args_str(a, "name"));
    hmp_args_free(a);

    a = ok_parse("help|?", "name:S?", "  info   migrate ");
    ck_assert_str_eq(hmp_args_str(a, "name"), "info   migrate ");
    hmp_args_free(a);

    a = ok_parse("info", "item:s?", "");
    ck_assert(!hmp_args_has(a, "item"));
    hmp_args_free(a);

    bad_parse("x", "rest:S", "  ", "x: string expected\n");
}
END_TEST

START_TEST(test_no_args_extraneous)
{
    HmpArgs *a = ok_parse("stop|s", "", "   ");
    hmp_args_free(a);
    bad_parse("stop|s", "", "x", "stop|s: extraneous characters at the end of line\n");
    bad_parse("stop|s", NULL, " now", "stop|s: extraneous characters at the end of line\n");
}
END_TEST

START_TEST(test_bool)
{
    HmpArgs *a = ok_parse("migrate_set_capability", "capability:s,state:b", "xbzrle on");
    ck_assert_str_eq(hmp_args_str(a, "capability"), "xbzrle");
    ck_assert(hmp_args_has(a, "state"));
    ck_assert(hmp_args_bool(a, "state"));
    hmp_args_free(a);

    a = ok_parse("migrate_set_capability", "capability:s,state:b", "xbzrle   off  ");
    ck_assert(!hmp_args_bool(a, "state"));
    hmp_args_free(a);

    bad_parse("migrate_set_capability", "capability:s,state:b", "xbzrle maybe", "Expected 'on' or 'off'\n");
    bad_parse("migrate_set_capability", "capability:s,state:b", "xbzrle", "Expected 'on' or 'off'\n");
    bad_parse("migrate_set_capability", "capability:s,state:b", "xbzrle onn", "Expected 'on' or 'off'\n");
    bad_parse("migrate_set_capability", "capability:s,state:b", "xbzrle on x",
              "migrate_set_capability: extraneous characters at the end of line\n");
}
END_TEST

START_TEST(test_flags_in_order)
{
    HmpArgs *a = ok_parse("migrate", MIGRATE_ARGS, "-d -r tcp:h:1");
    ck_assert(hmp_args_bool(a, "detach"));
    ck_assert(hmp_args_bool(a, "resume"));
    ck_assert(!hmp_args_bool(a, "inc"));
    ck_assert_str_eq(hmp_args_str(a, "uri"), "tcp:h:1");
    hmp_args_free(a);

    a = ok_parse("migrate", MIGRATE_ARGS, "-i unix:/x");
    ck_assert(!hmp_args_bool(a, "detach"));
    ck_assert(hmp_args_bool(a, "inc"));
    hmp_args_free(a);

    /* declared order only: -r before -d leaves "-d" as the uri */
    bad_parse("migrate", MIGRATE_ARGS, "-r -d uri", "migrate: extraneous characters at the end of line\n");
    /* combined flags do not work */
    bad_parse("migrate", MIGRATE_ARGS, "-dr uri", "migrate: extraneous characters at the end of line\n");
    bad_parse("migrate", MIGRATE_ARGS, "-x foo", "migrate: unsupported option -x\n");
    bad_parse("migrate", MIGRATE_ARGS, "", "migrate: string expected\n");
    bad_parse("migrate", MIGRATE_ARGS, "-d", "migrate: string expected\n");
}
END_TEST

START_TEST(test_integers)
{
    HmpArgs *a = ok_parse("pmemsave", "val:l,size:i,filename:s", "0x1000 4096 \"/tmp/f\"");
    ck_assert_int_eq(hmp_args_int(a, "val"), 0x1000);
    ck_assert_int_eq(hmp_args_int(a, "size"), 4096);
    ck_assert_str_eq(hmp_args_str(a, "filename"), "/tmp/f");
    hmp_args_free(a);

    a = ok_parse("pmemsave", "val:l,size:i,filename:s", "(1+2)*3 8/2 f");
    ck_assert_int_eq(hmp_args_int(a, "val"), 9);
    ck_assert_int_eq(hmp_args_int(a, "size"), 4);
    hmp_args_free(a);

    a = ok_parse("x", "n:i?", "");
    ck_assert(!hmp_args_has(a, "n"));
    hmp_args_free(a);

    bad_parse("pmemsave", "val:l,size:i,filename:s", "", "unexpected end of expression\n");
    bad_parse("pmemsave", "val:l,size:i,filename:s", "0 10", "pmemsave: string expected\n");
    bad_parse("pmemsave", "val:l,size:i,filename:s", "0x 10 f", "invalid char 'x' in expression\n");
    bad_parse("pmemsave", "val:l,size:i,filename:s", "abc 10 f", "invalid char 'a' in expression\n");
    bad_parse("pmemsave", "val:l,size:i,filename:s", "0 10 /n/x", "invalid char 'n' in expression\n");
    bad_parse("pmemsave", "val:l,size:i,filename:s", "1+ 2", "unexpected end of expression\n");
    bad_parse("pmemsave", "val:l,size:i,filename:s", "1/0 2 x", "division by zero\n");
    bad_parse("pmemsave", "val:l,size:i,filename:s", "99999999999999999999999 1 x", "number too large\n");
    bad_parse("pmemsave", "val:l,size:i,filename:s", "1 0x100000000 x",
              "'pmemsave' has failed: integer is for 32-bit values\n");
    bad_parse("pmemsave", "val:l,size:i,filename:s", "(1 2 x", "')' expected\n");
}
END_TEST

START_TEST(test_expr_operators)
{
    struct { const char *in; int64_t v; } cases[] = {
        { "1+2*3", 7 }, { "-5", -5 }, { "~0", -1 }, { "7%4", 3 }, { "6&3", 2 }, { "6|1", 7 },
        { "6^3", 5 }, { "2*3|1", 6 }, { "010", 8 }, { "0x10", 16 }, { " 4 - 1 ", 3 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GString) err = g_string_new(NULL);
        const char *p = cases[i].in;
        int64_t v = 0;
        ck_assert_msg(hmp_eval_expr(&p, &v, err), "%s: %s", cases[i].in, err->str);
        ck_assert_msg(v == cases[i].v, "%s = %" G_GINT64_FORMAT, cases[i].in, v);
        ck_assert_str_eq(p, "");
    }
}
END_TEST

START_TEST(test_sizes)
{
    struct { const char *in; uint64_t unit; bool ok; uint64_t v; } cases[] = {
        { "100", 1 << 20, true, 100ULL << 20 },
        { "100M", 1 << 20, true, 100ULL << 20 },
        { "1G", 1 << 20, true, 1ULL << 30 },
        { "1K", 1 << 20, true, 1024 },
        { "1k", 1 << 20, true, 1024 },
        { "1B", 1 << 20, true, 1 },
        { "1.5", 1 << 20, true, 1572864 },
        { "1.5M", 1, true, 1572864 },
        { "1.M", 1, true, 1 << 20 },
        { "5k", 1, true, 5120 },
        { " 5", 1, true, 5 },
        { "0x10", 1, true, 16 },
        { "2T", 1, true, 2ULL << 40 },
        { "1P", 1, true, 1ULL << 50 },
        { "15E", 1, true, 15ULL << 60 },
        { "1.5", 1, false, 0 },
        { "1.5B", 1 << 20, false, 0 },
        { "-1", 1 << 20, false, 0 },
        { "12Q", 1 << 20, false, 0 },
        { "16E", 1, false, 0 },
        { "", 1, false, 0 },
        { "abc", 1, false, 0 },
        { "5 ", 1, false, 0 },
        { "0x", 1, false, 0 },
        { "0x1.5M", 1, false, 0 },
        { "99999999999999999999", 1, false, 0 },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        uint64_t v = 0;
        bool ok = hmp_parse_size(cases[i].in, cases[i].unit, &v) == 0;
        ck_assert_msg(ok == cases[i].ok, "'%s' ok=%d", cases[i].in, ok);
        if (ok) {
            ck_assert_msg(v == cases[i].v, "'%s' = %" G_GUINT64_FORMAT, cases[i].in, v);
        }
    }
    /* QEMU 7.2 tells "out of range" (the digits or the scaled value do not
     * fit 64 bits, even after a minus sign) from "not a size". */
    static const struct { const char *in; int r; } errors[] = {
        { "16E", -ERANGE }, { "99999999999999999999", -ERANGE }, { "18446744073709551616", -ERANGE },
        { "-18446744073709551616", -ERANGE }, { "17179869184G", -ERANGE },
        { "-1", -EINVAL }, { "-18446744073709551615", -EINVAL }, { "-1k", -EINVAL }, { "1e3", -EINVAL },
        { "abc", -EINVAL }, { "", -EINVAL }, { "1.5", -EINVAL },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(errors); i++) {
        uint64_t v = 0;
        int r = hmp_parse_size(errors[i].in, 1, &v);
        ck_assert_msg(r == errors[i].r, "'%s': %d, expected %d", errors[i].in, r, errors[i].r);
    }
    uint64_t v = 0;
    ck_assert_int_eq(hmp_parse_size("+5k", 1, &v), 0);
    ck_assert(v == 5120);
    ck_assert_int_eq(hmp_parse_size("18446744073709551615", 1, &v), 0);
    ck_assert(v == UINT64_MAX);
}
END_TEST

START_TEST(test_scalars)
{
    bool b = false;
    uint64_t u = 0;

    ck_assert(hmp_parse_bool_word("yes", &b) && b);
    ck_assert(hmp_parse_bool_word("n", &b) && !b);
    ck_assert(hmp_parse_bool_word("true", &b) && b);
    ck_assert(hmp_parse_bool_word("off", &b) && !b);
    ck_assert(!hmp_parse_bool_word("maybe", &b));
    ck_assert(!hmp_parse_bool_word("", &b));

    ck_assert(hmp_parse_uint64("300", &u) && u == 300);
    ck_assert(hmp_parse_uint64("0x10", &u) && u == 16);
    ck_assert(hmp_parse_uint64("-1", &u) && u == UINT64_MAX);
    ck_assert(!hmp_parse_uint64("3x", &u));
    ck_assert(!hmp_parse_uint64("", &u));
    ck_assert(!hmp_parse_uint64("99999999999999999999999", &u));
}
END_TEST

START_TEST(test_split_words)
{
    g_autoptr(GString) err = g_string_new(NULL);
    GPtrArray *w = hmp_split_words("  info  \"a b\" c ", err);

    ck_assert_ptr_nonnull(w);
    ck_assert_int_eq(w->len, 3);
    ck_assert_str_eq(g_ptr_array_index(w, 1), "a b");
    g_ptr_array_free(w, TRUE);

    ck_assert_ptr_null(hmp_split_words("\"open", err));
    ck_assert_str_eq(err->str, "unterminated string\n");
}
END_TEST

static Suite *hmp_parse_suite(void)
{
    Suite *s = suite_create("hmp-parse");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_string_words);
    tcase_add_test(tc, test_string_errors);
    tcase_add_test(tc, test_optional_and_rest);
    tcase_add_test(tc, test_no_args_extraneous);
    tcase_add_test(tc, test_bool);
    tcase_add_test(tc, test_flags_in_order);
    tcase_add_test(tc, test_integers);
    tcase_add_test(tc, test_expr_operators);
    tcase_add_test(tc, test_sizes);
    tcase_add_test(tc, test_scalars);
    tcase_add_test(tc, test_split_words);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(hmp_parse_suite());
}
