#!/usr/bin/env python3
"""Postcopy between migvm and the real QEMU 7.2, both ways, -M none -m 8M
(shared docs: postcopy.md, whose section 7 found QEMU 7.2 -M none able to
do all of this).

QEMU (a known pattern from `-device loader` all over RAM) -> migvm -> QEMU,
each hop over tcp with capability postcopy-ram on both sides, a slow
precopy (max-bandwidth) switched with migrate-start-postcopy, a slow
postcopy (max-postcopy-bandwidth) so most pages are still missing while:

  * the destination reads a page near the end of RAM with pmemsave: the
    page fault becomes a page request on the return path (the source's
    postcopy-requests grows) and the right bytes come back;
  * both sides go through postcopy-active to completed;
  * afterwards the destination's whole RAM equals the pattern.

What QEMU 7.2 cannot do here: -M none has no vCPU, so no guest runs during
postcopy and every fault comes from the monitor (pmemsave), as in the
spec's experiments; the guest side is covered migvm to migvm
(tests/functional/test-postcopy.py).
"""

import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemulib  # noqa: E402
from migvm import check, new_tmpdir  # noqa: E402

QEMU = qemulib.require_qemu_and_migvm()
TMP = new_tmpdir()
RAM = 8 << 20
MiB = 1 << 20
# Every page non-zero (random bytes from a fixed seed), so that each one
# costs a full page on the wire; the marker page near the end is read early.
MARKER = RAM - 3 * 4096
PATTERN = qemulib.Pattern([(0, random.Random(14).randbytes(RAM))], RAM, TMP)
EXPECTED = PATTERN.image


def hop(src, qs, kind_dst, label):
    """Postcopy from src to a new kind_dst destination; returns it."""
    dst, qd = qemulib.start_postcopy(label, qs, kind_dst, RAM, TMP, 2 * MiB)
    before = qs.cmd_ok("query-migrate").get("ram", {}).get("postcopy-requests", 0)
    path = os.path.join(TMP, "%s-marker" % kind_dst)
    t0 = time.monotonic()
    qd.cmd_ok("pmemsave", val=MARKER, size=4096, filename=path, timeout=20)
    took = time.monotonic() - t0
    with open(path, "rb") as f:
        got = f.read()
    check("%s: the destination reads the marker page during postcopy" % label,
          got == EXPECTED[MARKER:MARKER + 4096], qemulib.first_difference(got, EXPECTED[MARKER:MARKER + 4096]))
    info = qs.cmd_ok("query-migrate")
    check("%s: that read was a page request (source postcopy-requests grew, %.2f s)" % (label, took),
          info.get("status") == "postcopy-active" and info.get("ram", {}).get("postcopy-requests", 0) > before,
          info)
    return PATTERN.check_arrived(label, src, qs, dst, qd)


if __name__ == "__main__":
    qemulib.run_round_trip(PATTERN, hop)
