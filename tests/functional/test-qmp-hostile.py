#!/usr/bin/python3
"""Hostile QMP input: well over 100 malformed, oversized, deeply nested,
binary and badly typed messages, before and after negotiation, plus abrupt
disconnects and a client that never reads.  Every message is followed by a
sync request (query-status with a unique id); everything the server sends
before the sync's answer is the reply to the hostile message and is checked
against qmp-protocol.md (error class and text, no id on parse errors).
After each batch: the process is alive and a query-status answers (on the
same connection and on a fresh one)."""

import json
import os
import random
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
from migvm import VM, check, error_of, run, wait_until  # noqa: E402

NEG = "Expecting capabilities negotiation with 'qmp_capabilities'"
NOT_OBJECT = "QMP input must be a JSON object"
EXEC_NOT_STR = "QMP input member 'execute' must be a string"
ARGS_NOT_OBJ = "QMP input member 'arguments' must be an object"
LACKS_EXEC = "QMP input lacks member 'execute'"
DUP = "JSON parse error, duplicate key"
BAD_UTF8 = "JSON parse error, invalid UTF-8 sequence in string"
MiB = 1 << 20


# ---------------------------------------------------------------------------
# Matchers: each takes one received message and says whether it is right.

def err(cls, desc, id=None):
    def m(r):
        return error_of(r) == (cls, desc) and (r.get("id") == id if id is not None else "id" not in r)
    m.text = "%s %r%s" % (cls, desc, "" if id is None else " id=%r" % (id,))
    return m


def generic(desc, id=None):
    return err("GenericError", desc, id)


def desc_where(text, pred):
    """GenericError without id whose desc satisfies pred."""
    def m(r):
        e = error_of(r)
        return e is not None and e[0] == "GenericError" and isinstance(e[1], str) and pred(e[1]) and "id" not in r
    m.text = text
    return m


def parse_error(prefix="JSON parse error, "):
    return desc_where("GenericError %r..." % prefix, lambda d: d.startswith(prefix))


def limit_error(what):
    return desc_where("GenericError mentioning %r" % what, lambda d: what in d)


ANY_GENERIC = desc_where("any GenericError without id", lambda d: True)


class Hostile:
    """One QMP connection plus the counters of hostile messages sent."""

    def __init__(self, vm):
        self.vm = vm
        self.sent = 0
        self.n = 0
        self.c = vm.qmp(negotiate=False)

    def reconnect(self, negotiate=True):
        self.c.close()
        self.c = self.vm.qmp(negotiate=negotiate)

    def send(self, label, raw, expected, tail=False, timeout=20.0, count=1):
        """Send raw (counted as `count` hostile messages), then the sync; check
        the replies.  tail=True: after the expected replies any number of
        further GenericErrors without id are tolerated (QEMU's streamer may
        report each leftover token of a refused message)."""
        self.sent += count
        self.n += 1
        tag = "sync-%d" % self.n
        try:
            if raw:
                self.c.send_raw(raw)
            before, resp = self.c.sync(tag, timeout=timeout)
        except (TimeoutError, EOFError, OSError, migvm.QMPError) as e:
            check(label, False, "no answer to the sync request after %r: %s" % (raw[:80], e))
            self._recover()
            return None
        if tail:
            ok = (len(before) >= len(expected) and all(m(r) for m, r in zip(expected, before))
                  and all(ANY_GENERIC(r) for r in before[len(expected):]))
        else:
            ok = len(before) == len(expected) and all(m(r) for m, r in zip(expected, before))
        check(label, ok, "sent %r: expected %s%s, got %d replies %s" % (
            raw[:80], [m.text for m in expected], " (+ GenericErrors)" if tail else "", len(before),
            [json.dumps(r)[:160] for r in before[:4]]))
        return before

    def _recover(self):
        if not self.vm.alive():
            return
        try:
            self.reconnect()
        except Exception as e:  # noqa: BLE001
            check("reconnect after a stuck stream", False, str(e))

    def alive(self, batch):
        check("after %s: process alive" % batch, self.vm.alive(), self.vm.stderr_text()[-500:])
        try:
            _, resp = self.c.sync("alive-%s" % batch, timeout=20)
            ok = "return" in resp or error_of(resp) == ("CommandNotFound", NEG)
            check("after %s: query-status answers on the same connection" % batch, ok, repr(resp))
        except Exception as e:  # noqa: BLE001
            check("after %s: query-status answers on the same connection" % batch, False, str(e))
            self._recover()
        if migvm.qemu_mode():
            return
        try:
            fresh = self.vm.qmp()
            st = fresh.cmd_ok("query-status")
            check("after %s: a new client negotiates and queries" % batch, "status" in st, repr(st))
            fresh.close()
        except Exception as e:  # noqa: BLE001
            check("after %s: a new client negotiates and queries" % batch, False, str(e))


