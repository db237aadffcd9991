/*
 * Multifd source: N channel threads, each with its own connection.
 *
 * Order (QEMU 7.2's, which its destination relies on): the main channel is
 * connected first (migration.c); only then multifd_send_setup starts the
 * threads, which connect, send their 64-byte initial packet and wait for
 * work. The migration thread only batches page offsets: RAM queues every
 * dirty page; a full batch (JOB_PACKETS packets of 128 pages), a block
 * change or a sync hands the batch to the next idle channel in turn, with
 * the next JOB_PACKETS packet numbers. The channel thread tests each page
 * for zero, compresses the others (when on) and writes each packet's header
 * and pages with one vectored write straight from guest RAM, or on a UNIX
 * socket hands the pages over by reference (multifd-splice.c). A job of
 * several packets keeps the hand-overs (a wake-up each way, dear on this
 * kind of host) from costing more than the copies they start. Zero pages
 * travel on the main channel as ZERO records (QEMU 7.2's format has no zero
 * pages in packets): the channel lists them,
 * and the migration thread writes their records when it next hands that
 * channel a job or syncs, always before the EOS that closes the round. A
 * batch of only zero pages sends no packet.
 *
 * Sync: before every RAM EOS on the main stream (setup, each iterate chunk,
 * completion) the partial batch goes out, then every channel gets a SYNC
 * packet, and the migration thread waits until all are written: the
 * destination's loader waits for those SYNCs at the same EOS, which orders
 * a page resent in a later round after its older copy on another channel.
 *
 * Errors: a failing channel records the first error and shuts the main
 * stream down, so the migration thread fails wherever it is (the error is
 * put on the main stream: ram.c needs no extra checks).
 */
#include "multifd.h"
#include "channel.h"
#include "options.h"
#include "stream.h"
#include "tsan.h"
#include "buffer-zero.h"
#include "ram-untouched.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <glib.h>

/* Packets per job: 2 MiB of pages per hand-over. */
#define JOB_PACKETS 4
#define JOB_PAGES (JOB_PACKETS * MULTIFD_PACKET_PAGES)
#define PREFETCH_AHEAD 8

typedef struct SendJob {
    RAMBlock *block;
    unsigned n;
    uint32_t flags;
    uint64_t packet_num;        /* the first of the job's JOB_PACKETS numbers */
    uint64_t offset[JOB_PAGES];
} SendJob;

/* What a channel did with its last job, for the migration thread. */
typedef struct SendDone {
    RAMBlock *block;
    unsigned zero_n;            /* pages found zero: ZERO records on the main stream */
    uint64_t zero_off[JOB_PAGES];
    uint64_t bytes;             /* multifd-bytes of the packets written (0: none) */
} SendDone;

typedef struct SendChannel {
    unsigned id;
    pthread_t thread;
    bool started;               /* [mig] */
    pthread_cond_t cond;        /* [lock] wakes the thread: job or quit */
    bool has_job;               /* [lock] job handed over and not yet written */
    SendJob job;                /* [lock] while !has_job the migration thread fills it */
    SendDone done;              /* [lock] the thread fills it before clearing has_job */
    MultifdConn conn;           /* [lock] fd set once connected (shutdown reads it) */
    /* The thread's own: */
    MultifdCodec *codec;
    MultifdPacket pkt;          /* kept between packets: stale fields as QEMU 7.2's */
    MultifdZeroCopy zc;
    MultifdSplice splice;       /* pages by reference (plain UNIX socket, no compression) */
    bool splicing;              /* also read by the migration thread once the last SYNC is written */
    RamUntouched untouched;     /* pages never populated: reset after each SYNC (a round's end) */
    uint8_t hdr[MULTIFD_HEADER_SIZE];
    struct iovec iov[1 + MULTIFD_PACKET_PAGES];
} SendChannel;

/*
 * [lock]   under S.lock
 * [mig]    the migration thread only (between setup and cleanup)
 * _Atomic  any thread
 */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t done;        /* [lock] a job finished, or an error */
    SendChannel *ch;            /* [mig] array of n; set before the threads start */
    unsigned n;
    bool quit;                  /* [lock] */
    Error *error;               /* [lock] the first channel error */
    const MigAddress *addr;     /* [mig] read by the threads, stable meanwhile */
    MultifdConnectFn *connect;  /* as addr */
    MultifdZeroPageFn *zero_page;   /* set once by RAM at start-up */
    int cancel_fd;
    MigStream *main;            /* shut down on a channel error (thread-safe call) */
    SendJob batch;              /* [mig] pages being collected */
    SendDone spare_done;        /* [mig] a channel's last results, being emitted */
    uint64_t packet_num;        /* [mig] */
    MultiFDCompression method;
    int level;
    bool zero_copy;             /* capability zero-copy-send: pages with MSG_ZEROCOPY */
    _Atomic bool active;
    _Atomic uint64_t bytes;
    _Atomic uint64_t zero_copy_misses;
} S = { .lock = PTHREAD_MUTEX_INITIALIZER, .done = PTHREAD_COND_INITIALIZER };

