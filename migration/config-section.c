/*
 * The CONFIGURATION section (shared docs: migration-stream.md section 3).
 *
 *   u8 0x07
 *   be32 len, len bytes          machine type name (no NUL)
 *   subsections, each only when needed (u8 0x05, counted name, be32 version 1):
 *     configuration/capabilities    be32 count, count counted strings
 *     configuration/target-page-bits be32 bits          (read only; never sent on x86)
 *     configuration/uuid            16 bytes            (read only; no -uuid here)
 *
 * The only validated capability migvm knows is x-ignore-shared: its state
 * must be the same on both sides. The machine type must match exactly.
 */
#include "savevm.h"

#include <string.h>
#include <glib.h>

#define CONFIG_NAME "configuration"
#define CAPS_SUB CONFIG_NAME "/capabilities"
#define PAGE_BITS_SUB CONFIG_NAME "/target-page-bits"
#define UUID_SUB CONFIG_NAME "/uuid"
#define MACHINE_NAME_MAX 256
#define CAPS_MAX 64

void config_section_save(MigStream *f, const MigConfigOptions *cfg)
{
    const char *machine = cfg && cfg->machine_type ? cfg->machine_type : "";
    size_t len = strlen(machine);
    mig_stream_put_u8(f, QEMU_VM_CONFIGURATION);
    mig_stream_put_be32(f, len);
    mig_stream_put_buffer(f, machine, len);
    if (cfg && cfg->x_ignore_shared) {
        mig_stream_put_u8(f, QEMU_VM_SUBSECTION);
        mig_stream_put_counted_string(f, CAPS_SUB);
        mig_stream_put_be32(f, 1);
        mig_stream_put_be32(f, 1);
        mig_stream_put_counted_string(f, "x-ignore-shared");
    }
}

static bool stream_ok(MigStream *f, Error **errp)
{
    return mig_stream_check(f, errp, "Failed to load the configuration section");
}

static bool load_machine(MigStream *f, const MigConfigOptions *local, Error **errp)
{
    uint32_t len = mig_stream_get_be32(f);
    if (!stream_ok(f, errp)) {
        return false;
    }
    if (len > MACHINE_NAME_MAX) {
        error_setg(errp, "Machine type name in the configuration section is too long (%u bytes)",
                   len);
        return false;
    }
    char name[MACHINE_NAME_MAX + 1];
    mig_stream_get_buffer(f, name, len);
    if (!stream_ok(f, errp)) {
        return false;
    }
    name[len] = '\0';
    const char *mine = local && local->machine_type ? local->machine_type : "";
    if (strlen(name) != len || strcmp(name, mine) != 0) {
        error_setg(errp, "Machine type received is '%s' and local is '%s'", name, mine);
        return false;
    }
    return true;
}

static bool load_capabilities(MigStream *f, bool *x_ignore_shared, Error **errp)
{
    uint32_t count = mig_stream_get_be32(f);
    if (!stream_ok(f, errp)) {
        return false;
    }
    if (count > CAPS_MAX) {
        error_setg(errp, "Too many capabilities in the configuration section (%u)", count);
        return false;
    }
    for (uint32_t i = 0; i < count; i++) {
        char cap[256];
        mig_stream_get_counted_string(f, cap);
        if (!stream_ok(f, errp)) {
            return false;
        }
        if (strcmp(cap, "x-ignore-shared") != 0) {
            error_setg(errp, "Received unknown capability %s", cap);
            return false;
        }
        *x_ignore_shared = true;
    }
    return true;
}

static bool load_subsection(MigStream *f, const char *name, bool *x_ignore_shared, Error **errp)
{
    uint32_t version = mig_stream_get_be32(f);
    if (!stream_ok(f, errp)) {
        return false;
    }
    if (version != 1) {
        error_setg(errp, "%s: unsupported version %u", name, version);
        return false;
    }
    if (strcmp(name, CAPS_SUB) == 0) {
        return load_capabilities(f, x_ignore_shared, errp);
    }
    if (strcmp(name, PAGE_BITS_SUB) == 0) {
        uint32_t bits = mig_stream_get_be32(f);
        if (!stream_ok(f, errp)) {
            return false;
        }
        if (bits != MIGVM_TARGET_PAGE_BITS) {
            error_setg(errp, "Received TARGET_PAGE_BITS is %u but local is %u", bits,
                       MIGVM_TARGET_PAGE_BITS);
            return false;
        }
        return true;
    }
    if (strcmp(name, UUID_SUB) == 0) {
        /* No local -uuid: nothing to compare with (QEMU only warns then). */
        mig_stream_skip(f, 16);
        return stream_ok(f, errp);
    }
    error_setg(errp, "Unknown subsection '%s' in the configuration section", name);
    return false;
}

bool config_section_load(MigStream *f, const MigConfigOptions *local, Error **errp)
{
    if (!load_machine(f, local, errp)) {
        return false;
    }
    bool x_ignore_shared = false;
    unsigned seen_mask = 0;
    for (;;) {
        uint8_t hdr[2];
        if (mig_stream_peek(f, 0, hdr, 2) < 2 || hdr[0] != QEMU_VM_SUBSECTION) {
            break;
        }
        char name[256];
        if (mig_stream_peek(f, 2, name, hdr[1]) < hdr[1]) {
            break;
        }
        name[hdr[1]] = '\0';
        if (strncmp(name, CONFIG_NAME "/", strlen(CONFIG_NAME "/")) != 0) {
            break;      /* not ours: the caller will reject it */
        }
        mig_stream_skip(f, 2 + hdr[1]);
        unsigned bit = strcmp(name, CAPS_SUB) == 0 ? 1 : strcmp(name, PAGE_BITS_SUB) == 0 ? 2 : 4;
        if (seen_mask & bit) {
            error_setg(errp, "Duplicate subsection '%s' in the configuration section", name);
            return false;
        }
        seen_mask |= bit;
        if (!load_subsection(f, name, &x_ignore_shared, errp)) {
            return false;
        }
    }
    bool want = local && local->x_ignore_shared;
    if (want != x_ignore_shared) {
        error_setg(errp, "Capability x-ignore-shared is %s, but received capability is %s",
                   want ? "on" : "off", x_ignore_shared ? "on" : "off");
        return false;
    }
    return stream_ok(f, errp);
}
