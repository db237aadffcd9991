/*
 * Asynchronous I/O: a small pool of worker threads doing preadv/pwritev/
 * fdatasync, completions run on the main loop with the BQL held.
 *
 *   submitter [BQL] --queue--> worker: blk_do_* (no lock held during the I/O)
 *   worker --done list--> main loop (main_loop_schedule, once per batch)
 *                         or blk_drain_all() in the thread that holds the BQL
 *
 * Workers are started on demand, one more whenever a request finds none idle,
 * up to POOL_MAX (a disk of a 2-core host saturates long before; more threads
 * would only add context switches), and live until block_cleanup().
 * `in_flight` counts requests submitted and not yet completed (callback run);
 * drain waits on `drained` until it is zero, running completions itself.
 */
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <glib.h>
#include "block-int.h"
#include "vm.h"

#define POOL_MAX 8

typedef struct AioRequest {
    BlockBackend *blk;
    AioOp op;
    int64_t offset;
    struct iovec *iov;
    int iovcnt;
    BlockCompletionFunc *cb;
    void *opaque;
    int ret;
    int64_t start_ns;           /* submission, for query-blockstats */
} AioRequest;

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cond = PTHREAD_COND_INITIALIZER;    /* a request was queued, or shutdown */
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;    /* a request completed */
static GQueue pending = G_QUEUE_INIT;      /* AioRequest*, submitted, not started [pool_lock] */
static GQueue done = G_QUEUE_INIT;         /* AioRequest*, finished, callback not run [pool_lock] */
static GPtrArray *workers;                 /* pthread_t*, [pool_lock] */
static int idle_workers;                   /* [pool_lock] */
static bool shutting_down;                 /* [pool_lock] */
static bool completion_scheduled;          /* a main-loop run is queued [pool_lock] */
static int in_flight;                      /* [pool_lock]; changed by the BQL holder only */

static void run_request(AioRequest *req)
{
    switch (req->op) {
    case AIO_READ:
        req->ret = blk_do_preadv(req->blk, req->offset, req->iov, req->iovcnt);
        break;
    case AIO_WRITE:
        req->ret = blk_do_pwritev(req->blk, req->offset, req->iov, req->iovcnt);
        break;
    case AIO_FLUSH:
        req->ret = blk_do_flush(req->blk);
        break;
    }
}

int64_t blk_clock_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Count a finished request in its drive's statistics. [BQL] */
static void account(const AioRequest *req)
{
    BlockAcct *a = &req->blk->acct;
    int64_t now = blk_clock_ns();

    if (req->op == AIO_FLUSH) {
        a->flush_ops += req->ret == 0;
        a->flush_failed += req->ret != 0;
        a->flush_ns += req->ret == 0 ? now - req->start_ns : 0;
    } else {
        int w = req->op == AIO_WRITE;
        size_t bytes = 0;
        for (int i = 0; i < req->iovcnt; i++) {
            bytes += req->iov[i].iov_len;
        }
        if (req->ret == 0) {
            a->ops[w]++;
            a->bytes[w] += bytes;
            a->total_ns[w] += now - req->start_ns;
        } else {
            a->failed[w]++;
        }
    }
    a->last_done_ns = now;
}

/* Run the callbacks of every finished request. [BQL] */
static void run_completions(void)
{
    pthread_mutex_lock(&pool_lock);
    completion_scheduled = false;
    for (;;) {
        AioRequest *req = g_queue_pop_head(&done);
        if (!req) {
            break;
        }
        pthread_mutex_unlock(&pool_lock);
        account(req);
        req->cb(req->opaque, req->ret);
        g_free(req->iov);
        g_free(req);
        pthread_mutex_lock(&pool_lock);
        in_flight--;
    }
    pthread_mutex_unlock(&pool_lock);
}

static void completions_on_main_loop(void *opaque)
{
    run_completions();
}

static void *worker_main(void *opaque)
{
    pthread_setname_np(pthread_self(), "blk-worker");
    pthread_mutex_lock(&pool_lock);
    for (;;) {
        AioRequest *req = g_queue_pop_head(&pending);
        if (!req) {
            if (shutting_down) {
                break;
            }
            idle_workers++;
            pthread_cond_wait(&work_cond, &pool_lock);
            idle_workers--;
            continue;
        }
        pthread_mutex_unlock(&pool_lock);
        run_request(req);
        pthread_mutex_lock(&pool_lock);
        g_queue_push_tail(&done, req);
        pthread_cond_broadcast(&done_cond);
        if (!completion_scheduled) {
            completion_scheduled = true;
            main_loop_schedule(completions_on_main_loop, NULL);
        }
    }
    pthread_mutex_unlock(&pool_lock);
    return NULL;
}

