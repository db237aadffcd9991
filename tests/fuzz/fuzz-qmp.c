/*
 * libFuzzer target: arbitrary bytes as a QMP session's input. The real
 * session code (monitor/qmp.c: greeting, JSON streamer, negotiation), the
 * real dispatcher (qapi/dispatch.c: envelope, ids, oob) and the generated
 * marshallers, which check every argument against the schema, on a monitor
 * whose output goes to a buffer. Handlers outside monitor/ are the weak
 * stand-ins the QMP unit tests use (they fail with an error), so no input can
 * start a migration or write a file; the control commands are real.
 *
 * The input is fed in pieces whose size comes from its first byte, so values
 * split anywhere. Every response must be one line of JSON ending in "\r\n".
 *   make fuzz-qmp && build/fuzz/fuzz-qmp -dict=tests/fuzz/fuzz-qmp.dict tests/fuzz/corpus/fuzz-qmp
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "monitor-int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void sink(void *opaque, const char *buf, size_t len)
{
    g_string_append_len(opaque, buf, len);
}

/* Each message is a single line ending in CRLF (pretty is off). */
static void check_output(const GString *out)
{
    const char *p = out->str, *end = out->str + out->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', end - p);
        if (!nl || nl == p || nl[-1] != '\r' || p[0] != '{') {
            abort();
        }
        p = nl + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size) {
        return 0;
    }
    size_t chunk = data[0] % 64 + 1;
    data++;
    size--;
    GString *out = g_string_new(NULL);
    Monitor *mon = monitor_new(true, sink, out);

    qmp_server_ops.opened(mon);
    for (size_t off = 0; off < size && !mon->closing; off += chunk) {
        qmp_server_ops.input(mon, (const char *)data + off, MIN(chunk, size - off));
    }
    qmp_server_ops.closed(mon);
    monitor_free(mon);
    check_output(out);
    g_string_free(out, TRUE);
    return 0;
}
