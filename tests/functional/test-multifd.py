#!/usr/bin/env python3
"""Multifd between migvm processes (soft accelerator workload, and the KVM
boot-sector guest when /dev/kvm is usable).

1. Live migrations with capability multifd: unix and tcp (with the return
   path), 2 and 4 channels, compression none, zlib and zstd. The destination starts with -S, so once
   both are stopped their whole RAM (pmemsave) must be identical, and the
   workload's pattern holds. query-migrate: multifd-bytes is the pages'
   bytes plus whole 1344-byte headers, part of `transferred`; every page was
   sent (normal counts the multifd pages once). The destination then runs.
2. Refusals with QEMU 7.2's texts: multifd over exec: fails the migration
   ("multifd is not supported by current protocol" on stderr), migrate-incoming
   with exec: refused; zero-copy-send without multifd or with compression, and
   over unix (no MSG_ZEROCOPY there). Over tcp zero-copy-send migrates the RAM
   exactly, and dirty-sync-missed-zero-copy counts loopback's copies.
3. max-bandwidth holds over multifd; migrate_cancel leaves the source running
   and the next multifd migration completes with RAM identical.
4. Mismatched settings fail on both sides and the source keeps running:
   multifd on the source only, on the destination only, 2 channels against 3,
   3 against 2, zlib against none. The five pairs run at the same time (two
   of them wait for the destination's 5 s channel deadline). Without the
   return path a source learns of a destination failure only from the closed
   connections, so each source's RAM is written all over first: a guest whose
   whole stream fits in the socket buffers would report completed (as QEMU
   7.2's does).

5. A destination killed mid-stream: the source fails, saying the socket
   broke, and runs on.
6. Over unix, pages go to the socket by reference: a source whose whole
   stream sits unread in the sockets (destination SIGSTOPped) stays active
   until the destination has read it, then both complete with RAM identical.

MULTIFD_FULL=1 runs every transport x channels x compression combination.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import miglib  # noqa: E402
import migvm  # noqa: E402
from migvm import check, check_eq, finish, free_tcp_port, new_tmpdir, run, skip, wait_until  # noqa: E402

migvm.require_binary()
if migvm.qemu_mode():
    migvm.skip_all("multifd between migvm processes (the interop test covers QEMU 7.2)")

HEADER = 1344
PAGE = 4096
TMP = new_tmpdir()


def multifd_setup(q, channels, compression="none", on=True):
    miglib.set_caps(q, multifd=on)
    q.cmd_ok("migrate-set-parameters", **{"multifd-channels": channels, "multifd-compression": compression})


def uri_for(transport, name):
    if transport == "unix":
        return "unix:" + os.path.join(TMP, name + ".sock")
    return "tcp:127.0.0.1:%d" % free_tcp_port()


def check_counters(name, info):
    ram = info["ram"]
    mb, normal = ram["multifd-bytes"], ram["normal"]
    check(name + ": multifd-bytes = pages + whole headers",
          mb >= normal * PAGE and (mb - normal * PAGE) % HEADER == 0 and mb > normal * PAGE,
          "multifd-bytes %d, normal %d" % (mb, normal))
    check(name + ": transferred includes multifd-bytes", ram["transferred"] >= mb,
          "transferred %d, multifd-bytes %d" % (ram["transferred"], mb))


def live_case(transport, channels, compression, mem="128M", zero_copy=False):
    name = "%s %d channels %s%s" % (transport, channels, compression, " zero-copy" if zero_copy else "")
    uri = uri_for(transport, "live-%s-%d-%s" % (transport, channels, compression))
    # Compression costs the CPU an unthrottled writer competes for: whether
    # such a writer ever falls under the downtime limit depends on the host
    # (and on ASan), so the compressed cases dirty a bounded 32 MiB/s, which
    # still dirties pages while the passes run.
    src = miglib.start_vm(mem=mem, dirty_rate=None if compression == "none" else 32)
    dst = miglib.start_vm(mem=mem, incoming=uri, extra=["-S"])
    qs, qd = src.qmp(), dst.qmp()
    try:
        multifd_setup(qs, channels, compression)
        multifd_setup(qd, channels, compression)
        if zero_copy:
            miglib.set_caps(qs, zero_copy_send=True)
        if transport == "tcp":
            miglib.set_caps(qs, return_path=True)      # completes once the destination loaded it all
        qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 0})
        check(name + ": workload runs", miglib.wait_serial_growth(src.serial_path, 10))
        qs.cmd_ok("migrate", uri=uri)
        info = miglib.wait_mig_status(qs, ("completed", "failed"), 60)
        if not check(name + ": source completed", info and info["status"] == "completed",
                     str(info or miglib.mig_info(qs))):
            check("destination stderr", False, dst.stderr_text()[-800:])
            return
        dinfo = miglib.wait_mig_status(qd, ("completed", "failed"), 30)
        check(name + ": destination completed", dinfo and dinfo["status"] == "completed", str(dinfo))
        check_counters(name, info)
        if zero_copy:
            # Loopback copies every MSG_ZEROCOPY send: each sync of each channel counts.
            missed = info["ram"]["dirty-sync-missed-zero-copy"]
            check(name + ": dirty-sync-missed-zero-copy counts loopback's copies", missed >= channels, str(missed))
        size = int(mem[:-1]) << 20
        a = miglib.pmemsave(qs, os.path.join(src.dir, "src.bin"), 0, size)
        b = miglib.pmemsave(qd, os.path.join(dst.dir, "dst.bin"), 0, size)
        check(name + ": RAM identical", a == b, "differs at page %s" % next(
            (i // PAGE for i in range(0, len(a), PAGE) if a[i:i + PAGE] != b[i:i + PAGE]), None))
        ok, detail = miglib.check_memory_pattern(b)
        check(name + ": workload pattern", ok, detail)
        qd.cmd_ok("cont")
        check(name + ": destination runs", miglib.wait_serial_growth(dst.serial_path, 10))
    finally:
        src.kill()
        dst.kill()


def exec_refused():
    src = miglib.start_vm(mem="32M")
    qs = src.qmp()
    try:
        multifd_setup(qs, 2)
        qs.cmd_ok("migrate", uri="exec:cat > /dev/null")
        info = miglib.wait_mig_status(qs, ("completed", "failed"), 10)
        check_eq("exec: migration fails", info and info["status"], "failed")
        check("exec: QEMU 7.2's text on stderr",
              wait_until(lambda: "multifd is not supported by current protocol" in src.stderr_text(), 5),
              src.stderr_text()[-400:])
        check_eq("exec: source still running", miglib.query_status(qs), "running")
    finally:
        src.kill()
    dst = miglib.start_vm(mem="32M", incoming="defer")
    qd = dst.qmp()
    try:
        multifd_setup(qd, 2)
        r = qd.cmd("migrate-incoming", uri="exec:cat /dev/null")
        check_eq("exec: migrate-incoming refused", migvm.error_of(r),
                 ("GenericError", "multifd is not supported by current protocol"))
    finally:
        dst.kill()


def cancel_then_again():
    """max-bandwidth holds with multifd; migrate_cancel leaves the source
    running; the next multifd migration (to a new destination) completes."""
    uri = uri_for("unix", "cancel")
    src = miglib.start_vm(mem="128M")
    dst = miglib.start_vm(mem="128M", incoming=uri, extra=["-S"])
    qs = src.qmp()
    dst2 = None
    try:
        multifd_setup(qs, 2)
        multifd_setup(dst.qmp(), 2)
        qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 32 << 20})
        check("cancel: workload runs", miglib.wait_serial_growth(src.serial_path, 10))
        qs.cmd_ok("migrate", uri=uri)
        wait_until(lambda: miglib.mig_status(qs) == "active", 10)
        # The rate over a window after the start: the first slot and the sockets' buffers (several MiB per
        # channel) go out at once, which a rate counted from time 0 mistook for an overrun.
        wait_until(lambda: miglib.mig_info(qs)["ram"]["transferred"] > 16 << 20, 10)
        first = miglib.mig_info(qs)["ram"]["transferred"]
        t0 = time.monotonic()
        wait_until(lambda: miglib.mig_info(qs)["ram"]["transferred"] > first + (48 << 20), 10)
        rate = (miglib.mig_info(qs)["ram"]["transferred"] - first) / (time.monotonic() - t0)
        check("cancel: max-bandwidth holds over multifd", rate < 40 << 20, "%.1f MiB/s" % (rate / (1 << 20)))
        qs.cmd_ok("migrate_cancel")
        info = miglib.wait_mig_status(qs, ("cancelled", "failed", "completed"), 10)
        check_eq("cancel: cancelled", info and info["status"], "cancelled")
        check_eq("cancel: source running", miglib.query_status(qs), "running")
        check("cancel: guest runs on", miglib.wait_serial_growth(src.serial_path, 10))
        uri2 = uri_for("tcp", "again")
        dst2 = miglib.start_vm(mem="128M", incoming=uri2, extra=["-S"])
        qd2 = dst2.qmp()
        multifd_setup(qd2, 2)
        qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 0})
        qs.cmd_ok("migrate", uri=uri2)
        info = miglib.wait_mig_status(qs, ("completed", "failed"), 60)
        check_eq("again: completed", info and info["status"], "completed")
        if info and info["status"] == "completed":
            check_counters("again", info)
            a = miglib.pmemsave(qs, os.path.join(src.dir, "src.bin"), 0, 128 << 20)
            miglib.wait_mig_status(qd2, "completed", 30)
            b = miglib.pmemsave(qd2, os.path.join(dst2.dir, "dst.bin"), 0, 128 << 20)
            check("again: RAM identical", a == b)
    finally:
        src.kill()
        dst.kill()
        if dst2:
            dst2.kill()


ZC_ERROR = ("GenericError", "Zero copy only available for non-compressed non-TLS multifd migration")


def zero_copy_rules():
    """QEMU 7.2's conditions and texts for zero-copy-send."""
    vm = miglib.start_vm(mem="32M")
    q = vm.qmp()
    try:
        r = q.cmd("migrate-set-capabilities", capabilities=[{"capability": "zero-copy-send", "state": True}])
        check_eq("zero-copy without multifd refused", migvm.error_of(r), ZC_ERROR)
        multifd_setup(q, 2, "zlib")
        r = q.cmd("migrate-set-capabilities", capabilities=[{"capability": "zero-copy-send", "state": True}])
        check_eq("zero-copy with zlib refused", migvm.error_of(r), ZC_ERROR)
        multifd_setup(q, 2, "none")
        miglib.set_caps(q, zero_copy_send=True)
        r = q.cmd("migrate-set-parameters", **{"multifd-compression": "zstd"})
        check_eq("zstd with zero-copy refused", migvm.error_of(r), ZC_ERROR)
        uri = uri_for("unix", "zero-copy-unix")
        dst = miglib.start_vm(mem="32M", incoming=uri, extra=["-S"])
        try:
            multifd_setup(dst.qmp(), 2)
            q.cmd_ok("migrate", uri=uri)
            info = miglib.wait_mig_status(q, ("completed", "failed"), 10)
            check_eq("zero-copy over unix: fails as QEMU 7.2", info and info.get("error-desc"),
                     "Zero copy send feature not detected in host kernel")
            check_eq("zero-copy over unix: source still running", miglib.query_status(q), "running")
        finally:
            dst.kill()
    finally:
        vm.kill()


