/*
 * Capabilities and parameters. All state here is guarded by one mutex so
 * the migration thread can read bandwidth/downtime while the monitor
 * changes them.
 */
#include "options.h"
#include "migration.h"
#include "postcopy-ram.h"
#include "qapi-commands.h"
#include "qapi-json.h"

#include <pthread.h>
#include <string.h>
#include <glib.h>

static pthread_mutex_t options_lock = PTHREAD_MUTEX_INITIALIZER;  /* pthread, not GMutex: visible to ThreadSanitizer */
static bool caps[MIGRATION_CAPABILITY__MAX];
static MigrationParameters params;
/* migrate blk/inc switched block (and block-incremental) on for one migration. */
static bool block_options_temporary;

/* Capabilities migvm implements; enabling any other one is refused with a
 * clear error rather than silently ignored. */
static bool cap_supported(MigrationCapability cap)
{
    switch (cap) {
    case MIGRATION_CAPABILITY_EVENTS:
    case MIGRATION_CAPABILITY_RETURN_PATH:
    case MIGRATION_CAPABILITY_PAUSE_BEFORE_SWITCHOVER:
    case MIGRATION_CAPABILITY_BLOCK:                /* migration/block.c */
    case MIGRATION_CAPABILITY_ZERO_BLOCKS:
    case MIGRATION_CAPABILITY_LATE_BLOCK_ACTIVATE:  /* images are activated at once: nothing to do */
    case MIGRATION_CAPABILITY_DIRTY_BITMAPS:        /* migration/block-dirty-bitmap.c */
    case MIGRATION_CAPABILITY_AUTO_CONVERGE:        /* migration/ram.c, system/cpu-throttle.c */
    case MIGRATION_CAPABILITY_MULTIFD:              /* migration/multifd-*.c */
    case MIGRATION_CAPABILITY_ZERO_COPY_SEND:       /* migration/multifd-send.c */
    case MIGRATION_CAPABILITY_POSTCOPY_RAM:         /* migration/postcopy-ram.c */
    case MIGRATION_CAPABILITY_POSTCOPY_BLOCKTIME:
    case MIGRATION_CAPABILITY_X_RESUMABLE_PRECOPY:  /* migration/migration.c, incoming.c */
        return true;
    default:
        return false;
    }
}

static void params_set_defaults(MigrationParameters *p)
{
    memset(p, 0, sizeof(*p));
    p->has_announce_initial = true;           p->announce_initial = 50;
    p->has_announce_max = true;               p->announce_max = 550;
    p->has_announce_rounds = true;            p->announce_rounds = 5;
    p->has_announce_step = true;              p->announce_step = 100;
    p->has_compress_level = true;             p->compress_level = 1;
    p->has_compress_threads = true;           p->compress_threads = 8;
    p->has_compress_wait_thread = true;       p->compress_wait_thread = true;
    p->has_decompress_threads = true;         p->decompress_threads = 2;
    p->has_throttle_trigger_threshold = true; p->throttle_trigger_threshold = 50;
    p->has_cpu_throttle_initial = true;       p->cpu_throttle_initial = 20;
    p->has_cpu_throttle_increment = true;     p->cpu_throttle_increment = 10;
    p->has_cpu_throttle_tailslow = true;      p->cpu_throttle_tailslow = false;
    p->tls_creds = g_strdup("");
    p->tls_hostname = g_strdup("");
    p->tls_authz = g_strdup("");
    p->has_max_bandwidth = true;              p->max_bandwidth = 128 << 20;
    p->has_downtime_limit = true;             p->downtime_limit = 300;
    p->has_x_checkpoint_delay = true;         p->x_checkpoint_delay = 20000;
    p->has_block_incremental = true;          p->block_incremental = false;
    p->has_multifd_channels = true;           p->multifd_channels = 2;
    p->has_multifd_compression = true;        p->multifd_compression = MULTIFD_COMPRESSION_NONE;
    p->has_multifd_zlib_level = true;         p->multifd_zlib_level = 1;
    p->has_multifd_zstd_level = true;         p->multifd_zstd_level = 1;
    p->has_xbzrle_cache_size = true;          p->xbzrle_cache_size = 64 << 20;
    p->has_max_postcopy_bandwidth = true;     p->max_postcopy_bandwidth = 0;
    p->has_max_cpu_throttle = true;           p->max_cpu_throttle = 99;
    p->has_x_dead_link_timeout = true;        p->x_dead_link_timeout = 30000;
    p->has_x_convergence_controller = true;   p->x_convergence_controller = true;     /* migvm's own */
    p->has_x_prefault_ram = true;             p->x_prefault_ram = true;
}

