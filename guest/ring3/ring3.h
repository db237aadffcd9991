/*
 * ring3 guest: what the boot code, the ring-0 kernel (kernel.c) and the
 * ring-3 workload (user.c) share. See user.c for the serial line format.
 *
 * Physical memory (identity mapped, 2 MiB pages, all of it user-accessible
 * except the LAPIC/IOAPIC page; this is a test guest, not an OS):
 *   0x007000            real-mode stack top (below migvm's hint at 0x7bf0)
 *   0x007bf0            migvm's loader hint (hw/loader.h): "MIGV", RAM top, bytes loaded
 *   0x007c00            the image: boot sector, config block, code, data; then .bss
 *   0x100000-0x105fff   PML4, PDPT, 4 page directories (0-4 GiB)
 *   0x170000            IST1 stack top (double fault, NMI, machine check)
 *   0x180000            kernel stack top (TSS.RSP0)
 *   0x200000            user stack top
 *   cfg.mem_start ...   the workload's regions (default 16 MiB + 64 MiB)
 */
#ifndef RING3_H
#define RING3_H

#define R3_PML4          0x100000
#define R3_PDPT          0x101000
#define R3_PD            0x102000
#define R3_IST1_TOP      0x170000
#define R3_KSTACK_TOP    0x180000
#define R3_USTACK_TOP    0x200000
#define R3_RAM_INFO      0x7bf0
#define R3_RAM_MAGIC     0x5647494d      /* "MIGV" */
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

#ifndef __ASSEMBLER__
#include <stdint.h>

/* The config block: image offset 512 (address 0x7e00), patchable in the
 * image file (little-endian u32s). Zero fields take the defaults. */
struct r3_config {
    char magic[4];                       /*  0 "R3CF" */
    uint32_t version;                    /*  4 1 */
    uint32_t mem_start_mib;              /*  8 first region (default 16) */
    uint32_t mem_size_mib;               /* 12 bytes dirtied (default 64), cut to RAM top */
    uint32_t region_kib;                 /* 16 region size (default 1024, multiple of 4) */
    uint32_t pit_hz;                     /* 20 PIT rate (default 100) */
    uint32_t lapic_hz;                   /* 24 LAPIC timer rate (default 100, 1 GHz APIC bus assumed) */
    uint32_t report_ticks;               /* 28 PIT ticks per status line (default 100) */
    uint32_t default_top_mib;            /* 32 RAM top without migvm's hint (default 256) */
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
    uint32_t loaded_by_migvm;            /* 1: migvm's loader hint, 0: a BIOS loaded us */
    uint32_t lapic_present;
};

extern struct r3_config r3_config;
extern struct r3_kstat kstat;

/* user.c */
void user_main(void) __attribute__((noreturn));
/* regcheck.S: spin n (>= 1) times with values in 14 GPRs and xmm0-15, store them in out. */
void regspin(uint64_t n, uint64_t seed, uint64_t out[46]);
/* boot.S */
void enter_user(void (*entry)(void), uint64_t stack_top) __attribute__((noreturn));
#endif

#endif
