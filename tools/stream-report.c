/*
 * What migvm-stream prints about the sections it read: `verify` one line
 * per section and a closing line, `dump` one JSON object per line (see
 * docs/migvm.1 for both formats).
 */
#include "stream-check.h"

#include <inttypes.h>
#include <string.h>

/* ---- text --------------------------------------------------------------------- */

static void text_details(const Walk *w, const Section *s, GString *out)
{
    for (guint i = 0; s->ram_blocks && i < s->ram_blocks->len; i++) {
        const RamBlockStat *b = s->ram_blocks->pdata[i];
        g_string_append_printf(out, "%s block \"%s\" %" PRIu64 " bytes: %" PRIu64 " zero, %" PRIu64 " normal",
                               i ? ";" : "", b->name, b->size, b->zero, b->normal);
        if (b->xbzrle || b->compressed) {
            g_string_append_printf(out, ", %" PRIu64 " xbzrle, %" PRIu64 " compressed", b->xbzrle, b->compressed);
        }
        g_string_append(out, " pages");
    }
    for (guint i = 0; s->blk_devs && i < s->blk_devs->len; i++) {
        const BlkDevStat *d = s->blk_devs->pdata[i];
        g_string_append_printf(out, "%s device \"%s\": %" PRIu64 " chunks of 1 MiB (%" PRIu64 " zero)", i ? ";" : "",
                               d->name, d->chunks, d->zero_chunks);
    }
    if (s->progress >= 0) {
        g_string_append_printf(out, ", progress %d%%", s->progress);
    }
    for (guint i = 0; s->bitmaps && i < s->bitmaps->len; i++) {
        const BitmapStat *b = s->bitmaps->pdata[i];
        g_string_append_printf(out, "%s bitmap \"%s\" on \"%s\" granularity %" PRIu32 "%s%s: %" PRIu64 " BITS "
                               "records, %" PRIu64 " dirty bits%s", i ? ";" : "", b->name, b->node, b->granularity,
                               b->flags & 1 ? " enabled" : "", b->flags & 2 ? " persistent" : "",
                               b->bits_records, b->dirty_bits, b->complete ? ", complete" : "");
    }
    if (s->live && !walk_is_known_live(s->name)) {
        g_string_append(out, " framed only (a live section this tool does not decode)");
    } else if (!s->live && s->described) {
        g_string_append_printf(out, " described: %u fields, %u subsections", s->fields, s->subsections);
    } else if (!s->live) {
        g_string_append(out, w->vmdesc ? " framed only (not in the VMDESCRIPTION)" : " framed only (no VMDESCRIPTION)");
    }
}

void report_text(const Walk *w, const char *path, FILE *out)
{
    int width = 4;
    for (guint i = 0; i < w->sections->len; i++) {
        const Section *s = w->sections->pdata[i];
        width = MAX(width, (int)strlen(s->name));
    }
    for (guint i = 0; i < w->sections->len; i++) {
        const Section *s = w->sections->pdata[i];
        g_autoptr(GString) details = g_string_new("");
        text_details(w, s, details);
        fprintf(out, "%-*s  instance %-2" PRIu32 " v%-2" PRIu32 " %-4s %10" PRIu64 " bytes %4u chunk%s %s\n", width,
                s->name, s->instance, s->version, s->live ? "live" : "full", s->bytes, s->chunks,
                s->chunks == 1 ? " " : "s", details->str);
    }
    if (!w->err) {
        fprintf(out, "%s: valid migration stream: %" PRIu64 " bytes, machine '%s', %u sections, %u commands, %s\n",
                path, w->total, w->machine, w->sections->len, w->commands,
                w->vmdesc ? "VMDESCRIPTION checked" : "no VMDESCRIPTION (device sections framed only)");
    }
}

/* ---- JSON lines --------------------------------------------------------------- */

static json_object *u64(uint64_t v)
{
    return json_object_new_int64((int64_t)v);
}

