/*
 * Save-state registry, stream writer and stream reader
 * (shared docs: migration-stream.md sections 1-4, 7-10).
 *
 * Stream, as written here (and as QEMU 7.2 writes it for precopy):
 *
 *   be32 0x5145564D "QEVM", be32 3
 *   u8 0x07 CONFIGURATION body                      (config-section.c)
 *   [u8 0x08 be16 1 be16 0]                          OPEN_RETURN_PATH
 *   [u8 0x08 be16 2 be16 4 be32 n]                   PING(n)
 *   u8 0x04 <full header>, VMState, footer           FULL, early_setup devices only
 *   u8 0x01 be32 id, u8 len idstr, be32 inst, be32 ver, data, u8 0x7e be32 id   START (live)
 *   u8 0x02 be32 id, data, u8 0x7e be32 id           PART (live, repeated)
 *   u8 0x03 be32 id, data, u8 0x7e be32 id           END  (live)
 *   u8 0x04 <full header as START>, VMState, footer  FULL (device)
 *   u8 0x00                                          EOF
 *   u8 0x06 be32 len, JSON                           VMDESCRIPTION
 *
 * Reader states: HEADER -> CONFIGURATION -> SECTIONS (START/FULL open a
 * section id; PART/END resolve it; COMMANDs in between) -> EOF -> optional
 * VMDESCRIPTION (warnings only). A FULL section may come anywhere, so the
 * early_setup ones (sent before any RAM) need nothing special on this side.
 * Every length is bounded, every section
 * footer is checked, a (idstr, instance) is loaded at most once, and any
 * failure leaves the loader with a single error naming the cause.
 */
#include "savevm.h"
#include "json-writer.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

typedef struct SaveStateEntry {
    char *idstr;
    uint32_t instance_id;
    int version_id;
    uint32_t section_id;
    const SaveVMHandlers *ops;          /* live handler, or NULL */
    const VMStateDescription *vmsd;     /* device, or NULL */
    void *opaque;
    bool setup_done;                    /* writer: save_setup was called */
} SaveStateEntry;

static GPtrArray *entries;              /* SaveStateEntry *, registration order */
static uint32_t next_section_id;
/* vmdesc entries of the early_setup sections, sent in setup, listed first
 * in the VMDESCRIPTION written at completion. */
static json_object *early_vmdesc;

/* ------------------------------------------------------------------ */
/* registry                                                           */

static GPtrArray *registry(void)
{
    if (!entries) {
        entries = g_ptr_array_new();
    }
    return entries;
}

static SaveStateEntry *find_entry(const char *idstr, uint32_t instance_id)
{
    GPtrArray *r = registry();
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        if (se->instance_id == instance_id && strcmp(se->idstr, idstr) == 0) {
            return se;
        }
    }
    return NULL;
}

static uint32_t next_instance_id(const char *idstr)
{
    uint32_t next = 0;
    GPtrArray *r = registry();
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        if (strcmp(se->idstr, idstr) == 0 && se->instance_id >= next) {
            next = se->instance_id + 1;
        }
    }
    return next;
}

static bool register_entry(const char *idstr, uint32_t instance_id, int version_id,
                           const SaveVMHandlers *ops, const VMStateDescription *vmsd,
                           void *opaque, Error **errp)
{
    size_t len = idstr ? strlen(idstr) : 0;
    if (len == 0 || len > 255) {
        error_setg(errp, "Invalid savevm idstr '%s'", idstr ? idstr : "");
        return false;
    }
    if (instance_id == VMSTATE_INSTANCE_ID_ANY) {
        instance_id = next_instance_id(idstr);
    }
    if (find_entry(idstr, instance_id)) {
        error_setg(errp, "savevm entry '%s' instance %" PRIu32 " is already registered",
                   idstr, instance_id);
        return false;
    }
    SaveStateEntry *se = g_new0(SaveStateEntry, 1);
    se->idstr = g_strdup(idstr);
    se->instance_id = instance_id;
    se->version_id = version_id;
    /* QEMU 7.2's loader matches PART/END ids against handlers it has not
     * loaded yet, whose id reads as 0: a live section must never use id 0. */
    if (ops && ops->save_setup && next_section_id == 0) {
        next_section_id = 1;
    }
    se->section_id = next_section_id++;
    se->ops = ops;
    se->vmsd = vmsd;
    se->opaque = opaque;
    g_ptr_array_add(registry(), se);
    return true;
}

