#!/usr/bin/python3
"""calc-dirty-rate / query-dirty-rate and HMP calc_dirty_rate / info
dirty_rate, as QEMU 7.2 answers them:

* the KVM boot-sector guest (-m 256M; it increments a byte of every page
  from 1 MiB up and prints 'B' after each pass): page-sampling and
  dirty-bitmap report within 30 % of the rate of distinct pages the guest
  writes, taken from the times of its 'B's around the measurement (a guest
  that rewrites its RAM faster than calc-time dirties each page only once:
  then the truth is its RAM over the time);
* the soft accelerator at dirty-rate=20 (MiB/s): the same, both modes (its
  workload forgets a backlog, so it too is timed by its 'B's);
* the states unstarted -> measuring -> measured with QEMU's members, a
  second calc-dirty-rate refused while one measures;
* errors with QEMU 7.2's texts: calc-time 0 / -1 / 61, sample-pages out of
  range, a bad mode, dirty-ring without the dirty ring, dirty-ring with
  sample-pages;
* a dirty-bitmap measurement during a migration (QEMU 7.2 allows it) sees
  the guest's writes although the migration harvests the same dirty log,
  and a migration right after a measurement completes (KVM: the
  destination's memory equals the source's);
* HMP: calc_dirty_rate's and info dirty_rate's text.
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
import miglib  # noqa: E402
from migvm import check, check_eq, finish, new_tmpdir, require_binary, run, skip, wait_until  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
GUEST_IMG = os.path.abspath(os.path.join(BUILD, "guest", "boot-sector.img"))
TOLERANCE = 0.30
# The soft guest: 32 MiB, 31 of them rewritten at 20 MiB/s (a pass in ~1.5 s,
# longer than calc-time); page-sampling then needs the most samples per GiB
# (16384: 512 pages) to stay well inside 30 %.
SOFT_MEM = "32M"
SOFT_RATE = 20          # MiB/s
SOFT_MIB_PER_PASS = 31.0
SOFT_SAMPLES = 16384


class PassClock:
    """Times of the guest's 'B's (one per pass), from polling its serial file."""

    def __init__(self, path):
        self.path = path
        self.times = []
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        seen = 0
        while not self.stop:
            n = miglib.serial_text(self.path).count(b"B")
            now = time.monotonic()
            self.times.extend([now] * (n - seen))
            seen = n
            time.sleep(0.005)

    def close(self):
        self.stop = True
        self.thread.join()


def wait_measured(q, timeout=15.0):
    return wait_until(lambda: q.cmd_ok("query-dirty-rate")["status"] == "measured", timeout)


def start_measurement(q, name, mode, sample_pages=None):
    args = {"calc-time": 1, "mode": mode}
    if sample_pages:
        args["sample-pages"] = sample_pages
    q.cmd_ok("calc-dirty-rate", **args)
    info = q.cmd_ok("query-dirty-rate")
    want = {"status": "measuring", "calc-time": 1, "mode": mode, "sample-pages": sample_pages or 512}
    check_eq("%s: query-dirty-rate while measuring" % name,
             {k: info.get(k) for k in want} == want and "dirty-rate" not in info, True)
    r = q.cmd("calc-dirty-rate", **{"calc-time": 1})
    miglib.expect_qmp_error("%s: a second calc-dirty-rate is refused" % name, r,
                            "the dirty rate is already being measured.")


def finish_measurement(q, name, mode, sample_pages=512):
    check("%s: measured within 15 s" % name, wait_measured(q))
    info = q.cmd_ok("query-dirty-rate")
    check_eq("%s: result members" % name, sorted(info),
             ["calc-time", "dirty-rate", "mode", "sample-pages", "start-time", "status"])
    check_eq("%s: sample-pages (QEMU reports 0 for dirty-bitmap)" % name, info["sample-pages"],
             0 if mode == "dirty-bitmap" else sample_pages)
    return info


