/*
 * The framing of a whole migration stream, read front to back
 * (migration-stream.md sections 1-4, 7, 9):
 *
 *   be32 magic "QEVM", be32 version 3
 *   u8 0x07 CONFIGURATION: be32 len + machine name, configuration/... subsections
 *   { START | PART | END | FULL | COMMAND } ...     each section body + 7e <be32 id>
 *   u8 0x00 EOF
 *   [u8 0x06 VMDESCRIPTION, be32 len, len bytes of JSON]   nothing after it
 *
 * Live sections this tool knows (ram, block, dirty-bitmap) are decoded
 * record by record (stream-ram.c, stream-block.c), so their footer is where
 * the records end. A device body has no length on the wire (stream-body.c
 * finds it); the VMDESCRIPTION at the end then says whether each body has the
 * length and layout of the device it names (stream-vmdesc.c).
 */
#include "stream-check.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#define MACHINE_NAME_MAX 256

static void section_free(gpointer p)
{
    Section *s = p;
    g_free(s->name);
    if (s->body) {
        g_byte_array_free(s->body, true);
    }
    if (s->ram_blocks) {
        g_ptr_array_free(s->ram_blocks, true);
    }
    if (s->blk_devs) {
        g_ptr_array_free(s->blk_devs, true);
    }
    if (s->bitmaps) {
        g_ptr_array_free(s->bitmaps, true);
    }
    g_free(s);
}

void walk_init(Walk *w, MigStream *f)
{
    memset(w, 0, sizeof(*w));
    w->f = f;
    w->sections = g_ptr_array_new_with_free_func(section_free);
    w->by_id = g_hash_table_new(g_direct_hash, g_direct_equal);
    w->by_key = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    w->caps = g_ptr_array_new_with_free_func(g_free);
}

void walk_free(Walk *w)
{
    g_ptr_array_free(w->sections, true);
    g_hash_table_destroy(w->by_id);
    g_hash_table_destroy(w->by_key);
    g_ptr_array_free(w->caps, true);
    g_free(w->machine);
    g_free(w->bm_node);
    g_free(w->bm_name);
    if (w->vmdesc) {
        json_object_put(w->vmdesc);
    }
    if (w->pre_vmdesc) {
        json_object_put(w->pre_vmdesc);
    }
    error_free(w->err);
}

uint64_t walk_offset(const Walk *w)
{
    return mig_stream_bytes_read(w->f);
}

bool walk_fail(Walk *w, uint64_t off, const char *fmt, ...)
{
    if (w->err) {
        return false;
    }
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_setg(&w->err, "offset %" PRIu64 " (0x%" PRIx64 "): %s", off, off, msg);
    return false;
}

bool walk_read_ok(Walk *w, uint64_t off, const char *what)
{
    if (!mig_stream_has_error(w->f)) {
        return true;
    }
    const char *why = mig_stream_error_msg(w->f);
    if (strstr(why, "Unexpected end")) {
        return walk_fail(w, off, "expected %s, but the stream ends at offset %" PRIu64, what,
                         walk_offset(w));
    }
    walk_fail(w, off, "reading %s: %s", what, why);
    w->io_error = true;
    return false;
}

bool walk_printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

/* A machine type QEMU 7.2's x86 targets or migvm can name. */
static bool machine_known(const char *m)
{
    static const char *const plain[] = { "none", "pc", "q35", "isapc", "microvm", "x-remote" };
    for (size_t i = 0; i < G_N_ELEMENTS(plain); i++) {
        if (!strcmp(m, plain[i])) {
            return true;
        }
    }
    const char *v = g_str_has_prefix(m, "pc-i440fx-") ? m + 10 : g_str_has_prefix(m, "pc-q35-") ? m + 7 : NULL;
    return v && g_ascii_isdigit(*v) && strspn(v, "0123456789.") == strlen(v);
}

/* ---- header and configuration ------------------------------------------------- */

