/*
 * Character device specs, in the two spellings QEMU has.
 *
 * The -qmp / -monitor / -serial shorthand:
 *   stdio | none | null | file:PATH | pipe:PATH
 *   unix:PATH[,server=on|off][,wait=on|off][,reconnect=N][,pretty=on|off]
 *   tcp:HOST:PORT[,server=...][,wait=...][,nodelay=...][,ipv4=...][,ipv6=...]
 *
 * HOST may be empty (any address) or a bracketed IPv6 literal. QEMU's legacy
 * spellings are accepted: a bare "server" means server=on, "nowait" means
 * wait=off. ",," is a literal comma (in a path). As in QEMU, a socket
 * connects out unless server=on, and a server waits for its first client
 * unless wait=off (so scripts pass server=on,wait=off).
 *
 * -chardev BACKEND,id=ID,...: see chardev_spec_parse_chardev below.
 */
#include <errno.h>
#include <limits.h>
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
    } else if (!strcmp(first, "none") || !strcmp(first, "null")) {
        spec->kind = CHARDEV_NONE;
    } else if (g_str_has_prefix(first, "file:") || g_str_has_prefix(first, "unix:") ||
               g_str_has_prefix(first, "pipe:")) {
        const char *path = first + 5;
        if (!*path) {
            error_setg(errp, "%.4s: path is empty", first);
            return false;
        }
        spec->kind = first[0] == 'f' ? CHARDEV_FILE : first[0] == 'u' ? CHARDEV_UNIX : CHARDEV_PIPE;
        spec->append = true;
        spec->path = g_strdup(path);
    } else if (g_str_has_prefix(first, "mon:")) {
        error_setg(errp, "'%s': a monitor sharing the serial port (mon:) is not supported by migvm: "
                   "give -serial and -monitor their own chardevs", first);
        return false;
    } else if (g_str_has_prefix(first, "tcp:")) {
        spec->kind = CHARDEV_TCP;
        return parse_tcp_address(first + 4, spec, errp);
    } else {
        error_setg(errp, "unknown character device '%s' (stdio, null, file:PATH, pipe:PATH, unix:PATH or tcp:HOST:PORT)",
                   first);
        return false;
    }
    return true;
}

bool chardev_spec_is_socket(const ChardevSpec *spec)
{
    return spec->kind == CHARDEV_UNIX || spec->kind == CHARDEV_TCP || spec->kind == CHARDEV_FD;
}

static bool is_socket(const ChardevSpec *spec)
{
    return chardev_spec_is_socket(spec);
}

/* A non-negative decimal int, all of text. */
static bool parse_uint(const char *text, int *out)
{
    char *end;

    if (!g_ascii_isdigit(text[0])) {
        return false;
    }
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || v > INT_MAX) {
        return false;
    }
    *out = (int)v;
    return true;
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
    if (!strcmp(key, "reconnect") && is_socket(spec)) {
        if (!parse_uint(value, &spec->reconnect)) {
            error_setg(errp, "invalid value '%s' for 'reconnect' (expected seconds)", value);
            return false;
        }
        return true;
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
    SocketFlags f = { .server = false };

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
        if (!spec->server && f.wait_given) {
            error_setg(errp, "'wait' option is incompatible with socket in client connect mode");
            chardev_spec_clear(spec);
            return false;
        }
        if (spec->server && spec->reconnect) {
            error_setg(errp, "'reconnect' option is incompatible with socket in server listen mode");
            chardev_spec_clear(spec);
            return false;
        }
    }
    return true;
}

/* ---- -chardev BACKEND,id=ID,key=value,... ---------------------------------------
 *
 * Backends and their keys (QEMU 7.2's names; the texts of the errors too):
 *   socket  path= | host=,port= | fd=   server= wait= reconnect= nodelay= ipv4= ipv6=
 *           delay= telnet=off websocket=off  (server defaults to off: connect out)
 *   stdio   signal=        file  path= append=        pipe  path=        null
 * A bare KEY is KEY=on and a bare noKEY is KEY=off ("server,nowait";
 * "nodelay" is delay=off), QEMU's short form. Every backend takes id=
 * (required). Backends QEMU has and migvm has not (pty, serial, ringbuf,
 * ...) are refused by name.
 */

typedef struct ChardevOpts {
    const char *backend;
    bool server, wait, wait_given, reconnect_given;
    int sources;              /* how many of path, host, fd */
} ChardevOpts;

static const char *const known_backends[] = {
    "socket", "stdio", "file", "pipe", "null",
};
static const char *const foreign_backends[] = {
    "pty", "serial", "tty", "parallel", "parport", "ringbuf", "memory", "udp", "msmouse", "wctablet",
    "braille", "testdev", "spicevmc", "spiceport", "vc", "qemu-vdagent", "dbus", "mux",
};

