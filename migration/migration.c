/*
 * Outgoing migration: qmp_migrate → migrate_prepare → migration thread.
 * (See migration.h for the whole flow and the status diagram.)
 *
 * The migration thread takes the BQL for setup and completion only; pages
 * are scanned and sent without it. The main thread may cancel at any time:
 * it moves the status to cancelling and shuts the channel down, which
 * unblocks the thread wherever it is. Whatever ends the migration other than
 * success, the thread restarts the VM if it stopped it, so the source keeps
 * running with nothing lost.
 *
 * Who may touch each field of MigrationState is written where it is
 * declared. Statistics follow one rule: they are atomics, written by the
 * migration thread (zeroed by migration_reset before it starts) and read
 * by query-migrate / info migrate on the main thread without the lock, as
 * are ram.c's counters and the stream's byte count. A reader may see one
 * figure from before and one from after an update, as in QEMU.
 */
#include "migration.h"
#include "block-migration.h"
#include "channel.h"
#include "tls.h"
#include "clock.h"
#include "global-state.h"
#include "history.h"
#include "options.h"
#include "cpu-throttle.h"
#include "converge.h"
#include "ram.h"
#include "postcopy-ram.h"
#include "rp-reader.h"
#include "recovery.h"
#include "recv-bitmap.h"
#include "block-dirty-bitmap.h"
#include "machine.h"
#include "savevm.h"
#include "stream.h"
#include "memory.h"
#include "multifd.h"
#include "monitor.h"
#include "vm.h"
#include "qapi-commands.h"
#include "qapi-events.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>
#include <inttypes.h>

/* Completion is considered after each iteration round; bandwidth is measured
 * over windows of this length. */
#define BANDWIDTH_WINDOW_NS (100 * 1000 * 1000LL)
#define SHUT_WAIT_SECONDS 30

/*
 * [main]    written by the main thread (BQL) only while no migration thread
 *           runs (before g_thread_new, after the join); the thread reads it
 * [thread]  the migration thread only
 * [lock]    read and written under mig.lock
 * _Atomic   any thread, without the lock
 */
typedef struct MigrationState {
    pthread_mutex_t lock;      /* a pthread mutex, not GMutex: ThreadSanitizer sees it */
    pthread_cond_t cond;       /* [lock] rate-limit sleeps, pre-switchover, parameter changes */
    _Atomic int status;        /* MigrationStatus */
    GThread *thread;           /* [main] */

    MigAddress addr;           /* [main] */
    int passed_fd;             /* [main] fd: transport, taken from the monitor */
    MigStream *f;              /* [lock] for cancel's shutdown and query-migrate's byte count */
    int cancel_fd;             /* [main] eventfd: wakes a connect in progress on cancel */
    Error *error;              /* [lock] error-desc */
    bool continue_requested;   /* [lock] migrate-continue */
    /* max-bandwidth changed: the thread applies it to its stream (which
     * only the thread may touch) at its next check, and a broadcast of
     * cond cuts a rate-limit sleep short. */
    _Atomic bool rate_limit_changed;
    RunState vm_old_state;     /* [thread] run state before completion stopped the guest */
    _Atomic bool start_postcopy;    /* migrate-start-postcopy asked for the switch */
    /* [thread] the package went out: the destination may be running the
     * guest, so this side must never run it again on its own. */
    bool postcopy_started;
    int64_t downtime_start_ns; /* [thread] the guest stopped (or was let go on after pre-switchover) */

    /* Statistics for query-migrate (times in ms); see the top. */
    int64_t start_ns;          /* [main] */
    _Atomic int64_t setup_time, total_time, downtime, expected_downtime;
    _Atomic double mbps;
    _Atomic uint64_t pages_per_second, transferred;

    /* Resumable precopy (x-resumable-precopy): see migration_pause. */
    _Atomic bool resumable;    /* the thread would pause, not fail, on a broken channel */
    bool resume_requested;     /* [lock] migrate resume:true filled resume_addr/resume_fd */
    MigAddress resume_addr;    /* [lock] */
    int resume_fd;             /* [lock] */
    _Atomic uint64_t closed_bytes;  /* stream bytes of the connections that broke */
    _Atomic uint64_t first_bytes;   /* those of the first one */
    _Atomic bool resumed;
    MigStream *checkpoint_rp;  /* [thread] the return path the checkpoints' PONGs come on */
} MigrationState;

static MigrationState mig = {
    .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
    .status = MIGRATION_STATUS_NONE, .passed_fd = -1, .cancel_fd = -1, .resume_fd = -1,
};

/* Bytes the migration wrote on all its connections, f the current one. */
static uint64_t stream_total(MigStream *f)
{
    return atomic_load(&mig.closed_bytes) + (f ? mig_stream_bytes_written(f) : 0);
}

static MigrationStatus status_get(void)
{
    return atomic_load_explicit(&mig.status, memory_order_acquire);
}

void migration_emit_status(MigrationStatus status)
{
    if (migrate_cap(MIGRATION_CAPABILITY_EVENTS)) {
        qapi_event_send_migration(status);
    }
}

/* Move from `from` to `to` only if nobody (cancel) changed the status meanwhile. */
static bool status_change(MigrationStatus from, MigrationStatus to)
{
    int expected = from;
    if (!atomic_compare_exchange_strong_explicit(&mig.status, &expected, to,
                                                 memory_order_acq_rel, memory_order_acquire)) {
        return false;
    }
    mig_history_status(true, to);
    migration_emit_status(to);
    return true;
}

static bool status_is_running(MigrationStatus s)
{
    switch (s) {
    case MIGRATION_STATUS_SETUP:
    case MIGRATION_STATUS_ACTIVE:
    case MIGRATION_STATUS_PRE_SWITCHOVER:
    case MIGRATION_STATUS_DEVICE:
    case MIGRATION_STATUS_POSTCOPY_ACTIVE:
    case MIGRATION_STATUS_CANCELLING:
    case MIGRATION_STATUS_POSTCOPY_PAUSED:
    case MIGRATION_STATUS_POSTCOPY_RECOVER:
    case MIGRATION_STATUS_X_PRECOPY_PAUSED:
    case MIGRATION_STATUS_X_PRECOPY_RECOVER:
        return true;
    default:
        return false;
    }
}

bool migration_is_running(void)
{
    return status_is_running(status_get());
}

/* From the monitor: the stream belongs to the migration thread, so only
 * tell it (see rate_limit_apply). */
void migration_parameters_changed(void)
{
    pthread_mutex_lock(&mig.lock);
    atomic_store(&mig.rate_limit_changed, true);
    pthread_cond_broadcast(&mig.cond);
    pthread_mutex_unlock(&mig.lock);
}

/* The flight recorder's view of the source's counters. [thread] */
static void history_counters(MigHistoryCounters *c, MigStream *f)
{
    RamStats rs;
    ram_get_stats(&rs);
    *c = (MigHistoryCounters) {
        .stream_bytes = f ? stream_total(f) : atomic_load(&mig.transferred),  /* closed: exec */
        .normal_pages = rs.normal_pages, .zero_pages = rs.zero_pages,
        .remaining_bytes = rs.remaining_pages * MIGVM_PAGE_SIZE, .dirty_rate = rs.dirty_pages_rate,
        .throttle = (uint64_t)cpu_throttle_get_percentage(),
    };
}

static void converge_sample(ConvergeSample *s, MigStream *f)
{
    RamStats rs;
    ram_get_stats(&rs);
    /* Bytes on every channel: multifd's carry most pages when it is on. */
    uint64_t bytes = (f ? mig_stream_bytes_written(f) : 0) + multifd_send_bytes();
    *s = (ConvergeSample) { .ns = now_ns(), .stream_bytes = bytes, .pages_sent = rs.normal_pages + rs.zero_pages };
}

