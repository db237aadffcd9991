/*
 * ring3 guest: what the boot code, the ring-0 kernel (kernel.c) and the
 * ring-3 workload (user.c) share. See user.c for the serial line format.
 *
 * Physical memory (identity mapped, 2 MiB pages, all of it user-accessible
 * except the LAPIC/IOAPIC page; this is a test guest, not an OS):
 *   0x007000            real-mode stack top (below migvm's hint at 0x7bf0)
 *   0x007bf0            migvm's loader hint (hw/loader.h): "MIGV", RAM top, bytes loaded
 *   0x007c00            the image: boot sector, config block, code, data; then .bss
 *   0x100000-0x109fff   PML4, PDPT, 8 page directories (0-8 GiB; RAM above
 *                       4 GiB is there when migvm maps "pc.ram" in two parts)
 *   0x170000            IST1 stack top (double fault, NMI, machine check)
 *   0x180000            kernel stack top (TSS.RSP0)
 *   0x200000            user stack top
 *   0x400000            virtio-blk queue page (virtio-blk.c), then ring 3's disk buffers
 *   cfg.mem_start ...   the workload's regions (default 16 MiB + 64 MiB; never below R3_DISK_TOP)
 */
#ifndef RING3_H
#define RING3_H

#define R3_PML4          0x100000
#define R3_PDPT          0x101000
#define R3_PD            0x102000
#define R3_IST1_TOP      0x170000
#define R3_KSTACK_TOP    0x180000
#define R3_USTACK_TOP    0x200000
#define R3_DISK_QUEUE    0x400000        /* one page: virtqueue, request header, status byte */
#define R3_DISK_BUF      0x410000        /* ring 3's data buffers, R3_DISK_BUF_MAX bytes each */
#define R3_DISK_BUF_MAX  0x10000         /* largest request SYS_DISK takes */
#define R3_DISK_TOP      0x600000        /* end of the disk area */
#define R3_RAM_INFO      0x7bf0
#define R3_RAM_MAGIC     0x5647494d      /* "MIGV" */
#define R3_MAPPED_TOP    0x200000000ULL  /* the page tables cover 0-8 GiB */
#define R3_HIGH_BASE     0x100000000ULL  /* where RAM above the 32-bit hole starts */
#define R3_LAPIC_BASE    0xfee00000

#define SEL_KCODE        0x08
#define SEL_KDATA        0x10
#define SEL_UDATA        0x1b            /* 0x18 | RPL 3 */
#define SEL_UCODE        0x23            /* 0x20 | RPL 3 */
#define SEL_TSS          0x28
#define SEL_CODE32       0x38            /* boot only */
#define SEL_DATA32       0x40

#define VEC_PIT          0x20            /* 8259 master remapped to 0x20-0x27, slave 0x28-0x2f */
#define VEC_SERIAL       0x24
#define VEC_SYSCALL      0x80
#define VEC_LAPIC_TIMER  0xf0
#define VEC_LAPIC_SPUR   0xff

/* int 0x80: rax = number, rdi/rsi = arguments, result in rax. */
#define SYS_WRITE        1               /* (buf, len): queue bytes for interrupt-driven output */
#define SYS_FLUSH        2               /* (): drain the queue by polling (no IRQ4 arrived) */
#define SYS_STATE        3               /* (out): copy the canary DRs and MSRs, returns R3_STATE_N */
#define SYS_DISK         4               /* (struct r3_disk_req *): submit one disk request (virtio-blk.c) */

/* State ring 0 reads back for ring 3 once per interval (SYS_STATE) and
 * compares with the snapshot it took at boot (kstat.state_boot):
 *   0-3    DR0-3: canaries (DR7 leaves them disabled)
 *   4-11   eight MSRs the guest does not otherwise use (no SYSCALL or
 *          SYSENTER ever runs): canaries
 *   12-17  CR0, CR3, CR4, EFER, GDTR base, IDTR base
 *   18-20  the UART's LCR, MCR and scratch register (a canary)
 * A migration that loses cpu/debugregs, cpu/msrs, cpu/sregs or the serial
 * section shows up as power-on values. */
