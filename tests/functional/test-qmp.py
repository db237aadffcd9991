#!/usr/bin/python3
"""QMP end to end: greeting, negotiation, every foundation command's reply
shape, id echo, run states and their events, several clients, TCP, quit and
SIGTERM (qmp-protocol.md sections 1-4 and 7)."""

import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
from migvm import VM, QMPClient, check, check_eq, error_of, run, wait_until  # noqa: E402

NEGOTIATION_TEXT = "Expecting capabilities negotiation with 'qmp_capabilities'"
FOUNDATION_COMMANDS = ["qmp_capabilities", "query-version", "query-commands", "query-qmp-schema",
                       "query-status", "query-name", "query-kvm", "stop", "cont", "system_reset",
                       "quit", "human-monitor-command"]


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def check_version_shape(name, v):
    ok = (isinstance(v, dict) and set(v) == {"qemu", "package"} and isinstance(v["package"], str)
          and isinstance(v["qemu"], dict) and set(v["qemu"]) == {"major", "minor", "micro"}
          and all(is_int(v["qemu"][k]) for k in ("major", "minor", "micro")))
    check(name, ok, "version %r" % (v,))
    return ok


def event_then_response(c, command, cid, event):
    """Send command with id cid; event must arrive before the response.
    Returns (the event message or None, the response)."""
    c.send_raw('{"execute":"%s","id":"%s"}' % (command, cid))
    first = c.recv()
    check("%s: %s event arrives before the response" % (command, event), first.get("event") == event, repr(first))
    if first.get("event") != event:
        return None, first
    return first, c.recv_response()


def check_timestamp(name, ev):
    ts = ev.get("timestamp") if isinstance(ev, dict) else None
    ok = (isinstance(ts, dict) and set(ts) == {"seconds", "microseconds"} and is_int(ts["seconds"])
          and is_int(ts["microseconds"]) and 0 <= ts["microseconds"] < 1000000
          and abs(ts["seconds"] + ts["microseconds"] / 1e6 - time.time()) < 60)
    check(name, ok, "event %r" % (ev,))


# ---------------------------------------------------------------------------

