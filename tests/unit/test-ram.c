/*
 * The "ram" live section (migration/ram.c) on memory streams, through the
 * real writer and loader: RAM saved with pages dirtied between passes loads
 * back byte for byte, and hostile RAM records (bad offsets, unknown blocks,
 * wrong lengths, truncation) each fail with their own error. Pages never
 * populated travel as ZERO records without being read and stay unpopulated
 * on the destination.
 */
#include <check.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <glib.h>
#include "auto-converge.h"
#include "cpu-throttle.h"
#include "memory.h"
#include "ram.h"
#include "ram-untouched.h"
#include "savevm.h"
#include "vm.h"
#include "unit-test.h"

#define PAGE MIGVM_PAGE_SIZE
#define RAM_PAGES 40
#define EXTRA_PAGES 3

/* This thread plays the main thread and the migration thread in turn; the
 * writer's setup and completion want the BQL, which the main thread holds. */
bool bql_locked(void)
{
    return true;
}

/* ram.c asks whether the guest runs to split precopy and downtime bytes. */
static bool guest_running = true;

bool runstate_is_running(void)
{
    return guest_running;
}

/* auto-converge has its own test (test-auto-converge). */
void auto_converge_reset(AutoConverge *ac)
{
    (void)ac;
}

void auto_converge_period(AutoConverge *ac, uint64_t sent, uint64_t dirtied)
{
    (void)ac, (void)sent, (void)dirtied;
}

void cpu_throttle_stop(void)
{
}

static RAMBlock *ram, *extra;

/* What ram_mig_init's on_pass was told: the dirty-sync-count of each pass. */
static uint64_t passes[8];
static int n_passes;

static void record_pass(uint64_t dirty_sync_count, uint64_t dirtied_pages)
{
    (void)dirtied_pages;
    if (n_passes < (int)G_N_ELEMENTS(passes)) {
        passes[n_passes] = dirty_sync_count;
    }
    n_passes++;
}

static void setup(void)
{
    Error *err = NULL;
    ram = ram_block_add("ram", 0, RAM_PAGES * PAGE, &err);
    extra = ram_block_add("extra", 1024 * PAGE, EXTRA_PAGES * PAGE, &err);
    ck_assert_ptr_null(err);
    n_passes = 0;
    ck_assert(ram_mig_init(record_pass, &err));
}

static void teardown(void)
{
    savevm_unregister_all();
    ram_blocks_free_all();
}

/* Page p of block b gets a pattern no other page has. */
static void fill_page(RAMBlock *b, uint64_t p, uint8_t seed)
{
    for (uint64_t i = 0; i < PAGE; i++) {
        b->host[p * PAGE + i] = (uint8_t)(seed + p * 7 + i * 13);
    }
}

static void load_ok(const uint8_t *data, size_t len)
{
    MigStream *f = mig_stream_new_mem_reader(data, len);
    LoadvmOptions opts = { .local = { .machine_type = "none" } };
    Error *err = NULL;
    bool ok = qemu_loadvm_state(f, &opts, &err);
    ck_assert_msg(ok, "%s", err ? error_get_pretty(err) : "");
    mig_stream_close(f, NULL);
}

/* Load; the error message (g_free), or NULL when the load succeeded. */
static char *load_error(const uint8_t *data, size_t len)
{
    MigStream *f = mig_stream_new_mem_reader(data, len);
    LoadvmOptions opts = { .local = { .machine_type = "none" } };
    Error *err = NULL;
    bool ok = qemu_loadvm_state(f, &opts, &err);
    ck_assert(ok == !err);
    mig_stream_close(f, NULL);
    char *m = err ? g_strdup(error_get_pretty(err)) : NULL;
    error_free(err);
    return m;
}

