#!/usr/bin/env python3
"""migvm migration benchmark (run by `make bench` through bench/run.sh).

Migrates soft-accelerator guests between two local migvm processes over unix
and tcp sockets and prints, per migration: total time, setup time, downtime
(migvm's own figures from query-migrate, plus a downtime measured from the
outside: source STOP event -> destination RESUME event timestamps), the RAM
counters, the throughput (ram.transferred / total-time) and its ratio to this
machine's socket bandwidth for the same transport, measured in the same run
with build/bench/sockbw.  See bench/README.md for how to read the table.

Soft scenarios, per guest size (default 1G and 4G):
  idle         -S on both sides, RAM never touched: every page is a zero page
               (the figure QEMU's `-M none` idle migration is compared with).
  stopped      RAM full (the workload made one whole pass), guest paused:
               a pure transfer of non-zero pages, no dirtying.
  live-R       RAM full, the workload running at dirty-rate R MiB/s
               (default 64): a converging live migration.
  unthrottled  dirty-rate 0 (the whole RAM re-dirtied continuously): expected
               never to converge at the 300 ms downtime limit; polled for a
               fixed time, then cancelled; the row shows what it reached.
The full-RAM guests form a chain so the RAM is filled only once per size:
filler(rate 0) -unthrottled try, cancelled- ; stop ; -unix-> A(paused) -tcp->
B(paused) ; cont B ; -unix-> C(live) -tcp-> D(live).  Every destination is
started with -accel soft,dirty-rate=R, so once resumed it dirties at R.

KVM scenarios, per KVM guest size (default 1G and 4G), the boot-sector guest
(build/guest/boot-sector.img) on -accel kvm, which re-dirties ALL of its RAM
below 4 GiB continuously (about 1 s per pass over 1 GiB here; no rate knob):
  kvm idle     -S on both sides, RAM never touched.
  kvm live     the guest running: a live migration while it dirties everything;
               the note gives the guest passes made during the migration.
  kvm stopped  RAM full (many passes made), guest paused: pure transfer.
No chain: every live/stopped row has a fresh source that made one pass.
From 3.5 GiB on, "pc.ram" is mapped as QEMU's pc board maps it: 3 GiB at
address 0 and the rest at 4 GiB; the boot-sector guest (32-bit, no paging)
dirties only the low 3 GiB, the rest migrates as zero pages.

Block rows (--scenarios block): block migration (`migrate` with "blk": true,
capability zero-blocks on) of a --block-size (default 4G) raw image, its first
half pseudo-random data, its second half zeros, into a same-sized sparse empty
image, over each transport, -m 256M on -M pc:
  blk idle     migvm, -S on both sides (soft accelerator).
  blk live     migvm, the soft accelerator's disk workload writing the disk at
               --disk-rate MiB/s during the migration (the destination goes on).
  qemu blk     QEMU 7.2, -M pc -S with the drive on virtio-blk-pci on both
               sides (a -M none QEMU destination cannot receive block data).
Bytes sent = ram.transferred + the image's block records (computed); the
idle rows compare the two images with cmp afterwards. max-bandwidth is
1 TiB/s there: QEMU 7.2's block migration never starts with 0.

TLS rows (--scenarios tls), --tls-size (default 1G), tcp, paused guests:
  stopped / tls stopped    migvm -> migvm plain, then the same RAM on over TLS
  qemu stopped / qemu tls  QEMU 7.2 -M none (RAM loaded with random bytes) plain, then TLS

Options: --sizes 1G,4G  --transports unix,tcp  --rate 64  --unthrottled-secs 15
         --unthrottled-sizes 1G  --no-qemu  --deadline 120  --sockbw-mib 2048
         --kvm-sizes 1G,4G  --scenarios idle,chain,kvm,qemu,tls,stopped,throughput,block  --tp-runs 3
         --stopped-size 4G
         --block-size 4G  --disk-rate 16  --tls-size 1G

Stopped rows (--scenarios stopped): bench/stopped.py.
Throughput rows (--scenarios throughput): bench/throughput.py.
"""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
os.chdir(ROOT)      # BUILD is relative to the repository, as in make
sys.path.insert(0, os.path.join(ROOT, "tests", "functional"))
sys.path.insert(0, HERE)        # throughput.py
import migvm  # noqa: E402  (the functional tests' helper library)
import tlslib  # noqa: E402  (certtool certificates for the tls rows)

BUILD = os.environ.get("BUILD", "build")
GUEST_IMG = os.path.join(BUILD, "guest", "boot-sector.img")
MIB = 1 << 20
TERMINAL = ("completed", "failed", "cancelled")


# --------------------------------------------------------------------------
# Machine and yardstick

