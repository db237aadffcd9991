/*
 * The convergence controller's decisions (migration/converge.c) against
 * stubbed options, throttle, events and flight recorder, pass by pass: a
 * stall said once and at once, the throttle from cpu-throttle-initial up by
 * the increment every half second within max-cpu-throttle, none while off or
 * with auto-converge; a converging guest gets a predicted completion; below
 * the limit one more pass while it halves what remains, then the switch-over.
 */
#include <check.h>
#include <string.h>
#include "block-migration.h"
#include "clock.h"
#include "converge.h"
#include "cpu-throttle.h"
#include "history.h"
#include "memory.h"
#include "options.h"
#include "qapi-events.h"
#include "unit-test.h"

#define MS 1000000LL
#define MIB (1024 * 1024ULL)

static bool controller_on, auto_converge;
static MigThrottleParams params;
static int pct, stops;
static unsigned stalls;
static int64_t stall_pass, stall_dirty, stall_bw;
static GPtrArray *actions;       /* XMigrationConvergenceAction names, in order */
static GString *notes;

bool migrate_cap(MigrationCapability cap)
{
    return cap == MIGRATION_CAPABILITY_AUTO_CONVERGE && auto_converge;
}

bool migrate_convergence_controller(void)
{
    return controller_on;
}

uint64_t migrate_downtime_limit_ms(void)
{
    return 300;
}

void migrate_throttle_params(MigThrottleParams *out)
{
    *out = params;
}

bool block_mig_bulk_active(void)
{
    return false;
}

void cpu_throttle_set(int p)
{
    pct = p;
}

void cpu_throttle_stop(void)
{
    pct = 0;
    stops++;
}

int cpu_throttle_get_percentage(void)
{
    return pct;
}

void mig_history_pass_note(const char *note)
{
    g_string_append_printf(notes, "%s|", note);
}

void qapi_event_send_x_migration_not_converging(int64_t pass, int64_t dirty_rate, int64_t bandwidth,
                                                int64_t remaining)
{
    (void)remaining;
    stalls++;
    stall_pass = pass;
    stall_dirty = dirty_rate;
    stall_bw = bandwidth;
}

void qapi_event_send_x_migration_convergence(XMigrationConvergenceAction action, int64_t pass, int64_t throttle,
                                             int64_t remaining, int64_t expected_downtime, const char *reason)
{
    (void)pass, (void)throttle, (void)remaining, (void)expected_downtime, (void)reason;
    g_ptr_array_add(actions, (gpointer)XMigrationConvergenceAction_str(action));
}

/* A migration of `ram` pages at 128 MiB/s: t is its clock, pages/bytes what it sent. */
static ConvergeSample smp;
static uint64_t pass;

static void setup(void)
{
    controller_on = true;
    auto_converge = false;
    params = (MigThrottleParams){ .trigger_threshold = 50, .initial = 20, .increment = 10, .max = 99 };
    pct = stops = 0;
    stalls = 0;
    actions = g_ptr_array_new();
    notes = g_string_new("");
    smp = (ConvergeSample){ .ns = now_ns() };      /* query-migrate counts from the real clock */
    pass = 1;
    converge_start(&smp);
}

static void teardown(void)
{
    converge_stop();
    g_ptr_array_free(actions, true);
    g_string_free(notes, true);
}

/* One pass of `ms` milliseconds sending `sent` pages; the guest dirtied `dirtied`, `left` pages remain. */
static void a_pass(int64_t ms, uint64_t sent, uint64_t dirtied, uint64_t left)
{
    smp.ns += ms * MS;
    smp.pages_sent += sent;
    smp.stream_bytes += sent * MIGVM_PAGE_SIZE;
    converge_pass(++pass, dirtied, left * MIGVM_PAGE_SIZE, &smp);
}

static bool has_action(const char *name)
{
    for (guint i = 0; i < actions->len; i++) {
        if (!strcmp(actions->pdata[i], name)) {
            return true;
        }
    }
    return false;
}

