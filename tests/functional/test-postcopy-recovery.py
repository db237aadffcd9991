#!/usr/bin/python3
"""Postcopy recovery, migvm to migvm, as QEMU 7.2 does it (shared docs:
postcopy.md 6.3): a connection that breaks during postcopy-active pauses both
sides (postcopy-paused), migrate-recover on the destination and `migrate
resume:true` on the source finish the migration on a new connection.

  * cut (soft guest, tcp through a proxy that closes both directions at
    once, under a slow max-postcopy-bandwidth): both sides postcopy-paused
    (events too); the destination's guest stays running and its monitor
    answers, the source stays stopped (finish-migrate, cont refused); the
    recovery commands in the wrong states answer QEMU 7.2's errors; a resume
    that cannot connect stays postcopy-paused, one whose connection breaks
    during the received-bitmap exchange brings both sides back to
    postcopy-paused (QEMU 7.2 may stay in postcopy-recover there); recovery
    on a new address completes (events postcopy-recover, postcopy-active,
    completed), the workload goes on and every page holds its pattern.
  * the return path breaks first: a proxy stops reading from the
    destination (its reads still work) just before the source's PING 3,
    inside the postcopy package, or PING 4, after it. The PONG is the first
    thing to fail, on the package's loader or on the listen thread. The
    destination must pause (as for a broken read once the guest started,
    QEMU 7.2's rule) rather than fail; both sides recover and complete.
  * explicit migrate-pause, first on the source then on the destination, of
    one migration (unix sockets; destination -S, so source and destination
    memory are compared byte for byte at the end).
  * migrate_cancel in postcopy-paused: cancelled, the source stays stopped;
    quit on the paused destination exits at once (its vCPU may wait in a
    page fault for good).
  * TLS: paused and recovered over a new TLS session.
  * KVM ring-3 guest cut during postcopy: its vCPU waits for missing pages
    while paused, and after the recovery its self-checks stay clean (seq
    without a gap, errors=0, no ERROR line apart from the timer-pace checks a
    paused vCPU trips: the guest lost seconds of time there).
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
from migvm import check, check_eq, error_of, free_tcp_port, new_tmpdir, read_bytes, run, skip, wait_until  # noqa: E402
from cutproxy import DeafProxy, Proxy  # noqa: E402
from miglib import (MiB, check_memory_pattern, collect_events, event_names, is_subsequence,  # noqa: E402
                    mig_info, pmemsave, query_status, set_caps, set_events, start_kvm_guest, start_vm,
                    wait_mig_status, wait_serial_growth)
from ring3lib import IMAGE, MEM, parse  # noqa: E402
import tlslib  # noqa: E402

POSTCOPY = {"postcopy-ram": True}
PAUSE_ERR = ("GenericError", "migrate-pause is currently only supported during postcopy-active state")
RECOVER_ERR = ("GenericError", "Migrate recover can only be run when postcopy is paused.")
RESUME_ERR = ("GenericError", "Cannot resume if there is no paused migration")
TWICE_ERR = ("GenericError", "Migrate recovery is triggered already")
TIMER_PACE = re.compile(r"ERROR: (pit slow|pit stalled|lapic stalled|no timer ticks)")
MEM_MB = 64


def pair(incoming, dst_paused=False):
    src = start_vm(mem="%dM" % MEM_MB)
    dst = start_vm(mem="%dM" % MEM_MB, incoming="defer", paused=dst_paused)
    qs, qd = src.qmp(), dst.qmp()
    for q in (qs, qd):
        set_events(q)
        set_caps(q, **POSTCOPY)
    if incoming:
        qd.cmd_ok("migrate-incoming", uri=incoming)
    return src, dst, qs, qd


def into_postcopy(name, src, qs, qd, uri, postcopy_bw, dst_may_pause=False):
    """Every page written once (no zero pages), a slow postcopy started
    early: it lasts long enough to break it. dst_may_pause: the test broke
    the connection already, the destination may be past postcopy-active."""
    check(name + ": the workload made a pass", wait_until(lambda: b"B" in read_bytes(src.serial_path), 20.0))
    qs.cmd_ok("migrate-set-parameters", {"max-bandwidth": 32 * MiB, "max-postcopy-bandwidth": postcopy_bw})
    qs.cmd_ok("migrate", uri=uri)
    wait_until(lambda: mig_info(qs).get("ram", {}).get("transferred", 0) > 2 * MiB, 10.0)
    qs.cmd_ok("migrate-start-postcopy")
    for side, q in (("source", qs), ("destination", qd)):
        want = ("postcopy-active", "postcopy-paused") if dst_may_pause and q is qd else "postcopy-active"
        check(name + ": %s postcopy-active" % side, wait_mig_status(q, want, 15.0), mig_info(q))


def both_paused(name, src, dst, qs, qd):
    si = wait_mig_status(qs, "postcopy-paused", 20.0)
    check(name + ": source postcopy-paused", si, (mig_info(qs), src.stderr_text()[-400:]))
    di = wait_mig_status(qd, "postcopy-paused", 20.0)
    check(name + ": destination postcopy-paused", di, (mig_info(qd), dst.stderr_text()[-400:]))
    check(name + ": both said why", "Detected IO failure for postcopy. Migration paused." in src.stderr_text() and
          "Detected IO failure for postcopy. Migration paused." in dst.stderr_text(), dst.stderr_text()[-400:])
    return si and di


def recover(name, qs, qd, uri):
    qd.cmd_ok("migrate-recover", uri=uri)
    check_eq(name + ": migrate-recover twice", error_of(qd.cmd("migrate-recover", uri=uri)), TWICE_ERR)
    qs.cmd_ok("migrate", uri=uri, resume=True)


def test_cut():
    port = free_tcp_port()
    proxy = Proxy(port)
    src, dst, qs, qd = pair("tcp:127.0.0.1:%d" % port)
    try:
        into_postcopy("cut", src, qs, qd, "tcp:127.0.0.1:%d" % proxy.port, 2 * MiB)
        check_eq("cut: resume while postcopy-active", error_of(qs.cmd("migrate", uri="tcp:127.0.0.1:1",
                                                                          resume=True)), RESUME_ERR)
        check_eq("cut: migrate-recover while postcopy-active",
                 error_of(qd.cmd("migrate-recover", uri="tcp:127.0.0.1:1")), RECOVER_ERR)
        # The destination's vCPU soon waits for a page in flight.
        time.sleep(0.5)
        proxy.cut()
        if not both_paused("cut", src, dst, qs, qd):
            return
        check_eq("cut: the destination's guest still runs", query_status(qd), "running")
        check_eq("cut: the source stays stopped (as QEMU 7.2)", query_status(qs), "finish-migrate")
        check("cut: cont refused on the source", "error" in qs.cmd("cont"), "")
        check_eq("cut: migrate-pause while paused (source)", error_of(qs.cmd("migrate-pause")), PAUSE_ERR)
        check_eq("cut: migrate-pause while paused (destination)", error_of(qd.cmd("migrate-pause")), PAUSE_ERR)
        check_eq("cut: a new migrate while paused", error_of(qs.cmd("migrate", uri="tcp:127.0.0.1:1")),
                 ("GenericError", "There's a migration process in progress"))
        # A resume that cannot connect leaves it paused, to be retried (as
        # QEMU 7.2: no postcopy-recover before the connection).
        refused = "tcp:127.0.0.1:%d" % free_tcp_port()
        qs.cmd_ok("migrate", uri=refused, resume=True)
        check("cut: a failed connect says so",
              wait_until(lambda: "Failed to connect to '%s'" % refused[4:] in src.stderr_text(), 10.0),
              src.stderr_text()[-400:])
        check_eq("cut: and stays postcopy-paused", mig_info(qs).get("status"), "postcopy-paused")
        # A resume whose connection breaks during the received-bitmap exchange
        # (the proxy passes 5 bytes of the source's first RECV_BITMAP, then is
        # cut): both sides go back to postcopy-paused, to be recovered again.
        port2 = free_tcp_port()
        proxy2 = Proxy(port2, freeze_at=5)
        try:
            qd.cmd_ok("migrate-recover", uri="tcp:127.0.0.1:%d" % port2)
            qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % proxy2.port, resume=True)
            check("cut: the handshake started", proxy2.frozen.wait(10))
            for side, q in (("source", qs), ("destination", qd)):
                check("cut: %s in postcopy-recover" % side, wait_mig_status(q, "postcopy-recover", 10.0), mig_info(q))
            proxy2.cut()
            for side, q in (("source", qs), ("destination", qd)):
                check("cut: %s paused again after a broken handshake" % side,
                      wait_mig_status(q, "postcopy-paused", 10.0), mig_info(q))
        finally:
            proxy2.close()
        qs.cmd_ok("migrate-set-parameters", {"max-postcopy-bandwidth": 0})
        recover("cut", qs, qd, "tcp:127.0.0.1:%d" % free_tcp_port())
        src_ev = event_names(collect_events(qs, ("completed", "failed", "cancelled"), 40.0))
        dst_ev = event_names(collect_events(qd, ("completed", "failed"), 20.0))
        check("cut: source events postcopy-recover, postcopy-active, completed",
              is_subsequence(["MIGRATION:postcopy-recover", "MIGRATION:postcopy-active", "MIGRATION:completed"],
                             src_ev), src_ev)
        check("cut: destination events paused, setup, postcopy-recover, postcopy-active, completed",
              is_subsequence(["MIGRATION:postcopy-paused", "MIGRATION:setup", "MIGRATION:postcopy-recover",
                              "MIGRATION:postcopy-active", "MIGRATION:completed"], dst_ev), dst_ev)
        check_eq("cut: source completed", mig_info(qs).get("status"), "completed")
        check_eq("cut: destination completed", mig_info(qd).get("status"), "completed")
        check("cut: the workload runs on the destination", wait_serial_growth(dst.serial_path, 10.0))
        qd.cmd_ok("stop")
        ok, detail = check_memory_pattern(pmemsave(qd, os.path.join(new_tmpdir(), "dump"), 0, MEM_MB * MiB))
        check("cut: destination memory holds the workload's pattern", ok, detail)
        check_eq("cut: the source still stopped", query_status(qs), "postmigrate")
    finally:
        proxy.close()
        src.kill()
        dst.kill()


# The source sends PING 2, the package (LISTEN, the devices, PING 3, RUN),
# PING 4; the destination answers each with a PONG on the return path.
def ping(n):
    return bytes([0x08, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, n])


def pong(n):
    return bytes([0x00, 0x02, 0x00, 0x04, 0, 0, 0, n])


def test_return_path_breaks_first(label, marker, after_reply):
    sock = os.path.join(new_tmpdir(), "m.sock")
    src, dst, qs, qd = pair("unix:" + sock)
    proxy = DeafProxy(sock, marker, after_reply)
    try:
        into_postcopy(label, src, qs, qd, "tcp:127.0.0.1:%d" % proxy.port, 2 * MiB, dst_may_pause=True)
        check(label + ": the proxy went deaf", proxy.deaf.wait(10))
        di = wait_mig_status(qd, ("postcopy-paused", "failed"), 20.0) or {}
        check(label + ": the destination pauses (it does not fail)", di.get("status") == "postcopy-paused",
              (di, dst.stderr_text()[-600:]))
        check(label + ": it said the write broke", "Failed to write on the return path" in dst.stderr_text(),
              dst.stderr_text()[-600:])
        proxy.cut()
        if not both_paused(label, src, dst, qs, qd):
            return
        check_eq(label + ": the destination's guest still runs", query_status(qd), "running")
        qs.cmd_ok("migrate-set-parameters", {"max-postcopy-bandwidth": 0})
        recover(label, qs, qd, "unix:" + sock + "2")
        si = wait_mig_status(qs, ("completed", "failed", "cancelled"), 30.0) or {}
        check_eq(label + ": source completed", si.get("status"), "completed")
        di = wait_mig_status(qd, ("completed", "failed"), 20.0) or {}
        check_eq(label + ": destination completed", di.get("status"), "completed")
        qd.cmd_ok("stop")
        ok, detail = check_memory_pattern(pmemsave(qd, os.path.join(new_tmpdir(), "dump"), 0, MEM_MB * MiB))
        check(label + ": destination memory holds the workload's pattern", ok, detail)
    finally:
        proxy.close()
        src.kill()
        dst.kill()

def test_pause_commands():
    d = new_tmpdir()
    socks = [os.path.join(d, "m%d.sock" % i) for i in range(3)]
    src, dst, qs, qd = pair("unix:" + socks[0], dst_paused=True)
    try:
        into_postcopy("pause", src, qs, qd, "unix:" + socks[0], 4 * MiB)
        for i, (side, q) in enumerate((("source", qs), ("destination", qd))):
            label = "pause on the " + side
            check_eq(label + ": accepted", q.cmd("migrate-pause").get("return"), {})
            if not both_paused(label, src, dst, qs, qd):
                return
            if side == "destination":
                qs.cmd_ok("migrate-set-parameters", {"max-postcopy-bandwidth": 0})
            recover(label, qs, qd, "unix:" + socks[i + 1])
            want = ("completed",) if side == "destination" else ("postcopy-active",)
            si = wait_mig_status(qs, want + ("failed", "cancelled"), 30.0) or {}
            check_eq(label + ": source resumed", si.get("status"), want[0])
            di = wait_mig_status(qd, want + ("failed",), 20.0) or {}
            check_eq(label + ": destination resumed", di.get("status"), want[0])
        sp, dp = os.path.join(d, "src.bin"), os.path.join(d, "dst.bin")
        a = pmemsave(qs, sp, 0, MEM_MB * MiB)
        b = pmemsave(qd, dp, 0, MEM_MB * MiB)
        check("pause: destination memory identical to the source's", a == b and len(a) == MEM_MB * MiB,
              "sizes %d/%d" % (len(a), len(b)))
    finally:
        src.kill()
        dst.kill()


def test_cancel_paused():
    """QEMU 7.2 stays in cancelling for good here (its thread waits for a
    resume); migvm ends cancelled, the source still stopped."""
    sock = os.path.join(new_tmpdir(), "m.sock")
    src, dst, qs, qd = pair("unix:" + sock)
    try:
        into_postcopy("cancel", src, qs, qd, "unix:" + sock, 2 * MiB)
        qs.cmd_ok("migrate-pause")
        if not both_paused("cancel", src, dst, qs, qd):
            return
        qs.cmd_ok("migrate_cancel")
        si = wait_mig_status(qs, ("cancelled", "failed"), 10.0) or {}
        check_eq("cancel while paused: cancelled", si.get("status"), "cancelled")
        check_eq("cancel while paused: the source stays stopped", query_status(qs), "postmigrate")
        check("cancel while paused: cont refused", "error" in qs.cmd("cont"), "")
        check_eq("cancel while paused: the destination still waits", mig_info(qd).get("status"), "postcopy-paused")
        # Its vCPU may wait inside a page fault for good: quit must not wait for it.
        qd.cmd("quit")
        check_eq("quit on the paused destination: exits at once", dst.wait_exit(10.0), 0)
    finally:
        src.kill()
        dst.kill()


def test_tls():
    """Each resumed connection is a new TLS session, as QEMU 7.2's."""
    pki = tlslib.make_pki(os.path.join(new_tmpdir(), "pki"))
    port = free_tcp_port()
    src, dst, qs, qd = pair(None)
    try:
        check_eq("tls: source creds", tlslib.add_creds(qs, "tls0", "client", pki.dir("src")), {"return": {}})
        check_eq("tls: destination creds", tlslib.add_creds(qd, "tls0", "server", pki.dir("dst")), {"return": {}})
        for q in (qs, qd):
            q.cmd_ok("migrate-set-parameters", {"tls-creds": "tls0"})
        qd.cmd_ok("migrate-incoming", uri="tcp:127.0.0.1:%d" % port)
        into_postcopy("tls", src, qs, qd, "tcp:127.0.0.1:%d" % port, 2 * MiB)
        qs.cmd_ok("migrate-pause")
        if not both_paused("tls", src, dst, qs, qd):
            return
        qs.cmd_ok("migrate-set-parameters", {"max-postcopy-bandwidth": 0})
        recover("tls", qs, qd, "tcp:127.0.0.1:%d" % free_tcp_port())
        si = wait_mig_status(qs, ("completed", "failed", "cancelled"), 30.0) or {}
        check_eq("tls: source completed", si.get("status"), "completed")
        di = wait_mig_status(qd, ("completed", "failed"), 20.0) or {}
        check_eq("tls: destination completed", di.get("status"), "completed")
        qd.cmd_ok("stop")
        ok, detail = check_memory_pattern(pmemsave(qd, os.path.join(new_tmpdir(), "dump"), 0, MEM_MB * MiB))
        check("tls: destination memory holds the workload's pattern", ok, detail)
    finally:
        src.kill()
        dst.kill()


