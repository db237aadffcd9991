/*
 * HMP `info` formatting (see hmp-print.h). Layouts are QEMU 7.2's, from
 * /work/shared/docs/hmp-migration.md sections 3-6: kbytes are byte counters
 * shifted right by 10, rates use two decimals, and optional parts appear
 * only when the QAPI member is present (or, for some counters, non-zero).
 */
#include <inttypes.h>
#include <string.h>

#include "hmp-print.h"

void hmp_format_status(GString *out, const StatusInfo *info)
{
    g_string_append_printf(out, "VM status: %s%s", info->running ? "running" : "paused",
                           info->singlestep ? " (single step mode)" : "");
    if (!info->running && info->status != RUN_STATE_PAUSED) {
        g_string_append_printf(out, " (%s)", RunState_str(info->status));
    }
    g_string_append_c(out, '\n');
}

void hmp_format_version(GString *out, const VersionInfo *info)
{
    g_string_append_printf(out, "%" PRId64 ".%" PRId64 ".%" PRId64 "%s\n",
                           info->qemu ? info->qemu->major : 0,
                           info->qemu ? info->qemu->minor : 0,
                           info->qemu ? info->qemu->micro : 0,
                           info->package ? info->package : "");
}

void hmp_format_kvm(GString *out, const KvmInfo *info)
{
    g_string_append(out, "kvm support: ");
    if (!info->present) {
        g_string_append(out, "not compiled\n");
    } else {
        g_string_append(out, info->enabled ? "enabled\n" : "disabled\n");
    }
}

void hmp_format_migrate_globals(GString *out)
{
    /* migvm has no knobs for these; they are QEMU 7.2's machine defaults. */
    g_string_append(out,
                    "globals:\n"
                    "store-global-state: on\n"
                    "only-migratable: off\n"
                    "send-configuration: on\n"
                    "send-section-footer: on\n"
                    "decompress-error-check: on\n"
                    "clear-bitmap-shift: 18\n");
}

char *hmp_socket_address_str(const SocketAddress *addr)
{
    switch (addr->type) {
    case SOCKET_ADDRESS_TYPE_INET: {
        const char *host = addr->u.inet.host ? addr->u.inet.host : "";
        bool v6 = strchr(host, ':') != NULL;
        return g_strdup_printf("tcp:%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "",
                               addr->u.inet.port ? addr->u.inet.port : "");
    }
    case SOCKET_ADDRESS_TYPE_UNIX:
        return g_strdup_printf("unix:%s", addr->u.q_unix.path);
    case SOCKET_ADDRESS_TYPE_VSOCK:
        return g_strdup_printf("vsock:%s:%s", addr->u.vsock.cid, addr->u.vsock.port);
    case SOCKET_ADDRESS_TYPE_FD:
        return g_strdup_printf("fd:%s", addr->u.fd.str);
    default:
        return g_strdup("unknown address type");
    }
}

static void format_status_part(GString *out, const MigrationInfo *info)
{
    g_string_append_printf(out, "Migration status: %s", MigrationStatus_str(info->status));
    if (info->status == MIGRATION_STATUS_FAILED && info->error_desc) {
        g_string_append_printf(out, " (%s)", info->error_desc);
    }
    g_string_append_c(out, '\n');
    g_string_append_printf(out, "total time: %" PRIu64 " ms\n",
                           (uint64_t)(info->has_total_time ? info->total_time : 0));
    if (info->has_expected_downtime) {
        g_string_append_printf(out, "expected downtime: %" PRIu64 " ms\n", (uint64_t)info->expected_downtime);
    }
    if (info->has_downtime) {
        g_string_append_printf(out, "downtime: %" PRIu64 " ms\n", (uint64_t)info->downtime);
    }
    if (info->has_setup_time) {
        g_string_append_printf(out, "setup: %" PRIu64 " ms\n", (uint64_t)info->setup_time);
    }
}

static void kbytes_line(GString *out, const char *label, uint64_t bytes)
{
    g_string_append_printf(out, "%s: %" PRIu64 " kbytes\n", label, bytes >> 10);
}

