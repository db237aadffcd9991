/*
 * ring3 guest, ring 3: the workload and the serial report.
 *
 * It dirties [mem_start, mem_start + mem_size) (config block, cut to the
 * RAM top), split into regions of region_kib, as fast as it can: pass p
 * rewrites region p mod N with generation g = previous + 1, then verifies
 * region (p + N/2) mod N, last written half a cycle ago. In a region of
 * generation g, every 4 KiB page at physical address A holds
 *   word 0: g    word 1: A    word i >= 2: r3_mix(A, g) ^ (i * 0x9e3779b97f4a7c15)
 * and the region's stored checksum is the 64-bit sum of all its words; a
 * page that missed migration still holds an older generation. Every 8th
 * pass it spins in regspin (regcheck.S), which checks that 14 GPRs and
 * xmm0-7 survive interrupts. After every pass it reads back its vector
 * canaries (xmm8-15, and with AVX the ymm8-15 upper halves, loaded once)
 * and watches the PIT and LAPIC tick counters (kernel.c, read directly),
 * the TSC and kvmclock; once per interval it has ring 0 read back the
 * debug-register and MSR canaries (SYS_STATE, ring3.h). With a virtio-blk
 * disk, each pass also moves the disk workload one request on (disk.c).
 *
 * Serial output (COM1, 115200 8N1, lines end in "\n"; values decimal
 * unless 0x-prefixed). The format is stable: new keys only ever get
 * appended at the end of a line; parse by key.
 *   BOOT ring3-guest v1 loader=<migvm|bios> ram_top=<hex> lapic=<0|1> avx=<0|1>
 *        kvmclock=<0|1> state_mask=<hex> ram_high_top=<hex>
 *       printed by the kernel, polled, once (ram_high_top 0x100000000:
 *       no RAM above 4 GiB; config mem_start_mib >= 4096 puts the workload there)
 *   START regions=<n> region_kib=<n> mem_start=<hex> mem_end=<hex>
 *       once, when ring 3 starts
 *   DISK ...
 *       once, right after START, then one line per disk pass (disk.c)
 *   seq=<n> pit=<n> lapic=<n> sirq=<n> pages=<n> verified=<n> errors=<n> kvmclock=<n>
 *       disk=<n> disk_verified=<n>
 *       one status line per interval: seq counts from 1 up by exactly 1;
 *       pit/lapic = timer interrupts so far; sirq = serial interrupts so
 *       far; pages = pages written so far; verified = pages verified so
 *       far; errors = ERROR lines so far, including those right after it;
 *       kvmclock = the guest's kvmclock in ms (0 without kvmclock);
 *       disk/disk_verified = 4 KiB disk blocks written/verified so far
 *   ERROR: <text>
 *       zero or more after a status line, one per problem found in that
 *       interval (at most 8, then "ERROR: <n> more errors"):
 *         region <r> page <hex>: generation <g> expected <g'>
 *         region <r> page <hex>: holds address <hex>
 *         region <r> word <hex>: <hex> expected <hex>
 *         region <r> checksum <hex> expected <hex>
 *         register <name> <hex> expected <hex>
 *         register <xmmN|ymmN.hi> canary <hex> expected <hex>
 *         state <name> <hex> expected <hex>   (ring 0's registers, ring3.h)
 *         <pit|lapic|tsc> went backwards from <n> to <n>
 *         kvmclock went backwards from <ns> to <ns>   (by more than 1 ms)
 *         pit stalled at <n>        (no PIT tick in the interval)
 *         lapic stalled at <n>      (no LAPIC tick in the interval)
 *         no timer ticks (pit=<n> lapic=<n>)   (neither timer ticked)
 *         pit slow: <n> ticks in two intervals
 *         serial interrupt missing: output polled
 *         serial output dropped <n> bytes
 *         unexpected interrupt vector <hex> (total <n>)
 *         no memory for the workload
 *         disk ...                  (disk.c lists them)
 * An interval normally ends after report_ticks PIT ticks (1 s by default);
 * when the PIT is not ticking it ends after twice the TSC length of a
 * good interval (smoothed; about 2 s before any was measured) of running time
 * (a TSC gap longer than a quarter interval between two passes is a pause,
 * e.g. stop/cont, and is not counted), so a dead timer still gives lines.
 * Silence therefore means the vCPU itself stopped.
 */
