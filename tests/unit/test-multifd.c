/*
 * Multifd's wire format and compression (migration/multifd-packet.c,
 * multifd-compress.c, multifd_recv_packet_buffer): QEMU 7.2's bytes for the
 * initial packet and a header, every header check with its message, and
 * zlib/zstd streams carried across packets into real RAM blocks, and pages
 * handed to a UNIX socket by reference (multifd-splice.c).
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
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

/* Pages by reference: the socket holds the pages, so a reader sees what
 * they hold when it reads (what a copy would not: the test tells the two
 * apart). 300 scattered pages outrun the 1 MiB pipe, so the fill-and-drain
 * loop turns several times; a reader thread keeps the socket flowing. */
typedef struct SpliceReader {
    int fd;
    uint8_t *buf;
    size_t len;
} SpliceReader;

static void *splice_reader(void *opaque)
{
    SpliceReader *r = opaque;
    for (size_t got = 0; got < r->len;) {
        ssize_t n = read(r->fd, r->buf + got, r->len - got);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    return NULL;
}

START_TEST(test_splice_by_reference)
{
    enum { NPAGES = 300 };
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    MultifdConn c = { .fd = sv[0] };
    MultifdSplice sp;
    Error *err = NULL;
    ck_assert(multifd_splice_open(&sp, &c));

    /* One page, changed after it was queued and before it was read. */
    uint8_t *mem = aligned_alloc(PAGE, (2 * NPAGES) * PAGE);
    memset(mem, 'A', PAGE);
    struct iovec one = { mem, PAGE };
    ck_assert_int_eq(multifd_splice_writev(&sp, &c, &one, 1, &err), 1);
    memset(mem, 'B', PAGE);
    uint8_t got[PAGE];
    ck_assert_int_eq(read(sv[1], got, PAGE), PAGE);
    ck_assert_uint_eq(got[0], 'B');
    ck_assert_uint_eq(got[PAGE - 1], 'B');

    /* Every other page of a larger area, each with its own byte. */
    struct iovec iov[NPAGES];
    for (int i = 0; i < NPAGES; i++) {
        memset(mem + (size_t)2 * i * PAGE, i & 0xff, PAGE);
        iov[i] = (struct iovec) { mem + (size_t)2 * i * PAGE, PAGE };
    }
    SpliceReader r = { sv[1], g_malloc((size_t)NPAGES * PAGE), (size_t)NPAGES * PAGE };
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, splice_reader, &r), 0);
    ck_assert_int_eq(multifd_splice_writev(&sp, &c, iov, NPAGES, &err), 1);
    pthread_join(t, NULL);
    for (int i = 0; i < NPAGES; i++) {
        ck_assert_uint_eq(r.buf[(size_t)i * PAGE], (unsigned)(i & 0xff));
        ck_assert_uint_eq(r.buf[(size_t)i * PAGE + PAGE - 1], (unsigned)(i & 0xff));
    }

    /* A closed peer: the socket's error, not a fallback (splice cannot
     * refuse SIGPIPE as send does: migvm ignores it, main-loop.c). */
    close(sv[1]);
    signal(SIGPIPE, SIG_IGN);
    struct iovec again = { mem, PAGE };
    ck_assert_int_eq(multifd_splice_writev(&sp, &c, &again, 1, &err), -1);
    ck_assert_ptr_nonnull(err);
    ck_assert_msg(strstr(error_get_pretty(err), "Unable to write to socket"), "%s", error_get_pretty(err));
    error_free(err);
    multifd_splice_close(&sp);
    ck_assert_int_eq(sp.pipe[0], -1);
    close(sv[0]);
    g_free(r.buf);
    free(mem);
}
END_TEST

/* Memory the kernel will not take references to (memfd_secret: GUP refuses
 * it, a copy reads it fine): 0, nothing written and no error, so the
 * channel writes those pages as usual (multifd-send.c). */
START_TEST(test_splice_refused_memory)
{
    int sfd = (int)syscall(SYS_memfd_secret, 0);
    if (sfd < 0) {
        printf("note: no memfd_secret here (%s): refused memory not tried\n", g_strerror(errno));
        return;
    }
    ck_assert_int_eq(ftruncate(sfd, PAGE), 0);
    uint8_t *secret = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
    ck_assert(secret != MAP_FAILED);
    memset(secret, 'S', PAGE);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    MultifdConn c = { .fd = sv[0] };
    MultifdSplice sp;
    Error *err = NULL;
    ck_assert(multifd_splice_open(&sp, &c));
    struct iovec iov = { secret, PAGE };
    ck_assert_int_eq(multifd_splice_writev(&sp, &c, &iov, 1, &err), 0);
    ck_assert_ptr_null(err);
    ck_assert(multifd_conn_writev_all(&c, &iov, 1, &err));      /* what the channel then does */
    uint8_t got[PAGE];
    ck_assert_int_eq(read(sv[1], got, PAGE), PAGE);
    ck_assert_uint_eq(got[PAGE - 1], 'S');
    multifd_splice_close(&sp);
    munmap(secret, PAGE);
    close(sfd);
    close(sv[0]);
    close(sv[1]);
}
END_TEST

/* Only a plain UNIX stream socket: TCP keeps its copy, a wrapped (TLS)
 * connection owns its socket. */
START_TEST(test_splice_only_unix)
{
    MultifdSplice sp;
    int tcp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    MultifdConn c = { .fd = tcp };
    ck_assert(!multifd_splice_open(&sp, &c));
    ck_assert_int_eq(sp.pipe[0], -1);
    close(tcp);
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    static const MultifdConnIO wrapped;
    MultifdConn w = { .fd = sv[0], .io = &wrapped };
    ck_assert(!multifd_splice_open(&sp, &w));
    close(sv[0]);
    close(sv[1]);
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
    tcase_add_test(tc, test_splice_by_reference);
    tcase_add_test(tc, test_splice_refused_memory);
    tcase_add_test(tc, test_splice_only_unix);
    suite_add_tcase(s, tc);
    return check_run_suite(s);
}
