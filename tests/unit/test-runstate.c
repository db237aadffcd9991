/*
 * Unit tests for system/: run-state transitions, vm_start/vm_stop and their
 * events, the run-state QMP commands, the main loop (scheduled work, BQL
 * dropped while polling, SIGTERM), size parsing, chardev specs and the
 * command line. The machine and the monitor are stubbed below.
 */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <glib.h>
#include <json-c/json.h>
#include "vm.h"
#include "machine.h"
#include "monitor.h"
#include "qapi-commands.h"
#include "../../system/cmdline.h"
#include "device-spec.h"
#include "block.h"
#include "../../system/main-loop.h"
#include "unit-test.h"

/* ---- stubs ------------------------------------------------------------------ */

static GPtrArray *events;        /* "NAME" or "NAME {json}" */
static int pause_calls, resume_calls, reset_calls;

void qapi_event_emit(const char *event_name, json_object *data)
{
    if (data) {
        g_ptr_array_add(events, g_strdup_printf("%s %s", event_name,
                                                json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN)));
        json_object_put(data);
    } else {
        g_ptr_array_add(events, g_strdup(event_name));
    }
}

void cpus_pause_all(void) { pause_calls++; }
void cpus_resume_all(void) { resume_calls++; }
bool cpus_are_paused(void) { return true; }
bool machine_reset(Error **errp) { reset_calls++; return true; }
static int drain_calls;
void blk_drain_all(void) { drain_calls++; }
void blk_iostatus_reset_all(void) { }

/* ---- fixture ------------------------------------------------------------------ */

/* Walk back to prelaunch along valid transitions (tests may share a process). */
static void back_to_prelaunch(void)
{
    if (runstate_check(RUN_STATE_SAVE_VM)) {
        ck_assert(runstate_set(RUN_STATE_RUNNING, NULL));
    }
    if (runstate_is_running()) {
        ck_assert(runstate_set(RUN_STATE_PAUSED, NULL));
    }
    ck_assert(runstate_set(RUN_STATE_PRELAUNCH, NULL));
}

static void setup(void)
{
    events = g_ptr_array_new_with_free_func(g_free);
    pause_calls = resume_calls = reset_calls = 0;
    memset(&vm_config, 0, sizeof(vm_config));
    vm_autostart = true;
    bql_lock();
    vm_set_handed_over(false);
    back_to_prelaunch();
    main_loop_init();
}

static void teardown(void)
{
    main_loop_cleanup();
    bql_unlock();
    g_ptr_array_free(events, TRUE);
    events = NULL;
}

static void assert_events(const char *expected)
{
    g_autoptr(GString) got = g_string_new(NULL);

    for (guint i = 0; i < events->len; i++) {
        g_string_append_printf(got, "%s%s", i ? "; " : "", (char *)events->pdata[i]);
    }
    ck_assert_str_eq(got->str, expected);
    g_ptr_array_set_size(events, 0);
}

/* Check *errp's message, then free it and reset *errp for the next call. */
static void assert_error(Error **errp, const char *expected)
{
    ck_assert_ptr_nonnull(*errp);
    ck_assert_str_eq(error_get_pretty(*errp), expected);
    error_free_or_abort(errp);
}

/* ---- run-state transitions ------------------------------------------------------ */

START_TEST(test_transitions_valid)
{
    static const RunState path[] = {
        RUN_STATE_INMIGRATE, RUN_STATE_POSTMIGRATE, RUN_STATE_RUNNING, RUN_STATE_FINISH_MIGRATE,
        RUN_STATE_POSTMIGRATE, RUN_STATE_PRELAUNCH, RUN_STATE_RUNNING, RUN_STATE_PAUSED,
        RUN_STATE_RUNNING, RUN_STATE_SHUTDOWN, RUN_STATE_PRELAUNCH, RUN_STATE_RUNNING,
        RUN_STATE_GUEST_PANICKED, RUN_STATE_RUNNING, RUN_STATE_INTERNAL_ERROR, RUN_STATE_PAUSED,
        RUN_STATE_FINISH_MIGRATE, RUN_STATE_RUNNING, RUN_STATE_SAVE_VM, RUN_STATE_RUNNING,
    };
    for (size_t i = 0; i < G_N_ELEMENTS(path); i++) {
        Error *err = NULL;
        ck_assert_msg(runstate_set(path[i], &err), "step %zu to %s", i, RunState_str(path[i]));
        ck_assert_ptr_null(err);
        ck_assert_int_eq(runstate_get(), path[i]);
    }
    /* Staying in the same state is always fine. */
    ck_assert(runstate_set(RUN_STATE_RUNNING, NULL));
    ck_assert(runstate_is_running());
}
END_TEST

