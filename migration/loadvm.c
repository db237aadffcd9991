/*
 * The stream reader: qemu_loadvm_state (the byte layout is described at
 * the top of savevm.c, which writes it).
 *
 * Reader states: HEADER -> CONFIGURATION -> SECTIONS (START/FULL open a
 * section id; PART/END resolve it; COMMANDs in between) -> EOF -> optional
 * VMDESCRIPTION (warnings only). A FULL section may come anywhere, so the
 * early_setup ones (sent before any RAM) need nothing special on this side.
 * Every length is bounded, every section
 * footer is checked, a (idstr, instance) is loaded at most once, and any
 * failure leaves the loader with a single error naming the cause.
 */
#include "savevm-int.h"
#include "postcopy-ram.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <glib.h>

enum { LOADED_FULL = 1, LOADED_START = 2, LOADED_END = 4 };

typedef struct LoadSection {
    SaveStateEntry *se;
    uint32_t section_id;
    uint32_t version_id;
    unsigned state;                     /* LOADED_* */
} LoadSection;

typedef struct LoadState {
    MigStream *f;
    const LoadvmOptions *opts;
    GHashTable *by_id;                  /* section_id -> LoadSection */
    GHashTable *by_entry;               /* SaveStateEntry * -> LoadSection (same objects) */
    GPtrArray *set_up;                  /* entries whose load_setup ran */
    MigStream *rp;                      /* opts->return_path, or the recovered one */
    bool rp_open;
    bool advised;                       /* POSTCOPY_ADVISE (length 0) seen */
    /* Postcopy: the PACKAGED blob is parsed by a nested LoadState on this
     * thread while a listen thread reads the rest of this (outer) stream. */
    bool nested;                        /* a PACKAGED blob: ends with its data */
    struct LoadState *outer;            /* nested: the stream LISTEN hands over */
    GThread *listen_thread;             /* outer: reads on after LISTEN */
    bool listened;                      /* outer: the listen thread read the rest (set after its join) */
    Error *listen_err;                  /* outer: its outcome */
    /* outer: the package's loader is done with it (RUN ran, or it failed),
     * so the return path is the listen thread's alone. [package_lock;
     * pthread, not GMutex: visible to ThreadSanitizer] */
    bool package_done;
    pthread_mutex_t package_lock;
    pthread_cond_t package_cond;
} LoadState;

static bool load_sections(LoadState *s, Error **errp);

static bool load_header(LoadState *s, Error **errp)
{
    uint32_t magic = mig_stream_get_be32(s->f);
    uint32_t version = mig_stream_get_be32(s->f);
    if (!mig_stream_check(s->f, errp, "Failed to read the migration header")) {
        return false;
    }
    if (magic != QEMU_VM_FILE_MAGIC) {
        error_setg(errp, "Not a migration stream");
        return false;
    }
    if (version == QEMU_VM_FILE_VERSION_COMPAT) {
        error_setg(errp, "SaveVM v2 format is obsolete and don't work anymore");
        return false;
    }
    if (version != QEMU_VM_FILE_VERSION) {
        error_setg(errp, "Unsupported migration stream version");
        return false;
    }
    if (mig_stream_peek_u8(s->f) != QEMU_VM_CONFIGURATION) {
        if (s->opts->allow_no_configuration) {
            return true;
        }
        error_setg(errp, "Configuration section missing");
        return false;
    }
    mig_stream_skip(s->f, 1);
    return config_section_load(s->f, &s->opts->local, errp);
}

static bool load_setup_all(LoadState *s, Error **errp)
{
    GPtrArray *r = savevm_entries();
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        /* Not is_active: that is the source's choice (its capabilities); a
         * destination loads whatever comes, with no capability set. */
        if (!se->ops || !se->ops->load_setup) {
            continue;
        }
        g_ptr_array_add(s->set_up, se);
        if (!se->ops->load_setup(se->opaque, errp)) {
            error_prepend(errp, "Failed to prepare '%s' for incoming migration: ", se->idstr);
            return false;
        }
    }
    return true;
}

static void load_cleanup_all(LoadState *s)
{
    for (guint i = 0; i < s->set_up->len; i++) {
        SaveStateEntry *se = s->set_up->pdata[i];
        if (se->ops->load_cleanup) {
            se->ops->load_cleanup(se->opaque);
        }
    }
}