/* Each bitmap sync: a new pass. [thread: mig.f is its own] */
static void pass_event(uint64_t count, uint64_t dirtied)
{
    MigHistoryCounters c;
    history_counters(&c, mig.f);
    mig_history_pass(count, dirtied, &c);
    ConvergeSample cs;
    converge_sample(&cs, mig.f);
    converge_pass(count, dirtied, c.remaining_bytes, &cs);
    if (migrate_cap(MIGRATION_CAPABILITY_EVENTS)) {
        qapi_event_send_migration_pass((int64_t)count);
    }
}

static void set_error(Error *err)
{
    pthread_mutex_lock(&mig.lock);
    if (!mig.error) {
        mig.error = err;
        err = NULL;
    }
    pthread_mutex_unlock(&mig.lock);
    error_free(err);
}

static bool cancelled(void)
{
    return status_get() == MIGRATION_STATUS_CANCELLING;
}

/* ---- the migration thread ------------------------------------------------ */

/* Give the stream the current max-bandwidth if it changed (or at the
 * start); a new limit also starts a new slot. [thread] */
static void rate_limit_apply(MigStream *f, bool force)
{
    if (atomic_exchange(&mig.rate_limit_changed, false) || force) {
        /* In postcopy max-postcopy-bandwidth, 0 meaning unlimited (QEMU 7.2). */
        mig_stream_set_rate_limit(f, mig.postcopy_started ? migrate_max_postcopy_bandwidth()
                                                          : migrate_max_bandwidth());
    }
}

/* Sleep until the rate-limit slot ends; a cancel or a bandwidth change wakes us. */
static void rate_limit_wait(MigStream *f)
{
    int64_t end_ns = mig_stream_rate_limit_slot_end_ns(f);
    struct timespec end = { .tv_sec = end_ns / 1000000000LL, .tv_nsec = end_ns % 1000000000LL };
    pthread_mutex_lock(&mig.lock);
    while (!cancelled() && !atomic_load(&mig.rate_limit_changed) && now_ns() < end_ns &&
           !(mig.postcopy_started && postcopy_request_pending())) {
        pthread_cond_timedwait(&mig.cond, &mig.lock, &end);    /* CLOCK_MONOTONIC */
    }
    pthread_mutex_unlock(&mig.lock);
    if (now_ns() >= end_ns) {
        mig_stream_rate_limit_new_slot(f);
    }
    rate_limit_apply(f, false);
}

/* QEMU 7.2 completes when pending < last window's rate x downtime limit.
 * One fast window then overshoots the limit (measured with make bench): e.g.
 * the first 100 ms of a 1 GiB migration went at 3 GB/s (the destination's
 * first pages still got huge pages), the next ones at 0.47 GB/s, and the
 * switch-over with 730 MiB left took 307-1123 ms against a 300 ms limit.
 * So the decision waits for a few windows and counts on the lower of the
 * last window and a moving average of all of them. */
#define BANDWIDTH_TRUSTED_WINDOWS 3

typedef struct BandwidthMeter {
    int64_t window_start_ns;
    uint64_t window_start_bytes, window_start_pages;
    double bytes_per_ms;            /* last measurement; 0 until the first window ends */
    double average_bytes_per_ms;    /* exponential moving average, weight 1/4 per window */
    unsigned windows;               /* measured so far */
} BandwidthMeter;

/* Bytes per ms the switch-over may count on: 0 until enough windows ended
 * (until then only a pass that leaves nothing dirty completes). */
static double bandwidth_safe(const BandwidthMeter *m)
{
    if (m->windows < BANDWIDTH_TRUSTED_WINDOWS) {
        return 0;
    }
    return MIN(m->bytes_per_ms, m->average_bytes_per_ms);
}

static void bandwidth_update(BandwidthMeter *m, MigStream *f)
{
    int64_t now = now_ns();
    int64_t span = now - m->window_start_ns;
    if (span < BANDWIDTH_WINDOW_NS) {
        return;
    }
    uint64_t bytes = mig_stream_bytes_written(f);
    RamStats rs;
    ram_get_stats(&rs);
    uint64_t pages = rs.normal_pages + rs.zero_pages;
    m->bytes_per_ms = (double)(bytes - m->window_start_bytes) * 1e6 / span;
    m->windows++;
    m->average_bytes_per_ms = m->average_bytes_per_ms > 0
                              ? 0.75 * m->average_bytes_per_ms + 0.25 * m->bytes_per_ms
                              : m->bytes_per_ms;
    atomic_store(&mig.mbps, m->bytes_per_ms * 1000 * 8 / 1e6);
    atomic_store(&mig.pages_per_second, (uint64_t)((pages - m->window_start_pages) * 1e9 / span));
    uint64_t pending = 0;
    savevm_state_pending(false, &pending);      /* what is left now, not before the round */
    if (m->bytes_per_ms > 0) {
        /* Until the rate is trusted, the last window is the best guess. */
        double rate = bandwidth_safe(m) > 0 ? bandwidth_safe(m) : m->bytes_per_ms;
        atomic_store(&mig.expected_downtime, (int64_t)(pending / rate));
    }
    m->window_start_ns = now;
    m->window_start_bytes = bytes;
    m->window_start_pages = pages;
}

/* The iterations' decisions (ready to complete or not), the convergence
 * controller's included. */
typedef struct IterateState {
    BandwidthMeter meter;
    bool drain_pass;       /* the controller took one more pass: sync again once it is sent, */
    uint64_t drain_below;  /* i.e. what is left drops to this (disks may never reach 0) */
} IterateState;

/* Compare what is left with what the downtime limit allows. true: switch
 * over now. */
static bool switchover_due(IterateState *it)
{
    bool controller = migrate_convergence_controller();
    uint64_t pending = 0;
    savevm_state_pending(false, &pending);
    double rate = bandwidth_safe(&it->meter);
    double threshold = rate * (double)migrate_downtime_limit_ms();
    /* QEMU's rule: below the threshold, sync the dirty bitmap (a new pass)
     * and look again; complete when nothing or less than the threshold is
     * left. Until the first bandwidth windows end the threshold is 0. QEMU
     * 7.2 then completes on an estimate of 0 without a sync, though the
     * guest may have dirtied much meanwhile (a downtime far over the limit);
     * the controller syncs first. After the controller took one more pass,
     * the sync waits until that pass is sent. */
    bool sync = it->drain_pass ? pending <= it->drain_below : pending < threshold || (controller && pending == 0);
    if (!sync) {
        return pending == 0;
    }
    it->drain_pass = false;
    pending = 0;
    savevm_state_pending(true, &pending);
    if (rate > 0) {
        /* What a switch-over now would really cost (the estimate before
         * the sync left out what the guest dirtied meanwhile). */
        atomic_store(&mig.expected_downtime, (int64_t)(pending / rate));
    }
    if (pending == 0) {
        converge_nothing_left();
        return true;
    }
    if (pending >= threshold) {
        return false;
    }
    it->drain_pass = converge_continue(pending, rate);
    it->drain_below = pending / 8;
    return !it->drain_pass;
}

/* Iterate until what is left fits in the downtime limit, or until
 * migrate-start-postcopy (*postcopy set). true: ready to complete. */
