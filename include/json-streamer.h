/*
 * Cut a byte stream into top-level JSON values, the way QEMU's QMP reads
 * (qmp-protocol.md section 6): messages split across or merged within reads,
 * single-quoted strings and \' accepted, duplicate keys, invalid UTF-8 and
 * limits rejected, recovery after a lexical error at a structural or control
 * character or 0xFE/0xFF. Memory stays bounded: a value over the size or depth
 * limit is dropped as it arrives, not buffered.
 */
#ifndef MIGVM_JSON_STREAMER_H
#define MIGVM_JSON_STREAMER_H

#include <stddef.h>
#include <json-c/json.h>
#include "error.h"

typedef struct JsonStreamer JsonStreamer;

/* Called once per complete top-level value: exactly one of `value` (owned by
 * the callee, free with json_object_put) or `err` (owned by the callee, its
 * message is "JSON parse error, <detail>" or a limit message) is non-NULL.
 * A JSON `null` at top level is passed as value == NULL with err == NULL. */
typedef void JsonEmitFn(void *opaque, json_object *value, Error *err);

typedef struct JsonStreamerLimits {
    size_t max_bytes;        /* token text per value; default 16 MiB */
    size_t max_tokens;       /* default 2M */
    unsigned max_depth;      /* default 1024 */
} JsonStreamerLimits;

/* limits may be NULL for the defaults. */
JsonStreamer *json_streamer_new(const JsonStreamerLimits *limits, JsonEmitFn *emit, void *opaque);
void json_streamer_feed(JsonStreamer *js, const char *buf, size_t len);
/* Drop any partial value (connection closed). */
void json_streamer_reset(JsonStreamer *js);
void json_streamer_free(JsonStreamer *js);

/* Parse exactly one JSON value from a string with the same rules (for tests,
 * command-line JSON). NULL + errp on error, or on a top-level null. */
json_object *json_parse_qmp(const char *text, Error **errp);

#endif