def cmd(name, args=None, **extra):
    msg = {"execute": name}
    if args is not None:
        msg["arguments"] = args
    msg.update(extra)
    return json.dumps(msg).encode()


# ---------------------------------------------------------------------------

def batch_before_negotiation(h):
    s = h.send
    s("pre: top-level array", b"[1,2]", [generic(NOT_OBJECT)])
    s("pre: execute not a string", b'{"execute":1}', [generic(EXEC_NOT_STR)])
    s("pre: unknown top-level key", b'{"execute":"query-status","bogus":1}',
      [generic("QMP input member 'bogus' is unexpected")])
    s("pre: arguments not an object", b'{"execute":"qmp_capabilities","arguments":[]}', [generic(ARGS_NOT_OBJ)])
    s("pre: no execute", b'{"arguments":{}}', [generic(LACKS_EXEC)])
    s("pre: exec-oob", b'{"exec-oob":"qmp_capabilities"}', [generic("QMP input member 'exec-oob' is unexpected")])
    s("pre: qmp_capabilities unknown argument", cmd("qmp_capabilities", {"x": 1}),
      [generic("Parameter 'x' is unexpected")])
    s("pre: qmp_capabilities enable not an array", cmd("qmp_capabilities", {"enable": "oob"}),
      [generic("Invalid parameter type for 'enable', expected: array")])
    s("pre: qmp_capabilities enable element not a string", cmd("qmp_capabilities", {"enable": [1]}),
      [generic("Invalid parameter type for 'enable[0]', expected: string")])
    s("pre: qmp_capabilities bad enum value", cmd("qmp_capabilities", {"enable": ["bogus"]}),
      [desc_where("GenericError naming 'bogus'", lambda d: "'bogus'" in d)])
    s("pre: unknown command", cmd("nosuch"), [err("CommandNotFound", NEG)])
    s("pre: query-status with bad arguments", cmd("query-status", {"x": 1}), [err("CommandNotFound", NEG)])
    s("pre: quit refused", cmd("quit"), [err("CommandNotFound", NEG)])
    s("pre: stop refused, id echoed", cmd("stop", id="pre-stop"), [err("CommandNotFound", NEG, id="pre-stop")])
    s("pre: garbage keyword", b"garbage ", [generic("JSON parse error, invalid keyword 'garbage'")])
    s("pre: control byte", b"\x01", [generic("JSON parse error, stray '\u0001'")])
    s("pre: top-level string", b'"just a string"', [generic(NOT_OBJECT)])
    s("pre: duplicate key", b'{"execute":"qmp_capabilities","execute":"qmp_capabilities"}', [generic(DUP)])
    s("pre: truncated then ESC", b'{"execute":"qmp_capa\x1b', [parse_error()], tail=True)
    check("pre: process still running after refused quit", h.vm.alive())
    r = h.c.cmd("qmp_capabilities", id="neg")
    check("negotiation succeeds after hostile input", r == {"return": {}, "id": "neg"}, repr(r))


