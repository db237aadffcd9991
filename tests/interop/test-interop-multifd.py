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
from migvm import check, check_eq, finish, free_tcp_port, new_tmpdir, run, wait_until  # noqa: E402

qemulib.require_qemu_and_migvm()
TMP = new_tmpdir()
RAM = 16 << 20
PAGE = 4096
HEADER = 1344
LOADS = [(1 << 20, random.Random(12).randbytes(6 << 20)), (RAM - PAGE, random.Random(13).randbytes(PAGE))]


def expected_image():
    img = bytearray(RAM)
    for addr, data in LOADS:
        img[addr:addr + len(data)] = data
    return bytes(img)


EXPECTED = expected_image()


def loader_files():
    out = []
    for i, (addr, data) in enumerate(LOADS):
        path = os.path.join(TMP, "load%d.bin" % i)
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
        out.append((path, addr))
    return out


def uri_for(transport, name):
    if transport == "unix":
        return "unix:" + os.path.join(TMP, name + ".sock")
    return "tcp:127.0.0.1:%d" % free_tcp_port()


def multifd(q, channels, compression):
    q.cmd_ok("migrate-set-capabilities", capabilities=[{"capability": "multifd", "state": True}])
    q.cmd_ok("migrate-set-parameters", **{"multifd-channels": channels, "multifd-compression": compression})


def start(kind, incoming=False, loaders=()):
    args = ["-S"] + (["-incoming", "defer"] if incoming else [])
    return qemulib.start_negotiated(kind, args, ram=RAM, loaders=loaders)


def hop(name, src_kind, qs, dst_kind, qd, dvm, case):
    """Migrate qs -> qd with multifd `case`; check both ends and the image."""
    transport, channels, compression = case
    uri = uri_for(transport, name.replace(" ", "-"))
    multifd(qs, channels, compression)
    multifd(qd, channels, compression)
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 0})
    qd.cmd_ok("migrate-incoming", uri=uri)
    qs.cmd_ok("migrate", uri=uri)
    info = qemulib.wait_migration(qs, 30)
    if not check(name + ": source completed", info and info["status"] == "completed", str(info)[:400]):
        check(name + ": destination stderr", False, dvm.stderr_text()[-600:])
        return False
    dinfo = qemulib.wait_migration(qd, 30)
    check(name + ": destination completed", dinfo and dinfo["status"] == "completed", str(dinfo)[:400])
    if src_kind == "migvm":
        ram = info["ram"]
        mb, normal = ram["multifd-bytes"], ram["normal"]
        check(name + ": multifd-bytes = pages + whole headers",
              mb > normal * PAGE and (mb - normal * PAGE) % HEADER == 0, "multifd-bytes %d normal %d" % (mb, normal))
        check_eq(name + ": every non-zero page over multifd", normal, sum(len(d) for _, d in LOADS) // PAGE)
        check_eq(name + ": every zero page a ZERO record on the main channel", ram["duplicate"],
                 RAM // PAGE - normal)
    img = qemulib.dump_ram(dvm, qd, name.replace(" ", "-") + ".bin", RAM)
    return check(name + ": RAM equals the image", img == EXPECTED, qemulib.first_difference(img, EXPECTED))


def chain(into, outof):
    """QEMU -into-> migvm -outof-> QEMU."""
    label_in = "QEMU->migvm %s %d %s" % into
    label_out = "migvm->QEMU %s %d %s" % outof
    vms = []
    try:
        a, qa = start("qemu", loaders=loader_files())
        vms.append(a)
        b, qb = start("migvm", incoming=True)
        vms.append(b)
        if not hop(label_in, "qemu", qa, "migvm", qb, b, into):
            return
        c, qc = start("qemu", incoming=True)
        vms.append(c)
        hop(label_out, "migvm", qb, "qemu", qc, c, outof)
    finally:
        for vm in vms:
            vm.kill()


def qemu_mismatch(name, src_case, dst_case, expect):
    vms = []
    try:
        a, qa = start("qemu", loaders=loader_files())
        vms.append(a)
        b, qb = start("migvm", incoming=True)
        vms.append(b)
        uri = uri_for("unix", "mismatch-" + name.replace(" ", "-"))
        multifd(qa, *src_case)
        multifd(qb, *dst_case)
        qb.cmd_ok("migrate-incoming", uri=uri)
        qa.cmd_ok("migrate", uri=uri)
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
