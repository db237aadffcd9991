/*
 * The soft accelerator: the workload's memory pattern and exact dirty
 * tracking (workload.c driven directly), its throttle, and the whole board
 * (machine.c + cpus.c + soft.c + serial file) with pause/resume.
 *
 * The BQL and run state (system/vm.c), the VMState registry and the chardev
 * spec parser are stubbed below: the binary links accel-soft/, hw/ and only
 * the guest RAM, accelerator and vCPU code of system/.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>
#include "accel.h"
#include "cpus.h"
#include "machine.h"
#include "memory.h"
#include "monitor.h"
#include "vm.h"
#include "../../accel-soft/workload.h"
#include "unit-test.h"

#define MiB (1024ULL * 1024)

/* ---------------- stubs ---------------- */


bool runstate_is_running(void)
{
    return true;
}

bool vm_stop(RunState state, Error **errp)
{
    return true;
}

void main_loop_schedule(void (*fn)(void *opaque), void *opaque)
{
}

bool main_loop_exit_requested(void)
{
    return false;
}

void qapi_event_emit(const char *event_name, json_object *data)
{
    json_object_put(data);
}

static SoftWorkload *soft_cpu_state;     /* what "soft-cpu" registered */
bool vmstate_register(const char *idstr, uint32_t instance_id,
                      const VMStateDescription *vmsd, void *opaque, Error **errp)
{
    if (idstr && !strcmp(idstr, "soft-cpu")) {
        ck_assert_ptr_eq(vmsd, &vmstate_soft_workload);
        soft_cpu_state = opaque;
    }
    return true;
}

void vmstate_unregister(const VMStateDescription *vmsd, void *opaque)
{
    if (vmsd == &vmstate_soft_workload) {
        soft_cpu_state = NULL;
    }
}

/* The board's disks register for run-state changes; this test starts none. */
void vm_change_state_handler_add(VMChangeStateHandler *fn, void *opaque)
{
}

void vm_change_state_handler_del(VMChangeStateHandler *fn, void *opaque)
{
}

bool chardev_spec_parse(const char *text, ChardevSpec *spec, Error **errp)
{
    memset(spec, 0, sizeof(*spec));
    if (!strncmp(text, "file:", 5)) {
        spec->kind = CHARDEV_FILE;
        spec->path = g_strdup(text + 5);
        return true;
    }
    if (!strcmp(text, "none")) {
        return true;
    }
    error_setg(errp, "unsupported in this test: %s", text);
    return false;
}

char *chardev_spec_describe(const ChardevSpec *spec)
{
    return g_strdup(spec->path ? spec->path : "null");
}

void chardev_spec_clear(ChardevSpec *spec)
{
    g_free(spec->path);
    memset(spec, 0, sizeof(*spec));
}

void chardev_spec_copy(ChardevSpec *dst, const ChardevSpec *src)
{
    *dst = *src;
    dst->id = NULL;
    dst->host = dst->port = NULL;
    dst->path = g_strdup(src->path);
}

/* ---------------- helpers ---------------- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Pages [first, next) hold passes+1, [next, end) hold passes; below untouched. */
static void check_pattern(const SoftWorkload *w)
{
    const uint8_t *host = w->block->host;

    for (uint64_t p = 0; p < w->first_page; p++) {
        ck_assert_uint_eq(host[p * 4096], 0);
    }
    for (uint64_t p = w->first_page; p < w->end_page; p++) {
        uint8_t want = (uint8_t)(w->passes + (p < w->next_page ? 1 : 0));
        ck_assert_msg(host[p * 4096] == want, "page %llu: %u, want %u",
                      (unsigned long long)p, host[p * 4096], want);
        ck_assert_uint_eq(host[p * 4096 + 1], 0);            /* only the first byte */
    }
}

typedef struct Runner {
    SoftWorkload w;
    int stop;               /* atomic */
    int b_count;            /* atomic: 'B's written */
    GString *out;           /* written by the workload thread only */
    int stop_after_calls;   /* > 0: should_stop true on that call */
    int calls;
    double stop_at;         /* > 0: should_stop true from that time */
} Runner;

static void runner_out(void *opaque, uint8_t byte)
{
    Runner *r = opaque;

    g_string_append_c(r->out, (char)byte);
    if (byte == 'B') {
        __atomic_fetch_add(&r->b_count, 1, __ATOMIC_SEQ_CST);
    }
}

