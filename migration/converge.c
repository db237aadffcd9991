/*
 * migvm's convergence controller (converge.h), on unless parameter
 * x-convergence-controller is off.
 *
 * Each pass (a bitmap sync) it measures the ratio of pages the guest dirtied
 * during the pass to pages sent in it. The remaining set shrinks by that
 * ratio each pass, so:
 *   - ratio >= STALL_RATIO, or more than MAX_PASSES_TO_FIT passes needed at
 *     that ratio to fit the downtime limit: not converging. Said at once
 *     (event X_MIGRATION_NOT_CONVERGING, query-migrate's x-convergence, the
 *     flight recorder), and from then on the controller throttles the vCPUs
 *     (cpu-throttle.h) towards the share that would bring the ratio to
 *     TARGET_RATIO: cpu-throttle-initial at once, then cpu-throttle-increment
 *     more each STEP_NS, never above max-cpu-throttle. Not while capability
 *     auto-converge is on (it owns the throttle then, as in QEMU 7.2), nor in
 *     block migration's bulk phase (RAM then gets little of the bandwidth).
 *   - else converging, with a predicted completion time.
 * max-bandwidth is the stream's (untouched here) and the switch-over never
 * starts unless what remains fits downtime-limit (migration.c); within it,
 * converge_continue takes one more pass while the last ratio predicts it
 * leaves less than half, so the downtime falls to the predicted minimum.
 * The throttle ends with RAM's cleanup (completed, failed, cancelled).
 *
 * Threads: `cv` is the migration thread's; query-migrate reads `view`, a
 * copy published under view_lock.
 */
#include "converge.h"
#include "block-migration.h"
#include "clock.h"
#include "cpu-throttle.h"
#include "history.h"
#include "memory.h"
#include "options.h"
#include "qapi-events.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <glib.h>

#define STALL_RATIO 0.9
#define MAX_PASSES_TO_FIT 8
#define TARGET_RATIO 0.3
#define STEP_NS 500000000LL
#define SHRINK_MARKEDLY 0.5     /* one more pass while it is predicted to leave less than this */
#define SHRANK_ENOUGH 0.75      /* an extra pass that left more than this was the last one */
#define MAX_EXTRA_PASSES 8
#define DOWNTIME_FLOOR_MS 5.0   /* below this a further pass gains nothing worth its time */
#define REASON_MAX 160

typedef struct Converge {
    bool on;
    ConvergeSample last;        /* at the last sync */
    uint64_t pass, remaining;
    double ratio;               /* dirtied / sent pages in the last pass; < 0: not measured */
    double prev_ratio;          /* the pass before (bursty guests: one quiet pass proves little) */
    double dirty_bps, bw_bps;
    bool converging;
    XMigrationConvergenceAction decision;
    int target;                 /* the throttle it aims for, percent */
    int set;                    /* the throttle it set last (0: none) */
    int64_t last_step_ns;
    int64_t predicted_end_ns;   /* < 0: none */
    unsigned extra_passes;
    bool acted;                 /* announced a decision in this migration */
    uint64_t continued_at;      /* what remained when it last took an extra pass (0: never) */
    char reason[REASON_MAX];
} Converge;

static Converge cv;             /* [migration thread] */

static pthread_mutex_t view_lock = PTHREAD_MUTEX_INITIALIZER;
static Converge view;           /* [view_lock] */
static bool view_running;       /* [view_lock] */

static void publish(void)
{
    pthread_mutex_lock(&view_lock);
    view = cv;
    view_running = cv.on;
    pthread_mutex_unlock(&view_lock);
}

static double mib(double bytes)
{
    return bytes / (1024 * 1024);
}

static int64_t expected_ms(uint64_t bytes)
{
    return cv.bw_bps > 0 ? (int64_t)(bytes * 1000.0 / cv.bw_bps) : 0;
}

/* Tell the operator (event, flight recorder) about a decision. */
static void announce(XMigrationConvergenceAction action, uint64_t remaining, int64_t downtime_ms)
{
    cv.decision = action;
    cv.acted = true;
    char note[REASON_MAX + 48];
    if (action == X_MIGRATION_CONVERGENCE_ACTION_THROTTLE) {
        snprintf(note, sizeof(note), "throttle %d%%", cv.set);
    } else {
        snprintf(note, sizeof(note), "%s: %s", XMigrationConvergenceAction_str(action), cv.reason);
    }
    mig_history_pass_note(note);
    if (action == X_MIGRATION_CONVERGENCE_ACTION_NOT_CONVERGING) {
        qapi_event_send_x_migration_not_converging((int64_t)cv.pass, (int64_t)cv.dirty_bps, (int64_t)cv.bw_bps,
                                                   (int64_t)remaining);
    } else {
        qapi_event_send_x_migration_convergence(action, (int64_t)cv.pass, cpu_throttle_get_percentage(),
                                                (int64_t)remaining, downtime_ms, cv.reason);
    }
    publish();
}

