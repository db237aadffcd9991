#!/usr/bin/env python3
"""Bandwidth, downtime and switch-over control of a live migration.

* non-convergence: an unthrottled workload (dirties ~100+ MiB/s; 12 MiB/s
  against 8 MiB/s under ThreadSanitizer, see LIMIT) under a
  32 MiB/s max-bandwidth never completes: status stays active for several
  seconds, dirty-sync-count keeps rising, expected-downtime exceeds
  downtime-limit, the wire rate follows max-bandwidth; the active
  query-migrate has the 7.2 member set.  Raising max-bandwidth to 0
  (unlimited) on the running migration lets it complete.
* the same, unblocked by raising downtime-limit instead.
* parameter range errors (downtime-limit, max-bandwidth), and that a failed
  migrate-set-parameters changes nothing.
* "There's a migration process in progress" for migrate-set-capabilities and
  migrate while a migration runs.
* pause-before-switchover: status pre-switchover with the guest stopped,
  migrate-continue in a wrong state, then migrate-continue pre-switchover →
  completed; migrate_cancel in pre-switchover restarts the source.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migvm import check, check_eq, finish, qemu_mode, require_binary, run, skip_all, tsan_build  # noqa: E402
from miglib import (MiB, collect_events, error_of, event_names, expect_qmp_error, mig_info,  # noqa: E402
                    query_status, serial_size, set_caps, set_events, start_vm, wait_mig_status,
                    wait_run_state, wait_serial_growth, wait_until)

MEM = "64M"
# The premise: the guest dirties RAM faster than max-bandwidth and slower
# than an unlimited migration sends it. Under ThreadSanitizer the migration
# sends at 20-70 MiB/s (measured) while the soft guest's stores run at full
# speed (GUEST_RAM_ACCESS in memory.h), so there the guest is throttled to
# 12 MiB/s and the limit is 8 MiB/s.
TSAN = tsan_build()
LIMIT = (8 if TSAN else 32) * MiB
GUEST_RATE = 12 if TSAN else None
ACTIVE_KEYS = {"status", "setup-time", "total-time", "expected-downtime", "ram"}


def pair(dirty_rate=GUEST_RATE, dest_paused=False):
    src = start_vm(MEM, dirty_rate=dirty_rate)
    dst = start_vm(MEM, dirty_rate=dirty_rate, incoming="tcp:127.0.0.1:0", paused=dest_paused)
    qs, qd = src.qmp(), dst.qmp()
    set_events(qs)
    set_events(qd)
    port = mig_info(qd)["socket-address"][0]["port"]
    if not wait_until(lambda: serial_size(src.serial_path) >= 2, 10):
        raise RuntimeError("source workload not running")
    return src, dst, qs, qd, "tcp:127.0.0.1:%s" % port


def observe_not_converging(name, qs):
    """Watch a bandwidth-starved migration: it must stay active while passes go by."""
    info = wait_mig_status(qs, ("active", "completed", "failed"), 10)
    if not check_eq("%s: active" % name, (info or {}).get("status"), "active"):
        return False
    check_eq("%s: active query-migrate members" % name, set(info.keys()), ACTIVE_KEYS)
    first_sync = info["ram"]["dirty-sync-count"]
    t0 = time.monotonic()
    samples = []

    def enough_passes():
        i = mig_info(qs)
        samples.append((time.monotonic(), i))
        if i.get("status") != "active":
            return i
        return i if i["ram"]["dirty-sync-count"] >= first_sync + 2 and time.monotonic() - t0 >= 3 else None
    last = wait_until(enough_passes, 25, interval=0.1)
    if not check("%s: dirty-sync-count keeps increasing (%d -> %s)" % (
            name, first_sync, last and last.get("ram", {}).get("dirty-sync-count")),
            last is not None and last.get("status") == "active", last):
        return False
    observed = time.monotonic() - t0
    check("%s: still active after %.1f s" % (name, observed), all(s[1].get("status") == "active" for s in samples),
          [s[1].get("status") for s in samples])
    ram = last["ram"]
    # expected-downtime falls during a pass and jumps up at each sync: look at all samples.
    eds = [s[1].get("expected-downtime", 0) for s in samples if s[1].get("status") == "active"]
    check("%s: expected-downtime (%d..%d ms) > downtime-limit 300 ms" % (name, min(eds), max(eds)),
          max(eds) > 300 and min(eds) > 0.8 * 300, eds)
    check("%s: remaining > 0 while active" % name, ram.get("remaining", 0) > 0, ram)
    check("%s: dirty-pages-rate reported" % name, ram.get("dirty-pages-rate", 0) > 0, ram)
    # Wire rate over the observation window follows max-bandwidth.
    (ta, ia), (tb, ib) = samples[len(samples) // 3], samples[-1]
    rate = (ib["ram"]["transferred"] - ia["ram"]["transferred"]) / (tb - ta)
    print("#   %s: %.1f s observed, %d passes, wire rate %.1f MiB/s (limit %d), mbps %.1f, expected-downtime %d ms"
          % (name, observed, ram["dirty-sync-count"] - first_sync, rate / MiB, LIMIT // MiB, ram.get("mbps", 0),
             last["expected-downtime"]), flush=True)
    check("%s: transfer rate within 50%%..120%% of max-bandwidth (%.1f MiB/s)" % (name, rate / MiB),
          0.5 * LIMIT <= rate <= 1.2 * LIMIT, rate)
    check("%s: mbps near max-bandwidth" % name, 0.5 * LIMIT * 8 / 1e6 <= ram.get("mbps", 0) <= 1.3 * LIMIT * 8 / 1e6,
          ram.get("mbps"))
    return True


def start_starved(name):
    """A pair migrating at LIMIT, seen not to converge: (src, dst, qs, qd, uri),
    or None if it did not stay active."""
    src, dst, qs, qd, uri = pair()
    # QEMU 7.2's behaviour: migvm's convergence controller would throttle
    # the guest until the migration completes (test-converge.py).
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": LIMIT, "x-convergence-controller": False})
    qs.cmd_ok("migrate", uri=uri)
    if not observe_not_converging(name, qs):
        return None
    return src, dst, qs, qd, uri


def completes_after_raise(name, qs, qd, dst, t0):
    """After a raise at t0: the migration completes and the destination runs
    the guest.  Returns query-migrate's answer if it completed, else None."""
    info = wait_mig_status(qs, ("completed", "failed", "cancelled"), 20)
    check_eq("%s: completes after the raise" % name, (info or {}).get("status"), "completed")
    if not info or info.get("status") != "completed":
        return None
    print("#   %s: completed %.2f s after the raise; downtime %d ms, total-time %d ms, syncs %d"
          % (name, time.monotonic() - t0, info["downtime"], info["total-time"], info["ram"]["dirty-sync-count"]))
    check("%s: dest completed and running" % name,
          wait_mig_status(qd, "completed", 10) is not None and wait_run_state(qd, "running", 5))
    check("%s: destination guest works" % name, wait_serial_growth(dst.serial_path, 10))
    return info


