/*
 * Incoming migration: -incoming URI / migrate-incoming → listener →
 * incoming thread (load) → main loop (resume, or fail cleanly).
 *
 * The load runs on its own thread so the monitor keeps answering; the
 * guest is stopped (inmigrate) the whole time. When loading fails the guest
 * never runs: the run state stays inmigrate, `cont` is refused, and a new
 * migrate-incoming may retry. (QEMU 7.2 exits the process instead; keeping
 * it alive lets a management tool read the error and retry.)
 */
#include "migration.h"
#include "channel.h"
#include "tls.h"
#include "global-state.h"
#include "clock.h"
#include "history.h"
#include "preflight.h"
#include "options.h"
#include "postcopy-ram.h"
#include "recovery.h"
#include "ram-prefault.h"
#include "machine.h"
#include "multifd.h"
#include "savevm.h"
#include "stream.h"
#include "monitor.h"
#include "vm.h"
#include "qapi-commands.h"
#include "qapi-events.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

typedef struct IncomingState {
    MigrationStatus status;       /* main thread only */
    bool deferred;                /* -incoming defer: waiting for migrate-incoming */
    bool failed;
    MigListener *listener;
    MigChannel channel;
    GPtrArray *layers;            /* TLS sessions of multifd channels (void *) [main] */
    GThread *thread;
    Error *error;                 /* result of the load, handed to the main loop */
    bool load_ok;
    /* Handed from the incoming thread to incoming_finish: */
    MigStream *rp;                /* the return path, when the source opened it */
    bool rp_opened, peer_migvm;
    int64_t loaded_ns;
    bool postcopy_started;        /* main thread: RUN decided the run state already */
    /* A broken connection, resumed (x-resumable-precopy; see incoming_channel_lost). */
    pthread_mutex_t rec_lock;       /* a pthread mutex: visible to ThreadSanitizer */
    pthread_cond_t rec_cond;
    bool rec_ready;                 /* [rec_lock] channel holds the new connection */
    bool recovering;                /* incoming thread: new connection, no RESUME yet */
    MigStream *f, *rp_now;          /* incoming thread: the streams being loaded */
    uint64_t bytes_before;          /* read on the connections a recovery replaced: by channel_lost's
                                     * thread, read by the incoming thread after the load */
} IncomingState;

static IncomingState incoming = {
    .status = MIGRATION_STATUS_NONE,
    .rec_lock = PTHREAD_MUTEX_INITIALIZER, .rec_cond = PTHREAD_COND_INITIALIZER,
};

static void incoming_set_status(MigrationStatus s)
{
    incoming.status = s;
    mig_history_status(false, s);
    migration_emit_status(s);
}

bool migration_incoming_failed(void)
{
    return incoming.failed;
}

/* Capability postcopy-blocktime: what the vCPUs waited for pages (ms). */
static void incoming_fill_blocktime(MigrationInfo *info)
{
    uint32_t total, *per_vcpu;
    int n;
    if (!postcopy_blocktime_get(&total, &per_vcpu, &n)) {
        return;
    }
    info->has_postcopy_blocktime = true;
    info->postcopy_blocktime = total;
    uint32List **tail = &info->postcopy_vcpu_blocktime;
    for (int i = 0; i < n; i++) {
        *tail = g_new0(uint32List, 1);
        (*tail)->value = per_vcpu[i];
        tail = &(*tail)->next;
    }
    g_free(per_vcpu);
}

bool migration_incoming_fill_info(MigrationInfo *info)
{
    if (incoming.status == MIGRATION_STATUS_NONE && !incoming.listener) {
        return false;
    }
    /* While listening QEMU 7.2 shows only socket-address: its incoming state
     * leaves "none" when the connection arrives (the setup event is sent anyway). */
    bool listening = incoming.listener && incoming.status == MIGRATION_STATUS_SETUP;
    if (incoming.status != MIGRATION_STATUS_NONE && !listening) {
        info->has_status = true;
        info->status = incoming.status;
        if (incoming.status == MIGRATION_STATUS_FAILED && incoming.error) {
            info->error_desc = g_strdup(error_get_pretty(incoming.error));
        }
    }
    if (listening) {
        info->socket_address = mig_listener_addresses(incoming.listener);
    }
    incoming_fill_blocktime(info);
    return true;
}

