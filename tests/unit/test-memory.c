/*
 * RAM blocks and dirty bitmaps (system/memory.c): bitmap operations across
 * word boundaries, concurrent dirtying against sync + scan, guest-physical
 * access bounds, a block split around the 32-bit hole as the pc board does.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "memory.h"
#include "vm.h"
#include "unit-test.h"

/* The test thread plays the main thread, which holds the BQL (dirty log
 * start/stop); the harvest threads below do not need it. */
bool bql_locked(void)
{
    return true;
}

#define MiB (1024ULL * 1024)
#define GiB (1024ULL * MiB)

static void teardown(void)
{
    ram_blocks_free_all();
}

static RAMBlock *add_block(const char *name, uint64_t gpa, uint64_t size)
{
    Error *err = NULL;
    RAMBlock *b = ram_block_add(name, gpa, size, &err);

    ck_assert_ptr_null(err);
    ck_assert_ptr_nonnull(b);
    return b;
}

/* Set pages through the software log and sync them into bmap. */
static uint64_t dirty_and_sync(RAMBlock *b, const uint64_t *pages, int n)
{
    for (int i = 0; i < n; i++) {
        ram_block_set_dirty(b, pages[i]);
    }
    return memory_global_dirty_log_sync();
}

START_TEST(test_blocks)
{
    RAMBlock *a = add_block("pc.ram", 0, 4 * MiB);
    RAMBlock *b = add_block("extra", 4 * MiB, 5000);     /* rounded up */
    Error *err = NULL;

    ck_assert_uint_eq(b->used_length, 8192);
    ck_assert_uint_eq(a->npages, 1024);
    ck_assert_ptr_eq(ram_block_first(), a);
    ck_assert_ptr_eq(ram_block_by_name("extra"), b);
    ck_assert_ptr_null(ram_block_by_name("pc"));
    ck_assert_ptr_eq(ram_block_by_gpa(4 * MiB - 1), a);
    ck_assert_ptr_eq(ram_block_by_gpa(4 * MiB + 8191), b);
    ck_assert_ptr_null(ram_block_by_gpa(4 * MiB + 8192));
    ck_assert_int_eq(ram_block_count(), 2);
    ck_assert_uint_eq(ram_total_size(), 4 * MiB + 8192);
    ck_assert_ptr_null(ram_block_add("pc.ram", 64 * MiB, 4096, &err));
    ck_assert_ptr_nonnull(strstr(error_get_pretty(err), "already exists"));
    error_free_or_abort(&err);
    ck_assert_ptr_null(ram_block_add("x", 1 * MiB, 4096, &err));
    ck_assert_ptr_nonnull(strstr(error_get_pretty(err), "overlaps"));
    error_free_or_abort(&err);
    ck_assert_ptr_null(ram_block_add("y", 0, 0, &err));
    error_free_or_abort(&err);
}
END_TEST

START_TEST(test_bitmap_word_boundaries)
{
    RAMBlock *b = add_block("ram", 0, 200 * 4096);       /* 200 pages: 3 full words + 8 bits */
    const uint64_t pages[] = { 0, 63, 64, 65, 127, 128, 191, 192, 199 };
    const int n = sizeof(pages) / sizeof(pages[0]);

    ck_assert_uint_eq(dirty_and_sync(b, pages, n), n);
    ck_assert_uint_eq(ram_dirty_pages(), n);
    /* Dirtying again before a scan adds nothing new. */
    ck_assert_uint_eq(dirty_and_sync(b, pages, n), 0);

    uint64_t p = 0;
    for (int i = 0; i < n; i++) {
        p = ram_block_find_next_dirty(b, p);
        ck_assert_uint_eq(p, pages[i]);
        ck_assert(ram_block_test_dirty(b, p));
        p++;
    }
    ck_assert_uint_eq(ram_block_find_next_dirty(b, p), b->npages);
    ck_assert_uint_eq(ram_block_find_next_dirty(b, 500), b->npages);

    ck_assert(ram_block_test_and_clear_dirty(b, 64));
    ck_assert(!ram_block_test_and_clear_dirty(b, 64));
    ck_assert(!ram_block_test_and_clear_dirty(b, 62));
    ck_assert(!ram_block_test_and_clear_dirty(b, 200));  /* out of range */
    ck_assert_uint_eq(ram_block_find_next_dirty(b, 64), 65);
    ck_assert_uint_eq(ram_dirty_pages(), n - 1);

    ram_block_set_all_dirty(b);
    ck_assert_uint_eq(ram_block_dirty_pages(b), 200);
    ck_assert_uint_eq(ram_block_find_next_dirty(b, 199), 199);
    ram_block_clear_all_dirty(b);
    ck_assert_uint_eq(ram_dirty_pages(), 0);
    ck_assert_uint_eq(ram_block_find_next_dirty(b, 0), b->npages);
}
END_TEST

