/* Unit tests for the zero-buffer check (util/buffer-zero.c): every
 * implementation this CPU runs, every length up to 300 bytes and a page,
 * every alignment within 64 bytes, one byte set at each position. Buffers
 * end exactly at the checked length, so a read past it shows under ASan and
 * valgrind. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buffer-zero.h"
#include "unit-test.h"

#define MAX_SHORT 300
#define PAGE 4096

/* fn over len bytes at alignment `align` (mod 64): all zero, then with a
 * byte set at each position in turn (each of bit 0 and bit 7). */
static void check_len(const BufferZeroImpl *impl, size_t len, size_t align)
{
    /* The allocation ends where the buffer ends (ASan and valgrind know
     * its exact size): any over-read is reported. */
    void *raw = NULL;
    if (posix_memalign(&raw, 64, align + len ? align + len : 1)) {
        ck_abort_msg("out of memory");
    }
    uint8_t *p = (uint8_t *)raw + align;
    memset(p, 0, len);
    /* Plain ifs: each ck_assert costs check a write(2), millions here. */
    if (!impl->fn(p, len)) {
        ck_abort_msg("%s: zero buffer of %zu bytes at +%zu said non-zero", impl->name, len, align);
    }
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit += 7) {
            p[i] = (uint8_t)(1u << bit);
            if (impl->fn(p, len)) {
                ck_abort_msg("%s: byte %zu of %zu (at +%zu, bit %d) missed", impl->name, i, len, align, bit);
            }
            p[i] = 0;
        }
    }
    free(raw);
}

START_TEST(test_short_lengths)
{
    size_t n;
    const BufferZeroImpl *impls = buffer_zero_impls(&n);
    for (size_t k = 0; k < n; k++) {
        if (!impls[k].usable) {
            continue;
        }
        for (size_t len = 0; len <= MAX_SHORT; len++) {
            for (size_t align = 0; align < 64; align += (len > 130 ? 7 : 1)) {
                check_len(&impls[k], len, align);
            }
        }
    }
}
END_TEST

START_TEST(test_pages)
{
    size_t n;
    const BufferZeroImpl *impls = buffer_zero_impls(&n);
    for (size_t k = 0; k < n; k++) {
        if (!impls[k].usable) {
            continue;
        }
        static const size_t aligns[] = { 0, 1, 8, 15, 16, 31, 32, 33, 63 };
        for (size_t a = 0; a < sizeof(aligns) / sizeof(aligns[0]); a++) {
            check_len(&impls[k], PAGE, aligns[a]);
            check_len(&impls[k], 2 * PAGE + 5, aligns[a]);
        }
    }
}
END_TEST

/* The one in use is the last usable (fastest) one, and agrees with it. */
START_TEST(test_chosen)
{
    size_t n;
    const BufferZeroImpl *impls = buffer_zero_impls(&n);
    const char *best = NULL;
    for (size_t k = 0; k < n; k++) {
        if (impls[k].usable) {
            best = impls[k].name;
        }
    }
    ck_assert_ptr_nonnull(best);
    ck_assert_str_eq(buffer_zero_impl_name(), best);
    uint8_t *page = aligned_alloc(PAGE, PAGE);
    memset(page, 0, PAGE);
    ck_assert(buffer_is_zero(page, PAGE));
    page[PAGE / 2] = 0x80;
    ck_assert(!buffer_is_zero(page, PAGE));
    free(page);
}
END_TEST

static Suite *buffer_zero_suite(void)
{
    Suite *s = suite_create("buffer-zero");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_short_lengths);
    tcase_add_test(tc, test_pages);
    tcase_add_test(tc, test_chosen);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(buffer_zero_suite());
}
