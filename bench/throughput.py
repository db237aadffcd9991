"""The throughput rows of `make bench` (--scenarios throughput), run by
bench/migration-bench.py: one guest, four ways to migrate it, side by side.

The guest is build/bench/boot-sector-1g.img (guest/boot-sector.S built with a
cap): -m 4G on -accel kvm, rewriting the first byte of every page of
[1 MiB, 1 GiB + 1 MiB) pass after pass, under migvm and QEMU 7.2 alike. Each
run starts a fresh source, waits for its first whole pass ('B' on its serial
port), starts a fresh destination listening on a unix socket, raises
max-bandwidth to unlimited (0, as the issue measures it), keeps the default
300 ms downtime limit, migrates and takes total-time and downtime from the
source's query-migrate. Unless --cold-host, build/bench/warmhost faults in and
frees 4 GiB just before each destination starts (bench/stopped.py says why:
this VM's hypervisor takes free memory back, and a destination's first touch
of it then runs at 0.25-1.3 GB/s whoever touches it). Rows (medians of
--tp-runs runs):
  migvm            migvm to migvm, one channel (the default)
  migvm multifd 4  capability multifd, multifd-channels 4 on both sides
  qemu             QEMU 7.2 to QEMU 7.2, defaults
  qemu mf4 pre     QEMU 7.2, multifd 4, the destination with -mem-prealloc
"""

import os
import shutil
import statistics
import subprocess
import time

import migvm  # the functional tests' helper library (tests/functional)

BUILD = os.environ.get("BUILD", "build")
IMG = os.path.join(BUILD, "bench", "boot-sector-1g.img")
TERMINAL = ("completed", "failed", "cancelled")


def _wait_pass(g, timeout):
    return migvm.wait_until(lambda: "B" in g.serial_text(), timeout=timeout, interval=0.05)


def _cmd(g, name, args):
    r = g.qmp.cmd(name, args)
    if "error" in r:
        raise RuntimeError("%s: %s" % (name, r["error"].get("desc")))
    return r.get("return")