static bool runner_should_stop(void *opaque)
{
    Runner *r = opaque;

    if (r->stop_after_calls && ++r->calls >= r->stop_after_calls) {
        return true;
    }
    if (r->stop_at > 0 && now_s() >= r->stop_at) {
        return true;
    }
    return __atomic_load_n(&r->stop, __ATOMIC_SEQ_CST);
}

static void *runner_thread(void *opaque)
{
    Runner *r = opaque;

    workload_run(&r->w, runner_should_stop, r);
    return NULL;
}

static void runner_init(Runner *r, uint64_t ram, uint64_t top, uint64_t rate)
{
    Error *err = NULL;
    RAMBlock *b = ram_block_add("pc.ram", 0, ram, &err);

    ck_assert_ptr_null(err);
    memset(r, 0, sizeof(*r));
    ck_assert(workload_init(&r->w, b, 1 * MiB, top, rate, &err));
    r->w.out = runner_out;
    r->w.out_opaque = r;
    r->out = g_string_new(NULL);
}

static void runner_free(Runner *r)
{
    g_string_free(r->out, TRUE);
    ram_blocks_free_all();
}

/* Run in a thread until `passes` more 'B's were written, then stop. */
static void run_for_passes(Runner *r, int passes)
{
    pthread_t th;
    int target = __atomic_load_n(&r->b_count, __ATOMIC_SEQ_CST) + passes;
    double deadline = now_s() + 20;

    __atomic_store_n(&r->stop, 0, __ATOMIC_SEQ_CST);
    ck_assert_int_eq(pthread_create(&th, NULL, runner_thread, r), 0);
    while (__atomic_load_n(&r->b_count, __ATOMIC_SEQ_CST) < target && now_s() < deadline) {
        usleep(1000);
    }
    __atomic_store_n(&r->stop, 1, __ATOMIC_SEQ_CST);
    pthread_join(th, NULL);
    ck_assert_int_ge(r->b_count, target);
}

/* ---------------- the workload alone ---------------- */

START_TEST(test_pattern_across_pause_resume)
{
    Runner r;

    runner_init(&r, 4 * MiB, 0, 0);
    ck_assert_uint_eq(r.w.first_page, 256);
    ck_assert_uint_eq(r.w.end_page, 1024);
    run_for_passes(&r, 3);
    ck_assert_uint_eq(r.w.passes, (uint64_t)r.b_count);
    check_pattern(&r.w);
    run_for_passes(&r, 2);                                   /* "resume" */
    check_pattern(&r.w);
    /* Output: 'A' once, then one 'B' per pass. */
    ck_assert_int_eq(r.out->str[0], 'A');
    ck_assert_uint_eq(r.out->len, 1 + r.w.passes);
    ck_assert(strspn(r.out->str + 1, "B") == r.w.passes);
    runner_free(&r);
}
END_TEST

START_TEST(test_top_limits_range)
{
    Runner r;

    runner_init(&r, 4 * MiB, 2 * MiB, 0);
    ck_assert_uint_eq(r.w.end_page, 512);
    run_for_passes(&r, 2);
    check_pattern(&r.w);
    ck_assert_uint_eq(r.w.block->host[600 * 4096], 0);
    runner_free(&r);
}
END_TEST

START_TEST(test_dirty_tracking_exact)
{
    Runner r;

    runner_init(&r, 4 * MiB, 0, 0);
    RAMBlock *b = r.w.block;
    r.w.next_page = r.w.end_page - 20;          /* make the run wrap around */
    bql_lock();                                 /* start and stop are [BQL] */
    ck_assert(memory_global_dirty_log_start(NULL));
    bql_unlock();
    ck_assert_uint_eq(memory_global_dirty_log_sync(), 0);

    r.stop_after_calls = 4;                     /* 3 chunks of 16 pages */
    runner_thread(&r);
    ck_assert_uint_eq(memory_global_dirty_log_sync(), 48);
    for (uint64_t p = 0; p < b->npages; p++) {
        bool written = p >= r.w.end_page - 20 || (p >= r.w.first_page && p < r.w.first_page + 28);
        ck_assert_msg(ram_block_test_dirty(b, p) == written, "page %llu", (unsigned long long)p);
    }
    ck_assert_uint_eq(r.w.next_page, r.w.first_page + 28);
    ck_assert_str_eq(r.out->str, "AB");

    /* Harvest everything, run again: only the new pages are reported. */
    for (uint64_t p = 0; p < b->npages; p++) {
        ram_block_test_and_clear_dirty(b, p);
    }
    r.calls = 0;
    r.stop_after_calls = 2;
    runner_thread(&r);
    ck_assert_uint_eq(memory_global_dirty_log_sync(), 16);
    ck_assert_uint_eq(ram_block_find_next_dirty(b, 0), r.w.first_page + 28);
    ck_assert_uint_eq(ram_dirty_pages(), 16);
    bql_lock();
    memory_global_dirty_log_stop();
    bql_unlock();
    runner_free(&r);
}
END_TEST

