/*
 * vCPU state for migration: KVM get/put and the VMState section "cpu".
 *
 * Section "cpu", instance = cpu-index, version 2: migvm's own layout (not
 * QEMU's x86 "cpu" section). The body holds one field,
 *   parked u8            1 = the vCPU never runs (AP without irqchip, HLT
 *                        without irqchip, vCPU 0 without a boot disk)
 * and every piece of KVM vCPU state is a subsection of its own (version 1
 * each, big-endian), sent when this host has the piece:
 *   cpu/mp_state   mp_state u32 (KVM_MP_STATE_*)
 *   cpu/regs       regs u64[18]: rax rbx rcx rdx rsi rdi rsp rbp r8-r15 rip rflags
 *   cpu/sregs      segs[8] (cs ds es fs gs ss tr ldt: base u64, limit u32,
 *                  selector u16, type present dpl db s l g avl unusable u8),
 *                  gdt, idt (base u64, limit u16), cr0 cr2 cr3 cr4 cr8 efer
 *                  apic_base u64, sregs2_flags u64, pdptrs u64[4] (SREGS2;
 *                  flags 0 without), interrupt_bitmap u64[4] (SREGS only)
 *   cpu/xsave      fpu_format u8 (1 = XSAVE area, 2 = struct kvm_fpu),
 *                  xsave_len u32, xsave u8[xsave_len] raw as the CPU has it
 *   cpu/xcrs       n_xcrs u32, xcr_index u32[n], xcr_value u64[n]
 *   cpu/debugregs  dr u64[4], dr6 u64, dr7 u64
 *   cpu/lapic      lapic u8[1024] (KVM_GET_LAPIC; in-kernel irqchip only)
 *   cpu/tsc_khz    tsc_khz u32, 0 if unknown
 *   cpu/cpuid      cpuid_words u32, cpuid u32[cpuid_words]: 7 per entry,
 *                  function index flags eax ebx ecx edx
 *   cpu/msrs       n_msrs u32, msr_index u32[n], msr_value u64[n], in
 *                  restore order
 *   cpu/events     kvm_vcpu_events field by field (see vmstate_kvm_events)
 * A subsection missing from the stream leaves that piece as the destination
 * vCPU has it (power-on state): that is what the test-only switch
 * MIGVM_TEST_OMIT_SECTIONS=cpu/lapic,... (include/vmstate.h) uses to show
 * each piece matters.
 *
 * Saving (pre_save, or synchronize_state) runs with every vCPU out of
 * KVM_RUN, in the order docs/kvm-on-this-machine.md gives: MP_STATE, REGS,
 * SREGS(2), XSAVE, XCRS, DEBUGREGS, LAPIC, TSC_KHZ, CPUID, MSRS, EVENTS.
 * Loading (post_load of "cpu", after its subsections, on the incoming thread
 * while the vCPU threads are parked, so no vCPU fd is in KVM_RUN; after the
 * per-VM sections PIT, clock and irqchips) puts back what arrived: CPUID,
 * TSC_KHZ, MP_STATE, REGS, SREGS(2), XSAVE, XCRS, DEBUGREGS, LAPIC, MSRS
 * (TSC before TSC_DEADLINE, ASYNC_PF_INT before ASYNC_PF_EN, a zero
 * TSC_DEADLINE re-armed at the saved TSC), EVENTS, KVMCLOCK_CTRL.
 * A failed put fails the load, so the guest never runs half-restored.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <glib.h>
#include "accel.h"
#include "kvm-int.h"
#include "machine.h"
#include "vmstate.h"

#define MSR_IA32_TSC 0x10
#define MSR_IA32_TSC_DEADLINE 0x6e0
#define MSR_KVM_ASYNC_PF_EN 0x4b564d02
#define MSR_KVM_ASYNC_PF_INT 0x4b564d06
#define MSR_CHUNK 64
#define TSC_KHZ_TOLERANCE_PPM 250

#define state_to_vcpu(s) ((KvmVcpu *)((char *)(s) - offsetof(KvmVcpu, state)))

/* ---- VMState layout ------------------------------------------------------------ */

static const VMStateField kvm_segment_fields[] = {
    VMSTATE_UINT64(base, KvmSegment),
    VMSTATE_UINT32(limit, KvmSegment),
    VMSTATE_UINT16(selector, KvmSegment),
    VMSTATE_UINT8(type, KvmSegment),
    VMSTATE_UINT8(present, KvmSegment),
    VMSTATE_UINT8(dpl, KvmSegment),
    VMSTATE_UINT8(db, KvmSegment),
    VMSTATE_UINT8(s, KvmSegment),
    VMSTATE_UINT8(l, KvmSegment),
    VMSTATE_UINT8(g, KvmSegment),
    VMSTATE_UINT8(avl, KvmSegment),
    VMSTATE_UINT8(unusable, KvmSegment),
    VMSTATE_END_OF_LIST(),
};
static const VMStateDescription vmstate_kvm_segment = {
    .name = "kvm-segment", .version_id = 1, .minimum_version_id = 1, .fields = kvm_segment_fields,
};