def ring3_status(*vms):
    return parse(b"".join(read_bytes(v.serial_path) for v in vms))


def test_kvm_cut():
    d = new_tmpdir()
    src = start_kvm_guest(IMAGE, MEM, tmpdir=d)
    proxy = None
    dst = None
    try:
        if not check("kvm: the guest runs (3 lines)", wait_until(lambda: len(ring3_status(src)[0]) >= 3, 40.0),
                     read_bytes(src.serial_path)[-400:]):
            return
        port = free_tcp_port()
        proxy = Proxy(port)
        dst = start_kvm_guest(IMAGE, MEM, incoming="tcp:127.0.0.1:%d" % port)
        qs, qd = src.qmp(), dst.qmp()
        for q in (qs, qd):
            set_caps(q, **POSTCOPY)
        qs.cmd_ok("migrate-set-parameters", {"max-bandwidth": 32 * MiB, "max-postcopy-bandwidth": 4 * MiB})
        qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % proxy.port)
        wait_until(lambda: mig_info(qs).get("ram", {}).get("transferred", 0) > 2 * MiB, 10.0)
        qs.cmd_ok("migrate-start-postcopy")
        check("kvm: postcopy-active", wait_mig_status(qd, "postcopy-active", 15.0), mig_info(qd))
        time.sleep(1.0)
        proxy.cut()
        if not both_paused("kvm", src, dst, qs, qd):
            return
        check_eq("kvm: the destination's guest still runs", query_status(qd), "running")
        check_eq("kvm: the source stays stopped", query_status(qs), "finish-migrate")
        qs.cmd_ok("migrate-set-parameters", {"max-postcopy-bandwidth": 0})
        recover("kvm", qs, qd, "tcp:127.0.0.1:%d" % free_tcp_port())
        si = wait_mig_status(qs, ("completed", "failed", "cancelled"), 40.0) or {}
        check_eq("kvm: source completed", si.get("status"), "completed")
        di = wait_mig_status(qd, ("completed", "failed"), 20.0) or {}
        check_eq("kvm: destination completed", di.get("status"), "completed")
        n = len(ring3_status(src, dst)[0])
        check("kvm: the guest goes on after the recovery",
              wait_until(lambda: len(ring3_status(src, dst)[0]) >= n + 2, 20.0), dst.stderr_text()[-400:])
        status, errors, _ = ring3_status(src, dst)
        seqs = [s["seq"] for s in status]
        check("kvm: seq has no gap or repeat", seqs == list(range(1, len(seqs) + 1)), seqs)
        check_eq("kvm: ERROR lines (timer pace aside)", [e for e in errors if not TIMER_PACE.match(e)], [])
    finally:
        if proxy:
            proxy.close()
        for vm in (src, dst):
            if vm:
                vm.kill()


def main():
    migvm.require_binary()
    if migvm.qemu_mode():
        migvm.skip_all("migvm to migvm postcopy recovery (test-interop-postcopy compares with QEMU 7.2)")
    run("cut", test_cut)
    run("the return path breaks in the package",
        lambda: test_return_path_breaks_first("rp in package", ping(3), pong(2)))
    run("the return path breaks after the package",
        lambda: test_return_path_breaks_first("rp after package", ping(4), pong(3)))
    run("pause commands", test_pause_commands)
    run("cancel while paused", test_cancel_paused)
    run("tls", test_tls)
    why = migvm.kvm_usable()
    if why is None:
        run("kvm cut", test_kvm_cut)
    else:
        skip("kvm cut", why)
    migvm.finish()


if __name__ == "__main__":
    main()