static bool walk_header(Walk *w)
{
    uint32_t magic = mig_stream_get_be32(w->f);
    if (!walk_read_ok(w, 0, "the magic number 0x5145564d (\"QEVM\")")) {
        return false;
    }
    if (magic != QEMU_VM_FILE_MAGIC) {
        return walk_fail(w, 0, "expected the magic number 0x5145564d (\"QEVM\"), found 0x%08" PRIx32
                         ": not a migration stream", magic);
    }
    uint32_t version = mig_stream_get_be32(w->f);
    if (!walk_read_ok(w, 4, "the stream version (3)")) {
        return false;
    }
    if (version != QEMU_VM_FILE_VERSION) {
        return walk_fail(w, 4, "expected stream version 3, found %" PRIu32 "%s", version,
                         version == QEMU_VM_FILE_VERSION_COMPAT ? " (the obsolete v2 format)" : "");
    }
    return true;
}

static bool config_subsection(Walk *w, uint64_t off, const char *name)
{
    uint64_t voff = walk_offset(w);
    uint32_t version = mig_stream_get_be32(w->f);
    if (!walk_read_ok(w, voff, "a configuration subsection version")) {
        return false;
    }
    if (version != 1) {
        return walk_fail(w, voff, "expected version 1 of subsection '%s', found %" PRIu32, name, version);
    }
    uint64_t boff = walk_offset(w);
    if (!strcmp(name, "configuration/capabilities")) {
        uint32_t count = mig_stream_get_be32(w->f);
        if (!walk_read_ok(w, boff, "the capability count")) {
            return false;
        }
        if (count > 64) {
            return walk_fail(w, boff, "expected at most 64 capabilities, found a count of %" PRIu32, count);
        }
        for (uint32_t i = 0; i < count; i++) {
            char cap[256];
            uint64_t coff = walk_offset(w);
            int len = mig_stream_get_counted_string(w->f, cap);
            if (!walk_read_ok(w, coff, "a capability name")) {
                return false;
            }
            if (len == 0 || strcmp(cap, "x-ignore-shared") != 0) {
                return walk_fail(w, coff, "expected a capability the stream format validates "
                                 "(x-ignore-shared), found '%s'", cap);
            }
            w->x_ignore_shared = true;
            g_ptr_array_add(w->caps, g_strdup(cap));
        }
        return true;
    }
    if (!strcmp(name, "configuration/target-page-bits")) {
        uint32_t bits = mig_stream_get_be32(w->f);
        if (!walk_read_ok(w, boff, "the target page bits")) {
            return false;
        }
        if (bits != MIGVM_TARGET_PAGE_BITS) {
            return walk_fail(w, boff, "expected target page bits %u (x86), found %" PRIu32,
                             MIGVM_TARGET_PAGE_BITS, bits);
        }
        return true;
    }
    if (!strcmp(name, "configuration/uuid")) {
        mig_stream_skip(w->f, 16);
        w->has_uuid = true;
        return walk_read_ok(w, boff, "a 16-byte UUID");
    }
    return walk_fail(w, off, "expected a configuration subsection (capabilities, target-page-bits, uuid), "
                     "found '%s'", name);
}

