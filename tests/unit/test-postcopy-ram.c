/*
 * The destination's postcopy machinery (migration/postcopy-ram.c) on a real
 * userfaultfd: ADVISE's page-size checks, a thread touching a missing page
 * blocks and becomes one REQ_PAGES_ID on the return path (a socketpair), a
 * page placed wakes it with the right bytes, a discarded page is missing
 * again, requests made while paused are sent on resume (the first naming its
 * block), and the received maps (postcopy's and the recovery's) say which
 * pages are here.
 */
#include <check.h>
#include <poll.h>
#include <stdio.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib.h>
#include "cpus.h"
#include "memory.h"
#include "options.h"
#include "postcopy-ram.h"
#include "recv-bitmap.h"
#include "savevm.h"
#include "vm.h"
#include "unit-test.h"

#define PAGE 4096
#define PAGES 16

/* No vCPUs here (blocktime off), no capabilities. */
int cpus_count(void)
{
    return 0;
}

long cpus_thread_id(int index)
{
    return -1;
}

bool migrate_cap(MigrationCapability cap)
{
    return false;
}

/* recv-bitmap.c's source side (checkpoints) is not used here. */
void savevm_send_ping(MigStream *f, uint32_t value)
{
    ck_abort_msg("savevm_send_ping called");
}

/* memory.c's block setup asserts the BQL: this thread is the main thread. */
bool bql_locked(void)
{
    return true;
}

static RAMBlock *ram;
static int sv[2];
static MigStream *rp;

static void setup(void)
{
    Error *err = NULL;
    ram = ram_block_add("ram", 0, PAGES * PAGE, &err);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    rp = mig_stream_new_fd_writer(sv[0], true);
}

static void teardown(void)
{
    postcopy_incoming_cleanup(false);
    mig_stream_close(rp, NULL);
    close(sv[1]);
    ram_blocks_free_all();
}

/* The next return-path message within timeout_ms: its bytes, or NULL. */
static GByteArray *rp_message(int timeout_ms)
{
    uint8_t hdr[4];
    struct pollfd p = { .fd = sv[1], .events = POLLIN };
    if (poll(&p, 1, timeout_ms) != 1 || read(sv[1], hdr, 4) != 4) {
        return NULL;
    }
    size_t len = (size_t)hdr[2] << 8 | hdr[3];
    GByteArray *m = g_byte_array_new();
    g_byte_array_append(m, hdr, 4);
    uint8_t buf[512];
    ck_assert_int_eq(read(sv[1], buf, len), (ssize_t)len);
    g_byte_array_append(m, buf, len);
    return m;
}

static void expect_request(GByteArray *m, uint64_t offset, bool with_id)
{
    ck_assert_ptr_nonnull(m);
    uint8_t want[4 + 16] = { 0, with_id ? 3 : 4, 0, with_id ? 16 : 12 };
    for (int i = 0; i < 8; i++) {
        want[4 + i] = (uint8_t)(offset >> (56 - 8 * i));
    }
    want[4 + 10] = 0x10;            /* be32 length 0x1000 */
    memcpy(want + 16, "\x03ram", 4);
    ck_assert_int_eq(m->len, with_id ? 20 : 16);
    ck_assert_mem_eq(m->data, want, m->len);
    g_byte_array_free(m, true);
}

static void *touch(void *opaque)
{
    volatile uint8_t *p = opaque;
    return (void *)(uintptr_t)(*p + 1);     /* blocks while the page is missing */
}

static uint8_t joined(pthread_t t)
{
    void *r;
    pthread_join(t, &r);
    return (uint8_t)((uintptr_t)r - 1);
}

START_TEST(test_faults_requests_placement)
{
    Error *err = NULL;
    ck_assert(!postcopy_incoming_advise(0x201000, 0x1000, &err));
    ck_assert_str_eq(error_get_pretty(err), "Postcopy needs matching RAM page sizes (s=201000 d=1000)");
    error_free(err);
    err = NULL;
    ck_assert(postcopy_incoming_advise(0x1000, 0x1000, &err));
    recv_bitmap_setup();        /* the recovery's map (ram.c sets it up with the load) */
    /* precopy: page 0 and 2 arrive; then 2 is discarded (re-dirtied) */
    ram->host[0] = 0x11;
    postcopy_mark_received(ram, 0);
    ram->host[2 * PAGE] = 0x22;
    postcopy_mark_received(ram, 2 * PAGE);
    recv_bitmap_set(ram, 2);
    ck_assert(postcopy_incoming_discard("ram", 2 * PAGE, PAGE, &err));
    ck_assert(!recv_bitmap_test(ram, 2));
    ck_assert(!postcopy_incoming_discard("ram", 15 * PAGE, 2 * PAGE, &err));
    error_free(err);
    err = NULL;
    ck_assert(postcopy_incoming_listen(rp, &err));

    pthread_t t5, t7, t2;
    pthread_create(&t5, NULL, touch, ram->host + 5 * PAGE + 9);
    expect_request(rp_message(5000), 5 * PAGE, true);
    postcopy_incoming_pause();
    pthread_create(&t7, NULL, touch, ram->host + 7 * PAGE);
    GByteArray *none = rp_message(300);
    ck_assert_msg(none == NULL, "a request went out while paused");
    ck_assert(postcopy_incoming_resume(rp));
    expect_request(rp_message(5000), 5 * PAGE, true);
    expect_request(rp_message(5000), 7 * PAGE, false);

    uint8_t data[PAGE];
    memset(data, 0x55, sizeof(data));
    ck_assert(postcopy_place_page(ram, 5 * PAGE, data, &err));
    ck_assert_int_eq(joined(t5), 0x55);
    ck_assert(postcopy_place_page(ram, 7 * PAGE, NULL, &err));
    ck_assert_int_eq(joined(t7), 0);
    /* the discarded page faults again: another request */
    pthread_create(&t2, NULL, touch, ram->host + 2 * PAGE);
    expect_request(rp_message(5000), 2 * PAGE, false);
    memset(data, 0x66, sizeof(data));
    ck_assert(postcopy_place_page(ram, 2 * PAGE, data, &err));
    ck_assert_int_eq(joined(t2), 0x66);
    ck_assert_int_eq(ram->host[0], 0x11);

    unsigned long map[1];
    ck_assert_int_eq(postcopy_received_map(ram, map), PAGES);
    ck_assert_uint_eq(map[0], (1UL << 0) | (1UL << 2) | (1UL << 5) | (1UL << 7));
    /* the recovery's map follows placements (and the discard above) */
    ck_assert(recv_bitmap_test(ram, 2) && recv_bitmap_test(ram, 5) && recv_bitmap_test(ram, 7));
    ck_assert(!recv_bitmap_test(ram, 6));
    recv_bitmap_cleanup();
}
END_TEST

static Suite *postcopy_suite(void)
{
    Suite *s = suite_create("postcopy-ram");
    TCase *tc = tcase_create("postcopy-ram");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_faults_requests_placement);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    Error *err = NULL;
    if (!postcopy_ram_supported(&err)) {
        printf("SKIP: userfaultfd unavailable: %s\n", error_get_pretty(err));
        error_free(err);
        return 0;
    }
    return check_run_suite(postcopy_suite());
}
