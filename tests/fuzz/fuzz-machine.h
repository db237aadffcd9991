/* The machine of the whole-VM fuzz targets (fuzz-machine.c). */
#ifndef FUZZ_MACHINE_H
#define FUZZ_MACHINE_H

#define FUZZ_RAM_SIZE (8u << 20)
#define FUZZ_DRIVE_SIZE (2u << 20)

/* Build it once; returns without the BQL. Aborts if it cannot. */
void fuzz_machine_init(void);

#endif
