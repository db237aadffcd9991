/*
 * The soft accelerator's disk workload (accel-soft/disk-workload.c) driven
 * step by step on real drives (block/ over files): which drives it takes,
 * the pattern and the pass lines, and that a stale, misplaced or torn block
 * becomes an ERROR line. The main loop's work queue, run state and
 * qapi_event_emit are stubbed (only synchronous I/O runs here).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include <json-c/json.h>
#include "block.h"
#include "monitor.h"
#include "vm.h"
#include "../../accel-soft/disk-workload.h"
#include "unit-test.h"

#define CHUNK (SOFT_DISK_CHUNK_BLOCKS * SOFT_DISK_BLOCK)

/* ---- stubs ---- */

void main_loop_schedule(void (*fn)(void *opaque), void *opaque)
{
    fn(opaque);
}

void qapi_event_emit(const char *event_name, json_object *data)
{
    json_object_put(data);
}

bool runstate_is_running(void)
{
    return true;
}

bool vm_stop(RunState state, Error **errp)
{
    return true;
}

/* ---- helpers ---- */

static char *dir;
static GString *out;
static SoftDiskWorkload dw;

static void collect(void *opaque, uint8_t byte)
{
    g_string_append_c(out, (char)byte);
}

static void setup(void)
{
    dir = g_strdup("build-test-soft-disk-XXXXXX");
    ck_assert_ptr_nonnull(g_mkdtemp(dir));
    out = g_string_new(NULL);
    memset(&dw, 0, sizeof(dw));
    bql_lock();
}

static void teardown(void)
{
    disk_workload_cleanup(&dw);
    block_cleanup();
    bql_unlock();
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    g_free(dir);
    g_string_free(out, TRUE);
}

/* A zero-filled image of `size` bytes opened as -drive OPTS,file=IMAGE. */
static BlockBackend *add_drive(const char *name, size_t size, const char *opts)
{
    g_autofree char *path = g_strdup_printf("%s/%s.img", dir, name);
    g_autofree char *spec = g_strdup_printf("file=%s,format=raw,id=%s,%s", path, name, opts);
    Error *err = NULL;

    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(ftruncate(fileno(f), (off_t)size), 0);
    fclose(f);
    BlockBackend *blk = drive_new(spec, &err);
    ck_assert_msg(blk, "%s", err ? error_get_pretty(err) : "?");
    return blk;
}

static void start(uint64_t rate)
{
    Error *err = NULL;

    ck_assert_msg(disk_workload_init(&dw, rate, &err), "%s", err ? error_get_pretty(err) : "?");
    dw.out = collect;
}

static void steps(int n)
{
    for (int i = 0; i < n; i++) {
        disk_workload_step(&dw);
    }
}

static uint64_t word_at(BlockBackend *blk, int64_t off)
{
    uint64_t w;

    ck_assert_int_eq(blk_pread(blk, off, &w, 8), 0);
    return GUINT64_FROM_LE(w);
}

/* ---- tests ---- */

START_TEST(test_drives_taken)
{
    add_drive("boot", 1 << 20, "if=ide");
    add_drive("v", 1 << 20, "if=virtio");
    add_drive("n", 1 << 20, "if=none");
    add_drive("ro", 1 << 20, "if=none,readonly=on");
    add_drive("tiny", 2048, "if=none");
    start(0);
    ck_assert_uint_eq(dw.ndisks, 3);
    ck_assert_str_eq(blk_name(dw.disks[0].blk), "v");
    ck_assert_str_eq(blk_name(dw.disks[1].blk), "n");
    ck_assert_str_eq(blk_name(dw.disks[2].blk), "tiny");
    ck_assert_uint_eq(dw.disks[0].chunks, 16);
    ck_assert_uint_eq(dw.disks[2].chunks, 0);       /* smaller than a block: left alone */
    ck_assert(disk_workload_active(&dw));
    steps(6);                                        /* the tiny drive takes no turn */
    ck_assert_uint_eq(dw.disks[0].next_chunk, 3);
    ck_assert_uint_eq(dw.disks[1].next_chunk, 3);
}
END_TEST

START_TEST(test_pattern_and_passes)
{
    BlockBackend *blk = add_drive("d0", 1 << 20, "if=none");   /* 16 chunks */
    start(0);
    steps(16 * 2 + 5);
    ck_assert_str_eq(out->str, "DISK d0 pass 1 ok\nDISK d0 pass 2 ok\n");
    ck_assert_uint_eq(dw.disks[0].passes, 2);
    ck_assert_uint_eq(dw.disks[0].next_chunk, 5);
    for (int64_t c = 0; c < 16; c++) {
        uint64_t want = c < 5 ? 3 : 2;
        for (int64_t k = 0; k < SOFT_DISK_CHUNK_BLOCKS; k++) {
            int64_t a = c * CHUNK + k * SOFT_DISK_BLOCK;
            ck_assert_uint_eq(word_at(blk, a), want);
            ck_assert_uint_eq(word_at(blk, a + 8), (uint64_t)a);
        }
    }
    ck_assert_uint_eq(dw.errors, 0);
    disk_workload_reset(&dw);
    ck_assert_uint_eq(dw.disks[0].passes, 0);
    ck_assert_uint_eq(dw.disks[0].next_chunk, 0);
}
END_TEST

