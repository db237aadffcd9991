/*
 * What every unit test's main() and output capture would otherwise write
 * again (tests only, header-only so no link rule changes).
 */
#ifndef TESTS_UNIT_UNIT_TEST_H
#define TESTS_UNIT_UNIT_TEST_H

#include <check.h>
#include <glib.h>

/* Run every case of s (libcheck frees it with the runner); the exit status for main(). */
static inline int check_run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);

    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

/* An output callback that appends to the GString in opaque. */
static inline void gstring_sink(void *opaque, const char *buf, size_t len)
{
    g_string_append_len(opaque, buf, len);
}

#endif
