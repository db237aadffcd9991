/*
 * Save-state registry and stream writer
 * (shared docs: migration-stream.md sections 1-4, 7-10). The loader is
 * loadvm.c, the return path return-path.c.
 *
 * Stream, as written here (and as QEMU 7.2 writes it for precopy):
 *
 *   be32 0x5145564D "QEVM", be32 3
 *   u8 0x07 CONFIGURATION body                      (config-section.c)
 *   [u8 0x08 be16 1 be16 0]                          OPEN_RETURN_PATH
 *   [u8 0x08 be16 2 be16 4 be32 n]                   PING(n)
 *   [u8 0x08 be16 3 be16 0]                          POSTCOPY_ADVISE (dirty-bitmaps)
 *   u8 0x04 <full header>, VMState, footer           FULL, early_setup devices only
 *   u8 0x01 be32 id, u8 len idstr, be32 inst, be32 ver, data, u8 0x7e be32 id   START (live)
 *   u8 0x02 be32 id, data, u8 0x7e be32 id           PART (live, repeated)
 *   u8 0x03 be32 id, data, u8 0x7e be32 id           END  (live)
 *   u8 0x04 <full header as START>, VMState, footer  FULL (device)
 *   u8 0x00                                          EOF
 *   u8 0x06 be32 len, JSON                           VMDESCRIPTION
 */
#include "savevm-int.h"
#include "vm.h"
#include "json-writer.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

static GPtrArray *entries;              /* SaveStateEntry *, registration order */
static uint32_t next_section_id;
/* vmdesc entries of the early_setup sections, sent in setup, listed first
 * in the VMDESCRIPTION written at completion. */
static json_object *early_vmdesc;

/* ------------------------------------------------------------------ */
/* registry                                                           */

GPtrArray *savevm_entries(void)
{
    if (!entries) {
        entries = g_ptr_array_new();
    }
    return entries;
}

