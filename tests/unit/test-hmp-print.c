/*
 * Golden tests for monitor/hmp-print.c: the text of `info migrate`,
 * `info migrate_capabilities`, `info migrate_parameters`, `info status`,
 * `info version` and `info kvm`, against QEMU 7.2's real outputs
 * (/work/shared/docs/hmp-migration.md sections 3-6).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "../../monitor/hmp-print.h"
#include "unit-test.h"

#define GLOBALS \
    "globals:\n" \
    "store-global-state: on\n" \
    "only-migratable: off\n" \
    "send-configuration: on\n" \
    "send-section-footer: on\n" \
    "decompress-error-check: on\n" \
    "clear-bitmap-shift: 18\n"

typedef void (*MigrateFormatter)(GString *out, const MigrationInfo *info);

static void expect_migrate(const MigrationInfo *info, const char *golden)
{
    g_autoptr(GString) out = g_string_new(NULL);

    hmp_format_migrate(out, info);
    ck_assert_str_eq(out->str, golden);
}

START_TEST(test_migrate_fresh)
{
    MigrationInfo info = { 0 };
    expect_migrate(&info, GLOBALS);
}
END_TEST

START_TEST(test_migrate_active_xbzrle)
{
    MigrationStats ram = {
        .transferred = 104448 + 500, .remaining = 65060 * 1024, .total = 66056 * 1024,
        .duplicate = 224, .normal = 25, .normal_bytes = 100 * 1024, .mbps = 0.33, .dirty_sync_count = 1,
        .page_size = 4096, .pages_per_second = 10, .precopy_bytes = 102 * 1024 + 7,
    };
    XBZRLECacheStats x = { .cache_size = 67108864 };
    MigrationInfo info = {
        .has_status = true, .status = MIGRATION_STATUS_ACTIVE,
        .has_total_time = true, .total_time = 2505,
        .has_expected_downtime = true, .expected_downtime = 300,
        .has_setup_time = true, .setup_time = 2,
        .ram = &ram, .xbzrle_cache = &x,
    };
    expect_migrate(&info, GLOBALS
                   "Migration status: active\n"
                   "total time: 2505 ms\n"
                   "expected downtime: 300 ms\n"
                   "setup: 2 ms\n"
                   "transferred ram: 102 kbytes\n"
                   "throughput: 0.33 mbps\n"
                   "remaining ram: 65060 kbytes\n"
                   "total ram: 66056 kbytes\n"
                   "duplicate: 224 pages\n"
                   "skipped: 0 pages\n"
                   "normal: 25 pages\n"
                   "normal bytes: 100 kbytes\n"
                   "dirty sync count: 1\n"
                   "page size: 4 kbytes\n"
                   "multifd bytes: 0 kbytes\n"
                   "pages-per-second: 10\n"
                   "precopy ram: 102 kbytes\n"
                   "cache size: 67108864 bytes\n"
                   "xbzrle transferred: 0 kbytes\n"
                   "xbzrle pages: 0 pages\n"
                   "xbzrle cache miss: 0 pages\n"
                   "xbzrle cache miss rate: 0.00\n"
                   "xbzrle encoding rate: 0.00\n"
                   "xbzrle overflow: 0\n");
}
END_TEST

START_TEST(test_migrate_completed)
{
    /* the real 7.2 query-migrate answer of hmp-migration.md / qmp-protocol.md 8.3 */
    MigrationStats ram = {
        .total = 34086912, .dirty_sync_count = 2, .downtime_bytes = 275645, .page_size = 4096,
        .mbps = 774.76199999999994, .transferred = 275645, .duplicate = 8273, .normal_bytes = 200704,
        .normal = 49,
    };
    MigrationInfo info = {
        .has_status = true, .status = MIGRATION_STATUS_COMPLETED,
        .has_setup_time = true, .setup_time = 1, .has_downtime = true, .downtime = 1,
        .has_total_time = true, .total_time = 5, .ram = &ram,
    };
    expect_migrate(&info, GLOBALS
                   "Migration status: completed\n"
                   "total time: 5 ms\n"
                   "downtime: 1 ms\n"
                   "setup: 1 ms\n"
                   "transferred ram: 269 kbytes\n"
                   "throughput: 774.76 mbps\n"
                   "remaining ram: 0 kbytes\n"
                   "total ram: 33288 kbytes\n"
                   "duplicate: 8273 pages\n"
                   "skipped: 0 pages\n"
                   "normal: 49 pages\n"
                   "normal bytes: 196 kbytes\n"
                   "dirty sync count: 2\n"
                   "page size: 4 kbytes\n"
                   "multifd bytes: 0 kbytes\n"
                   "pages-per-second: 0\n"
                   "downtime ram: 269 kbytes\n");
}
END_TEST

