/*
 * Accelerators: what runs guest code (system/accel.c keeps the registry).
 *
 * "soft" (accel-soft/) runs a built-in workload with the test guest's memory
 * behaviour; "kvm" (accel-kvm/) runs real vCPUs with KVM_RUN. Each registers
 * an AccelOps with ACCEL_REGISTER(); machine_init picks one by the
 * machine configuration's accel and system/cpus.c drives its vCPUs.
 *
 * Who calls what, under which lock:
 *   init, vcpu_init            machine_init, BQL held, RAM blocks exist,
 *                              vCPU threads not started yet
 *   vcpu_thread_init           on the vCPU's own thread, once, before the
 *                              first vcpu_exec (e.g. signal mask, KVM mmap)
 *   vcpu_exec                  on the vCPU thread WITHOUT the BQL; runs guest
 *                              code until cpu_should_stop(cpu) is true or the
 *                              vCPU halts. Device I/O inside: take the BQL
 *                              around pio_write()/pio_read() (hw-bus.h).
 *   vcpu_kick                  any thread (usually BQL holder); must not
 *                              block or take the BQL: make vcpu_exec return
 *                              promptly (KVM: immediate_exit + signal).
 *   vcpu_destroy               BQL, after the vCPU thread was joined
 *   dirty_log_start/stop       BQL (migration setup / cleanup)
 *   dirty_log_sync             migration thread, NO BQL: merge the
 *                              accelerator's dirty info into every block's
 *                              bmap with ram_block_merge_dirty() (memory.h)
 *   synchronize_state          BQL, vCPUs paused: pull vCPU state into what
 *                              the VMState sections save (KVM: GET_REGS...)
 *   set_irq                    BQL: drive interrupt line `line` (ISA IRQ
 *                              0-15, GSI 16-23) to `level` (KVM: the
 *                              in-kernel PIC/IOAPIC); NULL if the
 *                              accelerator has no interrupt controller
 *   reset                      BQL, vCPUs paused (machine_reset, after the
 *                              board reloaded the boot disk)
 *   dump_registers             BQL, vCPUs paused (HMP `info registers`)
 *   cleanup                    BQL, after every vCPU was destroyed
 * Optional hooks may be NULL.
 */
#ifndef MIGVM_ACCEL_H
#define MIGVM_ACCEL_H

#include <stdbool.h>
#include <stdint.h>
#include "error.h"

typedef struct CPUState CPUState;       /* include/cpus.h */
typedef struct _GString GString;        /* glib */

typedef enum VcpuExit {
    VCPU_EXIT_STOP,       /* cpu_should_stop() said so: park until resumed */
    VCPU_EXIT_HALT,       /* nothing to run: sleep until cpus_kick/reset */
    VCPU_EXIT_ERROR,      /* unrecoverable: the VM stops (internal-error) */
} VcpuExit;

/* What the board tells the accelerator at init. */
typedef struct AccelConfig {
    const char *opts;       /* after the name, e.g. "dirty-rate=100"; may be NULL */
    bool boot_code;         /* the board loads code for vCPU 0 (a boot disk) */
} AccelConfig;

typedef struct AccelOps {
    const char *name;
    /* vCPUs run guest code from RAM: the board loads the boot disk for them. */
    bool runs_guest_code;
    bool (*init)(const AccelConfig *cfg, Error **errp);
    bool (*vcpu_init)(CPUState *cpu, Error **errp);
    void (*vcpu_thread_init)(CPUState *cpu);
    VcpuExit (*vcpu_exec)(CPUState *cpu);
    void (*vcpu_kick)(CPUState *cpu);
    void (*vcpu_destroy)(CPUState *cpu);
    bool (*dirty_log_start)(Error **errp);
    void (*dirty_log_stop)(void);
    uint64_t (*dirty_log_sync)(void);     /* returns pages newly set in bmaps */
    /* A per-vCPU dirty log (KVM's dirty ring) is on. Any thread. */
    bool (*dirty_ring_enabled)(void);
    /* Any thread, while dirty logging is on: harvest now, then pages[i] =
     * how many dirty pages vCPU i reported so far (a running count; a page
     * counts again once re-armed and written again). False without a ring. */
    bool (*vcpu_dirty_counts)(uint64_t *pages, int n);
    bool (*synchronize_state)(Error **errp);
    /* Returns false if this accelerator instance has no irqchip (e.g. kvm
     * with kernel-irqchip=off): the line then goes nowhere. */
    bool (*set_irq)(int line, int level);
    /* BQL: the VM stopped (vCPUs paused) or is about to run again; lets an
     * accelerator freeze guest time across a pause (KVM: PIT, kvmclock). */
    void (*vm_state_change)(bool running);
    /* Power-on state; false leaves the machine half reset (the VM stops). */
    bool (*reset)(Error **errp);
    /* Append vCPU `cpu`'s registers to `out` in the text QEMU 7.2's
     * `info registers` prints for it. NULL: no CPU state to show. */
    bool (*dump_registers)(int cpu, GString *out, Error **errp);
    void (*cleanup)(void);
} AccelOps;

/* Add ops to the registry (before main() via ACCEL_REGISTER). */
void accel_register(const AccelOps *ops);
#define ACCEL_REGISTER(ops)                                                 \
    static void __attribute__((constructor)) accel_register_##ops(void)     \
    { accel_register(&(ops)); }

const AccelOps *accel_find(const char *name);
/* Make `name` the current accelerator. Unknown "kvm" gets the message
 * "KVM accelerator is not available in this build". [BQL, machine_init] */
bool accel_select(const char *name, Error **errp);
/* The selected accelerator, or NULL (before machine_init / after cleanup).
 * Set once before any vCPU or migration thread exists: read it freely. */
const AccelOps *accel_current(void);
void accel_deselect(void);

/* ops->dirty_ring_enabled / vcpu_dirty_counts, false without them. */
bool accel_dirty_ring_enabled(void);
bool accel_vcpu_dirty_counts(uint64_t *pages, int n);

/* Wrapper for vm_stop: true if there is nothing to sync. [BQL, paused] */
bool accel_synchronize_state(Error **errp);
/* ops->dump_registers, or an error if the accelerator has no CPU state.
 * [BQL, every vCPU paused] */
bool accel_dump_registers(int cpu, GString *out, Error **errp);
/* Tell the accelerator the VM stopped or is about to run. [BQL] */
void accel_vm_state_change(bool running);

#endif
