/*
 * The source's queue of pages the destination asked for during postcopy
 * (return-path REQ_PAGES_ID / REQ_PAGES, shared docs: postcopy.md section 4).
 * The return-path reader pushes, RAM's postcopy sender pops before it sends
 * any background page. Requests are checked here: a known block, a range
 * inside it, aligned to the 4 KiB host page.
 */
#include "postcopy-ram.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <glib.h>

typedef struct PageRequest {
    RAMBlock *b;
    uint64_t start, len;
} PageRequest;

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static GQueue queue = G_QUEUE_INIT;       /* PageRequest *, [queue_lock] */
static RAMBlock *last_block;              /* the reader's: REQ_PAGES reuses it */
static _Atomic uint64_t queued;           /* requests waiting (cheap check) */
static _Atomic uint64_t total_requests;   /* query-migrate postcopy-requests */
static void (*notify)(void);              /* set before the reader starts */

void postcopy_request_set_notify(void (*fn)(void))
{
    notify = fn;
}

bool postcopy_request_push(const char *block, uint64_t start, uint32_t len, Error **errp)
{
    RAMBlock *b = last_block;
    if (block) {
        b = ram_block_by_name(block);
        if (!b) {
            error_setg(errp, "MIG_RP_MSG_REQ_PAGES has no block '%s'", block);
            return false;
        }
        last_block = b;
    }
    if (!b) {
        error_setg(errp, "MIG_RP_MSG_REQ_PAGES without a block");
        return false;
    }
    if ((start | len) % MIGVM_PAGE_SIZE) {
        error_setg(errp, "Misaligned page request, start: 0x%" PRIx64 " len: %" PRIu32, start, len);
        return false;
    }
    if (len == 0 || start >= b->used_length || len > b->used_length - start) {
        error_setg(errp, "ram_save_queue_pages request overrun, start=0x%" PRIx64 " len=0x%" PRIx32
                   " blocklen=0x%" PRIx64, start, len, b->used_length);
        return false;
    }
    PageRequest *r = g_new(PageRequest, 1);
    *r = (PageRequest) { .b = b, .start = start, .len = len };
    pthread_mutex_lock(&queue_lock);
    g_queue_push_tail(&queue, r);
    atomic_fetch_add(&queued, 1);
    atomic_fetch_add(&total_requests, 1);
    pthread_mutex_unlock(&queue_lock);
    if (notify) {
        notify();
    }
    return true;
}

bool postcopy_request_pending(void)
{
    return atomic_load_explicit(&queued, memory_order_relaxed) != 0;
}

bool postcopy_request_pop(RAMBlock **b, uint64_t *start, uint64_t *len)
{
    if (!postcopy_request_pending()) {
        return false;
    }
    pthread_mutex_lock(&queue_lock);
    PageRequest *r = g_queue_pop_head(&queue);
    if (r) {
        atomic_fetch_sub(&queued, 1);
    }
    pthread_mutex_unlock(&queue_lock);
    if (!r) {
        return false;
    }
    *b = r->b;
    *start = r->start;
    *len = r->len;
    g_free(r);
    return true;
}

void postcopy_requests_reset(void)
{
    pthread_mutex_lock(&queue_lock);
    g_queue_clear_full(&queue, g_free);
    atomic_store(&queued, 0);
    atomic_store(&total_requests, 0);
    last_block = NULL;
    pthread_mutex_unlock(&queue_lock);
}

void postcopy_requests_new_channel(void)
{
    pthread_mutex_lock(&queue_lock);
    last_block = NULL;
    pthread_mutex_unlock(&queue_lock);
}

uint64_t postcopy_requests_count(void)
{
    return atomic_load(&total_requests);
}