START_TEST(test_migrate_failed_and_destination)
{
    MigrationInfo failed = {
        .has_status = true, .status = MIGRATION_STATUS_FAILED,
        .error_desc = (char *)"Unable to write to command: Broken pipe",
    };
    InetSocketAddress inet = { .host = (char *)"127.0.0.1", .port = (char *)"4466" };
    SocketAddress addr = { .type = SOCKET_ADDRESS_TYPE_INET };
    SocketAddressList addrs = { .next = NULL, .value = &addr };
    MigrationInfo listening = { .socket_address = &addrs };
    MigrationInfo done = { .has_status = true, .status = MIGRATION_STATUS_COMPLETED };

    addr.u.inet = inet;
    expect_migrate(&failed, GLOBALS
                   "Migration status: failed (Unable to write to command: Broken pipe)\n"
                   "total time: 0 ms\n");
    expect_migrate(&listening, GLOBALS
                   "socket address: [\n"
                   "\ttcp:127.0.0.1:4466\n"
                   "]\n");
    expect_migrate(&done, GLOBALS
                   "Migration status: completed\n"
                   "total time: 0 ms\n");
}
END_TEST

START_TEST(test_migrate_optional_parts)
{
    MigrationStats ram = {
        .dirty_pages_rate = 77, .postcopy_requests = 3, .postcopy_bytes = 4096,
        .dirty_sync_missed_zero_copy = 2, .page_size = 4096,
    };
    MigrationStats disk = { .transferred = 2048, .remaining = 1024, .total = 3072 };
    CompressionStats comp = { .pages = 5, .busy = 1, .busy_rate = 0.5, .compressed_size = 10240,
                              .compression_rate = 2.25 };
    VfioStats vfio = { .transferred = 8192 };
    strList r2 = { .next = NULL, .value = (char *)"second reason" };
    strList r1 = { .next = &r2, .value = (char *)"first reason" };
    uint32List b2 = { .next = NULL, .value = 20 };
    uint32List b1 = { .next = &b2, .value = 10 };
    MigrationInfo info = {
        .blocked_reasons = &r1, .has_status = true, .status = MIGRATION_STATUS_POSTCOPY_ACTIVE,
        .ram = &ram, .disk = &disk, .compression = &comp, .vfio = &vfio,
        .has_cpu_throttle_percentage = true, .cpu_throttle_percentage = 30,
        .has_postcopy_blocktime = true, .postcopy_blocktime = 42, .postcopy_vcpu_blocktime = &b1,
    };
    expect_migrate(&info, GLOBALS
                   "Outgoing migration blocked:\n"
                   "  first reason\n"
                   "  second reason\n"
                   "Migration status: postcopy-active\n"
                   "total time: 0 ms\n"
                   "transferred ram: 0 kbytes\n"
                   "throughput: 0.00 mbps\n"
                   "remaining ram: 0 kbytes\n"
                   "total ram: 0 kbytes\n"
                   "duplicate: 0 pages\n"
                   "skipped: 0 pages\n"
                   "normal: 0 pages\n"
                   "normal bytes: 0 kbytes\n"
                   "dirty sync count: 0\n"
                   "page size: 4 kbytes\n"
                   "multifd bytes: 0 kbytes\n"
                   "pages-per-second: 0\n"
                   "dirty pages rate: 77 pages\n"
                   "postcopy request count: 3\n"
                   "postcopy ram: 4 kbytes\n"
                   "Zero-copy-send fallbacks happened: 2 times\n"
                   "transferred disk: 2 kbytes\n"
                   "remaining disk: 1 kbytes\n"
                   "total disk: 3 kbytes\n"
                   "compression pages: 5 pages\n"
                   "compression busy: 1\n"
                   "compression busy rate: 0.50\n"
                   "compressed size: 10 kbytes\n"
                   "compression rate: 2.25\n"
                   "cpu throttle percentage: 30\n"
                   "postcopy blocktime: 42\n"
                   "postcopy vcpu blocktime: 10,20\n"
                   "vfio device transferred: 8 kbytes\n");
}
END_TEST

