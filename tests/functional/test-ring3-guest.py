#!/usr/bin/python3
"""The ring3 guest (build/guest/ring3-guest.img) under migvm's KVM
accelerator. Its serial protocol is documented at the top of
guest/ring3/user.c: a BOOT line, a START line, then one status line per
second

    seq=<n> pit=<n> lapic=<n> sirq=<n> pages=<n> verified=<n> errors=<n> kvmclock=<ms>

followed by "ERROR: ..." lines for anything it found wrong.

  * boot: with the default machine (in-kernel irqchip), for ~10 s with a 3 s
    stop/cont in the middle (silent while stopped): status lines arrive with
    seq 1, 2, 3, ...; the PIT and LAPIC tick counts, the serial interrupt
    count and the pages written all increase; errors=0 and no ERROR line.
  * no-irqchip: with `kernel-irqchip=off` nothing interrupts the guest; it
    must still print (polled) lines with increasing seq, each flagged
    "ERROR: no timer ticks", instead of going silent.
  * migration: a live migration over a unix socket while the guest dirties
    its 64 MiB; the source's serial output followed by the destination's is
    one clean stream: seq without a gap or repeat, ticks and pages never
    going back, still increasing on the destination, errors=0.

Skips when /dev/kvm cannot be used; a refused kernel-irqchip=off or a
refused migration fails."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
from migvm import read_bytes  # noqa: E402
from ring3lib import IMAGE, MEM, parse  # noqa: E402
from migvm import VM, check, check_eq, new_tmpdir, run, wait_until  # noqa: E402



def start(accel="kvm", extra=(), tmpdir=None, serial_name="serial.out"):
    d = tmpdir or new_tmpdir()
    serial = os.path.join(d, serial_name)
    vm = VM(["-accel", accel, "-m", MEM, "-drive", "file=%s,format=raw" % IMAGE,
             "-serial", "file:" + serial] + list(extra), tmpdir=d)
    vm.serial_path = serial
    return vm.launch()


def wait_status(vm, n, timeout):
    """Status lines once at least n arrived (or the process died), else None."""
    def enough():
        if not vm.alive():
            return True
        status = parse(read_bytes(vm.serial_path))[0]
        return status if len(status) >= n else None
    got = wait_until(enough, timeout, interval=0.2)
    return got if isinstance(got, list) else None


def increasing(status, key):
    return all(b[key] > a[key] for a, b in zip(status, status[1:]))


def non_decreasing(status, key):
    return all(b[key] >= a[key] for a, b in zip(status, status[1:]))


def consecutive_seq(status, first=1):
    return [s["seq"] for s in status] == list(range(first, first + len(status)))


def test_boot():
    vm = start()
    status = wait_status(vm, 5, 40.0)
    if not check("boot: five status lines within 40 s", status is not None,
                 "alive=%s serial=%r stderr=%s" % (vm.alive(), read_bytes(vm.serial_path)[-600:],
                                                   vm.stderr_text()[-600:])):
        vm.kill()
        return
    # A pause: nothing printed while stopped, no error for it afterwards.
    q = vm.qmp()
    q.cmd_ok("stop")
    size = len(read_bytes(vm.serial_path))
    quiet = wait_until(lambda: len(read_bytes(vm.serial_path)) != size, 3.0, interval=0.2) is None
    check("boot: silent while stopped", quiet)
    q.cmd_ok("cont")
    status = wait_status(vm, len(parse(read_bytes(vm.serial_path))[0]) + 5, 30.0)
    text = read_bytes(vm.serial_path)
    if not check("boot: five more status lines after cont", status is not None, text[-600:]):
        vm.kill()
        return
    status, errors, other = parse(text)
    check("boot: BOOT line says migvm loaded the whole image",
          other and other[0].startswith("BOOT ring3-guest v1 loader=migvm"), other[:2])
    check("boot: START line", len(other) > 1 and other[1].startswith("START regions=64 "), other[:2])
    check("boot: seq is 1, 2, 3, ...", consecutive_seq(status), [s["seq"] for s in status])
    check("boot: BOOT line: AVX, kvmclock and every state canary armed",
          other and "avx=1 kvmclock=1 state_mask=0x100fff" in other[0], other[:1])
    for key in ("pit", "lapic", "sirq", "pages", "verified", "kvmclock"):
        check("boot: %s increases every line" % key, increasing(status, key), [s[key] for s in status])
    # 100 PIT ticks per line by design; the LAPIC timer runs at the same rate.
    check("boot: pit advances 100 per line", all(b["pit"] - a["pit"] >= 100 for a, b in zip(status, status[1:])),
          [s["pit"] for s in status])
    check_eq("boot: errors", status[-1]["errors"], 0)
    check_eq("boot: ERROR lines", errors, [])
    vm.kill()


def test_no_irqchip():
    vm = start(accel="kvm,kernel-irqchip=off")
    status = wait_status(vm, 3, 30.0)
    text = read_bytes(vm.serial_path)
    if not check("no-irqchip: three status lines within 30 s without interrupts", status is not None,
                 "serial=%r stderr=%s" % (text[-600:], vm.stderr_text()[-600:])):
        vm.kill()
        return
    status, errors, _ = parse(text)
    check("no-irqchip: seq is 1, 2, 3, ...", consecutive_seq(status), [s["seq"] for s in status])
    check("no-irqchip: no ticks", all(s["pit"] == 0 and s["lapic"] == 0 for s in status), status)
    check("no-irqchip: pages increase", increasing(status, "pages"), [s["pages"] for s in status])
    check("no-irqchip: every line flagged 'no timer ticks'",
          sum(1 for e in errors if e.startswith("ERROR: no timer ticks")) >= len(status), errors[:6])
    check("no-irqchip: errors counted", status[-1]["errors"] >= len(status), status[-1])
    vm.kill()


def test_migration():
    d = new_tmpdir()
    sock = os.path.join(d, "mig.sock")
    src = start(tmpdir=d, serial_name="src.serial")
    if not check("migration: source runs (3 lines)", wait_status(src, 3, 40.0) is not None,
                 read_bytes(src.serial_path)[-400:]):
        src.kill()
        return
    dst = start(tmpdir=new_tmpdir(), extra=["-incoming", "unix:" + sock], serial_name="dst.serial")
    wait_until(lambda: os.path.exists(sock), 10.0)
    q = src.qmp()
    # The guest rewrites its 64 MiB every ~50 ms: let the last pass take up
    # to 2 s, at full local speed.
    q.cmd_ok("migrate-set-parameters", {"max-bandwidth": 8 << 30, "downtime-limit": 2000})
    resp = q.cmd("migrate", {"uri": "unix:" + sock})
    if not check("migration: migrate accepted", "return" in resp, resp):
        return

    def done():
        r = q.cmd("query-migrate").get("return", {})
        return r if r.get("status") in ("completed", "failed", "cancelled") else None
    info = wait_until(done, 60.0, interval=0.2)
    if not check("migration: completed", info and info.get("status") == "completed", info):
        src.kill()
        dst.kill()
        return
    before = parse(read_bytes(src.serial_path))[0]
    # Three more lines on the destination.
    def dst_lines():
        status = parse(read_bytes(src.serial_path) + read_bytes(dst.serial_path))[0]
        return status if len(status) >= len(before) + 3 else None
    status = wait_until(dst_lines, 20.0, interval=0.2)
    stream = read_bytes(src.serial_path) + read_bytes(dst.serial_path)
    if not check("migration: the guest goes on printing on the destination", status is not None,
                 "dst serial=%r dst stderr=%s" % (read_bytes(dst.serial_path)[-400:], dst.stderr_text()[-400:])):
        src.kill()
        dst.kill()
        return
    status, errors, _ = parse(stream)
    check("migration: seq has no gap or repeat across the migration", consecutive_seq(status),
          [s["seq"] for s in status])
    for key in ("pit", "lapic", "sirq", "pages", "verified", "kvmclock"):
        check("migration: %s never goes back" % key, non_decreasing(status, key), [s[key] for s in status])
    after = status[len(before):]
    for key in ("pit", "lapic", "pages", "kvmclock"):
        check("migration: %s still increases on the destination" % key,
              len(after) >= 2 and increasing(after, key), [s[key] for s in after])
    check_eq("migration: errors", status[-1]["errors"], 0)
    check_eq("migration: ERROR lines", errors, [])
    src.kill()
    dst.kill()


def main():
    migvm.require_own_kvm(IMAGE)
    run("boot", test_boot)
    run("no-irqchip", test_no_irqchip)
    run("migration", test_migration)
    migvm.finish()


if __name__ == "__main__":
    main()
