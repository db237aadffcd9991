#!/usr/bin/python3
"""Hostile incoming streams: huge names, sizes and counts are refused, each with
its own error, the destination stays alive, and it never maps more than the
margin of docs/hostile-streams.md beyond what it had before the streams
(guest RAM included).

One destination (-M pc -m 64M, a sparse 1 TiB virtio drive, -incoming defer)
receives each stream with migrate-incoming exec:cat, which may be retried
after a failed load. The measure is VmPeak (the largest address space the
process ever had), which also counts memory allocated and never touched.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402

MARGIN_MIB = 384        # docs/hostile-streams.md

HEADER = b"QEVM" + struct.pack(">I", 3)


def config(machine=b"pc"):
    return b"\x07" + struct.pack(">I", len(machine)) + machine


def full(sid, idstr, body, instance=0, version=1, typ=4):
    return (bytes([typ]) + struct.pack(">I", sid) + bytes([len(idstr)]) + idstr +
            struct.pack(">II", instance, version) + body + b"\x7e" + struct.pack(">I", sid))


def start(sid, idstr, body, version):
    return full(sid, idstr, body, version=version, typ=1)


def counted(s):
    return bytes([len(s)]) + s


def stream(*parts):
    return HEADER + config() + b"".join(parts) + b"\x00"


RAM_LIST = struct.pack(">Q", (64 << 20) | 0x04) + counted(b"pc.ram") + struct.pack(">Q", 64 << 20)


def bitmap_starts(n, gran, first=0):
    recs = b""
    for i in range(first, first + n):
        name = b"h%d" % i
        flags = 0x14 | (0x08 if i == first else 0)
        recs += bytes([flags]) + (counted(b"virtio0") if i == first else b"") + counted(name)
        recs += struct.pack(">I", gran) + b"\x01"
    return recs + b"\x01"


CASES = [
    ("idstr of 255 bytes", stream(full(1, b"x" * 255, b"")), "Unknown savevm section or instance 'xxx"),
    ("machine type of 4 GiB", HEADER + b"\x07" + struct.pack(">I", 0xFFFFFFFF) + b"pc",
     "Machine type name in the configuration section is too long (4294967295 bytes)"),
    ("2^32-1 capabilities", HEADER + config() + b"\x05" + counted(b"configuration/capabilities") +
     struct.pack(">II", 1, 0xFFFFFFFF) + b"\x00",
     "Too many capabilities in the configuration section (4294967295)"),
    ("RAM block of 2^62 bytes", stream(start(2, b"ram", struct.pack(">Q", (1 << 62) | 0x04) + counted(b"pc.ram") +
                                             struct.pack(">Q", 1 << 62) + struct.pack(">Q", 0x10), 4)),
     "Length mismatch: pc.ram: 0x4000000000000000 in != 0x4000000"),
    ("RAM page at 2^62", stream(start(2, b"ram", RAM_LIST + struct.pack(">Q", (1 << 62) | 0x08) + counted(b"pc.ram") +
                                      bytes(4096) + struct.pack(">Q", 0x10), 4)),
     "Illegal RAM offset 4000000000000000 in block pc.ram"),
    ("block chunk at 2^60", stream(start(3, b"block", struct.pack(">Q", (1 << 60) | 0x09) + counted(b"virtio0") +
                                         struct.pack(">Q", 2), 1)),
     "Block device 'virtio0' is smaller than the source's"),
    ("bitmap bits of 2^63 bytes", stream(start(4, b"dirty-bitmap",
                                               bitmap_starts(1, 65536)[:-1] + b"\x44" + counted(b"h0") +
                                               struct.pack(">QIQ", 0, 8, 1 << 63), 1)),
     "Bitmap migration stream buffer allocation request is too large"),
    ("four bitmaps of 256 MiB", stream(start(4, b"dirty-bitmap", bitmap_starts(4, 512), 1)),
     "Dirty bitmap 'h0' on 'virtio0' (granularity 512) would take migrated bitmaps past what one "
     "migration may create: 1024 bitmaps, 128 MiB"),
    ("1100 bitmaps", stream(start(4, b"dirty-bitmap", bitmap_starts(1100, 1 << 30), 1)),
     "Dirty bitmap 'h1024' on 'virtio0' (granularity 1073741824) would take"),
    ("PACKAGED of 2^32-1 bytes", stream(b"\x08" + struct.pack(">HHI", 7, 4, 0xFFFFFFFF)),
     "Unreasonably large packaged state: 4294967295"),
    ("PACKAGED of 64 MiB, cut short", stream(b"\x08" + struct.pack(">HHI", 7, 4, 64 << 20)) + bytes(4096),
     "packaged state"),
    ("section id 2^32-1, junk body", stream(full(0xFFFFFFFF, b"timer", b"\xff" * 64, version=2)),
     "Missing section footer for timer"),
]


def vm_peak_kib(pid):
    return migvm.rss_kib(pid, "VmPeak")


def run_case(vm, q, tmp, base, name, data, want):
    path = os.path.join(tmp, "stream.bin")
    with open(path, "wb") as f:
        f.write(data)
    q.clear_events()
    q.cmd_ok("migrate-incoming", {"uri": "exec:cat " + path})
    info = {}

    def ended():
        nonlocal info
        info = q.cmd("query-migrate")["return"]
        return info.get("status") in ("failed", "completed")
    migvm.wait_until(ended, 30)
    migvm.check("%s: refused with its error" % name,
                info.get("status") == "failed" and want in info.get("error-desc", ""),
                "got %r" % info)
    migvm.check("%s: destination alive" % name, vm.alive())
    grown = (vm_peak_kib(vm.pid) - base) // 1024
    migvm.check("%s: address space grew %d MiB <= %d MiB" % (name, grown, MARGIN_MIB), grown <= MARGIN_MIB)


def main():
    migvm.require_binary()
    tmp = migvm.new_tmpdir()
    img = os.path.join(tmp, "big.img")
    with open(img, "wb") as f:
        f.truncate(1 << 40)
    vm = migvm.VM(["-M", "pc", "-accel", "soft", "-m", "64M", "-drive", "file=%s,if=virtio,format=raw" % img,
                   "-incoming", "defer"])
    vm.launch()
    q = vm.qmp()
    base = vm_peak_kib(vm.pid)
    print("# destination VmPeak before the streams: %d MiB" % (base // 1024))
    for name, data, want in CASES:
        try:        # not migvm.run: it kills the destination after each section
            run_case(vm, q, tmp, base, name, data, want)
        except Exception as e:  # noqa: BLE001 - report and go on with the next stream
            migvm.check("%s (no exception)" % name, False, "%s: %s" % (type(e).__name__, e))
    # A VMDESCRIPTION claiming 4 GiB after a complete stream: ignored with a
    # warning, as QEMU 7.2 does; the (empty) migration completes.
    path = os.path.join(tmp, "vmdesc.bin")
    with open(path, "wb") as f:
        f.write(stream() + b"\x06" + struct.pack(">I", 0xFFFFFFFF) + b"{}")
    q.cmd_ok("migrate-incoming", {"uri": "exec:cat " + path})
    migvm.wait_until(lambda: q.cmd("query-migrate")["return"].get("status") in ("failed", "completed"), 30)
    migvm.check_eq("vmdescription of 4 GiB: load completes", q.cmd("query-migrate")["return"].get("status"),
                   "completed")
    migvm.wait_until(lambda: "vmdescription of 4294967295 bytes is too long, ignored" in vm.stderr_text(), 10)
    migvm.check("vmdescription of 4 GiB: warned", "vmdescription of 4294967295 bytes is too long" in
                vm.stderr_text(), vm.stderr_text()[-400:])
    grown = (vm_peak_kib(vm.pid) - base) // 1024
    migvm.check("whole run: address space grew %d MiB <= %d MiB" % (grown, MARGIN_MIB), grown <= MARGIN_MIB)
    vm.kill()
    migvm.finish()


if __name__ == "__main__":
    try:
        main()
    finally:
        migvm.cleanup()