def test_raise_bandwidth():
    name = "raise max-bandwidth"
    started = start_starved(name)
    if not started:
        return
    src, dst, qs, qd, uri = started
    # While it runs: capability changes and a second migrate are refused.
    expect_qmp_error("%s: migrate-set-capabilities during migration" % name,
                     qs.cmd("migrate-set-capabilities", capabilities=[{"capability": "xbzrle", "state": True}]),
                     "There's a migration process in progress")
    expect_qmp_error("%s: migrate during migration" % name, qs.cmd("migrate", uri=uri),
                     "There's a migration process in progress")
    check_eq("%s: source guest still running" % name, query_status(qs), "running")
    check("%s: source serial grows during migration" % name, wait_serial_growth(src.serial_path, 10))
    t0 = time.monotonic()
    check_eq("%s: migrate-set-parameters max-bandwidth 0 while active" % name,
             qs.cmd("migrate-set-parameters", max_bandwidth=0), {"return": {}})
    if completes_after_raise(name, qs, qd, dst, t0):
        check_eq("%s: source postmigrate" % name, query_status(qs), "postmigrate")
        names = event_names(collect_events(qs, "completed", 2))
        mig = [n for n in names if n.startswith("MIGRATION:")]
        check_eq("%s: source MIGRATION events" % name, mig,
                 ["MIGRATION:setup", "MIGRATION:active", "MIGRATION:completed"])