static void refuse(RunState from_path_end, RunState to)
{
    Error *err = NULL;
    g_autofree char *msg = g_strdup_printf("Invalid run state transition from '%s' to '%s'",
                                           RunState_str(from_path_end), RunState_str(to));
    ck_assert(!runstate_set(to, &err));
    assert_error(&err, msg);
    ck_assert_int_eq(runstate_get(), from_path_end);
}

START_TEST(test_transitions_refused)
{
    refuse(RUN_STATE_PRELAUNCH, RUN_STATE_PAUSED);
    refuse(RUN_STATE_PRELAUNCH, RUN_STATE_POSTMIGRATE);
    ck_assert(runstate_set(RUN_STATE_RUNNING, NULL));
    refuse(RUN_STATE_RUNNING, RUN_STATE_PRELAUNCH);
    refuse(RUN_STATE_RUNNING, RUN_STATE_INMIGRATE);
    refuse(RUN_STATE_RUNNING, RUN_STATE_POSTMIGRATE);
    ck_assert(runstate_set(RUN_STATE_SHUTDOWN, NULL));
    refuse(RUN_STATE_SHUTDOWN, RUN_STATE_RUNNING);
    ck_assert(runstate_needs_reset());
    ck_assert(runstate_set(RUN_STATE_PAUSED, NULL));
    refuse(RUN_STATE_PAUSED, RUN_STATE_INMIGRATE);
    ck_assert(runstate_set(RUN_STATE_RUNNING, NULL));
    ck_assert(runstate_set(RUN_STATE_INTERNAL_ERROR, NULL));
    refuse(RUN_STATE_INTERNAL_ERROR, RUN_STATE_RUNNING);
    ck_assert(runstate_set(RUN_STATE_PAUSED, NULL));
    ck_assert(runstate_set(RUN_STATE_RUNNING, NULL));
    ck_assert(runstate_set(RUN_STATE_SAVE_VM, NULL));
    refuse(RUN_STATE_SAVE_VM, RUN_STATE_PAUSED);

    Error *err = NULL;
    ck_assert(!runstate_set(RUN_STATE__MAX, &err));
    ck_assert_ptr_nonnull(err);
    error_free(err);
    ck_assert(!runstate_set(RUN_STATE_PAUSED, NULL));     /* errp may be NULL */
}
END_TEST

/* ---- vm_start / vm_stop ------------------------------------------------------- */

START_TEST(test_vm_start_stop)
{
    ck_assert(vm_start(NULL));
    ck_assert(runstate_is_running());
    ck_assert_int_eq(resume_calls, 1);
    assert_events("RESUME");

    ck_assert(vm_start(NULL));                 /* already running: nothing */
    ck_assert_int_eq(resume_calls, 1);
    assert_events("");

    drain_calls = 0;
    ck_assert(vm_stop(RUN_STATE_PAUSED, NULL));
    ck_assert_int_eq(runstate_get(), RUN_STATE_PAUSED);
    ck_assert_int_ge(pause_calls, 1);
    ck_assert_int_eq(drain_calls, 1);          /* disk requests complete before the state is saved */
    assert_events("STOP");

    ck_assert(vm_stop(RUN_STATE_PAUSED, NULL));  /* already stopped: no event */
    assert_events("");

    ck_assert(vm_start(NULL));
    ck_assert(vm_stop_force_state(RUN_STATE_FINISH_MIGRATE, NULL));
    assert_events("RESUME; STOP");
    ck_assert(vm_stop_force_state(RUN_STATE_POSTMIGRATE, NULL));
    ck_assert_int_eq(runstate_get(), RUN_STATE_POSTMIGRATE);
    assert_events("");
    ck_assert(vm_start(NULL));               /* the source resumes after migrating */
    assert_events("RESUME");
}
END_TEST

START_TEST(test_vm_stop_not_running)
{
    ck_assert(vm_stop(RUN_STATE_PAUSED, NULL));
    ck_assert_int_eq(runstate_get(), RUN_STATE_PRELAUNCH);   /* QEMU keeps prelaunch */
    assert_events("");

    Error *err = NULL;
    ck_assert(!vm_stop_force_state(RUN_STATE_POSTMIGRATE, &err));
    assert_error(&err, "Invalid run state transition from 'prelaunch' to 'postmigrate'");

    ck_assert(vm_start(NULL));
    assert_events("RESUME");
    ck_assert(!vm_stop(RUN_STATE_PRELAUNCH, &err));           /* refused: still running */
    assert_error(&err, "Invalid run state transition from 'running' to 'prelaunch'");
    ck_assert(runstate_is_running());
    assert_events("");
}
END_TEST

/* ---- QMP commands --------------------------------------------------------------- */