def within(name, reported, actual):
    ok = actual > 0 and abs(reported - actual) <= TOLERANCE * actual
    print("FIGURE: %s: reported %d MiB/s, guest %.1f MiB/s (%+.0f %%)"
          % (name, reported, actual, 100.0 * (reported - actual) / actual if actual else 0))
    check("%s: reported %d MiB/s within 30 %% of %.1f MiB/s" % (name, reported, actual), ok)


def guest_rate(clock, t0, t1, mib_per_pass):
    """Distinct MiB/s the boot-sector guest dirtied in [t0, t1]: its pass
    rate between the last 'B' before t0 and the first one after t1, capped
    at its RAM once per window (a page written twice is dirtied once)."""
    if not wait_until(lambda: clock.times and clock.times[-1] >= t1, 30):
        return None
    times = list(clock.times)
    before = [t for t in times if t <= t0]
    after = [t for t in times if t >= t1]
    if not before or not after:
        return None
    tb, ta = before[-1], after[0]
    passes = sum(1 for t in times if tb < t <= ta)
    rate = mib_per_pass * passes / (ta - tb)
    return min(rate, mib_per_pass / (t1 - t0))


def test_kvm_boot_sector():
    why = migvm.kvm_usable()
    if why or migvm.qemu_mode():
        skip("KVM boot-sector guest", why or "migvm's own KVM machine")
        return
    vm = miglib.start_kvm_guest(GUEST_IMG, "256M")
    q = vm.qmp()
    clock = PassClock(vm.serial_path)
    try:
        check("kvm: guest runs two passes", wait_until(lambda: len(clock.times) >= 2, 60), vm.stderr_text())
        for mode in ("page-sampling", "dirty-bitmap"):
            name = "kvm %s" % mode
            t0 = time.monotonic()
            start_measurement(q, name, mode)
            info = finish_measurement(q, name, mode)
            t1 = time.monotonic()
            actual = guest_rate(clock, t0, t1, 255.0)
            check("%s: the guest's passes bracket the measurement" % name, actual is not None)
            if actual:
                within(name, info["dirty-rate"], actual)
    finally:
        clock.close()
    kvm_migrate_after(vm, q)
    check("kvm: no error on stderr", not vm.stderr_text(), vm.stderr_text())


def kvm_migrate_after(src, qs):
    """Right after the measurements started and stopped KVM's dirty logging,
    a live migration (several passes while the guest writes, a dirty-bitmap
    measurement among them, then a setting that converges) leaves a paused
    destination with the source's memory, byte for byte: dirty tracking
    still misses nothing."""
    d = new_tmpdir()
    uri = "unix:" + os.path.join(d, "mig.sock")
    dst = miglib.start_kvm_guest(GUEST_IMG, "256M", incoming=uri, tmpdir=d, extra=["-S"])
    qd = dst.qmp()
    # QEMU's behaviour (the controller off): it must not complete before the measurement ran during it.
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 256 << 20, "downtime-limit": 1,
                                           "x-convergence-controller": False})
    qs.cmd_ok("migrate", uri=uri)
    syncs = lambda: miglib.mig_info(qs).get("ram", {}).get("dirty-sync-count", 0)  # noqa: E731
    check("kvm migration after the measurements: several passes", wait_until(lambda: syncs() >= 3, 60))
    # A measurement during it starts and stops dirty logging again: the
    # migration must keep its logging and every page its syncs harvest.
    start_measurement(qs, "kvm during migration", "dirty-bitmap")
    finish_measurement(qs, "kvm during migration", "dirty-bitmap")
    after = syncs()
    check("kvm migration: passes after the measurement", wait_until(lambda: syncs() >= after + 2, 60))
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 8 << 30, "downtime-limit": 2000})
    info = miglib.wait_mig_status(qs, ("completed", "failed", "cancelled"), 60)
    check_eq("kvm migration after the measurements completes", info and info.get("status"), "completed")
    check("kvm: destination paused", miglib.wait_run_state(qd, "paused", 20), dst.stderr_text())
    size = 256 << 20
    src_mem = miglib.pmemsave(qs, os.path.join(d, "src.bin"), 0, size)
    dst_mem = miglib.pmemsave(qd, os.path.join(d, "dst.bin"), 0, size)
    bad = [i for i in range(0, size, 4096) if src_mem[i:i + 4096] != dst_mem[i:i + 4096]] \
        if src_mem != dst_mem else []
    check("kvm: destination RAM equals the source's", src_mem == dst_mem and len(src_mem) == size,
          "%d pages differ, first at %s" % (len(bad), hex(bad[0]) if bad else "-"))