START_TEST(test_socket_address_forms)
{
    SocketAddress a = { .type = SOCKET_ADDRESS_TYPE_INET };
    char *s;

    a.u.inet.host = (char *)"::1";
    a.u.inet.port = (char *)"4444";
    s = hmp_socket_address_str(&a);
    ck_assert_str_eq(s, "tcp:[::1]:4444");
    g_free(s);

    a.type = SOCKET_ADDRESS_TYPE_UNIX;
    a.u.q_unix.path = (char *)"/tmp/mig.sock";
    s = hmp_socket_address_str(&a);
    ck_assert_str_eq(s, "unix:/tmp/mig.sock");
    g_free(s);

    a.type = SOCKET_ADDRESS_TYPE_FD;
    a.u.fd.str = (char *)"mig";
    s = hmp_socket_address_str(&a);
    ck_assert_str_eq(s, "fd:mig");
    g_free(s);
}
END_TEST

START_TEST(test_capabilities_default)
{
    static const char golden[] =
        "xbzrle: off\nrdma-pin-all: off\nauto-converge: off\nzero-blocks: off\ncompress: off\n"
        "events: off\npostcopy-ram: off\nx-colo: off\nrelease-ram: off\nblock: off\nreturn-path: off\n"
        "pause-before-switchover: off\nmultifd: off\ndirty-bitmaps: off\npostcopy-blocktime: off\n"
        "late-block-activate: off\nx-ignore-shared: off\nvalidate-uuid: off\nbackground-snapshot: off\n"
        "zero-copy-send: off\npostcopy-preempt: off\nx-resumable-precopy: off\n";
    MigrationCapabilityStatus caps[MIGRATION_CAPABILITY__MAX];
    MigrationCapabilityStatusList nodes[MIGRATION_CAPABILITY__MAX];
    g_autoptr(GString) out = g_string_new(NULL);

    for (int i = 0; i < MIGRATION_CAPABILITY__MAX; i++) {
        caps[i] = (MigrationCapabilityStatus){ .capability = (MigrationCapability)i, .state = false };
        nodes[i] = (MigrationCapabilityStatusList){
            .next = i + 1 < MIGRATION_CAPABILITY__MAX ? &nodes[i + 1] : NULL, .value = &caps[i],
        };
    }
    hmp_format_migrate_capabilities(out, nodes);
    ck_assert_str_eq(out->str, golden);

    caps[MIGRATION_CAPABILITY_EVENTS].state = true;
    g_string_truncate(out, 0);
    hmp_format_migrate_capabilities(out, &nodes[MIGRATION_CAPABILITY_EVENTS]);
    ck_assert(g_str_has_prefix(out->str, "events: on\npostcopy-ram: off\n"));
}
END_TEST

