/*
 * HMP `info migrate_history`: the flight recorder (x-query-migration-history)
 * as text, one block per migration, the oldest first:
 *
 *   migration 2: source, unix:/tmp/m, completed, total 812 ms, downtime 9 ms, 70213 kbytes
 *     pass  start ms   time ms     kbytes   normal     zero   dirtied  dirty/s  remain kB     Mbps thr
 *        1         3       640      62011    15443   250700    262144        0    1048576    775.1  0%
 *     (3 passes omitted)
 *     downtime phases: stop 0.105 ms, live-end 2.310 ms, devices 0.420 ms, flush 0.050 ms, destination 6.2 ms
 *     reason: ...
 */
#include <inttypes.h>

#include "hmp-int.h"
#include "qapi-commands.h"

/* The recorder keeps the first 8 passes, then the last ones (history.h). */
#define MIG_HMP_HEAD_PASSES 8

static void format_pass(GString *out, const MigrationPassRecord *p)
{
    g_string_append_printf(out, "  %4" PRId64 " %9" PRId64 " %9" PRId64 " %10" PRId64 " %8" PRId64 " %8" PRId64
                           " %9" PRId64 " %8" PRId64 " %10" PRId64 " %8.1f %2" PRId64 "%%\n",
                           p->pass, p->start, p->duration, p->bytes >> 10, p->normal_pages, p->zero_pages,
                           p->dirty_pages, p->dirty_rate, p->remaining >> 10, p->mbps, p->throttle);
    if (p->disk_bytes) {
        g_string_append_printf(out, "       disk %" PRId64 " kbytes\n", p->disk_bytes >> 10);
    }
    if (p->convergence) {
        g_string_append_printf(out, "       convergence: %s\n", p->convergence);
    }
}

static void format_record(GString *out, const MigrationRecord *r)
{
    g_string_append_printf(out, "migration %" PRId64 ": %s", r->id, MigrationHistoryRole_str(r->role));
    if (r->uri) {
        g_string_append_printf(out, ", %s", r->uri);
    }
    g_string_append_printf(out, ", %s, total %" PRId64 " ms", MigrationStatus_str(r->status), r->total_time);
    if (r->has_downtime) {
        g_string_append_printf(out, ", downtime %" PRId64 " ms", r->downtime);
    }
    g_string_append_printf(out, ", %" PRId64 " kbytes\n", r->transferred >> 10);
    if (r->passes) {
        g_string_append(out, "  pass  start ms   time ms     kbytes   normal     zero   dirtied  dirty/s"
                             "  remain kB     Mbps thr\n");
    }
    int64_t shown = 0;
    for (const MigrationPassRecordList *l = r->passes; l; l = l->next) {
        if (shown++ == MIG_HMP_HEAD_PASSES && r->passes_omitted) {
            g_string_append_printf(out, "  (%" PRId64 " passes omitted)\n", r->passes_omitted);
        }
        format_pass(out, l->value);
    }
    if (r->phases) {
        g_string_append(out, r->role == MIGRATION_HISTORY_ROLE_SOURCE ? "  downtime phases:" : "  phases:");
        for (const MigrationPhaseRecordList *l = r->phases; l; l = l->next) {
            g_string_append_printf(out, "%s %s %" PRId64 ".%03" PRId64 " ms", l == r->phases ? "" : ",",
                                   l->value->phase, l->value->duration_us / 1000, l->value->duration_us % 1000);
        }
        g_string_append(out, "\n");
    }
    if (r->reason) {
        g_string_append_printf(out, "  reason: %s\n", r->reason);
    }
}

void hmp_info_migrate_history(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    MigrationRecordList *list = qmp_x_query_migration_history(&err);
    g_autoptr(GString) out = g_string_new(NULL);

    if (err) {
        hmp_handle_error(mon, err);
        return;
    }
    if (!list) {
        g_string_append(out, "No migration recorded\n");
    }
    for (const MigrationRecordList *l = list; l; l = l->next) {
        format_record(out, l->value);
    }
    monitor_puts(mon, out->str);
    qapi_free_MigrationRecordList(list);
}
