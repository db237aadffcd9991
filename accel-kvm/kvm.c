/*
 * The KVM accelerator: /dev/kvm, the VM, its capabilities and memory slots,
 * and the AccelOps that system/cpus.c and system/memory.c drive.
 *
 * Options (-accel kvm,OPTS; AccelConfig.opts):
 *   kernel-irqchip=on|off   on (default): in-kernel PIC master/slave, IOAPIC
 *                           and LAPIC (KVM_CREATE_IRQCHIP) and PIT
 *                           (KVM_CREATE_PIT2, with the port 0x61 dummy);
 *                           devices raise lines with KVM_IRQ_LINE, HLT waits
 *                           in the kernel. off: the old machine without
 *                           interrupts (HLT parks the vCPU for good).
 *   dirty-ring-size=N       KVM's dirty ring with N entries per vCPU (a power
 *                           of two; 0, the default: the dirty bitmap), as
 *                           QEMU 7.2 (kvm-dirty-ring.c)
 *   x-cpuid-hide=F[+F...]   test only: hide CPU features from this host's
 *                           supported CPUID (kvm-cpu-model.c)
 *
 * Start-up (init, BQL, RAM blocks exist, no vCPU yet):
 *   open /dev/kvm, API version 12, KVM_CREATE_VM, capabilities, TSS and
 *   identity-map addresses (below 4 GiB, above any RAM we map there),
 *   [irqchip + PIT], MANUAL_DIRTY_LOG_PROTECT2 (+ INITIALLY_SET), supported
 *   CPUID (minus x-cpuid-hide) and the MSR index list, the power-on state
 *   of irqchip and PIT, one memory slot per RAM block mapping (a split
 *   "pc.ram" has two). The board loads the boot disk (hw/loader.c); vCPU 0
 *   starts at its entry when AccelConfig.boot_code says there is one, else
 *   it stays parked.
 *
 * The per-VM VMState sections (kvm-cpu-model, kvm-pit, kvm-clock,
 * kvm-irqchip x3) are registered with vCPU 0, before its "cpu" section, so
 * they load before the "cpu" sections. A board without vCPUs (-M none)
 * writes none of them: QEMU 7.2's -M none -accel kvm writes only ram, timer
 * and globalstate, and refuses a stream with any other section.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <glib.h>
#include "accel.h"
#include "cpus.h"
#include "kvm-int.h"

#define KVM_TSS_ADDR 0xfffbd000UL
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ULL

KvmState kvm_state = { .sys_fd = -1, .vm_fd = -1, .dirty_lock = PTHREAD_MUTEX_INITIALIZER };

int kvm_ioctl(int fd, unsigned long req, void *arg)
{
    int r;

    do {
        r = ioctl(fd, req, arg);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}

int kvm_sys_ioctl(unsigned long req, void *arg)
{
    return kvm_ioctl(kvm_state.sys_fd, req, arg);
}

int kvm_vm_ioctl(unsigned long req, void *arg)
{
    return kvm_ioctl(kvm_state.vm_fd, req, arg);
}

int kvm_check_extension(long cap)
{
    int r = ioctl(kvm_state.vm_fd >= 0 ? kvm_state.vm_fd : kvm_state.sys_fd, KVM_CHECK_EXTENSION, cap);

    return r > 0 ? r : 0;
}

static bool kvm_parse_opts(const char *opts, Error **errp)
{
    g_auto(GStrv) items = g_strsplit(opts ? opts : "", ",", -1);

    kvm_state.irqchip = true;
    for (int i = 0; items[i]; i++) {
        if (!*items[i]) {
            continue;
        }
        if (!strcmp(items[i], "kernel-irqchip=on") || !strcmp(items[i], "kernel-irqchip")) {
            kvm_state.irqchip = true;
        } else if (!strcmp(items[i], "kernel-irqchip=off")) {
            kvm_state.irqchip = false;
        } else if (g_str_has_prefix(items[i], "dirty-ring-size=")) {
            if (!kvm_dirty_ring_parse(items[i] + strlen("dirty-ring-size="), errp)) {
                return false;
            }
        } else if (g_str_has_prefix(items[i], "x-cpuid-hide=")) {
            g_free(kvm_state.cpuid_hide);
            kvm_state.cpuid_hide = g_strdup(items[i] + strlen("x-cpuid-hide="));
        } else {
            const char *eq = strchr(items[i], '=');
            error_setg(errp, "Invalid parameter '%.*s' for accelerator kvm",
                       (int)(eq ? eq - items[i] : (long)strlen(items[i])), items[i]);
            return false;
        }
    }
    return true;
}

static bool kvm_open_vm(Error **errp)
{
    kvm_state.sys_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm_state.sys_fd < 0) {
        error_setg_errno(errp, errno, "Could not access KVM kernel module");
        return false;
    }
    int version = ioctl(kvm_state.sys_fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        error_setg(errp, "KVM API version %d is not supported (migvm needs %d)", version, KVM_API_VERSION);
        return false;
    }
    int fd = kvm_sys_ioctl(KVM_CREATE_VM, 0);
    if (fd < 0) {
        error_setg_errno(errp, -fd, "KVM_CREATE_VM failed");
        return false;
    }
    kvm_state.vm_fd = fd;
    kvm_state.run_size = kvm_sys_ioctl(KVM_GET_VCPU_MMAP_SIZE, 0);
    if (kvm_state.run_size < (int)sizeof(struct kvm_run)) {
        error_setg(errp, "KVM_GET_VCPU_MMAP_SIZE returned %d", kvm_state.run_size);
        return false;
    }
    return true;
}

static bool kvm_enable_cap(uint32_t cap, uint64_t arg0, Error **errp)
{
    struct kvm_enable_cap ec = { .cap = cap, .args = { arg0 } };
    int r = kvm_vm_ioctl(KVM_ENABLE_CAP, &ec);

    if (r < 0) {
        error_setg_errno(errp, -r, "KVM_ENABLE_CAP(%u)", cap);
        return false;
    }
    return true;
}

static bool kvm_probe_caps(Error **errp)
{
    if (!kvm_check_extension(KVM_CAP_IMMEDIATE_EXIT)) {
        error_setg(errp, "KVM lacks KVM_CAP_IMMEDIATE_EXIT (needed to pause vCPUs)");
        return false;
    }
    if (!kvm_check_extension(KVM_CAP_USER_MEMORY) || !kvm_check_extension(KVM_CAP_SET_TSS_ADDR)) {
        error_setg(errp, "KVM lacks user memory slots or KVM_SET_TSS_ADDR");
        return false;
    }
    kvm_state.cap_sregs2 = kvm_check_extension(KVM_CAP_SREGS2);
    kvm_state.cap_xsave = kvm_check_extension(KVM_CAP_XSAVE);
    kvm_state.cap_xcrs = kvm_check_extension(KVM_CAP_XCRS);
    kvm_state.cap_debugregs = kvm_check_extension(KVM_CAP_DEBUGREGS);
    kvm_state.cap_vcpu_events = kvm_check_extension(KVM_CAP_VCPU_EVENTS);
    int xsave2 = kvm_check_extension(KVM_CAP_XSAVE2);
    kvm_state.xsave_size = xsave2 > 0 ? xsave2 : (kvm_state.cap_xsave ? (int)sizeof(struct kvm_xsave) : 0);
    if (kvm_state.xsave_size > KVM_CPU_XSAVE_MAX) {
        error_setg(errp, "KVM XSAVE area of %d bytes exceeds migvm's %d", kvm_state.xsave_size,
                   KVM_CPU_XSAVE_MAX);
        return false;
    }
    if (kvm_check_extension(KVM_CAP_EXCEPTION_PAYLOAD)) {
        kvm_state.cap_exception_payload = kvm_enable_cap(KVM_CAP_EXCEPTION_PAYLOAD, 1, NULL);
    }
    if (!kvm_dirty_ring_enable(errp)) {
        return false;
    }
    /* The ring replaces the bitmap, and INITIALLY_SET would keep KVM from
     * write-protecting pages when logging starts: not with the ring. */
    int manual = kvm_state.dirty_ring_size ? 0 : kvm_check_extension(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
    if (manual & KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE) {
        uint64_t flags = manual & (KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE | KVM_DIRTY_LOG_INITIALLY_SET);
        kvm_state.cap_manual_dirty = kvm_enable_cap(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, flags, NULL);
        kvm_state.cap_dirty_initially_set = kvm_state.cap_manual_dirty &&
                                            (flags & KVM_DIRTY_LOG_INITIALLY_SET);
    }
    return true;
}

