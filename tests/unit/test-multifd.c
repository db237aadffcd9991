/*
 * Multifd's wire format and compression (migration/multifd-packet.c,
 * multifd-compress.c, multifd_recv_packet_buffer): QEMU 7.2's bytes for the
 * initial packet and a header, every header check with its message, and
 * zlib/zstd streams carried across packets into real RAM blocks.
 */
#include <check.h>
#include <string.h>
#include "multifd.h"
#include "memory.h"
#include "vm.h"
#include "unit-test.h"

bool bql_locked(void)
{
    return true;
}

#define PAGE MIGVM_PAGE_SIZE

static RAMBlock *blk;

static void setup(void)
{
    Error *err = NULL;
    blk = ram_block_add("mem", 0, 1 << 20, &err);
    ck_assert_ptr_null(err);
}

static void teardown(void)
{
    ram_blocks_free_all();
}

/* call must fail, setting err to a message containing text (err is reset). */
#define EXPECT_ERROR(call, text) do {                                                                   \
        bool ok_ = (call);                                                                              \
        ck_assert(!ok_);                                                                                \
        ck_assert_ptr_nonnull(err);                                                                     \
        ck_assert_msg(strstr(error_get_pretty(err), text), "got '%s', want '%s'", error_get_pretty(err), \
                      text);                                                                            \
        error_free(err);                                                                                \
        err = NULL;                                                                                     \
    } while (0)

START_TEST(test_init_packet_bytes)
{
    uint8_t buf[MULTIFD_INIT_SIZE];
    MultifdInit in = { .id = 1 }, out;
    multifd_init_encode(&in, buf);
    static const uint8_t head[] = { 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1 };
    ck_assert(memcmp(buf, head, sizeof(head)) == 0);
    ck_assert_uint_eq(buf[24], 1);
    for (int i = 25; i < MULTIFD_INIT_SIZE; i++) {
        ck_assert_uint_eq(buf[i], 0);
    }
    Error *err = NULL;
    ck_assert(multifd_init_parse(buf, &out, &err));
    ck_assert_uint_eq(out.id, 1);
    buf[3] = 0x45;
    EXPECT_ERROR(multifd_init_parse(buf, &out, &err), "received packet magic 11223345 expected 11223344");
    buf[3] = 0x44;
    buf[7] = 2;
    EXPECT_ERROR(multifd_init_parse(buf, &out, &err), "multifd: received packet version 2 expected 1");
}
END_TEST

/* The recorded first page packet of shared docs multifd.md section 6. */
START_TEST(test_header_bytes)
{
    static MultifdPacket p, q;
    uint8_t buf[MULTIFD_HEADER_SIZE];
    p.pages_alloc = 128;
    p.normal_pages = 128;
    p.next_packet_size = 0x80000;
    p.packet_num = 2;
    strcpy(p.ramblock, "mem");
    for (int i = 0; i < 128; i++) {
        p.offset[i] = (uint64_t)i * PAGE;
    }
    multifd_packet_encode(&p, buf);
    ck_assert_uint_eq(MULTIFD_HEADER_SIZE, 1344);
    static const uint8_t head[] = { 0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x80,
                                    0, 0, 0, 0x80, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2 };
    ck_assert(memcmp(buf, head, sizeof(head)) == 0);
    ck_assert(memcmp(buf + 64, "mem\0", 4) == 0);
    ck_assert_uint_eq(buf[320 + 8 + 6], 0x10);      /* offset[1] = 0x1000 */
    Error *err = NULL;
    ck_assert(multifd_packet_parse(buf, &q, &err));
    ck_assert_uint_eq(q.normal_pages, 128);
    ck_assert_uint_eq(q.offset[127], 127 * PAGE);
    RAMBlock *b;
    ck_assert(multifd_packet_check(&q, 0, MULTIFD_FLAG_NOCOMP, &b, &err));
    ck_assert_ptr_eq(b, blk);
}
END_TEST