static bool migration_iterate(MigStream *f, bool *postcopy, Error **errp)
{
    IterateState it = { .meter = { .window_start_ns = now_ns() } };
    it.meter.window_start_bytes = mig_stream_bytes_written(f);
    atomic_store(&mig.expected_downtime, (int64_t)migrate_downtime_limit_ms());
    ConvergeSample cs;
    converge_sample(&cs, f);
    converge_start(&cs);
    bool ready = false;
    for (;;) {
        if (cancelled()) {
            break;
        }
        if (atomic_load(&mig.start_postcopy)) {
            *postcopy = true;
            ready = true;
            break;
        }
        rate_limit_apply(f, false);
        if (switchover_due(&it)) {
            ready = true;
            break;
        }
        if (savevm_state_iterate(f, errp) < 0) {
            break;
        }
        sent_bitmap_checkpoint(f, mig.checkpoint_rp);      /* resumable precopy only */
        if (mig_stream_rate_limit_exceeded(f) && !mig_stream_has_error(f)) {
            mig_stream_flush(f);
            rate_limit_wait(f);
        }
        if (!mig_stream_get_error(f, errp)) {
            break;
        }
        bandwidth_update(&it.meter, f);
        converge_tick(now_ns());
    }
    converge_stop();
    return ready;
}

/* pause-before-switchover: wait in pre-switchover for migrate-continue. [BQL] */
static bool wait_for_continue(void)
{
    assert(bql_locked());
    if (!status_change(MIGRATION_STATUS_ACTIVE, MIGRATION_STATUS_PRE_SWITCHOVER)) {
        return false;
    }
    bql_unlock();
    pthread_mutex_lock(&mig.lock);
    while (!mig.continue_requested && !cancelled()) {
        pthread_cond_wait(&mig.cond, &mig.lock);
    }
    pthread_mutex_unlock(&mig.lock);
    bql_lock();
    return status_change(MIGRATION_STATUS_PRE_SWITCHOVER, MIGRATION_STATUS_DEVICE);
}

/* Stop the guest, finish live handlers, save devices. Sets *stopped when it
 * stopped a running guest (so a failure restarts it). */
static bool migration_complete(MigStream *f, bool *stopped, Error **errp)
{
    bql_lock();
    bool was_running = runstate_is_running();
    mig.vm_old_state = runstate_get();
    global_state_store();        /* the run state the destination will enter */
    /* Downtime counts from the stop request, as QEMU 7.2's; after a
     * pre-switchover pause, from migrate-continue. */
    mig.downtime_start_ns = now_ns();
    bool ok = vm_stop_force_state(RUN_STATE_FINISH_MIGRATE, errp);
    *stopped = was_running;
    int64_t stop_ns = now_ns();
    if (ok && migrate_cap(MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER)) {
        ok = wait_for_continue();
        mig.downtime_start_ns = stop_ns = now_ns();
    }
    mig_history_downtime_start(mig.downtime_start_ns);
    mig_history_phase_end(MIG_PHASE_STOP, stop_ns);
    ok = ok && !cancelled() && savevm_state_complete_precopy(f, true, errp);
    ok = ok && mig_stream_flush(f);
    int64_t flushed_ns = now_ns();
    mig_history_phase_end(MIG_PHASE_FLUSH, flushed_ns);
    atomic_store(&mig.downtime, (flushed_ns - mig.downtime_start_ns) / 1000000);
    bql_unlock();
    return ok && mig_stream_get_error(f, errp);
}

/* The end of a downtime phase inside savevm_state_complete_precopy. */
static void complete_stage(SavevmCompleteStage stage)
{
    mig_history_phase_end(stage == SAVEVM_COMPLETE_LIVE ? MIG_PHASE_LIVE_END : MIG_PHASE_DEVICES, now_ns());
}

/* With a return path, the destination says SHUT(0) when it loaded everything;
 * the downtime then includes the wait for it, as QEMU 7.2's. */
static bool wait_for_destination(MigStream *rp, Error **errp)
{
    int64_t started_us = -1;        /* a migvm destination's report (return-path.c) */
    for (;;) {
        uint16_t type, len;
        uint8_t payload[MIG_RP_MAX_LEN];
        if (!mig_rp_read(rp, &type, payload, &len, errp)) {
            error_prepend(errp, "return path: ");
            return false;
        }
        if (type == MIG_RP_MSG_SHUT) {
            uint32_t status = (uint32_t)payload[0] << 24 | payload[1] << 16 | payload[2] << 8 | payload[3];
            if (status) {
                error_setg(errp, "The destination failed to load the migration stream");
                return false;
            }
            int64_t shut_ns = now_ns();
            if (started_us >= 0) {
                mig_history_phase_end(MIG_PHASE_DEST_LOAD, shut_ns - started_us * 1000);
                mig_history_phase_end(MIG_PHASE_DEST_START, shut_ns);
            } else {
                mig_history_phase_end(MIG_PHASE_DEST, shut_ns);
            }
            atomic_store(&mig.downtime, (shut_ns - mig.downtime_start_ns) / 1000000);
            return true;
        }
        if (type == MIG_RP_MSG_PONG) {
            uint32_t v = (uint32_t)payload[0] << 24 | payload[1] << 16 | payload[2] << 8 | payload[3];
            if (v & MIG_PONG_STARTED_US) {
                started_us = v & ~MIG_PONG_STARTED_US;
            }
        }
        /* Anything else precopy does not need: ignore. */
    }
}

/* ---- postcopy (shared docs: postcopy.md sections 1 and 6.2) ------------- */

/* A page request arrived or the return path ended: cut a rate-limit sleep
 * short. Any thread. */
static void postcopy_wake(void)
{
    pthread_mutex_lock(&mig.lock);
    pthread_cond_broadcast(&mig.cond);
    pthread_mutex_unlock(&mig.lock);
}

/* The package the destination loads while it already listens for pages:
 * LISTEN, every device, PING 3, RUN. [BQL, guest stopped] */
static bool postcopy_send_package(MigStream *f, Error **errp)
{
    MigStream *pkg = mig_stream_new_mem_writer();
    savevm_send_postcopy_listen(pkg);
    bool ok = savevm_state_postcopy_devices(pkg, errp);
    if (ok) {
        savevm_send_ping(pkg, 3);
        savevm_send_postcopy_run(pkg);
        size_t len;
        const uint8_t *data = mig_stream_mem_data(pkg, &len);
        /* From the first byte of the package on, the destination may run
         * the guest: this side must never run it again on its own. */
        mig.postcopy_started = true;
        savevm_send_packaged(f, data, (uint32_t)len);
        savevm_send_ping(f, 4);
        ok = mig_stream_flush(f) && mig_stream_get_error(f, errp);
    }
    mig_stream_close(pkg, NULL);
    return ok;
}

/* migrate-start-postcopy took effect: stop the guest, end the handlers that
 * cannot go on (block), discard what is still dirty, PING 2, the package,
 * PING 4; then postcopy-active with max-postcopy-bandwidth. */
static bool postcopy_switchover(MigStream *f, bool *stopped, Error **errp)
{
    bql_lock();
    bool was_running = runstate_is_running();
    mig.vm_old_state = runstate_get();
    global_state_store();
    mig.downtime_start_ns = now_ns();
    bool ok = vm_stop_force_state(RUN_STATE_FINISH_MIGRATE, errp);
    *stopped = was_running;
    mig_history_downtime_start(mig.downtime_start_ns);
    mig_history_phase_end(MIG_PHASE_STOP, now_ns());
    ok = ok && !cancelled() && savevm_state_complete_precopy_only(f, errp) &&
         ram_postcopy_send_discard(f, errp);
    if (ok) {
        savevm_send_ping(f, 2);
        ok = postcopy_send_package(f, errp);
    }
    int64_t sent_ns = now_ns();
    mig_history_phase_end(MIG_PHASE_FLUSH, sent_ns);
    /* The guest is stopped from here until the destination runs it: the
     * time to send the package (QEMU 7.2 reports a figure that means nothing). */
    atomic_store(&mig.downtime, (sent_ns - mig.downtime_start_ns) / 1000000);
    bql_unlock();
    if (ok && !status_change(MIGRATION_STATUS_ACTIVE, MIGRATION_STATUS_POSTCOPY_ACTIVE)) {
        ok = false;     /* cancelled meanwhile */
    }
    rate_limit_apply(f, true);
    return ok;
}

