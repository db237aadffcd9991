/*
 * The block layer (block/): -drive options and default names, synchronous
 * and asynchronous I/O on raw images, O_DIRECT with unaligned requests,
 * read-only drives, drain, dirty bitmaps (marking, count, next, merge across
 * granularities, the stream's bit order), the error policy and its event.
 *
 * The main loop's work queue and the monitor's event sink are stubbed: the
 * test thread plays the main thread and holds the BQL.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <glib.h>
#include <json-c/json.h>
#include "block.h"
#include "qapi-commands.h"
#include "monitor.h"
#include "vm.h"
#include "unit-test.h"

#define MiB (1024 * 1024)

/* ---- stubs ---------------------------------------------------------------------- */

static pthread_mutex_t sched_lock = PTHREAD_MUTEX_INITIALIZER;
static GQueue scheduled = G_QUEUE_INIT;        /* pairs fn, opaque [sched_lock] */
static GString *events;
static int vm_stops;

void main_loop_schedule(void (*fn)(void *opaque), void *opaque)
{
    pthread_mutex_lock(&sched_lock);
    g_queue_push_tail(&scheduled, (gpointer)fn);
    g_queue_push_tail(&scheduled, opaque);
    pthread_mutex_unlock(&sched_lock);
}

/* What the main loop would do: run what was scheduled so far. */
static void run_scheduled(void)
{
    for (;;) {
        pthread_mutex_lock(&sched_lock);
        void (*fn)(void *) = (void (*)(void *))g_queue_pop_head(&scheduled);
        void *opaque = g_queue_pop_head(&scheduled);
        pthread_mutex_unlock(&sched_lock);
        if (!fn) {
            return;
        }
        fn(opaque);
    }
}