def test_greeting_and_negotiation():
    vm = VM(["-S"]).launch()
    c = vm.qmp(negotiate=False)
    g = c.greeting
    raw = c.last_raw
    check("greeting ends with \\r\\n", raw.endswith(b"\r\n"), repr(raw))
    check("greeting is one line of ASCII", raw.count(b"\n") == 1 and all(b < 0x80 for b in raw), repr(raw))
    check("greeting has only the QMP member", isinstance(g, dict) and set(g) == {"QMP"}, repr(g))
    q = g.get("QMP", {})
    check("greeting QMP has version and capabilities", set(q) == {"version", "capabilities"}, repr(q))
    check_version_shape("greeting version shape (qemu.major/minor/micro, package)", q.get("version"))
    caps = q.get("capabilities")
    check("greeting capabilities is a list of known capabilities",
          isinstance(caps, list) and all(x in ("oob",) for x in caps), repr(caps))
    major = q.get("version", {}).get("qemu", {}).get("major", 0)
    check("greeting reports a QEMU-like version (major >= 7)", is_int(major) and major >= 7, repr(q))

    # Negotiation mode: everything but qmp_capabilities is refused with a fixed text.
    for name in ("query-status", "query-version", "stop", "quit", "nosuch-command"):
        r = c.cmd(name)
        check_eq("negotiation mode refuses %s" % name, error_of(r), ("CommandNotFound", NEGOTIATION_TEXT))
    r = c.cmd("query-status", id="neg-1")
    check_eq("negotiation-mode error echoes id", r.get("id"), "neg-1")
    check("process still running after refused quit in negotiation mode", vm.alive())

    r = c.cmd("qmp_capabilities", enable=["bogus"])
    e = error_of(r)
    check("qmp_capabilities enable=[bogus] is a GenericError naming the value",
          e is not None and e[0] == "GenericError" and "bogus" in (e[1] or ""), repr(r))
    r = c.cmd("qmp_capabilities", enable="oob")
    check_eq("qmp_capabilities enable not an array", error_of(r),
             ("GenericError", "Invalid parameter type for 'enable', expected: array"))
    r = c.cmd("qmp_capabilities", bogus=1)
    check_eq("qmp_capabilities unknown argument", error_of(r), ("GenericError", "Parameter 'bogus' is unexpected"))
    if "oob" not in (caps or []):
        r = c.cmd("qmp_capabilities", enable=["oob"])
        check_eq("qmp_capabilities enable=[oob] when oob not offered", error_of(r),
                 ("GenericError", "Capability oob not available"))

    r = c.cmd("qmp_capabilities", id="caps")
    check_eq("qmp_capabilities returns {} with id", r, {"return": {}, "id": "caps"})
    check("response ends with \\r\\n", c.last_raw.endswith(b"\r\n"), repr(c.last_raw))
    r = c.cmd("qmp_capabilities")
    check_eq("qmp_capabilities twice", error_of(r),
             ("CommandNotFound", "Capabilities negotiation is already complete, command ignored"))
    r = c.cmd("query-status")
    check("command mode after negotiation", "return" in r, repr(r))
    r = c.cmd("no-such-command")
    check_eq("unknown command in command mode", error_of(r),
             ("CommandNotFound", "The command no-such-command has not been found"))

    # A second connection starts in negotiation mode again.
    if not migvm.qemu_mode():
        c2 = vm.qmp(negotiate=False)
        r = c2.cmd("query-status")
        check_eq("new connection starts in negotiation mode", error_of(r), ("CommandNotFound", NEGOTIATION_TEXT))
        c2.close()
    # Reconnect after close: negotiation again.
    c.close()
    c3 = vm.qmp(negotiate=False)
    r = c3.cmd("query-status")
    check_eq("reconnected client is in negotiation mode", error_of(r), ("CommandNotFound", NEGOTIATION_TEXT))


