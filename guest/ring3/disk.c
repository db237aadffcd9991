/*
 * ring3 guest, ring 3: the disk workload, on the virtio-blk disk ring 0 set
 * up (virtio-blk.c, SYS_DISK). Without a disk it prints "DISK none" once and
 * the rest of the guest runs exactly as before.
 *
 * The disk is split into chunks of up to 16 blocks of 4 KiB (64 KiB, one
 * request). The workload reads chunk `next` and checks it still holds
 * generation passes, rewrites it with g = passes + 1, then reads back chunk
 * (next + N/2) mod N, written half a cycle ago, and checks it holds its last
 * write; after the last chunk a pass is complete. The check before the
 * write sees, within a pass, a chunk that missed a migration more than half
 * a cycle behind `next`, which the read-back would not reach before
 * rewriting it. So chunks [0, next) hold generation passes + 1 and
 * [next, N) hold passes (0: never written in this boot, not checked). In a
 * block at disk byte address A of generation g:
 *   word 0: g    word 1: A    words 2..510: r3_mix(A | 1 << 63, g) ^ (i * GOLDEN)
 *   word 511: the sum of words 0..510 (a checksum that a torn block breaks)
 * A block that missed a migration still holds the previous generation, a
 * misplaced one another address.
 *
 * One request is in flight at a time and nothing waits for it: disk_step,
 * called once per main-loop pass, collects a completed request (polling the
 * used ring) and submits the next one, so the memory workload and the
 * timers keep their pace. A request still outstanding after
 * DISK_TIMEOUT_INTERVALS status lines is reported and ends the disk workload.
 *
 * Serial lines (user.c documents the others):
 *   DISK none | DISK virtio-blk mmio=<hex> sectors=<n> blocks=<n> chunk_kib=<n>
 *       once, after START (a device that could not be set up: DISK none
 *       and an ERROR line saying why)
 *   DISK pass <n> ok | DISK pass <n> errors=<k>
 *       after each complete pass; errors = disk ERROR lines in that pass
 *   ERROR: disk block <hex>: generation <g> expected <g'>
 *   ERROR: disk block <hex>: holds address <hex>
 *   ERROR: disk block <hex> word <i>: <hex> expected <hex>
 *   ERROR: disk block <hex>: checksum <hex> expected <hex>
 *   ERROR: disk <read|write> sector <n>: status <s>  (or: refused <code>,
 *          not completed after <n> intervals)
 */
#include "fmt.h"
#include "ring3.h"

#define BLOCK 4096
#define BLOCK_WORDS (BLOCK / 8)
#define CHUNK_BLOCKS_MAX (R3_DISK_BUF_MAX / BLOCK)
#define DISK_TIMEOUT_INTERVALS 30
#define ADDR_SALT (1ULL << 63)

enum { IDLE, WRITING, READING };

uint64_t disk_blocks_written, disk_blocks_verified;
static int active, state;
static int next_checked;     /* chunk next_chunk was read back since the last write */
static uint64_t chunk_blocks, nchunks, next_chunk, passes, pass_errors;
static uint64_t inflight_chunk, inflight_gen, inflight_seq;
static uint16_t ticket;
static struct r3_disk_req req;

static uint64_t *const buf = (uint64_t *)(uintptr_t)R3_DISK_BUF;

static uint64_t block_addr(uint64_t chunk, uint64_t k)
{
    return (chunk * chunk_blocks + k) * BLOCK;
}

/* Generation chunk c must hold (module comment). */
static uint64_t chunk_gen(uint64_t c)
{
    return c < next_chunk ? passes + 1 : passes;
}

static struct line *disk_error(void)
{
    struct line *l = error_line();

    pass_errors++;
    line_str(l, "disk ");
    return l;
}

static void fill(uint64_t *w, uint64_t a, uint64_t gen)
{
    uint64_t s = r3_mix(a | ADDR_SALT, gen), sum = gen + a;

    w[0] = gen;
    w[1] = a;
    for (uint64_t i = 2; i < BLOCK_WORDS - 1; i++) {
        w[i] = s ^ (i * GOLDEN);
        sum += w[i];
    }
    w[BLOCK_WORDS - 1] = sum;
}

/* One ERROR line at most per block: the first thing wrong with it. */
static void verify_block(const uint64_t *w, uint64_t a, uint64_t gen)
{
    uint64_t s = r3_mix(a | ADDR_SALT, gen), sum = 0;
    struct line *l;

    for (uint64_t i = 0; i < BLOCK_WORDS - 1; i++) {
        sum += w[i];
    }
    if (w[0] != gen) {
        l = disk_error();
        line_str(l, "block ");
        line_hex(l, a);
        line_str(l, ": generation ");
        line_u64(l, w[0]);
        line_str(l, " expected ");
        line_u64(l, gen);
        return;
    }
    if (w[1] != a) {
        l = disk_error();
        line_str(l, "block ");
        line_hex(l, a);
        line_str(l, ": holds address ");
        line_hex(l, w[1]);
        return;
    }
    for (uint64_t i = 2; i < BLOCK_WORDS - 1; i++) {
        if (w[i] != (s ^ (i * GOLDEN))) {
            l = disk_error();
            line_str(l, "block ");
            line_hex(l, a);
            line_str(l, " word ");
            line_u64(l, i);
            line_str(l, ": ");
            line_hex(l, w[i]);
            line_str(l, " expected ");
            line_hex(l, s ^ (i * GOLDEN));
            return;
        }
    }
    if (w[BLOCK_WORDS - 1] != sum) {
        l = disk_error();
        line_str(l, "block ");
        line_hex(l, a);
        line_str(l, ": checksum ");
        line_hex(l, w[BLOCK_WORDS - 1]);
        line_str(l, " expected ");
        line_hex(l, sum);
    }
}