/* x86 needs a TSS (three pages) and an identity-mapped page table page
 * below 4 GiB for real mode/unpaged guests; neither may overlap RAM. */
static bool kvm_setup_vm_addresses(Error **errp)
{
    uint64_t ident = KVM_IDENTITY_MAP_ADDR;
    int r;

    if (ram_block_by_gpa(KVM_IDENTITY_MAP_ADDR) || ram_block_by_gpa(KVM_TSS_ADDR + 0x2fff)) {
        error_setg(errp, "guest RAM overlaps the KVM TSS at 0x%lx", KVM_TSS_ADDR);
        return false;
    }
    if (kvm_check_extension(KVM_CAP_SET_IDENTITY_MAP_ADDR) &&
        (r = kvm_vm_ioctl(KVM_SET_IDENTITY_MAP_ADDR, &ident)) < 0) {
        error_setg_errno(errp, -r, "KVM_SET_IDENTITY_MAP_ADDR");
        return false;
    }
    r = ioctl(kvm_state.vm_fd, KVM_SET_TSS_ADDR, KVM_TSS_ADDR);
    if (r < 0) {
        error_setg_errno(errp, errno, "KVM_SET_TSS_ADDR");
        return false;
    }
    return true;
}

static bool kvm_setup_irqchip(Error **errp)
{
    int r;

    if (!kvm_state.irqchip) {
        return true;
    }
    if (!kvm_check_extension(KVM_CAP_IRQCHIP)) {
        error_setg(errp, "kernel-irqchip=on: KVM has no in-kernel irqchip");
        return false;
    }
    if ((r = kvm_vm_ioctl(KVM_CREATE_IRQCHIP, NULL)) < 0) {
        error_setg_errno(errp, -r, "KVM_CREATE_IRQCHIP");
        return false;
    }
    if (!kvm_check_extension(KVM_CAP_PIT2) || !kvm_check_extension(KVM_CAP_PIT_STATE2)) {
        error_setg(errp, "kernel-irqchip=on: KVM has no in-kernel PIT (KVM_CAP_PIT2, PIT_STATE2)");
        return false;
    }
    struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
    if ((r = kvm_vm_ioctl(KVM_CREATE_PIT2, &pit)) < 0) {
        error_setg_errno(errp, -r, "KVM_CREATE_PIT2");
        return false;
    }
    /* The flags change the x2APIC ID layout of the migrated LAPIC state: a
     * kernel that offers them but refuses would leave it unknown, so fail. */
    return !kvm_check_extension(KVM_CAP_X2APIC_API) ||
           kvm_enable_cap(KVM_CAP_X2APIC_API,
                          KVM_X2APIC_API_USE_32BIT_IDS | KVM_X2APIC_API_DISABLE_BROADCAST_QUIRK, errp);
}

