/*
 * fuzz-incoming-kvm's boundary with the kernel: once the machine is built,
 * the KVM ioctls that loading a stream issues are answered here and never
 * reach /dev/kvm. The loaders' post_load hooks put fuzzed registers, MSRs,
 * XSAVE areas, LAPIC pages, PIT, clock and irqchip state into KVM; a bug in
 * the kernel's handling of such values would take the whole host down (its
 * KVM here is PVM, young), so the fuzzer tests migvm's loader and stops at
 * the kernel's door. The loader is fuzzed; the kernel's own checks of the
 * values are not.
 *
 * How: the binary is linked with -Wl,--wrap=ioctl, so every ioctl(2) call in
 * migvm's objects lands in __wrap_ioctl: the typed helpers (kvm_vm_ioctl,
 * kvm_vcpu_ioctl, also when called inside their own files) and the bare
 * ioctl() calls alike (KVM_SET_TSC_KHZ, KVM_SET_TSS_ADDR, KVM_RUN...).
 * Calls the C library makes inside itself are not wrapped; none is a KVM
 * ioctl. After fuzz_kvm_boundary_arm, a KVM ioctl (type KVMIO) is:
 *   - KVM_CHECK_EXTENSION, KVM_GET_TSC_KHZ: passed on (no stream value in
 *     them);
 *   - a SET the loaders issue (table below): its argument read as far as
 *     the kernel would copy it (so ASan sees a short buffer), the kernel's
 *     cheap checks of its shape made (sizes, flags, counts, reserved bits:
 *     -EINVAL / -E2BIG as KVM answers), then success: 0, or for
 *     KVM_SET_MSRS the number of MSRs;
 *   - anything else (KVM_RUN, a GET, a new SET): the process aborts, naming
 *     it, so a load path that grows a new ioctl is noticed in fuzz-smoke
 *     instead of reaching the kernel.
 * The input's last byte may turn one answer into a failure (0xe0-0xff: the
 * (byte & 0xf)-th SET of the load fails with EINVAL if bit 4 is set, else
 * EFAULT; KVM_SET_MSRS then reports 0 MSRs written), so the loaders' error
 * paths run too. Streams end in '}' or EOF (0x00): real seeds never ask.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "fuzz-kvm.h"
#include "accel.h"
#include "kvm-int.h"

int __real_ioctl(int fd, unsigned long req, ...);
int __wrap_ioctl(int fd, unsigned long req, ...);

/* KVM's limits (arch/x86/kvm): KVM_MAX_CPUID_ENTRIES, MAX_IO_MSRS. */
#define KERNEL_MAX_CPUID 256
#define KERNEL_MAX_IO_MSRS 256
#define CLOCK_VALID_FLAGS (KVM_CLOCK_TSC_STABLE | KVM_CLOCK_REALTIME | KVM_CLOCK_HOST_TSC)
#define EVENTS_VALID_FLAGS (KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR | \
                            KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM |               \
                            KVM_VCPUEVENT_VALID_PAYLOAD | KVM_VCPUEVENT_VALID_TRIPLE_FAULT)
#define CR0_PE (1ull << 0)
#define CR0_NW (1ull << 29)
#define CR0_CD (1ull << 30)
#define CR0_PG (1ull << 31)
#define CR4_PAE (1ull << 5)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)
#define XSAVE_HEADER 512            /* offset of XSTATE_BV in the uABI area */

static bool armed;
static int fail_at = -1, fail_errno;  /* the input's fault plan */
static int calls;                     /* SETs answered during this input */
static char log_buf[1024];
static size_t log_len;
static uint8_t scratch[KVM_CPU_XSAVE_MAX + 4096];

void fuzz_kvm_boundary_arm(void)
{
    armed = true;
}

void fuzz_kvm_boundary_input(const uint8_t *data, size_t size)
{
    uint8_t last = size ? data[size - 1] : 0;

    calls = 0;
    log_len = 0;
    log_buf[0] = 0;
    fail_at = last >= 0xe0 ? (last & 0xf) : -1;
    fail_errno = (last & 0x10) ? EINVAL : EFAULT;
}

const char *fuzz_kvm_boundary_log(void)
{
    return log_buf;
}

static void log_call(const char *name, const char *outcome)
{
    int n = snprintf(log_buf + log_len, sizeof(log_buf) - log_len, "%s%s%s", log_len ? " " : "", name,
                     outcome);
    if (n > 0 && log_len + (size_t)n < sizeof(log_buf)) {
        log_len += n;
    }
}

/* Read `len` bytes of the argument, as the kernel's copy_from_user would. */
static void kernel_reads(const void *arg, size_t len)
{
    memcpy(scratch, arg, len < sizeof(scratch) ? len : sizeof(scratch));
}

/* XCR0 as __kvm_set_xcr accepts it: x87 always, AVX only with SSE, only
 * what this host's supported CPUID (leaf 0xD) offers. */
