/*
 * The flight recorder's bookkeeping (migration/history.c) without a VM:
 * pass counters are differences of the cumulative ones, the kept passes are
 * bounded (first HEAD, last TAIL, the rest counted), downtime phases add up
 * to the downtime, and at most MIG_HISTORY_RECORDS records are kept.
 */
#include "history.h"
#include "clock.h"
#include "qapi-commands.h"
#include "unit-test.h"

static uint64_t disk_bytes;

static uint64_t disk_counter(void)
{
    return disk_bytes;
}

static MigrationRecord *last_record(MigrationRecordList **all)
{
    Error *err = NULL;
    *all = qmp_x_query_migration_history(&err);
    ck_assert_ptr_null(err);
    ck_assert_ptr_nonnull(*all);
    MigrationRecordList *l = *all;
    while (l->next) {
        l = l->next;
    }
    return l->value;
}

START_TEST(test_passes_bounded_and_summed)
{
    mig_history_reset();
    mig_history_set_disk_counter(disk_counter);
    mig_history_source_begin("unix:/nowhere");
    const unsigned n = 200;
    MigHistoryCounters c = { .stream_bytes = 100 };
    for (unsigned i = 1; i <= n; i++) {
        mig_history_pass(i, 10 * i, &c);
        c.stream_bytes += 1000 + i;
        c.normal_pages += i;
        c.zero_pages += 2;
        disk_bytes += 7;
    }
    int64_t t0 = now_ns();
    mig_history_downtime_start(t0);
    for (int p = MIG_PHASE_STOP; p < MIG_PHASE__MAX; p++) {
        mig_history_phase_end(p, t0 + 1234567LL * (p + 1) + 999);     /* odd sub-microsecond rests */
    }
    mig_history_source_close(&c, NULL);
    mig_history_status(true, MIGRATION_STATUS_COMPLETED);

    MigrationRecordList *all;
    MigrationRecord *r = last_record(&all);
    ck_assert_int_eq(r->status, MIGRATION_STATUS_COMPLETED);
    ck_assert_int_eq(r->transferred, (int64_t)c.stream_bytes);
    ck_assert_int_eq(r->passes_omitted, n - MIG_HISTORY_HEAD_PASSES - MIG_HISTORY_TAIL_PASSES);
    unsigned kept = 0;
    for (MigrationPassRecordList *l = r->passes; l; l = l->next, kept++) {
        MigrationPassRecord *p = l->value;
        uint64_t expect_pass = kept < MIG_HISTORY_HEAD_PASSES ? kept + 1
                               : n - MIG_HISTORY_HEAD_PASSES - MIG_HISTORY_TAIL_PASSES + kept + 1;
        ck_assert_int_eq(p->pass, (int64_t)expect_pass);
        /* Pass 1 counts from byte 0 (the header and setup). */
        ck_assert_int_eq(p->bytes, (int64_t)(1000 + expect_pass + (expect_pass == 1 ? 100 : 0)));
        ck_assert_int_eq(p->normal_pages, (int64_t)expect_pass);
        ck_assert_int_eq(p->zero_pages, 2);
        ck_assert_int_eq(p->disk_bytes, 7);
        ck_assert_int_eq(p->dirty_pages, (int64_t)(10 * expect_pass));
        ck_assert(p->stopped == false);
    }
    ck_assert_uint_eq(kept, MIG_HISTORY_HEAD_PASSES + MIG_HISTORY_TAIL_PASSES);
    int64_t sum_us = 0, phases = 0;
    for (MigrationPhaseRecordList *l = r->phases; l; l = l->next, phases++) {
        sum_us += l->value->duration_us;
    }
    ck_assert_int_eq(phases, MIG_PHASE__MAX);
    ck_assert_int_eq(r->has_downtime, true);
    ck_assert_int_eq(sum_us / 1000, r->downtime);
    ck_assert_int_eq(sum_us, (1234567LL * MIG_PHASE__MAX + 999) / 1000);
    qapi_free_MigrationRecordList(all);
    mig_history_set_disk_counter(NULL);
}
END_TEST

START_TEST(test_records_bounded)
{
    mig_history_reset();
    for (int i = 0; i < MIG_HISTORY_RECORDS + 5; i++) {
        mig_history_source_begin("exec:true");
        Error *err = NULL;
        error_setg(&err, "failure %d", i);
        MigHistoryCounters none = { 0 };
        mig_history_source_close(&none, err);
        error_free(err);
        mig_history_status(true, MIGRATION_STATUS_FAILED);
    }
    mig_history_dest_begin();
    mig_history_dest_loaded(4242, NULL);
    mig_history_status(false, MIGRATION_STATUS_COMPLETED);
    mig_history_dest_close();

    MigrationRecordList *all;
    MigrationRecord *last = last_record(&all);
    ck_assert_int_eq(last->role, MIGRATION_HISTORY_ROLE_DESTINATION);
    ck_assert_int_eq(last->transferred, 4242);
    int count = 0;
    for (MigrationRecordList *l = all; l; l = l->next, count++) {
        ck_assert_int_eq(l->value->id, 7 + count);      /* 14 recorded, the last 8 kept */
        if (l->next) {
            g_autofree char *want = g_strdup_printf("failure %d", (int)l->value->id - 1);
            ck_assert_str_eq(l->value->reason, want);
            ck_assert_int_eq(l->value->status, MIGRATION_STATUS_FAILED);
        }
    }
    ck_assert_int_eq(count, MIG_HISTORY_RECORDS);
    qapi_free_MigrationRecordList(all);
    mig_history_reset();
}
END_TEST

START_TEST(test_cancel_reason)
{
    mig_history_reset();
    mig_history_source_begin("tcp:127.0.0.1:1");
    mig_history_status(true, MIGRATION_STATUS_ACTIVE);
    mig_history_status(true, MIGRATION_STATUS_CANCELLING);
    MigHistoryCounters none = { 0 };
    mig_history_source_close(&none, NULL);
    mig_history_status(true, MIGRATION_STATUS_CANCELLED);
    MigrationRecordList *all;
    MigrationRecord *r = last_record(&all);
    ck_assert_int_eq(r->status, MIGRATION_STATUS_CANCELLED);
    ck_assert_str_eq(r->reason, "cancelled in state active");
    ck_assert(!r->has_downtime);
    qapi_free_MigrationRecordList(all);
    mig_history_reset();
}
END_TEST

static Suite *history_suite(void)
{
    Suite *s = suite_create("migration-history");
    TCase *tc = tcase_create("check");
    tcase_add_test(tc, test_passes_bounded_and_summed);
    tcase_add_test(tc, test_records_bounded);
    tcase_add_test(tc, test_cancel_reason);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(history_suite());
}
