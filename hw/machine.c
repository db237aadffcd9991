/*
 * The board, built from a MachineConfig:
 *   pc    RAM block "pc.ram" (ram_size bytes at guest address 0; split as
 *         QEMU 7.2's i440fx does when it does not fit below the 32-bit hole,
 *         see pc_ram_split), a 16550
 *         UART at 0x3f8 on the -serial backend (VMState "serial" 0) wired to
 *         IRQ 4, the small port devices of hw/ports.c, the accelerator (KVM
 *         brings the in-kernel PIC, IOAPIC, LAPIC and PIT), the boot disk
 *         (hw/loader.c, again at every reset) when the accelerator runs guest
 *         code, and -smp vCPUs created paused.
 *
 * Interrupt lines: devices call machine_set_irq(line, level); the board
 * remembers the level and hands it to the accelerator's set_irq (KVM:
 * KVM_IRQ_LINE). The remembered levels are the VMState section
 * "irq-lines" (instance 0, version 1; registered after the vCPUs, so it is
 * the last device section and loads after the interrupt controllers and
 * the vCPUs):
 *   levels u32     bit n set = line n was high
 * Loading re-asserts every line that was high: KVM's SET_IRQCHIP restores
 * IRR/ISR but not its per-source line-level bookkeeping, so without this a
 * line that is high stays unknown to KVM until the device lowers it. Only
 * registered when the accelerator has an interrupt controller.
 *   none  RAM block "ram" (if -m is non-zero), the accelerator, the boot
 *         disk as on pc, no vCPUs and no devices. As in QEMU the none board has no UART, so a
 *         -serial option is accepted and ignored (no file is created).
 */
#include <string.h>
#include <glib.h>
#include "accel.h"
#include "block.h"
#include "device-spec.h"
#include "chardev-spec.h"
#include "cpus.h"
#include "hw-bus.h"
#include "loader.h"
#include "machine.h"
#include "memory.h"
#include "ports.h"
#include "ram-prealloc.h"
#include "serial.h"
#include "timer-state.h"
#include "virtio-blk.h"
#include "vm.h"
#include "vmstate.h"

#define COM1_BASE 0x3f8
#define COM1_IRQ 4
#define IRQ_LINES 24

static SerialState *com1;
static bool accel_inited;
static MachineConfig config;        /* machine_init's, strings copied */
static BlockBackend *boot_disk;     /* the drive loaded into RAM, or NULL */

/* ---- self-registered pc devices (hw/ports.h) ------------------------------ */

#define PC_DEVICES_MAX 8
static const PcDevice *pc_devices[PC_DEVICES_MAX];
static int n_pc_devices;

void pc_device_register(const PcDevice *dev)
{
    if (n_pc_devices < PC_DEVICES_MAX) {
        pc_devices[n_pc_devices++] = dev;
    }
}

static bool pc_devices_create(Error **errp)
{
    for (int i = 0; i < n_pc_devices; i++) {
        if (!pc_devices[i]->create(errp)) {
            error_prepend(errp, "%s: ", pc_devices[i]->name);
            return false;
        }
    }
    return true;
}

/* ---- interrupt lines ------------------------------------------------------ */

typedef struct IrqLines {
    uint32_t levels;            /* bit n: line n high */
    bool registered;
} IrqLines;

static IrqLines irq_lines;

void machine_set_irq(int line, int level)
{
    const AccelOps *ops = accel_current();

    if (line < 0 || line >= IRQ_LINES) {
        return;
    }
    if (level) {
        irq_lines.levels |= 1u << line;
    } else {
        irq_lines.levels &= ~(1u << line);
    }
    if (ops && ops->set_irq) {
        ops->set_irq(line, level);
    }
}

static void serial_irq(void *opaque, int level)
{
    machine_set_irq(COM1_IRQ, level);
}

static bool irq_lines_post_load(void *opaque, int version_id, Error **errp)
{
    const AccelOps *ops = accel_current();

    for (int line = 0; line < IRQ_LINES; line++) {
        if ((irq_lines.levels & (1u << line)) && ops && ops->set_irq) {
            ops->set_irq(line, 1);
        }
    }
    return true;
}