/* Postcopy: the rest of RAM, requested pages first, then END ram and EOF. */
static bool postcopy_send_rest(MigStream *f, RpReader *rr, Error **errp)
{
    for (;;) {
        if (cancelled()) {
            error_setg(errp, "migration cancelled during postcopy");
            return false;
        }
        if (rp_reader_failed(rr, errp)) {
            return false;
        }
        rate_limit_apply(f, false);
        uint64_t pending = 0;
        savevm_state_pending(false, &pending);
        if (pending == 0) {
            break;      /* requests left are for pages already on their way */
        }
        if (savevm_state_iterate_postcopy(f, errp) < 0) {
            return false;
        }
        if (mig_stream_rate_limit_exceeded(f) && !mig_stream_has_error(f)) {
            mig_stream_flush(f);
            rate_limit_wait(f);
        }
        if (!mig_stream_get_error(f, errp)) {
            return false;
        }
    }
    return savevm_state_complete_postcopy(f, errp);
}

/* The destination said SHUT (read by the return-path reader). */
static bool postcopy_wait_for_destination(RpReader *rr, Error **errp)
{
    int64_t started_us, shut_ns;
    if (!rp_reader_finish(rr, &started_us, &shut_ns, errp)) {
        return false;
    }
    if (mig.postcopy_started) {
        /* The downtime ended with the package (the destination's guest ran
         * on from there): the flight recorder's phases stop there too. */
    } else if (started_us >= 0) {
        mig_history_phase_end(MIG_PHASE_DEST_LOAD, shut_ns - started_us * 1000);
        mig_history_phase_end(MIG_PHASE_DEST_START, shut_ns);
        atomic_store(&mig.downtime, (shut_ns - mig.downtime_start_ns) / 1000000);
    } else {
        mig_history_phase_end(MIG_PHASE_DEST, shut_ns);
        atomic_store(&mig.downtime, (shut_ns - mig.downtime_start_ns) / 1000000);
    }
    return true;
}

/* After the package went out, a failure must not run two guests. [BQL] */
static void postcopy_failed_keep_stopped(void)
{
    assert(bql_locked());
    Error *err = NULL;
    if (runstate_check(RUN_STATE_FINISH_MIGRATE) && !runstate_set(RUN_STATE_POSTMIGRATE, &err)) {
        error_report_err(err);
    }
    vm_set_handed_over(true);
}

/* A failed or cancelled migration gives the source back its run state:
 * running again if the migration stopped it, its old stopped state
 * otherwise, or kept stopped once postcopy handed the guest over. Done
 * before the final status is announced, so whoever sees "failed" or
 * "cancelled" also sees the run state it ends in. [BQL] */
static void migration_restore_runstate(bool stopped)
{
    assert(bql_locked());
    if (mig.postcopy_started) {
        postcopy_failed_keep_stopped();
    } else if (stopped || runstate_check(RUN_STATE_FINISH_MIGRATE)) {
        /* The source keeps running, exactly as before. */
        Error *err = NULL;
        if (stopped) {
            if (!vm_start(&err)) {
                error_report_err(err);
            }
        } else if (!runstate_set(mig.vm_old_state, NULL) &&
                   !runstate_set(RUN_STATE_POSTMIGRATE, &err)) {
            /* finish-migrate cannot go back to every stopped state (shutdown,
             * internal-error, ...); those end in postmigrate, as in QEMU 7.2. */
            error_report_err(err);
        }
    }
}

static void migration_cleanup(MigStream *f, MigStream *rp, MigChannel *ch)
{
    bool success = status_get() == MIGRATION_STATUS_COMPLETED;
    multifd_send_cleanup(success);
    bql_lock();
    savevm_state_cleanup();
    sent_bitmap_cleanup();
    bql_unlock();
    pthread_mutex_lock(&mig.lock);
    mig.f = NULL;
    pthread_mutex_unlock(&mig.lock);
    mig_stream_close(rp, NULL);
    mig_stream_close(f, NULL);
    Error *err = NULL;
    if (!mig_channel_close(ch, !success, &err) && success) {
        warn_report("%s", error_get_pretty(err));
    }
    error_free(err);
}

static void migration_fail(MigrationStatus from, Error *err)
{
    migrate_block_options_end();     /* before anyone can see the final status */
    if (cancelled()) {
        error_free(err);
        status_change(MIGRATION_STATUS_CANCELLING, MIGRATION_STATUS_CANCELLED);
        return;
    }
    if (err && mig.postcopy_started) {
        Error *why = err;
        err = NULL;
        error_setg(&err, "%s; the source stays stopped: the destination may have run the guest since "
                   "the switch to postcopy, so this copy is no longer the whole truth (cont needs "
                   "x-force-after-migration)", error_get_pretty(why));
        error_free(why);
    }
    if (err) {
        error_report("migration failed: %s", error_get_pretty(err));
        set_error(err);
    }
    status_change(from, MIGRATION_STATUS_FAILED);
}

static bool migration_may_pause(MigStream *f);
static bool migration_pause(MigChannel *ch, MigStream **f, MigStream **rp, Error **err);
static bool postcopy_finish(MigStream *f, RpReader **rr, Error **errp);
static bool postcopy_may_pause(MigStream *f, MigStream *rp, RpReader **rr);
static bool postcopy_pause(MigChannel *ch, MigStream **f, MigStream **rp, RpReader **rr, Error **err);