#define R3_STATE_N       21
#define R3_DR_CANARY(k)  (0x1111000ULL * ((k) + 1))
#define R3_MSR_CANARIES                                                         \
    { 0xc0000081, 0x001b000800000000ULL, "star" },                              \
    { 0xc0000082, 0x00007fffdead0000ULL, "lstar" },                             \
    { 0xc0000083, 0x00007fffbeef0000ULL, "cstar" },                             \
    { 0xc0000084, 0x0000000000047700ULL, "sfmask" },                            \
    { 0xc0000102, 0x00007fff12340000ULL, "kernel_gs_base" },                    \
    { 0x00000174, 0x0000000000000010ULL, "sysenter_cs" },                       \
    { 0x00000175, 0x00007fff56780000ULL, "sysenter_esp" },                      \
    { 0x00000176, 0x00007fff9abc0000ULL, "sysenter_eip" }
#define R3_MSR_CANARY_N  8
#define R3_UART_SCR_CANARY 0xa5
#define R3_STATE_NAMES                                                          \
    "dr0", "dr1", "dr2", "dr3", "msr star", "msr lstar", "msr cstar",           \
    "msr sfmask", "msr kernel_gs_base", "msr sysenter_cs", "msr sysenter_esp",  \
    "msr sysenter_eip", "cr0", "cr3", "cr4", "efer", "gdtr base", "idtr base",  \
    "uart lcr", "uart mcr", "uart scr"

#ifndef __ASSEMBLER__
#include <stdint.h>

struct r3_msr_canary {
    uint32_t index;
    uint64_t value;
    const char *name;
};

/* KVM's pvclock page for vCPU 0 (MSR_KVM_SYSTEM_TIME_NEW points at it). */
struct r3_pvclock {
    volatile uint32_t version;
    uint32_t pad0;
    volatile uint64_t tsc_timestamp;
    volatile uint64_t system_time;
    volatile uint32_t tsc_to_system_mul;
    volatile int8_t tsc_shift;
    volatile uint8_t flags;
    uint8_t pad[2];
};

/* The config block: image offset 512 (address 0x7e00), patchable in the
 * image file (little-endian u32s). Zero fields take the defaults. */
struct r3_config {
    char magic[4];                       /*  0 "R3CF" */
    uint32_t version;                    /*  4 1 */
    uint32_t mem_start_mib;              /*  8 first region (default 16; >= 4096: RAM above 4 GiB) */
    uint32_t mem_size_mib;               /* 12 bytes dirtied (default 64), cut to RAM top */
    uint32_t region_kib;                 /* 16 region size (default 1024, multiple of 4) */
    uint32_t pit_hz;                     /* 20 PIT rate (default 100) */
    uint32_t lapic_hz;                   /* 24 LAPIC timer rate (default 100, 1 GHz APIC bus assumed) */
    uint32_t report_ticks;               /* 28 PIT ticks per status line (default 100) */
    uint32_t default_top_mib;            /* 32 RAM top without migvm's hint (default 256) */
};

/* SYS_DISK's argument: one request on the virtio-blk disk. The call returns
 * at once with the used-ring index that marks its completion (ring 3 polls
 * kstat.disk.used_idx for it and then reads kstat.disk.status), or a
 * negative R3_DISK_E* when the request was refused. */
struct r3_disk_req {
    uint32_t write;                      /* 0: read the disk into buf, 1: write buf to it */
    uint32_t bytes;                      /* multiple of 512, at most R3_DISK_BUF_MAX */
    uint64_t sector;                     /* 512-byte units */
    uint64_t buf;                        /* guest physical (= virtual) address */
};
#define R3_DISK_ENODEV   (-1)            /* no disk */
#define R3_DISK_EINVAL   (-2)            /* outside the disk or a bad size */
#define R3_DISK_EBUSY    (-3)            /* the previous request has not completed */