SaveStateEntry *savevm_find_entry(const char *idstr, uint32_t instance_id)
{
    GPtrArray *r = savevm_entries();
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
    GPtrArray *r = savevm_entries();
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
    if (savevm_find_entry(idstr, instance_id)) {
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
    g_ptr_array_add(savevm_entries(), se);
    return true;
}

bool register_savevm_live(const char *idstr, uint32_t instance_id, int version_id,
                          const SaveVMHandlers *ops, void *opaque, Error **errp)
{
    assert(bql_locked());
    return register_entry(idstr, instance_id, version_id, ops, NULL, opaque, errp);
}

bool vmstate_register(const char *idstr, uint32_t instance_id,
                      const VMStateDescription *vmsd, void *opaque, Error **errp)
{
    assert(bql_locked());
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
    GPtrArray *r = savevm_entries();
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

bool savevm_entry_is_active(SaveStateEntry *se)
{
    return se->ops && (!se->ops->is_active || se->ops->is_active(se->opaque));
}

/* ------------------------------------------------------------------ */
/* writer                                                             */
/* A failed write is reported in the channel's own words ("Unable to write to
 * socket: Broken pipe"), with no context added: QEMU 7.2's error-desc. */

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

bool savevm_state_header(MigStream *f, const MigConfigOptions *cfg, Error **errp)
{
    mig_stream_put_be32(f, QEMU_VM_FILE_MAGIC);
    mig_stream_put_be32(f, QEMU_VM_FILE_VERSION);
    config_section_save(f, cfg);
    return mig_stream_get_error(f, errp);
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

void savevm_send_postcopy_advise(MigStream *f)
{
    put_command(f, MIG_CMD_POSTCOPY_ADVISE, 0, NULL);
}

void savevm_send_postcopy_advise_ram(MigStream *f)
{
    uint8_t b[16] = { 0 };
    /* be64 OR of the blocks' page sizes (all 4 KiB here), be64 target page */
    b[6] = MIGVM_TARGET_PAGE_SIZE >> 8;     /* host page == target page: anonymous 4 KiB */
    b[14] = MIGVM_TARGET_PAGE_SIZE >> 8;
    put_command(f, MIG_CMD_POSTCOPY_ADVISE, sizeof(b), b);
}

void savevm_send_postcopy_ram_discard(MigStream *f, const char *block, const uint64_t *starts,
                                      const uint64_t *lens, unsigned n)
{
    size_t nl = strlen(block);
    mig_stream_put_u8(f, QEMU_VM_COMMAND);
    mig_stream_put_be16(f, MIG_CMD_POSTCOPY_RAM_DISCARD);
    mig_stream_put_be16(f, (uint16_t)(3 + nl + 16 * n));
    mig_stream_put_u8(f, 0);                /* version */
    mig_stream_put_counted_string(f, block);
    mig_stream_put_u8(f, 0);                /* the name's NUL */
    for (unsigned i = 0; i < n; i++) {
        mig_stream_put_be64(f, starts[i]);
        mig_stream_put_be64(f, lens[i]);
    }
}

void savevm_send_postcopy_listen(MigStream *f)
{
    put_command(f, MIG_CMD_POSTCOPY_LISTEN, 0, NULL);
}

void savevm_send_postcopy_run(MigStream *f)
{
    put_command(f, MIG_CMD_POSTCOPY_RUN, 0, NULL);
}

void savevm_send_packaged(MigStream *f, const uint8_t *data, uint32_t len)
{
    uint8_t b[4] = { len >> 24, len >> 16, len >> 8, len };
    put_command(f, MIG_CMD_PACKAGED, 4, b);
    mig_stream_put_buffer(f, data, len);
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
    GPtrArray *r = savevm_entries();

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

bool savevm_state_preflight(MigStream *f, const MigConfigOptions *cfg, Error **errp)
{
    assert(bql_locked());
    json_object *devices = json_object_new_array();
    bool ok = savevm_state_header(f, cfg, errp);
    GPtrArray *r = savevm_entries();
    for (guint i = 0; i < r->len && ok; i++) {
        SaveStateEntry *se = r->pdata[i];
        if (se->vmsd && se->vmsd->early_setup && device_wanted(se)) {
            ok = save_device(f, se, devices, errp);
        }
    }
    json_object_put(devices);
    if (ok) {
        mig_stream_put_u8(f, QEMU_VM_EOF);
        ok = mig_stream_get_error(f, errp);
    }
    return ok;
}

void savevm_foreach_section(SavevmSectionFn *fn, void *opaque)
{
    assert(bql_locked());
    GPtrArray *r = savevm_entries();
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        if ((se->ops && savevm_entry_is_active(se)) || device_wanted(se)) {
            fn(se->idstr, se->instance_id, se->version_id, opaque);
        }
    }
}

char *savevm_section_refusal(const char *idstr, uint32_t instance_id, int version_id)
{
    SaveStateEntry *se = savevm_find_entry(idstr, instance_id);
    if (!se) {
        return g_strdup("absent");
    }
    int min = se->vmsd ? se->vmsd->minimum_version_id : 0;
    if (version_id > se->version_id || version_id < min) {
        return se->vmsd ? g_strdup_printf("versions %d to %d", min, se->version_id)
                        : g_strdup_printf("versions up to %d", se->version_id);
    }
    return NULL;
}

bool savevm_state_setup(MigStream *f, Error **errp)
{
    assert(bql_locked());
    GPtrArray *r = savevm_entries();
    if (!save_early_devices(f, errp)) {
        return false;
    }
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        if (!se->ops || !se->ops->save_setup || !savevm_entry_is_active(se)) {
            continue;
        }
        se->setup_done = true;
        put_section_header(f, se, QEMU_VM_SECTION_START);
        if (!se->ops->save_setup(f, se->opaque, errp)) {
            error_prepend(errp, "Failed to set up '%s' for migration: ", se->idstr);
            return false;
        }
        put_section_footer(f, se);
        if (!mig_stream_get_error(f, errp)) {
            return false;
        }
    }
    return true;
}

int savevm_state_iterate(MigStream *f, Error **errp)
{
    GPtrArray *r = savevm_entries();
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        if (!se->ops || !se->ops->save_live_iterate || !se->setup_done) {
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
            if (mig_stream_has_error(f)) {
                error_free(local);
                mig_stream_get_error(f, errp);
                return ret;
            }
            if (!local) {
                error_setg(&local, "iteration failed");
            }
            error_prepend(&local, "Failed to send '%s': ", se->idstr);
            error_propagate(errp, local);
            return ret;
        }
        error_free(local);
        if (!mig_stream_get_error(f, errp)) {
            return -1;
        }
        if (ret == 0) {
            return 0;   /* handlers are serialised: the next one waits */
        }
    }
    return !mig_stream_get_error(f, errp) ? -1 :
           mig_stream_rate_limit_exceeded(f) ? 0 : 1;
}

int savevm_state_iterate_postcopy(MigStream *f, Error **errp)
{
    GPtrArray *r = savevm_entries();
    int done = 1;
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        if (!se->ops || !se->ops->postcopiable || !se->ops->save_live_iterate || !se->setup_done) {
            continue;
        }
        put_section_header(f, se, QEMU_VM_SECTION_PART);
        int ret = se->ops->save_live_iterate(f, se->opaque, errp);
        put_section_footer(f, se);
        if (ret < 0) {
            return ret;
        }
        done &= ret;
        if (!mig_stream_get_error(f, errp)) {
            return -1;
        }
    }
    return done;
}

