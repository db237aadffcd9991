/*
 * Guest RAM blocks and their dirty bitmaps (see include/memory.h for the
 * two-bitmap design and the ordering rule migration relies on).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <glib.h>
#include "memory.h"
#include "ram-prefault.h"
#include "vm.h"
#include "tsan.h"
#include "accel.h"

static RAMBlock *blocks;            /* list in creation order */
static bool dirty_log_on;           /* atomic */
static int dirty_log_users;         /* [BQL]: migration, a dirty rate measurement */
static bool rate_capture_on;        /* atomic: syncs also OR into rate_bmap */

/* ---- small bitmap helpers ---- */

static uint64_t bitmap_words(uint64_t nbits)
{
    return (nbits + MIGVM_BITS_PER_LONG - 1) / MIGVM_BITS_PER_LONG;
}

/* Mask of the valid bits of word w in a bitmap of nbits bits. */
static unsigned long valid_mask(uint64_t w, uint64_t nbits)
{
    uint64_t rest = nbits - w * MIGVM_BITS_PER_LONG;

    return rest >= MIGVM_BITS_PER_LONG ? ~0UL : (1UL << rest) - 1;
}

static void count_add(RAMBlock *b, uint64_t n)
{
    if (n) {
        __atomic_fetch_add(&b->bmap_count, n, __ATOMIC_RELAXED);
    }
}

/* ---- blocks ---- */

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + alen;
}

int ram_block_mappings(const RAMBlock *b, RAMMapping m[RAM_BLOCK_MAX_MAPPINGS])
{
    m[0] = (RAMMapping) { .gpa = b->gpa, .offset = 0, .len = b->low_length };
    if (b->low_length >= b->used_length) {
        return 1;
    }
    m[1] = (RAMMapping) { .gpa = b->high_gpa, .offset = b->low_length,
                          .len = b->used_length - b->low_length };
    return 2;
}

/* The new block's mappings m[0..n) against each other and every block. */
static bool ram_block_check_new(const char *name, const RAMMapping *m, int n, Error **errp)
{
    if (!name || !*name || strlen(name) > 255) {
        error_setg(errp, "invalid RAM block name");
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (m[i].len == 0 || m[i].gpa + m[i].len < m[i].gpa) {
            error_setg(errp, "invalid size for RAM block '%s'", name);
            return false;
        }
    }
    if (n == 2 && m[1].gpa < m[0].gpa + m[0].len) {
        error_setg(errp, "RAM block '%s': high part at 0x%llx must lie above the low part (ends 0x%llx)",
                   name, (unsigned long long)m[1].gpa, (unsigned long long)(m[0].gpa + m[0].len));
        return false;
    }
    for (RAMBlock *b = blocks; b; b = b->next) {
        RAMMapping old[RAM_BLOCK_MAX_MAPPINGS];
        int nold = ram_block_mappings(b, old);

        if (!strcmp(b->name, name)) {
            error_setg(errp, "RAM block '%s' already exists", name);
            return false;
        }
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < nold; j++) {
                if (ranges_overlap(m[i].gpa, m[i].len, old[j].gpa, old[j].len)) {
                    error_setg(errp, "RAM block '%s' overlaps '%s'", name, b->name);
                    return false;
                }
            }
        }
    }
    return true;
}

#define RAM_HUGE_ALIGN (2ULL << 20)

/* Anonymous memory aligned to 2 MiB and advised for transparent huge pages:
 * one fault per 2 MiB instead of per 4 KiB when the guest, or an incoming
 * migration, first touches it (that first touch dominated migration time). */
static void *ram_map(uint64_t size)
{
    uint64_t span = size + RAM_HUGE_ALIGN;
    uint8_t *raw = mmap(NULL, span, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED) {
        return NULL;
    }
    uint8_t *host = (uint8_t *)(((uintptr_t)raw + RAM_HUGE_ALIGN - 1) & ~(uintptr_t)(RAM_HUGE_ALIGN - 1));
    if (host > raw) {
        munmap(raw, host - raw);
    }
    munmap(host + size, raw + span - (host + size));
    madvise(host, size, MADV_HUGEPAGE);     /* advice only: failure is harmless */
    return host;
}

