#!/usr/bin/env python3
"""Migration failures: cancel, a dying destination, refused connections,
command errors, and hostile migration streams fed to a destination.

* synchronous errors of migrate / migrate-incoming (texts of QEMU 7.2);
* connection refused (tcp, unix) → status failed with error-desc, the
  source keeps running;
* migrate_cancel in setup (the source's connect blocks on a unix listener
  whose backlog is full), in active (bandwidth-starved tcp), and on an exec:
  channel whose command never reads: cancelling → cancelled, the source
  runs on and the guest progresses; a second migrate then completes;
* `migrate` the moment a cancel is reported, 40 times: answered at once
  (the new command must not wait on the previous thread's cleanup with the
  big lock held);
* the destination SIGKILLed mid-stream: failed with the channel's error
  (broken pipe or reset), the source runs on; a retry to a new destination
  completes;
* file:/dev/full: failed with "Unable to write to file: No space left on
  device", the source runs on; a retry completes;
* hostile streams: a good stream (4 MiB pc guest, workload stopped) is
  corrupted (bad magic, versions, missing configuration, machine type,
  section names / instances / versions, footers, RAM offsets, flags, block
  names, commands, flipped header bytes, truncation at many offsets) and fed
  to `-incoming "exec:cat BAD"`: the destination reports failed with an
  error-desc naming the cause and a "load of migration failed: " stderr
  line, stays inmigrate, never runs the guest (not even after `cont`) and
  stays alive with QMP answering.  The good stream (and one cut right after
  EOF, without vmdesc) loads, with memory identical to the source.
"""

import os
import signal
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migvm import (check, check_eq, finish, free_tcp_port, new_tmpdir, require_binary,  # noqa: E402
                   run, track_pid, tsan_build)
from miglib import (MiB, StreamMap, collect_events, descendants_of, drain_events, error_of,  # noqa: E402
                    event_names, expect_qmp_error, peer_gone, sanitizer_report, stuck_unix_listener, write_failed,
                    flip, mig_info, patched, pmemsave, query_status, run_soft_workload_tests, serial_size, set_events,
                    start_vm, wait_mig_status, wait_run_state, wait_serial_growth, wait_until)

MEM = "64M"


def running_source(dirty_rate=None):
    src = start_vm(MEM, dirty_rate=dirty_rate)
    qs = src.qmp()
    set_events(qs)
    if not wait_until(lambda: serial_size(src.serial_path) >= 2, 10):
        raise RuntimeError("source workload not running")
    return src, qs


def tcp_dest(paused=False):
    dst = start_vm(MEM, incoming="tcp:127.0.0.1:0", paused=paused)
    qd = dst.qmp()
    set_events(qd)
    return dst, qd, "tcp:127.0.0.1:%s" % mig_info(qd)["socket-address"][0]["port"]


def source_survives(name, src, qs):
    check("%s: source running" % name, wait_run_state(qs, "running", 5), query_status(qs))
    check("%s: source guest progresses" % name, wait_serial_growth(src.serial_path, 10))


def unlimited_to_completion(qs):
    """Parameters for a migration of the unthrottled guest that must complete.
    Under ThreadSanitizer the migration sends more slowly than the soft
    guest dirties RAM (see test-migration-bandwidth.py), so it would never
    converge: there the downtime limit is lifted too."""
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=0)
    if tsan_build():
        qs.cmd_ok("migrate-set-parameters", downtime_limit=2000000)


def slow_migration():
    """A running source migrating at 4 MiB/s to a TCP destination:
    (src, qs, dst, qd)."""
    src, qs = running_source()
    dst, qd, uri = tcp_dest()
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=4 * MiB)
    qs.cmd_ok("migrate", uri=uri)
    return src, qs, dst, qd


def second_migration_completes(name, src, qs):
    dst, qd, uri = tcp_dest()
    unlimited_to_completion(qs)
    r = qs.cmd("migrate", uri=uri)
    check_eq("%s: second migrate accepted" % name, r, {"return": {}})
    info = wait_mig_status(qs, ("completed", "failed", "cancelled"), 30)
    check_eq("%s: second migration completed" % name, (info or {}).get("status"), "completed")
    check("%s: new destination runs" % name, wait_run_state(qd, "running", 10) and
          wait_serial_growth(dst.serial_path, 10))
    expect_qmp_error("%s: migrate from postmigrate" % name, qs.cmd("migrate", uri=uri),
                     "Can't migrate the vm that was paused due to previous migration")


