#!/usr/bin/python3
"""KVM guests with more RAM than fits below the 32-bit hole.

As QEMU 7.2's pc (i440fx) board, migvm keeps ONE RAM block "pc.ram" of the
full -m size and maps it in two pieces when -m >= 3.5 GiB: block bytes
[0, 3 GiB) at guest address 0 and the rest at 4 GiB; below 3.5 GiB all of it
sits at 0. The hole keeps KVM's TSS/identity map (0xfffbc000), the IOAPIC
(0xfec00000) and the LAPIC (0xfee00000) free.

  * the loader's hint at 0x7bf0 ("MIGV", top, bytes) gives the top of the
    part below 4 GiB, for -m 3583M (no split), 3584M, 4G and 5G;
  * -m 4G and 5G boot build/guest/boot-sector.img ('A', then a 'B' per pass
    over [1 MiB, 3 GiB)); pmemsave above 4 GiB works up to the end of RAM,
    one byte past it, inside the hole or across its edges fails cleanly,
    and the guest keeps running;
  * a 5 GiB guest saved with exec: has ONE block "pc.ram" of 5 GiB in the
    stream's block list, with page offsets up to 5 GiB - 4 KiB; it loads
    into a -m 5G destination (which then reads above 4 GiB) and is refused
    by a -m 4G one (length mismatch);
  * the ring3 guest (build/guest/ring3-guest.img) with its workload moved
    above 4 GiB (config block: mem_start 4096 MiB, 512 MiB) on -m 5G: the
    hint's high word gives it the RAM there; a live migration over unix
    while it rewrites those pages at full speed continues with no ERROR
    line, so the high KVM slot's dirty log reaches the migration bitmap at
    the right block offsets; with RAM's last round left out
    (MIGVM_TEST_OMIT_SECTIONS=ram/final-pass) it reports stale pages above
    4 GiB, so its checks do cover them;
  * a live migration of a running 4 GiB guest over unix to a destination
    started with -S: several passes while the guest writes 3 GiB, completes;
    the destination's memory equals the source's in samples on both sides of
    the hole, and after cont the guest goes on printing 'B's there with the
    memory pattern intact.

Skips when /dev/kvm cannot be used; a missing binary or image fails."""

import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
import miglib  # noqa: E402
import ring3lib  # noqa: E402
from migvm import check, check_eq, error_of, new_tmpdir, run, wait_until  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
LOW = 3 * GiB                   # the low part of a split "pc.ram"
HIGH = 4 * GiB                  # where the rest is mapped
BUILD = os.environ.get("BUILD", "build")
GUEST_IMG = os.path.abspath(os.path.join(BUILD, "guest", "boot-sector.img"))
RING3_IMG = os.path.abspath(os.path.join(BUILD, "guest", "ring3-guest.img"))
PASS_TIMEOUT = 90.0             # the first pass faults in 3 GiB (about 10 s here)


def start(mem, drive=True, extra=(), tmpdir=None, incoming=None):
    return miglib.start_kvm_guest(GUEST_IMG if drive else None, mem, extra=extra, incoming=incoming, tmpdir=tmpdir)


def serial(vm):
    return miglib.serial_text(vm.serial_path)


def wait_passes(vm, n, timeout=PASS_TIMEOUT):
    return bool(wait_until(lambda: serial(vm).startswith(b"A") and serial(vm).count(b"B") >= n, timeout, 0.1))


def pmem(q, d, addr, size):
    """(bytes, None) or (None, error description)."""
    path = os.path.join(d, "pmem-%x-%x.bin" % (addr, size))
    r = q.cmd("pmemsave", val=addr, size=size, filename=path)
    if "return" not in r:
        return None, (error_of(r) or (None, repr(r)))[1]
    with open(path, "rb") as f:
        data = f.read()
    os.unlink(path)
    return data, None


def ram_hint(q, d):
    data, err = pmem(q, d, 0x7bf0, 16)
    return struct.unpack("<4sIII", data) if data else err


