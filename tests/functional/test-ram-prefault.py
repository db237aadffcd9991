#!/usr/bin/env python3
"""A migration destination faults its guest RAM in ahead of the stream.

* -incoming URI: the destination's resident memory grows to the size of its
  guest RAM before any source connects (x-prefault-ram, default true, shown by
  query-migrate-parameters), and a migration into it completes with the
  source's memory.
* -incoming defer with x-prefault-ram false before migrate-incoming: it stays
  small while it listens, and the migration completes all the same.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migvm import check, check_eq, finish, qemu_mode, require_binary, rss_kib, run, skip_all  # noqa: E402
from miglib import mig_status, start_vm, wait_mig_status, wait_until  # noqa: E402

MEM_MIB = 256


def rss_mib(vm):
    kib = rss_kib(vm.pid)
    return (kib or 0) / 1024


def migrate_into(dst, sock, name):
    src = start_vm(mem="%dM" % MEM_MIB, dirty_rate=8)
    q = src.qmp()
    q.cmd_ok("migrate-set-parameters", {"max-bandwidth": 0})
    q.cmd_ok("migrate", {"uri": "unix:" + sock})
    info = wait_mig_status(q, ("completed", "failed"), timeout=60) or {}
    check_eq(name + ": source completed", info.get("status"), "completed")
    dq = dst.qmp()
    check(name + ": destination completed",
          wait_until(lambda: mig_status(dq) == "completed", timeout=30), mig_status(dq))
    src.kill()


def test_prefault_on():
    sock = os.path.join(os.environ.get("TMPDIR", "/tmp"), "prefault-%d.sock" % os.getpid())
    dst = start_vm(mem="%dM" % MEM_MIB, incoming="unix:" + sock)
    q = dst.qmp()
    check_eq("x-prefault-ram defaults to true",
             q.cmd_ok("query-migrate-parameters").get("x-prefault-ram"), True)
    check("resident memory reaches the guest RAM size before any stream",
          wait_until(lambda: rss_mib(dst) >= MEM_MIB * 0.9, timeout=60), "%.0f MiB" % rss_mib(dst))
    migrate_into(dst, sock, "pre-faulted")
    dst.kill()


def test_prefault_off():
    sock = os.path.join(os.environ.get("TMPDIR", "/tmp"), "noprefault-%d.sock" % os.getpid())
    dst = start_vm(mem="%dM" % MEM_MIB, incoming="defer")
    q = dst.qmp()
    q.cmd_ok("migrate-set-parameters", {"x-prefault-ram": False})
    q.cmd_ok("migrate-incoming", {"uri": "unix:" + sock})
    # The pre-faulted case reaches the size within about a second here:
    # waiting 3 s for it must fail.
    grew = wait_until(lambda: rss_mib(dst) >= MEM_MIB * 0.5, timeout=3)
    check("x-prefault-ram false: resident memory stays small while listening", not grew,
          "%.0f MiB" % rss_mib(dst))
    migrate_into(dst, sock, "not pre-faulted")
    dst.kill()


def main():
    require_binary()
    if qemu_mode():
        skip_all("x-prefault-ram is migvm's own")
    run("prefault on", test_prefault_on)
    run("prefault off", test_prefault_off)
    finish()


if __name__ == "__main__":
    main()
