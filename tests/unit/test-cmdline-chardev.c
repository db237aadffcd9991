/*
 * -chardev, -mon and the shorthands that become chardevs (-qmp, -monitor,
 * -serial): what QEMU 7.2's tools and libvirt pass is accepted in any order,
 * and bad combinations are refused with QEMU-like texts.
 */
#include <string.h>
#include "unit-test.h"
#include "chardev-spec.h"
#include "../../system/cmdline.h"
#include "device-spec.h"

static bool parse_argv(const char *const *args, CmdlineOptions *o, Error **errp)
{
    g_autoptr(GPtrArray) argv = g_ptr_array_new();

    g_ptr_array_add(argv, (char *)"migvm");
    for (const char *const *a = args; *a; a++) {
        g_ptr_array_add(argv, (char *)*a);
    }
    cmdline_options_init(o);
    return cmdline_parse((int)argv->len, (char **)argv->pdata, o, errp) && cmdline_finish(o, errp);
}

/* Words separated by single spaces (no argument here has a space). */
static bool parse_line(const char *line, CmdlineOptions *o, Error **errp)
{
    g_auto(GStrv) words = g_strsplit(line, " ", -1);
    return parse_argv((const char *const *)words, o, errp);
}

static const CmdlineMonitor *monitor_at(const CmdlineOptions *o, guint i)
{
    ck_assert_uint_gt(o->monitors->len, i);
    return o->monitors->pdata[i];
}

/* ---- -chardev ---------------------------------------------------------------- */

START_TEST(test_chardev_socket)
{
    ChardevSpec s;

    ck_assert(chardev_spec_parse_chardev("socket,id=mon,path=/tmp/m.sock", &s, NULL));
    ck_assert_int_eq(s.kind, CHARDEV_UNIX);
    ck_assert_str_eq(s.id, "mon");
    ck_assert_str_eq(s.path, "/tmp/m.sock");
    ck_assert(!s.server && !s.wait && s.reconnect == 0);     /* -chardev: a client by default */
    chardev_spec_clear(&s);

    ck_assert(chardev_spec_parse_chardev("socket,id=c,path=/tmp/a,,b,server=on,wait=off", &s, NULL));
    ck_assert_str_eq(s.path, "/tmp/a,b");
    ck_assert(s.server && !s.wait);
    chardev_spec_clear(&s);

    ck_assert(chardev_spec_parse_chardev("socket,id=c,path=/tmp/a,server=on", &s, NULL));
    ck_assert(s.server && s.wait);                            /* QEMU: a server waits by default */
    chardev_spec_clear(&s);

    ck_assert(chardev_spec_parse_chardev("socket,id=charmonitor,fd=23,server=on,wait=off", &s, NULL));
    ck_assert_int_eq(s.kind, CHARDEV_FD);
    ck_assert_int_eq(s.fd, 23);
    chardev_spec_clear(&s);

    ck_assert(chardev_spec_parse_chardev("socket,id=t,host=127.0.0.1,port=4444,reconnect=2,nodelay=on", &s, NULL));
    ck_assert_int_eq(s.kind, CHARDEV_TCP);
    ck_assert_str_eq(s.host, "127.0.0.1");
    ck_assert_str_eq(s.port, "4444");
    ck_assert_int_eq(s.reconnect, 2);
    g_autofree char *text = chardev_spec_describe(&s);
    ck_assert_str_eq(text, "tcp:127.0.0.1:4444");
    chardev_spec_clear(&s);

    ck_assert(chardev_spec_parse_chardev("socket,id=t,host=,port=5555,server=on,wait=off", &s, NULL));
    ck_assert_str_eq(s.host, "0.0.0.0");
    chardev_spec_clear(&s);

    /* QEMU's short-form booleans, as older scripts write them. */
    ck_assert(chardev_spec_parse_chardev("socket,id=l,path=/tmp/l,server,nowait,nodelay", &s, NULL));
    ck_assert(s.server && !s.wait);
    chardev_spec_clear(&s);
    ck_assert(chardev_spec_parse_chardev("socket,id=l,path=/tmp/l,noserver", &s, NULL));
    ck_assert(!s.server && !s.wait);
    chardev_spec_clear(&s);
}
END_TEST

