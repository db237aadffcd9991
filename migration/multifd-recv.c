/*
 * Multifd destination: one receive thread per channel.
 *
 * The listener hands over the first connection as the main channel
 * (incoming.c) and, with multifd on, every later one here until the load
 * ends (one beyond multifd-channels fails it). A channel thread
 * reads the 64-byte initial packet, files itself under the id it carries
 * (id < N, not taken, uuid ours: all zero, as migvm has no -uuid), then
 * loops: read the 1344-byte header, check it, read the pages straight into
 * guest RAM (one vectored read; or decompress into it), and on SYNC wait
 * until the loader releases it. End of file before a header is a normal end.
 *
 * The loader (incoming thread) calls multifd_recv_sync at every RAM EOS of
 * the main stream: it waits for a SYNC from every channel, then releases all
 * of them. It fails instead when a channel fails or ends, or when fewer than
 * N channels connected within MULTIFD_CHANNEL_WAIT_MS of the main channel
 * (a source without multifd, or with fewer channels: QEMU 7.2 waits
 * forever there). A channel error shuts the main stream down so the loader
 * stops at once, with the channel's error as the cause.
 */
#include "multifd.h"
#include "channel.h"
#include "ram-prefault.h"
#include "clock.h"
#include "stream.h"
#include "tsan.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>

typedef struct RecvChannel {
    unsigned seq;               /* accept order, for messages before the id is known */
    int id;                     /* [lock] -1 until the initial packet was read */
    pthread_t thread;
    bool started;               /* [lock] */
    MultifdConn conn;           /* fd fixed before the thread starts */
    bool synced;                /* [lock] a SYNC arrived; waiting for release */
    bool release;               /* [lock] */
    bool ended;                 /* [lock] the thread is done (end of file or error) */
    /* The thread's own: */
    MultifdCodec *codec;
    MultifdPacket pkt;
    uint8_t hdr[MULTIFD_HEADER_SIZE];
    uint8_t *cbuf;              /* compressed payload */
} RecvChannel;

/*
 * [lock]   under R.lock
 * [main]   main loop only
 */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* [lock] any change below */
    unsigned n;                 /* [lock] channels expected */
    MultiFDCompression method;  /* [lock] */
    GPtrArray *all;             /* [lock] every channel thread started */
    RecvChannel **by_id;        /* [lock] n slots */
    unsigned identified;        /* [lock] */
    unsigned accepted;          /* [lock] */
    unsigned sync_count;        /* [lock] channels waiting in a SYNC */
    Error *error;               /* [lock] first channel error */
    bool quit;                  /* [lock] */
    MigStream *main;            /* [lock] */
    int64_t start_ns;           /* [lock] when the main channel arrived */
    _Atomic bool active;
    _Atomic uint64_t bytes;     /* multifd_recv_bytes: the channel threads add, reset at setup */
} R = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

bool multifd_recv_active(void)
{
    return atomic_load(&R.active);
}

void multifd_recv_setup(unsigned n, MultiFDCompression method)
{
    pthread_mutex_lock(&R.lock);
    R.n = n;
    R.method = method;
    R.all = g_ptr_array_new();
    R.by_id = g_new0(RecvChannel *, n);
    R.identified = 0;
    R.sync_count = 0;
    R.error = NULL;
    R.quit = false;
    R.main = NULL;
    R.start_ns = now_ns();
    R.accepted = 0;
    atomic_store(&R.bytes, 0);
    pthread_mutex_unlock(&R.lock);
    atomic_store(&R.active, true);
}

void multifd_recv_set_main(MigStream *f)
{
    pthread_mutex_lock(&R.lock);
    R.main = f;
    pthread_mutex_unlock(&R.lock);
}

Error *multifd_recv_error(void)
{
    pthread_mutex_lock(&R.lock);
    Error *e = R.error ? error_copy(R.error) : NULL;
    pthread_mutex_unlock(&R.lock);
    return e;
}

static void recv_fail(Error *err)
{
    pthread_mutex_lock(&R.lock);
    if (!R.error && !R.quit) {
        R.error = err;
        err = NULL;
        if (R.main) {
            mig_stream_shutdown(R.main);
        }
    }
    pthread_cond_broadcast(&R.cond);
    pthread_mutex_unlock(&R.lock);
    error_free(err);
}

static void uuid_text(const uint8_t *u, char out[37])
{
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14],
             u[15]);
}

