/*
 * The QMP protocol on one session (qmp-protocol.md):
 *
 *   S: {"QMP": {"version": {...}, "capabilities": ["oob"]}}      on connect
 *   ---- capabilities-negotiation mode: only qmp_capabilities, no events
 *   C: {"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}
 *   S: {"return": {}}
 *   ---- command mode: every command, events flow
 *   C: {"execute": "query-status", "id": 1}
 *   S: {"event": ...}                    (events raised while it ran)
 *   S: {"return": {...}, "id": 1}
 *
 * Input bytes go through a JsonStreamer; each complete value is dispatched
 * at once, so requests are answered in order and a session never reads the
 * next request before the previous one is answered. Parse errors get an
 * error response without id. Every output message ends with "\r\n".
 */
#include "monitor-int.h"

#include "json-streamer.h"
#include "qmp-dispatch.h"

typedef struct QmpSession {
    Monitor *mon;
    JsonStreamer *js;
    QmpDispatchState state;
} QmpSession;

static void qmp_send(Monitor *mon, json_object *msg)
{
    GString *text = qmp_format_message(msg, mon->pretty);
    monitor_write(mon, text->str, text->len);
    g_string_free(text, TRUE);
}

static json_object *qmp_greeting(void)
{
    json_object *qemu = json_object_new_object();
    json_object_object_add(qemu, "micro", json_object_new_int(MIGVM_QEMU_MICRO));
    json_object_object_add(qemu, "minor", json_object_new_int(MIGVM_QEMU_MINOR));
    json_object_object_add(qemu, "major", json_object_new_int(MIGVM_QEMU_MAJOR));
    json_object *version = json_object_new_object();
    json_object_object_add(version, "qemu", qemu);
    json_object_object_add(version, "package", json_object_new_string(MIGVM_PACKAGE));
    json_object *caps = json_object_new_array();
    json_object_array_add(caps, json_object_new_string("oob"));
    json_object *body = json_object_new_object();
    json_object_object_add(body, "version", version);
    json_object_object_add(body, "capabilities", caps);
    json_object *greeting = json_object_new_object();
    json_object_object_add(greeting, "QMP", body);
    return greeting;
}

/* One complete top-level JSON value (or parse error) from the client. */
static void qmp_handle_value(void *opaque, json_object *value, Error *err)
{
    QmpSession *s = opaque;
    Monitor *mon = s->mon;
    json_object *rsp;

    if (mon->closing) {
        rsp = NULL;
    } else if (err) {
        rsp = qmp_error_response(err);
    } else {
        rsp = qmp_dispatch(value, &s->state, mon);
    }
    if (rsp) {
        qmp_send(mon, rsp);
        json_object_put(rsp);
    }
    /* Events only after the qmp_capabilities answer went out. */
    if (s->state.negotiated && !mon->events) {
        monitor_set_events(mon, true);
    }
    if (err) {
        error_free(err);
    }
    json_object_put(value);
}

static void qmp_opened(Monitor *mon)
{
    QmpSession *s = g_new0(QmpSession, 1);
    s->mon = mon;
    s->js = json_streamer_new(NULL, qmp_handle_value, s);
    mon->proto = s;
    json_object *greeting = qmp_greeting();
    qmp_send(mon, greeting);
    json_object_put(greeting);
}

static void qmp_input(Monitor *mon, const char *buf, size_t len)
{
    QmpSession *s = mon->proto;
    if (s) {
        json_streamer_feed(s->js, buf, len);
    }
}

static void qmp_closed(Monitor *mon)
{
    QmpSession *s = mon->proto;
    if (!s) {
        return;
    }
    mon->closing = true;
    monitor_set_events(mon, false);
    json_streamer_free(s->js);
    g_free(s);
    mon->proto = NULL;
}

const MonitorServerOps qmp_server_ops = {
    .opened = qmp_opened,
    .input = qmp_input,
    .closed = qmp_closed,
};

bool monitor_init_qmp(const ChardevSpec *spec, Error **errp)
{
    return monitor_server_start(spec, true, &qmp_server_ops, errp);
}