# ---------------------------------------------------------------------------


def test_command_errors():
    vm = start_vm("16M", dirty_rate=1)
    q = vm.qmp()
    set_events(q)
    r = q.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
    check_eq("migrate-incoming without -incoming", error_of(r),
             ("GenericError", "'-incoming' was not specified on the command line"))
    check_eq("migrate_cancel with nothing to cancel", q.cmd("migrate_cancel"), {"return": {}})
    check_eq("no migration yet", mig_info(q), {})
    # As QEMU 7.2: an error found after migrate started its state (URI, fd,
    # address) is returned *and* leaves the migration failed (setup → failed).
    for uri, text in (("bogus:1", "Parameter 'uri' expects a valid migration protocol"),
                      ("", "Parameter 'uri' expects a valid migration protocol"),
                      ("http://x", "Parameter 'uri' expects a valid migration protocol"),
                      ("fd:nosuch", "File descriptor named 'nosuch' has not been found"),
                      ("tcp:127.0.0.1", "error parsing address '127.0.0.1'")):
        r = q.cmd("migrate", uri=uri)
        check_eq("migrate %r: error" % uri, error_of(r), ("GenericError", text))
        info = mig_info(q)
        expected = {"status": "failed"}
        if not text.startswith("Parameter"):
            expected["error-desc"] = text
        check_eq("migrate %r: query-migrate afterwards (QEMU 7.2)" % uri, info, expected)
        names = [n for n in event_names(drain_events(q, 0.2)) if n.startswith("MIGRATION")]
        check_eq("migrate %r: events (QEMU 7.2)" % uri, names, ["MIGRATION:setup", "MIGRATION:failed"])
    check_eq("source still running", query_status(q), "running")

    dst = start_vm("16M", incoming="tcp:127.0.0.1:0", serial=False)
    qd = dst.qmp()
    r = qd.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
    check_eq("second migrate-incoming (-incoming URI)", error_of(r),
             ("GenericError", "The incoming migration has already been started"))
    expect_qmp_error("migrate on a destination", qd.cmd("migrate", uri="tcp:127.0.0.1:1"),
                     "Guest is waiting for an incoming migration")

    dd = start_vm("16M", incoming="defer", serial=False)
    qdd = dd.qmp()
    r = qdd.cmd("migrate-incoming", uri="bogus:1")
    check_eq("migrate-incoming bad scheme", error_of(r), ("GenericError", "unknown migration protocol: bogus:1"))
    r = qdd.cmd("migrate-incoming", uri="fd:nosuch")
    check_eq("migrate-incoming fd:nosuch", error_of(r),
             ("GenericError", "File descriptor named 'nosuch' has not been found"))
    check_eq("migrate-incoming after defer", qdd.cmd("migrate-incoming", uri="tcp:127.0.0.1:0"), {"return": {}})
    names = event_names(drain_events(qdd, 0.2))
    check_eq("migrate-incoming: MIGRATION setup even with the events capability off (7.2)", names, ["MIGRATION:setup"])
    r = qdd.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
    check_eq("second migrate-incoming (defer)", error_of(r),
             ("GenericError", "The incoming migration has already been started"))
    info = mig_info(qdd)
    addrs = info.get("socket-address") or [{}]
    check_eq("deferred destination listens: query-migrate (QEMU 7.2: no status)",
             (sorted(info.keys()), addrs[0].get("type"), addrs[0].get("host")),
             (["socket-address"], "inet", "127.0.0.1"))


