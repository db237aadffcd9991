#!/usr/bin/python3
"""Soak run of the ring3 guest on migvm; not part of make check.

    python3 tests/functional/ring3-soak.py [MINUTES]      (default 3; BUILD=build)

Boots build/guest/ring3-guest.img with `-accel kvm` (in-kernel irqchip and
PIT) and lets it run MINUTES minutes; every 30 s it stops the VM for 2 s
(QMP stop, checks query-status says paused and the serial file stays still)
and continues it. The guest (protocol at the top of guest/ring3/user.c)
prints one line per second

    seq=<n> pit=<n> lapic=<n> sirq=<n> pages=<n> verified=<n> errors=<n> kvmclock=<ms>

and "ERROR: ..." for anything its checks of memory, registers, clocks and
interrupts found wrong. At the end (or as soon as the process dies) it
checks: BOOT and START lines and nothing else but status lines, no ERROR or
FATAL line, errors=0 throughout, seq 1, 2, 3, ... without a gap or repeat,
pit, lapic, sirq, pages and verified growing on every line, pit by at least
100 per line (its interval), the PIT and LAPIC tick counts agreeing (2 % +
50 ticks: neither may bank ticks while stopped), about one line per running second (at least
90% of them), no wall-clock gap between lines longer than a pause plus 3 s,
and that migvm quits with status 0 and nothing on stderr. Prints a summary
(lines, seq range, ticks, serial interrupts, pages written and verified,
errors, stop/cont count, line rate) and then `N passed, N failed`."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
from migvm import read_bytes  # noqa: E402
from ring3lib import COUNTERS, IMAGE, MEM, parse  # noqa: E402
import miglib  # noqa: E402
from migvm import VM, check, check_eq, new_tmpdir, run, wait_until  # noqa: E402

STOP_EVERY = 30.0     # s of wall clock between stop/cont
PAUSE = 2.0           # s stopped


def soak(minutes):
    d = new_tmpdir()
    serial = os.path.join(d, "serial.out")
    vm = VM(["-accel", "kvm", "-m", MEM, "-drive", "file=%s,format=raw" % IMAGE,
             "-serial", "file:" + serial], tmpdir=d).launch()
    q = vm.qmp()
    if not check("guest boots (first status line within 40 s)",
                 wait_until(lambda: parse(read_bytes(serial))[0] or not vm.alive(), 40.0, interval=0.2)
                 and vm.alive(), "serial=%r stderr=%s" % (read_bytes(serial)[-400:], vm.stderr_text()[-400:])):
        return
    t0 = time.monotonic()
    end = t0 + minutes * 60.0
    next_stop = t0 + STOP_EVERY
    stops, stopped_s, silent_failures = 0, 0.0, []
    arrivals = []            # monotonic time each status line was first seen
    seen = 0
    while time.monotonic() < end and vm.alive():
        status, bad, _ = parse(read_bytes(serial))
        arrivals += [time.monotonic()] * (len(status) - seen)
        seen = len(status)
        if bad:
            break            # an ERROR line: stop early, report below
        if time.monotonic() >= next_stop:
            q.cmd_ok("stop")
            t_stop = time.monotonic()
            state = miglib.query_status(q)
            size = len(read_bytes(serial))
            grew = wait_until(lambda: len(read_bytes(serial)) != size, PAUSE, interval=0.2)
            if state != "paused" or grew:
                silent_failures.append("stop %d: state=%s grew=%s" % (stops + 1, state, bool(grew)))
            q.cmd_ok("cont")
            stopped_s += time.monotonic() - t_stop
            stops += 1
            if miglib.query_status(q) != "running":
                silent_failures.append("cont %d: not running" % stops)
            next_stop += STOP_EVERY
        time.sleep(0.25)
    elapsed = time.monotonic() - t0
    alive = vm.alive()
    status, bad, other = parse(read_bytes(serial))
    check("migvm alive for the whole %.1f min" % minutes, alive and elapsed >= minutes * 60.0 - 1,
          "alive=%s after %.0f s, stderr=%s" % (alive, elapsed, vm.stderr_text()[-400:]))
    check_eq("stop/cont: paused and silent while stopped, running after", silent_failures, [])
    check_eq("no ERROR/FATAL line", bad[:10], [])
    check("only BOOT and START besides status lines",
          len(other) == 2 and other[0].startswith("BOOT ") and other[1].startswith("START "), other[:6])
    seqs = [s["seq"] for s in status]
    check("seq 1..%d without gap or repeat" % len(seqs), seqs == list(range(1, len(seqs) + 1)),
          [(a, b) for a, b in zip(seqs, seqs[1:]) if b != a + 1][:10])
    check("errors=0 on every line", all(s["errors"] == 0 for s in status),
          [s for s in status if s["errors"]][:3])
    for key in COUNTERS:
        back = [(a["seq"], a[key], b[key]) for a, b in zip(status, status[1:]) if b[key] <= a[key]]
        check("%s grows on every line" % key, not back, back[:10])
    slow = [(a["seq"], b["pit"] - a["pit"]) for a, b in zip(status, status[1:]) if b["pit"] - a["pit"] < 100]
    check("pit advances >= 100 per line", not slow, slow[:10])
    # Both timers tick at 100 Hz; KVM's periodic LAPIC timer does not bank
    # ticks while the VM is stopped, so the PIT must not either (QEMU 7.2
    # freezes the in-kernel PIT across stop/cont): the two counts agree.
    if status:
        pit, lapic = status[-1]["pit"], status[-1]["lapic"]
        check("PIT and LAPIC tick counts agree across %d stop/cont (pit=%d lapic=%d)" % (stops, pit, lapic),
              abs(pit - lapic) <= 0.02 * pit + 50,
              "pit - lapic = %d ticks (%.1f s at 100 Hz; %.1f s were spent stopped)" % (
                  pit - lapic, (pit - lapic) / 100.0, stopped_s))
    running_s = elapsed - stopped_s
    check("about one line per running second (%d lines in %.0f s running)" % (len(status), running_s),
          len(status) >= 0.9 * running_s - 2, "")
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    max_gap = max(gaps) if gaps else 0.0
    check("no gap between lines longer than %.0f s (max %.1f s)" % (PAUSE + 3, max_gap),
          max_gap <= PAUSE + 3, gaps)
    q.cmd("quit")
    check_eq("quit: exit status", vm.wait_exit(10.0), 0)
    check_eq("nothing on stderr", vm.stderr_text(), "")
    first, last = (status[0], status[-1]) if status else ({}, {})
    print("# summary: %.1f min (%.0f s running, %.0f s stopped), %d stop/cont" % (
        elapsed / 60.0, running_s, stopped_s, stops))
    print("# summary: %d status lines, seq %s..%s, %.2f lines per running s, max line gap %.1f s" % (
        len(status), first.get("seq"), last.get("seq"), len(status) / running_s if running_s else 0, max_gap))
    print("# summary: pit %s, lapic %s, serial interrupts %s" % (last.get("pit"), last.get("lapic"),
                                                                 last.get("sirq")))
    print("# summary: pages written %s (%.1f GiB), verified %s, errors %s, ERROR lines %d" % (
        last.get("pages"), (last.get("pages") or 0) * 4096 / float(1 << 30), last.get("verified"),
        last.get("errors"), len(bad)), flush=True)


def main():
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    migvm.require_own_kvm(IMAGE)
    run("soak", soak, minutes)
    migvm.finish()


if __name__ == "__main__":
    main()