static void params_clear(MigrationParameters *p)
{
    g_free(p->tls_creds);
    g_free(p->tls_hostname);
    g_free(p->tls_authz);
    qapi_free_BitmapMigrationNodeAliasList(p->block_bitmap_mapping);
    memset(p, 0, sizeof(*p));
}

static void ensure_init(void)
{
    static bool done;
    if (!done) {
        params_set_defaults(&params);
        done = true;
    }
}

void migrate_options_reset(void)
{
    pthread_mutex_lock(&options_lock);
    ensure_init();      /* else the next ensure_init() would overwrite, and leak, these defaults */
    params_clear(&params);
    params_set_defaults(&params);
    memset(caps, 0, sizeof(caps));
    block_options_temporary = false;
    pthread_mutex_unlock(&options_lock);
}

bool migrate_cap(MigrationCapability cap)
{
    pthread_mutex_lock(&options_lock);
    bool on = caps[cap];
    pthread_mutex_unlock(&options_lock);
    return on;
}

uint64_t migrate_max_bandwidth(void)
{
    pthread_mutex_lock(&options_lock);
    ensure_init();
    uint64_t bw = params.max_bandwidth;
    pthread_mutex_unlock(&options_lock);
    return bw;
}

uint64_t migrate_max_postcopy_bandwidth(void)
{
    pthread_mutex_lock(&options_lock);
    ensure_init();
    uint64_t bw = params.max_postcopy_bandwidth;
    pthread_mutex_unlock(&options_lock);
    return bw;
}

uint64_t migrate_downtime_limit_ms(void)
{
    pthread_mutex_lock(&options_lock);
    ensure_init();
    uint64_t ms = params.downtime_limit;
    pthread_mutex_unlock(&options_lock);
    return ms;
}

bool migrate_prefault_ram(void)
{
    pthread_mutex_lock(&options_lock);
    ensure_init();
    bool on = params.x_prefault_ram;
    pthread_mutex_unlock(&options_lock);
    return on;
}

uint32_t migrate_dead_link_timeout_ms(void)
{
    pthread_mutex_lock(&options_lock);
    ensure_init();
    uint32_t ms = params.x_dead_link_timeout;
    pthread_mutex_unlock(&options_lock);
    return ms;
}

bool migrate_convergence_controller(void)
{
    pthread_mutex_lock(&options_lock);
    ensure_init();
    bool on = params.x_convergence_controller;
    pthread_mutex_unlock(&options_lock);
    return on;
}

static char *param_string(char *const *field)
{
    pthread_mutex_lock(&options_lock);
    ensure_init();
    char *copy = g_strdup(*field);
    pthread_mutex_unlock(&options_lock);
    return copy;
}

char *migrate_tls_creds(void)
{
    return param_string(&params.tls_creds);
}

char *migrate_tls_hostname(void)
{
    return param_string(&params.tls_hostname);
}

char *migrate_tls_authz(void)
{
    return param_string(&params.tls_authz);
}

void migrate_throttle_params(MigThrottleParams *out)
{
    pthread_mutex_lock(&options_lock);
    ensure_init();
    out->trigger_threshold = params.throttle_trigger_threshold;
    out->initial = params.cpu_throttle_initial;
    out->increment = params.cpu_throttle_increment;
    out->max = params.max_cpu_throttle;
    out->tailslow = params.cpu_throttle_tailslow;
    pthread_mutex_unlock(&options_lock);
}