static bool check_footer(LoadState *s, LoadSection *ls, Error **errp)
{
    uint8_t b = mig_stream_get_u8(s->f);
    uint32_t id = b == QEMU_VM_SECTION_FOOTER ? mig_stream_get_be32(s->f) : 0;
    if (!mig_stream_check(s->f, errp, "Failed to read a section footer")) {
        return false;
    }
    if (b != QEMU_VM_SECTION_FOOTER) {
        error_setg(errp, "Missing section footer for %s", ls->se->idstr);
        return false;
    }
    if (id != ls->section_id) {
        error_setg(errp, "Mismatched section id in footer for %s - read 0x%x expected 0x%x",
                   ls->se->idstr, id, ls->section_id);
        return false;
    }
    return true;
}

/* Run the entry's loader on the body that follows, then check the footer. */
static bool load_section_body(LoadState *s, LoadSection *ls, Error **errp)
{
    SaveStateEntry *se = ls->se;
    Error *local = NULL;
    bool ok;
    if (se->vmsd) {
        if (s->opts->device_lock) {
            s->opts->device_lock(true);
        }
        ok = vmstate_load(s->f, se->vmsd, se->opaque, (int)ls->version_id, &local);
        if (s->opts->device_lock) {
            s->opts->device_lock(false);
        }
    } else {
        ok = se->ops->load_state(s->f, se->opaque, (int)ls->version_id, &local);
    }
    /* Every loader reports its own failure (error.h); a loader that returns
     * true on a failed stream missed a check, which the stream still names. */
    assert(ok == !local);
    if (ok && !mig_stream_check(s->f, &local, "Stream error")) {
        ok = false;
    }
    if (!ok) {
        error_prepend(&local, "error while loading state for instance 0x%" PRIx32
                      " of device '%s': ", se->instance_id, se->idstr);
        error_propagate(errp, local);
        return false;
    }
    return check_footer(s, ls, errp);
}

static LoadSection *open_section(LoadState *s, uint8_t type, uint32_t section_id,
                                 SaveStateEntry *se, uint32_t version_id, Error **errp)
{
    LoadSection *ls = g_hash_table_lookup(s->by_entry, se);
    if (ls) {
        error_setg(errp, "Duplicate section for '%s' instance %" PRIu32, se->idstr,
                   se->instance_id);
        return NULL;
    }
    if (g_hash_table_contains(s->by_id, GUINT_TO_POINTER(section_id))) {
        error_setg(errp, "Section id %" PRIu32 " used twice (second time for '%s')", section_id,
                   se->idstr);
        return NULL;
    }
    if (type == QEMU_VM_SECTION_START ? !se->ops || !se->ops->load_state
                                      : !se->vmsd && !se->ops->load_state) {
        error_setg(errp, "Section '%s' cannot be loaded as a %s section", se->idstr,
                   type == QEMU_VM_SECTION_START ? "live" : "full");
        return NULL;
    }
    ls = g_new0(LoadSection, 1);
    ls->se = se;
    ls->section_id = section_id;
    ls->version_id = version_id;
    ls->state = type == QEMU_VM_SECTION_START ? LOADED_START : LOADED_FULL;
    g_hash_table_insert(s->by_id, GUINT_TO_POINTER(section_id), ls);
    g_hash_table_insert(s->by_entry, se, ls);
    return ls;
}

static bool load_start_full(LoadState *s, uint8_t type, Error **errp)
{
    char idstr[256];
    uint32_t section_id = mig_stream_get_be32(s->f);
    int len = mig_stream_get_counted_string(s->f, idstr);
    uint32_t instance_id = mig_stream_get_be32(s->f);
    uint32_t version_id = mig_stream_get_be32(s->f);
    if (!mig_stream_check(s->f, errp, "Failed to read a section header")) {
        return false;
    }
    if (len == 0 || memchr(idstr, '\0', len)) {
        error_setg(errp, "Section %" PRIu32 " has an empty or invalid idstr", section_id);
        return false;
    }
    SaveStateEntry *se = savevm_find_entry(idstr, instance_id);
    if (!se) {
        error_setg(errp, "Unknown savevm section or instance '%s' %" PRIu32 ". Make sure that "
                   "your current VM setup matches your saved VM setup, including any "
                   "hotplugged devices", idstr, instance_id);
        return false;
    }
    if (version_id > (uint32_t)se->version_id) {
        error_setg(errp, "savevm: unsupported version %" PRIu32 " for '%s' v%d", version_id,
                   idstr, se->version_id);
        return false;
    }
    LoadSection *ls = open_section(s, type, section_id, se, version_id, errp);
    return ls && load_section_body(s, ls, errp);
}

