/*
 * "timer" (shared docs: migration-stream.md section 6.4), version 2:
 *     be64   cpu_ticks_offset    guest TSC ticks offset
 *     8 bytes unused             (QEMU's removed dummy field; written as zeros)
 *     be64   cpu_clock_offset    guest (virtual) clock offset, ns
 * QEMU registers this section for every machine, and its loader refuses a
 * stream with a section it does not know, so migvm must both send and accept
 * it to interoperate. migvm has no guest clock to derive these from yet: it
 * keeps what it received (0 on a fresh VM) and sends that back, so a
 * QEMU -> migvm -> QEMU round trip preserves the values.
 */
#include "timer-state.h"
#include "vmstate.h"

typedef struct TimersState {
    int64_t cpu_ticks_offset;
    int64_t cpu_clock_offset;
} TimersState;

static TimersState timers_state;

static const VMStateDescription vmstate_timers = {
    .name = "timer",
    .version_id = 2,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_INT64(cpu_ticks_offset, TimersState),
        VMSTATE_UNUSED(8),
        VMSTATE_INT64_V(cpu_clock_offset, TimersState, 2),
        VMSTATE_END_OF_LIST()
    },
};

bool timers_state_register(Error **errp)
{
    return vmstate_register(NULL, 0, &vmstate_timers, &timers_state, errp);
}

int64_t timers_state_cpu_ticks_offset(void)
{
    return timers_state.cpu_ticks_offset;
}

int64_t timers_state_cpu_clock_offset(void)
{
    return timers_state.cpu_clock_offset;
}