# (name, source settings, destination settings); None = multifd off.
MISMATCHES = [
    ("multifd on the source only", (2, "none"), None),
    ("multifd on the destination only", None, (2, "none")),
    ("2 channels to 3", (2, "none"), (3, "none")),
    ("3 channels to 2", (3, "none"), (2, "none")),
    ("zlib to none", (2, "zlib"), (2, "none")),
]


def mismatches():
    pairs = []
    try:
        for i, (name, s, d) in enumerate(MISMATCHES):
            uri = uri_for("unix", "mismatch%d" % i)
            src = miglib.start_vm(mem="64M")
            dst = miglib.start_vm(mem="64M", incoming=uri, extra=["-S"])
            pairs.append((name, src, dst))
        for i, (name, src, dst) in enumerate(pairs):
            _, s, d = MISMATCHES[i]
            uri = uri_for("unix", "mismatch%d" % i)
            # Every page written once: more than the sockets can hold, so a
            # source cannot complete into the buffers of a destination that
            # stopped reading (see the note at the top).
            check(name + ": one workload pass",
                  wait_until(lambda: b"B" in miglib.serial_text(src.serial_path), 20))
            qs, qd = src.qmp(), dst.qmp()
            for q, setting in ((qs, s), (qd, d)):
                if setting:
                    multifd_setup(q, *setting)
                # With the return path the source completes only once the destination loaded everything:
                # zlib packs a workload pass into less than the sockets hold, so without it the source
                # could complete into the buffers of a destination that had already refused the stream.
                miglib.set_caps(q, **{"return-path": True})
            qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 0})
            qs.cmd_ok("migrate", uri=uri)
        for name, src, dst in pairs:
            qs, qd = src.qmp(), dst.qmp()
            info = miglib.wait_mig_status(qs, ("completed", "failed"), 30)
            check_eq(name + ": source fails", info and info["status"], "failed")
            dinfo = miglib.wait_mig_status(qd, ("completed", "failed"), 30)
            check_eq(name + ": destination fails", dinfo and dinfo["status"], "failed")
            check_eq(name + ": source still running", miglib.query_status(qs), "running")
            check(name + ": source guest runs on", miglib.wait_serial_growth(src.serial_path, 10))
            check(name + ": destination alive", dst.alive())
            if name == "3 channels to 2":
                check(name + ": destination names the channel count", "multifd-channels" in dst.stderr_text(),
                      dst.stderr_text()[-600:])
            if name == "zlib to none":
                check(name + ": destination names the flags", "flags received 2 flags expected 0"
                      in dst.stderr_text(), dst.stderr_text()[-600:])
    finally:
        for _, src, dst in pairs:
            src.kill()
            dst.kill()


