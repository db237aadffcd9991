#!/usr/bin/env python3
"""A precopy whose connection breaks, resumed (capability x-resumable-precopy),
and the recovery commands' errors as QEMU 7.2 gives them.

A TCP proxy in this script sits between source and destination, stops
forwarding at 95 % of RAM (the source blocks: the migration cannot end first)
and cuts the connection (both directions closed at once).

* resume on (soft guest, then the KVM boot-sector guest): both sides go to
  x-precopy-paused, the source guest keeps running; migrate-recover on a new
  address and `migrate resume:true` (HMP `migrate -r` for the KVM guest)
  complete the migration; the destination (started with -S) holds exactly the
  source's memory (pmemsave on both, the soft workload's page rule too), and
  x-resent-bytes (the soft guest filled its RAM and was stopped before the
  migration, so a fresh start would send all of it) is far below a fresh start.
* resume on, the destination killed and restarted: the resume is refused,
  the source stays paused; migrate_cancel from x-precopy-paused leaves it
  running, and a fresh migration completes.
* migrate-pause on an active resumable precopy pauses it as a cut does.
* resume off: QEMU 7.2's behaviour, the source fails and its guest runs on.
* Parity: migrate-pause / migrate-recover / migrate resume:true outside their
  states answer QEMU 7.2's class and text (checked against QEMU 7.2.22).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migvm import (check, check_eq, finish, free_tcp_port, kvm_usable, qemu_mode, read_bytes,  # noqa: E402
                   run, skip, skip_all, wait_until)
from cutproxy import Proxy  # noqa: E402
from miglib import (MiB, check_memory_pattern, error_of, mig_info, query_status,  # noqa: E402
                    set_caps, start_kvm_guest, start_vm, wait_mig_status, wait_serial_growth)

if qemu_mode():
    skip_all("x-resumable-precopy is migvm's own")

MEM_MB = 128
DIRTY_RATE = 32      # MiB/s: one sweep of the soft workload in ~4 s
KVM_MEM_MB = 64
PAUSE_ERR = "migrate-pause is currently only supported during postcopy-active state"
RECOVER_ERR = "Migrate recover can only be run when postcopy is paused."
RESUME_ERR = "Cannot resume if there is no paused migration"
PAUSED = "x-precopy-paused"


def resumable(q, on=True):
    set_caps(q, x_resumable_precopy=on)


def dest(vm_factory, resume=True):
    port = free_tcp_port()
    dst = vm_factory("tcp:127.0.0.1:%d" % port)
    qd = dst.qmp()
    if resume:
        resumable(qd)
    return dst, qd, port


def compare_memory(name, qs, qd, mem_mb, pattern):
    sp = os.path.join(os.environ.get("TMPDIR", "/tmp"), "resume-src-%d.bin" % os.getpid())
    dp = os.path.join(os.environ.get("TMPDIR", "/tmp"), "resume-dst-%d.bin" % os.getpid())
    try:
        # (a generous deadline: the disk may be busy)
        qs.cmd_ok("pmemsave", val=0, size=mem_mb * MiB, filename=sp, timeout=60)
        qd.cmd_ok("pmemsave", val=0, size=mem_mb * MiB, filename=dp, timeout=60)
        a, b = read_bytes(sp), read_bytes(dp)
        check(name + ": destination memory identical to the source's", a == b and len(a) == mem_mb * MiB,
              "sizes %d/%d" % (len(a), len(b)))
        if pattern:
            ok, detail = check_memory_pattern(b)
            check(name + ": workload page rule holds on the destination", ok, detail)
    finally:
        for p in (sp, dp):
            if os.path.exists(p):
                os.unlink(p)


def resume_scenario(name, src, vm_factory, mem_mb, stopped):
    """stopped: the source guest is stopped before the migration (a soft
    guest that filled its RAM), so a fresh start would send all of RAM again
    and x-resent-bytes counts only what the cut lost; else the guest runs
    throughout (and rewrites its RAM: no figure to compare)."""
    qs = src.qmp()
    resumable(qs)
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=0)
    if not stopped:
        # A guest rewriting all its RAM must not converge before the cut (the
        # controller would throttle it until it does, and a slow build, e.g.
        # ASan, let a 300 ms limit start the switch-over, where a cut fails
        # the migration instead of pausing it): controller off, 1 ms limit.
        qs.cmd_ok("migrate-set-parameters", x_convergence_controller=False, downtime_limit=1)
    dst, qd, port = dest(vm_factory)
    # Freeze at 85 % of a stopped guest's RAM (the stream carries little else; the rest must
    # not fit in the sockets' buffers), then cut.
    # A running guest's 64 MiB: freeze at half, so the sockets' buffers (some
    # 16 MiB along the proxy) cannot take the rest of the first pass and let
    # the source reach its switch-over before the cut.
    proxy = Proxy(port, freeze_at=int(mem_mb * MiB * (0.85 if stopped else 0.5)))
    try:
        if stopped:
            qs.cmd_ok("stop")
        qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % proxy.port)
        check(name + ": the proxy froze the stream", proxy.frozen.wait(60))
        before = mig_info(qs)
        check_eq(name + ": source still active before the cut", before.get("status"), "active")
        proxy.cut()
        si = wait_mig_status(qs, PAUSED, 20)
        check_eq(name + ": source paused", si and si["status"], PAUSED)
        if not si:
            print("# source: %s %s" % (mig_info(qs), src.stderr_text()[-600:]))
        di = wait_mig_status(qd, PAUSED, 20)
        check_eq(name + ": destination paused", di and di["status"], PAUSED)
        check_eq(name + ": source run state kept while paused", query_status(qs), "paused" if stopped else "running")
        if not stopped:
            check(name + ": source guest makes progress while paused", wait_serial_growth(src.serial_path, 10))
        check_eq(name + ": migrate-pause while paused", error_of(qs.cmd("migrate-pause")), ("GenericError", PAUSE_ERR))
        check_eq(name + ": a second migrate while paused", error_of(qs.cmd("migrate", uri="tcp:127.0.0.1:1")),
                 ("GenericError", "There's a migration process in progress"))
        newport = free_tcp_port()
        qd.cmd_ok("migrate-recover", uri="tcp:127.0.0.1:%d" % newport)
        check_eq(name + ": migrate-recover twice", error_of(qd.cmd("migrate-recover", uri="tcp:127.0.0.1:1")),
                 ("GenericError", "Migrate recovery is triggered already"))
        uri = "tcp:127.0.0.1:%d" % newport
        if not stopped:
            qs.cmd_ok("migrate-set-parameters", x_convergence_controller=True, downtime_limit=300)
        if stopped:
            qs.cmd_ok("migrate", uri=uri, resume=True)
        else:
            check_eq(name + ": HMP migrate -d -r", qs.hmp("migrate -d -r " + uri), "")
        si = wait_mig_status(qs, ("completed", "failed", "cancelled"), 60)
        check_eq(name + ": source completed after the resume", si and si["status"], "completed")
        di = wait_mig_status(qd, ("completed", "failed"), 20)
        check_eq(name + ": destination completed", di and di["status"], "completed")
        if not si or not di or si["status"] != "completed":
            return
        first = before["ram"]["transferred"]
        resent = si.get("x-resent-bytes")
        check(name + ": x-resent-bytes reported", isinstance(resent, int) and resent > 0, str(si))
        print("# %s: before the cut %d bytes, resent %s bytes, RAM %d MiB; %s" %
              (name, first, resent, mem_mb, [ln for ln in src.stderr_text().splitlines() if "resumed" in ln]))
        if stopped:
            # The workload filled every page: a fresh start sends all of RAM
            # again; the resume, the last 15 % and what the cut lost in the
            # sockets' buffers.
            check(name + ": resent far below a fresh start (%s bytes, RAM %d MiB)" % (resent, mem_mb),
                  isinstance(resent, int) and resent < mem_mb * MiB / 4)
        compare_memory(name, qs, qd, mem_mb, stopped)
        check_eq(name + ": destination paused (-S, or as the source was)", query_status(qd), "paused")
        qd.cmd_ok("cont")
        check(name + ": destination guest runs", wait_serial_growth(dst.serial_path, 10))
        check_eq(name + ": source in postmigrate", query_status(qs), "postmigrate")
    finally:
        proxy.close()
        dst.kill()


def soft_vm(incoming=None, paused=False):
    return start_vm("%dM" % MEM_MB, dirty_rate=DIRTY_RATE, incoming=incoming, paused=paused)


def test_soft_resume():
    src = soft_vm()
    try:
        check("soft: workload filled its RAM once", wait_serial_growth(src.serial_path, 15, by=2))
        resume_scenario("soft", src, lambda inc: soft_vm(inc, paused=True), MEM_MB, True)
    finally:
        src.kill()


def boot_sector_image():
    build = os.environ.get("BUILD", "build")
    return os.path.abspath(os.path.join(build, "guest", "boot-sector.img"))


def test_kvm_resume():
    why = kvm_usable()
    if why:
        skip("kvm boot-sector guest", why)
        return
    img = boot_sector_image()
    src = start_kvm_guest(img, "%dM" % KVM_MEM_MB)
    try:
        check("kvm: guest runs", wait_serial_growth(src.serial_path, 10))
        resume_scenario("kvm", src, lambda inc: start_kvm_guest(img, "%dM" % KVM_MEM_MB, incoming=inc,
                                                                extra=["-S"]),
                        KVM_MEM_MB, False)
    finally:
        src.kill()


def test_restarted_destination_and_cancel():
    src = soft_vm()
    qs = src.qmp()
    resumable(qs)
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=32 * MiB)
    dst, qd, port = dest(soft_vm)
    proxy = Proxy(port)
    try:
        check("restart: workload filled its RAM once", wait_serial_growth(src.serial_path, 10))
        qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % proxy.port)
        check("restart: migration active", wait_mig_status(qs, "active", 10) is not None)
        wait_until(lambda: (mig_info(qs).get("ram") or {}).get("transferred", 0) > 8 * MiB, 20)
        check_eq("migrate-pause on an active resumable precopy", qs.cmd("migrate-pause").get("return"), {})
        si = wait_mig_status(qs, PAUSED, 20)
        check_eq("migrate-pause: source paused", si and si["status"], PAUSED)
        check("migrate-pause: destination paused", wait_mig_status(qd, PAUSED, 20) is not None)
        dst.kill()                              # the destination is lost ...
        dst, qd, port = dest(soft_vm)           # ... and a new one knows nothing
        qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % port, resume=True)
        check("restart: resume refused, the source paused again",
              wait_until(lambda: "resume refused" in src.stderr_text() and mig_info(qs)["status"] == PAUSED, 20),
              src.stderr_text()[-400:])
        check_eq("restart: the new destination failed", (wait_mig_status(qd, "failed", 10) or {}).get("status"),
                 "failed")
        qs.cmd_ok("migrate_cancel")
        si = wait_mig_status(qs, ("cancelled", "failed"), 10)
        check_eq("cancel from paused: cancelled", si and si["status"], "cancelled")
        check_eq("cancel from paused: source runs", query_status(qs), "running")
        check("cancel from paused: guest makes progress", wait_serial_growth(src.serial_path, 10))
        dst.kill()
        dst, qd, port = dest(soft_vm)
        qs.cmd_ok("migrate-set-parameters", max_bandwidth=0)
        qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % port)
        si = wait_mig_status(qs, ("completed", "failed", "cancelled"), 60)
        check_eq("after cancel: a fresh migration completes", si and si["status"], "completed")
    finally:
        proxy.close()
        dst.kill()
        src.kill()


def test_resume_off():
    src = soft_vm()
    qs = src.qmp()
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=32 * MiB)
    dst, qd, port = dest(soft_vm, resume=False)
    proxy = Proxy(port)
    try:
        check("off: workload filled its RAM once", wait_serial_growth(src.serial_path, 10))
        qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % proxy.port)
        check("off: migration active", wait_mig_status(qs, "active", 10) is not None)
        check_eq("off: migrate-pause refused during precopy", error_of(qs.cmd("migrate-pause")), ("GenericError", PAUSE_ERR))
        wait_until(lambda: (mig_info(qs).get("ram") or {}).get("transferred", 0) > 8 * MiB, 20)
        proxy.cut()
        si = wait_mig_status(qs, ("failed", PAUSED), 20)
        check_eq("off: source failed", si and si["status"], "failed")
        check_eq("off: source guest running", query_status(qs), "running")
        check("off: source guest makes progress", wait_serial_growth(src.serial_path, 10))
        di = wait_mig_status(qd, ("failed", PAUSED), 20)
        check_eq("off: destination failed", di and di["status"], "failed")
        check_eq("off: migrate-recover refused on the failed destination",
                 error_of(qd.cmd("migrate-recover", uri="tcp:127.0.0.1:1")),
                 ("GenericError", RECOVER_ERR))
        check_eq("off: resume refused on the failed source",
                 error_of(qs.cmd("migrate", uri="tcp:127.0.0.1:1", resume=True)),
                 ("GenericError", RESUME_ERR))
    finally:
        proxy.close()
        dst.kill()
        src.kill()


def test_parity():
    vm = start_vm("32M")
    q = vm.qmp()
    try:
        resumable(q)        # the capability alone changes nothing outside a migration
        for name, cmd, args, err in (
                ("migrate-pause, no migration", "migrate-pause", {}, PAUSE_ERR),
                ("migrate-recover, no migration", "migrate-recover", {"uri": "tcp:127.0.0.1:1"}, RECOVER_ERR),
                ("migrate resume, no migration", "migrate", {"uri": "tcp:127.0.0.1:1", "resume": True},
                 RESUME_ERR)):
            check_eq("parity: %s" % name, error_of(q.cmd(cmd, args)), ("GenericError", err))
        for line, err in (("migrate_pause", PAUSE_ERR), ("migrate_recover tcp:127.0.0.1:1", RECOVER_ERR),
                          ("migrate -r tcp:127.0.0.1:1", RESUME_ERR)):
            check_eq("parity: HMP %s" % line, q.hmp(line), "Error: %s\r\n" % err)
    finally:
        vm.kill()
    dst, qd, port = dest(soft_vm)
    try:
        check_eq("parity: destination listening: migrate-recover",
                 error_of(qd.cmd("migrate-recover", uri="tcp:127.0.0.1:1")),
                 ("GenericError", RECOVER_ERR))
        check_eq("parity: destination listening: migrate-pause", error_of(qd.cmd("migrate-pause")),
                 ("GenericError", PAUSE_ERR))
    finally:
        dst.kill()


run("parity", test_parity)
run("resume off", test_resume_off)
run("soft resume", test_soft_resume)
run("restarted destination, cancel", test_restarted_destination_and_cancel)
run("kvm resume", test_kvm_resume)
finish()
