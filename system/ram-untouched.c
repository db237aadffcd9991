/*
 * Guest RAM pages that were never populated: /proc/self/pagemap, one read
 * per window (what and why: include/ram-untouched.h).
 *
 * Each 64-bit pagemap entry describes one host page of our address space;
 * bit 63 says present, bit 62 swapped (or a migration entry, which the
 * kernel reports the same way). An entry with neither is a page nobody has
 * touched since it was mapped or discarded, which in a private anonymous
 * mapping reads as zero. Host pages must be MIGVM_PAGE_SIZE for the entries
 * to line up with guest pages; otherwise nothing counts as untouched.
 */
#include "ram-untouched.h"

#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_SWAPPED (1ULL << 62)

static pthread_once_t pagemap_once = PTHREAD_ONCE_INIT;
static int pagemap_fd = -1;            /* set once (pagemap_once); -1: unavailable */

static void pagemap_open(void)
{
    if (sysconf(_SC_PAGESIZE) == (long)MIGVM_PAGE_SIZE) {
        pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    }
}

/* Read the window of b holding `page` into c. False when it cannot be read
 * (c is then empty). */
static bool window_load(RamUntouched *c, const RAMBlock *b, uint64_t page)
{
    uint64_t entries[RAM_UNTOUCHED_WINDOW];
    pthread_once(&pagemap_once, pagemap_open);
    c->block = NULL;
    if (pagemap_fd < 0) {
        return false;
    }
    uint64_t first = page & ~(RAM_UNTOUCHED_WINDOW - 1);
    uint64_t n = MIN(RAM_UNTOUCHED_WINDOW, b->npages - first);
    off_t at = (off_t)(((uintptr_t)b->host / MIGVM_PAGE_SIZE + first) * sizeof(uint64_t));
    ssize_t got = pread(pagemap_fd, entries, n * sizeof(uint64_t), at);
    if (got < 0) {
        return false;
    }
    uint64_t valid = (uint64_t)got / sizeof(uint64_t);     /* a short read: the rest counts as touched */
    memset(c->map, 0, sizeof(c->map));
    for (uint64_t i = 0; i < valid; i++) {
        if (!(entries[i] & (PAGEMAP_PRESENT | PAGEMAP_SWAPPED))) {
            c->map[i / 64] |= 1ULL << (i % 64);
        }
    }
    c->block = b;
    c->first = first;
    c->n = n;
    return true;
}

static bool window_holds(const RamUntouched *c, const RAMBlock *b, uint64_t page)
{
    return c->block == b && page >= c->first && page - c->first < c->n;
}

bool ram_untouched(RamUntouched *c, const RAMBlock *b, uint64_t page)
{
    if (page >= b->npages) {
        return false;
    }
    if (!window_holds(c, b, page) && !window_load(c, b, page)) {
        return false;
    }
    uint64_t i = page - c->first;
    return (c->map[i / 64] >> (i % 64)) & 1;
}

uint64_t ram_untouched_word(RamUntouched *c, const RAMBlock *b, uint64_t page)
{
    if (page >= b->npages) {
        return 0;
    }
    if (!window_holds(c, b, page) && !window_load(c, b, page)) {
        return 0;
    }
    /* Windows start on a multiple of 4096 pages, so a word never straddles two. */
    return c->map[(page - c->first) / 64];
}

void ram_untouched_written(RamUntouched *c, const RAMBlock *b, uint64_t page, uint64_t n)
{
    for (uint64_t p = page; p < page + n; p++) {
        if (window_holds(c, b, p)) {
            uint64_t i = p - c->first;
            c->map[i / 64] &= ~(1ULL << (i % 64));
        }
    }
}
