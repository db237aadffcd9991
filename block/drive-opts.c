/*
 * -drive as QEMU 7.2 spells it: option parsing, default names, opening.
 *
 *   file=PATH        the image (required)
 *   format=raw       the only format; others are refused (none given: raw,
 *                    with a warning, where QEMU would probe)
 *   if=none|ide|virtio           (default ide, as QEMU's pc)
 *   id=NAME          the drive's name; default: ide<bus>-hd<unit>, virtio<index>,
 *                    none<index>, as QEMU names them
 *   index=N          unit on its interface (default: the first free one)
 *   media=disk       (cdrom is refused)
 *   readonly=on|off
 *   cache=writeback (default) | writethrough | none | directsync | unsafe
 *   werror=report|ignore|enospc|stop   rerror=report|ignore|stop
 *   aio=threads|native|io_uring        accepted; migvm always uses its thread pool
 *   discard=, detect-zeroes=off, snapshot=off, copy-on-read=off  accepted
 *
 * Errors use QEMU's texts; the caller puts "-drive OPTS: " in front.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include "block-int.h"
#include "opts.h"

#define IDE_UNITS_PER_BUS 2

typedef struct CacheMode {
    const char *name;
    bool writeback, direct, no_flush;
} CacheMode;

static const CacheMode cache_modes[] = {
    { "writeback", true, false, false },
    { "writethrough", false, false, false },
    { "none", true, true, false },
    { "off", true, true, false },
    { "directsync", false, true, false },
    { "unsafe", true, false, true },
};

static const char *const interfaces[] = { "none", "ide", "virtio" };
/* What QEMU knows but migvm's boards do not have. */
static const char *const other_interfaces[] = { "scsi", "floppy", "pflash", "mtd", "sd", "xen" };

static bool is_identifier(const char *s)
{
    if (!g_ascii_isalpha(s[0])) {
        return false;
    }
    for (const char *p = s; *p; p++) {
        if (!g_ascii_isalnum(*p) && *p != '-' && *p != '.' && *p != '_') {
            return false;
        }
    }
    return true;
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(s, list[i])) {
            return true;
        }
    }
    return false;
}

static bool set_cache(DriveOptions *d, const char *value, Error **errp)
{
    for (size_t i = 0; i < G_N_ELEMENTS(cache_modes); i++) {
        if (!strcmp(value, cache_modes[i].name)) {
            d->writeback = cache_modes[i].writeback;
            d->direct = cache_modes[i].direct;
            d->no_flush = cache_modes[i].no_flush;
            return true;
        }
    }
    error_setg(errp, "invalid cache option");
    return false;
}

static bool set_format(const char *value, Error **errp)
{
    static const char *const known[] = { "qcow2", "qcow", "vmdk", "vdi", "vhdx", "vpc", "qed", "luks",
                                         "parallels", "bochs", "cloop", "dmg", "file", "host_device" };

    if (!strcmp(value, "raw")) {
        return true;
    }
    if (in_list(value, known, G_N_ELEMENTS(known))) {
        error_setg(errp, "Image format '%s' is not supported by migvm (raw only)", value);
    } else {
        error_setg(errp, "Unknown driver '%s'", value);
    }
    return false;
}

static bool set_bool(bool *slot, const char *qemu_name, const char *value, Error **errp)
{
    if (!parse_bool(value, slot)) {
        error_setg(errp, "Parameter '%s' expects 'on' or 'off'", qemu_name);
        return false;
    }
    return true;
}

/* Options migvm accepts with only the value QEMU would default to. */
static bool set_fixed(const char *key, const char *value, const char *want, Error **errp)
{
    if (strcmp(value, want)) {
        error_setg(errp, "-drive %s=%s is not supported by migvm (only %s)", key, value, want);
        return false;
    }
    return true;
}