static bool xcr0_valid(uint64_t xcr0)
{
    uint64_t supported = 3;

    for (uint32_t i = 0; kvm_state.cpuid && i < kvm_state.cpuid->nent; i++) {
        const struct kvm_cpuid_entry2 *e = &kvm_state.cpuid->entries[i];
        if (e->function == 0xd && e->index == 0) {
            supported |= e->eax | (uint64_t)e->edx << 32;
        }
    }
    return (xcr0 & 1) && !((xcr0 & 4) && !(xcr0 & 2)) && !(xcr0 & ~supported);
}

static bool sregs_valid(uint64_t cr0, uint64_t cr4, uint64_t efer, uint8_t cs_l, uint8_t cs_db)
{
    if ((cr0 >> 32) || ((cr0 & CR0_PG) && !(cr0 & CR0_PE)) || ((cr0 & CR0_NW) && !(cr0 & CR0_CD))) {
        return false;
    }
    if ((efer & EFER_LME) && (cr0 & CR0_PG)) {
        return (cr4 & CR4_PAE) && !(cs_l && cs_db);
    }
    return !(efer & EFER_LMA) && !cs_l;
}

/* The kernel's answer to a SET, without the kernel: -errno or >= 0. */
static int check_set(unsigned long req, void *arg)
{
    switch (req) {
    case KVM_SET_REGS:
    case KVM_SET_FPU:
    case KVM_SET_LAPIC:
    case KVM_SET_PIT2:
    case KVM_IRQ_LINE:
        kernel_reads(arg, _IOC_SIZE(req));
        return 0;
    case KVM_SET_SREGS: {
        struct kvm_sregs *s = arg;
        kernel_reads(arg, sizeof(*s));
        return sregs_valid(s->cr0, s->cr4, s->efer, s->cs.l, s->cs.db) ? 0 : -EINVAL;
    }
    case KVM_SET_SREGS2: {
        struct kvm_sregs2 *s = arg;
        kernel_reads(arg, sizeof(*s));
        if (s->flags & ~(uint64_t)KVM_SREGS2_FLAGS_PDPTRS_VALID) {
            return -EINVAL;
        }
        return sregs_valid(s->cr0, s->cr4, s->efer, s->cs.l, s->cs.db) ? 0 : -EINVAL;
    }
    case KVM_SET_XSAVE: {
        /* The kernel copies its uABI size (XSAVE2's when bigger) and
         * refuses reserved MXCSR bits, compacted form, unknown features. */
        size_t len = (size_t)kvm_state.xsave_size > sizeof(struct kvm_xsave) ? (size_t)kvm_state.xsave_size
                                                                             : sizeof(struct kvm_xsave);
        kernel_reads(arg, len);
        uint32_t mxcsr;
        uint64_t xstate_bv, xcomp_bv;
        memcpy(&mxcsr, scratch + 24, sizeof(mxcsr));
        memcpy(&xstate_bv, scratch + XSAVE_HEADER, sizeof(xstate_bv));
        memcpy(&xcomp_bv, scratch + XSAVE_HEADER + 8, sizeof(xcomp_bv));
        return (mxcsr >> 16) || xcomp_bv || (xstate_bv && !xcr0_valid(xstate_bv | 1)) ? -EINVAL : 0;
    }
    case KVM_SET_XCRS: {
        struct kvm_xcrs *x = arg;
        kernel_reads(arg, sizeof(*x));
        if (x->nr_xcrs > KVM_MAX_XCRS || x->flags) {
            return -EINVAL;
        }
        for (uint32_t i = 0; i < x->nr_xcrs; i++) {
            if (x->xcrs[i].xcr == 0) {
                return xcr0_valid(x->xcrs[i].value) ? 0 : -EINVAL;
            }
        }
        return 0;
    }
    case KVM_SET_DEBUGREGS: {
        struct kvm_debugregs *d = arg;
        kernel_reads(arg, sizeof(*d));
        return d->flags || (d->dr6 >> 32) || (d->dr7 >> 32) ? -EINVAL : 0;
    }
    case KVM_SET_VCPU_EVENTS: {
        struct kvm_vcpu_events *e = arg;
        kernel_reads(arg, sizeof(*e));
        if ((e->flags & ~(uint32_t)EVENTS_VALID_FLAGS) ||
            ((e->flags & KVM_VCPUEVENT_VALID_PAYLOAD) && !kvm_state.cap_exception_payload)) {
            return -EINVAL;
        }
        bool pending = (e->flags & KVM_VCPUEVENT_VALID_PAYLOAD) && e->exception.pending;
        return (e->exception.injected || pending) && (e->exception.nr > 31 || e->exception.nr == 2) ? -EINVAL
                                                                                                    : 0;
    }
    case KVM_SET_MP_STATE: {
        struct kvm_mp_state *m = arg;
        kernel_reads(arg, sizeof(*m));
        switch (m->mp_state) {
        case KVM_MP_STATE_RUNNABLE:
            return 0;
        case KVM_MP_STATE_UNINITIALIZED:
        case KVM_MP_STATE_INIT_RECEIVED:
        case KVM_MP_STATE_HALTED:
        case KVM_MP_STATE_SIPI_RECEIVED:
        case KVM_MP_STATE_AP_RESET_HOLD:
            return kvm_state.irqchip ? 0 : -EINVAL;
        default:
            return -EINVAL;
        }
    }
    case KVM_SET_CPUID2: {
        struct kvm_cpuid2 *c = arg;
        kernel_reads(arg, sizeof(*c));
        if (c->nent > KERNEL_MAX_CPUID) {
            return -E2BIG;
        }
        kernel_reads(arg, sizeof(*c) + c->nent * sizeof(c->entries[0]));
        return 0;
    }
    case KVM_SET_MSRS: {
        struct kvm_msrs *m = arg;
        kernel_reads(arg, sizeof(*m));
        if (m->nmsrs >= KERNEL_MAX_IO_MSRS) {
            return -E2BIG;
        }
        kernel_reads(arg, sizeof(*m) + m->nmsrs * sizeof(m->entries[0]));
        return (int)m->nmsrs;
    }
    case KVM_SET_CLOCK: {
        struct kvm_clock_data *d = arg;
        kernel_reads(arg, sizeof(*d));
        return d->flags & ~(uint32_t)CLOCK_VALID_FLAGS ? -EINVAL : 0;
    }
    case KVM_SET_IRQCHIP: {
        struct kvm_irqchip *c = arg;
        kernel_reads(arg, sizeof(*c));
        if (!kvm_state.irqchip) {
            return -ENXIO;
        }
        return c->chip_id > KVM_IRQCHIP_IOAPIC ? -EINVAL : 0;
    }
    case KVM_SET_TSC_KHZ:           /* the value is the argument itself */
    case KVM_KVMCLOCK_CTRL:
        return 0;
    default:
        return -ENOTTY;             /* not a SET the loaders issue */
    }
}

