/*
 * Pages never populated (system/ram-untouched.c): what a fresh block, a
 * written page and a discarded page count as, the snapshot a cursor keeps
 * until it is reset or told of a write, and the word answer across a
 * window boundary and a block's end.
 */
#include <check.h>
#include <string.h>
#include <sys/mman.h>
#include "memory.h"
#include "ram-untouched.h"
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

/* A block whose pages fault in one by one: a write to one page must not
 * bring in a whole huge page around it. */
static RAMBlock *small_page_block(uint64_t size)
{
    Error *err = NULL;
    RAMBlock *b = ram_block_add("pc.ram", 0, size, &err);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(madvise(b->host, b->used_length, MADV_NOHUGEPAGE), 0);
    return b;
}

static void write_page(RAMBlock *b, uint64_t page)
{
    b->host[page * MIGVM_PAGE_SIZE + 17] = 0x5a;
}

START_TEST(test_fresh_written_discarded)
{
    RAMBlock *b = small_page_block(64 * MiB);
    RamUntouched c = { 0 };
    ck_assert(ram_untouched(&c, b, 0));
    ck_assert(ram_untouched(&c, b, b->npages - 1));
    ck_assert(!ram_untouched(&c, b, b->npages));        /* past the end: not known */

    write_page(b, 5);
    write_page(b, 5000);        /* in the second window */
    ram_untouched_reset(&c);
    ck_assert(!ram_untouched(&c, b, 5));
    ck_assert(ram_untouched(&c, b, 4));
    ck_assert(ram_untouched(&c, b, 6));
    ck_assert(!ram_untouched(&c, b, 5000));
    ck_assert(ram_untouched(&c, b, 4999));

    /* Discarded, the page reads as zero again, and counts as untouched. */
    ck_assert_int_eq(madvise(b->host + 5 * MIGVM_PAGE_SIZE, MIGVM_PAGE_SIZE, MADV_DONTNEED), 0);
    ram_untouched_reset(&c);
    ck_assert(ram_untouched(&c, b, 5));
    ck_assert_uint_eq(b->host[5 * MIGVM_PAGE_SIZE + 17], 0);
}
END_TEST

START_TEST(test_snapshot_until_reset_or_written)
{
    RAMBlock *b = small_page_block(16 * MiB);
    RamUntouched c = { 0 };
    ck_assert(ram_untouched(&c, b, 100));
    write_page(b, 100);
    write_page(b, 101);
    /* The cached window still says untouched: the caller's rules make that
     * safe (a dirty-log sync, or ram_untouched_written). */
    ck_assert(ram_untouched(&c, b, 100));
    ram_untouched_written(&c, b, 100, 1);
    ck_assert(!ram_untouched(&c, b, 100));
    ck_assert(ram_untouched(&c, b, 101));
    ram_untouched_reset(&c);
    ck_assert(!ram_untouched(&c, b, 101));
    ck_assert(ram_untouched(&c, b, 102));
}
END_TEST

START_TEST(test_word_matches_pages)
{
    /* 4096 + 100 pages: a second window that ends inside a bitmap word. */
    RAMBlock *b = small_page_block((4096 + 100) * MIGVM_PAGE_SIZE);
    uint64_t written[] = { 0, 63, 64, 4095, 4096, 4160, 4195 };
    for (size_t i = 0; i < sizeof(written) / sizeof(written[0]); i++) {
        write_page(b, written[i]);
    }
    RamUntouched c = { 0 };
    for (uint64_t base = 0; base < b->npages; base += 64) {
        uint64_t w = ram_untouched_word(&c, b, base + 7);
        for (unsigned i = 0; i < 64; i++) {
            uint64_t page = base + i;
            bool want = page < b->npages && ram_untouched(&c, b, page);
            ck_assert_msg(((w >> i) & 1) == want, "page %llu", (unsigned long long)page);
        }
    }
    ck_assert_uint_eq(ram_untouched_word(&c, b, 4160) >> 35, 0);    /* pages 4195.. are past the end */
    ck_assert(!ram_untouched(&c, b, 4195));
    ck_assert(ram_untouched(&c, b, 4194));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ram-untouched");
    TCase *tc = tcase_create("pagemap");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_fresh_written_discarded);
    tcase_add_test(tc, test_snapshot_until_reset_or_written);
    tcase_add_test(tc, test_word_matches_pages);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(suite());
}