def batch_syntax(h):
    s = h.send
    s("keyword garbage", b"garbage ", [generic("JSON parse error, invalid keyword 'garbage'")])
    s("keyword tru", b"tru ", [generic("JSON parse error, invalid keyword 'tru'")])
    s("keyword nul", b"nul ", [generic("JSON parse error, invalid keyword 'nul'")])
    s("keyword True (case)", b"True ", [parse_error()], tail=True)
    s("missing colon", b'{"execute" "query-status"}', [generic("JSON parse error, missing : in object pair")])
    s("missing comma", b'{"execute":"query-status" "id":1}', [generic("JSON parse error, expected separator in dict")])
    s("stray ]", b"]", [generic("JSON parse error, expecting value")])
    s("stray }", b"}", [generic("JSON parse error, expecting value")])
    s("missing value", b'{"execute":}', [parse_error()], tail=True)
    s("empty member", b"{,}", [parse_error()], tail=True)
    s("trailing comma in array", b'{"execute":"query-status","id":[1,]}', [parse_error()], tail=True)
    s("trailing comma in object", b'{"execute":"query-status",}', [parse_error()], tail=True)
    s("double comma", b'{"execute":"query-status",,"id":1}', [parse_error()], tail=True)
    s("double colon", b'{"execute"::"query-status"}', [parse_error()], tail=True)
    s("key not a string", b'{1:"query-status"}', [parse_error()], tail=True)
    s("stray @", b"@", [parse_error("JSON parse error, stray")])
    s("NUL byte", b"\x00", [parse_error("JSON parse error, stray")])
    s("0xFF byte", b"\xff", [generic("JSON parse error, stray '\ufffd'")])
    s("0xFE byte", b"\xfe", [generic("JSON parse error, stray '\ufffd'")])
    s("ESC byte", b"\x1b", [generic("JSON parse error, stray '\u001b'")])
    s("five binary bytes", b"\x00\x00\xff\xfe\x01", [parse_error("JSON parse error, stray")] * 5)
    s("invalid UTF-8 outside a string", b"\xc3\x28", [parse_error("JSON parse error, stray")], tail=True)
    s("control byte inside a string", b'"a\x01b"', [parse_error()], tail=True)
    s("NUL inside a message", b'{"execute":"query-status"\x00}', [parse_error()], tail=True)
    s("bad escape \\x", b'{"execute":"query-status","id":"\\x41"}', [parse_error()], tail=True)
    s("short \\u escape", b'{"execute":"query-status","id":"\\u12"}', [parse_error()], tail=True)
    s("bad number 01", b'{"execute":"query-status","id":01}', [parse_error()], tail=True)
    s("bad number 1e", b'{"execute":"query-status","id":1e}', [parse_error()], tail=True)


def batch_utf8(h):
    s = h.send
    for label, seq in (("C3 28", b"\xc3\x28"), ("encoded surrogate ED A0 80", b"\xed\xa0\x80"),
                       ("overlong C0 AF", b"\xc0\xaf"), ("overlong E0 80 AF", b"\xe0\x80\xaf"),
                       ("lone continuation 80", b"\x80"), ("above U+10FFFF F4 90 80 80", b"\xf4\x90\x80\x80"),
                       ("truncated E2 82", b"\xe2\x82")):
        s("invalid UTF-8 in a string: %s" % label, b'"x' + seq + b'y"', [generic(BAD_UTF8)])
        s("invalid UTF-8 in an id: %s" % label, b'{"execute":"query-status","id":"' + seq + b'"}', [generic(BAD_UTF8)])
    r = h.c.cmd("query-status", id="\u00e9\u4e2d\U0001F600")
    check("valid multi-byte UTF-8 id is echoed", r.get("id") == "\u00e9\u4e2d\U0001F600", repr(r))