START_TEST(test_chardev_other_backends)
{
    ChardevSpec s;

    ck_assert(chardev_spec_parse_chardev("stdio,id=s,signal=off", &s, NULL));
    ck_assert_int_eq(s.kind, CHARDEV_STDIO);
    chardev_spec_clear(&s);
    ck_assert(chardev_spec_parse_chardev("file,id=f,path=/tmp/out.log", &s, NULL));
    ck_assert_int_eq(s.kind, CHARDEV_FILE);
    ck_assert(!s.append);                                     /* QEMU truncates unless append=on */
    chardev_spec_clear(&s);
    ck_assert(chardev_spec_parse_chardev("file,id=f,path=/tmp/out.log,append=on", &s, NULL));
    ck_assert(s.append);
    chardev_spec_clear(&s);
    ck_assert(chardev_spec_parse_chardev("pipe,id=p,path=/tmp/fifo", &s, NULL));
    ck_assert_int_eq(s.kind, CHARDEV_PIPE);
    chardev_spec_clear(&s);
    ck_assert(chardev_spec_parse_chardev("null,id=n", &s, NULL));
    ck_assert_int_eq(s.kind, CHARDEV_NONE);
    chardev_spec_clear(&s);
}
END_TEST

START_TEST(test_chardev_errors)
{
    static const struct { const char *text, *error; } cases[] = {
        { "socket,path=/tmp/a", "chardev: no id specified" },
        { "bogus,id=x", "'bogus' is not a valid char driver name" },
        { "pty,id=x", "'pty' chardevs are not supported by migvm (socket, stdio, file, pipe or null)" },
        { "id=x", "chardev: backend name expected first (socket, stdio, file, pipe or null)" },
        { "socket,id=x", "chardev: socket: one of 'path', 'host' or 'fd' is required" },
        { "socket,id=x,path=/a,host=h", "None or one of 'path', 'fd' or 'host' option required." },
        { "socket,id=x,host=127.0.0.1", "chardev: socket: no port given" },
        { "socket,id=x,path=/a,port=4", "'port' needs 'host'" },
        { "socket,id=x,fd=abc", "Unable to parse FD number abc" },
        { "socket,id=x,path=/a,server=maybe", "Parameter 'server' expects 'on' or 'off'" },
        { "socket,id=x,path=/a,server=on,reconnect=1",
          "'reconnect' option is incompatible with socket in server listen mode" },
        { "socket,id=x,path=/a,wait=off", "'wait' option is incompatible with socket in client connect mode" },
        { "socket,id=x,path=/a,reconnect=-1", "Parameter 'reconnect' expects a non-negative number of seconds" },
        { "socket,id=x,path=/a,telnet=on", "'telnet' is not supported by migvm (plain sockets only)" },
        { "socket,id=x,path=/a,tls-creds=t", "'tls-creds' is not supported by migvm" },
        { "null,id=x,foo=1", "Invalid parameter 'foo'" },
        { "null,id=x,mux=on", "'mux' is not supported by migvm (one user per chardev)" },
        { "file,id=x", "chardev: file: no filename given" },
        { "pipe,id=x", "chardev: pipe: no device path given" },
        { "stdio,id=x,path=/a", "Invalid parameter 'path'" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        ChardevSpec s;
        Error *err = NULL;
        ck_assert_msg(!chardev_spec_parse_chardev(cases[i].text, &s, &err), "'%s' accepted", cases[i].text);
        ck_assert_msg(err && !strcmp(error_get_pretty(err), cases[i].error), "'%s': got '%s'", cases[i].text,
                      err ? error_get_pretty(err) : "(none)");
        error_free(err);
        ck_assert_ptr_null(s.id);
        ck_assert_ptr_null(s.path);
    }
}
END_TEST

/* ---- whole command lines ----------------------------------------------------- */

START_TEST(test_qemu_machine_line)
{
    CmdlineOptions o;
    Error *err = NULL;

    /* What qemu.machine.QEMUMachine passes, with set_console(). */
    ck_assert(parse_line("-display none -vga none -chardev socket,id=mon,path=/tmp/qm/m.sock "
                         "-mon chardev=mon,mode=control -chardev socket,id=console,path=/tmp/qm/c.sock,"
                         "server=on,wait=off -serial chardev:console -accel soft -nodefaults", &o, &err));
    ck_assert_ptr_null(err);
    const CmdlineMonitor *m = monitor_at(&o, 0);
    ck_assert(m->is_qmp && !m->pretty);
    const ChardevSpec *mon = cmdline_find_chardev(&o, m->chardev);
    ck_assert(mon->kind == CHARDEV_UNIX && !mon->server);
    ck_assert_str_eq(o.serial_chardev, "console");
    ck_assert(cmdline_find_chardev(&o, "console")->server);
    cmdline_options_clear(&o);
}
END_TEST

START_TEST(test_libvirt_line)
{
    CmdlineOptions o;

    ck_assert(parse_line("-name guest=vm1,debug-threads=on -S -no-user-config -nodefaults -no-shutdown "
                         "-chardev socket,id=charmonitor,fd=27,server=on,wait=off "
                         "-mon chardev=charmonitor,id=monitor,mode=control -display none", &o, NULL));
    ck_assert(o.start_paused && o.no_shutdown && o.nodefaults);
    ck_assert_str_eq(o.name, "vm1");
    const ChardevSpec *spec = cmdline_find_chardev(&o, monitor_at(&o, 0)->chardev);
    ck_assert(spec->kind == CHARDEV_FD && spec->fd == 27 && spec->server && !spec->wait);
    ck_assert_ptr_null(o.serial_chardev);
    cmdline_options_clear(&o);
}
END_TEST

START_TEST(test_any_order_and_shorthands)
{
    CmdlineOptions o;

    /* A -mon may name a chardev defined after it; -mon's implied key is chardev. */
    ck_assert(parse_line("-mon hmp0 -mon chardev=q,mode=control,pretty=on -chardev null,id=hmp0 "
                         "-chardev socket,id=q,host=localhost,port=4000,server=on,wait=off "
                         "-qmp unix:/tmp/x.sock,server=on,wait=off -monitor null -serial chardev:con "
                         "-chardev file,id=con,path=/tmp/con.log", &o, NULL));
    ck_assert_uint_eq(o.monitors->len, 4);
    ck_assert(!monitor_at(&o, 0)->is_qmp);
    ck_assert(monitor_at(&o, 1)->is_qmp && monitor_at(&o, 1)->pretty);
    ck_assert_str_eq(monitor_at(&o, 2)->chardev, "compat_monitor0");
    ck_assert_str_eq(monitor_at(&o, 2)->origin, "-qmp");
    ck_assert(cmdline_find_chardev(&o, "compat_monitor0")->server);
    ck_assert_int_eq(cmdline_find_chardev(&o, "compat_monitor1")->kind, CHARDEV_NONE);
    ck_assert_str_eq(o.serial_chardev, "con");
    cmdline_options_clear(&o);

    /* -serial SPEC becomes chardev serial0; -serial none has none. */
    ck_assert(parse_line("-serial unix:/tmp/s.sock,server=on,wait=off", &o, NULL));
    ck_assert_str_eq(o.serial_chardev, "serial0");
    ck_assert_int_eq(cmdline_find_chardev(&o, "serial0")->kind, CHARDEV_UNIX);
    cmdline_options_clear(&o);
    ck_assert(parse_line("-serial none", &o, NULL));
    ck_assert_ptr_null(o.serial_chardev);
    cmdline_options_clear(&o);

    /* -qmp tcp:...,reconnect=N: a client that tries again. */
    ck_assert(parse_line("-qmp tcp:127.0.0.1:4444,server=off,reconnect=3", &o, NULL));
    const ChardevSpec *spec = cmdline_find_chardev(&o, "compat_monitor0");
    ck_assert(!spec->server && spec->reconnect == 3);
    cmdline_options_clear(&o);
}
END_TEST

START_TEST(test_combination_errors)
{
    static const struct { const char *line, *error; } cases[] = {
        { "-mon chardev=nope", "-mon: chardev \"nope\" not found" },
        { "-chardev null,id=x -mon chardev=x -mon chardev=x,mode=control", "-mon: Device 'x' is in use" },
        { "-chardev null,id=x -serial chardev:x -mon chardev=x", "-mon: Device 'x' is in use" },
        { "-chardev null,id=x -chardev null,id=x", "-chardev: Duplicate ID 'x' for chardev" },
        { "-chardev null,id=x -mon chardev=x,mode=bogus", "-mon: Parameter 'mode' does not accept value 'bogus'" },
        { "-chardev null,id=x -mon chardev=x,mode=readline,pretty=on",
          "-mon: 'pretty' is not compatible with HMP monitors" },
        { "-mon mode=control", "-mon: Parameter 'chardev' is missing" },
        { "-mon chardev=x,colour=red", "-mon: Invalid parameter 'colour'" },
        { "-serial chardev:nope", "-serial: chardev 'nope' not found" },
        { "-serial chardev:", "-serial: chardev: ID expected" },
        { "-device {\"chardev\":\"c\"}", "-device: Parameter 'driver' is missing" },
        { "-device {\"driver\":1}", "-device: Invalid parameter type for 'driver', expected: string" },
        { "-device {\"driver\":\"isa-serial\"", "-device: JSON parse error, premature EOI" },
        { "-serial mon:stdio", "-serial: 'mon:stdio': a monitor sharing the serial port (mon:) is not supported "
                               "by migvm: give -serial and -monitor their own chardevs" },
        { "-chardev stdio,id=a -chardev stdio,id=b", "cannot use stdio by multiple character devices" },
        { "-chardev stdio,id=a -qmp stdio", "cannot use stdio by multiple character devices" },
        { "-chardev stdio,id=a -daemonize",
          "-daemonize: cannot be used with stdio (-chardev, -qmp, -monitor, -serial or -nographic)" },
        { "-monitor stdio,pretty=on", "-monitor: 'pretty' is not compatible with HMP monitors" },
        { "-qmp unix:/tmp/a,server=on,reconnect=1",
          "-qmp: 'reconnect' option is incompatible with socket in server listen mode" },
        { "-chardev", "-chardev: requires an argument" },
        { "-device isa-serial,chardev=nope", "-device isa-serial: chardev 'nope' not found" },
        { "-chardev null,id=c -device isa-serial,chardev=c -mon chardev=c",
          "-mon: Device 'c' is in use" },
        { "-chardev null,id=c -serial stdio -device isa-serial,chardev=c",
          "-device isa-serial: only one serial port is supported" },
        { "-chardev null,id=c -device isa-serial,chardev=c -device isa-serial",
          "-device isa-serial: only one serial port is supported" },
        { "-vnc :1", "-vnc: not supported by migvm (no display: use -display none)" },
        { "--netdev user,id=n", "--netdev: not supported by migvm (no network devices)" },
        { "-cdrom x.iso", "-cdrom: not supported by migvm (the only disk is -drive file=IMAGE,format=raw)" },
        { "-no-such-option", "-no-such-option: invalid option" },
    };

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        CmdlineOptions o;
        Error *err = NULL;
        ck_assert_msg(!parse_line(cases[i].line, &o, &err), "'%s' accepted", cases[i].line);
        ck_assert_msg(err && !strcmp(error_get_pretty(err), cases[i].error), "'%s': got '%s'", cases[i].line,
                      err ? error_get_pretty(err) : "(none)");
        error_free(err);
        cmdline_options_clear(&o);
    }
}
END_TEST

