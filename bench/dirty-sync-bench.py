#!/usr/bin/python3
"""Dirty tracking cost: KVM's dirty bitmap against its dirty ring.

For each guest size, the boot-sector guest (build/guest/boot-sector.img on
-accel kvm; it rewrites every page of its RAM pass after pass) is migrated
to `exec:cat > /dev/null` at a capped bandwidth for SECONDS seconds (many
syncs while the guest dirties everything), then cancelled. migvm's
MIGVM_DIRTY_SYNC_STATS hook (accel-kvm/kvm-dirty.c) reports what dirty
tracking cost meanwhile: the syncs on the migration thread's path (mean and
max) and, for the ring, the reaps outside them (reaper thread, ring-full
exits), and how often a ring was found overflowed.

Usage: bench/dirty-sync-bench.py [--sizes 256M,1G] [--seconds 6] [--ring 65536]
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import migvm  # noqa: E402
import miglib  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
IMG = os.path.abspath(os.path.join(BUILD, "guest", "boot-sector.img"))
MiB = 1 << 20


def parse_stats(path):
    with open(path) as f:
        line = f.read().strip().splitlines()[-1].split()
    return {line[i]: (line[i + 1] if line[i] == "mode" else int(line[i + 1])) for i in range(0, len(line), 2)}


def run(size, accel, seconds, cap):
    d = migvm.new_tmpdir()
    stats = os.path.join(d, "sync-stats")
    env = dict(os.environ, MIGVM_DIRTY_SYNC_STATS=stats)
    vm = miglib.start_kvm_guest(IMG, size, accel=accel, tmpdir=d, env=env)
    q = vm.qmp()
    if not migvm.wait_until(lambda: miglib.serial_text(vm.serial_path).count(b"B") >= 1, 60):
        raise RuntimeError("guest did not start: %s" % vm.stderr_text())
    q.cmd_ok("migrate-set-parameters", **{"max-bandwidth": cap, "downtime-limit": 1})
    b0 = miglib.serial_text(vm.serial_path).count(b"B")
    t0 = time.monotonic()
    q.cmd_ok("migrate", uri="exec:cat > /dev/null")
    migvm.wait_until(lambda: time.monotonic() - t0 >= seconds, seconds + 5)
    info = miglib.mig_info(q)
    q.cmd_ok("migrate_cancel")
    miglib.wait_mig_status(q, ("cancelled", "failed", "completed"), 30)
    passes = miglib.serial_text(vm.serial_path).count(b"B") - b0
    migvm.wait_until(lambda: os.path.exists(stats), 10)
    s = parse_stats(stats)
    q.cmd_ok("quit")
    vm.wait_exit(10)
    s["passes"] = passes
    s["status"] = info.get("status")
    s["elapsed"] = time.monotonic() - t0
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="256M,1G")
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--ring", type=int, default=65536)
    ap.add_argument("--cap-mib", type=int, default=256, help="migration bandwidth cap, MiB/s")
    args = ap.parse_args()
    why = migvm.kvm_usable()
    if why:
        print("dirty sync bench skipped: KVM not usable (%s)" % why)
        return
    load = open("/proc/loadavg").read().split()[:3]
    print("# dirty tracking cost, boot-sector guest rewriting all of its RAM; machine: %d cores, load average %s"
          % (os.cpu_count(), " ".join(load)))
    print("%-6s %-12s %6s %10s %10s %8s %10s %10s %9s %7s" % ("size", "tracking", "syncs", "sync ms", "max ms",
                                                            "reaps", "reap ms", "pages", "overflow", "passes"))
    try:
        for size in args.sizes.split(","):
            for name, accel in (("bitmap", "kvm"), ("ring %d" % args.ring, "kvm,dirty-ring-size=%d" % args.ring)):
                s = run(size, accel, args.seconds, args.cap_mib * MiB)
                syncs = max(s["syncs"], 1)
                print("%-6s %-12s %6d %10.2f %10.2f %8d %10.2f %10s %9d %7d" % (
                    size, name, s["syncs"], s["sync_ns"] / syncs / 1e6, s["sync_max_ns"] / 1e6, s["reaps"],
                    s["reap_ns"] / 1e6, s["harvested"] if name != "bitmap" else "-", s["overflows"], s["passes"]),
                    flush=True)
    finally:
        migvm.cleanup()
    print("# sync ms: mean time of one sync on the migration thread (bitmap: KVM_GET_DIRTY_LOG + CLEAR + merge;"
          " ring: reap + merge); reap ms: total time reaping outside syncs (reaper, ring-full exits);"
          " pages: ring entries harvested; overflow: rings KVM overfilled (all pages then count dirty)")


if __name__ == "__main__":
    main()
