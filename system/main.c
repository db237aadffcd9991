/*
 * migvm's entry point: command line, accelerator choice, start-up order,
 * main loop, orderly exit.
 *
 * Start-up:
 *   parse options -> choose accelerator -> [-daemonize: fork, parent waits]
 *   -> pidfile -> BQL, main loop, signals -> machine_init -> monitors listen
 *   -> -incoming (inmigrate) | vm_start unless -S -> [daemon: tell parent, stdio
 *   to /dev/null] -> main loop until shutdown -> stop vCPUs, close monitors
 *   (socket files removed), free the machine, remove the pidfile -> exit 0.
 *
 * -daemonize forks before any thread exists (glib's signal thread, vCPUs),
 * which is the only safe moment; the parent still exits 0 only after the
 * child's sockets listen, and exits 1 if the child fails on the way.
 *
 * -nographic (unless -nodefaults): the serial port goes to stdio when no
 * -serial was given; when -serial points elsewhere and no -monitor was
 * given, an HMP monitor takes stdio instead (QEMU multiplexes both on
 * stdio; migvm gives stdio to one of them).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include "block.h"
#include "chardev.h"
#include "chardev-info.h"
#include "device-spec.h"
#include "fd-io.h"
#include "vm.h"
#include "machine.h"
#include "monitor.h"
#include "user-object.h"
#include "cmdline.h"
#include "main-loop.h"

#include "dirtylimit.h"
#include "migration.h"
#include "vmstate.h"

#define MIGVM_VERSION_LINE "migvm version 0.1 (QEMU 7.2.0 compatible)"

typedef struct Startup {
    CmdlineOptions opts;
    char *accel;              /* the chosen accelerator and its options */
    char *accel_opts;
    int daemon_ready_fd;      /* write end of the pipe the parent waits on */
    int pidfile_fd;
    bool machine_up;
    bool migration_up;
    bool monitors_up;
    GPtrArray *idle_chardevs; /* Chardev*: the chardevs nobody uses, open as QEMU has them */
} Startup;

/* ---- accelerator ------------------------------------------------------------- */

/* NULL when /dev/kvm can be opened read-write, else why not. */
static char *kvm_unusable_reason(void)
{
    int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

    if (fd < 0) {
        return g_strdup_printf("/dev/kvm: %s", strerror(errno));
    }
    close(fd);
    return NULL;
}

static bool config_from_options(Startup *s, Error **errp)
{
    g_autofree char *kvm_error = kvm_unusable_reason();
    g_autofree char *warning = NULL;

    if (!cmdline_choose_accel(&s->opts, kvm_error, &s->accel, &s->accel_opts, &warning, errp)) {
        return false;
    }
    if (warning) {
        warn_report("%s", warning);
    }
    vm_config.name = g_strdup(s->opts.name);
    vm_config.kvm_present = kvm_error == NULL;
    vm_config.kvm_enabled = !strcmp(s->accel, "kvm");
    return true;
}

static void config_clear(Startup *s)
{
    g_free(vm_config.name);
    memset(&vm_config, 0, sizeof(vm_config));
    g_clear_pointer(&s->accel, g_free);
    g_clear_pointer(&s->accel_opts, g_free);
}

/* ---- daemon and pidfile ----------------------------------------------------------- */

static void daemonize_start(Startup *s)
{
    int fds[2];

    if (pipe(fds) < 0) {
        error_report("-daemonize: pipe: %s", strerror(errno));
        exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        error_report("-daemonize: fork: %s", strerror(errno));
        exit(1);
    }
    if (pid > 0) {
        /* Parent: exit 0 once the child says it is ready, 1 if it died. */
        char status = 1;
        close(fds[1]);
        _exit(fd_read_full(fds[0], &status, 1) == 1 && status == 0 ? 0 : 1);
    }
    close(fds[0]);
    s->daemon_ready_fd = fds[1];
    setsid();
}

static void daemonize_finish(Startup *s)
{
    int null = open("/dev/null", O_RDWR);
    char ok = 0;

    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO) {
            close(null);
        }
    }
    if (fd_write_full(s->daemon_ready_fd, &ok, 1) != 1) {
        /* The parent is gone; nobody to tell. */
    }
    close(s->daemon_ready_fd);
    s->daemon_ready_fd = -1;
}

