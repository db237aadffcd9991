/*
 * vCPU threads (system/cpus.c): one thread per -smp vCPU, driven through the
 * current accelerator's ops (accel.h). Pause/resume: machine.h.
 *
 * A vCPU thread loops: wait (parked) while the VM is paused or the vCPU is
 * halted; otherwise call ops->vcpu_exec() without any lock. cpus_pause_all
 * sets the pause request, kicks every vCPU and waits on a condition variable
 * until none is inside vcpu_exec.
 */
#ifndef MIGVM_CPUS_H
#define MIGVM_CPUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "error.h"

typedef struct CPUState {
    int index;                  /* cpu-index, 0-based */
    long thread_id;             /* host TID, for `info cpus` / query-cpus-fast */
    void *accel;                /* the accelerator's per-vCPU data */
    int exit_request;           /* atomic: leave vcpu_exec soon */
    int throttle_request;       /* atomic: sleep a throttle share once out */
    /* Private to system/cpus.c (under its mutex). */
    pthread_t thread;
    bool created, started, running, halted;
} CPUState;

/* Create n vCPUs (ops->vcpu_init each) and start their threads, parked
 * (paused) until cpus_resume_all. [BQL, machine_init] */
bool cpus_create(int n, Error **errp);
/* Pause, stop and join every vCPU thread, then ops->vcpu_destroy. [BQL] */
void cpus_destroy(void);

int cpus_count(void);
CPUState *cpus_get(int index);          /* NULL if out of range */
long cpus_thread_id(int index);         /* -1 if out of range */
/* The vCPU the calling thread runs, or NULL on other threads. */
CPUState *cpu_current(void);

/* For vcpu_exec: true when the vCPU must return (pause, quit, exit_request).
 * Cheap (atomic loads): poll it often. */
bool cpu_should_stop(CPUState *cpu);
/* Ask every vCPU to leave vcpu_exec and sleep its throttle share
 * (cpu-throttle.h). Any thread. */
void cpus_throttle_kick_all(void);
/* Wake a halted vCPU (an interrupt for it). Any thread. */
void cpus_kick(CPUState *cpu);
/* Forget halts: every vCPU runs again on resume. [BQL, paused] */
void cpus_reset(void);

#endif
