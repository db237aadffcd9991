/*
 * Device bodies, which carry no length on the wire.
 *
 * From a regular file, the VMDESCRIPTION at its end was read first
 * (walk_find_trailer): a body it describes is read at exactly that length,
 * then its footer (7e + section id) must follow. Otherwise (a pipe, or a
 * section it does not list) the body ends at the first footer of its own id
 * that is followed by something able to start the next element (a section
 * header with a printable name, PART/END of an open live section, a known
 * command, EOF then the end or a VMDESCRIPTION); the VMDESCRIPTION check at
 * the end (stream-vmdesc.c) then confirms or refutes that length. Bodies are
 * kept for that check, bounded (CHECK_DEVICE_*_MAX).
 */
#include "stream-check.h"

#include <inttypes.h>
#include <string.h>

/* Could the bytes after a candidate footer start the next element? */
static bool next_plausible(Walk *w)
{
    uint8_t p[300];
    size_t n = mig_stream_peek(w->f, 0, p, sizeof(p));
    if (n == 0) {
        return true;            /* the end: reported where the next element is read */
    }
    switch (p[0]) {
    case QEMU_VM_EOF:
        return n == 1 || (p[1] == QEMU_VM_VMDESCRIPTION && (n < 7 || p[6] == '{'));
    case QEMU_VM_SECTION_START:
    case QEMU_VM_SECTION_FULL:
        if (n < 6) {
            return true;
        }
        return p[5] > 0 && walk_printable((const char *)p + 6, MIN((size_t)p[5], n - 6));
    case QEMU_VM_SECTION_PART:
    case QEMU_VM_SECTION_END: {
        if (n < 5) {
            return true;
        }
        uint32_t id = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
        Section *s = g_hash_table_lookup(w->by_id, GUINT_TO_POINTER(id));
        return s && s->live && !s->ended;
    }
    case QEMU_VM_COMMAND:
        return n < 3 || (p[1] == 0 && p[2] > 0 && p[2] < MIG_CMD_MAX);
    default:
        return false;
    }
}

json_object *walk_find_trailer(const uint8_t *buf, size_t len)
{
    for (size_t p = len >= 6 ? len - 6 : 0; p > 0; p--) {
        if (buf[p] != QEMU_VM_VMDESCRIPTION || buf[p - 1] != QEMU_VM_EOF || buf[p + 5] != '{') {
            continue;
        }
        uint32_t n = (uint32_t)buf[p + 1] << 24 | (uint32_t)buf[p + 2] << 16 | (uint32_t)buf[p + 3] << 8 | buf[p + 4];
        if (n == len - p - 5) {
            json_tokener *tok = json_tokener_new();
            json_object *o = json_tokener_parse_ex(tok, (const char *)buf + p + 5, (int)n);
            json_tokener_free(tok);
            return o;
        }
    }
    return NULL;
}

/* The footer was not found before the end of the stream: say where it
 * should have been, from the VMDESCRIPTION among the bytes read, if any. */
static bool footer_not_found(Walk *w, Section *s, GByteArray *b)
{
    json_object *desc = walk_find_trailer(b->data, b->len);
    int64_t len = desc ? vmdesc_body_length(desc, s->name, s->instance) : -1;
    if (desc) {
        json_object_put(desc);
    }
    if (len >= 0 && (uint64_t)len + 5 <= b->len) {
        const uint8_t *p = b->data + len;
        return walk_fail(w, s->body_offset + len, "expected the section footer 7e %08" PRIx32 " of '%s' "
                         "after its %" PRId64 "-byte body (as its VMDESCRIPTION entry says), found "
                         "%02x %02x%02x%02x%02x", s->id, s->name, len, p[0], p[1], p[2], p[3], p[4]);
    }
    return walk_fail(w, s->body_offset, "the body of '%s' (section %" PRIu32 ") has no footer 7e %08" PRIx32
                     " before the stream ends at offset %" PRIu64, s->name, s->id, s->id, walk_offset(w));
}

