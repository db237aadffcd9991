#!/usr/bin/env python3
"""Postcopy recovery between migvm and the real QEMU 7.2, both ways, -M none
-m 8M (shared docs: postcopy.md 6.3 and 7, whose experiments found QEMU 7.2
-M none able to pause and recover).

QEMU (a known pattern all over RAM) -> migvm -> QEMU, each hop over tcp
with postcopy-ram on both sides and a slow postcopy (max-postcopy-bandwidth)
paused twice, once with migrate-pause on the source, once on the
destination: both sides go postcopy-paused, migrate-recover on a new
address and `migrate resume:true` bring both back to postcopy-active (the
received-bitmap exchange between the two implementations), and the hop
completes with the destination's RAM equal to the pattern.

What QEMU 7.2 cannot do here: -M none has no vCPU, so no guest runs and
nothing faults while paused (a monitor read of a missing page would hold
the monitor until the resume, so none is made); the guest side is covered
migvm to migvm (tests/functional/test-postcopy-recovery.py). A cut by a
proxy is covered there too: QEMU sees the same socket error as from
migrate-pause.
"""

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemulib  # noqa: E402
from migvm import check, check_eq, free_tcp_port, new_tmpdir, wait_until  # noqa: E402

QEMU = qemulib.require_qemu_and_migvm()
TMP = new_tmpdir()
RAM = 8 << 20
MiB = 1 << 20
PATTERN = qemulib.Pattern([(0, random.Random(15).randbytes(RAM))], RAM, TMP)


def wait_status(q, status, timeout=15.0):
    return wait_until(lambda: qemulib.migration_status(q) == status, timeout)


def pause_and_recover(label, src, qs, dst, qd, pauser):
    check_eq("%s: migrate-pause" % label, pauser.cmd("migrate-pause").get("return"), {})
    for side, vm, q in (("source", src, qs), ("destination", dst, qd)):
        check("%s: %s postcopy-paused" % (label, side), wait_status(q, "postcopy-paused"),
              (q.cmd_ok("query-migrate"), vm.stderr_text()[-300:]))
    uri = "tcp:127.0.0.1:%d" % free_tcp_port()
    qd.cmd_ok("migrate-recover", uri=uri)
    qs.cmd_ok("migrate", uri=uri, resume=True)
    for side, vm, q in (("source", src, qs), ("destination", dst, qd)):
        check("%s: %s back in postcopy-active" % (label, side), wait_status(q, "postcopy-active"),
              (q.cmd_ok("query-migrate"), vm.stderr_text()[-300:]))


def hop(src, qs, kind_dst, label):
    """Postcopy from src to a new kind_dst destination, paused and recovered
    twice; returns the destination."""
    # 8 MiB at 256 KiB/s: the postcopy phase lasts far longer than the pauses.
    dst, qd = qemulib.start_postcopy(label, qs, kind_dst, RAM, TMP, 256 * 1024)
    pause_and_recover(label + ", paused by the source", src, qs, dst, qd, qs)
    pause_and_recover(label + ", paused by the destination", src, qs, dst, qd, qd)
    left = qs.cmd_ok("query-migrate").get("ram", {}).get("remaining", 0)
    check("%s: most of RAM still to send after the recoveries (%d bytes)" % (label, left), left > RAM // 2)
    qs.cmd_ok("migrate-set-parameters", {"max-postcopy-bandwidth": 0})
    return PATTERN.check_arrived(label, src, qs, dst, qd)


if __name__ == "__main__":
    qemulib.run_round_trip(PATTERN, hop)
