/*
 * migvm's command line: a QEMU-compatible subset.
 *
 * Options take one dash or two (-m / --m), their argument is the next word.
 * Option arguments use QEMU's "key=value,key=value" syntax where QEMU does,
 * with ",," standing for a literal comma. Errors are one line naming the
 * option ("-m: invalid size 'x'"); main.c prints them and exits 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmdline-int.h"
#include "device-spec.h"

typedef bool OptionFn(CmdlineOptions *o, const char *name, const char *arg, Error **errp);

typedef struct OptionDef {
    const char *name;
    bool has_arg;
    OptionFn *fn;
    const char *help;         /* argument and one-line description, for -help */
} OptionDef;

/* ---- small parsers ------------------------------------------------------ */

/* Split "key=value" into new strings *key and *value;
 * *value is NULL when there is no '='. */
static void split_key_value(const char *item, char **key, char **value)
{
    const char *eq = strchr(item, '=');

    if (eq) {
        *key = g_strndup(item, eq - item);
        *value = g_strdup(eq + 1);
    } else {
        *key = g_strdup(item);
        *value = NULL;
    }
}

/* Item i of a QemuOpts-style list as *key and *value (new strings); a
 * first item without '=' is the value of the implied key, as in "-m 1G"
 * for "-m size=1G". *value is NULL for any other item without '='. */
static void opt_item(GPtrArray *items, guint i, const char *implied, char **key, char **value)
{
    split_key_value(items->pdata[i], key, value);
    if (!*value && i == 0 && implied) {
        *value = *key;
        *key = g_strdup(implied);
    }
}

/* The text after the first unescaped comma, or NULL. */
static const char *after_first_item(const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p == ',' && p[1] == ',') {
            p++;
        } else if (*p == ',') {
            return p + 1;
        }
    }
    return NULL;
}

static bool parse_count(const char *text, long max, long *out)
{
    char *end;

    if (!g_ascii_isdigit(text[0])) {
        return false;
    }
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || v < 1 || v > max) {
        return false;
    }
    *out = v;
    return true;
}

/* ---- options ------------------------------------------------------------- */

static bool opt_name(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    g_autoptr(GPtrArray) items = split_opts(arg);
    bool ok = true;

    for (guint i = 0; i < items->len && ok; i++) {
        g_autofree char *key = NULL, *value = NULL;
        opt_item(items, i, "guest", &key, &value);
        if (!value) {
            error_setg(errp, "invalid option '%s'", key);
            ok = false;
        } else if (!strcmp(key, "guest") || !strcmp(key, "name")) {
            g_free(o->name);
            o->name = g_steal_pointer(&value);
        } else if (strcmp(key, "debug-threads") && strcmp(key, "process")) {
            error_setg(errp, "invalid option '%s'", key);
            ok = false;
        }
    }
    return ok;
}

static bool opt_m(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    g_autoptr(GPtrArray) items = split_opts(arg);

    for (guint i = 0; i < items->len; i++) {
        g_autofree char *key = NULL, *value = NULL;
        opt_item(items, i, "size", &key, &value);
        if (!value || strcmp(key, "size")) {
            error_setg(errp, "invalid option '%s'", key);
            return false;
        }
        uint64_t size;
        if (!parse_size(value, 1ULL << 20, &size)) {
            error_setg(errp, "invalid size '%s'", value);
            return false;
        }
        /* QEMU keeps RAM a multiple of 8 KiB. */
        if (size > UINT64_MAX - 8191) {
            error_setg(errp, "invalid size '%s'", value);
            return false;
        }
        o->ram_size = (size + 8191) & ~8191ULL;
    }
    return true;
}