static gpointer migration_thread(gpointer opaque)
{
    MigChannel ch = { .fd = -1 };
    MigStream *f = NULL, *rp = NULL;
    Error *err = NULL;
    bool stopped = false;
    MigHistoryCounters hc;
    MigrationStatus at = MIGRATION_STATUS_SETUP;
    RpReader *rr = NULL;
    bool postcopy = migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_RAM);
    bool to_postcopy = false;

    bool multifd = migrate_cap(MIGRATION_CAPABILITY_MULTIFD);
    if (multifd && !multifd_transport_check(&mig.addr, &err)) {
        error_report_err(err);      /* QEMU 7.2: on stderr, no error-desc */
        err = NULL;
        goto fail;
    }
    if (!mig_channel_connect(&mig.addr, mig.passed_fd, mig.cancel_fd, &ch, &err) ||
        !mig_tls_channel_client(&ch, &mig.addr, mig.cancel_fd, &err)) {
        goto fail;
    }
    /* QEMU 7.2 asks the main channel's socket whether MSG_ZEROCOPY works. */
    if (multifd && migrate_cap(MIGRATION_CAPABILITY_ZERO_COPY_SEND) && !multifd_zero_copy_enable(ch.fd, &err)) {
        goto fail;
    }
    f = mig_stream_new_fd_writer(ch.fd, false);
    if (ch.child > 0) {
        mig_stream_set_peer_name(f, "command");     /* exec: */
    }
    pthread_mutex_lock(&mig.lock);
    mig.f = f;
    pthread_mutex_unlock(&mig.lock);
    if (cancelled()) {
        goto fail;
    }
    rate_limit_apply(f, true);

    MigConfigOptions cfg = { .machine_type = machine_type() };
    if (!savevm_state_header(f, &cfg, &err)) {
        goto fail;
    }
    if (postcopy && !ch.bidirectional) {
        error_setg(&err, "Unable to open return-path for postcopy");
        goto fail;
    }
    bool resumable = migrate_cap(MIGRATION_CAPABILITY_X_RESUMABLE_PRECOPY) && !postcopy &&
                     !migrate_cap(MIGRATION_CAPABILITY_BLOCK) && !migrate_cap(MIGRATION_CAPABILITY_MULTIFD);
    if ((migrate_cap(MIGRATION_CAPABILITY_RETURN_PATH) || postcopy || resumable) && ch.bidirectional) {
        rp = mig_stream_open_return_path(f, &err);
        if (!rp) {
            goto fail;
        }
        savevm_send_open_return_path(f);
        savevm_send_ping(f, 1);
        savevm_send_ping(f, MIG_PING_MIGVM);    /* return-path.c */
    }
    if (postcopy) {
        savevm_send_postcopy_advise_ram(f);
        postcopy_requests_reset();
        rr = rp_reader_start(rp, postcopy_wake);
    } else if (migrate_cap(MIGRATION_CAPABILITY_DIRTY_BITMAPS)) {
        savevm_send_postcopy_advise(f);     /* as QEMU 7.2, even without postcopy-ram */
    }
    /* The main channel is connected: only now the multifd ones (a QEMU 7.2
     * destination takes the first connection for the main channel). */
    if (multifd) {
        /* The destination tells a migration from a pre-flight check by its
         * first bytes: they must be there before it sees more connections. */
        mig_stream_flush(f);
        MigrateMultifdParams mp;
        migrate_multifd_params(&mp);
        if (!multifd_send_setup(&mig.addr, mig.cancel_fd, f, &mp,
                                mig_tls_enabled() ? mig_tls_multifd_connect : multifd_conn_connect, &err)) {
            goto fail;
        }
    }
    bql_lock();
    bool ok = savevm_state_setup(f, &err);
    bql_unlock();
    if (!ok) {
        goto fail;
    }
    atomic_store(&mig.setup_time, (now_ns() - mig.start_ns) / 1000000);
    if (!status_change(MIGRATION_STATUS_SETUP, MIGRATION_STATUS_ACTIVE)) {
        goto fail;
    }
    at = MIGRATION_STATUS_ACTIVE;
    mig.checkpoint_rp = NULL;
    if (resumable && rp) {
        sent_bitmap_setup();
        mig.checkpoint_rp = rp;
        atomic_store(&mig.resumable, true);
    }
    while (!migration_iterate(f, &to_postcopy, &err)) {
        if (!migration_may_pause(f) || !migration_pause(&ch, &f, &rp, &err)) {
            goto fail;
        }
    }
    atomic_store(&mig.resumable, false);
    if (to_postcopy) {
        bool sent = postcopy_switchover(f, &stopped, &err);
        at = status_get();
        if (!sent) {
            goto fail;
        }
        while (!postcopy_finish(f, &rr, &err)) {
            if (!postcopy_may_pause(f, rp, &rr) || !postcopy_pause(&ch, &f, &rp, &rr, &err)) {
                at = status_get();
                goto fail;
            }
        }
    } else if (!migration_complete(f, &stopped, &err)) {
        at = status_get();
        goto fail;
    }
    if (to_postcopy) {
        /* postcopy_finish waited for the destination's SHUT */
    } else if (rr) {
        RpReader *r = rr;
        rr = NULL;
        if (!postcopy_wait_for_destination(r, &err)) {
            at = status_get();
            goto fail;
        }
    } else if (rp && !wait_for_destination(rp, &err)) {
        at = status_get();
        goto fail;
    } else if (!rp) {
        multifd_send_wait_read(mig.cancel_fd);      /* SHUT says it with a return path */
    }
    atomic_store(&mig.transferred, stream_total(f));
    /* exec: the command's exit status decides (a stream checker in the pipe
     * can fail the migration), and a file it writes is whole once the status
     * says completed. */
    if (ch.child > 0) {
        pthread_mutex_lock(&mig.lock);
        mig.f = NULL;
        pthread_mutex_unlock(&mig.lock);
        bool flushed = mig_stream_close(f, &err);
        f = NULL;
        if (!flushed || !mig_channel_finish(&ch, mig.cancel_fd, &err)) {
            at = status_get();
            goto fail;
        }
    }
    atomic_store(&mig.total_time, (now_ns() - mig.start_ns) / 1000000);
    history_counters(&hc, f);
    mig_history_source_close(&hc, NULL);
    /* The whole stream is out: a cancel that raced with the last flush ends
     * completed too. Resuming the source now would leave two running copies
     * of the guest, since the destination has everything it needs. */
    /* postmigrate before "completed" is announced: whoever sees the status
     * must also see the final run state (QEMU 7.2 leaves a window). */
    bql_lock();
    /* finish-migrate -> postmigrate is always allowed, and nothing leaves
     * finish-migrate meanwhile (cont refuses it): a failure is a bug. */
    Error *state_err = NULL;
    if (!runstate_set(RUN_STATE_POSTMIGRATE, &state_err)) {
        error_report_err(state_err);
    }
    vm_set_handed_over(true);       /* no cont or reset may run it here again */
    bql_unlock();
    migrate_block_options_end();     /* before anyone can see the final status */
    status_change(status_get(), MIGRATION_STATUS_COMPLETED);
    migration_cleanup(f, rp, &ch);
    return NULL;

fail:
    atomic_store(&mig.resumable, false);
    if (f) {
        atomic_store(&mig.transferred, stream_total(f));
        if (!err && mig_stream_has_error(f)) {
            mig_stream_get_error(f, &err);
        }
    }
    if (rr) {
        mig_stream_shutdown(f);     /* the reader sleeps in a read of the same socket */
        int64_t a, b;
        Error *rp_err = NULL;
        rp_reader_finish(rr, &a, &b, &rp_err);
        error_free(rp_err);
    }
    Error *tls_err = NULL;
    if (!mig_tls_channel_error(&ch, &tls_err)) {     /* the cause behind a broken pipe */
        error_free(err);
        err = tls_err;
    }
    atomic_store(&mig.total_time, (now_ns() - mig.start_ns) / 1000000);
    history_counters(&hc, f);
    mig_history_source_close(&hc, cancelled() ? NULL : err);
    bql_lock();
    migration_restore_runstate(stopped);
    bql_unlock();
    migration_fail(at, err);
    migration_cleanup(f, rp, &ch);
    return NULL;
}

/* ---- resumable precopy ---------------------------------------------------
 * With x-resumable-precopy, a precopy whose channel breaks while RAM is
 * being copied (no disk, no multifd, a return path) does not fail: the
 * source closes the channel and waits in x-precopy-paused, the guest
 * running and its dirty pages still logged, for `migrate resume:true` (or a
 * cancel, which ends it as any cancel: nothing lost). The resume connects,
 * replays QEMU 7.2's received-bitmap exchange (recovery.c), under which every
 * page the destination lacks or may hold stale becomes dirty again, and the
 * passes go on where they were. A destination that lost its state (killed
 * and restarted) refuses the handshake; the source then stays paused, and a
 * cancel and a new migrate start afresh. */

/* The stream broke during the passes and the migration may pause. [thread] */
static bool migration_may_pause(MigStream *f)
{
    return atomic_load(&mig.resumable) && mig_stream_has_error(f) &&
           status_get() == MIGRATION_STATUS_ACTIVE;
}

/* Wait for migrate resume:true; false on cancel. [thread] */
static bool pause_wait_resume(MigAddress *addr, int *fd)
{
    pthread_mutex_lock(&mig.lock);
    while (!mig.resume_requested && !cancelled()) {
        pthread_cond_wait(&mig.cond, &mig.lock);
    }
    bool go = mig.resume_requested && !cancelled();
    if (go) {
        *addr = mig.resume_addr;
        *fd = mig.resume_fd;
        memset(&mig.resume_addr, 0, sizeof(mig.resume_addr));
        mig.resume_fd = -1;
        mig.resume_requested = false;
    }
    pthread_mutex_unlock(&mig.lock);
    return go;
}