/* Close the channel; for exec:, reap the command. */
static void incoming_close_channel(void)
{
    Error *err = NULL;
    /* After a failed load the command was killed, so its status says
     * nothing. After a full load every byte it sent was checked up to EOF:
     * a failing command is worth a warning, not a failed migration. */
    if (!mig_channel_close(&incoming.channel, !incoming.load_ok, &err)) {
        if (incoming.load_ok) {
            warn_report("%s", error_get_pretty(err));
        }
        error_free(err);
    }
}

/* The multifd channels' TLS sessions, once their channels are closed. */
static void incoming_end_layers(void)
{
    for (guint i = 0; incoming.layers && i < incoming.layers->len; i++) {
        mig_tls_layer_end(incoming.layers->pdata[i], !incoming.load_ok);
    }
    if (incoming.layers) {
        g_ptr_array_set_size(incoming.layers, 0);
    }
}

/* inmigrate -> paused is always allowed, and nothing leaves inmigrate
 * while loading (cont only sets autostart): report it if it ever fails. */
static void incoming_pause(void)
{
    Error *err = NULL;
    if (!runstate_set(RUN_STATE_PAUSED, &err)) {
        error_report_err(err);
    }
}

/* The guest runs (or waits, paused): SHUT(0) on the return path, as QEMU 7.2
 * sends it, after the time the start took for a migvm source. */
static void incoming_send_shut(void)
{
    if (!incoming.rp) {
        return;
    }
    Error *err = NULL;
    int64_t us = (now_ns() - incoming.loaded_ns) / 1000;
    bool ok = !incoming.peer_migvm ||
              mig_rp_send_pong(incoming.rp, MIG_PONG_STARTED_US | (uint32_t)MIN(us, INT32_MAX), &err);
    if (!ok || !mig_rp_send_shut(incoming.rp, 0, &err)) {
        warn_report("%s", error_get_pretty(err));
        error_free(err);
    }
    mig_stream_close(incoming.rp, NULL);
    incoming.rp = NULL;
}

static void incoming_start_guest(void);

/* Main loop: the load ended. Resume the guest or fail cleanly. [BQL] */
static void incoming_finish(void *opaque)
{
    g_thread_join(incoming.thread);
    incoming.thread = NULL;
    mig_listener_free(incoming.listener);     /* multifd: still taking channels */
    incoming.listener = NULL;
    ram_prefault_stop();        /* every page arrived, or the load failed */
    incoming_close_channel();
    incoming_end_layers();
    if (!incoming.load_ok && incoming.postcopy_started) {
        /* The guest ran here on pages that are now out of reach: its vCPUs
         * wait for them inside page faults, where no pause reaches them, and
         * unblocking them would run the guest on holes. Nothing can stop or
         * continue it: exit, as QEMU 7.2 does ("loadvm failed"). */
        error_prepend(&incoming.error, "postcopy failed after the guest started here; it cannot go on "
                      "without the source's pages: ");
        error_report("load of migration failed: %s", error_get_pretty(incoming.error));
        incoming_set_status(MIGRATION_STATUS_FAILED);
        error_report("exiting: the guest's vCPUs wait for pages that will never come");
        fflush(stdout);
        _exit(1);       /* no teardown: it would wait for those vCPUs */
    }
    if (!incoming.load_ok) {
        error_report("load of migration failed: %s", error_get_pretty(incoming.error));
        incoming.failed = true;
        incoming_set_status(MIGRATION_STATUS_FAILED);
        mig_history_dest_close();
        return;
    }
    incoming.failed = false;
    if (!incoming.postcopy_started) {
        incoming_start_guest();
    }
    incoming.postcopy_started = false;
    incoming_set_status(MIGRATION_STATUS_COMPLETED);
    mig_history_dest_close();
    incoming_send_shut();
}