void migrate_multifd_params(MigrateMultifdParams *out)
{
    pthread_mutex_lock(&options_lock);
    ensure_init();
    out->channels = params.multifd_channels;
    out->compression = params.multifd_compression;
    out->zlib_level = params.multifd_zlib_level;
    out->zstd_level = params.multifd_zstd_level;
    out->zero_copy = caps[MIGRATION_CAPABILITY_ZERO_COPY_SEND];
    pthread_mutex_unlock(&options_lock);
}

/* ---- block migration for one migrate command ------------------------ */

bool migrate_block_options_begin(bool blk, bool inc, Error **errp)
{
    if (!blk && !inc) {
        return true;
    }
    pthread_mutex_lock(&options_lock);
    ensure_init();
    bool ok = !caps[MIGRATION_CAPABILITY_BLOCK] && !params.block_incremental;
    if (!ok) {
        error_setg(errp, "Command options are incompatible with current migration capabilities");
    } else {
        caps[MIGRATION_CAPABILITY_BLOCK] = true;
        params.block_incremental = inc;
        block_options_temporary = true;
    }
    pthread_mutex_unlock(&options_lock);
    return ok;
}

void migrate_block_options_end(void)
{
    pthread_mutex_lock(&options_lock);
    if (block_options_temporary) {
        caps[MIGRATION_CAPABILITY_BLOCK] = false;
        params.block_incremental = false;
        block_options_temporary = false;
    }
    pthread_mutex_unlock(&options_lock);
}

/* ---- capabilities ----------------------------------------------------- */

static bool caps_check(const bool *new_caps, Error **errp)
{
    for (int c = 0; c < MIGRATION_CAPABILITY__MAX; c++) {
        if (new_caps[c] && !caps[c] && !cap_supported(c)) {
            error_setg(errp, "Capability '%s' is not supported by migvm", MigrationCapability_str(c));
            return false;
        }
    }
    if (new_caps[MIGRATION_CAPABILITY_POSTCOPY_PREEMPT] && !new_caps[MIGRATION_CAPABILITY_POSTCOPY_RAM]) {
        error_setg(errp, "Postcopy preempt requires postcopy-ram");
        return false;
    }
    if (new_caps[MIGRATION_CAPABILITY_ZERO_COPY_SEND] &&
        (!new_caps[MIGRATION_CAPABILITY_MULTIFD] || new_caps[MIGRATION_CAPABILITY_COMPRESS] ||
         new_caps[MIGRATION_CAPABILITY_XBZRLE] || params.multifd_compression != MULTIFD_COMPRESSION_NONE ||
         (params.tls_creds && params.tls_creds[0]))) {
        error_setg(errp, "Zero copy only available for non-compressed non-TLS multifd migration");
        return false;
    }
    if (new_caps[MIGRATION_CAPABILITY_POSTCOPY_RAM] && new_caps[MIGRATION_CAPABILITY_MULTIFD]) {
        error_setg(errp, "Postcopy is not yet compatible with multifd");
        return false;
    }
    /* QEMU 7.2 probes the host on the destination only; migvm on both
     * sides, since either may become a destination. */
    if (new_caps[MIGRATION_CAPABILITY_POSTCOPY_RAM] && !caps[MIGRATION_CAPABILITY_POSTCOPY_RAM]) {
        Error *why = NULL;
        if (!postcopy_ram_supported(&why)) {
            error_propagate(errp, why);
            return false;
        }
    }
    return true;
}

bool qmp_migrate_set_capabilities(const q_obj_migrate_set_capabilities_arg *arg, Error **errp)
{
    if (migration_is_running()) {
        error_setg(errp, "There's a migration process in progress");
        return false;
    }
    pthread_mutex_lock(&options_lock);
    bool new_caps[MIGRATION_CAPABILITY__MAX];
    memcpy(new_caps, caps, sizeof(caps));
    for (MigrationCapabilityStatusList *l = arg->capabilities; l; l = l->next) {
        new_caps[l->value->capability] = l->value->state;
    }
    bool ok = caps_check(new_caps, errp);
    if (ok) {
        memcpy(caps, new_caps, sizeof(caps));
    }
    pthread_mutex_unlock(&options_lock);
    return ok;
}

