/*
 * A stand-in for /dev/kvm, for fuzz-incoming-kvm (its default; FUZZ_KVM_REAL=1
 * builds on the real one). With it, open("/dev/kvm") and the fds KVM would
 * hand out (system, VM, vCPU) are memfds, and their ioctls are answered
 * here with the values docs/kvm-on-this-machine.md measured on the PVM
 * host: its capabilities, its 40 MSRs, its TSC rate; the supported CPUID
 * is this CPU's own (the CPUID instruction), plus KVM's leaves. A vCPU fd
 * is as long as KVM's kvm_run area, so migvm maps it as usual.
 *
 * Only the machine's construction meets it: once built, the boundary
 * (fuzz-kvm-ioctl.c) answers every ioctl a load issues, as it does in
 * front of a real KVM; a load therefore runs the same code either way.
 * What differs is the power-on state the machine starts from (zeroed
 * registers, LAPIC and PIT here) and the capabilities (fixed here).
 * KVM_RUN is never answered: the vCPU never runs.
 */
#include <cpuid.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "fuzz-kvm.h"
#include "accel.h"
#include "kvm-int.h"

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);

#define RUN_SIZE (3 * 4096)
#define TSC_KHZ 2596098
#define MAX_FDS 8
#define MAX_CPUID 64

static bool enabled;
static int fds[MAX_FDS];
static int n_fds;
static struct kvm_cpuid_entry2 vcpu_cpuid[KVM_CPU_CPUID_MAX];
static uint32_t vcpu_cpuid_n;

static const struct {
    long cap;
    int value;
} caps[] = {
    { KVM_CAP_USER_MEMORY, 1 }, { KVM_CAP_SET_TSS_ADDR, 1 }, { KVM_CAP_SET_IDENTITY_MAP_ADDR, 1 },
    { KVM_CAP_IMMEDIATE_EXIT, 1 }, { KVM_CAP_IRQCHIP, 1 }, { KVM_CAP_PIT2, 1 }, { KVM_CAP_PIT_STATE2, 1 },
    { KVM_CAP_SREGS2, 1 }, { KVM_CAP_XSAVE, 1 }, { KVM_CAP_XSAVE2, 4096 }, { KVM_CAP_XCRS, 1 },
    { KVM_CAP_DEBUGREGS, 1 }, { KVM_CAP_VCPU_EVENTS, 1 }, { KVM_CAP_EXCEPTION_PAYLOAD, 1 },
    { KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, 3 }, { KVM_CAP_DIRTY_LOG_RING, 1048576 },
    { KVM_CAP_X2APIC_API, 3 }, { KVM_CAP_ADJUST_CLOCK, 14 }, { KVM_CAP_GET_TSC_KHZ, 1 },
    { KVM_CAP_TSC_DEADLINE_TIMER, 1 }, { KVM_CAP_KVMCLOCK_CTRL, 1 },
};

/* KVM_GET_MSR_INDEX_LIST on the PVM host. */
static const uint32_t msr_list[] = {
    0x174, 0x175, 0x176, 0xc0000081, 0xc0000083, 0xc0000102, 0xc0000084, 0xc0000082,
    0x10, 0x277, 0xc0010117, 0x1d9, 0x1db, 0x1dc, 0x1dd, 0x1de, 0x11, 0x12,
    0x4b564d00, 0x4b564d01, 0x4b564d02, 0x4b564d03, 0x4b564d04, 0x4b564d05, 0x4b564d06, 0x4b564d07,
    0x3b, 0x6e0, 0x10a, 0x345, 0x1a0, 0x17a, 0x17b, 0x34, 0xce, 0x140, 0xc001011f, 0x1fc,
    0x8b, 0xc0010015,
};

void fuzz_kvm_standin_enable(void)
{
    enabled = true;
}

bool fuzz_kvm_standin_owns(int fd)
{
    for (int i = 0; i < n_fds; i++) {
        if (fds[i] == fd) {
            return true;
        }
    }
    return false;
}

static int new_fd(const char *name, off_t size)
{
    if (n_fds == MAX_FDS) {
        errno = EMFILE;
        return -1;
    }
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0 || (size && ftruncate(fd, size) < 0)) {
        return -1;
    }
    fds[n_fds++] = fd;
    return fd;
}

