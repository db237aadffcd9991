/*
 * The board and its vCPUs, as seen by the rest of migvm.
 * hw/machine.c builds the machine from vm_config (include/vm.h): RAM blocks,
 * devices (serial, ...), the accelerator and its vCPUs (created paused).
 * system/cpus.c runs vCPU threads through the accelerator's ops.
 */
#ifndef MIGVM_MACHINE_H
#define MIGVM_MACHINE_H

#include <stdbool.h>
#include "error.h"

/* Build everything; vCPUs exist but do not run until cpus_resume_all(). */
bool machine_init(Error **errp);
/* Devices and vCPUs back to power-on state. [BQL, vCPUs paused] */
void machine_reset(void);
/* Stop vCPU threads, free devices and RAM. */
void machine_cleanup(void);

/* Every vCPU is out of guest code when this returns; safe to call when
 * already paused. [BQL; the BQL is dropped while waiting so vCPUs doing
 * device I/O can finish] */
void cpus_pause_all(void);
void cpus_resume_all(void);         /* [BQL] */
bool cpus_are_paused(void);

#endif