/* The initial packet: file the channel under its id. */
static bool recv_identify(RecvChannel *c, Error **errp)
{
    uint8_t buf[MULTIFD_INIT_SIZE];
    struct iovec iov = { buf, sizeof(buf) };
    MultifdInit init;
    if (!multifd_conn_readv_all(&c->conn, &iov, 1, NULL, errp) || !multifd_init_parse(buf, &init, errp)) {
        return false;
    }
    static const uint8_t ours[16];
    if (memcmp(init.uuid, ours, sizeof(ours))) {
        char src[37], dst[37];
        uuid_text(init.uuid, src);
        uuid_text(ours, dst);
        error_setg(errp, "multifd: received uuid '%s' and expected uuid '%s' for channel %u", src, dst, init.id);
        return false;
    }
    pthread_mutex_lock(&R.lock);
    bool ok = false;
    if (init.id >= R.n) {
        error_setg(errp, "multifd: received channel id %u, expected below %u (multifd-channels differ)", init.id,
                   R.n);
    } else if (R.by_id[init.id]) {
        error_setg(errp, "multifd: received id '%u' already setup'", init.id);
    } else {
        R.by_id[init.id] = c;
        c->id = init.id;
        R.identified++;
        pthread_cond_broadcast(&R.cond);
        ok = true;
    }
    pthread_mutex_unlock(&R.lock);
    return ok;
}

/* The payload of a checked header, into guest RAM. */
static bool recv_pages(RecvChannel *c, RAMBlock *b, Error **errp)
{
    MultifdPacket *p = &c->pkt;
    uint8_t *pages[MULTIFD_PACKET_PAGES];
    for (unsigned i = 0; i < p->normal_pages; i++) {
        pages[i] = b->host + p->offset[i];
    }
    if (p->normal_pages) {      /* the pre-faulting window follows the data (ram-prefault.h) */
        ram_prefault_loaded(b, p->offset[p->normal_pages - 1], true);
    }
    if (!c->codec) {
        struct iovec iov[MULTIFD_PACKET_PAGES];
        for (unsigned i = 0; i < p->normal_pages; i++) {
            iov[i] = (struct iovec) { pages[i], MIGVM_PAGE_SIZE };
        }
        tsan_ignore_begin();        /* guest RAM (include/tsan.h) */
        bool ok = multifd_conn_readv_all(&c->conn, iov, (int)p->normal_pages, NULL, errp);
        tsan_ignore_end();
        return ok;
    }
    struct iovec iov = { c->cbuf, p->next_packet_size };
    return multifd_conn_readv_all(&c->conn, &iov, 1, NULL, errp) &&
           multifd_codec_decompress(c->codec, c->cbuf, p->next_packet_size, pages, p->normal_pages, errp);
}

/* A SYNC: wait for the loader to collect every channel's and let us go. */
static void recv_wait_release(RecvChannel *c)
{
    pthread_mutex_lock(&R.lock);
    c->synced = true;
    R.sync_count++;
    pthread_cond_broadcast(&R.cond);
    while (!c->release && !R.quit) {
        pthread_cond_wait(&R.cond, &R.lock);
    }
    c->release = false;
    pthread_mutex_unlock(&R.lock);
}

static void *recv_thread(void *opaque)
{
    RecvChannel *c = opaque;
    Error *err = NULL;
    uint32_t comp = multifd_compression_flag(R.method);
    if (!recv_identify(c, &err)) {
        error_prepend(&err, "failed to receive packet via multifd channel %u: ", c->seq);
        goto out;
    }
    for (;;) {
        struct iovec iov = { c->hdr, sizeof(c->hdr) };
        bool eof;
        RAMBlock *b;
        if (!multifd_conn_readv_all(&c->conn, &iov, 1, &eof, &err)) {
            if (eof) {
                error_free(err);        /* the source closed the channel: a normal end */
                err = NULL;
            }
            break;
        }
        if (!multifd_packet_parse(c->hdr, &c->pkt, &err) ||
            !multifd_packet_check(&c->pkt, (unsigned)c->id, comp, &b, &err) ||
            (b && !recv_pages(c, b, &err))) {
            error_prepend(&err, "multifd channel %d: ", c->id);
            break;
        }
        atomic_fetch_add(&R.bytes, MULTIFD_HEADER_SIZE + (uint64_t)c->pkt.normal_pages * MIGVM_PAGE_SIZE);
        if (c->pkt.flags & MULTIFD_FLAG_SYNC) {
            recv_wait_release(c);
        }
    }
out:
    if (err) {
        recv_fail(err);
    }
    pthread_mutex_lock(&R.lock);
    c->ended = true;
    pthread_cond_broadcast(&R.cond);
    pthread_mutex_unlock(&R.lock);
    return NULL;
}

void multifd_recv_new_channel(MigChannel *ch)
{
    Error *err = NULL;
    RecvChannel *c = g_new0(RecvChannel, 1);
    c->id = -1;
    /* Under the lock: cleanup (incoming thread) either sees the channel with
     * its thread, or this sees the quit and closes the connection. */
    pthread_mutex_lock(&R.lock);
    if (!R.all || R.quit) {
        pthread_mutex_unlock(&R.lock);
        close(ch->fd);
        g_free(c);
        return;
    }
    c->seq = R.accepted++;
    if (c->seq >= R.n) {
        error_setg(&err, "multifd: channel connection %u, but multifd-channels is %u (is it the same on the "
                   "source?)", c->seq + 1, R.n);
    }
    if (!err) {
        multifd_conn_accept(ch->fd, &c->conn, &err);
    } else {
        c->conn.fd = ch->fd;    /* closed by cleanup */
    }
    c->codec = multifd_codec_new_decoder(R.method, err ? NULL : &err);
    if (R.method != MULTIFD_COMPRESSION_NONE) {
        c->cbuf = g_malloc(MULTIFD_MAX_COMPRESSED);
    }
    if (!err && pthread_create(&c->thread, NULL, recv_thread, c) != 0) {
        error_setg(&err, "multifd: cannot start a receive thread");
    }
    c->started = !err;
    c->ended = !c->started;
    g_ptr_array_add(R.all, c);
    pthread_mutex_unlock(&R.lock);
    if (err) {
        recv_fail(err);
    }
}

