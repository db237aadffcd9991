#!/usr/bin/env python3
"""Migration between migvm and the real QEMU 7.2, both with -M none -m 4M.

1. Round trip through saved streams and live channels: a QEMU source holds a
   known pattern (QEMU's `-device loader`) and migrates to migvm, which
   migrates to QEMU, and so on, over exec:/file, tcp and unix, with and
   without the return path.  At every hop the whole RAM (pmemsave on both
   sides) is byte-identical to the expected image, the migration completes
   on both sides and the destination ends in the run state the source had
   (prelaunch, running, paused).  The "timer" section travels unchanged.
2. Corrupted streams: 17 corruptions of a good QEMU stream; a QEMU 7.2
   destination must refuse each (a case it accepts fails) and migvm must
   refuse it too, with exactly the expected error (QEMU's words); the
   number of cases compared is checked. A stream cut right after EOF (no
   vmdesc) loads on both.

migvm keeps running after a failed incoming migration (QEMU exits with
status 1): migration/incoming.c says why; here "refuses" means status
`failed` and the cause on stderr.
"""

import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemulib  # noqa: E402
import qemustream  # noqa: E402
from migvm import check, check_eq, finish, run, new_tmpdir, free_tcp_port, wait_until  # noqa: E402

QEMU = qemulib.require_qemu_and_migvm()
TMP = new_tmpdir()
RAM = qemulib.RAM_SIZE

# The pattern: 3 pages at 0x1000, one page at the last page of RAM, and an
# unaligned 100-byte piece inside page 0x10000.
PATTERN = qemulib.Pattern([(0x1000, qemulib.pattern_bytes(1, 3 * 4096)),
                           (RAM - 4096, qemulib.pattern_bytes(2, 4096)),
                           (0x10010, qemulib.pattern_bytes(3, 100))], RAM, TMP)
STATE = {}


def status_of(q):
    return q.cmd_ok("query-status")["status"]


def set_run_state(q, want):
    """Bring a VM that is prelaunch/running/paused to `want` (prelaunch stays)."""
    cur = status_of(q)
    if want == "running" and cur != "running":
        q.cmd_ok("cont")
    elif want == "paused" and cur == "running":
        q.cmd_ok("stop")
    elif want == "paused" and cur == "prelaunch":
        q.cmd_ok("cont")
        q.cmd_ok("stop")
    return status_of(q)


def incoming_uri(transport):
    if transport == "tcp":
        port = free_tcp_port()
        return "tcp:127.0.0.1:%d" % port, "tcp:127.0.0.1:%d" % port
    if transport == "unix":
        path = os.path.join(new_tmpdir(), "mig.sock")
        return "unix:%s" % path, "unix:%s" % path
    path = os.path.join(new_tmpdir(), "stream.mig")
    return "exec:cat %s" % path, "exec:cat > %s" % path


def migration_events_until(q, final, timeout=5.0):
    """Statuses of the MIGRATION events received, up to `final` (or the timeout)."""
    seen = []
    while not seen or seen[-1] != final:
        e = q.wait_event("MIGRATION", timeout)
        if e is None:
            break
        seen.append(e.get("data", {}).get("status"))
    return seen


