/*
 * auto-converge's decision (auto-converge.h), as QEMU 7.2 makes it: when
 * the guest dirtied more than throttle-trigger-threshold percent of what
 * was sent in a period, in two periods (not necessarily in a row), slow
 * its vCPUs down: to cpu-throttle-initial the first time, then by
 * cpu-throttle-increment more each time, capped at max-cpu-throttle. With
 * cpu-throttle-tailslow the step is only what the dirtied/threshold ratio
 * asks for (never more than the increment), so the last steps are gentle.
 * Not while block migration's bulk phase runs: RAM then gets little of the
 * bandwidth, which is no sign that the guest dirties too much.
 * The throttle is released by ram.c's cleanup (completed, failed, cancelled).
 */
#include "auto-converge.h"
#include "block-migration.h"
#include "cpu-throttle.h"
#include "options.h"

void auto_converge_reset(AutoConverge *ac)
{
    ac->sent_prev = 0;
    ac->high_periods = 0;
}

void auto_converge_period(AutoConverge *ac, uint64_t sent, uint64_t dirtied)
{
    uint64_t sent_period = sent - ac->sent_prev;
    ac->sent_prev = sent;
    if (!migrate_cap(MIGRATION_CAPABILITY_AUTO_CONVERGE) || block_mig_bulk_active()) {
        return;
    }
    MigThrottleParams p;
    migrate_throttle_params(&p);
    double threshold = (double)sent_period * p.trigger_threshold / 100;
    if ((double)dirtied <= threshold || ++ac->high_periods < 2) {
        return;
    }
    ac->high_periods = 0;
    int now = cpu_throttle_get_percentage();
    if (!now) {
        cpu_throttle_set((int)p.initial);
        return;
    }
    unsigned inc = p.increment;
    if (p.tailslow) {
        /* The CPU share that would bring the dirtied bytes down to the threshold. */
        double cpu_now = 100 - now, cpu_ideal = cpu_now * threshold / (double)dirtied;
        unsigned want = (unsigned)(cpu_now - cpu_ideal);
        inc = want < inc ? want : inc;
    }
    unsigned next = (unsigned)now + inc;
    cpu_throttle_set((int)(next < p.max ? next : p.max));
}