def test_command_shapes():
    vm = VM(["-S"]).launch()
    c = vm.qmp()
    v = c.cmd_ok("query-version")
    check_version_shape("query-version shape", v)
    check_eq("query-version equals the greeting's version", v, c.greeting["QMP"]["version"])

    cmds = c.cmd_ok("query-commands")
    ok = isinstance(cmds, list) and all(isinstance(x, dict) and set(x) == {"name"} and isinstance(x["name"], str)
                                        for x in cmds)
    check("query-commands is a list of {name}", ok, repr(cmds)[:300])
    names = [x.get("name") for x in cmds] if ok else []
    missing = [n for n in FOUNDATION_COMMANDS if n not in names]
    check("query-commands lists every foundation command", not missing, "missing %r" % missing)
    check("query-commands has no duplicates", len(names) == len(set(names)), repr(names))

    schema = c.cmd_ok("query-qmp-schema")
    check("query-qmp-schema returns a list of entries with name and meta-type",
          isinstance(schema, list) and len(schema) > 0
          and all(isinstance(e, dict) and "name" in e and "meta-type" in e for e in schema), repr(schema)[:300])
    by = {e.get("name"): e for e in schema if isinstance(e, dict)}
    qs = by.get("query-status", {})
    check("schema: query-status is a command", qs.get("meta-type") == "command", repr(qs))
    arg, ret = qs.get("arg-type"), qs.get("ret-type")
    check("schema: query-status arg/ret types are masked (numeric names)",
          isinstance(arg, str) and arg.isdigit() and isinstance(ret, str) and ret.isdigit(), repr(qs))
    check("schema: query-status arg-type is an empty object",
          by.get(arg, {}).get("meta-type") == "object" and by.get(arg, {}).get("members") == [], repr(by.get(arg)))
    members = {m.get("name"): m.get("type") for m in by.get(ret, {}).get("members", [])}
    check("schema: StatusInfo has running: bool and status", members.get("running") == "bool"
          and "status" in members, repr(by.get(ret)))
    status_enum = by.get(members.get("status"), {})
    check("schema: RunState enum lists prelaunch, running, paused, inmigrate",
          status_enum.get("meta-type") == "enum"
          and {"prelaunch", "running", "paused", "inmigrate"} <= set(status_enum.get("values", [])),
          repr(status_enum)[:300])
    for cmd in FOUNDATION_COMMANDS:
        check("schema has command %s" % cmd, by.get(cmd, {}).get("meta-type") == "command", repr(by.get(cmd)))
    for ev in ("STOP", "RESUME", "SHUTDOWN", "RESET"):
        check("schema has event %s" % ev, by.get(ev, {}).get("meta-type") == "event", repr(by.get(ev)))
    hmc = by.get("human-monitor-command", {})
    check("schema: human-monitor-command returns str", hmc.get("ret-type") == "str", repr(hmc))
    check("schema: builtin str is a string", by.get("str", {}).get("json-type") == "string", repr(by.get("str")))

    st = c.cmd_ok("query-status")
    check("query-status shape {running: bool, singlestep: bool, status: str}",
          isinstance(st, dict) and isinstance(st.get("running"), bool) and isinstance(st.get("status"), str)
          and set(st) <= {"running", "singlestep", "status"} and {"running", "status"} <= set(st), repr(st))
    check_eq("query-name without -name", c.cmd_ok("query-name"), {})
    kvm = c.cmd_ok("query-kvm")
    check("query-kvm shape {enabled: bool, present: bool}",
          isinstance(kvm, dict) and set(kvm) == {"enabled", "present"}
          and all(isinstance(kvm[k], bool) for k in kvm), repr(kvm))
    check_eq("query-kvm enabled is false with -accel soft", kvm.get("enabled"), False)
    check_eq("query-kvm present reflects a usable /dev/kvm", kvm.get("present"),
             os.access("/dev/kvm", os.R_OK | os.W_OK))
    for cmd in ("stop", "cont", "system_reset"):
        check_eq("%s returns {}" % cmd, c.cmd(cmd), {"return": {}})
    for cmd in ("query-status", "query-version", "query-name", "query-kvm", "stop"):
        r = c.cmd(cmd, bogus=1)
        check_eq("%s with an unknown argument" % cmd, error_of(r), ("GenericError", "Parameter 'bogus' is unexpected"))


def test_id_echo():
    vm = VM(["-S"]).launch()
    c = vm.qmp()
    cases = [("string", '"abc"', "abc"), ("int", "42", 42), ("negative int", "-7", -7),
             ("float 1.5e3 re-serialised as 1500", "1.5e3", 1500), ("float 0.25", "0.25", 0.25),
             ("null", "null", None), ("true", "true", True), ("object", '{"a": [1, {"b": null}]}', {"a": [1, {"b": None}]}),
             ("array", '[1, "two", [3]]', [1, "two", [3]]), ("big int 2^64-1", "18446744073709551615", 2 ** 64 - 1),
             ("int64 min", "-9223372036854775808", -2 ** 63), ("empty string", '""', ""),
             ("-0 becomes 0", "-0", 0)]
    for label, text, expected in cases:
        c.send_raw('{"execute": "query-status", "id": %s}' % text)
        r = c.recv_response()
        check("id echo: %s" % label, "id" in r and r["id"] == expected and type(r["id"]) is type(expected),
              "sent %s, got %r (raw %r)" % (text, r.get("id", "<no id>"), c.last_raw))
    c.send_raw('{"execute": "query-status", "id": 1.5e3}')
    c.recv_response()
    check("id 1.5e3 written as the integer 1500", b'"id": 1500}' in c.last_raw or b'"id":1500' in c.last_raw
          or b'"id": 1500,' in c.last_raw, repr(c.last_raw))
    c.send_raw('{"execute": "query-status", "id": "\\u00e9\\ud83d\\ude00"}')
    r = c.recv_response()
    check("non-ASCII id written as upper-case \\u escapes (surrogate pair)",
          b'"\\u00E9\\uD83D\\uDE00"' in c.last_raw and r.get("id") == "\u00e9\U0001F600", repr(c.last_raw))
    c.send_raw(b'{"execute": "query-status", "id": "\xc3\xa9"}')
    c.recv_response()
    check("raw UTF-8 in id comes back ASCII-only", all(b < 0x80 for b in c.last_raw) and b"\\u00E9" in c.last_raw,
          repr(c.last_raw))
    c.send_raw("{'execute': 'query-status', 'id': 'it\\'s'}")
    r = c.recv_response()
    check_eq("single-quoted strings and \\' accepted", r.get("id"), "it's")
    r = c.cmd("nosuch", id=[1, 2])
    check_eq("error response echoes the id", r.get("id"), [1, 2])
    r = c.cmd("query-status")
    check("no id member when the request has none", "id" not in r, repr(r))


