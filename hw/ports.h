/*
 * Optional pc-board devices that register themselves (hw/machine.c creates
 * every registered one on the pc machine): the small port devices of
 * hw/ports.c (POST port 0x80, reset through 0x92, 0xcf9 and the i8042, a
 * debug-exit port at 0x501). Self-registration keeps them out of unit tests
 * that link the board without system/vm.c.
 */
#ifndef MIGVM_HW_PORTS_H
#define MIGVM_HW_PORTS_H

#include <stdbool.h>
#include "error.h"

typedef struct PcDevice {
    const char *name;
    bool (*create)(Error **errp);       /* claim ports etc. [BQL, machine_init] */
    void (*reset)(void);                /* [BQL, vCPUs paused] */
} PcDevice;

/* Drive the board's interrupt line `line` (ISA IRQ 0-15, GSI 16-23) to
 * `level`; hw/machine.c remembers it for migration. [BQL] */
void machine_set_irq(int line, int level);

/* Called before main() by PC_DEVICE_REGISTER. */
void pc_device_register(const PcDevice *dev);
#define PC_DEVICE_REGISTER(dev)                                               \
    static void __attribute__((constructor)) pc_device_register_##dev(void)   \
    { pc_device_register(&(dev)); }

#endif