/* A body this tool cannot decode: up to its footer (see the top). */
static bool scan_body(Walk *w, Section *s)
{
    const uint8_t pat[5] = { QEMU_VM_SECTION_FOOTER, s->id >> 24, s->id >> 16, s->id >> 8, s->id };
    GByteArray *b = g_byte_array_new();
    int64_t first_match = -1;
    bool found = false;
    while (!found && mig_stream_peek_u8(w->f) >= 0) {
        uint8_t c = mig_stream_get_u8(w->f);
        g_byte_array_append(b, &c, 1);
        if (b->len >= 5 && memcmp(b->data + b->len - 5, pat, 5) == 0) {
            if (first_match < 0) {
                first_match = b->len - 5;
            }
            found = next_plausible(w);
        }
        if (!found && b->len > CHECK_DEVICE_BODY_MAX + 5) {
            break;
        }
    }
    bool ok = walk_read_ok(w, s->body_offset, "a section body");
    if (ok && !found && first_match < 0 && b->len > CHECK_DEVICE_BODY_MAX + 5) {
        ok = walk_fail(w, s->body_offset, "no footer 7e %08" PRIx32 " of '%s' within %u bytes of its body's "
                       "start", s->id, s->name, CHECK_DEVICE_BODY_MAX);
    }
    if (ok && !found && first_match >= 0) {
        /* The first footer-like bytes are followed by nothing valid: that is
         * where the stream goes wrong. */
        ok = walk_fail(w, s->body_offset + first_match + 5, "after the footer of '%s', expected a section, "
                       "command or EOF, found 0x%02x", s->name,
                       (unsigned)(b->len > (guint)first_match + 5 ? b->data[first_match + 5] : 0));
    } else if (ok && !found) {
        ok = footer_not_found(w, s, b);
    }
    if (!ok) {
        g_byte_array_free(b, true);
        return false;
    }
    g_byte_array_set_size(b, b->len - 5);
    w->device_bytes += b->len;
    if (w->device_bytes > CHECK_DEVICE_TOTAL_MAX) {
        g_byte_array_free(b, true);
        return walk_fail(w, s->body_offset, "device sections exceed %u bytes in all", CHECK_DEVICE_TOTAL_MAX);
    }
    if (s->body) {
        g_byte_array_free(s->body, true);   /* an unknown live section: keep its last body */
    }
    s->body = b;
    return true;
}

/* A device body of the length the file's VMDESCRIPTION gives it. */
static bool described_body(Walk *w, Section *s, int64_t len)
{
    if (len > CHECK_DEVICE_BODY_MAX || w->device_bytes + len > CHECK_DEVICE_TOTAL_MAX) {
        return walk_fail(w, s->body_offset, "device sections exceed %u bytes", CHECK_DEVICE_TOTAL_MAX);
    }
    GByteArray *b = g_byte_array_sized_new(len);
    g_byte_array_set_size(b, len);
    mig_stream_get_buffer(w->f, b->data, len);
    g_autofree char *what = g_strdup_printf("the %" PRId64 "-byte body of '%s' (as its VMDESCRIPTION entry "
                                            "says)", len, s->name);
    if (!walk_read_ok(w, s->body_offset, what)) {
        g_byte_array_free(b, true);
        return false;
    }
    w->device_bytes += len;
    s->body = b;
    uint64_t off = walk_offset(w);
    uint8_t t = mig_stream_get_u8(w->f);
    uint32_t id = mig_stream_get_be32(w->f);
    g_autofree char *footer = g_strdup_printf("the section footer 7e %08" PRIx32 " of '%s' after its %" PRId64
                                              "-byte body (as its VMDESCRIPTION entry says)", s->id, s->name, len);
    if (!walk_read_ok(w, off, footer)) {
        return false;
    }
    if (t != QEMU_VM_SECTION_FOOTER || id != s->id) {
        return walk_fail(w, off, "expected %s, found %02x %08" PRIx32, footer, t, id);
    }
    return true;
}

bool walk_device_body(Walk *w, Section *s, bool full)
{
    int64_t len = full && w->pre_vmdesc ? vmdesc_body_length(w->pre_vmdesc, s->name, s->instance) : -1;
    return len >= 0 ? described_body(w, s, len) : scan_body(w, s);
}