START_TEST(test_round_trip_with_dirty_pages)
{
    /* Pages 0-9 and 20 hold data, the rest are zero; extra page 1 too. */
    for (uint64_t p = 0; p < 10; p++) {
        fill_page(ram, p, 1);
    }
    fill_page(ram, 20, 1);
    fill_page(extra, 1, 2);

    MigStream *f = mig_stream_new_mem_writer();
    MigConfigOptions cfg = { .machine_type = "none" };
    Error *err = NULL;
    ck_assert(savevm_state_header(f, &cfg, &err));
    ck_assert(savevm_state_setup(f, &err));
    ck_assert_int_eq(n_passes, 1);                        /* setup counts as pass 1 */
    ck_assert_uint_eq(passes[0], 1);
    ck_assert_int_eq(savevm_state_iterate(f, &err), 1);  /* pass 1: every page */
    RamStats st;
    ram_get_stats(&st);
    ck_assert_uint_eq(st.normal_pages, 12);
    ck_assert_uint_eq(st.zero_pages, RAM_PAGES + EXTRA_PAGES - 12);
    ck_assert_uint_eq(st.remaining_pages, 0);

    /* The guest writes after pass 1: a data page changes, a zero page gets
     * data, a data page becomes zero. Only these go again. */
    fill_page(ram, 3, 9);
    fill_page(ram, 30, 9);
    memset(extra->host + PAGE, 0, PAGE);
    ram_block_set_dirty(ram, 3);
    ram_block_set_dirty(ram, 30);
    ram_block_set_dirty(extra, 1);
    guest_running = false;
    ck_assert(savevm_state_complete_precopy(f, false, &err));
    savevm_state_cleanup();
    guest_running = true;
    ram_get_stats(&st);
    /* Completion synced the bitmap again: one more pass, as counted. */
    ck_assert_int_eq(n_passes, 2);
    ck_assert_uint_eq(passes[1], st.dirty_sync_count);
    ck_assert_uint_eq(st.normal_pages, 14);
    ck_assert_uint_eq(st.zero_pages, RAM_PAGES + EXTRA_PAGES - 12 + 1);
    ck_assert_uint_gt(st.downtime_bytes, 2 * PAGE);
    ck_assert_uint_gt(st.precopy_bytes, 12 * PAGE);

    g_autofree uint8_t *want_ram = g_memdup2(ram->host, RAM_PAGES * PAGE);
    g_autofree uint8_t *want_extra = g_memdup2(extra->host, EXTRA_PAGES * PAGE);
    memset(ram->host, 0xa5, RAM_PAGES * PAGE);       /* the destination's garbage */
    memset(extra->host, 0x5a, EXTRA_PAGES * PAGE);
    size_t len;
    const uint8_t *d = mig_stream_mem_data(f, &len);
    load_ok(d, len);
    ck_assert(memcmp(ram->host, want_ram, RAM_PAGES * PAGE) == 0);
    ck_assert(memcmp(extra->host, want_extra, EXTRA_PAGES * PAGE) == 0);
    ck_assert(mig_stream_close(f, NULL));
}
END_TEST

/* ---------------- hostile RAM records ---------------- */

#define FLAG_ZERO 0x02
#define FLAG_MEM_SIZE 0x04
#define FLAG_PAGE 0x08
#define FLAG_EOS 0x10
#define FLAG_CONTINUE 0x20

typedef enum { BLOCKS_NONE, BLOCKS_OK } BlockList;

/* A stream with one "ram" START section (version ver) whose body is the
 * block list (if asked) followed by `records`; cut `cut` bytes short of the
 * end when cut > 0. */
static GByteArray *ram_stream(uint32_t ver, BlockList list, void (*records)(MigStream *),
                              size_t cut)
{
    MigStream *f = mig_stream_new_mem_writer();
    MigConfigOptions cfg = { .machine_type = "none" };
    ck_assert(savevm_state_header(f, &cfg, NULL));
    mig_stream_put_u8(f, 0x01);
    mig_stream_put_be32(f, 1);
    mig_stream_put_counted_string(f, "ram");
    mig_stream_put_be32(f, 0);
    mig_stream_put_be32(f, ver);
    if (list == BLOCKS_OK) {
        mig_stream_put_be64(f, ram_total_size() | FLAG_MEM_SIZE);
        mig_stream_put_counted_string(f, "ram");
        mig_stream_put_be64(f, RAM_PAGES * PAGE);
        mig_stream_put_counted_string(f, "extra");
        mig_stream_put_be64(f, EXTRA_PAGES * PAGE);
    }
    records(f);
    mig_stream_put_be64(f, FLAG_EOS);
    mig_stream_put_u8(f, 0x7e);
    mig_stream_put_be32(f, 1);
    mig_stream_put_u8(f, 0x00);
    size_t len;
    const uint8_t *d = mig_stream_mem_data(f, &len);
    ck_assert_uint_gt(len, cut);
    GByteArray *b = g_byte_array_sized_new(len);
    g_byte_array_append(b, d, len - cut);
    mig_stream_close(f, NULL);
    return b;
}

static void rec_none(MigStream *f)
{
}