static bool walk_configuration(Walk *w)
{
    uint64_t off = walk_offset(w);
    uint8_t t = mig_stream_get_u8(w->f);
    if (!walk_read_ok(w, off, "the CONFIGURATION section (0x07)")) {
        return false;
    }
    if (t != QEMU_VM_CONFIGURATION) {
        return walk_fail(w, off, "expected the CONFIGURATION section (0x07), found 0x%02x", t);
    }
    uint64_t loff = walk_offset(w);
    uint32_t len = mig_stream_get_be32(w->f);
    if (!walk_read_ok(w, loff, "the machine type's length")) {
        return false;
    }
    if (len == 0 || len > MACHINE_NAME_MAX) {
        return walk_fail(w, loff, "expected a machine type name of 1 to %d bytes, found a length of %" PRIu32,
                         MACHINE_NAME_MAX, len);
    }
    char name[MACHINE_NAME_MAX + 1];
    mig_stream_get_buffer(w->f, name, len);
    if (!walk_read_ok(w, loff + 4, "the machine type name")) {
        return false;
    }
    name[len] = '\0';
    if (!walk_printable(name, len) || !machine_known(name)) {
        g_autofree char *esc = g_strescape(name, NULL);
        return walk_fail(w, loff + 4, "expected an x86 machine type (pc, pc-i440fx-X.Y, q35, pc-q35-X.Y, "
                         "none, ...), found '%s'", esc);
    }
    w->machine = g_strdup(name);
    for (;;) {
        uint8_t hdr[2];
        uint64_t soff = walk_offset(w);
        if (mig_stream_peek(w->f, 0, hdr, 2) < 2 || hdr[0] != QEMU_VM_SUBSECTION) {
            return true;
        }
        mig_stream_skip(w->f, 1);
        char sub[256];
        int sl = mig_stream_get_counted_string(w->f, sub);
        if (!walk_read_ok(w, soff, "a configuration subsection name")) {
            return false;
        }
        if (!g_str_has_prefix(sub, "configuration/") || !walk_printable(sub, sl)) {
            return walk_fail(w, soff + 1, "expected a 'configuration/...' subsection name, found '%s'", sub);
        }
        if (!config_subsection(w, soff, sub)) {
            return false;
        }
    }
}

/* ---- commands ------------------------------------------------------------ */

static bool walk_command(Walk *w, uint64_t off)
{
    uint16_t cmd = mig_stream_get_be16(w->f);
    uint16_t len = mig_stream_get_be16(w->f);
    if (!walk_read_ok(w, off + 1, "a command number and length")) {
        return false;
    }
    w->commands++;
    switch (cmd) {
    case MIG_CMD_OPEN_RETURN_PATH:
        if (len != 0) {
            return walk_fail(w, off + 3, "expected length 0 for OPEN_RETURN_PATH, found %u", len);
        }
        if (w->rp_open) {
            return walk_fail(w, off, "OPEN_RETURN_PATH sent twice (expected once at most)");
        }
        w->rp_open = true;
        return true;
    case MIG_CMD_PING:
        if (len != 4) {
            return walk_fail(w, off + 3, "expected length 4 for PING, found %u", len);
        }
        if (!w->rp_open) {
            return walk_fail(w, off, "PING before OPEN_RETURN_PATH (a PING needs the return path)");
        }
        mig_stream_skip(w->f, 4);
        w->pings++;
        return walk_read_ok(w, off + 5, "PING's be32 value");
    case MIG_CMD_POSTCOPY_ADVISE:
        if (len != 0 && len != 16) {
            return walk_fail(w, off + 3, "expected length 0 or 16 for POSTCOPY_ADVISE, found %u", len);
        }
        w->postcopy_advise = true;
        mig_stream_skip(w->f, len);
        return walk_read_ok(w, off + 5, "POSTCOPY_ADVISE's page sizes");
    default:
        if (cmd == MIG_CMD_INVALID || cmd >= MIG_CMD_MAX) {
            return walk_fail(w, off + 1, "expected a command number 1 to %d, found %u", MIG_CMD_MAX - 1, cmd);
        }
        return walk_fail(w, off + 1, "command %u is a postcopy or COLO command: only precopy streams are "
                         "verified", cmd);
    }
}

/* ---- sections --------------------------------------------------------------- */

static bool check_footer(Walk *w, Section *s)
{
    uint64_t off = walk_offset(w);
    uint8_t b = mig_stream_get_u8(w->f);
    uint32_t id = mig_stream_get_be32(w->f);
    g_autofree char *what = g_strdup_printf("the section footer 7e %08" PRIx32 " of '%s'", s->id, s->name);
    if (!walk_read_ok(w, off, what)) {
        return false;
    }
    if (b != QEMU_VM_SECTION_FOOTER || id != s->id) {
        return walk_fail(w, off, "expected %s, found %02x %08" PRIx32, what, b, id);
    }
    return true;
}

