/*
 * vCPU dirty page rate limits: set-vcpu-dirty-limit, cancel-vcpu-dirty-limit
 * and query-vcpu-dirty-limit, as QEMU 7.2 (they need KVM's dirty ring, and
 * answer with its texts).
 *
 * While any vCPU has a limit, dirty logging is on (nested with a migration's
 * or a measurement's: memory.h) and a thread ("dirtylimit") wakes every
 * PERIOD_MS: it reads each vCPU's count of dirty pages from its ring
 * (accel_vcpu_dirty_counts), turns the difference into the vCPU's current
 * rate, and sets the vCPU's own throttle (cpu-throttle.h: the vCPU sleeps a
 * share of each period, as auto-converge's throttle does):
 *
 *   the rate the vCPU would have unthrottled  R = rate / (1 - pct/100)
 *   the share that brings R down to the limit  pct = 100 * (1 - limit / R)
 *
 * moved halfway from the old share to that one each period (rates are noisy
 * and a guest's behaviour changes), down to 0 when R is under the limit; a
 * rate still over the limit once there steps the share on by itself.
 *
 * Threads: the QMP commands run on the main thread with the BQL. `dl` is
 * shared with the thread: fields marked [lock] are read and written under
 * dl.lock only; [BQL] ones only by the main thread.
 */
#include <inttypes.h>
#include <pthread.h>
#include <time.h>
#include <glib.h>
#include "accel.h"
#include "clock.h"
#include "cpu-throttle.h"
#include "cpus.h"
#include "dirtylimit.h"
#include "memory.h"
#include "qapi-commands.h"
#include "vm.h"

#define PERIOD_MS 500

typedef struct VcpuLimit {
    uint64_t limit;                 /* MB/s, 0 = none */
    uint64_t current;               /* MB/s over the last period */
    int pct;                        /* the throttle share set for it */
} VcpuLimit;

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;            /* CLOCK_MONOTONIC; signalled on quit */
    bool cond_ready;                /* [BQL] */
    VcpuLimit *vcpu;                /* [lock] cpus_count() entries while in service */
    int n;                          /* [lock] */
    bool quit;                      /* [lock] */
    bool in_service;                /* [BQL] logging on, thread running */
    pthread_t thread;               /* [BQL] */
} dl = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int next_pct(int pct, double rate, uint64_t limit)
{
    double run = 1.0 - pct / 100.0;
    double unthrottled = rate / (run > 0.01 ? run : 0.01);
    int target = 0;

    if (unthrottled > (double)limit) {
        target = (int)(100.0 * (1.0 - (double)limit / unthrottled) + 0.5);
    }
    int next = (pct + target + (target > pct)) / 2;
    /* The model is rough (a kicked vCPU runs on until it leaves KVM_RUN):
     * still over the limit with nothing left to move, step on anyway. */
    if (rate > limit * 1.05 && next <= pct) {
        next = pct + 1 + (int)(5.0 * (rate - limit) / limit);
    }
    return next < 0 ? 0 : next > CPU_THROTTLE_PCT_MAX ? CPU_THROTTLE_PCT_MAX : next;
}

/* Sleep one period, or less on quit; false on quit. [lock held] */
static bool wait_period(void)
{
    struct timespec ts;
    int64_t deadline = now_ns() + PERIOD_MS * 1000000LL;

    ts.tv_sec = deadline / 1000000000LL;
    ts.tv_nsec = deadline % 1000000000LL;
    while (!dl.quit && now_ns() < deadline) {
        pthread_cond_timedwait(&dl.wake, &dl.lock, &ts);
    }
    return !dl.quit;
}

static void *dirty_limit_thread(void *opaque)
{
    (void)opaque;
    pthread_mutex_lock(&dl.lock);
    int n = dl.n;
    uint64_t *before = g_new0(uint64_t, n), *now = g_new0(uint64_t, n);
    int64_t t0 = now_ns();

    pthread_mutex_unlock(&dl.lock);
    accel_vcpu_dirty_counts(before, n);
    pthread_mutex_lock(&dl.lock);
    while (wait_period()) {
        pthread_mutex_unlock(&dl.lock);
        accel_vcpu_dirty_counts(now, n);
        int64_t t1 = now_ns();
        double secs = (t1 - t0) / 1e9;
        pthread_mutex_lock(&dl.lock);
        for (int i = 0; i < n; i++) {
            VcpuLimit *v = &dl.vcpu[i];
            double rate = (double)(now[i] - before[i]) * MIGVM_PAGE_SIZE / (1 << 20) / secs;
            v->current = (uint64_t)(rate + 0.5);
            if (v->limit) {
                v->pct = next_pct(v->pct, rate, v->limit);
                cpu_throttle_set_vcpu(i, v->pct);
            }
            before[i] = now[i];
        }
        t0 = t1;
    }
    pthread_mutex_unlock(&dl.lock);
    g_free(before);
    g_free(now);
    return NULL;
}

