/*
 * The board, built from vm_config:
 *   pc    RAM block "pc.ram" (ram_size bytes at guest address 0), a 16550
 *         UART at 0x3f8 on the -serial backend (VMState "serial" 0), the
 *         accelerator, and -smp vCPUs created paused.
 *   none  RAM block "ram" (if -m is non-zero), the accelerator, no vCPUs
 *         and no devices. As in QEMU the none board has no UART, so a
 *         -serial option is accepted and ignored (no file is created).
 */
#include <string.h>
#include "accel.h"
#include "cpus.h"
#include "hw-bus.h"
#include "machine.h"
#include "memory.h"
#include "monitor.h"
#include "serial.h"
#include "timer-state.h"
#include "vm.h"

#define COM1_BASE 0x3f8

static SerialState *com1;
static bool accel_inited;

static bool machine_add_serial(Error **errp)
{
    ChardevSpec spec = { .kind = CHARDEV_NONE };

    if (vm_config.serial && !chardev_spec_parse(vm_config.serial, &spec, errp)) {
        error_prepend(errp, "-serial %s: ", vm_config.serial);
        return false;
    }
    com1 = serial_create(COM1_BASE, 0, &spec, errp);
    chardev_spec_clear(&spec);
    return com1 != NULL;
}

static bool machine_build(bool pc, Error **errp)
{
    const AccelOps *ops;

    /* QEMU registers the clock offsets ("timer") first on every machine. */
    if (!accel_select(vm_config.accel, errp) || !timers_state_register(errp)) {
        return false;
    }
    ops = accel_current();
    if (pc && vm_config.ram_size == 0) {
        error_setg(errp, "ram size too small");
        return false;
    }
    if (vm_config.ram_size &&
        !ram_block_add(pc ? "pc.ram" : "ram", 0, vm_config.ram_size, errp)) {
        return false;
    }
    if (pc && !machine_add_serial(errp)) {
        return false;
    }
    if (ops->init && !ops->init(vm_config.accel_opts, errp)) {
        return false;
    }
    accel_inited = true;
    return !pc || cpus_create(vm_config.smp_cpus > 0 ? vm_config.smp_cpus : 1, errp);
}

bool machine_init(Error **errp)
{
    const char *type = vm_config.machine ? vm_config.machine : "pc";
    bool pc = !strcmp(type, "pc");

    if (!pc && strcmp(type, "none")) {
        error_setg(errp, "unsupported machine type \"%s\"", type);
        return false;
    }
    if (!machine_build(pc, errp)) {
        machine_cleanup();
        return false;
    }
    return true;
}

void machine_reset(void)
{
    const AccelOps *ops = accel_current();

    if (com1) {
        serial_reset(com1);
    }
    if (ops && ops->reset) {
        ops->reset();
    }
    cpus_reset();
}

void machine_cleanup(void)
{
    const AccelOps *ops = accel_current();

    if (cpus_count()) {
        cpus_destroy();
    }
    if (ops && ops->cleanup && accel_inited) {
        ops->cleanup();
    }
    accel_inited = false;
    serial_destroy(com1);
    com1 = NULL;
    bus_cleanup();
    ram_blocks_free_all();
    accel_deselect();
}
