/*
 * RAM migration: the "ram" live handler, version 4.
 *
 * Source (migration thread):
 *   setup      MEM_SIZE record with every block's name and length, EOS;
 *              dirty logging on, every page marked dirty (pass 1).
 *   iterate    walk the migration bitmap from where the last round stopped,
 *              test-and-clear each dirty page BEFORE reading it, send it as
 *              ZERO (all-zero page) or PAGE; a page never populated
 *              (ram-untouched.h) is ZERO without being read, with the other
 *              untouched dirty pages of its bitmap word in one go; stop at
 *              the rate limit, after
 *              ~50 ms (so the thread can re-check pending and cancel), or at
 *              the end of the bitmap (pass done); EOS.
 *   pending    estimate: pages still set in the bitmap. Exact: sync the
 *              accelerator's dirty log into the bitmap first (a new pass).
 *   complete   [guest stopped] sync once more, send everything left, EOS
 *              (a test can leave these pages out: "ram/final-pass",
 *              include/vmstate.h).
 * Hot path: no allocation, no lock, no syscall per page; pages go into the
 * stream by reference (mig_stream_put_page), batched into one writev.
 *
 * Destination (incoming thread): parses the same records and trusts nothing:
 * block names and lengths must match ours, offsets must lie inside the
 * block, exactly one record type per word, CONTINUE only after a block.
 * A PAGE payload is read from the socket straight into guest RAM, never
 * through the stream's buffer: one readv() takes the page and, guessing
 * that the next records are the following pages of the block (as a first
 * pass sends them), up to LOAD_AHEAD_PAGES more records, each header into
 * a small array and each payload into its page. A guess is checked against
 * the header that arrived; from the first wrong one on, the bytes go back
 * into the stream (mig_stream_unread) and are parsed as usual. Guessed
 * payloads land only in pages this load has not received yet: a first pass
 * sends every page, so whatever a wrong guess left there is overwritten
 * by that page's own record later (a ZERO record clears a non-zero page).
 * While pages are read that way the stream buffers at most LOAD_READ_AHEAD
 * bytes beyond the record at hand, so payloads rarely pass through it.
 * A page with nothing to guess after it (its successor was received
 * already: later passes) goes through the full buffer instead, one copy:
 * measured here, a readv() per 4 KiB page is slower than that copy.
 * A ZERO record leaves a page that was never populated alone (it reads as
 * zero: ram-untouched.h), so an idle guest allocates nothing here; the
 * ZERO records that follow it for the next pages, as far as they are
 * buffered, are taken in one go.
 */
#include "ram.h"
#include "buffer-zero.h"
#include "postcopy-ram.h"
#include "recv-bitmap.h"
#include "cpu-throttle.h"
#include "auto-converge.h"
#include "clock.h"
#include "savevm.h"
#include "memory.h"
#include "multifd.h"
#include "ram-prefault.h"
#include "ram-untouched.h"
#include "tsan.h"
#include "stream.h"
#include "vm.h"
#include "vmstate.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <glib.h>

#define ITERATE_MAX_NS (50 * 1000 * 1000LL)
/* The page and its guessed successors fit the stream's 64 KiB buffer, so a
 * wrong guess can always be put back. */
#define LOAD_AHEAD_PAGES 14
#define LOAD_READ_AHEAD 4096

/* Statistics: atomics, written only by the migration thread (stat_add)
 * and read by query-migrate on the main thread (ram_get_stats). */
typedef struct RAMStats {
    _Atomic uint64_t normal_pages, zero_pages, dirty_sync_count, dirty_pages_rate;
    _Atomic uint64_t precopy_bytes, downtime_bytes, postcopy_bytes;
} RAMStats;

typedef struct RAMState {
    /* Source: the migration thread only. */
    RAMBlock *scan_block;        /* scan position */
    uint64_t scan_page;
    RAMBlock *last_sent_block;   /* CONTINUE state */
    bool guest_running;          /* at setup: a stopped guest's bytes are all downtime */
    bool postcopy;               /* after the discards: requests first, no more syncs */
    int64_t last_sync_ns;
    uint64_t dirtied_since_rate;
    AutoConverge auto_converge;
    RAMStats stats;              /* any thread: see RAMStats */
    RamPassFn *on_pass;          /* set once by ram_mig_init */
    RamUntouched src_untouched;  /* pages never populated, read after the last sync */
    /* Destination: the incoming thread only. */
    RAMBlock *last_loaded_block;
    bool blocks_checked;
    uint8_t postcopy_page[MIGVM_PAGE_SIZE];  /* a page read before UFFDIO_COPY places it */
    bool load_ahead;             /* guess following pages (not with postcopy) */
    RamUntouched dst_untouched;  /* pages never populated: a ZERO record leaves them alone */
} RAMState;

static RAMState ram_state;

