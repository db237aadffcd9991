#!/usr/bin/env python3
"""Convergence benchmark (`make bench-converge`, and the last part of `make
bench`): what migvm's convergence controller (migration/converge.c) changes,
against QEMU 7.2 on the same KVM guest.

The guest is the boot-sector guest (build/guest/boot-sector.img) with its
built-in top of RAM patched in a copy of the image, and the loader's RAM hint
ignored, so QEMU (booting it through its BIOS) and migvm run exactly the same
workload: it increments a byte of every page in [1 MiB, top) and prints 'B'
after each pass.

Rows:
  switch-over  -m 4G, 1 GiB rewritten continuously, max-bandwidth 0
               (unlimited), downtime-limit 300 ms (the default): both
               converge; the downtime QEMU 7.2 reaches (it switches over at
               the first sync under the limit) against migvm's with the
               controller (one more pass while it halves what remains) and
               without. Median of --repeat runs; the goal is <= 0.33x QEMU's.
  defaults     every parameter at its default (128 MiB/s, 300 ms): guests that
               cannot converge so. Time to complete with the controller on
               (KVM 256M and 1G rewritten whole, the soft workload at
               dirty-rate=0 on 64M); QEMU 7.2 on the 256M guest is polled
               --never-secs and reported as never if still active.
Options: --repeat 3  --never-secs 30  --deadline 180  --rows switch-over,defaults
"""

import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "functional"))
os.environ.setdefault("BUILD", os.path.join(ROOT, "build"))
import migvm  # noqa: E402
import miglib  # noqa: E402

MiB = 1 << 20
RAM_MAGIC = 0x5647494D          # hw/loader.h: "MIGV"
BUILTIN_TOP = 101 << 20         # guest/boot-sector.S DEFAULT_TOP


def patched_image(top):
    """A copy of the boot-sector guest that rewrites [1 MiB, top) whoever boots it."""
    data = bytearray(open(os.path.join(os.environ["BUILD"], "guest", "boot-sector.img"), "rb").read())
    # The magic becomes a value no memory holds by chance (0 would match the
    # zeroed RAM a BIOS leaves there, and the top read next would be 0).
    for old, new in ((RAM_MAGIC, 0x9E3779B9), (BUILTIN_TOP, top)):
        pat = old.to_bytes(4, "little")
        if data.count(pat) != 1:
            raise SystemExit("bench: boot-sector.img changed: 0x%x found %d times" % (old, data.count(pat)))
        i = data.index(pat)
        data[i:i + 4] = new.to_bytes(4, "little")
    path = os.path.join(migvm.new_tmpdir(), "boot-%dM.img" % (top >> 20))
    with open(path, "wb") as f:
        f.write(data)
    return path


def guest(kind, mem, image, incoming=None):
    d = migvm.new_tmpdir()
    serial = os.path.join(d, "serial.out")
    if kind == "soft":
        args = ["-accel", "soft,dirty-rate=0", "-m", mem]
    else:
        args = ["-M", "pc", "-accel", "kvm", "-m", mem, "-drive", "file=%s,format=raw" % image]
    args += ["-serial", "file:" + serial] + (["-incoming", incoming] if incoming else [])
    vm = migvm.VM(args, tmpdir=d)
    if kind == "qemu":
        qk = migvm.qemu_kvm()
        vm.args = [qk.qemu, "-cpu", qk.cpu] + vm.args[1:]
    vm.launch(timeout=60)
    vm.serial_path = serial
    return vm


def migrate(kind, mem, image, params, deadline):
    """One migration between fresh guests; a dict of what query-migrate said."""
    uri = "unix:" + os.path.join(migvm.new_tmpdir(), "mig.sock")
    dst = guest(kind, mem, image, uri)
    src = guest(kind, mem, image)
    try:
        qs = src.qmp()
        if not migvm.wait_until(lambda: miglib.serial_text(src.serial_path).count(b"B") >= 1, 120):
            return {"status": "guest never made a pass"}
        if params:
            qs.cmd_ok("migrate-set-parameters", **params)
        t0 = time.monotonic()
        qs.cmd_ok("migrate", uri=uri)
        while True:
            info = qs.cmd_ok("query-migrate")
            if info.get("status") not in ("setup", "active", "device") or time.monotonic() - t0 > deadline:
                break
            time.sleep(0.05)
        info["wall"] = time.monotonic() - t0
        if info.get("status") != "completed":
            qs.cmd("migrate_cancel")
        return info
    finally:
        src.kill()
        dst.kill()


