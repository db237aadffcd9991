/*
 * The chardev list behind query-chardev (see chardev-info.h). A chardev's
 * filename follows QEMU 7.2's notation:
 *   null | stdio | file | pipe                 by backend
 *   disconnected:unix:PATH[,server=on]         socket without a peer
 *   disconnected:tcp:HOST:PORT[,server=on]     (a listener: its bound address)
 *   unix:LOCAL_PATH[,server=on]                connected (a client's local
 *                                              path is empty: "unix:")
 *   tcp:HOST:PORT[,server=on] <-> PEER:PORT    connected, IPv6 in brackets
 */
#include <netdb.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <glib.h>
#include "chardev-info.h"
#include "qapi-commands.h"

typedef struct ChardevConn {
    int fd;
    char *name;
} ChardevConn;

typedef struct ChardevEntry {
    char *label;
    bool server;
    bool opened, frontend_open;
    char *idle_name;          /* the name without a connection */
    GList *conns;             /* ChardevConn, oldest first */
} ChardevEntry;

/* Updates and queries both run on the main thread; the lock only keeps a
 * stray caller on another thread from tearing the list. */
static GMutex lock;
static GPtrArray *entries;

static ChardevEntry *find(const char *label)
{
    for (guint i = 0; label && entries && i < entries->len; i++) {
        ChardevEntry *e = entries->pdata[i];
        if (!strcmp(e->label, label)) {
            return e;
        }
    }
    return NULL;
}

static void conn_free(gpointer p)
{
    ChardevConn *c = p;
    g_free(c->name);
    g_free(c);
}

static void entry_free(gpointer p)
{
    ChardevEntry *e = p;
    g_free(e->label);
    g_free(e->idle_name);
    g_list_free_full(e->conns, conn_free);
    g_free(e);
}

/* The address as the chardev's spec gives it (QEMU's unresolved form: an
 * IPv6 host without brackets). */
static char *spec_address(const ChardevSpec *spec)
{
    switch (spec->kind) {
    case CHARDEV_UNIX:
        return g_strdup_printf("unix:%s", spec->path);
    case CHARDEV_TCP:
        return g_strdup_printf("tcp:%s:%s", spec->host, spec->port);
    case CHARDEV_FD:
        return g_strdup_printf("fd:%d", spec->fd);
    default:
        return NULL;
    }
}

static char *unix_path(const struct sockaddr_storage *ss, socklen_t len)
{
    const struct sockaddr_un *sun = (const struct sockaddr_un *)ss;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    size_t n = len > off ? MIN(len - off, sizeof(sun->sun_path)) : 0;

    return g_strndup(sun->sun_path, n);      /* stops at the NUL, if any */
}

static bool numeric(const struct sockaddr_storage *ss, socklen_t len, bool brackets, char **host, char **port)
{
    char h[NI_MAXHOST], p[NI_MAXSERV];

    if (getnameinfo((const struct sockaddr *)ss, len, h, sizeof(h), p, sizeof(p),
                    NI_NUMERICHOST | NI_NUMERICSERV)) {
        return false;
    }
    bool v6 = brackets && ss->ss_family == AF_INET6;
    *host = g_strdup_printf("%s%s%s", v6 ? "[" : "", h, v6 ? "]" : "");
    *port = g_strdup(p);
    return true;
}

/* "unix:PATH" or "tcp:HOST:PORT" of a listening socket, NULL if unknown. */
static char *bound_address(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    g_autofree char *host = NULL, *port = NULL;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
        return NULL;
    }
    if (ss.ss_family == AF_UNIX) {
        g_autofree char *path = unix_path(&ss, len);
        return g_strdup_printf("unix:%s", path);
    }
    if (!numeric(&ss, len, false, &host, &port)) {
        return NULL;
    }
    return g_strdup_printf("tcp:%s:%s", host, port);
}

static char *connected_name(int fd, bool server)
{
    struct sockaddr_storage ls, ps;
    socklen_t llen = sizeof(ls), plen = sizeof(ps);
    const char *srv = server ? ",server=on" : "";
    g_autofree char *lhost = NULL, *lport = NULL, *phost = NULL, *pport = NULL;

    if (getsockname(fd, (struct sockaddr *)&ls, &llen) < 0) {
        return NULL;
    }
    if (ls.ss_family == AF_UNIX) {
        g_autofree char *path = unix_path(&ls, llen);
        return g_strdup_printf("unix:%s%s", path, srv);
    }
    if (getpeername(fd, (struct sockaddr *)&ps, &plen) < 0 || !numeric(&ls, llen, true, &lhost, &lport) ||
        !numeric(&ps, plen, true, &phost, &pport)) {
        return NULL;
    }
    return g_strdup_printf("tcp:%s:%s%s <-> %s:%s", lhost, lport, srv, phost, pport);
}