static void format_ram_part(GString *out, const MigrationStats *ram)
{
    kbytes_line(out, "transferred ram", (uint64_t)ram->transferred);
    g_string_append_printf(out, "throughput: %0.2f mbps\n", ram->mbps);
    kbytes_line(out, "remaining ram", (uint64_t)ram->remaining);
    kbytes_line(out, "total ram", (uint64_t)ram->total);
    g_string_append_printf(out, "duplicate: %" PRIu64 " pages\n", (uint64_t)ram->duplicate);
    g_string_append_printf(out, "skipped: %" PRIu64 " pages\n", (uint64_t)ram->skipped);
    g_string_append_printf(out, "normal: %" PRIu64 " pages\n", (uint64_t)ram->normal);
    kbytes_line(out, "normal bytes", (uint64_t)ram->normal_bytes);
    g_string_append_printf(out, "dirty sync count: %" PRIu64 "\n", (uint64_t)ram->dirty_sync_count);
    kbytes_line(out, "page size", (uint64_t)ram->page_size);
    kbytes_line(out, "multifd bytes", ram->multifd_bytes);
    g_string_append_printf(out, "pages-per-second: %" PRIu64 "\n", ram->pages_per_second);
    if (ram->dirty_pages_rate) {
        g_string_append_printf(out, "dirty pages rate: %" PRIu64 " pages\n", (uint64_t)ram->dirty_pages_rate);
    }
    if (ram->postcopy_requests) {
        g_string_append_printf(out, "postcopy request count: %" PRIu64 "\n", (uint64_t)ram->postcopy_requests);
    }
    if (ram->precopy_bytes) {
        kbytes_line(out, "precopy ram", ram->precopy_bytes);
    }
    if (ram->downtime_bytes) {
        kbytes_line(out, "downtime ram", ram->downtime_bytes);
    }
    if (ram->postcopy_bytes) {
        kbytes_line(out, "postcopy ram", ram->postcopy_bytes);
    }
    if (ram->dirty_sync_missed_zero_copy) {
        g_string_append_printf(out, "Zero-copy-send fallbacks happened: %" PRIu64 " times\n",
                               ram->dirty_sync_missed_zero_copy);
    }
}

static void format_xbzrle_part(GString *out, const XBZRLECacheStats *x)
{
    g_string_append_printf(out, "cache size: %" PRIu64 " bytes\n", (uint64_t)x->cache_size);
    kbytes_line(out, "xbzrle transferred", (uint64_t)x->bytes);
    g_string_append_printf(out, "xbzrle pages: %" PRIu64 " pages\n", (uint64_t)x->pages);
    g_string_append_printf(out, "xbzrle cache miss: %" PRIu64 " pages\n", (uint64_t)x->cache_miss);
    g_string_append_printf(out, "xbzrle cache miss rate: %0.2f\n", x->cache_miss_rate);
    g_string_append_printf(out, "xbzrle encoding rate: %0.2f\n", x->encoding_rate);
    g_string_append_printf(out, "xbzrle overflow: %" PRIu64 "\n", (uint64_t)x->overflow);
}

static void format_compression_part(GString *out, const CompressionStats *c)
{
    g_string_append_printf(out, "compression pages: %" PRIu64 " pages\n", (uint64_t)c->pages);
    g_string_append_printf(out, "compression busy: %" PRIu64 "\n", (uint64_t)c->busy);
    g_string_append_printf(out, "compression busy rate: %0.2f\n", c->busy_rate);
    kbytes_line(out, "compressed size", (uint64_t)c->compressed_size);
    g_string_append_printf(out, "compression rate: %0.2f\n", c->compression_rate);
}

/* migvm's convergence controller (migration/converge.c): two lines. */
static void format_convergence_part(GString *out, const XMigrationConvergence *c)
{
    g_string_append_printf(out, "x-convergence: %s (%s)\n", c->converging ? "converging" : "not converging",
                           c->reason);
    g_string_append_printf(out, "x-convergence-decision: %s at pass %" PRId64 ", throttle %" PRId64 " %%, "
                           "dirty rate %" PRId64 " kbytes/s, bandwidth %" PRId64 " kbytes/s, ",
                           XMigrationConvergenceAction_str(c->decision), c->pass, c->throttle,
                           c->dirty_rate >> 10, c->bandwidth >> 10);
    if (c->has_predicted_completion) {
        g_string_append_printf(out, "predicted completion in %" PRId64 " ms\n", c->predicted_completion);
    } else {
        g_string_append(out, "no predicted completion\n");
    }
}

