/*
 * The pre-flight check: x-migrate-check URI asks a listening migvm
 * destination whether it would accept this VM, with no guest data and
 * without pausing the guest; the destination answers and keeps listening.
 *
 * Protocol, on a fresh connection to the migration address (tcp or unix),
 * all integers big-endian:
 *
 *   source → destination   be32 0x4d564350 ("MVCP"), be32 1 (version),
 *                          be32 len, len bytes of JSON (len <= 1 MiB):
 *     { "machine": "pc-i440fx-7.2",
 *       "ram": [ { "name": "pc.ram", "size": N } ],
 *       "sections": [ { "name": "timer", "instance": 0, "version": 2 }, ... ],
 *       "disks": [ { "name": "ide0-hd0", "size": N } ],     (block migration only)
 *       "capabilities": [ "events", ... ],                   (enabled ones)
 *       "multifd": { "channels": N, "compression": "none" }, (multifd only)
 *       "stream": BASE64 }
 *   "stream" is the start of the real stream: header, configuration, the
 *   early_setup device sections (the CPU model), EOF. The destination loads
 *   it with the real loader, so its checks (machine type, CPU vendor and
 *   features, TSC) are exactly those of a migration.
 *
 *   destination → source  be32 0x4d564350, be32 len, JSON:
 *     { "compatible": BOOL,
 *       "problems": [ { "item": "...", "source": "...", "destination": "..." } ] }
 *   then it closes the connection and listens again.
 *
 * Of the capabilities, the destination compares those a migration needs on
 * both ends: multifd (its channels connect to a destination that expects
 * them) and, with it, the channel count and the compression; postcopy-ram
 * when the source has it. A mismatch there fails the real migration.
 *
 * The stream part goes through the same loader a migration would, into the
 * same (still unused) devices, before any migration arrived: a check
 * cannot do there what a migration could not.
 *
 * The destination tells a check from a migration by its first four bytes
 * (peeked, so a migration's "QEVM" stays in the socket for the loader). A
 * QEMU 7.2 destination reads "MVCP" as a bad magic: it reports "Not a
 * migration stream", ends its incoming migration (QEMU 7.2 then exits) and
 * closes the connection without an answer, which the source reports as a
 * destination that does not speak the check.
 */
#include "preflight.h"
#include "channel.h"
#include "tls.h"
#include "memory.h"
#include "machine.h"
#include "migration.h"
#include "options.h"
#include "savevm.h"
#include "stream.h"
#include "block.h"
#include "fd-io.h"
#include "json-writer.h"
#include "vm.h"
#include "qapi-commands.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <glib.h>
#include <glib-unix.h>
#include <json-c/json.h>

#define PREFLIGHT_MAGIC 0x4d564350u
#define PREFLIGHT_VERSION 1
#define PREFLIGHT_MAX_JSON (1024 * 1024)
#define PREFLIGHT_TIMEOUT_S 10

/* ---- both sides ------------------------------------------------------------ */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void set_timeouts(int fd, struct timeval tv)
{
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Send `words` (be32 each) then the JSON text. */
static bool send_message(int fd, const uint32_t *words, int nwords, const char *json)
{
    uint8_t head[12];
    size_t len = strlen(json);
    for (int i = 0; i < nwords; i++) {
        put_be32(head + 4 * i, words[i]);
    }
    put_be32(head + 4 * nwords, (uint32_t)len);
    size_t head_len = 4 * (size_t)nwords + 4;
    return fd_send_full(fd, head, head_len, MSG_NOSIGNAL) == head_len &&
           fd_send_full(fd, json, len, MSG_NOSIGNAL) == len;
}

/* be32 len and that much JSON: an object, or NULL with errp. */
static json_object *read_json(int fd, Error **errp)
{
    uint8_t b[4];
    if (fd_read_full(fd, b, 4) != 4) {
        error_setg(errp, "the pre-flight message ended early");
        return NULL;
    }
    uint32_t len = get_be32(b);
    if (len > PREFLIGHT_MAX_JSON) {
        error_setg(errp, "pre-flight message of %" PRIu32 " bytes (at most %d)", len, PREFLIGHT_MAX_JSON);
        return NULL;
    }
    g_autofree char *text = g_malloc(len + 1);
    if (fd_read_full(fd, text, len) != (ssize_t)len) {
        error_setg(errp, "the pre-flight message ended early");
        return NULL;
    }
    text[len] = '\0';
    json_object *obj = json_tokener_parse(text);
    if (!obj || !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        error_setg(errp, "the pre-flight message is not a JSON object");
        return NULL;
    }
    return obj;
}

static const char *json_str(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
           ? json_object_get_string(v) : NULL;
}

static bool json_int(json_object *o, const char *key, int64_t *out)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int)) {
        return false;
    }
    *out = json_object_get_int64(v);
    return true;
}

