/*
 * HMP `info registers` for a KVM vCPU: read its registers from KVM and print
 * them as QEMU 7.2 does for an x86-64 vCPU, so an operator can diff the two.
 *
 * The state is read into local buffers (never into KvmVcpu.state, which
 * belongs to migration), with every vCPU paused. What QEMU derives from its
 * own CPU model is derived here from KVM's state:
 *   64-bit layout       EFER.LMA and CS.L (QEMU's HF_CS64); otherwise the
 *                       32-bit layout (real mode, protected mode, compat)
 *   wide GDT/CR lines   EFER.LMA (QEMU's HF_LMA)
 *   segment flags       the descriptor bits 8-23 packed from kvm_segment
 *                       (type, S, DPL, P, AVL, L, D/B, G); an unusable
 *                       segment counts as not present
 *   CPL                 SS.DPL
 *   II, SMM             KVM_GET_VCPU_EVENTS: interrupt shadow, smi.smm
 *   A20                 always 1 (migvm has no A20 gate)
 *   HLT                 mp_state HALTED (in-kernel irqchip), or parked
 *                       after HLT without one
 *   FPU/SSE             the XSAVE legacy area (or struct kvm_fpu); FTW is
 *                       the abridged tag byte, as KVM keeps it
 *   XMM/YMM/ZMM         chosen by the guest's XCR0: YMM when SSE+AVX are
 *                       enabled, ZMM (and opmasks) when AVX-512 is too;
 *                       16 registers in 64-bit code (32 ZMM), 8 otherwise
 */
#include <inttypes.h>
#include <string.h>
#include <glib.h>
#include "accel.h"
#include "kvm-int.h"
#include "machine.h"

/* XSAVE standard-format offsets (legacy area and header are fixed). */
#define FX_FCW 0
#define FX_FSW 2
#define FX_FTW 4
#define FX_MXCSR 24
#define FX_ST0 32
#define FX_XMM0 160
#define XCR0_SSE_AVX 0x6ull
#define XCR0_AVX512 0xe6ull             /* SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM */

/* Selector bits 8-23 of a descriptor, as QEMU keeps segment flags. */
#define SEG_A (1u << 8)
#define SEG_RW (1u << 9)                /* code: readable, data: writable */
#define SEG_CE (1u << 10)               /* code: conforming, data: expand-down */
#define SEG_CODE (1u << 11)
#define SEG_S (1u << 12)
#define SEG_P (1u << 15)
#define SEG_L (1u << 21)
#define SEG_DB (1u << 22)

typedef struct CpuRegs {
    struct kvm_regs regs;
    struct kvm_segment seg[8];          /* ES CS SS DS FS GS LDT TR (QEMU's order) */
    struct kvm_dtable gdt, idt;
    uint64_t cr0, cr2, cr3, cr4, efer;
    uint64_t dr[4], dr6, dr7;
    uint64_t xcr0;
    bool irq_shadow, smm, halted;
    uint8_t *xsave;                     /* FXSAVE/XSAVE layout */
    uint32_t xsave_len;
} CpuRegs;

static const char *const seg_names[8] = { "ES", "CS", "SS", "DS", "FS", "GS", "LDT", "TR" };

/* ---- reading --------------------------------------------------------------------- */

/* kvm_sregs and kvm_sregs2 agree on everything shown here. */
#define TAKE_SREGS(r, s) do {                                                       \
    const struct kvm_segment *from_[8] = { &(s)->es, &(s)->cs, &(s)->ss, &(s)->ds,  \
                                           &(s)->fs, &(s)->gs, &(s)->ldt, &(s)->tr };\
    for (int i_ = 0; i_ < 8; i_++) {                                                \
        (r)->seg[i_] = *from_[i_];                                                  \
    }                                                                               \
    (r)->gdt = (s)->gdt; (r)->idt = (s)->idt;                                       \
    (r)->cr0 = (s)->cr0; (r)->cr2 = (s)->cr2; (r)->cr3 = (s)->cr3;                  \
    (r)->cr4 = (s)->cr4; (r)->efer = (s)->efer;                                     \
} while (0)

