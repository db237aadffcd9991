/*
 * Incoming migration's state machine (migration/incoming.c) without a
 * process: migrate-incoming refused without -incoming, -incoming defer, a
 * failed load (status failed with the loader's error, the guest never
 * starts), a retry after it that completes and starts the guest, and a
 * refusal once a migration has completed. Streams come from file: URIs;
 * this test thread is the main loop.
 */
#include <check.h>
#include <pthread.h>
#include <time.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include "migration.h"
#include "options.h"
#include "ram-prefault.h"
#include "memory.h"
#include "options.h"
#include "postcopy-ram.h"
#include "preflight.h"
#include "recovery.h"
#include "tls.h"
#include "machine.h"
#include "monitor.h"
#include "vm.h"
#include "qapi-commands.h"
#include "qapi-events.h"
#include "unit-test.h"

/* ---------------- stubs: the machine and the main loop ---------------- */
/* Pre-faulting (system/ram-prefault.c): this test has no guest RAM. */
bool migrate_prefault_ram(void)
{
    return false;
}

void ram_prefault_start(void)
{
}

void ram_prefault_stop(void)
{
}

uint64_t ram_prefault_data_front;       /* multifd channels move it */
uint32_t ram_prefault_waiters;

void ram_prefault_wake(void)
{
}


/* Options: every capability off (multifd's paths are test-multifd.py's). */
bool migrate_cap(MigrationCapability cap)
{
    return false;
}

void migrate_multifd_params(MigrateMultifdParams *out)
{
    memset(out, 0, sizeof(*out));
}

uint32_t migrate_dead_link_timeout_ms(void)
{
    return 0;
}

RAMBlock *ram_block_by_name(const char *name)
{
    return NULL;
}

const char *machine_type(void)
{
    return "none";
}
bool vm_autostart = true;

static RunState runstate = RUN_STATE_INMIGRATE;
static int vm_starts;
/* pthread locks rather than glib's, which ThreadSanitizer cannot see. */
static pthread_mutex_t sched_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sched_cond = PTHREAD_COND_INITIALIZER;
static void (*sched_fn)(void *opaque);  /* from main_loop_schedule: the load's end */
static void *sched_opaque;
static MigrationStatus events[32];  /* MIGRATION events, in order */
static int n_events;

RunState runstate_get(void)
{
    return runstate;
}

/* Postcopy: never advised by these streams (no capability). */
PostcopyIncomingState postcopy_incoming_state(void)
{
    return POSTCOPY_INCOMING_NONE;
}

bool postcopy_incoming_advise(uint64_t page_summary, uint64_t target_page, Error **errp)
{
    error_setg(errp, "no postcopy in this test");
    return false;
}

bool postcopy_incoming_discard(const char *block, uint64_t start, uint64_t len, Error **errp)
{
    error_setg(errp, "no postcopy in this test");
    return false;
}

bool postcopy_incoming_listen(MigStream *rp, Error **errp)
{
    error_setg(errp, "no postcopy in this test");
    return false;
}

void postcopy_incoming_set_running(void)
{
}

void postcopy_incoming_cleanup(bool keep_registered)
{
}

/* Postcopy recovery: never reached without postcopy. */
void postcopy_incoming_pause(void)
{
}

bool postcopy_incoming_resume(MigStream *rp)
{
    return false;
}

uint64_t postcopy_received_map(const RAMBlock *b, unsigned long *out)
{
    return 0;
}

bool postcopy_blocktime_get(uint32_t *total_ms, uint32_t **per_vcpu_ms, int *nvcpus)
{
    return false;
}

bool runstate_set(RunState state, Error **errp)
{
    runstate = state;
    return true;
}

bool vm_start(Error **errp)
{
    vm_starts++;
    runstate = RUN_STATE_RUNNING;
    return true;
}


void main_loop_schedule(void (*fn)(void *opaque), void *opaque)
{
    pthread_mutex_lock(&sched_lock);
    sched_fn = fn;
    sched_opaque = opaque;
    pthread_cond_signal(&sched_cond);
    pthread_mutex_unlock(&sched_lock);
}