def batch_truncated(h):
    s = h.send
    s("truncated after key, then ESC", b'{"execute":\x1b', [generic("JSON parse error, stray '\u001b'")])
    s("truncated in a string, then ESC", b'{"execute":"query-st\x1b', [parse_error()], tail=True)
    s("truncated in a string, then 0xFF", b'{"execute":"query-st\xff', [parse_error()], tail=True)
    s("truncated in arguments, then 0xFF", b'{"execute":"query-status","arguments":{\xff', [parse_error()], tail=True)
    s("truncated nested arrays, then ESC", b"[[[[\x1b", [parse_error()], tail=True)
    s("truncated number, then ESC", b'{"execute":"query-status","id":12\x1b', [parse_error()], tail=True)
    s("truncated single-quoted, then ESC", b"{'execute':'query-sta\x1b", [parse_error()], tail=True)
    s("truncated \\u escape, then ESC", b'{"execute":"query-status","id":"\\u00\x1b', [parse_error()], tail=True)
    s("truncated message swallows a valid one", b'{"execute":"query-status"{"execute":"query-status","id":"gone"}}',
      [parse_error()], tail=True)
    # A message completed by a later write is one message.
    h.c.send_raw(b'{"execute":"query-status","id":"late"')
    h.c.send_raw(b"}")
    r = h.c.recv_response()
    check("truncated message completed later is answered", r.get("id") == "late" and "return" in r, repr(r))
    h.sent += 1


def batch_envelope(h):
    s = h.send
    for label, raw in (("1", b"1 "), ("-1", b"-1 "), ("1.5", b"1.5 "), ("2^64 (double)", b"18446744073709551616 "),
                       ("string", b'"x"'), ("single-quoted string", b"'x'"), ("true", b"true "),
                       ("false", b"false "), ("null", b"null "), ("empty array", b"[]"), ("array", b"[1,2]"),
                       ("array of a command", b'[{"execute":"query-status"}]')):
        s("top-level %s is not an object" % label, raw, [generic(NOT_OBJECT)])
    for label, v in (("int", b"1"), ("null", b"null"), ("true", b"true"), ("array", b'["stop"]'),
                     ("object", b'{"x":"stop"}'), ("float", b"1.5")):
        s("execute is %s" % label, b'{"execute":' + v + b"}", [generic(EXEC_NOT_STR)])
    s("execute and exec-oob", b'{"execute":"stop","exec-oob":"stop"}',
      [generic("QMP input member 'exec-oob' is unexpected")])
    s("exec-oob without oob", b'{"exec-oob":"query-status"}', [generic("QMP input member 'exec-oob' is unexpected")])
    for label, v in (("array", b"[]"), ("string", b'"x"'), ("int", b"1"), ("null", b"null"), ("true", b"true")):
        s("arguments is %s" % label, b'{"execute":"query-status","arguments":' + v + b"}", [generic(ARGS_NOT_OBJ)])
    for key in ("bogus", "Execute", "ID", "argument"):
        s("unknown top-level key %s" % key, b'{"execute":"query-status","%s":1}' % key.encode(),
          [generic("QMP input member '%s' is unexpected" % key)])
    s("empty object", b"{}", [generic(LACKS_EXEC)])
    s("only arguments", b'{"arguments":{}}', [generic(LACKS_EXEC)])
    s("unknown key with id: id echoed", b'{"execute":"query-status","bogus":1,"id":"env-1"}',
      [generic("QMP input member 'bogus' is unexpected", id="env-1")])
    s("duplicate execute", b'{"execute":"query-status","execute":"query-status"}', [generic(DUP)])
    s("duplicate id", b'{"execute":"query-status","id":1,"id":2}', [generic(DUP)])
    s("duplicate arguments", b'{"execute":"stop","arguments":{"a":1},"arguments":{}}', [generic(DUP)])
    s("duplicate key inside arguments", b'{"execute":"query-status","arguments":{"x":1,"x":1}}', [generic(DUP)])
    s("duplicate key deep in id", b'{"execute":"query-status","id":[{"a":{"b":1,"b":2}}]}', [generic(DUP)])
    long_key = "k" * 100000
    s("100 kB unknown key", b'{"execute":"query-status","%s":1}' % long_key.encode(),
      [generic("QMP input member '%s' is unexpected" % long_key)])
    st = h.c.cmd_ok("query-status")
    check("no envelope error changed the run state", st.get("status") == "running", repr(st))


