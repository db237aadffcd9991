/*
 * ring3 guest, ring 0: machine set-up, interrupt handlers, system calls.
 * Everything here runs in KVM's instruction emulator under PVM (~1 MIPS),
 * so the paths taken per interrupt are short and the workload lives in
 * user.c (ring 3, native speed).
 *
 * kmain: RAM top below and above 4 GiB (migvm's hint, else the config's
 * default and nothing above 4 GiB), COM1 (115200
 * 8N1, FIFO), TSS (RSP0, IST1), IDT, 8259 pair remapped to 0x20-0x2f with
 * IRQ0, IRQ2 (cascade) and IRQ4 unmasked, PIT channel 0 periodic, LAPIC
 * (software-enabled, LINT0 ExtINT so the 8259 reaches the CPU, periodic
 * timer on VEC_LAPIC_TIMER), then the "BOOT" line (polled, the only
 * polled line in normal operation) and iretq to user_main.
 *
 * Serial output is interrupt-driven: SYS_WRITE queues bytes and sets
 * IER.THRI; IRQ4 moves up to 16 bytes per THR-empty event and clears THRI
 * once the queue is empty. SYS_FLUSH drains the queue by polling: ring 3
 * calls it only when IRQ4 has stayed away while bytes waited (and reports
 * that as an error), so a machine without the serial interrupt is still
 * observable.
 *
 * System calls: int $0x80 through a DPL-3 interrupt gate. Under PVM a
 * ring-3 "int $0x80" raises #UD instead; the #UD path recognises the
 * instruction (cd 80, from CPL 3), steps over it and runs the same call
 * (kstat.int80_via_ud counts those).
 *
 * State checks (ring3.h): DR0-3, eight MSRs the guest never uses and the
 * UART's scratch register get canary values at boot; SYS_STATE reads them
 * and some control and UART registers back, for ring 3 to compare with
 * the snapshot taken at the end of the set-up (kstat.state_boot). With
 * XSAVE and AVX, CR4.OSXSAVE and XCR0 = x87|SSE|AVX are set so ring 3 can
 * keep canaries in the ymm upper halves. With KVM's CPUID signature and
 * CLOCKSOURCE2, kvmclock is enabled on kstat.pvclock (read by ring 3).
 * A virtio-blk disk, if any, is set up by virtio-blk.c (SYS_DISK).
 *
 * Fatal: an exception prints one polled line
 *   FATAL: exception <vec> err=<hex> rip=<hex> cs=<hex> rsp=<hex> cr2=<hex>
 * and halts with interrupts off.
 */
#include "fmt.h"
#include "ring3.h"

#define COM1        0x3f8
#define UART_IER    (COM1 + 1)
#define UART_IIR    (COM1 + 2)
#define UART_FCR    (COM1 + 2)
#define UART_LCR    (COM1 + 3)
#define UART_MCR    (COM1 + 4)
#define UART_LSR    (COM1 + 5)
#define UART_SCR    (COM1 + 7)
#define IER_RDI     0x01
#define IER_THRI    0x02
#define LSR_DR      0x01
#define LSR_THRE    0x20

#define PIC1_CMD    0x20
#define PIC1_DATA   0x21
#define PIC2_CMD    0xa0
#define PIC2_DATA   0xa1
#define PIC_EOI     0x20

#define PIT_HZ_BASE 1193182u

#define LAPIC_SVR       0xf0
#define LAPIC_EOI       0xb0
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_LINT1 0x360
#define LAPIC_LVT_ERROR 0x370
#define LAPIC_TIMER_ICR 0x380
#define LAPIC_TIMER_DCR 0x3e0
#define LAPIC_BUS_HZ    1000000000u     /* KVM's in-kernel LAPIC: 1 ns per bus cycle */

#define TXQ_SIZE 4096                   /* power of two */

struct frame {
    uint64_t r15, r14, r13, r12, rbp, rbx, r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax;
    uint64_t vec, err, rip, cs, rflags, rsp, ss;
};

struct tss {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed));

struct gate {
    uint16_t off_lo, sel;
    uint8_t ist, type;
    uint16_t off_mid;
    uint32_t off_hi, reserved;
};

struct r3_kstat kstat;
static struct tss tss;
static struct gate idt[256] __attribute__((aligned(16)));
static uint8_t txq[TXQ_SIZE];
static uint8_t ier_shadow;

