/*
 * Page sampling for dirty rate estimates (see dirtyrate.h): hash a few
 * random pages now and later; the fraction that changed, times RAM, is how
 * much of RAM the guest dirtied in between. It cannot see a page written
 * back with the same bytes, and it saturates once the interval is longer
 * than the time the guest takes to rewrite its RAM.
 */
#include <string.h>
#include <glib.h>
#include "dirtyrate.h"
#include "memory.h"

typedef struct SampledPage {
    RAMBlock *block;
    uint64_t page;
    uint64_t hash;
} SampledPage;

struct PageSample {
    SampledPage *pages;
    uint64_t n;
    uint64_t ram_bytes;
};

/* FNV-1a over 64-bit words: fast, and any change of a word changes it.
 * The guest writes the page meanwhile, by design. */
static GUEST_RAM_ACCESS uint64_t hash_page(const RAMBlock *b, uint64_t page)
{
    const uint8_t *p = b->host + (page << MIGVM_PAGE_BITS);
    uint64_t h = 0xcbf29ce484222325ULL;

    for (uint64_t off = 0; off < MIGVM_PAGE_SIZE; off += sizeof(uint64_t)) {
        uint64_t w = *(const volatile uint64_t *)(p + off);
        h = (h ^ w) * 0x100000001b3ULL;
    }
    return h;
}

static uint64_t pages_for_block(const RAMBlock *b, uint64_t per_gib)
{
    uint64_t n = (b->used_length * per_gib + (1ULL << 30) - 1) >> 30;

    return MAX(1, MIN(n, b->npages));
}

PageSample *page_sample_new(uint64_t per_gib, uint32_t seed)
{
    PageSample *s = g_new0(PageSample, 1);
    GRand *rng = g_rand_new_with_seed(seed);
    uint64_t total = 0;

    RAMBLOCK_FOREACH(b) {
        total += pages_for_block(b, per_gib);
    }
    s->pages = g_new0(SampledPage, MAX(total, 1));
    RAMBLOCK_FOREACH(b) {
        uint64_t n = pages_for_block(b, per_gib);
        for (uint64_t i = 0; i < n; i++) {
            /* Two 32-bit draws: blocks may have more than 2^32 pages. */
            uint64_t r = ((uint64_t)g_rand_int(rng) << 32) | g_rand_int(rng);
            SampledPage *sp = &s->pages[s->n++];
            sp->block = b;
            sp->page = r % b->npages;
            sp->hash = hash_page(b, sp->page);
        }
        s->ram_bytes += b->used_length;
    }
    g_rand_free(rng);
    return s;
}

uint64_t page_sample_changed(PageSample *s, uint64_t *sampled)
{
    uint64_t changed = 0;

    for (uint64_t i = 0; i < s->n; i++) {
        uint64_t h = hash_page(s->pages[i].block, s->pages[i].page);
        changed += h != s->pages[i].hash;
        s->pages[i].hash = h;
    }
    *sampled = s->n;
    return changed;
}

uint64_t page_sample_ram_bytes(const PageSample *s)
{
    return s->ram_bytes;
}

void page_sample_free(PageSample *s)
{
    if (s) {
        g_free(s->pages);
        g_free(s);
    }
}

int64_t dirty_rate_mib_per_s(double pages, int64_t ms)
{
    if (ms <= 0) {
        return 0;
    }
    return (int64_t)(pages * MIGVM_PAGE_SIZE / (1 << 20) * 1000.0 / (double)ms);
}