def batch_arguments(h, commands):
    s = h.send
    for name in ("", "nosuch", "QUERY-STATUS", "query_status", "query-status ", "x" * 5000):
        s("unknown command %r" % name[:20], cmd(name),
          [err("CommandNotFound", "The command %s has not been found" % name)])
    for name in ("query-status", "query-version", "query-commands", "query-qmp-schema", "query-name",
                 "query-kvm", "stop", "cont", "system_reset"):
        s("%s with an unknown argument" % name, cmd(name, {"bogus": 1}), [generic("Parameter 'bogus' is unexpected")])
    hmc = "human-monitor-command"
    for label, v in (("int", 1), ("true", True), ("null", None), ("array", ["info status"]),
                     ("object", {"a": 1}), ("float", 1.5)):
        s("%s command-line is %s" % (hmc, label), cmd(hmc, {"command-line": v}),
          [generic("Invalid parameter type for 'command-line', expected: string")])
    for label, v in (("string", "0"), ("true", True), ("float", 1.5), ("array", [0]), ("object", {}),
                     ("2^64-1", 2 ** 64 - 1)):
        s("%s cpu-index is %s" % (hmc, label), cmd(hmc, {"command-line": "info status", "cpu-index": v}),
          [generic("Invalid parameter type for 'cpu-index', expected: integer")])
    for label, v in (("-1", -1), ("99", 99), ("int64 max", 2 ** 63 - 1)):
        s("%s cpu-index %s is not a CPU" % (hmc, label), cmd(hmc, {"command-line": "info status", "cpu-index": v}),
          [generic("Parameter 'cpu-index' expects a CPU number")])
    s("%s without arguments" % hmc, cmd(hmc), [generic("Parameter 'command-line' is missing")])
    s("%s with only cpu-index" % hmc, cmd(hmc, {"cpu-index": 0}), [generic("Parameter 'command-line' is missing")])
    s("%s unknown argument" % hmc, cmd(hmc, {"command-line": "info status", "x": 1}),
      [generic("Parameter 'x' is unexpected")])
    s("qmp_capabilities after negotiation with bad enum", cmd("qmp_capabilities", {"enable": ["bogus"]}),
      [desc_where("GenericError naming 'bogus'", lambda d: "'bogus'" in d)])
    # Migration commands (when this build has them): bad enum values, wrong types.
    if "migrate-set-capabilities" in commands:
        s("migrate-set-capabilities bad enum", cmd("migrate-set-capabilities",
                                                    {"capabilities": [{"capability": "bogus", "state": True}]}),
          [generic("Parameter 'capability' does not accept value 'bogus'")])
        s("migrate-set-capabilities state not bool", cmd("migrate-set-capabilities",
                                                          {"capabilities": [{"capability": "xbzrle", "state": 1}]}),
          [generic("Invalid parameter type for 'capabilities[0].state', expected: boolean")])
        s("migrate-set-capabilities missing state", cmd("migrate-set-capabilities",
                                                         {"capabilities": [{"capability": "xbzrle"}]}),
          [generic("Parameter 'capabilities[0].state' is missing")])
        s("migrate-set-capabilities not a list", cmd("migrate-set-capabilities", {"capabilities": {}}),
          [generic("Invalid parameter type for 'capabilities', expected: array")])
    if "migrate-continue" in commands:
        s("migrate-continue bad enum", cmd("migrate-continue", {"state": "bogus"}),
          [generic("Parameter 'state' does not accept value 'bogus'")])
    if "migrate" in commands:
        s("migrate without uri", cmd("migrate", {}), [generic("Parameter 'uri' is missing")])
        s("migrate uri not a string", cmd("migrate", {"uri": 5}),
          [generic("Invalid parameter type for 'uri', expected: string")])
        s("migrate detach not a bool", cmd("migrate", {"uri": "tcp:127.0.0.1:1", "detach": "yes"}),
          [generic("Invalid parameter type for 'detach', expected: boolean")])
    if "migrate-set-parameters" in commands:
        s("migrate-set-parameters multifd-channels out of range", cmd("migrate-set-parameters",
                                                                       {"multifd-channels": 300}),
          [generic("Parameter 'multifd-channels' expects uint8_t")])
        s("migrate-set-parameters max-bandwidth not an integer", cmd("migrate-set-parameters",
                                                                      {"max-bandwidth": 1.5}),
          [generic("Parameter 'max-bandwidth' expects uint64")])
    st = h.c.cmd_ok("query-status")
    check("no rejected command changed the run state", st.get("status") == "running", repr(st))