/* QEMU 7.2's round robin position survives from one migration to the next. */
static unsigned next_channel;   /* [mig] */

bool multifd_transport_check(const MigAddress *addr, Error **errp)
{
    if (addr->transport != MIG_TRANSPORT_TCP && addr->transport != MIG_TRANSPORT_UNIX) {
        error_setg(errp, "multifd is not supported by current protocol");
        return false;
    }
    return true;
}

bool multifd_send_active(void)
{
    return atomic_load(&S.active);
}

uint64_t multifd_send_bytes(void)
{
    return atomic_load(&S.bytes);
}

void multifd_send_stats_reset(void)
{
    atomic_store(&S.bytes, 0);
    atomic_store(&S.zero_copy_misses, 0);
}

uint64_t multifd_send_zero_copy_misses(void)
{
    return atomic_load(&S.zero_copy_misses);
}

/* A channel failed: the first error wins; everything waiting wakes. */
static void channel_fail(SendChannel *c, Error *err)
{
    pthread_mutex_lock(&S.lock);
    if (!S.error && !S.quit) {
        error_prepend(&err, "multifd channel %u: ", c->id);
        S.error = err;
        err = NULL;
    }
    pthread_cond_broadcast(&S.done);
    pthread_mutex_unlock(&S.lock);
    error_free(err);
    mig_stream_shutdown(S.main);
}

/* Write up to 128 of a job's pages (offset[0..count)) as one packet (zero
 * ones are listed in done for the main stream), or the SYNC (count 0).
 * [channel thread] */
static bool channel_write_packet(SendChannel *c, const SendJob *job, const uint64_t *offset, unsigned count,
                                 uint64_t packet_num, SendDone *done, Error **errp)
{
    MultifdPacket *p = &c->pkt;
    uint8_t *pages[MULTIFD_PACKET_PAGES];
    unsigned n = 0;
    int cnt = 1;
    for (unsigned i = 0; i < count; i++) {
        uint8_t *host = job->block->host + offset[i];
        if (i + PREFETCH_AHEAD < count) {
            /* The zero check reads a page's first and last 32 bytes: start
             * those misses early rather than wait on each in turn. */
            const uint8_t *next = job->block->host + offset[i + PREFETCH_AHEAD];
            __builtin_prefetch(next);
            __builtin_prefetch(next + MIGVM_PAGE_SIZE - 32);
        }
        /* Read after the sync that made the page dirty: ram-untouched.h. */
        if (ram_untouched(&c->untouched, job->block, offset[i] >> MIGVM_PAGE_BITS) ||
            buffer_is_zero(host, MIGVM_PAGE_SIZE)) {
            done->zero_off[done->zero_n++] = offset[i];
        } else {
            p->offset[n] = offset[i];
            pages[n++] = host;
        }
    }
    if (job->flags & MULTIFD_FLAG_SYNC) {
        ram_untouched_reset(&c->untouched);     /* the next round follows a dirty-log sync */
    }
    if (n == 0 && !(job->flags & MULTIFD_FLAG_SYNC)) {
        return true;        /* only zero pages: nothing for this channel */
    }
    p->flags = job->flags | multifd_compression_flag(S.method);
    p->pages_alloc = MULTIFD_PACKET_PAGES;
    p->normal_pages = n;
    p->packet_num = packet_num;
    if (n) {
        g_strlcpy(p->ramblock, job->block->name, sizeof(p->ramblock));
        if (c->codec) {
            const uint8_t *out;
            if (!multifd_codec_compress(c->codec, pages, n, &out, &p->next_packet_size, errp)) {
                return false;
            }
            c->iov[cnt++] = (struct iovec) { (void *)out, p->next_packet_size };
        } else {
            p->next_packet_size = n * MIGVM_PAGE_SIZE;
            /* Adjacent pages as one piece: fewer pieces for the kernel to
             * walk (vmsplice takes page references a piece at a time, with
             * interrupts off, which this kind of VM makes dear). */
            for (unsigned i = 0; i < n; i++) {
                struct iovec *last = &c->iov[cnt - 1];
                if (cnt > 1 && (uint8_t *)last->iov_base + last->iov_len == pages[i]) {
                    last->iov_len += MIGVM_PAGE_SIZE;
                } else {
                    c->iov[cnt++] = (struct iovec) { pages[i], MIGVM_PAGE_SIZE };
                }
            }
        }
    }
    multifd_packet_encode(p, c->hdr);
    c->iov[0] = (struct iovec) { c->hdr, MULTIFD_HEADER_SIZE };
    bool ok;
    tsan_ignore_begin();        /* guest RAM goes to the kernel (include/tsan.h) */
    if (S.zero_copy) {
        /* The header with a copy (its buffer is reused at once), the pages pinned. */
        ok = multifd_conn_writev_all(&c->conn, c->iov, 1, errp) &&
             multifd_conn_writev_zero_copy(&c->conn, c->iov + 1, cnt - 1, &c->zc, errp);
    } else if (c->splicing && cnt > 1) {
        int r = 0;
        ok = multifd_conn_writev_all(&c->conn, c->iov, 1, errp) &&
             (r = multifd_splice_writev(&c->splice, &c->conn, c->iov + 1, cnt - 1, errp)) >= 0;
        if (ok && r == 0) {
            c->splicing = false;        /* memory vmsplice refuses: copy from now on */
            ok = multifd_conn_writev_all(&c->conn, c->iov + 1, cnt - 1, errp);
        }
    } else {
        ok = multifd_conn_writev_all(&c->conn, c->iov, cnt, errp);
    }
    tsan_ignore_end();
    if (ok && S.zero_copy && (job->flags & MULTIFD_FLAG_SYNC)) {
        bool copied;
        ok = multifd_zero_copy_flush(&c->conn, &c->zc, &copied, errp);
        if (ok && copied) {
            atomic_fetch_add(&S.zero_copy_misses, 1);
        }
    }
    /* QEMU 7.2's count: uncompressed pages plus the header. */
    done->bytes += MULTIFD_HEADER_SIZE + (uint64_t)n * MIGVM_PAGE_SIZE;
    return ok;
}