START_TEST(test_qmp_queries)
{
    StatusInfo *st = qmp_query_status(NULL);
    ck_assert(!st->running);
    ck_assert(!st->singlestep);
    ck_assert_int_eq(st->status, RUN_STATE_PRELAUNCH);
    qapi_free_StatusInfo(st);

    ck_assert(vm_start(NULL));
    st = qmp_query_status(NULL);
    ck_assert(st->running);
    ck_assert_int_eq(st->status, RUN_STATE_RUNNING);
    qapi_free_StatusInfo(st);

    NameInfo *ni = qmp_query_name(NULL);
    ck_assert_ptr_null(ni->name);
    qapi_free_NameInfo(ni);
    vm_config.name = (char *)"guest-a";
    ni = qmp_query_name(NULL);
    ck_assert_str_eq(ni->name, "guest-a");
    qapi_free_NameInfo(ni);
    vm_config.name = NULL;

    vm_config.kvm_present = true;
    KvmInfo *ki = qmp_query_kvm(NULL);
    ck_assert(ki->present);
    ck_assert(!ki->enabled);
    qapi_free_KvmInfo(ki);
}
END_TEST

static const q_obj_cont_arg no_force;

START_TEST(test_qmp_stop_cont)
{
    Error *err = NULL;

    ck_assert(qmp_stop(NULL));                /* prelaunch: nothing changes */
    ck_assert_int_eq(runstate_get(), RUN_STATE_PRELAUNCH);
    assert_events("");
    ck_assert(qmp_cont(&no_force, NULL));
    assert_events("RESUME");
    ck_assert(qmp_cont(&no_force, NULL));                /* running: no event */
    assert_events("");
    ck_assert(qmp_stop(NULL));
    ck_assert_int_eq(runstate_get(), RUN_STATE_PAUSED);
    assert_events("STOP");
    ck_assert(qmp_stop(NULL));
    assert_events("");

    ck_assert(runstate_set(RUN_STATE_FINISH_MIGRATE, NULL));
    ck_assert(!qmp_cont(&no_force, &err));
    assert_error(&err, "Migration is not finalized yet");

    ck_assert(runstate_set(RUN_STATE_RUNNING, NULL));
    ck_assert(runstate_set(RUN_STATE_SHUTDOWN, NULL));
    ck_assert(!qmp_cont(&no_force, &err));
    assert_error(&err, "Resetting the Virtual Machine is required");
    ck_assert(runstate_set(RUN_STATE_PAUSED, NULL));
    ck_assert(runstate_set(RUN_STATE_RUNNING, NULL));
    ck_assert(runstate_set(RUN_STATE_INTERNAL_ERROR, NULL));
    ck_assert(!qmp_cont(&no_force, &err));
    assert_error(&err, "Resetting the Virtual Machine is required");
    ck_assert(runstate_set(RUN_STATE_PRELAUNCH, NULL));
    ck_assert(runstate_set(RUN_STATE_RUNNING, NULL));
    ck_assert(runstate_set(RUN_STATE_GUEST_PANICKED, NULL));
    ck_assert(!qmp_cont(&no_force, &err));
    assert_error(&err, "Resetting the Virtual Machine is required");
    assert_events("");
}
END_TEST

START_TEST(test_qmp_inmigrate_autostart)
{
    ck_assert(runstate_set(RUN_STATE_INMIGRATE, NULL));
    ck_assert(qmp_stop(NULL));
    ck_assert(!vm_autostart);
    ck_assert_int_eq(runstate_get(), RUN_STATE_INMIGRATE);
    ck_assert(qmp_cont(&no_force, NULL));
    ck_assert(vm_autostart);
    ck_assert_int_eq(runstate_get(), RUN_STATE_INMIGRATE);
    assert_events("");
}
END_TEST

START_TEST(test_qmp_system_reset)
{
    ck_assert(vm_start(NULL));
    assert_events("RESUME");
    int resumes = resume_calls;
    ck_assert(qmp_system_reset(NULL));
    assert_events("RESET {\"guest\":false,\"reason\":\"host-qmp-system-reset\"}");
    ck_assert(runstate_is_running());
    ck_assert_int_eq(reset_calls, 1);
    ck_assert_int_eq(resume_calls, resumes + 1);

    /* From postmigrate the VM ends in prelaunch, ready to boot again. */
    ck_assert(vm_stop(RUN_STATE_FINISH_MIGRATE, NULL));
    ck_assert(runstate_set(RUN_STATE_POSTMIGRATE, NULL));
    assert_events("STOP");
    ck_assert(qmp_system_reset(NULL));
    assert_events("RESET {\"guest\":false,\"reason\":\"host-qmp-system-reset\"}");
    ck_assert_int_eq(runstate_get(), RUN_STATE_PRELAUNCH);

    /* A reset makes a shut-down VM startable again. */
    ck_assert(vm_start(NULL));
    ck_assert(runstate_set(RUN_STATE_SHUTDOWN, NULL));
    ck_assert(qmp_system_reset(NULL));
    ck_assert_int_eq(runstate_get(), RUN_STATE_PRELAUNCH);
    ck_assert(qmp_cont(&no_force, NULL));
    ck_assert(runstate_is_running());
}
END_TEST