static bool walk_body(Walk *w, Section *s, uint8_t type)
{
    uint64_t start = walk_offset(w);
    s->body_offset = start;
    bool ok = walk_is_known_live(s->name) ? walk_live_body(w, s, type) && check_footer(w, s)
                                          : walk_device_body(w, s, type == QEMU_VM_SECTION_FULL);
    if (ok && type == QEMU_VM_SECTION_FULL) {
        ok = device_body_check(w, s);
    }
    return ok;
}

static bool walk_start_full(Walk *w, uint64_t off, uint8_t type)
{
    char name[256];
    uint32_t id = mig_stream_get_be32(w->f);
    int len = mig_stream_get_counted_string(w->f, name);
    if (!walk_read_ok(w, off + 1, "a section header (be32 id, counted name)")) {
        return false;
    }
    uint64_t ioff = walk_offset(w);
    uint32_t instance = mig_stream_get_be32(w->f);
    uint32_t version = mig_stream_get_be32(w->f);
    if (!walk_read_ok(w, ioff, "a section's be32 instance and version")) {
        return false;
    }
    if (len == 0 || !walk_printable(name, len)) {
        g_autofree char *esc = g_strescape(name, NULL);
        return walk_fail(w, off + 5, "expected a section name of printable characters, found '%s' (%d bytes)",
                         esc, len);
    }
    bool known_live = walk_is_known_live(name);
    if (type == QEMU_VM_SECTION_FULL && known_live) {
        return walk_fail(w, off, "'%s' is a live section: expected SECTION_START (0x01), found SECTION_FULL", name);
    }
    g_autofree char *key = g_strdup_printf("%s\n%" PRIu32, name, instance);
    if (g_hash_table_contains(w->by_key, key)) {
        return walk_fail(w, off, "section '%s' instance %" PRIu32 " appears twice (expected once)", name,
                         instance);
    }
    if (g_hash_table_contains(w->by_id, GUINT_TO_POINTER(id))) {
        Section *o = g_hash_table_lookup(w->by_id, GUINT_TO_POINTER(id));
        return walk_fail(w, off + 1, "section id %" PRIu32 " of '%s' is already used by '%s' (expected a new id)",
                         id, name, o->name);
    }
    Section *s = g_new0(Section, 1);
    s->id = id;
    s->name = g_strdup(name);
    s->instance = instance;
    s->version = version;
    s->live = type == QEMU_VM_SECTION_START;
    s->offset = off;
    s->progress = -1;
    s->chunks = 1;
    g_ptr_array_add(w->sections, s);
    g_hash_table_insert(w->by_id, GUINT_TO_POINTER(id), s);
    g_hash_table_insert(w->by_key, g_steal_pointer(&key), s);
    if (known_live && !walk_live_version_ok(w, s, ioff + 4)) {
        return false;
    }
    bool ok = walk_body(w, s, type);
    s->bytes += walk_offset(w) - off;
    return ok;
}

static bool walk_part_end(Walk *w, uint64_t off, uint8_t type)
{
    uint32_t id = mig_stream_get_be32(w->f);
    if (!walk_read_ok(w, off + 1, "a section id")) {
        return false;
    }
    Section *s = g_hash_table_lookup(w->by_id, GUINT_TO_POINTER(id));
    const char *tname = type == QEMU_VM_SECTION_PART ? "SECTION_PART" : "SECTION_END";
    if (!s) {
        return walk_fail(w, off + 1, "%s for section id %" PRIu32 ", which no SECTION_START opened", tname, id);
    }
    if (!s->live || s->ended) {
        return walk_fail(w, off, "%s for '%s' (id %" PRIu32 "), which is %s", tname, s->name, id,
                         s->live ? "already ended" : "a FULL section");
    }
    s->chunks++;
    s->ended = type == QEMU_VM_SECTION_END;
    bool ok = walk_body(w, s, type);
    s->bytes += walk_offset(w) - off;
    return ok;
}