def test_connection_refused():
    src, qs = running_source(dirty_rate=50)
    port = free_tcp_port()
    check_eq("refused: migrate returns {}", qs.cmd("migrate", uri="tcp:127.0.0.1:%d" % port), {"return": {}})
    info = wait_mig_status(qs, ("failed", "completed", "active"), 10)
    check_eq("refused: status failed", (info or {}).get("status"), "failed")
    check_eq("refused: error-desc", (info or {}).get("error-desc"),
             "Failed to connect to '127.0.0.1:%d': Connection refused" % port)
    check_eq("refused: failed members", set((info or {}).keys()), {"status", "error-desc"})
    names = [n for n in event_names(collect_events(qs, "failed", 3)) if n.startswith("MIGRATION:")]
    check_eq("refused: events", names, ["MIGRATION:setup", "MIGRATION:failed"])
    source_survives("refused", src, qs)
    path = os.path.join(new_tmpdir(), "nobody.sock")
    qs.cmd_ok("migrate", uri="unix:%s" % path)
    info = wait_mig_status(qs, ("failed", "completed", "active"), 10)
    check("unix nobody: failed, error names the path",
          info and info.get("status") == "failed" and path in info.get("error-desc", "")
          and "No such file or directory" in info.get("error-desc", ""), info)
    source_survives("unix nobody", src, qs)


def test_cancel_in_setup():
    name = "cancel in setup"
    src, qs = running_source(dirty_rate=50)
    path = os.path.join(new_tmpdir(), "stuck.sock")
    socks = stuck_unix_listener(path)
    try:
        qs.cmd_ok("migrate", uri="unix:%s" % path)
        stays = wait_until(lambda: mig_info(qs).get("status") != "setup", 0.5)
        check("%s: status stays setup while connect() waits" % name, stays is None, mig_info(qs))
        check_eq("%s: setup members" % name, set(mig_info(qs).keys()), {"status"})
        check_eq("%s: migrate_cancel" % name, qs.cmd("migrate_cancel"), {"return": {}})
        info = wait_mig_status(qs, ("cancelled", "failed", "completed"), 5)
        check_eq("%s: cancelled within 5 s (listener still stuck)" % name, (info or {}).get("status"), "cancelled",)
    finally:
        for c in socks:
            c.close()
    info = wait_mig_status(qs, ("cancelled", "failed", "completed"), 10)
    check_eq("%s: ends cancelled" % name, (info or {}).get("status"), "cancelled")
    names = [n for n in event_names(collect_events(qs, ("cancelled", "failed"), 5)) if n.startswith("MIGRATION:")]
    check_eq("%s: events" % name, names, ["MIGRATION:setup", "MIGRATION:cancelling", "MIGRATION:cancelled"])
    source_survives(name, src, qs)
    second_migration_completes(name, src, qs)


def test_cancel_in_active():
    name = "cancel in active"
    src, qs, dst, qd = slow_migration()
    info = wait_mig_status(qs, ("active", "failed", "completed"), 10)
    check_eq("%s: active" % name, (info or {}).get("status"), "active")
    check("%s: more than 2 MiB sent before the cancel" % name,
          wait_until(lambda: mig_info(qs).get("ram", {}).get("transferred", 0) > 2 * MiB, 5), mig_info(qs))
    check_eq("%s: still active at the cancel" % name, mig_info(qs).get("status"), "active")
    check_eq("%s: migrate_cancel" % name, qs.cmd("migrate_cancel"), {"return": {}})
    info = wait_mig_status(qs, ("cancelled", "failed", "completed"), 5)
    check_eq("%s: cancelled" % name, (info or {}).get("status"), "cancelled")
    check_eq("%s: cancelled members" % name, set((info or {}).keys()), {"status"})
    names = [n for n in event_names(collect_events(qs, ("cancelled", "failed"), 5)) if n.startswith("MIGRATION:")]
    check_eq("%s: events" % name, names,
             ["MIGRATION:setup", "MIGRATION:active", "MIGRATION:cancelling", "MIGRATION:cancelled"])
    check_eq("%s: no STOP on the source" % name, [e for e in qs.events if e.get("event") == "STOP"], [])
    source_survives(name, src, qs)
    dinfo = wait_mig_status(qd, ("failed", "completed"), 10)
    check_eq("%s: destination load failed" % name, (dinfo or {}).get("status"), "failed")
    check_eq("%s: destination never ran" % name, query_status(qd), "inmigrate")
    check_eq("%s: destination serial empty" % name, serial_size(dst.serial_path), 0)
    check("%s: destination alive" % name, dst.alive())
    # migvm keeps the failed destination: a new migrate-incoming may retry on it.
    r = qd.cmd("migrate-incoming", uri="tcp:127.0.0.1:0")
    check_eq("%s: migrate-incoming again on the failed destination" % name, r, {"return": {}})
    port = (mig_info(qd).get("socket-address") or [{}])[0].get("port")
    unlimited_to_completion(qs)
    check_eq("%s: second migrate to the same destination" % name, qs.cmd("migrate", uri="tcp:127.0.0.1:%s" % port),
             {"return": {}})
    info = wait_mig_status(qs, ("completed", "failed", "cancelled"), 30)
    check_eq("%s: second migration completed" % name, (info or {}).get("status"), "completed")
    check("%s: retried destination runs the guest" % name,
          wait_run_state(qd, "running", 10) and wait_serial_growth(dst.serial_path, 10))