static bool opt_smp(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    static const char *const topo_keys[] = { "sockets", "dies", "cores", "threads" };
    g_autoptr(GPtrArray) items = split_opts(arg);
    long cpus = 0, topo = 1, maxcpus = 0;
    long levels[G_N_ELEMENTS(topo_keys)] = { 0 };

    for (guint i = 0; i < items->len; i++) {
        g_autofree char *key = NULL, *value = NULL;
        opt_item(items, i, "cpus", &key, &value);
        long n;
        bool is_topo = false;
        size_t level = 0;
        for (size_t k = 0; value && k < G_N_ELEMENTS(topo_keys); k++) {
            if (!strcmp(key, topo_keys[k])) {
                is_topo = true;
                level = k;
            }
        }
        if (!value || (!is_topo && strcmp(key, "cpus") && strcmp(key, "maxcpus"))) {
            error_setg(errp, "invalid option '%s'", key);
            return false;
        }
        if (!parse_count(value, CMDLINE_MAX_CPUS, &n)) {
            error_setg(errp, "invalid CPU count '%s' (1 to %d)", value, CMDLINE_MAX_CPUS);
            return false;
        }
        if (is_topo) {
            topo *= n;
            levels[level] = n;
        } else if (!strcmp(key, "cpus")) {
            cpus = n;
        } else {
            maxcpus = n;
        }
    }
    if (!cpus) {
        cpus = topo > 1 ? topo : (maxcpus ? maxcpus : 1);
    }
    if (cpus > CMDLINE_MAX_CPUS || (maxcpus && cpus > maxcpus)) {
        error_setg(errp, "invalid CPU count %ld", cpus);
        return false;
    }
    o->smp_cpus = (int)cpus;
    /* QEMU 7.2's pc machine: sockets, dies and threads default to 1, cores
     * take what is left of the maximum (cores preferred over sockets). */
    o->smp_sockets = levels[0] ? (int)levels[0] : 1;
    o->smp_dies = levels[1] ? (int)levels[1] : 1;
    o->smp_threads = levels[3] ? (int)levels[3] : 1;
    long per_core = (long)o->smp_sockets * o->smp_dies * o->smp_threads;
    long cores = levels[2] ? levels[2] : (maxcpus ? maxcpus : cpus) / per_core;
    o->smp_cores = cores > 0 ? (int)cores : 1;
    return true;
}

static bool accel_name_normalize(const char *name, const char **out)
{
    if (!strcmp(name, "kvm")) {
        *out = "kvm";
    } else if (!strcmp(name, "soft") || !strcmp(name, "tcg")) {
        *out = "soft";
    } else {
        return false;
    }
    return true;
}

static bool accel_add(CmdlineOptions *o, const char *origin, const char *accel_name, const char *opts,
                      Error **errp)
{
    const char *norm;

    if (!accel_name_normalize(accel_name, &norm)) {
        error_setg(errp, "invalid accelerator '%s' (kvm or soft)", accel_name);
        return false;
    }
    CmdlineAccel *a = g_new0(CmdlineAccel, 1);
    a->name = g_strdup(norm);
    a->opts = opts && *opts ? g_strdup(opts) : NULL;
    a->origin = origin;
    g_ptr_array_add(o->accels, a);
    return true;
}

static bool opt_accel(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    g_autoptr(GPtrArray) items = split_opts(arg);
    g_autofree char *key = NULL, *value = NULL;

    split_key_value(items->pdata[0], &key, &value);
    const char *accel_name = value ? value : key;
    if (value && strcmp(key, "accel")) {
        error_setg(errp, "accelerator name expected before '%s'", (char *)items->pdata[0]);
        return false;
    }
    return accel_add(o, "-accel", accel_name, after_first_item(arg), errp);
}

static bool opt_enable_kvm(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    return accel_add(o, "-enable-kvm", "kvm", NULL, errp);
}

static bool machine_accel_list(CmdlineOptions *o, const char *list, Error **errp)
{
    g_auto(GStrv) names = g_strsplit(list, ":", -1);

    for (char **n = names; *n; n++) {
        if (!accel_add(o, "-machine accel", *n, NULL, errp)) {
            return false;
        }
    }
    return true;
}

static bool opt_machine(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    g_autoptr(GPtrArray) items = split_opts(arg);

    for (guint i = 0; i < items->len; i++) {
        g_autofree char *key = NULL, *value = NULL;
        opt_item(items, i, "type", &key, &value);
        if (!value) {
            error_setg(errp, "invalid option '%s'", key);
            return false;
        }
        if (!strcmp(key, "type")) {
            if (!strcmp(value, "help") || !strcmp(value, "?")) {
                o->machine_help = true;
            } else if (strcmp(value, "pc") && strcmp(value, "none")) {
                error_setg(errp, "unsupported machine type '%s' (use -machine help)", value);
                return false;
            }
            g_free(o->machine);
            o->machine = g_steal_pointer(&value);
        } else if (!strcmp(key, "accel")) {
            if (!machine_accel_list(o, value, errp)) {
                return false;
            }
        } else {
            error_setg(errp, "unsupported machine property '%s'", key);
            return false;
        }
    }
    return true;
}

