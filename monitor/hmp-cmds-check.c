/*
 * HMP `migrate_check URI`: the pre-flight check (x-migrate-check) as text:
 *
 *   migration check: incompatible
 *     ram block pc.ram: source 67108864 bytes, destination 134217728 bytes
 */
#include "hmp-int.h"
#include "qapi-commands.h"

void hmp_migrate_check(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    q_obj_x_migrate_check_arg arg = { .uri = (char *)hmp_args_str(args, "uri") };
    MigrationCheckResult *r = qmp_x_migrate_check(&arg, &err);
    g_autoptr(GString) out = g_string_new(NULL);

    if (err) {
        hmp_handle_error(mon, err);
        return;
    }
    g_string_append_printf(out, "migration check: %s\n", r->compatible ? "compatible" : "incompatible");
    for (const MigrationCheckProblemList *l = r->problems; l; l = l->next) {
        g_string_append_printf(out, "  %s: source %s, destination %s\n", l->value->item, l->value->source,
                               l->value->destination);
    }
    monitor_puts(mon, out->str);
    qapi_free_MigrationCheckResult(r);
}
