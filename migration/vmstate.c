/*
 * VMState encoder/decoder (include/vmstate.h; shared docs: migration-stream.md
 * sections 6 and 9).
 *
 * Body of a description, as written and read here:
 *     field values in declaration order (only fields that exist in the section
 *     version; no tags, big-endian), then for every subsection whose needed()
 *     is true:  u8 0x05, u8 len, "parent/child", be32 version, its body.
 *
 * Subsection names on the wire are "parent/child". A subsection description
 * may be named either way: "serial/fifo" is sent as is, "fifo" under parent
 * "serial" is sent as "serial/fifo".
 *
 * The loader trusts nothing: counts of variable arrays are checked against
 * the array's capacity before any element is stored, EQUAL/LE fields compare
 * before storing, bools must be 0 or 1, and every error names the field.
 */
#include "savevm.h"

#include <inttypes.h>
#include <string.h>
#include <glib.h>

#define QEMU_VM_SUBSECTION 0x05

static size_t kind_wire_size(const VMStateField *field)
{
    switch (field->kind) {
    case VMS_KIND_BOOL: case VMS_KIND_INT8: case VMS_KIND_UINT8:
        return 1;
    case VMS_KIND_INT16: case VMS_KIND_UINT16:
        return 2;
    case VMS_KIND_INT32: case VMS_KIND_UINT32:
        return 4;
    case VMS_KIND_INT64: case VMS_KIND_UINT64:
        return 8;
    case VMS_KIND_BUFFER: case VMS_KIND_UNUSED:
        return field->size;
    default:
        return 0;
    }
}

static bool kind_is_signed(VMStateKind kind)
{
    return kind == VMS_KIND_INT8 || kind == VMS_KIND_INT16 ||
           kind == VMS_KIND_INT32 || kind == VMS_KIND_INT64;
}

static bool kind_is_scalar(VMStateKind kind)
{
    return kind >= VMS_KIND_BOOL && kind <= VMS_KIND_UINT64;
}

/* Type name as QEMU's vmdesc spells it. */
static const char *field_type_name(const VMStateField *field)
{
    static const char *const base[] = {
        [VMS_KIND_BOOL] = "bool", [VMS_KIND_INT8] = "int8", [VMS_KIND_UINT8] = "uint8",
        [VMS_KIND_INT16] = "int16", [VMS_KIND_UINT16] = "uint16",
        [VMS_KIND_INT32] = "int32", [VMS_KIND_UINT32] = "uint32",
        [VMS_KIND_INT64] = "int64", [VMS_KIND_UINT64] = "uint64",
        [VMS_KIND_BUFFER] = "buffer", [VMS_KIND_UNUSED] = "unused_buffer",
        [VMS_KIND_STRUCT] = "struct",
    };
    static const char *const equal[] = {
        [VMS_KIND_BOOL] = "bool equal", [VMS_KIND_INT8] = "int8 equal",
        [VMS_KIND_UINT8] = "uint8 equal", [VMS_KIND_INT16] = "int16 equal",
        [VMS_KIND_UINT16] = "uint16 equal", [VMS_KIND_INT32] = "int32 equal",
        [VMS_KIND_UINT32] = "uint32 equal", [VMS_KIND_INT64] = "int64 equal",
        [VMS_KIND_UINT64] = "int64 equal",   /* sic: QEMU's name for uint64 equal */
    };
    static const char *const le[] = {
        [VMS_KIND_INT8] = "int8 le", [VMS_KIND_UINT8] = "uint8 le",
        [VMS_KIND_INT16] = "int16 le", [VMS_KIND_UINT16] = "uint16 le",
        [VMS_KIND_INT32] = "int32 le", [VMS_KIND_UINT32] = "uint32 le",
        [VMS_KIND_INT64] = "int64 le", [VMS_KIND_UINT64] = "uint64 le",
    };
    if (field->kind > VMS_KIND_STRUCT) {
        return "unknown";
    }
    if (kind_is_scalar(field->kind) && (field->flags & VMS_EQUAL)) {
        return equal[field->kind];
    }
    if (kind_is_scalar(field->kind) && (field->flags & VMS_LE) && le[field->kind]) {
        return le[field->kind];
    }
    return base[field->kind];
}

static bool field_exists(const VMStateField *field, void *opaque, int version_id)
{
    if (field->field_exists) {
        return field->field_exists(opaque, version_id);
    }
    return field->version_id <= version_id;
}