bool register_savevm_live(const char *idstr, uint32_t instance_id, int version_id,
                          const SaveVMHandlers *ops, void *opaque, Error **errp)
{
    return register_entry(idstr, instance_id, version_id, ops, NULL, opaque, errp);
}

bool vmstate_register(const char *idstr, uint32_t instance_id,
                      const VMStateDescription *vmsd, void *opaque, Error **errp)
{
    return register_entry(idstr ? idstr : vmsd->name, instance_id, vmsd->version_id, NULL,
                          vmsd, opaque, errp);
}

static void free_entry(SaveStateEntry *se)
{
    g_free(se->idstr);
    g_free(se);
}

static void remove_matching(bool (*match)(SaveStateEntry *, const void *, void *),
                            const void *key, void *opaque)
{
    GPtrArray *r = registry();
    for (guint i = 0; i < r->len;) {
        SaveStateEntry *se = r->pdata[i];
        if (match(se, key, opaque)) {
            g_ptr_array_remove_index(r, i);
            free_entry(se);
        } else {
            i++;
        }
    }
}

static bool match_vmsd(SaveStateEntry *se, const void *key, void *opaque)
{
    return se->vmsd == key && se->opaque == opaque;
}

static bool match_idstr(SaveStateEntry *se, const void *key, void *opaque)
{
    return se->ops && strcmp(se->idstr, key) == 0 && se->opaque == opaque;
}

void vmstate_unregister(const VMStateDescription *vmsd, void *opaque)
{
    remove_matching(match_vmsd, vmsd, opaque);
}

void unregister_savevm(const char *idstr, void *opaque)
{
    remove_matching(match_idstr, idstr, opaque);
}

void savevm_unregister_all(void)
{
    if (entries) {
        for (guint i = 0; i < entries->len; i++) {
            free_entry(entries->pdata[i]);
        }
        g_ptr_array_free(entries, true);
        entries = NULL;
    }
    next_section_id = 0;
}

static bool se_is_active(SaveStateEntry *se)
{
    return se->ops && (!se->ops->is_active || se->ops->is_active(se->opaque));
}

/* ------------------------------------------------------------------ */
/* test-only omission (include/vmstate.h)                             */

#define OMIT_ENV "MIGVM_TEST_OMIT_SECTIONS"