def test_raise_downtime():
    name = "raise downtime-limit"
    started = start_starved(name)
    if not started:
        return
    src, dst, qs, qd, uri = started
    t0 = time.monotonic()
    check_eq("%s: migrate-set-parameters downtime-limit 2000000 while active" % name,
             qs.cmd("migrate-set-parameters", downtime_limit=2000000), {"return": {}})
    completes_after_raise(name, qs, qd, dst, t0)


def test_parameter_errors():
    vm = start_vm("64M", dirty_rate=1, serial=False)
    q = vm.qmp()
    before = q.cmd_ok("query-migrate-parameters")
    cases = [
        ({"downtime-limit": 2000001}, "Parameter 'downtime_limit' expects an integer in the range of 0 to (2000 * 1000) ms"),
        # QEMU 7.2 wraps a negative uint64 to 2^64-1, then range-checks it
        ({"downtime-limit": -1}, "Parameter 'downtime_limit' expects an integer in the range of 0 to (2000 * 1000) ms"),
        ({"max-bandwidth": 2 ** 64}, "Parameter 'max-bandwidth' expects uint64"),
        ({"max-bandwidth": 1.5}, "Parameter 'max-bandwidth' expects uint64"),
        ({"max-bandwidth": 1000, "downtime-limit": 2000001},
         "Parameter 'downtime_limit' expects an integer in the range of 0 to (2000 * 1000) ms"),
    ]
    for args, text in cases:
        r = q.cmd("migrate-set-parameters", args)
        err = error_of(r)
        check_eq("migrate-set-parameters %r error" % args, err and err[1], text)
    check_eq("failed migrate-set-parameters changed nothing", q.cmd_ok("query-migrate-parameters"), before)
    for v in (0, 2000000):
        check_eq("downtime-limit %d accepted" % v, q.cmd("migrate-set-parameters", downtime_limit=v), {"return": {}})
        check_eq("downtime-limit %d stored" % v, q.cmd_ok("query-migrate-parameters")["downtime-limit"], v)
    for v in (0, 1, 2 ** 64 - 1, -1):
        check_eq("max-bandwidth %d accepted" % v, q.cmd("migrate-set-parameters", max_bandwidth=v), {"return": {}})
        check_eq("max-bandwidth %d stored" % v, q.cmd_ok("query-migrate-parameters")["max-bandwidth"], v % 2 ** 64)
    r = q.cmd("migrate-continue", state="pre-switchover")
    check_eq("migrate-continue with no migration", error_of(r), ("GenericError", "Migration not in expected state: none"))


def start_pre_switchover(name):
    """A pair migrating with pause-before-switchover, seen to reach
    pre-switchover: (src, dst, qs, qd, query-migrate's answer), or None."""
    src, dst, qs, qd, uri = pair(dirty_rate=50)
    set_caps(qs, pause_before_switchover=True)
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=0)
    qs.cmd_ok("migrate", uri=uri)
    info = wait_mig_status(qs, ("pre-switchover", "completed", "failed"), 20)
    if not check_eq("%s: status pre-switchover" % name, (info or {}).get("status"), "pre-switchover"):
        return None
    return src, dst, qs, qd, info