def batch_limits(h):
    s = h.send
    s("2000-deep arrays", b"[" * 2000 + b"]" * 2000, [limit_error("nesting depth limit exceeded")], tail=True)
    s("2000-deep objects", b'{"a":' * 2000 + b"1" + b"}" * 2000, [limit_error("nesting depth limit exceeded")],
      tail=True)
    s("2000-deep id", b'{"execute":"query-status","id":' + b"[" * 2000 + b"]" * 2000 + b"}",
      [limit_error("nesting depth limit exceeded")], tail=True)
    s("20000 unclosed [ then ESC", b"[" * 20000 + b"\x1b", [limit_error("nesting depth limit exceeded")], tail=True)
    deep = b"[" * 100 + b"]" * 100
    h.c.send_raw(b'{"execute":"query-status","id":' + deep + b"}")
    r = h.c.recv_response()
    exp = []
    for _ in range(99):
        exp = [exp]
    check("100-deep id is legal and echoed", r.get("id") == exp, repr(r)[:200])
    if migvm.qemu_mode():
        migvm.skip("multi-MiB messages", "QEMU's monitor reads one byte per main-loop iteration: far too slow")
        return
    big = "b" * (8 * MiB)
    h.c.send_raw(b'{"execute":"query-status","id":"' + big.encode() + b'"}')
    r = h.c.recv_response(timeout=30)
    check("8 MiB id (under the limit) is echoed", r.get("id") == big, repr(r)[:200])
    many = b'{"execute":"query-status","id":[' + b"0," * 1050000 + b"0]}"
    s("2.1 M tokens", many, [limit_error("limit exceeded")], tail=True, timeout=40)
    huge_string(h)