static const VMStateField kvm_dtable_fields[] = {
    VMSTATE_UINT64(base, KvmDtable),
    VMSTATE_UINT16(limit, KvmDtable),
    VMSTATE_END_OF_LIST(),
};
static const VMStateDescription vmstate_kvm_dtable = {
    .name = "kvm-dtable", .version_id = 1, .minimum_version_id = 1, .fields = kvm_dtable_fields,
};

static const VMStateField kvm_events_fields[] = {
    VMSTATE_UINT8(exc_injected, KvmEvents),
    VMSTATE_UINT8(exc_nr, KvmEvents),
    VMSTATE_UINT8(exc_has_error_code, KvmEvents),
    VMSTATE_UINT8(exc_pending, KvmEvents),
    VMSTATE_UINT32(exc_error_code, KvmEvents),
    VMSTATE_UINT8(exc_has_payload, KvmEvents),
    VMSTATE_UINT64(exc_payload, KvmEvents),
    VMSTATE_UINT8(irq_injected, KvmEvents),
    VMSTATE_UINT8(irq_nr, KvmEvents),
    VMSTATE_UINT8(irq_soft, KvmEvents),
    VMSTATE_UINT8(irq_shadow, KvmEvents),
    VMSTATE_UINT8(nmi_injected, KvmEvents),
    VMSTATE_UINT8(nmi_pending, KvmEvents),
    VMSTATE_UINT8(nmi_masked, KvmEvents),
    VMSTATE_UINT32(sipi_vector, KvmEvents),
    VMSTATE_UINT32(flags, KvmEvents),
    VMSTATE_UINT8(smi_smm, KvmEvents),
    VMSTATE_UINT8(smi_pending, KvmEvents),
    VMSTATE_UINT8(smi_inside_nmi, KvmEvents),
    VMSTATE_UINT8(smi_latched_init, KvmEvents),
    VMSTATE_UINT8(triple_fault_pending, KvmEvents),
    VMSTATE_END_OF_LIST(),
};
static const VMStateDescription vmstate_kvm_events = {
    .name = "kvm-events", .version_id = 1, .minimum_version_id = 1, .fields = kvm_events_fields,
};

/* Subsection `name` goes into the stream: the piece exists here and no
 * test asked to leave it out. */
static bool piece_needed(void *opaque, const char *name, bool available)
{
    return available && !vmstate_test_omitted(name, state_to_vcpu(opaque)->cpu->index);
}

static bool piece_loaded(void *opaque, uint32_t piece)
{
    ((KvmCpuState *)opaque)->loaded |= piece;
    return true;
}

/* One subsection per piece: its fields, needed() and a post_load that
 * records that the piece arrived. */
#define CPU_PIECE(var, subname, piece, available, ...)                                      \
    static bool var##_needed(void *opaque)                                                  \
    {                                                                                       \
        return piece_needed(opaque, "cpu/" subname, (available));                           \
    }                                                                                       \
    static bool var##_post_load(void *opaque, int version_id, Error **errp)                 \
    {                                                                                       \
        return piece_loaded(opaque, (piece));                                               \
    }                                                                                       \
    static const VMStateField var##_fields[] = { __VA_ARGS__, VMSTATE_END_OF_LIST() };      \
    static const VMStateDescription var = {                                                 \
        .name = "cpu/" subname, .version_id = 1, .minimum_version_id = 1,                   \
        .needed = var##_needed, .post_load = var##_post_load, .fields = var##_fields,       \
    }

CPU_PIECE(vmstate_cpu_mp_state, "mp_state", KVM_PIECE_MP_STATE, true,
          VMSTATE_UINT32(mp_state, KvmCpuState));
CPU_PIECE(vmstate_cpu_regs, "regs", KVM_PIECE_REGS, true,
          VMSTATE_UINT64_ARRAY(regs, KvmCpuState, 18));
CPU_PIECE(vmstate_cpu_sregs, "sregs", KVM_PIECE_SREGS, true,
          VMSTATE_STRUCT_ARRAY(segs, KvmCpuState, 8, vmstate_kvm_segment, KvmSegment),
          VMSTATE_STRUCT(gdt, KvmCpuState, vmstate_kvm_dtable, KvmDtable),
          VMSTATE_STRUCT(idt, KvmCpuState, vmstate_kvm_dtable, KvmDtable),
          VMSTATE_UINT64(cr0, KvmCpuState),
          VMSTATE_UINT64(cr2, KvmCpuState),
          VMSTATE_UINT64(cr3, KvmCpuState),
          VMSTATE_UINT64(cr4, KvmCpuState),
          VMSTATE_UINT64(cr8, KvmCpuState),
          VMSTATE_UINT64(efer, KvmCpuState),
          VMSTATE_UINT64(apic_base, KvmCpuState),
          VMSTATE_UINT64(sregs2_flags, KvmCpuState),
          VMSTATE_UINT64_ARRAY(pdptrs, KvmCpuState, 4),
          VMSTATE_UINT64_ARRAY(interrupt_bitmap, KvmCpuState, 4));
CPU_PIECE(vmstate_cpu_xsave, "xsave", KVM_PIECE_XSAVE, true,
          VMSTATE_UINT8(fpu_format, KvmCpuState),
          VMSTATE_UINT32(xsave_len, KvmCpuState),
          VMSTATE_VARRAY_UINT32(xsave, KvmCpuState, xsave_len, KVM_CPU_XSAVE_MAX, uint8_t,
                                VMS_KIND_UINT8));
