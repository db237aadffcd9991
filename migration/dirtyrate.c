/*
 * calc-dirty-rate / query-dirty-rate: how fast the guest dirties its memory,
 * measured for calc-time seconds while it runs, as QEMU 7.2 does it:
 *
 *   page-sampling  (default) hash sample-pages random pages per GiB at the
 *                  start and at the end (page-sample.c); the fraction that
 *                  changed times RAM over the time is the rate.
 *   dirty-bitmap   switch the accelerator's dirty logging on (nested with a
 *                  migration's: memory.h), count the distinct pages harvested
 *                  by every sync meanwhile (ram_dirty_capture_*), so a
 *                  migration's bitmap is never touched nor robbed of a page.
 *   dirty-ring     needs KVM's dirty ring (-accel kvm,dirty-ring-size=N),
 *                  refused with QEMU's message without it: dirty logging on
 *                  (nested), each vCPU's count of pages its ring reported
 *                  at the start and the end; each vCPU's rate in
 *                  vcpu-dirty-rate, their sum the rate (a page a vCPU
 *                  writes again after a harvest counts again, as in QEMU).
 *
 * As QEMU 7.2: one measurement at a time; it may run during a migration;
 * the rate is in MiB/s ("MB/s"); start-time is in seconds of the monotonic
 * clock (QEMU's HMP labels it "(ms)"); a dirty-bitmap result reports
 * sample-pages 0.
 *
 * Threads: the QMP commands run on the main thread with the BQL; each
 * measurement runs on its own thread ("dirtyrate"), which takes the BQL only
 * to switch dirty logging on and off. `dr` is shared: every field marked
 * [lock] is read and written under dr.lock only. The thread handle is
 * [BQL]: a finished measurement's thread is joined by the next calc-dirty-
 * rate or by dirty_rate_shutdown (quit), which also wakes a measurement
 * early so it never outlives the RAM blocks.
 */
#include <inttypes.h>
#include <pthread.h>
#include <time.h>
#include <glib.h>
#include "accel.h"
#include "clock.h"
#include "cpus.h"
#include "dirtyrate.h"
#include "memory.h"
#include "migration.h"
#include "qapi-commands.h"
#include "vm.h"

#define CALC_TIME_MIN 1
#define CALC_TIME_MAX 60
#define SAMPLE_PAGES_MIN 128
#define SAMPLE_PAGES_MAX 16384
#define SAMPLE_PAGES_DEFAULT 512

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;            /* signalled when quit is set */
    bool cond_ready;                /* [BQL] wake uses CLOCK_MONOTONIC */
    DirtyRateInfo info;             /* [lock] what query-dirty-rate says */
    int64_t *vcpu_rates;            /* [lock] dirty-ring mode's per-vCPU MB/s */
    int n_vcpu_rates;               /* [lock] */
    bool quit;                      /* [lock] stop waiting, finish now */
    pthread_t thread;               /* [BQL] */
    bool thread_live;               /* [BQL] started and not joined */
} dr = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .info = { .status = DIRTY_RATE_STATUS_UNSTARTED, .mode = DIRTY_RATE_MEASURE_MODE_PAGE_SAMPLING },
};

/* Sleep until `deadline_ns` (monotonic) or until quit; false on quit. */
static bool wait_until_deadline(int64_t deadline_ns)
{
    struct timespec ts = { .tv_sec = deadline_ns / 1000000000LL, .tv_nsec = deadline_ns % 1000000000LL };
    bool quit;

    pthread_mutex_lock(&dr.lock);
    while (!dr.quit && now_ns() < deadline_ns) {
        pthread_cond_timedwait(&dr.wake, &dr.lock, &ts);
    }
    quit = dr.quit;
    pthread_mutex_unlock(&dr.lock);
    return !quit;
}

static int64_t measure_sampling(int64_t calc_time, uint64_t per_gib, int64_t *ms)
{
    PageSample *s = page_sample_new(per_gib, g_random_int());
    int64_t start = now_ns();
    uint64_t sampled;

    wait_until_deadline(start + calc_time * 1000000000LL);
    uint64_t changed = page_sample_changed(s, &sampled);
    *ms = (now_ns() - start) / 1000000;
    double ram_pages = (double)page_sample_ram_bytes(s) / MIGVM_PAGE_SIZE;
    page_sample_free(s);
    return sampled ? dirty_rate_mib_per_s(ram_pages * changed / sampled, *ms) : 0;
}