static void format_vcpu_blocktime(GString *out, const uint32List *list)
{
    g_string_append(out, "postcopy vcpu blocktime: ");
    for (const uint32List *l = list; l; l = l->next) {
        g_string_append_printf(out, "%s%" PRIu32, l == list ? "" : ",", l->value);
    }
    g_string_append_c(out, '\n');
}

void hmp_format_migrate(GString *out, const MigrationInfo *info)
{
    hmp_format_migrate_globals(out);

    if (info->blocked_reasons) {
        g_string_append(out, "Outgoing migration blocked:\n");
        for (const strList *r = info->blocked_reasons; r; r = r->next) {
            g_string_append_printf(out, "  %s\n", r->value);
        }
    }
    if (info->has_status) {
        format_status_part(out, info);
    }
    if (info->ram) {
        format_ram_part(out, info->ram);
    }
    if (info->disk) {
        kbytes_line(out, "transferred disk", (uint64_t)info->disk->transferred);
        kbytes_line(out, "remaining disk", (uint64_t)info->disk->remaining);
        kbytes_line(out, "total disk", (uint64_t)info->disk->total);
    }
    if (info->xbzrle_cache) {
        format_xbzrle_part(out, info->xbzrle_cache);
    }
    if (info->compression) {
        format_compression_part(out, info->compression);
    }
    if (info->has_cpu_throttle_percentage) {
        g_string_append_printf(out, "cpu throttle percentage: %" PRIu64 "\n",
                               (uint64_t)info->cpu_throttle_percentage);
    }
    if (info->x_convergence) {
        format_convergence_part(out, info->x_convergence);
    }
    if (info->has_postcopy_blocktime) {
        g_string_append_printf(out, "postcopy blocktime: %" PRIu32 "\n", info->postcopy_blocktime);
    }
    if (info->postcopy_vcpu_blocktime) {
        format_vcpu_blocktime(out, info->postcopy_vcpu_blocktime);
    }
    if (info->socket_address) {
        g_string_append(out, "socket address: [\n");
        for (const SocketAddressList *a = info->socket_address; a; a = a->next) {
            g_autofree char *s = hmp_socket_address_str(a->value);
            g_string_append_printf(out, "\t%s\n", s);
        }
        g_string_append(out, "]\n");
    }
    if (info->vfio) {
        kbytes_line(out, "vfio device transferred", (uint64_t)info->vfio->transferred);
    }
}

void hmp_format_migrate_capabilities(GString *out, const MigrationCapabilityStatusList *caps)
{
    for (const MigrationCapabilityStatusList *c = caps; c; c = c->next) {
        g_string_append_printf(out, "%s: %s\n", MigrationCapability_str(c->value->capability),
                               c->value->state ? "on" : "off");
    }
}

static const char *onoff(bool b)
{
    return b ? "on" : "off";
}

/* Helpers keep the long list below one line per parameter. */
#define P_UINT(name, member, unit) \
    if (p->has_##member) { \
        g_string_append_printf(out, "%s: %" PRIu64 "%s\n", name, (uint64_t)p->member, unit); \
    }
#define P_BOOL(name, member) \
    if (p->has_##member) { \
        g_string_append_printf(out, "%s: %s\n", name, onoff(p->member)); \
    }
#define P_STR(name, member) \
    if (p->member) { \
        g_string_append_printf(out, "%s: '%s'\n", name, p->member); \
    }