static bool load_part_end(LoadState *s, uint8_t type, Error **errp)
{
    uint32_t section_id = mig_stream_get_be32(s->f);
    if (!mig_stream_check(s->f, errp, "Failed to read a section header")) {
        return false;
    }
    LoadSection *ls = g_hash_table_lookup(s->by_id, GUINT_TO_POINTER(section_id));
    if (!ls) {
        error_setg(errp, "Unknown savevm section %" PRIu32, section_id);
        return false;
    }
    if (ls->state != LOADED_START) {
        error_setg(errp, "Section %" PRIu32 " ('%s') is not an open live section", section_id,
                   ls->se->idstr);
        return false;
    }
    if (type == QEMU_VM_SECTION_END) {
        ls->state = LOADED_END;
    }
    return load_section_body(s, ls, errp);
}

static const char *const cmd_names[MIG_CMD_MAX] = {
    [MIG_CMD_OPEN_RETURN_PATH] = "OPEN_RETURN_PATH", [MIG_CMD_PING] = "PING",
    [MIG_CMD_POSTCOPY_ADVISE] = "POSTCOPY_ADVISE", [MIG_CMD_POSTCOPY_LISTEN] = "POSTCOPY_LISTEN",
    [MIG_CMD_POSTCOPY_RUN] = "POSTCOPY_RUN", [MIG_CMD_POSTCOPY_RAM_DISCARD] = "POSTCOPY_RAM_DISCARD",
    [MIG_CMD_PACKAGED] = "PACKAGED", [MIG_CMD_ENABLE_COLO] = "ENABLE_COLO",
    [MIG_CMD_POSTCOPY_RESUME] = "POSTCOPY_RESUME", [MIG_CMD_RECV_BITMAP] = "RECV_BITMAP",
};

/* Fixed argument length of a command, -1 if variable, -2 if 0 or 16. */
static int cmd_len(uint16_t cmd)
{
    switch (cmd) {
    case MIG_CMD_PING: case MIG_CMD_PACKAGED:
        return 4;
    case MIG_CMD_POSTCOPY_ADVISE:
        return -2;
    case MIG_CMD_POSTCOPY_RAM_DISCARD: case MIG_CMD_RECV_BITMAP:
        return -1;
    default:
        return 0;
    }
}

static bool refuse_command(uint16_t cmd, Error **errp)
{
    error_setg(errp, "%s is not supported by migvm here", cmd_names[cmd]);
    return false;
}

/* ---- postcopy (shared docs: postcopy.md section 2) ---- */

static bool load_postcopy_advise(LoadState *s, Error **errp)
{
    uint64_t summary = mig_stream_get_be64(s->f);
    uint64_t target = mig_stream_get_be64(s->f);
    if (!mig_stream_check(s->f, errp, "Failed to read a command")) {
        return false;
    }
    if (!s->opts->postcopy || !s->opts->postcopy->enabled()) {
        error_setg(errp, "RAM postcopy is disabled but have 16 byte advise");
        return false;
    }
    return s->opts->postcopy->advise(summary, target, errp);
}

static bool load_postcopy_discard(LoadState *s, uint16_t len, Error **errp)
{
    uint8_t version = mig_stream_get_u8(s->f);
    char name[256];
    int nl = mig_stream_get_counted_string(s->f, name);
    if (!mig_stream_check(s->f, errp, "Failed to read a command")) {
        return false;
    }
    if (version != 0) {
        error_setg(errp, "CMD_POSTCOPY_RAM_DISCARD invalid version (%d)", version);
        return false;
    }
    uint8_t nil = mig_stream_get_u8(s->f);
    if (!mig_stream_check(s->f, errp, "Failed to read a command")) {
        return false;
    }
    if (nil != 0) {
        error_setg(errp, "CMD_POSTCOPY_RAM_DISCARD missing nil (%d)", nil);
        return false;
    }
    if (len < 20 || len < 3 + nl || (len - 3 - nl) % 16 != 0) {
        error_setg(errp, "CMD_POSTCOPY_RAM_DISCARD invalid length (%d)", len);
        return false;
    }
    for (int left = (len - 3 - nl) / 16; left > 0; left--) {
        uint64_t start = mig_stream_get_be64(s->f);
        uint64_t length = mig_stream_get_be64(s->f);
        if (!mig_stream_check(s->f, errp, "Failed to read a command") ||
            !s->opts->postcopy->discard(name, start, length, errp)) {
            return false;
        }
    }
    return true;
}