extern uint64_t gdt[];
extern uint8_t loaded_by_migvm;
extern char isr_stubs[], isr_pit[], isr_lapic_timer[], isr_lapic_spurious[];

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint64_t rdmsr(uint32_t index)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(index));
    return (uint64_t)hi << 32 | lo;
}

static inline void wrmsr(uint32_t index, uint64_t v)
{
    __asm__ volatile("wrmsr" : : "c"(index), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)));
}

static inline void cpuid(uint32_t leaf, uint32_t r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}

static const struct r3_msr_canary msr_canaries[R3_MSR_CANARY_N] = { R3_MSR_CANARIES };

static inline void lapic_write(uint32_t reg, uint32_t v)
{
    *(volatile uint32_t *)(uintptr_t)(R3_LAPIC_BASE + reg) = v;
}

/* ---- polled output: the boot line and fatal paths ---- */

static void polled_putc(char c)
{
    for (int i = 0; i < 100000 && !(inb(UART_LSR) & LSR_THRE); i++) {
    }
    outb(COM1, (uint8_t)c);
}

static void polled_line(struct line *l)
{
    for (uint32_t i = 0; i < l->len; i++) {
        polled_putc(l->text[i]);
    }
    polled_putc('\n');
}

/* ---- interrupt-driven output ---- */

static void set_ier(uint8_t v)
{
    if (v != ier_shadow) {
        ier_shadow = v;
        outb(UART_IER, v);
    }
}

static uint64_t sys_write(const char *buf, uint64_t len)
{
    uint64_t queued = 0;

    if (len > 1024) {
        len = 1024;
    }
    for (; queued < len; queued++) {
        if (kstat.tx_head - kstat.tx_tail >= TXQ_SIZE) {
            kstat.tx_dropped += len - queued;
            break;
        }
        txq[kstat.tx_head++ % TXQ_SIZE] = buf[queued];
    }
    set_ier(IER_RDI | IER_THRI);        /* THR empty: the UART raises IRQ4 at once */
    return queued;
}

static uint64_t sys_flush(void)
{
    if (kstat.tx_head == kstat.tx_tail) {
        return 0;
    }
    kstat.tx_polled++;
    while (kstat.tx_head != kstat.tx_tail) {
        polled_putc(txq[kstat.tx_tail++ % TXQ_SIZE]);
    }
    return 1;
}

/* The SYS_STATE slots, in ring3.h's order. */
static void read_state(uint64_t out[R3_STATE_N])
{
    struct { uint16_t limit; uint64_t base; } __attribute__((packed)) gdtr, idtr;

    __asm__ volatile("mov %%dr0, %0" : "=r"(out[0]));
    __asm__ volatile("mov %%dr1, %0" : "=r"(out[1]));
    __asm__ volatile("mov %%dr2, %0" : "=r"(out[2]));
    __asm__ volatile("mov %%dr3, %0" : "=r"(out[3]));
    for (int i = 0; i < R3_MSR_CANARY_N; i++) {
        out[4 + i] = rdmsr(msr_canaries[i].index);
    }
    __asm__ volatile("mov %%cr0, %0" : "=r"(out[12]));
    __asm__ volatile("mov %%cr3, %0" : "=r"(out[13]));
    __asm__ volatile("mov %%cr4, %0" : "=r"(out[14]));
    out[15] = rdmsr(0xc0000080);
    __asm__ volatile("sgdt %0" : "=m"(gdtr));
    __asm__ volatile("sidt %0" : "=m"(idtr));
    out[16] = gdtr.base;
    out[17] = idtr.base;
    out[18] = inb(UART_LCR);
    out[19] = inb(UART_MCR);
    out[20] = inb(UART_SCR);
}

/* IRQ4: loop until the UART has nothing pending, so its (edge-triggered
 * through the 8259) line drops and the next event makes a new edge. */