/* -drive OPTS: kept as text; main.c opens the drives (block/drive-opts.c
 * parses them), so errors name the option as QEMU does. */
static bool opt_drive(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    g_ptr_array_add(o->drives, g_strdup(arg));
    return true;
}

/* -object TYPE,id=ID,...: kept as text; main.c creates them (crypto/user-object.c). */
static bool opt_object(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    g_ptr_array_add(o->objects, g_strdup(arg));
    return true;
}

/* -device DRIVER[,prop=value...]: parsed now, created by the board. */
static bool opt_device(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    DeviceSpec *spec = g_new0(DeviceSpec, 1);

    if (!device_spec_parse(arg, spec, errp)) {
        g_free(spec);
        return false;
    }
    g_ptr_array_add(o->devices, spec);
    return true;
}

/* A non-empty string option: *slot takes a copy (the last one given wins). */
static bool set_string(char **slot, const char *arg, const char *what, Error **errp)
{
    if (!*arg) {
        error_setg(errp, "%s expected", what);
        return false;
    }
    g_free(*slot);
    *slot = g_strdup(arg);
    return true;
}

static bool opt_incoming(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    return set_string(&o->incoming, arg, "URI (or 'defer')", errp);
}

static bool opt_only_none(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    if (strcmp(arg, "none")) {
        error_setg(errp, "only 'none' is supported");
        return false;
    }
    return true;
}

static bool opt_pidfile(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    return set_string(&o->pidfile, arg, "file name", errp);
}

static bool opt_flag(CmdlineOptions *o, const char *name, const char *arg, Error **errp)
{
    if (!strcmp(name, "S")) {
        o->start_paused = true;
    } else if (!strcmp(name, "no-shutdown")) {
        o->no_shutdown = true;
    } else if (!strcmp(name, "no-user-config") || !strcmp(name, "no-defaults")) {
        /* migvm reads no configuration files: nothing to skip. */
    } else if (!strcmp(name, "nodefaults")) {
        o->nodefaults = true;
    } else if (!strcmp(name, "nographic")) {
        o->nographic = true;
    } else if (!strcmp(name, "mem-prealloc")) {
        o->mem_prealloc = true;
    } else if (!strcmp(name, "daemonize")) {
        o->daemonize = true;
    } else if (!strcmp(name, "version")) {
        o->show_version = true;
    } else {
        o->show_help = true;
    }
    return true;
}

static const OptionDef options[] = {
    { "name", true, opt_name, "NAME          name of the guest (query-name)" },
    { "m", true, opt_m, "SIZE             RAM size; suffix k, M, G or T (default unit MiB, default 128M)" },
    { "mem-prealloc", false, opt_flag, "            allocate all guest RAM at start-up (one thread per vCPU)" },
    { "smp", true, opt_smp, "N              number of vCPUs (also cpus=N,sockets=,cores=,threads=)" },
    { "accel", true, opt_accel, "kvm|soft[,opts] accelerator; repeat to give fallbacks (tcg = soft); soft takes "
                                "dirty-rate=MiB/s, disk-rate=MiB/s (drives written only with it), top=SIZE" },
    { "enable-kvm", false, opt_enable_kvm, "              same as -accel kvm" },
    { "machine", true, opt_machine, "TYPE[,accel=A] machine type: pc (default) or none; 'help' lists them" },
    { "M", true, opt_machine, "TYPE             same as -machine" },
    { "chardev", true, opt_chardev, "BACKEND,id=ID,... socket (path=|host=,port=|fd=, server=, wait=, reconnect=), "
                                    "stdio, file (path=), pipe (path=), null" },
    { "mon", true, opt_mon, "chardev=ID[,...] monitor on a chardev: mode=control (QMP) or readline (HMP), "
                            "pretty=on" },
    { "qmp", true, opt_qmp, "SPEC           QMP monitor: stdio, unix:PATH,server=on,wait=off, tcp:HOST:PORT,..." },
    { "monitor", true, opt_monitor, "SPEC       HMP monitor (same specs as -qmp), or none" },
    { "serial", true, opt_serial, "SPEC        serial port: stdio, file:PATH, unix:PATH,server=on,wait=off, "
                                  "chardev:ID, null, none" },
    { "drive", true, opt_drive, "file=IMG[,opt=val...] raw disk: format=raw, if=none|ide|virtio, id=, "
                                "readonly=on, cache=none|writeback|..., werror=, rerror=; the first ide "
                                "(else virtio) drive boots" },
    { "device", true, opt_device, "DRIVER[,prop=val...] add a device (id=NAME, drive=NAME, ...)" },
    { "object", true, opt_object, "TYPE,id=ID,... tls-creds-x509 (dir=, endpoint=client|server, verify-peer=), "
                                  "authz-simple (identity=), authz-list (policy=, rules.N.match=, ...)" },
    { "S", false, opt_flag, "                 do not start the vCPUs (use 'cont')" },
    { "no-shutdown", false, opt_flag, "       a guest shutdown stops the VM instead of exiting" },
    { "no-user-config", false, opt_flag, "    accepted: migvm reads no configuration files" },
    { "incoming", true, opt_incoming, "URI|defer wait for an incoming migration" },
    { "nodefaults", false, opt_flag, "              no default serial port or monitor" },
    { "display", true, opt_only_none, "none     no display (the only kind)" },
    { "vga", true, opt_only_none, "none         no VGA card (the only kind)" },
    { "nographic", false, opt_flag, "               serial port on stdio (and HMP if the serial goes elsewhere)" },
    { "daemonize", false, opt_flag, "               detach once the monitors listen" },
    { "pidfile", true, opt_pidfile, "FILE       write the process id to FILE (removed at exit)" },
    { "version", false, opt_flag, "                 print the version and exit" },
    { "help", false, opt_flag, "                    print this help and exit" },
    { "h", false, opt_flag, "                       same as -help" },
};

