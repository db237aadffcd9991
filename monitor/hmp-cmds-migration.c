/*
 * HMP migration commands: migrate (synchronous, or -d),
 * migrate_incoming, migrate_cancel, migrate_continue,
 * migrate_set_capability, migrate_set_parameter and the `info migrate*`
 * trio. Values typed by the user are parsed here with QEMU 7.2's syntax
 * and error texts; the decisions are the qmp_* handlers'.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "hmp-int.h"
#include "hmp-print.h"
#include "qapi-commands.h"

#define MIGRATE_POLL_MS 100
#define MIGRATE_LIVE_US (250 * 1000)            /* the interactive line's refresh */
#define MIGRATE_BLOCK_PROGRESS_US G_USEC_PER_SEC

/* ---- migrate ---- */

/*
 * A synchronous `migrate` polls query-migrate until the migration ends.
 * On the interactive console (readline on a terminal) it keeps one live
 * progress line, rewritten in place ("\r", the line, erase to its end), and
 * replaces it with the outcome. Elsewhere (sockets, pipes: scripts) it
 * prints what QEMU 7.2 prints: nothing for RAM, "Completed N %\r" once a
 * second while disks are copied, a line end after that; a failure goes to
 * stderr from the migration code.
 */
typedef struct MigrateWait {
    Monitor *mon;
    bool interactive;
    bool line_shown;            /* a progress line waits to be ended or replaced */
    gint64 last_progress;       /* g_get_monotonic_time() of the last line */
} MigrateWait;

#define ERASE_TO_EOL "\033[K"

static void migrate_show_progress(MigrateWait *w, const MigrationInfo *info, GString *out)
{
    gint64 now = g_get_monotonic_time();
    if (w->interactive) {
        if (info->status == MIGRATION_STATUS_ACTIVE && now - w->last_progress >= MIGRATE_LIVE_US) {
            g_string_append_c(out, '\r');
            hmp_format_migrate_progress(out, info);
            g_string_append(out, ERASE_TO_EOL);
            w->line_shown = true;
            w->last_progress = now;
        }
    } else if (info->disk && now - w->last_progress >= MIGRATE_BLOCK_PROGRESS_US) {
        uint64_t total = (uint64_t)info->disk->total, done = (uint64_t)info->disk->transferred;
        g_string_append_printf(out, "Completed %d %%\r",
                               info->disk->remaining && total ? (int)(done * 100 / total) : 100);
        w->line_shown = true;
        w->last_progress = now;
    }
}

static bool still_migrating(const MigrationInfo *info)
{
    /* As QEMU: wait while setting up or actively copying; any other state
     * (completed, failed, cancelled, pre-switchover, postcopy...) gives the
     * prompt back. */
    return !info->has_status || info->status == MIGRATION_STATUS_SETUP ||
           info->status == MIGRATION_STATUS_ACTIVE;
}

static gboolean migrate_poll(gpointer opaque)
{
    MigrateWait *w = opaque;
    Error *err = NULL;
    MigrationInfo *info = qmp_query_migrate(&err);
    g_autoptr(GString) out = g_string_new(NULL);

    if (!err && still_migrating(info)) {
        migrate_show_progress(w, info, out);
        if (out->len) {
            monitor_puts(w->mon, out->str);
        }
        qapi_free_MigrationInfo(info);
        return G_SOURCE_CONTINUE;
    }
    if (w->line_shown) {
        g_string_append(out, w->interactive ? "\r" ERASE_TO_EOL : "\n");
    }
    if (err) {
        monitor_puts(w->mon, out->str);
        hmp_handle_error(w->mon, err);
    } else {
        if (w->interactive) {
            hmp_format_migrate_result(out, info);
        }
        monitor_puts(w->mon, out->str);
        qapi_free_MigrationInfo(info);
    }
    hmp_monitor_set_source(w->mon, 0);
    hmp_monitor_resume(w->mon);
    return G_SOURCE_REMOVE;             /* frees w */
}