def kvm_case():
    image = os.path.abspath(os.path.join(os.environ.get("BUILD", "build"), "guest", "boot-sector.img"))
    why = migvm.kvm_usable()
    if why:
        skip("KVM boot-sector guest over multifd", why)
        return
    uri = uri_for("unix", "kvm")
    src = miglib.start_kvm_guest(image, "256M")
    dst = miglib.start_kvm_guest(image, "256M", incoming=uri, extra=["-S"])
    qs, qd = src.qmp(), dst.qmp()
    try:
        multifd_setup(qs, 4)
        multifd_setup(qd, 4)
        qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 0})
        check("kvm: guest runs", miglib.wait_serial_growth(src.serial_path, 10))
        qs.cmd_ok("migrate", uri=uri)
        info = miglib.wait_mig_status(qs, ("completed", "failed"), 60)
        if not check("kvm: source completed", info and info["status"] == "completed", str(info)):
            return
        check("kvm: destination completed", miglib.wait_mig_status(qd, "completed", 30) is not None)
        check_counters("kvm", info)
        a = miglib.pmemsave(qs, os.path.join(src.dir, "src.bin"), 0, 256 << 20)
        b = miglib.pmemsave(qd, os.path.join(dst.dir, "dst.bin"), 0, 256 << 20)
        check("kvm: RAM identical", a == b)
        qd.cmd_ok("cont")
        check("kvm: destination guest runs", miglib.wait_serial_growth(dst.serial_path, 10))
    finally:
        src.kill()
        dst.kill()