/* ---- EOF and VMDESCRIPTION ---------------------------------------------------- */

static bool walk_vmdesc(Walk *w)
{
    int b = mig_stream_peek_u8(w->f);
    uint64_t off = walk_offset(w);
    if (b < 0) {
        return walk_read_ok(w, off, "the end of the stream");   /* none: device bodies only framed */
    }
    if (b != QEMU_VM_VMDESCRIPTION) {
        return walk_fail(w, off, "after EOF, expected the VMDESCRIPTION (0x06) or the end of the stream, "
                         "found 0x%02x", (unsigned)b);
    }
    mig_stream_skip(w->f, 1);
    uint32_t len = mig_stream_get_be32(w->f);
    if (!walk_read_ok(w, off + 1, "the VMDESCRIPTION's be32 length")) {
        return false;
    }
    if (len == 0 || len > MIGVM_VMDESC_MAX_LEN) {
        return walk_fail(w, off + 1, "expected a VMDESCRIPTION length of 1 to %u bytes, found %" PRIu32,
                         MIGVM_VMDESC_MAX_LEN, len);
    }
    g_autofree char *text = g_malloc(len);
    mig_stream_get_buffer(w->f, text, len);
    g_autofree char *what = g_strdup_printf("the VMDESCRIPTION's %" PRIu32 " bytes of JSON", len);
    if (!walk_read_ok(w, off + 5, what)) {
        return false;
    }
    json_tokener *tok = json_tokener_new();
    json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!o || jerr != json_tokener_success || used != len || !json_object_is_type(o, json_type_object)) {
        if (o) {
            json_object_put(o);
        }
        return walk_fail(w, off + 5 + (o ? used : 0), "expected the VMDESCRIPTION to be one JSON object of %"
                         PRIu32 " bytes: %s", len,
                         jerr != json_tokener_success ? json_tokener_error_desc(jerr) : "it is not");
    }
    w->vmdesc = o;
    w->vmdesc_offset = off;
    w->vmdesc_len = len;
    if (mig_stream_peek_u8(w->f) >= 0) {
        return walk_fail(w, walk_offset(w), "expected the end of the stream after the VMDESCRIPTION, found "
                         "more bytes");
    }
    return walk_read_ok(w, walk_offset(w), "the end of the stream");
}

static bool walk_eof(Walk *w, uint64_t off)
{
    w->have_eof = true;
    w->eof_offset = off;
    for (guint i = 0; i < w->sections->len; i++) {
        Section *s = w->sections->pdata[i];
        if (s->live && !s->ended) {
            return walk_fail(w, off, "EOF while live section '%s' (id %" PRIu32 ") was never ended "
                             "(expected its SECTION_END first)", s->name, s->id);
        }
        if (s->live && !walk_live_finished(w, s)) {
            return false;
        }
    }
    return walk_vmdesc(w) && (!w->vmdesc || vmdesc_check(w));
}

bool walk_stream(Walk *w)
{
    bool ok = walk_header(w) && walk_configuration(w);
    while (ok) {
        uint64_t off = walk_offset(w);
        uint8_t type = mig_stream_get_u8(w->f);
        if (!walk_read_ok(w, off, "a section, a command or EOF (0x00)")) {
            ok = false;
            break;
        }
        switch (type) {
        case QEMU_VM_EOF:
            ok = walk_eof(w, off);
            w->total = walk_offset(w);
            return ok;
        case QEMU_VM_SECTION_START:
        case QEMU_VM_SECTION_FULL:
            ok = walk_start_full(w, off, type);
            break;
        case QEMU_VM_SECTION_PART:
        case QEMU_VM_SECTION_END:
            ok = walk_part_end(w, off, type);
            break;
        case QEMU_VM_COMMAND:
            ok = walk_command(w, off);
            break;
        default:
            ok = walk_fail(w, off, "expected a section (0x01-0x04), a command (0x08) or EOF (0x00), found 0x%02x",
                           type);
        }
    }
    w->total = walk_offset(w);
    return false;
}