void hmp_migrate(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    bool detach = hmp_args_bool(args, "detach");
    q_obj_migrate_arg arg = {
        .uri = (char *)hmp_args_str(args, "uri"),
        .has_blk = hmp_args_bool(args, "blk"), .blk = hmp_args_bool(args, "blk"),
        .has_inc = hmp_args_bool(args, "inc"), .inc = hmp_args_bool(args, "inc"),
        .has_resume = true, .resume = hmp_args_bool(args, "resume"),
    };
    MigrateWait *w;

    if (!qmp_migrate(&arg, &err)) {
        hmp_handle_error(mon, err);
        return;
    }
    if (detach) {
        return;
    }
    if (!hmp_monitor_suspend(mon)) {
        monitor_printf(mon, "terminal does not allow synchronous migration, continuing detached\n");
        return;
    }
    w = g_new0(MigrateWait, 1);
    w->mon = mon;
    w->interactive = hmp_monitor_is_interactive(mon);
    w->last_progress = g_get_monotonic_time();
    hmp_monitor_set_source(mon, g_timeout_add_full(G_PRIORITY_DEFAULT, MIGRATE_POLL_MS, migrate_poll,
                                                   w, g_free));
}

void hmp_migrate_incoming(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    q_obj_migrate_incoming_arg arg = { .uri = (char *)hmp_args_str(args, "uri") };

    qmp_migrate_incoming(&arg, &err);
    hmp_handle_error(mon, err);
}

void hmp_migrate_pause(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    qmp_migrate_pause(&err);
    hmp_handle_error(mon, err);
}

void hmp_migrate_recover(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    q_obj_migrate_recover_arg arg = { .uri = (char *)hmp_args_str(args, "uri") };
    qmp_migrate_recover(&arg, &err);
    hmp_handle_error(mon, err);
}

void hmp_migrate_cancel(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;

    qmp_migrate_cancel(&err);
    hmp_handle_error(mon, err);
}

void hmp_migrate_start_postcopy(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;

    qmp_migrate_start_postcopy(&err);
    hmp_handle_error(mon, err);
}

void hmp_migrate_continue(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    const char *state = hmp_args_str(args, "state");
    q_obj_migrate_continue_arg arg = { 0 };

    if (!MigrationStatus_parse(state, &arg.state)) {
        monitor_printf(mon, "Error: invalid parameter value: %s\n", state);
        return;
    }
    qmp_migrate_continue(&arg, &err);
    hmp_handle_error(mon, err);
}

void hmp_migrate_set_capability(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    const char *name = hmp_args_str(args, "capability");
    MigrationCapabilityStatus cap = { .state = hmp_args_bool(args, "state") };
    MigrationCapabilityStatusList list = { .next = NULL, .value = &cap };
    q_obj_migrate_set_capabilities_arg arg = { .capabilities = &list };

    if (!MigrationCapability_parse(name, &cap.capability)) {
        monitor_printf(mon, "Error: invalid parameter value: %s\n", name);
        return;
    }
    qmp_migrate_set_capabilities(&arg, &err);
    hmp_handle_error(mon, err);
}

/* ---- migrate_set_parameter ---- */

typedef enum ParamKind {
    PK_SIZE,            /* size in the base unit, suffixes allowed */
    PK_CACHE_SIZE,      /* the same, at most INT64_MAX */
    PK_BANDWIDTH,       /* size, default unit MiB, at most INT64_MAX */
    PK_U8,
    PK_U32,
    PK_BOOL,
    PK_STR,             /* StrOrNull */
    PK_COMPRESSION,
    PK_QMP_ONLY,
} ParamKind;

typedef struct ParamSyntax {
    MigrationParameter param;
    ParamKind kind;
    size_t has_off;     /* offset of has_<member> (unused for PK_STR) */
    size_t val_off;
} ParamSyntax;

#define PS(P, K, m) { MIGRATION_PARAMETER_##P, K, offsetof(MigrateSetParameters, has_##m), \
                      offsetof(MigrateSetParameters, m) }
#define PS_STR(P, m) { MIGRATION_PARAMETER_##P, PK_STR, 0, offsetof(MigrateSetParameters, m) }