static bool read_sregs(KvmVcpu *v, CpuRegs *r, Error **errp)
{
    if (kvm_state.cap_sregs2) {
        struct kvm_sregs2 s;
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_SREGS2, &s, "KVM_GET_SREGS2", errp)) {
            return false;
        }
        TAKE_SREGS(r, &s);
    } else {
        struct kvm_sregs s;
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_SREGS, &s, "KVM_GET_SREGS", errp)) {
            return false;
        }
        TAKE_SREGS(r, &s);
    }
    return true;
}

/* The FPU/SSE state in XSAVE layout; struct kvm_fpu is converted to the
 * FXSAVE legacy area so the printer reads one layout. */
static bool read_fpu(KvmVcpu *v, CpuRegs *r, Error **errp)
{
    if (kvm_state.xsave_size) {
        /* KVM_GET_XSAVE always writes 4096 bytes, XSAVE2 xsave_size. */
        r->xsave_len = kvm_state.xsave_size > 4096 ? kvm_state.xsave_size : 4096;
        r->xsave = g_malloc0(r->xsave_len);
        unsigned long req = kvm_check_extension(KVM_CAP_XSAVE2) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
        if (!kvm_vcpu_ioctl_or_fail(v, req, r->xsave, "KVM_GET_XSAVE", errp)) {
            return false;
        }
        r->xsave_len = kvm_state.xsave_size;
        return true;
    }
    struct kvm_fpu fpu;
    if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_FPU, &fpu, "KVM_GET_FPU", errp)) {
        return false;
    }
    r->xsave_len = 512;
    r->xsave = g_malloc0(r->xsave_len);
    memcpy(r->xsave + FX_FCW, &fpu.fcw, 2);
    memcpy(r->xsave + FX_FSW, &fpu.fsw, 2);
    r->xsave[FX_FTW] = fpu.ftwx;
    memcpy(r->xsave + FX_MXCSR, &fpu.mxcsr, 4);
    memcpy(r->xsave + FX_ST0, fpu.fpr, sizeof(fpu.fpr));
    memcpy(r->xsave + FX_XMM0, fpu.xmm, sizeof(fpu.xmm));
    return true;
}

static bool read_extras(KvmVcpu *v, CpuRegs *r, Error **errp)
{
    r->xcr0 = 1;                        /* x87 only: the power-on value */
    if (kvm_state.cap_xcrs) {
        struct kvm_xcrs x;
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_XCRS, &x, "KVM_GET_XCRS", errp)) {
            return false;
        }
        for (uint32_t i = 0; i < x.nr_xcrs && i < KVM_MAX_XCRS; i++) {
            if (x.xcrs[i].xcr == 0) {
                r->xcr0 = x.xcrs[i].value;
            }
        }
    }
    if (kvm_state.cap_debugregs) {
        struct kvm_debugregs d;
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_DEBUGREGS, &d, "KVM_GET_DEBUGREGS", errp)) {
            return false;
        }
        memcpy(r->dr, d.db, sizeof(r->dr));
        r->dr6 = d.dr6;
        r->dr7 = d.dr7;
    } else {
        r->dr6 = 0xffff0ff0;            /* architectural reset values */
        r->dr7 = 0x400;
    }
    if (kvm_state.cap_vcpu_events) {
        struct kvm_vcpu_events ev;
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_VCPU_EVENTS, &ev, "KVM_GET_VCPU_EVENTS", errp)) {
            return false;
        }
        r->irq_shadow = ev.interrupt.shadow != 0;
        r->smm = ev.smi.smm != 0;
    }
    struct kvm_mp_state mp;
    if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE", errp)) {
        return false;
    }
    r->halted = kvm_state.irqchip ? mp.mp_state == KVM_MP_STATE_HALTED : v->state.parked;
    return true;
}