def test_cancel_stalled_exec():
    name = "cancel stalled exec"
    src, qs = running_source()
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=0)
    qs.cmd_ok("migrate", uri="exec:sleep 30; true")    # never reads: the pipe fills up
    info = wait_mig_status(qs, ("active", "failed", "completed"), 10)
    check_eq("%s: active" % name, (info or {}).get("status"), "active")
    # sh and its sleep (the `; true` keeps sh from exec'ing it): killed at the end whatever migvm does.
    wait_until(lambda: len(descendants_of(src.pid)) >= 2, 5)
    for pid in descendants_of(src.pid):
        track_pid(pid)
    stuck = wait_until(lambda: mig_info(qs).get("status") != "active", 0.5)
    check("%s: stays active (pipe full)" % name, stuck is None, mig_info(qs))
    t0 = time.monotonic()
    check_eq("%s: migrate_cancel" % name, qs.cmd("migrate_cancel"), {"return": {}})
    info = wait_mig_status(qs, ("cancelled", "failed", "completed"), 5)
    check_eq("%s: cancelled within 5 s" % name, (info or {}).get("status"), "cancelled")
    print("#   %s: cancel took %.2f s" % (name, time.monotonic() - t0))
    source_survives(name, src, qs)


def test_migrate_right_after_cancel():
    """`migrate` the moment query-migrate says cancelled, 40 times: the old
    migration thread may still be cleaning up (it takes the BQL to restart
    the guest), and the new command once waited for it with the BQL held,
    hanging the whole process (QMP silent). Each new migrate must answer at
    once and fail on its refused port; the source runs on."""
    src, qs = running_source()
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=4 * MiB)
    answered = 0
    for i in range(40):
        qs.cmd_ok("migrate", uri="exec:cat > /dev/null")
        if not wait_until(lambda: mig_info(qs).get("status") == "active", 5):
            check("migrate right after cancel #%d: active before the cancel" % i, False, repr(mig_info(qs)))
            break
        qs.cmd_ok("migrate_cancel")
        wait_until(lambda: mig_info(qs).get("status") == "cancelled", 5, interval=0.001)
        try:
            r = qs.cmd("migrate", uri="tcp:127.0.0.1:%d" % free_tcp_port())
        except Exception as e:          # the hang: no answer within the client's deadline
            check("migrate right after cancel #%d answers" % i, False, repr(e))
            return
        if r != {"return": {}}:
            check_eq("migrate right after cancel #%d accepted" % i, r, {"return": {}})
            break
        if not wait_mig_status(qs, ("failed",), 10):
            check("migrate right after cancel #%d fails on the refused port" % i, False, repr(mig_info(qs)))
            break
        answered += 1
    check_eq("migrate right after a cancel: answered and failed cleanly", answered, 40)
    source_survives("after 40 cancel/migrate rounds", src, qs)


def test_destination_killed():
    name = "destination killed"
    src, qs, dst, qd = slow_migration()
    check("%s: some data sent" % name,
          wait_until(lambda: mig_info(qs).get("ram", {}).get("transferred", 0) > 2 * MiB, 10), mig_info(qs))
    check_eq("%s: destination active" % name, mig_info(qd).get("status"), "active")
    dst.signal(signal.SIGKILL)
    dst.wait_exit(5)
    info = wait_mig_status(qs, ("failed", "cancelled", "completed"), 10)
    check_eq("%s: source status failed" % name, (info or {}).get("status"), "failed")
    desc = (info or {}).get("error-desc", "")
    check("%s: error-desc says the peer went away (%r)" % (name, desc), peer_gone(desc), info)
    names = [n for n in event_names(collect_events(qs, "failed", 5)) if n.startswith("MIGRATION:")]
    check_eq("%s: events" % name, names, ["MIGRATION:setup", "MIGRATION:active", "MIGRATION:failed"])
    check("%s: stderr reports the failure" % name, "migration failed" in src.stderr_text(), src.stderr_text()[-300:])
    source_survives(name, src, qs)
    second_migration_completes(name, src, qs)