/* After a completed outgoing migration nothing starts the guest again,
 * not even through a reset, unless cont is forced. */
START_TEST(test_qmp_cont_handed_over)
{
    Error *err = NULL;
    const q_obj_cont_arg force = { .has_x_force_after_migration = true,
                                   .x_force_after_migration = true };

    ck_assert(vm_start(NULL));
    ck_assert(vm_stop(RUN_STATE_FINISH_MIGRATE, NULL));
    ck_assert(runstate_set(RUN_STATE_POSTMIGRATE, NULL));
    vm_set_handed_over(true);
    assert_events("RESUME; STOP");
    ck_assert(!qmp_cont(&no_force, &err));
    assert_error(&err, VM_HANDED_OVER_ERROR);
    ck_assert(!vm_start(&err));
    assert_error(&err, VM_HANDED_OVER_ERROR);
    ck_assert(qmp_system_reset(NULL));
    ck_assert_int_eq(runstate_get(), RUN_STATE_PRELAUNCH);
    ck_assert(!qmp_cont(&no_force, &err));
    assert_error(&err, VM_HANDED_OVER_ERROR);
    ck_assert_int_eq(runstate_get(), RUN_STATE_PRELAUNCH);
    assert_events("RESET {\"guest\":false,\"reason\":\"host-qmp-system-reset\"}");

    /* A forced cont that fails for another reason keeps the guard. */
    ck_assert(runstate_set(RUN_STATE_RUNNING, NULL));
    ck_assert(runstate_set(RUN_STATE_SHUTDOWN, NULL));
    ck_assert(!qmp_cont(&force, &err));
    assert_error(&err, "Resetting the Virtual Machine is required");
    ck_assert(runstate_set(RUN_STATE_PAUSED, NULL));
    ck_assert(!qmp_cont(&no_force, &err));
    assert_error(&err, VM_HANDED_OVER_ERROR);

    ck_assert(qmp_cont(&force, NULL));
    ck_assert(runstate_is_running());
    ck_assert(!vm_is_handed_over());
    assert_events("RESUME");
}
END_TEST

START_TEST(test_qmp_quit)
{
    ck_assert(qmp_quit(NULL));
    assert_events("SHUTDOWN {\"guest\":false,\"reason\":\"host-qmp-quit\"}");
    ck_assert(main_loop_exit_requested());
    ck_assert(qmp_quit(NULL));                 /* announced once */
    assert_events("");
    main_loop_run();                           /* returns: exit was requested */
}
END_TEST

static void *request_shutdown_thread(void *arg)
{
    ck_assert(!bql_locked());
    vm_request_shutdown(SHUTDOWN_CAUSE_GUEST_SHUTDOWN);
    vm_request_reset(SHUTDOWN_CAUSE_GUEST_RESET);
    return NULL;
}

START_TEST(test_requests_from_other_thread)
{
    pthread_t t;

    ck_assert(bql_locked());
    pthread_create(&t, NULL, request_shutdown_thread, NULL);
    pthread_join(t, NULL);
    assert_events("");                         /* deferred to the main loop */
    main_loop_run_scheduled();
    assert_events("SHUTDOWN {\"guest\":true,\"reason\":\"guest-shutdown\"}; "
                  "RESET {\"guest\":true,\"reason\":\"guest-reset\"}");
    ck_assert(main_loop_exit_requested());
}
END_TEST

/* ---- the main loop ------------------------------------------------------------- */

static bool work_ran_with_bql;

static void scheduled_work(void *opaque)
{
    work_ran_with_bql = bql_locked();
    *(int *)opaque += 1;
    main_loop_request_exit();
}

static void *lock_then_schedule_thread(void *arg)
{
    bql_lock();                 /* only possible while the main loop polls */
    main_loop_schedule(scheduled_work, arg);
    bql_unlock();
    return NULL;
}

START_TEST(test_main_loop_drops_bql_in_poll)
{
    pthread_t t;
    int counter = 0;

    pthread_create(&t, NULL, lock_then_schedule_thread, &counter);
    main_loop_run();
    pthread_join(t, NULL);
    ck_assert_int_eq(counter, 1);
    ck_assert(work_ran_with_bql);
    ck_assert(bql_locked());
}
END_TEST