CPU_PIECE(vmstate_cpu_xcrs, "xcrs", KVM_PIECE_XCRS, kvm_state.cap_xcrs,
          VMSTATE_UINT32(n_xcrs, KvmCpuState),
          VMSTATE_VARRAY_UINT32(xcr_index, KvmCpuState, n_xcrs, KVM_CPU_XCR_MAX, uint32_t,
                                VMS_KIND_UINT32),
          VMSTATE_VARRAY_UINT32(xcr_value, KvmCpuState, n_xcrs, KVM_CPU_XCR_MAX, uint64_t,
                                VMS_KIND_UINT64));
CPU_PIECE(vmstate_cpu_debugregs, "debugregs", KVM_PIECE_DEBUGREGS, kvm_state.cap_debugregs,
          VMSTATE_UINT64_ARRAY(dr, KvmCpuState, 4),
          VMSTATE_UINT64(dr6, KvmCpuState),
          VMSTATE_UINT64(dr7, KvmCpuState));
CPU_PIECE(vmstate_cpu_lapic, "lapic", KVM_PIECE_LAPIC, kvm_state.irqchip,
          VMSTATE_BUFFER(lapic, KvmCpuState));
CPU_PIECE(vmstate_cpu_tsc_khz, "tsc_khz", KVM_PIECE_TSC_KHZ, true,
          VMSTATE_UINT32(tsc_khz, KvmCpuState));
CPU_PIECE(vmstate_cpu_cpuid, "cpuid", KVM_PIECE_CPUID, true,
          VMSTATE_UINT32(cpuid_words, KvmCpuState),
          VMSTATE_VARRAY_UINT32(cpuid, KvmCpuState, cpuid_words, KVM_CPU_CPUID_MAX * 7, uint32_t,
                                VMS_KIND_UINT32));
CPU_PIECE(vmstate_cpu_msrs, "msrs", KVM_PIECE_MSRS, true,
          VMSTATE_UINT32(n_msrs, KvmCpuState),
          VMSTATE_VARRAY_UINT32(msr_index, KvmCpuState, n_msrs, KVM_CPU_MSR_MAX, uint32_t,
                                VMS_KIND_UINT32),
          VMSTATE_VARRAY_UINT32(msr_value, KvmCpuState, n_msrs, KVM_CPU_MSR_MAX, uint64_t,
                                VMS_KIND_UINT64));
CPU_PIECE(vmstate_cpu_events, "events", KVM_PIECE_EVENTS, kvm_state.cap_vcpu_events,
          VMSTATE_STRUCT(events, KvmCpuState, vmstate_kvm_events, KvmEvents));

static const VMStateDescription *const kvm_cpu_subsections[] = {
    &vmstate_cpu_mp_state, &vmstate_cpu_regs, &vmstate_cpu_sregs, &vmstate_cpu_xsave,
    &vmstate_cpu_xcrs, &vmstate_cpu_debugregs, &vmstate_cpu_lapic, &vmstate_cpu_tsc_khz,
    &vmstate_cpu_cpuid, &vmstate_cpu_msrs, &vmstate_cpu_events, NULL,
};

static bool kvm_cpu_pre_save(void *opaque, Error **errp);
static bool kvm_cpu_pre_load(void *opaque, Error **errp);
static bool kvm_cpu_post_load(void *opaque, int version_id, Error **errp);

static const VMStateField kvm_cpu_fields[] = {
    VMSTATE_UINT8(parked, KvmCpuState),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDescription vmstate_kvm_cpu = {
    .name = "cpu",
    .version_id = 2,
    .minimum_version_id = 2,
    .pre_save = kvm_cpu_pre_save,
    .pre_load = kvm_cpu_pre_load,
    .post_load = kvm_cpu_post_load,
    .fields = kvm_cpu_fields,
    .subsections = kvm_cpu_subsections,
};

/* ---- conversions ----------------------------------------------------------------- */

static void seg_from_kvm(KvmSegment *d, const struct kvm_segment *s)
{
    *d = (KvmSegment) {
        .base = s->base, .limit = s->limit, .selector = s->selector, .type = s->type,
        .present = s->present, .dpl = s->dpl, .db = s->db, .s = s->s, .l = s->l, .g = s->g,
        .avl = s->avl, .unusable = s->unusable,
    };
}

static void seg_to_kvm(struct kvm_segment *d, const KvmSegment *s)
{
    *d = (struct kvm_segment) {
        .base = s->base, .limit = s->limit, .selector = s->selector, .type = s->type,
        .present = s->present, .dpl = s->dpl, .db = s->db, .s = s->s, .l = s->l, .g = s->g,
        .avl = s->avl, .unusable = s->unusable,
    };
}

/* kvm_sregs and kvm_sregs2 share everything up to apic_base. */
#define SREGS_COMMON_FROM_KVM(st, k) do {                                           \
    struct kvm_segment *segs_[8] = { &(k)->cs, &(k)->ds, &(k)->es, &(k)->fs,        \
                                     &(k)->gs, &(k)->ss, &(k)->tr, &(k)->ldt };     \
    for (int i_ = 0; i_ < 8; i_++) {                                                \
        seg_from_kvm(&(st)->segs[i_], segs_[i_]);                                   \
    }                                                                               \
    (st)->gdt = (KvmDtable) { (k)->gdt.base, (k)->gdt.limit };                      \
    (st)->idt = (KvmDtable) { (k)->idt.base, (k)->idt.limit };                      \
    (st)->cr0 = (k)->cr0; (st)->cr2 = (k)->cr2; (st)->cr3 = (k)->cr3;               \
    (st)->cr4 = (k)->cr4; (st)->cr8 = (k)->cr8; (st)->efer = (k)->efer;             \
    (st)->apic_base = (k)->apic_base;                                               \
} while (0)