#include "fmt.h"
#include "ring3.h"

#define REGION_MAX 4096
#define MAX_ERROR_LINES 8
#define REGSPIN_EVERY 8                  /* passes */
#define REGSPIN_ITERATIONS 20000
#define PAGE 4096

struct region {
    uint64_t gen;
    uint64_t sum;
};

static struct region regions[REGION_MAX];
static uint64_t mem_start, region_bytes, nregions;
static uint64_t pages_written, pages_verified, errors_total;
static struct line err_lines[MAX_ERROR_LINES];
static uint32_t err_count;               /* this interval */
static struct line scratch;
static uint64_t regs_out[30];
static uint64_t xmm_want[16], ymm_want[16], canary_out[16];

/* ---- system calls and counters ---- */

void emit(struct line *l)
{
    l->text[l->len] = '\n';
    sys2(SYS_WRITE, (uint64_t)(uintptr_t)l->text, l->len + 1);
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

/* A new ERROR line for this interval; past the cap, a line nobody prints. */
struct line *error_line(void)
{
    struct line *l = err_count < MAX_ERROR_LINES ? &err_lines[err_count] : &scratch;

    err_count++;
    line_reset(l);
    line_str(l, "ERROR: ");
    return l;
}

/* "ERROR: <what><name><sep><got> expected <want>" for a register or state word. */
static void error_mismatch(const char *what, const char *name, const char *sep, uint64_t got,
                           uint64_t want)
{
    struct line *l = error_line();

    line_str(l, what);
    line_str(l, name);
    line_str(l, sep);
    line_hex(l, got);
    line_str(l, " expected ");
    line_hex(l, want);
}

/* ---- memory ---- */

static uint64_t region_addr(uint64_t r)
{
    return mem_start + r * region_bytes;
}

static void write_region(uint64_t r)
{
    uint64_t gen = regions[r].gen + 1, sum = 0;
    uint64_t base = region_addr(r);

    for (uint64_t a = base; a < base + region_bytes; a += PAGE) {
        volatile uint64_t *w = (volatile uint64_t *)(uintptr_t)a;
        uint64_t s = r3_mix(a, gen);
        w[0] = gen;
        w[1] = a;
        sum += gen + a;
        for (uint64_t i = 2; i < PAGE / 8; i++) {
            uint64_t v = s ^ (i * GOLDEN);
            w[i] = v;
            sum += v;
        }
    }
    regions[r].gen = gen;
    regions[r].sum = sum;
    pages_written += region_bytes / PAGE;
}

static void verify_region(uint64_t r)
{
    uint64_t gen = regions[r].gen, sum = 0;
    uint64_t base = region_addr(r);
    int reported = 0;

    if (!gen) {
        return;
    }
    for (uint64_t a = base; a < base + region_bytes; a += PAGE) {
        const volatile uint64_t *w = (const volatile uint64_t *)(uintptr_t)a;
        uint64_t s = r3_mix(a, gen);
        uint64_t g = w[0], addr = w[1];
        sum += g + addr;
        if (!reported && g != gen) {
            struct line *l = error_line();
            line_str(l, "region ");
            line_u64(l, r);
            line_str(l, " page ");
            line_hex(l, a);
            line_str(l, ": generation ");
            line_u64(l, g);
            line_str(l, " expected ");
            line_u64(l, gen);
            reported = 1;
        } else if (!reported && addr != a) {
            struct line *l = error_line();
            line_str(l, "region ");
            line_u64(l, r);
            line_str(l, " page ");
            line_hex(l, a);
            line_str(l, ": holds address ");
            line_hex(l, addr);
            reported = 1;
        }
        for (uint64_t i = 2; i < PAGE / 8; i++) {
            uint64_t v = w[i], want = s ^ (i * GOLDEN);
            sum += v;
            if (v != want && !reported) {
                struct line *l = error_line();
                line_str(l, "region ");
                line_u64(l, r);
                line_str(l, " word ");
                line_hex(l, a + 8 * i);
                line_str(l, ": ");
                line_hex(l, v);
                line_str(l, " expected ");
                line_hex(l, want);
                reported = 1;
            }
        }
    }
    if (!reported && sum != regions[r].sum) {
        struct line *l = error_line();
        line_str(l, "region ");
        line_u64(l, r);
        line_str(l, " checksum ");
        line_hex(l, sum);
        line_str(l, " expected ");
        line_hex(l, regions[r].sum);
    }
    pages_verified += region_bytes / PAGE;
}

/* ---- registers ---- */

static void check_registers(uint64_t seed)
{
    static const char *const gpr[14] = { "rax", "rbx", "rcx", "rdx", "rbp", "rsi", "r8",
                                         "r9", "r10", "r11", "r12", "r13", "r14", "r15" };
    static const char *const xmm[8] = { "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
                                        "xmm6", "xmm7" };
    const uint64_t n = REGSPIN_ITERATIONS;

    regspin(n, seed, regs_out);
    for (uint64_t k = 0; k < 14; k++) {
        uint64_t want = k == 5 ? seed + 5 : seed + k + n * (k + 1);
        if (regs_out[k] != want) {
            error_mismatch("register ", gpr[k], " ", regs_out[k], want);
        }
    }
    for (uint64_t x = 0; x < 8; x++) {
        for (uint64_t half = 0; half < 2; half++) {
            uint64_t want = x == 7 ? half + 1 : seed + x + n * (half + 1);
            uint64_t got = regs_out[14 + 2 * x + half];
            if (got != want) {
                error_mismatch("register ", xmm[x], half ? ".hi " : ".lo ", got, want);
                break;
            }
        }
    }
}

static const char *const canary_name[2][8] = {
    { "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15" },
    { "ymm8.hi", "ymm9.hi", "ymm10.hi", "ymm11.hi", "ymm12.hi", "ymm13.hi", "ymm14.hi", "ymm15.hi" },
};

static void load_canaries(void)
{
    xmm_canary_load(xmm_want);
    if (kstat.avx) {
        ymm_canary_load(ymm_want);
    }
}

static void setup_canaries(void)
{
    for (uint64_t k = 0; k < 16; k++) {
        xmm_want[k] = r3_mix(0x786d6d00 + k, 1);
        ymm_want[k] = r3_mix(0x796d6d00 + k, 2);
    }
    load_canaries();
}

/* One ERROR line per register that changed, then the canaries are loaded
 * again so one loss is one incident, not an error per pass. */
static void check_canaries(void)
{
    int bad = 0;

    for (int ymm = 0; ymm <= (int)kstat.avx; ymm++) {
        const uint64_t *want = ymm ? ymm_want : xmm_want;
        if (ymm) {
            ymm_canary_store(canary_out);
        } else {
            xmm_canary_store(canary_out);
        }
        for (int k = 0; k < 16; k++) {
            if (canary_out[k] != want[k]) {
                error_mismatch("register ", canary_name[ymm][k / 2], " canary ", canary_out[k], want[k]);
                bad = 1;
                k |= 1;                  /* next register */
            }
        }
    }
    if (bad) {
        load_canaries();
    }
}

/* Ring 0's view of the machine (SYS_STATE) against its boot snapshot. */
static void check_state(void)
{
    static const char *const name[R3_STATE_N] = { R3_STATE_NAMES };
    static uint64_t v[R3_STATE_N];

    sys2(SYS_STATE, (uint64_t)(uintptr_t)v, 0);
    for (int i = 0; i < R3_STATE_N; i++) {
        if (v[i] != kstat.state_boot[i]) {
            error_mismatch("state ", name[i], " ", v[i], kstat.state_boot[i]);
        }
    }
}

/* kvmclock in ns: KVM's pvclock formula, retried while KVM updates it. */
static uint64_t kvmclock_ns(void)
{
    const struct r3_pvclock *pv = &kstat.pvclock;
    uint32_t version, mul;
    uint64_t tsc_ts, sys_time, delta;
    int8_t shift;

    if (!kstat.kvmclock) {
        return 0;
    }
    do {
        version = pv->version;
        __asm__ volatile("" ::: "memory");
        tsc_ts = pv->tsc_timestamp;
        sys_time = pv->system_time;
        mul = pv->tsc_to_system_mul;
        shift = pv->tsc_shift;
        delta = rdtsc();
        __asm__ volatile("" ::: "memory");
    } while ((version & 1) || version != pv->version);
    delta -= tsc_ts;
    if (shift < 0) {
        delta >>= -shift;
    } else {
        delta <<= shift;
    }
    return sys_time + (uint64_t)(((unsigned __int128)delta * mul) >> 32);
}

/* ---- time and the report ---- */

struct clock {
    uint64_t pit, lapic, tsc, sirq, unexpected, dropped, polled, kvmclock;
};

static struct clock last;                /* latest sample: monotonicity */
static struct clock interval;            /* at the start of this interval */
static uint64_t interval_tsc = 1ULL << 31;      /* TSC length of a PIT-timed interval */
static int calibrated, interval_paused;
static uint64_t seq;
static uint64_t tx_wait_tsc, tx_wait_sirq;

static void sample(struct clock *c)
{
    c->pit = kstat.pit_ticks;
    c->lapic = kstat.lapic_ticks;
    c->tsc = rdtsc();
    c->sirq = kstat.serial_irqs;
    c->unexpected = kstat.unexpected;
    c->dropped = kstat.tx_dropped;
    c->polled = kstat.tx_polled;
    c->kvmclock = kvmclock_ns();
}

static void check_backwards(const char *what, uint64_t before, uint64_t now)
{
    if (now < before) {
        struct line *l = error_line();
        line_str(l, what);
        line_str(l, " went backwards from ");
        line_u64(l, before);
        line_str(l, " to ");
        line_u64(l, now);
    }
}

/* Bytes waiting with no IRQ4 for a while: drain them by polling. */
static void serial_fallback(const struct clock *now)
{
    if (kstat.tx_head == kstat.tx_tail) {
        tx_wait_tsc = 0;
        return;
    }
    if (!tx_wait_tsc || now->sirq != tx_wait_sirq) {
        tx_wait_tsc = now->tsc;
        tx_wait_sirq = now->sirq;
        return;
    }
    if (now->tsc - tx_wait_tsc > interval_tsc / 20) {
        sys2(SYS_FLUSH, 0, 0);
        tx_wait_tsc = 0;
    }
}

static void end_interval(const struct clock *now, int timed_by_pit)
{
    struct line status;

    if (timed_by_pit) {
        /* Calibrate on undisturbed intervals only: after a pause KVM's PIT
         * may deliver the missed ticks in a burst. */
        uint64_t len = now->tsc - interval.tsc;
        if (!interval_paused && len >= (1ULL << 26) && len <= (1ULL << 36)) {
            interval_tsc = calibrated ? (3 * interval_tsc + len) / 4 : len;
            calibrated = 1;
        }
    } else if (now->pit == interval.pit && now->lapic == interval.lapic) {
        struct line *l = error_line();
        line_str(l, "no timer ticks (pit=");
        line_u64(l, now->pit);
        line_str(l, " lapic=");
        line_u64(l, now->lapic);
        line_str(l, ")");
    } else if (now->pit == interval.pit) {
        struct line *l = error_line();
        line_str(l, "pit stalled at ");
        line_u64(l, now->pit);
    } else {
        struct line *l = error_line();
        line_str(l, "pit slow: ");
        line_u64(l, now->pit - interval.pit);
        line_str(l, " ticks in two intervals");
    }
    if (kstat.lapic_present && now->lapic == interval.lapic && now->pit != interval.pit) {
        struct line *l = error_line();
        line_str(l, "lapic stalled at ");
        line_u64(l, now->lapic);
    }
    if (now->polled != interval.polled) {
        line_str(error_line(), "serial interrupt missing: output polled");
    }
    if (now->dropped != interval.dropped) {
        struct line *l = error_line();
        line_str(l, "serial output dropped ");
        line_u64(l, now->dropped - interval.dropped);
        line_str(l, " bytes");
    }
    check_state();
    if (now->unexpected != interval.unexpected) {
        struct line *l = error_line();
        line_str(l, "unexpected interrupt vector ");
        line_hex(l, kstat.last_unexpected);
        line_str(l, " (total ");
        line_u64(l, now->unexpected);
        line_str(l, ")");
    }

    uint32_t shown = err_count < MAX_ERROR_LINES ? err_count : MAX_ERROR_LINES;
    uint32_t lines = shown + (err_count > MAX_ERROR_LINES);
    errors_total += lines;

    line_reset(&status);
    line_str(&status, "seq=");
    line_u64(&status, ++seq);
    line_str(&status, " pit=");
    line_u64(&status, now->pit);
    line_str(&status, " lapic=");
    line_u64(&status, now->lapic);
    line_str(&status, " sirq=");
    line_u64(&status, now->sirq);
    line_str(&status, " pages=");
    line_u64(&status, pages_written);
    line_str(&status, " verified=");
    line_u64(&status, pages_verified);
    line_str(&status, " errors=");
    line_u64(&status, errors_total);
    line_str(&status, " kvmclock=");
    line_u64(&status, now->kvmclock / 1000000);
    line_str(&status, " disk=");
    line_u64(&status, disk_blocks_written);
    line_str(&status, " disk_verified=");
    line_u64(&status, disk_blocks_verified);
    emit(&status);
    for (uint32_t i = 0; i < shown; i++) {
        emit(&err_lines[i]);
    }
    if (err_count > MAX_ERROR_LINES) {
        struct line *l = &scratch;
        line_reset(l);
        line_str(l, "ERROR: ");
        line_u64(l, err_count - MAX_ERROR_LINES);
        line_str(l, " more errors");
        emit(l);
    }
    err_count = 0;
    interval = *now;
    interval_paused = 0;
}

static void tick(void)
{
    struct clock now;
    uint32_t report = r3_config.report_ticks ? r3_config.report_ticks : 100;

    sample(&now);
    check_backwards("pit", last.pit, now.pit);
    check_backwards("lapic", last.lapic, now.lapic);
    check_backwards("tsc", last.tsc, now.tsc);
    if (now.kvmclock + 1000000 < last.kvmclock) {
        check_backwards("kvmclock", last.kvmclock, now.kvmclock);
    }
    check_canaries();
    /* One pass takes milliseconds: a longer gap means the vCPU did not run
     * (VM stopped, host busy). The TSC went on, the timers may lag behind
     * it for a while: leave the gap out of the interval's running time. */
    if (now.tsc > last.tsc && now.tsc - last.tsc > interval_tsc / 4) {
        interval.tsc += now.tsc - last.tsc;
        interval_paused = 1;
        if (tx_wait_tsc) {
            tx_wait_tsc += now.tsc - last.tsc;
        }
    }
    last = now;
    serial_fallback(&now);
    if (now.pit - interval.pit >= report) {
        end_interval(&now, 1);
    } else if (now.tsc - interval.tsc >= 2 * interval_tsc) {
        end_interval(&now, 0);
    }
}

static void setup_regions(void)
{
    uint64_t start = (uint64_t)(r3_config.mem_start_mib ? r3_config.mem_start_mib : 16) << 20;
    uint64_t size = (uint64_t)(r3_config.mem_size_mib ? r3_config.mem_size_mib : 64) << 20;
    uint64_t region = (uint64_t)(r3_config.region_kib ? r3_config.region_kib : 1024) << 10;
    struct line l;

    region &= ~(uint64_t)(PAGE - 1);
    if (!region) {
        region = PAGE;
    }
    /* Below 4 GiB up to the RAM top; from 4 GiB on, in RAM mapped there. */
    uint64_t top = start >= R3_HIGH_BASE ? kstat.ram_high_top : kstat.ram_top;
    if (start < R3_DISK_TOP) {
        start = R3_DISK_TOP;
    }
    if (start + size > top) {
        size = top > start ? top - start : 0;
    }
    mem_start = start;
    region_bytes = region;
    nregions = size / region;
    if (nregions > REGION_MAX) {
        nregions = REGION_MAX;
    }
    line_reset(&l);
    line_str(&l, "START regions=");
    line_u64(&l, nregions);
    line_str(&l, " region_kib=");
    line_u64(&l, region >> 10);
    line_str(&l, " mem_start=");
    line_hex(&l, mem_start);
    line_str(&l, " mem_end=");
    line_hex(&l, mem_start + nregions * region);
    emit(&l);
}

void user_main(void)
{
    setup_canaries();
    setup_regions();
    disk_setup();
    sample(&last);
    interval = last;
    if (!nregions) {
        line_str(error_line(), "no memory for the workload");
    }
    for (uint64_t pass = 0;; pass++) {
        if (nregions) {
            uint64_t r = pass % nregions;
            write_region(r);
            verify_region(nregions > 1 ? (r + nregions / 2) % nregions : r);
        }
        disk_step(seq);
        if (pass % REGSPIN_EVERY == 0) {
            check_registers(rdtsc() & 0xffffffffffULL);
        }
        tick();
    }
}