bool vmstate_test_omitted(const char *name, uint32_t instance_id)
{
    const char *env = getenv(OMIT_ENV);

    if (!env || !*env) {
        return false;
    }
    g_auto(GStrv) items = g_strsplit(env, ",", -1);
    for (int i = 0; items[i]; i++) {
        char *colon = strrchr(items[i], ':');
        if (colon) {
            *colon = '\0';
        }
        if (strcmp(g_strstrip(items[i]), name) != 0) {
            continue;
        }
        if (!colon || strtoul(colon + 1, NULL, 0) == instance_id) {
            warn_report(OMIT_ENV ": leaving '%s' instance %" PRIu32 " out of the stream (test only)",
                        name, instance_id);
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------ */
/* writer                                                             */

static void put_section_header(MigStream *f, SaveStateEntry *se, uint8_t type)
{
    mig_stream_put_u8(f, type);
    mig_stream_put_be32(f, se->section_id);
    if (type == QEMU_VM_SECTION_START || type == QEMU_VM_SECTION_FULL) {
        mig_stream_put_counted_string(f, se->idstr);
        mig_stream_put_be32(f, se->instance_id);
        mig_stream_put_be32(f, se->version_id);
    }
}

static void put_section_footer(MigStream *f, SaveStateEntry *se)
{
    mig_stream_put_u8(f, QEMU_VM_SECTION_FOOTER);
    mig_stream_put_be32(f, se->section_id);
}

/* The stream's sticky error, if any, with context. */
static bool stream_error(MigStream *f, const char *what, Error **errp)
{
    if (!mig_stream_has_error(f)) {
        return false;
    }
    error_setg(errp, "%s: %s", what, mig_stream_error_msg(f));
    return true;
}

bool savevm_state_header(MigStream *f, const MigConfigOptions *cfg, Error **errp)
{
    mig_stream_put_be32(f, QEMU_VM_FILE_MAGIC);
    mig_stream_put_be32(f, QEMU_VM_FILE_VERSION);
    config_section_save(f, cfg);
    return !stream_error(f, "Failed to write the migration header", errp);
}

static void put_command(MigStream *f, uint16_t cmd, uint16_t len, const uint8_t *data)
{
    mig_stream_put_u8(f, QEMU_VM_COMMAND);
    mig_stream_put_be16(f, cmd);
    mig_stream_put_be16(f, len);
    mig_stream_put_buffer(f, data, len);
}

void savevm_send_open_return_path(MigStream *f)
{
    put_command(f, MIG_CMD_OPEN_RETURN_PATH, 0, NULL);
}

void savevm_send_ping(MigStream *f, uint32_t value)
{
    uint8_t b[4] = { value >> 24, value >> 16, value >> 8, value };
    put_command(f, MIG_CMD_PING, 4, b);
}

static bool save_device(MigStream *f, SaveStateEntry *se, json_object *devices, Error **errp);

/* A device section goes into this stream (needed, not omitted by a test). */
static bool device_wanted(SaveStateEntry *se)
{
    return se->vmsd && (!se->vmsd->needed || se->vmsd->needed(se->opaque)) &&
           !vmstate_test_omitted(se->idstr, se->instance_id);
}

/* early_setup devices: FULL sections before any live handler's START. */
static bool save_early_devices(MigStream *f, Error **errp)
{
    GPtrArray *r = registry();

    if (early_vmdesc) {
        json_object_put(early_vmdesc);
    }
    early_vmdesc = json_object_new_array();
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        if (se->vmsd && se->vmsd->early_setup && device_wanted(se) &&
            !save_device(f, se, early_vmdesc, errp)) {
            return false;
        }
    }
    return true;
}

bool savevm_state_setup(MigStream *f, Error **errp)
{
    GPtrArray *r = registry();
    if (!save_early_devices(f, errp)) {
        return false;
    }
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        if (!se->ops || !se->ops->save_setup || !se_is_active(se)) {
            continue;
        }
        se->setup_done = true;
        put_section_header(f, se, QEMU_VM_SECTION_START);
        if (!se->ops->save_setup(f, se->opaque, errp)) {
            error_prepend(errp, "Failed to set up '%s' for migration: ", se->idstr);
            return false;
        }
        put_section_footer(f, se);
        if (stream_error(f, "Failed to write setup sections", errp)) {
            return false;
        }
    }
    return true;
}

int savevm_state_iterate(MigStream *f, Error **errp)
{
    GPtrArray *r = registry();
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        if (!se->ops || !se->ops->save_live_iterate || !se_is_active(se)) {
            continue;
        }
        if (mig_stream_rate_limit_exceeded(f)) {
            break;
        }
        put_section_header(f, se, QEMU_VM_SECTION_PART);
        Error *local = NULL;
        int ret = se->ops->save_live_iterate(f, se->opaque, &local);
        put_section_footer(f, se);
        if (ret < 0) {
            if (!local) {
                error_setg(&local, "iteration failed");
            }
            error_prepend(&local, "Failed to send '%s': ", se->idstr);
            error_propagate(errp, local);
            return ret;
        }
        error_free(local);
        if (stream_error(f, "Failed to write the migration stream", errp)) {
            return -1;
        }
        if (ret == 0) {
            return 0;   /* handlers are serialised: the next one waits */
        }
    }
    return stream_error(f, "Failed to write the migration stream", errp) ? -1 :
           mig_stream_rate_limit_exceeded(f) ? 0 : 1;
}

void savevm_state_pending(bool exact, uint64_t *must_precopy_bytes)
{
    GPtrArray *r = registry();
    *must_precopy_bytes = 0;
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        if (!se_is_active(se)) {
            continue;
        }
        if (exact && se->ops->state_pending_exact) {
            se->ops->state_pending_exact(se->opaque, must_precopy_bytes);
        } else if (se->ops->state_pending) {
            se->ops->state_pending(se->opaque, must_precopy_bytes);
        }
    }
}

static bool complete_live(MigStream *f, Error **errp)
{
    GPtrArray *r = registry();
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        if (!se->ops || !se->ops->save_live_complete_precopy || !se_is_active(se)) {
            continue;
        }
        put_section_header(f, se, QEMU_VM_SECTION_END);
        if (!se->ops->save_live_complete_precopy(f, se->opaque, errp)) {
            error_prepend(errp, "Failed to complete '%s': ", se->idstr);
            return false;
        }
        put_section_footer(f, se);
        if (stream_error(f, "Failed to write the migration stream", errp)) {
            return false;
        }
    }
    return true;
}

