/*
 * Pre-faulting the destination's guest RAM a window ahead of where page
 * data arrives (what and why: include/ram-prefault.h).
 *
 * The pieces of all blocks form one sequence, in block order and address
 * order within a block: the order in which a source's first pass sends
 * pages. Workers claim the next piece with a compare-and-swap, so they
 * work through RAM together, but only up to RAM_PREFAULT_WINDOW pieces past
 * the data front (ram_prefault_data_front); beyond it they sleep on a
 * condition variable that a loader moving the front signals (only when a
 * worker waits: ram_prefault_waiters). When the data front has overtaken the next
 * piece, they jump to the piece after it: behind the stream there is
 * nothing left to gain. A piece the stream has reached with any record (its
 * block's loaded_upto lies past the piece's start) is skipped. Each populate
 * is one madvise call of 2 MiB, so a stop takes effect within one piece.
 */
#include "ram-prefault.h"
#include "ram-prealloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <time.h>
#include <glib.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23      /* Linux 5.14 */
#endif

#define PREFAULT_MAX_WORKERS 4
#define PREFAULT_NICE 10
#define PREFAULT_WAIT_NS (100 * 1000 * 1000)  /* a wake-up that never came costs this much */

uint64_t ram_prefault_data_front;
uint32_t ram_prefault_waiters;

typedef struct Prefault {
    pthread_t workers[PREFAULT_MAX_WORKERS];   /* [main] */
    int nworkers;                              /* [main]: started, not yet joined */
    _Atomic uint64_t next;                     /* next piece to claim (workers) */
    _Atomic bool stop;                         /* [main] writes, workers read */
    _Atomic uint64_t populated, skipped, total;
    pthread_mutex_t lock;                      /* waiting for the window to move */
    pthread_cond_t moved;                      /* [lock] the front moved, or stop */
} Prefault;

static Prefault pf = { .lock = PTHREAD_MUTEX_INITIALIZER, .moved = PTHREAD_COND_INITIALIZER };
static _Atomic bool allowed = true;

void ram_prefault_set_allowed(bool on)
{
    atomic_store(&allowed, on);
    if (!on) {
        ram_prefault_stop();
    }
}

bool ram_prefault_allowed(void)
{
    return atomic_load(&allowed);
}

/* Piece index i (in the sequence above) as a block and an offset; false
 * past the end. The block list never changes while workers run. */
static bool piece_at(uint64_t i, RAMBlock **block, uint64_t *offset)
{
    RAMBLOCK_FOREACH(b) {
        uint64_t n = (b->used_length + RAM_PREFAULT_PIECE - 1) / RAM_PREFAULT_PIECE;
        if (i < n) {
            *block = b;
            *offset = i * RAM_PREFAULT_PIECE;
            return true;
        }
        i -= n;
    }
    return false;
}

static bool window_closed(uint64_t next)
{
    uint64_t front = __atomic_load_n(&ram_prefault_data_front, __ATOMIC_SEQ_CST);
    return front == 0 || next >= front + RAM_PREFAULT_WINDOW;
}

/* Sleep until the data front moves (or a stop). The waiter count goes up
 * before the front is looked at again, and a loader stores the front before
 * it reads the count, so one of the two sees the other. */
static void wait_for_window(uint64_t next)
{
    pthread_mutex_lock(&pf.lock);
    __atomic_add_fetch(&ram_prefault_waiters, 1, __ATOMIC_SEQ_CST);
    if (!atomic_load(&pf.stop) && window_closed(next)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += PREFAULT_WAIT_NS;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&pf.moved, &pf.lock, &ts);
    }
    __atomic_sub_fetch(&ram_prefault_waiters, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(&pf.lock);
}

void ram_prefault_wake(void)
{
    pthread_mutex_lock(&pf.lock);
    pthread_cond_broadcast(&pf.moved);
    pthread_mutex_unlock(&pf.lock);
}

/* The next piece to populate, claimed; false when there is none or the
 * workers stop. Waits while it lies beyond the window. */