#define SREGS_COMMON_TO_KVM(k, st) do {                                             \
    struct kvm_segment *segs_[8] = { &(k)->cs, &(k)->ds, &(k)->es, &(k)->fs,        \
                                     &(k)->gs, &(k)->ss, &(k)->tr, &(k)->ldt };     \
    for (int i_ = 0; i_ < 8; i_++) {                                                \
        seg_to_kvm(segs_[i_], &(st)->segs[i_]);                                     \
    }                                                                               \
    (k)->gdt.base = (st)->gdt.base; (k)->gdt.limit = (st)->gdt.limit;               \
    (k)->idt.base = (st)->idt.base; (k)->idt.limit = (st)->idt.limit;               \
    (k)->cr0 = (st)->cr0; (k)->cr2 = (st)->cr2; (k)->cr3 = (st)->cr3;               \
    (k)->cr4 = (st)->cr4; (k)->cr8 = (st)->cr8; (k)->efer = (st)->efer;             \
    (k)->apic_base = (st)->apic_base;                                               \
} while (0)

static void events_from_kvm(KvmEvents *d, const struct kvm_vcpu_events *e)
{
    *d = (KvmEvents) {
        .exc_injected = e->exception.injected, .exc_nr = e->exception.nr,
        .exc_has_error_code = e->exception.has_error_code, .exc_pending = e->exception.pending,
        .exc_error_code = e->exception.error_code, .exc_has_payload = e->exception_has_payload,
        .exc_payload = e->exception_payload,
        .irq_injected = e->interrupt.injected, .irq_nr = e->interrupt.nr,
        .irq_soft = e->interrupt.soft, .irq_shadow = e->interrupt.shadow,
        .nmi_injected = e->nmi.injected, .nmi_pending = e->nmi.pending, .nmi_masked = e->nmi.masked,
        .sipi_vector = e->sipi_vector, .flags = e->flags,
        .smi_smm = e->smi.smm, .smi_pending = e->smi.pending, .smi_inside_nmi = e->smi.smm_inside_nmi,
        .smi_latched_init = e->smi.latched_init, .triple_fault_pending = e->triple_fault.pending,
    };
}

static void events_to_kvm(struct kvm_vcpu_events *e, const KvmEvents *s)
{
    uint32_t valid = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
                     KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM;

    if (kvm_state.cap_exception_payload) {
        valid |= KVM_VCPUEVENT_VALID_PAYLOAD;
    }
    memset(e, 0, sizeof(*e));
    e->exception.injected = s->exc_injected;
    e->exception.nr = s->exc_nr;
    e->exception.has_error_code = s->exc_has_error_code;
    e->exception.pending = s->exc_pending;
    e->exception.error_code = s->exc_error_code;
    e->interrupt.injected = s->irq_injected;
    e->interrupt.nr = s->irq_nr;
    e->interrupt.soft = s->irq_soft;
    e->interrupt.shadow = s->irq_shadow;
    e->nmi.injected = s->nmi_injected;
    e->nmi.pending = s->nmi_pending;
    e->nmi.masked = s->nmi_masked;
    e->sipi_vector = s->sipi_vector;
    e->flags = (s->flags | KVM_VCPUEVENT_VALID_SIPI_VECTOR) & valid;
    e->smi.smm = s->smi_smm;
    e->smi.pending = s->smi_pending;
    e->smi.smm_inside_nmi = s->smi_inside_nmi;
    e->smi.latched_init = s->smi_latched_init;
    if (e->flags & KVM_VCPUEVENT_VALID_PAYLOAD) {
        e->exception_has_payload = s->exc_has_payload;
        e->exception_payload = s->exc_payload;
    } else if (s->exc_pending) {
        /* Without payloads KVM only knows injected exceptions. */
        e->exception.injected = 1;
        e->exception.pending = 0;
    }
}

/* ---- MSRs ---------------------------------------------------------------------------- */

/* GET (put=false) or SET n MSRs in chunks; returns how many succeeded in a
 * row from the start (KVM stops at the first MSR it refuses). */
static uint32_t msrs_access(KvmVcpu *v, bool put, const uint32_t *index, uint64_t *value, uint32_t n)
{
    struct kvm_msrs *m = g_malloc0(sizeof(*m) + MSR_CHUNK * sizeof(struct kvm_msr_entry));
    uint32_t done = 0;

    while (done < n) {
        uint32_t chunk = n - done < MSR_CHUNK ? n - done : MSR_CHUNK;
        m->nmsrs = chunk;
        for (uint32_t i = 0; i < chunk; i++) {
            m->entries[i] = (struct kvm_msr_entry) { .index = index[done + i],
                                                     .data = put ? value[done + i] : 0 };
        }
        int r = kvm_vcpu_ioctl(v, put ? KVM_SET_MSRS : KVM_GET_MSRS, m);
        uint32_t ok = r < 0 ? 0 : (uint32_t)r;
        for (uint32_t i = 0; !put && i < ok && i < chunk; i++) {
            value[done + i] = m->entries[i].data;
        }
        done += ok < chunk ? ok : chunk;
        if (ok < chunk) {
            break;
        }
    }
    g_free(m);
    return done;
}