START_TEST(test_merge_from_accelerator)
{
    RAMBlock *b = add_block("ram", 0, 130 * 4096);
    unsigned long src[3] = { 0 };

    src[0] = 1UL | (1UL << 63);
    src[1] = 1UL << 1;
    src[2] = ~0UL;                  /* only 2 valid bits (pages 128, 129) */
    ck_assert_uint_eq(ram_block_merge_dirty(b, src, 0, 130), 5);
    ck_assert_uint_eq(ram_block_merge_dirty(b, src, 0, 130), 0);
    ck_assert_uint_eq(ram_block_dirty_pages(b), 5);
    ck_assert_uint_eq(ram_block_find_next_dirty(b, 1), 63);
    ck_assert_uint_eq(ram_block_find_next_dirty(b, 64), 65);
    ck_assert_uint_eq(ram_block_find_next_dirty(b, 66), 128);
    /* Unaligned first page is refused. */
    ck_assert_uint_eq(ram_block_merge_dirty(b, src, 3, 10), 0);
    /* Offset merge: bit 0 of src = page 64. */
    unsigned long one = 1;
    ram_block_clear_all_dirty(b);
    ck_assert_uint_eq(ram_block_merge_dirty(b, &one, 64, 64), 1);
    ck_assert_uint_eq(ram_block_find_next_dirty(b, 0), 64);
}
END_TEST

START_TEST(test_dirty_log_start_drops_stale)
{
    RAMBlock *b = add_block("ram", 0, 64 * 4096);

    ram_block_set_dirty(b, 5);
    ck_assert(memory_global_dirty_log_start(NULL));
    ck_assert(memory_global_dirty_log_enabled());
    ck_assert_uint_eq(memory_global_dirty_log_sync(), 0);
    ram_block_set_dirty(b, 6);
    ck_assert_uint_eq(memory_global_dirty_log_sync(), 1);
    ck_assert_uint_eq(ram_block_find_next_dirty(b, 0), 6);
    memory_global_dirty_log_stop();
    ck_assert(!memory_global_dirty_log_enabled());
}
END_TEST

/* ---- concurrency: a writer dirties every page once while the "migration
 * thread" syncs and harvests; no page may be lost or seen twice. ---- */

#define CONC_PAGES (1u << 18)       /* 1 GiB worth of pages, bitmap only touched */

typedef struct Concurrent {
    RAMBlock *b;
    int done;
} Concurrent;