def test_framing():
    vm = VM(["-S"]).launch()
    c = vm.qmp()
    c.send_raw('{"execute":')
    try:
        early = c.recv(0.3)
    except TimeoutError:
        early = None
    check("no reply to half a message", early is None, repr(early))
    c.send_raw('"query-status", "id": "split"}')
    r = c.recv_response()
    check_eq("message split over two writes", r.get("id"), "split")
    msg = b'{"execute":"query-name","id":"bytewise"}'
    for i in range(len(msg)):
        c.send_raw(msg[i:i + 1])
    check_eq("message sent one byte at a time", c.recv_response().get("id"), "bytewise")
    c.send_raw(' \t\r\n{"execute":"query-status","id":1}\n\n{"execute":"query-name","id":2}  \t'
               '{"execute":"query-kvm","id":3}\r\n')
    ids = [c.recv_response().get("id") for _ in range(3)]
    check_eq("three messages in one write, with whitespace, answered in order", ids, [1, 2, 3])
    c.send_raw('{"execute":"query-status","id":10} garbage {"execute":"query-status","id":11}')
    rs = [c.recv_response() for _ in range(3)]
    check_eq("garbage between messages: return, parse error, return",
             [rs[0].get("id"), error_of(rs[1]), rs[2].get("id")],
             [10, ("GenericError", "JSON parse error, invalid keyword 'garbage'"), 11])
    check("parse error has no id", "id" not in rs[1], repr(rs[1]))


