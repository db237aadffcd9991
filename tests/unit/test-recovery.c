/*
 * The recovery handshake (migration/recovery.c) and the received / sent maps
 * (migration/recv-bitmap.c) on memory streams: the bytes QEMU 7.2 puts on the
 * wire (shared docs: postcopy.md 6.3), the source's checks of each answer,
 * and which pages a resumed precopy sends again.
 */
#include <check.h>
#include <string.h>
#include <glib.h>
#include "memory.h"
#include "recovery.h"
#include "recv-bitmap.h"
#include "savevm.h"
#include "vm.h"
#include "unit-test.h"

#define PAGES 100           /* 13 bytes of map, 16 on the wire */

/* savevm.c's registry wants the BQL, which this single thread stands for. */
bool bql_locked(void)
{
    return true;
}

static RAMBlock *mem;

static void setup(void)
{
    Error *err = NULL;
    mem = ram_block_add("mem", 0, PAGES * MIGVM_PAGE_SIZE, &err);
    ck_assert_ptr_null(err);
}

static void teardown(void)
{
    recv_bitmap_cleanup();
    sent_bitmap_cleanup();
    ram_blocks_free_all();
}

static GByteArray *bytes_of(MigStream *w)
{
    size_t len;
    const uint8_t *d = mig_stream_mem_data(w, &len);
    GByteArray *a = g_byte_array_new();
    g_byte_array_append(a, d, len);
    mig_stream_close(w, NULL);
    return a;
}

static void put_be64(GByteArray *a, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        uint8_t b = v >> (8 * i);
        g_byte_array_append(a, &b, 1);
    }
}

/* RP RECV_BITMAP "mem" + a blob of `size` bytes holding words w0, w1. */
static void put_answer(GByteArray *a, uint64_t size, uint64_t w0, uint64_t w1, uint64_t mark)
{
    static const uint8_t head[] = { 0, 5, 0, 4, 3, 'm', 'e', 'm' };
    g_byte_array_append(a, head, sizeof(head));
    put_be64(a, size);
    uint64_t words[2] = { w0, w1 };         /* little-endian host: the wire's order */
    g_byte_array_append(a, (const uint8_t *)words, MIN(size, 16));
    put_be64(a, mark);
}

static void put_ack(GByteArray *a, uint8_t v)
{
    const uint8_t ack[] = { 0, 6, 0, 4, 0, 0, 0, v };
    g_byte_array_append(a, ack, sizeof(ack));
}

START_TEST(test_destination_answers)
{
    recv_bitmap_setup();
    recv_bitmap_set(mem, 0);
    recv_bitmap_set(mem, 5);
    recv_bitmap_set(mem, 99);
    ck_assert_uint_eq(recv_bitmap_count(mem), 3);
    static const uint8_t cmd[] = { 3, 'm', 'e', 'm' };
    MigStream *f = mig_stream_new_mem_reader(cmd, sizeof(cmd));
    MigStream *rp = mig_stream_new_mem_writer();
    Error *err = NULL;
    bool resumed = false;
    ck_assert(recovery_load_command(MIG_CMD_RECV_BITMAP, 4, f, rp, true, NULL, &resumed, &err));
    ck_assert(recovery_load_command(MIG_CMD_POSTCOPY_RESUME, 0, f, rp, true, NULL, &resumed, &err));
    ck_assert(resumed);
    mig_stream_close(f, NULL);
    GByteArray *got = bytes_of(rp);
    GByteArray *want = g_byte_array_new();
    put_answer(want, 16, 1 | 1 << 5, 1ULL << 35, RECV_BITMAP_END_MARK);
    put_ack(want, 1);
    ck_assert_uint_eq(got->len, want->len);
    ck_assert(memcmp(got->data, want->data, want->len) == 0);
    /* The captured header of QEMU 7.2's answer for "mem" (postcopy.md 6.3). */
    static const uint8_t qemu_head[] = { 0x00, 0x05, 0x00, 0x04, 0x03, 0x6d, 0x65, 0x6d };
    ck_assert(memcmp(got->data, qemu_head, sizeof(qemu_head)) == 0);
    g_byte_array_free(got, true);
    g_byte_array_free(want, true);
}
END_TEST

/* Postcopy answers from its own map (its discards clear pages). */
static uint64_t other_map(const RAMBlock *b, unsigned long *out)
{
    (void)b;
    out[0] = 0xf0;
    out[1] = 1;
    return 5;
}