/* Write one job: its pages as packets of up to 128, or the SYNC. [channel thread] */
static bool channel_write_job(SendChannel *c, const SendJob *job, SendDone *done, Error **errp)
{
    done->block = job->block;
    done->zero_n = 0;
    done->bytes = 0;
    if (job->flags & MULTIFD_FLAG_SYNC) {
        g_assert(job->n == 0);      /* multifd_send_sync sent the batch first */
        return channel_write_packet(c, job, job->offset, 0, job->packet_num, done, errp);
    }
    for (unsigned first = 0, k = 0; first < job->n; first += MULTIFD_PACKET_PAGES, k++) {
        unsigned count = MIN(job->n - first, (unsigned)MULTIFD_PACKET_PAGES);
        if (!channel_write_packet(c, job, job->offset + first, count, job->packet_num + k, done, errp)) {
            return false;
        }
    }
    return true;
}

static void *send_thread(void *opaque)
{
    SendChannel *c = opaque;
    Error *err = NULL;
    MultifdConn conn;
    if (!S.connect(S.addr, S.cancel_fd, &conn, &err)) {
        channel_fail(c, err);
        return NULL;
    }
    if (S.zero_copy && !multifd_zero_copy_enable(conn.fd, &err)) {
        multifd_conn_close(&conn);
        channel_fail(c, err);
        return NULL;
    }
    c->splicing = !S.zero_copy && !c->codec && multifd_splice_open(&c->splice, &conn);
    pthread_mutex_lock(&S.lock);
    c->conn = conn;
    if (S.quit) {
        multifd_conn_shutdown(&c->conn);
    }
    pthread_mutex_unlock(&S.lock);
    uint8_t init[MULTIFD_INIT_SIZE];
    MultifdInit mi = { .id = (uint8_t)c->id };      /* no -uuid: all zero */
    multifd_init_encode(&mi, init);
    struct iovec iov = { init, sizeof(init) };
    if (!multifd_conn_writev_all(&c->conn, &iov, 1, &err)) {
        channel_fail(c, err);
        return NULL;
    }
    SendJob *job = g_new(SendJob, 1);
    SendDone *done = g_new(SendDone, 1);
    for (;;) {
        pthread_mutex_lock(&S.lock);
        while (!c->has_job && !S.quit) {
            pthread_cond_wait(&c->cond, &S.lock);
        }
        if (S.quit) {
            pthread_mutex_unlock(&S.lock);
            break;
        }
        *job = c->job;
        pthread_mutex_unlock(&S.lock);
        bool ok = channel_write_job(c, job, done, &err);
        pthread_mutex_lock(&S.lock);
        c->done = *done;
        c->has_job = false;
        pthread_cond_broadcast(&S.done);
        pthread_mutex_unlock(&S.lock);
        if (!ok) {
            channel_fail(c, err);
            break;
        }
    }
    g_free(job);
    g_free(done);
    return NULL;
}

