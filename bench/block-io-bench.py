#!/usr/bin/python3
"""Does disk I/O hold up the vCPU or the main loop? (run by hand:
`BUILD=build python3 bench/block-io-bench.py [seconds]`; not part of make bench)

The ring-3 guest (KVM) runs its memory workload and, with a virtio-blk disk,
its disk workload (guest/ring3/disk.c: one 64 KiB request at a time, read
before write and read back half a cycle later). Requests go to the block
layer's worker threads (block/aio-pool.c); completions run on the main loop.
For each case, over the same number of seconds:
  * the guest's memory pages per second (its vCPU's pace: a vCPU held up by
    disk I/O would fall behind the run without a disk);
  * the disk's MB/s as the guest counts it (blocks written and verified);
  * QMP query-status round trips sampled every 20 ms while the guest runs:
    median, 99th percentile and worst (a main loop held up by I/O shows here).
Cases: no disk, a 64 MiB disk with cache=writeback, the same with cache=none
(O_DIRECT). Print the load average with the figures: the machine is shared."""

import os
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional"))
import migvm  # noqa: E402
import ring3lib  # noqa: E402
from migvm import VM, new_tmpdir, read_bytes, wait_until  # noqa: E402

DISK = 64 << 20


def one_case(name, cache, seconds):
    d = new_tmpdir()
    boot = os.path.join(d, "boot.img")
    image = bytearray(read_bytes(ring3lib.IMAGE))
    struct.pack_into("<I", image, 512 + 12, 8)      # memory workload over 8 MiB, as test-disk-migration
    with open(boot, "wb") as f:
        f.write(image)
    serial = os.path.join(d, "serial.out")
    args = ["-accel", "kvm", "-m", ring3lib.MEM, "-drive", "file=%s,format=raw" % boot,
            "-serial", "file:" + serial]
    if cache:
        disk = os.path.join(d, "disk.img")
        with open(disk, "wb") as f:
            f.truncate(DISK)
        args += ["-drive", "if=virtio,file=%s,format=raw,id=d0,cache=%s" % (disk, cache)]
    vm = VM(args, tmpdir=d).launch()
    q = vm.qmp()

    def status():
        return ring3lib.parse(read_bytes(serial))[0]
    if not wait_until(lambda: len(status()) >= 2, 60, 0.1):
        vm.kill()
        sys.exit("%s: the guest printed no status lines" % name)
    first = status()[-1]
    rtts = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        q.cmd_ok("query-status")
        rtts.append((time.monotonic() - t0) * 1000)
        time.sleep(0.02)
    last = status()[-1]
    damage = ring3lib.parse(read_bytes(serial))[1]
    vm.kill()
    secs = (last["kvmclock"] - first["kvmclock"]) / 1000 or 1
    rtts.sort()
    disk_mb = ((last.get("disk", 0) - first.get("disk", 0)) + (last.get("disk_verified", 0) -
               first.get("disk_verified", 0))) * 4096 / secs / 1e6
    print("%-22s %9.0f %10.1f %8.2f %8.2f %8.2f %s" % (
        name, (last["pages"] - first["pages"]) / secs, disk_mb, rtts[len(rtts) // 2],
        rtts[int(len(rtts) * 0.99)], rtts[-1],
        "; ".join(d for d in damage if "disk" in d)[:80] or "-"), flush=True)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10
    if migvm.kvm_usable():
        sys.exit("needs /dev/kvm: %s" % migvm.kvm_usable())
    print("# %g s per case, load average %s" % (seconds, open("/proc/loadavg").read().split()[:3]))
    print("%-22s %9s %10s %8s %8s %8s %s" % ("case", "pages/s", "disk MB/s", "qmp p50", "p99", "max ms",
                                             "disk errors"))
    for name, cache in (("no disk", None), ("virtio cache=writeback", "writeback"),
                        ("virtio cache=none", "none")):
        one_case(name, cache, seconds)
    migvm.cleanup()


if __name__ == "__main__":
    main()