def hop(src, sq, dst_kind, transport, rp, want_state, accel="soft", streams="streams"):
    """Migrate src -> a new dst_kind VM (qemulib.start's accel); check
    everything; the first file stream of each writer is kept in
    STATE[streams]; return (dst, dq), or (None, None) when the destination
    did not complete (the round trip cannot go on)."""
    tag = "%s->%s %s%s (%s%s)" % (src.kind, dst_kind, transport, "+return-path" if rp else "", want_state,
                                  ", default accelerator" if accel is None else "")
    got_state = set_run_state(sq, want_state)
    check_eq("%s: source run state before" % tag, got_state, want_state)
    in_uri, out_uri = incoming_uri(transport)
    if transport == "file":
        qemulib.set_caps(sq, events=True, return_path=False)
        sq.cmd_ok("migrate", uri=out_uri)
        info = qemulib.wait_migration(sq, 30)
        check_eq("%s: saving completed" % tag, (info or {}).get("status"), "completed")
        stream_path = in_uri[len("exec:cat "):]
        STATE.setdefault(streams, {}).setdefault(src.kind, stream_path)   # the first pair: same run state
        dst, dq = qemulib.start_negotiated(dst_kind, ["-incoming", in_uri], accel=accel)
        dinfo = qemulib.wait_destination(dst, dq)
        if not check_eq("%s: destination completed" % tag, dinfo.get("status"), "completed"):
            print("   destination stderr: %s" % dst.stderr_text()[-500:])
    else:
        dst, dq = qemulib.start_negotiated(dst_kind, ["-incoming", in_uri], accel=accel)
        qemulib.set_caps(dq, events=True, return_path=rp)
        qemulib.set_caps(sq, events=True, return_path=rp)
        sq.cmd_ok("migrate", uri=out_uri)
        info, dinfo, _ = qemulib.check_completed(tag, src, sq, dst, dq)
        check("%s: source sent RAM stats" % tag, info.get("ram", {}).get("total") == RAM,
              "query-migrate: %r" % (info,))
        check("%s: source MIGRATION events end in completed" % tag,
              migration_events_until(sq, "completed")[-1:] == ["completed"], "events: %r" % sq.events)
        check_eq("%s: source ends in postmigrate" % tag, status_of(sq), "postmigrate")
        if dinfo.get("status") == "completed":
            seen = migration_events_until(dq, "completed")
            check("%s: destination MIGRATION events end in completed" % tag, seen[-1:] == ["completed"],
                  "events: %r" % seen)
    if dinfo.get("status") != "completed":
        return None, None
    check("%s: destination ends in the source's run state" % tag,
          wait_until(lambda: status_of(dq) == want_state, 5),
          "destination %r, source had %r" % (status_of(dq), want_state))
    PATTERN.check_ram("%s: RAM byte-identical at the destination (pmemsave)" % tag, dst, dq)
    src.kill()
    return dst, dq


def test_round_trip():
    src, sq = PATTERN.start_source()
    PATTERN.check_ram("QEMU source: loader pattern is in RAM (pmemsave)", src, sq)
    plan = [("migvm", "file", False, "prelaunch"),
            ("qemu", "file", False, "prelaunch"),
            ("migvm", "tcp", False, "running"),
            ("qemu", "tcp", False, "running"),
            ("migvm", "tcp", True, "paused"),
            ("qemu", "tcp", True, "paused"),
            ("migvm", "unix", False, "paused"),
            ("qemu", "unix", False, "running"),
            ("migvm", "unix", True, "running"),
            ("qemu", "unix", True, "running"),
            ("migvm", "file", False, "running"),
            ("qemu", "file", False, "paused")]
    for dst_kind, transport, rp, state in plan:
        src, sq = hop(src, sq, dst_kind, transport, rp, state)
        if src is None:
            break
    check_streams()


def test_round_trip_default_accelerator():
    """migvm without -accel picks KVM when /dev/kvm is usable; -M none has no
    vCPU, so it must write what QEMU 7.2 -M none -accel kvm writes (no CPU
    or CPU-model section) and load QEMU's streams."""
    why = qemulib.migvm.kvm_usable()
    if why:
        qemulib.migvm.skip("round trip with the default accelerator (KVM)", "KVM not usable (%s)" % why)
        return
    src, sq = PATTERN.start_source(accel=None)
    plan = [("migvm", "file", False, "prelaunch"),
            ("qemu", "file", False, "prelaunch"),
            ("migvm", "tcp", True, "running"),
            ("qemu", "tcp", True, "paused"),
            ("migvm", "unix", False, "paused"),
            ("qemu", "unix", False, "running")]
    for i, (dst_kind, transport, rp, state) in enumerate(plan):
        src, sq = hop(src, sq, dst_kind, transport, rp, state, accel=None, streams="kvm-streams")
        if src is None:
            break
        if dst_kind == "migvm" and i == 0:
            check_eq("migvm without -accel: KVM is the accelerator (query-kvm)", sq.cmd_ok("query-kvm"),
                     {"enabled": True, "present": True})
    check_streams("kvm-streams", " (default accelerator)")