def unread_pages():
    """Over unix the channels hand guest pages to the socket by reference
    (multifd-splice.c): the destination reads them from guest RAM when it
    reads the socket. A stopped guest with 2 MiB of data fits in the socket
    buffers, so its stream is all out at once; the source must not call the
    migration completed (after which x-force-after-migration could run the
    guest and change those pages) before a destination that is stopped
    (SIGSTOP) read them. (QEMU 7.2 would say completed at once.)"""
    src = miglib.start_vm(mem="16M", dirty_rate=0, top="2M")
    dst = miglib.start_vm(mem="16M", incoming="defer", paused=True, top="2M")
    try:
        qs, qd = src.qmp(), dst.qmp()
        for q in (qs, qd):
            multifd_setup(q, 2)
        uri = uri_for("unix", "unread")
        qd.cmd_ok("migrate-incoming", uri=uri)
        check("unread pages: the workload wrote its 2 MiB",
              wait_until(lambda: b"B" in migvm.read_bytes(src.serial_path), 20.0))
        qs.cmd_ok("stop")
        a = miglib.pmemsave(qs, os.path.join(src.dir, "src.bin"), 0, 16 << 20)
        os.kill(dst.pid, signal.SIGSTOP)
        qs.cmd_ok("migrate", uri=uri)
        check("unread pages: the final pass went out", wait_until(
            lambda: miglib.mig_info(qs).get("ram", {}).get("downtime-bytes", 0) > 0, 10.0), miglib.mig_info(qs))
        ended = wait_until(lambda: miglib.mig_info(qs).get("status") != "active", 1.0)
        check("unread pages: still active while the destination has not read", not ended, miglib.mig_info(qs))
        os.kill(dst.pid, signal.SIGCONT)
        si = miglib.wait_mig_status(qs, ("completed", "failed"), 20.0) or {}
        check_eq("unread pages: completed once it read them", si.get("status"), "completed")
        di = miglib.wait_mig_status(qd, ("completed", "failed"), 20.0) or {}
        check_eq("unread pages: destination completed", di.get("status"), "completed")
        b = miglib.pmemsave(qd, os.path.join(dst.dir, "dst.bin"), 0, 16 << 20)
        check("unread pages: RAM identical", a == b and len(a) == 16 << 20)
    finally:
        if dst.pid:
            os.kill(dst.pid, signal.SIGCONT)
        src.kill()
        dst.kill()