/* Number of elements of a field; false (errp set) if a variable count
 * exceeds the array's capacity. */
static bool field_count(const VMStateDescription *vmsd, const VMStateField *field,
                        void *opaque, uint32_t *count, Error **errp)
{
    if (field->flags & VMS_VARRAY_UINT32) {
        uint32_t n;
        memcpy(&n, (uint8_t *)opaque + field->num_offset, sizeof(n));
        if (n > field->num) {
            error_setg(errp, "%s: field '%s' has %u elements, more than its capacity %u",
                       vmsd->name, field->name, n, field->num);
            return false;
        }
        *count = n;
        return true;
    }
    *count = field->num ? field->num : 1;
    return true;
}

static uint64_t scalar_read_mem(const VMStateField *field, const void *p)
{
    uint8_t u8; uint16_t u16; uint32_t u32; uint64_t u64;
    switch (kind_wire_size(field)) {
    case 1: memcpy(&u8, p, 1); return u8;
    case 2: memcpy(&u16, p, 2); return u16;
    case 4: memcpy(&u32, p, 4); return u32;
    default: memcpy(&u64, p, 8); return u64;
    }
}

static void scalar_write_mem(const VMStateField *field, void *p, uint64_t v)
{
    uint8_t u8 = v; uint16_t u16 = v; uint32_t u32 = v;
    switch (kind_wire_size(field)) {
    case 1: memcpy(p, &u8, 1); break;
    case 2: memcpy(p, &u16, 2); break;
    case 4: memcpy(p, &u32, 4); break;
    default: memcpy(p, &v, 8); break;
    }
}

/* Sign-extend an n-byte value for comparisons and messages. */
static int64_t sign_extend(uint64_t v, size_t bytes)
{
    unsigned shift = 64 - 8 * bytes;
    return (int64_t)(v << shift) >> shift;
}

/* ------------------------------------------------------------------ */
/* vmdesc                                                             */

/* Arrays of identical elements are described once with array_len; a
 * struct whose description (at any depth) has subsections may differ per
 * element, so it is described per element with index. */
static bool vmsd_can_compress(const VMStateField *field)
{
    if (field->kind != VMS_KIND_STRUCT) {
        return true;
    }
    const VMStateDescription *sub = field->vmsd;
    if (sub->subsections && sub->subsections[0]) {
        return false;
    }
    for (const VMStateField *f = sub->fields; f && f->name; f++) {
        if (!vmsd_can_compress(f)) {
            return false;
        }
    }
    return true;
}

/* Field name, with "[n]" when several fields share it. */
static char *desc_field_name(const VMStateDescription *vmsd, const VMStateField *field)
{
    int index = 0, total = 0;
    for (const VMStateField *f = vmsd->fields; f->name; f++) {
        if (strcmp(f->name, field->name) == 0) {
            if (f < field) {
                index++;
            }
            total++;
        }
    }
    return total > 1 ? g_strdup_printf("%s[%d]", field->name, index) : g_strdup(field->name);
}

static json_object *desc_field_start(const VMStateDescription *vmsd, const VMStateField *field,
                                     uint32_t i, uint32_t n)
{
    json_object *o = json_object_new_object();
    g_autofree char *name = desc_field_name(vmsd, field);
    json_object_object_add(o, "name", json_object_new_string(name));
    if (n > 1) {
        if (vmsd_can_compress(field)) {
            json_object_object_add(o, "array_len", json_object_new_int64(n));
        } else {
            json_object_object_add(o, "index", json_object_new_int64(i));
        }
    }
    json_object_object_add(o, "type", json_object_new_string(field_type_name(field)));
    return o;
}

/* ------------------------------------------------------------------ */
/* save                                                               */

static bool save_body(MigStream *f, const VMStateDescription *vmsd, void *opaque,
                      json_object *vmdesc, Error **errp);

/* Run a device hook; a hook that fails without saying why still gets an error. */
static bool run_hook(const VMStateDescription *vmsd, const char *what, bool ok, Error *local,
                     Error **errp)
{
    if (ok) {
        error_free(local);
        return true;
    }
    if (!local) {
        error_setg(&local, "%s: %s failed", vmsd->name, what);
    } else {
        error_prepend(&local, "%s: %s failed: ", vmsd->name, what);
    }
    error_propagate(errp, local);
    return false;
}