static const struct {
    unsigned long req;
    const char *name;
} set_names[] = {
    { KVM_SET_REGS, "SET_REGS" }, { KVM_SET_SREGS, "SET_SREGS" }, { KVM_SET_SREGS2, "SET_SREGS2" },
    { KVM_SET_FPU, "SET_FPU" }, { KVM_SET_XSAVE, "SET_XSAVE" }, { KVM_SET_XCRS, "SET_XCRS" },
    { KVM_SET_DEBUGREGS, "SET_DEBUGREGS" }, { KVM_SET_LAPIC, "SET_LAPIC" },
    { KVM_SET_VCPU_EVENTS, "SET_VCPU_EVENTS" }, { KVM_SET_MP_STATE, "SET_MP_STATE" },
    { KVM_SET_CPUID2, "SET_CPUID2" }, { KVM_SET_MSRS, "SET_MSRS" }, { KVM_SET_TSC_KHZ, "SET_TSC_KHZ" },
    { KVM_KVMCLOCK_CTRL, "KVMCLOCK_CTRL" }, { KVM_SET_CLOCK, "SET_CLOCK" }, { KVM_SET_PIT2, "SET_PIT2" },
    { KVM_SET_IRQCHIP, "SET_IRQCHIP" }, { KVM_IRQ_LINE, "IRQ_LINE" },
};

static const char *set_name(unsigned long req)
{
    for (size_t i = 0; i < sizeof(set_names) / sizeof(set_names[0]); i++) {
        if (set_names[i].req == req) {
            return set_names[i].name;
        }
    }
    return NULL;
}

static int answer(unsigned long req, void *arg)
{
    const char *name = set_name(req);

    if (!name) {
        fprintf(stderr, "fuzz-incoming-kvm: KVM ioctl 0x%lx (nr 0x%x) issued after the machine was built: "
                "not one the boundary answers (tests/fuzz/fuzz-kvm-ioctl.c); it must not reach the kernel\n",
                req, (unsigned)_IOC_NR(req));
        abort();
    }
    int r = check_set(req, arg);
    if (r >= 0 && calls++ == fail_at) {
        log_call(name, fail_errno == EINVAL ? "(!EINVAL)" : "(!EFAULT)");
        if (req == KVM_SET_MSRS) {
            return 0;               /* KVM stopped at the first MSR */
        }
        errno = fail_errno;
        return -1;
    }
    log_call(name, r < 0 ? "(refused)" : "");
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return r;
}

int __wrap_ioctl(int fd, unsigned long req, ...)
{
    va_list ap;

    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (_IOC_TYPE(req) == KVMIO) {
        if (armed && req != KVM_CHECK_EXTENSION && req != KVM_GET_TSC_KHZ) {
            return answer(req, arg);
        }
        if (fuzz_kvm_standin_owns(fd)) {
            return fuzz_kvm_standin_ioctl(fd, req, arg);
        }
    }
    return __real_ioctl(fd, req, arg);
}