RAMBlock *ram_block_add(const char *name, uint64_t gpa, uint64_t size, Error **errp)
{
    return ram_block_add_split(name, gpa, size, UINT64_MAX, 0, errp);
}

RAMBlock *ram_block_add_split(const char *name, uint64_t gpa, uint64_t size,
                              uint64_t low_length, uint64_t high_gpa, Error **errp)
{
    if (size > UINT64_MAX - MIGVM_PAGE_SIZE) {
        error_setg(errp, "invalid size for RAM block '%s'", name ? name : "");
        return NULL;
    }
    size = (size + MIGVM_PAGE_SIZE - 1) & ~(MIGVM_PAGE_SIZE - 1);
    if (low_length >= size) {
        low_length = size;
        high_gpa = 0;
    } else if (low_length == 0 || low_length % RAM_BLOCK_SPLIT_ALIGN ||
               high_gpa % MIGVM_PAGE_SIZE) {
        error_setg(errp, "RAM block '%s': cannot split at 0x%llx / map the rest at 0x%llx "
                   "(need a non-zero multiple of %llu and a page-aligned address)",
                   name ? name : "", (unsigned long long)low_length, (unsigned long long)high_gpa,
                   (unsigned long long)RAM_BLOCK_SPLIT_ALIGN);
        return NULL;
    }
    RAMBlock probe = { .gpa = gpa, .used_length = size, .low_length = low_length, .high_gpa = high_gpa };
    RAMMapping m[RAM_BLOCK_MAX_MAPPINGS];
    if (!ram_block_check_new(name, m, ram_block_mappings(&probe, m), errp)) {
        return NULL;
    }
    void *host = ram_map(size);
    if (!host) {
        error_setg_errno(errp, errno, "cannot allocate %llu bytes for RAM block '%s'",
                         (unsigned long long)size, name);
        return NULL;
    }
    RAMBlock *b = g_new0(RAMBlock, 1);
    b->name = g_strdup(name);
    b->host = host;
    b->used_length = size;
    b->gpa = gpa;
    b->low_length = low_length;
    b->high_gpa = high_gpa;
    b->npages = size >> MIGVM_PAGE_BITS;
    b->bmap = g_new0(unsigned long, bitmap_words(b->npages));
    b->log = g_new0(unsigned long, bitmap_words(b->npages));
    b->rate_bmap = g_new0(unsigned long, bitmap_words(b->npages));

    RAMBlock **tail = &blocks;
    while (*tail) {
        tail = &(*tail)->next;
    }
    *tail = b;
    return b;
}

void ram_blocks_free_all(void)
{
    ram_prefault_stop();        /* its workers walk the blocks */
    while (blocks) {
        RAMBlock *b = blocks;
        blocks = b->next;
        munmap(b->host, b->used_length);
        g_free(b->bmap);
        g_free(b->log);
        g_free(b->rate_bmap);
        g_free(b->name);
        g_free(b);
    }
    __atomic_store_n(&dirty_log_on, false, __ATOMIC_SEQ_CST);
    __atomic_store_n(&rate_capture_on, false, __ATOMIC_SEQ_CST);
    dirty_log_users = 0;
}

RAMBlock *ram_block_first(void)
{
    return blocks;
}

RAMBlock *ram_block_by_name(const char *name)
{
    RAMBLOCK_FOREACH(b) {
        if (!strcmp(b->name, name)) {
            return b;
        }
    }
    return NULL;
}

bool ram_block_gpa_to_offset(const RAMBlock *b, uint64_t gpa, uint64_t *offset)
{
    if (gpa >= b->gpa && gpa - b->gpa < b->low_length) {
        *offset = gpa - b->gpa;
        return true;
    }
    if (b->low_length < b->used_length && gpa >= b->high_gpa &&
        gpa - b->high_gpa < b->used_length - b->low_length) {
        *offset = b->low_length + (gpa - b->high_gpa);
        return true;
    }
    return false;
}

