/*
 * Pre-faulting a window ahead of the data (system/ram-prefault.c): nothing
 * is populated before the first page with data arrives, then the window
 * after it and no further; zero records that run ahead leave their pieces
 * alone, and the window jumps to where data arrives next.
 */
#include <check.h>
#include <time.h>
#include "memory.h"
#include "ram-prefault.h"
#include "ram-untouched.h"
#include "vm.h"
#include "unit-test.h"

bool bql_locked(void)
{
    return true;
}

#define PIECE_PAGES (RAM_PREFAULT_PIECE / MIGVM_PAGE_SIZE)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t populated_pieces(void)
{
    RamPrefaultStats st;
    ram_prefault_get_stats(&st);
    return st.populated;
}

/* Polls until the workers populated `want` pieces; false at the deadline. */
static bool wait_populated(uint64_t want, double timeout)
{
    for (double end = now_s() + timeout; now_s() < end;) {
        if (populated_pieces() >= want) {
            return true;
        }
        struct timespec ts = { 0, 5 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return populated_pieces() >= want;
}

static bool piece_untouched(RAMBlock *b, uint64_t piece)
{
    RamUntouched c = { 0 };
    return ram_untouched(&c, b, piece * PIECE_PAGES) && ram_untouched(&c, b, piece * PIECE_PAGES + PIECE_PAGES - 1);
}

static void teardown(void)
{
    ram_prefault_stop();
    ram_blocks_free_all();
}

START_TEST(test_window_follows_data)
{
    Error *err = NULL;
    RAMBlock *b = ram_block_add("pc.ram", 0, 128 * RAM_PREFAULT_PIECE, &err);
    ck_assert_ptr_null(err);
    ram_prefault_start();
    ck_assert(ram_prefault_running());

    /* No data yet: the workers wait (half a second here is plenty for them
     * to have populated pieces if they did not). */
    ck_assert(!wait_populated(1, 0.5));
    ck_assert(piece_untouched(b, 0));

    /* Data in piece 0: pieces 1 .. WINDOW follow, nothing beyond. */
    ram_prefault_loaded(b, 5 * MIGVM_PAGE_SIZE, true);
    ck_assert_msg(wait_populated(RAM_PREFAULT_WINDOW, 60), "populated %lu", (unsigned long)populated_pieces());
    ck_assert(!wait_populated(RAM_PREFAULT_WINDOW + 1, 0.3));
    ck_assert(!piece_untouched(b, 1));
    ck_assert(!piece_untouched(b, RAM_PREFAULT_WINDOW));
    ck_assert(piece_untouched(b, RAM_PREFAULT_WINDOW + 1));

    /* Zero records run on to piece 70, where data arrives: the pieces in
     * between stay untouched, the window restarts after piece 70. */
    ram_prefault_loaded(b, 69 * RAM_PREFAULT_PIECE, false);
    ram_prefault_loaded(b, 70 * RAM_PREFAULT_PIECE, true);
    ck_assert(wait_populated(2 * RAM_PREFAULT_WINDOW, 60));
    ck_assert(piece_untouched(b, 50));
    ck_assert(piece_untouched(b, 70));
    ck_assert(!piece_untouched(b, 71));
    ck_assert(!piece_untouched(b, 70 + RAM_PREFAULT_WINDOW));
    ck_assert(piece_untouched(b, 71 + RAM_PREFAULT_WINDOW));

    ram_prefault_stop();
    ck_assert(!ram_prefault_running());
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ram-prefault");
    TCase *tc = tcase_create("window");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 150);
    tcase_add_test(tc, test_window_follows_data);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(suite());
}
