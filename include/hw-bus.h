/*
 * Port I/O and MMIO dispatch (hw/bus.c). Devices register a handler for an
 * address range; accelerators route guest accesses (KVM_EXIT_IO/MMIO, the
 * soft workload's serial writes) through pio_read/pio_write and mmio_read/mmio_write.
 *
 * Handlers run with the BQL held: call pio_read/pio_write/mmio_* with it.
 * Registration happens in machine_init (BQL) and stays until machine_cleanup.
 */
#ifndef MIGVM_HW_BUS_H
#define MIGVM_HW_BUS_H

#include <stdbool.h>
#include <stdint.h>
#include "error.h"

/* offset: from the start of the registered range; size: 1, 2, 4 (or 8 for MMIO). */
typedef uint64_t (*BusReadFn)(void *opaque, uint64_t offset, unsigned size);
typedef void (*BusWriteFn)(void *opaque, uint64_t offset, uint64_t value, unsigned size);

typedef struct BusOps {
    BusReadFn read;            /* NULL: reads return all-ones */
    BusWriteFn write;          /* NULL: writes are ignored */
} BusOps;

/* Fails if [base, base+len) overlaps an existing range of the same space. */
bool pio_register(const char *name, uint16_t base, uint16_t len,
                  const BusOps *ops, void *opaque, Error **errp);
bool mmio_register(const char *name, uint64_t base, uint64_t len,
                   const BusOps *ops, void *opaque, Error **errp);
/* Remove the range starting at base (no-op if none). */
void pio_unregister(uint16_t base);
void mmio_unregister(uint64_t base);
/* Forget every registration (machine_cleanup). */
void bus_cleanup(void);

/* Unclaimed reads return all-ones; unclaimed writes are dropped; each is
 * logged on stderr the first time per port and direction. [BQL] */
uint64_t pio_read(uint16_t port, unsigned size);
void pio_write(uint16_t port, uint64_t value, unsigned size);
/* mmio_*: false if no device claims addr (the caller decides what that means). */
bool mmio_read(uint64_t addr, uint64_t *value, unsigned size);
bool mmio_write(uint64_t addr, uint64_t value, unsigned size);

#endif