static bool read_cpu(KvmVcpu *v, CpuRegs *r, Error **errp)
{
    if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_REGS, &r->regs, "KVM_GET_REGS", errp)) {
        return false;
    }
    return read_sregs(v, r, errp) && read_fpu(v, r, errp) && read_extras(v, r, errp);
}

/* ---- printing --------------------------------------------------------------------- */

static uint32_t seg_flags(const struct kvm_segment *s)
{
    return (uint32_t)s->type << 8 | (uint32_t)s->s << 12 | (uint32_t)s->dpl << 13 |
           (uint32_t)(s->present && !s->unusable) << 15 | (uint32_t)s->avl << 20 |
           (uint32_t)s->l << 21 | (uint32_t)s->db << 22 | (uint32_t)s->g << 23;
}

static const char *system_type(unsigned type, bool lma)
{
    static const char *const legacy[16] = {
        "Reserved", "TSS16-avl", "LDT", "TSS16-busy", "CallGate16", "TaskGate", "IntGate16", "TrapGate16",
        "Reserved", "TSS32-avl", "Reserved", "TSS32-busy", "CallGate32", "Reserved", "IntGate32", "TrapGate32",
    };
    static const char *const long_mode[16] = {
        "<hiword>", "Reserved", "LDT", "Reserved", "Reserved", "Reserved", "Reserved", "Reserved",
        "Reserved", "TSS64-avl", "Reserved", "TSS64-busy", "CallGate64", "Reserved", "IntGate64", "TrapGate64",
    };
    return (lma ? long_mode : legacy)[type & 15];
}

/* "CS =0023 <base> <limit> <flags>", then for a present segment in
 * protected mode " DPL=n " and its kind. */
static void print_segment(GString *out, const char *name, const struct kvm_segment *s, bool cs64, bool pe,
                          bool lma)
{
    uint32_t f = seg_flags(s);

    if (cs64) {
        g_string_append_printf(out, "%-3s=%04x %016" PRIx64 " %08x %08x", name, s->selector,
                               (uint64_t)s->base, s->limit, f & 0x00ffff00);
    } else {
        g_string_append_printf(out, "%-3s=%04x %08x %08x %08x", name, s->selector, (uint32_t)s->base,
                               s->limit, f & 0x00ffff00);
    }
    if (pe && (f & SEG_P)) {
        g_string_append_printf(out, " DPL=%u ", s->dpl);
        if (!(f & SEG_S)) {
            g_string_append(out, system_type(s->type, lma));
        } else if (f & SEG_CODE) {
            g_string_append_printf(out, "%s [%c%c%c]", (f & SEG_L) ? "CS64" : (f & SEG_DB) ? "CS32" : "CS16",
                                   (f & SEG_CE) ? 'C' : '-', (f & SEG_RW) ? 'R' : '-', (f & SEG_A) ? 'A' : '-');
        } else {
            g_string_append_printf(out, "%s [%c%c%c]", (f & SEG_DB) || lma ? "DS  " : "DS16",
                                   (f & SEG_CE) ? 'E' : '-', (f & SEG_RW) ? 'W' : '-', (f & SEG_A) ? 'A' : '-');
        }
    }
    g_string_append_c(out, '\n');
}