void converge_start(const ConvergeSample *now)
{
    memset(&cv, 0, sizeof(cv));
    cv.on = migrate_convergence_controller();
    cv.last = *now;
    cv.pass = 1;
    cv.ratio = cv.prev_ratio = -1;
    cv.converging = true;
    cv.decision = X_MIGRATION_CONVERGENCE_ACTION_CONVERGING;
    cv.predicted_end_ns = -1;
    snprintf(cv.reason, sizeof(cv.reason), "first pass: nothing measured yet");
    publish();
}

/* The controller was switched off during the migration: give back what it took. */
static void turn_off(void)
{
    if (cv.set && !migrate_cap(MIGRATION_CAPABILITY_AUTO_CONVERGE)) {
        cpu_throttle_stop();
    }
    cv.set = cv.target = 0;
    cv.on = false;
    publish();
}

static void throttle_step(int64_t now_ns)
{
    MigThrottleParams p;
    migrate_throttle_params(&p);
    int cur = cpu_throttle_get_percentage();
    int next = cur ? cur + (int)p.increment : (int)p.initial;
    next = MIN(next, MAX(cv.target, (int)p.initial));
    next = MIN(next, (int)p.max);
    if (next <= cur) {
        return;
    }
    cpu_throttle_set(next);
    cv.set = next;
    cv.last_step_ns = now_ns;
    announce(X_MIGRATION_CONVERGENCE_ACTION_THROTTLE, cv.remaining, expected_ms(cv.remaining));
}

/* Not converging: the throttle that would bring the ratio to TARGET_RATIO,
 * counting the dirty rate as proportional to the vCPUs' share. */
static void throttle_aim(int64_t now_ns)
{
    if (migrate_cap(MIGRATION_CAPABILITY_AUTO_CONVERGE)) {
        return;
    }
    MigThrottleParams p;
    migrate_throttle_params(&p);
    int cur = cpu_throttle_get_percentage();
    double unthrottled = cv.ratio / (1.0 - cur / 100.0);
    int want = (int)ceil(100.0 * (1.0 - TARGET_RATIO / unthrottled));
    if (want <= cur) {
        want = cur + (int)p.increment;     /* the estimate fell short: still not converging */
    }
    want = MAX(want, (int)p.initial);
    cv.target = MIN(MAX(cv.target, want), (int)p.max);
    if (!cur) {
        throttle_step(now_ns);
    }
}

/* Converging or not, and why, from the last pass's figures. */
static bool judge(int64_t now_ns)
{
    if (cv.bw_bps <= 0) {
        snprintf(cv.reason, sizeof(cv.reason), "nothing sent in the last pass");
        return cv.converging;
    }
    /* Not converging: said on one pass. Converging again: on two. */
    double ratio = cv.converging ? cv.ratio : MAX(cv.ratio, cv.prev_ratio);
    double fit = cv.bw_bps * (double)migrate_downtime_limit_ms() / 1000.0;
    cv.predicted_end_ns = -1;
    if ((double)cv.remaining <= fit) {
        snprintf(cv.reason, sizeof(cv.reason), "what remains (%" PRIu64 " kbytes) fits the downtime limit",
                 cv.remaining >> 10);
        cv.predicted_end_ns = now_ns;
        return true;
    }
    if (block_mig_bulk_active()) {
        snprintf(cv.reason, sizeof(cv.reason), "disks are being copied: RAM gets little of the bandwidth");
        return true;
    }
    if (ratio >= STALL_RATIO) {
        snprintf(cv.reason, sizeof(cv.reason),
                 "the guest dirtied %.0f%% of what a pass sent: dirty rate %.1f MiB/s, bandwidth %.1f MiB/s",
                 ratio * 100, mib(cv.dirty_bps), mib(cv.bw_bps));
        return false;
    }
    /* Passes to fit at this ratio (fit < remaining here, 0 < ratio < STALL_RATIO). */
    double passes = fit <= 0 ? INFINITY : ratio > 0 ? ceil(log(fit / (double)cv.remaining) / log(ratio)) : 1;
    unsigned n = passes > 1000 ? 1000 : (unsigned)passes;
    if (n > MAX_PASSES_TO_FIT) {
        snprintf(cv.reason, sizeof(cv.reason),
                 "each pass leaves %.0f%% of what remained: %u passes to fit the downtime limit",
                 ratio * 100, n);
        return false;
    }
    double seconds = (double)cv.remaining / cv.bw_bps * (1.0 - pow(ratio, n)) / (1.0 - ratio);
    cv.predicted_end_ns = now_ns + (int64_t)(seconds * 1e9);
    snprintf(cv.reason, sizeof(cv.reason), "each pass leaves %.0f%% of what remained: %u passes to fit",
             ratio * 100, n);
    return true;
}