class Throughput:
    def __init__(self, bench_mod, opts, notes):
        self.b = bench_mod          # migration-bench.py's module: Guest, cpu_seconds
        self.opts = opts
        self.notes = notes
        self.qemu = None
        self.warm_log = []          # warmhost's line before each run

    def _guest(self, binary, incoming=None, multifd=False, prealloc=False):
        d = migvm.new_tmpdir()
        serial = os.path.join(d, "serial.txt")
        drive = ["-drive", "file=%s,format=raw" % os.path.abspath(IMG)]
        if binary:
            extra = ["-accel", "kvm", "-cpu", self.qemu.cpu, "-M", "pc", "-display", "none", "-nodefaults",
                     "-serial", "file:%s" % serial] + drive + (["-mem-prealloc"] if prealloc else [])
            # -mem-prealloc touches all 4 GiB before QMP answers: minutes when the machine is busy.
            g = self.b.Guest("4G", 0, incoming="defer" if incoming else None, binary=binary, extra=extra, dir=d,
                             qmp_timeout=300.0 if prealloc else 30.0)
        else:
            g = self.b.Guest("4G", 0, incoming="defer" if incoming else None, extra=drive, dir=d, accel="kvm")
        g.serial = serial
        if multifd:
            _cmd(g, "migrate-set-capabilities", {"capabilities": [{"capability": "multifd", "state": True}]})
            _cmd(g, "migrate-set-parameters", {"multifd-channels": 4})
        if incoming:
            _cmd(g, "migrate-incoming", {"uri": incoming})
        return g

    def one_run(self, binary, multifd, prealloc):
        src = self._guest(binary, multifd=multifd)
        try:
            if not _wait_pass(src, 120):
                raise RuntimeError("the source made no pass over 1 GiB; serial %r" % src.serial_text()[:40])
            uri = "unix:%s" % os.path.join(migvm.new_tmpdir(), "mig.sock")
            if not self.opts.cold_host:
                self.warm_log.append(subprocess.run([os.path.join(BUILD, "bench", "warmhost"), "4096"],
                                                    capture_output=True, text=True, timeout=300).stdout.strip())
            dst = self._guest(binary, incoming=uri, multifd=multifd, prealloc=prealloc)
            try:
                _cmd(src, "migrate-set-parameters", {"max-bandwidth": 0})
                cpu0 = (self.b.cpu_seconds(src.vm.pid), self.b.cpu_seconds(dst.vm.pid))
                t0 = time.monotonic()
                _cmd(src, "migrate", {"uri": uri})
                info = {}
                while time.monotonic() - t0 < self.opts.deadline:
                    info = src.qmp.cmd_ok("query-migrate")
                    if info.get("status") in TERMINAL:
                        break
                    time.sleep(0.02)
                wall = time.monotonic() - t0
                cpu1 = (self.b.cpu_seconds(src.vm.pid), self.b.cpu_seconds(dst.vm.pid))
                if info.get("status") != "completed":
                    raise RuntimeError("status %s %s" % (info.get("status"), info.get("error-desc", "")))
                cpu = tuple(100.0 * (b - a) / wall for a, b in zip(cpu0, cpu1)) if None not in cpu0 + cpu1 else None
                return info["total-time"], info.get("downtime", 0), cpu
            finally:
                dst.kill()
        finally:
            src.kill()

    def run(self):
        why = self.b.kvm_unusable()
        if why or not os.path.isfile(IMG):
            self.notes.append("throughput rows skipped: %s" % (why or IMG + " not built"))
            return
        qemu = None if self.opts.no_qemu else shutil.which("qemu-system-x86_64")
        if qemu:
            self.qemu = migvm.qemu_kvm()
            if not self.qemu.cpu:
                self.notes.append("throughput: no QEMU rows: %s" % self.qemu.why)
                qemu = None
        rows = [("migvm", None, False, False), ("migvm multifd 4", None, True, False)]
        if qemu:
            rows += [("qemu", qemu, False, False), ("qemu mf4 pre", qemu, True, True)]
        print()
        print("throughput: 4 GiB KVM boot-sector guest rewriting 1 GiB, unix socket, max-bandwidth 0, "
              "downtime-limit 300 ms, medians of %d runs, host %s (load average before: %.1f)"
              % (self.opts.tp_runs, "cold" if self.opts.cold_host else "warmed before each run",
                 os.getloadavg()[0]))
        print("%-16s %9s %9s %22s %22s %12s" % ("pair", "total ms", "down ms", "total runs", "down runs",
                                                "cpu% src/dst"))
        medians = {}
        for name, binary, multifd, prealloc in rows:
            totals, downs, cpus = [], [], []
            try:
                for _ in range(self.opts.tp_runs):
                    t, d, cpu = self.one_run(binary, multifd, prealloc)
                    totals.append(t)
                    downs.append(d)
                    if cpu:
                        cpus.append(cpu)
            except Exception as e:  # noqa: BLE001 - a row that cannot run says why
                print("%-16s %s" % (name, "not run: %s" % e), flush=True)
                self.notes.append("throughput %s: not run: %s" % (name, e))
                migvm.kill_all()
                continue
            mt, md = statistics.median(totals), statistics.median(downs)
            medians[name] = (mt, md)
            cpu = "%.0f/%.0f" % tuple(statistics.median(c[i] for c in cpus) for i in (0, 1)) if cpus else "-"
            print("%-16s %9.0f %9.0f %22s %22s %12s" % (name, mt, md, ",".join(map(str, totals)),
                                                      ",".join(map(str, downs)), cpu), flush=True)
        if "migvm" in medians and "qemu" in medians:
            q = medians["qemu"]
            for name in ("migvm", "migvm multifd 4"):
                if name in medians:
                    m = medians[name]
                    print("%s / qemu: total %.2fx, downtime %.2fx (goal: best total <= 0.40x, downtime <= 0.33x)"
                          % (name, m[0] / q[0], m[1] / q[1] if q[1] else float("nan")))
        if self.warm_log:
            speeds = sorted(float(w.rsplit("(", 1)[1].split()[0]) for w in self.warm_log if "GB/s" in w)
            if speeds:
                print("warmhost before each run: %.2f-%.2f GB/s (low: the host was cold)" % (speeds[0], speeds[-1]))
        print("load average after: %.1f" % os.getloadavg()[0])