static const OptionDef *option_find(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(options); i++) {
        if (!strcmp(options[i].name, name)) {
            return &options[i];
        }
    }
    return NULL;
}

/* A help text is "ARG description" (ARG empty for a flag: the text starts
 * with a space): split it so the descriptions line up in one column. */
static void help_split(const OptionDef *o, int *arg_len, const char **desc)
{
    const char *h = o->help;
    *arg_len = o->has_arg ? (int)strcspn(h, " ") : 0;
    *desc = h + *arg_len + strspn(h + *arg_len, " ");
}

#define HELP_COLUMN_MAX 32      /* a longer "-option ARG" puts its text on the next line */

void cmdline_print_help(FILE *out)
{
    int width = 0;
    for (size_t i = 0; i < G_N_ELEMENTS(options); i++) {
        int arg_len;
        const char *desc;
        help_split(&options[i], &arg_len, &desc);
        int w = 1 + (int)strlen(options[i].name) + (arg_len ? 1 + arg_len : 0);
        if (w <= HELP_COLUMN_MAX && w > width) {
            width = w;
        }
    }
    fprintf(out, "usage: migvm [options]\n\n");
    for (size_t i = 0; i < G_N_ELEMENTS(options); i++) {
        int arg_len;
        const char *desc;
        help_split(&options[i], &arg_len, &desc);
        g_autofree char *head = g_strdup_printf("-%s%s%.*s", options[i].name, arg_len ? " " : "",
                                                arg_len, options[i].help);
        if ((int)strlen(head) > width) {
            fprintf(out, "  %s\n  %*s  %s\n", head, width, "", desc);
        } else {
            fprintf(out, "  %-*s  %s\n", width, head, desc);
        }
    }
    fprintf(out, "\nOptions may also be spelled with two dashes (--name).\n");
}

void cmdline_options_init(CmdlineOptions *o)
{
    memset(o, 0, sizeof(*o));
    o->ram_size = CMDLINE_DEFAULT_RAM_SIZE;
    o->smp_cpus = 1;
    o->smp_sockets = o->smp_dies = o->smp_cores = o->smp_threads = 1;
    o->accels = g_ptr_array_new();
    o->chardevs = g_ptr_array_new_with_free_func(cmdline_chardev_free);
    o->monitors = g_ptr_array_new_with_free_func(cmdline_monitor_free);
    o->drives = g_ptr_array_new_with_free_func(g_free);
    o->objects = g_ptr_array_new_with_free_func(g_free);
    o->devices = g_ptr_array_new();
}