static void msr_move(uint32_t *list, uint32_t n, uint32_t from, uint32_t to)
{
    uint32_t idx = list[from];

    if (from < to) {
        memmove(&list[from], &list[from + 1], (to - from) * sizeof(uint32_t));
    } else {
        memmove(&list[to + 1], &list[to], (from - to) * sizeof(uint32_t));
    }
    list[to] = idx;
}

static int msr_find(const uint32_t *list, uint32_t n, uint32_t idx)
{
    for (uint32_t i = 0; i < n; i++) {
        if (list[i] == idx) {
            return i;
        }
    }
    return -1;
}

/* Restore order: ASYNC_PF_INT before ASYNC_PF_EN (enabling checks the
 * vector), TSC_DEADLINE after everything (it needs TSC and the LAPIC). */
static void msrs_order(uint32_t *list, uint32_t n)
{
    int en = msr_find(list, n, MSR_KVM_ASYNC_PF_EN);
    int in = msr_find(list, n, MSR_KVM_ASYNC_PF_INT);
    int dl = msr_find(list, n, MSR_IA32_TSC_DEADLINE);

    if (en >= 0 && in > en) {
        msr_move(list, n, in, en);
    }
    dl = msr_find(list, n, MSR_IA32_TSC_DEADLINE);
    if (dl >= 0) {
        msr_move(list, n, dl, n - 1);
    }
}

/* The MSRs this vCPU (with its CPUID) can read and write back: KVM's index
 * list minus any it refuses. Probed once, right after SET_CPUID2. */
static void msrs_probe(KvmVcpu *v)
{
    uint32_t n = kvm_state.n_msr_list < KVM_CPU_MSR_MAX ? kvm_state.n_msr_list : KVM_CPU_MSR_MAX;
    uint32_t *list = g_memdup2(kvm_state.msr_list, n * sizeof(uint32_t));
    uint64_t *value = g_new0(uint64_t, KVM_CPU_MSR_MAX);

    for (int pass = 0; pass < 2; pass++) {
        uint32_t start = 0;
        while (start < n) {
            uint32_t ok = start + msrs_access(v, pass == 1, list + start, value + start, n - start);
            if (ok < n) {                   /* drop the refused one */
                memmove(&list[ok], &list[ok + 1], (n - ok - 1) * sizeof(uint32_t));
                memmove(&value[ok], &value[ok + 1], (n - ok - 1) * sizeof(uint64_t));
                n--;
            }
            start = ok;
        }
    }
    msrs_order(list, n);
    v->msrs = list;
    v->n_msrs = n;
    g_free(value);
}

/* ---- CPUID ------------------------------------------------------------------------------- */

/* The host's supported CPUID with this vCPU's APIC ID filled in. */
static bool cpuid_set_initial(KvmVcpu *v, Error **errp)
{
    struct kvm_cpuid2 *src = kvm_state.cpuid;
    size_t size = sizeof(*src) + src->nent * sizeof(src->entries[0]);
    struct kvm_cpuid2 *c = g_memdup2(src, size);
    uint32_t id = v->cpu->index;

    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function == 1) {
            e->ebx = (e->ebx & 0x00ffffff) | (id << 24);
        } else if (e->function == 0xb || e->function == 0x1f) {
            e->edx = id;
        }
    }
    int r = kvm_vcpu_ioctl(v, KVM_SET_CPUID2, c);
    g_free(c);
    if (r < 0) {
        error_setg_errno(errp, -r, "vCPU %d: KVM_SET_CPUID2", v->cpu->index);
        return false;
    }
    return true;
}

static bool cpuid_get(KvmVcpu *v, KvmCpuState *st, Error **errp)
{
    struct kvm_cpuid2 *c = g_malloc0(sizeof(*c) + KVM_CPU_CPUID_MAX * sizeof(c->entries[0]));
    c->nent = KVM_CPU_CPUID_MAX;
    int r = kvm_vcpu_ioctl(v, KVM_GET_CPUID2, c);

    if (r < 0) {
        g_free(c);
        error_setg_errno(errp, -r, "vCPU %d: KVM_GET_CPUID2", v->cpu->index);
        return false;
    }
    st->cpuid_words = 0;
    for (uint32_t i = 0; i < c->nent && i < KVM_CPU_CPUID_MAX; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (!e->function && !e->index && !e->flags && !e->eax && !e->ebx && !e->ecx && !e->edx) {
            continue;                       /* unused slot: nent is not trimmed */
        }
        uint32_t *w = &st->cpuid[st->cpuid_words];
        w[0] = e->function; w[1] = e->index; w[2] = e->flags;
        w[3] = e->eax; w[4] = e->ebx; w[5] = e->ecx; w[6] = e->edx;
        st->cpuid_words += 7;
    }
    g_free(c);
    return true;
}