static const VMStateField irq_lines_fields[] = {
    VMSTATE_UINT32(levels, IrqLines),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDescription vmstate_irq_lines = {
    .name = "irq-lines",
    .version_id = 1,
    .minimum_version_id = 1,
    .post_load = irq_lines_post_load,
    .fields = irq_lines_fields,
};

/* After the vCPUs, so that loading re-asserts lines last. */
static bool machine_register_irq_lines(Error **errp)
{
    const AccelOps *ops = accel_current();

    if (!ops || !ops->set_irq || !ops->set_irq(0, 0)) {
        return true;                        /* no interrupt controller */
    }
    if (!vmstate_register("irq-lines", 0, &vmstate_irq_lines, &irq_lines, errp)) {
        return false;
    }
    irq_lines.registered = true;
    return true;
}

static bool machine_add_serial(Error **errp)
{
    ChardevSpec spec = { .kind = CHARDEV_NONE };

    if (config.serial_chardev) {
        chardev_spec_copy(&spec, config.serial_chardev);
    } else if (config.serial && !chardev_spec_parse(config.serial, &spec, errp)) {
        error_prepend(errp, "-serial %s: ", config.serial);
        return false;
    }
    com1 = serial_create(COM1_BASE, 0, &spec, errp);
    chardev_spec_clear(&spec);
    if (com1) {
        serial_set_irq(com1, serial_irq, NULL);
    }
    return com1 != NULL;
}

/* QEMU 7.2's pc (i440fx) layout, so the guest sees the same memory map:
 * RAM up to 3.5 GiB (max-ram-below-4g's default) stays below 4 GiB; from
 * 3.5 GiB on, the low part is cut to a gigabyte-aligned 3 GiB and the rest
 * is mapped at 4 GiB. The hole keeps the PCI window, IOAPIC (0xfec00000),
 * LAPIC (0xfee00000), KVM's TSS/identity map and the BIOS area free. */
#define PC_MAX_RAM_BELOW_4G 0xe0000000ULL
#define PC_LOWMEM_SPLIT 0xc0000000ULL
#define PC_ABOVE_4G_BASE 0x100000000ULL

static RAMBlock *pc_ram_add(uint64_t ram_size, Error **errp)
{
    uint64_t lowmem = ram_size >= PC_MAX_RAM_BELOW_4G ? PC_LOWMEM_SPLIT : ram_size;

    return ram_block_add_split("pc.ram", 0, ram_size, lowmem, PC_ABOVE_4G_BASE, errp);
}

/* The drive a BIOS would boot: the first IDE disk, else the first virtio
 * disk that has a boot signature (a blank data disk is not booted). */
static BlockBackend *machine_find_boot_disk(void)
{
    BlockBackend *virtio = NULL;
    uint8_t sig[2];

    for (BlockBackend *blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        if (!strcmp(blk_interface(blk), "ide")) {
            return blk;
        }
        if (!virtio && !strcmp(blk_interface(blk), "virtio") && blk_getlength(blk) >= 512 &&
            blk_pread(blk, 510, sig, 2) == 0 && sig[0] == 0x55 && sig[1] == 0xaa) {
            virtio = blk;
        }
    }
    return virtio;
}

/* Copy the boot disk to RAM (vCPU 0's entry point is in it). */
static bool machine_load_boot_disk(Error **errp)
{
    if (boot_disk && !loader_load_boot_sector(boot_disk, errp)) {
        error_prepend(errp, "-drive file=%s: ", blk_filename(boot_disk));
        return false;
    }
    return true;
}

/* Each -device, in command-line order. */
static bool machine_create_devices(Error **errp)
{
    for (int i = 0; i < config.n_devices; i++) {
        if (!device_create(config.devices[i], errp)) {
            /* As QEMU: the option as given names the culprit. */
            error_prepend(errp, "-device %s: ", config.devices[i]->text);
            return false;
        }
    }
    return true;
}

static bool machine_build(bool pc, Error **errp)
{
    const AccelOps *ops;
    AccelConfig accel_cfg;

    /* QEMU registers the clock offsets ("timer") first on every machine. */
    if (!accel_select(config.accel, errp) || !timers_state_register(errp)) {
        return false;
    }
    ops = accel_current();
    boot_disk = ops->runs_guest_code ? machine_find_boot_disk() : NULL;
    accel_cfg = (AccelConfig) { .opts = config.accel_opts, .boot_code = boot_disk };
    if (pc && config.ram_size == 0) {
        error_setg(errp, "ram size too small");
        return false;
    }
    if (config.ram_size &&
        !(pc ? pc_ram_add(config.ram_size, errp)
             : ram_block_add("ram", 0, config.ram_size, errp))) {
        return false;
    }
    if (config.mem_prealloc && !ram_prealloc_all(config.smp_cpus, errp)) {
        return false;
    }
    if (pc && (!machine_add_serial(errp) || !pc_devices_create(errp))) {
        return false;
    }
    if (ops->init && !ops->init(&accel_cfg, errp)) {
        return false;
    }
    accel_inited = true;
    if (!machine_create_devices(errp) || !virtio_blk_create_drives(errp) ||
        !machine_load_boot_disk(errp)) {
        return false;
    }
    return !pc || (cpus_create(config.smp_cpus > 0 ? config.smp_cpus : 1, errp) &&
                   machine_register_irq_lines(errp));
}

static void machine_config_clear(void)
{
    g_free((char *)config.type);
    g_free((char *)config.accel);
    g_free((char *)config.accel_opts);
    g_free((char *)config.serial);
    config = (MachineConfig) { 0 };
    boot_disk = NULL;
}

bool machine_init(const MachineConfig *cfg, Error **errp)
{
    assert(bql_locked());
    const char *type = cfg->type ? cfg->type : "pc";
    bool pc = !strcmp(type, "pc");

    if (!pc && strcmp(type, "none")) {
        error_setg(errp, "unsupported machine type \"%s\"", type);
        return false;
    }
    config = (MachineConfig) {
        .type = g_strdup(cfg->type), .ram_size = cfg->ram_size, .smp_cpus = cfg->smp_cpus,
        .mem_prealloc = cfg->mem_prealloc,
        .topology = cfg->topology, .accel = g_strdup(cfg->accel), .accel_opts = g_strdup(cfg->accel_opts),
        .serial = g_strdup(cfg->serial),
        .serial_chardev = cfg->serial_chardev,      /* used by machine_init only */
        .devices = cfg->devices, .n_devices = cfg->n_devices,
    };
    bool built = machine_build(pc, errp);
    config.serial_chardev = NULL;       /* the caller's: not kept */
    config.devices = NULL;
    config.n_devices = 0;
    if (!built) {
        machine_cleanup();
        return false;
    }
    return true;
}

const char *machine_type(void)
{
    return config.type;
}

static int level_or_one(int n)
{
    return n > 0 ? n : 1;
}

void machine_cpu_position(int index, CpuPosition *pos)
{
    const CpuTopology *t = &config.topology;
    int threads = level_or_one(t->threads), dies = level_or_one(t->dies);
    int cores = t->cores > 0 ? t->cores : level_or_one(config.smp_cpus);

    pos->thread = index % threads;
    pos->core = (index / threads) % cores;
    pos->die = (index / (threads * cores)) % dies;
    pos->socket = index / (threads * cores * dies);
    pos->dies = dies;
}

bool machine_reset(Error **errp)
{
    assert(bql_locked());
    const AccelOps *ops = accel_current();

    /* Disks first: their reset drains requests that could still write
     * guest RAM over the boot disk. Then the boot disk, then the
     * accelerator: its interrupt controllers go back to power-on state,
     * then devices lower their lines into them. */
    virtio_blk_reset_all();
    if (!machine_load_boot_disk(errp) || (ops && ops->reset && !ops->reset(errp))) {
        return false;
    }
    if (com1) {
        serial_reset(com1);
    }
    for (int i = 0; i < n_pc_devices; i++) {
        pc_devices[i]->reset();
    }
    cpus_reset();
    return true;
}

void machine_cleanup(void)
{
    assert(bql_locked());
    const AccelOps *ops = accel_current();

    if (cpus_count()) {
        cpus_destroy();
    }
    if (ops && ops->cleanup && accel_inited) {
        ops->cleanup();
    }
    accel_inited = false;
    if (irq_lines.registered) {
        vmstate_unregister(&vmstate_irq_lines, &irq_lines);
    }
    irq_lines = (IrqLines) { 0 };
    serial_destroy(com1);
    com1 = NULL;
    virtio_blk_destroy_all();
    bus_cleanup();
    ram_blocks_free_all();
    accel_deselect();
    machine_config_clear();
}
