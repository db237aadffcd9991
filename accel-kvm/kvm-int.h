/*
 * The KVM accelerator's private state, shared by its files:
 *   kvm.c            /dev/kvm, the VM, capabilities, memory slots, AccelOps
 *   kvm-vcpu.c       vCPU creation, the KVM_RUN loop, exits, kick
 *   kvm-dirty.c      dirty logging for migration (bitmap or ring)
 *   kvm-dirty-ring.c the dirty ring: per-vCPU rings, harvesting, reaper
 *   kvm-cpu-state.c  vCPU state get/put and its VMState section "cpu"
 *   kvm-vm-state.c   per-VM state: PIT, clock, irqchip sections, reset
 *   kvm-cpu-model.c  the guest's CPU features, x-cpuid-hide, and the early
 *                    "kvm-cpu-model" section that refuses an incoming
 *                    migration this host cannot run
 *   kvm-cpu-dump.c   `info registers`: a vCPU's registers as QEMU prints them
 */
#ifndef MIGVM_KVM_INT_H
#define MIGVM_KVM_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/kvm.h>
#include <glib.h>
#include "accel.h"
#include "cpus.h"
#include "error.h"
#include "memory.h"

#define KVM_MAX_SLOTS 32

/* One KVM memory slot per guest-physical mapping of a RAM block (two for a
 * block split around the 32-bit hole). A slot may cover only part of its
 * block: its pages are block pages offset/page size + i. */
typedef struct KvmSlot {
    uint32_t id;
    RAMBlock *block;
    uint64_t gpa;                   /* guest physical base of the slot */
    uint64_t offset;                /* byte offset of the slot in the block */
    uint64_t size;                  /* bytes */
    uint32_t flags;                 /* KVM_MEM_* currently set */
    unsigned long *dirty;           /* [dirty_lock] GET_DIRTY_LOG buffer, or the
                                     * ring's harvested pages, while logging */
    uint64_t dirty_words;           /* size of `dirty` in longs */
} KvmSlot;

typedef struct KvmState {
    int sys_fd;                     /* /dev/kvm */
    int vm_fd;
    int run_size;                   /* KVM_GET_VCPU_MMAP_SIZE */
    /* capabilities (KVM_CHECK_EXTENSION on the VM fd) */
    bool cap_sregs2, cap_xsave, cap_xcrs, cap_debugregs, cap_vcpu_events;
    bool cap_exception_payload;     /* enabled on the VM */
    bool cap_manual_dirty;          /* MANUAL_DIRTY_LOG_PROTECT2 enabled */
    bool cap_dirty_initially_set;
    int xsave_size;                 /* KVM_CAP_XSAVE2 (or 4096 with XSAVE) */
    bool irqchip;                   /* in-kernel PIC/IOAPIC/LAPIC + PIT (kernel-irqchip=on) */
    bool boot_code;                 /* the board loaded code for vCPU 0 to run */
    uint32_t tsc_khz;               /* host KVM_GET_TSC_KHZ of vCPU 0, 0 = unknown */
    struct kvm_cpuid2 *cpuid;       /* KVM_GET_SUPPORTED_CPUID minus x-cpuid-hide */
    char *cpuid_hide;               /* x-cpuid-hide=NAME+NAME... (tests), or NULL */
    uint32_t *msr_list;             /* KVM_GET_MSR_INDEX_LIST */
    uint32_t n_msr_list;
    KvmSlot slots[KVM_MAX_SLOTS];
    int n_slots;
    /* Dirty tracking. dirty_lock guards the slots' flags and `dirty`
     * buffers, dirty_logging, and every vCPU's ring fetch index and count:
     * harvesting a ring, KVM_RESET_DIRTY_RINGS and merging into the
     * migration bitmap happen as one step under it (kvm-dirty-ring.c). */
    pthread_mutex_t dirty_lock;
    bool dirty_logging;             /* [dirty_lock] */
    uint32_t dirty_ring_size;       /* entries per vCPU ring, 0 = bitmap; set at init */
    /* Cost of dirty tracking since logging started [dirty_lock]: the syncs
     * (on the migration thread's path) and the ring's reaps outside them. */
    uint64_t sync_count, sync_ns, sync_max_ns, reap_count, reap_ns, harvested;
    uint64_t overflows;             /* rings found overflowed (kvm-dirty-ring.c) */
    char *sync_stats_path;          /* MIGVM_DIRTY_SYNC_STATS (bench), read at init */
} KvmState;

extern KvmState kvm_state;

/* Saved vCPU state; see kvm-cpu-state.c for the VMState layout. */
#define KVM_CPU_XSAVE_MAX 16384
#define KVM_CPU_MSR_MAX 128
#define KVM_CPU_CPUID_MAX 128       /* entries; 7 words each on the wire */
#define KVM_CPU_XCR_MAX 16