/* The block at `a` rolled back to what it held before the last write: the
 * workload reads it back half a cycle later and says so. */
START_TEST(test_stale_block_reported)
{
    BlockBackend *blk = add_drive("d0", 1 << 20, "if=none");
    uint8_t old[SOFT_DISK_BLOCK];
    int64_t a = 3 * CHUNK + 2 * SOFT_DISK_BLOCK;

    start(0);
    steps(16);                                       /* pass 1 done: all generation 1 */
    ck_assert_int_eq(blk_pread(blk, a, old, sizeof(old)), 0);
    steps(4);                                        /* chunk 3 now generation 2 */
    ck_assert_int_eq(blk_pwrite(blk, a, old, sizeof(old)), 0);
    ck_assert(!strstr(out->str, "ERROR"));
    steps(12);                                       /* chunk 3 verified after chunk 11's write */
    ck_assert_msg(strstr(out->str, "ERROR: disk d0 block 0x32000: generation 1 expected 2\n"), "%s", out->str);
    ck_assert_msg(strstr(out->str, "DISK d0 pass 2 errors=1\n"), "%s", out->str);
    ck_assert_uint_eq(dw.errors, 1);
}
END_TEST

/* A block rolled back more than half a cycle behind the write position (as
 * a chunk a migration missed long before the switch-over): its read-back
 * half a cycle after its write is past, so only the check before chunk 1 is
 * written again sees it. */
START_TEST(test_stale_block_far_behind_reported)
{
    BlockBackend *blk = add_drive("d0", 1 << 20, "if=none");
    uint8_t old[SOFT_DISK_BLOCK];
    int64_t a = 1 * CHUNK + 5 * SOFT_DISK_BLOCK;

    start(0);
    steps(16);                                       /* pass 1 done: all generation 1 */
    ck_assert_int_eq(blk_pread(blk, a, old, sizeof(old)), 0);
    steps(12);                                       /* chunks 0-11 generation 2, chunk 1 read back */
    ck_assert_int_eq(blk_pwrite(blk, a, old, sizeof(old)), 0);
    steps(5);                                        /* chunks 12-15, then 0; chunk 1 is next */
    ck_assert(!strstr(out->str, "ERROR"));
    steps(1);
    ck_assert_msg(strstr(out->str, "ERROR: disk d0 block 0x15000: generation 1 expected 2\n"), "%s", out->str);
    ck_assert_uint_eq(dw.errors, 1);
}
END_TEST

START_TEST(test_misplaced_and_torn_blocks_reported)
{
    BlockBackend *blk = add_drive("d0", 1 << 20, "if=none");
    uint8_t b[SOFT_DISK_BLOCK];

    start(0);
    steps(16);
    /* block 0x90000 gets a copy of 0x91000 (same generation), 0xa0000 one flipped word */
    ck_assert_int_eq(blk_pread(blk, 0x91000, b, sizeof(b)), 0);
    ck_assert_int_eq(blk_pwrite(blk, 0x90000, b, sizeof(b)), 0);
    ck_assert_int_eq(blk_pread(blk, 0xa0000, b, sizeof(b)), 0);
    b[100 * 8] ^= 1;
    ck_assert_int_eq(blk_pwrite(blk, 0xa0000, b, sizeof(b)), 0);
    steps(3);                                        /* chunks 8, 9, 10 verified after writing 0, 1, 2 */
    ck_assert_msg(strstr(out->str, "ERROR: disk d0 block 0x90000: holds address 0x91000\n"), "%s", out->str);
    ck_assert_msg(strstr(out->str, "ERROR: disk d0 block 0xa0000: word 100 wrong\n"), "%s", out->str);
    ck_assert_uint_eq(dw.errors, 2);
}
END_TEST

START_TEST(test_rate_and_limits)
{
    Error *err = NULL;

    add_drive("d0", 1 << 20, "if=none");
    ck_assert(!disk_workload_init(&dw, UINT64_MAX / 2, &err));
    ck_assert_str_eq(error_get_pretty(err), "disk-rate 9223372036854775807 is too large");
    error_free(err);
    start(2);
    ck_assert_uint_eq(dw.bytes_per_sec, 2 << 20);
    disk_workload_restart_bucket(&dw, 1e9);
    ck_assert(disk_workload_due_ns(&dw) == 1e9);
    steps(1);                                        /* 64 KiB at 2 MiB/s: 1/32 s later */
    ck_assert(disk_workload_due_ns(&dw) == 1e9 + 1e9 / 32);
}
END_TEST

static Suite *soft_disk_suite(void)
{
    Suite *s = suite_create("soft-disk");
    TCase *tc = tcase_create("workload");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_drives_taken);
    tcase_add_test(tc, test_pattern_and_passes);
    tcase_add_test(tc, test_stale_block_reported);
    tcase_add_test(tc, test_stale_block_far_behind_reported);
    tcase_add_test(tc, test_misplaced_and_torn_blocks_reported);
    tcase_add_test(tc, test_rate_and_limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(soft_disk_suite());
}