static const ParamSyntax param_syntax[] = {
    PS(ANNOUNCE_INITIAL, PK_SIZE, announce_initial),
    PS(ANNOUNCE_MAX, PK_SIZE, announce_max),
    PS(ANNOUNCE_ROUNDS, PK_SIZE, announce_rounds),
    PS(ANNOUNCE_STEP, PK_SIZE, announce_step),
    PS(COMPRESS_LEVEL, PK_U8, compress_level),
    PS(COMPRESS_THREADS, PK_U8, compress_threads),
    PS(DECOMPRESS_THREADS, PK_U8, decompress_threads),
    PS(COMPRESS_WAIT_THREAD, PK_BOOL, compress_wait_thread),
    PS(THROTTLE_TRIGGER_THRESHOLD, PK_U8, throttle_trigger_threshold),
    PS(CPU_THROTTLE_INITIAL, PK_U8, cpu_throttle_initial),
    PS(CPU_THROTTLE_INCREMENT, PK_U8, cpu_throttle_increment),
    PS(CPU_THROTTLE_TAILSLOW, PK_BOOL, cpu_throttle_tailslow),
    PS_STR(TLS_CREDS, tls_creds),
    PS_STR(TLS_HOSTNAME, tls_hostname),
    PS_STR(TLS_AUTHZ, tls_authz),
    PS(MAX_BANDWIDTH, PK_BANDWIDTH, max_bandwidth),
    PS(DOWNTIME_LIMIT, PK_SIZE, downtime_limit),
    PS(X_CHECKPOINT_DELAY, PK_U32, x_checkpoint_delay),
    PS(BLOCK_INCREMENTAL, PK_BOOL, block_incremental),
    PS(MULTIFD_CHANNELS, PK_U8, multifd_channels),
    PS(XBZRLE_CACHE_SIZE, PK_CACHE_SIZE, xbzrle_cache_size),
    PS(MAX_POSTCOPY_BANDWIDTH, PK_SIZE, max_postcopy_bandwidth),
    PS(MAX_CPU_THROTTLE, PK_U8, max_cpu_throttle),
    PS(X_CONVERGENCE_CONTROLLER, PK_BOOL, x_convergence_controller),
    PS(MULTIFD_COMPRESSION, PK_COMPRESSION, multifd_compression),
    PS(MULTIFD_ZLIB_LEVEL, PK_U8, multifd_zlib_level),
    PS(MULTIFD_ZSTD_LEVEL, PK_U8, multifd_zstd_level),
    { MIGRATION_PARAMETER_BLOCK_BITMAP_MAPPING, PK_QMP_ONLY, 0, 0 },
    PS(X_DEAD_LINK_TIMEOUT, PK_U32, x_dead_link_timeout),
    PS(X_PREFAULT_RAM, PK_BOOL, x_prefault_ram),
};

static const ParamSyntax *find_syntax(MigrationParameter param)
{
    for (size_t i = 0; i < G_N_ELEMENTS(param_syntax); i++) {
        if (param_syntax[i].param == param) {
            return &param_syntax[i];
        }
    }
    return NULL;
}

/* Parse `value` into the one member of *p that `ps` describes. `name` is
 * the parameter as typed, for messages. */