static void rec_page(MigStream *f, uint64_t addr, uint64_t flags, const char *block)
{
    mig_stream_put_be64(f, addr | flags);
    if (block) {
        mig_stream_put_counted_string(f, block);
    }
}

static void rec_good_page(MigStream *f)
{
    static uint8_t data[PAGE];
    memset(data, 0x77, sizeof(data));
    rec_page(f, 5 * PAGE, FLAG_PAGE, "ram");
    mig_stream_put_buffer(f, data, PAGE);
    rec_page(f, 6 * PAGE, FLAG_ZERO | FLAG_CONTINUE, NULL);
    mig_stream_put_u8(f, 0);
}

static void rec_offset_past_end(MigStream *f)
{
    rec_page(f, RAM_PAGES * PAGE, FLAG_ZERO, "ram");
    mig_stream_put_u8(f, 0);
}

static void rec_offset_huge(MigStream *f)
{
    rec_page(f, 0xfffffffffffff000ULL, FLAG_PAGE, "extra");
}

static void rec_zero_page(MigStream *f)
{
    rec_page(f, 2 * PAGE, FLAG_ZERO, "ram");
    mig_stream_put_u8(f, 0);
}

static void rec_unknown_block(MigStream *f)
{
    rec_page(f, 0, FLAG_ZERO, "pc.ram");
    mig_stream_put_u8(f, 0);
}

static void rec_continue_first(MigStream *f)
{
    rec_page(f, 0, FLAG_ZERO | FLAG_CONTINUE, NULL);
    mig_stream_put_u8(f, 0);
}

static void rec_zero_fill(MigStream *f)
{
    rec_page(f, 0, FLAG_ZERO, "ram");
    mig_stream_put_u8(f, 0x01);
}

static void rec_two_flags(MigStream *f)
{
    rec_page(f, 0, FLAG_ZERO | FLAG_PAGE, "ram");
}

static void rec_list_unknown(MigStream *f)
{
    mig_stream_put_be64(f, PAGE | FLAG_MEM_SIZE);
    mig_stream_put_counted_string(f, "rom");
    mig_stream_put_be64(f, PAGE);
}

static void rec_list_length(MigStream *f)
{
    mig_stream_put_be64(f, ram_total_size() | FLAG_MEM_SIZE);
    mig_stream_put_counted_string(f, "ram");
    mig_stream_put_be64(f, (RAM_PAGES + 1) * PAGE);
}

static void rec_list_twice(MigStream *f)
{
    mig_stream_put_be64(f, 2 * RAM_PAGES * PAGE | FLAG_MEM_SIZE);
    mig_stream_put_counted_string(f, "ram");
    mig_stream_put_be64(f, RAM_PAGES * PAGE);
    mig_stream_put_counted_string(f, "ram");
    mig_stream_put_be64(f, RAM_PAGES * PAGE);
}

static void rec_list_overshoot(MigStream *f)
{
    mig_stream_put_be64(f, PAGE | FLAG_MEM_SIZE);
    mig_stream_put_counted_string(f, "ram");
    mig_stream_put_be64(f, RAM_PAGES * PAGE);
}

/* Truncations: the stream ends inside the record (the trailer is cut). */
static const size_t trailer = 8 + 5 + 1;          /* EOS, footer, EOF */

static void rec_page_cut(MigStream *f)
{
    static uint8_t data[PAGE];
    rec_page(f, PAGE, FLAG_PAGE, "ram");
    mig_stream_put_buffer(f, data, PAGE);
}

START_TEST(test_good_records_load)
{
    g_autoptr(GByteArray) b = ram_stream(4, BLOCKS_OK, rec_good_page, 0);
    memset(ram->host + 6 * PAGE, 0x33, PAGE);
    g_autofree char *m = load_error(b->data, b->len);
    ck_assert_msg(m == NULL, "%s", m);
    ck_assert_uint_eq(ram->host[5 * PAGE], 0x77);
    ck_assert_uint_eq(ram->host[6 * PAGE + 100], 0);
}
END_TEST

typedef struct HostileCase {
    const char *name;
    uint32_t version;
    BlockList list;
    void (*records)(MigStream *);
    size_t cut;
    const char *error;          /* the whole message after the loader's prefix */
} HostileCase;

