/*
 * Device bodies against the VMDESCRIPTION JSON (migration-stream.md 6, 9).
 *
 * The description lists one entry per FULL section, in stream order:
 *   {"name", "instance_id", ["vmsd_name", "version"], "fields": [F...], ["subsections": [S...]]}
 *   F = {"name", ["array_len" | "index"], "type", "size", ...}: size bytes per element, array_len elements
 *   S = {"vmsd_name", "version", "fields", ["subsections"]}: on the wire
 *       u8 0x05, u8 len, vmsd_name, be32 version, then its fields and subsections
 * A body must be exactly its fields and subsections, in that order.
 */
#include "stream-check.h"
#include "qapi-types.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#define GLOBALSTATE_RUNSTATE_LEN 100

static int64_t obj_int(json_object *o, const char *key, int64_t dflt)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_int)
           ? json_object_get_int64(v) : dflt;
}

static const char *obj_str(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string)
           ? json_object_get_string(v) : NULL;
}

static json_object *obj_array(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_array) ? v : NULL;
}

/* A walk of one description over a body (or, without a body, its length). */
typedef struct DescWalk {
    Walk *w;
    const Section *s;
    const uint8_t *body;          /* NULL: only count */
    uint64_t len, pos;
    unsigned fields, subsections;
    bool bad;                     /* the description itself is malformed */
} DescWalk;

static bool desc_fail(DescWalk *d, const char *fmt, ...) MIGVM_PRINTF(2, 3);
static bool desc_fail(DescWalk *d, const char *fmt, ...)
{
    if (d->body) {
        va_list ap;
        va_start(ap, fmt);
        g_autofree char *msg = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        walk_fail(d->w, d->s->body_offset + d->pos, "%s", msg);
    }
    return false;
}

static bool desc_walk(DescWalk *d, json_object *desc, const char *owner)
{
    json_object *fields = obj_array(desc, "fields");
    for (size_t i = 0; fields && i < json_object_array_length(fields); i++) {
        json_object *f = json_object_array_get_idx(fields, i);
        int64_t size = obj_int(f, "size", -1);
        int64_t n = obj_int(f, "array_len", 1);
        const char *name = obj_str(f, "name");
        if (size < 0 || n < 0 || (size && (uint64_t)n > UINT64_MAX / 2 / (uint64_t)size)) {
            d->bad = true;
            return desc_fail(d, "the VMDESCRIPTION entry of field '%s' of '%s' has no valid size (%" PRIu64
                             "x%" PRIu64 ")", name ? name : "?", owner, (uint64_t)size, (uint64_t)n);
        }
        d->fields++;
        uint64_t bytes = (uint64_t)size * (uint64_t)n;
        if (d->body && bytes > d->len - d->pos) {
            return desc_fail(d, "field '%s' of '%s': the VMDESCRIPTION says %" PRIu64 " bytes, only %" PRIu64
                             " are left in the body (expected a longer body)", name ? name : "?", owner, bytes,
                             d->len - d->pos);
        }
        d->pos += bytes;
    }
    json_object *subs = obj_array(desc, "subsections");
    for (size_t i = 0; subs && i < json_object_array_length(subs); i++) {
        json_object *sub = json_object_array_get_idx(subs, i);
        const char *name = obj_str(sub, "vmsd_name");
        int64_t version = obj_int(sub, "version", -1);
        size_t nl = name ? strlen(name) : 0;
        if (!name || nl == 0 || nl > 255 || version < 0 || version > UINT32_MAX) {
            d->bad = true;
            return desc_fail(d, "a subsection of '%s' in the VMDESCRIPTION has no valid name or version", owner);
        }
        if (d->body) {
            const uint8_t *p = d->body + d->pos;
            uint64_t left = d->len - d->pos;
            uint32_t v = left >= 6 + nl ? (uint32_t)p[2 + nl] << 24 | (uint32_t)p[3 + nl] << 16 |
                                          (uint32_t)p[4 + nl] << 8 | p[5 + nl] : 0;
            if (left < 6 + nl || p[0] != QEMU_VM_SUBSECTION || p[1] != nl || memcmp(p + 2, name, nl) ||
                v != (uint32_t)version) {
                const char *what = "the end of the body";
                g_autofree char *esc = NULL;
                if (left >= 6 + nl && p[0] != QEMU_VM_SUBSECTION) {
                    what = "no subsection marker (0x05)";
                } else if (left >= 6 + nl && p[1] == nl && !memcmp(p + 2, name, nl)) {
                    what = "another version";
                } else if (left >= 2) {
                    g_autofree char *found = g_strndup((const char *)p + 2, MIN(left - 2, p[1]));
                    g_autofree char *e = g_strescape(found, NULL);
                    esc = g_strdup_printf("subsection '%s'", e);
                    what = esc;
                }
                return desc_fail(d, "expected subsection '%s' v%" PRId64 " of '%s' (05, counted name, be32 "
                                 "version), as the VMDESCRIPTION says; found %s", name, version, owner, what);
            }
        }
        d->pos += 6 + nl;
        d->subsections++;
        if (!desc_walk(d, sub, name)) {
            return false;
        }
    }
    return true;
}

static json_object *find_device(json_object *devices, const char *name, uint32_t instance)
{
    for (size_t i = 0; devices && i < json_object_array_length(devices); i++) {
        json_object *dev = json_object_array_get_idx(devices, i);
        const char *n = obj_str(dev, "name");
        if (n && !strcmp(n, name) && obj_int(dev, "instance_id", -1) == instance) {
            return dev;
        }
    }
    return NULL;
}