def machine_summary():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            mem = "%.1f GiB" % (kib / 1024 / 1024)
    except (OSError, ValueError, IndexError):
        pass
    load = "%.2f %.2f %.2f" % os.getloadavg()
    others = count_other_vmms()
    return ("machine: nproc=%d cpu=%r mem=%s kernel=%s loadavg=%s other-vmm-processes=%d"
            % (os.cpu_count() or 0, model, mem, platform.release(), load, others))


def count_other_vmms():
    """migvm/qemu processes not started by us (they share the 2 cores: noise)."""
    mine = {vm.pid for vm in migvm._all_vms}
    n = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in mine:
            continue
        try:
            with open("/proc/%s/comm" % pid) as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm == "migvm" or comm.startswith("qemu-system"):
            n += 1
    return n


def sockbw(kind, mib, repeat):
    """The best of `repeat` runs of sockbw, and the samples (MB/s). Anything
    else running can only slow a sample down (one run here gave 8400, 2267
    and 4236 MB/s, whose median made a migration look 1.7x faster than the
    socket): the best sample is what this machine's socket can do."""
    tool = os.path.join(BUILD, "bench", "sockbw")
    samples = []
    for _ in range(repeat):
        out = subprocess.run([tool, kind, str(mib)], capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError("sockbw %s failed: %s" % (kind, out.stderr.strip()))
        samples.append(float(out.stdout.split(":")[1].split()[0]))
    return max(samples), samples


# --------------------------------------------------------------------------
# Guests

class Guest:
    """One VM plus its QMP client and serial file."""

    def __init__(self, size, rate, incoming=None, paused=False, binary=None, extra=(), dir=None, kvm=False,
                 accel=None, qmp_timeout=30.0):
        """kvm: the boot-sector guest on -accel kvm (rate is ignored: it
        dirties all of its RAM); otherwise the soft workload at `rate`, or
        -accel `accel` when given."""
        self.dir = dir or migvm.new_tmpdir()
        self.serial = os.path.join(self.dir, "serial.txt")
        args = ["-m", size]
        if kvm:
            args += ["-accel", "kvm", "-drive", "file=%s,format=raw" % os.path.abspath(GUEST_IMG),
                     "-serial", "file:%s" % self.serial]
        elif binary is None:
            args += ["-accel", accel or "soft,dirty-rate=%d" % rate, "-serial", "file:%s" % self.serial]
        args += list(extra)
        if paused:
            args.append("-S")
        if incoming:
            args += ["-incoming", incoming]
        saved = os.environ.get("MIGVM_TEST_BINARY")
        if binary:
            os.environ["MIGVM_TEST_BINARY"] = binary
        try:
            self.vm = migvm.VM(args, tmpdir=self.dir).launch(timeout=qmp_timeout)
        finally:
            if binary:
                if saved is None:
                    del os.environ["MIGVM_TEST_BINARY"]
                else:
                    os.environ["MIGVM_TEST_BINARY"] = saved
        self.qmp = self.vm.qmp(timeout=qmp_timeout)

    def serial_text(self):
        try:
            with open(self.serial, "rb") as f:
                return f.read().decode("ascii", "replace")
        except OSError:
            return ""

    def wait_full_pass(self, timeout):
        """The workload prints 'B' after each whole pass over RAM."""
        return migvm.wait_until(lambda: "B" in self.serial_text(), timeout=timeout, interval=0.05)

    def status(self):
        return self.qmp.cmd_ok("query-status")["status"]

    def kill(self):
        self.vm.kill()
        if self.vm in migvm._all_vms:
            migvm._all_vms.remove(self.vm)


def make_uri(transport, guest_dir):
    if transport == "unix":
        return "unix:%s" % os.path.join(guest_dir, "mig.sock")
    return "tcp:127.0.0.1:%d" % migvm.free_tcp_port()


def new_destination(transport, size, rate, binary=None, extra=(), paused=False, kvm=False):
    """A guest listening for an incoming migration; its unix socket lives in its own dir."""
    d = migvm.new_tmpdir()
    uri = make_uri(transport, d)
    return Guest(size, rate, incoming=uri, paused=paused, binary=binary, extra=extra, dir=d, kvm=kvm), uri


def kvm_unusable():
    """Why the KVM rows cannot run, or None."""
    if not os.path.isfile(GUEST_IMG):
        return "%s not built" % GUEST_IMG
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
    except OSError as e:
        return "/dev/kvm: %s" % e.strerror
    return None


# --------------------------------------------------------------------------
# One migration

def cpu_seconds(pid):
    """utime + stime of a process (all threads), in seconds; None if gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def cpu_ticks():
    """(steal, total) jiffies over all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    return vals[7] if len(vals) > 7 else 0, sum(vals[:8])


def event_time(ev):
    ts = ev.get("timestamp", {})
    return ts.get("seconds", 0) + ts.get("microseconds", 0) / 1e6


# QEMU 7.2's block migration reads chunks only while less than the stream's
# rate limit is queued, and max-bandwidth 0 makes that limit 0: it never
# starts. "Unlimited" for the block rows is therefore this (1 TiB/s).
UNLIMITED_BANDWIDTH = 1 << 40


def migrate(src, dst, uri, deadline, cancel_after=None, blk=False):
    """Migrate src to dst (already listening on uri); returns a result dict.
    blk: block migration too (QMP migrate "blk": true)."""
    src.qmp.cmd_ok("migrate-set-parameters", {"max-bandwidth": UNLIMITED_BANDWIDTH if blk else 0})
    src.qmp.clear_events()
    dst.qmp.clear_events()
    cpu0 = (cpu_seconds(src.vm.pid), cpu_seconds(dst.vm.pid))
    steal0 = cpu_ticks()
    t0 = time.monotonic()
    src.qmp.cmd_ok("migrate", {"uri": uri, "blk": True} if blk else {"uri": uri})
    limit = cancel_after if cancel_after is not None else deadline
    info = {}
    peak_syncs = 0
    while True:
        info = src.qmp.cmd_ok("query-migrate")
        peak_syncs = max(peak_syncs, info.get("ram", {}).get("dirty-sync-count", 0))
        if info.get("status") in TERMINAL:
            break
        if time.monotonic() - t0 > limit:
            break
        time.sleep(0.02)
    wall_ms = (time.monotonic() - t0) * 1000
    cpu1 = (cpu_seconds(src.vm.pid), cpu_seconds(dst.vm.pid))
    steal1 = cpu_ticks()
    result = {"info": info, "wall_ms": wall_ms, "status": info.get("status", "?")}
    if steal1[1] > steal0[1]:
        result["steal"] = 100.0 * (steal1[0] - steal0[0]) / (steal1[1] - steal0[1])
    if None not in cpu0 + cpu1 and wall_ms > 0:
        result["cpu"] = tuple(100.0 * (b - a) / (wall_ms / 1000) for a, b in zip(cpu0, cpu1))
    if result["status"] not in TERMINAL:
        result["status"] = "no-converge" if cancel_after is not None else "TIMEOUT"
        src.qmp.cmd_ok("migrate_cancel")
        migvm.wait_until(lambda: src.qmp.cmd_ok("query-migrate").get("status") in TERMINAL, timeout=30)
        result["after_cancel"] = src.qmp.cmd_ok("query-migrate").get("status")
        result["src_after_cancel"] = src.status()
        return result
    if result["status"] != "completed":
        result["error"] = info.get("error-desc", "")
        return result
    # Destination side: wait for it to leave inmigrate, then the outside downtime.
    migvm.wait_until(lambda: dst.status() != "inmigrate", timeout=30)
    result["dst_status"] = dst.status()
    stop = src.qmp.wait_event("STOP", timeout=0.5)
    resume = dst.qmp.wait_event("RESUME", timeout=2.0) if result["dst_status"] == "running" else None
    if stop and resume:
        result["ext_downtime_ms"] = (event_time(resume) - event_time(stop)) * 1000
    return result


# --------------------------------------------------------------------------
# Table

COLS = [("size", 5), ("scenario", 11), ("tr", 4), ("result", 11), ("wall ms", 7), ("total", 7),
        ("setup", 5), ("down", 5), ("ext-dn", 6), ("xfer MiB", 8), ("dn MiB", 6), ("normal", 8),
        ("dup", 8), ("resent", 6), ("syncs", 5), ("MB/s", 6), ("sock MB/s", 9), ("ratio", 5), ("cpu% src/dst", 12), ("steal%", 6)]


def fmt_row(values):
    return "  ".join(str(v).rjust(w) if i not in (1, 3) else str(v).ljust(w)
                     for i, ((_, w), v) in enumerate(zip(COLS, values)))


def row_for(size, scenario, transport, res, sock):
    info = res["info"]
    ram = info.get("ram", {})
    total = info.get("total-time")
    xfer = ram.get("transferred", 0)
    secs = (total if total else res["wall_ms"]) / 1000.0
    mbps = xfer / secs / 1e6 if secs > 0 else 0.0
    ext = res.get("ext_downtime_ms")
    return fmt_row([size, scenario, transport, res["status"], "%.0f" % res["wall_ms"],
                    "-" if total is None else total, info.get("setup-time", "-"),
                    info.get("downtime", "-"), "-" if ext is None else "%.1f" % ext,
                    "%.1f" % (xfer / MIB),
                    "-" if "downtime-bytes" not in ram else "%.1f" % (ram["downtime-bytes"] / MIB), ram.get("normal", 0), ram.get("duplicate", 0),
                    max(0, ram.get("normal", 0) + ram.get("duplicate", 0) - ram.get("total", 0) // 4096),
                    ram.get("dirty-sync-count", 0), "%.0f" % mbps, "%.0f" % sock,
                    "%.2f" % (mbps / sock) if sock else "-",
                    "%.0f/%.0f" % res["cpu"] if "cpu" in res else "-",
                    "%.0f" % res["steal"] if "steal" in res else "-"])


def print_header():
    print(fmt_row([c for c, _ in COLS]))
    print(fmt_row(["-" * w for _, w in COLS]))


BLOCK_COLS = [("disk", 5), ("scenario", 9), ("tr", 4), ("result", 9), ("wall ms", 7), ("total", 7),
              ("setup", 5), ("down", 5), ("ext-dn", 6), ("sent MiB", 8), ("MB/s", 6), ("sock MB/s", 9),
              ("ratio", 5), ("cpu% src/dst", 12), ("steal%", 6), ("images", 9)]


def fmt_block_row(values):
    return "  ".join(str(v).rjust(w) if i not in (1, 3, 15) else str(v).ljust(w)
                     for i, ((_, w), v) in enumerate(zip(BLOCK_COLS, values)))


def block_row_for(size, scenario, transport, res, sock, disk_bytes):
    """Throughput from the bytes sent: ram.transferred counts RAM only, and
    query-migrate's "disk" is gone once completed (both as QEMU), so the disk
    records' bytes are computed from the image (disk_bytes)."""
    info = res["info"]
    total = info.get("total-time")
    wire = info.get("ram", {}).get("transferred", 0) + disk_bytes
    secs = (total if total else res["wall_ms"]) / 1000.0
    mbps = wire / secs / 1e6 if secs > 0 else 0.0
    ext = res.get("ext_downtime_ms")
    return fmt_block_row([size, scenario, transport, res["status"], "%.0f" % res["wall_ms"],
                          "-" if total is None else total, info.get("setup-time", "-"),
                          info.get("downtime", "-"), "-" if ext is None else "%.1f" % ext,
                          "%.0f" % (wire / MIB), "%.0f" % mbps, "%.0f" % sock,
                          "%.2f" % (mbps / sock) if sock else "-",
                          "%.0f/%.0f" % res["cpu"] if "cpu" in res else "-",
                          "%.0f" % res["steal"] if "steal" in res else "-", res.get("images", "-")])


def make_disk_image(path, size_bytes):
    """First half data (a random MiB, each copy stamped with its index so no
    two chunks are equal), second half zeros (sparse). Returns the bytes its
    block records take with zero-blocks on: 1 MiB + 11 per data chunk, 11
    per zero chunk (record word, name "d0")."""
    base = os.urandom(MIB)
    data_chunks = size_bytes // 2 // MIB
    with open(path, "wb") as f:
        for i in range(data_chunks):
            f.write(i.to_bytes(8, "little") + base[8:])
        f.truncate(size_bytes)
        os.fsync(f.fileno())        # no writeback competing with the first row's reads
    return data_chunks * MIB + (size_bytes // MIB) * 11

def empty_image(path, size_bytes):
    with open(path, "wb") as f:
        f.truncate(size_bytes)


# --------------------------------------------------------------------------
# Scenarios

class Bench:
    def __init__(self, opts, sock):
        self.opts = opts
        self.sock = sock
        self.rows = []
        self.block_rows = []
        self.notes = []

    def record(self, size, scenario, transport, res):
        line = row_for(size, scenario, transport, res, self.sock[transport])
        self.rows.append(line)
        print(line, flush=True)
        if "error" in res:
            self.notes.append("%s %s %s: error: %s" % (size, scenario, transport, res["error"]))
        if "after_cancel" in res:
            info = res["info"]
            self.notes.append(
                "%s %s %s: after %.0f s: status %s, dirty-sync-count %s, expected-downtime %s ms, "
                "dirty-pages-rate %s pages/s, remaining %.1f MiB; migrate_cancel -> %s, source %s"
                % (size, scenario, transport, res["wall_ms"] / 1000, info.get("status"),
                   info.get("ram", {}).get("dirty-sync-count"), info.get("expected-downtime"),
                   info.get("ram", {}).get("dirty-pages-rate"),
                   info.get("ram", {}).get("remaining", 0) / MIB, res["after_cancel"],
                   res["src_after_cancel"]))
        if res.get("status") == "completed" and "live" in scenario and res.get("dst_status") != "running":
            self.notes.append("%s %s %s: destination is %r after migration, expected running"
                              % (size, scenario, transport, res.get("dst_status")))

    def block(self, size):
        """Block migration of a half-data, half-zero disk: migvm idle and with
        its disk workload, QEMU 7.2 idle (it has no guest here)."""
        d = migvm.new_tmpdir()
        nbytes = int(migvm_size_mib(size) * MIB)
        src_img = os.path.join(d, "src.img")
        disk_bytes = make_disk_image(src_img, nbytes)
        with open(src_img, "rb") as f:      # in the page cache for every row, not just the later ones
            while f.read(16 * MIB):
                pass
        qemu = None if self.opts.no_qemu else shutil.which("qemu-system-x86_64")
        kinds = [("blk idle", None)] + ([("qemu blk", qemu)] if qemu else []) + [("blk live", None)]
        if not qemu:
            self.notes.append("no QEMU 7.2 block rows (%s)" % ("--no-qemu" if self.opts.no_qemu else
                                                                 "qemu-system-x86_64 not found"))
        for tr in self.opts.transports:
            for scenario, binary in kinds:
                live = scenario == "blk live"
                dst_img = os.path.join(d, "dst.img")
                empty_image(dst_img, nbytes)
                os.sync()       # the previous row's 2 GiB of writes must not throttle this one
                drv = lambda img: ["-drive", "if=none,id=d0,file=%s,format=raw" % img]  # noqa: E731
                extra = ["-device", "virtio-blk-pci,drive=d0"] if binary else []
                machine = ["-M", "pc"] if binary else []
                # dirty-rate 1: RAM almost still (0 would mean as fast as it can)
                accel = "soft,dirty-rate=1,disk-rate=%d" % self.opts.disk_rate if live else "soft,dirty-rate=1"
                if binary:
                    dst, uri = new_destination(tr, "256M", 0, binary=binary, paused=True,
                                               extra=machine + drv(dst_img) + extra)
                else:
                    dst, uri = block_destination(tr, accel, drv(dst_img), paused=not live)
                src = Guest("256M", 0, paused=not live, binary=binary, extra=machine + drv(src_img) + extra,
                            accel=accel)
                src.qmp.cmd_ok("migrate-set-capabilities",
                               {"capabilities": [{"capability": "zero-blocks", "state": True}]})
                if live:
                    time.sleep(1)      # let the disk workload get going
                res = migrate(src, dst, uri, self.opts.deadline, blk=True)
                if res["status"] == "completed":       # the destination has loaded everything
                    migvm.wait_until(lambda: dst.qmp.cmd_ok("query-migrate").get("status") in TERMINAL, 60)
                    res["dst_migration"] = dst.qmp.cmd_ok("query-migrate").get("status")
                src.kill()
                dst.kill()
                if not live and res["status"] == "completed":
                    same = subprocess.run(["cmp", "-s", src_img, dst_img]).returncode == 0
                    res["images"] = "identical" if same else "DIFFER"
                    if not same:
                        self.notes.append("%s %s %s: the images differ (destination migration %s)"
                                          % (size, scenario, tr, res.get("dst_migration")))
                line = block_row_for(size, scenario, tr, res, self.sock[tr], disk_bytes)
                self.block_rows.append(line)
                print(line, flush=True)
                if "error" in res:
                    self.notes.append("%s %s %s: error: %s" % (size, scenario, tr, res["error"]))
                os.unlink(dst_img)
        self.notes.append("block rows: a %s raw image, the first half data, the second half zeros, capability "
                          "zero-blocks on, max-bandwidth 1 TiB/s (QEMU 7.2's block migration never starts with 0); "
                          "sent MiB = ram.transferred + the image's block records (chunks the live workload "
                          "made dirty again are not counted); -m 256M, RAM dirty rate 1 MiB/s; migvm -M pc -accel soft (blk live: the "
                          "soft disk workload writes the disk at %d MiB/s during the migration); QEMU 7.2 -M pc -S "
                          "with virtio-blk-pci on both sides, no guest (idle disk)" % (size, self.opts.disk_rate))
        os.unlink(src_img)

    def idle(self, size):
        for tr in self.opts.transports:
            dst, uri = new_destination(tr, size, self.opts.rate, paused=True)
            src = Guest(size, self.opts.rate, paused=True)
            res = migrate(src, dst, uri, self.opts.deadline)
            self.record(size, "idle", tr, res)
            src.kill()
            dst.kill()

    def chain(self, size):
        """filler -> [unthrottled try] -> stopped unix -> stopped tcp -> live unix -> live tcp."""
        rate = self.opts.rate
        size_mib = migvm_size_mib(size)
        filler = Guest(size, 0)
        if not filler.wait_full_pass(timeout=30 + size_mib / 200):
            raise RuntimeError("%s guest did not finish a pass over RAM; serial %r"
                               % (size, filler.serial_text()[:40]))
        if size in self.opts.unthrottled_sizes:
            tr = self.opts.transports[0]
            dst, uri = new_destination(tr, size, 0)
            res = migrate(filler, dst, uri, self.opts.deadline, cancel_after=self.opts.unthrottled_secs)
            self.record(size, "unthrottled", tr, res)
            dst.kill()
            if res["status"] == "completed":   # converged after all: start over with a fresh filler
                filler.kill()
                filler = Guest(size, 0)
                filler.wait_full_pass(timeout=30 + size_mib / 200)
        filler.qmp.cmd_ok("stop")
        src = filler
        # Paused, full RAM: pure transfer of non-zero pages.
        for tr in self.opts.transports:
            dst, uri = new_destination(tr, size, rate)
            res = migrate(src, dst, uri, self.opts.deadline)
            self.record(size, "stopped", tr, res)
            src.kill()
            if res["status"] != "completed":
                dst.kill()
                return
            src = dst
        src.qmp.cmd_ok("cont")
        # Live at the fixed dirty rate.
        for tr in self.opts.transports:
            dst, uri = new_destination(tr, size, rate)
            res = migrate(src, dst, uri, self.opts.deadline)
            self.record(size, "live-%d" % rate, tr, res)
            src.kill()
            if res["status"] != "completed":
                dst.kill()
                return
            src = dst
        src.kill()

    def kvm_filler(self, size):
        """A running KVM guest that has made one whole pass over its RAM."""
        g = Guest(size, 0, kvm=True)
        if not g.wait_full_pass(timeout=30 + migvm_size_mib(size) / 100):
            raise RuntimeError("%s KVM guest did not finish a pass over RAM; serial %r, stderr %s"
                               % (size, g.serial_text()[:40], g.vm.stderr_text()[-300:]))
        return g

    def kvm(self, size):
        """KVM boot-sector guest: idle, live and stopped, each over every transport. Every live or
        stopped row starts from a fresh source that made one pass, so each row measures one hop
        (tests/functional/test-ring3-pingpong.py covers guests migrated many times)."""
        why = kvm_unusable()
        if why:
            self.notes.append("%s KVM rows skipped: %s" % (size, why))
            return
        deadline = self.opts.deadline
        for tr in self.opts.transports:
            dst, uri = new_destination(tr, size, 0, paused=True, kvm=True)
            src = Guest(size, 0, paused=True, kvm=True)
            self.record(size, "kvm idle", tr, migrate(src, dst, uri, deadline))
            src.kill()
            dst.kill()
        # Live: the guest keeps re-dirtying all of its RAM; default 300 ms downtime limit.
        for tr in self.opts.transports:
            src = self.kvm_filler(size)
            dst, uri = new_destination(tr, size, 0, kvm=True)
            b0 = src.serial_text().count("B")
            res = migrate(src, dst, uri, deadline, cancel_after=deadline)
            passes = src.serial_text().count("B") - b0
            self.record(size, "kvm live", tr, res)
            src.kill()
            if res["status"] == "completed":
                d0 = dst.serial_text().count("B")
                printing = migvm.wait_until(lambda: dst.serial_text().count("B") >= d0 + 2, timeout=20)
                self.notes.append("%s kvm live %s: the guest made %d whole passes over its RAM during the "
                                  "migration; the destination %s"
                                  % (size, tr, passes, "goes on printing 'B'" if printing else
                                     "did NOT print 2 'B's within 20 s: %r" % dst.serial_text()[-20:]))
            dst.kill()
        # Stopped: RAM full, pure transfer.
        for tr in self.opts.transports:
            src = self.kvm_filler(size)
            src.qmp.cmd_ok("stop")
            dst, uri = new_destination(tr, size, 0, kvm=True)
            self.record(size, "kvm stopped", tr, migrate(src, dst, uri, deadline))
            src.kill()
            dst.kill()

    def tls_setup(self, src, dst):
        """TLS on src -> dst with the test PKI (made once): tls-creds on both."""
        if not hasattr(self, "pki"):
            self.pki = tlslib.make_pki(migvm.new_tmpdir())
        for g, ep, d in ((src, "client", "src"), (dst, "server", "dst")):
            r = g.qmp.cmd("object-add", {"qom-type": "tls-creds-x509", "id": "tls-" + ep, "endpoint": ep,
                                         "dir": self.pki.dir(d)})
            if r != {"return": {}}:
                raise RuntimeError("object-add on the %s: %r" % (ep, r))
            g.qmp.cmd_ok("migrate-set-parameters", {"tls-creds": "tls-" + ep})

    def tls(self, size):
        """TLS against plain over tcp, a paused guest whose RAM is all non-zero pages: migvm -> migvm
        (the soft workload's full pass) plain, then the same RAM on over TLS; QEMU 7.2 -> QEMU 7.2
        (-M none, RAM loaded with random bytes by -device loader) plain, then TLS."""
        tr = "tcp" if "tcp" in self.opts.transports else self.opts.transports[0]
        size_mib = migvm_size_mib(size)
        src = Guest(size, 0)
        if not src.wait_full_pass(timeout=30 + size_mib / 200):
            raise RuntimeError("%s guest did not finish a pass over RAM" % size)
        src.qmp.cmd_ok("stop")
        for label, tls in (("stopped", False), ("tls stopped", True)):
            dst, uri = new_destination(tr, size, 0, paused=True)
            if tls:
                self.tls_setup(src, dst)
            res = migrate(src, dst, uri, self.opts.deadline)
            self.record(size, label, tr, res)
            src.kill()
            src = dst
            if res["status"] != "completed":
                break
        src.kill()
        qemu = None if self.opts.no_qemu else shutil.which("qemu-system-x86_64")
        if not qemu:
            self.notes.append("no QEMU 7.2 tls rows (%s)" % ("--no-qemu" if self.opts.no_qemu else
                                                             "qemu-system-x86_64 not found"))
            return
        d = migvm.new_tmpdir()
        image = os.path.join(d, "ram.bin")
        with open(image, "wb") as f:
            for _ in range(int(size_mib)):
                f.write(os.urandom(MIB))
        loader = ["-M", "none", "-device", "loader,file=%s,addr=0,force-raw=on" % image]
        for label, tls in (("qemu stopped", False), ("qemu tls", True)):
            src = Guest(size, 0, paused=True, binary=qemu, extra=loader)
            dst, uri = new_destination(tr, size, 0, binary=qemu, extra=["-M", "none"], paused=True)
            if tls:
                self.tls_setup(src, dst)
            res = migrate(src, dst, uri, self.opts.deadline)
            self.record(size, label, tr, res)
            src.kill()
            dst.kill()
        os.unlink(image)
        self.notes.append("tls rows: %s, paused, every page non-zero; x509 certificates with ECDSA P-256 keys "
                          "(certtool), priority NORMAL: TLS 1.3, AES-256-GCM. migvm carries the session in a "
                          "relay thread per channel (migration/tls.c)" % tr)

    def qemu_idle(self, size="1G"):
        qemu = shutil.which("qemu-system-x86_64")
        if not qemu:
            self.notes.append("qemu-system-x86_64 not found: no QEMU reference row")
            return
        ver = subprocess.run([qemu, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
        extra = ["-M", "none"]
        dst, uri = new_destination("unix", size, 0, binary=qemu, extra=extra, paused=True)
        src = Guest(size, 0, paused=True, binary=qemu, extra=extra)
        res = migrate(src, dst, uri, self.opts.deadline)
        self.record(size, "qemu idle", "unix", res)
        self.notes.append("'qemu idle' row: %s, -M none -m %s -S, max-bandwidth 0, over unix" % (ver, size))
        src.kill()
        dst.kill()


def block_destination(transport, accel, extra, paused):
    d = migvm.new_tmpdir()
    uri = make_uri(transport, d)
    return Guest("256M", 0, incoming=uri, paused=paused, extra=extra, dir=d, accel=accel), uri


def migvm_size_mib(size):
    unit = {"K": 1 / 1024, "M": 1, "G": 1024}.get(size[-1].upper(), 1)
    return float(size.rstrip("KMGkmg")) * unit


def main():
    ap = argparse.ArgumentParser(description="migvm migration benchmark")
    ap.add_argument("--sizes", default="1G,4G")
    ap.add_argument("--transports", default="unix,tcp")
    ap.add_argument("--rate", type=int, default=64, help="dirty rate of the live scenario, MiB/s")
    ap.add_argument("--unthrottled-secs", type=float, default=15.0)
    ap.add_argument("--unthrottled-sizes", default="1G", help="sizes that get the unthrottled try ('' = none)")
    ap.add_argument("--deadline", type=float, default=120.0, help="seconds per migration before giving up")
    ap.add_argument("--sockbw-mib", type=int, default=2048)
    ap.add_argument("--sockbw-repeat", type=int, default=5)
    ap.add_argument("--no-qemu", action="store_true")
    ap.add_argument("--scenarios", default="idle,chain,kvm,qemu,tls,stopped,throughput,block")
    ap.add_argument("--stopped-size", default="4G", help="guest size of the stopped rows")
    ap.add_argument("--tls-size", default="1G", help="guest size of the tls rows")
    ap.add_argument("--block-size", default="4G", help="disk image size of the block rows")
    ap.add_argument("--disk-rate", type=int, default=16, help="MiB/s the soft disk workload writes in 'blk live'")
    ap.add_argument("--kvm-sizes", default="1G,4G", help="KVM guest sizes")
    ap.add_argument("--tp-runs", type=int, default=3, help="runs per throughput row (median)")
    ap.add_argument("--cold-host", action="store_true", help="throughput rows: do not warm the host before each run")
    opts = ap.parse_args()
    opts.sizes = [s for s in opts.sizes.split(",") if s]
    opts.transports = [t for t in opts.transports.split(",") if t]
    opts.unthrottled_sizes = [s for s in opts.unthrottled_sizes.split(",") if s]
    opts.kvm_sizes = [s for s in opts.kvm_sizes.split(",") if s]
    scenarios = opts.scenarios.split(",")

    if not os.access(migvm.binary(), os.X_OK):
        print("bench: %s not built (run make bench)" % migvm.binary())
        return 1
    t_start = time.monotonic()
    print(machine_summary())
    sock = {}
    for tr in opts.transports:
        sock[tr], samples = sockbw(tr, opts.sockbw_mib, opts.sockbw_repeat)
        print("%s socket bandwidth: best %.0f MB/s (samples %s; %d MiB each)"
              % (tr, sock[tr], ", ".join("%.0f" % s for s in samples), opts.sockbw_mib))
    print("migvm: %s   max-bandwidth 0 (unlimited), downtime-limit 300 ms (default), live dirty rate %d MiB/s "
          "(soft rows; the KVM guest re-dirties all of its RAM)" % (migvm.binary(), opts.rate))
    print()
    print_header()
    bench = Bench(opts, sock)
    failed = False
    runs = [(size, name) for size in opts.sizes for name in ("idle", "chain")]
    runs += [(size, "kvm") for size in opts.kvm_sizes]
    for size, name in runs:
        if name not in scenarios:
            continue
        try:
            getattr(bench, name)(size)
        except Exception as e:  # noqa: BLE001 - report and go on with the next scenario
            failed = True
            bench.notes.append("%s %s: %s: %s" % (size, name, type(e).__name__, e))
            print("  (%s %s aborted: %s)" % (size, name, e), flush=True)
        finally:
            migvm.kill_all()
    if "qemu" in scenarios and not opts.no_qemu:
        try:
            for size in opts.sizes:
                bench.qemu_idle(size)
        except Exception as e:  # noqa: BLE001
            bench.notes.append("qemu reference: %s: %s" % (type(e).__name__, e))
        finally:
            migvm.kill_all()
    if "tls" in scenarios:
        try:
            bench.tls(opts.tls_size)
        except Exception as e:  # noqa: BLE001
            failed = True
            bench.notes.append("tls rows: %s: %s" % (type(e).__name__, e))
            print("  (tls rows aborted: %s)" % e, flush=True)
    if "stopped" in scenarios:
        try:
            import stopped
            stopped.Stopped(sys.modules[__name__], opts, bench.notes, sock).run()
        except Exception as e:  # noqa: BLE001
            failed = True
            bench.notes.append("stopped rows: %s: %s" % (type(e).__name__, e))
            print("  (stopped rows aborted: %s)" % e, flush=True)
        finally:
            migvm.kill_all()
    if "throughput" in scenarios:
        try:
            import throughput
            throughput.Throughput(sys.modules[__name__], opts, bench.notes).run()
        except Exception as e:  # noqa: BLE001
            failed = True
            bench.notes.append("throughput rows: %s: %s" % (type(e).__name__, e))
        finally:
            migvm.kill_all()
    if "block" in scenarios:
        print()
        print("block migration (blk, zero-blocks on), %s disk:" % opts.block_size)
        print(fmt_block_row([c for c, _ in BLOCK_COLS]))
        print(fmt_block_row(["-" * w for _, w in BLOCK_COLS]))
        try:
            bench.block(opts.block_size)
        except Exception as e:  # noqa: BLE001
            failed = True
            bench.notes.append("block rows: %s: %s" % (type(e).__name__, e))
            print("  (block rows aborted: %s)" % e, flush=True)
        finally:
            migvm.kill_all()
    print()
    print("columns: wall = migrate command to completion seen by polling (20 ms); total/setup/down = "
          "query-migrate total-time/setup-time/downtime (ms); ext-dn = source STOP -> destination RESUME "
          "event timestamps (ms); xfer = ram.transferred; dn = ram.downtime-bytes; normal/dup = ram.normal/duplicate pages; resent = pages sent more than once (normal + dup - RAM pages: what the workload re-dirtied); "
          "MB/s = transferred / total-time (10^6 B/s); ratio = MB/s / socket MB/s; cpu% = CPU time of "
          "the source/destination process over wall (100 = one core); steal% = the machine's CPU steal time "
          "during the migration (this host is itself a VM: high steal = the figures are noisy)")
    for n in bench.notes:
        print("note: " + n)
    print("after: " + machine_summary())
    print("bench time: %.0f s" % (time.monotonic() - t_start))
    migvm.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