static bool drive_option(DriveOptions *d, const char *key, const char *value, Error **errp)
{
    if (!strcmp(key, "file")) {
        g_free(d->file);
        d->file = g_strdup(value);
    } else if (!strcmp(key, "format")) {
        d->format_given = true;
        return set_format(value, errp);
    } else if (!strcmp(key, "if")) {
        if (!in_list(value, interfaces, G_N_ELEMENTS(interfaces))) {
            error_setg(errp, in_list(value, other_interfaces, G_N_ELEMENTS(other_interfaces))
                             ? "machine type does not support if=%s" : "unsupported bus type '%s'", value);
            return false;
        }
        g_free(d->interface);
        d->interface = g_strdup(value);
    } else if (!strcmp(key, "id")) {
        if (!is_identifier(value)) {
            error_setg(errp, "Parameter 'id' expects an identifier\n"
                             "Identifiers consist of letters, digits, '-', '.', '_', starting with a letter.");
            return false;
        }
        g_free(d->id);
        d->id = g_strdup(value);
    } else if (!strcmp(key, "index")) {
        char *end;
        long v = strtol(value, &end, 10);
        if (!*value || *end || v < 0 || v > 1000) {
            error_setg(errp, "Parameter 'index' expects a number");
            return false;
        }
        d->index = (int)v;
    } else if (!strcmp(key, "media")) {
        if (!strcmp(value, "cdrom")) {
            error_setg(errp, "media=cdrom is not supported by migvm");
            return false;
        } else if (strcmp(value, "disk")) {
            error_setg(errp, "'%s' invalid media", value);
            return false;
        }
    } else if (!strcmp(key, "readonly") || !strcmp(key, "read-only")) {
        return set_bool(&d->read_only, "read-only", value, errp);
    } else if (!strcmp(key, "cache")) {
        return set_cache(d, value, errp);
    } else if (!strcmp(key, "cache.direct")) {
        return set_bool(&d->direct, "cache.direct", value, errp);
    } else if (!strcmp(key, "cache.no-flush")) {
        return set_bool(&d->no_flush, "cache.no-flush", value, errp);
    } else if (!strcmp(key, "werror") || !strcmp(key, "rerror")) {
        bool is_read = key[0] == 'r';
        int policy = blockdev_on_error_parse(value, is_read);
        if (policy < 0) {
            error_setg(errp, "'%s' invalid %s error action", value, is_read ? "read" : "write");
            return false;
        }
        *(is_read ? &d->rerror : &d->werror) = policy;
    } else if (!strcmp(key, "aio")) {
        if (strcmp(value, "threads") && strcmp(value, "native") && strcmp(value, "io_uring")) {
            error_setg(errp, "invalid aio option");
            return false;
        }
        d->aio_native = !strcmp(value, "native");
    } else if (!strcmp(key, "discard")) {
        if (strcmp(value, "ignore") && strcmp(value, "off") && strcmp(value, "unmap") && strcmp(value, "on")) {
            error_setg(errp, "Invalid discard option");
            return false;
        }
    } else if (!strcmp(key, "detect-zeroes")) {
        return set_fixed(key, value, "off", errp);
    } else if (!strcmp(key, "snapshot") || !strcmp(key, "copy-on-read")) {
        bool on;
        return set_bool(&on, key, value, errp) && set_fixed(key, value, on ? "off" : value, errp);
    } else {
        error_setg(errp, "Block format 'raw' does not support the option '%s'", key);
        return false;
    }
    return true;
}

static void drive_options_clear(DriveOptions *d)
{
    g_free(d->file);
    g_free(d->id);
    g_free(d->interface);
}

bool drive_options_parse(const char *text, DriveOptions *d, Error **errp)
{
    g_autoptr(GPtrArray) items = split_opts(text);

    *d = (DriveOptions) { .index = -1, .writeback = true,
                          .werror = BLOCKDEV_ON_ERROR_ENOSPC, .rerror = BLOCKDEV_ON_ERROR_REPORT };
    d->interface = g_strdup("ide");
    for (guint i = 0; i < items->len; i++) {
        const char *item = items->pdata[i], *eq = strchr(item, '=');
        if (!*item && i == items->len - 1 && i > 0) {
            continue;                   /* a trailing comma */
        }
        g_autofree char *key = eq ? g_strndup(item, eq - item) : g_strdup(item);
        if (!eq) {
            /* QemuOpts: a bare key of a boolean option means on. */
            if (strcmp(key, "readonly") && strcmp(key, "snapshot")) {
                error_setg(errp, "Invalid parameter '%s'", key);
                drive_options_clear(d);
                return false;
            }
        }
        if (!drive_option(d, key, eq ? eq + 1 : "on", errp)) {
            drive_options_clear(d);
            return false;
        }
    }
    if (!d->file || !*d->file) {
        error_setg(errp, "A block device must be specified for \"file\"");
        drive_options_clear(d);
        return false;
    }
    if (d->aio_native && !d->direct) {
        error_setg(errp, "aio=native was specified, but it requires cache.direct=on, which was not specified.");
        drive_options_clear(d);
        return false;
    }
    return true;
}

/* QEMU's default name for a drive without id=. */
static char *default_name(const DriveOptions *d, int index)
{
    if (!strcmp(d->interface, "ide")) {
        return g_strdup_printf("ide%d-hd%d", index / IDE_UNITS_PER_BUS, index % IDE_UNITS_PER_BUS);
    }
    return g_strdup_printf("%s%d", d->interface, index);
}

static bool choose_index(DriveOptions *d, Error **errp)
{
    if (d->index >= 0) {
        if (blk_index_used(d->interface, d->index)) {
            int per_bus = !strcmp(d->interface, "ide") ? IDE_UNITS_PER_BUS : 1;
            error_setg(errp, "drive with bus=%d, unit=%d (index=%d) exists", d->index / per_bus,
                       d->index % per_bus, d->index);
            return false;
        }
        return true;
    }
    d->index = 0;
    while (blk_index_used(d->interface, d->index)) {
        d->index++;
    }
    return true;
}

BlockBackend *drive_new(const char *opts, Error **errp)
{
    DriveOptions d;
    BlockBackend *blk = NULL;

    if (!drive_options_parse(opts, &d, errp)) {
        return NULL;
    }
    if (!d.format_given) {
        /* QEMU probes and warns; every image is raw to migvm. */
        warn_report("Image format was not specified for '%s', so it is used as raw.\n"
                    "         Specify the 'raw' format explicitly to remove this warning.", d.file);
    }
    if (choose_index(&d, errp)) {
        g_autofree char *name = d.id ? g_strdup(d.id) : default_name(&d, d.index);
        if (blk_by_name(name)) {
            error_setg(errp, "Duplicate ID '%s' for drive", name);
        } else if ((blk = blk_open(&d, name, errp))) {
            blk_publish(blk);
        }
    }
    drive_options_clear(&d);
    return blk;
}