/* The block mapping gpa, gpa's offset in it, and how many bytes from gpa on
 * are contiguous in both guest and host memory (to the mapping's end). */
static RAMBlock *ram_lookup(uint64_t gpa, uint64_t *offset, uint64_t *avail)
{
    RAMBLOCK_FOREACH(b) {
        if (ram_block_gpa_to_offset(b, gpa, offset)) {
            uint64_t end = *offset < b->low_length ? b->low_length : b->used_length;
            *avail = end - *offset;
            return b;
        }
    }
    return NULL;
}

RAMBlock *ram_block_by_gpa(uint64_t gpa)
{
    uint64_t offset, avail;

    return ram_lookup(gpa, &offset, &avail);
}

int ram_block_count(void)
{
    int n = 0;

    RAMBLOCK_FOREACH(b) {
        n++;
    }
    return n;
}

uint64_t ram_total_size(void)
{
    uint64_t total = 0;

    RAMBLOCK_FOREACH(b) {
        total += b->used_length;
    }
    return total;
}

/* ---- guest physical access ---- */

static bool guest_phys_check(uint64_t gpa, size_t len, Error **errp)
{
    uint64_t addr = gpa, left = len, offset, avail;

    if (gpa + len < gpa) {
        error_setg(errp, "Invalid addr 0x%016llx/size %zu specified",
                   (unsigned long long)gpa, len);
        return false;
    }
    while (left) {
        if (!ram_lookup(addr, &offset, &avail)) {
            error_setg(errp, "Invalid addr 0x%016llx/size %zu specified",
                       (unsigned long long)gpa, len);
            return false;
        }
        uint64_t n = MIN(left, avail);
        addr += n;
        left -= n;
    }
    return true;
}

bool guest_phys_read(uint64_t gpa, void *buf, size_t len, Error **errp)
{
    if (!guest_phys_check(gpa, len, errp)) {
        return false;
    }
    uint8_t *out = buf;
    while (len) {
        uint64_t off, avail;
        RAMBlock *b = ram_lookup(gpa, &off, &avail);
        size_t n = MIN(len, avail);
        tsan_ignore_begin();            /* guest RAM (include/tsan.h) */
        memcpy(out, b->host + off, n);
        tsan_ignore_end();
        out += n;
        gpa += n;
        len -= n;
    }
    return true;
}

bool guest_phys_write(uint64_t gpa, const void *buf, size_t len, Error **errp)
{
    if (!guest_phys_check(gpa, len, errp)) {
        return false;
    }
    const uint8_t *in = buf;
    while (len) {
        uint64_t off, avail;
        RAMBlock *b = ram_lookup(gpa, &off, &avail);
        size_t n = MIN(len, avail);
        tsan_ignore_begin();
        memcpy(b->host + off, in, n);
        tsan_ignore_end();
        ram_block_set_dirty_range(b, off, n);
        in += n;
        gpa += n;
        len -= n;
    }
    return true;
}

void *guest_phys_to_host(uint64_t gpa, uint64_t len)
{
    uint64_t off, avail;
    RAMBlock *b = ram_lookup(gpa, &off, &avail);

    if (!b || len > avail) {
        return NULL;
    }
    return b->host + off;
}

void ram_block_set_dirty_range(RAMBlock *b, uint64_t offset, uint64_t len)
{
    if (!len || offset >= b->used_length) {
        return;
    }
    uint64_t last = MIN(offset + len - 1, b->used_length - 1) >> MIGVM_PAGE_BITS;
    for (uint64_t p = offset >> MIGVM_PAGE_BITS; p <= last; p++) {
        ram_block_set_dirty(b, p);
    }
}

/* ---- dirty logging ---- */