static bool save_element(MigStream *f, const VMStateDescription *vmsd, const VMStateField *field,
                         uint8_t *elem, json_object *struct_desc, Error **errp)
{
    switch (field->kind) {
    case VMS_KIND_STRUCT:
        return save_body(f, field->vmsd, elem, struct_desc, errp);
    case VMS_KIND_BUFFER:
        mig_stream_put_buffer(f, elem, field->size);
        return true;
    case VMS_KIND_UNUSED:
        for (size_t i = 0; i < field->size; i++) {
            mig_stream_put_u8(f, 0);
        }
        return true;
    default:
        break;
    }
    uint64_t v = scalar_read_mem(field, elem);
    switch (kind_wire_size(field)) {
    case 1:
        mig_stream_put_u8(f, field->kind == VMS_KIND_BOOL ? (*elem != 0) : (uint8_t)v);
        return true;
    case 2: mig_stream_put_be16(f, v); return true;
    case 4: mig_stream_put_be32(f, v); return true;
    case 8: mig_stream_put_be64(f, v); return true;
    }
    error_setg(errp, "%s: field '%s' has an unknown kind %d", vmsd->name, field->name, field->kind);
    return false;
}

static bool save_field(MigStream *f, const VMStateDescription *vmsd, const VMStateField *field,
                       void *opaque, json_object *fields_desc, Error **errp)
{
    uint32_t n;
    if (!field_count(vmsd, field, opaque, &n, errp)) {
        return false;
    }
    bool describe = fields_desc != NULL;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *elem = (uint8_t *)opaque + field->offset + (size_t)i * field->size;
        json_object *d = describe ? desc_field_start(vmsd, field, i, n) : NULL;
        json_object *sd = d && field->kind == VMS_KIND_STRUCT ? json_object_new_object() : NULL;
        uint64_t before = mig_stream_bytes_written(f);
        bool ok = save_element(f, vmsd, field, elem, sd, errp);
        if (d) {
            if (sd) {
                json_object_object_add(d, "struct", sd);
            }
            json_object_object_add(d, "size",
                                   json_object_new_int64(mig_stream_bytes_written(f) - before));
            json_object_array_add(fields_desc, d);
        }
        if (!ok) {
            return false;
        }
        if (describe && vmsd_can_compress(field)) {
            describe = false;   /* one entry stands for the whole array */
            fields_desc = NULL;
        }
    }
    return true;
}

/* Wire name of a subsection: "parent/child". */
static char *subsection_wire_name(const VMStateDescription *parent, const VMStateDescription *sub)
{
    size_t plen = strlen(parent->name);
    if (strncmp(sub->name, parent->name, plen) == 0 && sub->name[plen] == '/') {
        return g_strdup(sub->name);
    }
    return g_strdup_printf("%s/%s", parent->name, sub->name);
}

static bool save_subsections(MigStream *f, const VMStateDescription *vmsd, void *opaque,
                             json_object *vmdesc, Error **errp)
{
    json_object *subs_desc = NULL;
    for (const VMStateDescription *const *sp = vmsd->subsections; sp && *sp; sp++) {
        const VMStateDescription *sub = *sp;
        if (sub->needed && !sub->needed(opaque)) {
            continue;
        }
        g_autofree char *name = subsection_wire_name(vmsd, sub);
        if (strlen(name) > 255) {
            error_setg(errp, "%s: subsection name '%s' is too long", vmsd->name, name);
            return false;
        }
        json_object *sd = NULL;
        if (vmdesc) {
            if (!subs_desc) {
                subs_desc = json_object_new_array();
                json_object_object_add(vmdesc, "subsections", subs_desc);
            }
            sd = json_object_new_object();
            json_object_array_add(subs_desc, sd);
        }
        mig_stream_put_u8(f, QEMU_VM_SUBSECTION);
        mig_stream_put_counted_string(f, name);
        mig_stream_put_be32(f, sub->version_id);
        if (!save_body(f, sub, opaque, sd, errp)) {
            return false;
        }
    }
    return true;
}