/* Dirty logging on, under the BQL (nested with a migration's, memory.c).
 * False, with the error reported and *ms 0, when it cannot start. */
static bool dirty_log_on(int64_t *ms)
{
    Error *err = NULL;

    bql_lock();
    bool on = memory_global_dirty_log_start(&err);
    bql_unlock();
    if (!on) {
        error_report_err(err);
        *ms = 0;
    }
    return on;
}

static void dirty_log_off(void)
{
    bql_lock();
    memory_global_dirty_log_stop();
    bql_unlock();
}

static int64_t measure_bitmap(int64_t calc_time, int64_t *ms)
{
    if (!dirty_log_on(ms)) {
        return 0;
    }
    /* The first sync may report every page (KVM's INITIALLY_SET): count
     * only what the guest writes after it. */
    memory_global_dirty_log_sync();
    ram_dirty_capture_start();
    int64_t start = now_ns();
    wait_until_deadline(start + calc_time * 1000000000LL);
    memory_global_dirty_log_sync();
    uint64_t pages = ram_dirty_capture_stop();
    *ms = (now_ns() - start) / 1000000;
    dirty_log_off();
    return dirty_rate_mib_per_s((double)pages, *ms);
}

/* Dirty ring: per-vCPU rates into *rates (n of them); returns their sum. */
static int64_t measure_ring(int64_t calc_time, int64_t *ms, int64_t **rates, int *n)
{
    *n = cpus_count();
    *rates = g_new0(int64_t, *n ? *n : 1);
    if (!dirty_log_on(ms)) {
        return 0;
    }
    uint64_t *before = g_new0(uint64_t, *n ? *n : 1), *after = g_new0(uint64_t, *n ? *n : 1);
    accel_vcpu_dirty_counts(before, *n);
    int64_t start = now_ns();
    wait_until_deadline(start + calc_time * 1000000000LL);
    accel_vcpu_dirty_counts(after, *n);
    *ms = (now_ns() - start) / 1000000;
    dirty_log_off();
    int64_t total = 0;
    for (int i = 0; i < *n; i++) {
        (*rates)[i] = dirty_rate_mib_per_s((double)(after[i] - before[i]), *ms);
        total += (*rates)[i];
    }
    g_free(before);
    g_free(after);
    return total;
}

static void *dirty_rate_thread(void *opaque)
{
    (void)opaque;
    pthread_mutex_lock(&dr.lock);
    DirtyRateMeasureMode mode = dr.info.mode;
    int64_t calc_time = dr.info.calc_time;
    uint64_t per_gib = dr.info.sample_pages;
    pthread_mutex_unlock(&dr.lock);

    int64_t ms = 0, rate, *rates = NULL;
    int n_rates = 0;
    if (mode == DIRTY_RATE_MEASURE_MODE_DIRTY_BITMAP) {
        rate = measure_bitmap(calc_time, &ms);
    } else if (mode == DIRTY_RATE_MEASURE_MODE_DIRTY_RING) {
        rate = measure_ring(calc_time, &ms, &rates, &n_rates);
    } else {
        rate = measure_sampling(calc_time, per_gib, &ms);
    }
    pthread_mutex_lock(&dr.lock);
    g_free(dr.vcpu_rates);
    dr.vcpu_rates = rates;
    dr.n_vcpu_rates = n_rates;
    dr.info.calc_time = ms / 1000;
    dr.info.has_dirty_rate = true;
    dr.info.dirty_rate = rate;
    if (mode != DIRTY_RATE_MEASURE_MODE_PAGE_SAMPLING) {
        dr.info.sample_pages = 0;
    }
    dr.info.status = DIRTY_RATE_STATUS_MEASURED;
    pthread_mutex_unlock(&dr.lock);
    return NULL;
}

static void join_finished_thread(void)
{
    if (dr.thread_live) {
        /* It may wait for the BQL to stop dirty logging. */
        bql_unlock();
        pthread_join(dr.thread, NULL);
        bql_lock();
        dr.thread_live = false;
    }
}

