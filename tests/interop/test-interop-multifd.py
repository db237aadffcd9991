#!/usr/bin/env python3
"""Multifd between migvm and the real QEMU 7.2, both ways, -M none.

A QEMU source holds a known image (`-device loader`: 6 MiB of random bytes and
a page at the top of RAM, the rest zero) and migrates with multifd to migvm,
which migrates it on with multifd to another QEMU. At each hop both sides
complete and the destination's whole RAM (pmemsave) equals the image; the
migvm source's multifd-bytes is the pages plus whole 1344-byte headers.

Default matrix (make check): tcp/unix, 2 and 4 channels, none/zlib/zstd in
three chains, each direction; MULTIFD_FULL=1 runs every transport x channels x
compression in both directions.

Mismatches from a QEMU 7.2 source: zlib against a migvm destination set to
none, and 3 channels against 2: migvm fails the incoming migration with the
cause and stays alive (QEMU's own source hangs or fails: not checked).
"""

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemulib  # noqa: E402
from migvm import check, check_eq, finish, new_tmpdir, run, wait_until  # noqa: E402

qemulib.require_qemu_and_migvm()
TMP = new_tmpdir()
RAM = 16 << 20
PAGE = 4096
HEADER = 1344
LOADS = [(1 << 20, random.Random(12).randbytes(6 << 20)), (RAM - PAGE, random.Random(13).randbytes(PAGE))]
PATTERN = qemulib.Pattern(LOADS, RAM, TMP)


def multifd(q, channels, compression):
    q.cmd_ok("migrate-set-capabilities", capabilities=[{"capability": "multifd", "state": True}])
    q.cmd_ok("migrate-set-parameters", **{"multifd-channels": channels, "multifd-compression": compression})


def start_destination(kind):
    return qemulib.start_negotiated(kind, ["-S", "-incoming", "defer"], ram=RAM)


def qemu_to_migvm(vms):
    """A QEMU source holding the image and a migvm destination waiting for
    migrate-incoming, both appended to vms: (a, qa, b, qb)."""
    a, qa = PATTERN.start_source()
    vms.append(a)
    b, qb = start_destination("migvm")
    vms.append(b)
    return a, qa, b, qb


def hop(name, src, qs, dst, qd, case):
    """Migrate qs -> qd with multifd `case`; check both ends and the image."""
    transport, channels, compression = case
    multifd(qs, channels, compression)
    multifd(qd, channels, compression)
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 0})
    qemulib.migrate_deferred(qs, qd, qemulib.migration_uri(transport, TMP, name))
    info, _, ok = qemulib.check_completed(name, src, qs, dst, qd)
    if not ok:
        return False
    if src.kind == "migvm":
        ram = info["ram"]
        mb, normal = ram["multifd-bytes"], ram["normal"]
        check(name + ": multifd-bytes = pages + whole headers",
              mb > normal * PAGE and (mb - normal * PAGE) % HEADER == 0, "multifd-bytes %d normal %d" % (mb, normal))
        check_eq(name + ": every non-zero page over multifd", normal, sum(len(d) for _, d in LOADS) // PAGE)
        check_eq(name + ": every zero page a ZERO record on the main channel", ram["duplicate"],
                 RAM // PAGE - normal)
    return PATTERN.check_ram(name + ": RAM equals the image", dst, qd)


def chain(into, outof):
    """QEMU -into-> migvm -outof-> QEMU."""
    label_in = "QEMU->migvm %s %d %s" % into
    label_out = "migvm->QEMU %s %d %s" % outof
    vms = []
    try:
        a, qa, b, qb = qemu_to_migvm(vms)
        if not hop(label_in, a, qa, b, qb, into):
            return
        c, qc = start_destination("qemu")
        vms.append(c)
        hop(label_out, b, qb, c, qc, outof)
    finally:
        for vm in vms:
            vm.kill()


def qemu_mismatch(name, src_case, dst_case, expect):
    vms = []
    try:
        a, qa, b, qb = qemu_to_migvm(vms)
        multifd(qa, *src_case)
        multifd(qb, *dst_case)
        qemulib.migrate_deferred(qa, qb, qemulib.migration_uri("unix", TMP, "mismatch-" + name))
        dinfo = qemulib.wait_migration(qb, 20)
        check_eq(name + ": migvm destination fails", dinfo and dinfo["status"], "failed")
        check(name + ": migvm names the cause", wait_until(lambda: expect in b.stderr_text(), 5),
              b.stderr_text()[-600:])
        check(name + ": migvm alive", b.alive() and qb.cmd_ok("query-status")["status"] == "inmigrate")
    finally:
        for vm in vms:
            vm.kill()


def main():
    if os.environ.get("MULTIFD_FULL"):
        combos = [(t, n, c) for t in ("tcp", "unix") for n in (2, 4) for c in ("none", "zlib", "zstd")]
        chains = [(x, x) for x in combos]
    else:
        chains = [(("tcp", 2, "none"), ("unix", 2, "none")),
                  (("unix", 4, "zlib"), ("tcp", 4, "zlib")),
                  (("tcp", 2, "zstd"), ("unix", 4, "zstd"))]
    for into, outof in chains:
        run("chain %s / %s" % (into, outof), chain, into, outof)
    run("QEMU zlib to migvm none", qemu_mismatch, "zlib to none", (2, "zlib"), (2, "none"),
        "flags received 2 flags expected 0")
    run("QEMU 3 channels to migvm 2", qemu_mismatch, "3 channels to 2", (3, "none"), (2, "none"),
        "multifd-channels")
    finish()


main()
