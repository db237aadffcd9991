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
 * ticker_lock guards the ticker's life (started, joined); ticker_cond wakes
 * it early when the percentage changes or the throttle stops.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include "cpu-throttle.h"
#include "cpus.h"
#include "error.h"

static _Atomic int throttle_pct;            /* 0 = off */
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

static void *ticker_fn(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&ticker_lock);
    for (int pct; (pct = atomic_load(&throttle_pct)) > 0;) {
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

void cpu_throttle_set(int pct)
{
    pct = pct < CPU_THROTTLE_PCT_MIN ? CPU_THROTTLE_PCT_MIN : pct > CPU_THROTTLE_PCT_MAX ? CPU_THROTTLE_PCT_MAX : pct;
    pthread_once(&ticker_once, ticker_cond_init);
    pthread_mutex_lock(&ticker_lock);
    atomic_store(&throttle_pct, pct);
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
    pthread_mutex_unlock(&ticker_lock);
}

void cpu_throttle_stop(void)
{
    pthread_once(&ticker_once, ticker_cond_init);
    pthread_mutex_lock(&ticker_lock);
    atomic_store(&throttle_pct, 0);
    bool join = ticker_running;
    pthread_t t = ticker;
    ticker_running = false;
    pthread_cond_broadcast(&ticker_cond);
    pthread_mutex_unlock(&ticker_lock);
    if (join) {
        pthread_join(t, NULL);
    }
}

bool cpu_throttle_active(void)
{
    return atomic_load(&throttle_pct) > 0;
}

int cpu_throttle_get_percentage(void)
{
    return atomic_load(&throttle_pct);
}

int64_t cpu_throttle_sleep_ns(void)
{
    int pct = atomic_load(&throttle_pct);
    return pct > 0 ? CPU_THROTTLE_TIMESLICE_NS * pct / (100 - pct) : 0;
}