def test_run_states():
    vm = VM(["-S"]).launch()
    c = vm.qmp()
    st = c.cmd_ok("query-status")
    check_eq("-S starts in prelaunch", (st.get("status"), st.get("running")), ("prelaunch", False))
    check_eq("human-monitor-command info status in prelaunch", c.hmp("info status"), "VM status: paused (prelaunch)\r\n")
    c.cmd_ok("system_reset")
    check_eq("system_reset in prelaunch stays in prelaunch", c.cmd_ok("query-status").get("status"), "prelaunch")
    c.clear_events()

    # cont then stop: the event before the response, then the new state.
    for command, cid, event, status, running in (("cont", "c1", "RESUME", "running", True),
                                                 ("stop", "s1", "STOP", "paused", False)):
        ev, r = event_then_response(c, command, cid, event)
        if ev:
            check("%s has no data member" % event, "data" not in ev, repr(ev))
            check_timestamp("%s timestamp shape and value" % event, ev)
        check_eq("%s response" % command, r, {"return": {}, "id": cid})
        st = c.cmd_ok("query-status")
        check_eq("%s after %s" % (status, command), (st.get("status"), st.get("running")), (status, running))
        check_eq("info status %s" % status, c.hmp("info status"), "VM status: %s\r\n" % status)

    c.clear_events()
    check_eq("stop when stopped returns {}", c.cmd("stop"), {"return": {}})
    c.cmd_ok("query-status")
    check("stop when stopped emits no STOP event", not c.events, repr(c.events))

    ev, r = event_then_response(c, "system_reset", "r1", "RESET")
    if ev:
        check_eq("RESET data", ev.get("data"), {"guest": False, "reason": "host-qmp-system-reset"})
        check_timestamp("RESET timestamp", ev)
    check_eq("system_reset response", r, {"return": {}, "id": "r1"})
    st = c.cmd_ok("query-status")
    # QEMU 7.2's main loop puts a reset VM that is not running (nor migrating) in prelaunch.
    check_eq("system_reset of a paused VM ends in prelaunch (as QEMU 7.2)", st.get("status"), "prelaunch")

    c.clear_events()
    c.cmd_ok("cont")
    check("cont from paused emits RESUME", c.get_event("RESUME") is not None, repr(c.events))
    c.clear_events()
    c.cmd_ok("cont")
    c.cmd_ok("query-status")
    check("cont when running emits no RESUME", c.get_event("RESUME") is None, repr(c.events))
    c.cmd_ok("system_reset")
    st = c.cmd_ok("query-status")
    check_eq("system_reset keeps a running VM running", st.get("status"), "running")

    r = c.cmd("human-monitor-command", {"command-line": "nosuch"})
    check_eq("human-monitor-command unknown command is inside the string", r.get("return"),
             "unknown command: 'nosuch'\r\n")
    r = c.cmd("human-monitor-command", {"command-line": "info nosuch"})
    check_eq("human-monitor-command unknown info command", r.get("return"), "unknown command: 'info nosuch'\r\n")
    r = c.cmd("human-monitor-command")
    check_eq("human-monitor-command without command-line", error_of(r),
             ("GenericError", "Parameter 'command-line' is missing"))
    r = c.cmd("human-monitor-command", {"command-line": 5})
    check_eq("human-monitor-command command-line not a string", error_of(r),
             ("GenericError", "Invalid parameter type for 'command-line', expected: string"))
    r = c.cmd("human-monitor-command", {"command-line": "info status", "cpu-index": 99})
    check_eq("human-monitor-command bad cpu-index", error_of(r),
             ("GenericError", "Parameter 'cpu-index' expects a CPU number"))
    r = c.cmd("human-monitor-command", {"command-line": "stop"})
    check_eq("human-monitor-command stop returns empty text", r.get("return"), "")
    check("human-monitor-command stop emits STOP to QMP", c.wait_event("STOP", 5) is not None, repr(c.events))
    check_eq("status after HMP stop", c.cmd_ok("query-status").get("status"), "paused")


def test_autostart_running():
    vm = VM([]).launch()
    c = vm.qmp()
    st = c.cmd_ok("query-status")
    check_eq("without -S the VM is running", (st.get("status"), st.get("running")), ("running", True))
    vm2 = VM(["-name", "guest-one"]).launch()
    check_eq("query-name with -name", vm2.qmp().cmd_ok("query-name"), {"name": "guest-one"})


def test_quit():
    vm = VM([]).launch()
    c = vm.qmp()
    c.send_raw('{"execute":"quit","id":"q"}')
    first = c.recv()
    check("quit: SHUTDOWN event before the response", first.get("event") == "SHUTDOWN", repr(first))
    if first.get("event") == "SHUTDOWN":
        check_eq("SHUTDOWN data for quit", first.get("data"), {"guest": False, "reason": "host-qmp-quit"})
        check_timestamp("SHUTDOWN timestamp", first)
        try:
            r = c.recv_response()
        except EOFError:
            r = "<EOF>"
    else:
        r = first
    check_eq("quit response", r, {"return": {}, "id": "q"})
    check("connection closes after quit", c.wait_eof(10))
    rc = vm.wait_exit(10)
    check_eq("process exits with status 0 after quit", rc, 0)
    check("QMP socket file removed after quit", not os.path.exists(vm.qmp_path), vm.qmp_path)


