/*
 * The board and its vCPUs, as seen by the rest of migvm.
 * hw/machine.c builds the machine from a MachineConfig (system/main.c fills
 * it from the command line): RAM blocks, devices (serial, ..., and each
 * -device), the boot disk (the first if=ide drive, else the first if=virtio
 * one, of the block layer), the accelerator and its vCPUs (created paused).
 * system/cpus.c runs vCPU threads through the accelerator's ops.
 */
#ifndef MIGVM_MACHINE_H
#define MIGVM_MACHINE_H

#include <stdbool.h>
#include <stdint.h>
#include "chardev-spec.h"
#include "error.h"

/* Where the vCPUs sit (-smp sockets=,dies=,cores=,threads=); a level of 0
 * counts as 1, except cores: 0 makes every vCPU a core of socket 0. */
typedef struct CpuTopology {
    int sockets, dies, cores, threads;
} CpuTopology;

typedef struct MachineConfig {
    const char *type;           /* "pc" or "none"; NULL: "pc" */
    uint64_t ram_size;          /* bytes */
    int smp_cpus;               /* vCPUs of the pc board; 0: one */
    bool mem_prealloc;          /* populate all RAM before anything runs (ram-prealloc.h) */
    CpuTopology topology;
    const char *accel;          /* "kvm" or "soft" */
    const char *accel_opts;     /* after the accelerator's name, or NULL */
    const char *serial;         /* -serial spec, or NULL */
    const ChardevSpec *serial_chardev;  /* the serial port's backend; NULL: from serial */
    /* -device specs, created in order; used during machine_init only (not copied). */
    struct DeviceSpec **devices;
    int n_devices;
} MachineConfig;

/* Build everything; vCPUs exist but do not run until cpus_resume_all().
 * cfg is copied. */
bool machine_init(const MachineConfig *cfg, Error **errp);
/* MachineConfig.type as given (NULL: none given) while the machine exists. */
const char *machine_type(void);
/* vCPU `index`'s socket, die, core and thread ids, as QEMU 7.2's x86 CPUs
 * number them from the topology; dies: dies per socket (QEMU reports a
 * die id only when there is more than one). */
typedef struct CpuPosition {
    int socket, die, core, thread;
    int dies;
} CpuPosition;
void machine_cpu_position(int index, CpuPosition *pos);
/* Devices, boot disk and vCPUs back to power-on state. False: the machine
 * is half reset and must not run. [BQL, vCPUs paused] */
bool machine_reset(Error **errp);
/* Stop vCPU threads, free devices and RAM. */
void machine_cleanup(void);

/* Every vCPU is out of guest code when this returns; safe to call when
 * already paused. [BQL; the BQL is dropped while waiting so vCPUs doing
 * device I/O can finish] */
void cpus_pause_all(void);
void cpus_resume_all(void);         /* [BQL] */
bool cpus_are_paused(void);

#endif