START_TEST(test_header_checks)
{
    static MultifdPacket p, q;
    uint8_t buf[MULTIFD_HEADER_SIZE];
    Error *err = NULL;
    RAMBlock *b;
    p.pages_alloc = 128;
    p.normal_pages = 1;
    strcpy(p.ramblock, "mem");
    multifd_packet_encode(&p, buf);

    buf[15] = 129;      /* pages_alloc */
    EXPECT_ERROR(multifd_packet_parse(buf, &q, &err), "received packet with size 129 and expected a size of 128");
    buf[15] = 2;
    buf[19] = 3;        /* normal_pages > pages_alloc */
    EXPECT_ERROR(multifd_packet_parse(buf, &q, &err), "with 3 pages and expected maximum pages are 2");

    p.normal_pages = 1;
    strcpy(p.ramblock, "nosuch");
    multifd_packet_encode(&p, buf);
    ck_assert(multifd_packet_parse(buf, &q, &err));
    EXPECT_ERROR(multifd_packet_check(&q, 0, 0, &b, &err), "multifd: unknown ram block nosuch");

    strcpy(p.ramblock, "mem");
    p.offset[0] = 1 << 20;      /* one past the last page */
    multifd_packet_encode(&p, buf);
    ck_assert(multifd_packet_parse(buf, &q, &err));
    EXPECT_ERROR(multifd_packet_check(&q, 0, 0, &b, &err), "multifd: offset too long 1048576 (max ff000)");
    p.offset[0] = 12;           /* not on a page */
    multifd_packet_encode(&p, buf);
    ck_assert(multifd_packet_parse(buf, &q, &err));
    EXPECT_ERROR(multifd_packet_check(&q, 0, 0, &b, &err), "multifd: offset too long 12");

    p.offset[0] = 0;
    p.flags = MULTIFD_FLAG_ZLIB;
    multifd_packet_encode(&p, buf);
    ck_assert(multifd_packet_parse(buf, &q, &err));
    EXPECT_ERROR(multifd_packet_check(&q, 3, MULTIFD_FLAG_NOCOMP, &b, &err),
                 "multifd 3: flags received 2 flags expected 0");
    p.next_packet_size = MULTIFD_MAX_COMPRESSED + 1;
    multifd_packet_encode(&p, buf);
    ck_assert(multifd_packet_parse(buf, &q, &err));
    EXPECT_ERROR(multifd_packet_check(&q, 0, MULTIFD_FLAG_ZLIB, &b, &err), "exceeds");

    /* An empty packet names nothing: its stale name and flags are ignored. */
    p.normal_pages = 0;
    p.flags = MULTIFD_FLAG_SYNC | MULTIFD_FLAG_ZSTD;
    strcpy(p.ramblock, "stale");
    multifd_packet_encode(&p, buf);
    ck_assert(multifd_packet_parse(buf, &q, &err));
    ck_assert(multifd_packet_check(&q, 0, MULTIFD_FLAG_NOCOMP, &b, &err));
    ck_assert_ptr_null(b);
}
END_TEST

/* Packets of pages from a source buffer, compressed on one stream, loaded
 * into the block through the buffer entry point, three packets in a row. */
static void codec_round_trip(MultiFDCompression method)
{
    Error *err = NULL;
    MultifdCodec *enc = multifd_codec_new_encoder(method, 1, &err);
    MultifdCodec *dec = multifd_codec_new_decoder(method, &err);
    ck_assert_ptr_null(err);
    uint8_t *src = g_malloc(8 * PAGE);
    static MultifdPacket p;
    uint8_t *pkt = g_malloc(MULTIFD_HEADER_SIZE + MULTIFD_MAX_COMPRESSED);
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < 8 * PAGE; i++) {
            src[i] = (uint8_t)(i * 7 + round * 13 + (i >> 9));
        }
        uint8_t *pages[8];
        p.pages_alloc = 128;
        p.normal_pages = 8;
        p.flags = multifd_compression_flag(method);
        strcpy(p.ramblock, "mem");
        for (int i = 0; i < 8; i++) {
            pages[i] = src + i * PAGE;
            p.offset[i] = (uint64_t)(40 + 3 * i + round) * PAGE;
        }
        const uint8_t *out;
        ck_assert(multifd_codec_compress(enc, pages, 8, &out, &p.next_packet_size, &err));
        ck_assert_uint_lt(p.next_packet_size, 8 * PAGE);
        multifd_packet_encode(&p, pkt);
        memcpy(pkt + MULTIFD_HEADER_SIZE, out, p.next_packet_size);
        ck_assert_msg(multifd_recv_packet_buffer(dec, p.flags, pkt, MULTIFD_HEADER_SIZE + p.next_packet_size, &err),
                      "%s", err ? error_get_pretty(err) : "");
        for (int i = 0; i < 8; i++) {
            ck_assert(memcmp(blk->host + p.offset[i], src + i * PAGE, PAGE) == 0);
        }
    }
    /* A payload cut short never yields whole pages. */
    uint8_t *pages[1] = { src };
    const uint8_t *out;
    p.normal_pages = 1;
    ck_assert(multifd_codec_compress(enc, pages, 1, &out, &p.next_packet_size, &err));
    multifd_packet_encode(&p, pkt);
    memcpy(pkt + MULTIFD_HEADER_SIZE, out, p.next_packet_size);
    p.next_packet_size /= 2;
    multifd_packet_encode(&p, pkt);
    EXPECT_ERROR(multifd_recv_packet_buffer(dec, p.flags, pkt, MULTIFD_HEADER_SIZE + p.next_packet_size, &err),
                 "multifd");
    g_free(pkt);
    g_free(src);
    multifd_codec_free(enc);
    multifd_codec_free(dec);
}