static void *writer_thread(void *opaque)
{
    Concurrent *c = opaque;

    /* Stride through the block so neighbouring words are hit out of order. */
    for (uint64_t i = 0; i < CONC_PAGES; i++) {
        uint64_t page = (i * 7919) % CONC_PAGES;
        ram_block_set_dirty(c->b, page);
    }
    __atomic_store_n(&c->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static uint64_t harvest(RAMBlock *b, uint8_t *seen)
{
    uint64_t n = 0;

    for (uint64_t p = ram_block_find_next_dirty(b, 0); p < b->npages;
         p = ram_block_find_next_dirty(b, p + 1)) {
        if (ram_block_test_and_clear_dirty(b, p)) {
            seen[p]++;
            n++;
        }
    }
    return n;
}

START_TEST(test_concurrent_setter_vs_sync)
{
    RAMBlock *b = add_block("ram", 0, (uint64_t)CONC_PAGES * 4096);
    uint8_t *seen = calloc(CONC_PAGES, 1);
    Concurrent c = { .b = b };
    pthread_t th;
    uint64_t synced = 0, harvested = 0;

    ck_assert(memory_global_dirty_log_start(NULL));
    ck_assert_int_eq(pthread_create(&th, NULL, writer_thread, &c), 0);
    while (!__atomic_load_n(&c.done, __ATOMIC_SEQ_CST)) {
        synced += memory_global_dirty_log_sync();
        harvested += harvest(b, seen);
    }
    pthread_join(th, NULL);
    synced += memory_global_dirty_log_sync();
    harvested += harvest(b, seen);

    ck_assert_uint_eq(synced, CONC_PAGES);
    ck_assert_uint_eq(harvested, CONC_PAGES);
    for (uint64_t p = 0; p < CONC_PAGES; p++) {
        ck_assert_msg(seen[p] == 1, "page %llu seen %d times", (unsigned long long)p, seen[p]);
    }
    ck_assert_uint_eq(ram_dirty_pages(), 0);
    memory_global_dirty_log_stop();
    free(seen);
}
END_TEST

/* ---- guest physical access ---- */

START_TEST(test_guest_phys_access)
{
    RAMBlock *lo = add_block("lo", 0, 2 * 4096);
    RAMBlock *hi = add_block("hi", 2 * 4096, 2 * 4096);   /* adjacent */
    add_block("far", 1 * MiB, 4096);                      /* hole before it */
    uint8_t buf[8192], back[8192];
    Error *err = NULL;

    memset(buf, 0xab, sizeof(buf));
    /* Spanning two adjacent blocks works and dirties both sides. */
    ck_assert(guest_phys_write(4096 + 100, buf, 8192, &err));
    ck_assert_ptr_null(err);
    ck_assert_uint_eq(memory_global_dirty_log_sync(), 3);   /* lo:1, hi:0,1 */
    ck_assert(ram_block_test_dirty(lo, 1));
    ck_assert(!ram_block_test_dirty(lo, 0));
    ck_assert(ram_block_test_dirty(hi, 0) && ram_block_test_dirty(hi, 1));
    ck_assert(guest_phys_read(4096 + 100, back, 8192, NULL));
    ck_assert_mem_eq(back, buf, 8192);
    ck_assert_uint_eq(hi->host[4096 + 99], 0xab);
    ck_assert_uint_eq(hi->host[4096 + 100], 0);

    /* Past the end of RAM or into the hole: nothing copied, error set. */
    memset(back, 0x11, sizeof(back));
    ck_assert(!guest_phys_read(3 * 4096, back, 4097, &err));
    ck_assert_ptr_nonnull(strstr(error_get_pretty(err), "Invalid addr"));
    error_free_or_abort(&err);
    ck_assert_uint_eq(back[0], 0x11);
    ck_assert(!guest_phys_write(1 * MiB - 1, buf, 2, &err));
    error_free_or_abort(&err);
    ck_assert(!guest_phys_read(UINT64_MAX - 10, back, 100, &err));    /* wraps */
    error_free_or_abort(&err);
    ck_assert(guest_phys_read(1 * MiB + 4095, back, 1, NULL));
    ck_assert(!guest_phys_read(1 * MiB + 4096, back, 1, NULL));
    ck_assert(guest_phys_read(0, back, 0, NULL));

    ck_assert_ptr_eq(guest_phys_to_host(4096, 4096), lo->host + 4096);
    ck_assert_ptr_null(guest_phys_to_host(4096, 4097));                /* crosses blocks */
    ck_assert_ptr_null(guest_phys_to_host(5 * 4096, 1));
}
END_TEST

/* ---- a split block: -m 4G on the pc board (3 GiB low, 1 GiB at 4 GiB) ---- */

#define LOW (3 * GiB)
#define HIGH_GPA (4 * GiB)
#define LOW_PAGES (LOW / 4096)

static RAMBlock *add_pc_4g(void)
{
    Error *err = NULL;
    RAMBlock *b = ram_block_add_split("pc.ram", 0, 4 * GiB, LOW, HIGH_GPA, &err);

    ck_assert_ptr_null(err);
    ck_assert_ptr_nonnull(b);
    return b;
}

START_TEST(test_split_translation)
{
    RAMBlock *b = add_pc_4g();
    RAMMapping m[RAM_BLOCK_MAX_MAPPINGS];
    uint64_t off = 0;

    /* One block of the full size: what migration sends. */
    ck_assert_int_eq(ram_block_count(), 1);
    ck_assert_uint_eq(b->used_length, 4 * GiB);
    ck_assert_uint_eq(b->npages, 4 * GiB / 4096);
    ck_assert_uint_eq(ram_total_size(), 4 * GiB);
    ck_assert_int_eq(ram_block_mappings(b, m), 2);
    ck_assert_uint_eq(m[0].gpa, 0);
    ck_assert_uint_eq(m[0].offset, 0);
    ck_assert_uint_eq(m[0].len, LOW);
    ck_assert_uint_eq(m[1].gpa, HIGH_GPA);
    ck_assert_uint_eq(m[1].offset, LOW);
    ck_assert_uint_eq(m[1].len, 1 * GiB);

    /* Both sides of the hole are RAM... */
    ck_assert_ptr_eq(ram_block_by_gpa(0), b);
    ck_assert_ptr_eq(ram_block_by_gpa(LOW - 1), b);
    ck_assert_ptr_eq(ram_block_by_gpa(HIGH_GPA), b);
    ck_assert_ptr_eq(ram_block_by_gpa(5 * GiB - 1), b);
    ck_assert(ram_block_gpa_to_offset(b, LOW - 1, &off));
    ck_assert_uint_eq(off, LOW - 1);
    ck_assert(ram_block_gpa_to_offset(b, HIGH_GPA, &off));
    ck_assert_uint_eq(off, LOW);
    ck_assert(ram_block_gpa_to_offset(b, 5 * GiB - 1, &off));
    ck_assert_uint_eq(off, 4 * GiB - 1);
    /* ...the hole (IOAPIC, LAPIC, KVM's TSS and identity map) and beyond are not. */
    const uint64_t not_ram[] = { LOW, 0xfec00000, 0xfee00000, 0xfffbc000, 0xfffbd000,
                                 HIGH_GPA - 1, 5 * GiB, 8 * GiB };
    for (unsigned i = 0; i < sizeof(not_ram) / sizeof(not_ram[0]); i++) {
        ck_assert_msg(!ram_block_by_gpa(not_ram[i]), "0x%llx is RAM", (unsigned long long)not_ram[i]);
        ck_assert(!ram_block_gpa_to_offset(b, not_ram[i], &off));
    }

    /* Host pointers: each mapping is contiguous, the hole is not crossed. */
    ck_assert_ptr_eq(guest_phys_to_host(HIGH_GPA, 4096), b->host + LOW);
    ck_assert_ptr_eq(guest_phys_to_host(5 * GiB - 4096, 4096), b->host + 4 * GiB - 4096);
    ck_assert_ptr_eq(guest_phys_to_host(LOW - 4096, 4096), b->host + LOW - 4096);
    ck_assert_ptr_null(guest_phys_to_host(LOW - 4096, 4097));
    ck_assert_ptr_null(guest_phys_to_host(5 * GiB - 4096, 4097));
    ck_assert_ptr_null(guest_phys_to_host(0xfee00000, 1));
}
END_TEST

START_TEST(test_split_access_and_dirty)
{
    RAMBlock *b = add_pc_4g();
    uint8_t buf[16], back[16];
    Error *err = NULL;

    memcpy(buf, "above-4G-marker", 16);
    /* Above 4 GiB: lands at block offset LOW + x, dirties that page only. */
    ck_assert(guest_phys_write(HIGH_GPA + 5 * 4096 + 100, buf, sizeof(buf), &err));
    ck_assert_ptr_null(err);
    ck_assert_mem_eq(b->host + LOW + 5 * 4096 + 100, buf, sizeof(buf));
    ck_assert(guest_phys_read(HIGH_GPA + 5 * 4096 + 100, back, sizeof(back), NULL));
    ck_assert_mem_eq(back, buf, sizeof(buf));
    /* Last page below the hole. */
    ck_assert(guest_phys_write(LOW - 4096, buf, 1, NULL));
    ck_assert_uint_eq(b->host[LOW - 4096], 'a');
    ck_assert_uint_eq(memory_global_dirty_log_sync(), 2);
    ck_assert_uint_eq(ram_block_find_next_dirty(b, 0), LOW_PAGES - 1);
    ck_assert_uint_eq(ram_block_find_next_dirty(b, LOW_PAGES), LOW_PAGES + 5);
    ck_assert_uint_eq(ram_block_find_next_dirty(b, LOW_PAGES + 6), b->npages);

    /* Into the hole, across it, past the end: refused, nothing copied. */
    ck_assert(!guest_phys_write(LOW - 2, buf, 4, &err));
    ck_assert_ptr_nonnull(strstr(error_get_pretty(err), "Invalid addr"));
    error_free_or_abort(&err);
    ck_assert_uint_eq(b->host[LOW - 2], 0);
    ck_assert(!guest_phys_read(0xfec00000, back, 4, &err));
    error_free_or_abort(&err);
    ck_assert(!guest_phys_read(LOW - 4096, back, 4096 + 1, &err));   /* one byte into the hole */
    error_free_or_abort(&err);
    ck_assert(!guest_phys_read(HIGH_GPA - 1, back, 2, &err));        /* from the hole into RAM */
    error_free_or_abort(&err);
    ck_assert(!guest_phys_write(5 * GiB - 2, buf, 4, &err));
    error_free_or_abort(&err);
    ck_assert_uint_eq(b->host[4 * GiB - 2], 0);
    ck_assert_uint_eq(memory_global_dirty_log_sync(), 0);

    /* An accelerator's bitmap for the high mapping merges at block page
     * LOW_PAGES + i (what kvm-dirty.c does for the second slot). */
    unsigned long slot_bits[2] = { 1UL << 3, 1UL << 0 };     /* slot pages 3 and 64 */
    ram_block_clear_all_dirty(b);
    ck_assert_uint_eq(ram_block_merge_dirty(b, slot_bits, LOW_PAGES, 128), 2);
    ck_assert_uint_eq(ram_block_find_next_dirty(b, 0), LOW_PAGES + 3);
    ck_assert_uint_eq(ram_block_find_next_dirty(b, LOW_PAGES + 4), LOW_PAGES + 64);
    ck_assert_uint_eq(ram_block_dirty_pages(b), 2);
}
END_TEST

START_TEST(test_split_refused)
{
    Error *err = NULL;

    /* Not a multiple of RAM_BLOCK_SPLIT_ALIGN: per-mapping bitmaps would
     * not merge on a word boundary. */
    ck_assert_ptr_null(ram_block_add_split("a", 0, 2 * MiB, 3 * 4096, 4 * MiB, &err));
    ck_assert_ptr_nonnull(strstr(error_get_pretty(err), "cannot split"));
    error_free_or_abort(&err);
    /* High part overlapping the low part. */
    ck_assert_ptr_null(ram_block_add_split("a", 0, 2 * MiB, 1 * MiB, 512 * 1024, &err));
    ck_assert_ptr_nonnull(strstr(error_get_pretty(err), "above the low part"));
    error_free_or_abort(&err);
    ck_assert_int_eq(ram_block_count(), 0);

    RAMBlock *pc = add_pc_4g();
    /* The hole is free for another block; either mapping is not. */
    ck_assert_ptr_nonnull(ram_block_add("in-hole", 0xd0000000, 4096, &err));
    ck_assert_ptr_null(err);
    ck_assert_ptr_null(ram_block_add("over-high", 5 * GiB - 4096, 8192, &err));
    ck_assert_ptr_nonnull(strstr(error_get_pretty(err), "overlaps 'pc.ram'"));
    error_free_or_abort(&err);
    ck_assert_ptr_null(ram_block_add("over-low", LOW - 4096, 4096, &err));
    error_free_or_abort(&err);
    /* A split whose high part overlaps an existing block. */
    ck_assert_ptr_null(ram_block_add_split("b", 0xd0100000, 2 * MiB, 1 * MiB, 5 * GiB - 4096, &err));
    ck_assert_ptr_nonnull(strstr(error_get_pretty(err), "overlaps 'pc.ram'"));
    error_free_or_abort(&err);
    /* A split point at or past the size: one plain mapping. */
    RAMBlock *plain = ram_block_add_split("plain", 6 * GiB, 1 * MiB, 1 * MiB, 8 * GiB, &err);
    ck_assert_ptr_nonnull(plain);
    ck_assert_uint_eq(plain->low_length, plain->used_length);
    RAMMapping m[RAM_BLOCK_MAX_MAPPINGS];
    ck_assert_int_eq(ram_block_mappings(plain, m), 1);
    ck_assert_ptr_null(ram_block_by_gpa(8 * GiB));
    ck_assert_ptr_eq(ram_block_by_gpa(HIGH_GPA), pc);
    /* An unsplit block keeps low_length == used_length. */
    ck_assert_uint_eq(ram_block_by_name("in-hole")->low_length, 4096);
}
END_TEST

/* A measurement and a migration each start and stop dirty logging: it stays
 * on while either needs it, and the second start keeps the first user's
 * pending writes. */
START_TEST(test_dirty_log_nesting)
{
    RAMBlock *b = add_block("ram", 0, 64 * 4096);

    ck_assert(memory_global_dirty_log_start(NULL));
    ram_block_set_dirty(b, 3);
    ck_assert(memory_global_dirty_log_start(NULL));
    ck_assert_uint_eq(memory_global_dirty_log_sync(), 1);
    memory_global_dirty_log_stop();
    ck_assert(memory_global_dirty_log_enabled());
    memory_global_dirty_log_stop();
    ck_assert(!memory_global_dirty_log_enabled());
    memory_global_dirty_log_stop();         /* unbalanced: harmless */
    ck_assert(memory_global_dirty_log_start(NULL));
    ck_assert(memory_global_dirty_log_enabled());
    memory_global_dirty_log_stop();
    ck_assert(!memory_global_dirty_log_enabled());
}
END_TEST

/* The capture counts distinct pages harvested by any sync, also pages
 * already set in bmap (not yet sent by a migration), and leaves bmap alone. */
START_TEST(test_dirty_capture)
{
    RAMBlock *a = add_block("a", 0, 128 * 4096);
    RAMBlock *b = add_block("b", 1 * MiB, 64 * 4096);
    unsigned long accel_bits[2] = { 0x5, 0x1 };

    ck_assert(memory_global_dirty_log_start(NULL));
    ram_block_set_dirty(a, 1);
    memory_global_dirty_log_sync();         /* before the capture: not counted */
    ram_dirty_capture_start();
    ram_block_set_dirty(a, 1);              /* already in bmap */
    ram_block_set_dirty(a, 100);
    ram_block_set_dirty(b, 63);
    ck_assert_uint_eq(memory_global_dirty_log_sync(), 2);
    ram_block_set_dirty(a, 100);            /* twice: one page */
    memory_global_dirty_log_sync();
    ck_assert_uint_eq(ram_block_merge_dirty(a, accel_bits, 0, 128), 3);   /* pages 0, 2, 64 */
    ck_assert_uint_eq(ram_dirty_capture_stop(), 6);     /* a: 0 1 2 64 100, b: 63 */
    ck_assert_uint_eq(ram_dirty_pages(), 6);
    ram_block_set_dirty(b, 1);
    memory_global_dirty_log_sync();         /* after the capture: not counted */
    ck_assert_uint_eq(ram_dirty_capture_stop(), 6);
    ram_dirty_capture_start();
    ck_assert_uint_eq(ram_dirty_capture_stop(), 0);
    memory_global_dirty_log_stop();
}
END_TEST

static Suite *memory_suite(void)
{
    Suite *s = suite_create("memory");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_blocks);
    tcase_add_test(tc, test_bitmap_word_boundaries);
    tcase_add_test(tc, test_merge_from_accelerator);
    tcase_add_test(tc, test_dirty_log_start_drops_stale);
    tcase_add_test(tc, test_dirty_log_nesting);
    tcase_add_test(tc, test_dirty_capture);
    tcase_add_test(tc, test_concurrent_setter_vs_sync);
    tcase_add_test(tc, test_guest_phys_access);
    tcase_add_test(tc, test_split_translation);
    tcase_add_test(tc, test_split_access_and_dirty);
    tcase_add_test(tc, test_split_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(memory_suite());
}
