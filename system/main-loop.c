/*
 * The main loop: glib's default GMainContext, iterated by the main thread.
 *
 * The main thread holds the BQL all the time except inside poll(): the
 * context's poll function is wrapped to drop the lock while waiting, so
 * every callback on the main loop (monitors, listeners, scheduled work,
 * signals) runs with the BQL held.
 *
 * Other threads hand work to the main loop with main_loop_schedule(): a
 * mutex-protected FIFO plus g_main_context_wakeup(), drained by a GSource.
 * Exit is requested through a low-priority idle so that I/O already ready
 * (a `quit` response waiting to be written) is handled first.
 */
#include <pthread.h>
#include <signal.h>
#include <glib.h>
#include <glib-unix.h>
#include "vm.h"
#include "main-loop.h"

typedef struct ScheduledWork {
    void (*fn)(void *opaque);
    void *opaque;
} ScheduledWork;

static pthread_mutex_t work_lock = PTHREAD_MUTEX_INITIALIZER;  /* pthread, not GMutex: visible to ThreadSanitizer */
static GQueue work_queue = G_QUEUE_INIT;     /* ScheduledWork*, [work_lock] */
static GSource *work_source;

static gint exit_requested;                  /* atomic */
static GSource *exit_source;                 /* [work_lock] */
static bool exit_now;                        /* main thread only */

static guint signal_ids[3];

/* ---- scheduled work ---------------------------------------------------------- */

void main_loop_schedule(void (*fn)(void *opaque), void *opaque)
{
    ScheduledWork *w = g_new(ScheduledWork, 1);

    w->fn = fn;
    w->opaque = opaque;
    pthread_mutex_lock(&work_lock);
    g_queue_push_tail(&work_queue, w);
    pthread_mutex_unlock(&work_lock);
    g_main_context_wakeup(NULL);
}

static bool work_pending(void)
{
    pthread_mutex_lock(&work_lock);
    bool pending = !g_queue_is_empty(&work_queue);
    pthread_mutex_unlock(&work_lock);
    return pending;
}

void main_loop_run_scheduled(void)
{
    GQueue batch = G_QUEUE_INIT;

    /* Take what is queued now; work queued by this work runs next time. */
    pthread_mutex_lock(&work_lock);
    batch = work_queue;
    g_queue_init(&work_queue);
    pthread_mutex_unlock(&work_lock);

    ScheduledWork *w;
    while ((w = g_queue_pop_head(&batch))) {
        w->fn(w->opaque);
        g_free(w);
    }
}

static gboolean work_prepare(GSource *source, gint *timeout)
{
    *timeout = -1;
    return work_pending();
}

static gboolean work_check(GSource *source)
{
    return work_pending();
}

static gboolean work_dispatch(GSource *source, GSourceFunc callback, gpointer data)
{
    main_loop_run_scheduled();
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs work_source_funcs = {
    .prepare = work_prepare,
    .check = work_check,
    .dispatch = work_dispatch,
};

/* ---- polling without the BQL ---------------------------------------------------- */

static gint poll_without_bql(GPollFD *fds, guint nfds, gint timeout)
{
    bool held = bql_locked();

    if (held) {
        bql_unlock();
    }
    gint ret = g_poll(fds, nfds, timeout);
    if (held) {
        bql_lock();
    }
    return ret;
}

void main_loop_init(void)
{
    work_source = g_source_new(&work_source_funcs, sizeof(GSource));
    g_source_set_name(work_source, "migvm-scheduled-work");
    g_source_attach(work_source, NULL);
    g_main_context_set_poll_func(NULL, poll_without_bql);
}

/* ---- signals ------------------------------------------------------------------------ */

static gboolean on_terminating_signal(gpointer data)
{
    error_report("terminating on signal %d", GPOINTER_TO_INT(data));
    vm_request_shutdown(SHUTDOWN_CAUSE_HOST_SIGNAL);
    return G_SOURCE_CONTINUE;
}

void main_loop_add_signal_handlers(void)
{
    static const int signals[] = { SIGTERM, SIGINT, SIGHUP };

    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < G_N_ELEMENTS(signals); i++) {
        signal_ids[i] = g_unix_signal_add(signals[i], on_terminating_signal, GINT_TO_POINTER(signals[i]));
    }
}

/* ---- run and exit -------------------------------------------------------------------- */

static gboolean exit_idle(gpointer data)
{
    exit_now = true;
    return G_SOURCE_REMOVE;
}

void main_loop_request_exit(void)
{
    if (!g_atomic_int_compare_and_exchange(&exit_requested, 0, 1)) {
        return;
    }
    GSource *idle = g_idle_source_new();
    g_source_set_priority(idle, G_PRIORITY_LOW);
    g_source_set_callback(idle, exit_idle, NULL, NULL);
    pthread_mutex_lock(&work_lock);
    exit_source = idle;          /* keeps our reference for main_loop_cleanup */
    pthread_mutex_unlock(&work_lock);
    g_source_attach(idle, NULL);
}

bool main_loop_exit_requested(void)
{
    return g_atomic_int_get(&exit_requested);
}

void main_loop_run(void)
{
    while (!exit_now) {
        g_main_context_iteration(NULL, TRUE);
    }
}

void main_loop_cleanup(void)
{
    for (size_t i = 0; i < G_N_ELEMENTS(signal_ids); i++) {
        if (signal_ids[i]) {
            g_source_remove(signal_ids[i]);
            signal_ids[i] = 0;
        }
    }
    pthread_mutex_lock(&work_lock);
    GSource *idle = g_steal_pointer(&exit_source);
    pthread_mutex_unlock(&work_lock);
    if (idle) {
        g_source_destroy(idle);
        g_source_unref(idle);
    }
    if (work_source) {
        g_source_destroy(work_source);
        g_source_unref(work_source);
        work_source = NULL;
    }
    pthread_mutex_lock(&work_lock);
    g_queue_clear_full(&work_queue, g_free);
    pthread_mutex_unlock(&work_lock);
    g_main_context_set_poll_func(NULL, NULL);
    g_atomic_int_set(&exit_requested, 0);
    exit_now = false;
}