def fmt(info):
    if info.get("status") != "completed":
        return "%-10s after %5.1f s (passes %s)" % (info.get("status"), info.get("wall", 0),
                                                     info.get("ram", {}).get("dirty-sync-count"))
    return "completed in %5.1f s, downtime %4d ms, %3d passes, %5d MiB sent" % (
        info["wall"], info["downtime"], info["ram"]["dirty-sync-count"], info["ram"]["transferred"] >> 20)


def row_switchover(opts, have_qemu):
    image = patched_image(1025 * MiB)
    print("\n## switch-over: -m 4G, 1 GiB rewritten, max-bandwidth 0, downtime-limit 300 ms, unix; median of %d"
          % opts.repeat, flush=True)
    kinds = [("QEMU 7.2", "qemu", {"max-bandwidth": 0})] if have_qemu else []
    kinds += [("migvm, controller on", "migvm", {"max-bandwidth": 0}),
              ("migvm, controller off", "migvm", {"max-bandwidth": 0, "x-convergence-controller": False})]
    medians = {}
    for label, kind, params in kinds:
        runs = [migrate(kind, "4G", image, params, opts.deadline) for _ in range(opts.repeat)]
        for r in runs:
            print("  %-22s %s" % (label, fmt(r)), flush=True)
        done = [r["downtime"] for r in runs if r.get("status") == "completed"]
        if done:
            medians[label] = statistics.median(done)
            print("  %-22s median downtime %d ms (%s)" % (label, medians[label], done), flush=True)
    if "QEMU 7.2" in medians and "migvm, controller on" in medians:
        q, m = medians["QEMU 7.2"], medians["migvm, controller on"]
        print("  downtime migvm (controller on) / QEMU 7.2: %.3fx (goal <= 0.33x)" % (m / q if q else float("inf")),
              flush=True)


def row_defaults(opts, have_qemu):
    print("\n## defaults (128 MiB/s, 300 ms): guests that do not converge so; time to complete", flush=True)
    img256 = patched_image(256 * MiB)
    img1g = patched_image(1024 * MiB)
    cases = [("migvm KVM 256M (all rewritten)", "migvm", "256M", img256),
             ("migvm KVM 1G (all rewritten)", "migvm", "1G", img1g),
             ("migvm soft 64M dirty-rate=0", "soft", "64M", None)]
    for label, kind, mem, image in cases:
        print("  %-32s %s" % (label, fmt(migrate(kind, mem, image, None, opts.deadline))), flush=True)
    if have_qemu:
        info = migrate("qemu", "256M", img256, None, opts.never_secs)
        verdict = "never (still %s after %.0f s, %s passes)" % (
            info.get("status"), info["wall"], info.get("ram", {}).get("dirty-sync-count")) \
            if info.get("status") == "active" else fmt(info)
        print("  %-32s %s" % ("QEMU 7.2 KVM 256M", verdict), flush=True)


def main():
    ap = argparse.ArgumentParser(description="migvm convergence benchmark")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--never-secs", type=float, default=30.0)
    ap.add_argument("--deadline", type=float, default=180.0)
    ap.add_argument("--rows", default="switch-over,defaults")
    opts = ap.parse_args()
    why = migvm.kvm_usable()
    if why:
        print("converge-bench: skipped, KVM not usable (%s)" % why)
        return
    qk = migvm.qemu_kvm()
    have_qemu = qk.cpu is not None
    if not have_qemu:
        print("# no QEMU 7.2 rows: %s" % qk.why, flush=True)
    print("# load average %s" % " ".join(open("/proc/loadavg").read().split()[:3]), flush=True)
    rows = opts.rows.split(",")
    if "switch-over" in rows:
        row_switchover(opts, have_qemu)
    if "defaults" in rows:
        row_defaults(opts, have_qemu)


if __name__ == "__main__":
    main()