def test_pause_before_switchover():
    name = "pause-before-switchover"
    started = start_pre_switchover(name)
    if not started:
        return
    src, dst, qs, qd, info = started
    check_eq("%s: pre-switchover query-migrate members" % name, set(info.keys()), ACTIVE_KEYS)
    check_eq("%s: source guest stopped (finish-migrate)" % name, query_status(qs), "finish-migrate")
    size = serial_size(src.serial_path)
    check_eq("%s: destination still inmigrate" % name, query_status(qd), "inmigrate")
    for state in ("active", "device"):
        r = qs.cmd("migrate-continue", state=state)
        check_eq("%s: migrate-continue %s in pre-switchover" % (name, state), error_of(r),
                 ("GenericError", "Migration not in expected state: pre-switchover"))
    expect_qmp_error("%s: migrate-set-capabilities in pre-switchover" % name,
                     qs.cmd("migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}]),
                     "There's a migration process in progress")
    again = mig_info(qs)
    check_eq("%s: waits (still pre-switchover)" % name, again.get("status"), "pre-switchover")
    check_eq("%s: source serial silent while paused" % name, serial_size(src.serial_path), size)
    check_eq("%s: migrate-continue pre-switchover" % name, qs.cmd("migrate-continue", state="pre-switchover"),
             {"return": {}})
    info = wait_mig_status(qs, ("completed", "failed", "cancelled"), 20)
    check_eq("%s: completed after continue" % name, (info or {}).get("status"), "completed")
    names = event_names(collect_events(qs, "completed", 2))
    mig = [n for n in names if n.startswith("MIGRATION:")]
    check_eq("%s: source MIGRATION events" % name, mig,
             ["MIGRATION:setup", "MIGRATION:active", "MIGRATION:pre-switchover", "MIGRATION:device",
              "MIGRATION:completed"])
    check("%s: STOP before pre-switchover" % name,
          "STOP" in names and names.index("STOP") < names.index("MIGRATION:pre-switchover"), names)
    check("%s: destination running" % name,
          wait_mig_status(qd, "completed", 10) is not None and wait_run_state(qd, "running", 5))
    check("%s: destination guest works" % name, wait_serial_growth(dst.serial_path, 10))
    r = qs.cmd("migrate-continue", state="pre-switchover")
    check_eq("%s: migrate-continue after completion" % name, error_of(r),
             ("GenericError", "Migration not in expected state: completed"))


def test_cancel_in_pre_switchover():
    name = "cancel in pre-switchover"
    started = start_pre_switchover(name)
    if not started:
        return
    src, dst, qs, qd, info = started
    check_eq("%s: migrate_cancel" % name, qs.cmd("migrate_cancel"), {"return": {}})
    info = wait_mig_status(qs, ("cancelled", "failed", "completed"), 10)
    check_eq("%s: cancelled" % name, (info or {}).get("status"), "cancelled")
    # The run state is settled before the final status is announced (as QEMU 7.2's cancel).
    check_eq("%s: source already running when cancelled is seen" % name, query_status(qs), "running")
    check("%s: source guest progresses" % name, wait_serial_growth(src.serial_path, 10))
    check("%s: RESUME on the source" % name, qs.wait_event("RESUME", 5) is not None)
    check("%s: destination fails, never runs" % name,
          wait_mig_status(qd, "failed", 10) is not None and query_status(qd) != "running", mig_info(qd))


def main():
    require_binary()
    if qemu_mode():
        skip_all("needs migvm's soft accelerator workload (-accel soft)")
    t0 = time.monotonic()
    run("parameter errors", test_parameter_errors)
    run("raise max-bandwidth", test_raise_bandwidth)
    run("raise downtime-limit", test_raise_downtime)
    run("pause-before-switchover", test_pause_before_switchover)
    run("cancel in pre-switchover", test_cancel_in_pre_switchover)
    print("# total %.1f s" % (time.monotonic() - t0))
    finish()


if __name__ == "__main__":
    main()