static json_object *json_array(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_array) ? v : NULL;
}

/* ---- source ------------------------------------------------------------------ */

static void add_section(const char *idstr, uint32_t instance_id, int version_id, void *opaque)
{
    json_object *s = json_object_new_object();
    json_object_object_add(s, "name", json_object_new_string(idstr));
    json_object_object_add(s, "instance", json_object_new_int64(instance_id));
    json_object_object_add(s, "version", json_object_new_int64(version_id));
    json_object_array_add(opaque, s);
}

static json_object *named_size(const char *name, int64_t size)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "size", json_object_new_int64(size));
    return o;
}

/* What this VM would send. [BQL] */
static json_object *describe(Error **errp)
{
    MigConfigOptions cfg = { .machine_type = machine_type() };
    MigStream *f = mig_stream_new_mem_writer();
    if (!savevm_state_preflight(f, &cfg, errp)) {
        mig_stream_close(f, NULL);
        return NULL;
    }
    size_t len;
    const uint8_t *data = mig_stream_mem_data(f, &len);
    g_autofree char *b64 = g_base64_encode(data, len);
    mig_stream_close(f, NULL);

    json_object *d = json_object_new_object();
    json_object_object_add(d, "machine", json_object_new_string(cfg.machine_type));
    json_object *ram = json_object_new_array();
    RAMBLOCK_FOREACH(b) {
        json_object_array_add(ram, named_size(b->name, (int64_t)b->used_length));
    }
    json_object_object_add(d, "ram", ram);
    json_object *sections = json_object_new_array();
    savevm_foreach_section(add_section, sections);
    json_object_object_add(d, "sections", sections);
    if (migrate_cap(MIGRATION_CAPABILITY_BLOCK)) {
        json_object *disks = json_object_new_array();
        for (BlockBackend *blk = blk_next(NULL); blk; blk = blk_next(blk)) {
            json_object_array_add(disks, named_size(blk_name(blk), blk_getlength(blk)));
        }
        json_object_object_add(d, "disks", disks);
    }
    json_object *caps = json_object_new_array();
    for (int c = 0; c < MIGRATION_CAPABILITY__MAX; c++) {
        if (migrate_cap(c)) {
            json_object_array_add(caps, json_object_new_string(MigrationCapability_str(c)));
        }
    }
    json_object_object_add(d, "capabilities", caps);
    if (migrate_cap(MIGRATION_CAPABILITY_MULTIFD)) {
        MigrateMultifdParams mp;
        migrate_multifd_params(&mp);
        json_object *m = json_object_new_object();
        json_object_object_add(m, "channels", json_object_new_int64(mp.channels));
        json_object_object_add(m, "compression", json_object_new_string(MultiFDCompression_str(mp.compression)));
        json_object_object_add(d, "multifd", m);
    }
    json_object_object_add(d, "stream", json_object_new_string(b64));
    return d;
}

static void timed_out(const char *stage, Error **errp)
{
    error_setg(errp, "the destination did not answer the pre-flight check within %d s (%s)",
               PREFLIGHT_TIMEOUT_S, stage);
}

/* If the check's one deadline passed while `stage`, say so in *errp rather
 * than what the interrupted step said. */
static void check_timed_out(int timer, const char *stage, Error **errp)
{
    struct pollfd pfd = { .fd = timer, .events = POLLIN };
    if (poll(&pfd, 1, 0) == 1) {
        error_free(*errp);
        *errp = NULL;
        timed_out(stage, errp);
    }
}

/* Connect, send the description, read the verdict, all within
 * PREFLIGHT_TIMEOUT_S: the monitor waits for it (a timerfd cancels the
 * connect and the handshake, socket timeouts bound the rest). Without the BQL. */
