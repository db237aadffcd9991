/*
 * KVM vCPUs: creation, the KVM_RUN loop and its exits, kick, teardown.
 *
 * Pausing without polling:
 *   kicker (any thread)                     vCPU thread
 *                                            immediate_exit = 0
 *   cpus.c sets `paused`                     if cpu_should_stop(): return STOP
 *   immediate_exit = 1                       ioctl(KVM_RUN)
 *   pthread_kill(SIGUSR1)  ───────────────►  returns -EINTR at once
 * SIGUSR1 is blocked on vCPU threads and unblocked only inside KVM_RUN
 * (KVM_SET_SIGNAL_MASK), so it never interrupts device I/O done on the
 * vCPU thread; a signal that arrived outside KVM_RUN stays pending and
 * makes the next KVM_RUN return at once, and is then eaten with
 * sigtimedwait. immediate_exit covers the window between the stop check
 * and the ioctl. All stores are sequentially consistent, so a kick either
 * is seen by the stop check or lands after it and stops KVM_RUN.
 *
 * Exits: port I/O and MMIO go to hw/bus.c under the BQL; a full dirty ring
 * is reaped on the vCPU thread (kvm-dirty-ring.c); with the in-kernel
 * irqchip (the default) HLT waits in the kernel for an interrupt and never
 * exits; without it KVM_EXIT_HLT parks the vCPU (no interrupt can wake it);
 * triple fault,
 * internal errors (e.g. an instruction KVM's emulator refuses), entry
 * failures and unknown exits are reported on stderr and return
 * VCPU_EXIT_ERROR, which stops the guest in run state internal-error.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <glib.h>
#include "accel.h"
#include "hw-bus.h"
#include "kvm-int.h"
#include "vm.h"

#define KVM_KICK_SIGNAL SIGUSR1
#define BOOT_SECTOR_ADDR 0x7c00

int kvm_vcpu_ioctl(KvmVcpu *v, unsigned long req, void *arg)
{
    return kvm_ioctl(v->fd, req, arg);
}

bool kvm_vcpu_ioctl_or_fail(KvmVcpu *v, unsigned long req, void *arg, const char *what, Error **errp)
{
    int r = kvm_ioctl(v->fd, req, arg);

    if (r < 0) {
        error_setg_errno(errp, -r, "vCPU %d: %s", v->cpu->index, what);
        return false;
    }
    return true;
}

static void kick_signal_handler(int sig)
{
    /* Nothing: its only job is to make KVM_RUN return -EINTR. */
}