void cmdline_options_clear(CmdlineOptions *o)
{
    for (guint i = 0; o->accels && i < o->accels->len; i++) {
        CmdlineAccel *a = o->accels->pdata[i];
        g_free(a->name);
        g_free(a->opts);
        g_free(a);
    }
    if (o->accels) {
        g_ptr_array_free(o->accels, TRUE);
    }
    if (o->chardevs) {
        g_ptr_array_free(o->chardevs, TRUE);
    }
    if (o->monitors) {
        g_ptr_array_free(o->monitors, TRUE);
    }
    g_free(o->serial_device);
    g_free(o->serial_chardev);
    g_free(o->name);
    g_free(o->machine);
    g_free(o->serial);
    if (o->objects) {
        g_ptr_array_free(o->objects, TRUE);
    }
    if (o->drives) {
        g_ptr_array_free(o->drives, TRUE);
    }
    for (guint i = 0; o->devices && i < o->devices->len; i++) {
        device_spec_clear(o->devices->pdata[i]);
        g_free(o->devices->pdata[i]);
    }
    if (o->devices) {
        g_ptr_array_free(o->devices, TRUE);
    }
    g_free(o->incoming);
    g_free(o->pidfile);
    memset(o, 0, sizeof(*o));
}

static bool accel_sources_conflict(const CmdlineOptions *o)
{
    bool from_accel = false, from_machine = false;

    for (guint i = 0; i < o->accels->len; i++) {
        const CmdlineAccel *a = o->accels->pdata[i];
        from_machine |= !strcmp(a->origin, "-machine accel");
        from_accel |= strcmp(a->origin, "-machine accel") != 0;
    }
    return from_accel && from_machine;
}

bool cmdline_parse(int argc, char **argv, CmdlineOptions *out, Error **errp)
{
    for (int i = 1; i < argc; i++) {
        const char *word = argv[i];
        if (word[0] != '-' || word[1] == '\0') {
            error_setg(errp, "%s: unexpected argument (options start with '-')", word);
            return false;
        }
        const char *name = word + (word[1] == '-' ? 2 : 1);
        const OptionDef *def = option_find(name);
        if (!def) {
            const char *why = cmdline_refused_reason(name);
            if (why) {
                error_setg(errp, "%s: not supported by migvm (%s)", word, why);
            } else {
                error_setg(errp, "%s: invalid option", word);
            }
            return false;
        }
        const char *arg = NULL;
        if (def->has_arg) {
            if (i + 1 >= argc) {
                error_setg(errp, "%s: requires an argument", word);
                return false;
            }
            arg = argv[++i];
        }
        Error *local = NULL;
        if (!def->fn(out, def->name, arg, &local)) {
            /* Not error_prepend: its separator is the caller's business. */
            error_setg(errp, "%s: %s", word, error_get_pretty(local));
            error_free(local);
            return false;
        }
    }
    if (accel_sources_conflict(out)) {
        error_setg(errp, "-accel: cannot be combined with -machine accel=");
        return false;
    }
    return true;
}

/* ---- after parsing --------------------------------------------------------- */

bool cmdline_finish(CmdlineOptions *o, Error **errp)
{
    if (!cmdline_scan_serial_devices(o, errp)) {
        return false;
    }
    if (o->nographic && !o->nodefaults) {
        if (!o->serial && !o->isa_serial) {
            o->serial = g_strdup("stdio");
        } else if (!o->monitor_given && (!o->serial || strcmp(o->serial, "stdio"))) {
            if (!opt_monitor(o, "monitor", "stdio", errp)) {
                return false;
            }
        }
    }
    if (o->nodefaults && !o->serial) {
        o->serial = g_strdup("none");
    }
    if (!o->machine) {
        o->machine = g_strdup("pc");
    }
    return cmdline_chardev_finish(o, errp);
}

bool cmdline_choose_accel(const CmdlineOptions *o, const char *kvm_error, char **accel,
                          char **accel_opts, char **warning, Error **errp)
{
    *accel = NULL;
    *accel_opts = NULL;
    *warning = NULL;
    if (o->accels->len == 0) {
        *accel = g_strdup(kvm_error ? "soft" : "kvm");
        if (kvm_error) {
            *warning = g_strdup_printf("KVM is not available (%s), using the soft accelerator", kvm_error);
        }
        return true;
    }
    for (guint i = 0; i < o->accels->len; i++) {
        const CmdlineAccel *a = o->accels->pdata[i];
        if (!strcmp(a->name, "kvm") && kvm_error) {
            if (i + 1 < o->accels->len) {
                continue;
            }
            error_setg(errp, "%s kvm: KVM is not available (%s)", a->origin, kvm_error);
            return false;
        }
        *accel = g_strdup(a->name);
        *accel_opts = g_strdup(a->opts);
        return true;
    }
    g_assert_not_reached();
}