static void pause_close(MigChannel *ch, MigStream **f, MigStream **rp)
{
    pthread_mutex_lock(&mig.lock);
    mig.f = NULL;
    pthread_mutex_unlock(&mig.lock);
    uint64_t bytes = *f ? mig_stream_bytes_written(*f) : 0;
    atomic_store(&mig.closed_bytes, atomic_load(&mig.closed_bytes) + bytes);
    atomic_store(&mig.transferred, atomic_load(&mig.closed_bytes));
    mig_stream_close(*rp, NULL);
    mig_stream_close(*f, NULL);
    *f = *rp = mig.checkpoint_rp = NULL;
    mig_channel_close(ch, true, NULL);
}

/* Connect to addr for a resume: *f and *rp on the new channel. [thread] */
static bool resume_connect(MigAddress *addr, int fd, MigChannel *ch, MigStream **f, MigStream **rp,
                           Error **errp)
{
    if (!mig_channel_connect(addr, fd, mig.cancel_fd, ch, errp) ||
        !mig_tls_channel_client(ch, addr, mig.cancel_fd, errp)) {     /* a new session, as QEMU 7.2 */
        return false;
    }
    *f = mig_stream_new_fd_writer(ch->fd, false);
    pthread_mutex_lock(&mig.lock);
    mig.f = *f;             /* a cancel now shuts it down */
    pthread_mutex_unlock(&mig.lock);
    *rp = mig_stream_open_return_path(*f, errp);
    return *rp != NULL;
}

/* One resume attempt on addr: connect and run the handshake. [thread] */
static bool pause_try_resume(MigAddress *addr, int fd, MigChannel *ch, MigStream **f,
                             MigStream **rp, Error **errp)
{
    uint64_t marked = 0;
    if (!resume_connect(addr, fd, ch, f, rp, errp)) {
        return false;
    }
    if (!recovery_source_handshake(*f, *rp, true, &marked, errp)) {
        error_prepend(errp, "resume refused (a destination restarted since has lost the pages: "
                      "migrate_cancel, then migrate afresh): ");
        return false;
    }
    error_report("migration resumed: %" PRIu64 " pages marked again, %" PRIu64 " to send",
                marked, ram_dirty_pages());
    rate_limit_apply(*f, true);
    savevm_state_resume_prepare();
    sent_bitmap_resumed();
    mig.checkpoint_rp = *rp;
    return true;
}

/* The channel broke (*err says how; reported and freed here): pause until
 * resumed on a new channel (true, with *f and *rp the new streams) or
 * cancelled (false). [thread] */
static bool migration_pause(MigChannel *ch, MigStream **f, MigStream **rp, Error **err)
{
    pause_close(ch, f, rp);
    if (!atomic_load(&mig.resumed) && !atomic_load(&mig.first_bytes)) {
        atomic_store(&mig.first_bytes, atomic_load(&mig.closed_bytes));
    }
    error_report("migration paused: %s", error_get_pretty(*err));
    error_free(*err);
    *err = NULL;
    if (!status_change(MIGRATION_STATUS_ACTIVE, MIGRATION_STATUS_X_PRECOPY_PAUSED)) {
        return false;
    }
    for (;;) {
        MigAddress addr;
        int fd;
        if (!pause_wait_resume(&addr, &fd) ||
            !status_change(MIGRATION_STATUS_X_PRECOPY_PAUSED, MIGRATION_STATUS_X_PRECOPY_RECOVER)) {
            if (!cancelled()) {
                mig_address_clear(&addr);
            }
            return false;
        }
        Error *local = NULL;
        bool ok = pause_try_resume(&addr, fd, ch, f, rp, &local);
        mig_address_clear(&addr);
        if (ok && status_change(MIGRATION_STATUS_X_PRECOPY_RECOVER, MIGRATION_STATUS_ACTIVE)) {
            atomic_store(&mig.resumed, true);
            return true;
        }
        if (local) {
            error_report("%s", error_get_pretty(local));
            error_free(local);
        }
        pause_close(ch, f, rp);
        if (!status_change(MIGRATION_STATUS_X_PRECOPY_RECOVER, MIGRATION_STATUS_X_PRECOPY_PAUSED)) {
            return false;       /* cancelled */
        }
    }
}

/* ---- postcopy recovery (shared docs: postcopy.md 6.3) ---------------------
 * An I/O error on the channel or the return path during postcopy-active
 * does not fail the migration: the destination runs the guest and only
 * this side has the pages it lacks. The source closes the channel and
 * waits in postcopy-paused, its guest stopped (it never runs here again),
 * for `migrate resume:true`: a new connection, the received-bitmap exchange
 * (every page the destination lacks becomes dirty again), a new return-path
 * reader; the destination asks again for the pages its vCPUs wait for, and
 * the background stream goes on with what is left. A failed connection or
 * handshake goes back to postcopy-paused, to be retried; a cancel ends it
 * cancelled, the source still stopped. Protocol errors (a bad page request,
 * SHUT(1)) fail the migration as before. */

/* The postcopy phase to its end: the rest of RAM, then the destination's
 * SHUT; *rr is consumed when that wait starts. [thread] */
static bool postcopy_finish(MigStream *f, RpReader **rr, Error **errp)
{
    if (!postcopy_send_rest(f, *rr, errp)) {
        return false;
    }
    RpReader *r = *rr;
    *rr = NULL;
    return postcopy_wait_for_destination(r, errp);
}

/* The postcopy phase failed: stop the return-path reader (*rr NULL after),
 * and say whether it was the connection (an I/O error on either direction,
 * what QEMU 7.2 pauses on) while postcopy-active. [thread] */
static bool postcopy_may_pause(MigStream *f, MigStream *rp, RpReader **rr)
{
    bool io = mig_stream_has_error(f);
    if (*rr) {
        mig_stream_shutdown(f);     /* the reader sleeps in a read of the same socket */
        int64_t a, b;
        Error *rp_err = NULL;
        rp_reader_finish(*rr, &a, &b, &rp_err);
        error_free(rp_err);
        *rr = NULL;
    }
    /* After the join: the reader owned rp. A read that failed or met the
     * end of the stream left its error there; a bad message or SHUT(1) did not. */
    io = io || (rp && mig_stream_has_error(rp));
    return io && status_get() == MIGRATION_STATUS_POSTCOPY_ACTIVE;
}

/* The connection broke (*err says how; reported and freed here): wait in
 * postcopy-paused until resumed on a new channel (true: *f, *rp new and *rr
 * reading it) or cancelled (false). [thread] */