int64_t vmdesc_body_length(json_object *vmdesc, const char *name, uint32_t instance)
{
    json_object *dev = find_device(obj_array(vmdesc, "devices"), name, instance);
    if (!dev) {
        return -1;
    }
    DescWalk d = { 0 };
    return desc_walk(&d, dev, name) && !d.bad ? (int64_t)d.pos : -1;
}

/* Where the be32 version of a START/FULL header is. */
static uint64_t version_offset(const Section *s)
{
    return s->offset + 1 + 4 + 1 + strlen(s->name) + 4;
}

static bool check_one(Walk *w, Section *s, json_object *dev)
{
    int64_t version = obj_int(dev, "version", -1);
    if (obj_str(dev, "vmsd_name") && version != s->version) {
        return walk_fail(w, version_offset(s), "expected version %" PRId64 " of '%s' (its VMDESCRIPTION entry), "
                         "found %" PRIu32, version, s->name, s->version);
    }
    DescWalk d = { .w = w, .s = s, .body = s->body->data, .len = s->body->len };
    if (!desc_walk(&d, dev, s->name)) {
        return false;
    }
    if (d.pos != d.len) {
        return walk_fail(w, s->body_offset + d.pos, "'%s' instance %" PRIu32 ": its VMDESCRIPTION accounts for %"
                         PRIu64 " bytes, the body has %" PRIu64 " (expected the section footer here)", s->name,
                         s->instance, d.pos, d.len);
    }
    s->described = true;
    s->fields = d.fields;
    s->subsections = d.subsections;
    return true;
}

bool vmdesc_check(Walk *w)
{
    json_object *devices = obj_array(w->vmdesc, "devices");
    int64_t page_size = obj_int(w->vmdesc, "page_size", MIGVM_TARGET_PAGE_SIZE);
    if (!devices) {
        return walk_fail(w, w->vmdesc_offset + 5, "expected a \"devices\" array in the VMDESCRIPTION");
    }
    if (page_size != MIGVM_TARGET_PAGE_SIZE) {
        return walk_fail(w, w->vmdesc_offset + 5, "expected \"page_size\": 4096 in the VMDESCRIPTION, found %" PRId64,
                         page_size);
    }
    /* Match each FULL section to its entry by name and instance, in stream
     * order; a section without one is only framed. */
    size_t n = json_object_array_length(devices);
    g_autofree bool *used = g_new0(bool, n);
    g_autoptr(GPtrArray) unmatched = g_ptr_array_new();
    size_t last = 0;
    bool have_last = false;
    for (guint i = 0; i < w->sections->len; i++) {
        Section *s = w->sections->pdata[i];
        if (s->live) {
            continue;       /* live handlers are not described */
        }
        json_object *dev = NULL;
        size_t k;
        for (k = 0; k < n && !dev; k++) {
            json_object *d = json_object_array_get_idx(devices, k);
            const char *name = obj_str(d, "name");
            if (!used[k] && name && !strcmp(name, s->name) && obj_int(d, "instance_id", -1) == s->instance) {
                dev = d;
                used[k] = true;
            }
        }
        if (!dev) {
            g_ptr_array_add(unmatched, s);
            continue;
        }
        size_t index = k - 1;
        if (have_last && index < last) {
            return walk_fail(w, s->offset, "FULL section '%s' instance %" PRIu32 " comes after a device the "
                             "VMDESCRIPTION lists later (expected its order)", s->name, s->instance);
        }
        last = index;
        have_last = true;
        if (!check_one(w, s, dev)) {
            return false;
        }
    }
    for (size_t k = 0; k < n; k++) {
        if (used[k]) {
            continue;
        }
        json_object *dev = json_object_array_get_idx(devices, k);
        const char *name = obj_str(dev, "name");
        int64_t instance = obj_int(dev, "instance_id", -1);
        if (unmatched->len) {
            /* Most likely that section, damaged: point at it. */
            Section *s = unmatched->pdata[0];
            return walk_fail(w, s->offset, "expected '%s' instance %" PRId64 " (device %zu of the VMDESCRIPTION), "
                             "found FULL section '%s' instance %" PRIu32 ", which it does not describe",
                             name ? name : "?", instance, k, s->name, s->instance);
        }
        return walk_fail(w, w->vmdesc_offset + 5, "the VMDESCRIPTION describes device '%s' instance %" PRId64
                         ", which the stream does not carry", name ? name : "?", instance);
    }
    return true;
}

/* "globalstate" v1: be32 size, then the run state name NUL-padded to 100
 * bytes; size = its length + 1, and a run state QEMU knows. */
static bool globalstate_check(Walk *w, Section *s)
{
    const uint8_t *p = s->body->data;
    if (s->body->len != 4 + GLOBALSTATE_RUNSTATE_LEN) {
        return walk_fail(w, s->body_offset, "expected a %d-byte globalstate body, found %u bytes",
                         4 + GLOBALSTATE_RUNSTATE_LEN, s->body->len);
    }
    uint32_t size = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    char name[GLOBALSTATE_RUNSTATE_LEN + 1];
    memcpy(name, p + 4, GLOBALSTATE_RUNSTATE_LEN);
    name[GLOBALSTATE_RUNSTATE_LEN] = '\0';
    size_t len = strlen(name);
    RunState state;
    if (len == GLOBALSTATE_RUNSTATE_LEN || size != len + 1 || !RunState_parse(name, &state)) {
        g_autofree char *esc = g_strescape(name, NULL);
        return walk_fail(w, s->body_offset + 4, "expected a run state name (running, paused, ...) of size-1 = %"
                         PRIu32 " bytes in globalstate, found '%s'", size - 1, esc);
    }
    return true;
}

bool device_body_check(Walk *w, Section *s)
{
    if (!strcmp(s->name, "globalstate") && s->version == 1 && s->body) {
        return globalstate_check(w, s);
    }
    return true;
}