START_TEST(test_main_loop_sigterm)
{
    main_loop_add_signal_handlers();
    kill(getpid(), SIGTERM);
    main_loop_run();
    assert_events("SHUTDOWN {\"guest\":false,\"reason\":\"host-signal\"}");
}
END_TEST

/* ---- sizes ------------------------------------------------------------------------ */

START_TEST(test_parse_size)
{
    static const struct { const char *text; uint64_t value; } good[] = {
        { "128", 128ULL << 20 }, { "1G", 1ULL << 30 }, { "512M", 512ULL << 20 }, { "512m", 512ULL << 20 },
        { "2048k", 2ULL << 20 }, { "2048K", 2ULL << 20 }, { "1.5G", 3ULL << 29 }, { "1T", 1ULL << 40 },
        { "4096B", 4096 }, { "256MB", 256ULL << 20 }, { "0.5", 1ULL << 19 },
    };
    static const char *const bad[] = {
        "", "x", "0", "-1", "+5", " 5", "12Q", "1.G", "1.", ".5", "5 M", "1GG", "99999999999999999999",
        "20000000T", "1e3",
    };
    uint64_t v;

    for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
        ck_assert_msg(parse_size(good[i].text, 1ULL << 20, &v), "'%s' refused", good[i].text);
        ck_assert_msg(v == good[i].value, "'%s' -> %llu", good[i].text, (unsigned long long)v);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        ck_assert_msg(!parse_size(bad[i], 1ULL << 20, &v), "'%s' accepted", bad[i]);
    }
    ck_assert(parse_size("100", 1, &v) && v == 100);
}
END_TEST

/* ---- chardev specs ---------------------------------------------------------------- */

START_TEST(test_chardev_good)
{
    ChardevSpec s;

    ck_assert(chardev_spec_parse("stdio", &s, NULL));
    ck_assert_int_eq(s.kind, CHARDEV_STDIO);
    chardev_spec_clear(&s);
    ck_assert(chardev_spec_parse("none", &s, NULL));
    ck_assert_int_eq(s.kind, CHARDEV_NONE);
    chardev_spec_clear(&s);
    ck_assert(chardev_spec_parse("file:/tmp/serial.log", &s, NULL));
    ck_assert_int_eq(s.kind, CHARDEV_FILE);
    ck_assert_str_eq(s.path, "/tmp/serial.log");
    chardev_spec_clear(&s);

    ck_assert(chardev_spec_parse("unix:/tmp/q.sock,server=on,wait=off", &s, NULL));
    ck_assert_int_eq(s.kind, CHARDEV_UNIX);
    ck_assert_str_eq(s.path, "/tmp/q.sock");
    ck_assert(s.server && !s.wait && !s.pretty);
    chardev_spec_clear(&s);
    ck_assert(chardev_spec_parse("unix:/tmp/q.sock,server,nowait,pretty=on", &s, NULL));
    ck_assert(s.server && !s.wait && s.pretty);
    chardev_spec_clear(&s);
    ck_assert(chardev_spec_parse("unix:/tmp/q.sock,server=on", &s, NULL));
    ck_assert(s.server && s.wait);               /* QEMU: a server waits by default */
    chardev_spec_clear(&s);
    ck_assert(chardev_spec_parse("unix:/tmp/q.sock", &s, NULL));
    ck_assert(!s.server && !s.wait);             /* QEMU: a client unless server=on */
    chardev_spec_clear(&s);
    ck_assert(chardev_spec_parse("unix:/tmp/q.sock,server=off", &s, NULL));
    ck_assert(!s.server && !s.wait);
    chardev_spec_clear(&s);
    ck_assert(chardev_spec_parse("unix:/tmp/a,,b,server=on,wait=no", &s, NULL));
    ck_assert_str_eq(s.path, "/tmp/a,b");
    ck_assert(!s.wait);
    chardev_spec_clear(&s);

    ck_assert(chardev_spec_parse("tcp:127.0.0.1:4444,server=on,wait=off,ipv4=on,nodelay", &s, NULL));
    ck_assert_int_eq(s.kind, CHARDEV_TCP);
    ck_assert_str_eq(s.host, "127.0.0.1");
    ck_assert_str_eq(s.port, "4444");
    ck_assert(s.server && !s.wait);
    chardev_spec_clear(&s);
    ck_assert(chardev_spec_parse("tcp::5555,server,nowait", &s, NULL));
    ck_assert_str_eq(s.host, "0.0.0.0");
    ck_assert_str_eq(s.port, "5555");
    chardev_spec_clear(&s);
    ck_assert(chardev_spec_parse("tcp:[::1]:6666,server=on", &s, NULL));
    ck_assert_str_eq(s.host, "::1");
    ck_assert_str_eq(s.port, "6666");
    chardev_spec_clear(&s);
    ck_assert(chardev_spec_parse("stdio,pretty=on", &s, NULL));
    ck_assert(s.pretty);
    chardev_spec_clear(&s);
}
END_TEST