MigrationCapabilityStatusList *qmp_query_migrate_capabilities(Error **errp)
{
    MigrationCapabilityStatusList *head = NULL, **tail = &head;
    pthread_mutex_lock(&options_lock);
    for (int c = 0; c < MIGRATION_CAPABILITY__MAX; c++) {
        MigrationCapabilityStatus *s = g_new0(MigrationCapabilityStatus, 1);
        s->capability = c;
        s->state = caps[c];
        *tail = g_new0(MigrationCapabilityStatusList, 1);
        (*tail)->value = s;
        tail = &(*tail)->next;
    }
    pthread_mutex_unlock(&options_lock);
    return head;
}

/* ---- parameters ------------------------------------------------------- */

#define EXPECTS(name, what) error_setg(errp, "Parameter '%s' expects %s", name, what)

/* throttle_initial and max_throttle: the values in effect after the call (QEMU
 * checks the merged set, so either one alone can break their order). */
static bool params_check(const MigrateSetParameters *p, uint8_t throttle_initial, uint8_t max_throttle,
                         Error **errp)
{
    if (p->has_compress_level && p->compress_level > 9) {
        EXPECTS("compress_level", "a value between 0 and 9");
    } else if (p->has_compress_threads && p->compress_threads < 1) {
        EXPECTS("compress_threads", "a value between 1 and 255");
    } else if (p->has_decompress_threads && p->decompress_threads < 1) {
        EXPECTS("decompress_threads", "a value between 1 and 255");
    } else if (p->has_throttle_trigger_threshold &&
               (p->throttle_trigger_threshold < 1 || p->throttle_trigger_threshold > 100)) {
        EXPECTS("throttle_trigger_threshold", "an integer in the range of 1 to 100");
    } else if (p->has_cpu_throttle_initial &&
               (p->cpu_throttle_initial < 1 || p->cpu_throttle_initial > 99)) {
        EXPECTS("cpu_throttle_initial", "an integer in the range of 1 to 99");
    } else if (p->has_cpu_throttle_increment &&
               (p->cpu_throttle_increment < 1 || p->cpu_throttle_increment > 99)) {
        EXPECTS("cpu_throttle_increment", "an integer in the range of 1 to 99");
    } else if (p->has_downtime_limit && p->downtime_limit > 2000 * 1000) {
        EXPECTS("downtime_limit", "an integer in the range of 0 to (2000 * 1000) ms");
    } else if (p->has_multifd_channels && p->multifd_channels < 1) {
        EXPECTS("multifd_channels", "a value between 1 and 255");
    } else if (p->has_multifd_zlib_level && p->multifd_zlib_level > 9) {
        EXPECTS("multifd_zlib_level", "a value between 0 and 9");
    } else if (p->has_multifd_zstd_level && p->multifd_zstd_level > 20) {
        EXPECTS("multifd_zstd_level", "a value between 0 and 20");
    } else if (p->has_xbzrle_cache_size &&
               (p->xbzrle_cache_size < 4096 || (p->xbzrle_cache_size & (p->xbzrle_cache_size - 1)))) {
        EXPECTS("xbzrle_cache_size", "a power of two no less than the target page size");
    } else if (max_throttle < throttle_initial || max_throttle > 99) {
        EXPECTS("max_cpu_throttle", "an integer in the range of cpu_throttle_initial to 99");
    } else if (p->has_announce_initial && p->announce_initial > 100000) {
        EXPECTS("announce_initial", "a value between 0 and 100000");
    } else if (p->has_announce_max && p->announce_max > 100000) {
        EXPECTS("announce_max", "a value between 0 and 100000");
    } else if (p->has_announce_rounds && p->announce_rounds > 1000) {
        EXPECTS("announce_rounds", "a value between 0 and 1000");
    } else if (p->has_announce_step && (p->announce_step < 1 || p->announce_step > 10000)) {
        EXPECTS("announce_step", "a value between 0 and 10000");
    } else if (p->has_x_dead_link_timeout && p->x_dead_link_timeout > 24 * 3600 * 1000) {
        EXPECTS("x_dead_link_timeout", "a value between 0 and 86400000 ms");
    } else if (caps[MIGRATION_CAPABILITY_ZERO_COPY_SEND] &&
               ((p->has_multifd_compression && p->multifd_compression != MULTIFD_COMPRESSION_NONE) ||
                (p->tls_creds && p->tls_creds->type == QTYPE_QSTRING && p->tls_creds->u.s[0]))) {
        error_setg(errp, "Zero copy only available for non-compressed non-TLS multifd migration");
    } else {
        return true;
    }
    return false;
}