def test_write_error():
    """file:/dev/full: every write fails with ENOSPC. The source reports it
    (status failed, error-desc with the system's words, a stderr line) and
    its guest runs on; a retry to a real destination completes."""
    name = "write error"
    src, qs = running_source(dirty_rate=50)
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=0)
    check_eq("%s: migrate file:/dev/full accepted" % name, qs.cmd("migrate", uri="file:/dev/full"), {"return": {}})
    info = wait_mig_status(qs, ("failed", "cancelled", "completed"), 10)
    check_eq("%s: status failed" % name, (info or {}).get("status"), "failed")
    check_eq("%s: failed members" % name, set((info or {}).keys()), {"status", "error-desc"})
    desc = (info or {}).get("error-desc", "")
    check("%s: error-desc says the write failed for lack of space (%r)" % (name, desc),
          write_failed(desc, "Unable to write to file: No space left on device"), info)
    names = [n for n in event_names(collect_events(qs, "failed", 5)) if n.startswith("MIGRATION:")]
    check_eq("%s: events" % name, names, ["MIGRATION:setup", "MIGRATION:active", "MIGRATION:failed"])
    check_eq("%s: stderr line" % name, src.stderr_text(), "migvm: migration failed: %s\n" % desc)
    source_survives(name, src, qs)
    second_migration_completes(name, src, qs)


# ---------------------------------------------------------------------------
# Hostile streams


def make_good_stream():
    """A 4 MiB pc guest whose workload ran a little and was stopped."""
    src = start_vm("4M", dirty_rate=20)
    q = src.qmp()
    if not wait_until(lambda: serial_size(src.serial_path) >= 3, 10):
        raise RuntimeError("workload did not run")
    q.cmd_ok("stop")
    path = os.path.join(src.dir, "good.mig")
    q.cmd_ok("migrate", uri="exec:cat > %s" % path)
    info = wait_mig_status(q, ("completed", "failed"), 10)
    if (info or {}).get("status") != "completed":
        raise RuntimeError("could not produce the good stream: %r" % info)
    with open(path, "rb") as f:
        data = f.read()
    mem = pmemsave(q, os.path.join(src.dir, "src.mem"), 0, 4 * MiB)
    return data, mem