def test_signals():
    for sig, name in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")):
        vm = VM([], hmp=True).launch()
        c = vm.qmp()
        vm.signal(sig)
        ev = c.wait_event("SHUTDOWN", 10)
        check("%s: SHUTDOWN event" % name, ev is not None, repr(c.events))
        if ev:
            check_eq("%s: SHUTDOWN data" % name, ev.get("data"), {"guest": False, "reason": "host-signal"})
        check("%s: connection closes" % name, c.wait_eof(10))
        rc = vm.wait_exit(10)
        check_eq("%s: process exits with status 0" % name, rc, 0)
        check("%s: QMP socket removed" % name, not os.path.exists(vm.qmp_path))
        check("%s: HMP socket removed" % name, not os.path.exists(vm.hmp_path))
        vm.kill()


def test_two_clients():
    if migvm.qemu_mode():
        migvm.skip("two clients on one socket", "QEMU serves one client per -qmp socket")
        return
    vm = VM([]).launch()
    a = vm.qmp()
    b = vm.qmp(negotiate=False)
    c = vm.qmp()
    r = b.cmd("query-status")
    check_eq("client B still negotiating while A and C are in command mode", error_of(r),
             ("CommandNotFound", NEGOTIATION_TEXT))
    a.cmd_ok("stop")
    check("STOP reaches client A", a.get_event("STOP") is not None, repr(a.events))
    check("STOP reaches negotiated client C", c.wait_event("STOP", 5) is not None, repr(c.events))
    # B has seen nothing: the first message after its negotiation request is the response.
    b.send_raw('{"execute":"qmp_capabilities","id":"b"}')
    first = b.recv()
    check_eq("no event reached client B during negotiation", first, {"return": {}, "id": "b"})
    b.cmd_ok("cont")
    check("RESUME reaches client B after negotiation (its own command)", b.get_event("RESUME") is not None)
    check("RESUME reaches client A", a.wait_event("RESUME", 5) is not None, repr(a.events))
    check("RESUME reaches client C", c.wait_event("RESUME", 5) is not None, repr(c.events))
    # A client closing does not disturb the others.
    a.close()
    c.cmd_ok("system_reset")
    check("RESET reaches client B after A left", b.wait_event("RESET", 5) is not None, repr(b.events))
    check_eq("client C still answers", c.cmd_ok("query-status").get("status"), "running")
    # Many clients at once.
    many = [vm.qmp() for _ in range(20)]
    c.cmd_ok("stop")
    got = sum(1 for m in many if m.wait_event("STOP", 5) is not None)
    check_eq("STOP reaches all 20 extra clients", got, 20)
    b.send_raw('{"execute":"quit"}')
    ev = c.wait_event("SHUTDOWN", 5)
    check("quit by B: SHUTDOWN reaches client C", ev is not None and ev.get("data", {}).get("reason") == "host-qmp-quit",
          repr(c.events))
    check("quit by B: client C's connection closes too", c.wait_eof(10))
    check_eq("quit by B: exit status 0", vm.wait_exit(10), 0)


def test_tcp():
    port = migvm.free_tcp_port()
    vm = VM(["-qmp", "tcp:127.0.0.1:%d,server=on,wait=off" % port], qmp=False).launch(wait_sockets=False)
    c = wait_until(lambda: _try_tcp(port), 10)
    check("TCP QMP monitor accepts a connection", c is not None, vm.stderr_text())
    if not c:
        return
    vm.clients.append(c)
    check("TCP greeting", isinstance(c.greeting, dict) and "QMP" in c.greeting, repr(c.greeting))
    c.negotiate()
    check_eq("TCP query-status", c.cmd_ok("query-status").get("status"), "running")
    c.cmd_ok("stop")
    check("TCP client gets STOP", c.get_event("STOP") is not None, repr(c.events))
    if not migvm.qemu_mode():
        d = _try_tcp(port)
        check("second TCP client connects", d is not None)
        if d:
            vm.clients.append(d)
            d.negotiate()
            check_eq("second TCP client sees paused", d.cmd_ok("query-status").get("status"), "paused")
    c.cmd("quit")
    check_eq("TCP quit exits 0", vm.wait_exit(10), 0)


def _try_tcp(port):
    try:
        return QMPClient.tcp("127.0.0.1", port, timeout=5)
    except (OSError, EOFError, TimeoutError):
        return None


