/*
 * migrate-set-parameters' checks (migration/options.c): each parameter at
 * and beyond its limits with QEMU 7.2's error text, the first failing check
 * wins, a refused call changes nothing, an accepted one shows in
 * query-migrate-parameters, and max-cpu-throttle is checked against the
 * cpu-throttle-initial in effect after the call (as QEMU checks the merged
 * set).
 */
#include <check.h>
#include <string.h>
#include <glib.h>
#include <json-c/json.h>
#include "options.h"
#include "postcopy-ram.h"
#include "migration.h"
#include "qapi-commands.h"
#include "qapi-json.h"
#include "unit-test.h"

/* options.c tells the migration about changes; no migration runs here. */
static int changes;

void migration_parameters_changed(void)
{
    changes++;
}

bool migration_is_running(void)
{
    return false;
}

/* Capabilities are not what this test checks: the host always can. */
bool postcopy_ram_supported(Error **errp)
{
    return true;
}

#define SET(field, value) { .has_##field = true, .field = (value) }

typedef struct Case {
    const char *member;         /* its name in query-migrate-parameters */
    MigrateSetParameters p;
    uint64_t value;
    const char *error;          /* NULL: accepted */
} Case;

#define OK(member, field, v) { member, SET(field, v), v, NULL }
#define BAD(member, field, v, what) { member, SET(field, v), v, "Parameter '" #field "' expects " what }

static const Case cases[] = {
    OK("compress-level", compress_level, 0),
    OK("compress-level", compress_level, 9),
    BAD("compress-level", compress_level, 10, "a value between 0 and 9"),
    BAD("compress-level", compress_level, 255, "a value between 0 and 9"),
    OK("compress-threads", compress_threads, 1),
    OK("compress-threads", compress_threads, 255),
    BAD("compress-threads", compress_threads, 0, "a value between 1 and 255"),
    OK("decompress-threads", decompress_threads, 1),
    OK("decompress-threads", decompress_threads, 255),
    BAD("decompress-threads", decompress_threads, 0, "a value between 1 and 255"),
    OK("throttle-trigger-threshold", throttle_trigger_threshold, 1),
    OK("throttle-trigger-threshold", throttle_trigger_threshold, 100),
    BAD("throttle-trigger-threshold", throttle_trigger_threshold, 0, "an integer in the range of 1 to 100"),
    BAD("throttle-trigger-threshold", throttle_trigger_threshold, 101, "an integer in the range of 1 to 100"),
    OK("cpu-throttle-initial", cpu_throttle_initial, 1),
    OK("cpu-throttle-initial", cpu_throttle_initial, 99),
    BAD("cpu-throttle-initial", cpu_throttle_initial, 0, "an integer in the range of 1 to 99"),
    BAD("cpu-throttle-initial", cpu_throttle_initial, 100, "an integer in the range of 1 to 99"),
    OK("cpu-throttle-increment", cpu_throttle_increment, 1),
    OK("cpu-throttle-increment", cpu_throttle_increment, 99),
    BAD("cpu-throttle-increment", cpu_throttle_increment, 0, "an integer in the range of 1 to 99"),
    BAD("cpu-throttle-increment", cpu_throttle_increment, 100, "an integer in the range of 1 to 99"),
    OK("max-bandwidth", max_bandwidth, 0),
    OK("max-bandwidth", max_bandwidth, 1),
    OK("max-bandwidth", max_bandwidth, INT64_MAX),
    OK("downtime-limit", downtime_limit, 0),
    OK("downtime-limit", downtime_limit, 2000000),
    BAD("downtime-limit", downtime_limit, 2000001, "an integer in the range of 0 to (2000 * 1000) ms"),
    BAD("downtime-limit", downtime_limit, INT64_MAX, "an integer in the range of 0 to (2000 * 1000) ms"),
    OK("x-checkpoint-delay", x_checkpoint_delay, 0),
    OK("x-checkpoint-delay", x_checkpoint_delay, UINT32_MAX),
    OK("multifd-channels", multifd_channels, 1),
    OK("multifd-channels", multifd_channels, 255),
    BAD("multifd-channels", multifd_channels, 0, "a value between 1 and 255"),
    OK("multifd-zlib-level", multifd_zlib_level, 0),
    OK("multifd-zlib-level", multifd_zlib_level, 9),
    BAD("multifd-zlib-level", multifd_zlib_level, 10, "a value between 0 and 9"),
    OK("multifd-zstd-level", multifd_zstd_level, 0),
    OK("multifd-zstd-level", multifd_zstd_level, 20),
    BAD("multifd-zstd-level", multifd_zstd_level, 21, "a value between 0 and 20"),
    OK("xbzrle-cache-size", xbzrle_cache_size, 4096),
    OK("xbzrle-cache-size", xbzrle_cache_size, 1ULL << 62),
    BAD("xbzrle-cache-size", xbzrle_cache_size, 0, "a power of two no less than the target page size"),
    BAD("xbzrle-cache-size", xbzrle_cache_size, 2048, "a power of two no less than the target page size"),
    BAD("xbzrle-cache-size", xbzrle_cache_size, 4095, "a power of two no less than the target page size"),
    BAD("xbzrle-cache-size", xbzrle_cache_size, 12288, "a power of two no less than the target page size"),
    OK("max-postcopy-bandwidth", max_postcopy_bandwidth, INT64_MAX),
    /* cpu-throttle-initial is 20 by default. */
    OK("max-cpu-throttle", max_cpu_throttle, 20),
    OK("max-cpu-throttle", max_cpu_throttle, 99),
    BAD("max-cpu-throttle", max_cpu_throttle, 19, "an integer in the range of cpu_throttle_initial to 99"),
    BAD("max-cpu-throttle", max_cpu_throttle, 100, "an integer in the range of cpu_throttle_initial to 99"),
    OK("announce-initial", announce_initial, 0),
    OK("announce-initial", announce_initial, 100000),
    BAD("announce-initial", announce_initial, 100001, "a value between 0 and 100000"),
    OK("announce-max", announce_max, 0),
    OK("announce-max", announce_max, 100000),
    BAD("announce-max", announce_max, 100001, "a value between 0 and 100000"),
    OK("announce-rounds", announce_rounds, 0),
    OK("announce-rounds", announce_rounds, 1000),
    BAD("announce-rounds", announce_rounds, 1001, "a value between 0 and 1000"),
    OK("announce-step", announce_step, 1),
    OK("announce-step", announce_step, 10000),
    /* QEMU 7.2 says 0 though it refuses 0. */
    BAD("announce-step", announce_step, 0, "a value between 0 and 10000"),
    BAD("announce-step", announce_step, 10001, "a value between 0 and 10000"),
};

