#!/usr/bin/python3
"""The KVM accelerator end to end: the boot-sector guest
(build/guest/boot-sector.img) runs on `-accel kvm` and prints 'A' then a 'B'
per pass over its pages; stop pauses every vCPU promptly and cont resumes;
query-kvm tells the truth; -smp 2 works; a guest instruction KVM's emulator
refuses ends in run state internal-error with a clear message while QMP keeps
answering; system_reset boots the guest again; live migration over unix and
tcp keeps the guest running on the destination with exact memory.

Skips when /dev/kvm cannot be used."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
import miglib  # noqa: E402
from migvm import check, check_eq, new_tmpdir, run, wait_until  # noqa: E402
from bootguest import GUEST_IMG, serial, start_guest, stays_quiet, wait_passes  # noqa: E402

MiB = 1 << 20


def refused_instruction_image(path):
    """A boot sector that writes 'X' to COM1 and then executes popcnt in real
    mode, which the PVM emulator refuses (and hardware KVM would run: then
    the guest executes zeros and the test reports that it was not refused)."""
    code = bytes([0xb0, ord("X"),            # mov al, 'X'
                  0xba, 0xf8, 0x03,          # mov dx, 0x3f8
                  0xee,                      # out dx, al
                  0xf3, 0x0f, 0xb8, 0xc0,    # popcnt eax, eax
                  0xf4, 0xeb, 0xfd])         # hlt; jmp $-1
    return migvm.write_boot_sector(path, code)


# ---------------------------------------------------------------------------

def test_boot_stop_cont():
    vm = start_guest()
    q = vm.qmp()
    check("guest prints 'A' then 'B's", wait_passes(vm, 3), repr(serial(vm)[:40]) + vm.stderr_text())
    check_eq("query-kvm: enabled and present", q.cmd_ok("query-kvm"), {"enabled": True, "present": True})
    check_eq("query-status: running", miglib.query_status(q), "running")
    check("serial holds only 'A' and 'B's", set(serial(vm)[1:]) <= {ord("B")}, repr(serial(vm)[:40]))

    t = time.monotonic()
    q.cmd_ok("stop")
    took = time.monotonic() - t
    check("stop returns promptly (%.3f s)" % took, took < 1.0, "%.3f s" % took)
    check_eq("query-status after stop: paused", miglib.query_status(q), "paused")
    check("no new 'B' while stopped (2 s)", stays_quiet(vm), repr(serial(vm)[-10:]))
    q.cmd_ok("cont")
    check_eq("query-status after cont: running", miglib.query_status(q), "running")
    check("'B's again after cont", miglib.wait_serial_growth(vm.serial_path, 10, 2))

    # Several quick stop/cont cycles: every stop must really pause.
    quiet = 0
    for _ in range(5):
        q.cmd_ok("stop")
        if stays_quiet(vm, 0.5):
            quiet += 1
        q.cmd_ok("cont")
    check_eq("5 quick stop/cont cycles all pause the guest", quiet, 5)
    check("guest still runs after the cycles", miglib.wait_serial_growth(vm.serial_path, 10, 1))
    check("no error on stderr", "error" not in vm.stderr_text().lower(), vm.stderr_text())


def thread_cpu_ticks(pid, tid):
    """utime + stime of one thread of pid (clock ticks), None if it is gone."""
    try:
        with open("/proc/%d/task/%d/stat" % (pid, tid)) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def check_cpus_fast(vm, q, n):
    """query-cpus-fast in QEMU 7.2's shape, thread ids of this process's
    vCPU threads (vCPU 0 runs the guest: its thread uses CPU time), and HMP
    `info cpus` agreeing with it."""
    cpus = q.cmd_ok("query-cpus-fast")
    check_eq("-smp %d: query-cpus-fast lists %d vCPUs" % (n, n), [c.get("cpu-index") for c in cpus], list(range(n)))
    want_keys = ["cpu-index", "qom-path", "thread-id", "props", "target"]
    check("-smp %d: query-cpus-fast members in QEMU 7.2's order" % n,
          all(list(c) == want_keys for c in cpus), repr(cpus))
    check_eq("-smp %d: qom-path, props and target as QEMU 7.2's pc" % n,
             [(c["qom-path"], c["props"], c["target"]) for c in cpus],
             [("/machine/unattached/device[%d]" % (i + 1 if i else 0),
               {"socket-id": 0, "core-id": i, "thread-id": 0}, "x86_64") for i in range(n)])
    tids = [c.get("thread-id") for c in cpus]
    check("-smp %d: thread-ids are distinct threads of migvm, not its main thread" % n,
          len(set(tids)) == n and vm.pid not in tids and
          all(os.path.isdir("/proc/%d/task/%d" % (vm.pid, t)) for t in tids), "pid %d, tids %r" % (vm.pid, tids))
    before = thread_cpu_ticks(vm.pid, tids[0])
    check("-smp %d: vCPU 0's thread runs the guest (its CPU time grows)" % n,
          before is not None and wait_until(lambda: (thread_cpu_ticks(vm.pid, tids[0]) or 0) > before + 5, 10),
          "ticks %r -> %r" % (before, thread_cpu_ticks(vm.pid, tids[0])))
    text = "".join("%s CPU #%d: thread_id=%d\r\n" % ("*" if i == 0 else " ", i, t) for i, t in enumerate(tids))
    check_eq("-smp %d: info cpus agrees with query-cpus-fast" % n, q.hmp("info cpus"), text)
    current = q.cmd_ok("human-monitor-command", {"command-line": "info cpus", "cpu-index": n - 1})
    check_eq("-smp %d: info cpus marks the monitor's current CPU" % n, current.splitlines()[-1],
             "* CPU #%d: thread_id=%d" % (n - 1, tids[-1]))


def test_smp2():
    vm = start_guest(extra=["-smp", "2"])
    q = vm.qmp()
    check("-smp 2: guest prints 'A' then 'B's", wait_passes(vm, 2), repr(serial(vm)[:40]) + vm.stderr_text())
    check_cpus_fast(vm, q, 2)
    q.cmd_ok("stop")
    check("-smp 2: no new 'B' while stopped", stays_quiet(vm, 1.5))
    q.cmd_ok("cont")
    check("-smp 2: 'B's again after cont", miglib.wait_serial_growth(vm.serial_path, 10, 1))
    q.cmd_ok("quit")
    check_eq("-smp 2: quit exits 0", vm.wait_exit(10), 0)


def test_system_reset():
    vm = start_guest()
    q = vm.qmp()
    check("reset: guest runs first", wait_passes(vm, 1), repr(serial(vm)[:40]))
    q.cmd_ok("system_reset")
    ok = wait_until(lambda: serial(vm).count(b"A") >= 2 and serial(vm).rsplit(b"A", 1)[1].count(b"B") >= 1, 20)
    check("system_reset boots the guest again ('A' then 'B')", ok, repr(serial(vm)[-40:]) + vm.stderr_text())


def test_emulation_failure():
    d = new_tmpdir()
    img = refused_instruction_image(os.path.join(d, "popcnt.img"))
    vm = start_guest(image=img, tmpdir=d)
    q = vm.qmp()
    state = wait_until(lambda: (lambda s: s if s != "running" else None)(miglib.query_status(q)), 20)
    check_eq("refused instruction: run state internal-error", state, "internal-error")
    check("the guest ran up to it ('X' on the serial port)", serial(vm) == b"X", repr(serial(vm)))
    err = vm.stderr_text()
    check("stderr says why (emulation failure, where, which bytes)",
          "emulation failure" in err and "7c06" in err and "f3 0f b8 c0" in err, err)
    check("migvm keeps answering QMP", "qemu" in q.cmd_ok("query-version"))
    r = q.cmd("cont")
    check("cont is refused until a reset", "error" in r, repr(r))
    check("process still alive", vm.alive())
    q.cmd_ok("quit")
    check_eq("quit exits 0", vm.wait_exit(10), 0)


def test_no_boot_disk():
    vm = start_guest(image=None)
    q = vm.qmp()
    check_eq("no -drive: guest runs (vCPU 0 halted, nothing to boot)", miglib.query_status(q), "running")
    q.cmd_ok("stop")
    q.cmd_ok("cont")
    q.cmd_ok("quit")
    check_eq("no -drive: quit exits 0", vm.wait_exit(10), 0)


def test_image_boots_under_qemu(qemu):
    """The same image, booted by QEMU's BIOS (no loader hint at 0x7bf0: the
    guest uses its built-in 101 MiB top)."""
    d = new_tmpdir()
    log = os.path.join(d, "serial.out")
    args = qemu.args() + ["-m", "256M", "-drive", "file=%s,format=raw" % GUEST_IMG,
            "-display", "none", "-nodefaults", "-snapshot", "-serial", "file:" + log]
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    migvm.track_pid(p.pid)
    try:
        ok = wait_until(lambda: miglib.serial_text(log).startswith(b"A") and miglib.serial_text(log).count(b"B") >= 2
                        or p.poll() is not None, 120)
        alive = p.poll() is None
    finally:
        p.kill()
        err = p.communicate(timeout=10)[1].decode("utf-8", "replace")
    check("QEMU boots the image: 'A' then 'B's", ok and alive, repr(miglib.serial_text(log)[:40]) + err)


def migrate_kvm(transport, dest_paused, accel="kvm", extra=()):
    """Migrate the running guest. dest_paused: the destination runs with -S,
    so its memory right after migration can be compared byte for byte with
    the source's (a page missed by dirty tracking shows up there); otherwise
    it resumes by itself and the memory pattern is checked after a stop."""
    name = "%s%s%s" % (transport, ", destination -S" if dest_paused else "",
                       ", %s %s" % (accel, " ".join(extra)) if accel != "kvm" or extra else "")
    src = start_guest(accel=accel, extra=extra)
    qs = src.qmp()
    check("%s: source guest runs" % name, wait_passes(src, 2), repr(serial(src)[:40]) + src.stderr_text())
    d = new_tmpdir()
    if transport == "unix":
        uri = "unix:" + os.path.join(d, "mig.sock")
    else:
        uri = "tcp:127.0.0.1:%d" % migvm.free_tcp_port()
    dst = start_guest(incoming=uri, tmpdir=d, accel=accel, extra=list(extra) + (["-S"] if dest_paused else []))
    qd = dst.qmp()
    check_eq("%s: destination waits in inmigrate" % name, miglib.query_status(qd), "inmigrate")
    # As QEMU's migration tests: first a setting that cannot converge (the
    # guest dirties all of its RAM ~6 times a second), so several passes run
    # while the guest writes and dirty tracking matters; then one that does.
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 256 << 20, "downtime-limit": 1,
                                           "x-convergence-controller": False})
    before = miglib.serial_size(src.serial_path)
    r = qs.cmd("migrate", uri=uri)
    check("%s: migrate accepted" % name, "return" in r, repr(r))
    passes = wait_until(lambda: (miglib.mig_info(qs).get("ram", {}).get("dirty-sync-count", 0) >= 4 and
                                 miglib.serial_size(src.serial_path) >= before + 2), 60)
    check("%s: several passes while the guest runs" % name, passes, repr(miglib.mig_info(qs)))
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 8 << 30, "downtime-limit": 2000,
                                           "x-convergence-controller": True})
    info = miglib.wait_mig_status(qs, ("completed", "failed", "cancelled"), 60)
    check_eq("%s: migration completed" % name, info and info.get("status"), "completed")
    check_eq("%s: source is postmigrate" % name, miglib.query_status(qs), "postmigrate")
    if dest_paused:
        check("%s: destination paused" % name, miglib.wait_run_state(qd, "paused", 20), dst.stderr_text())
        src_mem = miglib.pmemsave(qs, os.path.join(d, "src.bin"), 0, 128 * MiB)
        dst_mem = miglib.pmemsave(qd, os.path.join(d, "dst.bin"), 0, 128 * MiB)
        bad = [i for i in range(0, len(src_mem), 4096) if src_mem[i:i + 4096] != dst_mem[i:i + 4096]]
        check("%s: destination RAM equals the source's" % name, src_mem == dst_mem and len(src_mem) == 128 * MiB,
              "%d pages differ, first at %s" % (len(bad), hex(bad[0]) if bad else "-"))
        check("%s: destination quiet while paused" % name, stays_quiet(dst, 1.0))
        qd.cmd_ok("cont")
    else:
        check("%s: destination running" % name, miglib.wait_run_state(qd, "running", 20), dst.stderr_text())
    check("%s: guest prints 'B's on the destination" % name,
          miglib.wait_serial_growth(dst.serial_path, 20, 2), repr(serial(dst)) + dst.stderr_text())
    check("%s: destination serial has only 'B's" % name, set(serial(dst)) <= {ord("B")}, repr(serial(dst)[:40]))
    check("%s: source stays quiet" % name, stays_quiet(src, 1.0))
    qd.cmd_ok("stop")
    dump = miglib.pmemsave(qd, os.path.join(d, "mem.bin"), 0, 128 * MiB)
    ok, detail = miglib.check_memory_pattern(dump)
    check("%s: destination memory pattern (n / n-1, one step): %s" % (name, detail), ok, detail)
    qd.cmd_ok("cont")
    check("%s: destination resumes after stop/cont" % name, miglib.wait_serial_growth(dst.serial_path, 10, 1))
    check("%s: no errors on stderr" % name, not src.stderr_text() and not dst.stderr_text(),
          src.stderr_text() + dst.stderr_text())


def main():
    migvm.require_own_kvm(GUEST_IMG)
    run("boot, stop, cont", test_boot_stop_cont)
    run("-smp 2", test_smp2)
    run("system_reset", test_system_reset)
    run("emulation failure", test_emulation_failure)
    run("no boot disk", test_no_boot_disk)
    qemu = migvm.qemu_kvm()
    if qemu.why:
        migvm.skip("the image under QEMU", qemu.why)
    else:
        run("the image under QEMU", test_image_boots_under_qemu, qemu)
    run("migration over unix", migrate_kvm, "unix", True)
    run("migration over tcp", migrate_kvm, "tcp", False)
    run("migration over unix, autostart", migrate_kvm, "unix", False)
    run("migration with an in-kernel irqchip", migrate_kvm, "unix", True, "kvm,kernel-irqchip=on",
        ["-smp", "2"])
    migvm.finish()


if __name__ == "__main__":
    main()