/* Why the sync cannot complete, or NULL to keep waiting. [lock held] */
static char *sync_blocked_locked(void)
{
    if (R.error) {
        return g_strdup(error_get_pretty(R.error));
    }
    if (R.quit) {
        return g_strdup("multifd: incoming migration stopped");
    }
    for (unsigned i = 0; i < R.n; i++) {
        RecvChannel *c = R.by_id[i];
        if (c && c->ended && !c->synced) {
            return g_strdup_printf("multifd: channel %u closed before its sync", i);
        }
    }
    if (R.identified < R.n && now_ns() - R.start_ns > MULTIFD_CHANNEL_WAIT_MS * 1000000LL) {
        return g_strdup_printf("multifd: %u of %u channels connected within %d s (is multifd on with the same "
                               "multifd-channels on the source?)", R.identified, R.n,
                               MULTIFD_CHANNEL_WAIT_MS / 1000);
    }
    return NULL;
}

bool multifd_recv_sync(Error **errp)
{
    pthread_mutex_lock(&R.lock);
    char *why;
    while (!(why = sync_blocked_locked()) && R.sync_count < R.n) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;        /* look at the deadline again */
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&R.cond, &R.lock, &ts);
    }
    if (!why) {
        R.sync_count = 0;
        for (unsigned i = 0; i < R.n; i++) {
            R.by_id[i]->synced = false;
            R.by_id[i]->release = true;
        }
        pthread_cond_broadcast(&R.cond);
    }
    pthread_mutex_unlock(&R.lock);
    if (why) {
        error_setg(errp, "%s", why);
        g_free(why);
        return false;
    }
    return true;
}

uint64_t multifd_recv_bytes(void)
{
    return atomic_load(&R.bytes);
}

void multifd_recv_cleanup(void)
{
    if (!multifd_recv_active()) {
        return;
    }
    atomic_store(&R.active, false);
    pthread_mutex_lock(&R.lock);
    R.quit = true;
    R.main = NULL;
    for (guint i = 0; i < R.all->len; i++) {
        multifd_conn_shutdown(&((RecvChannel *)R.all->pdata[i])->conn);
    }
    pthread_cond_broadcast(&R.cond);
    GPtrArray *all = R.all;
    R.all = NULL;
    pthread_mutex_unlock(&R.lock);
    for (guint i = 0; i < all->len; i++) {
        RecvChannel *c = all->pdata[i];
        if (c->started) {
            pthread_join(c->thread, NULL);
        }
        multifd_conn_close(&c->conn);
        multifd_codec_free(c->codec);
        g_free(c->cbuf);
        g_free(c);
    }
    g_ptr_array_free(all, true);
    pthread_mutex_lock(&R.lock);
    g_free(R.by_id);
    R.by_id = NULL;
    error_free(R.error);
    R.error = NULL;
    pthread_mutex_unlock(&R.lock);
}

bool multifd_recv_packet_buffer(MultifdCodec *dec, uint32_t expected_comp, const uint8_t *buf, size_t len,
                                Error **errp)
{
    MultifdPacket *p = g_new(MultifdPacket, 1);
    RAMBlock *b = NULL;
    bool ok = false;
    if (len < MULTIFD_HEADER_SIZE) {
        error_setg(errp, "multifd: packet shorter than its header");
        goto out;
    }
    if (!multifd_packet_parse(buf, p, errp) || !multifd_packet_check(p, 0, expected_comp, &b, errp)) {
        goto out;
    }
    buf += MULTIFD_HEADER_SIZE;
    len -= MULTIFD_HEADER_SIZE;
    if (!b) {
        ok = true;
        goto out;
    }
    uint8_t *pages[MULTIFD_PACKET_PAGES];
    for (unsigned i = 0; i < p->normal_pages; i++) {
        pages[i] = b->host + p->offset[i];
    }
    if (!dec) {
        if (len < (size_t)p->normal_pages * MIGVM_PAGE_SIZE) {
            error_setg(errp, "multifd: payload cut short");
            goto out;
        }
        for (unsigned i = 0; i < p->normal_pages; i++) {
            memcpy(pages[i], buf + (size_t)i * MIGVM_PAGE_SIZE, MIGVM_PAGE_SIZE);
        }
        ok = true;
    } else if (len < p->next_packet_size) {
        error_setg(errp, "multifd: payload cut short");
    } else {
        ok = multifd_codec_decompress(dec, buf, p->next_packet_size, pages, p->normal_pages, errp);
    }
out:
    g_free(p);
    return ok;
}
