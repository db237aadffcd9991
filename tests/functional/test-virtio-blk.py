#!/usr/bin/python3
"""The virtio-blk device on the pc board's virtio-mmio slots.

With KVM and build/guest/virtio-blk-check.img (a boot sector that drives the
device by polling: negotiates VERSION_1, sets up a queue, writes a pattern to
sector 100, reads it back, checks the interrupt status register and that
IRQ 10 reached the PIC; prints "VBLK OK"):
  - booted from its own image as `-drive if=virtio`, it prints VBLK OK and the
    pattern is in the image file; query-block names the device as QEMU does;
    booted from an if=ide image, it finds a -device virtio-blk-device disk;
  - the guest then loops over the same round trip, printing a '.' every 64:
    after a live migration to a second migvm on the same image the dots go
    on at the destination (its device state arrived: without it the device
    is in reset and the guest waits forever), and after a system_reset there
    the device works from scratch again (VBLK OK);
  - with werror=stop and a write that fails (EFBIG: the process may not grow
    the image), the VM stops in io-error holding the request; migrated in
    that state, the destination's `cont` submits it again and the guest
    completes (VBLK OK).
Without KVM (soft accelerator): -device virtio-blk-device,drive=,id= is
accepted, and what is refused says why: virtio-blk-pci (no PCI bus), an
unknown or missing drive, an unknown property, a drive taken twice, the
none board, a fifth disk.

The KVM part skips when /dev/kvm cannot be used."""

import os
import resource
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
import miglib  # noqa: E402
from migvm import check, check_eq, new_tmpdir, run, wait_until  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
CHECK_IMG = os.path.abspath(os.path.join(BUILD, "guest", "virtio-blk-check.img"))
MEM = "64M"
SECTOR = 100
PATTERN = bytes((3 * i + 0x11) & 0xFF for i in range(512))


def make_disk(d, name="disk.img", size=64 * 1024, boot=True):
    path = os.path.join(d, name)
    with open(path, "wb") as f:
        if boot:
            with open(CHECK_IMG, "rb") as g:
                f.write(g.read())
        f.truncate(size)
    return path


def serial(vm):
    return miglib.serial_text(vm.serial_path)


def wait_ok(vm, timeout=60.0):
    return wait_until(lambda: b"VBLK OK" in serial(vm) or b"VBLK FAIL" in serial(vm), timeout, interval=0.1) \
        and b"VBLK OK" in serial(vm)


def sector(path, n):
    with open(path, "rb") as f:
        f.seek(n * 512)
        return f.read(512)


def block_entry(q, device):
    for b in q.cmd_ok("query-block"):
        if b.get("device") == device:
            return b
    return None


# ---------------------------------------------------------------------------

def test_guest_round_trip():
    d = new_tmpdir()
    disk = make_disk(d)
    drive = ["-drive", "file=%s,format=raw,if=virtio" % disk]
    src = miglib.start_kvm_guest(None, MEM, extra=drive, tmpdir=d)
    q = src.qmp()
    ok = wait_ok(src)
    check("guest drives the device: VBLK OK", ok, repr(serial(src)) + src.stderr_text())
    check("the pattern the guest wrote is in the image", sector(disk, SECTOR) == PATTERN,
          sector(disk, SECTOR)[:32].hex())
    b = block_entry(q, "virtio0")
    check("query-block lists virtio0", b is not None, q.cmd_ok("query-block"))
    if b:
        check_eq("its qdev is the anonymous device's path", b.get("qdev"), "/machine/peripheral-anon/device[0]")
    if not ok:
        return

    # Live migration to a second migvm on the same image, then a reset there:
    # the device state loads and the device works again from scratch.
    dst, qd, info = migrate_to_new_guest(q, drive)
    check("migration completes", info and info.get("status") == "completed", info)
    check("destination runs", miglib.wait_run_state(qd, "running"), miglib.query_status(qd))
    check("the destination guest goes on with its I/O (dots)",
          wait_until(lambda: serial(dst).count(b".") >= 3, 30.0, interval=0.1),
          repr(serial(dst)[-200:]) + dst.stderr_text())
    qd.cmd_ok("system_reset")
    ok = wait_ok(dst)
    check("after migration and reset the destination's device works", ok, repr(serial(dst)) + dst.stderr_text())
    check("the image still holds the pattern", sector(disk, SECTOR) == PATTERN)


def migrate_to_new_guest(q, drive):
    """Migrate q's VM to a new KVM guest on the same drive arguments over
    unix: (dst, its QMP, the source's final query-migrate or None)."""
    dd = new_tmpdir()
    sock = os.path.join(dd, "mig.sock")
    dst = miglib.start_kvm_guest(None, MEM, extra=drive, incoming="unix:" + sock, tmpdir=dd)
    qd = dst.qmp()
    q.cmd_ok("migrate", uri="unix:" + sock)
    return dst, qd, miglib.wait_mig_status(q, ("completed", "failed"))


def test_device_option_guest():
    """The guest boots from an if=ide image and finds, in slot 0, the disk
    given with -drive if=none + -device virtio-blk-device."""
    d = new_tmpdir()
    boot = make_disk(d, "boot.img")
    data = make_disk(d, "data.img", boot=False)
    extra = ["-drive", "file=%s,format=raw,if=ide" % boot,
             "-drive", "file=%s,format=raw,if=none,id=d0" % data,
             "-device", "virtio-blk-device,drive=d0,id=vd0"]
    vm = miglib.start_kvm_guest(None, MEM, extra=extra, tmpdir=d)
    q = vm.qmp()
    check("-device virtio-blk-device: the guest drives it (VBLK OK)", wait_ok(vm), repr(serial(vm)) + vm.stderr_text())
    check("the pattern is in the -device disk's image", sector(data, SECTOR) == PATTERN)
    check("the boot image is untouched", sector(boot, SECTOR) == bytes(512))
    b = block_entry(q, "d0")
    check_eq("query-block: d0 attached to vd0", b and b.get("qdev"), "vd0")