static bool service_start(Error **errp)
{
    if (dl.in_service) {
        return true;
    }
    if (!dl.cond_ready) {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&dl.wake, &attr);
        pthread_condattr_destroy(&attr);
        dl.cond_ready = true;
    }
    if (!memory_global_dirty_log_start(errp)) {
        return false;
    }
    pthread_mutex_lock(&dl.lock);
    dl.n = cpus_count();
    dl.vcpu = g_new0(VcpuLimit, dl.n);
    dl.quit = false;
    pthread_mutex_unlock(&dl.lock);
    int r = pthread_create(&dl.thread, NULL, dirty_limit_thread, NULL);
    if (r) {
        pthread_mutex_lock(&dl.lock);
        g_clear_pointer(&dl.vcpu, g_free);
        dl.n = 0;
        pthread_mutex_unlock(&dl.lock);
        memory_global_dirty_log_stop();
        error_setg_errno(errp, r, "cannot start the dirty limit thread");
        return false;
    }
    dl.in_service = true;
    return true;
}

static void service_stop(void)
{
    if (!dl.in_service) {
        return;
    }
    pthread_mutex_lock(&dl.lock);
    dl.quit = true;
    pthread_cond_broadcast(&dl.wake);
    pthread_mutex_unlock(&dl.lock);
    pthread_join(dl.thread, NULL);          /* it never takes the BQL */
    pthread_mutex_lock(&dl.lock);
    for (int i = 0; i < dl.n; i++) {
        cpu_throttle_set_vcpu(i, 0);
    }
    g_clear_pointer(&dl.vcpu, g_free);
    dl.n = 0;
    pthread_mutex_unlock(&dl.lock);
    memory_global_dirty_log_stop();
    dl.in_service = false;
}

static bool index_valid(bool has, int64_t index, Error **errp)
{
    if (has && (index < 0 || index >= cpus_count())) {
        error_setg(errp, "incorrect cpu index specified");
        return false;
    }
    return true;
}

/* Set (limit > 0) or clear the limit of one vCPU or all; stop the service
 * when no limit is left. [BQL, in service] */
static void apply(bool has, int64_t index, uint64_t limit)
{
    bool any = false;

    pthread_mutex_lock(&dl.lock);
    for (int i = 0; i < dl.n; i++) {
        if (!has || i == index) {
            dl.vcpu[i].limit = limit;
            if (!limit) {
                dl.vcpu[i].pct = 0;
                cpu_throttle_set_vcpu(i, 0);
            }
        }
        any |= dl.vcpu[i].limit != 0;
    }
    pthread_mutex_unlock(&dl.lock);
    if (!any) {
        service_stop();
    }
}

bool qmp_cancel_vcpu_dirty_limit(const q_obj_cancel_vcpu_dirty_limit_arg *arg, Error **errp)
{
    assert(bql_locked());
    /* QEMU 7.2: nothing to cancel without the ring is no error. */
    if (!accel_dirty_ring_enabled()) {
        return true;
    }
    if (!index_valid(arg->has_cpu_index, arg->cpu_index, errp)) {
        return false;
    }
    if (dl.in_service) {
        apply(arg->has_cpu_index, arg->cpu_index, 0);
    }
    return true;
}

bool qmp_set_vcpu_dirty_limit(const q_obj_set_vcpu_dirty_limit_arg *arg, Error **errp)
{
    assert(bql_locked());
    if (!accel_dirty_ring_enabled()) {
        error_setg(errp, "dirty page limit feature requires KVM with accelerator property 'dirty-ring-size' set'");
        return false;
    }
    if (!index_valid(arg->has_cpu_index, arg->cpu_index, errp)) {
        return false;
    }
    if (!arg->dirty_rate) {
        q_obj_cancel_vcpu_dirty_limit_arg c = { .has_cpu_index = arg->has_cpu_index, .cpu_index = arg->cpu_index };
        return qmp_cancel_vcpu_dirty_limit(&c, errp);
    }
    if (!service_start(errp)) {
        return false;
    }
    apply(arg->has_cpu_index, arg->cpu_index, arg->dirty_rate);
    return true;
}

DirtyLimitInfoList *qmp_query_vcpu_dirty_limit(Error **errp)
{
    (void)errp;
    DirtyLimitInfoList *head = NULL, **tail = &head;

    assert(bql_locked());
    pthread_mutex_lock(&dl.lock);
    for (int i = 0; i < dl.n; i++) {
        if (!dl.vcpu[i].limit) {
            continue;
        }
        DirtyLimitInfo *info = g_new0(DirtyLimitInfo, 1);
        info->cpu_index = i;
        info->limit_rate = dl.vcpu[i].limit;
        info->current_rate = dl.vcpu[i].current;
        *tail = g_new0(DirtyLimitInfoList, 1);
        (*tail)->value = info;
        tail = &(*tail)->next;
    }
    pthread_mutex_unlock(&dl.lock);
    return head;
}

bool dirty_limit_in_service(void)
{
    assert(bql_locked());
    return dl.in_service;
}

void dirty_limit_shutdown(void)
{
    assert(bql_locked());
    service_stop();
}
