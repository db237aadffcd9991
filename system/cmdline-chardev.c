/*
 * The command line's character devices and their users, as QEMU 7.2 has them:
 *
 *   -chardev BACKEND,id=ID,...            a named chardev (chardev-spec.c)
 *   -mon [chardev=]ID[,mode=control|readline][,pretty=on|off][,id=...]
 *   -qmp SPEC / -monitor SPEC             shorthand: chardev "compat_monitorN" + -mon
 *   -serial SPEC                          shorthand: chardev "serial0" for the port
 *   -serial chardev:ID                    the port on a named chardev
 *   -device isa-serial[,chardev=ID]       the same port as a device
 *
 * Options may come in any order (a -mon may name a -chardev given after it):
 * references are resolved in cmdline_chardev_finish, which also refuses a
 * chardev used twice and stdio used by more than one chardev.
 */
#include <string.h>
#include "cmdline-int.h"
#include "device-spec.h"

static bool chardev_id_taken(const CmdlineOptions *o, const char *id)
{
    return cmdline_find_chardev(o, id) != NULL;
}

const ChardevSpec *cmdline_find_chardev(const CmdlineOptions *o, const char *id)
{
    for (guint i = 0; id && i < o->chardevs->len; i++) {
        const ChardevSpec *spec = o->chardevs->pdata[i];
        if (!strcmp(spec->id, id)) {
            return spec;
        }
    }
    return NULL;
}

bool opt_chardev(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    ChardevSpec *spec = g_new0(ChardevSpec, 1);

    if (!chardev_spec_parse_chardev(arg, spec, errp)) {
        g_free(spec);
        return false;
    }
    if (chardev_id_taken(o, spec->id)) {
        error_setg(errp, "Duplicate ID '%s' for chardev", spec->id);
        chardev_spec_clear(spec);
        g_free(spec);
        return false;
    }
    g_ptr_array_add(o->chardevs, spec);
    return true;
}

static void add_monitor(CmdlineOptions *o, const char *chardev, bool is_qmp, bool pretty, const char *origin)
{
    CmdlineMonitor *mon = g_new0(CmdlineMonitor, 1);

    mon->chardev = g_strdup(chardev);
    mon->is_qmp = is_qmp;
    mon->pretty = pretty;
    mon->origin = origin;
    g_ptr_array_add(o->monitors, mon);
}

bool opt_mon(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    g_autoptr(GPtrArray) items = split_opts(arg);
    g_autofree char *chardev = NULL;
    bool is_qmp = false, pretty = false;

    for (guint i = 0; i < items->len; i++) {
        const char *item = items->pdata[i];
        const char *eq = strchr(item, '=');
        g_autofree char *key = eq ? g_strndup(item, eq - item) : g_strdup(i == 0 ? "chardev" : item);
        const char *value = eq ? eq + 1 : (i == 0 ? item : "on");
        if (!strcmp(key, "chardev")) {
            g_free(chardev);
            chardev = g_strdup(value);
        } else if (!strcmp(key, "mode")) {
            if (strcmp(value, "control") && strcmp(value, "readline")) {
                error_setg(errp, "Parameter 'mode' does not accept value '%s'", value);
                return false;
            }
            is_qmp = !strcmp(value, "control");
        } else if (!strcmp(key, "pretty")) {
            if (!parse_bool(value, &pretty)) {
                error_setg(errp, "Parameter 'pretty' expects 'on' or 'off'");
                return false;
            }
        } else if (strcmp(key, "id") && strcmp(key, "default")) {
            error_setg(errp, "Invalid parameter '%s'", key);
            return false;
        }
    }
    if (!chardev || !*chardev) {
        error_setg(errp, "Parameter 'chardev' is missing");
        return false;
    }
    if (pretty && !is_qmp) {
        error_setg(errp, "'pretty' is not compatible with HMP monitors");
        return false;
    }
    add_monitor(o, chardev, is_qmp, pretty, "-mon");
    return true;
}

/* -qmp / -monitor SPEC: an anonymous chardev and a monitor on it. */
static bool add_shorthand_monitor(CmdlineOptions *o, const char *arg, bool is_qmp, const char *origin,
                                  Error **errp)
{
    ChardevSpec *spec = g_new0(ChardevSpec, 1);

    if (!chardev_spec_parse(arg, spec, errp)) {
        g_free(spec);
        return false;
    }
    if (spec->pretty && !is_qmp) {
        error_setg(errp, "'pretty' is not compatible with HMP monitors");
        chardev_spec_clear(spec);
        g_free(spec);
        return false;
    }
    spec->id = g_strdup_printf("compat_monitor%d", o->compat_monitors++);
    g_ptr_array_add(o->chardevs, spec);
    add_monitor(o, spec->id, is_qmp, spec->pretty, origin);
    return true;
}