static bool str_in(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(s, list[i])) {
            return true;
        }
    }
    return false;
}

static bool chardev_bool(const char *key, const char *value, bool *out, Error **errp)
{
    if (!parse_bool(value, out)) {
        error_setg(errp, "Parameter '%s' expects 'on' or 'off'", key);
        return false;
    }
    return true;
}

/* Socket keys; *handled false when key is not one of them. */
static bool chardev_socket_key(const char *key, const char *value, ChardevSpec *spec, ChardevOpts *o,
                               bool *handled, Error **errp)
{
    bool b;

    *handled = true;
    if (!strcmp(key, "path")) {
        g_free(spec->path);
        spec->path = g_strdup(value);
        spec->kind = CHARDEV_UNIX;
        o->sources++;
    } else if (!strcmp(key, "host")) {
        g_free(spec->host);
        spec->host = g_strdup(value);
        spec->kind = CHARDEV_TCP;
        o->sources++;
    } else if (!strcmp(key, "port")) {
        g_free(spec->port);
        spec->port = g_strdup(value);
    } else if (!strcmp(key, "fd")) {
        if (!parse_uint(value, &spec->fd)) {
            error_setg(errp, "Unable to parse FD number %s", value);
            return false;
        }
        spec->kind = CHARDEV_FD;
        o->sources++;
    } else if (!strcmp(key, "server")) {
        return chardev_bool(key, value, &o->server, errp);
    } else if (!strcmp(key, "wait")) {
        o->wait_given = true;
        return chardev_bool(key, value, &o->wait, errp);
    } else if (!strcmp(key, "reconnect")) {
        if (!parse_uint(value, &spec->reconnect)) {
            error_setg(errp, "Parameter 'reconnect' expects a non-negative number of seconds");
            return false;
        }
        o->reconnect_given = true;
    } else if (!strcmp(key, "nodelay") || !strcmp(key, "delay") || !strcmp(key, "ipv4") || !strcmp(key, "ipv6")) {
        return chardev_bool(key, value, &b, errp);
    } else if (!strcmp(key, "telnet") || !strcmp(key, "tn3270") || !strcmp(key, "websocket")) {
        if (!chardev_bool(key, value, &b, errp)) {
            return false;
        }
        if (b) {
            error_setg(errp, "'%s' is not supported by migvm (plain sockets only)", key);
            return false;
        }
    } else if (!strcmp(key, "tls-creds") || !strcmp(key, "tls-authz") || !strcmp(key, "abstract") ||
               !strcmp(key, "tight")) {
        error_setg(errp, "'%s' is not supported by migvm", key);
        return false;
    } else {
        *handled = false;
    }
    return true;
}

static bool chardev_key(const char *key, const char *value, ChardevSpec *spec, ChardevOpts *o, Error **errp)
{
    bool handled = false;

    if (!strcmp(key, "id")) {
        g_free(spec->id);
        spec->id = g_strdup(value);
        return true;
    }
    if (!strcmp(key, "mux")) {
        bool mux;
        if (!chardev_bool(key, value, &mux, errp)) {
            return false;
        }
        if (mux) {
            error_setg(errp, "'mux' is not supported by migvm (one user per chardev)");
            return false;
        }
        return true;
    }
    if (!strcmp(o->backend, "socket")) {
        if (!chardev_socket_key(key, value, spec, o, &handled, errp)) {
            return false;
        }
    } else if (!strcmp(key, "path") && (!strcmp(o->backend, "file") || !strcmp(o->backend, "pipe"))) {
        g_free(spec->path);
        spec->path = g_strdup(value);
        handled = true;
    } else if (!strcmp(key, "append") && !strcmp(o->backend, "file")) {
        return chardev_bool(key, value, &spec->append, errp);
    } else if (!strcmp(key, "signal") && !strcmp(o->backend, "stdio")) {
        bool b;
        return chardev_bool(key, value, &b, errp);
    }
    if (!handled) {
        error_setg(errp, "Invalid parameter '%s'", key);
    }
    return handled;
}