/* The connection broke (an I/O error, not bad content): on a read, or on a
 * write to the return path. A source paused by migrate-pause may shut the
 * socket while a PONG is written, and then the write fails first. */
static bool channel_broke(LoadState *s)
{
    return mig_stream_has_error(s->f) || (s->rp && mig_stream_has_error(s->rp));
}

/* Postcopy: the connection broke after the guest started here: QEMU 7.2
 * pauses and waits for a new connection. It may break between LISTEN and
 * RUN (the destination says postcopy-active from LISTEN, so a source may be
 * paused there): the listen thread first waits for the package's loader,
 * which reads only the package, already here, and loads devices that touch
 * no guest page; whether the guest started decides. */
static bool listen_resumable(LoadState *s)
{
    if (!s->opts->channel_lost || !s->rp_open) {
        return false;
    }
    pthread_mutex_lock(&s->package_lock);
    while (!s->package_done) {
        pthread_cond_wait(&s->package_cond, &s->package_lock);
    }
    pthread_mutex_unlock(&s->package_lock);
    return channel_broke(s) && s->opts->postcopy->state() == POSTCOPY_INCOMING_RUNNING;
}

static void package_finished(LoadState *outer)
{
    pthread_mutex_lock(&outer->package_lock);
    outer->package_done = true;
    pthread_cond_broadcast(&outer->package_cond);
    pthread_mutex_unlock(&outer->package_lock);
}

static gpointer listen_thread(gpointer opaque)
{
    LoadState *outer = opaque;
    bool ok = load_sections(outer, &outer->listen_err);
    while (!ok && listen_resumable(outer)) {
        warn_report("%s; postcopy waits for a new connection", error_get_pretty(outer->listen_err));
        /* The incoming thread only joins this one now (the package's
         * devices are loaded): the outer streams are this thread's. */
        if (!outer->opts->channel_lost(outer->opts->recovery_opaque, &outer->f, &outer->rp)) {
            break;
        }
        error_free(outer->listen_err);
        outer->listen_err = NULL;
        ok = load_sections(outer, &outer->listen_err);
    }
    return NULL;
}

/* LISTEN (inside the blob): from now on another thread reads the outer
 * stream, so the pages the devices' loading may fault on keep coming. */
static bool load_postcopy_listen(LoadState *s, Error **errp)
{
    if (!s->nested || s->outer->listen_thread) {
        error_setg(errp, "CMD_POSTCOPY_LISTEN outside a package");
        return false;
    }
    if (!s->opts->postcopy->listen(s->rp, errp)) {
        return false;
    }
    s->outer->listen_thread = g_thread_new("postcopy/listen", listen_thread, s->outer);
    return true;
}

static bool load_packaged(LoadState *s, Error **errp)
{
    uint32_t len = mig_stream_get_be32(s->f);
    if (!mig_stream_check(s->f, errp, "Failed to read a command")) {
        return false;
    }
    if (s->nested) {
        error_setg(errp, "CMD_PACKAGED inside a package");
        return false;
    }
    if (len > MIGVM_PACKAGED_MAX_LEN || len > mig_stream_remaining_hint(s->f)) {
        error_setg(errp, "Unreasonably large packaged state: %" PRIu32, len);
        return false;
    }
    uint8_t *blob = g_malloc(len ? len : 1);
    if (!mig_stream_get_buffer(s->f, blob, len)) {
        g_free(blob);
        return mig_stream_check(s->f, errp, "Failed to read the packaged state");
    }
    LoadState in = {
        .f = mig_stream_new_mem_reader(blob, len),
        .opts = s->opts,
        .by_id = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free),
        .by_entry = g_hash_table_new(g_direct_hash, g_direct_equal),
        .set_up = g_ptr_array_new(),
        .rp = s->rp,
        .rp_open = s->rp_open,
        .nested = true,
        .outer = s,
    };
    Error *local = NULL;
    bool ok = load_sections(&in, &local);
    if (s->listen_thread) {
        package_finished(s);
        if (!ok) {
            mig_stream_shutdown(s->f);      /* the listen thread stops reading */
        }
        g_thread_join(s->listen_thread);
        s->listen_thread = NULL;
        s->listened = true;
        if (ok && s->listen_err) {
            ok = false;
            local = s->listen_err;
            s->listen_err = NULL;
        }
        error_free(s->listen_err);
        s->listen_err = NULL;
    }
    mig_stream_close(in.f, NULL);
    g_hash_table_destroy(in.by_entry);
    g_hash_table_destroy(in.by_id);
    g_ptr_array_free(in.set_up, true);
    g_free(blob);
    error_propagate(errp, local);
    return ok;
}

