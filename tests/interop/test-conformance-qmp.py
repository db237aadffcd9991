#!/usr/bin/env python3
"""QMP conformance: the same scripted conversations against QEMU 7.2 and
migvm (both -M none -m 4M), replies compared structurally: same keys, same
JSON types, same error class, same desc where QEMU's text is stable, same id
echo, same event names and data (timestamps dropped).  The summary line says
how many exchanges matched and lists each deliberate difference (DELIBERATE
below is the one place they are declared, with the reason)."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemulib  # noqa: E402
import conformance  # noqa: E402
from migvm import finish, free_tcp_port, new_tmpdir, wait_until  # noqa: E402

qemulib.require_qemu_and_migvm()

# Where migvm differs from QEMU 7.2 on purpose (exchange name or regex -> reason).
UNSUPPORTED_CAPS = ("migvm refuses capabilities it does not implement (migration/options.c cap_supported: "
                    "events, return-path, pause-before-switchover, block, zero-blocks, late-block-activate, "
                    "postcopy-ram, postcopy-blocktime, ...), "
                    "before QEMU's own dependency checks")
DELIBERATE = {
    r"capabilities: set (postcopy-preempt alone|postcopy-ram with x-ignore-shared"
    r"|x-colo|xbzrle|validate-uuid)": UNSUPPORTED_CAPS,
    r"parameters: set multifd-z(lib|std)-level=.*": "QEMU 7.2 answers {} to an out-of-range multifd level and "
                                                   "silently keeps the old value; migvm reports the documented range",
    "parameters: an empty block-bitmap-mapping reads back": "migvm's generated types mark an absent list with NULL, "
                                                            "so an empty mapping reads back as absent",
    "greeting: package": "migvm puts its own identity in version.package (qmp-protocol.md 2.1)",
    "query-version: package": "migvm puts its own identity in version.package (qmp-protocol.md 2.1)",
    "migrate completed: MIGRATION_PASS events": "migvm's convergence controller syncs before it completes on a "
                                                "pass that left nothing in the bitmap; QEMU 7.2 trusts that estimate "
                                                "while its bandwidth is unmeasured (docs/architecture.md)",
    r"cont: from postmigrate( / events)?": "no split brain: migvm refuses cont on a source whose migration completed "
                                           "(QEMU 7.2 resumes it); docs/architecture.md",
}


def ex(side, q, name, msg, args=None, mode="exact", events=False, **kw):
    """Send msg (a command name, a dict, or raw str/bytes), record the reply.
    mode applies to a success reply; an error reply is always compared exactly.
    events=True records the events that arrived with it as `name / events`."""
    q.clear_events()
    if isinstance(msg, (str, bytes)) and (isinstance(msg, bytes) or msg.lstrip()[:1] in ("{", "[", "'", '"') or
                                          not msg.replace("-", "").replace("_", "").isalnum()):
        q.send_raw(msg)
        reply = q.recv_response()
    elif isinstance(msg, dict):
        q.send_raw(json.dumps(msg))
        reply = q.recv_response()
    else:
        reply = q.cmd(msg, args, **kw)
    if "error" in reply:
        mode = "exact"
    side.record(name, reply, mode)
    if events:
        before, _ = q.sync("sync")
        side.record(name + " / events", [e for e in q.events])
    return reply


def wait_status(q, statuses, timeout=30):
    box = {}

    def ok():
        box["s"] = q.cmd_ok("query-migrate").get("status")
        return box["s"] in statuses
    wait_until(ok, timeout, interval=0.02)
    return box.get("s")


def migration_events(q, final, timeout=30):
    """MIGRATION/STOP/RESUME events until MIGRATION `final` (pass events kept apart)."""
    seq, passes = [], []
    pending = list(q.events)
    q.clear_events()
    deadline = time.monotonic() + timeout
    while True:
        if pending:
            msg = pending.pop(0)
        else:
            try:
                msg = q.recv(max(0.001, deadline - time.monotonic()))
            except (TimeoutError, EOFError):
                break
        if "event" not in msg:
            continue
        if msg["event"] == "MIGRATION_PASS":
            passes.append(msg.get("data", {}).get("pass"))
            continue
        seq.append([msg["event"], msg.get("data")])
        if msg["event"] == "MIGRATION" and msg["data"]["status"] in final:
            break
    return seq, passes


# --------------------------------------------------------------------------
# Conversations

def conv_greeting(side):
    vm = side.start(["-S"])
    c = qemulib.migvm.QMPClient.unix(vm.qmp_path)
    g = c.greeting
    side.record("greeting: shape", g, mode="shape")
    side.record("greeting: capabilities", g["QMP"]["capabilities"])
    side.record("greeting: version major.minor", [g["QMP"]["version"]["qemu"]["major"],
                                                   g["QMP"]["version"]["qemu"]["minor"]])
    side.record("greeting: package", g["QMP"]["version"]["package"])
    side.record("greeting: framing (CRLF, ASCII)", [c.last_raw.endswith(b"}\r\n"), c.last_raw.isascii()])
    ex(side, c, "negotiation: command before qmp_capabilities", "query-status")
    ex(side, c, "negotiation: command with id before qmp_capabilities", {"execute": "stop", "id": 7})
    ex(side, c, "negotiation: bad capability name", "qmp_capabilities", {"enable": ["bogus"]})
    ex(side, c, "negotiation: qmp_capabilities enable oob", "qmp_capabilities", {"enable": ["oob"]})
    ex(side, c, "negotiation: qmp_capabilities again", "qmp_capabilities")
    ex(side, c, "query-version", "query-version", mode="shape")
    r = c.cmd("query-version")
    side.record("query-version: package", r["return"]["package"])
    side.record("query-version: version triple equals greeting", r["return"]["qemu"] == g["QMP"]["version"]["qemu"])
    ex(side, c, "oob: exec-oob of an in-band command", {"exec-oob": "query-status", "id": 1})
    ex(side, c, "oob: migrate-recover out of band", {"exec-oob": "migrate-recover", "arguments": {"uri": "tcp:1:1"},
                                                     "id": 8})
    c.close()       # QEMU's -qmp socket serves one client at a time: reconnect
    c2 = qemulib.migvm.QMPClient.unix(vm.qmp_path)
    vm.clients.append(c2)
    ex(side, c2, "negotiation: a new connection starts in negotiation mode", "query-status")
    ex(side, c2, "negotiation: qmp_capabilities without oob", "qmp_capabilities")
    ex(side, c2, "oob: exec-oob when oob was not enabled", {"exec-oob": "migrate-recover", "id": "x",
                                                            "arguments": {"uri": "tcp:1:1"}})


def conv_errors(side):
    vm = side.start(["-S"])
    q = vm.qmp()
    ex(side, q, "error: input not an object (array)", "[1, 2]")
    ex(side, q, "error: input not an object (string)", '"x"')
    ex(side, q, "error: input not an object (number)", "42")
    ex(side, q, "error: unknown key", {"execute": "query-status", "bogus": 1})
    ex(side, q, "error: exec-oob without oob", {"exec-oob": "query-status"})
    ex(side, q, "error: execute not a string", {"execute": 1})
    ex(side, q, "error: execute and exec-oob", {"execute": "stop", "exec-oob": "stop"})
    ex(side, q, "error: arguments not an object", {"execute": "stop", "arguments": [1]})
    ex(side, q, "error: no execute", {"arguments": {}})
    ex(side, q, "error: unknown command (CommandNotFound)", "nosuch-command")
    ex(side, q, "error: unknown argument", "query-status", {"x": 1})
    ex(side, q, "error: missing argument", "migrate")
    ex(side, q, "error: wrong type (string)", "migrate", {"uri": 1})
    ex(side, q, "error: wrong type (boolean)", "migrate", {"uri": "exec:true", "detach": "yes"})
    ex(side, q, "error: wrong type (array)", "migrate-set-capabilities", {"capabilities": {}})
    ex(side, q, "error: wrong type (object)", "migrate-set-capabilities", {"capabilities": [1]})
    ex(side, q, "error: uint8 out of range", "migrate-set-parameters", {"multifd-channels": 256})
    ex(side, q, "error: uint8 negative", "migrate-set-parameters", {"compress-level": -1})
    ex(side, q, "error: uint64 not an integer", "migrate-set-parameters", {"max-bandwidth": 1.5})
    ex(side, q, "error: bad enum value", "migrate-set-capabilities",
       {"capabilities": [{"capability": "bogus", "state": True}]})
    ex(side, q, "error: nested path", "migrate-set-capabilities", {"capabilities": [{"capability": "xbzrle"}]})
    ex(side, q, "error: JSON parse error (bad keyword)", "garbage ")
    ex(side, q, "error: JSON parse error (missing colon)", '{"execute" "stop"}')
    ex(side, q, "error: JSON parse error (control character)", b"\x01")
    ex(side, q, "error: duplicate key", '{"execute": "stop", "execute": "cont"}')
    ex(side, q, "error: single-quoted strings accepted", "{'execute': 'query-status', 'id': 'sq'}")
    ex(side, q, "error: closefd unknown", "closefd", {"fdname": "nosuch"})
    ex(side, q, "error: getfd without descriptor", "getfd", {"fdname": "x"})
    ex(side, q, "error: human-monitor-command bad cpu-index", "human-monitor-command",
       {"command-line": "info status", "cpu-index": 5})
    ex(side, q, "error: human-monitor-command unknown command", "human-monitor-command",
       {"command-line": "nosuchcmd"})
    ex(side, q, "dirty limit without the ring: set refused", "set-vcpu-dirty-limit", {"dirty-rate": 10})
    ex(side, q, "dirty limit without the ring: cancel quietly", "cancel-vcpu-dirty-limit", {"cpu-index": 3})
    ex(side, q, "dirty limit without the ring: query empty", "query-vcpu-dirty-limit")
    ex(side, q, "dirty limit: dirty-rate missing", "set-vcpu-dirty-limit", {"cpu-index": 0})
    # (calc-dirty-rate mode dirty-ring is not compared: QEMU 7.2 with TCG dies on it, a NULL kvm_state.)
    ex(side, q, "error: still serving after errors", "query-status")


def conv_ids(side):
    vm = side.start(["-S"])
    q = vm.qmp()
    for label, raw in [("int", '{"execute": "query-status", "id": 1}'),
                       ("string", '{"execute": "query-status", "id": "abc"}'),
                       ("null", '{"execute": "query-status", "id": null}'),
                       ("object", '{"execute": "query-status", "id": {"a": [1, "b"]}}'),
                       ("float exponent", '{"execute": "query-status", "id": 1.5e3}'),
                       ("uint64 max", '{"execute": "query-status", "id": 18446744073709551615}'),
                       ("negative", '{"execute": "query-status", "id": -5}'),
                       ("non-ASCII", '{"execute": "query-status", "id": "\u00e9"}'),
                       ("on error", '{"execute": "nosuch", "id": "e1"}'),
                       ("on argument error", '{"execute": "migrate", "id": [2]}'),
                       ("on unknown key error", '{"execute": "stop", "id": 3, "bogus": 1}')]:
        ex(side, q, "id echo: %s" % label, raw)
    r = ex(side, q, "id echo: non-ASCII raw bytes", '{"execute": "query-status", "id": "\u00e9"}')
    side.record("id echo: output is ASCII with \\u escapes", q.last_raw.isascii())
    q.send_raw('{"execute":"query-status","id":10} garbage {"execute":"query-status","id":11}')
    got = [q.recv(), q.recv(), q.recv()]
    side.record("id echo: recovery after garbage between two commands", got)
    q.send_raw('{"execute":')
    q.send_raw(' "query-status", "id": "split"}')
    side.record("streamer: message split over two writes", q.recv())


def conv_runstate(side):
    vm = side.start(["-S"])
    q = vm.qmp()
    ex(side, q, "runstate: query-status at -S", "query-status")
    ex(side, q, "runstate: cont from prelaunch", "cont", events=True)
    ex(side, q, "runstate: query-status running", "query-status")
    ex(side, q, "runstate: stop", "stop", events=True)
    ex(side, q, "runstate: stop again (no event)", "stop", events=True)
    ex(side, q, "runstate: query-status paused", "query-status")
    ex(side, q, "runstate: cont", "cont", events=True)
    ex(side, q, "runstate: system_reset", "system_reset", events=True)
    ex(side, q, "runstate: query-status after reset", "query-status")
    ex(side, q, "runstate: query-kvm", "query-kvm", mode="shape")
    ex(side, q, "runstate: query-name", "query-name")
    ex(side, q, "runstate: human-monitor-command info status", "human-monitor-command",
       {"command-line": "info status"})
    q.send_raw(json.dumps({"execute": "quit"}))
    msgs = []
    while True:
        try:
            msgs.append(q.recv(10))
        except EOFError:
            break
    side.record("runstate: quit -> SHUTDOWN event, return, close", msgs)
    side.record("runstate: process exits after quit", vm.wait_exit(10) == 0)


def conv_parameters(side):
    vm = side.start(["-S"])
    q = vm.qmp()
    ex(side, q, "parameters: defaults", "query-migrate-parameters")
    ex(side, q, "capabilities: defaults", "query-migrate-capabilities")
    cases = [("downtime-limit", 2000001), ("downtime-limit", 2000000), ("downtime-limit", 0),
             ("max-bandwidth", -1), ("max-bandwidth", 0), ("compress-level", 10), ("compress-level", 9),
             ("compress-threads", 0), ("decompress-threads", 0), ("throttle-trigger-threshold", 0),
             ("throttle-trigger-threshold", 101), ("cpu-throttle-initial", 0), ("cpu-throttle-initial", 100),
             ("cpu-throttle-increment", 100), ("max-cpu-throttle", 100), ("max-cpu-throttle", 10),
             ("multifd-channels", 0), ("multifd-zlib-level", 10), ("multifd-zstd-level", 21),
             ("xbzrle-cache-size", 1000), ("xbzrle-cache-size", 1 << 20), ("announce-initial", 100001),
             ("announce-max", 100001), ("announce-rounds", 1001), ("announce-step", 0),
             ("announce-step", 10001), ("multifd-compression", "bogus"), ("multifd-compression", "zlib"),
             ("tls-creds", None), ("tls-creds", ""), ("x-checkpoint-delay", 5),
             ("max-postcopy-bandwidth", 1 << 30), ("cpu-throttle-tailslow", True)]
    for name, value in cases:
        ex(side, q, "parameters: set %s=%s" % (name, json.dumps(value)), "migrate-set-parameters", {name: value})
    ex(side, q, "parameters: after the sets", "query-migrate-parameters")
    ex(side, q, "parameters: several at once, one bad (no side effect)", "migrate-set-parameters",
       {"downtime-limit": 500, "cpu-throttle-initial": 0})
    ex(side, q, "parameters: unchanged after a rejected set", "query-migrate-parameters")
    ex(side, q, "parameters: set block-bitmap-mapping=[]", "migrate-set-parameters", {"block-bitmap-mapping": []})
    ex(side, q, "parameters: an empty block-bitmap-mapping reads back", "query-migrate-parameters")
    ex(side, q, "parameters: set tls-creds to an unknown object", "migrate-set-parameters", {"tls-creds": "nosuch"})
    ex(side, q, "capabilities: set a valid set", "migrate-set-capabilities",
       {"capabilities": [{"capability": c, "state": True}
                         for c in ("events", "return-path", "pause-before-switchover")]})
    ex(side, q, "capabilities: after the sets", "query-migrate-capabilities")
    for caps, label in [([("postcopy-preempt", True)], "postcopy-preempt alone"),
                        ([("zero-copy-send", True)], "zero-copy-send without multifd"),
                        ([("postcopy-ram", True), ("x-ignore-shared", True)], "postcopy-ram with x-ignore-shared"),
                        ([("x-colo", True)], "x-colo"),
                        ([("xbzrle", True)], "xbzrle"),
                        ([("validate-uuid", True)], "validate-uuid")]:
        ex(side, q, "capabilities: set %s" % label, "migrate-set-capabilities",
           {"capabilities": [{"capability": c, "state": s} for c, s in caps]})
    # Objects (TLS credentials, authorization): what needs no certificate files.
    simple = {"qom-type": "authz-simple", "id": "o1", "identity": "CN=x"}
    for label, args in [("unknown type", {"qom-type": "nosuch", "id": "o1"}),
                        ("bad id", dict(simple, id="1o")),
                        ("authz-simple without identity", {"qom-type": "authz-simple", "id": "o1"}),
                        ("authz-simple", simple),
                        ("duplicate id", dict(simple, identity="CN=y")),
                        ("unknown member", dict(simple, id="o4", bogus=1)),
                        ("authz-list rule without policy", {"qom-type": "authz-list", "id": "o2",
                                                            "rules": [{"match": "x"}]}),
                        ("authz-list", {"qom-type": "authz-list", "id": "o2", "policy": "deny",
                                        "rules": [{"match": "*CN=x", "policy": "allow", "format": "glob"}]}),
                        ("tls-creds-x509 without dir", {"qom-type": "tls-creds-x509", "id": "o3",
                                                        "endpoint": "client"}),
                        ("tls-creds-x509 in a missing dir", {"qom-type": "tls-creds-x509", "id": "o3",
                                                             "endpoint": "server", "dir": "/nonexistent/tls"}),
                        ("tls-creds-x509 bad endpoint", {"qom-type": "tls-creds-x509", "id": "o3",
                                                         "endpoint": "bogus", "dir": "/"})]:
        ex(side, q, "objects: object-add %s" % label, "object-add", args)
    ex(side, q, "objects: object-del", "object-del", {"id": "o1"})
    ex(side, q, "objects: object-del again", "object-del", {"id": "o1"})
    ex(side, q, "objects: object-del without id", "object-del", {})


# Integers as QEMU 7.2's QMP input visitor takes them: around 2^31, 2^32, 2^53
# and 2^63, at and beyond the 64-bit limits, negatives (wrapped modulo 2^64 for
# unsigned members), and non-integers.
INTEGER_TEXTS = ["-1", "-2", "-2147483649", "-9223372036854775808", "-9223372036854775809", "2147483648",
                 "4294967295", "4294967296", "9007199254740992", "9007199254740993", "9223372036854775807",
                 "9223372036854775808", "18446744073709551615", "18446744073709551616", "1.0", "255", "256"]
# One parameter of each unsigned type and of each kind of range check QEMU
# applies to the wrapped value afterwards.
INTEGER_PARAMETERS = ["max-bandwidth", "max-postcopy-bandwidth", "xbzrle-cache-size", "announce-initial",
                      "downtime-limit", "x-checkpoint-delay", "compress-level", "multifd-channels"]


def conv_integers(side):
    vm = side.start(["-S"])
    q = vm.qmp()
    for name in INTEGER_PARAMETERS:
        for text in INTEGER_TEXTS:
            ex(side, q, "integers: set %s=%s" % (name, text), '{"execute": "migrate-set-parameters", '
               '"arguments": {"%s": %s}}' % (name, text))
            side.record("integers: %s reads back after %s" % (name, text),
                        q.cmd_ok("query-migrate-parameters").get(name))
    ex(side, q, "integers: max-bandwidth=-1 with downtime-limit=5", '{"execute": "migrate-set-parameters", '
       '"arguments": {"max-bandwidth": -1, "downtime-limit": 5}}')
    ex(side, q, "integers: after max-bandwidth=-1 with downtime-limit=5", "query-migrate-parameters")
    ex(side, q, "integers: downtime-limit=-1 with max-bandwidth=5 (no side effect)",
       '{"execute": "migrate-set-parameters", "arguments": {"max-bandwidth": 5, "downtime-limit": -1}}')
    ex(side, q, "integers: after the refused pair", "query-migrate-parameters")
    # int arguments: only the conversion (beyond int64, non-integers) answers
    # before the handler, on a machine without vCPUs.
    for text in ("-9223372036854775809", "9223372036854775808", "18446744073709551615", "18446744073709551616",
                 "1.0", "1e3", '"0"'):
        ex(side, q, "integers: pmemsave val=%s" % text, '{"execute": "pmemsave", "arguments": '
           '{"val": %s, "size": 1, "filename": "/dev/null"}}' % text)
        ex(side, q, "integers: pmemsave size=%s" % text, '{"execute": "pmemsave", "arguments": '
           '{"val": 0, "size": %s, "filename": "/dev/null"}}' % text)
    for text in ("-1", "-9223372036854775808", "-9223372036854775809", "0", "2147483648", "4294967296",
                 "9223372036854775807", "9223372036854775808", "18446744073709551616", "1.0"):
        ex(side, q, "integers: human-monitor-command cpu-index=%s" % text, '{"execute": "human-monitor-command", '
           '"arguments": {"command-line": "info status", "cpu-index": %s}}' % text)
        ex(side, q, "integers: memsave cpu-index=%s" % text, '{"execute": "memsave", "arguments": '
           '{"val": 0, "size": 1, "filename": "/dev/null", "cpu-index": %s}}' % text)
    ex(side, q, "integers: memsave without cpu-index", "memsave", {"val": 0, "size": 1, "filename": "/dev/null"})


def conv_cpus(side):
    """query-cpus-fast and info cpus: none on -M none; on the pc board with
    -smp 2 and -smp 4,sockets=2,cores=2 every member but the host thread id
    exactly as QEMU 7.2 (pc-i440fx-7.2, tcg vs soft: each vCPU has its thread)."""
    vm = side.start(["-S"])
    q = vm.qmp()
    ex(side, q, "cpus: query-cpus-fast on -M none", "query-cpus-fast")
    ex(side, q, "cpus: info cpus on -M none", "human-monitor-command", {"command-line": "info cpus"})
    ex(side, q, "cpus: info cpus on -M none, cpu-index 0", "human-monitor-command",
       {"command-line": "info cpus", "cpu-index": 0})
    for smp in ("2", "4,sockets=2,cores=2", "3"):
        vm = side.start(["-S", "-smp", smp], machine="pc", ram=16 << 20)
        q = vm.qmp()
        tag = "cpus: -M pc -smp %s" % smp
        r = ex(side, q, "%s: query-cpus-fast" % tag, "query-cpus-fast", mode="shape")
        cpus = r.get("return", [])
        # QEMU's wire order is its dictionary's hash order; migvm writes the
        # schema's order (cpu-index, qom-path, thread-id, props, target)
        side.record("%s: member names" % tag, [sorted(c) for c in cpus])
        side.record("%s: all but thread-id" % tag, [{k: v for k, v in c.items() if k != "thread-id"} for c in cpus])
        tids = [c.get("thread-id") for c in cpus]
        side.record("%s: thread-ids distinct threads of the process" % tag,
                    len(set(tids)) == len(tids) and vm.pid not in tids and
                    all(os.path.isdir("/proc/%d/task/%s" % (vm.pid, t)) for t in tids))
        for index in (None, 0, 1):
            args = {"command-line": "info cpus"}
            if index is not None:
                args["cpu-index"] = index
            out = q.cmd_ok("human-monitor-command", args)
            for i, t in enumerate(tids):
                out = out.replace("thread_id=%s\r\n" % t, "thread_id=<vCPU %d>\r\n" % i)
            side.record("%s: info cpus%s" % (tag, "" if index is None else ", cpu-index %d" % index), out)
        vm.kill()


def conv_migrate(side):
    vm = side.start(["-S"])
    q = vm.qmp()
    d = new_tmpdir()
    ex(side, q, "query-migrate: never migrated", "query-migrate")
    ex(side, q, "migrate: unknown protocol", "migrate", {"uri": "foo:bar"})
    ex(side, q, "query-migrate: after an unknown-protocol error", "query-migrate")
    ex(side, q, "migrate: fd not found", "migrate", {"uri": "fd:nosuch"})
    ex(side, q, "migrate: tcp without port", "migrate", {"uri": "tcp:127.0.0.1"})
    ex(side, q, "query-migrate: after a bad-address error", "query-migrate")
    ex(side, q, "migrate: resume without paused migration", "migrate", {"uri": "exec:true", "resume": True})
    ex(side, q, "migrate-continue: not paused", "migrate-continue", {"state": "pre-switchover"})
    ex(side, q, "migrate-incoming: without -incoming", "migrate-incoming", {"uri": "tcp:127.0.0.1:1"})
    ex(side, q, "migrate_cancel: nothing to cancel", "migrate_cancel")
    ex(side, q, "migrate-start-postcopy: not enabled", "migrate-start-postcopy")
    q.cmd_ok("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
    # A migration that fails to connect.
    ex(side, q, "migrate: connection refused returns {}", "migrate", {"uri": "tcp:127.0.0.1:1"})
    seq, _ = migration_events(q, ("failed",), 10)
    side.record("migrate failed: events", seq)
    ex(side, q, "query-migrate: failed", "query-migrate")
    ex(side, q, "runstate: source after failed migration", "query-status")
    # A slow migration: active, then cancelled.
    q.cmd_ok("cont")
    q.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 2048})
    port = free_tcp_port()
    dst = side.start(["-incoming", "tcp:127.0.0.1:%d" % port])
    dq = dst.qmp()
    ex(side, dq, "destination: query-migrate while listening", "query-migrate", mode="shape")
    ex(side, dq, "destination: query-status", "query-status")
    ex(side, dq, "destination: migrate while inmigrate", "migrate", {"uri": "exec:true"})
    ex(side, dq, "destination: migrate-incoming after -incoming URI", "migrate-incoming",
       {"uri": "tcp:127.0.0.1:1"})
    q.clear_events()
    ex(side, q, "migrate: slow tcp", "migrate", {"uri": "tcp:127.0.0.1:%d" % port})
    side.record("migrate: reaches active", wait_status(q, ("active",), 10))
    ex(side, q, "query-migrate: active", "query-migrate", mode="shape")
    ex(side, q, "migrate: while one is in progress", "migrate", {"uri": "exec:true"})
    ex(side, q, "capabilities: set while migrating", "migrate-set-capabilities",
       {"capabilities": [{"capability": "xbzrle", "state": True}]})
    ex(side, q, "parameters: set while migrating", "migrate-set-parameters", {"downtime-limit": 400})
    ex(side, q, "runstate: source while migrating", "query-status")
    ex(side, q, "migrate_cancel: active migration", "migrate_cancel")
    side.record("migrate cancel: final status", wait_status(q, ("cancelled",), 10))
    seq, _ = migration_events(q, ("cancelled",), 1)
    ex(side, q, "query-migrate: cancelled", "query-migrate")
    ex(side, q, "runstate: source keeps running after cancel", "query-status")
    dst.kill()      # QEMU's destination exits (load failed); migvm's stays (deliberate: docs/architecture.md)
    # A complete migration to a file, events on.
    q.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 134217728})
    q.clear_events()
    path = os.path.join(d, "out.mig")
    ex(side, q, "migrate: exec to a file", "migrate", {"uri": "exec:cat > %s" % path})
    seq, passes = migration_events(q, ("completed", "failed"), 20)
    side.record("migrate completed: MIGRATION/STOP events", seq)
    side.record("migrate completed: MIGRATION_PASS events", passes)
    info = ex(side, q, "query-migrate: completed", "query-migrate", mode="shape")
    side.record("query-migrate: completed ram.total and remaining",
                [info.get("return", {}).get("ram", {}).get(k) for k in ("total", "remaining", "page-size")])
    wait_until(lambda: q.cmd_ok("query-status")["status"] != "finish-migrate", 5)   # QEMU: a bottom half later
    ex(side, q, "runstate: source after completion", "query-status")
    ex(side, q, "migrate: again from postmigrate", "migrate", {"uri": "exec:cat > /dev/null"})
    ex(side, q, "cont: from postmigrate", "cont", events=True)
    # The destination side of a saved stream.
    dst2 = side.start(["-incoming", "defer"])
    q2 = dst2.qmp()
    ex(side, q2, "destination (defer): query-migrate", "query-migrate")
    ex(side, q2, "destination (defer): query-status", "query-status")
    ex(side, q2, "destination (defer): cont sets autostart", "cont", events=True)
    q2.cmd_ok("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}])
    ex(side, q2, "migrate-incoming: bad protocol", "migrate-incoming", {"uri": "foo:bar"})
    ex(side, q2, "migrate-incoming: exec from the file", "migrate-incoming", {"uri": "exec:cat %s" % path})
    seq, _ = migration_events(q2, ("completed", "failed"), 20)
    side.record("destination: events", seq)
    ex(side, q2, "migrate-incoming: second call", "migrate-incoming", {"uri": "exec:cat %s" % path})
    ex(side, q2, "destination: query-migrate completed", "query-migrate")
    ex(side, q2, "destination: run state (source was running, autostart)", "query-status")


def conv_chardev(side):
    """query-chardev on one command line with every backend and socket state
    (conformance.ChardevLine), the list sorted by label (QEMU's order is its
    hash table's, migvm's the creation order); then after UNIX peers hung
    up; the serial port's chardev on -M pc, where the port uses it."""
    line = conformance.ChardevLine(side)

    def record(name):
        r = line.q.cmd("query-chardev")
        if "return" in r:
            r = {"return": sorted(({k: line.mask(v) if isinstance(v, str) else v for k, v in c.items()}
                                   for c in r["return"]), key=lambda c: c["label"])}
        side.record(name, r)
    record("query-chardev: every backend, sorted by label")
    line.close_unix_peers()
    record("query-chardev: after the UNIX peers hung up")
    ex(side, line.q, "query-chardev: an argument", "query-chardev", {"bogus": 1})
    line.close()
    vm = side.start(["-S", "-serial", "file:serial.out"], machine="pc", ram=16 << 20)
    r = vm.qmp().cmd("query-chardev")
    side.record("query-chardev: -M pc -serial file", [c for c in r.get("return", []) if c["label"] == "serial0"])


tally = conformance.Tally(DELIBERATE)
for conv in (conv_greeting, conv_errors, conv_ids, conv_runstate, conv_parameters, conv_integers, conv_cpus,
             conv_chardev, conv_migrate):
    t0 = time.monotonic()
    qemu_side, migvm_side = conformance.run_both(conv)
    print("# %s: %.1f s" % (conv.__name__, time.monotonic() - t0), flush=True)
    tally.compare(qemu_side, migvm_side)
tally.summary("QMP")
finish()