START_TEST(test_zlib)
{
    codec_round_trip(MULTIFD_COMPRESSION_ZLIB);
}
END_TEST

START_TEST(test_zstd)
{
    codec_round_trip(MULTIFD_COMPRESSION_ZSTD);
}
END_TEST

/* zlib as QEMU 7.2 writes it: the first payload opens with the zlib header
 * 78 01 (level 1) and every payload ends with the sync flush 00 00 ff ff. */
START_TEST(test_zlib_framing)
{
    Error *err = NULL;
    MultifdCodec *enc = multifd_codec_new_encoder(MULTIFD_COMPRESSION_ZLIB, 1, &err);
    uint8_t *page = g_malloc0(PAGE);
    uint8_t *pages[1] = { page };
    const uint8_t *out;
    uint32_t len;
    ck_assert(multifd_codec_compress(enc, pages, 1, &out, &len, &err));
    ck_assert(out[0] == 0x78 && out[1] == 0x01);
    ck_assert(memcmp(out + len - 4, "\x00\x00\xff\xff", 4) == 0);
    ck_assert(multifd_codec_compress(enc, pages, 1, &out, &len, &err));
    ck_assert(out[0] != 0x78);
    ck_assert(memcmp(out + len - 4, "\x00\x00\xff\xff", 4) == 0);
    g_free(page);
    multifd_codec_free(enc);
}
END_TEST

START_TEST(test_plain_buffer)
{
    static MultifdPacket p;
    uint8_t *pkt = g_malloc0(MULTIFD_HEADER_SIZE + 2 * PAGE);
    Error *err = NULL;
    p.pages_alloc = 128;
    p.normal_pages = 2;
    strcpy(p.ramblock, "mem");
    p.offset[0] = 5 * PAGE;
    p.offset[1] = 5 * PAGE;      /* a page twice (QEMU 7.2 may): the later copy wins */
    multifd_packet_encode(&p, pkt);
    memset(pkt + MULTIFD_HEADER_SIZE, 0xaa, PAGE);
    memset(pkt + MULTIFD_HEADER_SIZE + PAGE, 0xbb, PAGE);
    ck_assert(multifd_recv_packet_buffer(NULL, 0, pkt, MULTIFD_HEADER_SIZE + 2 * PAGE, &err));
    ck_assert_uint_eq(blk->host[5 * PAGE + 17], 0xbb);
    EXPECT_ERROR(multifd_recv_packet_buffer(NULL, 0, pkt, MULTIFD_HEADER_SIZE + PAGE, &err), "cut short");
    EXPECT_ERROR(multifd_recv_packet_buffer(NULL, 0, pkt, 100, &err), "shorter than its header");
    g_free(pkt);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("multifd");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_init_packet_bytes);
    tcase_add_test(tc, test_header_bytes);
    tcase_add_test(tc, test_header_checks);
    tcase_add_test(tc, test_zlib);
    tcase_add_test(tc, test_zstd);
    tcase_add_test(tc, test_zlib_framing);
    tcase_add_test(tc, test_plain_buffer);
    suite_add_tcase(s, tc);
    return check_run_suite(s);
}