static bool check_args(const q_obj_calc_dirty_rate_arg *arg, Error **errp)
{
    if (arg->calc_time < CALC_TIME_MIN || arg->calc_time > CALC_TIME_MAX) {
        error_setg(errp, "calc-time is out of range[%d, %d].", CALC_TIME_MIN, CALC_TIME_MAX);
        return false;
    }
    DirtyRateMeasureMode mode = arg->has_mode ? arg->mode : DIRTY_RATE_MEASURE_MODE_PAGE_SAMPLING;
    if (arg->has_sample_pages && mode == DIRTY_RATE_MEASURE_MODE_DIRTY_RING) {
        error_setg(errp, "either sample-pages or dirty-ring can be specified.");
        return false;
    }
    if (arg->has_sample_pages && (arg->sample_pages < SAMPLE_PAGES_MIN || arg->sample_pages > SAMPLE_PAGES_MAX)) {
        error_setg(errp, "sample-pages is out of range[%d, %d].", SAMPLE_PAGES_MIN, SAMPLE_PAGES_MAX);
        return false;
    }
    if (mode == DIRTY_RATE_MEASURE_MODE_DIRTY_RING && !accel_dirty_ring_enabled()) {
        error_setg(errp, "mode dirty-ring is not enabled, use other method instead.");
        return false;
    }
    return true;
}

bool qmp_calc_dirty_rate(const q_obj_calc_dirty_rate_arg *arg, Error **errp)
{
    assert(bql_locked());
    pthread_mutex_lock(&dr.lock);
    bool measuring = dr.info.status == DIRTY_RATE_STATUS_MEASURING;
    pthread_mutex_unlock(&dr.lock);
    if (measuring) {
        error_setg(errp, "the dirty rate is already being measured.");
        return false;
    }
    if (!check_args(arg, errp)) {
        return false;
    }
    join_finished_thread();
    if (!dr.cond_ready) {
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&dr.wake, &attr);
        pthread_condattr_destroy(&attr);
        dr.cond_ready = true;
    }

    pthread_mutex_lock(&dr.lock);
    dr.info = (DirtyRateInfo) {
        .status = DIRTY_RATE_STATUS_MEASURING,
        .start_time = now_ns() / 1000000000LL,
        .calc_time = arg->calc_time,
        .sample_pages = arg->has_sample_pages ? (uint64_t)arg->sample_pages : SAMPLE_PAGES_DEFAULT,
        .mode = arg->has_mode ? arg->mode : DIRTY_RATE_MEASURE_MODE_PAGE_SAMPLING,
    };
    dr.quit = false;
    pthread_mutex_unlock(&dr.lock);

    int r = pthread_create(&dr.thread, NULL, dirty_rate_thread, NULL);
    if (r) {
        pthread_mutex_lock(&dr.lock);
        dr.info.status = DIRTY_RATE_STATUS_UNSTARTED;
        pthread_mutex_unlock(&dr.lock);
        error_setg_errno(errp, r, "cannot start the dirty rate thread");
        return false;
    }
    dr.thread_live = true;
    return true;
}

DirtyRateInfo *qmp_query_dirty_rate(Error **errp)
{
    (void)errp;
    DirtyRateInfo *info = g_new0(DirtyRateInfo, 1);

    pthread_mutex_lock(&dr.lock);
    *info = dr.info;
    info->vcpu_dirty_rate = NULL;       /* dirty-ring mode only, once measured */
    if (info->status == DIRTY_RATE_STATUS_MEASURED && info->mode == DIRTY_RATE_MEASURE_MODE_DIRTY_RING) {
        DirtyRateVcpuList **tail = &info->vcpu_dirty_rate;
        for (int i = 0; i < dr.n_vcpu_rates; i++) {
            DirtyRateVcpu *v = g_new0(DirtyRateVcpu, 1);
            v->id = i;
            v->dirty_rate = dr.vcpu_rates[i];
            *tail = g_new0(DirtyRateVcpuList, 1);
            (*tail)->value = v;
            tail = &(*tail)->next;
        }
    }
    pthread_mutex_unlock(&dr.lock);
    return info;
}

void dirty_rate_shutdown(void)
{
    assert(bql_locked());
    if (!dr.thread_live) {
        return;
    }
    pthread_mutex_lock(&dr.lock);
    dr.quit = true;
    pthread_cond_broadcast(&dr.wake);
    pthread_mutex_unlock(&dr.lock);
    join_finished_thread();
}