static bool fill_parameter(MigrateSetParameters *p, StrOrNull *str, const ParamSyntax *ps,
                           const char *name, const char *value, Error **errp)
{
    char *base = (char *)p;
    uint64_t u;
    bool b;
    int r;

    switch (ps->kind) {
    case PK_SIZE:
    case PK_CACHE_SIZE:
        r = hmp_parse_size(value, 1, &u);
        if (r == -ERANGE) {
            error_setg(errp, "Value '%s' is out of range for parameter '%s'", value, name);
            return false;
        }
        if (r < 0) {
            /* QEMU 7.2 prints its size hint after the message */
            error_setg(errp, "Parameter '%s' expects a non-negative number below 2^64\n"
                       "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n"
                       "and exabytes, respectively.", name);
            return false;
        }
        if (ps->kind == PK_CACHE_SIZE && u > INT64_MAX) {
            error_setg(errp, "Invalid size %s", value);
            return false;
        }
        *(uint64_t *)(base + ps->val_off) = u;
        break;
    case PK_BANDWIDTH:
        if (hmp_parse_size(value, 1 << 20, &u) < 0 || u > INT64_MAX) {
            error_setg(errp, "Invalid size %s", value);
            return false;
        }
        *(uint64_t *)(base + ps->val_off) = u;
        break;
    case PK_U8:
    case PK_U32:
        if (!hmp_parse_uint64(value, &u)) {
            error_setg(errp, "Parameter '%s' expects uint64", name);
            return false;
        }
        if (u > (ps->kind == PK_U8 ? UINT8_MAX : UINT32_MAX)) {
            error_setg(errp, "Parameter '%s' expects %s", name, ps->kind == PK_U8 ? "uint8_t" : "uint32_t");
            return false;
        }
        if (ps->kind == PK_U8) {
            *(uint8_t *)(base + ps->val_off) = (uint8_t)u;
        } else {
            *(uint32_t *)(base + ps->val_off) = (uint32_t)u;
        }
        break;
    case PK_BOOL:
        if (!hmp_parse_bool_word(value, &b)) {
            error_setg(errp, "Parameter '%s' expects 'on' or 'off'", name);
            return false;
        }
        *(bool *)(base + ps->val_off) = b;
        break;
    case PK_STR:
        str->type = QTYPE_QSTRING;
        str->u.s = (char *)value;
        *(StrOrNull **)(base + ps->val_off) = str;
        return true;
    case PK_COMPRESSION: {
        MultiFDCompression c;
        if (!MultiFDCompression_parse(value, &c)) {
            error_setg(errp, "Parameter '%s' does not accept value '%s'", name, value);
            return false;
        }
        *(MultiFDCompression *)(base + ps->val_off) = c;
        break;
    }
    case PK_QMP_ONLY:
        error_setg(errp, "The %s parameter can only be set through QMP", name);
        return false;
    }
    *(bool *)(base + ps->has_off) = true;
    return true;
}

void hmp_migrate_set_parameter(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    const char *name = hmp_args_str(args, "parameter");
    const char *value = hmp_args_str(args, "value");
    MigrateSetParameters params = { 0 };
    StrOrNull str = { 0 };
    MigrationParameter param;
    const ParamSyntax *ps;

    if (!MigrationParameter_parse(name, &param) || !(ps = find_syntax(param))) {
        monitor_printf(mon, "Error: invalid parameter value: %s\n", name);
        return;
    }
    if (fill_parameter(&params, &str, ps, name, value, &err)) {
        qmp_migrate_set_parameters(&params, &err);
    }
    hmp_handle_error(mon, err);
}

/* ---- info ---- */

void hmp_info_migrate(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    MigrationInfo *info = qmp_query_migrate(&err);
    g_autoptr(GString) out = g_string_new(NULL);

    if (err) {
        hmp_handle_error(mon, err);
        return;
    }
    hmp_format_migrate(out, info);
    monitor_puts(mon, out->str);
    qapi_free_MigrationInfo(info);
}

void hmp_info_migrate_capabilities(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    MigrationCapabilityStatusList *caps = qmp_query_migrate_capabilities(&err);
    g_autoptr(GString) out = g_string_new(NULL);

    if (err) {
        hmp_handle_error(mon, err);
        return;
    }
    hmp_format_migrate_capabilities(out, caps);
    monitor_puts(mon, out->str);
    qapi_free_MigrationCapabilityStatusList(caps);
}

void hmp_info_migrate_parameters(Monitor *mon, const HmpArgs *args)
{
    Error *err = NULL;
    MigrationParameters *params = qmp_query_migrate_parameters(&err);
    g_autoptr(GString) out = g_string_new(NULL);

    if (err) {
        hmp_handle_error(mon, err);
        return;
    }
    hmp_format_migrate_parameters(out, params);
    monitor_puts(mon, out->str);
    qapi_free_MigrationParameters(params);
}