static void print_general(GString *out, const CpuRegs *r, bool cs64)
{
    const struct kvm_regs *g = &r->regs;
    uint64_t fl = g->rflags;
    unsigned cpl = r->seg[2].dpl;       /* SS */

    if (cs64) {
        g_string_append_printf(out,
            "RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
            "RSI=%016llx RDI=%016llx RBP=%016llx RSP=%016llx\n"
            "R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n"
            "R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n"
            "RIP=%016llx RFL=%08x",
            g->rax, g->rbx, g->rcx, g->rdx, g->rsi, g->rdi, g->rbp, g->rsp,
            g->r8, g->r9, g->r10, g->r11, g->r12, g->r13, g->r14, g->r15, g->rip, (uint32_t)fl);
    } else {
        g_string_append_printf(out,
            "EAX=%08x EBX=%08x ECX=%08x EDX=%08x\n"
            "ESI=%08x EDI=%08x EBP=%08x ESP=%08x\n"
            "EIP=%08x EFL=%08x",
            (uint32_t)g->rax, (uint32_t)g->rbx, (uint32_t)g->rcx, (uint32_t)g->rdx,
            (uint32_t)g->rsi, (uint32_t)g->rdi, (uint32_t)g->rbp, (uint32_t)g->rsp,
            (uint32_t)g->rip, (uint32_t)fl);
    }
    /* DF OF SF ZF AF PF CF */
    g_string_append_printf(out, " [%c%c%c%c%c%c%c] CPL=%u II=%d A20=1 SMM=%d HLT=%d\n",
                           fl & 0x400 ? 'D' : '-', fl & 0x800 ? 'O' : '-', fl & 0x80 ? 'S' : '-',
                           fl & 0x40 ? 'Z' : '-', fl & 0x10 ? 'A' : '-', fl & 0x4 ? 'P' : '-',
                           fl & 0x1 ? 'C' : '-', cpl, r->irq_shadow, r->smm, r->halted);
}

static void print_system(GString *out, const CpuRegs *r, bool lma)
{
    if (lma) {
        g_string_append_printf(out, "GDT=     %016llx %08x\nIDT=     %016llx %08x\n", r->gdt.base, r->gdt.limit,
                               r->idt.base, r->idt.limit);
        g_string_append_printf(out, "CR0=%08x CR2=%016" PRIx64 " CR3=%016" PRIx64 " CR4=%08x\n",
                               (uint32_t)r->cr0, r->cr2, r->cr3, (uint32_t)r->cr4);
    } else {
        g_string_append_printf(out, "GDT=     %08x %08x\nIDT=     %08x %08x\n", (uint32_t)r->gdt.base,
                               r->gdt.limit, (uint32_t)r->idt.base, r->idt.limit);
        g_string_append_printf(out, "CR0=%08x CR2=%08x CR3=%08x CR4=%08x\n", (uint32_t)r->cr0,
                               (uint32_t)r->cr2, (uint32_t)r->cr3, (uint32_t)r->cr4);
    }
    /* QEMU leaves a blank after DR3 before the line break. */
    for (int i = 0; i < 4; i++) {
        g_string_append_printf(out, "DR%d=%016" PRIx64 " ", i, r->dr[i]);
    }
    g_string_append_printf(out, "\nDR6=%016" PRIx64 " DR7=%016" PRIx64 "\n", r->dr6, r->dr7);
    g_string_append_printf(out, "EFER=%016" PRIx64 "\n", r->efer);
}

static uint64_t load_u64(const CpuRegs *r, uint32_t off)
{
    uint64_t v = 0;

    if (off + 8 <= r->xsave_len) {
        memcpy(&v, r->xsave + off, 8);
    }
    return v;
}

static uint32_t load_u32(const CpuRegs *r, uint32_t off, int size)
{
    uint32_t v = 0;

    if (off + size <= r->xsave_len) {
        memcpy(&v, r->xsave + off, size);   /* little-endian host */
    }
    return v;
}

/* Offset of XSAVE component `comp` in the standard format: CPUID 0xD. */
static uint32_t xsave_offset(uint32_t comp)
{
    static const uint32_t usual[8] = { 0, 0, 576, 960, 1024, 1088, 1152, 1664 };
    const struct kvm_cpuid2 *c = kvm_state.cpuid;

    for (uint32_t i = 0; c && i < c->nent; i++) {
        if (c->entries[i].function == 0xd && c->entries[i].index == comp && c->entries[i].ebx) {
            return c->entries[i].ebx;
        }
    }
    return comp < 8 ? usual[comp] : 0;
}