static void record_event(MigrationStatus s)
{
    ck_assert_int_lt(n_events, (int)G_N_ELEMENTS(events));
    events[n_events++] = s;
}

void migration_emit_status(MigrationStatus status)
{
    record_event(status);
}

void qapi_event_send_migration(MigrationStatus status)
{
    record_event(status);
}

Monitor *monitor_cur(void)
{
    return NULL;
}

int monitor_fd_take(Monitor *mon, const char *name, Error **errp)
{
    error_setg(errp, "no monitor");
    return -1;
}

/* The pre-flight check is tested end to end (test-migration-check.py):
 * every channel here is a migration. */
/* No tls-creds in these tests: channels are plain. */
bool mig_tls_enabled(void)
{
    return false;
}

void mig_tls_channel_server_async(const MigChannel *ch, MigTlsAcceptedFn *done, void *opaque)
{
    ck_abort_msg("no TLS handshake without tls-creds");
}

void mig_tls_layer_end(void *layer, bool abort)
{
    ck_abort_msg("no TLS session without tls-creds");
}

void mig_preflight_classify(MigChannel *ch, MigPreflightLoadFn *load, void (*done)(void))
{
    load(ch);
}

/* Recovery has its own tests (test-recovery, test-migration-resume.py). */
bool recovery_load_command(uint16_t cmd, uint16_t len, MigStream *f, MigStream *rp,
                           bool recovering, RecoveryReceivedMapFn *received_map, bool *resumed,
                           Error **errp)
{
    (void)cmd, (void)len, (void)f, (void)rp, (void)recovering, (void)received_map, (void)resumed;
    error_setg(errp, "no recovery in this test");
    return false;
}

/* ---------------- helpers ---------------- */

G_DEFINE_AUTOPTR_CLEANUP_FUNC(MigrationInfo, qapi_free_MigrationInfo)

static char *tmpdir;

static void setup(void)
{
    tmpdir = g_dir_make_tmp("test-incoming-XXXXXX", NULL);
    ck_assert_ptr_nonnull(tmpdir);
}

static void teardown(void)
{
    g_autoptr(GDir) d = g_dir_open(tmpdir, 0, NULL);
    for (const char *n; d && (n = g_dir_read_name(d));) {
        g_autofree char *p = g_build_filename(tmpdir, n, NULL);
        unlink(p);
    }
    rmdir(tmpdir);
    g_clear_pointer(&tmpdir, g_free);
}

/* A file: URI holding these bytes. */
static char *stream_file(const char *name, const void *data, size_t len)
{
    g_autofree char *path = g_build_filename(tmpdir, name, NULL);
    ck_assert(g_file_set_contents(path, data, len, NULL));
    return g_strdup_printf("file:%s", path);
}

/* What query-migrate shows; NULL when it shows nothing incoming. */
static MigrationInfo *query(void)
{
    MigrationInfo *info = g_new0(MigrationInfo, 1);
    bql_lock();
    bool shown = migration_incoming_fill_info(info);
    bql_unlock();
    if (!shown) {
        qapi_free_MigrationInfo(info);
        return NULL;
    }
    return info;
}

static MigrationStatus status_now(void)
{
    g_autoptr(MigrationInfo) info = query();
    return info && info->has_status ? info->status : MIGRATION_STATUS_NONE;
}

/* Be the main loop until the load has ended (its end is scheduled on the
 * main loop), or fail after 10 s. */
static void run_until_load_ends(void)
{
    gint64 deadline = g_get_monotonic_time() + 10 * G_TIME_SPAN_SECOND;
    while (g_get_monotonic_time() < deadline) {
        bql_lock();                                  /* the main loop's sources run with it */
        g_main_context_iteration(NULL, false);
        bql_unlock();
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 10 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&sched_lock);
        if (!sched_fn) {
            pthread_cond_timedwait(&sched_cond, &sched_lock, &until);
        }
        void (*fn)(void *) = sched_fn;
        void *opaque = sched_opaque;
        sched_fn = NULL;
        pthread_mutex_unlock(&sched_lock);
        if (fn) {
            bql_lock();
            fn(opaque);
            bql_unlock();
            return;
        }
    }
    ck_abort_msg("the incoming migration did not end within 10 s");
}