/* The run state the source had (globalstate), or running. [BQL] */
static void incoming_start_guest(void)
{
    RunState received;
    Error *err = NULL;
    if (!global_state_received(&received) || received == RUN_STATE_RUNNING) {
        if (vm_autostart) {
            if (!vm_start(&err)) {
                error_report_err(err);
            }
        } else {
            incoming_pause();
        }
    } else if (!runstate_set(received, &err)) {
        /* A state the source may be in but the table cannot enter from
         * inmigrate (debug, save-vm, ...): stay stopped. */
        error_report_err(err);
        incoming_pause();
    }
}

/* ---- postcopy (postcopy-ram.c does the RAM) ---- */

static bool pc_enabled(void)
{
    return migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_RAM);
}

static int pc_state(void)
{
    return postcopy_incoming_state();
}

static void incoming_postcopy_active(void *opaque)
{
    incoming_set_status(MIGRATION_STATUS_POSTCOPY_ACTIVE);
}

static bool pc_listen(MigStream *rp, Error **errp)
{
    if (!postcopy_incoming_listen(rp, errp)) {
        return false;
    }
    main_loop_schedule(incoming_postcopy_active, NULL);
    return true;
}

/* Main loop: RUN, the devices are loaded: the guest starts now and pulls
 * the pages it lacks. [BQL] */
static void incoming_postcopy_run(void *opaque)
{
    incoming.postcopy_started = true;
    incoming_start_guest();
}

static bool pc_run(Error **errp)
{
    postcopy_incoming_set_running();
    main_loop_schedule(incoming_postcopy_run, NULL);
    return true;
}

static const LoadvmPostcopy incoming_postcopy = {
    .enabled = pc_enabled, .state = pc_state, .advise = postcopy_incoming_advise,
    .discard = postcopy_incoming_discard, .listen = pc_listen, .run = pc_run,
};

static void incoming_device_lock(bool lock)
{
    if (lock) {
        bql_lock();
    } else {
        bql_unlock();
    }
}

/* ---- a broken connection during precopy (x-resumable-precopy) -------------
 * The loader (loadvm.c) asks incoming_channel_lost when the stream breaks
 * while RAM is being copied. With the capability on, the incoming thread
 * keeps everything loaded so far (pages, the received bitmap, the loader's
 * sections) and waits; the main loop closes the old channel and reports
 * x-precopy-paused. migrate-recover listens on a new address; its connection
 * moves the status to x-precopy-recover and wakes the thread, whose loader
 * reads on: RECV_BITMAP and POSTCOPY_RESUME (recovery.c), then the rest of the
 * stream. The guest never ran meanwhile. */

/* ---- postcopy recovery (postcopy.md 6.3) ----------------------------------
 * The same path when the stream breaks after the guest started here
 * (postcopy RUNNING; loadvm.c's listen thread calls channel_lost): the
 * guest keeps running, the fault thread keeps recording faults (vCPUs that
 * touch a missing page wait in it) and sends no requests until the resume;
 * statuses postcopy-paused, postcopy-recover, postcopy-active; the received
 * map answered is postcopy's (discarded pages are not here), and after
 * RESUME_ACK every page still waited for is asked for again. */

/* The incoming thread paused in postcopy (set before it asks the main loop
 * to close the channel, cleared when the source acknowledged; any thread). */
static _Atomic bool incoming_pc_paused;

bool migration_incoming_postcopy_paused(void)
{
    return atomic_load(&incoming_pc_paused);
}

/* Main loop: the incoming thread waits for a new connection. [BQL] */
static void incoming_paused(void *opaque)
{
    bool postcopy = opaque != NULL;
    incoming_close_channel();
    error_report("Detected IO failure for %s. Migration paused.", postcopy ? "postcopy" : "precopy");
    incoming_set_status(postcopy ? MIGRATION_STATUS_POSTCOPY_PAUSED : MIGRATION_STATUS_X_PRECOPY_PAUSED);
}

