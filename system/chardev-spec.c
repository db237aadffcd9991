/*
 * Character device specs as -qmp, -monitor and -serial take them:
 *
 *   stdio | none | file:PATH
 *   unix:PATH[,server=on|off][,wait=on|off][,pretty=on|off]
 *   tcp:HOST:PORT[,server=...][,wait=...][,nodelay=...][,ipv4=...][,ipv6=...]
 *
 * HOST may be empty (any address) or a bracketed IPv6 literal. QEMU's legacy
 * spellings are accepted: a bare "server" means server=on, "nowait" means
 * wait=off. ",," is a literal comma (in a path). Sockets default to
 * server=on (every user here is a listener); wait defaults to QEMU's
 * "on for a server", so scripts pass wait=off.
 */
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include "opts.h"
#include "chardev-spec.h"

typedef struct SocketFlags {
    bool server, wait, wait_given;
} SocketFlags;

static bool parse_tcp_address(const char *addr, ChardevSpec *spec, Error **errp)
{
    const char *colon;
    g_autofree char *host = NULL;

    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':') {
            error_setg(errp, "tcp: bad address '%s' (expected [IPV6]:PORT)", addr);
            return false;
        }
        host = g_strndup(addr + 1, close - addr - 1);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon) {
            error_setg(errp, "tcp: port missing in '%s' (expected HOST:PORT)", addr);
            return false;
        }
        host = g_strndup(addr, colon - addr);
    }
    const char *port = colon + 1;
    char *end;
    long n = strtol(port, &end, 10);
    if (!g_ascii_isdigit(port[0]) || *end || n < 0 || n > 65535) {
        error_setg(errp, "tcp: invalid port '%s'", port);
        return false;
    }
    spec->host = *host ? g_steal_pointer(&host) : g_strdup("0.0.0.0");
    spec->port = g_strdup(port);
    return true;
}

static bool parse_backend(const char *first, ChardevSpec *spec, Error **errp)
{
    if (!strcmp(first, "stdio")) {
        spec->kind = CHARDEV_STDIO;
    } else if (!strcmp(first, "none")) {
        spec->kind = CHARDEV_NONE;
    } else if (g_str_has_prefix(first, "file:") || g_str_has_prefix(first, "unix:")) {
        const char *path = first + 5;
        if (!*path) {
            error_setg(errp, "%.4s: path is empty", first);
            return false;
        }
        spec->kind = first[0] == 'f' ? CHARDEV_FILE : CHARDEV_UNIX;
        spec->path = g_strdup(path);
    } else if (g_str_has_prefix(first, "tcp:")) {
        spec->kind = CHARDEV_TCP;
        return parse_tcp_address(first + 4, spec, errp);
    } else {
        error_setg(errp, "unknown character device '%s' (stdio, none, file:PATH, unix:PATH or tcp:HOST:PORT)",
                   first);
        return false;
    }
    return true;
}

static bool is_socket(const ChardevSpec *spec)
{
    return spec->kind == CHARDEV_UNIX || spec->kind == CHARDEV_TCP;
}

/* One "key[=value]" option after the backend. */
static bool parse_option(const char *item, ChardevSpec *spec, SocketFlags *f, Error **errp)
{
    const char *eq = strchr(item, '=');
    g_autofree char *key = eq ? g_strndup(item, eq - item) : g_strdup(item);
    const char *value = eq ? eq + 1 : "on";
    bool on;

    if (!eq && !strcmp(key, "nowait")) {
        g_free(key);
        key = g_strdup("wait");
        value = "off";
    }
    bool socket_only = !strcmp(key, "server") || !strcmp(key, "wait") || !strcmp(key, "nodelay");
    bool tcp_only = !strcmp(key, "ipv4") || !strcmp(key, "ipv6");
    if (!socket_only && !tcp_only && strcmp(key, "pretty")) {
        error_setg(errp, "invalid character device option '%s'", key);
        return false;
    }
    if (!parse_bool(value, &on)) {
        error_setg(errp, "invalid value '%s' for '%s' (expected on or off)", value, key);
        return false;
    }
    if ((socket_only && !is_socket(spec)) || (tcp_only && spec->kind != CHARDEV_TCP)) {
        error_setg(errp, "option '%s' is only valid for %s", key, tcp_only ? "tcp:" : "unix: and tcp:");
        return false;
    }
    if (!strcmp(key, "server")) {
        f->server = on;
    } else if (!strcmp(key, "wait")) {
        f->wait = on;
        f->wait_given = true;
    } else if (!strcmp(key, "pretty")) {
        spec->pretty = on;
    }
    return true;
}

bool chardev_spec_parse(const char *text, ChardevSpec *spec, Error **errp)
{
    g_autoptr(GPtrArray) items = split_opts(text);
    SocketFlags f = { .server = true };

    memset(spec, 0, sizeof(*spec));
    if (!parse_backend(items->pdata[0], spec, errp)) {
        chardev_spec_clear(spec);
        return false;
    }
    for (guint i = 1; i < items->len; i++) {
        if (!parse_option(items->pdata[i], spec, &f, errp)) {
            chardev_spec_clear(spec);
            return false;
        }
    }
    if (is_socket(spec)) {
        spec->server = f.server;
        spec->wait = f.server && (f.wait_given ? f.wait : true);
    }
    return true;
}

void chardev_spec_clear(ChardevSpec *spec)
{
    g_free(spec->path);
    g_free(spec->host);
    g_free(spec->port);
    memset(spec, 0, sizeof(*spec));
}