void chardev_info_add(const ChardevSpec *spec)
{
    ChardevEntry *e = g_new0(ChardevEntry, 1);
    g_autofree char *addr = spec_address(spec);

    e->label = g_strdup(spec->id ? spec->id : "");
    e->server = spec->server;
    switch (spec->kind) {
    case CHARDEV_NONE:
        e->idle_name = g_strdup("null");
        break;
    case CHARDEV_STDIO:
        e->idle_name = g_strdup("stdio");
        break;
    case CHARDEV_FILE:
        e->idle_name = g_strdup("file");
        break;
    case CHARDEV_PIPE:
        e->idle_name = g_strdup("pipe");
        break;
    default:
        e->idle_name = g_strdup_printf("disconnected:%s%s", addr, spec->server ? ",server=on" : "");
        break;
    }
    g_mutex_lock(&lock);
    if (!entries) {
        entries = g_ptr_array_new_with_free_func(entry_free);
    }
    g_ptr_array_add(entries, e);
    g_mutex_unlock(&lock);
}

void chardev_info_clear(void)
{
    g_mutex_lock(&lock);
    if (entries) {
        g_ptr_array_free(entries, TRUE);
        entries = NULL;
    }
    g_mutex_unlock(&lock);
}

void chardev_info_set_opened(const char *label)
{
    g_mutex_lock(&lock);
    ChardevEntry *e = find(label);
    if (e) {
        e->opened = true;
    }
    g_mutex_unlock(&lock);
}

bool chardev_info_is_opened(const char *label)
{
    g_mutex_lock(&lock);
    ChardevEntry *e = find(label);
    bool opened = e && e->opened;
    g_mutex_unlock(&lock);
    return opened;
}

void chardev_info_set_frontend_open(const char *label)
{
    g_mutex_lock(&lock);
    ChardevEntry *e = find(label);
    if (e) {
        e->opened = e->frontend_open = true;
    }
    g_mutex_unlock(&lock);
}

void chardev_info_listening(const char *label, int listen_fd)
{
    g_autofree char *addr = bound_address(listen_fd);

    g_mutex_lock(&lock);
    ChardevEntry *e = find(label);
    if (e && addr) {
        g_free(e->idle_name);
        e->idle_name = g_strdup_printf("disconnected:%s,server=on", addr);
    }
    g_mutex_unlock(&lock);
}

void chardev_info_connected(const char *label, int fd)
{
    g_mutex_lock(&lock);
    ChardevEntry *e = find(label);
    if (e) {
        ChardevConn *c = g_new0(ChardevConn, 1);
        c->fd = fd;
        c->name = connected_name(fd, e->server);
        e->conns = g_list_append(e->conns, c);
    }
    g_mutex_unlock(&lock);
}

void chardev_info_disconnected(const char *label, int fd)
{
    g_mutex_lock(&lock);
    ChardevEntry *e = find(label);
    for (GList *l = e ? e->conns : NULL; l; l = l->next) {
        ChardevConn *c = l->data;
        if (c->fd == fd) {
            e->conns = g_list_delete_link(e->conns, l);
            conn_free(c);
            break;
        }
    }
    g_mutex_unlock(&lock);
}

ChardevInfoList *qmp_query_chardev(Error **errp)
{
    ChardevInfoList *head = NULL, **tail = &head;

    g_mutex_lock(&lock);
    for (guint i = 0; entries && i < entries->len; i++) {
        const ChardevEntry *e = entries->pdata[i];
        const ChardevConn *c = e->conns ? e->conns->data : NULL;
        ChardevInfo *info = g_new0(ChardevInfo, 1);
        info->label = g_strdup(e->label);
        info->filename = g_strdup(c && c->name ? c->name : e->idle_name);
        info->frontend_open = e->frontend_open;
        *tail = g_new0(ChardevInfoList, 1);
        (*tail)->value = info;
        tail = &(*tail)->next;
    }
    g_mutex_unlock(&lock);
    return head;
}
