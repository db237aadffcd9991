/*
 * Page sampling for dirty rate estimates (migration/page-sample.c): how many
 * pages each block gets, that a changed page is seen once and an unchanged
 * one never, and the MiB/s conversion.
 */
#include <check.h>
#include <string.h>
#include "dirtyrate.h"
#include "memory.h"
#include "vm.h"
#include "unit-test.h"

bool bql_locked(void)
{
    return true;
}

#define MiB (1024ULL * 1024)

static void teardown(void)
{
    ram_blocks_free_all();
}

static RAMBlock *add_block(const char *name, uint64_t gpa, uint64_t size)
{
    Error *err = NULL;
    RAMBlock *b = ram_block_add(name, gpa, size, &err);

    ck_assert_ptr_null(err);
    return b;
}

START_TEST(test_counts_and_changes)
{
    RAMBlock *big = add_block("big", 0, 64 * MiB);
    add_block("tiny", 64 * MiB, 4096);
    uint64_t sampled;

    /* 16384 per GiB: 1024 pages of the 64 MiB block, and at least one of
     * the one-page block. */
    PageSample *s = page_sample_new(16384, 1);
    ck_assert_uint_eq(page_sample_ram_bytes(s), 64 * MiB + 4096);
    ck_assert_uint_eq(page_sample_changed(s, &sampled), 0);
    ck_assert_uint_eq(sampled, 1025);

    /* Rewrite every page of the big block: all of its samples change,
     * once; the same bytes written again change nothing. */
    for (uint64_t p = 0; p < big->npages; p++) {
        big->host[p * 4096 + 4095] ^= 1;
    }
    ck_assert_uint_eq(page_sample_changed(s, &sampled), 1024);
    ck_assert_uint_eq(page_sample_changed(s, &sampled), 0);
    memset(big->host, 0, 8 * MiB);          /* byte 4095 of those pages was 1 */
    uint64_t changed = page_sample_changed(s, &sampled);
    /* An eighth of the block: about 128 of 1024 samples. */
    ck_assert_msg(changed > 80 && changed < 180, "changed %llu", (unsigned long long)changed);
    page_sample_free(s);
}
END_TEST

START_TEST(test_rate_units)
{
    ck_assert_int_eq(dirty_rate_mib_per_s(25600, 1000), 100);     /* 100 MiB in 1 s */
    ck_assert_int_eq(dirty_rate_mib_per_s(25600, 2000), 50);
    ck_assert_int_eq(dirty_rate_mib_per_s(25600, 0), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("page-sample");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_counts_and_changes);
    tcase_add_test(tc, test_rate_units);
    suite_add_tcase(s, tc);
    return check_run_suite(s);
}
