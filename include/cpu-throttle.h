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

/* Throttle at pct percent (clamped to 1..99); starts the ticker if needed. */
void cpu_throttle_set(int pct);
/* Back to full speed; joins the ticker. Idempotent. */
void cpu_throttle_stop(void);
bool cpu_throttle_active(void);
int cpu_throttle_get_percentage(void);      /* 0 when inactive */
/* For the vCPU thread after a throttle kick: how long to sleep now. */
int64_t cpu_throttle_sleep_ns(void);

#endif