/* [pool_lock] */
static void maybe_add_worker(void)
{
    if (!workers) {
        workers = g_ptr_array_new();
    }
    if (idle_workers > (int)pending.length - 1 || workers->len >= POOL_MAX) {
        return;
    }
    pthread_t *t = g_new(pthread_t, 1);
    if (pthread_create(t, NULL, worker_main, NULL) != 0) {
        g_free(t);
        /* With no worker at all nothing would ever run: do it inline. */
        return;
    }
    g_ptr_array_add(workers, t);
}

void aio_pool_submit(BlockBackend *blk, AioOp op, int64_t offset, const struct iovec *iov, int iovcnt,
                     BlockCompletionFunc *cb, void *opaque)
{
    assert(bql_locked());
    AioRequest *req = g_new0(AioRequest, 1);

    req->blk = blk;
    req->op = op;
    req->offset = offset;
    req->iov = iovcnt ? g_memdup2(iov, sizeof(*iov) * iovcnt) : NULL;
    req->iovcnt = iovcnt;
    req->cb = cb;
    req->opaque = opaque;
    req->start_ns = blk_clock_ns();
    pthread_mutex_lock(&pool_lock);
    in_flight++;
    g_queue_push_tail(&pending, req);
    maybe_add_worker();
    bool no_worker = workers->len == 0;
    pthread_cond_signal(&work_cond);
    pthread_mutex_unlock(&pool_lock);
    if (no_worker) {
        /* No thread could be created: complete it synchronously, but still
         * call back later, as the API promises. */
        pthread_mutex_lock(&pool_lock);
        g_queue_remove(&pending, req);
        pthread_mutex_unlock(&pool_lock);
        run_request(req);
        pthread_mutex_lock(&pool_lock);
        g_queue_push_tail(&done, req);
        if (!completion_scheduled) {
            completion_scheduled = true;
            main_loop_schedule(completions_on_main_loop, NULL);
        }
        pthread_mutex_unlock(&pool_lock);
    }
}

void blk_aio_preadv(BlockBackend *blk, int64_t offset, const struct iovec *iov, int iovcnt,
                    BlockCompletionFunc *cb, void *opaque)
{
    aio_pool_submit(blk, AIO_READ, offset, iov, iovcnt, cb, opaque);
}

void blk_aio_pwritev(BlockBackend *blk, int64_t offset, const struct iovec *iov, int iovcnt,
                     BlockCompletionFunc *cb, void *opaque)
{
    aio_pool_submit(blk, AIO_WRITE, offset, iov, iovcnt, cb, opaque);
}

void blk_aio_flush(BlockBackend *blk, BlockCompletionFunc *cb, void *opaque)
{
    aio_pool_submit(blk, AIO_FLUSH, 0, NULL, 0, cb, opaque);
}

void blk_drain_all(void)
{
    assert(bql_locked());
    pthread_mutex_lock(&pool_lock);
    while (in_flight > 0) {
        while (g_queue_is_empty(&done)) {
            pthread_cond_wait(&done_cond, &pool_lock);
        }
        /* Callbacks may submit more requests: the loop waits for those too. */
        pthread_mutex_unlock(&pool_lock);
        run_completions();
        pthread_mutex_lock(&pool_lock);
    }
    pthread_mutex_unlock(&pool_lock);
}

void aio_pool_shutdown(void)
{
    pthread_mutex_lock(&pool_lock);
    shutting_down = true;
    pthread_cond_broadcast(&work_cond);
    GPtrArray *threads = workers;
    workers = NULL;
    pthread_mutex_unlock(&pool_lock);
    for (guint i = 0; threads && i < threads->len; i++) {
        pthread_join(*(pthread_t *)threads->pdata[i], NULL);
        g_free(threads->pdata[i]);
    }
    if (threads) {
        g_ptr_array_free(threads, TRUE);
    }
    pthread_mutex_lock(&pool_lock);
    shutting_down = false;
    pthread_mutex_unlock(&pool_lock);
}