typedef struct KvmSegment {
    uint64_t base;
    uint32_t limit;
    uint16_t selector;
    uint8_t type, present, dpl, db, s, l, g, avl, unusable;
} KvmSegment;

typedef struct KvmDtable {
    uint64_t base;
    uint16_t limit;
} KvmDtable;

typedef struct KvmEvents {
    uint8_t exc_injected, exc_nr, exc_has_error_code, exc_pending;
    uint32_t exc_error_code;
    uint8_t exc_has_payload;
    uint64_t exc_payload;
    uint8_t irq_injected, irq_nr, irq_soft, irq_shadow;
    uint8_t nmi_injected, nmi_pending, nmi_masked;
    uint32_t sipi_vector;
    uint32_t flags;
    uint8_t smi_smm, smi_pending, smi_inside_nmi, smi_latched_init;
    uint8_t triple_fault_pending;
} KvmEvents;

typedef struct KvmCpuState {
    uint8_t parked;                 /* never runs: AP without irqchip, HLT, no boot disk */
    uint32_t mp_state;
    uint64_t regs[18];              /* kvm_regs order: rax..r15, rip, rflags */
    KvmSegment segs[8];             /* cs ds es fs gs ss tr ldt */
    KvmDtable gdt, idt;
    uint64_t cr0, cr2, cr3, cr4, cr8, efer, apic_base;
    uint64_t sregs2_flags;          /* KVM_SREGS2_FLAGS_PDPTRS_VALID */
    uint64_t pdptrs[4];
    uint64_t interrupt_bitmap[4];   /* only from KVM_GET_SREGS (no SREGS2) */
    uint8_t fpu_format;             /* KVM_CPU_FPU_XSAVE or KVM_CPU_FPU_LEGACY */
    uint32_t xsave_len;
    uint8_t xsave[KVM_CPU_XSAVE_MAX];
    uint32_t n_xcrs;
    uint32_t xcr_index[KVM_CPU_XCR_MAX];
    uint64_t xcr_value[KVM_CPU_XCR_MAX];
    uint64_t dr[4], dr6, dr7;
    uint8_t lapic[1024];            /* KVM_GET_LAPIC, with an in-kernel irqchip */
    uint32_t tsc_khz;
    uint32_t cpuid_words;           /* 7 per entry */
    uint32_t cpuid[KVM_CPU_CPUID_MAX * 7];
    uint32_t n_msrs;
    uint32_t msr_index[KVM_CPU_MSR_MAX];
    uint64_t msr_value[KVM_CPU_MSR_MAX];
    KvmEvents events;
    uint32_t loaded;                /* not migrated: KVM_PIECE_* subsections loaded */
} KvmCpuState;

/* The pieces of vCPU state, one "cpu/..." subsection each. */
enum {
    KVM_PIECE_MP_STATE = 1 << 0,
    KVM_PIECE_REGS = 1 << 1,
    KVM_PIECE_SREGS = 1 << 2,
    KVM_PIECE_XSAVE = 1 << 3,
    KVM_PIECE_XCRS = 1 << 4,
    KVM_PIECE_DEBUGREGS = 1 << 5,
    KVM_PIECE_LAPIC = 1 << 6,
    KVM_PIECE_TSC_KHZ = 1 << 7,
    KVM_PIECE_CPUID = 1 << 8,
    KVM_PIECE_MSRS = 1 << 9,
    KVM_PIECE_EVENTS = 1 << 10,
};

#define KVM_CPU_FPU_XSAVE 1
#define KVM_CPU_FPU_LEGACY 2

typedef struct KvmVcpu {
    CPUState *cpu;
    int fd;
    struct kvm_run *run;
    uint32_t *msrs;                 /* MSRs this vCPU can save, restore order */
    uint32_t n_msrs;
    KvmCpuState state;
    struct kvm_sregs power_on_sregs;  /* as KVM created the vCPU */
    struct kvm_lapic_state power_on_lapic;  /* idem, with an irqchip */
    bool vmstate_registered;
    pthread_t thread;               /* the vCPU thread, once thread_ready */
    int thread_ready;               /* atomic */
    /* Dirty ring (kvm-dirty-ring.c): mapped at creation, before the vCPU
     * thread exists. The entries are shared with KVM: their flags are read
     * with acquire and written with release. */
    struct kvm_dirty_gfn *ring;     /* dirty_ring_size entries, or NULL */
    uint64_t ring_fetch;            /* [dirty_lock] next entry to harvest */
    uint64_t ring_pages;            /* [dirty_lock] entries harvested, ever */
    uint64_t ring_harvests;         /* [dirty_lock] harvests of this ring, ever; its
                                     * vCPU thread also reads it atomically */
    uint64_t ring_harvests_at_run;  /* [vCPU thread] ring_harvests at KVM_RUN */
} KvmVcpu;