START_TEST(test_throttle_and_prompt_stop)
{
    Runner r;

    runner_init(&r, 64 * MiB, 0, 1);                      /* 1 MiB/s = 256 pages/s */
    double start = now_s();
    r.stop_at = start + 0.5;
    runner_thread(&r);
    double took = now_s() - start;
    uint64_t pages = r.w.next_page - r.w.first_page;
    ck_assert_msg(pages >= 96 && pages <= 192, "%llu pages in 0.5 s at 256/s",
                  (unsigned long long)pages);
    ck_assert_msg(took < 0.55, "stop took %.3f s", took - 0.5);
    check_pattern(&r.w);
    runner_free(&r);
}
END_TEST

/* ---------------- the board ---------------- */

static char serial_path[64];

static MachineConfig board;         /* what machine_init gets */
static char *board_serial;

static void board_config(const char *machine, uint64_t ram, int smp, const char *opts)
{
    g_free(board_serial);
    if (serial_path[0]) {
        unlink(serial_path);
    }
    strcpy(serial_path, "/tmp/test-soft-serial-XXXXXX");
    int fd = mkstemp(serial_path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    board_serial = g_strdup_printf("file:%s", serial_path);
    board = (MachineConfig) { .type = machine, .ram_size = ram, .smp_cpus = smp,
                              .accel = "soft", .accel_opts = opts, .serial = board_serial };
}

static void board_teardown(void)
{
    g_clear_pointer(&board_serial, g_free);
    board.serial = NULL;
    unlink(serial_path);
    serial_path[0] = 0;
}

static int count_in_file(char c, bool *saw_a_first)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    int n = 0;

    g_file_get_contents(serial_path, &data, &len, NULL);
    for (gsize i = 0; i < len; i++) {
        n += data[i] == c;
    }
    if (saw_a_first) {
        *saw_a_first = len > 0 && data[0] == 'A';
    }
    return n;
}

/* Like the main loop: the BQL is released while we wait. */
static void wait_for_b(int at_least)
{
    double deadline = now_s() + 20;

    bql_unlock();
    while (count_in_file('B', NULL) < at_least && now_s() < deadline) {
        usleep(2000);
    }
    bql_lock();
    ck_assert_int_ge(count_in_file('B', NULL), at_least);
}

/* Read guest RAM like pmemsave and check it against the vCPU state. */
static void check_board_pattern(void)
{
    ck_assert_ptr_nonnull(soft_cpu_state);
    SoftWorkload copy = *soft_cpu_state;
    check_pattern(&copy);
    /* The serial file saw one 'B' per pass: nothing lost, nothing extra. */
    ck_assert_int_eq(count_in_file('B', NULL), (int)copy.passes);
    uint8_t first;
    ck_assert(guest_phys_read(1 * MiB, &first, 1, NULL));
    ck_assert_uint_eq(first, (uint8_t)(copy.passes + (copy.next_page > copy.first_page)));
}

START_TEST(test_board_pause_resume)
{
    Error *err = NULL;

    board_config("pc", 4 * MiB, 2, NULL);
    bql_lock();
    ck_assert_msg(machine_init(&board, &err), "%s", err ? error_get_pretty(err) : "");
    ck_assert_ptr_nonnull(ram_block_by_name("pc.ram"));
    ck_assert_int_eq(cpus_count(), 2);
    ck_assert_int_gt(cpus_thread_id(0), 0);
    ck_assert_int_gt(cpus_thread_id(1), 0);
    ck_assert_int_ne(cpus_thread_id(0), cpus_thread_id(1));
    ck_assert_int_eq(cpus_thread_id(2), -1);
    ck_assert(cpus_are_paused());
    ck_assert_int_eq(count_in_file('A', NULL), 0);         /* created paused */

    cpus_resume_all();
    ck_assert(!cpus_are_paused());
    wait_for_b(3);
    double t0 = now_s();
    cpus_pause_all();
    ck_assert_msg(now_s() - t0 < 0.1, "pause took %.3f s", now_s() - t0);
    ck_assert(cpus_are_paused());
    check_board_pattern();
    cpus_pause_all();                                       /* already paused: fine */

    int before = count_in_file('B', NULL);
    cpus_resume_all();
    wait_for_b(before + 2);
    cpus_pause_all();
    check_board_pattern();
    bool a_first;
    ck_assert_int_eq(count_in_file('A', &a_first), 1);
    ck_assert(a_first);

    /* Reset: the workload boots again ('A' once more, pass 0). */
    ck_assert(machine_reset(NULL));
    ck_assert_uint_eq(soft_cpu_state->passes, 0);
    cpus_resume_all();
    double deadline = now_s() + 10;
    bql_unlock();
    while (count_in_file('A', NULL) < 2 && now_s() < deadline) {
        usleep(2000);
    }
    bql_lock();
    ck_assert_int_eq(count_in_file('A', NULL), 2);
    machine_cleanup();                                      /* pauses and joins */
    ck_assert_int_eq(cpus_count(), 0);
    ck_assert_ptr_null(ram_block_first());
    ck_assert_ptr_null(accel_current());
    bql_unlock();
}
END_TEST