static char *params_json(void)
{
    MigrationParameters *p = qmp_query_migrate_parameters(NULL);
    ck_assert(p);
    json_object *j = qapi_to_json_MigrationParameters(p);
    char *s = g_strdup(json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
    json_object_put(j);
    qapi_free_MigrationParameters(p);
    return s;
}

static uint64_t param_value(const char *member)
{
    MigrationParameters *p = qmp_query_migrate_parameters(NULL);
    json_object *j = qapi_to_json_MigrationParameters(p);
    json_object *v = NULL;
    ck_assert_msg(json_object_object_get_ex(j, member, &v), "query-migrate-parameters has no %s", member);
    uint64_t value = json_object_get_uint64(v);
    json_object_put(j);
    qapi_free_MigrationParameters(p);
    return value;
}

/* Set p: it must be accepted (want == NULL, and then nothing else changes
 * but what p sets) or refused with exactly want and change nothing. */
static void set_params(const char *label, const MigrateSetParameters *p, const char *want)
{
    char *before = params_json();
    int changes_before = changes;
    Error *err = NULL;
    bool ok = qmp_migrate_set_parameters(p, &err);
    char *after = params_json();
    if (want) {
        ck_assert_msg(!ok, "%s: accepted", label);
        ck_assert_msg(err, "%s: refused without an error", label);
        ck_assert_msg(!strcmp(error_get_pretty(err), want), "%s: got \"%s\", expected \"%s\"", label,
                      error_get_pretty(err), want);
        ck_assert_msg(!strcmp(before, after), "%s: a refused call changed %s into %s", label, before, after);
        ck_assert_int_eq(changes, changes_before);
        error_free(err);
    } else {
        ck_assert_msg(ok, "%s: %s", label, err ? error_get_pretty(err) : "(no error set)");
        ck_assert_msg(!err, "%s: error set on success", label);
        ck_assert_int_eq(changes, changes_before + 1);
    }
    g_free(before);
    g_free(after);
}

START_TEST(test_each_limit)
{
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        const Case *c = &cases[i];
        char *label = g_strdup_printf("%s %" G_GUINT64_FORMAT, c->member, c->value);
        migrate_options_reset();
        set_params(label, &c->p, c->error);
        if (!c->error) {
            ck_assert_msg(param_value(c->member) == c->value, "%s: query-migrate-parameters shows %" G_GUINT64_FORMAT,
                          label, param_value(c->member));
        }
        g_free(label);
    }
}
END_TEST