START_TEST(test_stall_then_throttle)
{
    /* 256 MiB sent in 2 s, all of it dirtied again meanwhile. */
    a_pass(2000, 65536, 65536, 65536);
    ck_assert_uint_eq(stalls, 1);
    ck_assert_int_eq(stall_pass, 2);
    ck_assert_int_eq(stall_dirty, stall_bw);
    ck_assert_int_eq(pct, 20);                    /* cpu-throttle-initial at once */
    XMigrationConvergence *c = converge_query();
    ck_assert(c && !c->converging && !c->has_predicted_completion && strstr(c->reason, "dirtied 100%"));
    qapi_free_XMigrationConvergence(c);
    /* Progressive: +increment each half second, towards the target. */
    converge_tick(smp.ns + 100 * MS);
    ck_assert_int_eq(pct, 20);
    converge_tick(smp.ns + 500 * MS);
    ck_assert_int_eq(pct, 30);
    converge_tick(smp.ns + 600 * MS);
    ck_assert_int_eq(pct, 30);
    for (int i = 2; i < 20; i++) {
        converge_tick(smp.ns + i * 500 * MS);
    }
    ck_assert_int_eq(pct, 70);                    /* the target for a third left per pass, from ratio 1 */
    /* Still all dirtied at 70 %: the target rises, never past max-cpu-throttle. */
    params.max = 85;
    a_pass(2000, 65536, 65536, 65536);
    ck_assert_uint_eq(stalls, 1);                 /* said once */
    for (int i = 1; i < 20; i++) {
        converge_tick(smp.ns + i * 500 * MS);
    }
    ck_assert_int_eq(pct, 85);
    ck_assert(strstr(notes->str, "not-converging: ") && strstr(notes->str, "throttle 20%|throttle 30%"));
}
END_TEST

START_TEST(test_off)
{
    controller_on = false;
    converge_start(&smp);
    a_pass(2000, 65536, 65536, 65536);
    converge_tick(smp.ns + 5000 * MS);
    ck_assert_uint_eq(stalls, 0);
    ck_assert_int_eq(pct, 0);
    ck_assert_ptr_null(converge_query());
    ck_assert(!converge_continue(10 * MIB, 128 * MIB / 1000.0));
    ck_assert_uint_eq(actions->len, 0);
}
END_TEST

START_TEST(test_switched_off_midway)
{
    a_pass(2000, 65536, 65536, 65536);
    ck_assert_int_eq(pct, 20);
    controller_on = false;
    a_pass(2000, 65536, 65536, 65536);
    ck_assert_int_eq(pct, 0);                     /* its throttle given back */
    ck_assert_int_eq(stops, 1);
    ck_assert_ptr_null(converge_query());
}
END_TEST

START_TEST(test_auto_converge_owns_the_throttle)
{
    auto_converge = true;
    a_pass(2000, 65536, 65536, 65536);
    ck_assert_uint_eq(stalls, 1);                 /* still said */
    converge_tick(smp.ns + 5000 * MS);
    ck_assert_int_eq(pct, 0);
}
END_TEST

START_TEST(test_converging)
{
    /* A quarter of what was sent dirtied again: converging, with a prediction. */
    a_pass(2000, 65536, 16384, 16384);
    ck_assert_uint_eq(stalls, 0);
    ck_assert_int_eq(pct, 0);
    XMigrationConvergence *c = converge_query();
    ck_assert(c && c->converging && c->has_predicted_completion);
    ck_assert_int_gt(c->predicted_completion, 0);
    ck_assert_int_lt(c->predicted_completion, 3000);     /* the pass ends 2 s ahead, then 0.5 s */
    qapi_free_XMigrationConvergence(c);
}
END_TEST

START_TEST(test_switch_over_at_the_minimum)
{
    double rate = 128 * MIB / 1000.0;             /* bytes per ms */
    /* 20 % dirtied again: what fits the limit is halved by another pass. */
    a_pass(2000, 65536, 13107, 8192);
    ck_assert(converge_continue(32 * MIB, rate));
    /* That pass left 20 % as predicted: once more. */
    a_pass(250, 8192, 1638, 1638);
    ck_assert(converge_continue(6 * MIB + MIB / 2, rate));
    /* Now it left 90 %: this is the minimum. */
    a_pass(50, 1638, 1474, 1474);
    ck_assert(!converge_continue(6 * MIB, rate));
    ck_assert(has_action("continue") && has_action("switch-over"));
    ck_assert(strstr(notes->str, "switch-over: "));
}
END_TEST

START_TEST(test_switch_over_when_a_pass_gains_little)
{
    double rate = 128 * MIB / 1000.0;
    a_pass(2000, 65536, 39321, 8192);             /* 60 % dirtied again */
    ck_assert(!converge_continue(32 * MIB, rate));
    a_pass(2000, 65536, 6553, 8192);              /* 10 %, but 4 ms of downtime left */
    ck_assert(!converge_continue(512 * 1024, rate));
}
END_TEST

static Suite *converge_suite(void)
{
    Suite *s = suite_create("converge");
    TCase *tc = tcase_create("converge");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_stall_then_throttle);
    tcase_add_test(tc, test_off);
    tcase_add_test(tc, test_switched_off_midway);
    tcase_add_test(tc, test_auto_converge_owns_the_throttle);
    tcase_add_test(tc, test_converging);
    tcase_add_test(tc, test_switch_over_at_the_minimum);
    tcase_add_test(tc, test_switch_over_when_a_pass_gains_little);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(converge_suite());
}