static void serial_isr(void)
{
    kstat.serial_irqs++;
    for (int round = 0; round < 512; round++) {
        uint8_t iir = inb(UART_IIR);
        if (iir & 1) {
            return;
        }
        switch (iir & 0x0e) {
        case 0x02:                      /* THR empty: the FIFO takes 16 bytes */
            for (int n = 0; n < 16 && kstat.tx_head != kstat.tx_tail; n++) {
                outb(COM1, txq[kstat.tx_tail++ % TXQ_SIZE]);
            }
            if (kstat.tx_head == kstat.tx_tail) {
                set_ier(IER_RDI);
            }
            break;
        case 0x04:                      /* received data (or FIFO timeout) */
        case 0x0c:
            while (inb(UART_LSR) & LSR_DR) {
                (void)inb(COM1);
                kstat.rx_bytes++;
            }
            break;
        case 0x06:
            (void)inb(UART_LSR);
            break;
        default:
            (void)inb(COM1 + 6);        /* modem status */
            break;
        }
    }
    set_ier(IER_RDI);                   /* stuck: stop THRI; SYS_FLUSH takes over */
}

/* ---- traps ---- */

static void fatal(struct frame *f)
{
    struct line l;
    uint64_t cr2;

    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    line_reset(&l);
    line_str(&l, "FATAL: exception ");
    line_u64(&l, f->vec);
    line_str(&l, " err=");
    line_hex(&l, f->err);
    line_str(&l, " rip=");
    line_hex(&l, f->rip);
    line_str(&l, " cs=");
    line_hex(&l, f->cs);
    line_str(&l, " rsp=");
    line_hex(&l, f->rsp);
    line_str(&l, " cr2=");
    line_hex(&l, cr2);
    sys_flush();
    polled_line(&l);
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}

/* "int $0x80" executed in ring 3 that arrived as #UD instead of through its
 * DPL-3 gate (PVM does that): step over it and take it as the system call. */
static int int80_as_ud(struct frame *f)
{
    if (f->vec != 6 || (f->cs & 3) != 3 || *(const volatile uint16_t *)(uintptr_t)f->rip != 0x80cd) {
        return 0;
    }
    f->rip += 2;
    f->vec = VEC_SYSCALL;
    kstat.int80_via_ud++;
    return 1;
}

void trap(struct frame *f);
void trap(struct frame *f)
{
    uint64_t v = f->vec;

    if (v < 32 && !int80_as_ud(f)) {
        fatal(f);
    }
    v = f->vec;
    if (v == VEC_SYSCALL) {
        if (f->rax == SYS_WRITE) {
            f->rax = sys_write((const char *)f->rdi, f->rsi);
        } else if (f->rax == SYS_FLUSH) {
            f->rax = sys_flush();
        } else if (f->rax == SYS_STATE) {
            read_state((uint64_t *)f->rdi);
            f->rax = R3_STATE_N;
        } else if (f->rax == SYS_DISK) {
            f->rax = (uint64_t)sys_disk((const struct r3_disk_req *)f->rdi);
        } else {
            f->rax = (uint64_t)-1;
        }
    } else if (v == VEC_SERIAL) {
        serial_isr();
        outb(PIC1_CMD, PIC_EOI);
    } else if (v == 0x27) {
        /* master spurious (IRQ7 is masked): no EOI */
    } else if (v >= 0x20 && v < 0x30) {
        kstat.unexpected++;
        kstat.last_unexpected = v;
        if (v >= 0x28) {
            outb(PIC2_CMD, PIC_EOI);
        }
        outb(PIC1_CMD, PIC_EOI);
    } else {
        kstat.unexpected++;
        kstat.last_unexpected = v;
    }
}

/* ---- set-up ---- */

static void set_gate(int vec, void *handler, int dpl, int ist)
{
    uint64_t a = (uint64_t)(uintptr_t)handler;

    idt[vec].off_lo = (uint16_t)a;
    idt[vec].sel = SEL_KCODE;
    idt[vec].ist = (uint8_t)ist;
    idt[vec].type = (uint8_t)(0x8e | (dpl << 5));   /* present 64-bit interrupt gate */
    idt[vec].off_mid = (uint16_t)(a >> 16);
    idt[vec].off_hi = (uint32_t)(a >> 32);
    idt[vec].reserved = 0;
}

