/*
 * The flight recorder (history.h): what each migration did, pass by pass,
 * and where its downtime went; QMP x-query-migration-history.
 *
 * Accounting: a pass runs from one dirty-bitmap sync to the next, and its
 * counters are the differences of cumulative counters (the stream's bytes,
 * RAM's page counts, the disk counter) between the two, so the passes add
 * up to the totals query-migrate shows. The first pass counts from zero (it
 * includes the header and setup), the last one ends when the migration
 * thread closes the record (device state and EOF included).
 *
 * Downtime phases are consecutive timestamps from one start t0; each
 * phase's microseconds are the difference of the truncated offsets from t0,
 * so they add up to the truncated whole (and to query-migrate's downtime,
 * which is the same span in ms).
 *
 * Memory is bounded: MIG_HISTORY_RECORDS records, each with at most
 * MIG_HISTORY_HEAD_PASSES + MIG_HISTORY_TAIL_PASSES passes.
 *
 * Threads: everything below is [lock]: the migration thread, the incoming
 * thread and the main thread (queries, status changes) all take hist.lock.
 */
#include "history.h"
#include "clock.h"
#include "qapi-commands.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <glib.h>

static const char *const phase_names[MIG_PHASE__MAX] = {
    [MIG_PHASE_STOP] = "stop", [MIG_PHASE_LIVE_END] = "live-end", [MIG_PHASE_DEVICES] = "devices",
    [MIG_PHASE_FLUSH] = "flush", [MIG_PHASE_DEST] = "destination",
    [MIG_PHASE_DEST_LOAD] = "destination-load", [MIG_PHASE_DEST_START] = "destination-start",
};

/* Cumulative counters at one instant. */
typedef struct Snapshot {
    int64_t ns;
    uint64_t bytes, normal, zero, disk;
} Snapshot;

#define PASS_NOTE_MAX 160

typedef struct PassRec {
    uint64_t pass, dirtied, dirty_rate, remaining, throttle;
    bool stopped;
    char note[PASS_NOTE_MAX];       /* the convergence controller's decisions, "; "-separated */
    Snapshot begin, end;
} PassRec;

typedef struct PhaseRec {
    const char *name;
    int64_t us;
} PhaseRec;

typedef struct Record {
    int64_t id;
    bool source;
    char *uri;
    int64_t start_wall_ms, start_ns, end_ns;     /* end_ns 0 while it runs */
    MigrationStatus status;
    char *reason;
    uint64_t bytes;                              /* final; while running: last pass boundary */
    bool has_downtime;
    int64_t downtime_t0_ns, phase_last_ns;
    PassRec head[MIG_HISTORY_HEAD_PASSES];
    unsigned nhead;
    PassRec tail[MIG_HISTORY_TAIL_PASSES];      /* ring */
    unsigned tail_first, ntail;
    uint64_t omitted;
    PassRec cur;
    bool cur_open;
    PhaseRec phases[MIG_PHASE__MAX];
    unsigned nphases;
} Record;

static struct {
    pthread_mutex_t lock;
    GQueue records;             /* Record *, oldest first */
    int64_t next_id;
    Record *source, *dest;      /* the current ones, until closed */
    MigHistoryCounterFn *disk_counter;
} hist = { .lock = PTHREAD_MUTEX_INITIALIZER, .records = G_QUEUE_INIT, .next_id = 1 };

static void record_free(Record *r)
{
    g_free(r->uri);
    g_free(r->reason);
    g_free(r);
}

static int64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* A new record, the oldest dropped beyond the bound. [lock] */
static Record *record_new(bool source)
{
    Record *r = g_new0(Record, 1);
    r->id = hist.next_id++;
    r->source = source;
    r->start_wall_ms = wall_ms();
    r->start_ns = now_ns();
    r->status = MIGRATION_STATUS_SETUP;
    g_queue_push_tail(&hist.records, r);
    while (g_queue_get_length(&hist.records) > MIG_HISTORY_RECORDS) {
        Record *old = g_queue_pop_head(&hist.records);
        if (old == hist.source) {
            hist.source = NULL;
        }
        if (old == hist.dest) {
            hist.dest = NULL;
        }
        record_free(old);
    }
    return r;
}