START_TEST(test_destination_other_map)
{
    recv_bitmap_setup();
    recv_bitmap_set(mem, 0);
    static const uint8_t cmd[] = { 3, 'm', 'e', 'm' };
    MigStream *f = mig_stream_new_mem_reader(cmd, sizeof(cmd));
    MigStream *rp = mig_stream_new_mem_writer();
    Error *err = NULL;
    bool resumed = false;
    ck_assert(recovery_load_command(MIG_CMD_RECV_BITMAP, 4, f, rp, true, other_map, &resumed, &err));
    mig_stream_close(f, NULL);
    GByteArray *got = bytes_of(rp);
    GByteArray *want = g_byte_array_new();
    put_answer(want, 16, 0xf0, 1, RECV_BITMAP_END_MARK);
    ck_assert_uint_eq(got->len, want->len);
    ck_assert(memcmp(got->data, want->data, want->len) == 0);
    g_byte_array_free(got, true);
    g_byte_array_free(want, true);
}
END_TEST

START_TEST(test_destination_refuses)
{
    recv_bitmap_setup();
    static const uint8_t cmd[] = { 3, 'm', 'e', 'm' }, other[] = { 3, 'x', 'y', 'z' };
    struct { const uint8_t *data; uint16_t len; bool recovering; const char *err; } cases[] = {
        { cmd, 4, false, "CMD_RECV_BITMAP: only allowed in postcopy-recover state" },
        { other, 4, true, "CMD_RECV_BITMAP: failed to find block xyz" },
        { cmd, 5, true, "CMD_RECV_BITMAP: invalid length 5 for a 3-byte block name" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        MigStream *f = mig_stream_new_mem_reader(cases[i].data, 4);
        MigStream *rp = mig_stream_new_mem_writer();
        Error *err = NULL;
        bool resumed = false;
        ck_assert(!recovery_load_command(MIG_CMD_RECV_BITMAP, cases[i].len, f, rp, cases[i].recovering,
                                         NULL, &resumed, &err));
        ck_assert_str_eq(error_get_pretty(err), cases[i].err);
        error_free(err);
        mig_stream_close(f, NULL);
        mig_stream_close(rp, NULL);
    }
    /* RESUME outside recovery: ignored, as QEMU 7.2 (a warning, no answer). */
    MigStream *rp = mig_stream_new_mem_writer();
    bool resumed = false;
    Error *err = NULL;
    ck_assert(recovery_load_command(MIG_CMD_POSTCOPY_RESUME, 0, NULL, rp, false, NULL, &resumed, &err));
    ck_assert(!resumed);
    GByteArray *got = bytes_of(rp);
    ck_assert_uint_eq(got->len, 0);
    g_byte_array_free(got, true);
}
END_TEST

/* Run the source's handshake against canned answers; returns its error or NULL. */
static char *source_handshake(GByteArray *answers, bool precopy, GByteArray **sent)
{
    MigStream *f = mig_stream_new_mem_writer();
    MigStream *rp = mig_stream_new_mem_reader(answers->data, answers->len);
    Error *err = NULL;
    uint64_t marked = 0;
    bool ok = recovery_source_handshake(f, rp, precopy, &marked, &err);
    ck_assert(ok == !err);
    mig_stream_close(rp, NULL);
    GByteArray *out = bytes_of(f);
    if (sent) {
        *sent = out;
    } else {
        g_byte_array_free(out, true);
    }
    char *msg = err ? g_strdup(error_get_pretty(err)) : NULL;
    error_free(err);
    return msg;
}

START_TEST(test_source_handshake)
{
    GByteArray *a = g_byte_array_new();
    static const uint8_t pong[] = { 0, 2, 0, 4, 0, 0, 0, 1 };
    g_byte_array_append(a, pong, sizeof(pong));         /* PONGs may come first */
    put_answer(a, 16, ~0ULL & ~(1ULL << 7), ~0ULL & ~(1ULL << 33), RECV_BITMAP_END_MARK);
    put_ack(a, 1);
    ram_block_clear_all_dirty(mem);
    GByteArray *sent = NULL;
    char *err = source_handshake(a, false, &sent);
    ck_assert_ptr_null(err);
    /* The captured forward bytes of QEMU 7.2 (postcopy.md 6.3). */
    static const uint8_t want[] = { 0x08, 0x00, 0x0a, 0x00, 0x04, 0x03, 0x6d, 0x65, 0x6d,
                                    0x08, 0x00, 0x09, 0x00, 0x00 };
    ck_assert_uint_eq(sent->len, sizeof(want));
    ck_assert(memcmp(sent->data, want, sizeof(want)) == 0);
    /* Pages not received are to send: 7, 97 (64 + 33); nothing past the block. */
    ck_assert_uint_eq(ram_block_dirty_pages(mem), 2);
    ck_assert(ram_block_test_dirty(mem, 7));
    ck_assert(ram_block_test_dirty(mem, 97));
    g_byte_array_free(sent, true);
    g_byte_array_free(a, true);
}
END_TEST

START_TEST(test_source_checks)
{
    struct { uint64_t size, mark; uint8_t ack; const char *block; const char *err; } cases[] = {
        { 8, RECV_BITMAP_END_MARK, 1, "mem",
          "Received bitmap of 'mem': bitmap size mismatch (0x8 bytes, expected 0x10)" },
        { 16, 0x0123456789ABCDEEULL, 1, "mem", "Received bitmap of 'mem': end mark incorrect (0x123456789abcdee)" },
        { 16, RECV_BITMAP_END_MARK, 2, "mem", "illegal resume_ack value 2" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GByteArray *a = g_byte_array_new();
        put_answer(a, cases[i].size, 0, 0, cases[i].mark);
        put_ack(a, cases[i].ack);
        char *err = source_handshake(a, false, NULL);
        ck_assert_str_eq(err, cases[i].err);
        g_free(err);
        g_byte_array_free(a, true);
    }
    /* An answer for a block it did not ask about; a destination that hangs up. */
    GByteArray *a = g_byte_array_new();
    static const uint8_t wrong[] = { 0, 5, 0, 4, 3, 'x', 'y', 'z' };
    g_byte_array_append(a, wrong, sizeof(wrong));
    char *err = source_handshake(a, false, NULL);
    ck_assert_str_eq(err, "recovery: received bitmap for unexpected RAM block 'xyz'");
    g_free(err);
    g_byte_array_set_size(a, 0);
    err = source_handshake(a, false, NULL);
    ck_assert(err && strstr(err, "recovery: Failed to read from the return path"));
    g_free(err);
    g_byte_array_free(a, true);
}
END_TEST

/* A precopy resume also resends pages sent more than once since the last
 * acknowledged checkpoint: the destination has them, maybe stale. */
START_TEST(test_resent_pages)
{
    sent_bitmap_setup();
    sent_bitmap_note(mem, 3);
    sent_bitmap_note(mem, 3);       /* re-sent before any checkpoint */
    sent_bitmap_note(mem, 4);       /* sent once */
    MigStream *f = mig_stream_new_mem_writer();
    MigStream *none = mig_stream_new_mem_reader(NULL, 0);
    sent_bitmap_checkpoint(f, none);            /* PING(0x6d720001), no PONG yet */
    sent_bitmap_note(mem, 4);       /* re-sent after it */
    GByteArray *sent = bytes_of(f);
    static const uint8_t ping[] = { 0x08, 0x00, 0x02, 0x00, 0x04, 0x6d, 0x72, 0x00, 0x01 };
    ck_assert_uint_eq(sent->len, sizeof(ping));
    ck_assert(memcmp(sent->data, ping, sizeof(ping)) == 0);
    g_byte_array_free(sent, true);
    mig_stream_close(none, NULL);

    GByteArray *a = g_byte_array_new();
    put_answer(a, 16, ~0ULL, ~0ULL, RECV_BITMAP_END_MARK);      /* all received */
    put_ack(a, 1);
    ram_block_clear_all_dirty(mem);
    char *err = source_handshake(a, true, NULL);
    ck_assert_ptr_null(err);
    ck_assert_uint_eq(ram_block_dirty_pages(mem), 2);
    ck_assert(ram_block_test_dirty(mem, 3) && ram_block_test_dirty(mem, 4));

    /* PONG(0x6d720001): page 3 (re-sent before the PING) arrived; page 4
     * (after it) waits for the next checkpoint. */
    static const uint8_t pong[] = { 0, 2, 0, 4, 0x6d, 0x72, 0x00, 0x01 };
    MigStream *rp = mig_stream_new_mem_reader(pong, sizeof(pong));
    f = mig_stream_new_mem_writer();
    ck_assert(mig_stream_readable(rp));
    sent_bitmap_checkpoint(f, rp);
    mig_stream_close(rp, NULL);
    mig_stream_close(f, NULL);
    ram_block_clear_all_dirty(mem);
    err = source_handshake(a, true, NULL);
    ck_assert_ptr_null(err);
    ck_assert_uint_eq(ram_block_dirty_pages(mem), 1);
    ck_assert(ram_block_test_dirty(mem, 4));

    /* Without precopy (postcopy recovery) only the received map counts. */
    ram_block_clear_all_dirty(mem);
    err = source_handshake(a, false, NULL);
    ck_assert_ptr_null(err);
    ck_assert_uint_eq(ram_block_dirty_pages(mem), 0);
    g_byte_array_free(a, true);
}
END_TEST

static Suite *recovery_suite(void)
{
    Suite *s = suite_create("recovery");
    TCase *tc = tcase_create("handshake");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_destination_answers);
    tcase_add_test(tc, test_destination_other_map);
    tcase_add_test(tc, test_destination_refuses);
    tcase_add_test(tc, test_source_handshake);
    tcase_add_test(tc, test_source_checks);
    tcase_add_test(tc, test_resent_pages);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(recovery_suite());
}