static bool cpuid_put(KvmVcpu *v, const KvmCpuState *st, Error **errp)
{
    uint32_t n = st->cpuid_words / 7;

    if (st->cpuid_words % 7) {
        error_setg(errp, "cpu %d: CPUID has %u words, not a multiple of 7", v->cpu->index, st->cpuid_words);
        return false;
    }
    if (!n) {
        return true;                        /* keep this host's CPUID */
    }
    struct kvm_cpuid2 *c = g_malloc0(sizeof(*c) + n * sizeof(c->entries[0]));
    c->nent = n;
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t *w = &st->cpuid[i * 7];
        c->entries[i] = (struct kvm_cpuid_entry2) { .function = w[0], .index = w[1], .flags = w[2],
                                                    .eax = w[3], .ebx = w[4], .ecx = w[5], .edx = w[6] };
    }
    int r = kvm_vcpu_ioctl(v, KVM_SET_CPUID2, c);
    g_free(c);
    if (r < 0) {
        error_setg_errno(errp, -r, "cpu %d: KVM_SET_CPUID2 with the migrated CPUID", v->cpu->index);
        return false;
    }
    return true;
}

/* ---- get ----------------------------------------------------------------------------------- */

static bool get_sregs(KvmVcpu *v, KvmCpuState *st, Error **errp)
{
    memset(st->interrupt_bitmap, 0, sizeof(st->interrupt_bitmap));
    if (kvm_state.cap_sregs2) {
        struct kvm_sregs2 s;
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_SREGS2, &s, "KVM_GET_SREGS2", errp)) {
            return false;
        }
        SREGS_COMMON_FROM_KVM(st, &s);
        st->sregs2_flags = s.flags;
        memcpy(st->pdptrs, s.pdptrs, sizeof(st->pdptrs));
    } else {
        struct kvm_sregs s;
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_SREGS, &s, "KVM_GET_SREGS", errp)) {
            return false;
        }
        SREGS_COMMON_FROM_KVM(st, &s);
        st->sregs2_flags = 0;
        memset(st->pdptrs, 0, sizeof(st->pdptrs));
        memcpy(st->interrupt_bitmap, s.interrupt_bitmap, sizeof(st->interrupt_bitmap));
    }
    return true;
}

static bool get_fpu(KvmVcpu *v, KvmCpuState *st, Error **errp)
{
    if (kvm_state.xsave_size) {
        /* KVM_GET_XSAVE2 writes xsave_size bytes; the buffer is bigger. */
        unsigned long req = kvm_check_extension(KVM_CAP_XSAVE2) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
        if (!kvm_vcpu_ioctl_or_fail(v, req, st->xsave, "KVM_GET_XSAVE", errp)) {
            return false;
        }
        st->fpu_format = KVM_CPU_FPU_XSAVE;
        st->xsave_len = kvm_state.xsave_size;
    } else {
        struct kvm_fpu fpu;
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_FPU, &fpu, "KVM_GET_FPU", errp)) {
            return false;
        }
        memcpy(st->xsave, &fpu, sizeof(fpu));
        st->fpu_format = KVM_CPU_FPU_LEGACY;
        st->xsave_len = sizeof(fpu);
    }
    return true;
}

static bool get_xcrs_and_debugregs(KvmVcpu *v, KvmCpuState *st, Error **errp)
{
    st->n_xcrs = 0;
    if (kvm_state.cap_xcrs) {
        struct kvm_xcrs x;
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_XCRS, &x, "KVM_GET_XCRS", errp)) {
            return false;
        }
        for (uint32_t i = 0; i < x.nr_xcrs && i < KVM_CPU_XCR_MAX; i++) {
            st->xcr_index[i] = x.xcrs[i].xcr;
            st->xcr_value[i] = x.xcrs[i].value;
            st->n_xcrs++;
        }
    }
    if (kvm_state.cap_debugregs) {
        struct kvm_debugregs d;
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_DEBUGREGS, &d, "KVM_GET_DEBUGREGS", errp)) {
            return false;
        }
        memcpy(st->dr, d.db, sizeof(st->dr));
        st->dr6 = d.dr6;
        st->dr7 = d.dr7;
    }
    return true;
}

static bool get_msrs(KvmVcpu *v, KvmCpuState *st, Error **errp)
{
    uint32_t got = msrs_access(v, false, v->msrs, st->msr_value, v->n_msrs);

    if (got != v->n_msrs) {
        error_setg(errp, "vCPU %d: KVM_GET_MSRS read %u of %u MSRs (stopped at 0x%x)", v->cpu->index,
                   got, v->n_msrs, v->msrs[got]);
        return false;
    }
    memcpy(st->msr_index, v->msrs, v->n_msrs * sizeof(uint32_t));
    st->n_msrs = v->n_msrs;
    return true;
}