/* Main loop: the source acknowledged the resume. [BQL] */
static void incoming_resumed(void *opaque)
{
    incoming_set_status(opaque ? MIGRATION_STATUS_POSTCOPY_ACTIVE : MIGRATION_STATUS_ACTIVE);
}

/* Incoming thread (loadvm.c's channel_lost), or in postcopy the thread
 * that reads the outer stream. */
static bool incoming_channel_lost(void *opaque, MigStream **f, MigStream **rp)
{
    bool postcopy = postcopy_incoming_state() == POSTCOPY_INCOMING_RUNNING;
    if (postcopy) {
        if (!incoming.channel.bidirectional) {
            return false;
        }
        /* The fault thread writes no more on the old return path. */
        postcopy_incoming_pause();
        atomic_store(&incoming_pc_paused, true);
    } else if (!migrate_cap(MIGRATION_CAPABILITY_X_RESUMABLE_PRECOPY) || !incoming.channel.bidirectional ||
               migrate_cap(MIGRATION_CAPABILITY_MULTIFD) || migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_RAM)) {
        /* Not with multifd or postcopy-ram: their sources never pause a precopy. */
        return false;
    }
    main_loop_schedule(incoming_paused, postcopy ? &incoming_pc_paused : NULL);
    pthread_mutex_lock(&incoming.rec_lock);
    while (!incoming.rec_ready) {
        pthread_cond_wait(&incoming.rec_cond, &incoming.rec_lock);
    }
    incoming.rec_ready = false;
    int fd = incoming.channel.fd;
    pthread_mutex_unlock(&incoming.rec_lock);
    mig_stream_close(*rp, NULL);
    incoming.bytes_before += mig_stream_bytes_read(*f);
    mig_stream_close(*f, NULL);
    *f = incoming.f = mig_stream_new_fd_reader(fd, false);
    *rp = incoming.rp_now = mig_stream_open_return_path(*f, NULL);
    incoming.recovering = true;
    return true;
}

/* Incoming thread (loadvm.c's recovery_command). */
static bool incoming_recovery_command(void *opaque, uint16_t cmd, uint16_t len, MigStream *f,
                                      MigStream *rp, Error **errp)
{
    bool resumed = false;
    bool postcopy = atomic_load(&incoming_pc_paused);
    if (!recovery_load_command(cmd, len, f, rp, incoming.recovering,
                               postcopy ? postcopy_received_map : NULL, &resumed, errp)) {
        if (postcopy && rp && mig_stream_has_error(rp)) {
            /* The new connection broke while this thread answered on it
             * (nobody else writes there before the resume): pause again,
             * as for a broken read. */
            mig_stream_set_error(f, "%s", error_get_pretty(*errp));
        }
        return false;
    }
    if (resumed) {
        incoming.recovering = false;
        if (postcopy) {
            atomic_store(&incoming_pc_paused, false);
            /* After RESUME_ACK: the pages the vCPUs wait for, asked again.
             * A failed write means a broken connection, which the next read
             * sees: those pages are asked for again after the next resume. */
            if (!postcopy_incoming_resume(rp)) {
                warn_report("postcopy: the connection broke while asking again for missing pages");
            }
        }
        main_loop_schedule(incoming_resumed, postcopy ? &incoming_pc_paused : NULL);
    }
    return true;
}

/* Main loop: the resumed connection arrived (after its TLS handshake). [BQL] */
static void incoming_recovered(MigChannel *ch)
{
    mig_listener_free(incoming.listener);
    incoming.listener = NULL;
    incoming_set_status(incoming.status == MIGRATION_STATUS_POSTCOPY_PAUSED ? MIGRATION_STATUS_POSTCOPY_RECOVER
                                                                           : MIGRATION_STATUS_X_PRECOPY_RECOVER);
    pthread_mutex_lock(&incoming.rec_lock);
    incoming.channel = *ch;
    incoming.rec_ready = true;
    pthread_cond_signal(&incoming.rec_cond);
    pthread_mutex_unlock(&incoming.rec_lock);
}