static void json_details(const Section *s, json_object *o)
{
    if (s->ram_blocks) {
        json_object *blocks = json_object_new_array();
        for (guint i = 0; i < s->ram_blocks->len; i++) {
            const RamBlockStat *b = s->ram_blocks->pdata[i];
            json_object *jb = json_object_new_object();
            json_object *pages = json_object_new_object();
            json_object_object_add(jb, "name", json_object_new_string(b->name));
            json_object_object_add(jb, "size", u64(b->size));
            json_object_object_add(pages, "zero", u64(b->zero));
            json_object_object_add(pages, "normal", u64(b->normal));
            json_object_object_add(pages, "xbzrle", u64(b->xbzrle));
            json_object_object_add(pages, "compressed", u64(b->compressed));
            json_object_object_add(jb, "pages", pages);
            json_object_array_add(blocks, jb);
        }
        json_object_object_add(o, "blocks", blocks);
    }
    if (s->blk_devs) {
        json_object *devs = json_object_new_array();
        for (guint i = 0; i < s->blk_devs->len; i++) {
            const BlkDevStat *d = s->blk_devs->pdata[i];
            json_object *jd = json_object_new_object();
            json_object *offs = json_object_new_array();
            for (guint j = 0; j < d->offsets->len; j++) {
                json_object_array_add(offs, u64(g_array_index(d->offsets, uint64_t, j)));
            }
            json_object_object_add(jd, "name", json_object_new_string(d->name));
            json_object_object_add(jd, "chunks", u64(d->chunks));
            json_object_object_add(jd, "zero-chunks", u64(d->zero_chunks));
            json_object_object_add(jd, "chunk-offsets", offs);
            json_object_array_add(devs, jd);
        }
        json_object_object_add(o, "devices", devs);
    }
    if (!strcmp(s->name, "block")) {
        json_object_object_add(o, "progress", s->progress >= 0 ? json_object_new_int(s->progress) : NULL);
    }
    if (s->bitmaps) {
        json_object *bms = json_object_new_array();
        for (guint i = 0; i < s->bitmaps->len; i++) {
            const BitmapStat *b = s->bitmaps->pdata[i];
            json_object *jb = json_object_new_object();
            json_object_object_add(jb, "node", json_object_new_string(b->node));
            json_object_object_add(jb, "name", json_object_new_string(b->name));
            json_object_object_add(jb, "granularity", u64(b->granularity));
            json_object_object_add(jb, "enabled", json_object_new_boolean(b->flags & 1));
            json_object_object_add(jb, "persistent", json_object_new_boolean(b->flags & 2));
            json_object_object_add(jb, "bits-records", u64(b->bits_records));
            json_object_object_add(jb, "dirty-bits", u64(b->dirty_bits));
            json_object_object_add(jb, "complete", json_object_new_boolean(b->complete));
            json_object_array_add(bms, jb);
        }
        json_object_object_add(o, "bitmaps", bms);
    }
    if (!s->live) {
        json_object_object_add(o, "body", s->body ? u64(s->body->len) : NULL);
        json_object_object_add(o, "described", json_object_new_boolean(s->described));
        if (s->described) {
            json_object_object_add(o, "fields", u64(s->fields));
            json_object_object_add(o, "subsections", u64(s->subsections));
        }
    }
}

static void print_line(json_object *o, FILE *out)
{
    fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
}

void report_json(const Walk *w, FILE *out)
{
    for (guint i = 0; i < w->sections->len; i++) {
        const Section *s = w->sections->pdata[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "section", json_object_new_string(s->name));
        json_object_object_add(o, "instance", u64(s->instance));
        json_object_object_add(o, "version", u64(s->version));
        json_object_object_add(o, "id", u64(s->id));
        json_object_object_add(o, "kind", json_object_new_string(s->live ? "live" : "full"));
        json_object_object_add(o, "offset", u64(s->offset));
        json_object_object_add(o, "bytes", u64(s->bytes));
        json_object_object_add(o, "chunks", u64(s->chunks));
        json_details(s, o);
        print_line(o, out);
    }
    json_object *o = json_object_new_object();
    json_object_object_add(o, "stream", json_object_new_string(w->err ? "invalid" : "valid"));
    json_object_object_add(o, "bytes", u64(w->total));
    json_object_object_add(o, "machine", w->machine ? json_object_new_string(w->machine) : NULL);
    json_object *caps = json_object_new_array();
    for (guint i = 0; i < w->caps->len; i++) {
        json_object_array_add(caps, json_object_new_string(w->caps->pdata[i]));
    }
    json_object_object_add(o, "capabilities", caps);
    json_object_object_add(o, "commands", u64(w->commands));
    json_object_object_add(o, "return-path", json_object_new_boolean(w->rp_open));
    json_object_object_add(o, "sections", u64(w->sections->len));
    json_object_object_add(o, "eof", w->have_eof ? u64(w->eof_offset) : NULL);
    json_object_object_add(o, "vmdesc", w->vmdesc ? u64(w->vmdesc_len) : NULL);
    if (w->err) {
        json_object_object_add(o, "error", json_object_new_string(error_get_pretty(w->err)));
    }
    print_line(o, out);
}