int __wrap_open(const char *path, int flags, ...)
{
    va_list ap;
    int mode = 0;

    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) {     /* as glibc's open */
        va_start(ap, flags);
        mode = va_arg(ap, int);
        va_end(ap);
    }
    if (enabled && !strcmp(path, "/dev/kvm")) {
        return new_fd("standin-kvm", 0);
    }
    return __real_open(path, flags, mode);
}

static void add_leaf(struct kvm_cpuid_entry2 *e, uint32_t *n, uint32_t leaf, uint32_t sub, bool indexed)
{
    if (*n == MAX_CPUID) {
        return;
    }
    struct kvm_cpuid_entry2 *d = &e[(*n)++];
    memset(d, 0, sizeof(*d));
    d->function = leaf;
    d->index = sub;
    d->flags = indexed ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
    if (leaf >= 0x40000000 && leaf < 0x40000100) {
        if (leaf == 0x40000000) {       /* "KVMKVMKVM\0\0\0", highest leaf */
            d->eax = 0x40000001;
            d->ebx = 0x4b4d564b;
            d->ecx = 0x564b4d56;
            d->edx = 0x4d;
        } else {                        /* clocksource, clocksource2, async PF, steal time, PV EOI, stable */
            d->eax = (1u << 0) | (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6) | (1u << 24);
        }
        return;
    }
    __cpuid_count(leaf, sub, d->eax, d->ebx, d->ecx, d->edx);
}

/* This CPU's CPUID as KVM would offer it, the leaves migvm looks at. */
static int supported_cpuid(struct kvm_cpuid2 *c)
{
    struct kvm_cpuid_entry2 e[MAX_CPUID];
    uint32_t n = 0, max = __get_cpuid_max(0, NULL), ext = __get_cpuid_max(0x80000000, NULL);

    for (uint32_t leaf = 0; leaf <= max && leaf <= 0xd; leaf++) {
        bool indexed = leaf == 4 || leaf == 7 || leaf == 0xb || leaf == 0xd;
        for (uint32_t sub = 0; sub < (indexed ? 2u : 1u); sub++) {
            add_leaf(e, &n, leaf, sub, indexed);
        }
    }
    add_leaf(e, &n, 0x40000000, 0, false);
    add_leaf(e, &n, 0x40000001, 0, false);
    for (uint32_t leaf = 0x80000000; leaf <= ext && leaf <= 0x80000008; leaf++) {
        add_leaf(e, &n, leaf, 0, false);
    }
    if (c->nent < n) {
        return -E2BIG;
    }
    c->nent = n;
    memcpy(c->entries, e, n * sizeof(e[0]));
    return 0;
}

static int msr_index_list(struct kvm_msr_list *l)
{
    uint32_t n = sizeof(msr_list) / sizeof(msr_list[0]);
    uint32_t room = l->nmsrs;

    l->nmsrs = n;
    if (room < n) {
        return -E2BIG;
    }
    memcpy(l->indices, msr_list, sizeof(msr_list));
    return 0;
}

/* What KVM's vCPU looks like at creation, the parts migvm reads. The
 * segments in kvm_sregs order: cs ds es fs gs ss tr ldt. */
#define POWER_ON_SREGS(s) do {                                                                  \
    struct kvm_segment *segs_[8] = { &(s)->cs, &(s)->ds, &(s)->es, &(s)->fs,                    \
                                     &(s)->gs, &(s)->ss, &(s)->tr, &(s)->ldt };                 \
    for (int i_ = 0; i_ < 6; i_++) {                                                            \
        *segs_[i_] = (struct kvm_segment) { .limit = 0xffff, .type = 3, .present = 1, .s = 1 }; \
    }                                                                                           \
    (s)->cs = (struct kvm_segment) { .base = 0xffff0000, .limit = 0xffff, .selector = 0xf000,  \
                                     .type = 11, .present = 1, .s = 1 };                        \
    (s)->tr = (struct kvm_segment) { .limit = 0xffff, .type = 11, .present = 1 };              \
    (s)->ldt = (struct kvm_segment) { .limit = 0xffff, .type = 2, .present = 1 };              \
    (s)->cr0 = 0x60000010;                                                                      \
    (s)->apic_base = 0xfee00900;                                                                \
} while (0)

