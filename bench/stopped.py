"""The stopped rows of `make bench` (--scenarios stopped), run by
bench/migration-bench.py: a paused guest whose RAM is all data, migrated over
a unix socket with one channel and with multifd 4, on a cold host and on a
warmed one, against this run's socket bandwidth.

The guest is the soft workload at dirty-rate 0 (--stopped-size, default 4G):
it makes one whole pass over its RAM (every page data), is stopped and
migrated to a fresh paused destination, which is then the source of the
next row (a chain: the RAM is filled once). Rows:
  1 channel, cold    defaults (max-bandwidth 0), after a pause that lets the
                     host take back the memory the previous hop freed
  multifd 4, cold    capability multifd, multifd-channels 4 on both sides
  1 channel, warm    build/bench/warmhost faulted in and freed as much
                     memory as the guest has just before the migrate
  multifd 4, warm    the same with multifd 4
  1 channel, prealloc  the destination started with -mem-prealloc (as the
                     issue's tuned QEMU): all its RAM populated before the
                     migrate, so the rows show the stream alone
  multifd 2, prealloc  the same with multifd 2 (one channel per core here)
  multifd 4, prealloc  the same with multifd 4
This machine is itself a VM whose hypervisor takes free memory back (free
page reporting): a destination's first touch of such memory costs a fault
on the host too, and that, not the stream, sets the pace of a cold row. The
warm rows show what the stream does when the destination's memory comes
from this VM's own free lists (the issue's "host warmed before each run").
"""

import os
import subprocess
import time

import migvm  # the functional tests' helper library (tests/functional)

BUILD = os.environ.get("BUILD", "build")
# The hypervisor takes back memory freed for 2 s (page reporting's delay) in
# the background; a cold row waits this long after the previous hop freed its RAM.
COLD_PAUSE_S = 8


class Stopped:
    def __init__(self, bench_mod, opts, notes, sock):
        self.b = bench_mod          # migration-bench.py's module: Guest, migrate, new_destination
        self.opts = opts
        self.notes = notes
        self.sock = sock

    def warm(self, size):
        out = subprocess.run([os.path.join(BUILD, "bench", "warmhost"), str(int(self.b.migvm_size_mib(size)))],
                             capture_output=True, text=True, timeout=300)
        return out.stdout.strip() or out.stderr.strip()

    def run(self):
        size = self.opts.stopped_size
        sock = self.sock.get("unix")
        if not sock:
            self.notes.append("stopped rows need the unix transport (--transports)")
            return
        src = self.b.Guest(size, 0)
        if not src.wait_full_pass(timeout=60 + self.b.migvm_size_mib(size) / 50):
            raise RuntimeError("%s guest did not finish a pass over RAM" % size)
        src.qmp.cmd_ok("stop")
        print()
        print("stopped: %s soft guest, every page data, paused, unix, max-bandwidth 0 (load average before: %.1f); "
              "socket %.0f MB/s" % (size, os.getloadavg()[0], sock))
        print("%-20s %8s %8s %6s %12s  %s" % ("row", "total ms", "MB/s", "ratio", "cpu% src/dst", "host"))
        rows = [("1 channel, cold", 0, "cold"), ("multifd 4, cold", 4, "cold"),
                ("1 channel, warm", 0, "warm"), ("multifd 4, warm", 4, "warm"),
                ("1 channel, prealloc", 0, "prealloc"), ("multifd 2, prealloc", 2, "prealloc"),
                ("multifd 4, prealloc", 4, "prealloc")]
        try:
            for label, channels, mode in rows:
                d = migvm.new_tmpdir()
                uri = self.b.make_uri("unix", d)
                t0 = time.monotonic()
                # -smp 2: -mem-prealloc populates with one thread per vCPU, as QEMU.
                dst = self.b.Guest(size, 0, incoming="defer", paused=True, dir=d,
                                   extra=["-mem-prealloc", "-smp", "2"] if mode == "prealloc" else [],
                                   qmp_timeout=300.0 if mode == "prealloc" else 30.0)
                started_ms = (time.monotonic() - t0) * 1000
                for g in (src, dst):
                    g.qmp.cmd_ok("migrate-set-capabilities",
                                 {"capabilities": [{"capability": "multifd", "state": bool(channels)}]})
                    if channels:
                        g.qmp.cmd_ok("migrate-set-parameters", {"multifd-channels": channels})
                if mode == "warm":
                    host = self.warm(size)
                elif mode == "prealloc":
                    host = "destination -mem-prealloc: up in %.0f ms" % started_ms
                else:
                    time.sleep(COLD_PAUSE_S)
                    host = "cold (%d s after the last hop freed its RAM)" % COLD_PAUSE_S
                dst.qmp.cmd_ok("migrate-incoming", {"uri": uri})
                res = self.b.migrate(src, dst, uri, self.opts.deadline)
                info = res["info"]
                total = info.get("total-time") or res["wall_ms"]
                mbps = info.get("ram", {}).get("transferred", 0) / (total / 1000.0) / 1e6
                cpu = "%.0f/%.0f" % res["cpu"] if "cpu" in res else "-"
                if res["status"] != "completed":
                    print("%-20s %s %s" % (label, res["status"], res.get("error", "")), flush=True)
                    dst.kill()
                    break
                print("%-20s %8d %8.0f %6.2f %12s  %s" % (label, total, mbps, mbps / sock, cpu, host), flush=True)
                src.kill()
                src = dst
        finally:
            src.kill()
            migvm.kill_all()