void hmp_format_migrate_parameters(GString *out, const MigrationParameters *p)
{
    P_UINT("announce-initial", announce_initial, " ms");
    P_UINT("announce-max", announce_max, " ms");
    P_UINT("announce-rounds", announce_rounds, "");
    P_UINT("announce-step", announce_step, " ms");
    P_UINT("compress-level", compress_level, "");
    P_UINT("compress-threads", compress_threads, "");
    P_BOOL("compress-wait-thread", compress_wait_thread);
    P_UINT("decompress-threads", decompress_threads, "");
    P_UINT("throttle-trigger-threshold", throttle_trigger_threshold, "");
    P_UINT("cpu-throttle-initial", cpu_throttle_initial, "");
    P_UINT("cpu-throttle-increment", cpu_throttle_increment, "");
    P_BOOL("cpu-throttle-tailslow", cpu_throttle_tailslow);
    P_UINT("max-cpu-throttle", max_cpu_throttle, "");
    P_STR("tls-creds", tls_creds);
    P_STR("tls-hostname", tls_hostname);
    P_UINT("max-bandwidth", max_bandwidth, " bytes/second");
    P_UINT("downtime-limit", downtime_limit, " ms");
    P_UINT("x-checkpoint-delay", x_checkpoint_delay, " ms");
    P_BOOL("block-incremental", block_incremental);
    P_UINT("multifd-channels", multifd_channels, "");
    if (p->has_multifd_compression) {
        g_string_append_printf(out, "multifd-compression: %s\n",
                               MultiFDCompression_str(p->multifd_compression));
    }
    P_UINT("xbzrle-cache-size", xbzrle_cache_size, " bytes");
    P_UINT("max-postcopy-bandwidth", max_postcopy_bandwidth, "");
    P_STR("tls-authz", tls_authz);
    P_UINT("x-dead-link-timeout", x_dead_link_timeout, " ms");
    P_BOOL("x-convergence-controller", x_convergence_controller);
    P_BOOL("x-prefault-ram", x_prefault_ram);

    if (p->block_bitmap_mapping) {
        g_string_append(out, "block-bitmap-mapping:\n");
        for (const BitmapMigrationNodeAliasList *n = p->block_bitmap_mapping; n; n = n->next) {
            g_string_append_printf(out, "  '%s' -> '%s'\n", n->value->node_name, n->value->alias);
            for (const BitmapMigrationBitmapAliasList *b = n->value->bitmaps; b; b = b->next) {
                g_string_append_printf(out, "    '%s' -> '%s'\n", b->value->name, b->value->alias);
            }
        }
    }
}

/* Share of RAM (and disks) not dirty any more, 0-100. */
static unsigned progress_percent(const MigrationInfo *info)
{
    uint64_t total = (uint64_t)info->ram->total, remaining = (uint64_t)info->ram->remaining;
    if (info->disk) {
        total += (uint64_t)info->disk->total;
        remaining += (uint64_t)info->disk->remaining;
    }
    if (!total || remaining >= total) {
        return 0;
    }
    return (unsigned)((total - remaining) * 100 / total);
}

void hmp_format_migrate_progress(GString *out, const MigrationInfo *info)
{
    g_string_append_printf(out, "migration: %s", MigrationStatus_str(info->status));
    if (info->ram) {
        const MigrationStats *ram = info->ram;
        g_string_append_printf(out, " %3u%%, %" PRIu64 " kbytes sent, %0.2f mbps, remaining %" PRIu64
                               " kbytes", progress_percent(info), (uint64_t)ram->transferred >> 10, ram->mbps,
                               (uint64_t)ram->remaining >> 10);
        if (info->disk) {
            g_string_append_printf(out, " + %" PRIu64 " kbytes disk", (uint64_t)info->disk->remaining >> 10);
        }
        if (info->has_expected_downtime) {
            g_string_append_printf(out, ", expected downtime %" PRIu64 " ms", (uint64_t)info->expected_downtime);
        }
        g_string_append_printf(out, ", pass %" PRIu64, (uint64_t)ram->dirty_sync_count);
    }
}

void hmp_format_migrate_result(GString *out, const MigrationInfo *info)
{
    g_string_append_printf(out, "migration: %s",
                           info->has_status ? MigrationStatus_str(info->status) : "none");
    if (info->status == MIGRATION_STATUS_FAILED && info->error_desc) {
        g_string_append_printf(out, " (%s)", info->error_desc);
    } else if (info->status == MIGRATION_STATUS_COMPLETED) {
        if (info->has_total_time) {
            g_string_append_printf(out, ", total time %" PRIu64 " ms", (uint64_t)info->total_time);
        }
        if (info->has_downtime) {
            g_string_append_printf(out, ", downtime %" PRIu64 " ms", (uint64_t)info->downtime);
        }
    }
    g_string_append_c(out, '\n');
}