bool kvm_cpu_state_get(KvmVcpu *v, Error **errp)
{
    KvmCpuState *st = &v->state;
    struct kvm_mp_state mp;
    struct kvm_regs regs;

    if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE", errp)) {
        return false;
    }
    st->mp_state = mp.mp_state;
    if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_REGS, &regs, "KVM_GET_REGS", errp)) {
        return false;
    }
    G_STATIC_ASSERT(sizeof(regs) == sizeof(st->regs));
    memcpy(st->regs, &regs, sizeof(regs));
    if (!get_sregs(v, st, errp) || !get_fpu(v, st, errp) || !get_xcrs_and_debugregs(v, st, errp)) {
        return false;
    }
    if (kvm_state.irqchip) {
        G_STATIC_ASSERT(sizeof(struct kvm_lapic_state) == sizeof(st->lapic));
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_LAPIC, st->lapic, "KVM_GET_LAPIC", errp)) {
            return false;
        }
    }
    int khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
    st->tsc_khz = khz > 0 ? (uint32_t)khz : 0;
    if (!cpuid_get(v, st, errp) || !get_msrs(v, st, errp)) {
        return false;
    }
    if (kvm_state.cap_vcpu_events) {
        struct kvm_vcpu_events ev;
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_VCPU_EVENTS, &ev, "KVM_GET_VCPU_EVENTS", errp)) {
            return false;
        }
        events_from_kvm(&st->events, &ev);
    }
    return true;
}

/* ---- put ---------------------------------------------------------------------------- */

static void check_tsc_khz(KvmVcpu *v, const KvmCpuState *st)
{
    int here = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);

    if (!st->tsc_khz || here <= 0) {
        return;
    }
    uint64_t diff = st->tsc_khz > (uint32_t)here ? st->tsc_khz - here : here - st->tsc_khz;
    if (diff * 1000000 / st->tsc_khz <= TSC_KHZ_TOLERANCE_PPM) {
        return;
    }
    if (ioctl(v->fd, KVM_SET_TSC_KHZ, (unsigned long)st->tsc_khz) < 0) {
        warn_report("cpu %d: TSC runs at %d kHz here but %u kHz on the source, and KVM cannot scale it",
                    v->cpu->index, here, st->tsc_khz);
    }
}

static bool put_sregs(KvmVcpu *v, const KvmCpuState *st, Error **errp)
{
    if (kvm_state.cap_sregs2) {
        struct kvm_sregs2 s = { .flags = st->sregs2_flags & KVM_SREGS2_FLAGS_PDPTRS_VALID };
        SREGS_COMMON_TO_KVM(&s, st);
        memcpy(s.pdptrs, st->pdptrs, sizeof(s.pdptrs));
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_SET_SREGS2, &s, "KVM_SET_SREGS2", errp)) {
            return false;
        }
    } else {
        struct kvm_sregs s = { 0 };
        SREGS_COMMON_TO_KVM(&s, st);
        memcpy(s.interrupt_bitmap, st->interrupt_bitmap, sizeof(s.interrupt_bitmap));
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_SET_SREGS, &s, "KVM_SET_SREGS", errp)) {
            return false;
        }
    }
    return true;
}

static bool put_fpu(KvmVcpu *v, KvmCpuState *st, Error **errp)
{
    if (st->fpu_format == KVM_CPU_FPU_LEGACY) {
        struct kvm_fpu fpu;
        if (st->xsave_len != sizeof(fpu)) {
            error_setg(errp, "cpu %d: FPU state of %u bytes, expected %zu", v->cpu->index, st->xsave_len,
                       sizeof(fpu));
            return false;
        }
        memcpy(&fpu, st->xsave, sizeof(fpu));
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_SET_FPU, &fpu, "KVM_SET_FPU", errp)) {
            return false;
        }
        return true;
    }
    if (st->fpu_format != KVM_CPU_FPU_XSAVE || !kvm_state.xsave_size) {
        error_setg(errp, "cpu %d: FPU state format %u cannot be restored here", v->cpu->index, st->fpu_format);
        return false;
    }
    /* A smaller area from the source is fine (XSTATE_BV says what is there);
     * a bigger one only if the extra bytes are unused. */
    for (uint32_t i = kvm_state.xsave_size; i < st->xsave_len; i++) {
        if (st->xsave[i]) {
            error_setg(errp, "cpu %d: XSAVE area of %u bytes does not fit this host's %d", v->cpu->index,
                       st->xsave_len, kvm_state.xsave_size);
            return false;
        }
    }
    if (st->xsave_len < (uint32_t)kvm_state.xsave_size) {
        memset(st->xsave + st->xsave_len, 0, kvm_state.xsave_size - st->xsave_len);
    }
    if (!kvm_vcpu_ioctl_or_fail(v, KVM_SET_XSAVE, st->xsave, "KVM_SET_XSAVE", errp)) {
        return false;
    }
    return true;
}

static bool put_xcrs_and_debugregs(KvmVcpu *v, const KvmCpuState *st, uint32_t pieces, Error **errp)
{
    if (kvm_state.cap_xcrs && st->n_xcrs && (pieces & KVM_PIECE_XCRS)) {
        struct kvm_xcrs x = { .nr_xcrs = st->n_xcrs };
        for (uint32_t i = 0; i < st->n_xcrs && i < KVM_MAX_XCRS; i++) {
            x.xcrs[i].xcr = st->xcr_index[i];
            x.xcrs[i].value = st->xcr_value[i];
        }
        x.nr_xcrs = st->n_xcrs < KVM_MAX_XCRS ? st->n_xcrs : KVM_MAX_XCRS;
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_SET_XCRS, &x, "KVM_SET_XCRS", errp)) {
            return false;
        }
    }
    if (kvm_state.cap_debugregs && (pieces & KVM_PIECE_DEBUGREGS)) {
        struct kvm_debugregs d = { .dr6 = st->dr6, .dr7 = st->dr7 };
        memcpy(d.db, st->dr, sizeof(d.db));
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_SET_DEBUGREGS, &d, "KVM_SET_DEBUGREGS", errp)) {
            return false;
        }
    }
    return true;
}