START_TEST(test_board_throttled_pause_is_prompt)
{
    board_config("pc", 8 * MiB, 1, "dirty-rate=1,top=6M");
    bql_lock();
    ck_assert(machine_init(&board, NULL));
    ck_assert_uint_eq(soft_cpu_state->end_page, 6 * 256);
    cpus_resume_all();
    bql_unlock();
    usleep(200 * 1000);
    bql_lock();
    double t0 = now_s();
    cpus_pause_all();
    ck_assert_msg(now_s() - t0 < 0.05, "pause took %.3f s", now_s() - t0);
    uint64_t done = soft_cpu_state->next_page - soft_cpu_state->first_page;
    ck_assert_msg(done >= 16 && done <= 128, "%llu pages in 0.2 s at 256/s",
                  (unsigned long long)done);
    check_pattern(soft_cpu_state);
    machine_cleanup();
    bql_unlock();
}
END_TEST

START_TEST(test_board_none_and_errors)
{
    Error *err = NULL;

    board_config("none", 4 * MiB, 1, NULL);
    bql_lock();
    ck_assert(machine_init(&board, &err));
    ck_assert_int_eq(cpus_count(), 0);
    ck_assert_ptr_nonnull(ram_block_by_name("ram"));
    ck_assert_ptr_null(ram_block_by_name("pc.ram"));
    ck_assert(cpus_are_paused());
    cpus_resume_all();
    cpus_pause_all();
    machine_cleanup();

    board.accel = "kvm";
    ck_assert(!machine_init(&board, &err));
    ck_assert_str_eq(error_get_pretty(err), "KVM accelerator is not available in this build");
    error_free_or_abort(&err);
    ck_assert_ptr_null(ram_block_first());

    board_config("pc", 4 * MiB, 1, "dirty-rate=fast");
    ck_assert(!machine_init(&board, &err));
    error_free_or_abort(&err);
    board_config("pc", 4 * MiB, 1, "colour=blue");
    ck_assert(!machine_init(&board, &err));
    error_free_or_abort(&err);
    board_config("q35", 4 * MiB, 1, NULL);
    ck_assert(!machine_init(&board, &err));
    error_free_or_abort(&err);
    ck_assert_ptr_null(ram_block_first());
    ck_assert_int_eq(cpus_count(), 0);

    board_config("pc", 4 * MiB, 1, "top=2M");               /* works after failures */
    ck_assert(machine_init(&board, &err));
    machine_cleanup();
    bql_unlock();
}
END_TEST

static Suite *soft_suite(void)
{
    Suite *s = suite_create("soft-workload");
    TCase *wl = tcase_create("workload");
    TCase *tc_board = tcase_create("board");

    tcase_set_timeout(wl, 60);
    tcase_add_test(wl, test_pattern_across_pause_resume);
    tcase_add_test(wl, test_top_limits_range);
    tcase_add_test(wl, test_dirty_tracking_exact);
    tcase_add_test(wl, test_throttle_and_prompt_stop);
    tcase_set_timeout(tc_board, 60);
    tcase_add_checked_fixture(tc_board, NULL, board_teardown);
    tcase_add_test(tc_board, test_board_pause_resume);
    tcase_add_test(tc_board, test_board_throttled_pause_is_prompt);
    tcase_add_test(tc_board, test_board_none_and_errors);
    suite_add_tcase(s, wl);
    suite_add_tcase(s, tc_board);
    return s;
}

int main(void)
{
    return check_run_suite(soft_suite());
}