static bool claim_piece(uint64_t *piece)
{
    while (!atomic_load(&pf.stop)) {
        uint64_t next = atomic_load(&pf.next);
        uint64_t front = __atomic_load_n(&ram_prefault_data_front, __ATOMIC_RELAXED);
        if (front == 0 || next >= front + RAM_PREFAULT_WINDOW) {
            wait_for_window(next);
            continue;
        }
        /* The data front is in piece front - 1: start after it. */
        uint64_t claim = MAX(next, front);
        if (atomic_compare_exchange_weak(&pf.next, &next, claim + 1)) {
            if (claim > next) {
                atomic_fetch_add(&pf.skipped, claim - next);
            }
            *piece = claim;
            return true;
        }
    }
    return false;
}

static void *prefault_worker(void *opaque)
{
    /* Spare CPU only: the vCPUs, the migration and incoming threads come
     * first (on 2 cores the workers would otherwise slow a source guest or
     * the stream they are meant to help). Linux applies nice per thread. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), PREFAULT_NICE) != 0) {
        /* not fatal: the workers run at normal priority */
    }
    uint64_t i;
    while (claim_piece(&i)) {
        RAMBlock *b;
        uint64_t off;
        if (!piece_at(i, &b, &off)) {
            break;
        }
        if (__atomic_load_n(&b->loaded_upto, __ATOMIC_RELAXED) > off) {
            atomic_fetch_add(&pf.skipped, 1);
            continue;
        }
        uint64_t len = MIN(RAM_PREFAULT_PIECE, b->used_length - off);
        /* Faults in what is missing, never changes what is there: a page
         * the stream writes meanwhile keeps its contents. */
        if (madvise(b->host + off, len, MADV_POPULATE_WRITE) != 0) {
            if (errno == EINVAL || errno == ENOSYS) {
                break;      /* kernel older than 5.14: nothing to gain here */
            }
            continue;       /* ENOMEM and the like: the stream's writes will fault */
        }
        atomic_fetch_add(&pf.populated, 1);
    }
    return NULL;
}

bool ram_prefault_running(void)
{
    return pf.nworkers > 0;
}

void ram_prefault_start(void)
{
    if (pf.nworkers || !ram_prefault_allowed() || ram_preallocated()) {
        return;
    }
    uint64_t total = 0;
    RAMBLOCK_FOREACH(b) {
        __atomic_store_n(&b->loaded_upto, 0, __ATOMIC_RELAXED);
        b->prefault_first = total;      /* before any loader runs */
        total += (b->used_length + RAM_PREFAULT_PIECE - 1) / RAM_PREFAULT_PIECE;
    }
    __atomic_store_n(&ram_prefault_data_front, 0, __ATOMIC_RELAXED);
    atomic_store(&pf.next, 0);
    atomic_store(&pf.stop, false);
    atomic_store(&pf.populated, 0);
    atomic_store(&pf.skipped, 0);
    atomic_store(&pf.total, total);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int want = (int)MIN(MAX(ncpu, 1), PREFAULT_MAX_WORKERS);
    for (int i = 0; i < want && total; i++) {
        if (pthread_create(&pf.workers[pf.nworkers], NULL, prefault_worker, NULL) != 0) {
            break;          /* fewer workers, or none: the stream faults pages itself */
        }
        pf.nworkers++;
    }
}

void ram_prefault_cancel(void)
{
    atomic_store(&pf.stop, true);
    ram_prefault_wake();
}

void ram_prefault_stop(void)
{
    atomic_store(&pf.stop, true);
    ram_prefault_wake();
    for (int i = 0; i < pf.nworkers; i++) {
        pthread_join(pf.workers[i], NULL);
    }
    pf.nworkers = 0;
}

void ram_prefault_get_stats(RamPrefaultStats *out)
{
    out->populated = atomic_load(&pf.populated);
    out->skipped = atomic_load(&pf.skipped);
    out->total = atomic_load(&pf.total);
}
