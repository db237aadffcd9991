#!/usr/bin/python3
"""The ring-3 guest's virtio-blk driver and disk workload (guest/ring3/
virtio-blk.c, disk.c; disklib.py describes the pattern on the disk).

  * QEMU 7.2 reference: the guest on QEMU's -M microvm (virtio-mmio slots at
    0xfeb00000 + 0x200 * n, as on migvm's pc board) with a
    virtio-blk-device (virtio 1.x: force-legacy=false) on a 16 MiB image,
    loaded without a BIOS (a 64 KiB -bios that jumps to 0:7c00, the image
    and migvm's loader hint placed by -device loader): a DISK line naming
    the device, two "DISK pass N ok" lines, status lines whose disk counters
    grow, no ERROR; then, QEMU stopped, every block of the image carries its
    address, a valid checksum and its words, and the generations step down
    once along the disk.

Skips when QEMU cannot run a KVM guest here (QEMU's error is quoted)."""

import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
import disklib  # noqa: E402
from migvm import QMPClient, check, check_eq, new_tmpdir, read_bytes, run, wait_until  # noqa: E402
from ring3lib import IMAGE, MEM, parse  # noqa: E402

DISK_SIZE = 16 << 20
MiB = 1 << 20


def disk_lines(other):
    return [ln for ln in other if ln.startswith("DISK ")]


def passes_ok(other):
    return [ln for ln in other if ln.startswith("DISK pass ")]


def qemu_microvm(qemu, d, disk):
    """QEMU 7.2 -M microvm running the ring3 image without firmware, its
    virtio-blk-device on `disk`; returns (Popen, serial path)."""
    image = read_bytes(IMAGE)
    ram = int(MEM[:-1]) * MiB
    load = os.path.join(d, "load.bin")
    with open(load, "wb") as f:                 # hw/loader.h's hint at 0x7bf0, then the image at 0x7c00
        f.write(struct.pack("<IIII", 0x5647494D, ram, len(image), 0) + image)
    bios = bytearray(b"\xff" * 65536)
    bios[0xFFF0:0xFFF5] = b"\xea\x00\x7c\x00\x00"      # reset vector: jmp far 0000:7c00
    bios_path = os.path.join(d, "bios.bin")
    with open(bios_path, "wb") as f:
        f.write(bios)
    serial = os.path.join(d, "serial.out")
    qmp = os.path.join(d, "qmp.sock")
    args = qemu.args() + ["-qmp", "unix:%s,server=on,wait=off" % qmp,
        "-M", "microvm,x-option-roms=off,pit=on,pic=on,isa-serial=on,rtc=on",
        "-global", "virtio-mmio.force-legacy=false", "-m", MEM, "-bios", bios_path,
        "-device", "loader,file=%s,addr=0x7bf0,force-raw=on" % load,
        "-display", "none", "-nodefaults", "-serial", "file:" + serial,
        "-drive", "if=none,id=d0,file=%s,format=raw" % disk, "-device", "virtio-blk-device,drive=d0"]
    err = open(os.path.join(d, "stderr"), "wb")
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    err.close()
    migvm.track_pid(p.pid)
    return p, serial, qmp


def test_qemu_reference(qemu):
    d = new_tmpdir()
    disk = disklib.make_image(os.path.join(d, "disk.img"), DISK_SIZE)
    p, serial, qmp = qemu_microvm(qemu, d, disk)
    def progressed():
        # Two disk passes, and a status line (printed on the guest's timer,
        # independently of the passes) that counts the disk's work.
        status, _, other = parse(read_bytes(serial))
        return (len(passes_ok(other)) >= 2 and bool(status) and
                status[-1]["disk"] > 0 and status[-1]["disk_verified"] > 0)
    ok = wait_until(lambda: progressed() or p.poll() is not None, 60, interval=0.2)
    if p.poll() is None:
        q = QMPClient.unix(qmp, timeout=20)           # stop drains the request in flight: no torn chunk
        q.cmd_ok("qmp_capabilities")
        q.cmd_ok("stop")
        q.close()
    p.kill()
    p.wait(10)
    status, errors, other = parse(read_bytes(serial))
    stderr = read_bytes(os.path.join(d, "stderr")).decode(errors="replace")
    if not check("QEMU microvm: two disk passes within 60 s", ok and len(passes_ok(other)) >= 2,
                 repr(read_bytes(serial)[-400:]) + stderr[-400:]):
        return
    lines = disk_lines(other)
    check("QEMU microvm: DISK line names the virtio-blk device and its 16 MiB",
          lines and lines[0].startswith("DISK virtio-blk mmio=0xfeb0") and "sectors=32768 blocks=4096" in lines[0],
          lines[:1])
    check_eq("QEMU microvm: pass lines", passes_ok(other)[:2], ["DISK pass 1 ok", "DISK pass 2 ok"])
    check("QEMU microvm: disk counters grow", status and status[-1]["disk"] > 0 and status[-1]["disk_verified"] > 0,
          status[-1:])
    check_eq("QEMU microvm: ERROR lines", errors, [])
    problems, gens = disklib.check_pattern(disk, full=True)
    check_eq("QEMU microvm: the image holds the pattern", problems, [])
    check("QEMU microvm: generations on the image are consecutive and at least 2",
          len(gens) in (1, 2) and gens[0] >= 2 and gens[-1] - gens[0] <= 1, gens)


def main():
    if not os.path.isfile(IMAGE):
        migvm.fail_all("%s is built (make builds it)" % IMAGE)
    qemu = migvm.qemu_kvm()
    if qemu.why:
        migvm.skip("QEMU 7.2 reference", qemu.why)
    else:
        run("the driver on QEMU 7.2's virtio-blk (microvm)", test_qemu_reference, qemu)
    migvm.finish()


if __name__ == "__main__":
    main()
