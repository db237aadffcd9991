/* The machine of the whole-VM fuzz targets (fuzz-machine.c). */
#ifndef FUZZ_MACHINE_H
#define FUZZ_MACHINE_H

#define FUZZ_RAM_SIZE (8u << 20)
#define FUZZ_DRIVE_SIZE (2u << 20)

#include <stdbool.h>
#include "error.h"

/* Build it once with accelerator `accel` ("soft", "kvm"); returns without
 * the BQL. Aborts if it cannot. */
void fuzz_machine_init(const char *accel);
/* The same, but a machine the accelerator cannot build (no /dev/kvm, ...)
 * returns false with the reason; any other failure still aborts. */
bool fuzz_machine_try_init(const char *accel, Error **errp);

#endif