# ---------------------------------------------------------------------------

def test_ram_hint():
    """The 32-bit top the guest reads: never above 4 GiB, the low part's end."""
    for mem, top, high in (("3583M", 3583 * MiB, 0), ("3584M", LOW, 512 * MiB),
                           ("4G", LOW, 1 * GiB), ("5G", LOW, 2 * GiB)):
        vm = start(mem, extra=["-S"])
        q = vm.qmp()
        d = vm.dir
        hint = ram_hint(q, d)
        check_eq("-m %s: hint at 0x7bf0 is MIGV, top 0x%x, %d MiB above 4 GiB" % (mem, top, high // MiB),
                 (hint[:2] + hint[3:]) if isinstance(hint, tuple) else hint, (b"MIGV", top, high // MiB))
        data, err = pmem(q, d, top - 4096, 4096)
        check("-m %s: last page below the top is RAM" % mem, data is not None, err)
        data, err = pmem(q, d, top, 4096)
        check("-m %s: the top itself is not RAM" % mem, data is None and "Invalid addr" in (err or ""), err)
        if high:
            data, err = pmem(q, d, HIGH + high - 4096, 4096)
            check("-m %s: RAM ends at 4 GiB + 0x%x" % (mem, high), data == bytes(4096), err)
            data, err = pmem(q, d, HIGH + high, 1)
            check("-m %s: nothing past it" % mem, data is None, err)
        else:
            data, err = pmem(q, d, HIGH, 1)
            check("-m %s: no RAM above 4 GiB" % mem, data is None, err)
        check("-m %s: no errors on stderr" % mem, not vm.stderr_text(), vm.stderr_text())
        q.cmd_ok("quit")
        vm.wait_exit(10)


def test_boot(mem):
    vm = start(mem)
    q = vm.qmp()
    d = vm.dir
    size = int(mem[:-1]) * GiB
    check("-m %s: guest prints 'A' then 'B's" % mem, wait_passes(vm, 2),
          repr(serial(vm)[:40]) + vm.stderr_text())
    check_eq("-m %s: query-status running" % mem, miglib.query_status(q), "running")

    data, err = pmem(q, d, HIGH, 1 * MiB)
    check("-m %s: pmemsave of 1 MiB at 4 GiB" % mem, data is not None and len(data) == MiB, err)
    data, err = pmem(q, d, HIGH + (size - LOW) - MiB, MiB)
    check("-m %s: pmemsave of the last MiB of RAM (4 GiB + 0x%x)" % (mem, size - LOW - MiB),
          data is not None and len(data) == MiB, err)
    for what, addr, length in (("one byte past the end of RAM", HIGH + size - LOW - 4096, 4097),
                               ("the IOAPIC page (in the hole)", 0xfec00000, 4096),
                               ("the LAPIC page (in the hole)", 0xfee00000, 4096),
                               ("KVM's TSS (in the hole)", 0xfffbd000, 4096),
                               ("from below the hole into it", LOW - 4096, 8192),
                               ("from the hole into RAM above 4 GiB", HIGH - 4096, 8192)):
        data, err = pmem(q, d, addr, length)
        check("-m %s: pmemsave of %s fails cleanly" % (mem, what),
              data is None and err and "Invalid addr" in err, err or "succeeded")
    r = q.cmd("memsave", val=0xfee00000, size=16, filename=os.path.join(d, "ms.bin"))
    check("-m %s: memsave in the hole fails too" % mem, error_of(r) is not None, repr(r))

    check("-m %s: guest still runs after the failed dumps" % mem,
          miglib.wait_serial_growth(vm.serial_path, PASS_TIMEOUT, 1))
    q.cmd_ok("stop")
    dump, err = pmem(q, d, 0, 64 * MiB)
    ok, detail = miglib.check_memory_pattern(dump or b"")
    check("-m %s: memory pattern in the first 64 MiB: %s" % (mem, detail), ok, detail)
    tail, err = pmem(q, d, LOW - 64 * MiB, 64 * MiB)
    ok, detail = miglib.check_memory_pattern(tail or b"", start=LOW - 64 * MiB, base=LOW - 64 * MiB)
    check("-m %s: memory pattern in the last 64 MiB below 3 GiB: %s" % (mem, detail), ok, detail)
    check("-m %s: the guest's passes stop at 3 GiB (4 GiB and up untouched)" % mem,
          pmem(q, d, HIGH, 64 * MiB)[0] == bytes(64 * MiB))
    q.cmd_ok("cont")
    # The next 'B' ends a pass over 3 GiB: 6 to 12 s on a loaded host.
    check("-m %s: runs again after cont" % mem, miglib.wait_serial_growth(vm.serial_path, PASS_TIMEOUT, 1))
    check("-m %s: no errors on stderr" % mem, not vm.stderr_text(), vm.stderr_text())
    q.cmd_ok("quit")
    check_eq("-m %s: quit exits 0" % mem, vm.wait_exit(20), 0)


def ram_block_list(data):
    """[(name, length)] from the stream's RAM setup section, and its total."""
    m = miglib.StreamMap(data)
    sec = m.section("ram", 1)
    pos = sec["body_off"]
    (word,) = struct.unpack_from(">Q", data, pos)
    total, flags = word & ~0xfff, word & 0xfff
    assert flags & 0x04, "no MEM_SIZE record"
    pos += 8
    blocks, left = [], total
    while left > 0:
        n = data[pos]
        name = data[pos + 1:pos + 1 + n].decode("latin-1")
        (length,) = struct.unpack_from(">Q", data, pos + 1 + n)
        blocks.append((name, length))
        pos += 1 + n + 8
        left -= length
    offsets = [off for (_rec, fl, off) in m.ram_records if fl & (0x02 | 0x08)]
    return blocks, total, offsets


def test_stream_blocks():
    """A 5 GiB guest (no boot disk: all of its RAM is zero pages) to a file."""
    vm = start("5G", drive=False)
    q = vm.qmp()
    d = vm.dir
    path = os.path.join(d, "5g.mig")
    q.cmd_ok("migrate", uri="exec:cat > %s" % path)
    info = miglib.wait_mig_status(q, ("completed", "failed"), 120)
    check_eq("5G to a file: completed", (info or {}).get("status"), "completed")
    with open(path, "rb") as f:
        data = f.read()
    blocks, total, offsets = ram_block_list(data)
    check_eq("stream: block list is one 'pc.ram' of 5 GiB", blocks, [("pc.ram", 5 * GiB)])
    check_eq("stream: announced RAM total", total, 5 * GiB)
    check_eq("stream: every page sent once, by block offset",
             (len(offsets), len(set(offsets)), max(offsets) if offsets else None),
             (5 * GiB // 4096, 5 * GiB // 4096, 5 * GiB - 4096))
    q.cmd_ok("quit")
    vm.wait_exit(10)

    dst = start("5G", drive=False, incoming="exec:cat %s" % path)
    qd = dst.qmp()
    info = miglib.wait_mig_status(qd, ("completed", "failed"), 120)
    check_eq("-m 5G destination loads it", (info or {}).get("status"), "completed")
    data, err = pmem(qd, dst.dir, HIGH + 2 * GiB - MiB, MiB)
    check("-m 5G destination: RAM up to 4 GiB + 2 GiB", data == bytes(MiB), err)
    check("-m 5G destination: no errors on stderr", not dst.stderr_text(), dst.stderr_text())
    dst.kill()

    bad = start("4G", drive=False, incoming="exec:cat %s" % path)
    qb = bad.qmp()
    info = miglib.wait_mig_status(qb, ("completed", "failed"), 60) or {}
    check("-m 4G destination refuses a 5G stream (length mismatch)",
          info.get("status") == "failed" and "Length mismatch: pc.ram" in info.get("error-desc", ""), info)
    bad.kill()


def test_live_migration():
    src = start("4G")
    qs = src.qmp()
    check("4G migration: source guest runs", wait_passes(src, 2), repr(serial(src)[:40]) + src.stderr_text())
    d = new_tmpdir()
    uri = "unix:" + os.path.join(d, "mig.sock")
    dst = start("4G", tmpdir=d, incoming=uri, extra=["-S"])
    qd = dst.qmp()
    check_eq("4G migration: destination waits in inmigrate", miglib.query_status(qd), "inmigrate")
    # First a setting that cannot converge, so that passes run while the
    # guest writes (3 GiB every ~2 s); then one that surely does. migvm's
    # convergence controller would throttle the guest into converging first.
    params = {"max-bandwidth": 512 << 20, "downtime-limit": 1}
    if not migvm.qemu_mode():
        params["x-convergence-controller"] = False
    qs.cmd_ok("migrate-set-parameters", **params)
    before = miglib.serial_size(src.serial_path)
    r = qs.cmd("migrate", uri=uri)
    check("4G migration: accepted", "return" in r, repr(r))
    passes = wait_until(lambda: (miglib.mig_info(qs).get("ram", {}).get("dirty-sync-count", 0) >= 3 and
                                 miglib.serial_size(src.serial_path) >= before + 2), 120, 0.1)
    check("4G migration: several passes while the guest runs", passes, repr(miglib.mig_info(qs)))
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 8 << 30, "downtime-limit": 60000})
    info = miglib.wait_mig_status(qs, ("completed", "failed", "cancelled"), 180)
    check_eq("4G migration: completed", info and info.get("status"), "completed")
    ram = (info or {}).get("ram", {})
    print("    total-time %s ms, downtime %s ms, transferred %s MiB, syncs %s" % (
        (info or {}).get("total-time"), (info or {}).get("downtime"), ram.get("transferred", 0) >> 20,
        ram.get("dirty-sync-count")), flush=True)
    check_eq("4G migration: source is postmigrate", miglib.query_status(qs), "postmigrate")
    check("4G migration: destination paused (-S)", miglib.wait_run_state(qd, "paused", 30), dst.stderr_text())
    for what, addr in (("first 64 MiB", 0), ("last 64 MiB below the hole", LOW - 64 * MiB),
                       ("first 64 MiB above 4 GiB", HIGH), ("last 64 MiB above 4 GiB", 5 * GiB - 64 * MiB)):
        a, err_a = pmem(qs, d, addr, 64 * MiB)
        b, err_b = pmem(qd, d, addr, 64 * MiB)
        bad = [i for i in range(0, len(a or b""), 4096) if b is None or a[i:i + 4096] != b[i:i + 4096]]
        check("4G migration: destination RAM equals the source's (%s)" % what,
              a is not None and a == b, "%s %s; %d pages differ, first at %s" % (
                  err_a, err_b, len(bad), hex(addr + bad[0]) if bad else "-"))
    qd.cmd_ok("cont")
    check("4G migration: guest prints 'B's on the destination",
          miglib.wait_serial_growth(dst.serial_path, 30, 2), repr(serial(dst)) + dst.stderr_text())
    check("4G migration: destination serial has only 'B's", set(serial(dst)) <= {ord("B")}, repr(serial(dst)[:40]))
    qd.cmd_ok("stop")
    dump, _ = pmem(qd, d, LOW - 64 * MiB, 64 * MiB)
    ok, detail = miglib.check_memory_pattern(dump or b"", start=LOW - 64 * MiB, base=LOW - 64 * MiB)
    check("4G migration: destination memory pattern below the hole: %s" % detail, ok, detail)
    qd.cmd_ok("cont")
    check("4G migration: destination keeps running", miglib.wait_serial_growth(dst.serial_path, 30, 1))
    check("4G migration: no errors on stderr", not src.stderr_text() and not dst.stderr_text(),
          src.stderr_text() + dst.stderr_text())
    src.kill()
    dst.kill()


def ring3_high_image():
    """The ring3 image with its workload at 4 GiB (512 MiB of regions)."""
    data = bytearray(open(RING3_IMG, "rb").read())
    if data[512:516] != b"R3CF":
        return None
    struct.pack_into("<II", data, 512 + 8, 4096, 512)        # mem_start_mib, mem_size_mib
    path = os.path.join(new_tmpdir(), "ring3-high.img")
    open(path, "wb").write(bytes(data))
    return path


def ring3_high_migration(omit):
    name = "ring3 above 4 GiB" + (", without %s" % omit if omit else "")
    image = ring3_high_image()
    if not check("%s: the image has a config block" % name, image is not None):
        return
    env = dict(os.environ)
    env.pop("MIGVM_TEST_OMIT_SECTIONS", None)
    if omit:
        env["MIGVM_TEST_OMIT_SECTIONS"] = omit
    vms = []
    d = new_tmpdir()
    uri = "unix:" + os.path.join(d, "mig.sock")
    for incoming, e in ((None, env), (uri, None)):
        vms.append(miglib.start_kvm_guest(image, "5G", incoming=incoming, env=e))
    src, dst = vms
    qs = src.qmp()
    lines = lambda vm: ring3lib.parse(serial(vm))          # noqa: E731
    ok = wait_until(lambda: len(lines(src)[0]) >= 2, 60, interval=0.2)
    other = lines(src)[2]
    if check("%s: the source guest runs" % name, ok, repr(serial(src)[-300:]) + src.stderr_text()):
        check("%s: BOOT sees RAM up to 6 GiB" % name, other and "ram_high_top=0x180000000" in other[0], other[:1])
        check("%s: START puts the regions at 4 GiB" % name,
              len(other) > 1 and "mem_start=0x100000000 mem_end=0x120000000" in other[1], other[1:2])
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 8 << 30, "downtime-limit": 500})
    qs.cmd_ok("migrate", uri=uri)
    info = miglib.wait_mig_status(qs, ("completed", "failed", "cancelled"), 120)
    check_eq("%s: migration completed" % name, info and info.get("status"), "completed")
    before = len(lines(src)[0])
    ok = wait_until(lambda: len(lines(dst)[0]) >= 2 or lines(dst)[1], 40, interval=0.2)
    status, bad, _ = ring3lib.parse(serial(src) + serial(dst))
    if omit:
        high = [b for b in bad if re.search(r" page (0x[0-9a-f]+): generation", b)
                and int(re.search(r" page (0x[0-9a-f]+):", b).group(1), 16) >= HIGH]
        check("%s: the destination guest reports stale pages above 4 GiB" % name, high, bad[:4])
    else:
        check("%s: the destination goes on (%d lines)" % (name, len(status) - before), ok)
        check_eq("%s: no ERROR/FATAL line" % name, bad[:6], [])
        seqs = [s["seq"] for s in status]
        check("%s: seq continues" % name, seqs == list(range(1, len(seqs) + 1)), seqs)
        print("# %s: %d passes (syncs), %s MiB transferred, downtime %s ms" % (
              name, info["ram"].get("dirty-sync-count", 0), info["ram"].get("transferred", 0) >> 20,
              info.get("downtime")) if info else "", flush=True)
    for vm in vms:
        vm.kill()


def main():
    migvm.require_own_kvm(GUEST_IMG, RING3_IMG)
    run("RAM hint below 4 GiB", test_ram_hint)
    run("-m 4G boots", test_boot, "4G")
    run("-m 5G boots", test_boot, "5G")
    run("RAM block list of a 5 GiB stream", test_stream_blocks)
    run("live migration of a 4 GiB guest", test_live_migration)
    run("ring3 workload above 4 GiB migrates", ring3_high_migration, None)
    run("ring3 workload above 4 GiB notices a lost round", ring3_high_migration, "ram/final-pass")
    migvm.finish()


if __name__ == "__main__":
    main()