static bool save_device(MigStream *f, SaveStateEntry *se, json_object *devices, Error **errp)
{
    json_object *desc = json_object_new_object();
    json_object_object_add(desc, "name", json_object_new_string(se->idstr));
    json_object_object_add(desc, "instance_id", json_object_new_int64(se->instance_id));
    json_object_array_add(devices, desc);

    put_section_header(f, se, QEMU_VM_SECTION_FULL);
    if (!vmstate_save(f, se->vmsd, se->opaque, desc, errp)) {
        error_prepend(errp, "Failed to save device '%s': ", se->idstr);
        return false;
    }
    put_section_footer(f, se);
    return !stream_error(f, "Failed to write the migration stream", errp);
}

static void put_vmdesc(MigStream *f, json_object *devices)
{
    json_object *root = json_object_new_object();
    json_object_object_add(root, "page_size", json_object_new_int64(MIGVM_TARGET_PAGE_SIZE));
    json_object_object_add(root, "devices", json_object_get(devices));
    g_autofree char *text = json_to_string(root);
    json_object_put(root);
    size_t len = strlen(text);
    mig_stream_put_u8(f, QEMU_VM_VMDESCRIPTION);
    mig_stream_put_be32(f, len);
    mig_stream_put_buffer(f, text, len);
}

bool savevm_state_complete_precopy(MigStream *f, bool send_vmdesc, Error **errp)
{
    if (!complete_live(f, errp)) {
        return false;
    }
    json_object *devices = json_object_new_array();
    GPtrArray *r = registry();
    bool ok = true;
    for (size_t i = 0; early_vmdesc && i < json_object_array_length(early_vmdesc); i++) {
        json_object_array_add(devices, json_object_get(json_object_array_get_idx(early_vmdesc, i)));
    }
    for (guint i = 0; i < r->len && ok; i++) {
        SaveStateEntry *se = r->pdata[i];
        /* early_setup sections went out in setup (unless there was none) */
        if (se->vmsd && !(se->vmsd->early_setup && early_vmdesc) && device_wanted(se)) {
            ok = save_device(f, se, devices, errp);
        }
    }
    if (ok) {
        mig_stream_put_u8(f, QEMU_VM_EOF);
        if (send_vmdesc) {
            put_vmdesc(f, devices);
        }
        mig_stream_flush(f);
        ok = !stream_error(f, "Failed to write the migration stream", errp);
    }
    json_object_put(devices);
    return ok;
}

void savevm_state_cleanup(void)
{
    GPtrArray *r = registry();
    if (early_vmdesc) {
        json_object_put(early_vmdesc);
        early_vmdesc = NULL;
    }
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        if (se->setup_done && se->ops->save_cleanup) {
            se->ops->save_cleanup(se->opaque);
        }
        se->setup_done = false;
    }
}

/* ------------------------------------------------------------------ */
/* return path                                                        */

bool mig_rp_send(MigStream *rp, uint16_t type, const void *payload, uint16_t len, Error **errp)
{
    mig_stream_put_be16(rp, type);
    mig_stream_put_be16(rp, len);
    mig_stream_put_buffer(rp, payload, len);
    mig_stream_flush(rp);
    return !stream_error(rp, "Failed to write on the return path", errp);
}

static bool rp_send_be32(MigStream *rp, uint16_t type, uint32_t v, Error **errp)
{
    uint8_t b[4] = { v >> 24, v >> 16, v >> 8, v };
    return mig_rp_send(rp, type, b, sizeof(b), errp);
}

bool mig_rp_send_pong(MigStream *rp, uint32_t value, Error **errp)
{
    return rp_send_be32(rp, MIG_RP_MSG_PONG, value, errp);
}

bool mig_rp_send_shut(MigStream *rp, uint32_t status, Error **errp)
{
    return rp_send_be32(rp, MIG_RP_MSG_SHUT, status, errp);
}