/* Main loop: the recovery connection's handshake ended; a failed one is
 * reported and the listener waits for another. [BQL] */
static void incoming_recover_tls_done(MigChannel *ch, Error *err, void *opaque)
{
    if (!incoming.listener) {
        mig_channel_close(ch, true, NULL);
        error_free(err);
        return;
    }
    if (err) {
        error_report("%s", error_get_pretty(err));
        error_free(err);
        mig_channel_close(ch, true, NULL);
        mig_listener_resume(incoming.listener);
        return;
    }
    incoming_recovered(ch);
}

/* Main loop: a recovery connection arrived. With tls-creds it is TLS from
 * its first byte, a new session (QEMU 7.2). [BQL] */
static void incoming_recover_ready(MigChannel *ch, void *opaque)
{
    if (mig_tls_enabled()) {
        mig_tls_channel_server_async(ch, incoming_recover_tls_done, NULL);
        return;
    }
    incoming_recovered(ch);
}

bool qmp_migrate_recover(const q_obj_migrate_recover_arg *arg, Error **errp)
{
    if (incoming.status != MIGRATION_STATUS_X_PRECOPY_PAUSED &&
        incoming.status != MIGRATION_STATUS_POSTCOPY_PAUSED) {
        error_setg(errp, "Migrate recover can only be run when postcopy is paused.");
        return false;
    }
    if (incoming.listener) {
        error_setg(errp, "Migrate recovery is triggered already");
        return false;
    }
    MigAddress addr;
    int fd;
    if (!mig_address_parse(arg->uri, true, &addr, errp)) {
        return false;
    }
    if (!mig_address_take_fd(&addr, &fd, errp)) {
        mig_address_clear(&addr);
        return false;
    }
    incoming.listener = mig_listener_start(&addr, fd, incoming_recover_ready, NULL, errp);
    mig_address_clear(&addr);
    if (!incoming.listener) {
        return false;
    }
    /* QEMU 7.2 announces setup whatever the events capability. */
    qapi_event_send_migration(MIGRATION_STATUS_SETUP);
    return true;
}

bool migration_incoming_pause(void)
{
    int pc = postcopy_incoming_state();
    if (incoming.status == MIGRATION_STATUS_POSTCOPY_ACTIVE && incoming.thread && incoming.channel.bidirectional &&
        (pc == POSTCOPY_INCOMING_LISTENING || pc == POSTCOPY_INCOMING_RUNNING)) {
        /* The listen thread sees the I/O error and pauses (incoming_channel_lost)
         * once the guest started (loadvm.c's listen_resumable). */
        shutdown(incoming.channel.fd, SHUT_RDWR);
        return true;
    }
    if (incoming.status != MIGRATION_STATUS_ACTIVE || !incoming.thread ||
        !migrate_cap(MIGRATION_CAPABILITY_X_RESUMABLE_PRECOPY) || !incoming.channel.bidirectional) {
        return false;
    }
    /* The thread owns the streams, the main loop the fd: shutdown wakes the reader. */
    shutdown(incoming.channel.fd, SHUT_RDWR);
    return true;
}

