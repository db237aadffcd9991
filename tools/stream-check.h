/*
 * migvm-stream: the offline checker of a saved or piped migration stream
 * (shared docs: migration-stream.md, block-migration.md sections 2 and 4).
 * Private to tools/.
 *
 * One forward pass over the stream (a pipe works as well as a file):
 *   stream-walk.c     header, CONFIGURATION, commands, section framing and
 *                     footers, EOF, VMDESCRIPTION
 *   stream-body.c     where a device body ends; bodies are kept
 *   stream-ram.c      the records of "ram" (and which live sections are known)
 *   stream-block.c    the records of "block" and "dirty-bitmap"
 *   stream-vmdesc.c   the kept device bodies against the VMDESCRIPTION JSON
 *   stream-report.c   one summary line per section, or JSON lines
 * The first problem stops the pass; it is kept with the byte offset where
 * the stream differs from what was expected.
 */
#ifndef MIGVM_TOOLS_STREAM_CHECK_H
#define MIGVM_TOOLS_STREAM_CHECK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <glib.h>
#include <json-c/json.h>
#include "savevm.h"

/* Bounds a hostile stream cannot push past. */
#define CHECK_DEVICE_BODY_MAX (16u * 1024 * 1024)     /* one device section */
#define CHECK_DEVICE_TOTAL_MAX (256u * 1024 * 1024)   /* all device sections */

typedef struct RamBlockStat {
    char *name;
    uint64_t size;
    uint64_t zero, normal, xbzrle, compressed;
} RamBlockStat;

typedef struct BlkDevStat {
    char *name;
    uint64_t chunks, zero_chunks;
    GArray *offsets;              /* uint64_t byte offset of each chunk, in stream order */
} BlkDevStat;

typedef struct BitmapStat {
    char *node, *name;
    uint32_t granularity;
    uint8_t flags;                /* START's bitmap flags: 1 enabled, 2 persistent */
    uint64_t bits_records, dirty_bits;
    bool complete;
} BitmapStat;

typedef struct Section {
    uint32_t id;
    char *name;
    uint32_t instance, version;
    bool live;                    /* opened by START (else FULL) */
    bool ended;                   /* live: END seen */
    uint64_t offset;              /* of its first header */
    uint64_t bytes;               /* every chunk: headers, bodies, footers */
    unsigned chunks;              /* START/PART/END (1 for FULL) */
    /* FULL (and live sections this tool cannot decode): the body, for the
     * VMDESCRIPTION check. */
    uint64_t body_offset;
    GByteArray *body;
    bool described;               /* matched its VMDESCRIPTION entry */
    unsigned fields, subsections; /* from that entry */
    /* per kind */
    GPtrArray *ram_blocks;        /* RamBlockStat*, in list order */
    GPtrArray *blk_devs;          /* BlkDevStat*, in first-seen order */
    int progress;                 /* block: last PROGRESS percent, -1 none */
    GPtrArray *bitmaps;           /* BitmapStat* */
} Section;

typedef struct Walk {
    MigStream *f;
    GPtrArray *sections;          /* Section*, in stream order (owns them) */
    GHashTable *by_id;            /* section id -> Section* */
    GHashTable *by_key;           /* "name\ninstance" -> Section* */
    char *machine;
    GPtrArray *caps;              /* char*: configuration/capabilities */
    bool x_ignore_shared, has_uuid;
    bool rp_open;
    unsigned commands, pings;
    bool postcopy_advise;
    /* "ram": the previous page record's block (CONTINUE), across sections */
    RamBlockStat *last_ram_block;
    /* "dirty-bitmap": the names in force, across sections */
    char *bm_node, *bm_name;
    uint64_t device_bytes;        /* sum of kept bodies */
    uint64_t eof_offset;
    bool have_eof;
    uint64_t vmdesc_offset;
    uint32_t vmdesc_len;
    json_object *vmdesc;          /* NULL: none after EOF */
    /* A file's VMDESCRIPTION, read from its end before the walk: device
     * bodies of the length it gives are read exactly (else found by their
     * footer). NULL for a pipe. */
    json_object *pre_vmdesc;
    uint64_t total;               /* bytes read */
    Error *err;                   /* the first problem, "offset N (0xN): ..." */
    bool io_error;                /* it is a read error, not the stream's fault */
} Walk;

void walk_init(Walk *w, MigStream *f);
void walk_free(Walk *w);
/* Record the first problem, at byte offset off. Always returns false. */
bool walk_fail(Walk *w, uint64_t off, const char *fmt, ...) MIGVM_PRINTF(3, 4);
/* After reads of `what` that started at off: false (and the problem
 * recorded) when the stream ended or failed. */
bool walk_read_ok(Walk *w, uint64_t off, const char *what);
uint64_t walk_offset(const Walk *w);

/* stream-walk.c: the whole stream. */
bool walk_stream(Walk *w);
bool walk_printable(const char *s, size_t len);

/* stream-body.c */
/* The VMDESCRIPTION that ends buf (the last bytes of a stream), or NULL. */
json_object *walk_find_trailer(const uint8_t *buf, size_t len);
/* The body (and footer) of a section this tool cannot decode; full: a FULL
 * section, which a file's VMDESCRIPTION may describe. */
bool walk_device_body(Walk *w, Section *s, bool full);

/* stream-ram.c: one START/PART/END body of a live section this tool knows
 * (ram, block, dirty-bitmap). */
bool walk_is_known_live(const char *name);
bool walk_live_version_ok(Walk *w, Section *s, uint64_t version_off);
bool walk_live_body(Walk *w, Section *s, uint8_t type);
/* At EOF: what a live section must have done by then. */
bool walk_live_finished(Walk *w, Section *s);
/* stream-block.c */
bool block_body(Walk *w, Section *s);
bool dirty_bitmap_body(Walk *w, Section *s);

/* stream-vmdesc.c: every kept device body against the VMDESCRIPTION. */
bool vmdesc_check(Walk *w);
/* A device body's length according to a VMDESCRIPTION (for the error
 * message of a body whose footer was not found); -1 if not described. */
int64_t vmdesc_body_length(json_object *vmdesc, const char *name, uint32_t instance);
/* The semantic checks of the few sections whose contents this tool knows. */
bool device_body_check(Walk *w, Section *s);

/* stream-report.c */
void report_text(const Walk *w, const char *path, FILE *out);
void report_json(const Walk *w, FILE *out);

#endif