static MigrationParameters default_params(void)
{
    return (MigrationParameters){
        .has_announce_initial = true, .announce_initial = 50,
        .has_announce_max = true, .announce_max = 550,
        .has_announce_rounds = true, .announce_rounds = 5,
        .has_announce_step = true, .announce_step = 100,
        .has_compress_level = true, .compress_level = 1,
        .has_compress_threads = true, .compress_threads = 8,
        .has_compress_wait_thread = true, .compress_wait_thread = true,
        .has_decompress_threads = true, .decompress_threads = 2,
        .has_throttle_trigger_threshold = true, .throttle_trigger_threshold = 50,
        .has_cpu_throttle_initial = true, .cpu_throttle_initial = 20,
        .has_cpu_throttle_increment = true, .cpu_throttle_increment = 10,
        .has_cpu_throttle_tailslow = true, .cpu_throttle_tailslow = false,
        .tls_creds = (char *)"", .tls_hostname = (char *)"", .tls_authz = (char *)"",
        .has_max_bandwidth = true, .max_bandwidth = 134217728,
        .has_downtime_limit = true, .downtime_limit = 300,
        .has_x_checkpoint_delay = true, .x_checkpoint_delay = 20000,
        .has_block_incremental = true, .block_incremental = false,
        .has_multifd_channels = true, .multifd_channels = 2,
        .has_xbzrle_cache_size = true, .xbzrle_cache_size = 67108864,
        .has_max_postcopy_bandwidth = true, .max_postcopy_bandwidth = 0,
        .has_max_cpu_throttle = true, .max_cpu_throttle = 99,
        .has_multifd_compression = true, .multifd_compression = MULTIFD_COMPRESSION_NONE,
        .has_multifd_zlib_level = true, .multifd_zlib_level = 1,
        .has_multifd_zstd_level = true, .multifd_zstd_level = 1,
    };
}

START_TEST(test_parameters_default)
{
    MigrationParameters p = default_params();
    g_autoptr(GString) out = g_string_new(NULL);

    hmp_format_migrate_parameters(out, &p);
    ck_assert_str_eq(out->str,
                     "announce-initial: 50 ms\n"
                     "announce-max: 550 ms\n"
                     "announce-rounds: 5\n"
                     "announce-step: 100 ms\n"
                     "compress-level: 1\n"
                     "compress-threads: 8\n"
                     "compress-wait-thread: on\n"
                     "decompress-threads: 2\n"
                     "throttle-trigger-threshold: 50\n"
                     "cpu-throttle-initial: 20\n"
                     "cpu-throttle-increment: 10\n"
                     "cpu-throttle-tailslow: off\n"
                     "max-cpu-throttle: 99\n"
                     "tls-creds: ''\n"
                     "tls-hostname: ''\n"
                     "max-bandwidth: 134217728 bytes/second\n"
                     "downtime-limit: 300 ms\n"
                     "x-checkpoint-delay: 20000 ms\n"
                     "block-incremental: off\n"
                     "multifd-channels: 2\n"
                     "multifd-compression: none\n"
                     "xbzrle-cache-size: 67108864 bytes\n"
                     "max-postcopy-bandwidth: 0\n"
                     "tls-authz: ''\n");
}
END_TEST

START_TEST(test_parameters_changed_and_mapping)
{
    MigrationParameters p = default_params();
    BitmapMigrationBitmapAlias bm = { .name = (char *)"bitmap0", .alias = (char *)"b0" };
    BitmapMigrationBitmapAliasList bml = { .next = NULL, .value = &bm };
    BitmapMigrationNodeAlias node = { .node_name = (char *)"disk0", .alias = (char *)"d0", .bitmaps = &bml };
    BitmapMigrationNodeAliasList nl = { .next = NULL, .value = &node };
    g_autoptr(GString) out = g_string_new(NULL);

    p.max_bandwidth = 104857600;
    p.tls_creds = (char *)"foo";
    p.block_bitmap_mapping = &nl;
    hmp_format_migrate_parameters(out, &p);
    ck_assert_ptr_nonnull(strstr(out->str, "\nmax-bandwidth: 104857600 bytes/second\n"));
    ck_assert_ptr_nonnull(strstr(out->str, "\ntls-creds: 'foo'\n"));
    ck_assert(g_str_has_suffix(out->str, "tls-authz: ''\n"
                                         "block-bitmap-mapping:\n"
                                         "  'disk0' -> 'd0'\n"
                                         "    'bitmap0' -> 'b0'\n"));
}
END_TEST

