/*
 * libFuzzer target for the QMP JSON streamer: `make fuzz-json`, then
 * build/fuzz/fuzz-json-streamer [corpus-dir].
 *
 * The input is fed in pieces whose sizes come from its first byte, under
 * small limits so the over-limit paths run too. Every value is re-serialised
 * and parsed again: the writer's output must parse (unless a number
 * overflowed to inf), and a second round trip must reproduce the first.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include <json-c/json_object_iterator.h>

#include "json-streamer.h"
#include "json-writer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A number that overflowed to inf is written "inf", as QEMU does: not JSON. */
static bool has_non_finite(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_double:
        return !isfinite(json_object_get_double(v));
    case json_type_array:
        for (size_t i = 0; i < json_object_array_length(v); i++) {
            if (has_non_finite(json_object_array_get_idx(v, i))) {
                return true;
            }
        }
        return false;
    case json_type_object: {
        struct json_object_iterator it = json_object_iter_begin(v);
        struct json_object_iterator end = json_object_iter_end(v);
        for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
            if (has_non_finite(json_object_iter_peek_value(&it))) {
                return true;
            }
        }
        return false;
    }
    default:
        return false;
    }
}

/* Writer output parsed and written again (NULL for a top-level null). */
static char *round_trip(const char *text)
{
    Error *err = NULL;
    json_object *v = json_parse_qmp(text, &err);
    char *out;

    if (err) {
        if (strcmp(text, "null")) {
            fprintf(stderr, "writer output does not parse: %s: %s\n", text, error_get_pretty(err));
            abort();
        }
        error_free(err);
        return NULL;
    }
    out = json_to_string(v);
    json_object_put(v);
    return out;
}

static void check_value(void *opaque, json_object *value, Error *err)
{
    (void)opaque;
    if (err) {
        if (strncmp(error_get_pretty(err), "JSON ", 5)) {
            abort();                    /* every streamer error is a JSON error */
        }
        error_free(err);
        return;
    }
    /* One round trip may change text (-0.0 is written "-0", read back as
     * the integer 0, as in QEMU); a second one must not. */
    if (has_non_finite(value)) {
        json_object_put(value);
        return;
    }
    char *text = json_to_string(value);
    char *text2 = round_trip(text);
    char *text3 = text2 ? round_trip(text2) : NULL;
    if (text2 && (!text3 || strcmp(text2, text3))) {
        fprintf(stderr, "unstable round trip: %s -> %s -> %s\n", text, text2, text3);
        abort();
    }
    g_free(text3);
    g_free(text2);
    g_free(text);
    json_object_put(value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    JsonStreamerLimits limits = { .max_bytes = 4096, .max_tokens = 512, .max_depth = 64 };
    size_t chunk;
    JsonStreamer *js;

    if (!size) {
        return 0;
    }
    chunk = data[0] % 17 + 1;
    data++;
    size--;
    js = json_streamer_new(&limits, check_value, NULL);
    for (size_t off = 0; off < size; off += chunk) {
        json_streamer_feed(js, (const char *)data + off, MIN(chunk, size - off));
    }
    json_streamer_free(js);

    /* the one-value entry point on the same bytes (up to a NUL) */
    char *text = g_strndup((const char *)data, size);
    Error *err = NULL;
    json_object_put(json_parse_qmp(text, &err));
    error_free(err);
    g_free(text);
    return 0;
}