static bool pidfile_create(Startup *s, const char *path, Error **errp)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

    if (fd < 0) {
        error_setg_errno(errp, errno, "-pidfile: cannot open '%s'", path);
        return false;
    }
    /* The lock, held until exit, tells a second instance the file is in use. */
    if (lockf(fd, F_TLOCK, 0) < 0) {
        error_setg(errp, "-pidfile: '%s' is locked by another running process", path);
        close(fd);
        return false;
    }
    g_autofree char *text = g_strdup_printf("%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || fd_write_full(fd, text, strlen(text)) != strlen(text)) {
        error_setg_errno(errp, errno, "-pidfile: cannot write '%s'", path);
        close(fd);
        unlink(path);
        return false;
    }
    s->pidfile_fd = fd;
    return true;
}

/* ---- start-up and exit --------------------------------------------------------------- */

static bool start_monitors(const CmdlineOptions *o, Error **errp)
{
    for (guint i = 0; i < o->monitors->len; i++) {
        const CmdlineMonitor *mon = o->monitors->pdata[i];
        ChardevSpec spec;
        chardev_spec_copy(&spec, cmdline_find_chardev(o, mon->chardev));
        spec.pretty = mon->pretty;
        bool ok = mon->is_qmp ? monitor_init_qmp(&spec, errp) : monitor_init_hmp(&spec, errp);
        chardev_spec_clear(&spec);
        if (ok) {
            chardev_info_set_frontend_open(mon->chardev);
        }
        if (!ok) {
            if (!strcmp(mon->origin, "-mon")) {
                error_prepend(errp, "-chardev %s: ", mon->chardev);
            } else {
                error_prepend(errp, "%s: ", mon->origin);
            }
            return false;
        }
    }
    return true;
}

static void close_chardev(gpointer chr)
{
    chardev_close(chr);
}

/* QEMU opens every chardev, used or not (a socket listens, a file is
 * created); migvm opens the unused ones once their users started. */
static bool open_idle_chardevs(Startup *s, Error **errp)
{
    const CmdlineOptions *o = &s->opts;

    for (guint i = 0; i < o->chardevs->len; i++) {
        const ChardevSpec *spec = o->chardevs->pdata[i];
        if (chardev_info_is_opened(spec->id)) {
            continue;
        }
        Chardev *chr = chardev_open(spec, errp);
        if (!chr) {
            error_prepend(errp, "-chardev %s: ", spec->id);
            return false;
        }
        g_ptr_array_add(s->idle_chardevs, chr);
    }
    return true;
}

static bool start_guest(const CmdlineOptions *o, Error **errp)
{
    vm_autostart = !o->start_paused;
    vm_no_shutdown = o->no_shutdown;
    if (o->incoming) {
        if (!runstate_set(RUN_STATE_INMIGRATE, errp)) {
            return false;
        }
        if (!migration_incoming_start(o->incoming, errp)) {
            error_prepend(errp, "-incoming %s: ", o->incoming);
            return false;
        }
        return true;
    }
    return !vm_autostart || vm_start(errp);
}

/* Every -drive, before the board (it boots from one, devices attach them). */
static bool open_drives(const CmdlineOptions *o, Error **errp)
{
    for (guint i = 0; i < o->drives->len; i++) {
        if (!drive_new(o->drives->pdata[i], errp)) {
            error_prepend(errp, "-drive %s: ", (const char *)o->drives->pdata[i]);
            return false;
        }
    }
    return true;
}

/* Every -object, in order, before the monitors and -incoming can use them. */
static bool create_objects(const CmdlineOptions *o, Error **errp)
{
    for (guint i = 0; i < o->objects->len; i++) {
        if (!user_object_add_text(o->objects->pdata[i], errp)) {
            error_prepend(errp, "-object %s: ", (const char *)o->objects->pdata[i]);
            return false;
        }
    }
    return true;
}

