/*
 * -mem-prealloc: populate all guest RAM before the machine starts (what and
 * why: include/ram-prealloc.h). The pieces of all blocks form one sequence;
 * each thread claims the next piece with an atomic add, so threads share the
 * work however the blocks are sized.
 */
#include "ram-prealloc.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <glib.h>

#include "memory.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23      /* Linux 5.14 */
#endif

#define PREALLOC_PIECE (2ULL << 20)
#define PREALLOC_MAX_THREADS 16

typedef struct Prealloc {
    _Atomic uint64_t next;          /* next piece to claim */
    _Atomic int err;                /* first errno seen; 0: none */
    _Atomic(RAMBlock *) failed;     /* the block it was seen in */
} Prealloc;

static _Atomic bool preallocated;

/* Piece i of the sequence: its block and offset; false past the end. */
static bool piece_at(uint64_t i, RAMBlock **block, uint64_t *offset)
{
    RAMBLOCK_FOREACH(b) {
        uint64_t n = (b->used_length + PREALLOC_PIECE - 1) / PREALLOC_PIECE;
        if (i < n) {
            *block = b;
            *offset = i * PREALLOC_PIECE;
            return true;
        }
        i -= n;
    }
    return false;
}

/* Without MADV_POPULATE_WRITE (before Linux 5.14): a write per page. A
 * page already written keeps its contents (only zeroes exist yet). */
static void touch_pages(uint8_t *p, uint64_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    for (uint64_t off = 0; off < len; off += (uint64_t)page) {
        *(volatile uint8_t *)(p + off) = 0;
    }
}

static void *prealloc_thread(void *opaque)
{
    Prealloc *pa = opaque;
    RAMBlock *b;
    uint64_t off;

    while (!atomic_load(&pa->err) && piece_at(atomic_fetch_add(&pa->next, 1), &b, &off)) {
        uint64_t len = MIN(PREALLOC_PIECE, b->used_length - off);
        if (madvise(b->host + off, len, MADV_POPULATE_WRITE) == 0) {
            continue;
        }
        if (errno == EINVAL || errno == ENOSYS) {
            touch_pages(b->host + off, len);     /* older kernel */
            continue;
        }
        int expected = 0;
        if (atomic_compare_exchange_strong(&pa->err, &expected, errno)) {
            atomic_store(&pa->failed, b);
        }
    }
    return NULL;
}

bool ram_prealloc_all(int threads, Error **errp)
{
    Prealloc pa = { 0 };
    pthread_t tid[PREALLOC_MAX_THREADS];
    int n = 0;

    threads = MAX(1, MIN(threads, PREALLOC_MAX_THREADS));
    for (; n < threads - 1; n++) {
        if (pthread_create(&tid[n], NULL, prealloc_thread, &pa) != 0) {
            break;          /* fewer threads: this one does the rest */
        }
    }
    prealloc_thread(&pa);
    for (int i = 0; i < n; i++) {
        pthread_join(tid[i], NULL);
    }
    int err = atomic_load(&pa.err);
    if (err) {
        RAMBlock *b = atomic_load(&pa.failed);
        error_setg(errp, "cannot preallocate RAM block '%s' (%llu MiB): %s", b->name,
                   (unsigned long long)(b->used_length >> 20), strerror(err));
        return false;
    }
    atomic_store(&preallocated, true);
    return true;
}

bool ram_preallocated(void)
{
    return atomic_load(&preallocated);
}