START_TEST(test_status_lines)
{
    struct { StatusInfo info; const char *text; } cases[] = {
        { { .running = true, .status = RUN_STATE_RUNNING }, "VM status: running\n" },
        { { .running = false, .status = RUN_STATE_PAUSED }, "VM status: paused\n" },
        { { .running = false, .status = RUN_STATE_PRELAUNCH }, "VM status: paused (prelaunch)\n" },
        { { .running = false, .status = RUN_STATE_INMIGRATE }, "VM status: paused (inmigrate)\n" },
        { { .running = false, .status = RUN_STATE_POSTMIGRATE }, "VM status: paused (postmigrate)\n" },
        { { .running = true, .singlestep = true, .status = RUN_STATE_RUNNING },
          "VM status: running (single step mode)\n" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(GString) out = g_string_new(NULL);
        hmp_format_status(out, &cases[i].info);
        ck_assert_str_eq(out->str, cases[i].text);
    }
}
END_TEST

START_TEST(test_version_and_kvm)
{
    VersionTriple t = { .major = 7, .minor = 2, .micro = 0 };
    VersionInfo v = { .qemu = &t, .package = (char *)"" };
    KvmInfo k = { .enabled = true, .present = true };
    g_autoptr(GString) out = g_string_new(NULL);

    hmp_format_version(out, &v);
    ck_assert_str_eq(out->str, "7.2.0\n");
    g_string_truncate(out, 0);
    v.package = (char *)" (migvm)";
    hmp_format_version(out, &v);
    ck_assert_str_eq(out->str, "7.2.0 (migvm)\n");

    g_string_truncate(out, 0);
    hmp_format_kvm(out, &k);
    k.enabled = false;
    hmp_format_kvm(out, &k);
    k.present = false;
    hmp_format_kvm(out, &k);
    ck_assert_str_eq(out->str, "kvm support: enabled\nkvm support: disabled\nkvm support: not compiled\n");
}
END_TEST

START_TEST(test_progress_lines)
{
    MigrationStats ram = { .transferred = 12345 * 1024, .total = 1048576 * 1024, .mbps = 850.123,
                           .remaining = 4096 * 1024, .dirty_sync_count = 3 };
    MigrationInfo info = { .has_status = true, .status = MIGRATION_STATUS_ACTIVE, .ram = &ram,
                           .has_expected_downtime = true, .expected_downtime = 42 };
    MigrationInfo failed = { .has_status = true, .status = MIGRATION_STATUS_FAILED,
                             .error_desc = (char *)"Connection refused" };
    MigrationInfo done = { .has_status = true, .status = MIGRATION_STATUS_COMPLETED,
                           .has_total_time = true, .total_time = 812, .has_downtime = true, .downtime = 25 };
    g_autoptr(GString) out = g_string_new(NULL);

    hmp_format_migrate_progress(out, &info);
    ck_assert_str_eq(out->str, "migration: active  99%, 12345 kbytes sent, 850.12 mbps, remaining 4096 kbytes, "
                               "expected downtime 42 ms, pass 3");
    g_string_truncate(out, 0);
    ram.remaining = 786432 * 1024;
    info.has_expected_downtime = false;
    hmp_format_migrate_progress(out, &info);
    ck_assert_str_eq(out->str, "migration: active  25%, 12345 kbytes sent, 850.12 mbps, remaining 786432 kbytes, "
                               "pass 3");
    g_string_truncate(out, 0);
    hmp_format_migrate_result(out, &failed);
    hmp_format_migrate_result(out, &done);
    ck_assert_str_eq(out->str, "migration: failed (Connection refused)\n"
                               "migration: completed, total time 812 ms, downtime 25 ms\n");
}
END_TEST

static Suite *hmp_print_suite(void)
{
    Suite *s = suite_create("hmp-print");
    TCase *tc = tcase_create("golden");

    tcase_add_test(tc, test_migrate_fresh);
    tcase_add_test(tc, test_migrate_active_xbzrle);
    tcase_add_test(tc, test_migrate_completed);
    tcase_add_test(tc, test_migrate_failed_and_destination);
    tcase_add_test(tc, test_migrate_optional_parts);
    tcase_add_test(tc, test_socket_address_forms);
    tcase_add_test(tc, test_capabilities_default);
    tcase_add_test(tc, test_parameters_default);
    tcase_add_test(tc, test_parameters_changed_and_mapping);
    tcase_add_test(tc, test_status_lines);
    tcase_add_test(tc, test_version_and_kvm);
    tcase_add_test(tc, test_progress_lines);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(hmp_print_suite());
}