static bool postcopy_pause(MigChannel *ch, MigStream **f, MigStream **rp, RpReader **rr, Error **err)
{
    pause_close(ch, f, rp);
    error_report("%s", error_get_pretty(*err));
    error_free(*err);
    *err = NULL;
    error_report("Detected IO failure for postcopy. Migration paused.");
    if (!status_change(MIGRATION_STATUS_POSTCOPY_ACTIVE, MIGRATION_STATUS_POSTCOPY_PAUSED)) {
        return false;
    }
    for (;;) {
        MigAddress addr;
        int fd;
        if (!pause_wait_resume(&addr, &fd)) {
            return false;
        }
        /* As QEMU 7.2: postcopy-recover once connected; a failed connect
         * stays in postcopy-paused. */
        Error *local = NULL;
        bool ok = resume_connect(&addr, fd, ch, f, rp, &local);
        mig_address_clear(&addr);
        if (!ok) {
            error_report("%s", error_get_pretty(local));
            error_free(local);
            pause_close(ch, f, rp);
            if (cancelled()) {
                return false;
            }
            continue;
        }
        if (!status_change(MIGRATION_STATUS_POSTCOPY_PAUSED, MIGRATION_STATUS_POSTCOPY_RECOVER)) {
            return false;       /* cancelled */
        }
        uint64_t marked = 0;
        ok = recovery_source_handshake(*f, *rp, false, &marked, &local);
        if (ok) {
            error_report("postcopy resumed: %" PRIu64 " pages to send", ram_dirty_pages());
            postcopy_requests_new_channel();
            rate_limit_apply(*f, true);
            savevm_state_resume_prepare();
            *rr = rp_reader_start(*rp, postcopy_wake);
            /* false: cancelled meanwhile; the caller stops the reader */
            return status_change(MIGRATION_STATUS_POSTCOPY_RECOVER, MIGRATION_STATUS_POSTCOPY_ACTIVE);
        }
        error_prepend(&local, "postcopy resume refused: ");
        error_report("%s", error_get_pretty(local));
        error_free(local);
        pause_close(ch, f, rp);
        if (!status_change(MIGRATION_STATUS_POSTCOPY_RECOVER, MIGRATION_STATUS_POSTCOPY_PAUSED)) {
            return false;       /* cancelled */
        }
    }
}

/* migrate resume:true: hand the new address to the paused thread. */
static bool migration_resume_request(const char *uri, Error **errp)
{
    MigrationStatus s = status_get();
    if (s != MIGRATION_STATUS_X_PRECOPY_PAUSED && s != MIGRATION_STATUS_POSTCOPY_PAUSED) {
        error_setg(errp, "Cannot resume if there is no paused migration");
        return false;
    }
    if (s == MIGRATION_STATUS_POSTCOPY_PAUSED && migrate_cap(MIGRATION_CAPABILITY_RELEASE_RAM)) {
        error_setg(errp, "Postcopy recovery cannot work when release-ram capability is set");
        return false;
    }
    MigAddress addr;
    int fd;
    if (!mig_address_parse(uri, false, &addr, errp)) {
        return false;
    }
    if (!mig_address_take_fd(&addr, &fd, errp)) {
        mig_address_clear(&addr);
        return false;
    }
    pthread_mutex_lock(&mig.lock);
    if (mig.resume_requested) {         /* not taken yet: the newer one wins */
        mig_address_clear(&mig.resume_addr);
        if (mig.resume_fd >= 0) {
            close(mig.resume_fd);
        }
    }
    mig.resume_addr = addr;
    mig.resume_fd = fd;
    mig.resume_requested = true;
    pthread_cond_broadcast(&mig.cond);
    pthread_mutex_unlock(&mig.lock);
    return true;
}

bool qmp_migrate_pause(Error **errp)
{
    if (status_get() == MIGRATION_STATUS_ACTIVE && atomic_load(&mig.resumable)) {
        pthread_mutex_lock(&mig.lock);
        if (mig.f) {
            mig_stream_shutdown(mig.f);
        }
        pthread_mutex_unlock(&mig.lock);
        return true;
    }
    if (status_get() == MIGRATION_STATUS_POSTCOPY_ACTIVE) {
        /* The thread sees the I/O error and pauses (postcopy_pause). */
        pthread_mutex_lock(&mig.lock);
        if (mig.f) {
            mig_stream_shutdown(mig.f);
        }
        pthread_mutex_unlock(&mig.lock);
        return true;
    }
    if (migration_incoming_pause()) {
        return true;
    }
    error_setg(errp, "migrate-pause is currently only supported during postcopy-active state");
    return false;
}

bool migration_init(Error **errp)
{
    assert(bql_locked());
    /* Timed waits (rate_limit_wait) count in CLOCK_MONOTONIC, as now_ns(). */
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&mig.cond, &attr);
    pthread_condattr_destroy(&attr);
    savevm_set_complete_observer(complete_stage);
    mig_history_set_disk_counter(block_mig_stream_bytes);
    /* "block" before "ram", "dirty-bitmap" after: QEMU 7.2's section ids
     * (timer 0, block 1, ram 2, dirty-bitmap 3). */
    return block_mig_init(errp) && ram_mig_init(pass_event, errp) && dirty_bitmap_mig_init(errp) &&
           global_state_register(errp);
}

void migration_shutdown(void)
{
    assert(bql_locked());
    dirty_rate_shutdown();
    qmp_migrate_cancel(NULL);
    if (mig.thread) {
        /* The thread needs the BQL to finish its cleanup. */
        bql_unlock();
        g_thread_join(mig.thread);
        bql_lock();
        mig.thread = NULL;
    }
    mig_address_clear(&mig.addr);
    error_free(mig.error);
    mig.error = NULL;
}

/* ---- QMP: migrate, migrate_cancel, migrate-continue, query-migrate -------- */

static bool migrate_prepare(const q_obj_migrate_arg *arg, Error **errp)
{
    if (migration_is_running()) {
        error_setg(errp, "There's a migration process in progress");
        return false;
    }
    if (runstate_check(RUN_STATE_INMIGRATE)) {
        error_setg(errp, "Guest is waiting for an incoming migration");
        return false;
    }
    if (runstate_check(RUN_STATE_POSTMIGRATE)) {
        error_setg(errp, "Can't migrate the vm that was paused due to previous migration");
        return false;
    }
    /* blk / inc: capability block for this migration only (undone when it ends). */
    return migrate_block_options_begin(arg->has_blk && arg->blk, arg->has_inc && arg->inc, errp);
}

/* The previous migration thread announces failed/cancelled before its
 * cleanup, which takes the BQL to restart the guest: joining it with the
 * BQL held would deadlock when `migrate` follows a cancel at once. Join it
 * without the BQL, so the checks of the new migrate also see the run state
 * it restored. [BQL] */
static void migration_join_ended(void)
{
    assert(bql_locked());
    if (mig.thread && !migration_is_running()) {
        bql_unlock();
        g_thread_join(mig.thread);
        bql_lock();
        mig.thread = NULL;
    }
}