void qapi_event_emit(const char *event_name, json_object *data)
{
    g_string_append_printf(events, "%s %s\n", event_name,
                           json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(data);
}

bool runstate_is_running(void)
{
    return true;
}

bool vm_stop(RunState state, Error **errp)
{
    ck_assert_int_eq(state, RUN_STATE_IO_ERROR);
    vm_stops++;
    return true;
}

/* ---- helpers --------------------------------------------------------------------- */

static char *dir;

static void setup(void)
{
    /* Not /tmp: O_DIRECT needs a file system that supports it (tmpfs does not). */
    dir = g_strdup("build-test-block-XXXXXX");
    ck_assert_ptr_nonnull(g_mkdtemp(dir));
    events = g_string_new(NULL);
    vm_stops = 0;
    bql_lock();
}

static void teardown(void)
{
    block_cleanup();
    run_scheduled();
    bql_unlock();
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
    g_free(dir);
    g_string_free(events, TRUE);
}

/* A file of `size` bytes, byte i = pattern(i). */
static char *make_image(const char *name, size_t size)
{
    char *path = g_strdup_printf("%s/%s", dir, name);
    g_autofree uint8_t *data = g_malloc(size);

    for (size_t i = 0; i < size; i++) {
        data[i] = (uint8_t)(i * 7 + i / 4096);
    }
    ck_assert(g_file_set_contents(path, (char *)data, size, NULL));
    return path;
}

/* fmt with each "%s" replaced by path. */
static char *subst(const char *fmt, const char *path)
{
    g_auto(GStrv) parts = g_strsplit(fmt, "%s", -1);

    return g_strjoinv(path, parts);
}

static BlockBackend *drive(const char *fmt, const char *path, Error **errp)
{
    g_autofree char *opts = subst(fmt, path);

    return drive_new(opts, errp);
}

static BlockBackend *drive_ok(const char *fmt, const char *path)
{
    Error *err = NULL;
    BlockBackend *blk = drive(fmt, path, &err);

    ck_assert_msg(blk != NULL, "%s: %s", fmt, err ? error_get_pretty(err) : "?");
    return blk;
}

static void drive_fails(const char *opts, const char *want)
{
    Error *err = NULL;

    ck_assert_msg(drive_new(opts, &err) == NULL, "'%s' accepted", opts);
    ck_assert_msg(!strcmp(error_get_pretty(err), want), "'%s': got '%s'", opts, error_get_pretty(err));
    error_free(err);
}

/* ---- -drive ---------------------------------------------------------------------- */

START_TEST(test_drive_names)
{
    g_autofree char *img = make_image("a.img", 4096);
    BlockBackend *a = drive_ok("file=%s,format=raw", img);
    BlockBackend *b = drive_ok("file=%s,format=raw,if=ide", img);
    BlockBackend *c = drive_ok("file=%s,format=raw,if=ide", img);
    BlockBackend *v = drive_ok("file=%s,format=raw,if=virtio", img);
    BlockBackend *n0 = drive_ok("file=%s,format=raw,if=none", img);
    BlockBackend *n1 = drive_ok("file=%s,format=raw,if=none", img);
    BlockBackend *d = drive_ok("file=%s,format=raw,if=none,id=disk.0,readonly=on", img);

    ck_assert_str_eq(blk_name(a), "ide0-hd0");
    ck_assert_str_eq(blk_name(b), "ide0-hd1");
    ck_assert_str_eq(blk_name(c), "ide1-hd0");
    ck_assert_str_eq(blk_name(v), "virtio0");
    ck_assert_str_eq(blk_name(n0), "none0");
    ck_assert_str_eq(blk_name(n1), "none1");
    ck_assert_str_eq(blk_interface(a), "ide");
    ck_assert_str_eq(blk_interface(d), "none");
    ck_assert_str_eq(blk_filename(d), img);
    ck_assert(blk_is_read_only(d) && !blk_is_read_only(a));
    ck_assert_int_eq(blk_getlength(a), 4096);
    ck_assert_ptr_eq(blk_by_name("disk.0"), d);
    ck_assert_ptr_null(blk_by_name("disk"));
    /* Creation order. */
    ck_assert_ptr_eq(blk_next(NULL), a);
    ck_assert_ptr_eq(blk_next(a), b);
    ck_assert_ptr_null(blk_next(d));

    Error *err = NULL;
    ck_assert(blk_attach_dev(d, "/machine/peripheral/vd", &err));
    ck_assert_str_eq(blk_get_attached_dev(d), "/machine/peripheral/vd");
    ck_assert(!blk_attach_dev(d, "other", &err));
    ck_assert_str_eq(error_get_pretty(err), "Drive 'disk.0' is already in use by another device");
    error_free(err);
}
END_TEST

START_TEST(test_drive_errors)
{
    g_autofree char *img = make_image("a.img", 4096);
    static const struct { const char *opts, *error; } cases[] = {
        { "format=raw", "A block device must be specified for \"file\"" },
        { "file=%s,format=qcow2", "Image format 'qcow2' is not supported by migvm (raw only)" },
        { "file=%s,format=foo", "Unknown driver 'foo'" },
        { "file=%s,format=raw,if=foo", "unsupported bus type 'foo'" },
        { "file=%s,format=raw,if=scsi", "machine type does not support if=scsi" },
        { "file=%s,format=raw,cache=bogus", "invalid cache option" },
        { "file=%s,format=raw,readonly=maybe", "Parameter 'read-only' expects 'on' or 'off'" },
        { "file=%s,format=raw,bogus=1", "Block format 'raw' does not support the option 'bogus'" },
        { "file=%s,format=raw,werror=foo", "'foo' invalid write error action" },
        { "file=%s,format=raw,rerror=enospc", "'enospc' invalid read error action" },
        { "file=%s,format=raw,aio=foo", "invalid aio option" },
        { "file=%s,format=raw,aio=native",
          "aio=native was specified, but it requires cache.direct=on, which was not specified." },
        { "file=%s,format=raw,id=1a", "Parameter 'id' expects an identifier\nIdentifiers consist of letters, "
                                      "digits, '-', '.', '_', starting with a letter." },
        { "file=%s,format=raw,media=cdrom", "media=cdrom is not supported by migvm" },
        { "file=%s.missing,format=raw", NULL },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *opts = subst(cases[i].opts, img);
        g_autofree char *missing = g_strdup_printf("Could not open '%s.missing': No such file or directory",
                                                   img);
        drive_fails(opts, cases[i].error ? cases[i].error : missing);
    }
    drive_ok("file=%s,format=raw,if=none,id=x,index=0", img);
    g_autofree char *dup_id = subst("file=%s,format=raw,if=none,id=x", img);
    g_autofree char *dup_index = subst("file=%s,format=raw,if=none,index=0", img);
    drive_fails(dup_id, "Duplicate ID 'x' for drive");
    drive_fails(dup_index, "drive with bus=0, unit=0 (index=0) exists");
    /* Everything QEMU accepts that migvm can honour. */
    drive_ok("file=%s,format=raw,if=none,id=y,werror=stop,rerror=ignore,aio=threads,cache=unsafe,"
             "media=disk,discard=unmap,detect-zeroes=off,snapshot=off", img);
    ck_assert_ptr_null(blk_by_name("none0"));
}
END_TEST

/* ---- synchronous I/O ------------------------------------------------------------ */

static void check_rw(BlockBackend *blk, int64_t offset, size_t len, int seed)
{
    g_autofree uint8_t *out = g_malloc(len + 1), *in = g_malloc(len + 1);

    for (size_t i = 0; i < len; i++) {
        out[i] = (uint8_t)(seed + i * 13);
    }
    /* +1: deliberately misaligned buffers. */
    memcpy(in + 1, out, len);
    ck_assert_int_eq(blk_pwrite(blk, offset, in + 1, len), 0);
    memset(in, 0, len + 1);
    ck_assert_int_eq(blk_pread(blk, offset, in + 1, len), 0);
    ck_assert_msg(memcmp(in + 1, out, len) == 0, "data differs at %lld+%zu", (long long)offset, len);
}

START_TEST(test_sync_io)
{
    g_autofree char *img = make_image("a.img", 1 * MiB);
    BlockBackend *blk = drive_ok("file=%s,format=raw,if=none,id=d", img);
    uint8_t buf[4096];

    check_rw(blk, 0, 4096, 1);
    check_rw(blk, 1000, 3000, 2);
    check_rw(blk, 1 * MiB - 10, 10, 3);
    /* Beyond the end: EIO, as QEMU. */
    ck_assert_int_eq(blk_pread(blk, 1 * MiB - 10, buf, 11), -EIO);
    ck_assert_int_eq(blk_pwrite(blk, 1 * MiB, buf, 1), -EIO);
    ck_assert_int_eq(blk_pread(blk, -1, buf, 1), -EIO);
    ck_assert_int_eq(blk_pwrite_zeroes(blk, 4096, 8192), 0);
    ck_assert_int_eq(blk_pwrite_zeroes(blk, 100, 10), 0);
    ck_assert_int_eq(blk_pread(blk, 0, buf, 200), 0);
    for (int i = 100; i < 110; i++) {
        ck_assert_int_eq(buf[i], 0);
    }
    ck_assert_int_eq(buf[110], (uint8_t)(1 + 110 * 13));
    ck_assert_int_eq(blk_pread(blk, 4096, buf, 4096), 0);
    for (int i = 0; i < 4096; i++) {
        ck_assert_int_eq(buf[i], 0);
    }
    ck_assert_int_eq(blk_flush(blk), 0);

    /* A size that is not whole sectors: rounded up, the tail reads as zeros. */
    g_autofree char *odd = make_image("odd.img", 1000);
    BlockBackend *o = drive_ok("file=%s,format=raw,if=none,id=o", odd);
    ck_assert_int_eq(blk_getlength(o), 1024);
    memset(buf, 0xff, 24);
    ck_assert_int_eq(blk_pread(o, 1000, buf, 24), 0);
    for (int i = 0; i < 24; i++) {
        ck_assert_int_eq(buf[i], 0);
    }
    ck_assert_int_eq(blk_pread(o, 999, buf, 1), 0);
    ck_assert_int_eq(buf[0], (uint8_t)(999 * 7));
}
END_TEST

/* cache=none: O_DIRECT, every unaligned request bounced; the file must hold
 * exactly what a plain write would have produced. */
/* shmem has no FALLOC_FL_ZERO_RANGE: write-zeroes still zeroes (block
 * migration's zero chunks on an image in /dev/shm). */
START_TEST(test_zeroes_on_shmem)
{
    int fd = memfd_create("test-block", 0);
    uint8_t buf[8192];

    ck_assert_int_ge(fd, 0);
    memset(buf, 0xa5, sizeof(buf));
    ck_assert_int_eq(ftruncate(fd, 1 * MiB), 0);
    ck_assert_int_eq(pwrite(fd, buf, sizeof(buf), 4096), (ssize_t)sizeof(buf));
    g_autofree char *path = g_strdup_printf("/proc/self/fd/%d", fd);
    BlockBackend *blk = drive_ok("file=%s,format=raw,if=none,id=m", path);
    close(fd);
    ck_assert_int_eq(blk_pwrite_zeroes(blk, 4096, 4096), 0);
    ck_assert_int_eq(blk_pread(blk, 4096, buf, sizeof(buf)), 0);
    for (int i = 0; i < 4096; i++) {
        ck_assert_int_eq(buf[i], 0);
    }
    ck_assert_int_eq(buf[4096], 0xa5);
}
END_TEST

START_TEST(test_direct_unaligned)
{
    const size_t size = 3 * MiB;
    g_autofree char *img = make_image("d.img", size);
    g_autofree uint8_t *expect = g_malloc(size), *got = g_malloc(size);
    gsize len;
    g_autofree char *contents = NULL;
    BlockBackend *blk = drive_ok("file=%s,format=raw,if=none,id=d,cache=none", img);
    static const struct { int64_t off; size_t len; } reqs[] = {
        { 0, 512 }, { 1, 1 }, { 511, 2 }, { 4095, 4098 }, { 8192, 4096 }, { 100000, 1500000 },
        { 3 * MiB - 1, 1 },
    };

    ck_assert(g_file_get_contents(img, &contents, &len, NULL));
    memcpy(expect, contents, size);
    for (size_t i = 0; i < G_N_ELEMENTS(reqs); i++) {
        for (size_t j = 0; j < reqs[i].len; j++) {
            expect[reqs[i].off + j] = (uint8_t)(i * 31 + j * 13);
        }
        check_rw(blk, reqs[i].off, reqs[i].len, (int)(i * 31));
    }
    ck_assert_int_eq(blk_pread(blk, 0, got, size), 0);
    ck_assert(memcmp(got, expect, size) == 0);
    block_cleanup();
    g_free(contents);
    ck_assert(g_file_get_contents(img, &contents, &len, NULL));
    ck_assert_uint_eq(len, size);
    ck_assert(memcmp(contents, expect, size) == 0);
}
END_TEST

START_TEST(test_read_only)
{
    g_autofree char *img = make_image("r.img", 8192);
    BlockBackend *blk = drive_ok("file=%s,format=raw,if=none,id=r,readonly=on", img);
    uint8_t buf[512] = { 0 };

    ck_assert_int_eq(blk_pread(blk, 0, buf, sizeof(buf)), 0);
    ck_assert_int_eq(buf[1], 7);
    ck_assert_int_eq(blk_pwrite(blk, 0, buf, sizeof(buf)), -EPERM);
    ck_assert_int_eq(blk_pwrite_zeroes(blk, 0, 512), -EPERM);
    ck_assert_int_eq(blk_flush(blk), 0);
    /* The file was opened read-only: a file we may not write still works. */
    ck_assert_int_eq(chmod(img, 0444), 0);
    drive_ok("file=%s,format=raw,if=none,id=r2,readonly=on", img);
}
END_TEST

/* ---- asynchronous I/O ----------------------------------------------------------- */

typedef struct Done {
    int calls;
    int ret;
} Done;

static void done_cb(void *opaque, int ret)
{
    Done *d = opaque;

    ck_assert(bql_locked());
    d->calls++;
    d->ret = ret;
}

START_TEST(test_aio_drain)
{
    enum { N = 64 };
    g_autofree char *img = make_image("a.img", 4 * MiB);
    BlockBackend *blk = drive_ok("file=%s,format=raw,if=none,id=d", img);
    static uint8_t bufs[N][4096];
    Done done[N] = { 0 }, flush = { 0 }, past = { 0 };

    for (int i = 0; i < N; i++) {
        memset(bufs[i], i + 1, sizeof(bufs[i]));
        struct iovec v[2] = { { bufs[i], 1000 }, { bufs[i] + 1000, 3096 } };
        blk_aio_pwritev(blk, i * 8192, v, 2, done_cb, &done[i]);
    }
    struct iovec beyond = { bufs[0], 4096 };
    blk_aio_preadv(blk, 4 * MiB - 100, &beyond, 1, done_cb, &past);
    blk_aio_flush(blk, done_cb, &flush);
    /* Nothing runs a callback before drain or the main loop. */
    blk_drain_all();
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(done[i].calls, 1);
        ck_assert_int_eq(done[i].ret, 0);
    }
    ck_assert_int_eq(flush.calls, 1);
    ck_assert_int_eq(past.calls, 1);
    ck_assert_int_eq(past.ret, -EIO);
    /* The main loop's scheduled run finds nothing left to do. */
    run_scheduled();
    ck_assert_int_eq(done[0].calls, 1);

    /* query-blockstats counts what went through blk_aio_* (devices' requests). */
    const q_obj_query_blockstats_arg no_nodes = { 0 };
    BlockStatsList *stats = qmp_query_blockstats(&no_nodes, NULL);
    BlockDeviceStats *s = stats->value->stats;
    ck_assert_str_eq(stats->value->device, "d");
    ck_assert_int_eq(s->wr_operations, N);
    ck_assert_int_eq(s->wr_bytes, N * 4096);
    ck_assert_int_eq(s->failed_rd_operations, 1);
    ck_assert_int_eq(s->rd_operations, 0);
    ck_assert_int_eq(s->flush_operations, 1);
    ck_assert_int_eq(s->wr_highest_offset, (N - 1) * 8192 + 4096);
    ck_assert(s->wr_total_time_ns > 0 && s->has_idle_time_ns && s->idle_time_ns >= 0);
    ck_assert(strcmp(stats->value->parent->node_name, stats->value->node_name) != 0);
    qapi_free_BlockStatsList(stats);

    /* Read back asynchronously, completed by the main loop this time. */
    static uint8_t in[N][4096];
    Done rd[N] = { 0 };
    for (int i = 0; i < N; i++) {
        struct iovec v = { in[i], 4096 };
        blk_aio_preadv(blk, i * 8192, &v, 1, done_cb, &rd[i]);
    }
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int left = N; left > 0;) {
        bql_unlock();
        g_usleep(1000);
        bql_lock();
        run_scheduled();
        left = 0;
        for (int i = 0; i < N; i++) {
            left += rd[i].calls == 0;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        ck_assert_msg(now.tv_sec - start.tv_sec < 10, "%d reads never completed", left);
    }
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(rd[i].ret, 0);
        ck_assert(memcmp(in[i], bufs[i], 4096) == 0);
    }
}
END_TEST