START_TEST(test_isa_serial)
{
    CmdlineOptions o;

    /* QEMUMachine.set_console(device_type="isa-serial"), -nographic leaves it alone. */
    ck_assert(parse_line("-nographic -device isa-serial,chardev=console "
                         "-chardev socket,id=console,path=/tmp/c.sock,server=on,wait=off", &o, NULL));
    ck_assert(o.isa_serial);
    ck_assert_str_eq(o.serial_chardev, "console");
    ck_assert_uint_eq(o.devices->len, 1);               /* the board checks its other properties */
    ck_assert_uint_eq(o.monitors->len, 1);              /* -nographic: HMP takes stdio */
    cmdline_options_clear(&o);

    ck_assert(parse_line("-nodefaults -device isa-serial", &o, NULL));
    ck_assert(o.isa_serial);
    ck_assert_ptr_null(o.serial_chardev);               /* a port with no backend */
    cmdline_options_clear(&o);

    /* libvirt's JSON form. */
    ck_assert(parse_line("-chardev null,id=charserial0 -device "
                         "{\"driver\":\"isa-serial\",\"chardev\":\"charserial0\",\"id\":\"serial0\",\"index\":0}",
                         &o, NULL));
    ck_assert_str_eq(o.serial_chardev, "charserial0");
    DeviceSpec *dev = o.devices->pdata[0];
    ck_assert_str_eq(dev->driver, "isa-serial");
    ck_assert_str_eq(dev->id, "serial0");
    ck_assert_str_eq(device_spec_get(dev, "index"), "0");
    cmdline_options_clear(&o);
}
END_TEST

START_TEST(test_no_shutdown_flags)
{
    CmdlineOptions o;

    ck_assert(parse_line("-no-shutdown -no-user-config -S", &o, NULL));
    ck_assert(o.no_shutdown && o.start_paused);
    cmdline_options_clear(&o);
    ck_assert(parse_line("-S", &o, NULL));
    ck_assert(!o.no_shutdown);
    cmdline_options_clear(&o);
}
END_TEST

static Suite *cmdline_chardev_suite(void)
{
    Suite *s = suite_create("cmdline-chardev");
    TCase *tc = tcase_create("parse");

    tcase_add_test(tc, test_chardev_socket);
    tcase_add_test(tc, test_chardev_other_backends);
    tcase_add_test(tc, test_chardev_errors);
    tcase_add_test(tc, test_qemu_machine_line);
    tcase_add_test(tc, test_libvirt_line);
    tcase_add_test(tc, test_any_order_and_shorthands);
    tcase_add_test(tc, test_combination_errors);
    tcase_add_test(tc, test_isa_serial);
    tcase_add_test(tc, test_no_shutdown_flags);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(cmdline_chardev_suite());
}