/* A new migration starts in setup (MIGRATION event), as QEMU's migrate_init. */
static void migration_reset(void)
{
    migration_join_ended();
    mig_address_clear(&mig.addr);
    mig.passed_fd = -1;
    pthread_mutex_lock(&mig.lock);
    error_free(mig.error);
    mig.error = NULL;
    mig.continue_requested = false;
    pthread_mutex_unlock(&mig.lock);
    atomic_store(&mig.start_postcopy, false);
    mig.postcopy_started = false;
    if (mig.cancel_fd < 0) {
        mig.cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    uint64_t drain;
    while (read(mig.cancel_fd, &drain, sizeof(drain)) > 0) {
        /* forget a cancel of an earlier migration */
    }
    mig.start_ns = now_ns();
    atomic_store(&mig.setup_time, 0);
    atomic_store(&mig.total_time, 0);
    atomic_store(&mig.downtime, 0);
    atomic_store(&mig.expected_downtime, 0);
    atomic_store(&mig.mbps, 0);
    atomic_store(&mig.pages_per_second, 0);
    atomic_store(&mig.transferred, 0);
    multifd_send_stats_reset();
    atomic_store(&mig.closed_bytes, 0);
    atomic_store(&mig.first_bytes, 0);
    atomic_store(&mig.resumed, false);
    block_mig_stats_reset();
    atomic_store_explicit(&mig.status, MIGRATION_STATUS_SETUP, memory_order_release);
    migration_emit_status(MIGRATION_STATUS_SETUP);
}

/* A URI that cannot be used fails the migration that migration_reset began:
 * status failed, with error-desc unless the scheme itself is unknown (QEMU 7.2). */
static bool migration_fail_uri(Error *err, bool with_desc, Error **errp)
{
    if (with_desc) {
        set_error(error_copy(err));
    }
    MigHistoryCounters none = { 0 };
    mig_history_source_close(&none, err);
    migrate_block_options_end();
    error_propagate(errp, err);
    status_change(MIGRATION_STATUS_SETUP, MIGRATION_STATUS_FAILED);
    return false;
}

bool qmp_migrate(const q_obj_migrate_arg *arg, Error **errp)
{
    if (arg->has_resume && arg->resume) {
        return migration_resume_request(arg->uri, errp);
    }
    migration_join_ended();
    if (!migrate_prepare(arg, errp)) {
        return false;
    }
    migration_reset();
    mig_history_source_begin(arg->uri);
    Error *err = NULL;
    MigAddress addr;
    if (!mig_address_parse(arg->uri, false, &addr, &err)) {
        return migration_fail_uri(err, mig_uri_scheme_known(arg->uri), errp);
    }
    int fd;
    if (!mig_address_take_fd(&addr, &fd, &err)) {
        mig_address_clear(&addr);
        return migration_fail_uri(err, true, errp);
    }
    mig.addr = addr;
    mig.passed_fd = fd;
    mig.thread = g_thread_new("migration", migration_thread, NULL);
    return true;
}

bool qmp_migrate_cancel(Error **errp)
{
    for (;;) {
        MigrationStatus s = status_get();
        if (!status_is_running(s) || s == MIGRATION_STATUS_CANCELLING) {
            return true;
        }
        if (status_change(s, MIGRATION_STATUS_CANCELLING)) {
            break;
        }
    }
    pthread_mutex_lock(&mig.lock);
    if (mig.f) {
        mig_stream_shutdown(mig.f);
    }
    multifd_send_shutdown();
    uint64_t one = 1;
    if (mig.cancel_fd >= 0 && write(mig.cancel_fd, &one, sizeof(one)) < 0) {
        /* an eventfd write cannot fail short of overflow; nothing to do */
    }
    pthread_cond_broadcast(&mig.cond);
    pthread_mutex_unlock(&mig.lock);
    return true;
}

bool qmp_migrate_continue(const q_obj_migrate_continue_arg *arg, Error **errp)
{
    MigrationStatus s = status_get();
    if (s != arg->state) {
        error_setg(errp, "Migration not in expected state: %s", MigrationStatus_str(s));
        return false;
    }
    pthread_mutex_lock(&mig.lock);
    mig.continue_requested = true;
    pthread_cond_broadcast(&mig.cond);
    pthread_mutex_unlock(&mig.lock);
    return true;
}

bool qmp_migrate_start_postcopy(Error **errp)
{
    if (!migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_RAM)) {
        error_setg(errp, "Enable postcopy with migrate_set_capability before the start of migration");
        return false;
    }
    if (status_get() == MIGRATION_STATUS_NONE) {
        error_setg(errp, "Postcopy must be started after migration has been started");
        return false;
    }
    /* After the end of a migration it does nothing, as QEMU 7.2 (a race with
     * completion is no error). */
    atomic_store(&mig.start_postcopy, true);
    postcopy_wake();
    return true;
}

static MigrationStats *ram_info(bool completed)
{
    RamStats rs;
    ram_get_stats(&rs);
    MigrationStats *s = g_new0(MigrationStats, 1);
    uint64_t done = atomic_load(&mig.transferred);
    uint64_t stream = completed || !mig.f ? done : stream_total(mig.f);
    /* QEMU counts RAM alone here; the disk's bytes are the "disk" member's. */
    s->transferred = (int64_t)(stream - MIN(stream, block_mig_stream_bytes()));
    s->remaining = completed ? 0 : (int64_t)(rs.remaining_pages * MIGVM_PAGE_SIZE);
    s->total = (int64_t)rs.total_bytes;
    s->duplicate = (int64_t)rs.zero_pages;
    s->normal = (int64_t)rs.normal_pages;
    s->normal_bytes = (int64_t)(rs.normal_pages * MIGVM_PAGE_SIZE);
    s->dirty_pages_rate = (int64_t)rs.dirty_pages_rate;
    s->mbps = atomic_load(&mig.mbps);
    s->dirty_sync_count = (int64_t)rs.dirty_sync_count;
    s->page_size = MIGVM_PAGE_SIZE;
    s->pages_per_second = atomic_load(&mig.pages_per_second);
    s->precopy_bytes = rs.precopy_bytes;
    s->downtime_bytes = rs.downtime_bytes;
    s->postcopy_bytes = rs.postcopy_bytes;
    s->postcopy_requests = (int64_t)rs.postcopy_requests;
    s->multifd_bytes = multifd_send_bytes();
    s->dirty_sync_missed_zero_copy = multifd_send_zero_copy_misses();
    return s;
}

MigrationInfo *qmp_query_migrate(Error **errp)
{
    MigrationInfo *info = g_new0(MigrationInfo, 1);
    /* The lock keeps mig.f alive while its byte count is read, and guards
     * the error; the statistics are atomics. */
    pthread_mutex_lock(&mig.lock);
    MigrationStatus s = status_get();
    switch (s) {
    case MIGRATION_STATUS_NONE:
        pthread_mutex_unlock(&mig.lock);
        migration_incoming_fill_info(info);
        return info;
    case MIGRATION_STATUS_ACTIVE:
    case MIGRATION_STATUS_CANCELLING:
    case MIGRATION_STATUS_PRE_SWITCHOVER:
    case MIGRATION_STATUS_DEVICE:
    case MIGRATION_STATUS_POSTCOPY_ACTIVE:
    case MIGRATION_STATUS_POSTCOPY_PAUSED:
    case MIGRATION_STATUS_POSTCOPY_RECOVER:
    case MIGRATION_STATUS_X_PRECOPY_PAUSED:
    case MIGRATION_STATUS_X_PRECOPY_RECOVER:
        info->has_setup_time = true;
        info->setup_time = atomic_load(&mig.setup_time);
        info->has_total_time = true;
        info->total_time = (now_ns() - mig.start_ns) / 1000000;
        info->has_expected_downtime = true;
        info->expected_downtime = atomic_load(&mig.expected_downtime);
        info->ram = ram_info(false);
        info->disk = block_mig_disk_stats();
        if (cpu_throttle_active()) {
            info->has_cpu_throttle_percentage = true;
            info->cpu_throttle_percentage = cpu_throttle_get_percentage();
        }
        info->x_convergence = converge_query();
        break;
    case MIGRATION_STATUS_COMPLETED:
        info->has_setup_time = true;
        info->setup_time = atomic_load(&mig.setup_time);
        info->has_total_time = true;
        info->total_time = atomic_load(&mig.total_time);
        info->has_downtime = true;
        info->downtime = atomic_load(&mig.downtime);
        info->ram = ram_info(true);
        break;
    case MIGRATION_STATUS_FAILED:
        if (mig.error) {
            info->error_desc = g_strdup(error_get_pretty(mig.error));
        }
        break;
    default:
        break;
    }
    if (atomic_load(&mig.resumed) && info->ram) {
        info->has_x_resent_bytes = true;
        info->x_resent_bytes = (uint64_t)info->ram->transferred + block_mig_stream_bytes() -
                               MIN(atomic_load(&mig.first_bytes),
                                   (uint64_t)info->ram->transferred + block_mig_stream_bytes());
    }
    pthread_mutex_unlock(&mig.lock);
    info->has_status = true;
    info->status = s;
    return info;
}