/* KVM_GET_SUPPORTED_CPUID: grow the buffer until the kernel's list fits. */
static bool kvm_load_supported_cpuid(Error **errp)
{
    for (int n = 64; n <= 4096; n *= 2) {
        struct kvm_cpuid2 *c = g_malloc0(sizeof(*c) + n * sizeof(c->entries[0]));
        c->nent = n;
        int r = kvm_sys_ioctl(KVM_GET_SUPPORTED_CPUID, c);
        if (r == 0) {
            kvm_state.cpuid = c;
            return kvm_cpu_model_apply_hide(kvm_state.cpuid_hide, errp);
        }
        g_free(c);
        if (r != -E2BIG) {
            error_setg_errno(errp, -r, "KVM_GET_SUPPORTED_CPUID");
            return false;
        }
    }
    error_setg(errp, "KVM_GET_SUPPORTED_CPUID: too many entries");
    return false;
}

static bool kvm_load_msr_list(Error **errp)
{
    struct kvm_msr_list probe = { .nmsrs = 0 };
    int r = kvm_sys_ioctl(KVM_GET_MSR_INDEX_LIST, &probe);

    if (r < 0 && r != -E2BIG) {
        error_setg_errno(errp, -r, "KVM_GET_MSR_INDEX_LIST");
        return false;
    }
    struct kvm_msr_list *list = g_malloc0(sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
    list->nmsrs = probe.nmsrs;
    r = kvm_sys_ioctl(KVM_GET_MSR_INDEX_LIST, list);
    if (r < 0) {
        g_free(list);
        error_setg_errno(errp, -r, "KVM_GET_MSR_INDEX_LIST");
        return false;
    }
    kvm_state.n_msr_list = list->nmsrs;
    kvm_state.msr_list = g_memdup2(list->indices, list->nmsrs * sizeof(uint32_t));
    g_free(list);
    return true;
}

static bool kvm_add_slots(Error **errp)
{
    RAMBLOCK_FOREACH(b) {
        RAMMapping m[RAM_BLOCK_MAX_MAPPINGS];
        int n = ram_block_mappings(b, m);

        for (int i = 0; i < n; i++) {
            if (kvm_state.n_slots == KVM_MAX_SLOTS) {
                error_setg(errp, "too many RAM mappings for KVM (at most %d slots)", KVM_MAX_SLOTS);
                return false;
            }
            KvmSlot *slot = &kvm_state.slots[kvm_state.n_slots];
            *slot = (KvmSlot) { .id = (uint32_t)kvm_state.n_slots, .block = b,
                                .gpa = m[i].gpa, .offset = m[i].offset, .size = m[i].len };
            if (!kvm_slot_set_flags(slot, 0, errp)) {
                slot->block = NULL;
                return false;
            }
            kvm_state.n_slots++;
        }
    }
    return true;
}

static void kvm_cleanup(void)
{
    for (int i = 0; i < kvm_state.n_slots; i++) {
        g_free(kvm_state.slots[i].dirty);
    }
    if (kvm_state.vm_fd >= 0) {
        close(kvm_state.vm_fd);
    }
    if (kvm_state.sys_fd >= 0) {
        close(kvm_state.sys_fd);
    }
    kvm_cpu_model_fini();
    kvm_vm_state_fini();
    g_free(kvm_state.cpuid);
    g_free(kvm_state.cpuid_hide);
    g_free(kvm_state.msr_list);
    g_free(kvm_state.sync_stats_path);
    memset(&kvm_state, 0, sizeof(kvm_state));
    kvm_state.sys_fd = kvm_state.vm_fd = -1;
    pthread_mutex_init(&kvm_state.dirty_lock, NULL);
}

static bool kvm_init(const AccelConfig *cfg, Error **errp)
{
    bool ok;

    kvm_state.boot_code = cfg->boot_code;
    kvm_state.sync_stats_path = g_strdup(getenv("MIGVM_DIRTY_SYNC_STATS"));
    if (!kvm_parse_opts(cfg->opts, errp)) {
        kvm_cleanup();
        return false;
    }
    ok = kvm_open_vm(errp) && kvm_probe_caps(errp) &&
              kvm_setup_vm_addresses(errp) && kvm_setup_irqchip(errp) &&
              kvm_load_supported_cpuid(errp) && kvm_load_msr_list(errp) &&
              kvm_vm_state_init(errp) && kvm_add_slots(errp);
    if (!ok) {
        error_prepend(errp, "failed to initialize kvm: ");
        kvm_cleanup();
    }
    return ok;
}

/* KVM_IRQ_LINE: ISA IRQs 0-15 reach both PICs and the IOAPIC (KVM's
 * default routing), 16-23 the IOAPIC. */
static bool kvm_set_irq(int line, int level)
{
    struct kvm_irq_level irq = { .irq = (uint32_t)line, .level = (uint32_t)!!level };
    int r;

    if (!kvm_state.irqchip) {
        return false;
    }
    /* KVM_IRQ_LINE fails only for a line its irqchip does not have, and
     * the board drives lines 0-23 only. The device raising it has no other
     * path, so report the failure and still answer "irqchip present". */
    if ((r = kvm_vm_ioctl(KVM_IRQ_LINE, &irq)) < 0) {
        error_report("KVM_IRQ_LINE %d level %d: %s", line, level, strerror(-r));
    }
    return true;
}

static bool kvm_reset(Error **errp)
{
    kvm_vm_state_reset();
    for (int i = 0; i < cpus_count(); i++) {
        KvmVcpu *v = cpus_get(i)->accel;
        if (v && !kvm_vcpu_reset_state(v, errp)) {
            error_prepend(errp, "vCPU %d reset: ", i);
            return false;
        }
    }
    return true;
}

static bool kvm_vcpu_init(CPUState *cpu, Error **errp)
{
    if (cpu->index == 0 && !(kvm_cpu_model_init(errp) && kvm_vm_state_register(errp))) {
        return false;
    }
    return kvm_vcpu_create(cpu, errp);
}

static const AccelOps kvm_ops = {
    .name = "kvm",
    .runs_guest_code = true,
    .init = kvm_init,
    .vcpu_init = kvm_vcpu_init,
    .vcpu_thread_init = kvm_vcpu_thread_init,
    .vcpu_exec = kvm_vcpu_exec,
    .vcpu_kick = kvm_vcpu_kick,
    .vcpu_destroy = kvm_vcpu_destroy,
    .dirty_log_start = kvm_dirty_log_start,
    .dirty_log_stop = kvm_dirty_log_stop,
    .dirty_log_sync = kvm_dirty_log_sync,
    .dirty_ring_enabled = kvm_dirty_ring_enabled,
    .vcpu_dirty_counts = kvm_vcpu_dirty_counts,
    .synchronize_state = kvm_synchronize_state,
    .set_irq = kvm_set_irq,
    .vm_state_change = kvm_vm_state_change,
    .reset = kvm_reset,
    .dump_registers = kvm_dump_registers,
    .cleanup = kvm_cleanup,
};

ACCEL_REGISTER(kvm_ops)