def destination_killed():
    """The destination dies (SIGKILL) mid-stream while the channels splice
    guest pages into their sockets: the source fails saying the socket
    broke, and its guest runs on."""
    src = miglib.start_vm(mem="128M", dirty_rate=64)
    dst = miglib.start_vm(mem="128M", incoming="defer", paused=True)
    try:
        qs, qd = src.qmp(), dst.qmp()
        for q in (qs, qd):
            multifd_setup(q, 2)
        check("destination killed: the workload made a pass",
              wait_until(lambda: b"B" in migvm.read_bytes(src.serial_path), 30.0))
        uri = uri_for("unix", "killed")
        qd.cmd_ok("migrate-incoming", uri=uri)
        qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 16 << 20})
        qs.cmd_ok("migrate", uri=uri)
        check("destination killed: data is flowing", wait_until(
            lambda: miglib.mig_info(qs).get("ram", {}).get("multifd-bytes", 0) > 16 << 20, 10.0), miglib.mig_info(qs))
        dst.kill()
        si = miglib.wait_mig_status(qs, ("failed", "completed", "cancelled"), 20.0) or {}
        check_eq("destination killed: the source fails", si.get("status"), "failed")
        # A channel or the main stream may be the first to see it.
        check("destination killed: it says the socket broke", "socket" in (si.get("error-desc") or ""), si)
        check_eq("destination killed: the source runs on", miglib.query_status(qs), "running")
        check("destination killed: the guest makes progress", miglib.wait_serial_growth(src.serial_path, 10.0))
    finally:
        src.kill()
        dst.kill()


def main():
    if os.environ.get("MULTIFD_FULL"):
        cases = [(t, n, c) for t in ("unix", "tcp") for n in (2, 4) for c in ("none", "zlib", "zstd")]
    else:
        cases = [("unix", 2, "none"), ("tcp", 4, "zstd"), ("unix", 3, "zlib")]
    for t, n, c in cases:
        if not os.environ.get("MULTIFD_ONLY") or os.environ["MULTIFD_ONLY"] == "live":
            run("live %s %d %s" % (t, n, c), live_case, t, n, c)
    run("exec refused", exec_refused)
    run("cancel then again", cancel_then_again)
    run("zero-copy rules", zero_copy_rules)
    run("live tcp 2 none zero-copy", live_case, "tcp", 2, "none", "64M", True)
    run("mismatches", mismatches)
    run("unread pages", unread_pages)
    run("destination killed", destination_killed)
    run("kvm", kvm_case)
    finish()


main()