void mig_history_set_disk_counter(MigHistoryCounterFn *fn)
{
    pthread_mutex_lock(&hist.lock);
    hist.disk_counter = fn;
    pthread_mutex_unlock(&hist.lock);
}

static void snapshot(Snapshot *s, const MigHistoryCounters *c)
{
    s->ns = now_ns();
    s->bytes = c->stream_bytes;
    s->normal = c->normal_pages;
    s->zero = c->zero_pages;
    s->disk = hist.disk_counter ? hist.disk_counter() : 0;
}

/* Keep a finished pass: the first HEAD, then a ring of the last TAIL. [lock] */
static void pass_keep(Record *r, const PassRec *p)
{
    if (r->nhead < MIG_HISTORY_HEAD_PASSES) {
        r->head[r->nhead++] = *p;
        return;
    }
    if (r->ntail < MIG_HISTORY_TAIL_PASSES) {
        r->tail[(r->tail_first + r->ntail++) % MIG_HISTORY_TAIL_PASSES] = *p;
        return;
    }
    r->tail[r->tail_first] = *p;
    r->tail_first = (r->tail_first + 1) % MIG_HISTORY_TAIL_PASSES;
    r->omitted++;
}

/* End the open pass at the counters in *end. [lock] */
static void pass_close(Record *r, const Snapshot *end)
{
    if (!r->cur_open) {
        return;
    }
    r->cur.end = *end;
    r->bytes = end->bytes;
    pass_keep(r, &r->cur);
    r->cur_open = false;
}

void mig_history_source_begin(const char *uri)
{
    pthread_mutex_lock(&hist.lock);
    Record *r = record_new(true);
    r->uri = g_strdup(uri);
    hist.source = r;
    pthread_mutex_unlock(&hist.lock);
}

void mig_history_pass(uint64_t pass, uint64_t dirtied, const MigHistoryCounters *c)
{
    pthread_mutex_lock(&hist.lock);
    Record *r = hist.source;
    if (r) {
        bool first = r->nhead == 0 && !r->cur_open;
        Snapshot now;
        snapshot(&now, c);
        pass_close(r, &now);
        r->cur = (PassRec) {
            .pass = pass, .dirtied = dirtied, .dirty_rate = c->dirty_rate, .remaining = c->remaining_bytes,
            .throttle = c->throttle, .stopped = r->downtime_t0_ns != 0, .begin = now,
        };
        if (first) {
            /* The first pass counts the header and setup too (a disk
             * section's setup comes before RAM's first sync). */
            r->cur.begin.bytes = 0;
            r->cur.begin.disk = 0;
        }
        r->cur_open = true;
    }
    pthread_mutex_unlock(&hist.lock);
}

void mig_history_pass_note(const char *note)
{
    pthread_mutex_lock(&hist.lock);
    Record *r = hist.source;
    if (r && r->cur_open) {
        size_t len = strlen(r->cur.note);
        /* Bounded: a pass with more decisions keeps the first ones. */
        snprintf(r->cur.note + len, sizeof(r->cur.note) - len, "%s%s", len ? "; " : "", note);
    }
    pthread_mutex_unlock(&hist.lock);
}

void mig_history_downtime_start(int64_t t0_ns)
{
    pthread_mutex_lock(&hist.lock);
    if (hist.source) {
        hist.source->downtime_t0_ns = t0_ns;
        hist.source->phase_last_ns = t0_ns;
        hist.source->nphases = 0;
    }
    pthread_mutex_unlock(&hist.lock);
}

/* Microseconds since t0, truncated: phases are differences of these. */
static int64_t offset_us(const Record *r, int64_t t_ns)
{
    return (t_ns - r->downtime_t0_ns) / 1000;
}