/* kvm.c */
/* ioctl(2) on fd, retried after EINTR: the result, or -errno. */
int kvm_ioctl(int fd, unsigned long req, void *arg);
int kvm_vm_ioctl(unsigned long req, void *arg);     /* -errno on failure */
int kvm_sys_ioctl(unsigned long req, void *arg);
int kvm_check_extension(long cap);                  /* VM fd, 0 if absent */

/* kvm-vcpu.c */
bool kvm_vcpu_create(CPUState *cpu, Error **errp);
void kvm_vcpu_thread_init(CPUState *cpu);
VcpuExit kvm_vcpu_exec(CPUState *cpu);
void kvm_vcpu_kick(CPUState *cpu);
void kvm_vcpu_destroy(CPUState *cpu);
/* Put vCPU `v` into its power-on state (vCPU 0: real mode at 0:7c00). */
bool kvm_vcpu_reset_state(KvmVcpu *v, Error **errp);
int kvm_vcpu_ioctl(KvmVcpu *v, unsigned long req, void *arg);  /* -errno */
/* kvm_vcpu_ioctl; on failure set errp ("vCPU N: what: strerror") and return false. */
bool kvm_vcpu_ioctl_or_fail(KvmVcpu *v, unsigned long req, void *arg, const char *what, Error **errp);

/* kvm-cpu-state.c */
bool kvm_cpu_state_init(KvmVcpu *v, Error **errp);  /* CPUID, MSR list, VMState */
void kvm_cpu_state_fini(KvmVcpu *v);
bool kvm_cpu_state_get(KvmVcpu *v, Error **errp);
bool kvm_cpu_state_put(KvmVcpu *v, uint32_t pieces, Error **errp);  /* KVM_PIECE_* */
bool kvm_synchronize_state(Error **errp);

/* kvm-vm-state.c */
/* After KVM_CREATE_IRQCHIP/PIT2: remember their power-on state. */
bool kvm_vm_state_init(Error **errp);
/* With vCPU 0: register the per-VM sections (also without an irqchip:
 * "kvm-clock"). */
bool kvm_vm_state_register(Error **errp);
void kvm_vm_state_fini(void);
void kvm_vm_state_reset(void);      /* irqchip and PIT back to power-on */
void kvm_vm_state_change(bool running);  /* freeze PIT and kvmclock across a pause */

/* kvm-cpu-model.c */
/* Parse x-cpuid-hide and clear those bits from kvm_state.cpuid. */
bool kvm_cpu_model_apply_hide(const char *spec, Error **errp);
bool kvm_cpu_model_init(Error **errp);      /* registers "kvm-cpu-model" */
void kvm_cpu_model_fini(void);

/* kvm-cpu-dump.c: AccelOps.dump_registers [BQL, vCPUs paused] */
bool kvm_dump_registers(int index, GString *out, Error **errp);

/* kvm-dirty.c */
bool kvm_dirty_log_start(Error **errp);
void kvm_dirty_log_stop(void);
uint64_t kvm_dirty_log_sync(void);
bool kvm_slot_set_flags(KvmSlot *slot, uint32_t flags, Error **errp);
/* Merge n bits of slot->dirty from slot page `first` on into the block's
 * migration bitmap. [dirty_lock] */
uint64_t kvm_slot_merge(KvmSlot *slot, const unsigned long *bits, uint64_t first, uint64_t n);

/* kvm-dirty-ring.c */
/* Parse dirty-ring-size=VALUE as QEMU 7.2 does (0 = bitmap). */
bool kvm_dirty_ring_parse(const char *value, Error **errp);
/* KVM_ENABLE_CAP(DIRTY_LOG_RING) before any vCPU exists. */
bool kvm_dirty_ring_enable(Error **errp);
bool kvm_dirty_ring_vcpu_map(KvmVcpu *v, Error **errp);
void kvm_dirty_ring_vcpu_unmap(KvmVcpu *v);
/* Harvest every vCPU's ring into the slots' `dirty` buffers (dropped when
 * logging is off) and reset the rings. [dirty_lock] */
void kvm_dirty_ring_reap_locked(void);
/* The same, taking dirty_lock. */
void kvm_dirty_ring_reap(void);
/* On v's thread after KVM_EXIT_DIRTY_RING_FULL: reap, and bring KVM's
 * count back in step if its ring overflowed. */
void kvm_dirty_ring_full(KvmVcpu *v);
/* The reaper thread: runs while dirty logging is on. [BQL] */
void kvm_dirty_ring_reaper_start(void);
void kvm_dirty_ring_reaper_stop(void);
/* AccelOps hooks (accel.h). */
bool kvm_dirty_ring_enabled(void);
bool kvm_vcpu_dirty_counts(uint64_t *pages, int n);


#endif
