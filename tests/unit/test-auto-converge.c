/*
 * auto-converge's decision (migration/auto-converge.c) against stubbed
 * options and throttle: no step without the capability or below the
 * threshold; the first step after two high periods goes to
 * cpu-throttle-initial, then +cpu-throttle-increment, capped at
 * max-cpu-throttle; tailslow steps by what the ratio asks for; nothing
 * during block migration's bulk phase.
 */
#include <check.h>
#include "auto-converge.h"
#include "block-migration.h"
#include "cpu-throttle.h"
#include "options.h"
#include "unit-test.h"

static bool cap_on;
static bool bulk;
static MigThrottleParams params;
static int pct;
static int sets;

bool migrate_cap(MigrationCapability cap)
{
    return cap == MIGRATION_CAPABILITY_AUTO_CONVERGE && cap_on;
}

bool block_mig_bulk_active(void)
{
    return bulk;
}

void migrate_throttle_params(MigThrottleParams *out)
{
    *out = params;
}

void cpu_throttle_set(int p)
{
    pct = p < 1 ? 1 : p > 99 ? 99 : p;
    sets++;
}

int cpu_throttle_get_percentage(void)
{
    return pct;
}

static AutoConverge ac;
static uint64_t sent;

static void setup(void)
{
    cap_on = true;
    bulk = false;
    params = (MigThrottleParams){ .trigger_threshold = 50, .initial = 20, .increment = 10, .max = 99 };
    pct = 0;
    sets = 0;
    sent = 0;
    auto_converge_reset(&ac);
}

/* A period in which `xfer` bytes were sent and `dirty` dirtied. */
static void period(uint64_t xfer, uint64_t dirty)
{
    sent += xfer;
    auto_converge_period(&ac, sent, dirty);
}

START_TEST(test_capability_off)
{
    cap_on = false;
    for (int i = 0; i < 6; i++) {
        period(100, 1000);
    }
    ck_assert_int_eq(sets, 0);
}
END_TEST

START_TEST(test_block_bulk_phase)
{
    bulk = true;
    for (int i = 0; i < 6; i++) {
        period(100, 1000);
    }
    ck_assert_int_eq(sets, 0);
    bulk = false;
    period(100, 1000);
    period(100, 1000);
    ck_assert_int_eq(pct, 20);
}
END_TEST

START_TEST(test_below_threshold)
{
    for (int i = 0; i < 6; i++) {
        period(1000, 500);      /* exactly 50 %: not above it */
    }
    ck_assert_int_eq(sets, 0);
}
END_TEST

START_TEST(test_steps)
{
    period(1000, 501);
    ck_assert_int_eq(pct, 0);           /* one high period is not enough */
    period(1000, 501);
    ck_assert_int_eq(pct, 20);          /* initial */
    period(1000, 100);                  /* low periods do not reset the count */
    period(1000, 900);
    ck_assert_int_eq(pct, 20);
    period(1000, 900);
    ck_assert_int_eq(pct, 30);          /* +increment */
    for (int i = 0; i < 20; i++) {
        period(1000, 900);
    }
    ck_assert_int_eq(pct, 99);          /* max-cpu-throttle */
    params.max = 45;
    pct = 40;
    period(1000, 900);
    period(1000, 900);
    ck_assert_int_eq(pct, 45);
}
END_TEST

START_TEST(test_tailslow)
{
    params.tailslow = true;
    params.increment = 30;
    period(1000, 600);
    period(1000, 600);
    ck_assert_int_eq(pct, 20);
    /* cpu 80 %, ideal 80 * 500/600 = 66.7: +13, less than the increment. */
    period(1000, 600);
    period(1000, 600);
    ck_assert_int_eq(pct, 33);
    /* Far above the threshold: the increment caps the step. */
    period(1000, 100000);
    period(1000, 100000);
    ck_assert_int_eq(pct, 63);
}
END_TEST

START_TEST(test_reset)
{
    period(1000, 900);
    auto_converge_reset(&ac);
    sent = 0;
    period(1000, 900);
    ck_assert_int_eq(sets, 0);          /* the count starts again */
}
END_TEST

static Suite *auto_converge_suite(void)
{
    Suite *s = suite_create("auto-converge");
    TCase *tc = tcase_create("auto-converge");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_capability_off);
    tcase_add_test(tc, test_block_bulk_phase);
    tcase_add_test(tc, test_below_threshold);
    tcase_add_test(tc, test_steps);
    tcase_add_test(tc, test_tailslow);
    tcase_add_test(tc, test_reset);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(auto_converge_suite());
}