static bool put_msrs(KvmVcpu *v, KvmCpuState *st, Error **errp)
{
    int tsc = msr_find(st->msr_index, st->n_msrs, MSR_IA32_TSC);
    int dl = msr_find(st->msr_index, st->n_msrs, MSR_IA32_TSC_DEADLINE);

    /* A deadline read as 0 may be a timer that just fired: re-arm it at once. */
    if (kvm_state.irqchip && dl >= 0 && tsc >= 0 && st->msr_value[dl] == 0) {
        st->msr_value[dl] = st->msr_value[tsc];
    }
    uint32_t done = msrs_access(v, true, st->msr_index, st->msr_value, st->n_msrs);
    if (done != st->n_msrs) {
        error_setg(errp, "cpu %d: KVM_SET_MSRS wrote %u of %u MSRs (refused MSR 0x%x)", v->cpu->index, done,
                   st->n_msrs, st->msr_index[done]);
        return false;
    }
    return true;
}

/* Put the pieces in `pieces` (KVM_PIECE_*) back, in the order KVM needs. */
bool kvm_cpu_state_put(KvmVcpu *v, uint32_t pieces, Error **errp)
{
    KvmCpuState *st = &v->state;
    struct kvm_regs regs;

    if ((pieces & KVM_PIECE_CPUID) && !cpuid_put(v, st, errp)) {
        return false;
    }
    if (pieces & KVM_PIECE_TSC_KHZ) {
        check_tsc_khz(v, st);
    }
    if (kvm_state.irqchip && (pieces & KVM_PIECE_MP_STATE)) {
        struct kvm_mp_state mp = { st->mp_state };
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE", errp)) {
            return false;
        }
    }
    if (pieces & KVM_PIECE_REGS) {
        memcpy(&regs, st->regs, sizeof(regs));
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_SET_REGS, &regs, "KVM_SET_REGS", errp)) {
            return false;
        }
    }
    if (((pieces & KVM_PIECE_SREGS) && !put_sregs(v, st, errp)) ||
        ((pieces & KVM_PIECE_XSAVE) && !put_fpu(v, st, errp)) ||
        !put_xcrs_and_debugregs(v, st, pieces, errp)) {
        return false;
    }
    if (kvm_state.irqchip && (pieces & KVM_PIECE_LAPIC)) {
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_SET_LAPIC, st->lapic, "KVM_SET_LAPIC", errp)) {
            return false;
        }
    }
    if ((pieces & KVM_PIECE_MSRS) && !put_msrs(v, st, errp)) {
        return false;
    }
    if (kvm_state.cap_vcpu_events && (pieces & KVM_PIECE_EVENTS)) {
        struct kvm_vcpu_events ev;
        events_to_kvm(&ev, &st->events);
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS", errp)) {
            return false;
        }
    }
    /* Tell a kvmclock guest it was paused. Any failure is ignored: EINVAL
     * means the guest has no kvmclock, and the flag only spares a guest
     * that has one a soft-lockup warning. */
    kvm_vcpu_ioctl(v, KVM_KVMCLOCK_CTRL, NULL);
    return true;
}

/* ---- hooks ----------------------------------------------------------------------------- */

static bool kvm_cpu_pre_save(void *opaque, Error **errp)
{
    if (!cpus_are_paused()) {
        error_setg(errp, "vCPU state can only be saved while every vCPU is paused");
        return false;
    }
    return kvm_cpu_state_get(state_to_vcpu(opaque), errp);
}

static bool kvm_cpu_pre_load(void *opaque, Error **errp)
{
    ((KvmCpuState *)opaque)->loaded = 0;
    return true;
}

/* Runs after the subsections: put back the pieces that arrived. */
static bool kvm_cpu_post_load(void *opaque, int version_id, Error **errp)
{
    return kvm_cpu_state_put(state_to_vcpu(opaque), ((KvmCpuState *)opaque)->loaded, errp);
}

bool kvm_synchronize_state(Error **errp)
{
    for (int i = 0; i < cpus_count(); i++) {
        KvmVcpu *v = cpus_get(i)->accel;
        if (v && !kvm_cpu_state_get(v, errp)) {
            return false;
        }
    }
    return true;
}

bool kvm_cpu_state_init(KvmVcpu *v, Error **errp)
{
    if (!cpuid_set_initial(v, errp)) {
        return false;
    }
    msrs_probe(v);
    if (!vmstate_register("cpu", v->cpu->index, &vmstate_kvm_cpu, &v->state, errp)) {
        return false;
    }
    v->vmstate_registered = true;
    return true;
}

void kvm_cpu_state_fini(KvmVcpu *v)
{
    if (v->vmstate_registered) {
        vmstate_unregister(&vmstate_kvm_cpu, &v->state);
        v->vmstate_registered = false;
    }
}