def file_size_limit(limit):
    """preexec_fn: writes past `limit` bytes fail with EFBIG (SIGXFSZ ignored)."""
    def set_limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return set_limit


def test_error_stop_and_retry():
    """werror=stop: the guest's write fails (the process may not grow the
    file past 32 KiB), the VM stops in io-error with the request held; it is
    carried by a migration to a second migvm, whose `cont` submits it again:
    the guest completes its round trip there."""
    d = new_tmpdir()
    disk = make_disk(d)
    drive = ["-drive", "file=%s,format=raw,if=virtio,werror=stop" % disk]
    src = migvm.VM(["-accel", "kvm", "-m", MEM, "-serial", "file:" + os.path.join(d, "serial.out")] + drive,
                   tmpdir=d, preexec_fn=file_size_limit(32 * 1024)).launch()
    src.serial_path = os.path.join(d, "serial.out")
    q = src.qmp()
    # (The BLOCK_IO_ERROR event may come before QMP is connected: not waited for.)
    stopped = miglib.wait_run_state(q, "io-error", timeout=30.0)
    check("the write fails and the VM stops in io-error", stopped, miglib.query_status(q))
    b = block_entry(q, "virtio0")
    check_eq("query-block: io-status failed", b and b.get("io-status"), "failed")
    check("the guest has not completed its round trip", b"VBLK" not in serial(src), serial(src))
    if not stopped:
        return

    dst, qd, info = migrate_to_new_guest(q, drive)
    check("the stopped VM migrates", info and info.get("status") == "completed", info)
    check("the destination stays stopped",
          wait_until(lambda: miglib.query_status(qd) not in ("inmigrate",), 10.0) and
          miglib.query_status(qd) != "running", miglib.query_status(qd))
    qd.cmd_ok("cont")
    check("after cont the held write is done again and the guest goes on: VBLK OK", wait_ok(dst),
          repr(serial(dst)) + dst.stderr_text())
    check("the pattern is in the image", sector(disk, SECTOR) == PATTERN)


def refused(name, args, text):
    rc, out, err = migvm.run_migvm(["-accel", "soft", "-m", "16M"] + args)
    check(name, rc not in (0, None) and text in err, "rc=%r stderr=%r" % (rc, err))


def test_command_line():
    d = new_tmpdir()
    disk = make_disk(d, boot=False)
    none = "file=%s,format=raw,if=none,id=d0" % disk
    vm = migvm.VM(["-accel", "soft", "-m", "16M", "-drive", none,
                   "-device", "virtio-blk-device,drive=d0,id=vd0"]).launch()
    q = vm.qmp()
    b = block_entry(q, "d0")
    check_eq("-device virtio-blk-device,drive=d0,id=vd0: qdev is the id", b and b.get("qdev"), "vd0")
    vm.kill()

    refused("virtio-blk-pci says there is no PCI bus and what to use",
            ["-drive", none, "-device", "virtio-blk-pci,drive=d0"],
            "'virtio-blk-pci' needs a PCI bus, which migvm's pc board does not have; "
            "use virtio-blk-device (virtio-mmio) instead")
    refused("QEMU's x86 alias virtio-blk too", ["-drive", none, "-device", "virtio-blk,drive=d0"],
            "'virtio-blk' needs a PCI bus")
    refused("an unknown drive", ["-drive", none, "-device", "virtio-blk-device,drive=nope"],
            "Property 'virtio-blk-device.drive' can't find value 'nope'")
    refused("no drive", ["-device", "virtio-blk-device"], "drive property not set")
    refused("an unknown property", ["-drive", none, "-device", "virtio-blk-device,drive=d0,foo=1"],
            "Property 'virtio-blk-device.foo' not found")
    refused("a drive taken twice", ["-drive", none, "-device", "virtio-blk-device,drive=d0",
                                    "-device", "virtio-blk-device,drive=d0"],
            "Drive 'd0' is already in use by another device")
    refused("the none board has no virtio bus", ["-M", "none", "-drive", none.replace("if=none", "if=virtio")],
            "No 'virtio-bus' bus found for device 'virtio-blk-device'")
    five = []
    for i in range(5):
        five += ["-drive", "file=%s,format=raw,if=virtio,id=v%d" % (make_disk(d, "d%d.img" % i, boot=False), i)]
    refused("a fifth disk finds no slot", five, "no free virtio-mmio slot: the pc board has 4")


def main():
    migvm.require_binary()
    if migvm.qemu_mode():
        migvm.skip_all("tests migvm's own board")
    if not os.path.isfile(CHECK_IMG):
        migvm.fail_all("%s is built (make builds it)" % CHECK_IMG)
    run("command line", test_command_line)
    why = migvm.kvm_usable()
    if why:
        migvm.skip("guest round trip", "KVM not usable (%s)" % why)
    else:
        run("guest round trip", test_guest_round_trip)
        run("-device guest", test_device_option_guest)
        run("error stop and retry", test_error_stop_and_retry)
    migvm.finish()


if __name__ == "__main__":
    main()