void savevm_state_pending(bool exact, uint64_t *must_precopy_bytes)
{
    GPtrArray *r = savevm_entries();
    *must_precopy_bytes = 0;
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        if (!se->ops || !se->setup_done) {
            continue;
        }
        if (exact && se->ops->state_pending_exact) {
            se->ops->state_pending_exact(se->opaque, must_precopy_bytes);
        } else if (se->ops->state_pending) {
            se->ops->state_pending(se->opaque, must_precopy_bytes);
        }
    }
}

/* which: 0 every live handler, 1 only those that cannot go on in postcopy,
 * 2 only those that can. */
static bool complete_live_some(MigStream *f, int which, Error **errp)
{
    GPtrArray *r = savevm_entries();
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        /* only what setup started: is_active may change its mind later */
        if (!se->ops || !se->ops->save_live_complete_precopy || !se->setup_done) {
            continue;
        }
        if ((which == 1 && se->ops->postcopiable) || (which == 2 && !se->ops->postcopiable)) {
            continue;
        }
        put_section_header(f, se, QEMU_VM_SECTION_END);
        if (!se->ops->save_live_complete_precopy(f, se->opaque, errp)) {
            error_prepend(errp, "Failed to complete '%s': ", se->idstr);
            return false;
        }
        put_section_footer(f, se);
        if (!mig_stream_get_error(f, errp)) {
            return false;
        }
    }
    return true;
}

static bool complete_live(MigStream *f, Error **errp)
{
    return complete_live_some(f, 0, errp);
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
    return mig_stream_get_error(f, errp);
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

static SavevmCompleteFn *complete_observer;

void savevm_set_complete_observer(SavevmCompleteFn *fn)
{
    complete_observer = fn;
}

bool savevm_state_complete_precopy(MigStream *f, bool send_vmdesc, Error **errp)
{
    assert(bql_locked());
    if (!complete_live(f, errp)) {
        return false;
    }
    if (complete_observer) {
        complete_observer(SAVEVM_COMPLETE_LIVE);
    }
    json_object *devices = json_object_new_array();
    GPtrArray *r = savevm_entries();
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
        if (complete_observer) {
            complete_observer(SAVEVM_COMPLETE_DEVICES);
        }
        mig_stream_flush(f);
        ok = mig_stream_get_error(f, errp);
    }
    json_object_put(devices);
    return ok;
}

bool savevm_state_complete_precopy_only(MigStream *f, Error **errp)
{
    assert(bql_locked());
    return complete_live_some(f, 1, errp);
}

bool savevm_state_postcopy_devices(MigStream *f, Error **errp)
{
    assert(bql_locked());
    json_object *devices = json_object_new_array();
    GPtrArray *r = savevm_entries();
    bool ok = true;
    for (guint i = 0; i < r->len && ok; i++) {
        SaveStateEntry *se = r->pdata[i];
        if (se->vmsd && !(se->vmsd->early_setup && early_vmdesc) && device_wanted(se)) {
            ok = save_device(f, se, devices, errp);
        }
    }
    json_object_put(devices);
    return ok;
}

bool savevm_state_complete_postcopy(MigStream *f, Error **errp)
{
    if (!complete_live_some(f, 2, errp)) {
        return false;
    }
    mig_stream_put_u8(f, QEMU_VM_EOF);      /* no VMDESCRIPTION after postcopy, as QEMU 7.2 */
    mig_stream_flush(f);
    return mig_stream_get_error(f, errp);
}

void savevm_state_resume_prepare(void)
{
    GPtrArray *r = savevm_entries();
    for (guint i = 0; i < r->len; i++) {
        SaveStateEntry *se = r->pdata[i];
        if (se->setup_done && se->ops->resume_prepare) {
            se->ops->resume_prepare(se->opaque);
        }
    }
}

void savevm_state_cleanup(void)
{
    assert(bql_locked());
    GPtrArray *r = savevm_entries();
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