/* Single writer: a relaxed load and store, no locked instruction per page. */
static void stat_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

static void stat_set(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, v, memory_order_relaxed);
}

static uint64_t stat_get(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void ram_get_stats(RamStats *out)
{
    RAMStats *st = &ram_state.stats;
    out->normal_pages = stat_get(&st->normal_pages);
    out->zero_pages = stat_get(&st->zero_pages);
    out->dirty_sync_count = stat_get(&st->dirty_sync_count);
    out->dirty_pages_rate = stat_get(&st->dirty_pages_rate);
    out->precopy_bytes = stat_get(&st->precopy_bytes);
    out->downtime_bytes = stat_get(&st->downtime_bytes);
    out->postcopy_bytes = stat_get(&st->postcopy_bytes);
    out->postcopy_requests = postcopy_requests_count();
    out->remaining_pages = ram_dirty_pages();
    out->total_bytes = ram_total_size();
}

/* One bitmap sync = one pass; measures the dirty rate and reports the pass. */
static void ram_bitmap_sync(void)
{
    uint64_t newly = memory_global_dirty_log_sync();
    ram_untouched_reset(&ram_state.src_untouched);     /* read again after each sync */
    int64_t now = now_ns();
    stat_add(&ram_state.stats.dirty_sync_count, 1);
    uint64_t count = stat_get(&ram_state.stats.dirty_sync_count);
    ram_state.dirtied_since_rate += newly;
    if (now - ram_state.last_sync_ns >= 1000000000LL || count <= 2) {
        int64_t span = now - ram_state.last_sync_ns;
        if (span > 0) {
            stat_set(&ram_state.stats.dirty_pages_rate, (uint64_t)(ram_state.dirtied_since_rate * 1e9 / span));
        }
        auto_converge_period(&ram_state.auto_converge,
                             stat_get(&ram_state.stats.precopy_bytes) + stat_get(&ram_state.stats.downtime_bytes),
                             ram_state.dirtied_since_rate * MIGVM_PAGE_SIZE);
        ram_state.dirtied_since_rate = 0;
        ram_state.last_sync_ns = now;
    }
    if (ram_state.on_pass) {
        ram_state.on_pass(count, newly);
    }
}

/* ---- source -------------------------------------------------------------- */

/* EOS ends each setup, iterate and complete chunk. With multifd every
 * channel syncs first (QEMU 7.2's order: the SYNCs, then EOS), and EOS goes
 * out at once: the destination's channels wait at their SYNC until the
 * loader reads it, and the next sync waits for them. */
static void ram_put_eos(MigStream *f)
{
    bool multifd = multifd_send_active();
    if (multifd) {
        multifd_send_sync(f);
    }
    mig_stream_put_be64(f, RAM_SAVE_FLAG_EOS);
    if (multifd) {
        mig_stream_flush(f);
    }
}

static bool ram_save_setup(MigStream *f, void *opaque, Error **errp)
{
    RAMState *rs = opaque;
    rs->last_sent_block = NULL;
    rs->dirtied_since_rate = 0;
    auto_converge_reset(&rs->auto_converge);
    RAMStats *st = &rs->stats;
    stat_set(&st->normal_pages, 0);
    stat_set(&st->zero_pages, 0);
    stat_set(&st->dirty_pages_rate, 0);
    stat_set(&st->precopy_bytes, 0);
    stat_set(&st->downtime_bytes, 0);
    stat_set(&st->postcopy_bytes, 0);
    rs->postcopy = false;
    rs->guest_running = runstate_is_running();      /* [BQL] */
    rs->scan_block = ram_block_first();
    rs->last_sync_ns = now_ns();
    ram_untouched_reset(&rs->src_untouched);
    if (!memory_global_dirty_log_start(errp)) {
        return false;
    }
    RAMBLOCK_FOREACH(b) {
        ram_block_set_all_dirty(b);
    }
    /* KVM's log starts all-set (MANUAL_PROTECT with INITIALLY_SET): absorb it
     * now, while every page is dirty anyway, or the first real sync would
     * mark again every page pass 1 has already sent. */
    memory_global_dirty_log_sync();
    /* The first pass is a sync too (QEMU counts it: dirty-sync-count 1). */
    stat_set(&st->dirty_sync_count, 1);
    if (rs->on_pass) {
        rs->on_pass(1, ram_dirty_pages());
    }
    mig_stream_put_be64(f, ram_total_size() | RAM_SAVE_FLAG_MEM_SIZE);
    RAMBLOCK_FOREACH(b) {
        mig_stream_put_counted_string(f, b->name);
        mig_stream_put_be64(f, b->used_length);
    }
    ram_put_eos(f);
    return mig_stream_get_error(f, errp);
}

/* A record's word and, unless CONTINUE, the block name. */
static void ram_put_record_header(MigStream *f, RAMState *rs, RAMBlock *b, uint64_t offset, uint64_t flag)
{
    uint64_t word = offset | flag;
    if (b == rs->last_sent_block) {
        word |= RAM_SAVE_FLAG_CONTINUE;
    }
    mig_stream_put_be64(f, word);
    if (b != rs->last_sent_block) {
        mig_stream_put_counted_string(f, b->name);
        rs->last_sent_block = b;
    }
}

/* A multifd channel found a queued page zero: its ZERO record goes on the
 * main stream, as QEMU 7.2 sends zero pages. [migration thread] */
static void ram_multifd_zero_page(MigStream *f, RAMBlock *b, uint64_t offset)
{
    RAMState *rs = &ram_state;
    ram_put_record_header(f, rs, b, offset, RAM_SAVE_FLAG_ZERO);
    mig_stream_put_u8(f, 0);
    stat_add(&rs->stats.zero_pages, 1);
    stat_set(&rs->stats.normal_pages, stat_get(&rs->stats.normal_pages) - 1);     /* counted when queued */
}

/* Send one page whose dirty bit was just cleared. */
static void ram_send_page(MigStream *f, RAMState *rs, RAMBlock *b, uint64_t page)
{
    const uint8_t *host = b->host + (page << MIGVM_PAGE_BITS);
    if (multifd_send_active()) {
        /* The channel tests it for zero (ram_multifd_zero_page). */
        multifd_queue_page(f, b, page << MIGVM_PAGE_BITS);
        stat_add(&rs->stats.normal_pages, 1);
        return;
    }
    /* A page never populated is zero without reading it (ram-untouched.h). */
    bool zero = ram_untouched(&rs->src_untouched, b, page) || buffer_is_zero(host, MIGVM_PAGE_SIZE);
    ram_put_record_header(f, rs, b, page << MIGVM_PAGE_BITS, zero ? RAM_SAVE_FLAG_ZERO : RAM_SAVE_FLAG_PAGE);
    sent_bitmap_note(b, page);      /* resumable precopy: recv-bitmap.h */
    if (zero) {
        mig_stream_put_u8(f, 0);
        stat_add(&rs->stats.zero_pages, 1);
    } else {
        mig_stream_put_page(f, host, MIGVM_PAGE_SIZE);
        stat_add(&rs->stats.normal_pages, 1);
    }
}

/* The dirty pages of page's bitmap word, from page on, that were never
 * populated, when page is one: all sent as ZERO records at once, without
 * reading them (ram-untouched.h) and with one copy into the stream (an idle
 * guest's RAM is a million such records). Returns how many were sent; 0
 * when page may hold data. [not multifd, not postcopy] */
static unsigned ram_send_untouched_run(MigStream *f, RAMState *rs, RAMBlock *b, uint64_t page)
{
    uint64_t untouched = ram_untouched_word(&rs->src_untouched, b, page);
    unsigned bit = page % MIGVM_BITS_PER_LONG;
    if (!((untouched >> bit) & 1)) {
        return 0;
    }
    uint64_t base = page - bit;
    unsigned long run = ram_block_test_and_clear_dirty_word(b, base / MIGVM_BITS_PER_LONG,
                                                            untouched & (~0UL << bit));
    uint8_t rec[MIGVM_BITS_PER_LONG * 9];
    size_t len = 0;
    unsigned n = 0;
    for (unsigned long left = run; left; left &= left - 1) {
        uint64_t p = base + (uint64_t)__builtin_ctzl(left);
        sent_bitmap_note(b, p);     /* resumable precopy: recv-bitmap.h */
        n++;
        if (b != rs->last_sent_block) {     /* the first record names the block */
            ram_put_record_header(f, rs, b, p << MIGVM_PAGE_BITS, RAM_SAVE_FLAG_ZERO);
            mig_stream_put_u8(f, 0);
            continue;
        }
        uint64_t word = (p << MIGVM_PAGE_BITS) | RAM_SAVE_FLAG_ZERO | RAM_SAVE_FLAG_CONTINUE;
        for (int i = 0; i < 8; i++) {
            rec[len + i] = (uint8_t)(word >> (56 - 8 * i));
        }
        rec[len + 8] = 0;           /* the fill byte */
        len += 9;
    }
    mig_stream_put_buffer(f, rec, len);
    stat_add(&rs->stats.zero_pages, n);
    return n;
}

/* Send dirty pages from the scan position. Returns 1 when the bitmap was
 * walked to its end (pass done), 0 when stopped early. */
/* Page-record bytes count as precopy while the guest runs, else downtime
 * (QEMU's precopy-bytes / downtime-bytes). */
static void ram_account(RAMState *rs, uint64_t bytes, bool downtime)
{
    if (rs->postcopy) {
        stat_add(&rs->stats.postcopy_bytes, bytes);
        return;
    }
    stat_add(downtime || !rs->guest_running ? &rs->stats.downtime_bytes : &rs->stats.precopy_bytes, bytes);
}

/* Postcopy: the pages the destination waits for, ahead of everything (and
 * of the rate limit). One already sent is on its way: skipped. */
static void ram_send_requested(MigStream *f, RAMState *rs)
{
    RAMBlock *b;
    uint64_t start, len;
    while (postcopy_request_pop(&b, &start, &len)) {
        for (uint64_t page = start / MIGVM_PAGE_SIZE; page < (start + len) / MIGVM_PAGE_SIZE; page++) {
            if (ram_block_test_and_clear_dirty(b, page)) {
                ram_send_page(f, rs, b, page);
            }
        }
        mig_stream_flush(f);
    }
}

static int ram_send_dirty(MigStream *f, RAMState *rs, bool unlimited)
{
    int64_t deadline = now_ns() + ITERATE_MAX_NS;
    unsigned batch = 0;
    bool multifd = multifd_send_active();
    while (rs->scan_block) {
        if (rs->postcopy && postcopy_request_pending()) {
            ram_send_requested(f, rs);
        }
        RAMBlock *b = rs->scan_block;
        uint64_t page = ram_block_find_next_dirty(b, rs->scan_page);
        if (page >= b->npages) {
            rs->scan_block = b->next;
            rs->scan_page = 0;
            continue;
        }
        rs->scan_page = page + 1;
        unsigned sent = multifd || rs->postcopy ? 0 : ram_send_untouched_run(f, rs, b, page);
        if (sent == 0 && ram_block_test_and_clear_dirty(b, page)) {
            ram_send_page(f, rs, b, page);
            sent = 1;
        }
        /* The budget after every page (two loads: a slot overshoots by one
         * page or one run of untouched pages at most), the clock every 64. */
        if (!unlimited && (mig_stream_rate_limit_exceeded(f) ||
                           ((batch += sent) >= 64 && now_ns() > deadline))) {
            return 0;
        }
        batch %= 64;
    }
    /* End of the bitmap: the next round starts a new walk. */
    rs->scan_block = ram_block_first();
    rs->scan_page = 0;
    return 1;
}

static int ram_save_iterate(MigStream *f, void *opaque, Error **errp)
{
    RAMState *rs = opaque;
    uint64_t before = mig_stream_bytes_written(f);
    if (rs->postcopy) {
        ram_send_requested(f, rs);
    }
    int done = ram_send_dirty(f, rs, false);
    ram_account(rs, mig_stream_bytes_written(f) - before, false);
    ram_put_eos(f);
    if (!mig_stream_get_error(f, errp)) {
        return -1;
    }
    return done;
}

static void ram_state_pending(void *opaque, uint64_t *must_precopy)
{
    *must_precopy += ram_dirty_pages() * MIGVM_PAGE_SIZE;
}

static void ram_state_pending_exact(void *opaque, uint64_t *must_precopy)
{
    ram_bitmap_sync();
    ram_state_pending(opaque, must_precopy);
}

static bool ram_save_complete(MigStream *f, void *opaque, Error **errp)
{
    RAMState *rs = opaque;
    if (!rs->postcopy) {        /* postcopy: the guest stopped before the last sync */
        ram_bitmap_sync();
    }
    rs->scan_block = ram_block_first();
    rs->scan_page = 0;
    uint64_t before = mig_stream_bytes_written(f);
    if (!vmstate_test_omitted("ram/final-pass", 0)) {
        ram_send_dirty(f, rs, true);
    }
    ram_account(rs, mig_stream_bytes_written(f) - before, true);
    ram_put_eos(f);
    return mig_stream_get_error(f, errp);
}

/* The switch-over to postcopy [guest stopped, migration thread]: one last
 * sync, then every page still dirty (re-dirtied or never sent) is named in
 * POSTCOPY_RAM_DISCARD ranges of at most 12 per command, as QEMU 7.2 sends
 * them; from now on requested pages go first and nothing is synced again. */
bool ram_postcopy_send_discard(MigStream *f, Error **errp)
{
    RAMState *rs = &ram_state;
    ram_bitmap_sync();
    rs->postcopy = true;
    rs->scan_block = ram_block_first();
    rs->scan_page = 0;
    RAMBLOCK_FOREACH(b) {
        uint64_t starts[POSTCOPY_DISCARD_MAX_RANGES], lens[POSTCOPY_DISCARD_MAX_RANGES];
        unsigned n = 0;
        for (uint64_t page = ram_block_find_next_dirty(b, 0); page < b->npages;) {
            uint64_t end = page + 1;
            while (end < b->npages && ram_block_test_dirty(b, end)) {
                end++;
            }
            starts[n] = page << MIGVM_PAGE_BITS;
            lens[n] = (end - page) << MIGVM_PAGE_BITS;
            if (++n == POSTCOPY_DISCARD_MAX_RANGES) {
                savevm_send_postcopy_ram_discard(f, b->name, starts, lens, n);
                n = 0;
            }
            page = end < b->npages ? ram_block_find_next_dirty(b, end) : b->npages;
        }
        if (n) {
            savevm_send_postcopy_ram_discard(f, b->name, starts, lens, n);
        }
    }
    return mig_stream_get_error(f, errp);
}

/* The stream goes on on a new channel: name the block again, and walk the
 * bitmap from its start (the recovery handshake marked pages everywhere). */
static void ram_resume_prepare(void *opaque)
{
    RAMState *rs = opaque;
    rs->last_sent_block = NULL;
    rs->scan_block = ram_block_first();
    rs->scan_page = 0;
    ram_untouched_reset(&rs->src_untouched);
}

static void ram_save_cleanup(void *opaque)
{
    cpu_throttle_stop();        /* completed, failed or cancelled: full speed again */
    memory_global_dirty_log_stop();
    RAMBLOCK_FOREACH(b) {
        ram_block_clear_all_dirty(b);
    }
}

/* ---- destination --------------------------------------------------------- */

static bool ram_load_setup(void *opaque, Error **errp)
{
    RAMState *rs = opaque;
    rs->last_loaded_block = NULL;
    rs->blocks_checked = false;
    recv_bitmap_setup();        /* what a recovery reports as received */
    rs->load_ahead = ram_prefault_allowed();
    return true;
}

/* The received map (recv-bitmap.h) also tells where guesses may land; a
 * block without one gets none. */
static void ram_mark_received(RAMBlock *b, uint64_t page)
{
    recv_bitmap_set(b, page);
}

static bool ram_was_received(const RAMBlock *b, uint64_t page)
{
    return !b->receivedmap || recv_bitmap_test(b, page);
}

static uint64_t be64_of(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Put back the bytes iov[first..cnt) received from offset `skip` of
 * iov[first] on, `len` of them: they belong to records not parsed yet.
 * False with the stream's sticky error set when they cannot be (then the
 * caller's mig_stream_check reports it, false). */
static bool ram_put_back(MigStream *f, const struct iovec *iov, int cnt, int first, size_t skip, size_t len)
{
    struct iovec back[1 + 2 * LOAD_AHEAD_PAGES + 1];
    int n = 0;
    for (int i = first; i < cnt && len > 0; i++) {
        size_t off = i == first ? skip : 0;
        size_t k = MIN(iov[i].iov_len - off, len);
        back[n++] = (struct iovec){ (uint8_t *)iov[i].iov_base + off, k };
        len -= k;
    }
    return mig_stream_unread(f, back, n);
}

/* The payload of PAGE record `page` of b, straight into guest RAM, and as
 * many of the following records as turn out to be b's next pages (see the
 * top of the file). */
static bool ram_load_page_direct(MigStream *f, RAMState *rs, RAMBlock *b, uint64_t page, Error **errp)
{
    uint8_t hdr[LOAD_AHEAD_PAGES + 1][8];
    struct iovec iov[1 + 2 * LOAD_AHEAD_PAGES + 1];
    int n = 0, guessed = 0;
    iov[n++] = (struct iovec){ b->host + (page << MIGVM_PAGE_BITS), MIGVM_PAGE_SIZE };
    for (uint64_t p = page + 1; rs->load_ahead && guessed < LOAD_AHEAD_PAGES && p < b->npages &&
                                !ram_was_received(b, p); p++) {
        iov[n++] = (struct iovec){ hdr[guessed++], 8 };
        iov[n++] = (struct iovec){ b->host + (p << MIGVM_PAGE_BITS), MIGVM_PAGE_SIZE };
    }
    ram_untouched_written(&rs->dst_untouched, b, page, 1 + (uint64_t)guessed);
    if (guessed == 0) {
        /* Nothing to guess into (a later pass resends pages this load has
         * already received): a readv per page costs more than the copy out
         * of a full buffer here, so the buffer it is. */
        mig_stream_set_read_ahead(f, SIZE_MAX);
        tsan_ignore_begin();
        mig_stream_get_buffer(f, iov[0].iov_base, MIGVM_PAGE_SIZE);
        tsan_ignore_end();
        ram_mark_received(b, page);
        return mig_stream_check(f, errp, "Failed to read the page at 0x%" PRIx64 " in block %s",
                                (uint64_t)page << MIGVM_PAGE_BITS, b->name);
    }
    mig_stream_set_read_ahead(f, LOAD_READ_AHEAD);
    iov[n++] = (struct iovec){ hdr[guessed], 8 };       /* the next header, whatever it is */
    tsan_ignore_begin();        /* guest RAM (include/tsan.h) */
    size_t got = mig_stream_read_iov(f, iov, n, MIGVM_PAGE_SIZE);
    tsan_ignore_end();
    if (!mig_stream_check(f, errp, "Failed to read the page at 0x%" PRIx64 " in block %s",
                          (uint64_t)page << MIGVM_PAGE_BITS, b->name)) {
        return false;
    }
    ram_mark_received(b, page);
    size_t pos = MIGVM_PAGE_SIZE;
    for (int k = 0; k < guessed && got > pos; k++) {
        uint64_t p = page + 1 + k;
        uint64_t want = (p << MIGVM_PAGE_BITS) | RAM_SAVE_FLAG_PAGE | RAM_SAVE_FLAG_CONTINUE;
        if (got - pos < 8 || be64_of(hdr[k]) != want) {
            return ram_put_back(f, iov, n, 1 + 2 * k, 0, got - pos) ||
                   mig_stream_check(f, errp, "Failed to read a RAM record");
        }
        pos += 8;
        size_t have = MIN(got - pos, MIGVM_PAGE_SIZE);
        if (have < MIGVM_PAGE_SIZE) {
            /* The guess was right, the payload is short: the rest, direct. */
            struct iovec rest = { b->host + (p << MIGVM_PAGE_BITS) + have, MIGVM_PAGE_SIZE - have };
            tsan_ignore_begin();
            mig_stream_read_iov(f, &rest, 1, rest.iov_len);
            tsan_ignore_end();
            if (!mig_stream_check(f, errp, "Failed to read the page at 0x%" PRIx64 " in block %s",
                                  (uint64_t)p << MIGVM_PAGE_BITS, b->name)) {
                return false;
            }
            got = pos + MIGVM_PAGE_SIZE;
        }
        pos += MIGVM_PAGE_SIZE;
        ram_mark_received(b, p);
        ram_prefault_loaded(b, p << MIGVM_PAGE_BITS, true);
    }
    /* Anything past the last page used (a trailing header, or the rest of a
     * guess that was not checked) goes back. */
    if (got > pos) {
        int first = 1 + 2 * (int)((pos - MIGVM_PAGE_SIZE) / (8 + MIGVM_PAGE_SIZE));
        return ram_put_back(f, iov, n, first, 0, got - pos) ||
               mig_stream_check(f, errp, "Failed to read a RAM record");
    }
    return true;
}

static void ram_load_cleanup(void *opaque)
{
    recv_bitmap_cleanup();
}

/* MEM_SIZE: the source's block list must be exactly ours. */
static bool ram_load_block_list(MigStream *f, RAMState *rs, uint64_t total, Error **errp)
{
    GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    bool ok = false;
    uint64_t left = total;
    while (left > 0) {
        char name[256];
        mig_stream_get_counted_string(f, name);
        uint64_t len = mig_stream_get_be64(f);
        if (!mig_stream_check(f, errp, "Failed to read the RAM block list")) {
            goto out;
        }
        RAMBlock *b = ram_block_by_name(name);
        if (!b) {
            error_setg(errp, "Unknown ramblock \"%s\", cannot accept migration", name);
            goto out;
        }
        if (g_hash_table_contains(seen, name)) {
            error_setg(errp, "RAM block \"%s\" listed twice in the migration stream", name);
            goto out;
        }
        g_hash_table_add(seen, g_strdup(name));
        if (len != b->used_length) {
            error_setg(errp, "Length mismatch: %s: 0x%" PRIx64 " in != 0x%" PRIx64 ": Invalid argument",
                       name, len, b->used_length);
            goto out;
        }
        if (len > left) {
            error_setg(errp, "RAM block list overshoots its announced total 0x%" PRIx64, total);
            goto out;
        }
        left -= len;
    }
    rs->blocks_checked = true;
    ok = true;
out:
    g_hash_table_destroy(seen);
    return ok;
}

/* The block a page record refers to: a new name, or CONTINUE. */
static RAMBlock *ram_load_block(MigStream *f, RAMState *rs, uint64_t flags, Error **errp)
{
    if (flags & RAM_SAVE_FLAG_CONTINUE) {
        if (!rs->last_loaded_block) {
            error_setg(errp, "Ack, bad migration stream! (CONTINUE before any RAM block)");
        }
        return rs->last_loaded_block;
    }
    char name[256];
    mig_stream_get_counted_string(f, name);
    if (!mig_stream_check(f, errp, "Failed to read a RAM block name")) {
        return NULL;
    }
    RAMBlock *b = ram_block_by_name(name);
    if (!b) {
        error_setg(errp, "Can't find block %s", name);
        return NULL;
    }
    rs->last_loaded_block = b;
    return b;
}

/* A ZERO record's fill byte: QEMU 7.2 writes 0 and so must the source. */
static bool read_zero_fill(MigStream *f, RAMBlock *b, uint64_t addr, Error **errp)
{
    uint8_t fill = mig_stream_get_u8(f);
    if (!mig_stream_check(f, errp, "Failed to read a zero page at 0x%" PRIx64 " in block %s", addr, b->name)) {
        return false;
    }
    if (fill != 0) {
        error_setg(errp, "Received a zero-page record with fill byte 0x%x", fill);
        return false;
    }
    return true;
}

/* A ZERO record's page, outside postcopy's placement: a page never
 * populated is left unallocated and unread (ram-untouched.h); any other is
 * cleared unless it reads as zero already. With postcopy advised, a page
 * received must be present: userfaultfd would report an unpopulated one as
 * missing after LISTEN, and its received bit means nobody asks for it, so
 * a vCPU touching it would wait until postcopy ends. Reading it maps the
 * shared zero page. */
static void ram_load_zero_page(RAMState *rs, RAMBlock *b, uint64_t page)
{
    uint8_t *host = b->host + (page << MIGVM_PAGE_BITS);
    bool may_stay_unpopulated = postcopy_incoming_state() == POSTCOPY_INCOMING_NONE;
    if (!(may_stay_unpopulated && ram_untouched(&rs->dst_untouched, b, page)) &&
        !buffer_is_zero(host, MIGVM_PAGE_SIZE)) {
        tsan_ignore_begin();        /* guest RAM (include/tsan.h) */
        memset(host, 0, MIGVM_PAGE_SIZE);
        tsan_ignore_end();
    }
    ram_mark_received(b, page);
}

/* After a ZERO record for `page`, the ZERO records for the pages after it
 * that are already buffered (a source's pass over untouched RAM sends a
 * million in a row): taken from the buffer at once, each checked as the
 * record loop would (anything else stops the run and is parsed as usual).
 * The buffer is then refilled in full: zero records carry no payload to
 * keep out of it. */
static void ram_load_zero_run(MigStream *f, RAMState *rs, RAMBlock *b, uint64_t page)
{
    const uint8_t *p;
    size_t avail = mig_stream_buffered(f, &p), used = 0;
    for (uint64_t q = page + 1; q < b->npages && avail - used >= 9; q++) {
        uint64_t want = (q << MIGVM_PAGE_BITS) | RAM_SAVE_FLAG_ZERO | RAM_SAVE_FLAG_CONTINUE;
        if (be64_of(p + used) != want || p[used + 8] != 0) {
            break;
        }
        ram_prefault_loaded(b, q << MIGVM_PAGE_BITS, false);
        ram_load_zero_page(rs, b, q);
        used += 9;
    }
    mig_stream_skip(f, used);       /* buffered: cannot fail */
    mig_stream_set_read_ahead(f, SIZE_MAX);
}

/* After LISTEN the page must appear whole (UFFDIO_COPY / ZEROPAGE): a
 * vCPU may be waiting for it, and touching it here would fault. */
static bool ram_load_postcopy_page(MigStream *f, RAMState *rs, RAMBlock *b, uint64_t addr,
                                   uint64_t flags, Error **errp)
{
    if ((flags & ~RAM_SAVE_FLAG_CONTINUE) == RAM_SAVE_FLAG_ZERO) {
        return read_zero_fill(f, b, addr, errp) && postcopy_place_page(b, addr, NULL, errp);
    }
    /* Placed straight from the stream's buffer when it holds the whole page
     * (after LISTEN the buffer reads ahead in full: ram_load_state). */
    const uint8_t *p;
    if (mig_stream_buffered(f, &p) >= MIGVM_PAGE_SIZE) {
        bool ok = postcopy_place_page(b, addr, p, errp);
        mig_stream_skip(f, MIGVM_PAGE_SIZE);        /* buffered: cannot fail */
        return ok;
    }
    mig_stream_get_buffer(f, rs->postcopy_page, MIGVM_PAGE_SIZE);
    return mig_stream_check(f, errp, "Failed to read the page at 0x%" PRIx64 " in block %s", addr, b->name) &&
           postcopy_place_page(b, addr, rs->postcopy_page, errp);
}

static bool ram_load_page(MigStream *f, RAMState *rs, uint64_t addr, uint64_t flags,
                          Error **errp)
{
    RAMBlock *b = ram_load_block(f, rs, flags, errp);
    if (!b) {
        return false;
    }
    if (addr >= b->used_length || b->used_length - addr < MIGVM_PAGE_SIZE) {
        error_setg(errp, "Illegal RAM offset %" PRIx64 " in block %s", addr, b->name);
        return false;
    }
    ram_prefault_loaded(b, addr, (flags & ~RAM_SAVE_FLAG_CONTINUE) == RAM_SAVE_FLAG_PAGE);
    if (postcopy_incoming_state() != POSTCOPY_INCOMING_NONE && rs->load_ahead) {
        /* Postcopy: pages not received must stay missing. */
        rs->load_ahead = false;
        ram_prefault_cancel();
    }
    if (postcopy_incoming_state() >= POSTCOPY_INCOMING_LISTENING) {
        return ram_load_postcopy_page(f, rs, b, addr, flags, errp);
    }
    if (postcopy_incoming_state() != POSTCOPY_INCOMING_NONE) {
        postcopy_mark_received(b, addr);
    }
    if ((flags & ~RAM_SAVE_FLAG_CONTINUE) == RAM_SAVE_FLAG_ZERO) {
        if (!read_zero_fill(f, b, addr, errp)) {
            return false;
        }
        ram_load_zero_page(rs, b, addr >> MIGVM_PAGE_BITS);
        if (postcopy_incoming_state() == POSTCOPY_INCOMING_NONE) {
            ram_load_zero_run(f, rs, b, addr >> MIGVM_PAGE_BITS);
        }
        return true;
    }
    return ram_load_page_direct(f, rs, b, addr >> MIGVM_PAGE_BITS, errp);
}

static bool ram_load_records(MigStream *f, RAMState *rs, Error **errp);

static bool ram_load_state(MigStream *f, void *opaque, int version_id, Error **errp)
{
    if (version_id != RAM_VERSION) {
        error_setg(errp, "Unsupported RAM section version %d (expected %d)", version_id, RAM_VERSION);
        return false;
    }
    /* Keep page payloads out of the stream's buffer (see the top); after
     * LISTEN every page is copied into place by UFFDIO_COPY anyway, so it
     * comes through the full buffer: one read for many pages, not one each. */
    bool listening = postcopy_incoming_state() >= POSTCOPY_INCOMING_LISTENING;
    mig_stream_set_read_ahead(f, listening ? SIZE_MAX : LOAD_READ_AHEAD);
    /* Since the last section, multifd channels or other sections may have
     * written pages (ram-untouched.h). */
    ram_untouched_reset(&((RAMState *)opaque)->dst_untouched);
    bool ok = ram_load_records(f, opaque, errp);
    mig_stream_set_read_ahead(f, SIZE_MAX);
    return ok;
}

static bool ram_load_records(MigStream *f, RAMState *rs, Error **errp)
{
    for (;;) {
        uint64_t word = mig_stream_get_be64(f);
        if (!mig_stream_check(f, errp, "Failed to read a RAM record")) {
            return false;
        }
        uint64_t addr = word & ~(uint64_t)(MIGVM_PAGE_SIZE - 1);
        uint64_t flags = word & (MIGVM_PAGE_SIZE - 1);
        uint64_t kind = flags & ~RAM_SAVE_FLAG_CONTINUE;
        if (postcopy_incoming_state() >= POSTCOPY_INCOMING_LISTENING && kind != RAM_SAVE_FLAG_ZERO &&
            kind != RAM_SAVE_FLAG_PAGE && kind != RAM_SAVE_FLAG_EOS) {
            error_setg(errp, "Unknown combination of migration flags: 0x%" PRIx64 " (postcopy mode)", flags);
            return false;
        }
        switch (kind) {
        case RAM_SAVE_FLAG_MEM_SIZE:
            if (!ram_load_block_list(f, rs, addr, errp)) {
                return false;
            }
            break;
        case RAM_SAVE_FLAG_ZERO:
        case RAM_SAVE_FLAG_PAGE:
            if (!rs->blocks_checked) {
                error_setg(errp, "RAM page received before the RAM block list");
                return false;
            }
            if (!ram_load_page(f, rs, addr, flags, errp)) {
                return false;
            }
            break;
        case RAM_SAVE_FLAG_EOS:
            /* multifd: the channels' pages of this chunk are in first. */
            return !multifd_recv_active() || multifd_recv_sync(errp);
        case RAM_SAVE_FLAG_MULTIFD_FLUSH:
            break;      /* no payload; only meaningful with multifd channels */
        default:
            error_setg(errp, "Unknown combination of migration flags: 0x%" PRIx64, flags);
            return false;
        }
    }
}

static const SaveVMHandlers ram_handlers = {
    .save_setup = ram_save_setup,
    .state_pending = ram_state_pending,
    .state_pending_exact = ram_state_pending_exact,
    .save_live_iterate = ram_save_iterate,
    .save_live_complete_precopy = ram_save_complete,
    .resume_prepare = ram_resume_prepare,
    .save_cleanup = ram_save_cleanup,
    .postcopiable = true,
    .load_setup = ram_load_setup,
    .load_state = ram_load_state,
    .load_cleanup = ram_load_cleanup,
};

bool ram_mig_init(RamPassFn *on_pass, Error **errp)
{
    ram_state.on_pass = on_pass;
    multifd_send_set_zero_page_fn(ram_multifd_zero_page);
    return register_savevm_live("ram", 0, RAM_VERSION, &ram_handlers, &ram_state, errp);
}