static void setup_tss_idt(void)
{
    uint64_t base = (uint64_t)(uintptr_t)&tss;
    uint64_t limit = sizeof(tss) - 1;
    struct { uint16_t limit; uint64_t base; } __attribute__((packed)) idtr;

    tss.rsp[0] = R3_KSTACK_TOP;
    tss.ist[0] = R3_IST1_TOP;
    tss.iomap_base = sizeof(tss);       /* no I/O bitmap: ring 3 has no ports */
    gdt[SEL_TSS / 8] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ULL << 40) |
                       ((limit >> 16 & 0xf) << 48) | ((base >> 24 & 0xff) << 56);
    gdt[SEL_TSS / 8 + 1] = base >> 32;
    __asm__ volatile("ltr %w0" : : "r"(SEL_TSS));

    for (int v = 0; v < 256; v++) {
        set_gate(v, isr_stubs + 16 * v, 0, (v == 2 || v == 8 || v == 18) ? 1 : 0);
    }
    set_gate(VEC_PIT, isr_pit, 0, 0);
    set_gate(VEC_LAPIC_TIMER, isr_lapic_timer, 0, 0);
    set_gate(VEC_LAPIC_SPUR, isr_lapic_spurious, 0, 0);
    set_gate(VEC_SYSCALL, isr_stubs + 16 * VEC_SYSCALL, 3, 0);
    idtr.limit = sizeof(idt) - 1;
    idtr.base = (uint64_t)(uintptr_t)idt;
    __asm__ volatile("lidt %0" : : "m"(idtr));
}

static void setup_serial(void)
{
    outb(UART_IER, 0);
    outb(UART_LCR, 0x80);               /* DLAB: divisor 1 = 115200 baud */
    outb(COM1, 1);
    outb(COM1 + 1, 0);
    outb(UART_LCR, 0x03);               /* 8N1 */
    outb(UART_FCR, 0x07);               /* FIFO on, both cleared */
    outb(UART_MCR, 0x0b);               /* DTR, RTS, OUT2 (IRQ gate on PCs) */
    ier_shadow = 0xff;
    set_ier(IER_RDI);
}

static void setup_pic_pit(uint32_t hz)
{
    uint32_t div = PIT_HZ_BASE / (hz ? hz : 100);

    outb(PIC1_CMD, 0x11);               /* ICW1: edge, cascade, ICW4 follows */
    outb(PIC2_CMD, 0x11);
    outb(PIC1_DATA, 0x20);              /* ICW2: vector bases */
    outb(PIC2_DATA, 0x28);
    outb(PIC1_DATA, 0x04);              /* ICW3: slave on IRQ2 */
    outb(PIC2_DATA, 0x02);
    outb(PIC1_DATA, 0x01);              /* ICW4: 8086 mode */
    outb(PIC2_DATA, 0x01);
    outb(PIC1_DATA, (uint8_t)~(1u << 0 | 1u << 2 | 1u << 4));
    outb(PIC2_DATA, 0xff);

    if (div > 0xffff) {
        div = 0xffff;
    }
    outb(0x43, 0x34);                   /* channel 0, lo/hi, mode 2 (rate generator) */
    outb(0x40, (uint8_t)div);
    outb(0x40, (uint8_t)(div >> 8));
}

static int cpu_has_lapic(void)
{
    uint32_t a = 1, b, c = 0, d;

    __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
    return (d >> 9) & 1;
}

static void setup_lapic(uint32_t hz)
{
    if (!kstat.lapic_present) {
        return;
    }
    lapic_write(LAPIC_SVR, 0x100 | VEC_LAPIC_SPUR);     /* software enable */
    lapic_write(LAPIC_LVT_LINT0, 0x700);                /* ExtINT: the 8259 */
    lapic_write(LAPIC_LVT_LINT1, 0x400);                /* NMI */
    lapic_write(LAPIC_LVT_ERROR, 0x10000);              /* masked */
    lapic_write(LAPIC_TIMER_DCR, 0x3);                  /* divide by 16 */
    lapic_write(LAPIC_LVT_TIMER, 0x20000 | VEC_LAPIC_TIMER);    /* periodic */
    lapic_write(LAPIC_TIMER_ICR, LAPIC_BUS_HZ / 16 / (hz ? hz : 100));
}

static void setup_canaries(void)
{
    uint64_t dr[4] = { R3_DR_CANARY(0), R3_DR_CANARY(1), R3_DR_CANARY(2), R3_DR_CANARY(3) };

    __asm__ volatile("mov %0, %%dr0" : : "r"(dr[0]));
    __asm__ volatile("mov %0, %%dr1" : : "r"(dr[1]));
    __asm__ volatile("mov %0, %%dr2" : : "r"(dr[2]));
    __asm__ volatile("mov %0, %%dr3" : : "r"(dr[3]));
    for (int i = 0; i < R3_MSR_CANARY_N; i++) {
        wrmsr(msr_canaries[i].index, msr_canaries[i].value);
    }
    outb(UART_SCR, R3_UART_SCR_CANARY);
}