/* A callback that submits another request: drain waits for that one too. */
typedef struct Chain {
    BlockBackend *blk;
    int left;
    uint8_t buf[512];
} Chain;

static void chain_cb(void *opaque, int ret)
{
    Chain *c = opaque;

    ck_assert_int_eq(ret, 0);
    if (--c->left > 0) {
        struct iovec v = { c->buf, sizeof(c->buf) };
        blk_aio_pwritev(c->blk, c->left * 512, &v, 1, chain_cb, c);
    }
}

START_TEST(test_drain_chained)
{
    g_autofree char *img = make_image("a.img", 64 * 1024);
    Chain c = { .blk = drive_ok("file=%s,format=raw,if=none,id=d", img), .left = 20 };
    struct iovec v = { c.buf, sizeof(c.buf) };

    blk_aio_pwritev(c.blk, 0, &v, 1, chain_cb, &c);
    blk_drain_all();
    ck_assert_int_eq(c.left, 0);
}
END_TEST

/* ---- dirty bitmaps --------------------------------------------------------------- */

START_TEST(test_bitmap_marking)
{
    g_autofree char *img = make_image("a.img", 1 * MiB + 1000);
    BlockBackend *blk = drive_ok("file=%s,format=raw,if=none,id=d", img);
    Error *err = NULL;
    BdrvDirtyBitmap *a = blk_dirty_bitmap_create(blk, 65536, "a", &err);
    BdrvDirtyBitmap *anon = blk_dirty_bitmap_create(blk, 4096, NULL, &err);
    BdrvDirtyBitmap *off = blk_dirty_bitmap_create(blk, 512, "off", &err);
    uint8_t buf[4096] = { 0 };

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(blk_dirty_bitmap_create(blk, 65536, "a", &err));
    ck_assert_str_eq(error_get_pretty(err), "Bitmap already exists: a");
    error_free_or_abort(&err);
    ck_assert_ptr_null(blk_dirty_bitmap_create(blk, 1000, "b", &err));
    ck_assert_str_eq(error_get_pretty(err), "Granularity must be power of 2, and at least 512");
    error_free_or_abort(&err);
    ck_assert_ptr_null(blk_dirty_bitmap_create(blk, 256, "b", &err));
    error_free_or_abort(&err);
    dirty_bitmap_set_enabled(off, false);

    ck_assert_ptr_eq(blk_dirty_bitmap_find(blk, "a"), a);
    ck_assert_ptr_null(blk_dirty_bitmap_find(blk, "b"));
    ck_assert_ptr_eq(blk_dirty_bitmap_next(blk, NULL), a);
    ck_assert_ptr_eq(blk_dirty_bitmap_next(blk, a), anon);
    ck_assert_ptr_null(blk_dirty_bitmap_next(blk, off));
    ck_assert_ptr_null(dirty_bitmap_name(anon));
    ck_assert_uint_eq(dirty_bitmap_count(a), 0);

    /* A sync write, a zero write and an async write all mark it. */
    ck_assert_int_eq(blk_pwrite(blk, 70000, buf, 100), 0);
    ck_assert_uint_eq(dirty_bitmap_count(a), 65536);
    ck_assert_uint_eq(dirty_bitmap_count(anon), 4096);
    ck_assert(dirty_bitmap_get(a, 65536) && !dirty_bitmap_get(a, 0) && !dirty_bitmap_get(a, 131072));
    ck_assert_int_eq(dirty_bitmap_next_dirty(a, 0), 65536);
    ck_assert_int_eq(dirty_bitmap_next_dirty(a, 65537), 65537);    /* inside a dirty granule: itself */
    ck_assert_int_eq(dirty_bitmap_next_dirty(a, 131072), -1);
    ck_assert_int_eq(blk_pwrite_zeroes(blk, 1 * MiB, 1000), 0);     /* the short last granule */
    ck_assert_uint_eq(dirty_bitmap_count(a), 65536 + 1024);
    ck_assert_int_eq(dirty_bitmap_next_dirty(a, 131072), 1 * MiB);
    struct iovec v = { buf, 512 };
    Done d = { 0 };
    blk_aio_pwritev(blk, 0, &v, 1, done_cb, &d);
    blk_drain_all();
    ck_assert_uint_eq(dirty_bitmap_count(a), 2 * 65536 + 1024);
    /* Reads do not mark; a disabled bitmap does not record. */
    ck_assert_int_eq(blk_pread(blk, 200000, buf, 4096), 0);
    ck_assert_uint_eq(dirty_bitmap_count(a), 2 * 65536 + 1024);
    ck_assert_uint_eq(dirty_bitmap_count(off), 0);
    ck_assert(!dirty_bitmap_enabled(off) && dirty_bitmap_enabled(a));

    dirty_bitmap_reset(a, 0, 65536);
    ck_assert_uint_eq(dirty_bitmap_count(a), 65536 + 1024);
    dirty_bitmap_clear_all(a);
    ck_assert_uint_eq(dirty_bitmap_count(a), 0);
    ck_assert_int_eq(dirty_bitmap_next_dirty(a, 0), -1);
    ck_assert_int_eq(dirty_bitmap_size(a), 1 * MiB + 1024);     /* whole sectors */
    ck_assert_uint_eq(dirty_bitmap_granularity(a), 65536);
    dirty_bitmap_set_busy(a, true);
    dirty_bitmap_set_persistent(a, true);
    ck_assert(dirty_bitmap_busy(a) && dirty_bitmap_persistent(a));
    blk_dirty_bitmap_release(blk, anon);
    ck_assert_ptr_eq(blk_dirty_bitmap_next(blk, a), off);
}
END_TEST