static gpointer incoming_thread(gpointer opaque)
{
    MigStream *f = mig_stream_new_fd_reader(incoming.channel.fd, false);
    MigStream *rp = NULL;
    if (incoming.channel.child > 0) {
        mig_stream_set_peer_name(f, "command");     /* exec: */
    }
    Error *err = NULL;
    if (incoming.channel.bidirectional) {
        rp = mig_stream_open_return_path(f, NULL);   /* optional: only if the source asks */
    }
    global_state_reset();
    incoming.rp_opened = incoming.peer_migvm = false;
    LoadvmOptions opts = {
        .local = { .machine_type = machine_type() },
        .return_path = rp,
        .return_path_opened = &incoming.rp_opened,
        .peer_is_migvm = &incoming.peer_migvm,
        .device_lock = incoming_device_lock,
        .postcopy = &incoming_postcopy,
        .channel_lost = incoming_channel_lost,
        .recovery_command = incoming_recovery_command,
    };
    multifd_recv_set_main(f);
    incoming.f = f;
    incoming.rp_now = rp;
    incoming.bytes_before = 0;
    incoming.recovering = false;
    bool ok = qemu_loadvm_state(f, &opts, &err);
    f = incoming.f;         /* a recovery replaced them */
    rp = incoming.rp_now;
    assert(ok == !err);     /* the loader names every failure */
    Error *channel_err = ok ? NULL : multifd_recv_error();
    if (channel_err) {
        error_free(err);        /* the main stream was shut down for it */
        err = channel_err;
    }
    bool multifd = multifd_recv_active();
    multifd_recv_cleanup();
    /* Before the return path closes: the fault thread writes on it. */
    postcopy_incoming_cleanup(!ok && postcopy_incoming_state() == POSTCOPY_INCOMING_RUNNING);
    incoming.loaded_ns = now_ns();
    mig_history_dest_loaded(incoming.bytes_before + mig_stream_bytes_read(f) + (multifd ? multifd_recv_bytes() : 0),
                            err);
    if (ok && incoming.rp_opened) {
        incoming.rp = rp;       /* SHUT once the guest started: incoming_send_shut */
        rp = NULL;
    } else if (incoming.rp_opened) {
        Error *rp_err = NULL;
        if (!mig_rp_send_shut(rp, 1, &rp_err)) {
            error_free(rp_err);     /* the source learns it from the closed channel */
        }
    }
    /* Readers: closing reports only the sticky error the load already saw. */
    mig_stream_close(rp, NULL);
    mig_stream_close(f, NULL);
    incoming.load_ok = ok;
    incoming.error = err;
    main_loop_schedule(incoming_finish, NULL);
    return NULL;
}

/* Main loop: the connection is a migration. [BQL] */
static void incoming_load(MigChannel *ch)
{
    incoming.channel = *ch;
    if (migrate_cap(MIGRATION_CAPABILITY_MULTIFD) && incoming.listener) {
        /* Every later connection is a multifd channel (QEMU 7.2's rule). */
        MigrateMultifdParams mp;
        migrate_multifd_params(&mp);
        multifd_recv_setup(mp.channels, mp.compression);
        mig_listener_resume(incoming.listener);
    } else {
        mig_listener_free(incoming.listener);
        incoming.listener = NULL;
    }
    mig_history_dest_begin();
    incoming_set_status(MIGRATION_STATUS_ACTIVE);
    incoming.thread = g_thread_new("incoming", incoming_thread, NULL);
}

/* Main loop: a pre-flight check was answered: listen for the migration. */
static void incoming_check_done(void)
{
    if (incoming.listener) {
        mig_listener_resume(incoming.listener);
    }
}

/* Main loop: a connection while the load runs is a multifd channel. False
 * if it is not one. A TLS session under it is ended with the migration
 * (incoming_finish), after multifd closed the channel. [BQL] */
static bool incoming_multifd_channel(MigChannel *ch)
{
    if (!incoming.thread || !multifd_recv_active()) {
        return false;
    }
    if (ch->layer) {
        if (!incoming.layers) {
            incoming.layers = g_ptr_array_new();
        }
        g_ptr_array_add(incoming.layers, ch->layer);
        ch->layer = NULL;
    }
    /* Listening on until the load ends: a connection beyond
     * multifd-channels fails it with a clear cause. */
    multifd_recv_new_channel(ch);
    mig_listener_resume(incoming.listener);
    return true;
}

