#!/usr/bin/python3
"""Postcopy RAM migration (capability postcopy-ram, migrate-start-postcopy),
migvm to migvm, in QEMU 7.2's names and wire format (shared docs:
postcopy.md).

  * parity: migrate-start-postcopy without the capability, and with it but
    no migration, answers as QEMU 7.2 (GenericError, its text), QMP and HMP.
  * soft guest over unix: postcopy started while the first pass is still
    running; both sides go active -> postcopy-active -> completed (events),
    the source STOPs, the destination RESUMEs before completion, the
    destination asked for pages (postcopy-requests), its workload keeps
    running and its memory holds the pattern (a page missing or stale breaks
    it); the source stays in postmigrate and refuses cont.
  * KVM ring-3 guest: one postcopy over tcp started before the first pass
    ends, then a second over unix after two passes; the guest's own checks
    stay clean across the three processes (seq without a gap, errors=0), and
    the destination reports postcopy-blocktime for its vCPU.
  * KVM ring-3 guest writing a virtio disk on shared storage: postcopy with
    the destination's device emulation moving data into guest buffers that
    may still be missing; the guest's disk passes stay ok.
  * failure after the switch: the destination is killed during a slow
    postcopy (max-postcopy-bandwidth); the source pauses (postcopy-paused,
    as QEMU 7.2: test-postcopy-recovery.py resumes such migrations), stays
    stopped and refuses cont; migrate_cancel then ends it cancelled, the
    source in postmigrate until cont x-force-after-migration. migrate_cancel
    during postcopy-active ends cancelled with the source stopped the same
    way (QEMU 7.2 also stays in postmigrate there, but its cont runs the
    stale copy). A source killed during postcopy pauses the destination
    (postcopy-paused), whose guest stays alive waiting for a recovery.
  * a page that was zero in precopy (never written on the source: sent as a
    ZERO record, which the destination may leave unpopulated) read on the
    destination during a long postcopy answers at once: the destination
    counts it as received, so a fault on it would never be served.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
from migvm import check, check_eq, new_tmpdir, read_bytes, run, skip, wait_until  # noqa: E402
from miglib import (MiB, check_memory_pattern, collect_events, event_names, is_subsequence,  # noqa: E402
                    mig_info, pmemsave, qemu_convergence, query_status, set_caps, set_events, start_kvm_guest,
                    start_vm, wait_mig_status, wait_serial_growth)
from ring3lib import IMAGE, MEM, parse  # noqa: E402
import disklib  # noqa: E402

# The ring-3 guest's timer-pace checks trip on a loaded 2-core host now and then
# (test-ring3-guest.py is where they are tested).
TIMER_PACE = re.compile(r"ERROR: (pit slow|pit stalled|lapic stalled|no timer ticks)")

POSTCOPY = {"postcopy-ram": True}
NOT_ENABLED = "Enable postcopy with migrate_set_capability before the start of migration"
NOT_STARTED = "Postcopy must be started after migration has been started"


def expect_error(name, resp, text):
    err = resp.get("error", {})
    check(name, err.get("class") == "GenericError" and err.get("desc") == text, resp)


def test_parity():
    vm = start_vm(mem="64M", hmp=True)
    q = vm.qmp()
    expect_error("parity: start-postcopy without the capability", q.cmd("migrate-start-postcopy"), NOT_ENABLED)
    h = vm.hmp()
    check_eq("parity: HMP migrate_start_postcopy without the capability", h.cmd("migrate_start_postcopy"),
             "Error: " + NOT_ENABLED + "\r\n")
    set_caps(q, **POSTCOPY)
    expect_error("parity: start-postcopy before any migration", q.cmd("migrate-start-postcopy"), NOT_STARTED)
    caps = {c["capability"]: c["state"] for c in q.cmd_ok("query-migrate-capabilities")}
    check("parity: capability postcopy-ram shows as on", caps.get("postcopy-ram") is True, caps)
    vm.kill()


def start_pair(mem, incoming, extra_dst=()):
    src = start_vm(mem=mem)
    dst = start_vm(mem=mem, incoming="defer", extra=extra_dst)
    qs, qd = src.qmp(), dst.qmp()
    for q in (qs, qd):
        set_events(q)
        set_caps(q, **POSTCOPY)
    qd.cmd_ok("migrate-incoming", uri=incoming)
    return src, dst, qs, qd


def test_soft_unix():
    sock = os.path.join(new_tmpdir(), "m.sock")
    src, dst, qs, qd = start_pair("128M", "unix:" + sock)
    # Every page written at least once (a 'B' per pass), so none is zero.
    check("soft: the workload made a pass", wait_until(lambda: b"B" in read_bytes(src.serial_path), 20.0), "")
    # The background stream slower than the workload's sweep: it faults.
    qs.cmd_ok("migrate-set-parameters", {"max-bandwidth": 64 * MiB, "max-postcopy-bandwidth": 64 * MiB})
    qs.cmd_ok("migrate", uri="unix:" + sock)
    wait_until(lambda: mig_info(qs).get("ram", {}).get("transferred", 0) > 4 * MiB, 10.0)
    info = mig_info(qs)
    check("soft: the first pass is still running at the switch",
          info.get("status") == "active" and info["ram"]["dirty-sync-count"] == 1 and
          info["ram"]["remaining"] > 64 * MiB, info)
    qs.cmd_ok("migrate-start-postcopy")
    src_ev = event_names(collect_events(qs, ("completed", "failed"), 30.0))
    dst_ev = event_names(collect_events(qd, ("completed", "failed"), 30.0))
    check("soft: source events active, postcopy-active, STOP, completed",
          is_subsequence(["MIGRATION:active", "MIGRATION:postcopy-active", "MIGRATION:completed"], src_ev) and
          "STOP" in src_ev and src_ev.index("STOP") < src_ev.index("MIGRATION:completed"), src_ev)
    check("soft: destination events active, postcopy-active, RESUME, completed",
          is_subsequence(["MIGRATION:active", "MIGRATION:postcopy-active", "RESUME", "MIGRATION:completed"],
                         dst_ev), dst_ev)
    info = mig_info(qs)
    ram = info.get("ram", {})
    check("soft: source completed", info.get("status") == "completed", info)
    check("soft: the destination asked for pages", ram.get("postcopy-requests", 0) > 0, ram)
    check("soft: most of RAM went in postcopy", ram.get("postcopy-bytes", 0) > 64 * MiB, ram)
    check_eq("soft: destination completed", mig_info(qd).get("status"), "completed")
    check("soft: the workload runs on the destination", wait_serial_growth(dst.serial_path, 10.0), "")
    qd.cmd_ok("stop")
    ok, detail = check_memory_pattern(pmemsave(qd, os.path.join(new_tmpdir(), "dump"), 0, 128 * MiB))
    check("soft: destination memory holds the workload's pattern", ok, detail)
    check_eq("soft: source stays in postmigrate", query_status(qs), "postmigrate")
    check("soft: cont refused on the source", "error" in qs.cmd("cont"), "")
    src.kill()
    dst.kill()


def ring3_status(*vms):
    return parse(b"".join(read_bytes(v.serial_path) for v in vms))


def kvm_hop(src, q_src, uri, incoming_uri, early, label):
    """One postcopy hop of the ring-3 guest to a new destination."""
    dst = start_kvm_guest(IMAGE, MEM, incoming="defer")
    qd = dst.qmp()
    for q in (q_src, qd):
        set_caps(q, **POSTCOPY, **{"postcopy-blocktime": True})
    qd.cmd_ok("migrate-incoming", uri=incoming_uri)
    q_src.cmd_ok("migrate-set-parameters", {"max-bandwidth": 32 * MiB})
    q_src.cmd_ok("migrate", uri=uri)
    if early:
        wait_until(lambda: mig_info(q_src).get("ram", {}).get("transferred", 0) > 2 * MiB, 10.0)
        info = mig_info(q_src)
        check("%s: started before the first pass ends" % label,
              info.get("status") == "active" and info["ram"]["dirty-sync-count"] == 1, info)
    else:
        got = wait_until(lambda: mig_info(q_src).get("ram", {}).get("dirty-sync-count", 0) >= 2, 30.0)
        check("%s: started after two passes" % label, got, mig_info(q_src))
    q_src.cmd_ok("migrate-start-postcopy")
    info = wait_mig_status(q_src, ("completed", "failed"), 60.0)
    check("%s: completed" % label, info and info.get("status") == "completed", (info, src.stderr_text()[-400:]))
    dinfo = wait_mig_status(qd, ("completed", "failed"), 30.0) or {}
    check("%s: destination reports blocktime for its vCPU" % label,
          "postcopy-blocktime" in dinfo and len(dinfo.get("postcopy-vcpu-blocktime", [])) == 1, dinfo)
    return dst, qd


def test_kvm():
    d = new_tmpdir()
    src = start_kvm_guest(IMAGE, MEM, tmpdir=d)
    if not check("kvm: the guest runs (3 lines)", wait_until(lambda: len(ring3_status(src)[0]) >= 3, 40.0),
                 read_bytes(src.serial_path)[-400:]):
        return
    qs = src.qmp()
    port = migvm.free_tcp_port()
    dst1, qd1 = kvm_hop(src, qs, "tcp:127.0.0.1:%d" % port, "tcp:127.0.0.1:%d" % port, True, "kvm tcp")
    n = len(ring3_status(src, dst1)[0])
    check("kvm: the guest goes on after the first hop",
          wait_until(lambda: len(ring3_status(src, dst1)[0]) >= n + 2, 20.0), dst1.stderr_text()[-400:])
    sock = os.path.join(d, "m2.sock")
    dst2, qd2 = kvm_hop(dst1, qd1, "unix:" + sock, "unix:" + sock, False, "kvm unix")
    n = len(ring3_status(src, dst1, dst2)[0])
    check("kvm: the guest goes on after the second hop",
          wait_until(lambda: len(ring3_status(src, dst1, dst2)[0]) >= n + 3, 20.0), dst2.stderr_text()[-400:])
    status, errors, _ = ring3_status(src, dst1, dst2)
    seqs = [s["seq"] for s in status]
    check("kvm: seq has no gap or repeat across both hops", seqs == list(range(1, len(seqs) + 1)), seqs)
    check_eq("kvm: errors", status[-1]["errors"] if status else None, 0)
    check_eq("kvm: ERROR lines", errors, [])
    for vm in (src, dst1, dst2):
        vm.kill()


DISK_PASS_RE = re.compile(rb"DISK (?:\S+ )?pass (\d+) (ok|errors=\d+)\n")


def test_kvm_disk():
    """Shared storage (one raw image both sides open, no block migration):
    the destination's virtio-blk moves data into guest buffers that may still
    be missing, so device emulation faults and waits for pages too."""
    d = new_tmpdir()
    img = disklib.make_image(os.path.join(d, "disk.img"), 16 << 20)
    drive = ["-drive", "if=virtio,file=%s,format=raw,id=d0" % img]
    src = start_kvm_guest(IMAGE, MEM, extra=drive, tmpdir=d)
    if not check("kvm disk: the guest's disk workload makes a pass",
                 wait_until(lambda: DISK_PASS_RE.search(read_bytes(src.serial_path)), 60.0),
                 read_bytes(src.serial_path)[-300:]):
        return
    qs = src.qmp()
    sock = os.path.join(d, "m.sock")
    dst = start_kvm_guest(IMAGE, MEM, extra=drive, incoming="defer")
    qd = dst.qmp()
    for q in (qs, qd):
        set_caps(q, **POSTCOPY)
    qd.cmd_ok("migrate-incoming", uri="unix:" + sock)
    qs.cmd_ok("migrate-set-parameters", {"max-bandwidth": 64 * MiB, "max-postcopy-bandwidth": 16 * MiB})
    qs.cmd_ok("migrate", uri="unix:" + sock)
    wait_until(lambda: mig_info(qs).get("ram", {}).get("transferred", 0) > 2 * MiB, 10.0)
    qs.cmd_ok("migrate-start-postcopy")
    info = wait_mig_status(qs, ("completed", "failed"), 60.0) or {}
    check_eq("kvm disk: completed", info.get("status"), "completed")
    n = len(DISK_PASS_RE.findall(read_bytes(dst.serial_path)))
    check("kvm disk: two more disk passes on the destination",
          wait_until(lambda: len(DISK_PASS_RE.findall(read_bytes(dst.serial_path))) >= n + 2, 60.0),
          read_bytes(dst.serial_path)[-300:])
    text = read_bytes(src.serial_path) + read_bytes(dst.serial_path)
    passes = DISK_PASS_RE.findall(text)
    check("kvm disk: every disk pass ok", passes and all(ok == b"ok" for _, ok in passes), passes)
    damage = [e for e in ring3_status(src, dst)[1] if not TIMER_PACE.match(e)]
    check_eq("kvm disk: ERROR lines", damage, [])
    src.kill()
    dst.kill()


def slow_postcopy(src, qs, sock):
    """Into postcopy with ~120 MiB still to send at 4 MiB/s: every page
    written first (no zero pages for precopy to finish with), precopy slower
    than the switch."""
    wait_until(lambda: b"B" in read_bytes(src.serial_path), 20.0)
    qs.cmd_ok("migrate-set-parameters", {"max-bandwidth": 16 * MiB, "max-postcopy-bandwidth": 4 * MiB})
    qs.cmd_ok("migrate", uri="unix:" + sock)
    wait_until(lambda: mig_info(qs).get("ram", {}).get("transferred", 0) > 2 * MiB, 10.0)
    qs.cmd_ok("migrate-start-postcopy")


def test_failure():
    sock = os.path.join(new_tmpdir(), "m.sock")
    src, dst, qs, qd = start_pair("128M", "unix:" + sock)
    slow_postcopy(src, qs, sock)
    check("failure: source in postcopy-active", wait_mig_status(qs, "postcopy-active", 10.0), mig_info(qs))
    # 4 MiB/s for ~120 MiB: the postcopy phase lasts long enough to kill it.
    time.sleep(0.5)
    check_eq("failure: still postcopy-active under max-postcopy-bandwidth", mig_info(qs).get("status"),
             "postcopy-active")
    dst.kill()
    info = wait_mig_status(qs, ("postcopy-paused", "failed"), 20.0) or {}
    check_eq("failure: the source pauses", info.get("status"), "postcopy-paused")
    check("failure: cont refused while paused", "error" in qs.cmd("cont"), "")
    qs.cmd_ok("migrate_cancel")
    info = wait_mig_status(qs, ("cancelled", "failed"), 20.0) or {}
    check_eq("failure: cancelled", info.get("status"), "cancelled")
    check_eq("failure: source in postmigrate", query_status(qs), "postmigrate")
    check("failure: cont refused", "error" in qs.cmd("cont"), "")
    qs.cmd_ok("cont", {"x-force-after-migration": True})
    check_eq("failure: the override runs it", query_status(qs), "running")
    src.kill()


def test_destination_failure():
    sock = os.path.join(new_tmpdir(), "m.sock")
    src, dst, qs, qd = start_pair("128M", "unix:" + sock)
    slow_postcopy(src, qs, sock)
    check("destination failure: destination in postcopy-active", wait_mig_status(qd, "postcopy-active", 10.0),
          mig_info(qd))
    src.kill()
    info = wait_mig_status(qd, ("postcopy-paused", "failed"), 20.0) or {}
    check_eq("destination failure: the destination pauses", info.get("status"), "postcopy-paused")
    check_eq("destination failure: its guest stays alive, waiting", query_status(qd), "running")
    check("destination failure: it says why", "Detected IO failure for postcopy" in dst.stderr_text(),
          dst.stderr_text()[-600:])
    dst.kill()


def test_cancel():
    sock = os.path.join(new_tmpdir(), "m.sock")
    src, dst, qs, qd = start_pair("128M", "unix:" + sock)
    slow_postcopy(src, qs, sock)
    check("cancel: source in postcopy-active", wait_mig_status(qs, "postcopy-active", 10.0), mig_info(qs))
    qs.cmd_ok("migrate_cancel")
    info = wait_mig_status(qs, ("cancelled", "failed", "completed"), 20.0) or {}
    check_eq("cancel: source cancelled", info.get("status"), "cancelled")
    check_eq("cancel: the source stays stopped (the destination runs the guest)", query_status(qs), "postmigrate")
    check("cancel: cont refused", "error" in qs.cmd("cont"), "")
    src.kill()
    dst.kill()


def test_zero_page_read():
    sock = os.path.join(new_tmpdir(), "m.sock")
    # The workload writes [1 MiB, 64 MiB): the upper half stays zero.
    src = start_vm(mem="128M", top="64M")
    dst = start_vm(mem="128M", top="64M", incoming="defer")
    qs, qd = src.qmp(), dst.qmp()
    for q in (qs, qd):
        set_events(q)
        set_caps(q, **POSTCOPY)
    qd.cmd_ok("migrate-incoming", uri="unix:" + sock)
    check("zero page: the workload made a pass", wait_until(lambda: b"B" in read_bytes(src.serial_path), 20.0), "")
    qs.cmd_ok("migrate-set-parameters", dict(qemu_convergence(), **{"max-bandwidth": 64 * MiB,
                                                                    "max-postcopy-bandwidth": 2 * MiB}))
    qs.cmd_ok("migrate", uri="unix:" + sock)
    # The whole first pass, zero upper half included, went in precopy.
    check("zero page: a second pass began in precopy",
          wait_until(lambda: mig_info(qs).get("ram", {}).get("dirty-sync-count", 0) >= 2, 20.0), mig_info(qs))
    qs.cmd_ok("migrate-start-postcopy")
    check("zero page: destination postcopy-active", wait_mig_status(qd, "postcopy-active", 10.0), mig_info(qd))
    # A second monitor connection whose replies time out: the old bug blocked
    # the destination's main loop inside the read until postcopy ended.
    q2 = dst.qmp(timeout=5.0)
    dump = os.path.join(new_tmpdir(), "page")
    t0 = time.monotonic()
    try:
        out = q2.cmd("pmemsave", val=100 * MiB, size=4096, filename=dump)
        out = read_bytes(dump) if out == {"return": {}} else out
    except OSError as e:
        out = "no answer: %r" % e
    took = time.monotonic() - t0
    check("zero page: still postcopy-active after the read", mig_info(qd).get("status") == "postcopy-active",
          mig_info(qd))
    check("zero page: pmemsave of the page at 100 MiB answers during postcopy, all zero",
          took < 5.0 and out == bytes(4096), (took, out if isinstance(out, str) else len(out)))
    q2.close()
    src.kill()
    dst.kill()


def main():
    migvm.require_binary()
    if migvm.qemu_mode():
        migvm.skip_all("migvm to migvm postcopy (the interop tests compare with QEMU 7.2)")
    run("parity", test_parity)
    run("soft unix", test_soft_unix)
    run("failure", test_failure)
    run("cancel", test_cancel)
    run("destination failure", test_destination_failure)
    run("zero page read", test_zero_page_read)
    why = migvm.kvm_usable()
    if why is None:
        run("kvm", test_kvm)
        run("kvm disk", test_kvm_disk)
    else:
        skip("kvm", why)
    migvm.finish()


if __name__ == "__main__":
    main()