START_TEST(test_bitmap_merge_serialize)
{
    g_autofree char *img = make_image("a.img", 1 * MiB);
    BlockBackend *blk = drive_ok("file=%s,format=raw,if=none,id=d", img);
    g_autofree char *img2 = make_image("b.img", 2 * MiB);
    BlockBackend *other = drive_ok("file=%s,format=raw,if=none,id=e", img2);
    BdrvDirtyBitmap *fine = blk_dirty_bitmap_create(blk, 512, "fine", NULL);
    BdrvDirtyBitmap *coarse = blk_dirty_bitmap_create(blk, 65536, "coarse", NULL);
    BdrvDirtyBitmap *mid = blk_dirty_bitmap_create(blk, 4096, "mid", NULL);
    BdrvDirtyBitmap *big = blk_dirty_bitmap_create(other, 512, "big", NULL);
    Error *err = NULL;

    dirty_bitmap_set(fine, 70000, 1);               /* granule 136: bytes 69632.. */
    dirty_bitmap_set(coarse, 196608, 1);            /* granule 3: bytes 196608..262143 */
    /* fine -> coarse widens to granule 1; coarse -> mid spreads over 16 granules. */
    ck_assert(dirty_bitmap_merge(coarse, fine, &err));
    ck_assert_uint_eq(dirty_bitmap_count(coarse), 2 * 65536);
    ck_assert(dirty_bitmap_get(coarse, 65536) && dirty_bitmap_get(coarse, 196608));
    ck_assert(dirty_bitmap_merge(mid, coarse, &err));
    ck_assert_uint_eq(dirty_bitmap_count(mid), 2 * 65536);
    ck_assert_int_eq(dirty_bitmap_next_dirty(mid, 0), 65536);
    ck_assert(!dirty_bitmap_merge(mid, big, &err));
    ck_assert_str_eq(error_get_pretty(err), "Bitmaps are incompatible and can't be merged");
    error_free_or_abort(&err);
    dirty_bitmap_set_busy(mid, true);
    ck_assert(!dirty_bitmap_merge(mid, fine, &err));
    ck_assert_str_eq(error_get_pretty(err),
                     "Bitmap 'mid' is currently in use by another operation and cannot be used");
    error_free_or_abort(&err);

    /* The stream's order: granule first+i is bit i % 8 of byte i / 8. */
    BdrvDirtyBitmap *s = blk_dirty_bitmap_create(blk, 4096, "s", NULL);
    dirty_bitmap_set(s, 0, 1);                      /* granule 0 */
    dirty_bitmap_set(s, 9 * 4096, 1);               /* granule 9 */
    dirty_bitmap_set(s, 63 * 4096, 4096 * 3);       /* granules 63, 64, 65 */
    uint8_t bytes[9];
    dirty_bitmap_serialize(s, 0, 72, bytes);
    static const uint8_t expect[9] = { 0x01, 0x02, 0, 0, 0, 0, 0, 0x80, 0x03 };
    ck_assert(memcmp(bytes, expect, 9) == 0);
    dirty_bitmap_serialize(s, 8, 3, bytes);          /* granules 8..10 */
    ck_assert_int_eq(bytes[0], 0x02);
    dirty_bitmap_serialize(s, 250, 20, bytes);        /* past the end (256 granules): zeros */
    ck_assert_int_eq(bytes[0] | bytes[1] | bytes[2], 0);

    BdrvDirtyBitmap *t = blk_dirty_bitmap_create(blk, 4096, "t", NULL);
    dirty_bitmap_set(t, 5 * 4096, 4096);            /* overwritten by deserialize */
    dirty_bitmap_deserialize(t, 0, 72, expect);
    ck_assert_uint_eq(dirty_bitmap_count(t), 5 * 4096);
    ck_assert(dirty_bitmap_get(t, 0) && dirty_bitmap_get(t, 9 * 4096) && !dirty_bitmap_get(t, 5 * 4096));
    ck_assert(dirty_bitmap_get(t, 65 * 4096) && !dirty_bitmap_get(t, 66 * 4096));
    uint8_t one = 0x01;
    dirty_bitmap_deserialize(t, 200, 1, &one);
    ck_assert(dirty_bitmap_get(t, 200 * 4096));

    /* Byte-wise and bit-wise paths agree: random bits, ranges at every
     * alignment, checked against dirty_bitmap_get one granule at a time. */
    BdrvDirtyBitmap *r = blk_dirty_bitmap_create(blk, 512, "r", NULL);     /* 2048 granules */
    BdrvDirtyBitmap *copy = blk_dirty_bitmap_create(blk, 512, "copy", NULL);
    GRand *rand = g_rand_new_with_seed(7);
    for (int i = 0; i < 700; i++) {
        dirty_bitmap_set(r, g_rand_int_range(rand, 0, 2048) * 512, 512);
    }
    uint8_t ser[300];
    for (uint64_t first = 0; first < 24; first += 5) {
        for (uint64_t count = 1; count < 2100; count += 97) {
            dirty_bitmap_serialize(r, first, count, ser);
            for (uint64_t i = 0; i < count; i++) {
                bool want = first + i < 2048 && dirty_bitmap_get(r, (first + i) * 512);
                ck_assert_msg(((ser[i / 8] >> (i % 8)) & 1) == want, "first %lu count %lu bit %lu",
                              (unsigned long)first, (unsigned long)count, (unsigned long)i);
            }
        }
    }
    dirty_bitmap_serialize(r, 3, 2045, ser);
    dirty_bitmap_set(copy, 0, 1 * MiB);
    dirty_bitmap_deserialize(copy, 3, 2045, ser);
    dirty_bitmap_reset(copy, 0, 3 * 512);
    ck_assert_uint_eq(dirty_bitmap_count(copy), dirty_bitmap_count(r) - (dirty_bitmap_get(r, 0) + dirty_bitmap_get(r, 512)
                                                                         + dirty_bitmap_get(r, 1024)) * 512);
    for (int g = 3; g < 2048; g++) {
        ck_assert(dirty_bitmap_get(copy, g * 512) == dirty_bitmap_get(r, g * 512));
    }
    g_rand_free(rand);
}
END_TEST

