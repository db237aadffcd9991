#!/usr/bin/env python3
"""Migrations across a real link that is slow, lossy or cut (tests/functional/
netns.py: two network namespaces and a veth pair; tc tbf, nftables).

* Slow and lossy: a 400 Mbit/s link dropping 2 % of the packets each way;
  a live migration completes and the destination (-S) holds the source's
  RAM byte for byte, with the workload's pattern intact.
* Cut mid-transfer (every packet dropped, no error on either side, only
  silence), with x-dead-link-timeout 3000 ms on both sides: the source
  fails within the bound plus a margin with an error that says the
  connection timed out, and its guest runs on; the destination fails too,
  stays alive and answers QMP, its guest never started. With the timeout
  off (0, QEMU 7.2's behaviour) the source still says "active" well past
  that bound, which is why the bound exists.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import netns  # noqa: E402
from migvm import check, check_eq, finish, free_tcp_port, run, skip_all, wait_until  # noqa: E402
from miglib import (MiB, check_memory_pattern, mig_info, pmemsave, query_status, set_events,  # noqa: E402
                    serial_size, start_vm, wait_mig_status, wait_run_state, wait_serial_growth)
from migvm import qemu_mode  # noqa: E402

MEM_MB = 64
ENDED = ("failed", "cancelled", "completed")
BOUND_MS = 3000

why = netns.available()
if why:
    skip_all(why)
if qemu_mode():
    skip_all("needs migvm's soft accelerator workload")


def pair(link, dirty_rate, timeout_ms=None, paused_dest=False, wait_output=True):
    src = start_vm("%dM" % MEM_MB, dirty_rate=dirty_rate, launch=False)
    link.run_in(src, "a")
    src.launch()
    port = free_tcp_port()
    dst = start_vm("%dM" % MEM_MB, incoming="defer", paused=paused_dest, launch=False)
    link.run_in(dst, "b")
    dst.launch()
    qs, qd = src.qmp(), dst.qmp()
    set_events(qs)
    if timeout_ms is not None:
        for q in (qs, qd):
            q.cmd_ok("migrate-set-parameters", **{"x-dead-link-timeout": timeout_ms})
    qd.cmd_ok("migrate-incoming", uri=link.uri("b", port))
    if wait_output and not wait_until(lambda: serial_size(src.serial_path) >= 2, 10):
        raise RuntimeError("source workload not running")
    return src, qs, dst, qd, link.uri("b", port)


def test_slow_lossy():
    name = "400 Mbit/s, 2 % loss"
    with netns.Link() as link:
        link.shape("a", "400mbit")
        link.lose(2)
        src, qs, dst, qd, uri = pair(link, dirty_rate=16, paused_dest=True)
        qs.cmd_ok("migrate-set-parameters", max_bandwidth=0)
        t0 = time.monotonic()
        qs.cmd_ok("migrate", uri=uri)
        info = wait_mig_status(qs, ENDED, 120) or {}
        took = time.monotonic() - t0
        check_eq("%s: migration completed" % name, info.get("status"), "completed")
        print("# %s: completed in %.1f s, %d packets dropped by the loss rule, %s MB sent"
              % (name, took, link.dropped(), info.get("ram", {}).get("transferred", 0) // 10**6), flush=True)
        check("%s: the loss rule dropped packets" % name, link.dropped() > 0)
        check_eq("%s: destination completed" % name, (wait_mig_status(qd, ENDED, 10) or {}).get("status"),
                 "completed")
        check_eq("%s: destination paused (-S)" % name, query_status(qd), "paused")
        sdump = pmemsave(qs, os.path.join(src.dir, "src.mem"), 0, MEM_MB * MiB)
        ddump = pmemsave(qd, os.path.join(dst.dir, "dst.mem"), 0, MEM_MB * MiB)
        check("%s: RAM byte-identical on both sides" % name, sdump == ddump and len(sdump) == MEM_MB * MiB)
        ok, detail = check_memory_pattern(ddump)
        check("%s: the workload's pattern is consistent" % name, ok, detail)
        src.kill()
        dst.kill()


def start_cut(link, timeout_ms):
    src, qs, dst, qd, uri = pair(link, dirty_rate=50, timeout_ms=timeout_ms)
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=4 * MiB)
    qs.cmd_ok("migrate", uri=uri)
    check("cut (timeout %d ms): some data sent" % timeout_ms,
          wait_until(lambda: mig_info(qs).get("ram", {}).get("transferred", 0) > 2 * MiB, 15), mig_info(qs))
    link.cut()
    return src, qs, dst, qd, time.monotonic()


def test_cut_bounded():
    name = "link cut, x-dead-link-timeout %d ms" % BOUND_MS
    with netns.Link() as link:
        src, qs, dst, qd, t_cut = start_cut(link, BOUND_MS)
        info = wait_mig_status(qs, ENDED, 30) or {}
        took = time.monotonic() - t_cut
        print("# %s: source ended '%s' %.1f s after the cut: %s" % (name, info.get("status"), took,
                                                                   info.get("error-desc")), flush=True)
        check_eq("%s: source failed" % name, info.get("status"), "failed")
        # bound + keepalive probe spacing (1 s) + the monitor's poll: 3 s of slack
        check("%s: within the bound (%.1f s <= %.1f s)" % (name, took, BOUND_MS / 1000 + 3),
              took <= BOUND_MS / 1000 + 3)
        check("%s: the error says the connection timed out" % name,
              "timed out" in (info.get("error-desc") or ""), info.get("error-desc"))
        check("%s: source guest runs on" % name, wait_run_state(qs, "running", 5) and
              wait_serial_growth(src.serial_path, 10))
        dinfo = wait_mig_status(qd, ENDED, 15) or {}
        took = time.monotonic() - t_cut
        print("# %s: destination ended '%s' %.1f s after the cut: %s" % (name, dinfo.get("status"), took,
                                                                        dinfo.get("error-desc")), flush=True)
        check_eq("%s: destination failed" % name, dinfo.get("status"), "failed")
        check("%s: destination within twice the bound" % name, took <= 2 * BOUND_MS / 1000 + 3)
        check_eq("%s: destination alive, guest not started" % name, query_status(qd), "inmigrate")
        src.kill()
        dst.kill()


def test_cut_unbounded():
    name = "link cut, x-dead-link-timeout 0 (QEMU 7.2's behaviour)"
    with netns.Link() as link:
        src, qs, dst, qd, t_cut = start_cut(link, 0)
        wait = BOUND_MS / 1000 + 4
        ended = wait_mig_status(qs, ENDED, wait)
        check("%s: source still active %.0f s after the cut" % (name, wait), ended is None, ended)
        qs.cmd_ok("migrate_cancel")
        check_eq("%s: migrate_cancel ends it" % name, (wait_mig_status(qs, ENDED, 10) or {}).get("status"),
                 "cancelled")
        check("%s: source guest runs on" % name, wait_run_state(qs, "running", 5) and
              wait_serial_growth(src.serial_path, 10))
        src.kill()
        dst.kill()


run("slow lossy link", test_slow_lossy)
run("cut, bounded", test_cut_bounded)
run("cut, unbounded", test_cut_unbounded)
finish()