static bool load_command(LoadState *s, Error **errp)
{
    uint16_t cmd = mig_stream_get_be16(s->f);
    uint16_t len = mig_stream_get_be16(s->f);
    if (!mig_stream_check(s->f, errp, "Failed to read a command")) {
        return false;
    }
    if (cmd == MIG_CMD_INVALID || cmd >= MIG_CMD_MAX) {
        error_setg(errp, "MIG_CMD 0x%x unknown (len 0x%x)", cmd, len);
        return false;
    }
    int want = cmd_len(cmd);
    if ((want >= 0 && len != want) || (want == -2 && len != 0 && len != 16)) {
        error_setg(errp, "%s received with bad length - expecting %d, received %d",
                   cmd_names[cmd], want == -2 ? 16 : want, len);
        return false;
    }
    switch (cmd) {
    case MIG_CMD_OPEN_RETURN_PATH:
        if (s->rp_open) {
            error_setg(errp, "CMD_OPEN_RETURN_PATH called when RP already open");
            return false;
        }
        if (!s->rp) {
            error_setg(errp, "CMD_OPEN_RETURN_PATH failed: the channel has no return path");
            return false;
        }
        s->rp_open = true;
        return true;
    case MIG_CMD_PING: {
        uint32_t v = mig_stream_get_be32(s->f);
        if (!mig_stream_check(s->f, errp, "Failed to read a command")) {
            return false;
        }
        if (!s->rp_open) {
            error_setg(errp, "CMD_PING (0x%x) received with no return path", v);
            return false;
        }
        if (v == MIG_PING_MIGVM && s->opts->peer_is_migvm) {
            *s->opts->peer_is_migvm = true;
        }
        if (!mig_rp_send_pong(s->rp, v, errp)) {
            if (!s->nested || !s->outer->listen_thread) {
                return false;
            }
            /* Inside the package, which is all here: the connection is gone
             * (the source may have been paused). Load on to RUN, and make the
             * listen thread see the break: it pauses once the guest started. */
            warn_report("%s", error_get_pretty(*errp));
            error_free(*errp);
            *errp = NULL;
            mig_stream_shutdown(s->outer->f);
        }
        return true;
    }
    case MIG_CMD_POSTCOPY_ADVISE:
        /* Length 0: the source may migrate dirty bitmaps after switch-over
         * (capability dirty-bitmaps, QEMU 7.2 sends it then); bitmaps travel
         * in precopy here, so nothing changes. 16: postcopy RAM. */
        if (len != 0) {
            return load_postcopy_advise(s, errp);
        }
        if (s->opts->postcopy && s->opts->postcopy->enabled()) {
            error_setg(errp, "RAM postcopy is enabled but have 0 byte advise");
            return false;
        }
        if (s->advised) {
            error_setg(errp, "CMD_POSTCOPY_ADVISE in wrong postcopy state (1)");
            return false;
        }
        s->advised = true;
        return true;
    case MIG_CMD_POSTCOPY_RAM_DISCARD:
        return s->opts->postcopy ? load_postcopy_discard(s, len, errp) : refuse_command(cmd, errp);
    case MIG_CMD_PACKAGED:
        return s->opts->postcopy ? load_packaged(s, errp) : refuse_command(cmd, errp);
    case MIG_CMD_POSTCOPY_LISTEN:
        return s->opts->postcopy ? load_postcopy_listen(s, errp) : refuse_command(cmd, errp);
    case MIG_CMD_POSTCOPY_RUN:
        if (!s->opts->postcopy) {
            return refuse_command(cmd, errp);
        }
        if (s->opts->postcopy->state() != POSTCOPY_INCOMING_LISTENING) {
            error_setg(errp, "CMD_POSTCOPY_RUN in wrong postcopy state (%d)", s->opts->postcopy->state());
            return false;
        }
        return s->opts->postcopy->run(errp);
    case MIG_CMD_RECV_BITMAP:
    case MIG_CMD_POSTCOPY_RESUME:
        if (s->opts->recovery_command) {
            return s->opts->recovery_command(s->opts->recovery_opaque, cmd, len, s->f,
                                             s->rp_open ? s->rp : NULL, errp);
        }
        return refuse_command(cmd, errp);
    default:
        break;
    }
    return refuse_command(cmd, errp);
    return false;
}

