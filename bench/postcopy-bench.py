#!/usr/bin/python3
"""Postcopy benchmark: the KVM boot-sector guest built to rewrite 1 GiB
(build/bench/boot-sector-1g.img: [1 MiB, 1025 MiB), page after page under
migvm's loader and QEMU's BIOS alike, a 'B' after each pass) in a 4 GiB VM, migrated with
postcopy-ram over a unix socket, migvm -> migvm against QEMU 7.2 -> QEMU 7.2.

Each run: source and destination with the same -m; capabilities
postcopy-ram, postcopy-blocktime and events on both sides; max-bandwidth
and max-postcopy-bandwidth 1 TiB/s (unlimited; QEMU 7.2 reads 0 as its
default, not as unlimited, on max-bandwidth); the guest made one whole pass
before `migrate`; migrate-start-postcopy as soon as the source is active
(QEMU 7.2 otherwise completes this one in precopy before it can switch):
each side switches at its next iteration and sends nearly all of RAM in
postcopy.

Columns:
  total     source query-migrate total-time (ms)
  precopy   from `migrate` to migrate-start-postcopy
  postcopy  from migrate-start-postcopy to the source's completed
  downtime  destination RESUME event minus source STOP event (QMP event
            timestamps): the time the guest ran nowhere. QEMU 7.2's own
            `downtime` after postcopy means nothing (postcopy.md 6.2),
            migvm's counts up to the package sent; both are printed
  blocktime destination postcopy-blocktime (ms the vCPU waited for pages).
            KVM here resolves a vCPU's missing page from a kernel worker
            thread, which QEMU 7.2 cannot tie to a vCPU (it reports 0);
            migvm counts it for the first idle vCPU
  requests  pages the destination asked for (source postcopy-requests)
  B after   the destination printed another 'B' (the guest runs on)

Usage: bench/postcopy-bench.py [--size 4G] [--runs 3] [--no-qemu]
(`make bench-postcopy`; never part of make check).
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import migvm  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
TIB = 1 << 40


IMAGE = None


def event_time(e):
    ts = e.get("timestamp", {})
    return ts.get("seconds", 0) + ts.get("microseconds", 0) / 1e6


class Side:
    def __init__(self, kind, size, incoming=None):
        self.dir = migvm.new_tmpdir()
        self.serial = os.path.join(self.dir, "serial.txt")
        args = ["-m", size, "-drive", "file=%s,format=raw" % IMAGE, "-serial", "file:%s" % self.serial]
        if kind == "qemu":
            qk = migvm.qemu_kvm()
            args = ["-M", "pc"] + qk.args()[1:] + args
        else:
            args = ["-accel", "kvm"] + args
        if incoming:
            args += ["-incoming", incoming]
        saved = os.environ.get("MIGVM_TEST_BINARY")
        if kind == "qemu":
            os.environ["MIGVM_TEST_BINARY"] = "qemu-system-x86_64"
        try:
            self.vm = migvm.VM(args, tmpdir=self.dir).launch(timeout=60.0)
        finally:
            if saved is None:
                os.environ.pop("MIGVM_TEST_BINARY", None)
            else:
                os.environ["MIGVM_TEST_BINARY"] = saved
        self.q = self.vm.qmp(timeout=60.0)
        self.events = []

    def serial_text(self):
        try:
            with open(self.serial, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def caps(self):
        self.q.cmd_ok("migrate-set-capabilities", capabilities=[
            {"capability": c, "state": True} for c in ("postcopy-ram", "postcopy-blocktime", "events")])

    def poll_events(self):
        self.events += self.q.events
        self.q.events = []
        try:
            while True:
                m = self.q.recv(0.001)
                if isinstance(m, dict) and "event" in m:
                    self.events.append(m)
        except (TimeoutError, EOFError):
            pass

    def first_event(self, name):
        for e in self.events:
            if e.get("event") == name:
                return e
        return None


def one_run(kind, size):
    src = Side(kind, size)
    if not migvm.wait_until(lambda: b"B" in src.serial_text(), 120.0, interval=0.05):
        raise RuntimeError("%s guest made no pass" % kind)
    d = migvm.new_tmpdir()
    sock = os.path.join(d, "m.sock")
    dst = Side(kind, size, incoming="defer")
    for s in (src, dst):
        s.caps()
    src.q.cmd_ok("migrate-set-parameters", {"max-bandwidth": TIB, "max-postcopy-bandwidth": TIB})
    dst.q.cmd_ok("migrate-incoming", uri="unix:" + sock)
    t0 = time.monotonic()
    src.q.cmd_ok("migrate", uri="unix:" + sock)
    migvm.wait_until(lambda: src.q.cmd_ok("query-migrate").get("status") == "active", 120.0, interval=0.002)
    src.q.cmd_ok("migrate-start-postcopy")
    t_switch = time.monotonic()
    info = migvm.wait_until(lambda: (lambda i: i if i.get("status") in ("completed", "failed") else None)(
        src.q.cmd_ok("query-migrate")), 300.0, interval=0.02)
    t_end = time.monotonic()
    if not info or info.get("status") != "completed":
        raise RuntimeError("%s: %s" % (kind, info))
    dinfo = migvm.wait_until(lambda: (lambda i: i if i.get("status") == "completed" else None)(
        dst.q.cmd_ok("query-migrate")), 60.0, interval=0.02) or {}
    src.poll_events()
    dst.poll_events()
    stop, resume = src.first_event("STOP"), dst.first_event("RESUME")
    n = dst.serial_text().count(b"B")
    b_after = bool(migvm.wait_until(lambda: dst.serial_text().count(b"B") > n, 30.0, interval=0.1))
    row = {
        "total": info.get("total-time"),
        "downtime": (event_time(resume) - event_time(stop)) * 1000 if stop and resume else None,
        "own": info.get("downtime"),
        "blocktime": dinfo.get("postcopy-blocktime"),
        "requests": info.get("ram", {}).get("postcopy-requests"),
        "b_after": b_after,
        "pre": (t_switch - t0) * 1000,
        "post": (t_end - t_switch) * 1000,
    }
    src.vm.kill()
    dst.vm.kill()
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="4G")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-qemu", action="store_true")
    a = ap.parse_args()
    global IMAGE
    IMAGE = os.path.abspath(os.path.join(BUILD, "bench", "boot-sector-1g.img"))
    if not os.path.exists(IMAGE):
        raise SystemExit("bench: %s is not built (make bench-postcopy builds it)" % IMAGE)
    if migvm.kvm_usable() is not None:
        print("SKIP: %s" % migvm.kvm_usable())
        return
    kinds = ["migvm"] + ([] if a.no_qemu or not migvm.shutil.which("qemu-system-x86_64") else ["qemu"])
    print("postcopy, boot-sector guest -m %s rewriting 1 GiB on KVM, unix socket, %d runs each (medians; every run listed)"
          % (a.size, a.runs))
    print("%-6s %9s %9s %9s %9s %9s %9s %9s %7s" % ("pair", "total ms", "precopy", "postcopy", "down ms", "own down",
                                                    "block ms", "requests", "B after"))
    for kind in kinds:
        rows = []
        for _ in range(a.runs):
            try:
                rows.append(one_run(kind, a.size))
            except Exception as e:  # noqa: BLE001 - a bench row records the failure and goes on
                print("%-6s failed: %s" % (kind, e))
            migvm.kill_all()
            time.sleep(1)
        for r in rows:
            print("%-6s %9s %9.0f %9.0f %9.0f %9s %9s %9s %7s" % (kind, r["total"], r["pre"], r["post"],
                                                                r["downtime"] or -1, r["own"], r["blocktime"],
                                                                r["requests"], r["b_after"]))
        if rows:
            med = {k: statistics.median([r[k] for r in rows if r[k] is not None] or [-1])
                   for k in ("total", "pre", "post", "downtime", "blocktime", "requests")}
            print("%-6s %9.0f %9.0f %9.0f %9.0f %9s %9.0f %9.0f %7s   <- median" % (
                kind, med["total"], med["pre"], med["post"], med["downtime"], "", med["blocktime"],
                med["requests"], ""))
    migvm.kill_all()


if __name__ == "__main__":
    main()