/* The disk as ring 0 set it up (virtio-blk.c). */
struct r3_disk {
    uint64_t mmio;                       /* the device's register base; 0: no disk */
    uint64_t sectors;                    /* capacity, 512-byte units */
    uint32_t read_only;                  /* VIRTIO_BLK_F_RO offered */
    uint32_t queue_size;
    const char *problem;                 /* a device was found but not set up: why (else 0) */
    const volatile uint16_t *used_idx;   /* the used ring's index */
    const volatile uint8_t *status;      /* the latest request's status (0 = OK) */
    uint64_t submitted;                  /* requests submitted so far */
};

/* Kernel counters: written in ring 0, read directly by ring 3. */
struct r3_kstat {
    volatile uint64_t pit_ticks;
    volatile uint64_t lapic_ticks;
    volatile uint64_t serial_irqs;
    volatile uint64_t rx_bytes;
    volatile uint64_t tx_dropped;        /* bytes that did not fit the queue */
    volatile uint64_t tx_polled;         /* SYS_FLUSH calls that found bytes */
    volatile uint64_t unexpected;        /* interrupts on vectors nobody asked for */
    volatile uint64_t last_unexpected;   /* the latest such vector */
    volatile uint64_t int80_via_ud;      /* system calls that arrived as #UD (PVM) */
    volatile uint32_t tx_head, tx_tail;  /* queue indices (free running) */
    uint64_t ram_top;                    /* end of RAM below 4 GiB */
    uint64_t ram_high_top;               /* end of RAM above 4 GiB (R3_HIGH_BASE: none), at most R3_MAPPED_TOP */
    uint32_t loaded_by_migvm;            /* 1: migvm's loader hint, 0: a BIOS loaded us */
    uint32_t lapic_present;
    uint32_t avx;                        /* 1: CR4.OSXSAVE and XCR0 = x87|SSE|AVX set */
    uint32_t kvmclock;                   /* 1: pvclock enabled (KVM signature, CLOCKSOURCE2) */
    uint32_t state_mask;                 /* canaries (slots 0-11, 20) that read back right at boot */
    uint64_t state_boot[R3_STATE_N];     /* SYS_STATE's values at boot */
    struct r3_pvclock pvclock __attribute__((aligned(64)));
    struct r3_disk disk;
};

extern struct r3_config r3_config;
extern struct r3_kstat kstat;

#define GOLDEN 0x9e3779b97f4a7c15ULL

/* The workloads' pattern seed for an address and a generation (ring3.h's
 * users: memory regions in user.c, disk blocks in disk.c). */
static inline uint64_t r3_mix(uint64_t addr, uint64_t gen)
{
    uint64_t x = addr ^ (gen * GOLDEN);

    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    return x;
}

/* int $0x80 from ring 3 (see SYS_*). */
static inline uint64_t sys2(uint64_t nr, uint64_t a, uint64_t b)
{
    __asm__ volatile("int $0x80" : "+a"(nr) : "D"(a), "S"(b) : "memory");
    return nr;
}

/* user.c */
void user_main(void) __attribute__((noreturn));
struct line;
struct line *error_line(void);           /* a new ERROR line for this interval */
void emit(struct line *l);               /* queue a line for the serial port */
/* disk.c: the disk workload (ring 3) */
void disk_setup(void);
void disk_step(uint64_t seq);
extern uint64_t disk_blocks_written, disk_blocks_verified;
/* virtio-blk.c: the driver (ring 0) */
void virtio_blk_init(void);
int64_t sys_disk(const struct r3_disk_req *req);
/* regcheck.S: spin n (>= 1) times with values in 14 GPRs and xmm0-7, store them in out;
 * xmm8-15 and the upper halves of ymm8-15 hold canaries (see regcheck.S). */
void regspin(uint64_t n, uint64_t seed, uint64_t out[30]);
void xmm_canary_load(const uint64_t v[16]);
void xmm_canary_store(uint64_t v[16]);
void ymm_canary_load(const uint64_t v[16]);
void ymm_canary_store(uint64_t v[16]);
/* boot.S */
void enter_user(void (*entry)(void), uint64_t stack_top) __attribute__((noreturn));
#endif

#endif