/* The combinations QEMU refuses, checked once every key is known. */
static bool chardev_socket_check(ChardevSpec *spec, const ChardevOpts *o, Error **errp)
{
    if (o->sources != 1) {
        error_setg(errp, "%s", o->sources ? "None or one of 'path', 'fd' or 'host' option required."
                                          : "chardev: socket: one of 'path', 'host' or 'fd' is required");
        return false;
    }
    if (spec->kind == CHARDEV_UNIX && !*spec->path) {
        error_setg(errp, "chardev: socket: path is empty");
        return false;
    }
    if (spec->kind == CHARDEV_TCP && (!spec->port || !*spec->port)) {
        error_setg(errp, "chardev: socket: no port given");
        return false;
    }
    if (spec->kind != CHARDEV_TCP && spec->port) {
        error_setg(errp, "'port' needs 'host'");
        return false;
    }
    if (o->server && o->reconnect_given) {
        error_setg(errp, "'reconnect' option is incompatible with socket in server listen mode");
        return false;
    }
    if (!o->server && o->wait_given) {
        error_setg(errp, "'wait' option is incompatible with socket in client connect mode");
        return false;
    }
    if (spec->kind == CHARDEV_TCP && !*spec->host) {
        g_free(spec->host);
        spec->host = g_strdup(o->server ? "0.0.0.0" : "localhost");
    }
    spec->server = o->server;
    spec->wait = o->server && (o->wait_given ? o->wait : true);
    return true;
}

static bool chardev_check(ChardevSpec *spec, const ChardevOpts *o, Error **errp)
{
    if (!spec->id) {
        error_setg(errp, "chardev: no id specified");
        return false;
    }
    if (!strcmp(o->backend, "socket")) {
        return chardev_socket_check(spec, o, errp);
    }
    if (!strcmp(o->backend, "file") || !strcmp(o->backend, "pipe")) {
        if (!spec->path || !*spec->path) {
            error_setg(errp, "chardev: %s: %s", o->backend,
                       spec->kind == CHARDEV_FILE ? "no filename given" : "no device path given");
            return false;
        }
    }
    return true;
}

bool chardev_spec_parse_chardev(const char *text, ChardevSpec *spec, Error **errp)
{
    g_autoptr(GPtrArray) items = split_opts(text);
    const char *backend = items->pdata[0];
    ChardevOpts o = { .backend = backend };

    memset(spec, 0, sizeof(*spec));
    if (strchr(backend, '=') || !*backend) {
        error_setg(errp, "chardev: backend name expected first (socket, stdio, file, pipe or null)");
        return false;
    }
    if (str_in(backend, foreign_backends, G_N_ELEMENTS(foreign_backends))) {
        error_setg(errp, "'%s' chardevs are not supported by migvm (socket, stdio, file, pipe or null)", backend);
        return false;
    }
    if (!str_in(backend, known_backends, G_N_ELEMENTS(known_backends))) {
        error_setg(errp, "'%s' is not a valid char driver name", backend);
        return false;
    }
    spec->kind = !strcmp(backend, "stdio") ? CHARDEV_STDIO : !strcmp(backend, "file") ? CHARDEV_FILE
               : !strcmp(backend, "pipe") ? CHARDEV_PIPE : CHARDEV_NONE;
    for (guint i = 1; i < items->len; i++) {
        const char *item = items->pdata[i];
        const char *eq = strchr(item, '=');
        g_autofree char *key = eq ? g_strndup(item, eq - item) : g_strdup(item);
        const char *value = eq ? eq + 1 : "on";
        /* QEMU 7.2's short-form booleans (deprecated there, still in older
         * scripts: "server,nowait"): a bare "noKEY" is KEY=off. */
        if (!eq && g_str_has_prefix(key, "no") && key[2]) {
            memmove(key, key + 2, strlen(key + 2) + 1);
            value = "off";
        }
        if (!chardev_key(key, value, spec, &o, errp)) {
            chardev_spec_clear(spec);
            return false;
        }
    }
    if (!chardev_check(spec, &o, errp)) {
        chardev_spec_clear(spec);
        return false;
    }
    return true;
}

char *chardev_spec_describe(const ChardevSpec *spec)
{
    switch (spec->kind) {
    case CHARDEV_STDIO:
        return g_strdup("stdio");
    case CHARDEV_UNIX:
        return g_strdup_printf("unix:%s", spec->path);
    case CHARDEV_TCP:
        return g_strdup_printf(strchr(spec->host, ':') ? "tcp:[%s]:%s" : "tcp:%s:%s", spec->host, spec->port);
    case CHARDEV_FILE:
        return g_strdup_printf("file:%s", spec->path);
    case CHARDEV_PIPE:
        return g_strdup_printf("pipe:%s", spec->path);
    case CHARDEV_FD:
        return g_strdup_printf("fd:%d", spec->fd);
    case CHARDEV_NONE:
        break;
    }
    return g_strdup("null");
}

void chardev_spec_copy(ChardevSpec *dst, const ChardevSpec *src)
{
    *dst = *src;
    dst->id = g_strdup(src->id);
    dst->path = g_strdup(src->path);
    dst->host = g_strdup(src->host);
    dst->port = g_strdup(src->port);
}

void chardev_spec_clear(ChardevSpec *spec)
{
    g_free(spec->id);
    g_free(spec->path);
    g_free(spec->host);
    g_free(spec->port);
    memset(spec, 0, sizeof(*spec));
}