void mig_history_phase_end(MigHistoryPhase phase, int64_t t_ns)
{
    pthread_mutex_lock(&hist.lock);
    Record *r = hist.source;
    if (r && r->downtime_t0_ns && r->nphases < MIG_PHASE__MAX) {
        t_ns = MAX(t_ns, r->phase_last_ns);     /* a peer's report never runs backwards */
        r->phases[r->nphases++] = (PhaseRec) {
            .name = phase_names[phase], .us = offset_us(r, t_ns) - offset_us(r, r->phase_last_ns),
        };
        r->phase_last_ns = t_ns;
        r->has_downtime = true;
    }
    pthread_mutex_unlock(&hist.lock);
}

static void set_reason(Record *r, const Error *err)
{
    if (err && !r->reason) {
        r->reason = g_strdup(error_get_pretty(err));
    }
}

void mig_history_source_close(const MigHistoryCounters *c, const Error *err)
{
    pthread_mutex_lock(&hist.lock);
    Record *r = hist.source;
    if (r) {
        Snapshot end;
        snapshot(&end, c);
        pass_close(r, &end);
        r->bytes = c->stream_bytes;
        r->end_ns = end.ns;
        set_reason(r, err);
    }
    pthread_mutex_unlock(&hist.lock);
}

void mig_history_dest_begin(void)
{
    pthread_mutex_lock(&hist.lock);
    hist.dest = record_new(false);
    hist.dest->status = MIGRATION_STATUS_ACTIVE;
    pthread_mutex_unlock(&hist.lock);
}

void mig_history_dest_loaded(uint64_t stream_bytes, const Error *err)
{
    pthread_mutex_lock(&hist.lock);
    Record *r = hist.dest;
    if (r) {
        r->bytes = stream_bytes;
        r->downtime_t0_ns = r->start_ns;
        r->phase_last_ns = now_ns();
        r->phases[0] = (PhaseRec) { .name = "load", .us = (r->phase_last_ns - r->start_ns) / 1000 };
        r->nphases = 1;
        set_reason(r, err);
    }
    pthread_mutex_unlock(&hist.lock);
}

void mig_history_dest_close(void)
{
    pthread_mutex_lock(&hist.lock);
    Record *r = hist.dest;
    if (r) {
        r->end_ns = now_ns();
        if (r->nphases == 1 && !r->reason) {
            r->phases[r->nphases++] = (PhaseRec) { .name = "start", .us = (r->end_ns - r->phase_last_ns) / 1000 };
        }
        hist.dest = NULL;
    }
    pthread_mutex_unlock(&hist.lock);
}

void mig_history_status(bool source, MigrationStatus status)
{
    pthread_mutex_lock(&hist.lock);
    Record *r = source ? hist.source : hist.dest;
    if (r) {
        /* A cancel names the state it interrupted. */
        if ((status == MIGRATION_STATUS_CANCELLING || status == MIGRATION_STATUS_CANCELLED) && !r->reason) {
            r->reason = g_strdup_printf("cancelled in state %s", MigrationStatus_str(r->status));
        }
        r->status = status;
        if (status == MIGRATION_STATUS_COMPLETED || status == MIGRATION_STATUS_FAILED ||
            status == MIGRATION_STATUS_CANCELLED) {
            if (!r->end_ns) {
                r->end_ns = now_ns();
            }
            if (source) {
                hist.source = NULL;
            }
        }
    }
    pthread_mutex_unlock(&hist.lock);
}

void mig_history_reset(void)
{
    pthread_mutex_lock(&hist.lock);
    Record *r;
    while ((r = g_queue_pop_head(&hist.records))) {
        record_free(r);
    }
    hist.source = hist.dest = NULL;
    hist.next_id = 1;
    pthread_mutex_unlock(&hist.lock);
}

/* ---- QMP ------------------------------------------------------------------ */

static int64_t ms_between(int64_t from_ns, int64_t to_ns)
{
    return (to_ns - from_ns) / 1000000;
}