def corruptions(data):
    m = StreamMap(data)
    be32 = lambda v: struct.pack(">I", v)          # noqa: E731
    be64 = lambda v: struct.pack(">Q", v)          # noqa: E731
    start = m.section("ram", 1)
    part = m.section("ram", 2)
    timer = m.section("timer")
    serial = m.section("serial")
    gstate = m.section("globalstate")
    page_recs = [r for r in m.ram_records if r[1] & 0x08]
    zero_recs = [r for r in m.ram_records if r[1] & 0x02]
    first_rec = m.ram_records[0]
    pg = page_recs[len(page_recs) // 2]
    out = [
        ("bad magic", flip(data, 0), "Not a migration stream"),
        ("version 2", patched(data, 4, be32(2)), "SaveVM v2 format is obsolete"),
        ("version 4", patched(data, 4, be32(4)), "Unsupported migration stream version"),
        ("no configuration", data[:8] + data[m.config_name_off + len(m.config_name):], "Configuration section missing"),
        ("wrong machine type", patched(data, m.config_name_off, b"xx"), "Machine type received is 'xx'"),
        ("unknown section name", patched(data, timer["name_off"], b"tamer"), "Unknown savevm section or instance 'tamer'"),
        ("unknown instance", patched(data, serial["name_off"] + len("serial"), be32(7)),
         "Unknown savevm section or instance 'serial' 7"),
        ("section version too new", patched(data, timer["version_off"], be32(99)), "timer"),
        ("RAM version 5", patched(data, start["version_off"], be32(5)), "unsupported version 5 for 'ram'"),
        ("RAM offset out of range", patched(data, pg[0], be64(0x7FFF0000000 | pg[1])), "Illegal RAM offset"),
        ("RAM offset = block size", patched(data, pg[0], be64(4 * MiB | pg[1])), "Illegal RAM offset"),
        ("RAM flag 0x400", patched(data, pg[0], be64(pg[2] | 0x400 | (pg[1] & 0x20))), "Unknown combination of migration flags"),
        ("RAM FULL flag", patched(data, pg[0], be64(pg[2] | 0x01 | (pg[1] & 0x20))), "Unknown combination of migration flags"),
        ("CONTINUE before any block", patched(data, first_rec[0], be64(first_rec[2] | first_rec[1] | 0x20)), "bad migration stream"),
        ("unknown RAM block in page record", patched(data, first_rec[0] + 9, b"xx.ram"), "xx.ram"),
        ("unknown RAM block in block list", patched(data, start["body_off"] + 9, b"pc.rax"), "Unknown ramblock"),
        ("RAM block length mismatch", patched(data, start["body_off"] + 8 + 1 + 6, be64(8 * MiB)), "pc.ram"),
        ("zero page fill byte 0x55", patched(data, zero_recs[-1][0] + 8 + (0 if zero_recs[-1][1] & 0x20 else 7), b"\x55"),
         "fill byte"),
        ("PART of unknown section", patched(data, part["off"] + 1, be32(77)), "Unknown savevm section 77"),
        ("footer missing", patched(data, timer["footer_off"], b"\x7f"), "Missing section footer for timer"),
        ("footer id mismatch", patched(data, timer["footer_off"] + 1, be32(9)), "Mismatched section id in footer for timer"),
        ("unknown section type 9", patched(data, timer["off"], b"\x09"), "Unknown savevm section type 9"),
        ("EOF byte replaced", patched(data, m.eof_off, b"\xff"), "Unknown savevm section type 255"),
        ("unknown command", data[:m.config_name_off + len(m.config_name)] + b"\x08\x00\x63\x00\x00"
         + data[m.config_name_off + len(m.config_name):], "MIG_CMD 0x63 unknown"),
        ("PING without return path", data[:m.config_name_off + len(m.config_name)] + b"\x08\x00\x02\x00\x04\x00\x00\x00\x01"
         + data[m.config_name_off + len(m.config_name):], "no return path"),
        ("unknown run state", patched(data, gstate["body_off"] + 4, b"pxused"), "run state"),
        ("duplicate FULL section", data[:m.eof_off] + data[timer["off"]:timer["footer_off"] + 5] + data[m.eof_off:],
         "timer"),
    ]
    # Flipped bytes in headers: file header, configuration, every section header and footer, EOF.
    positions = [0, 3, 5, 7, 8, 12, 13]
    for s in (start, part, timer, serial, gstate):
        positions += [s["off"], s["off"] + 1, s["off"] + 4, s["footer_off"], s["footer_off"] + 4]
    positions += [start["name_off"], start["version_off"] + 3, timer["name_off"] - 1, m.eof_off]
    positions = sorted(set(positions))
    for p in positions:
        out.append(("flip byte %d" % p, flip(data, p), None))
    # Truncations: header, setup, record words, mid-page, device sections, right before EOF.
    cuts = [0, 2, 4, 8, 10, 14, start["off"] + 3, start["body_off"] + 4, part["off"], part["body_off"] + 3,
            pg[0] + 4, pg[0] + 8, pg[0] + 8 + 2048, pg[0] + 8 + 4095, page_recs[-1][0] + 100,
            part["footer_off"], part["footer_off"] + 3, timer["off"] + 2, timer["body_off"] + 10,
            serial["body_off"] + 1, gstate["body_off"] + 50, gstate["footer_off"] + 2, m.eof_off]
    for c in sorted(set(cuts)):
        out.append(("truncated at %d of %d" % (c, len(data)), data[:c], None))
    return out


def load_stream(data, machine=None, mem="4M"):
    d = new_tmpdir()
    path = os.path.join(d, "in.mig")
    with open(path, "wb") as f:
        f.write(data)
    vm = start_vm(mem, incoming="exec:cat %s" % path, machine=machine)
    q = vm.qmp()
    info = wait_mig_status(q, ("completed", "failed"), 10)
    return vm, q, info


def expect_rejected(name, data, cause, machine=None, retry=None):
    """retry = (good stream path, source memory): after the failure, a
    migrate-incoming of the good stream on the same process must load it
    (migvm keeps a failed destination alive for that) with the source's memory."""
    vm, q, info = load_stream(data, machine=machine)
    info = info or mig_info(q)
    desc = info.get("error-desc", "")
    ok = check("%s: failed" % name, info.get("status") == "failed" and desc, info)
    if cause:
        check("%s: error-desc names the cause (%r)" % (name, cause), cause in desc, desc)
    if ok:
        line = [ln for ln in vm.stderr_text().splitlines() if "load of migration failed: " in ln]
        check("%s: stderr 'load of migration failed: ...'" % name, line and desc in line[0], vm.stderr_text()[-300:])
    check_eq("%s: stays inmigrate" % name, query_status(q), "inmigrate")
    q.cmd("cont")
    check("%s: cont does not run the guest" % name,
          query_status(q) != "running" and not wait_serial_growth(vm.serial_path, 0.05),
          (query_status(q), serial_size(vm.serial_path)))
    check("%s: alive, QMP answers" % name, vm.alive() and "return" in q.cmd("query-migrate"))
    if retry:
        r = q.cmd("migrate-incoming", uri="exec:cat %s" % retry[0])
        check_eq("%s: migrate-incoming retry accepted" % name, r, {"return": {}})
        info = wait_mig_status(q, ("completed", "failed"), 10) or {}
        check_eq("%s: retry with the good stream completes" % name, info.get("status"), "completed")
        if info.get("status") == "completed":
            mem = pmemsave(q, os.path.join(vm.dir, "retry.mem"), 0, 4 * MiB)
            check("%s: retry: memory identical to the source" % name, mem == retry[1])
            check_eq("%s: retry: paused like the source" % name, query_status(q), "paused")
    report = sanitizer_report(vm)
    check("%s: no sanitizer report" % name, not report, report)
    vm.kill()


def test_hostile_streams():
    data, src_mem = make_good_stream()
    print("#   good stream: %d bytes" % len(data))
    vm, q, info = load_stream(data)
    check_eq("good stream loads", (info or {}).get("status"), "completed")
    check_eq("good stream: destination paused (source was stopped)", query_status(q), "paused")
    dst_mem = pmemsave(q, os.path.join(vm.dir, "dst.mem"), 0, 4 * MiB)
    check("good stream: memory identical to the source", dst_mem == src_mem)
    vm.kill()
    m = StreamMap(data)
    vm, q, info = load_stream(data[:m.eof_off + 1])
    check_eq("cut right after EOF (no vmdesc) loads", (info or {}).get("status"), "completed")
    vm.kill()
    vm, q, info = load_stream(data[:m.eof_off + 10])
    check_eq("cut inside vmdesc loads (vmdesc is optional)", (info or {}).get("status"), "completed")
    vm.kill()
    expect_rejected("good stream into -M none", data, "Machine type received is 'pc' and local is 'none'",
                    machine="none")
    t0 = time.monotonic()
    good_path = os.path.join(new_tmpdir(), "good.mig")
    with open(good_path, "wb") as f:
        f.write(data)
    cases = corruptions(data)
    retry_for = {"bad magic", "wrong machine type", "RAM offset out of range", "unknown RAM block in page record",
                 "footer id mismatch", "unknown run state", "duplicate FULL section"}
    for i, (name, bad, cause) in enumerate(cases):
        # Retries after a sample: named cases, and every 6th (flips, mid-page truncations...).
        retry = (good_path, src_mem) if name in retry_for or i % 6 == 0 else None
        expect_rejected(name, bad, cause, retry=retry)
    print("#   %d corrupted streams in %.1f s" % (len(cases), time.monotonic() - t0))


def main():
    require_binary()
    t0 = time.monotonic()
    run("command errors", test_command_errors)
    tests = [("connection refused", test_connection_refused), ("cancel in setup", test_cancel_in_setup),
             ("cancel in active", test_cancel_in_active), ("cancel stalled exec", test_cancel_stalled_exec),
             ("migrate right after cancel", test_migrate_right_after_cancel),
             ("destination killed", test_destination_killed), ("write error", test_write_error),
             ("hostile streams", test_hostile_streams)]
    run_soft_workload_tests(tests)
    print("# total %.1f s" % (time.monotonic() - t0))
    finish()


if __name__ == "__main__":
    main()