/* "disk <read|write> sector <n>: <what> <value><after>" */
static void request_failed(const char *what, uint64_t value, const char *after)
{
    struct line *l = disk_error();

    line_str(l, req.write ? "write sector " : "read sector ");
    line_u64(l, req.sector);
    line_str(l, ": ");
    line_str(l, what);
    line_u64(l, value);
    line_str(l, after);
}

static void submit(int write, uint64_t chunk, uint64_t gen, uint64_t seq)
{
    req.write = (uint32_t)write;
    req.bytes = (uint32_t)(chunk_blocks * BLOCK);
    req.sector = block_addr(chunk, 0) / 512;
    req.buf = R3_DISK_BUF;
    if (write) {
        for (uint64_t k = 0; k < chunk_blocks; k++) {
            fill(buf + k * BLOCK_WORDS, block_addr(chunk, k), gen);
        }
    }
    int64_t r = (int64_t)sys2(SYS_DISK, (uint64_t)(uintptr_t)&req, 0);
    if (r < 0) {
        request_failed("refused ", (uint64_t)-r, "");
        active = 0;
        return;
    }
    ticket = (uint16_t)r;
    inflight_chunk = chunk;
    inflight_gen = gen;
    inflight_seq = seq;
    state = write ? WRITING : READING;
}

static void end_pass(void)
{
    struct line l;

    next_chunk = 0;
    passes++;
    line_reset(&l);
    line_str(&l, "DISK pass ");
    line_u64(&l, passes);
    if (pass_errors) {
        line_str(&l, " errors=");
        line_u64(&l, pass_errors);
    } else {
        line_str(&l, " ok");
    }
    emit(&l);
    pass_errors = 0;
}

/* The request in flight completed: account for it. */
static void complete(void)
{
    uint8_t status = *kstat.disk.status;

    if (status != 0) {
        request_failed("status ", status, "");
    }
    if (state == WRITING) {
        disk_blocks_written += chunk_blocks;
        if (++next_chunk == nchunks) {
            end_pass();
        }
    } else if (status == 0) {
        for (uint64_t k = 0; k < chunk_blocks; k++) {
            verify_block(buf + k * BLOCK_WORDS, block_addr(inflight_chunk, k), inflight_gen);
        }
        disk_blocks_verified += chunk_blocks;
    }
    state = IDLE;
}

void disk_step(uint64_t seq)
{
    if (!active) {
        return;
    }
    if (state != IDLE) {
        if (*kstat.disk.used_idx != ticket) {
            if (seq - inflight_seq > DISK_TIMEOUT_INTERVALS) {
                request_failed("not completed after ", DISK_TIMEOUT_INTERVALS, " intervals");
                active = 0;
            }
            return;
        }
        int was_write = state == WRITING;
        complete();
        if (was_write) {
            uint64_t c = nchunks > 1 ? (inflight_chunk + nchunks / 2) % nchunks : inflight_chunk;
            uint64_t gen = chunk_gen(c);
            if (gen) {
                submit(0, c, gen, seq);
                return;
            }
        }
    }
    if (!next_checked && chunk_gen(next_chunk)) {
        next_checked = 1;
        submit(0, next_chunk, chunk_gen(next_chunk), seq);
        return;
    }
    next_checked = 0;
    submit(1, next_chunk, passes + 1, seq);
}

void disk_setup(void)
{
    const struct r3_disk *d = &kstat.disk;
    struct line l;
    uint64_t blocks = d->sectors / (BLOCK / 512);

    line_reset(&l);
    if (!d->mmio) {
        line_str(&l, "DISK none");
        emit(&l);
        if (d->problem) {
            struct line *e = error_line();
            line_str(e, "disk: ");
            line_str(e, d->problem);
        }
        return;
    }
    chunk_blocks = blocks < CHUNK_BLOCKS_MAX ? blocks : CHUNK_BLOCKS_MAX;
    nchunks = chunk_blocks ? blocks / chunk_blocks : 0;
    line_str(&l, "DISK virtio-blk mmio=");
    line_hex(&l, d->mmio);
    line_str(&l, " sectors=");
    line_u64(&l, d->sectors);
    line_str(&l, " blocks=");
    line_u64(&l, nchunks * chunk_blocks);
    line_str(&l, " chunk_kib=");
    line_u64(&l, chunk_blocks * BLOCK / 1024);
    if (d->read_only) {
        line_str(&l, " read-only");
    }
    emit(&l);
    if (kstat.ram_top < R3_DISK_TOP) {
        line_str(error_line(), "disk: RAM ends below the disk buffers");
        return;
    }
    active = nchunks && !d->read_only;
}