def check_streams(key="streams", label=""):
    """The saved streams of both writers: same sections for -M none, same
    timer and RAM contents."""
    streams = STATE.get(key, {})
    if "qemu" not in streams or "migvm" not in streams:
        check("both writers produced a file stream" + label, False, "have %r" % sorted(streams))
        return
    parsed = {}
    for kind, path in streams.items():
        with open(path, "rb") as f:
            data = f.read()
        try:
            parsed[kind] = qemustream.Stream(data)
        except qemustream.StreamError as e:
            check("%s stream parses%s" % (kind, label), False, e)
            return
    q, m = parsed["qemu"], parsed["migvm"]
    check_eq("migvm stream%s: configuration names the machine" % label, m.machine, q.machine)
    kinds = lambda s: sorted({(x.idstr, x.instance_id, x.version_id) for x in s.sections if x.type in (1, 4)})  # noqa: E731
    check_eq("migvm stream%s: same sections (idstr, instance, version) as QEMU's" % label, kinds(m), kinds(q))
    check_eq("migvm stream%s: same RAM block list" % label, m.block_sizes(), q.block_sizes())
    check_eq("migvm stream%s: timer state carried unchanged" % label, m.full_body("timer"), q.full_body("timer"))
    check_eq("migvm stream%s: globalstate names the run state" % label, m.full_body("globalstate")[4:].rstrip(b"\0"),
             q.full_body("globalstate")[4:].rstrip(b"\0"))
    # An idle 4 MiB -M none guest needs one pass: QEMU writes ~18 KB, and
    # migvm completes as soon as nothing is pending after a sync, as QEMU does.
    check("migvm stream%s: not much larger than QEMU's for the same idle guest" % label,
          len(m.data) <= 4 * len(q.data) + 65536,
          "migvm %d bytes in %d sections, QEMU %d bytes in %d sections" %
          (len(m.data), len(m.sections), len(q.data), len(q.sections)))
    pq, pm = q.pages(), m.pages()
    check("migvm stream%s: every page has the same final contents" % label,
          pm == pq, "pages differ: %r" % sorted(set(k for k in pq if pq.get(k) != pm.get(k)))[:5])
    if key == "streams":
        STATE["good_stream"] = streams["qemu"]


# --------------------------------------------------------------------------
# Corrupted streams

def be32(v):
    return struct.pack(">I", v)


RAM_ERR = "error while loading state for instance 0x0 of device 'ram': "
# Every corruption below makes QEMU 7.2 refuse the stream.
CORRUPTIONS = 17


def corruptions(data):
    """(name, bytes, migvm's error: the exact text after "load of migration
    failed: "; QEMU 7.2's words, with the device's prefix where a loader
    fails)."""
    s = qemustream.Stream(data)
    out = []
    b = bytearray(data)
    b[0:4] = b"QEVX"
    out.append(("bad magic", bytes(b), "Not a migration stream"))
    b = bytearray(data)
    b[4:8] = be32(2)
    out.append(("older version (2)", bytes(b), "SaveVM v2 format is obsolete and don't work anymore"))
    b = bytearray(data)
    b[4:8] = be32(1)
    out.append(("older version (1)", bytes(b), "Unsupported migration stream version"))
    b = bytearray(data)
    b[4:8] = be32(4)
    out.append(("newer version (4)", bytes(b), "Unsupported migration stream version"))
    t = s.section("timer", qemustream.FULL)
    b = bytearray(data)
    b[t.idstr_offset + 1:t.idstr_offset + 6] = b"timex"
    out.append(("unknown section", bytes(b), "Unknown savevm section or instance 'timex' 0. Make sure that your current "
                "VM setup matches your saved VM setup, including any hotplugged devices"))
    b = bytearray(data)
    b[t.version_offset:t.version_offset + 4] = be32(3)
    out.append(("newer section version (timer v3)", bytes(b), "savevm: unsupported version 3 for 'timer' v2"))
    g = s.section("globalstate", qemustream.FULL)
    b = bytearray(data)
    b[g.version_offset:g.version_offset + 4] = be32(0)
    out.append(("older section version (globalstate v0)", bytes(b),
                "error while loading state for instance 0x0 of device 'globalstate': "
                "globalstate: incoming version_id 0 is too old (minimum version_id 1)"))
    b = bytearray(data)
    b[t.footer_offset + 1:t.footer_offset + 5] = be32(0x1234)
    out.append(("bad footer id", bytes(b), "Mismatched section id in footer for timer - read 0x1234 expected 0x0"))
    b = bytearray(data)
    b[t.footer_offset] = 0x7d
    out.append(("missing footer", bytes(b), "Missing section footer for timer"))
    rec = [r for sec in s.sections for r in sec.records]
    at, word, _ = rec[1]                     # a CONTINUE record (no block name)
    flags = word & 0xFFF
    b = bytearray(data)
    b[at:at + 8] = struct.pack(">Q", 0x7FFF0000000 | flags)
    out.append(("bad RAM offset", bytes(b), RAM_ERR + "Illegal RAM offset 7fff0000000 in block ram"))
    b = bytearray(data)
    b[at:at + 8] = struct.pack(">Q", (word - flags) | 0x400 | (flags & 0x20))
    out.append(("bad RAM flags (0x400)", bytes(b), RAM_ERR + "Unknown combination of migration flags: 0x%x"
                % (0x400 | (flags & 0x20))))
    first_part = s.section("ram", qemustream.PART)
    b = bytearray(data)
    b[first_part.body_offset + 8 + 1:first_part.body_offset + 8 + 4] = b"xyz"
    out.append(("unknown RAM block", bytes(b), RAM_ERR + "Can't find block xyz"))
    b = bytearray(data)
    b[first_part.offset] = 0x09
    out.append(("unknown section type", bytes(b), "Unknown savevm section type 9"))
    b = bytearray(data)
    b[s.config_offset + 5:s.config_offset + 9] = b"nonx"
    out.append(("machine mismatch", bytes(b), "Machine type received is 'nonx' and local is 'none'"))
    b = bytearray(data)
    b[s.config_offset] = 0x01
    out.append(("configuration missing", bytes(b), "Configuration section missing"))
    out.append(("truncated in RAM", data[:first_part.body_offset + 3000],
                RAM_ERR + "Failed to read the page at 0x1000 in block ram: Unexpected end of migration stream"))
    out.append(("truncated before EOF", data[:s.eof_offset],
                "Failed to read the next section: Unexpected end of migration stream"))
    return out