START_TEST(test_first_failure_wins)
{
    /* QEMU 7.2's order: compress-level before compress-threads, before
     * downtime-limit, before announce-step. */
    migrate_options_reset();
    MigrateSetParameters p = {
        .has_compress_level = true, .compress_level = 10,
        .has_compress_threads = true, .compress_threads = 0,
        .has_downtime_limit = true, .downtime_limit = 2000001,
        .has_announce_step = true, .announce_step = 0,
    };
    set_params("four bad values", &p, "Parameter 'compress_level' expects a value between 0 and 9");
    p.compress_level = 9;
    set_params("three bad values", &p, "Parameter 'compress_threads' expects a value between 1 and 255");
    p.compress_threads = 1;
    set_params("two bad values", &p,
               "Parameter 'downtime_limit' expects an integer in the range of 0 to (2000 * 1000) ms");
    p.downtime_limit = 1;
    set_params("one bad value", &p, "Parameter 'announce_step' expects a value between 0 and 10000");
    /* One good value does not get through with a bad one. */
    MigrateSetParameters q = { .has_max_bandwidth = true, .max_bandwidth = 5,
                               .has_multifd_channels = true, .multifd_channels = 0 };
    set_params("good max-bandwidth, bad multifd-channels", &q,
               "Parameter 'multifd_channels' expects a value between 1 and 255");
    ck_assert_uint_eq(param_value("max-bandwidth"), 128 << 20);
}
END_TEST

START_TEST(test_throttle_pair)
{
    migrate_options_reset();
    /* Both in one call: checked against the new initial value. */
    MigrateSetParameters both = { .has_cpu_throttle_initial = true, .cpu_throttle_initial = 60,
                                  .has_max_cpu_throttle = true, .max_cpu_throttle = 50 };
    set_params("initial 60, max 50", &both,
               "Parameter 'max_cpu_throttle' expects an integer in the range of cpu_throttle_initial to 99");
    both.max_cpu_throttle = 60;
    set_params("initial 60, max 60", &both, NULL);
    ck_assert_uint_eq(param_value("max-cpu-throttle"), 60);

    /* One at a time: the other one's value in effect counts, either way round. */
    migrate_options_reset();
    MigrateSetParameters max = SET(max_cpu_throttle, 50);
    set_params("max 50 (initial 20)", &max, NULL);
    MigrateSetParameters initial = SET(cpu_throttle_initial, 60);
    set_params("initial 60 (max 50)", &initial,
               "Parameter 'max_cpu_throttle' expects an integer in the range of cpu_throttle_initial to 99");
    ck_assert_uint_eq(param_value("cpu-throttle-initial"), 20);
    initial.cpu_throttle_initial = 50;
    set_params("initial 50 (max 50)", &initial, NULL);
    max.max_cpu_throttle = 49;
    set_params("max 49 (initial 50)", &max,
               "Parameter 'max_cpu_throttle' expects an integer in the range of cpu_throttle_initial to 99");
}
END_TEST

START_TEST(test_tls)
{
    migrate_options_reset();
    StrOrNull creds = { .type = QTYPE_QSTRING, .u.s = (char *)"tls0" };
    MigrateSetParameters p = { .tls_creds = &creds };
    /* Any id, as QEMU 7.2: the object is looked up when a migration connects. */
    set_params("tls-creds tls0", &p, NULL);
    MigrationParameters *set = qmp_query_migrate_parameters(NULL);
    ck_assert_str_eq(set->tls_creds, "tls0");
    qapi_free_MigrationParameters(set);
    /* No credentials is what QEMU shows by default: accepted. */
    creds.u.s = (char *)"";
    set_params("tls-creds ''", &p, NULL);
    StrOrNull null = { .type = QTYPE_QNULL };
    p.tls_creds = &null;
    set_params("tls-creds null", &p, NULL);
    StrOrNull host = { .type = QTYPE_QSTRING, .u.s = (char *)"example.org" };
    MigrateSetParameters h = { .tls_hostname = &host };
    set_params("tls-hostname", &h, NULL);
    MigrationParameters *q = qmp_query_migrate_parameters(NULL);
    ck_assert_str_eq(q->tls_creds, "");
    ck_assert_str_eq(q->tls_hostname, "example.org");
    qapi_free_MigrationParameters(q);
}
END_TEST

START_TEST(test_nothing_set)
{
    migrate_options_reset();
    char *before = params_json();
    MigrateSetParameters none = { 0 };
    set_params("no member", &none, NULL);
    char *after = params_json();
    ck_assert_str_eq(before, after);
    g_free(before);
    g_free(after);
    /* Getters used by the migration thread follow the parameters. */
    MigrateSetParameters p = { .has_max_bandwidth = true, .max_bandwidth = 12345,
                               .has_downtime_limit = true, .downtime_limit = 777 };
    set_params("max-bandwidth and downtime-limit", &p, NULL);
    ck_assert_uint_eq(migrate_max_bandwidth(), 12345);
    ck_assert_uint_eq(migrate_downtime_limit_ms(), 777);
}
END_TEST

static Suite *params_suite(void)
{
    Suite *s = suite_create("migration-params");
    TCase *tc = tcase_create("check");
    tcase_add_test(tc, test_each_limit);
    tcase_add_test(tc, test_first_failure_wins);
    tcase_add_test(tc, test_throttle_pair);
    tcase_add_test(tc, test_tls);
    tcase_add_test(tc, test_nothing_set);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(params_suite());
}