static const HostileCase hostile[] = {
    { "version", 3, BLOCKS_OK, rec_none, 0, "Unsupported RAM section version 3 (expected 4)" },
    { "page before the list", 4, BLOCKS_NONE, rec_good_page, 0,
      "RAM page received before the RAM block list" },
    { "offset past the end", 4, BLOCKS_OK, rec_offset_past_end, 0,
      "Illegal RAM offset 28000 in block ram" },
    { "offset wraps", 4, BLOCKS_OK, rec_offset_huge, 0,
      "Illegal RAM offset fffffffffffff000 in block extra" },
    { "unknown block", 4, BLOCKS_OK, rec_unknown_block, 0, "Can't find block pc.ram" },
    { "continue first", 4, BLOCKS_OK, rec_continue_first, 0,
      "Ack, bad migration stream! (CONTINUE before any RAM block)" },
    { "zero fill", 4, BLOCKS_OK, rec_zero_fill, 0,
      "Received a zero-page record with fill byte 0x1" },
    { "two record types", 4, BLOCKS_OK, rec_two_flags, 0,
      "Unknown combination of migration flags: 0xa" },
    { "list: unknown block", 4, BLOCKS_NONE, rec_list_unknown, 0,
      "Unknown ramblock \"rom\", cannot accept migration" },
    { "list: wrong length", 4, BLOCKS_NONE, rec_list_length, 0,
      "Length mismatch: ram: 0x29000 in != 0x28000: Invalid argument" },
    { "list: twice", 4, BLOCKS_NONE, rec_list_twice, 0,
      "RAM block \"ram\" listed twice in the migration stream" },
    { "list: overshoot", 4, BLOCKS_NONE, rec_list_overshoot, 0,
      "RAM block list overshoots its announced total 0x1000" },
    { "truncated page", 4, BLOCKS_OK, rec_page_cut, trailer + 1,
      "Failed to read the page at 0x1000 in block ram: Unexpected end of migration stream" },
    { "truncated zero page", 4, BLOCKS_OK, rec_zero_page, trailer + 1,
      "Failed to read a zero page at 0x2000 in block ram: Unexpected end of migration stream" },
    { "truncated block name", 4, BLOCKS_OK, rec_unknown_block, trailer + 1 + 3,
      "Failed to read a RAM block name: Unexpected end of migration stream" },
    { "truncated record", 4, BLOCKS_OK, rec_none, 5 + 1 + 4,
      "Failed to read a RAM record: Unexpected end of migration stream" },
    { "truncated block list", 4, BLOCKS_NONE, rec_list_twice, trailer + 4,
      "Failed to read the RAM block list: Unexpected end of migration stream" },
};

START_TEST(test_hostile_records)
{
    const HostileCase *c = &hostile[_i];
    g_autoptr(GByteArray) b = ram_stream(c->version, c->list, c->records, c->cut);
    g_autofree char *m = load_error(b->data, b->len);
    ck_assert_msg(m != NULL, "%s: loaded", c->name);
    g_autofree char *want = g_strdup_printf("error while loading state for instance 0x0 of "
                                            "device 'ram': %s", c->error);
    ck_assert_msg(g_str_has_prefix(m, want), "%s: got '%s', want '%s'", c->name, m, want);
}
END_TEST

/* Every cut of a good section fails with a named cause, never crashes. */
START_TEST(test_truncated_every_offset)
{
    g_autoptr(GByteArray) b = ram_stream(4, BLOCKS_OK, rec_good_page, 0);
    for (size_t len = 0; len < b->len; len++) {
        g_autofree char *m = load_error(b->data, len);
        ck_assert_msg(m != NULL, "cut at %zu loaded", len);
        ck_assert_msg(strstr(m, "Unexpected end of migration stream") ||
                      strstr(m, "Configuration section missing") ||
                      strstr(m, "Not a migration stream"), "cut at %zu: %s", len, m);
    }
}
END_TEST

/* ---- the loader's reads straight into guest RAM (fd streams) ---- */

/* What the mixed stream leaves in the blocks. */
static uint8_t want_ram[RAM_PAGES * PAGE], want_extra[EXTRA_PAGES * PAGE];

static void mixed_page(MigStream *f, uint8_t *want, uint64_t p, bool cont, const char *block, uint8_t seed)
{
    static uint8_t data[PAGE];
    for (uint64_t i = 0; i < PAGE; i++) {
        data[i] = (uint8_t)(seed + p * 7 + i * 13);
    }
    rec_page(f, p * PAGE, FLAG_PAGE | (cont ? FLAG_CONTINUE : 0), cont ? NULL : block);
    mig_stream_put_buffer(f, data, PAGE);
    memcpy(want + p * PAGE, data, PAGE);
}