static json_object *ask(MigAddress *addr, const char *request, Error **errp)
{
    MigChannel ch = { .fd = -1 };
    Error *err = NULL;
    int timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    struct itimerspec its = { .it_value = { .tv_sec = PREFLIGHT_TIMEOUT_S } };
    if (timer < 0 || timerfd_settime(timer, 0, &its, NULL) < 0) {
        error_setg_errno(errp, errno, "x-migrate-check: cannot create its timer");
        if (timer >= 0) {
            close(timer);
        }
        return NULL;
    }
    if (!mig_channel_connect(addr, -1, timer, &ch, &err)) {
        check_timed_out(timer, "connecting", &err);
        error_propagate(errp, err);
        close(timer);
        return NULL;
    }
    /* with tls-creds, as a migration would */
    if (!mig_tls_channel_client(&ch, addr, timer, &err)) {
        check_timed_out(timer, "TLS handshake", &err);
        error_propagate(errp, err);
        mig_channel_close(&ch, true, NULL);
        close(timer);
        return NULL;
    }
    struct itimerspec left;
    timerfd_gettime(timer, &left);
    close(timer);
    struct timeval tv = { .tv_sec = left.it_value.tv_sec, .tv_usec = left.it_value.tv_nsec / 1000 };
    if (tv.tv_sec < 1) {
        tv = (struct timeval) { .tv_sec = 1 };      /* a little time for the verdict, whatever is left */
    }
    set_timeouts(ch.fd, tv);
    json_object *answer = NULL;
    uint32_t words[2] = { PREFLIGHT_MAGIC, PREFLIGHT_VERSION };
    uint8_t magic[4];
    /* A destination that does not speak it closes the connection, while we
     * send (EPIPE) or before it answers. */
    bool sent = send_message(ch.fd, words, 2, request);
    int send_errno = errno;
    ssize_t got = 0;
    if (!sent && (send_errno == EAGAIN || send_errno == EWOULDBLOCK)) {
        timed_out("sending", errp);
    } else if ((!sent && send_errno != EPIPE && send_errno != ECONNRESET)) {
        error_setg(errp, "could not send the pre-flight check: %s", g_strerror(send_errno));
    } else if (sent && (got = fd_read_full(ch.fd, magic, 4)) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        timed_out("waiting for its verdict", errp);
    } else if (!sent || got != 4 || get_be32(magic) != PREFLIGHT_MAGIC) {
        error_setg(errp, "the destination does not speak the pre-flight check (not a migvm destination; "
                   "a QEMU 7.2 destination ends its incoming migration on it)");
    } else {
        answer = read_json(ch.fd, errp);
    }
    mig_channel_close(&ch, true, NULL);
    return answer;
}

MigrationCheckResult *qmp_x_migrate_check(const q_obj_x_migrate_check_arg *arg, Error **errp)
{
    assert(bql_locked());
    MigAddress addr;
    if (!mig_address_parse(arg->uri, false, &addr, errp)) {
        return NULL;
    }
    if (addr.transport != MIG_TRANSPORT_TCP && addr.transport != MIG_TRANSPORT_UNIX) {
        mig_address_clear(&addr);
        error_setg(errp, "x-migrate-check needs a tcp: or unix: URI (a destination that answers)");
        return NULL;
    }
    json_object *d = describe(errp);
    if (!d) {
        mig_address_clear(&addr);
        return NULL;
    }
    g_autofree char *request = json_to_string(d);
    json_object_put(d);
    /* The guest runs on: the network waits happen without the BQL. */
    bql_unlock();
    json_object *answer = ask(&addr, request, errp);
    bql_lock();
    mig_address_clear(&addr);
    if (!answer) {
        return NULL;
    }
    MigrationCheckResult *r = g_new0(MigrationCheckResult, 1);
    json_object *v;
    r->compatible = json_object_object_get_ex(answer, "compatible", &v) && json_object_get_boolean(v);
    json_object *problems = json_array(answer, "problems");
    MigrationCheckProblemList **tail = &r->problems;
    for (size_t i = 0; problems && i < json_object_array_length(problems); i++) {
        json_object *p = json_object_array_get_idx(problems, i);
        MigrationCheckProblem *q = g_new0(MigrationCheckProblem, 1);
        q->item = g_strdup(json_str(p, "item") ? json_str(p, "item") : "?");
        q->source = g_strdup(json_str(p, "source") ? json_str(p, "source") : "?");
        q->destination = g_strdup(json_str(p, "destination") ? json_str(p, "destination") : "?");
        MigrationCheckProblemList *n = g_new0(MigrationCheckProblemList, 1);
        n->value = q;
        *tail = n;
        tail = &n->next;
    }
    if (r->problems) {
        r->compatible = false;
    }
    json_object_put(answer);
    return r;
}

/* ---- destination ------------------------------------------------------------- */

static void problem(json_object *list, const char *item, const char *src, const char *dst)
{
    json_object *p = json_object_new_object();
    json_object_object_add(p, "item", json_object_new_string(item));
    json_object_object_add(p, "source", json_object_new_string(src));
    json_object_object_add(p, "destination", json_object_new_string(dst));
    json_object_array_add(list, p);
}

