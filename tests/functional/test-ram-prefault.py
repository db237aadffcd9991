#!/usr/bin/env python3
"""A migration destination faults its guest RAM in a window ahead of the data,
and never allocates what arrives as zero pages.

* x-prefault-ram defaults to true (query-migrate-parameters). A destination
  listening with -incoming URI stays small while no source is connected, and
  an idle source (-S, RAM never touched: every page a zero page) migrates in
  without its memory growing: zero pages are neither pre-faulted nor written.
* A source whose RAM is full of data (the soft workload's full pass, then
  stop) migrates in with pre-faulting on and with it off: the destination's
  memory is the source's, byte for byte.
* -mem-prealloc (QEMU 7.2's option): the process owns all of its RAM before
  its monitor answers, without it a paused guest owns almost none; a full
  guest and an idle one migrate into such a destination byte for byte.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migvm import check, check_eq, finish, new_tmpdir, qemu_mode, require_binary, rss_kib, run, skip_all  # noqa: E402
from miglib import mig_status, pmemsave, start_vm, wait_mig_status, wait_until  # noqa: E402

MEM_MIB = 256


def rss_mib(vm):
    kib = rss_kib(vm.pid)
    return (kib or 0) / 1024


def migrate_into(src, dst, sock, name):
    q = src.qmp()
    q.cmd_ok("migrate-set-parameters", {"max-bandwidth": 0})
    q.cmd_ok("migrate", {"uri": "unix:" + sock})
    info = wait_mig_status(q, ("completed", "failed"), timeout=90) or {}
    check_eq(name + ": source completed", info.get("status"), "completed")
    dq = dst.qmp()
    check(name + ": destination completed",
          wait_until(lambda: mig_status(dq) == "completed", timeout=30), mig_status(dq))


def test_idle_stays_unallocated():
    sock = os.path.join(new_tmpdir(), "mig.sock")
    dst = start_vm(mem="%dM" % MEM_MIB, incoming="unix:" + sock, paused=True)
    q = dst.qmp()
    check_eq("x-prefault-ram defaults to true",
             q.cmd_ok("query-migrate-parameters").get("x-prefault-ram"), True)
    # Before this window existed the workers faulted all of it in within
    # about a second of listening: waiting 2 s for a quarter must fail.
    grew = wait_until(lambda: rss_mib(dst) >= MEM_MIB / 4, timeout=2)
    check("listening without a source: resident memory stays small", not grew, "%.0f MiB" % rss_mib(dst))
    src = start_vm(mem="%dM" % MEM_MIB, paused=True)
    migrate_into(src, dst, sock, "idle source")
    check("an idle guest's zero pages: the destination stays below a quarter of its RAM",
          rss_mib(dst) < MEM_MIB / 4, "%.0f MiB of %d" % (rss_mib(dst), MEM_MIB))
    src.kill()
    dst.kill()


def full_source():
    src = start_vm(mem="%dM" % MEM_MIB, dirty_rate=0)
    check("the source's workload made a full pass",
          wait_until(lambda: b"B" in open(src.serial_path, "rb").read(), timeout=60))
    src.qmp().cmd_ok("stop")
    return src


def test_full_guest(prefault, prealloc=False, source=full_source):
    name = "pre-faulting %s" % ("on" if prefault else "off")
    if prealloc:
        name = "-mem-prealloc destination, %s source" % ("full" if source == full_source else "idle")
    d = new_tmpdir()
    sock = os.path.join(d, "mig.sock")
    src = source()
    dst = start_vm(mem="%dM" % MEM_MIB, incoming="defer", paused=True,
                   extra=["-mem-prealloc"] if prealloc else [])
    dq = dst.qmp()
    if prealloc:
        check(name + ": all RAM resident before the migration", rss_mib(dst) >= MEM_MIB,
              "%.0f MiB of %d" % (rss_mib(dst), MEM_MIB))
    dq.cmd_ok("migrate-set-parameters", {"x-prefault-ram": prefault})
    dq.cmd_ok("migrate-incoming", {"uri": "unix:" + sock})
    migrate_into(src, dst, sock, name)
    size = MEM_MIB << 20
    same = pmemsave(src.qmp(), os.path.join(d, "src.bin"), 0, size) == \
        pmemsave(dq, os.path.join(d, "dst.bin"), 0, size)
    check(name + ": the destination's memory is the source's", same)
    src.kill()
    dst.kill()


def idle_source():
    return start_vm(mem="%dM" % MEM_MIB, paused=True)


def test_prealloc_resident():
    plain = start_vm(mem="%dM" % MEM_MIB, paused=True)
    check("without -mem-prealloc a paused guest owns little of its RAM", rss_mib(plain) < MEM_MIB / 4,
          "%.0f MiB of %d" % (rss_mib(plain), MEM_MIB))
    plain.kill()
    full = start_vm(mem="%dM" % MEM_MIB, paused=True, extra=["-mem-prealloc", "-smp", "2"])
    check("-mem-prealloc: all RAM resident when the monitor answers", rss_mib(full) >= MEM_MIB,
          "%.0f MiB of %d" % (rss_mib(full), MEM_MIB))
    full.kill()


def main():
    require_binary()
    if qemu_mode():
        skip_all("x-prefault-ram is migvm's own")
    run("idle guest: nothing allocated", test_idle_stays_unallocated)
    run("full guest, pre-faulting on", lambda: test_full_guest(True))
    run("full guest, pre-faulting off", lambda: test_full_guest(False))
    run("-mem-prealloc", test_prealloc_resident)
    run("full guest into a -mem-prealloc destination", lambda: test_full_guest(True, prealloc=True))
    run("idle guest into a -mem-prealloc destination",
        lambda: test_full_guest(True, prealloc=True, source=idle_source))
    finish()


if __name__ == "__main__":
    main()