static bool migrate_incoming(const char *uri, Error **errp)
{
    q_obj_migrate_incoming_arg arg = { .uri = (char *)uri };
    bql_lock();                                      /* as the monitor does */
    bool ok = qmp_migrate_incoming(&arg, errp);
    bql_unlock();
    return ok;
}

static void expect_refused(const char *uri, const char *msg)
{
    Error *err = NULL;
    ck_assert(!migrate_incoming(uri, &err));
    ck_assert_ptr_nonnull(err);
    ck_assert_str_eq(error_get_pretty(err), msg);
    error_free(err);
}

/* ---------------- tests (in order: later ones start where earlier ones end) ---------------- */

START_TEST(test_refused_without_incoming)
{
    expect_refused("file:/dev/null", "'-incoming' was not specified on the command line");
    ck_assert_ptr_null(query());
    ck_assert_int_eq(n_events, 0);
}
END_TEST

START_TEST(test_failed_load_then_retry)
{
    Error *err = NULL;
    bql_lock();
    ck_assert(migration_incoming_start("defer", &err));
    bql_unlock();
    ck_assert_ptr_null(query());                     /* deferred: nothing to show yet */

    /* A URI that does not parse leaves the deferred state as it was. */
    ck_assert(!migrate_incoming("bogus:1", &err));
    error_free(err);
    err = NULL;
    ck_assert_ptr_null(query());

    /* A stream without its configuration section fails to load. */
    static const uint8_t bad[] = { 'Q', 'E', 'V', 'M', 0, 0, 0, 3, 0x00 };
    g_autofree char *bad_uri = stream_file("bad", bad, sizeof(bad));
    n_events = 0;
    ck_assert(migrate_incoming(bad_uri, &err));
    run_until_load_ends();
    ck_assert_int_eq(status_now(), MIGRATION_STATUS_FAILED);
    g_autoptr(MigrationInfo) info = query();
    ck_assert_str_eq(info->error_desc, "Configuration section missing");
    ck_assert(migration_incoming_failed());
    ck_assert_int_eq(runstate, RUN_STATE_INMIGRATE); /* the guest never ran */
    ck_assert_int_eq(vm_starts, 0);
    ck_assert_int_eq(n_events, 3);
    ck_assert_int_eq(events[0], MIGRATION_STATUS_SETUP);
    ck_assert_int_eq(events[1], MIGRATION_STATUS_ACTIVE);
    ck_assert_int_eq(events[2], MIGRATION_STATUS_FAILED);

    /* After a failure migrate-incoming may try again: a good (empty)
     * stream completes and, without -S, starts the guest. */
    static const uint8_t good[] = { 'Q', 'E', 'V', 'M', 0, 0, 0, 3,
                                    0x07, 0, 0, 0, 4, 'n', 'o', 'n', 'e', 0x00 };
    g_autofree char *good_uri = stream_file("good", good, sizeof(good));
    n_events = 0;
    ck_assert(migrate_incoming(good_uri, &err));
    ck_assert(!migration_incoming_failed());
    run_until_load_ends();
    ck_assert_int_eq(status_now(), MIGRATION_STATUS_COMPLETED);
    g_autoptr(MigrationInfo) done = query();
    ck_assert_ptr_null(done->error_desc);
    ck_assert_int_eq(vm_starts, 1);
    ck_assert_int_eq(runstate, RUN_STATE_RUNNING);
    ck_assert_int_eq(n_events, 3);
    ck_assert_int_eq(events[2], MIGRATION_STATUS_COMPLETED);

    /* Once a migration has come in, there is no second one. */
    expect_refused(good_uri, "The incoming migration has already been started");
}
END_TEST

static Suite *incoming_suite(void)
{
    Suite *s = suite_create("incoming");
    TCase *tc = tcase_create("incoming");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_refused_without_incoming);
    tcase_add_test(tc, test_failed_load_then_retry);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(incoming_suite());
}