/* Fixed payload length of a return-path message, -1 if variable. */
static int rp_expected_len(uint16_t type)
{
    switch (type) {
    case MIG_RP_MSG_SHUT: case MIG_RP_MSG_PONG: case MIG_RP_MSG_RESUME_ACK:
        return 4;
    case MIG_RP_MSG_REQ_PAGES:
        return 12;
    case MIG_RP_MSG_SWITCHOVER_ACK:
        return 0;
    default:
        return -1;
    }
}

bool mig_rp_read(MigStream *rp, uint16_t *type, uint8_t *payload, uint16_t *len, Error **errp)
{
    *type = mig_stream_get_be16(rp);
    *len = mig_stream_get_be16(rp);
    if (stream_error(rp, "Failed to read from the return path", errp)) {
        return false;
    }
    if (*type == MIG_RP_MSG_INVALID || *type >= MIG_RP_MSG_MAX) {
        error_setg(errp, "Received invalid return-path message 0x%x", *type);
        return false;
    }
    int want = rp_expected_len(*type);
    if ((want >= 0 && *len != want) || *len > MIG_RP_MAX_LEN) {
        error_setg(errp, "Return-path message 0x%x received with bad length %u", *type, *len);
        return false;
    }
    mig_stream_get_buffer(rp, payload, *len);
    return !stream_error(rp, "Failed to read from the return path", errp);
}

/* ------------------------------------------------------------------ */
/* reader                                                             */

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
    bool rp_open;
} LoadState;

static bool load_header(LoadState *s, Error **errp)
{
    uint32_t magic = mig_stream_get_be32(s->f);
    uint32_t version = mig_stream_get_be32(s->f);
    if (stream_error(s->f, "Failed to read the migration header", errp)) {
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
    GPtrArray *r = registry();
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        if (!se->ops || !se->ops->load_setup || !se_is_active(se)) {
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
    if (stream_error(s->f, "Failed to read a section footer", errp)) {
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
    if (ok && mig_stream_has_error(s->f)) {
        ok = false;
        error_free(local);
        local = NULL;
        stream_error(s->f, "Stream error", &local);
    }
    if (!ok) {
        if (!local) {
            error_setg(&local, "load failed");
        }
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
    if (stream_error(s->f, "Failed to read a section header", errp)) {
        return false;
    }
    if (len == 0 || memchr(idstr, '\0', len)) {
        error_setg(errp, "Section %" PRIu32 " has an empty or invalid idstr", section_id);
        return false;
    }
    SaveStateEntry *se = find_entry(idstr, instance_id);
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
    if (stream_error(s->f, "Failed to read a section header", errp)) {
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

static bool load_command(LoadState *s, Error **errp)
{
    uint16_t cmd = mig_stream_get_be16(s->f);
    uint16_t len = mig_stream_get_be16(s->f);
    if (stream_error(s->f, "Failed to read a command", errp)) {
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
        if (!s->opts->return_path) {
            error_setg(errp, "CMD_OPEN_RETURN_PATH failed: the channel has no return path");
            return false;
        }
        s->rp_open = true;
        return true;
    case MIG_CMD_PING: {
        uint32_t v = mig_stream_get_be32(s->f);
        if (stream_error(s->f, "Failed to read a command", errp)) {
            return false;
        }
        if (!s->rp_open) {
            error_setg(errp, "CMD_PING (0x%x) received with no return path", v);
            return false;
        }
        return mig_rp_send_pong(s->opts->return_path, v, errp);
    }
    default:
        error_setg(errp, "%s is not supported by migvm (precopy only)", cmd_names[cmd]);
        return false;
    }
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
        uint8_t type = mig_stream_get_u8(s->f);
        if (stream_error(s->f, "Failed to read the next section", errp)) {
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

bool qemu_loadvm_state(MigStream *f, const LoadvmOptions *opts, Error **errp)
{
    LoadState s = {
        .f = f,
        .opts = opts,
        .by_id = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free),
        .by_entry = g_hash_table_new(g_direct_hash, g_direct_equal),
        .set_up = g_ptr_array_new(),
    };
    Error *local = NULL;
    bool ok = load_header(&s, &local) && load_setup_all(&s, &local) &&
              load_sections(&s, &local);
    if (ok) {
        load_vmdesc(&s);
    }
    load_cleanup_all(&s);
    if (s.rp_open && opts->send_shut) {
        Error *rp_err = NULL;
        if (!mig_rp_send_shut(opts->return_path, ok ? 0 : 1, &rp_err)) {
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
    error_propagate(errp, local);
    return ok;
}
