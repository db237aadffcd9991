/*
 * vCPU throttling (migration's auto-converge): at N percent, each vCPU
 * runs one 10 ms timeslice and then sleeps N/(100-N) of it, outside the
 * accelerator and without the BQL.
 *
 * Threads: the percentage is an atomic; cpu_throttle_set/stop may be called
 * from any thread (the migration thread), the getters too (query-migrate,
 * vCPU threads). A ticker thread lives while the throttle is on; every
 * period it asks each vCPU to leave vcpu_exec (cpus_throttle_kick_all), and
 * the vCPU thread sleeps in cpus.c, where pause and quit wake it at once.
 */
#ifndef CPU_THROTTLE_H
#define CPU_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#define CPU_THROTTLE_PCT_MIN 1
#define CPU_THROTTLE_PCT_MAX 99
#define CPU_THROTTLE_TIMESLICE_NS 10000000LL

#define CPU_THROTTLE_MAX_VCPUS 1024

/* Throttle at pct percent (clamped to 1..99); starts the ticker if needed. */
void cpu_throttle_set(int pct);
/* Back to full speed (but for per-vCPU throttles); joins the ticker if
 * nothing else needs it. Idempotent. */
void cpu_throttle_stop(void);
/* One vCPU's own throttle (the dirty limit): pct percent, 0 = off. A vCPU
 * sleeps the larger of its own and the global share. */
void cpu_throttle_set_vcpu(int cpu, int pct);
int cpu_throttle_vcpu_percentage(int cpu);
/* Every throttle off, the ticker joined (before the vCPUs go). */
void cpu_throttle_stop_all(void);
bool cpu_throttle_active(void);
int cpu_throttle_get_percentage(void);      /* 0 when inactive */
/* For vCPU `cpu`'s thread after a throttle kick: how long to sleep now. */
int64_t cpu_throttle_sleep_ns(int cpu);

#endif
