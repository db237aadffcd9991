/*
 * vCPU throttling: the percentage and the ticker thread (cpu-throttle.h).
 *
 *   ticker thread                       vCPU thread (cpus.c)
 *   every timeslice / (1 - pct):
 *     cpus_throttle_kick_all() ───────► leaves vcpu_exec (exit_request)
 *                                        sleeps cpu_throttle_sleep_ns()
 *                                        unless paused/quitting, then runs
 *
 * So in each period a vCPU runs about one timeslice and sleeps
 * pct/(1-pct) timeslices: it gets (1 - pct) of the host CPU it had.
 *
 * Two sources set percentages: auto-converge one for every vCPU (pct), the
 * dirty limit one per vCPU (vcpu_pct[]). A vCPU throttles at the larger of
 * its two. The period follows the largest percentage of all, P:
 * timeslice / (1 - P); vCPU i sleeps pct_i of each period, so it still gets
 * (1 - pct_i) of its time (with one source this is the formula above).
 * ticker_lock guards the ticker's life (started, joined); ticker_cond wakes
 * it early when a percentage changes or the throttle stops. The
 * percentages are atomics any thread may read.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include "cpu-throttle.h"
#include "cpus.h"
#include "error.h"

static _Atomic int throttle_pct;            /* 0 = off */
static _Atomic int vcpu_pct[CPU_THROTTLE_MAX_VCPUS];   /* dirty limit's, 0 = off */
static _Atomic int vcpu_pct_max;            /* the largest of vcpu_pct */
static pthread_mutex_t ticker_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ticker_cond;
static pthread_once_t ticker_once = PTHREAD_ONCE_INIT;
static bool ticker_running;                 /* under ticker_lock */
static pthread_t ticker;

static void ticker_cond_init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&ticker_cond, &a);
    pthread_condattr_destroy(&a);
}

static int max_pct(void)
{
    int a = atomic_load(&throttle_pct), b = atomic_load(&vcpu_pct_max);

    return a > b ? a : b;
}

static void *ticker_fn(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&ticker_lock);
    for (int pct; (pct = max_pct()) > 0;) {
        cpus_throttle_kick_all();
        int64_t period = CPU_THROTTLE_TIMESLICE_NS * 100 / (100 - pct);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        int64_t ns = ts.tv_nsec + period;
        ts.tv_sec += ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        /* Woken early by a new percentage or stop: either way, loop. */
        pthread_cond_timedwait(&ticker_cond, &ticker_lock, &ts);
    }
    pthread_mutex_unlock(&ticker_lock);
    return NULL;
}

/* Start the ticker, or wake it to pick up a new percentage. [ticker_lock] */
static void ticker_update_locked(void)
{
    if (!ticker_running) {
        int err = pthread_create(&ticker, NULL, ticker_fn, NULL);
        if (err) {
            /* Migration goes on unthrottled rather than failing. */
            atomic_store(&throttle_pct, 0);
            error_report("cannot start the vCPU throttle thread: error %d", err);
        } else {
            ticker_running = true;
        }
    } else {
        pthread_cond_broadcast(&ticker_cond);
    }
}

/* Stop the ticker if no percentage is left. Unlocks ticker_lock. */
static void ticker_stop_if_idle_unlock(void)
{
    bool join = ticker_running && max_pct() == 0;
    pthread_t t = ticker;

    if (join) {
        ticker_running = false;
    }
    pthread_cond_broadcast(&ticker_cond);
    pthread_mutex_unlock(&ticker_lock);
    if (join) {
        pthread_join(t, NULL);
    }
}

static int clamp_pct(int pct)
{
    return pct < CPU_THROTTLE_PCT_MIN ? CPU_THROTTLE_PCT_MIN : pct > CPU_THROTTLE_PCT_MAX ? CPU_THROTTLE_PCT_MAX : pct;
}

void cpu_throttle_set(int pct)
{
    pthread_once(&ticker_once, ticker_cond_init);
    pthread_mutex_lock(&ticker_lock);
    atomic_store(&throttle_pct, clamp_pct(pct));
    ticker_update_locked();
    pthread_mutex_unlock(&ticker_lock);
}

void cpu_throttle_stop(void)
{
    pthread_once(&ticker_once, ticker_cond_init);
    pthread_mutex_lock(&ticker_lock);
    atomic_store(&throttle_pct, 0);
    ticker_stop_if_idle_unlock();
}

void cpu_throttle_set_vcpu(int cpu, int pct)
{
    if (cpu < 0 || cpu >= CPU_THROTTLE_MAX_VCPUS) {
        return;
    }
    pthread_once(&ticker_once, ticker_cond_init);
    pthread_mutex_lock(&ticker_lock);
    atomic_store(&vcpu_pct[cpu], pct > 0 ? clamp_pct(pct) : 0);
    int most = 0;
    for (int i = 0; i < CPU_THROTTLE_MAX_VCPUS; i++) {
        int p = atomic_load(&vcpu_pct[i]);
        most = p > most ? p : most;
    }
    atomic_store(&vcpu_pct_max, most);
    if (most > 0) {
        ticker_update_locked();
        pthread_mutex_unlock(&ticker_lock);
    } else {
        ticker_stop_if_idle_unlock();
    }
}

int cpu_throttle_vcpu_percentage(int cpu)
{
    return cpu >= 0 && cpu < CPU_THROTTLE_MAX_VCPUS ? atomic_load(&vcpu_pct[cpu]) : 0;
}

void cpu_throttle_stop_all(void)
{
    pthread_once(&ticker_once, ticker_cond_init);
    pthread_mutex_lock(&ticker_lock);
    atomic_store(&throttle_pct, 0);
    for (int i = 0; i < CPU_THROTTLE_MAX_VCPUS; i++) {
        atomic_store(&vcpu_pct[i], 0);
    }
    atomic_store(&vcpu_pct_max, 0);
    ticker_stop_if_idle_unlock();
}

bool cpu_throttle_active(void)
{
    return atomic_load(&throttle_pct) > 0;
}

int cpu_throttle_get_percentage(void)
{
    return atomic_load(&throttle_pct);
}

int64_t cpu_throttle_sleep_ns(int cpu)
{
    int pct = atomic_load(&throttle_pct), own = cpu_throttle_vcpu_percentage(cpu), most = max_pct();

    pct = own > pct ? own : pct;
    /* pct of a period of timeslice / (1 - most) */
    return pct > 0 && most > 0 ? CPU_THROTTLE_TIMESLICE_NS * pct / (100 - most) : 0;
}