/* Main loop: the TLS handshake on a connection ended. A refused or broken
 * one is reported and the destination listens on, as QEMU 7.2 does. [BQL] */
static void incoming_tls_done(MigChannel *ch, Error *err, void *opaque)
{
    if (!incoming.listener) {       /* the load ended during the handshake */
        mig_channel_close(ch, true, NULL);
        error_free(err);
        return;
    }
    if (!err) {
        if (incoming_multifd_channel(ch)) {
            return;
        }
        /* A multifd source (QEMU 7.2's) may send nothing on the main channel
         * until its multifd channels finished their handshakes, which needs
         * the listener: no waiting for a pre-flight check's first bytes then. */
        if (migrate_cap(MIGRATION_CAPABILITY_MULTIFD)) {
            incoming_load(ch);
        } else {
            mig_preflight_classify(ch, incoming_load, incoming_check_done);
        }
        return;
    }
    error_report("%s", error_get_pretty(err));
    bool can_listen_on = incoming.listener && ch->bidirectional && ch->child <= 0;
    mig_channel_close(ch, true, NULL);
    if (can_listen_on) {
        mig_listener_resume(incoming.listener);
        error_free(err);
        return;
    }
    /* exec/fd/file: nothing to listen on; fail as a load would. */
    mig_listener_free(incoming.listener);
    incoming.listener = NULL;
    error_free(incoming.error);
    incoming.error = err;
    incoming.failed = true;
    incoming_set_status(MIGRATION_STATUS_FAILED);
}

/* Main loop: a connection (or the exec/fd/file channel) is ready. With
 * tls-creds every connection starts with a TLS handshake, the pre-flight
 * check's too. [BQL] */
static void incoming_channel_ready(MigChannel *ch, void *opaque)
{
    if (mig_tls_enabled()) {
        mig_tls_channel_server_async(ch, incoming_tls_done, NULL);
        return;
    }
    if (!incoming_multifd_channel(ch)) {
        mig_preflight_classify(ch, incoming_load, incoming_check_done);
    }
}

bool migration_incoming_start(const char *uri, Error **errp)
{
    if (strcmp(uri, "defer") == 0) {
        incoming.deferred = true;
        return true;
    }
    MigAddress addr;
    if (!mig_address_parse(uri, true, &addr, errp)) {
        return false;
    }
    if (migrate_cap(MIGRATION_CAPABILITY_MULTIFD) && !multifd_transport_check(&addr, errp)) {
        mig_address_clear(&addr);
        return false;
    }
    int fd;
    if (!mig_address_take_fd(&addr, &fd, errp)) {
        mig_address_clear(&addr);
        return false;
    }
    error_free(incoming.error);
    incoming.error = NULL;
    incoming.listener = mig_listener_start(&addr, fd, incoming_channel_ready, NULL, errp);
    mig_address_clear(&addr);
    if (!incoming.listener) {
        return false;
    }
    incoming.failed = false;
    incoming.deferred = false;
    /* Fault RAM in ahead of the stream (include/ram-prefault.h); postcopy
     * needs the pages it has not received to stay missing. */
    if (migrate_prefault_ram() && !migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_RAM)) {
        ram_prefault_start();
    }
    /* QEMU 7.2 announces the destination's setup whatever the events capability. */
    incoming.status = MIGRATION_STATUS_SETUP;
    qapi_event_send_migration(MIGRATION_STATUS_SETUP);
    return true;
}

bool qmp_migrate_incoming(const q_obj_migrate_incoming_arg *arg, Error **errp)
{
    if (!incoming.deferred && !incoming.failed) {
        if (incoming.status != MIGRATION_STATUS_NONE || incoming.listener) {
            error_setg(errp, "The incoming migration has already been started");
        } else {
            error_setg(errp, "'-incoming' was not specified on the command line");
        }
        return false;
    }
    if (incoming.thread || incoming.listener) {
        error_setg(errp, "The incoming migration has already been started");
        return false;
    }
    return migration_incoming_start(arg->uri, errp);
}