def huge_string(h):
    """Stream 64 MiB of one string in 1 MiB writes; RSS must stay bounded."""
    pid = h.vm.pid
    base = migvm.rss_kib(pid) or 0
    peak = base
    hwm_reset = reset_hwm(pid)
    chunk = b"a" * MiB
    h.c.send_raw(b'{"execute":"query-status","id":"')
    reader_err = []
    # The server may answer early (limit error as soon as the limit is crossed):
    # keep reading in the background so neither side blocks.
    replies = []

    def reader():
        try:
            while True:
                replies.append(h.c.recv(60))
                if isinstance(replies[-1], dict) and replies[-1].get("id") == "after-huge":
                    return
        except Exception as e:  # noqa: BLE001
            reader_err.append(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t0 = time.monotonic()
    try:
        for i in range(64):
            h.c.send_raw(chunk)
            if i % 4 == 3:
                peak = max(peak, migvm.rss_kib(pid) or 0)
        h.c.send_raw(b'"}')
        h.c.send_raw(b'{"execute":"query-status","id":"after-huge"}')
        send_ok = True
    except OSError as e:
        send_ok = False
        reader_err.append(e)
    t.join(60)
    h.sent += 1
    elapsed = time.monotonic() - t0
    peak = max(peak, migvm.rss_kib(pid) or 0)
    hwm = migvm.rss_kib(pid, "VmHWM") or peak
    got_after = any(isinstance(r, dict) and r.get("id") == "after-huge" for r in replies)
    errs = [r for r in replies if not (isinstance(r, dict) and (r.get("id") == "after-huge" or "event" in r))]
    first = errs[0] if errs else None
    check("64 MiB string: refused with a size-limit error", first is not None
          and limit_error("limit exceeded")(first), "replies %r, errors %r" % ([json.dumps(r)[:120] for r in replies[:3]],
                                                                             reader_err))
    check("64 MiB string: every other reply is a GenericError without id",
          all(ANY_GENERIC(r) for r in errs), repr(errs[:3]))
    check("64 MiB string: connection still answers afterwards", send_ok and got_after,
          "send_ok=%s replies=%d err=%r" % (send_ok, len(replies), reader_err))
    check("64 MiB string: streamed in under 40 s", elapsed < 40, "%.1f s" % elapsed)
    if migvm.qemu_mode():
        migvm.skip("64 MiB string: RSS bounded", "QEMU buffers up to its 64 MiB token limit")
        return
    # Under ThreadSanitizer each touched byte costs ~3 in RSS: still far
    # below what holding the 64 MiB string would cost there (~190 MiB).
    bound = 40 * (3 if migvm.tsan_build() else 1)
    check("64 MiB string: RSS stays bounded (< +%d MiB while streaming)" % bound, peak - base < bound * 1024,
          "RSS %d kB at start, peak %d kB" % (base, peak))
    if hwm_reset:
        check("64 MiB string: peak RSS (VmHWM) stays bounded (< +%d MiB)" % bound, hwm - base < bound * 1024,
              "RSS %d kB at start, VmHWM %d kB" % (base, hwm))


def reset_hwm(pid):
    """Reset the kernel's peak-RSS counter (VmHWM) of pid; False if not allowed."""
    try:
        with open("/proc/%d/clear_refs" % pid, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def batch_binary(h):
    s = h.send
    rnd = random.Random(2)
    for i in range(6):
        garbage = bytes(rnd.getrandbits(8) for _ in range(4096))
        s("random binary block %d (4 KiB) then 0xFF" % i, garbage + b"\xff", [ANY_GENERIC], tail=True)
    s("1000 NUL bytes", b"\x00" * 1000, [parse_error("JSON parse error, stray")], tail=True)
    s("all 256 byte values then ESC", bytes(range(256)) + b"\x1b", [ANY_GENERIC], tail=True)
    s("0xFF 0xFE runs", b"\xff\xfe" * 100, [generic("JSON parse error, stray '\ufffd'")] * 200)
    s("control bytes 01..1F except whitespace",
      bytes(b for b in range(1, 32) if b not in (9, 10, 13)), [parse_error("JSON parse error, stray")] * 28)
    s("TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32) + b"\xff", [ANY_GENERIC],
      tail=True)
    s("HTTP request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n\x1b", [ANY_GENERIC], tail=True)


def batch_quit_hostile(h):
    s = h.send
    s("quit with an unknown argument", cmd("quit", {"x": 1}), [generic("Parameter 'x' is unexpected")])
    s("quit with arguments not an object", b'{"execute":"quit","arguments":[]}', [generic(ARGS_NOT_OBJ)])
    s("quit with a bogus key", b'{"execute":"quit","bogus":1}', [generic("QMP input member 'bogus' is unexpected")])
    s("quit as exec-oob", b'{"exec-oob":"quit"}', [generic("QMP input member 'exec-oob' is unexpected")])
    s("quit inside a duplicate-key object", b'{"execute":"quit","execute":"quit"}', [generic(DUP)])
    s("quit cut by ESC", b'{"execute":"quit"\x1b', [parse_error()], tail=True)
    check("process survived every refused quit", h.vm.alive())


# ---------------------------------------------------------------------------
# Connections that misbehave

def disconnects(vm, count=200, threads=20):
    if migvm.qemu_mode():
        migvm.skip("abrupt disconnects", "QEMU serves one client per -qmp socket")
        return 0
    pid = vm.pid
    # Warm up, then take the baseline.
    for _ in range(3):
        q = vm.qmp()
        q.close()
    base_fds = migvm.fd_count(pid)
    base_rss = migvm.rss_kib(pid) or 0
    errors = []
    half = b'{"execute":"query-status","id":"' + b"x" * (256 * 1024)

    def one(i):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            migvm.unix_connect(s, vm.qmp_path)
            kind = i % 5
            if kind == 0:
                pass                                            # close before reading the greeting
            elif kind == 1:
                s.recv(4096)
                s.sendall(b'{"execute":"qmp_capa')              # half of the negotiation
            elif kind == 2:
                s.recv(4096)
                s.sendall(b'{"execute":"qmp_capabilities"}{"execute":"query-st')
            elif kind == 3:
                s.sendall(b'{"execute":"qmp_capabilities"}')
                try:
                    s.sendall(half)                             # half of a 256 KiB message
                except OSError:
                    pass
            else:
                s.sendall(b'{"execute":"qmp_capabilities"}{"execute":"query-qmp-schema"}')  # never read the answer
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError as e:
            errors.append(e)
        finally:
            s.close()

    def worker(start):
        for i in range(start, count, threads):
            one(i)

    ts = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    check("200 abrupt disconnects: every connect succeeded", not errors, repr(errors[:3]))
    check("200 abrupt disconnects: process alive", vm.alive(), vm.stderr_text()[-500:])
    fds = wait_until(lambda: (migvm.fd_count(pid) or 10 ** 6) <= base_fds + 2 and migvm.fd_count(pid), 10)
    check("200 abrupt disconnects: file descriptors released", fds,
          "fds %s, baseline %s" % (migvm.fd_count(pid), base_fds))
    rss = migvm.rss_kib(pid) or 0
    if migvm.asan_build():
        # ASan keeps freed memory in its quarantine (256 MiB) before reuse: RSS
        # grows by what the batch freed. Its leak check at the clean exit below
        # finds what the batch did not free (a report fails the test).
        print("skip - 200 abrupt disconnects: RSS bound: ASan's quarantine holds freed memory "
              "(%d kB -> %d kB); LeakSanitizer checks at exit" % (base_rss, rss))
    else:
        check("200 abrupt disconnects: RSS did not grow by more than 32 MiB", rss - base_rss < 32 * 1024,
              "%d kB -> %d kB" % (base_rss, rss))
    q = vm.qmp()
    check("200 abrupt disconnects: a new client is served", "status" in q.cmd_ok("query-status"))
    q.close()
    return count


def slow_reader(vm, rounds=1500):
    if migvm.qemu_mode():
        migvm.skip("client that never reads", "QEMU serves one client per -qmp socket")
        return
    slow = vm.qmp()                 # negotiated, then never reads again
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c = vm.qmp()
    t0 = time.monotonic()
    worst = 0.0
    done = 0
    try:
        for _ in range(rounds):
            for name in ("stop", "cont"):
                t1 = time.monotonic()
                c.cmd_ok(name, timeout=10)
                worst = max(worst, time.monotonic() - t1)
                c.clear_events()
            done += 1
    except Exception as e:  # noqa: BLE001
        check("client that never reads: commands keep being answered", False, "after %d rounds: %s" % (done, e))
        return
    elapsed = time.monotonic() - t0
    check("client that never reads: %d stop/cont rounds (%d events) answered" % (rounds, 2 * rounds),
          done == rounds, "done %d" % done)
    check("client that never reads: no command waited more than 5 s", worst < 5, "worst %.2f s" % worst)
    check("client that never reads: all rounds in under 40 s", elapsed < 40, "%.1f s" % elapsed)
    check("client that never reads: process alive", vm.alive())
    slow.close()
    st = c.cmd_ok("query-status")
    check("client that never reads: others still served after it leaves", st.get("status") == "running", repr(st))


# ---------------------------------------------------------------------------

def main_test():
    vm = VM([]).launch()
    h = Hostile(vm)
    batch_before_negotiation(h)
    h.alive("before-negotiation batch")
    commands = [x["name"] for x in h.c.cmd_ok("query-commands")]
    for name, fn in (("syntax", batch_syntax), ("utf8", batch_utf8), ("truncated", batch_truncated),
                     ("envelope", batch_envelope)):
        fn(h)
        h.alive("%s batch" % name)
    batch_arguments(h, commands)
    h.alive("arguments batch")
    batch_limits(h)
    h.alive("limits batch")
    batch_binary(h)
    h.alive("binary batch")
    h.sent += disconnects(vm)
    h.alive("disconnect batch")
    slow_reader(vm)
    h.alive("slow reader")
    batch_quit_hostile(h)
    h.alive("quit batch")
    check("at least 100 hostile messages sent (%d)" % h.sent, h.sent >= 100, str(h.sent))
    h.c.cmd("quit")
    check("clean exit after all the abuse", vm.wait_exit(10) == 0, vm.stderr_text()[-500:])


def main():
    migvm.require_binary()
    run("hostile QMP", main_test)
    migvm.finish()


if __name__ == "__main__":
    main()