def measure_soft(q, clock, name, mode, sample_pages=None):
    check("%s: guest runs two passes" % name, wait_until(lambda: len(clock.times) >= 2, 30))
    t0 = time.monotonic()
    start_measurement(q, name, mode, sample_pages)
    info = finish_measurement(q, name, mode, sample_pages)
    t1 = time.monotonic()
    actual = guest_rate(clock, t0, t1, SOFT_MIB_PER_PASS)
    check("%s: the guest's passes bracket the measurement" % name, actual is not None)
    if actual:
        within(name, info["dirty-rate"], actual)
    return info, t0


def test_soft_and_states():
    vm = miglib.start_vm(SOFT_MEM, dirty_rate=SOFT_RATE)
    q = vm.qmp()
    clock = PassClock(vm.serial_path)
    try:
        soft_and_states(vm, q, clock)
    finally:
        clock.close()


def soft_and_states(vm, q, clock):
    check_eq("query-dirty-rate before any measurement", q.cmd_ok("query-dirty-rate"),
             {"status": "unstarted", "sample-pages": 0, "mode": "page-sampling", "start-time": 0, "calc-time": 0})
    check_eq("info dirty_rate before any measurement", q.hmp("info dirty_rate"),
             "Status: unstarted\r\nStart Time: 0 (ms)\r\nSample Pages: 0 (per GB)\r\nPeriod: 0 (sec)\r\n"
             "Mode: page-sampling\r\nDirty rate: (not ready)\r\n")
    errors = [
        ({"calc-time": 0}, "calc-time is out of range[1, 60]."),
        ({"calc-time": -1}, "calc-time is out of range[1, 60]."),
        ({"calc-time": 61}, "calc-time is out of range[1, 60]."),
        ({"calc-time": 1, "sample-pages": 127}, "sample-pages is out of range[128, 16384]."),
        ({"calc-time": 1, "sample-pages": 16385}, "sample-pages is out of range[128, 16384]."),
        ({"calc-time": 1, "mode": "bad"}, "Parameter 'mode' does not accept value 'bad'"),
        ({"calc-time": 1, "mode": "dirty-ring"}, "mode dirty-ring is not enabled, use other method instead."),
        ({"calc-time": 1, "mode": "dirty-ring", "sample-pages": 512},
         "either sample-pages or dirty-ring can be specified."),
    ]
    for args, text in errors:
        r = q.cmd("calc-dirty-rate", **args)
        check_eq("calc-dirty-rate %r refused" % args, r.get("error", {}).get("desc"), text)
    check_eq("still unstarted after the errors", q.cmd_ok("query-dirty-rate")["status"], "unstarted")

    for mode, samples in (("page-sampling", SOFT_SAMPLES), ("dirty-bitmap", None)):
        name = "soft %s" % mode
        info, start = measure_soft(q, clock, name, mode, samples)
        check_eq("%s: calc-time" % name, info["calc-time"], 1)
        check("%s: start-time is the monotonic clock's second" % name,
              int(start) <= info["start-time"] <= int(start) + 1, "%r vs %.1f" % (info["start-time"], start))

    text = q.hmp("info dirty_rate")
    info = q.cmd_ok("query-dirty-rate")
    check_eq("info dirty_rate after a dirty-bitmap measurement", text,
             "Status: measured\r\nStart Time: %d (ms)\r\nSample Pages: 0 (per GB)\r\nPeriod: 1 (sec)\r\n"
             "Mode: dirty-bitmap\r\nDirty rate: %d (MB/s)\r\n" % (info["start-time"], info["dirty-rate"]))
    check_eq("HMP calc_dirty_rate 0", q.hmp("calc_dirty_rate 0"), "Incorrect period length specified!\r\n")
    check_eq("HMP calc_dirty_rate 1 100", q.hmp("calc_dirty_rate 1 100"),
             "Error: sample-pages is out of range[128, 16384].\r\n")
    check_eq("HMP calc_dirty_rate -r 1", q.hmp("calc_dirty_rate -r 1"),
             "Error: mode dirty-ring is not enabled, use other method instead.\r\n")
    check_eq("HMP calc_dirty_rate 1 1024", q.hmp("calc_dirty_rate 1 1024"),
             "Starting dirty rate measurement with period 1 seconds\r\n"
             "[Please use 'info dirty_rate' to check results]\r\n")
    check_eq("HMP: info dirty_rate while measuring", q.hmp("info dirty_rate").splitlines()[-1], "Dirty rate: (not ready)")
    check("HMP measurement done", wait_measured(q))
    check_eq("HMP: sample pages as given", q.cmd_ok("query-dirty-rate")["sample-pages"], 1024)

    # During a migration (kept running by a tiny bandwidth): the migration
    # harvests the dirty log too; the measurement must still see every page.
    q.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 1 << 20})
    q.cmd_ok("migrate", uri="exec:cat > /dev/null")
    check("migration active", miglib.wait_mig_status(q, ("active",), 10))
    measure_soft(q, clock, "soft dirty-bitmap during a migration", "dirty-bitmap")
    check_eq("migration still active", miglib.mig_status(q), "active")
    q.cmd_ok("migrate_cancel")
    check("migration cancelled", miglib.wait_mig_status(q, ("cancelled",), 10))

    # A migration right after a measurement completes, to a real destination.
    start_measurement(q, "before migration", "dirty-bitmap")
    finish_measurement(q, "before migration", "dirty-bitmap")
    sock = os.path.join(new_tmpdir(), "mig.sock")
    dst = miglib.start_vm(SOFT_MEM, dirty_rate=SOFT_RATE, incoming="unix:" + sock)
    qd = dst.qmp()
    q.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 1 << 30})
    q.cmd_ok("migrate", uri="unix:" + sock)
    info = miglib.wait_mig_status(q, ("completed", "failed", "cancelled"), 30)
    check_eq("migration after a measurement completes", info and info.get("status"), "completed")
    check("destination runs", miglib.wait_run_state(qd, "running", 10), dst.stderr_text())
    check("no error on stderr", not vm.stderr_text() and not dst.stderr_text(), vm.stderr_text() + dst.stderr_text())


def test_quit_while_measuring():
    vm = miglib.start_vm("64M", dirty_rate=SOFT_RATE)
    q = vm.qmp()
    q.cmd_ok("calc-dirty-rate", **{"calc-time": 60, "mode": "dirty-bitmap"})
    t = time.monotonic()
    q.cmd_ok("quit")
    check_eq("quit during a 60 s measurement exits 0", vm.wait_exit(10), 0)
    check("... promptly (%.2f s)" % (time.monotonic() - t), time.monotonic() - t < 5)


def main():
    require_binary()
    if migvm.qemu_mode():
        migvm.skip_all("tests migvm's soft accelerator and KVM machine")
    run("soft accelerator, states, errors, HMP, migration", test_soft_and_states)
    run("KVM boot-sector guest", test_kvm_boot_sector)
    run("quit while measuring", test_quit_while_measuring)
    finish()


if __name__ == "__main__":
    main()