static int vcpu_get_cpuid(struct kvm_cpuid2 *c)
{
    if (c->nent < vcpu_cpuid_n) {
        return -E2BIG;
    }
    c->nent = vcpu_cpuid_n;
    memcpy(c->entries, vcpu_cpuid, vcpu_cpuid_n * sizeof(vcpu_cpuid[0]));
    return 0;
}

static int standin(unsigned long req, void *arg)
{
    switch (req) {
    case KVM_GET_API_VERSION:
        return KVM_API_VERSION;
    case KVM_CREATE_VM:
        return new_fd("standin-kvm-vm", 0);
    case KVM_CREATE_VCPU:
        return new_fd("standin-kvm-vcpu", RUN_SIZE);
    case KVM_GET_VCPU_MMAP_SIZE:
        return RUN_SIZE;
    case KVM_CHECK_EXTENSION:
        for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
            if (caps[i].cap == (long)arg) {
                return caps[i].value;
            }
        }
        return 0;
    case KVM_GET_SUPPORTED_CPUID:
        return supported_cpuid(arg);
    case KVM_GET_MSR_INDEX_LIST:
        return msr_index_list(arg);
    case KVM_GET_TSC_KHZ:
        return TSC_KHZ;
    case KVM_SET_CPUID2: {
        struct kvm_cpuid2 *c = arg;
        vcpu_cpuid_n = c->nent < KVM_CPU_CPUID_MAX ? c->nent : KVM_CPU_CPUID_MAX;
        memcpy(vcpu_cpuid, c->entries, vcpu_cpuid_n * sizeof(vcpu_cpuid[0]));
        return 0;
    }
    case KVM_GET_CPUID2:
        return vcpu_get_cpuid(arg);
    case KVM_GET_MSRS:
    case KVM_SET_MSRS: {
        struct kvm_msrs *m = arg;
        for (uint32_t i = 0; req == KVM_GET_MSRS && i < m->nmsrs; i++) {
            m->entries[i].data = 0;
        }
        return (int)m->nmsrs;
    }
    case KVM_GET_SREGS: {
        struct kvm_sregs *s = arg;
        memset(s, 0, sizeof(*s));
        POWER_ON_SREGS(s);
        return 0;
    }
    case KVM_GET_SREGS2: {
        struct kvm_sregs2 *s = arg;
        memset(s, 0, sizeof(*s));
        POWER_ON_SREGS(s);
        return 0;
    }
    case KVM_GET_IRQCHIP: {
        struct kvm_irqchip *c = arg;
        memset(&c->chip, 0, sizeof(c->chip));
        if (c->chip_id == KVM_IRQCHIP_IOAPIC) {
            c->chip.ioapic.base_address = 0xfec00000;
            for (int i = 0; i < KVM_IOAPIC_NUM_PINS; i++) {
                c->chip.ioapic.redirtbl[i].bits = 1ull << 16;       /* masked */
            }
        } else if (c->chip_id > KVM_IRQCHIP_IOAPIC) {
            return -EINVAL;
        }
        return 0;
    }
    case KVM_GET_CLOCK: {
        struct kvm_clock_data *d = arg;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        memset(d, 0, sizeof(*d));
        d->clock = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        d->flags = KVM_CLOCK_TSC_STABLE;
        return 0;
    }
    case KVM_RUN:
        fprintf(stderr, "fuzz-incoming-kvm: KVM_RUN on the /dev/kvm stand-in: the vCPU must never run\n");
        abort();
    default:
        /* Any other GET reads zeros (registers, LAPIC, PIT, events...);
         * any other SET or action succeeds. */
        if (_IOC_DIR(req) == _IOC_READ) {
            memset(arg, 0, _IOC_SIZE(req));
        }
        return 0;
    }
}

int fuzz_kvm_standin_ioctl(int fd, unsigned long req, void *arg)
{
    (void)fd;
    int r = standin(req, arg);
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return r;
}