bool memory_global_dirty_log_start(Error **errp)
{
    assert(bql_locked());
    const AccelOps *ops = accel_current();

    if (dirty_log_users > 0) {
        /* Already on for another user: its log must not be dropped. */
        dirty_log_users++;
        return true;
    }
    /* Stale software log bits predate this user; a migration's first pass
     * sends every page anyway, a measurement starts counting later. */
    RAMBLOCK_FOREACH(b) {
        for (uint64_t w = 0; w < bitmap_words(b->npages); w++) {
            __atomic_store_n(&b->log[w], 0, __ATOMIC_SEQ_CST);
        }
    }
    if (ops && ops->dirty_log_start && !ops->dirty_log_start(errp)) {
        return false;
    }
    __atomic_store_n(&dirty_log_on, true, __ATOMIC_SEQ_CST);
    dirty_log_users = 1;
    return true;
}

void memory_global_dirty_log_stop(void)
{
    assert(bql_locked());
    const AccelOps *ops = accel_current();

    if (dirty_log_users == 0 || --dirty_log_users > 0) {
        return;
    }
    __atomic_store_n(&dirty_log_on, false, __ATOMIC_SEQ_CST);
    if (ops && ops->dirty_log_stop) {
        ops->dirty_log_stop();
    }
}

bool memory_global_dirty_log_enabled(void)
{
    return __atomic_load_n(&dirty_log_on, __ATOMIC_SEQ_CST);
}

/* While a measurement captures, every harvested bit is also ORed into
 * rate_bmap: whoever syncs (the migration thread or the measurement), the
 * measurement sees each page once, and bmap is never touched for it. */
static void rate_capture(RAMBlock *b, uint64_t w, unsigned long bits)
{
    if (__atomic_load_n(&rate_capture_on, __ATOMIC_SEQ_CST)) {
        __atomic_fetch_or(&b->rate_bmap[w], bits, __ATOMIC_SEQ_CST);
    }
}

void ram_dirty_capture_start(void)
{
    RAMBLOCK_FOREACH(b) {
        for (uint64_t w = 0; w < bitmap_words(b->npages); w++) {
            __atomic_store_n(&b->rate_bmap[w], 0, __ATOMIC_SEQ_CST);
        }
    }
    __atomic_store_n(&rate_capture_on, true, __ATOMIC_SEQ_CST);
}

uint64_t ram_dirty_capture_stop(void)
{
    uint64_t pages = 0;

    __atomic_store_n(&rate_capture_on, false, __ATOMIC_SEQ_CST);
    RAMBLOCK_FOREACH(b) {
        for (uint64_t w = 0; w < bitmap_words(b->npages); w++) {
            pages += __builtin_popcountl(__atomic_load_n(&b->rate_bmap[w], __ATOMIC_SEQ_CST));
        }
    }
    return pages;
}

/* Move the software log into bmap, word by word, atomically. */
static uint64_t ram_block_sync_log(RAMBlock *b)
{
    uint64_t added = 0;

    for (uint64_t w = 0; w < bitmap_words(b->npages); w++) {
        if (!__atomic_load_n(&b->log[w], __ATOMIC_RELAXED)) {
            continue;
        }
        unsigned long bits = __atomic_exchange_n(&b->log[w], 0, __ATOMIC_SEQ_CST);
        rate_capture(b, w, bits);
        unsigned long old = __atomic_fetch_or(&b->bmap[w], bits, __ATOMIC_SEQ_CST);
        added += __builtin_popcountl(bits & ~old);
    }
    count_add(b, added);
    return added;
}

uint64_t memory_global_dirty_log_sync(void)
{
    const AccelOps *ops = accel_current();
    uint64_t added = 0;

    if (ops && ops->dirty_log_sync) {
        added += ops->dirty_log_sync();
    }
    RAMBLOCK_FOREACH(b) {
        added += ram_block_sync_log(b);
    }
    return added;
}