bool opt_qmp(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    if (!strcmp(arg, "none")) {
        return true;
    }
    return add_shorthand_monitor(o, arg, true, "-qmp", errp);
}

bool opt_monitor(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    o->monitor_given = true;
    if (!strcmp(arg, "none")) {
        return true;
    }
    return add_shorthand_monitor(o, arg, false, "-monitor", errp);
}

bool opt_serial(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    ChardevSpec spec = { 0 };

    if (o->serial) {
        error_setg(errp, "only one serial port is supported");
        return false;
    }
    if (g_str_has_prefix(arg, "chardev:")) {
        if (!arg[8]) {
            error_setg(errp, "chardev: ID expected");
            return false;
        }
    } else if (!chardev_spec_parse(arg, &spec, errp)) {
        return false;
    }
    chardev_spec_clear(&spec);
    o->serial = g_strdup(arg);
    return true;
}

/* -device isa-serial[,chardev=ID]: the board's one serial port (COM1) on that
 * chardev. hw/device-types.c checks the device's other properties. */
bool cmdline_scan_serial_devices(CmdlineOptions *o, Error **errp)
{
    for (guint i = 0; i < o->devices->len; i++) {
        DeviceSpec *dev = o->devices->pdata[i];
        if (strcmp(dev->driver, "isa-serial")) {
            continue;
        }
        if (o->isa_serial || (o->serial && strcmp(o->serial, "none"))) {
            error_setg(errp, "-device isa-serial: only one serial port is supported");
            return false;
        }
        o->isa_serial = true;
        o->serial_device = g_strdup(device_spec_get(dev, "chardev"));
    }
    return true;
}

/* ---- after parsing ----------------------------------------------------------- */

/* The serial port's chardev: from -device isa-serial, -serial chardev:ID, or
 * a chardev "serial0" made from -serial SPEC. */
static bool resolve_serial(CmdlineOptions *o, Error **errp)
{
    const char *origin = o->isa_serial ? "-device isa-serial" : "-serial";

    if (o->isa_serial) {
        o->serial_chardev = g_strdup(o->serial_device);   /* NULL: no backend */
    } else if (o->serial && g_str_has_prefix(o->serial, "chardev:")) {
        o->serial_chardev = g_strdup(o->serial + 8);
    } else if (o->serial && strcmp(o->serial, "none")) {
        ChardevSpec *spec = g_new0(ChardevSpec, 1);
        if (!chardev_spec_parse(o->serial, spec, errp)) {
            g_free(spec);
            return false;
        }
        spec->id = g_strdup(chardev_id_taken(o, "serial0") ? "compat_serial0" : "serial0");
        g_ptr_array_add(o->chardevs, spec);
        o->serial_chardev = g_strdup(spec->id);
        return true;
    }
    if (o->serial_chardev && !cmdline_find_chardev(o, o->serial_chardev)) {
        error_setg(errp, "%s: chardev '%s' not found", origin, o->serial_chardev);
        return false;
    }
    return true;
}

static bool claim(GHashTable *users, const char *id, const char *origin, Error **errp)
{
    if (g_hash_table_contains(users, id)) {
        error_setg(errp, "%s: Device '%s' is in use", origin, id);
        return false;
    }
    g_hash_table_add(users, (gpointer)id);
    return true;
}

bool cmdline_chardev_finish(CmdlineOptions *o, Error **errp)
{
    g_autoptr(GHashTable) users = g_hash_table_new(g_str_hash, g_str_equal);

    if (!resolve_serial(o, errp)) {
        return false;
    }
    if (o->serial_chardev && !claim(users, o->serial_chardev, o->isa_serial ? "-device isa-serial" : "-serial",
                                    errp)) {
        return false;
    }
    for (guint i = 0; i < o->monitors->len; i++) {
        const CmdlineMonitor *mon = o->monitors->pdata[i];
        if (!cmdline_find_chardev(o, mon->chardev)) {
            error_setg(errp, "%s: chardev \"%s\" not found", mon->origin, mon->chardev);
            return false;
        }
        if (!claim(users, mon->chardev, mon->origin, errp)) {
            return false;
        }
    }
    int stdio = 0;
    for (guint i = 0; i < o->chardevs->len; i++) {
        stdio += ((const ChardevSpec *)o->chardevs->pdata[i])->kind == CHARDEV_STDIO;
    }
    if (stdio > 1) {
        error_setg(errp, "cannot use stdio by multiple character devices");
        return false;
    }
    if (o->daemonize && stdio) {
        error_setg(errp, "-daemonize: cannot be used with stdio (-chardev, -qmp, -monitor, -serial or "
                   "-nographic)");
        return false;
    }
    return true;
}

void cmdline_monitor_free(gpointer p)
{
    CmdlineMonitor *mon = p;

    g_free(mon->chardev);
    g_free(mon);
}

void cmdline_chardev_free(gpointer p)
{
    chardev_spec_clear(p);
    g_free(p);
}