/* After every set-up step: what SYS_STATE must keep returning. */
static void snapshot_state(void)
{
    read_state(kstat.state_boot);
    kstat.state_mask = 0;
    for (int i = 0; i < 4; i++) {
        kstat.state_mask |= (uint32_t)(kstat.state_boot[i] == R3_DR_CANARY(i)) << i;
    }
    for (int i = 0; i < R3_MSR_CANARY_N; i++) {
        kstat.state_mask |= (uint32_t)(kstat.state_boot[4 + i] == msr_canaries[i].value) << (4 + i);
    }
    kstat.state_mask |= (uint32_t)(kstat.state_boot[20] == R3_UART_SCR_CANARY) << 20;
}

/* AVX for ring 3's ymm canaries: CPUID.1:ECX XSAVE (26) and AVX (28), and
 * XCR0 may hold SSE and AVX (CPUID.0xD.0:EAX bits 1, 2). */
static void setup_avx(void)
{
    uint32_t r[4];
    uint64_t cr4;

    cpuid(1, r);
    if (!(r[2] >> 26 & 1) || !(r[2] >> 28 & 1)) {
        return;
    }
    cpuid(0xd, r);
    if ((r[0] & 7) != 7) {
        return;
    }
    __asm__ volatile("mov %%cr4, %0" : "=r"(cr4));
    __asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | 1u << 18));
    __asm__ volatile("xsetbv" : : "c"(0), "a"(7), "d"(0));
    kstat.avx = 1;
}

/* kvmclock: KVM's CPUID signature at 0x40000000 and CLOCKSOURCE2 (bit 3 of
 * 0x40000001.EAX); MSR_KVM_SYSTEM_TIME_NEW = &pvclock | enable. */
static void setup_kvmclock(void)
{
    uint32_t r[4];

    cpuid(0x40000000, r);
    if (r[1] != 0x4b4d564b || r[2] != 0x564b4d56 || r[3] != 0x4d || r[0] < 0x40000001) {
        return;
    }
    cpuid(0x40000001, r);
    if (!(r[0] >> 3 & 1)) {
        return;
    }
    wrmsr(0x4b564d01, (uint64_t)(uintptr_t)&kstat.pvclock | 1);
    kstat.kvmclock = 1;
}

static void find_ram_top(void)
{
    const volatile uint32_t *info = (const volatile uint32_t *)R3_RAM_INFO;

    kstat.loaded_by_migvm = loaded_by_migvm;
    kstat.ram_top = (uint64_t)(r3_config.default_top_mib ? r3_config.default_top_mib : 256) << 20;
    kstat.ram_high_top = R3_HIGH_BASE;
    if (loaded_by_migvm && info[0] == R3_RAM_MAGIC) {
        kstat.ram_top = info[1];
        kstat.ram_high_top += (uint64_t)info[3] << 20;      /* RAM mapped at 4 GiB, MiB */
        if (kstat.ram_high_top > R3_MAPPED_TOP) {
            kstat.ram_high_top = R3_MAPPED_TOP;
        }
    }
}

void kmain(void);
void kmain(void)
{
    struct line l;

    find_ram_top();
    setup_serial();
    setup_tss_idt();
    kstat.lapic_present = cpu_has_lapic();
    setup_pic_pit(r3_config.pit_hz);
    setup_lapic(r3_config.lapic_hz);
    setup_canaries();
    setup_avx();
    setup_kvmclock();
    virtio_blk_init();
    snapshot_state();

    line_reset(&l);
    line_str(&l, "BOOT ring3-guest v1 loader=");
    line_str(&l, kstat.loaded_by_migvm ? "migvm" : "bios");
    line_str(&l, " ram_top=");
    line_hex(&l, kstat.ram_top);
    line_str(&l, " lapic=");
    line_u64(&l, kstat.lapic_present);
    line_str(&l, " avx=");
    line_u64(&l, kstat.avx);
    line_str(&l, " kvmclock=");
    line_u64(&l, kstat.kvmclock);
    line_str(&l, " state_mask=");
    line_hex(&l, kstat.state_mask);
    line_str(&l, " ram_high_top=");
    line_hex(&l, kstat.ram_high_top);
    polled_line(&l);
    enter_user(user_main, R3_USTACK_TOP);
}