static void mixed_zero(MigStream *f, uint8_t *want, uint64_t p)
{
    rec_page(f, p * PAGE, FLAG_ZERO | FLAG_CONTINUE, NULL);
    mig_stream_put_u8(f, 0);
    memset(want + p * PAGE, 0, PAGE);
}

/* A first pass over every page, as a source sends it (runs of data pages
 * the loader guesses right, zero pages and a repeated block name that break
 * a guess, a second block), then a second pass resending some pages. */
static void rec_mixed(MigStream *f)
{
    mixed_page(f, want_ram, 0, false, "ram", 1);
    for (uint64_t p = 1; p < RAM_PAGES; p++) {
        if (p == 10 || (p >= 13 && p < 20) || p >= 30) {
            mixed_zero(f, want_ram, p);
        } else {
            mixed_page(f, want_ram, p, p != 21, "ram", 1);
        }
    }
    for (uint64_t p = 0; p < EXTRA_PAGES; p++) {
        mixed_page(f, want_extra, p, p > 0, "extra", 2);
    }
    mixed_page(f, want_ram, 3, false, "ram", 3);
    mixed_page(f, want_ram, 4, true, "ram", 3);
    mixed_zero(f, want_ram, 5);
    mixed_page(f, want_ram, 31, true, "ram", 3);
    mixed_page(f, want_ram, 32, true, "ram", 3);
}

typedef struct Feeder {
    int fd;
    const uint8_t *data;
    size_t len, chunk;
} Feeder;

/* Writes the stream in `chunk`-byte writes, so the loader's reads come back
 * short at every kind of place (inside headers, payloads, guesses). */
static gpointer feed(gpointer opaque)
{
    Feeder *fd = opaque;
    for (size_t off = 0; off < fd->len;) {
        size_t n = MIN(fd->chunk, fd->len - off);
        ssize_t w = write(fd->fd, fd->data + off, n);
        if (w <= 0) {
            break;
        }
        off += w;
        if (fd->chunk < 4096) {
            g_usleep(10);
        }
    }
    close(fd->fd);
    return NULL;
}

START_TEST(test_direct_reads)
{
    static const size_t chunks[] = { 1 << 20, 4096, 4104, 777, 13 };
    memset(want_ram, 0, sizeof(want_ram));
    memset(want_extra, 0, sizeof(want_extra));
    g_autoptr(GByteArray) b = ram_stream(4, BLOCKS_OK, rec_mixed, 0);
    for (int run = -1; run < (int)G_N_ELEMENTS(chunks); run++) {
        /* Stale contents, as a destination that loaded before. */
        memset(ram->host, 0xee, RAM_PAGES * PAGE);
        memset(extra->host, 0xee, EXTRA_PAGES * PAGE);
        if (run < 0) {
            load_ok(b->data, b->len);           /* the memory reader: the reference */
        } else {
            int sv[2];
            ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
            Feeder fd = { sv[0], b->data, b->len, chunks[run] };
            GThread *t = g_thread_new("feed", feed, &fd);
            MigStream *f = mig_stream_new_fd_reader(sv[1], true);
            LoadvmOptions opts = { .local = { .machine_type = "none" } };
            Error *err = NULL;
            bool ok = qemu_loadvm_state(f, &opts, &err);
            ck_assert_msg(ok, "chunk %zu: %s", chunks[run], err ? error_get_pretty(err) : "");
            ck_assert_uint_eq(mig_stream_bytes_read(f), b->len);
            mig_stream_close(f, NULL);
            g_thread_join(t);
        }
        for (uint64_t p = 0; p < RAM_PAGES; p++) {
            ck_assert_msg(!memcmp(ram->host + p * PAGE, want_ram + p * PAGE, PAGE),
                          "run %d: ram page %" PRIu64 " differs", run, p);
        }
        ck_assert(!memcmp(extra->host, want_extra, sizeof(want_extra)));
    }
}
END_TEST

/* ---- pages never populated (ram-untouched.h) ---- */

/* Both blocks back to never-populated memory, faulting page by page (a
 * huge page would populate its neighbours with a written page). */
static void discard_ram(void)
{
    RAMBLOCK_FOREACH(b) {
        ck_assert_int_eq(madvise(b->host, b->used_length, MADV_NOHUGEPAGE), 0);
        ck_assert_int_eq(madvise(b->host, b->used_length, MADV_DONTNEED), 0);
    }
}

static bool populated(RAMBlock *b, uint64_t p)
{
    RamUntouched c = { 0 };
    return !ram_untouched(&c, b, p);
}