static char *str_or_null_value(const StrOrNull *s)
{
    return g_strdup(s->type == QTYPE_QSTRING ? s->u.s : "");
}

static BitmapMigrationNodeAliasList *copy_bitmap_mapping(const BitmapMigrationNodeAliasList *src)
{
    /* Round-trip through JSON: a deep copy without hand-written code per type. */
    BitmapMigrationNodeAliasList *copy = NULL;
    if (!src) {
        return NULL;
    }
    json_object *j = qapi_to_json_BitmapMigrationNodeAliasList(src);
    if (!qapi_from_json_BitmapMigrationNodeAliasList(j, NULL, &copy, NULL)) {
        copy = NULL;
    }
    json_object_put(j);
    return copy;
}

#define APPLY(m) do { if (p->has_##m) { params.m = p->m; } } while (0)

static void params_apply(const MigrateSetParameters *p)
{
    APPLY(announce_initial); APPLY(announce_max); APPLY(announce_rounds); APPLY(announce_step);
    APPLY(compress_level); APPLY(compress_threads); APPLY(compress_wait_thread);
    APPLY(decompress_threads); APPLY(throttle_trigger_threshold); APPLY(cpu_throttle_initial);
    APPLY(cpu_throttle_increment); APPLY(cpu_throttle_tailslow); APPLY(max_bandwidth);
    APPLY(downtime_limit); APPLY(x_checkpoint_delay); APPLY(block_incremental);
    APPLY(multifd_channels); APPLY(multifd_compression); APPLY(multifd_zlib_level);
    APPLY(multifd_zstd_level); APPLY(xbzrle_cache_size); APPLY(max_postcopy_bandwidth);
    APPLY(max_cpu_throttle); APPLY(x_dead_link_timeout); APPLY(x_convergence_controller); APPLY(x_prefault_ram);
    if (p->tls_creds) {
        g_free(params.tls_creds);
        params.tls_creds = str_or_null_value(p->tls_creds);
    }
    if (p->tls_hostname) {
        g_free(params.tls_hostname);
        params.tls_hostname = str_or_null_value(p->tls_hostname);
    }
    if (p->tls_authz) {
        g_free(params.tls_authz);
        params.tls_authz = str_or_null_value(p->tls_authz);
    }
    if (p->block_bitmap_mapping) {
        qapi_free_BitmapMigrationNodeAliasList(params.block_bitmap_mapping);
        params.block_bitmap_mapping = copy_bitmap_mapping(p->block_bitmap_mapping);
    }
}

bool qmp_migrate_set_parameters(const MigrateSetParameters *p, Error **errp)
{
    pthread_mutex_lock(&options_lock);
    ensure_init();
    bool ok = params_check(p, p->has_cpu_throttle_initial ? p->cpu_throttle_initial : params.cpu_throttle_initial,
                           p->has_max_cpu_throttle ? p->max_cpu_throttle : params.max_cpu_throttle, errp);
    if (ok) {
        params_apply(p);
    }
    pthread_mutex_unlock(&options_lock);
    if (ok) {
        migration_parameters_changed();
    }
    return ok;
}

MigrationParameters *qmp_query_migrate_parameters(Error **errp)
{
    pthread_mutex_lock(&options_lock);
    ensure_init();
    MigrationParameters *copy = g_new(MigrationParameters, 1);
    *copy = params;
    copy->tls_creds = g_strdup(params.tls_creds);
    copy->tls_hostname = g_strdup(params.tls_hostname);
    copy->tls_authz = g_strdup(params.tls_authz);
    copy->block_bitmap_mapping = copy_bitmap_mapping(params.block_bitmap_mapping);
    pthread_mutex_unlock(&options_lock);
    return copy;
}