static void install_kick_handler(void)
{
    static bool installed;
    struct sigaction sa;

    if (installed) {
        return;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = kick_signal_handler;
    sigemptyset(&sa.sa_mask);
    sigaction(KVM_KICK_SIGNAL, &sa, NULL);
    installed = true;
}

/* ---- power-on state --------------------------------------------------------- */

static bool vcpu_set_real_mode_entry(KvmVcpu *v, Error **errp)
{
    struct kvm_sregs sregs = v->power_on_sregs;
    struct kvm_regs regs = { .rip = BOOT_SECTOR_ADDR, .rflags = 0x2, .rdx = 0x80 };
    int r;

    /* A BIOS hands over at 0000:7c00, DL = boot drive. */
    sregs.cs.selector = 0;
    sregs.cs.base = 0;
    if ((r = kvm_vcpu_ioctl(v, KVM_SET_SREGS, &sregs)) < 0 ||
        (r = kvm_vcpu_ioctl(v, KVM_SET_REGS, &regs)) < 0) {
        error_setg_errno(errp, -r, "vCPU %d: cannot set the real-mode entry state", v->cpu->index);
        return false;
    }
    return true;
}

static bool vcpu_reset_fpu_and_events(KvmVcpu *v, Error **errp)
{
    struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
    struct kvm_vcpu_events ev = { .flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW };
    struct kvm_xcrs xcrs = { .nr_xcrs = 1, .xcrs = { { .xcr = 0, .value = 1 } } };   /* x87 only */

    return kvm_vcpu_ioctl_or_fail(v, KVM_SET_FPU, &fpu, "KVM_SET_FPU", errp) &&
           (!kvm_state.cap_xcrs || kvm_vcpu_ioctl_or_fail(v, KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS", errp)) &&
           (!kvm_state.cap_vcpu_events ||
            kvm_vcpu_ioctl_or_fail(v, KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS", errp));
}

bool kvm_vcpu_reset_state(KvmVcpu *v, Error **errp)
{
    bool bsp = v->cpu->index == 0;

    if (!vcpu_reset_fpu_and_events(v, errp)) {
        return false;
    }
    if (kvm_state.irqchip) {
        struct kvm_mp_state mp = { bsp ? KVM_MP_STATE_RUNNABLE : KVM_MP_STATE_UNINITIALIZED };
        /* LAPIC first: its APIC base and LVTs as KVM created them. */
        if (!kvm_vcpu_ioctl_or_fail(v, KVM_SET_LAPIC, &v->power_on_lapic, "KVM_SET_LAPIC", errp) ||
            !kvm_vcpu_ioctl_or_fail(v, KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE", errp)) {
            return false;
        }
    }
    /* Only vCPU 0 has code to run, and only when a boot disk was loaded;
     * the others wait for a SIPI nobody sends without an irqchip. */
    v->state.parked = bsp ? !kvm_state.boot_code : !kvm_state.irqchip;
    if (bsp) {
        return vcpu_set_real_mode_entry(v, errp);
    }
    return kvm_vcpu_ioctl_or_fail(v, KVM_SET_SREGS, &v->power_on_sregs, "KVM_SET_SREGS", errp);
}

/* ---- creation and teardown ---------------------------------------------------- */

static void vcpu_free(KvmVcpu *v)
{
    kvm_cpu_state_fini(v);
    kvm_dirty_ring_vcpu_unmap(v);
    if (v->run && v->run != MAP_FAILED) {
        munmap(v->run, kvm_state.run_size);
    }
    if (v->fd >= 0) {
        close(v->fd);
    }
    g_free(v->msrs);
    g_free(v);
}

bool kvm_vcpu_create(CPUState *cpu, Error **errp)
{
    KvmVcpu *v = g_new0(KvmVcpu, 1);

    v->cpu = cpu;
    v->fd = ioctl(kvm_state.vm_fd, KVM_CREATE_VCPU, (unsigned long)cpu->index);
    if (v->fd < 0) {
        error_setg_errno(errp, errno, "KVM_CREATE_VCPU %d", cpu->index);
        vcpu_free(v);
        return false;
    }
    v->run = mmap(NULL, kvm_state.run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
    if (v->run == MAP_FAILED) {
        error_setg_errno(errp, errno, "vCPU %d: mmap of kvm_run", cpu->index);
        vcpu_free(v);
        return false;
    }
    if (!kvm_dirty_ring_vcpu_map(v, errp)) {
        vcpu_free(v);
        return false;
    }
    if (!kvm_vcpu_ioctl_or_fail(v, KVM_GET_SREGS, &v->power_on_sregs, "KVM_GET_SREGS", errp) ||
        (kvm_state.irqchip &&
         !kvm_vcpu_ioctl_or_fail(v, KVM_GET_LAPIC, &v->power_on_lapic, "KVM_GET_LAPIC", errp))) {
        vcpu_free(v);
        return false;
    }
    if (cpu->index == 0) {
        int khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
        kvm_state.tsc_khz = khz > 0 ? (uint32_t)khz : 0;
    }
    if (!kvm_cpu_state_init(v, errp) || !kvm_vcpu_reset_state(v, errp)) {
        vcpu_free(v);
        return false;
    }
    install_kick_handler();
    pthread_mutex_lock(&kvm_state.dirty_lock);     /* reapers walk cpu->accel */
    cpu->accel = v;
    pthread_mutex_unlock(&kvm_state.dirty_lock);
    return true;
}

void kvm_vcpu_destroy(CPUState *cpu)
{
    KvmVcpu *v = cpu->accel;

    if (v) {
        kvm_dirty_ring_reaper_stop();
        pthread_mutex_lock(&kvm_state.dirty_lock);
        cpu->accel = NULL;
        pthread_mutex_unlock(&kvm_state.dirty_lock);
        vcpu_free(v);
    }
}

/* Block the kick signal on this thread, but let KVM_RUN take it. */
void kvm_vcpu_thread_init(CPUState *cpu)
{
    KvmVcpu *v = cpu->accel;
    sigset_t block, during_run;
    struct kvm_signal_mask *mask = g_malloc0(sizeof(*mask) + 8);

    sigemptyset(&block);
    sigaddset(&block, KVM_KICK_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &block, &during_run);
    sigdelset(&during_run, KVM_KICK_SIGNAL);
    mask->len = 8;                          /* the kernel's sigset size on x86-64 */
    memcpy(mask->sigset, &during_run, 8);
    int r = kvm_vcpu_ioctl(v, KVM_SET_SIGNAL_MASK, mask);
    if (r < 0) {
        /* Fall back to taking the (empty-handled) signal anywhere on this
         * thread: device I/O may then see EINTR, but kicks still work. */
        error_report("vCPU %d: KVM_SET_SIGNAL_MASK: %s; the kick signal stays unblocked",
                     cpu->index, strerror(-r));
        pthread_sigmask(SIG_UNBLOCK, &block, NULL);
    }
    g_free(mask);
    v->thread = pthread_self();
    __atomic_store_n(&v->thread_ready, 1, __ATOMIC_SEQ_CST);
}

void kvm_vcpu_kick(CPUState *cpu)
{
    KvmVcpu *v = cpu->accel;

    if (!v) {
        return;
    }
    __atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&v->thread_ready, __ATOMIC_SEQ_CST)) {
        pthread_kill(v->thread, KVM_KICK_SIGNAL);
    }
}

static void eat_kick_signal(void)
{
    sigset_t set;
    struct timespec zero = { 0, 0 };

    sigemptyset(&set);
    sigaddset(&set, KVM_KICK_SIGNAL);
    while (sigtimedwait(&set, NULL, &zero) == KVM_KICK_SIGNAL) {
        /* drained */
    }
}

/* ---- exits -------------------------------------------------------------------- */

static uint64_t load_le(const uint8_t *p, unsigned size)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < size; i++) {
        v |= (uint64_t)p[i] << (8 * i);
    }
    return v;
}

static void store_le(uint8_t *p, unsigned size, uint64_t v)
{
    for (unsigned i = 0; i < size; i++) {
        p[i] = v >> (8 * i);
    }
}

static void handle_io(KvmVcpu *v)
{
    struct kvm_run *run = v->run;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    unsigned size = run->io.size;

    bql_lock();
    for (uint32_t i = 0; i < run->io.count; i++, data += size) {
        if (run->io.direction == KVM_EXIT_IO_OUT) {
            pio_write(run->io.port, load_le(data, size), size);
        } else {
            store_le(data, size, pio_read(run->io.port, size));
        }
    }
    bql_unlock();
}

static void handle_mmio(KvmVcpu *v)
{
    struct kvm_run *run = v->run;
    unsigned len = run->mmio.len <= 8 ? run->mmio.len : 8;
    uint64_t value = ~0ULL;

    bql_lock();
    if (run->mmio.is_write) {
        mmio_write(run->mmio.phys_addr, load_le(run->mmio.data, len), len);
    } else {
        mmio_read(run->mmio.phys_addr, &value, len);
        store_le(run->mmio.data, len, value);
    }
    bql_unlock();
}

/* "CS:RIP 0000:7c05 (linear 0x7c05)" for error messages. */
static char *describe_pc(KvmVcpu *v)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;

    if (kvm_vcpu_ioctl(v, KVM_GET_REGS, &regs) < 0 || kvm_vcpu_ioctl(v, KVM_GET_SREGS, &sregs) < 0) {
        return g_strdup("an unknown address");
    }
    return g_strdup_printf("CS:RIP %04x:%llx (linear 0x%llx, CR0 0x%llx)", sregs.cs.selector,
                           (unsigned long long)regs.rip, (unsigned long long)(sregs.cs.base + regs.rip),
                           (unsigned long long)sregs.cr0);
}

static const char *internal_error_name(uint32_t suberror)
{
    switch (suberror) {
    case KVM_INTERNAL_ERROR_EMULATION: return "emulation failure (KVM cannot emulate the instruction)";
    case KVM_INTERNAL_ERROR_SIMUL_EX: return "exception while delivering an exception";
    case KVM_INTERNAL_ERROR_DELIVERY_EV: return "exit while delivering an event";
    case KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON: return "unexpected exit reason";
    default: return "unknown suberror";
    }
}

static VcpuExit report_internal_error(KvmVcpu *v)
{
    struct kvm_run *run = v->run;
    g_autofree char *pc = describe_pc(v);
    GString *bytes = g_string_new("");

    if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION && run->emulation_failure.ndata >= 3 &&
        (run->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
        unsigned n = run->emulation_failure.insn_size <= 15 ? run->emulation_failure.insn_size : 15;
        g_string_append(bytes, ", instruction bytes");
        for (unsigned i = 0; i < n; i++) {
            g_string_append_printf(bytes, " %02x", run->emulation_failure.insn_bytes[i]);
        }
    }
    error_report("KVM internal error on vCPU %d: suberror %u, %s, at %s%s; stopping the guest "
                 "(run state internal-error)", v->cpu->index, run->internal.suberror,
                 internal_error_name(run->internal.suberror), pc, bytes->str);
    g_string_free(bytes, TRUE);
    return VCPU_EXIT_ERROR;
}

static VcpuExit report_fatal_exit(KvmVcpu *v, const char *what)
{
    g_autofree char *pc = describe_pc(v);

    error_report("vCPU %d: %s at %s; stopping the guest (run state internal-error)",
                 v->cpu->index, what, pc);
    return VCPU_EXIT_ERROR;
}

static VcpuExit handle_system_event(KvmVcpu *v)
{
    switch (v->run->system_event.type) {
    case KVM_SYSTEM_EVENT_SHUTDOWN:
        vm_request_shutdown(SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
        return VCPU_EXIT_HALT;
    case KVM_SYSTEM_EVENT_RESET:
        vm_request_reset(SHUTDOWN_CAUSE_GUEST_RESET);
        return VCPU_EXIT_HALT;
    default:
        return report_fatal_exit(v, "guest crash (KVM_EXIT_SYSTEM_EVENT)");
    }
}

/* One exit: < 0 keeps running, otherwise the VcpuExit to return. */
static int handle_exit(KvmVcpu *v)
{
    struct kvm_run *run = v->run;
    g_autofree char *what = NULL;

    switch (run->exit_reason) {
    case KVM_EXIT_IO:
        handle_io(v);
        return -1;
    case KVM_EXIT_MMIO:
        handle_mmio(v);
        return -1;
    case KVM_EXIT_INTR:
    case KVM_EXIT_IRQ_WINDOW_OPEN:
        return -1;
    case KVM_EXIT_DIRTY_RING_FULL:
        /* KVM runs the vCPU again only once its ring has room. */
        kvm_dirty_ring_full(v);
        return -1;
    case KVM_EXIT_HLT:
        /* Nothing can interrupt it without an irqchip: keep it parked,
         * also across migration (the flag travels in the "cpu" section). */
        v->state.parked = !kvm_state.irqchip;
        return VCPU_EXIT_HALT;
    case KVM_EXIT_SHUTDOWN:
        return report_fatal_exit(v, "triple fault (KVM_EXIT_SHUTDOWN)");
    case KVM_EXIT_SYSTEM_EVENT:
        return handle_system_event(v);
    case KVM_EXIT_INTERNAL_ERROR:
        return report_internal_error(v);
    case KVM_EXIT_FAIL_ENTRY:
        what = g_strdup_printf("VM entry failed (hardware reason 0x%llx)",
                               (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
        return report_fatal_exit(v, what);
    default:
        what = g_strdup_printf("unhandled KVM exit reason %u", run->exit_reason);
        return report_fatal_exit(v, what);
    }
}

VcpuExit kvm_vcpu_exec(CPUState *cpu)
{
    KvmVcpu *v = cpu->accel;

    if (v->state.parked) {
        return VCPU_EXIT_HALT;
    }
    for (;;) {
        __atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
        if (cpu_should_stop(cpu)) {
            return VCPU_EXIT_STOP;
        }
        if (v->ring) {
            /* kvm_dirty_ring_full: was the ring reaped since this entry? */
            v->ring_harvests_at_run = __atomic_load_n(&v->ring_harvests, __ATOMIC_RELAXED);
        }
        if (ioctl(v->fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                eat_kick_signal();
                continue;
            }
            error_report("vCPU %d: KVM_RUN: %s; stopping the guest (run state internal-error)",
                         cpu->index, strerror(errno));
            return VCPU_EXIT_ERROR;
        }
        int why = handle_exit(v);
        if (why >= 0) {
            return why;
        }
    }
}