/* After EOF: the optional vmdesc. Problems are only warnings, as in QEMU. */
static void load_vmdesc(LoadState *s)
{
    int b = mig_stream_peek_u8(s->f);
    if (b < 0) {
        return;
    }
    if (b != QEMU_VM_VMDESCRIPTION) {
        warn_report("Expected vmdescription section, but got %d", b);
        return;
    }
    mig_stream_skip(s->f, 1);
    uint32_t len = mig_stream_get_be32(s->f);
    uint32_t max = s->opts->max_vmdesc_len ? s->opts->max_vmdesc_len : MIGVM_VMDESC_MAX_LEN;
    if (mig_stream_has_error(s->f)) {
        warn_report("Truncated vmdescription section");
    } else if (len > max) {
        warn_report("vmdescription of %" PRIu32 " bytes is too long, ignored", len);
    } else if (!mig_stream_skip(s->f, len)) {
        warn_report("Truncated vmdescription section");
    }
}

static bool load_sections(LoadState *s, Error **errp)
{
    for (;;) {
        if (s->nested && mig_stream_peek_u8(s->f) < 0) {
            return true;        /* a package ends with its data (after RUN) */
        }
        uint8_t type = mig_stream_get_u8(s->f);
        if (!mig_stream_check(s->f, errp, "Failed to read the next section")) {
            return false;
        }
        bool ok;
        switch (type) {
        case QEMU_VM_EOF:
            return true;
        case QEMU_VM_SECTION_START:
        case QEMU_VM_SECTION_FULL:
            ok = load_start_full(s, type, errp);
            break;
        case QEMU_VM_SECTION_PART:
        case QEMU_VM_SECTION_END:
            ok = load_part_end(s, type, errp);
            break;
        case QEMU_VM_COMMAND:
            ok = load_command(s, errp);
            if (ok && s->listened) {
                return true;    /* the listen thread read the outer stream to its EOF */
            }
            break;
        default:
            error_setg(errp, "Unknown savevm section type %d", type);
            return false;
        }
        if (!ok) {
            return false;
        }
    }
}

/* The stream broke while RAM was being copied (and no disk): may the
 * migration go on on a new connection? */
static bool load_resumable(LoadState *s)
{
    if (!s->opts->channel_lost || !s->rp_open || s->listened || !channel_broke(s)) {
        return false;
    }
    bool ram_open = false;
    GHashTableIter it;
    gpointer value;
    g_hash_table_iter_init(&it, s->by_id);
    while (g_hash_table_iter_next(&it, NULL, &value)) {
        LoadSection *ls = value;
        if (ls->state != LOADED_START) {
            continue;
        }
        if (strcmp(ls->se->idstr, "block") == 0) {
            return false;
        }
        ram_open |= strcmp(ls->se->idstr, "ram") == 0;
    }
    return ram_open;
}

bool qemu_loadvm_state(MigStream *f, const LoadvmOptions *opts, Error **errp)
{
    LoadState s = {
        .f = f,
        .opts = opts,
        .by_id = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free),
        .by_entry = g_hash_table_new(g_direct_hash, g_direct_equal),
        .set_up = g_ptr_array_new(),
        .rp = opts->return_path,
    };
    pthread_mutex_init(&s.package_lock, NULL);
    pthread_cond_init(&s.package_cond, NULL);
    Error *local = NULL;
    bool ok = load_header(&s, &local) && load_setup_all(&s, &local) &&
              load_sections(&s, &local);
    while (!ok && load_resumable(&s)) {
        warn_report("%s; waiting for a new connection", error_get_pretty(local));
        if (!opts->channel_lost(opts->recovery_opaque, &s.f, &s.rp)) {
            break;
        }
        error_free(local);
        local = NULL;
        ok = load_sections(&s, &local);
    }
    if (ok && !s.listened) {        /* no VMDESCRIPTION after postcopy */
        load_vmdesc(&s);
    }
    load_cleanup_all(&s);
    if (s.rp_open && opts->send_shut) {
        Error *rp_err = NULL;
        if (!mig_rp_send_shut(s.rp, ok ? 0 : 1, &rp_err)) {
            warn_report("%s", error_get_pretty(rp_err));
            error_free(rp_err);
        }
    }
    if (opts->return_path_opened) {
        *opts->return_path_opened = s.rp_open;
    }
    g_hash_table_destroy(s.by_entry);
    g_hash_table_destroy(s.by_id);
    g_ptr_array_free(s.set_up, true);
    pthread_cond_destroy(&s.package_cond);
    pthread_mutex_destroy(&s.package_lock);
    assert(ok == !local);
    error_propagate(errp, local);
    return ok;
}