void converge_pass(uint64_t pass, uint64_t dirtied, uint64_t remaining, const ConvergeSample *now)
{
    if (cv.on && !migrate_convergence_controller()) {
        turn_off();
    }
    ConvergeSample prev = cv.last;
    cv.last = *now;
    if (!cv.on) {
        return;
    }
    int64_t dur = now->ns - prev.ns;
    uint64_t sent = now->pages_sent - prev.pages_sent;
    cv.pass = pass;
    cv.remaining = remaining;
    if (dur <= 0 || !sent) {
        publish();
        return;                 /* nothing sent since the last sync: nothing measured */
    }
    cv.prev_ratio = cv.ratio;
    cv.ratio = (double)dirtied / (double)sent;
    cv.dirty_bps = (double)dirtied * MIGVM_PAGE_SIZE * 1e9 / (double)dur;
    cv.bw_bps = (double)(now->stream_bytes - prev.stream_bytes) * 1e9 / (double)dur;
    bool was = cv.converging;
    cv.converging = judge(now->ns);
    if (was && !cv.converging) {
        announce(X_MIGRATION_CONVERGENCE_ACTION_NOT_CONVERGING, remaining, expected_ms(remaining));
    } else if (!was && cv.converging) {
        announce(X_MIGRATION_CONVERGENCE_ACTION_CONVERGING, remaining, expected_ms(remaining));
    }
    if (!cv.converging) {
        throttle_aim(now->ns);
    }
    publish();
}

void converge_tick(int64_t now_ns)
{
    if (!cv.on || cv.converging || migrate_cap(MIGRATION_CAPABILITY_AUTO_CONVERGE)) {
        return;
    }
    if (cpu_throttle_get_percentage() < cv.target && now_ns - cv.last_step_ns >= STEP_NS) {
        throttle_step(now_ns);
    }
}

bool converge_continue(uint64_t pending, double bytes_per_ms)
{
    if (!cv.on) {
        return false;
    }
    double downtime = bytes_per_ms > 0 ? (double)pending / bytes_per_ms : 0;
    double ratio = MAX(cv.ratio, cv.prev_ratio);    /* a quiet pass of a bursty guest proves little */
    bool more = false;
    if (downtime < DOWNTIME_FLOOR_MS) {
        snprintf(cv.reason, sizeof(cv.reason), "expected downtime %.0f ms: nothing to gain from another pass",
                 downtime);
    } else if (cv.extra_passes >= MAX_EXTRA_PASSES) {
        snprintf(cv.reason, sizeof(cv.reason), "%u extra passes taken", cv.extra_passes);
    } else if (cv.continued_at && (double)pending > SHRANK_ENOUGH * (double)cv.continued_at) {
        snprintf(cv.reason, sizeof(cv.reason), "the last pass left %.0f%% of what remained: the minimum",
                 100.0 * (double)pending / (double)cv.continued_at);
    } else if (cv.ratio < 0 || ratio >= SHRINK_MARKEDLY) {
        snprintf(cv.reason, sizeof(cv.reason), "a further pass would leave %.0f%% of what remains: the minimum",
                 cv.ratio < 0 ? 100.0 : ratio * 100);
    } else {
        snprintf(cv.reason, sizeof(cv.reason),
                 "fits the downtime limit (%.0f ms), but a further pass is predicted to leave %.0f%% of it",
                 downtime, ratio * 100);
        more = true;
        cv.extra_passes++;
        cv.continued_at = pending;
    }
    announce(more ? X_MIGRATION_CONVERGENCE_ACTION_CONTINUE : X_MIGRATION_CONVERGENCE_ACTION_SWITCH_OVER,
             pending, (int64_t)downtime);
    return more;
}

void converge_nothing_left(void)
{
    /* An idle guest's migration says nothing: only one the controller
     * acted on gets its switch-over told. */
    if (cv.on && cv.acted) {
        snprintf(cv.reason, sizeof(cv.reason), "nothing left after the sync");
        announce(X_MIGRATION_CONVERGENCE_ACTION_SWITCH_OVER, 0, 0);
    }
}

void converge_stop(void)
{
    cv.on = false;
    publish();
}

XMigrationConvergence *converge_query(void)
{
    pthread_mutex_lock(&view_lock);
    XMigrationConvergence *c = NULL;
    if (view_running) {
        c = g_new0(XMigrationConvergence, 1);
        c->converging = view.converging;
        c->reason = g_strdup(view.reason);
        c->pass = (int64_t)view.pass;
        c->dirty_rate = (int64_t)view.dirty_bps;
        c->bandwidth = (int64_t)view.bw_bps;
        c->remaining = (int64_t)view.remaining;
        if (view.converging && view.predicted_end_ns >= 0) {
            int64_t left = view.predicted_end_ns - now_ns();
            c->has_predicted_completion = true;
            c->predicted_completion = left > 0 ? left / 1000000 : 0;
        }
        c->throttle = view.set;
        c->decision = view.decision;
    }
    pthread_mutex_unlock(&view_lock);
    return c;
}