static MigrationPassRecord *pass_info(const Record *r, const PassRec *p)
{
    MigrationPassRecord *o = g_new0(MigrationPassRecord, 1);
    int64_t dur_ns = p->end.ns - p->begin.ns;
    o->pass = (int64_t)p->pass;
    o->start = ms_between(r->start_ns, p->begin.ns);
    o->duration = dur_ns / 1000000;
    o->bytes = (int64_t)(p->end.bytes - p->begin.bytes);
    o->normal_pages = (int64_t)(p->end.normal - p->begin.normal);
    o->zero_pages = (int64_t)(p->end.zero - p->begin.zero);
    o->disk_bytes = (int64_t)(p->end.disk - p->begin.disk);
    o->dirty_pages = (int64_t)p->dirtied;
    o->dirty_rate = (int64_t)p->dirty_rate;
    o->remaining = (int64_t)p->remaining;
    o->mbps = dur_ns > 0 ? (double)o->bytes * 8 * 1000 / (double)dur_ns : 0;
    o->throttle = (int64_t)p->throttle;     /* set as the pass began (auto-converge steps at a sync) */
    o->stopped = p->stopped;
    if (p->note[0]) {
        o->convergence = g_strdup(p->note);
    }
    return o;
}

/* Append to a list kept by its tail pointer. */
#define LIST_APPEND(tailp, ListType, val) do {          \
        ListType *n_ = g_new0(ListType, 1);             \
        n_->value = (val);                              \
        *(tailp) = n_;                                  \
        (tailp) = &n_->next;                            \
    } while (0)

static MigrationRecord *record_info(const Record *r)
{
    MigrationRecord *o = g_new0(MigrationRecord, 1);
    int64_t end = r->end_ns ? r->end_ns : now_ns();
    o->id = r->id;
    o->role = r->source ? MIGRATION_HISTORY_ROLE_SOURCE : MIGRATION_HISTORY_ROLE_DESTINATION;
    o->uri = g_strdup(r->uri);
    o->start_time = r->start_wall_ms;
    o->status = r->status;
    o->reason = g_strdup(r->reason);
    o->total_time = ms_between(r->start_ns, end);
    if (r->source && r->has_downtime && r->status == MIGRATION_STATUS_COMPLETED) {
        o->has_downtime = true;
        o->downtime = (r->phase_last_ns - r->downtime_t0_ns) / 1000000;
    }
    o->transferred = (int64_t)r->bytes;
    o->passes_omitted = (int64_t)r->omitted;
    MigrationPassRecordList **pt = &o->passes;
    for (unsigned i = 0; i < r->nhead; i++) {
        LIST_APPEND(pt, MigrationPassRecordList, pass_info(r, &r->head[i]));
    }
    for (unsigned i = 0; i < r->ntail; i++) {
        LIST_APPEND(pt, MigrationPassRecordList,
                    pass_info(r, &r->tail[(r->tail_first + i) % MIG_HISTORY_TAIL_PASSES]));
    }
    if (r->cur_open) {
        /* The pass still running, up to now. */
        PassRec p = r->cur;
        p.end = p.begin;
        p.end.ns = now_ns();
        LIST_APPEND(pt, MigrationPassRecordList, pass_info(r, &p));
    }
    MigrationPhaseRecordList **ph = &o->phases;
    for (unsigned i = 0; i < r->nphases; i++) {
        MigrationPhaseRecord *p = g_new0(MigrationPhaseRecord, 1);
        p->phase = g_strdup(r->phases[i].name);
        p->duration_us = r->phases[i].us;
        LIST_APPEND(ph, MigrationPhaseRecordList, p);
    }
    return o;
}

MigrationRecordList *qmp_x_query_migration_history(Error **errp)
{
    MigrationRecordList *list = NULL, **tail = &list;
    pthread_mutex_lock(&hist.lock);
    for (GList *l = hist.records.head; l; l = l->next) {
        LIST_APPEND(tail, MigrationRecordList, record_info(l->data));
    }
    pthread_mutex_unlock(&hist.lock);
    return list;
}