START_TEST(test_untouched_pages)
{
    discard_ram();
    fill_page(ram, 1, 4);
    fill_page(ram, 2, 4);
    MigStream *f = mig_stream_new_mem_writer();
    MigConfigOptions cfg = { .machine_type = "none" };
    Error *err = NULL;
    ck_assert(savevm_state_header(f, &cfg, &err));
    ck_assert(savevm_state_setup(f, &err));
    ck_assert_int_eq(savevm_state_iterate(f, &err), 1);
    RamStats st;
    ram_get_stats(&st);
    ck_assert_uint_eq(st.normal_pages, 2);
    ck_assert_uint_eq(st.zero_pages, RAM_PAGES + EXTRA_PAGES - 2);
    /* Written after pass 1 found it untouched (in the window pass 1 read
     * last): the sync before the next pass must make it count as data. */
    fill_page(extra, 2, 5);
    ram_block_set_dirty(extra, 2);
    guest_running = false;
    ck_assert(savevm_state_complete_precopy(f, false, &err));
    savevm_state_cleanup();
    guest_running = true;
    ram_get_stats(&st);
    ck_assert_uint_eq(st.normal_pages, 3);

    g_autofree uint8_t *want = g_memdup2(ram->host, RAM_PAGES * PAGE);
    g_autofree uint8_t *want_x = g_memdup2(extra->host, EXTRA_PAGES * PAGE);
    discard_ram();
    fill_page(ram, 31, 6);      /* the destination's garbage in a page sent as zero */
    size_t len;
    const uint8_t *d = mig_stream_mem_data(f, &len);
    load_ok(d, len);
    /* Zero pages that never held anything stay unpopulated. */
    ck_assert(!populated(ram, 35));
    ck_assert(!populated(extra, 0));
    ck_assert(populated(extra, 2));
    ck_assert(memcmp(ram->host, want, RAM_PAGES * PAGE) == 0);
    ck_assert(memcmp(extra->host, want_x, EXTRA_PAGES * PAGE) == 0);
    ck_assert(mig_stream_close(f, NULL));
}
END_TEST

/* ZERO 5 (the loader reads the page map, everything untouched), PAGE 6
 * (its read guesses that pages 7.. follow and puts the next records'
 * bytes into them), then ZERO 7-20: those pages must end zero. */
static void rec_guess_into_untouched(MigStream *f)
{
    rec_page(f, 5 * PAGE, FLAG_ZERO, "ram");
    mig_stream_put_u8(f, 0);
    mixed_page(f, want_ram, 6, true, "ram", 7);
    for (uint64_t p = 7; p <= 20; p++) {
        mixed_zero(f, want_ram, p);
    }
}

START_TEST(test_zero_after_guess_into_untouched)
{
    memset(want_ram, 0, sizeof(want_ram));
    g_autoptr(GByteArray) b = ram_stream(4, BLOCKS_OK, rec_guess_into_untouched, 0);
    discard_ram();
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    Feeder fd = { sv[0], b->data, b->len, 1 << 20 };
    GThread *t = g_thread_new("feed", feed, &fd);
    MigStream *f = mig_stream_new_fd_reader(sv[1], true);
    LoadvmOptions opts = { .local = { .machine_type = "none" } };
    Error *err = NULL;
    ck_assert_msg(qemu_loadvm_state(f, &opts, &err), "%s", err ? error_get_pretty(err) : "");
    mig_stream_close(f, NULL);
    g_thread_join(t);
    ck_assert(populated(ram, 7));           /* the guess wrote into it */
    ck_assert(!populated(ram, 25));
    for (uint64_t p = 5; p <= 20; p++) {
        ck_assert_msg(!memcmp(ram->host + p * PAGE, want_ram + p * PAGE, PAGE), "page %" PRIu64 " differs", p);
    }
}
END_TEST

static Suite *ram_suite(void)
{
    Suite *s = suite_create("ram");
    TCase *tc = tcase_create("ram");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_round_trip_with_dirty_pages);
    tcase_add_test(tc, test_good_records_load);
    tcase_add_loop_test(tc, test_hostile_records, 0, G_N_ELEMENTS(hostile));
    tcase_add_test(tc, test_truncated_every_offset);
    tcase_add_test(tc, test_direct_reads);
    tcase_add_test(tc, test_untouched_pages);
    tcase_add_test(tc, test_zero_after_guess_into_untouched);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(ram_suite());
}