static bool save_body(MigStream *f, const VMStateDescription *vmsd, void *opaque,
                      json_object *vmdesc, Error **errp)
{
    if (vmsd->pre_save) {
        Error *local = NULL;
        bool ok = vmsd->pre_save(opaque, &local);
        if (!run_hook(vmsd, "pre_save", ok, local, errp)) {
            return false;
        }
    }
    json_object *fields_desc = NULL;
    if (vmdesc) {
        json_object_object_add(vmdesc, "vmsd_name", json_object_new_string(vmsd->name));
        json_object_object_add(vmdesc, "version", json_object_new_int64(vmsd->version_id));
        fields_desc = json_object_new_array();
        json_object_object_add(vmdesc, "fields", fields_desc);
    }
    for (const VMStateField *field = vmsd->fields; field && field->name; field++) {
        if (field_exists(field, opaque, vmsd->version_id) &&
            !save_field(f, vmsd, field, opaque, fields_desc, errp)) {
            return false;
        }
    }
    return save_subsections(f, vmsd, opaque, vmdesc, errp);
}

bool vmstate_save(MigStream *f, const VMStateDescription *vmsd, void *opaque,
                  json_object *vmdesc, Error **errp)
{
    if (!save_body(f, vmsd, opaque, vmdesc, errp)) {
        return false;
    }
    return mig_stream_get_error(f, errp);
}

/* ------------------------------------------------------------------ */
/* load                                                               */

static bool load_body(MigStream *f, const VMStateDescription *vmsd, void *opaque,
                      int version_id, Error **errp);

static bool stream_failed(MigStream *f, const VMStateDescription *vmsd, const char *what,
                          Error **errp)
{
    return !mig_stream_check(f, errp, "%s: failed to load '%s'", vmsd->name, what);
}

static bool load_scalar(MigStream *f, const VMStateDescription *vmsd, const VMStateField *field,
                        uint8_t *elem, Error **errp)
{
    size_t sz = kind_wire_size(field);
    uint64_t v;
    switch (sz) {
    case 1: v = mig_stream_get_u8(f); break;
    case 2: v = mig_stream_get_be16(f); break;
    case 4: v = mig_stream_get_be32(f); break;
    case 8: v = mig_stream_get_be64(f); break;
    default:
        error_setg(errp, "%s: field '%s' has an unknown kind %d", vmsd->name, field->name, field->kind);
        return false;
    }
    if (stream_failed(f, vmsd, field->name, errp)) {
        return false;
    }
    if (field->kind == VMS_KIND_BOOL && v > 1) {
        error_setg(errp, "%s: field '%s': invalid bool value %u", vmsd->name, field->name,
                   (unsigned)v);
        return false;
    }
    uint64_t cur = scalar_read_mem(field, elem);
    bool sgn = kind_is_signed(field->kind);
    if ((field->flags & VMS_EQUAL) && v != cur) {
        if (sgn) {
            error_setg(errp, "%s: field '%s' mismatch: received %" PRId64 ", expected %" PRId64,
                       vmsd->name, field->name, sign_extend(v, sz), sign_extend(cur, sz));
        } else {
            error_setg(errp, "%s: field '%s' mismatch: received %" PRIu64 ", expected %" PRIu64,
                       vmsd->name, field->name, v, cur);
        }
        return false;
    }
    if (field->flags & VMS_LE) {
        bool ok = sgn ? (sign_extend(v, sz) >= 0 && sign_extend(v, sz) <= sign_extend(cur, sz))
                      : v <= cur;
        if (!ok) {
            error_setg(errp, "%s: field '%s' out of range: received %" PRId64 ", maximum %" PRId64,
                       vmsd->name, field->name, sgn ? sign_extend(v, sz) : (int64_t)v,
                       sgn ? sign_extend(cur, sz) : (int64_t)cur);
            return false;
        }
    }
    scalar_write_mem(field, elem, v);
    return true;
}

static bool load_element(MigStream *f, const VMStateDescription *vmsd, const VMStateField *field,
                         uint8_t *elem, Error **errp)
{
    switch (field->kind) {
    case VMS_KIND_STRUCT:
        return load_body(f, field->vmsd, elem, field->vmsd->version_id, errp);
    case VMS_KIND_BUFFER:
        mig_stream_get_buffer(f, elem, field->size);
        return !stream_failed(f, vmsd, field->name, errp);
    case VMS_KIND_UNUSED:
        mig_stream_skip(f, field->size);
        return !stream_failed(f, vmsd, field->name, errp);
    default:
        return load_scalar(f, vmsd, field, elem, errp);
    }
}