bool multifd_send_setup(const MigAddress *addr, int cancel_fd, MigStream *main, const MigrateMultifdParams *mp,
                        MultifdConnectFn *connect, Error **errp)
{
    S.connect = connect;
    S.n = mp->channels;
    S.method = mp->compression;
    S.level = mp->compression == MULTIFD_COMPRESSION_ZSTD ? mp->zstd_level : mp->zlib_level;
    S.zero_copy = mp->zero_copy;
    S.addr = addr;
    S.cancel_fd = cancel_fd;
    S.main = main;
    S.quit = false;
    S.error = NULL;
    S.packet_num = 0;
    S.batch.n = 0;
    S.batch.block = NULL;
    if (next_channel >= S.n) {
        next_channel = 0;
    }
    S.ch = g_new0(SendChannel, S.n);
    for (unsigned i = 0; i < S.n; i++) {
        SendChannel *c = &S.ch[i];
        c->id = i;
        c->conn.fd = -1;
        c->splice.pipe[0] = c->splice.pipe[1] = -1;
        pthread_cond_init(&c->cond, NULL);
        c->codec = multifd_codec_new_encoder(S.method, S.level, errp);
        if (S.method != MULTIFD_COMPRESSION_NONE && !c->codec) {
            S.n = i + 1;
            multifd_send_cleanup(false);
            return false;
        }
    }
    atomic_store(&S.active, true);
    for (unsigned i = 0; i < S.n; i++) {
        if (pthread_create(&S.ch[i].thread, NULL, send_thread, &S.ch[i]) != 0) {
            error_setg(errp, "multifd: cannot start channel thread %u", i);
            multifd_send_cleanup(false);
            return false;
        }
        S.ch[i].started = true;
    }
    return true;
}

/* The first channel error as the main stream's error. [lock held] */
static bool check_error_locked(MigStream *f)
{
    if (S.error) {
        mig_stream_set_error(f, "%s", error_get_pretty(S.error));
        return false;
    }
    if (S.quit) {
        mig_stream_set_error(f, "multifd: migration cancelled");
        return false;
    }
    return !mig_stream_has_error(f);
}

/* A channel's finished job, on the migration thread: the zero pages it
 * found become ZERO records on the main stream, its bytes are counted. */
static void emit_done(MigStream *f, const SendDone *d)
{
    for (unsigned i = 0; i < d->zero_n; i++) {
        S.zero_page(f, d->block, d->zero_off[i]);
    }
    if (d->bytes) {
        atomic_fetch_add(&S.bytes, d->bytes);
        mig_stream_account(f, d->bytes);
    }
}

/* Take what channel i's last job left. [lock held, channel idle] */
static void take_done_locked(SendChannel *c, SendDone *d)
{
    *d = c->done;
    c->done.zero_n = 0;
    c->done.bytes = 0;
}

/* Hand a job (the batch, or an empty SYNC) to channel i once it is idle. */
static bool post_job(MigStream *f, unsigned i, uint32_t flags)
{
    SendChannel *c = &S.ch[i];
    SendDone *d = &S.spare_done;
    pthread_mutex_lock(&S.lock);
    while (c->has_job && check_error_locked(f)) {
        pthread_cond_wait(&S.done, &S.lock);
    }
    bool ok = check_error_locked(f);
    if (ok) {
        take_done_locked(c, d);
        SendJob *b = &S.batch;
        c->job.block = b->block;
        c->job.n = b->n;
        memcpy(c->job.offset, b->offset, b->n * sizeof(b->offset[0]));
        c->job.flags = flags;
        c->job.packet_num = S.packet_num;
        S.packet_num += flags & MULTIFD_FLAG_SYNC ? 1 : (b->n + MULTIFD_PACKET_PAGES - 1) / MULTIFD_PACKET_PAGES;
        c->has_job = true;
        pthread_cond_signal(&c->cond);
    }
    pthread_mutex_unlock(&S.lock);
    if (ok) {
        emit_done(f, d);    /* the lock is not held while the main stream may block */
    }
    S.batch.n = 0;
    return ok;
}