static void compare_named_sizes(json_object *list, json_object *items, const char *what,
                                int64_t (*local_size)(const char *name))
{
    for (size_t i = 0; items && i < json_object_array_length(items); i++) {
        json_object *o = json_object_array_get_idx(items, i);
        const char *name = json_str(o, "name");
        int64_t size;
        if (!name || !json_int(o, "size", &size)) {
            problem(list, what, "malformed entry", "-");
            continue;
        }
        g_autofree char *item = g_strdup_printf("%s %s", what, name);
        g_autofree char *src = g_strdup_printf("%" PRId64 " bytes", size);
        int64_t here = local_size(name);
        if (here < 0) {
            problem(list, item, src, "absent");
        } else if (here != size) {
            g_autofree char *dst = g_strdup_printf("%" PRId64 " bytes", here);
            problem(list, item, src, dst);
        }
    }
}

static int64_t ram_size_of(const char *name)
{
    RAMBlock *b = ram_block_by_name(name);
    return b ? (int64_t)b->used_length : -1;
}

static int64_t disk_size_of(const char *name)
{
    BlockBackend *blk = blk_by_name(name);
    return blk ? blk_getlength(blk) : -1;
}

static bool has_string(json_object *array, const char *s)
{
    for (size_t i = 0; array && i < json_object_array_length(array); i++) {
        json_object *v = json_object_array_get_idx(array, i);
        if (json_object_is_type(v, json_type_string) && strcmp(json_object_get_string(v), s) == 0) {
            return true;
        }
    }
    return false;
}

/* postcopy-ram on the source needs it on the destination (its ADVISE is
 * refused there otherwise, as QEMU 7.2's); on the destination alone it is
 * harmless. */
static void compare_postcopy(json_object *list, json_object *d)
{
    if (has_string(json_array(d, "capabilities"), "postcopy-ram") &&
        !migrate_cap(MIGRATION_CAPABILITY_POSTCOPY_RAM)) {
        problem(list, "capability postcopy-ram", "on", "off");
    }
}

/* multifd must be on at both ends or at neither, with the same channels and compression. */
static void compare_multifd(json_object *list, json_object *d)
{
    bool src_on = has_string(json_array(d, "capabilities"), "multifd");
    bool dst_on = migrate_cap(MIGRATION_CAPABILITY_MULTIFD);
    if (src_on != dst_on) {
        problem(list, "capability multifd", src_on ? "on" : "off", dst_on ? "on" : "off");
        return;
    }
    json_object *m;
    if (!src_on || !json_object_object_get_ex(d, "multifd", &m)) {
        return;
    }
    MigrateMultifdParams mp;
    migrate_multifd_params(&mp);
    int64_t channels;
    if (json_int(m, "channels", &channels) && channels != mp.channels) {
        g_autofree char *src = g_strdup_printf("%" PRId64, channels);
        g_autofree char *dst = g_strdup_printf("%u", mp.channels);
        problem(list, "parameter multifd-channels", src, dst);
    }
    const char *comp = json_str(m, "compression");
    const char *here = MultiFDCompression_str(mp.compression);
    if (comp && strcmp(comp, here) != 0) {
        problem(list, "parameter multifd-compression", comp, here);
    }
}

static void device_lock(bool lock)
{
    if (lock) {
        bql_lock();
    } else {
        bql_unlock();
    }
}

/* The real loader on the start of the stream (machine type, CPU model),
 * locking as the incoming thread does. [without the BQL] */
static void check_stream(json_object *list, const char *b64)
{
    gsize len = 0;
    g_autofree guchar *data = g_base64_decode(b64, &len);
    MigStream *f = mig_stream_new_mem_reader(data, len);
    LoadvmOptions opts = { .local = { .machine_type = machine_type() }, .device_lock = device_lock };
    Error *err = NULL;
    if (!qemu_loadvm_state(f, &opts, &err)) {
        problem(list, "stream start (configuration, CPU model)", "as sent", error_get_pretty(err));
        error_free(err);
    }
    mig_stream_close(f, NULL);
}