static bool load_field(MigStream *f, const VMStateDescription *vmsd, const VMStateField *field,
                       void *opaque, Error **errp)
{
    uint32_t n;
    if (!field_count(vmsd, field, opaque, &n, errp)) {
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *elem = (uint8_t *)opaque + field->offset + (size_t)i * field->size;
        if (!load_element(f, vmsd, field, elem, errp)) {
            return false;
        }
    }
    return true;
}

static const VMStateDescription *find_subsection(const VMStateDescription *vmsd,
                                                 const char *wire_name)
{
    for (const VMStateDescription *const *sp = vmsd->subsections; sp && *sp; sp++) {
        g_autofree char *name = subsection_wire_name(vmsd, *sp);
        if (strcmp(name, wire_name) == 0) {
            return *sp;
        }
    }
    return NULL;
}

/* Load the subsections that follow; stop (leaving the bytes) at anything
 * that is not a subsection of this description. */
static bool load_subsections(MigStream *f, const VMStateDescription *vmsd, void *opaque,
                             Error **errp)
{
    size_t plen = strlen(vmsd->name);
    for (;;) {
        uint8_t hdr[2];
        char name[256];
        size_t got = mig_stream_peek(f, 0, hdr, 2);
        if (got == 0 || hdr[0] != QEMU_VM_SUBSECTION) {
            return true;
        }
        size_t len = got == 2 ? hdr[1] : 0;
        if (got < 2 || (len >= plen + 1 && mig_stream_peek(f, 2, name, len) < len)) {
            /* A subsection header cut short can only be the end of input. */
            if (!mig_stream_has_error(f)) {
                mig_stream_set_error(f, "Unexpected end of migration stream");
            }
            stream_failed(f, vmsd, "subsection", errp);
            return false;
        }
        if (len < plen + 1) {
            return true;
        }
        name[len] = '\0';
        if (memcmp(name, vmsd->name, plen) != 0 || name[plen] != '/') {
            return true;
        }
        const VMStateDescription *sub = find_subsection(vmsd, name);
        if (!sub || memchr(name, '\0', len)) {
            error_setg(errp, "%s: unknown subsection '%s'", vmsd->name, name);
            return false;
        }
        mig_stream_skip(f, 2 + len);
        int version = (int32_t)mig_stream_get_be32(f);
        if (stream_failed(f, vmsd, name, errp) || !load_body(f, sub, opaque, version, errp)) {
            return false;
        }
    }
}

static bool check_version(const VMStateDescription *vmsd, int version_id, Error **errp)
{
    if (version_id > vmsd->version_id) {
        error_setg(errp, "%s: incoming version_id %d is too new (local version_id %d)",
                   vmsd->name, version_id, vmsd->version_id);
        return false;
    }
    if (version_id < vmsd->minimum_version_id) {
        error_setg(errp, "%s: incoming version_id %d is too old (minimum version_id %d)",
                   vmsd->name, version_id, vmsd->minimum_version_id);
        return false;
    }
    return true;
}

static bool load_body(MigStream *f, const VMStateDescription *vmsd, void *opaque,
                      int version_id, Error **errp)
{
    if (!check_version(vmsd, version_id, errp)) {
        return false;
    }
    if (vmsd->pre_load) {
        Error *local = NULL;
        bool ok = vmsd->pre_load(opaque, &local);
        if (!run_hook(vmsd, "pre_load", ok, local, errp)) {
            return false;
        }
    }
    for (const VMStateField *field = vmsd->fields; field && field->name; field++) {
        if (field_exists(field, opaque, version_id) && !load_field(f, vmsd, field, opaque, errp)) {
            return false;
        }
    }
    if (!load_subsections(f, vmsd, opaque, errp)) {
        return false;
    }
    if (vmsd->post_load) {
        Error *local = NULL;
        bool ok = vmsd->post_load(opaque, version_id, &local);
        if (!run_hook(vmsd, "post_load", ok, local, errp)) {
            return false;
        }
    }
    return true;
}

bool vmstate_load(MigStream *f, const VMStateDescription *vmsd, void *opaque, int version_id,
                  Error **errp)
{
    return load_body(f, vmsd, opaque, version_id, errp) &&
           mig_stream_check(f, errp, "%s", vmsd->name);
}
