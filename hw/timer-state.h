/*
 * The "timer" section (hw/timer-state.c): the guest clock offsets QEMU
 * migrates for every machine. migvm has no guest-visible clock of its own
 * yet; it carries the values so that QEMU <-> migvm streams round-trip them.
 */
#ifndef MIGVM_HW_TIMER_STATE_H
#define MIGVM_HW_TIMER_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include "error.h"

/* Register the "timer" section (instance 0, version 2). Call once at
 * startup, for every machine type, before "globalstate" (QEMU's order). */
bool timers_state_register(Error **errp);

/* The offsets last received (0 on a fresh VM), for tests and future clocks. */
int64_t timers_state_cpu_ticks_offset(void);
int64_t timers_state_cpu_clock_offset(void);

#endif