/* Quadword q (0 = lowest) of vector register n, from the XSAVE pieces. */
static uint64_t vec_quad(const CpuRegs *r, int n, int q)
{
    if (n >= 16) {
        return load_u64(r, xsave_offset(7) + (n - 16) * 64 + q * 8);
    }
    if (q < 2) {
        return load_u64(r, FX_XMM0 + n * 16 + q * 8);
    }
    if (q < 4) {
        return load_u64(r, xsave_offset(2) + n * 16 + (q - 2) * 8);
    }
    return load_u64(r, xsave_offset(6) + n * 32 + (q - 4) * 8);
}

static void print_fpu(GString *out, const CpuRegs *r, bool cs64)
{
    uint32_t fsw = load_u32(r, FX_FSW, 2);

    g_string_append_printf(out, "FCW=%04x FSW=%04x [ST=%u] FTW=%02x MXCSR=%08x\n", load_u32(r, FX_FCW, 2), fsw,
                           (fsw >> 11) & 7, load_u32(r, FX_FTW, 1), load_u32(r, FX_MXCSR, 4));
    for (int i = 0; i < 8; i++) {
        g_string_append_printf(out, "FPR%d=%016" PRIx64 " %04x%c", i, load_u64(r, FX_ST0 + i * 16),
                               load_u32(r, FX_ST0 + i * 16 + 8, 2), i & 1 ? '\n' : ' ');
    }
    if ((r->xcr0 & XCR0_AVX512) == XCR0_AVX512) {
        uint32_t k = xsave_offset(5);
        for (int i = 0; i < 8; i++) {
            g_string_append_printf(out, "Opmask%02d=%016" PRIx64 "%c", i, load_u64(r, k + i * 8),
                                   (i & 3) == 3 ? '\n' : ' ');
        }
        for (int n = 0; n < (cs64 ? 32 : 8); n++) {
            g_string_append_printf(out, "ZMM%02d=", n);
            for (int q = 7; q >= 0; q--) {
                g_string_append_printf(out, "%016" PRIx64 "%c", vec_quad(r, n, q), q ? ' ' : '\n');
            }
        }
    } else if ((r->xcr0 & XCR0_SSE_AVX) == XCR0_SSE_AVX) {
        for (int n = 0; n < (cs64 ? 16 : 8); n++) {
            g_string_append_printf(out, "YMM%02d=%016" PRIx64 " %016" PRIx64 " %016" PRIx64 " %016" PRIx64 "\n",
                                   n, vec_quad(r, n, 3), vec_quad(r, n, 2), vec_quad(r, n, 1), vec_quad(r, n, 0));
        }
    } else {
        for (int n = 0; n < (cs64 ? 16 : 8); n++) {
            g_string_append_printf(out, "XMM%02d=%016" PRIx64 " %016" PRIx64 "%c", n, vec_quad(r, n, 1),
                                   vec_quad(r, n, 0), n & 1 ? '\n' : ' ');
        }
    }
}

static void print_cpu(GString *out, const CpuRegs *r)
{
    bool lma = r->efer & (1u << 10);
    bool cs64 = lma && r->seg[1].l;
    bool pe = r->cr0 & 1;

    print_general(out, r, cs64);
    for (int i = 0; i < 8; i++) {
        print_segment(out, seg_names[i], &r->seg[i], cs64, pe, lma);
    }
    print_system(out, r, lma);
    print_fpu(out, r, cs64);
}

bool kvm_dump_registers(int index, GString *out, Error **errp)
{
    CPUState *cpu = cpus_get(index);
    CpuRegs r = { 0 };

    if (!cpu || !cpu->accel) {
        error_setg(errp, "CPU#%d not available", index);
        return false;
    }
    /* A running vCPU changes its registers under us. */
    if (!cpus_are_paused()) {
        error_setg(errp, "CPU registers can only be read while every vCPU is paused");
        return false;
    }
    bool ok = read_cpu(cpu->accel, &r, errp);
    if (ok) {
        print_cpu(out, &r);
    }
    g_free(r.xsave);
    return ok;
}