uint64_t ram_block_merge_dirty(RAMBlock *b, const unsigned long *src,
                               uint64_t first_page, uint64_t npages)
{
    uint64_t added = 0;

    if (first_page % MIGVM_BITS_PER_LONG || first_page >= b->npages) {
        return 0;
    }
    npages = MIN(npages, b->npages - first_page);
    uint64_t base = first_page / MIGVM_BITS_PER_LONG;
    for (uint64_t w = 0; w < bitmap_words(npages); w++) {
        unsigned long bits = src[w] & valid_mask(w, npages);
        if (bits) {
            rate_capture(b, base + w, bits);
            unsigned long old = __atomic_fetch_or(&b->bmap[base + w], bits, __ATOMIC_SEQ_CST);
            added += __builtin_popcountl(bits & ~old);
        }
    }
    count_add(b, added);
    return added;
}

/* ---- migration side ---- */

bool ram_block_test_and_clear_dirty(RAMBlock *b, uint64_t page)
{
    if (page >= b->npages) {
        return false;
    }
    unsigned long bit = 1UL << (page % MIGVM_BITS_PER_LONG);
    unsigned long old = __atomic_fetch_and(&b->bmap[page / MIGVM_BITS_PER_LONG], ~bit,
                                           __ATOMIC_SEQ_CST);
    if (old & bit) {
        __atomic_fetch_sub(&b->bmap_count, 1, __ATOMIC_RELAXED);
        return true;
    }
    return false;
}

unsigned long ram_block_test_and_clear_dirty_word(RAMBlock *b, uint64_t w, unsigned long mask)
{
    if (w >= bitmap_words(b->npages)) {
        return 0;
    }
    unsigned long cleared = __atomic_fetch_and(&b->bmap[w], ~mask, __ATOMIC_SEQ_CST) & mask;
    if (cleared) {
        __atomic_fetch_sub(&b->bmap_count, (uint64_t)__builtin_popcountl(cleared), __ATOMIC_RELAXED);
    }
    return cleared;
}

bool ram_block_test_dirty(RAMBlock *b, uint64_t page)
{
    return page < b->npages &&
           (__atomic_load_n(&b->bmap[page / MIGVM_BITS_PER_LONG], __ATOMIC_ACQUIRE) >>
            (page % MIGVM_BITS_PER_LONG)) & 1;
}

uint64_t ram_block_find_next_dirty(RAMBlock *b, uint64_t start)
{
    if (start >= b->npages) {
        return b->npages;
    }
    uint64_t w = start / MIGVM_BITS_PER_LONG;
    unsigned long bits = __atomic_load_n(&b->bmap[w], __ATOMIC_ACQUIRE) &
                         (~0UL << (start % MIGVM_BITS_PER_LONG));
    uint64_t nwords = bitmap_words(b->npages);

    while (!bits) {
        if (++w >= nwords) {
            return b->npages;
        }
        bits = __atomic_load_n(&b->bmap[w], __ATOMIC_ACQUIRE);
    }
    uint64_t page = w * MIGVM_BITS_PER_LONG + __builtin_ctzl(bits);
    return MIN(page, b->npages);
}

void ram_block_set_all_dirty(RAMBlock *b)
{
    uint64_t added = 0;

    for (uint64_t w = 0; w < bitmap_words(b->npages); w++) {
        unsigned long mask = valid_mask(w, b->npages);
        unsigned long old = __atomic_fetch_or(&b->bmap[w], mask, __ATOMIC_SEQ_CST);
        added += __builtin_popcountl(mask & ~old);
    }
    count_add(b, added);
}

void ram_block_clear_all_dirty(RAMBlock *b)
{
    for (uint64_t w = 0; w < bitmap_words(b->npages); w++) {
        unsigned long old = __atomic_exchange_n(&b->bmap[w], 0, __ATOMIC_SEQ_CST);
        if (old) {
            __atomic_fetch_sub(&b->bmap_count, (uint64_t)__builtin_popcountl(old),
                               __ATOMIC_RELAXED);
        }
    }
}

uint64_t ram_block_dirty_pages(RAMBlock *b)
{
    return __atomic_load_n(&b->bmap_count, __ATOMIC_RELAXED);
}

uint64_t ram_dirty_pages(void)
{
    uint64_t n = 0;

    RAMBLOCK_FOREACH(b) {
        n += ram_block_dirty_pages(b);
    }
    return n;
}