START_TEST(test_chardev_bad)
{
    static const struct { const char *text, *error; } cases[] = {
        { "", "unknown character device '' (stdio, null, file:PATH, pipe:PATH, unix:PATH or tcp:HOST:PORT)" },
        { "pty", "unknown character device 'pty' (stdio, null, file:PATH, pipe:PATH, unix:PATH or tcp:HOST:PORT)" },
        { "unix:", "unix: path is empty" },
        { "file:", "file: path is empty" },
        { "tcp:localhost", "tcp: port missing in 'localhost' (expected HOST:PORT)" },
        { "tcp:localhost:99999", "tcp: invalid port '99999'" },
        { "tcp:localhost:", "tcp: invalid port ''" },
        { "tcp:[::1]4444", "tcp: bad address '[::1]4444' (expected [IPV6]:PORT)" },
        { "unix:/x,foo=1", "invalid character device option 'foo'" },
        { "unix:/x,server=maybe", "invalid value 'maybe' for 'server' (expected on or off)" },
        { "stdio,server=on", "option 'server' is only valid for unix: and tcp:" },
        { "file:/x,wait=off", "option 'wait' is only valid for unix: and tcp:" },
        { "unix:/x,ipv4=on", "option 'ipv4' is only valid for tcp:" },
        { "unix:/x,wait=off", "'wait' option is incompatible with socket in client connect mode" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        ChardevSpec s;
        Error *err = NULL;
        ck_assert_msg(!chardev_spec_parse(cases[i].text, &s, &err), "'%s' accepted", cases[i].text);
        assert_error(&err, cases[i].error);
        ck_assert_ptr_null(s.path);
        ck_assert_ptr_null(s.host);
    }
}
END_TEST

/* ---- command line ------------------------------------------------------------------ */

static bool parse_line(const char *line, CmdlineOptions *o, Error **errp)
{
    g_autofree char *full = g_strconcat("migvm ", line, NULL);
    g_auto(GStrv) argv = g_strsplit(full, " ", -1);

    cmdline_options_init(o);
    return cmdline_parse(g_strv_length(argv), argv, o, errp) && cmdline_finish(o, errp);
}

START_TEST(test_cmdline_defaults)
{
    CmdlineOptions o;

    ck_assert(parse_line("-S", &o, NULL));
    ck_assert_ptr_null(o.name);
    ck_assert_uint_eq(o.ram_size, 128ULL << 20);
    ck_assert_int_eq(o.smp_cpus, 1);
    ck_assert_str_eq(o.machine, "pc");
    ck_assert_ptr_null(o.serial);
    ck_assert_int_eq(o.monitors->len, 0);
    ck_assert_int_eq(o.chardevs->len, 0);
    ck_assert(o.start_paused);
    cmdline_options_clear(&o);
}
END_TEST

START_TEST(test_cmdline_full)
{
    CmdlineOptions o;
    Error *err = NULL;

    ck_assert(parse_line("-name guest=vm1,debug-threads=on -m 1G -smp cpus=2 --accel soft,dirty-rate=100 "
                         "-M pc -qmp unix:/tmp/a.sock,server=on,wait=off -qmp tcp:127.0.0.1:4444,server,nowait "
                         "-monitor unix:/tmp/h.sock,server,nowait -serial file:/tmp/s.log -incoming defer "
                         "-nodefaults -display none -vga none -pidfile /tmp/p.pid -daemonize", &o, &err));
    ck_assert_ptr_null(err);
    ck_assert_str_eq(o.name, "vm1");
    ck_assert_uint_eq(o.ram_size, 1ULL << 30);
    ck_assert_int_eq(o.smp_cpus, 2);
    ck_assert_int_eq(o.accels->len, 1);
    CmdlineAccel *a = o.accels->pdata[0];
    ck_assert_str_eq(a->name, "soft");
    ck_assert_str_eq(a->opts, "dirty-rate=100");
    ck_assert_int_eq(o.monitors->len, 3);
    const CmdlineMonitor *m = o.monitors->pdata[1];
    ck_assert(m->is_qmp && !strcmp(m->chardev, "compat_monitor1"));
    ck_assert_int_eq(cmdline_find_chardev(&o, m->chardev)->kind, CHARDEV_TCP);
    m = o.monitors->pdata[2];
    ck_assert(!m->is_qmp && !strcmp(m->chardev, "compat_monitor2"));
    ck_assert_str_eq(o.serial, "file:/tmp/s.log");
    ck_assert_str_eq(o.serial_chardev, "serial0");
    ck_assert_int_eq(cmdline_find_chardev(&o, "serial0")->kind, CHARDEV_FILE);
    ck_assert_str_eq(o.incoming, "defer");
    ck_assert_str_eq(o.pidfile, "/tmp/p.pid");
    ck_assert(o.daemonize && o.nodefaults && !o.start_paused);
    cmdline_options_clear(&o);

    ck_assert(parse_line("-name a,,b -m size=256 -smp 4 -monitor none -version", &o, NULL));
    ck_assert_str_eq(o.name, "a,b");
    ck_assert_uint_eq(o.ram_size, 256ULL << 20);
    ck_assert_int_eq(o.smp_cpus, 4);
    ck_assert(o.monitor_given && o.monitors->len == 0 && o.show_version);
    cmdline_options_clear(&o);

    ck_assert(parse_line("-drive file=/tmp/d,,1.img,format=raw,if=ide,index=0 -drive file=b -device x,id=y,a=1,b,a=2", &o, NULL));
    ck_assert_int_eq(o.drives->len, 2);
    ck_assert_str_eq(o.drives->pdata[0], "file=/tmp/d,,1.img,format=raw,if=ide,index=0");
    ck_assert_str_eq(o.drives->pdata[1], "file=b");
    ck_assert_int_eq(o.devices->len, 1);
    DeviceSpec *dev = o.devices->pdata[0];
    ck_assert_str_eq(dev->driver, "x");
    ck_assert_str_eq(dev->id, "y");
    ck_assert_int_eq(dev->props->len, 2);
    ck_assert_str_eq(device_spec_get(dev, "a"), "2");      /* the last one wins */
    ck_assert_str_eq(device_spec_get(dev, "b"), "on");
    ck_assert(device_spec_check_unused(dev, NULL));
    cmdline_options_clear(&o);

    ck_assert(parse_line("-smp sockets=2,cores=2 -m 1001k -machine help", &o, NULL));
    ck_assert_int_eq(o.smp_cpus, 4);
    ck_assert_uint_eq(o.ram_size, 126 * 8192);    /* rounded up to 8 KiB */
    ck_assert(o.machine_help);
    cmdline_options_clear(&o);
}
END_TEST

START_TEST(test_cmdline_errors)
{
    static const struct { const char *line, *error; } cases[] = {
        { "-foo", "-foo: invalid option" },
        { "--foo", "--foo: invalid option" },
        { "--m 0", "--m: invalid size '0'" },
        { "-m", "-m: requires an argument" },
        { "-m x", "-m: invalid size 'x'" },
        { "-m 0", "-m: invalid size '0'" },
        { "-m size=1G,slots=2", "-m: invalid option 'slots'" },
        { "-smp 0", "-smp: invalid CPU count '0' (1 to 64)" },
        { "-smp two", "-smp: invalid CPU count 'two' (1 to 64)" },
        { "-accel xen", "-accel: invalid accelerator 'xen' (kvm or soft)" },
        { "-machine q35", "-machine: unsupported machine type 'q35' (use -machine help)" },
        { "-machine pc,foo=on", "-machine: unsupported machine property 'foo'" },
        { "-machine pc,accel=hvf", "-machine: invalid accelerator 'hvf' (kvm or soft)" },
        { "-display gtk", "-display: only 'none' is supported" },
        { "-device id=x", "-device: Parameter 'driver' is missing" },
        { "-device foo,id=1", "-device: Parameter 'id' expects an identifier\nIdentifiers consist of letters, "
                              "digits, '-', '.', '_', starting with a letter." },
        { "-name guest=a,colour=red", "-name: invalid option 'colour'" },
        { "-qmp bogus", "-qmp: unknown character device 'bogus' (stdio, null, file:PATH, pipe:PATH, "
                        "unix:PATH or tcp:HOST:PORT)" },
        { "-monitor unix:", "-monitor: unix: path is empty" },
        { "-serial stdio -serial none", "-serial: only one serial port is supported" },
        { "disk.img", "disk.img: unexpected argument (options start with '-')" },
        { "-accel kvm -machine accel=soft", "-accel: cannot be combined with -machine accel=" },
        { "-qmp stdio -monitor stdio", "cannot use stdio by multiple character devices" },
        { "-nographic -qmp stdio", "cannot use stdio by multiple character devices" },
        { "-daemonize -qmp stdio", "-daemonize: cannot be used with stdio (-chardev, -qmp, -monitor, -serial or "
                                   "-nographic)" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        CmdlineOptions o;
        Error *err = NULL;
        ck_assert_msg(!parse_line(cases[i].line, &o, &err), "'%s' accepted", cases[i].line);
        ck_assert_ptr_nonnull(err);
        ck_assert_msg(!strcmp(error_get_pretty(err), cases[i].error), "'%s': got '%s'", cases[i].line,
                      error_get_pretty(err));
        error_free(err);
        cmdline_options_clear(&o);
    }
}
END_TEST

START_TEST(test_cmdline_nographic)
{
    CmdlineOptions o;

    ck_assert(parse_line("-nographic", &o, NULL));
    ck_assert_str_eq(o.serial, "stdio");
    ck_assert_int_eq(o.monitors->len, 0);
    cmdline_options_clear(&o);

    ck_assert(parse_line("-nographic -serial file:/tmp/x", &o, NULL));
    ck_assert_int_eq(o.monitors->len, 1);
    const CmdlineMonitor *m = o.monitors->pdata[0];
    ck_assert(!m->is_qmp);
    ck_assert_int_eq(cmdline_find_chardev(&o, m->chardev)->kind, CHARDEV_STDIO);
    cmdline_options_clear(&o);

    ck_assert(parse_line("-nographic -nodefaults", &o, NULL));
    ck_assert_str_eq(o.serial, "none");
    ck_assert_int_eq(o.monitors->len, 0);
    cmdline_options_clear(&o);
}
END_TEST

static void check_accel(const char *line, const char *kvm_error, const char *want, const char *want_opts,
                        bool want_warning)
{
    CmdlineOptions o;
    char *accel, *opts, *warning;

    ck_assert(parse_line(line, &o, NULL));
    ck_assert_msg(cmdline_choose_accel(&o, kvm_error, &accel, &opts, &warning, NULL), "%s", line);
    ck_assert_str_eq(accel, want);
    ck_assert_pstr_eq(opts, want_opts);
    ck_assert_msg((warning != NULL) == want_warning, "%s: warning %s", line, warning);
    g_free(accel);
    g_free(opts);
    g_free(warning);
    cmdline_options_clear(&o);
}

START_TEST(test_cmdline_accel)
{
    check_accel("-S", NULL, "kvm", NULL, false);
    check_accel("-S", "/dev/kvm: No such file or directory", "soft", NULL, true);
    check_accel("-accel kvm,dirty-ring-size=4096", NULL, "kvm", "dirty-ring-size=4096", false);
    check_accel("-enable-kvm", NULL, "kvm", NULL, false);
    check_accel("-accel tcg", NULL, "soft", NULL, false);
    check_accel("-accel accel=soft,dirty-rate=5", NULL, "soft", "dirty-rate=5", false);
    check_accel("-accel kvm -accel soft", "no kvm", "soft", NULL, false);
    check_accel("-machine pc,accel=kvm:tcg", "no kvm", "soft", NULL, false);

    CmdlineOptions o;
    char *accel, *opts, *warning;
    Error *err = NULL;
    ck_assert(parse_line("-accel kvm", &o, NULL));
    ck_assert(!cmdline_choose_accel(&o, "/dev/kvm: Permission denied", &accel, &opts, &warning, &err));
    assert_error(&err, "-accel kvm: KVM is not available (/dev/kvm: Permission denied)");
    cmdline_options_clear(&o);
}
END_TEST

static Suite *runstate_suite(void)
{
    Suite *s = suite_create("system");
    TCase *tc = tcase_create("runstate");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_transitions_valid);
    tcase_add_test(tc, test_transitions_refused);
    tcase_add_test(tc, test_vm_start_stop);
    tcase_add_test(tc, test_vm_stop_not_running);
    tcase_add_test(tc, test_qmp_queries);
    tcase_add_test(tc, test_qmp_stop_cont);
    tcase_add_test(tc, test_qmp_inmigrate_autostart);
    tcase_add_test(tc, test_qmp_system_reset);
    tcase_add_test(tc, test_qmp_cont_handed_over);
    tcase_add_test(tc, test_qmp_quit);
    tcase_add_test(tc, test_requests_from_other_thread);
    tcase_add_test(tc, test_main_loop_drops_bql_in_poll);
    tcase_add_test(tc, test_main_loop_sigterm);
    suite_add_tcase(s, tc);

    TCase *parse = tcase_create("parsing");
    tcase_add_test(parse, test_parse_size);
    tcase_add_test(parse, test_chardev_good);
    tcase_add_test(parse, test_chardev_bad);
    tcase_add_test(parse, test_cmdline_defaults);
    tcase_add_test(parse, test_cmdline_full);
    tcase_add_test(parse, test_cmdline_errors);
    tcase_add_test(parse, test_cmdline_nographic);
    tcase_add_test(parse, test_cmdline_accel);
    suite_add_tcase(s, parse);
    return s;
}

int main(void)
{
    return check_run_suite(runstate_suite());
}