def qemu_refuses(path):
    """True/False (exit status 1 within 10 s), and stderr."""
    vm = qemulib.VM(qemulib.machine_args("qemu") + ["-incoming", "exec:cat %s" % path], qmp=False)
    vm.args[0] = QEMU
    vm.launch(wait_sockets=False)
    rc = vm.wait_exit(10)
    err = vm.stderr_text()
    vm.kill()
    return rc is not None and rc != 0, err


def migvm_result(path):
    dst, dq = qemulib.start_negotiated("migvm", ["-incoming", "exec:cat %s" % path])
    info = qemulib.wait_migration(dq, 10)
    status = (info or {}).get("status")
    err = dst.stderr_text() + " " + str((info or {}).get("error-desc", ""))
    alive = dst.alive()
    dst.kill()
    return status, err, alive


def test_corrupted_streams():
    good = STATE.get("good_stream")
    if not good:
        check("a good QEMU stream exists for the corruption tests", False, "round trip did not save one")
        return
    with open(good, "rb") as f:
        data = f.read()
    d = new_tmpdir()
    # Control: cut right after EOF (no vmdesc) loads on both.
    s = qemustream.Stream(data)
    cut = os.path.join(d, "no-vmdesc.mig")
    with open(cut, "wb") as f:
        f.write(data[:s.eof_offset + 1])
    vm, q = qemulib.run_incoming_only("qemu", cut)
    info = qemulib.wait_migration(q, 10)
    check_eq("control: QEMU loads a stream without vmdesc", (info or {}).get("status"), "completed")
    vm.kill()
    status, err, _ = migvm_result(cut)
    check_eq("control: migvm loads a stream without vmdesc", status, "completed")
    cases = corruptions(data)
    compared = 0
    for i, (name, bad, want) in enumerate(cases):
        path = os.path.join(d, "bad%d.mig" % i)
        with open(path, "wb") as f:
            f.write(bad)
        refused, qerr = qemu_refuses(path)
        qline = " | ".join(l for l in qerr.splitlines() if l.strip())[:200]
        # A corruption QEMU 7.2 loads is no test of migvm's refusal: a failure
        # of the case itself, not a case that quietly disappears.
        if not check("corrupt stream '%s': QEMU 7.2 refuses it" % name, refused, "QEMU said: %r" % qline):
            continue
        compared += 1
        status, merr, alive = migvm_result(path)
        check("corrupt stream '%s': QEMU refuses, migvm refuses too" % name, status == "failed",
              "migvm status %r; QEMU said: %s" % (status, qline))
        m = re.search(r"load of migration failed: (.*)", merr)
        mline = m.group(1) if m else merr.strip()[:200]
        check_eq("corrupt stream '%s': migvm's error" % name, mline, want)
        print("   %s: QEMU: %s || migvm: %s" % (name, qline, mline))
    check_eq("corrupted streams: cases compared with QEMU 7.2", (len(cases), compared), (CORRUPTIONS, CORRUPTIONS))


run("round trip QEMU <-> migvm", test_round_trip)
run("round trip QEMU <-> migvm, default accelerator", test_round_trip_default_accelerator)
run("corrupted streams", test_corrupted_streams)
finish()