/* Writers on several threads mark one bitmap (sharing its words) while this
 * thread counts it and adds another bitmap to the drive: no bit is lost, and
 * under TSan no race is reported. */
typedef struct Writer {
    pthread_t thread;
    BlockBackend *blk;
    int index;
} Writer;

static void *writer_main(void *opaque)
{
    Writer *w = opaque;
    uint8_t buf[512] = { 0 };

    /* Writer i writes every 4th 512-byte sector starting at sector i: all
     * four share each 64-bit word of the bitmap. */
    for (int s = w->index; s < 2048; s += 4) {
        ck_assert_int_eq(blk_pwrite(w->blk, s * 512, buf, sizeof(buf)), 0);
    }
    return NULL;
}

START_TEST(test_bitmap_concurrent)
{
    g_autofree char *img = make_image("a.img", 1 * MiB);
    BlockBackend *blk = drive_ok("file=%s,format=raw,if=none,id=d", img);
    BdrvDirtyBitmap *bm = blk_dirty_bitmap_create(blk, 512, "b", NULL);
    Writer w[4];

    for (int i = 0; i < 4; i++) {
        w[i] = (Writer) { .blk = blk, .index = i };
        ck_assert_int_eq(pthread_create(&w[i].thread, NULL, writer_main, &w[i]), 0);
    }
    uint64_t last = 0;
    for (int i = 0; i < 50; i++) {
        uint64_t now = dirty_bitmap_count(bm);
        ck_assert_uint_ge(now, last);       /* bits are only ever added */
        last = now;
    }
    /* The bitmap list changes under the writers. */
    ck_assert_ptr_nonnull(blk_dirty_bitmap_create(blk, 4096, "late", NULL));
    for (int i = 0; i < 4; i++) {
        pthread_join(w[i].thread, NULL);
    }
    ck_assert_uint_eq(dirty_bitmap_count(bm), 1 * MiB);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------ */

START_TEST(test_error_policy)
{
    g_autofree char *img = make_image("a.img", 4096);
    BlockBackend *def = drive_ok("file=%s,format=raw,if=none,id=def", img);
    BlockBackend *st = drive_ok("file=%s,format=raw,if=none,id=st,werror=stop,rerror=stop", img);
    BlockBackend *ig = drive_ok("file=%s,format=raw,if=none,id=ig,werror=ignore,rerror=ignore", img);
    BlockBackend *rep = drive_ok("file=%s,format=raw,if=none,id=rep,werror=report", img);

    /* QEMU's defaults: werror=enospc, rerror=report. */
    ck_assert_int_eq(blk_get_error_action(def, false, -ENOSPC), BLOCK_ERROR_ACTION_STOP);
    ck_assert_int_eq(blk_get_error_action(def, false, -EIO), BLOCK_ERROR_ACTION_REPORT);
    ck_assert_int_eq(blk_get_error_action(def, true, -ENOSPC), BLOCK_ERROR_ACTION_REPORT);
    ck_assert_int_eq(blk_get_error_action(st, true, -EIO), BLOCK_ERROR_ACTION_STOP);
    ck_assert_int_eq(blk_get_error_action(st, false, -EIO), BLOCK_ERROR_ACTION_STOP);
    ck_assert_int_eq(blk_get_error_action(ig, false, -ENOSPC), BLOCK_ERROR_ACTION_IGNORE);
    ck_assert_int_eq(blk_get_error_action(rep, false, -ENOSPC), BLOCK_ERROR_ACTION_REPORT);

    blk_error_action(rep, BLOCK_ERROR_ACTION_REPORT, true, -EIO);
    ck_assert_int_eq(vm_stops, 0);
    ck_assert(strstr(events->str, "BLOCK_IO_ERROR {\"device\":\"rep\",\"node-name\":\"#block"));
    ck_assert_msg(strstr(events->str, "\"operation\":\"read\",\"action\":\"report\",\"reason\":\"Input/output error\"}"), "%s", events->str);
    g_string_truncate(events, 0);

    /* A drive a device uses reports nospace; stop stops the VM from the main loop. */
    ck_assert(blk_attach_dev(def, "dev0", NULL));
    blk_error_action(def, BLOCK_ERROR_ACTION_STOP, false, -ENOSPC);
    ck_assert(strstr(events->str, "\"operation\":\"write\",\"action\":\"stop\",\"nospace\":true,"
                                  "\"reason\":\"No space left on device\"}"));
    ck_assert_int_eq(vm_stops, 0);
    run_scheduled();
    ck_assert_int_eq(vm_stops, 1);
    blk_iostatus_reset_all();
}
END_TEST

static Suite *block_suite(void)
{
    Suite *s = suite_create("block");
    TCase *tc = tcase_create("block");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_drive_names);
    tcase_add_test(tc, test_drive_errors);
    tcase_add_test(tc, test_sync_io);
    tcase_add_test(tc, test_zeroes_on_shmem);
    tcase_add_test(tc, test_direct_unaligned);
    tcase_add_test(tc, test_read_only);
    tcase_add_test(tc, test_aio_drain);
    tcase_add_test(tc, test_drain_chained);
    tcase_add_test(tc, test_bitmap_marking);
    tcase_add_test(tc, test_bitmap_merge_serialize);
    tcase_add_test(tc, test_bitmap_concurrent);
    tcase_add_test(tc, test_error_policy);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(block_suite());
}
