/*
 * Unit tests for the HMP dispatcher and commands (monitor/hmp.c,
 * hmp-commands.c, hmp-cmds.c, hmp-cmds-migration.c): command lines go
 * through hmp_handle_command on a capture monitor of the real monitor core
 * (monitor.c); the console and every qmp_* handler are stubbed below and
 * record what HMP asked for.
 */
#include <inttypes.h>
#include <stdio.h>
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chardev-info.h"
#include "dirtylimit.h"
#include "../../monitor/hmp-int.h"
#include "qapi-commands.h"
#include "accel.h"
#include "cpus.h"
#include "machine.h"
#include "user-object.h"
#include "vm.h"
#include "unit-test.h"

/* ---- console stubs ---- */

static bool can_suspend;
static int suspended, resumed;
static guint wait_source;

bool hmp_monitor_suspend(Monitor *mon)
{
    if (can_suspend) {
        suspended++;
    }
    return can_suspend;
}

void hmp_monitor_resume(Monitor *mon)
{
    resumed++;
}

void hmp_monitor_set_source(Monitor *mon, guint source_id)
{
    wait_source = source_id;
}

bool hmp_monitor_alive(Monitor *mon)
{
    return true;
}

static bool interactive;

bool hmp_monitor_is_interactive(Monitor *mon)
{
    return interactive;
}

/* ---- system and accelerator stubs ---- */

/* qemu-io drives the block layer (tested end to end by
 * tests/functional/test-dirty-bitmaps.py); here it only echoes. */
void hmp_qemu_io(Monitor *mon, const HmpArgs *args)
{
    monitor_printf(mon, "qemu-io %s %s\n", hmp_args_str(args, "device"), hmp_args_str(args, "command"));
}

/* info registers reads vCPU registers through the accelerator (tested end
 * to end by tests/functional/test-hmp-registers.py); here: no accelerator. */
static int stub_cpus = 2;

int cpus_count(void) { return stub_cpus; }
const AccelOps *accel_current(void) { return NULL; }
bool cpus_are_paused(void) { return true; }
void cpus_pause_all(void) { }
void cpus_resume_all(void) { }
bool runstate_is_running(void) { return false; }
bool main_loop_exit_requested(void) { return false; }

bool accel_dump_registers(int cpu, GString *out, Error **errp)
{
    error_setg(errp, "no accelerator in this test");
    return false;
}

/* vCPU n runs on thread 1000 + n. */
CpuInfoFastList *qmp_query_cpus_fast(Error **errp)
{
    CpuInfoFastList *head = NULL, **tail = &head;

    for (int i = 0; i < stub_cpus; i++) {
        CpuInfoFast *info = g_new0(CpuInfoFast, 1);
        info->cpu_index = i;
        info->qom_path = g_strdup("/x");
        info->thread_id = 1000 + i;
        *tail = g_new0(CpuInfoFastList, 1);
        (*tail)->value = info;
        tail = &(*tail)->next;
    }
    return head;
}

/* ---- qmp_* stubs ---- */

static char *stub_error;        /* next handler fails with this text */
static GString *calls;          /* "name(args) " for each handler call */
static RunState stub_runstate = RUN_STATE_PRELAUNCH;
static MigrationStatus poll_statuses[4];
static int poll_count, poll_len;