def test_oob():
    vm = VM(["-S"]).launch()
    c = vm.qmp(negotiate=False)
    if not check("the greeting offers oob", "oob" in c.greeting.get("QMP", {}).get("capabilities", []),
                 c.greeting):
        return
    check_eq("qmp_capabilities enable=[oob]", c.cmd("qmp_capabilities", enable=["oob"]), {"return": {}})
    cases = [
        ("exec-oob of an in-band command", '{"exec-oob":"query-status","id":2}',
         {"id": 2, "error": {"class": "GenericError", "desc": "The command query-status does not support OOB"}}),
        ("exec-oob of an unknown command", '{"exec-oob":"nosuch","id":3}',
         {"id": 3, "error": {"class": "CommandNotFound", "desc": "The command nosuch has not been found"}}),
        ("exec-oob not a string", '{"exec-oob":1,"id":4}',
         {"id": 4, "error": {"class": "GenericError", "desc": "QMP input member 'exec-oob' must be a string"}}),
        ("exec-oob with arguments not an object", '{"exec-oob":"query-status","arguments":[],"id":5}',
         {"id": 5, "error": {"class": "GenericError", "desc": "QMP input member 'arguments' must be an object"}}),
        ("execute and exec-oob together", '{"execute":"stop","exec-oob":"stop"}',
         {"error": {"class": "GenericError", "desc": "QMP input member 'execute' clashes with 'exec-oob'"}}),
    ]
    for label, raw, expected in cases:
        c.send_raw(raw)
        check_eq("oob: %s" % label, c.recv_response(), expected)
    check_eq("oob: in-band commands still work", c.cmd_ok("query-status").get("status"), "prelaunch")


def test_pipelining_and_early_input():
    vm = VM(["-S"]).launch()
    # Input sent before the greeting was read: greeting first, then the answers.
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    migvm.unix_connect(s, vm.qmp_path)
    s.sendall(b'{"execute":"qmp_capabilities","id":"early"}{"execute":"query-name","id":"n"}')
    c = QMPClient(s)
    vm.clients.append(c)
    check("greeting comes first even when the client spoke first", "QMP" in c.greeting, repr(c.greeting))
    r1, r2 = c.recv_response(), c.recv_response()
    check_eq("early input answered in order", (r1, r2), ({"return": {}, "id": "early"}, {"return": {}, "id": "n"}))
    # 1000 requests in one write: 1000 answers, in order.
    c.send_raw("".join('{"execute":"query-status","id":%d}' % i for i in range(1000)))
    ids = [c.recv_response().get("id") for _ in range(1000)]
    check("1000 pipelined requests answered in order", ids == list(range(1000)),
          "first mismatch at %r" % next((i for i, x in enumerate(ids) if x != i), None))
    lines = c.raw_log
    check("every server message is one ASCII line ending \\r\\n",
          all(line.endswith(b"\r\n") and line.count(b"\n") == 1 and all(b < 0x80 for b in line) for line in lines),
          repr([x for x in lines if not x.endswith(b"\r\n")][:2]))


def test_stale_socket():
    d = migvm.new_tmpdir()
    path = os.path.join(d, "qmp.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()                        # a socket file left behind by a crashed process
    vm = VM(["-S"], tmpdir=d).launch()
    check_eq("starts over a stale socket file", vm.qmp().cmd_ok("query-status").get("status"), "prelaunch")


def main():
    migvm.require_binary()
    run("greeting and negotiation", test_greeting_and_negotiation)
    run("command shapes", test_command_shapes)
    run("id echo", test_id_echo)
    run("framing", test_framing)
    run("run states", test_run_states)
    run("autostart", test_autostart_running)
    run("quit", test_quit)
    run("signals", test_signals)
    run("two clients", test_two_clients)
    run("tcp", test_tcp)
    run("oob", test_oob)
    run("pipelining and early input", test_pipelining_and_early_input)
    run("stale socket", test_stale_socket)
    migvm.finish()


if __name__ == "__main__":
    main()