/* The next idle channel in turn (waiting for one if all are busy). */
static bool send_batch(MigStream *f)
{
    pthread_mutex_lock(&S.lock);
    int found = -1;
    while (check_error_locked(f)) {
        for (unsigned k = 0; k < S.n; k++) {
            unsigned i = (next_channel + k) % S.n;
            if (!S.ch[i].has_job) {
                found = (int)i;
                break;
            }
        }
        if (found >= 0) {
            break;
        }
        pthread_cond_wait(&S.done, &S.lock);
    }
    pthread_mutex_unlock(&S.lock);
    if (found < 0) {
        S.batch.n = 0;
        return false;
    }
    next_channel = ((unsigned)found + 1) % S.n;
    return post_job(f, (unsigned)found, 0);
}

void multifd_queue_page(MigStream *f, RAMBlock *b, uint64_t offset)
{
    if (S.batch.n && S.batch.block != b && !send_batch(f)) {
        return;
    }
    S.batch.block = b;
    S.batch.offset[S.batch.n++] = offset;
    if (S.batch.n == JOB_PAGES) {
        send_batch(f);
    }
}

void multifd_send_sync(MigStream *f)
{
    if (S.batch.n && !send_batch(f)) {
        return;
    }
    for (unsigned i = 0; i < S.n; i++) {
        if (!post_job(f, i, MULTIFD_FLAG_SYNC)) {
            return;
        }
    }
    for (unsigned i = 0; i < S.n; i++) {
        pthread_mutex_lock(&S.lock);
        while (S.ch[i].has_job && check_error_locked(f)) {
            pthread_cond_wait(&S.done, &S.lock);
        }
        bool ok = check_error_locked(f);
        if (ok) {
            take_done_locked(&S.ch[i], &S.spare_done);
        }
        pthread_mutex_unlock(&S.lock);
        if (!ok) {
            return;
        }
        emit_done(f, &S.spare_done);
    }
}

/* How long the destination may leave spliced bytes unread, without reading
 * any, before the source stops waiting for it. */
#define WAIT_READ_STALL_US (10 * G_USEC_PER_SEC)

void multifd_send_wait_read(int cancel_fd)
{
    for (unsigned i = 0; i < S.n; i++) {
        pthread_mutex_lock(&S.lock);
        int fd = S.ch[i].conn.fd;
        bool splicing = S.ch[i].splicing;   /* the thread is idle since the last SYNC */
        pthread_mutex_unlock(&S.lock);
        int last = -1;
        int64_t since = g_get_monotonic_time();
        while (splicing && fd >= 0) {
            int unread = 0;
            if (ioctl(fd, SIOCOUTQ, &unread) < 0 || unread == 0) {
                break;
            }
            int64_t now = g_get_monotonic_time();
            if (unread != last) {
                last = unread;
                since = now;
            } else if (now - since > WAIT_READ_STALL_US) {
                break;
            }
            struct pollfd p = { .fd = cancel_fd, .events = POLLIN };
            if (poll(&p, 1, 1) > 0) {
                return;     /* cancelled: the stream is out, it ends completed */
            }
        }
    }
}

void multifd_send_set_zero_page_fn(MultifdZeroPageFn *fn)
{
    S.zero_page = fn;
}

void multifd_send_shutdown(void)
{
    pthread_mutex_lock(&S.lock);
    S.quit = true;
    for (unsigned i = 0; i < S.n && S.ch; i++) {
        multifd_conn_shutdown(&S.ch[i].conn);
        pthread_cond_signal(&S.ch[i].cond);
    }
    pthread_cond_broadcast(&S.done);
    pthread_mutex_unlock(&S.lock);
}

void multifd_send_cleanup(bool success)
{
    if (!S.ch) {
        return;
    }
    /* After a success every SYNC was written: the threads are idle and the
     * sockets close gracefully. Otherwise a thread may be blocked in a write
     * the destination will never read: shut the sockets down first. */
    if (!success) {
        multifd_send_shutdown();
    }
    pthread_mutex_lock(&S.lock);
    S.quit = true;
    for (unsigned i = 0; i < S.n; i++) {
        pthread_cond_signal(&S.ch[i].cond);
    }
    pthread_mutex_unlock(&S.lock);
    atomic_store(&S.active, false);
    for (unsigned i = 0; i < S.n; i++) {
        SendChannel *c = &S.ch[i];
        if (c->started) {
            pthread_join(c->thread, NULL);
        }
        multifd_conn_close(&c->conn);
        multifd_splice_close(&c->splice);
        multifd_codec_free(c->codec);
        pthread_cond_destroy(&c->cond);
    }
    g_free(S.ch);
    S.ch = NULL;
    S.n = 0;
    error_free(S.error);
    S.error = NULL;
}