static bool start_up(Startup *s, Error **errp)
{
    const MachineConfig machine = {
        .type = s->opts.machine, .ram_size = s->opts.ram_size, .smp_cpus = s->opts.smp_cpus,
        .mem_prealloc = s->opts.mem_prealloc,
        .topology = { s->opts.smp_sockets, s->opts.smp_dies, s->opts.smp_cores, s->opts.smp_threads },
        .accel = s->accel, .accel_opts = s->accel_opts,
        .serial_chardev = cmdline_find_chardev(&s->opts, s->opts.serial_chardev),
        .devices = (DeviceSpec **)s->opts.devices->pdata, .n_devices = s->opts.devices->len,
    };

    for (guint i = 0; i < s->opts.chardevs->len; i++) {
        chardev_info_add(s->opts.chardevs->pdata[i]);
    }
    s->idle_chardevs = g_ptr_array_new_with_free_func(close_chardev);
    if (!vmstate_test_omit_init(errp) || !open_drives(&s->opts, errp) || !machine_init(&machine, errp)) {
        return false;
    }
    s->machine_up = true;
    if (!migration_init(errp) || !create_objects(&s->opts, errp)) {
        return false;
    }
    s->migration_up = true;
    s->monitors_up = true;         /* monitor_cleanup also undoes a partial start */
    return start_monitors(&s->opts, errp) && open_idle_chardevs(s, errp) && start_guest(&s->opts, errp);
}

static void tear_down(Startup *s)
{
    if (s->machine_up) {
        dirty_limit_shutdown();    /* its thread reads the vCPUs' dirty counts */
    }
    if (s->migration_up) {
        migration_shutdown();      /* an outgoing migration stops before the machine goes */
    }
    if (s->migration_up && migration_incoming_postcopy_paused()) {
        /* vCPUs may wait inside page faults for pages only the paused
         * source has: they can be neither paused nor joined, and this copy
         * of the guest can never be whole. */
        error_report("quitting during a paused postcopy: this copy of the guest is incomplete and lost");
        if (s->pidfile_fd >= 0) {
            unlink(s->opts.pidfile);
        }
        fflush(stdout);
        _exit(0);
    }
    if (s->machine_up) {
        cpus_pause_all();
        /* Devices' requests complete while the devices still exist. */
        blk_drain_all();
    }
    if (s->monitors_up) {
        monitor_cleanup();
    }
    if (s->machine_up) {
        machine_cleanup();
    }
    if (s->idle_chardevs) {
        g_ptr_array_free(s->idle_chardevs, TRUE);
    }
    chardev_info_clear();
    block_cleanup();
    user_object_del_all();
    main_loop_cleanup();
    if (s->pidfile_fd >= 0) {
        unlink(s->opts.pidfile);
        close(s->pidfile_fd);
    }
    bql_unlock();
    config_clear(s);
    cmdline_options_clear(&s->opts);
}

static void print_machines(void)
{
    printf("Supported machines are:\n");
    printf("pc                   Standard PC with a 16550 serial port (default)\n");
    printf("none                 empty machine\n");
}

/* Parse and check everything that needs no resources; exits on -help etc. */
static void parse_or_exit(Startup *s, int argc, char **argv)
{
    Error *err = NULL;

    cmdline_options_init(&s->opts);
    if (!cmdline_parse(argc, argv, &s->opts, &err)) {
        error_report_err(err);
        cmdline_options_clear(&s->opts);
        exit(1);
    }
    if (s->opts.show_help || s->opts.show_version || s->opts.machine_help) {
        if (s->opts.show_help) {
            cmdline_print_help(stdout);
        } else if (s->opts.show_version) {
            printf("%s\n", MIGVM_VERSION_LINE);
        } else {
            print_machines();
        }
        cmdline_options_clear(&s->opts);
        exit(0);
    }
    if (!cmdline_finish(&s->opts, &err) || !config_from_options(s, &err)) {
        error_report_err(err);
        config_clear(s);
        cmdline_options_clear(&s->opts);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    Startup s = { .daemon_ready_fd = -1, .pidfile_fd = -1 };
    Error *err = NULL;

    parse_or_exit(&s, argc, argv);
    if (s.opts.daemonize) {
        daemonize_start(&s);
    }
    if (s.opts.pidfile && !pidfile_create(&s, s.opts.pidfile, &err)) {
        error_report_err(err);
        config_clear(&s);
        cmdline_options_clear(&s.opts);
        return 1;
    }

    bql_lock();
    main_loop_init();
    main_loop_add_signal_handlers();
    if (!start_up(&s, &err)) {
        error_report_err(err);
        tear_down(&s);
        return 1;
    }
    if (s.daemon_ready_fd >= 0) {
        daemonize_finish(&s);
    }
    main_loop_run();
    tear_down(&s);
    return 0;
}