static bool stub_call(Error **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static bool stub_call(Error **errp, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_string_append_vprintf(calls, fmt, ap);
    va_end(ap);
    g_string_append_c(calls, ' ');
    if (stub_error) {
        error_setg(errp, "%s", stub_error);
        g_clear_pointer(&stub_error, g_free);
        return false;
    }
    return true;
}

bool qmp_stop(Error **errp) { return stub_call(errp, "stop"); }
bool qmp_cont(const q_obj_cont_arg *arg, Error **errp)
{
    return stub_call(errp, arg->has_x_force_after_migration && arg->x_force_after_migration ? "cont-force" : "cont");
}
bool qmp_system_reset(Error **errp) { return stub_call(errp, "system_reset"); }
bool qmp_quit(Error **errp) { return stub_call(errp, "quit"); }
bool qmp_migrate_cancel(Error **errp) { return stub_call(errp, "migrate_cancel"); }

bool qmp_getfd(const q_obj_getfd_arg *arg, Error **errp)
{
    return stub_call(errp, "getfd(%s)", arg->fdname);
}

bool qmp_migrate_pause(Error **errp)
{
    return stub_call(errp, "migrate_pause");
}

bool qmp_migrate_recover(const q_obj_migrate_recover_arg *arg, Error **errp)
{
    return stub_call(errp, "migrate_recover(%s)", arg->uri);
}

bool user_object_add_text(const char *text, Error **errp)
{
    return stub_call(errp, "object_add(%s)", text);
}

bool qmp_object_del(const q_obj_object_del_arg *arg, Error **errp)
{
    return stub_call(errp, "object_del(%s)", arg->id);
}

bool qmp_closefd(const q_obj_closefd_arg *arg, Error **errp)
{
    return stub_call(errp, "closefd(%s)", arg->fdname);
}

bool qmp_pmemsave(const q_obj_pmemsave_arg *arg, Error **errp)
{
    return stub_call(errp, "pmemsave(%" PRId64 ",%" PRId64 ",%s)", arg->val, arg->size, arg->filename);
}

bool qmp_memsave(const q_obj_memsave_arg *arg, Error **errp)
{
    return stub_call(errp, "memsave(%" PRId64 ",%" PRId64 ",%s,cpu=%" PRId64 ")", arg->val, arg->size,
                     arg->filename, arg->cpu_index);
}

bool qmp_migrate(const q_obj_migrate_arg *arg, Error **errp)
{
    return stub_call(errp, "migrate(%s,blk=%d,inc=%d,resume=%d)", arg->uri, arg->has_blk && arg->blk,
                     arg->has_inc && arg->inc, arg->has_resume && arg->resume);
}

bool qmp_migrate_incoming(const q_obj_migrate_incoming_arg *arg, Error **errp)
{
    return stub_call(errp, "migrate_incoming(%s)", arg->uri);
}

bool qmp_migrate_continue(const q_obj_migrate_continue_arg *arg, Error **errp)
{
    return stub_call(errp, "migrate_continue(%s)", MigrationStatus_str(arg->state));
}

bool qmp_migrate_start_postcopy(Error **errp)
{
    return stub_call(errp, "migrate_start_postcopy");
}

bool qmp_migrate_set_capabilities(const q_obj_migrate_set_capabilities_arg *arg, Error **errp)
{
    const MigrationCapabilityStatus *c = arg->capabilities->value;
    ck_assert_ptr_null(arg->capabilities->next);
    return stub_call(errp, "set_capability(%s,%d)", MigrationCapability_str(c->capability), c->state);
}

bool qmp_migrate_set_parameters(const MigrateSetParameters *p, Error **errp)
{
    if (p->has_max_bandwidth) {
        return stub_call(errp, "set_parameters(max_bandwidth=%" PRIu64 ")", p->max_bandwidth);
    }
    if (p->has_downtime_limit) {
        return stub_call(errp, "set_parameters(downtime_limit=%" PRIu64 ")", p->downtime_limit);
    }
    if (p->has_xbzrle_cache_size) {
        return stub_call(errp, "set_parameters(xbzrle_cache_size=%" PRIu64 ")", p->xbzrle_cache_size);
    }
    if (p->has_multifd_channels) {
        return stub_call(errp, "set_parameters(multifd_channels=%u)", p->multifd_channels);
    }
    if (p->has_x_checkpoint_delay) {
        return stub_call(errp, "set_parameters(x_checkpoint_delay=%u)", p->x_checkpoint_delay);
    }
    if (p->has_cpu_throttle_tailslow) {
        return stub_call(errp, "set_parameters(cpu_throttle_tailslow=%d)", p->cpu_throttle_tailslow);
    }
    if (p->has_multifd_compression) {
        return stub_call(errp, "set_parameters(multifd_compression=%s)",
                         MultiFDCompression_str(p->multifd_compression));
    }
    if (p->tls_creds) {
        ck_assert_int_eq(p->tls_creds->type, QTYPE_QSTRING);
        return stub_call(errp, "set_parameters(tls_creds='%s')", p->tls_creds->u.s);
    }
    return stub_call(errp, "set_parameters(?)");
}

StatusInfo *qmp_query_status(Error **errp)
{
    StatusInfo *info = g_new0(StatusInfo, 1);
    info->status = stub_runstate;
    info->running = stub_runstate == RUN_STATE_RUNNING;
    return info;
}

VersionInfo *qmp_query_version(Error **errp)
{
    VersionInfo *info = g_new0(VersionInfo, 1);
    info->qemu = g_new0(VersionTriple, 1);
    info->qemu->major = 7;
    info->qemu->minor = 2;
    info->package = g_strdup("");
    return info;
}

KvmInfo *qmp_query_kvm(Error **errp)
{
    KvmInfo *info = g_new0(KvmInfo, 1);
    info->present = true;
    return info;
}

/* Two drives: one a device uses after a stop on ENOSPC, one read-only and
 * unattached with cache=none. */
BlockInfoList *qmp_query_block(Error **errp)
{
    BlockInfoList *head = NULL, **tail = &head;

    for (int i = 0; i < 2; i++) {
        BlockInfo *info = g_new0(BlockInfo, 1);
        info->device = g_strdup(i ? "d1" : "virtio0");
        info->qdev = i ? NULL : g_strdup("/machine/peripheral/vd");
        info->type = g_strdup("unknown");
        info->removable = i == 1;
        info->has_io_status = i == 0;
        info->io_status = BLOCK_DEVICE_IO_STATUS_NOSPACE;
        info->inserted = g_new0(BlockDeviceInfo, 1);
        info->inserted->file = g_strdup(i ? "b.img" : "a.img");
        info->inserted->node_name = g_strdup(i ? "#block314" : "#block157");
        info->inserted->ro = i == 1;
        info->inserted->drv = g_strdup("raw");
        info->inserted->cache = g_new0(BlockdevCacheInfo, 1);
        info->inserted->cache->writeback = true;
        info->inserted->cache->direct = i == 1;
        info->inserted->image = g_new0(ImageInfo, 1);
        info->inserted->image->filename = g_strdup(info->inserted->file);
        info->inserted->image->format = g_strdup("raw");
        info->inserted->image->has_actual_size = true;
        info->inserted->image->actual_size = i ? 12288 : 0;
        info->inserted->image->virtual_size = i ? 1000448 : 4294967296;
        *tail = g_new0(BlockInfoList, 1);
        (*tail)->value = info;
        tail = &(*tail)->next;
    }
    return head;
}

BlockStatsList *qmp_query_blockstats(const q_obj_query_blockstats_arg *arg, Error **errp)
{
    BlockStatsList *l = g_new0(BlockStatsList, 1);

    l->value = g_new0(BlockStats, 1);
    l->value->device = g_strdup("d0");
    l->value->stats = g_new0(BlockDeviceStats, 1);
    l->value->stats->rd_bytes = 4096;
    l->value->stats->wr_operations = 3;
    l->value->stats->flush_total_time_ns = 123456;
    return l;
}

NameInfo *qmp_query_name(Error **errp)
{
    NameInfo *info = g_new0(NameInfo, 1);
    info->name = g_strdup("vm1");
    return info;
}

MigrationInfo *qmp_query_migrate(Error **errp)
{
    MigrationInfo *info = g_new0(MigrationInfo, 1);

    if (poll_len) {
        info->has_status = true;
        info->status = poll_statuses[MIN(poll_count, poll_len - 1)];
        poll_count++;
        if (info->status == MIGRATION_STATUS_FAILED) {
            info->error_desc = g_strdup("Connection refused");
        }
    }
    return info;
}

MigrationCapabilityStatusList *qmp_query_migrate_capabilities(Error **errp)
{
    MigrationCapabilityStatusList *l = g_new0(MigrationCapabilityStatusList, 1);
    l->value = g_new0(MigrationCapabilityStatus, 1);
    l->value->capability = MIGRATION_CAPABILITY_XBZRLE;
    return l;
}

MigrationCheckResult *qmp_x_migrate_check(const q_obj_x_migrate_check_arg *arg, Error **errp)
{
    error_setg(errp, "no destination at %s", arg->uri);
    return NULL;
}

bool qmp_calc_dirty_rate(const q_obj_calc_dirty_rate_arg *arg, Error **errp)
{
    char pages[24] = "-";

    if (arg->has_sample_pages) {
        snprintf(pages, sizeof(pages), "%" PRId64, arg->sample_pages);
    }
    return stub_call(errp, "calc-dirty-rate(%" PRId64 ",%s,%s)", arg->calc_time, pages,
                     DirtyRateMeasureMode_str(arg->mode));
}

DirtyRateInfo *qmp_query_dirty_rate(Error **errp)
{
    DirtyRateInfo *info = g_new0(DirtyRateInfo, 1);
    info->status = DIRTY_RATE_STATUS_MEASURED;
    info->start_time = 16017;
    info->calc_time = 2;
    info->sample_pages = 512;
    info->has_dirty_rate = true;
    info->dirty_rate = 243;
    return info;
}

static bool limits_on;

bool qmp_set_vcpu_dirty_limit(const q_obj_set_vcpu_dirty_limit_arg *arg, Error **errp)
{
    char cpu[24] = "all";

    if (arg->has_cpu_index) {
        snprintf(cpu, sizeof(cpu), "%" PRId64, arg->cpu_index);
    }
    limits_on = true;
    return stub_call(errp, "set-vcpu-dirty-limit(%s,%" PRIu64 ")", cpu, arg->dirty_rate);
}

bool qmp_cancel_vcpu_dirty_limit(const q_obj_cancel_vcpu_dirty_limit_arg *arg, Error **errp)
{
    char cpu[24] = "all";

    if (arg->has_cpu_index) {
        snprintf(cpu, sizeof(cpu), "%" PRId64, arg->cpu_index);
    }
    limits_on = false;
    return stub_call(errp, "cancel-vcpu-dirty-limit(%s)", cpu);
}

bool dirty_limit_in_service(void)
{
    return limits_on;
}

DirtyLimitInfoList *qmp_query_vcpu_dirty_limit(Error **errp)
{
    DirtyLimitInfoList *head = NULL;

    for (int i = 1; i >= 0; i--) {
        DirtyLimitInfoList *l = g_new0(DirtyLimitInfoList, 1);
        l->value = g_new0(DirtyLimitInfo, 1);
        l->value->cpu_index = i;
        l->value->limit_rate = i ? UINT64_MAX : 50;
        l->value->current_rate = 12 * i;
        l->next = head;
        head = l;
    }
    return head;
}

/* The flight recorder is empty here (its text is tested with real migrations). */
MigrationRecordList *qmp_x_query_migration_history(Error **errp)
{
    return NULL;
}

MigrationParameters *qmp_query_migrate_parameters(Error **errp)
{
    MigrationParameters *p = g_new0(MigrationParameters, 1);
    p->has_downtime_limit = true;
    p->downtime_limit = 300;
    p->tls_creds = g_strdup("");
    return p;
}

/* ---- helpers ---- */

static Monitor *mon;

static void setup(void)
{
    calls = g_string_new(NULL);
    mon = monitor_new_capture();
    monitor_set_cur(mon);
    can_suspend = false;
    suspended = resumed = 0;
    poll_count = poll_len = 0;
    stub_runstate = RUN_STATE_PRELAUNCH;
    stub_cpus = 2;
}

static void teardown(void)
{
    monitor_set_cur(NULL);
    monitor_free(mon);
    g_string_free(calls, TRUE);
    g_clear_pointer(&stub_error, g_free);
}

/* Run `line` and compare the output (with "\n" standing for "\r\n"). */
static void expect(const char *line, const char *out)
{
    g_autofree char *got = NULL;
    g_autofree char *want = NULL;
    g_auto(GStrv) parts = g_strsplit(out, "\n", -1);

    want = g_strjoinv("\r\n", parts);
    hmp_handle_command(mon, line);
    got = monitor_capture_take(mon);
    ck_assert_str_eq(got, want);
}

static void expect_calls(const char *want)
{
    ck_assert_str_eq(calls->str, want);
    g_string_truncate(calls, 0);
}

/* ---- tests ---- */

START_TEST(test_unknown_and_empty)
{
    expect("", "");
    expect("   ", "");
    expect("nosuchcmd", "unknown command: 'nosuchcmd'\n");
    expect("nosuch arg", "unknown command: 'nosuch'\n");
    expect("info nosuch", "unknown command: 'info nosuch'\n");
    expect("info  nosuch x", "unknown command: 'info  nosuch'\n");
    expect_calls("");
}
END_TEST

START_TEST(test_parse_errors_try_help)
{
    expect("stop x", "stop|s: extraneous characters at the end of line\n"
                     "Try \"help stop\" for more information\n");
    expect("s x", "stop|s: extraneous characters at the end of line\nTry \"help s\" for more information\n");
    expect("  stop x", "stop|s: extraneous characters at the end of line\n"
                       "Try \"help   stop\" for more information\n");
    expect("info status x", "status: extraneous characters at the end of line\n"
                            "Try \"help info status\" for more information\n");
    expect("info  status x", "status: extraneous characters at the end of line\n"
                             "Try \"help info  status\" for more information\n");
    expect("getfd", "getfd: string expected\nTry \"help getfd\" for more information\n");
    expect("migrate", "migrate: string expected\nTry \"help migrate\" for more information\n");
    expect("migrate -x foo", "migrate: unsupported option -x\nTry \"help migrate\" for more information\n");
    expect("migrate_set_capability xbzrle maybe",
           "Expected 'on' or 'off'\nTry \"help migrate_set_capability\" for more information\n");
    expect("getfd \"a b", "unterminated string\ngetfd: string expected\nTry \"help getfd\" for more information\n");
    expect_calls("");
}
END_TEST

START_TEST(test_help)
{
    g_autofree char *all = NULL;
    g_auto(GStrv) lines = NULL;

    expect("help stop", "stop|s  -- pause the guest\n");
    expect("? cont", "cont|c [-f] -- let the guest run again (-f: even after a completed outgoing migration)\n");
    expect("help cont x", "cont|c [-f] -- let the guest run again (-f: even after a completed outgoing migration)\n");
    expect("help info migrate", "info migrate  -- report the state and statistics of migration\n");
    expect("help info migrate x", "info migrate  -- report the state and statistics of migration\n");
    expect("help nosuch", "unknown command: 'nosuch'\n");
    expect("help nosuch x", "unknown command: 'nosuch'\n");
    expect("help info nosuch", "unknown command: 'info nosuch'\n");
    expect("help migrate_incoming", "migrate_incoming uri -- start listening for a migration "
                                    "(after -incoming defer)\n");

    hmp_handle_command(mon, "help");
    all = monitor_capture_take(mon);
    lines = g_strsplit(all, "\r\n", -1);
    ck_assert(g_str_has_prefix(lines[0], "calc_dirty_rate [-r] [-b] second [sample_pages_per_GB] -- "));
    ck_assert(g_str_has_prefix(lines[1], "\t\t\t -b: "));
    ck_assert(g_str_has_prefix(lines[2], "cancel_vcpu_dirty_limit [cpu_index] -- "));
    ck_assert(g_str_has_prefix(lines[3], "closefd name -- "));
    ck_assert(g_str_has_prefix(lines[4], "cont|c [-f] -- "));
    ck_assert(g_str_has_prefix(lines[6], "help|? [cmd] -- "));
    ck_assert(g_str_has_prefix(lines[8], "memsave addr size file -- "));
    ck_assert(g_str_has_prefix(lines[9], "migrate [-d] [-b] [-i] [-r] uri -- "));
    ck_assert(g_str_has_prefix(lines[10], "\t\t\t -b "));
    ck_assert_ptr_nonnull(strstr(all, "\r\nset_vcpu_dirty_limit dirty_rate [cpu_index] -- "));
    ck_assert_ptr_nonnull(strstr(all, "\r\nmigrate_set_capability capability state -- "));
    ck_assert_ptr_nonnull(strstr(all, "\r\nmigrate_set_parameter parameter value -- "));
    ck_assert_ptr_nonnull(strstr(all, "\r\nquit|q  -- "));
    ck_assert(g_str_has_suffix(all, "system_reset  -- reset the machine as if by its reset button\r\n"));
}
END_TEST

START_TEST(test_help_info_listing)
{
    static const char listing[] =
        "info block [-n] [-v] [device] -- list the drives (-n: the block nodes; -v: with their images)\n"
        "info blockstats  -- show the I/O counters of each drive\n"
        "info chardev  -- list the character devices and their backends\n"
        "info cpus  -- list the virtual CPUs and their host threads\n"
        "info dirty_rate  -- show the last dirty rate measurement (calc_dirty_rate)\n"
        "info kvm  -- tell whether KVM is present and in use\n"
        "info migrate  -- report the state and statistics of migration\n"
        "info migrate_capabilities  -- list every migration capability with its state\n"
        "info migrate_history  -- show the flight recorder: recent migrations pass by pass, downtime phases\n"
        "info migrate_parameters  -- list every migration parameter with its value\n"
        "info name  -- print the name given with -name\n"
        "info registers [-a|vcpu] -- print the vCPU registers: the current CPU's, one vCPU's by index, or with -a "
        "every vCPU's\n"
        "info status  -- report whether the VM runs (running|paused)\n"
        "info vcpu_dirty_limit  -- show the vCPUs' dirty page rate limits and current rates\n"
        "info version  -- print the emulator version\n";

    expect("help info", listing);
    expect("info", listing);
    expect("help   info  ", listing);
}
END_TEST

START_TEST(test_run_state_commands)
{
    expect("info status", "VM status: paused (prelaunch)\n");
    stub_runstate = RUN_STATE_RUNNING;
    expect("info status", "VM status: running\n");
    expect("stop", "");
    expect("s", "");
    expect("c", "");
    expect("system_reset", "");
    expect_calls("stop stop cont system_reset ");
    stub_error = g_strdup("Resetting the Virtual Machine is required");
    expect("cont", "Error: Resetting the Virtual Machine is required\n");
    expect("q", "");
    expect("cont -f", "");
    expect("c -f", "");
    expect_calls("cont quit cont-force cont-force ");
}
END_TEST

/* info chardev: QEMU 7.2's "LABEL: filename=FILENAME" lines, in creation order. */
START_TEST(test_info_chardev)
{
    ChardevSpec specs[] = {
        { .kind = CHARDEV_NONE, .id = "n1" },
        { .kind = CHARDEV_UNIX, .id = "s1", .path = "/tmp/s1.sock", .server = true },
        { .kind = CHARDEV_TCP, .id = "c1", .host = "::1", .port = "4444" },
        { .kind = CHARDEV_FILE, .id = "f1", .path = "/tmp/f1" },
        { .kind = CHARDEV_FD, .id = "fd1", .fd = 5 },
    };
    int sv[2];

    expect("info chardev", "");
    for (size_t i = 0; i < G_N_ELEMENTS(specs); i++) {
        chardev_info_add(&specs[i]);
    }
    chardev_info_set_frontend_open("n1");
    expect("info chardev", "n1: filename=null\ns1: filename=disconnected:unix:/tmp/s1.sock,server=on\n"
           "c1: filename=disconnected:tcp:::1:4444\nf1: filename=file\nfd1: filename=disconnected:fd:5\n");
    /* A connection names the chardev until it ends (an unnamed UNIX peer: "unix:"). */
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    chardev_info_connected("s1", sv[0]);
    chardev_info_connected("nosuch", sv[1]);
    ChardevInfoList *list = qmp_query_chardev(NULL);
    ck_assert_str_eq(list->value->label, "n1");
    ck_assert(list->value->frontend_open);
    ck_assert_str_eq(list->next->value->filename, "unix:,server=on");
    ck_assert(!list->next->value->frontend_open);
    qapi_free_ChardevInfoList(list);
    chardev_info_disconnected("s1", sv[0]);
    close(sv[0]);
    close(sv[1]);
    list = qmp_query_chardev(NULL);
    ck_assert_str_eq(list->next->value->filename, "disconnected:unix:/tmp/s1.sock,server=on");
    qapi_free_ChardevInfoList(list);
    chardev_info_clear();
    expect("info chardev", "");
}
END_TEST

START_TEST(test_info_misc)
{
    g_autofree char *cpus = NULL;

    expect("info version", "7.2.0\n");
    expect("info kvm", "kvm support: disabled\n");
    expect("info name", "vm1\n");
    /* QEMU 7.2's text: the '*' marks the monitor's current CPU */
    expect("info cpus", "* CPU #0: thread_id=1000\n  CPU #1: thread_id=1001\n");
    cpus = hmp_run_capture("info cpus", 1);
    ck_assert_str_eq(cpus, "  CPU #0: thread_id=1000\r\n* CPU #1: thread_id=1001\r\n");
    stub_cpus = 0;
    expect("info cpus", "");
    expect("info registers", "No CPU available\n");
    expect("info registers -a", "");
    expect("memsave 0 16 f", "No CPU available\n");
    stub_cpus = 2;
}
END_TEST

/* QEMU 7.2's text for each kind of line. */
START_TEST(test_info_block)
{
    static const char virtio0[] =
        "virtio0 (#block157): a.img (raw)\n"
        "    Attached to:      /machine/peripheral/vd\n"
        "    I/O status:       nospace\n"
        "    Cache mode:       writeback\n";
    static const char d1[] =
        "d1 (#block314): b.img (raw, read-only)\n"
        "    Removable device: not locked, tray closed\n"
        "    Cache mode:       writeback, direct\n";
    g_autofree char *both = g_strdup_printf("%s\n%s", virtio0, d1);
    g_autofree char *second = g_strdup_printf("\n%s", d1);

    expect("info block", both);
    expect("info block virtio0", virtio0);
    expect("info block d1", second);       /* QEMU's blank line, even after a filtered drive */
    expect("info block nope", "");
    expect("info blockstats", "d0: rd_bytes=4096 wr_bytes=0 rd_operations=0 wr_operations=3 flush_operations=0 "
                              "wr_total_time_ns=0 rd_total_time_ns=0 flush_total_time_ns=123456 rd_merged=0 "
                              "wr_merged=0 idle_time_ns=0\n");
    /* Nodes: newest drive first (this stub knows no file nodes). */
    expect("info block -n #block314", "#block314: b.img (raw, read-only)\n    Cache mode:       writeback, direct\n");
    expect("info block -n #block157", "\n#block157: a.img (raw)\n    Cache mode:       writeback\n");
    g_autofree char *verbose = g_strdup_printf("%s\nImages:\nimage: b.img\nfile format: raw\n"
                                               "virtual size: 977 KiB (1000448 bytes)\ndisk size: 12 KiB\n", second);
    expect("info block -v d1", verbose);
    g_autofree char *big = hmp_run_capture("info block -v virtio0", 0);
    ck_assert_ptr_nonnull(strstr(big, "virtual size: 4 GiB (4294967296 bytes)\r\ndisk size: 0 B\r\n"));
}
END_TEST

/* qemu-io takes a drive and one quoted qemu-io command line. */
START_TEST(test_qemu_io_arguments)
{
    expect("qemu-io d0 \"write -P 0x11 0 64k\"", "qemu-io d0 write -P 0x11 0 64k\n");
    expect("qemu-io d0", "qemu-io: string expected\nTry \"help qemu-io\" for more information\n");
}
END_TEST

START_TEST(test_fd_and_pmemsave)
{
    expect("getfd mig", "");
    stub_error = g_strdup("File descriptor named 'x' not found");
    expect("closefd x", "Error: File descriptor named 'x' not found\n");
    expect("pmemsave 0x1000 4096 \"/tmp/a b\"", "");
    expect("memsave 0 16 f", "");
    expect_calls("getfd(mig) closefd(x) pmemsave(4096,4096,/tmp/a b) memsave(0,16,f,cpu=0) ");
}
END_TEST

START_TEST(test_migrate_commands)
{
    expect("migrate -d tcp:127.0.0.1:4444", "");
    expect("migrate -d -b -i -r \"exec:cat > /tmp/vm.mig\"", "");
    expect("migrate unix:/tmp/m", "terminal does not allow synchronous migration, continuing detached\n");
    expect_calls("migrate(tcp:127.0.0.1:4444,blk=0,inc=0,resume=0) "
                 "migrate(exec:cat > /tmp/vm.mig,blk=1,inc=1,resume=1) migrate(unix:/tmp/m,blk=0,inc=0,resume=0) ");
    stub_error = g_strdup("There's a migration process in progress");
    expect("migrate -d tcp:h:1", "Error: There's a migration process in progress\n");
    expect("migrate_incoming tcp:0:4444", "");
    expect("migrate_cancel", "");
    expect("migrate_continue pre-switchover", "");
    expect("migrate_continue bogus", "Error: invalid parameter value: bogus\n");
    expect("migrate_start_postcopy", "");
    expect_calls("migrate(tcp:h:1,blk=0,inc=0,resume=0) migrate_incoming(tcp:0:4444) migrate_cancel "
                 "migrate_continue(pre-switchover) migrate_start_postcopy ");
    ck_assert_int_eq(suspended, 0);
}
END_TEST

START_TEST(test_dirty_rate)
{
    const char *started = "Starting dirty rate measurement with period 2 seconds\n"
                          "[Please use 'info dirty_rate' to check results]\n";
    expect("calc_dirty_rate 2", started);
    expect("calc_dirty_rate -b 2", started);
    expect("calc_dirty_rate 2 1024", started);
    expect("calc_dirty_rate -r -b 2", "Either dirty ring or dirty bitmap can be specified!\n");
    expect("calc_dirty_rate 0", "Incorrect period length specified!\n");
    stub_error = g_strdup("the dirty rate is already being measured.");
    expect("calc_dirty_rate -r 1", "Error: the dirty rate is already being measured.\n");
    expect_calls("calc-dirty-rate(2,-,page-sampling) calc-dirty-rate(2,-,dirty-bitmap) "
                 "calc-dirty-rate(2,1024,page-sampling) calc-dirty-rate(1,-,dirty-ring) ");
    expect("info dirty_rate", "Status: measured\nStart Time: 16017 (ms)\nSample Pages: 512 (per GB)\n"
                              "Period: 2 (sec)\nMode: page-sampling\nDirty rate: 243 (MB/s)\n");
}
END_TEST

START_TEST(test_dirty_limit)
{
    const char *hint = "[Please use 'info vcpu_dirty_limit' to query dirty limit for virtual CPU]\n";

    expect("info vcpu_dirty_limit", "Dirty page limit not enabled!\n");
    expect("set_vcpu_dirty_limit 50", hint);
    expect("set_vcpu_dirty_limit 60 1", hint);
    expect("set_vcpu_dirty_limit 60 -1", hint);     /* one expression, 59, as QEMU parses it */
    expect("info vcpu_dirty_limit", "vcpu[0], limit rate 50 (MB/s), current rate 0 (MB/s)\n"
                                    "vcpu[1], limit rate -1 (MB/s), current rate 12 (MB/s)\n");
    expect("cancel_vcpu_dirty_limit 1", hint);
    expect("cancel_vcpu_dirty_limit", hint);
    stub_error = g_strdup("incorrect cpu index specified");
    expect("set_vcpu_dirty_limit 60 9", "Error: incorrect cpu index specified\n");
    expect_calls("set-vcpu-dirty-limit(all,50) set-vcpu-dirty-limit(1,60) set-vcpu-dirty-limit(all,59) "
                 "cancel-vcpu-dirty-limit(1) cancel-vcpu-dirty-limit(all) set-vcpu-dirty-limit(9,60) ");
}
END_TEST

START_TEST(test_set_capability)
{
    expect("migrate_set_capability events on", "");
    expect("migrate_set_capability xbzrle off", "");
    expect("migrate_set_capability bogus on", "Error: invalid parameter value: bogus\n");
    stub_error = g_strdup("Postcopy preempt requires postcopy-ram");
    expect("migrate_set_capability postcopy-preempt on", "Error: Postcopy preempt requires postcopy-ram\n");
    expect_calls("set_capability(events,1) set_capability(xbzrle,0) set_capability(postcopy-preempt,1) ");
}
END_TEST

START_TEST(test_set_parameter)
{
    expect("migrate_set_parameter max-bandwidth 100M", "");
    expect("migrate_set_parameter max-bandwidth 100", "");
    expect("migrate_set_parameter max-bandwidth 1K", "");
    expect("migrate_set_parameter downtime-limit 1k", "");
    expect("migrate_set_parameter xbzrle-cache-size 1M", "");
    expect("migrate_set_parameter multifd-channels 4", "");
    expect("migrate_set_parameter x-checkpoint-delay 1000", "");
    expect("migrate_set_parameter cpu-throttle-tailslow yes", "");
    expect("migrate_set_parameter multifd-compression zlib", "");
    expect("migrate_set_parameter tls-creds \"\"", "");
    expect_calls("set_parameters(max_bandwidth=104857600) set_parameters(max_bandwidth=104857600) "
                 "set_parameters(max_bandwidth=1024) set_parameters(downtime_limit=1024) "
                 "set_parameters(xbzrle_cache_size=1048576) set_parameters(multifd_channels=4) "
                 "set_parameters(x_checkpoint_delay=1000) set_parameters(cpu_throttle_tailslow=1) "
                 "set_parameters(multifd_compression=zlib) set_parameters(tls_creds='') ");

    expect("migrate_set_parameter max-bandwidth 12Q", "Error: Invalid size 12Q\n");
    expect("migrate_set_parameter max-bandwidth -1", "Error: Invalid size -1\n");
    expect("migrate_set_parameter max-bandwidth 15E", "Error: Invalid size 15E\n");
#define SIZE_HINT "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\n" \
                  "and exabytes, respectively.\n"
    expect("migrate_set_parameter downtime-limit abc",
           "Error: Parameter 'downtime-limit' expects a non-negative number below 2^64\n" SIZE_HINT);
    expect("migrate_set_parameter downtime-limit 1.5",
           "Error: Parameter 'downtime-limit' expects a non-negative number below 2^64\n" SIZE_HINT);
    expect("migrate_set_parameter downtime-limit -1",
           "Error: Parameter 'downtime-limit' expects a non-negative number below 2^64\n" SIZE_HINT);
#undef SIZE_HINT
    expect("migrate_set_parameter downtime-limit 16E",
           "Error: Value '16E' is out of range for parameter 'downtime-limit'\n");
    expect("migrate_set_parameter xbzrle-cache-size 8E", "Error: Invalid size 8E\n");
    expect("migrate_set_parameter multifd-channels 3x", "Error: Parameter 'multifd-channels' expects uint64\n");
    expect("migrate_set_parameter multifd-channels 300", "Error: Parameter 'multifd-channels' expects uint8_t\n");
    expect("migrate_set_parameter x-checkpoint-delay -1",
           "Error: Parameter 'x-checkpoint-delay' expects uint32_t\n");
    expect("migrate_set_parameter compress-wait-thread maybe",
           "Error: Parameter 'compress-wait-thread' expects 'on' or 'off'\n");
    expect("migrate_set_parameter multifd-compression bogus",
           "Error: Parameter 'multifd-compression' does not accept value 'bogus'\n");
    expect("migrate_set_parameter bogus 1", "Error: invalid parameter value: bogus\n");
    expect("migrate_set_parameter block-bitmap-mapping x",
           "Error: The block-bitmap-mapping parameter can only be set through QMP\n");
    expect("migrate_set_parameter max-bandwidth",
           "migrate_set_parameter: string expected\nTry \"help migrate_set_parameter\" for more information\n");
    expect_calls("");

    stub_error = g_strdup("Parameter 'downtime_limit' expects an integer in the range of 0 to (2000 * 1000) ms");
    expect("migrate_set_parameter downtime-limit 10000000",
           "Error: Parameter 'downtime_limit' expects an integer in the range of 0 to (2000 * 1000) ms\n");
}
END_TEST

START_TEST(test_info_migrate_family)
{
    expect("info migrate", "globals:\nstore-global-state: on\nonly-migratable: off\nsend-configuration: on\n"
                           "send-section-footer: on\ndecompress-error-check: on\nclear-bitmap-shift: 18\n");
    expect("info migrate_capabilities", "xbzrle: off\n");
    expect("info migrate_parameters", "tls-creds: ''\ndowntime-limit: 300 ms\n");
}
END_TEST

static void run_until_resumed(void)
{
    gint64 deadline = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;

    while (!resumed && g_get_monotonic_time() < deadline) {
        g_main_context_iteration(NULL, TRUE);
    }
    ck_assert_int_eq(resumed, 1);
}

/* A synchronous migrate: the prompt comes back when it ended; only the
 * interactive console gets the outcome (a socket gets nothing, as QEMU). */
static void migrate_synchronous(bool on_tty, const char *want)
{
    g_autofree char *out = NULL;

    can_suspend = true;
    interactive = on_tty;
    poll_statuses[0] = MIGRATION_STATUS_SETUP;
    poll_statuses[1] = MIGRATION_STATUS_ACTIVE;
    poll_statuses[2] = MIGRATION_STATUS_COMPLETED;
    poll_len = 3;
    expect("migrate tcp:127.0.0.1:4444", "");
    ck_assert_int_eq(suspended, 1);
    ck_assert_int_eq(resumed, 0);
    ck_assert_uint_ne(wait_source, 0);
    run_until_resumed();
    ck_assert_uint_eq(wait_source, 0);
    ck_assert_int_eq(poll_count, 3);
    out = monitor_capture_take(mon);
    ck_assert_str_eq(out, want);
    interactive = false;
}

START_TEST(test_migrate_synchronous)
{
    migrate_synchronous(false, "");
}
END_TEST

START_TEST(test_migrate_synchronous_interactive)
{
    migrate_synchronous(true, "migration: completed\r\n");
}
END_TEST

START_TEST(test_migrate_synchronous_failure)
{
    g_autofree char *out = NULL;

    can_suspend = true;
    interactive = true;
    poll_statuses[0] = MIGRATION_STATUS_FAILED;
    poll_len = 1;
    expect("migrate tcp:127.0.0.1:1", "");
    run_until_resumed();
    out = monitor_capture_take(mon);
    ck_assert_str_eq(out, "migration: failed (Connection refused)\r\n");
    interactive = false;
}
END_TEST

START_TEST(test_run_capture)
{
    char *out = hmp_run_capture("info status", 0);

    ck_assert_str_eq(out, "VM status: paused (prelaunch)\r\n");
    g_free(out);
    out = hmp_run_capture("nosuch", 0);
    ck_assert_str_eq(out, "unknown command: 'nosuch'\r\n");
    g_free(out);
    out = hmp_run_capture("migrate_set_parameter bogus 1", 0);
    ck_assert_str_eq(out, "Error: invalid parameter value: bogus\r\n");
    g_free(out);
    ck_assert_ptr_eq(monitor_cur(), mon);      /* restored */
}
END_TEST

START_TEST(test_printf_crlf)
{
    g_autofree char *out = NULL;

    monitor_printf(mon, "a\nb %d\n\n", 5);
    out = monitor_capture_take(mon);
    ck_assert_str_eq(out, "a\r\nb 5\r\n\r\n");
}
END_TEST

static Suite *hmp_dispatch_suite(void)
{
    Suite *s = suite_create("hmp-dispatch");
    TCase *tc = tcase_create("commands");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_unknown_and_empty);
    tcase_add_test(tc, test_parse_errors_try_help);
    tcase_add_test(tc, test_help);
    tcase_add_test(tc, test_help_info_listing);
    tcase_add_test(tc, test_run_state_commands);
    tcase_add_test(tc, test_info_misc);
    tcase_add_test(tc, test_info_chardev);
    tcase_add_test(tc, test_fd_and_pmemsave);
    tcase_add_test(tc, test_qemu_io_arguments);
    tcase_add_test(tc, test_migrate_commands);
    tcase_add_test(tc, test_dirty_rate);
    tcase_add_test(tc, test_dirty_limit);
    tcase_add_test(tc, test_set_capability);
    tcase_add_test(tc, test_set_parameter);
    tcase_add_test(tc, test_info_migrate_family);
    tcase_add_test(tc, test_migrate_synchronous);
    tcase_add_test(tc, test_migrate_synchronous_interactive);
    tcase_add_test(tc, test_migrate_synchronous_failure);
    tcase_add_test(tc, test_run_capture);
    tcase_add_test(tc, test_printf_crlf);
    tcase_add_test(tc, test_info_block);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(hmp_dispatch_suite());
}