/* Compare a source's description with this side: the problems. [BQL] */
static json_object *compare(json_object *d)
{
    json_object *list = json_object_new_array();
    const char *machine = json_str(d, "machine");
    if (!machine || strcmp(machine, machine_type()) != 0) {
        problem(list, "machine", machine ? machine : "?", machine_type());
    }
    compare_named_sizes(list, json_array(d, "ram"), "ram block", ram_size_of);
    compare_named_sizes(list, json_array(d, "disks"), "disk", disk_size_of);
    compare_multifd(list, d);
    compare_postcopy(list, d);
    json_object *sections = json_array(d, "sections");
    for (size_t i = 0; sections && i < json_object_array_length(sections); i++) {
        json_object *s = json_object_array_get_idx(sections, i);
        const char *name = json_str(s, "name");
        int64_t instance, version;
        if (!name || !json_int(s, "instance", &instance) || !json_int(s, "version", &version) ||
            instance < 0 || instance > UINT32_MAX || version < 0 || version > INT32_MAX) {
            problem(list, "section", "malformed entry", "-");
            continue;
        }
        g_autofree char *why = savevm_section_refusal(name, (uint32_t)instance, (int)version);
        if (why) {
            g_autofree char *item = g_strdup_printf("section %s instance %" PRId64, name, instance);
            g_autofree char *src = g_strdup_printf("version %" PRId64, version);
            problem(list, item, src, why);
        }
    }
    return list;
}

/* The answer to a source's description. */
static json_object *verdict(json_object *d)
{
    bql_lock();
    json_object *list = compare(d);
    bql_unlock();
    const char *stream = json_str(d, "stream");
    if (!json_object_array_length(list) && stream) {
        check_stream(list, stream);
    }
    json_object *v = json_object_new_object();
    json_object_object_add(v, "compatible", json_object_new_boolean(json_object_array_length(list) == 0));
    json_object_object_add(v, "problems", list);
    return v;
}

typedef struct Probe {
    MigChannel ch;
    guint watch;
    MigPreflightLoadFn *load;
    void (*done)(void);
    GThread *thread;
} Probe;

static void probe_finished(void *opaque)
{
    Probe *p = opaque;
    g_thread_join(p->thread);
    void (*done)(void) = p->done;
    g_free(p);
    done();
}

/* Serve one check on its own thread (the source may be slow). */
static gpointer check_thread(gpointer opaque)
{
    Probe *p = opaque;
    int fd = p->ch.fd;
    uint8_t head[8];
    Error *err = NULL;
    json_object *reply;
    set_timeouts(fd, (struct timeval) { .tv_sec = PREFLIGHT_TIMEOUT_S });
    json_object *d = NULL;
    if (fd_read_full(fd, head, 8) != 8 || get_be32(head + 4) != PREFLIGHT_VERSION) {
        reply = json_object_new_object();
        json_object *list = json_object_new_array();
        problem(list, "pre-flight protocol", "version ?", "version 1");
        json_object_object_add(reply, "compatible", json_object_new_boolean(false));
        json_object_object_add(reply, "problems", list);
    } else if (!(d = read_json(fd, &err))) {
        reply = json_object_new_object();
        json_object *list = json_object_new_array();
        problem(list, "pre-flight request", "unreadable", error_get_pretty(err));
        json_object_object_add(reply, "compatible", json_object_new_boolean(false));
        json_object_object_add(reply, "problems", list);
        error_free(err);
    } else {
        reply = verdict(d);
    }
    json_object_put(d);
    g_autofree char *text = json_to_string(reply);
    json_object_put(reply);
    uint32_t words[1] = { PREFLIGHT_MAGIC };
    send_message(fd, words, 1, text);      /* a source that left gets nothing */
    mig_channel_close(&p->ch, false, NULL);     /* not abort: a TLS layer delivers the answer first */
    main_loop_schedule(probe_finished, p);
    return NULL;
}

/* The first bytes are in (or the peer left): a check, or a migration. */
static gboolean probe_readable(int fd, GIOCondition cond, gpointer opaque)
{
    Probe *p = opaque;
    uint8_t magic[4];
    ssize_t n = recv(fd, magic, sizeof(magic), MSG_PEEK | MSG_DONTWAIT);
    /* A check's first write holds its whole header: fewer bytes (or none,
     * the peer gone) cannot be one, and the loader reports what they are. */
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return G_SOURCE_CONTINUE;
    }
    p->watch = 0;
    if (n == 4 && get_be32(magic) == PREFLIGHT_MAGIC) {
        p->thread = g_thread_new("migration-check", check_thread, p);
        return G_SOURCE_REMOVE;
    }
    MigChannel ch = p->ch;
    MigPreflightLoadFn *load = p->load;
    g_free(p);
    load(&ch);
    return G_SOURCE_REMOVE;
}

void mig_preflight_classify(MigChannel *ch, MigPreflightLoadFn *load, void (*done)(void))
{
    int type = 0;
    socklen_t len = sizeof(type);
    if (!ch->bidirectional || getsockopt(ch->fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
        load(ch);           /* exec, fd, file: never a check */
        return;
    }
    Probe *p = g_new0(Probe, 1);
    p->ch = *ch;
    p->load = load;
    p->done = done;
    p->watch = g_unix_fd_add(ch->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, probe_readable, p);
}
