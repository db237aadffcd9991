#!/usr/bin/python3
"""migvm's convergence controller (migration/converge.c), with all default
parameters (max-bandwidth 128 MiB/s, downtime-limit 300 ms, no capability).

The guests cannot converge at 128 MiB/s: the boot-sector guest on KVM with
-m 256M rewrites every page about once a second (printing 'B' after each
pass), the soft accelerator's workload at dirty-rate=0 (as fast as
possible) on -m 64M rewrites its RAM thousands of times a second.

KVM, one source:
  * x-convergence-controller off (QEMU 7.2's behaviour): still active after
    two whole passes, never throttled, no x-convergence in query-migrate;
  * on (the default): X_MIGRATION_NOT_CONVERGING comes at once (dirty rate
    near or above the bandwidth), query-migrate's x-convergence says "not
    converging" with its reason, HMP info migrate prints the x-convergence
    lines, the throttle starts at cpu-throttle-initial only after that and
    stays within max-cpu-throttle; migrate_cancel gives the guest its full
    speed back, and so does a failure (the destination killed);
  * on again, to a destination: completes before a deadline, downtime within
    downtime-limit, the decisions in X_MIGRATION_CONVERGENCE events and in
    the flight recorder's passes (not-converging, throttle, switch-over); no
    throttle left, and the destination guest runs at full speed.
Soft: the same completion with defaults.

MIGVM_TEST_LONG=1 adds what costs minutes: controller off for 20 s on every
guest (soft 64M, KVM 256M and 1G), auto-converge alone (controller off)
completing each of them, and the 1 GiB boot-sector guest with defaults.  The KVM parts skip without /dev/kvm."""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import migvm  # noqa: E402
import miglib  # noqa: E402
import bootguest  # noqa: E402
from migvm import check, check_eq, run  # noqa: E402

LONG = os.environ.get("MIGVM_TEST_LONG") == "1"
# Controller off: watched until the third bitmap sync (two whole passes; on,
# the controller says the stall and throttles from the second), and with
# MIGVM_TEST_LONG for at least OFF_SECONDS.
OFF_SYNCS = 3
OFF_SECONDS = 20 if LONG else 0
COMPLETE_DEADLINE = 120         # the machine may be loaded: a deadline, not a rate
# auto-converge alone on the 1 GiB guest raises the throttle once per bitmap
# sync, and a pass of 1 GiB at 128 MiB/s takes 8 s or more: about ten of them.
LONG_DEADLINE = 300
DOWNTIME_LIMIT = 300            # the default
INITIAL, MAX_THROTTLE = 20, 99  # the defaults
# The cancel case: max-cpu-throttle 40 at max-bandwidth 48 MiB/s, where even a
# guest slowed by a loaded machine dirties more than a pass sends.
CAP, CAP_BANDWIDTH = 40, 48 << 20


def watch(q, until, timeout):
    """Poll query-migrate until until(info) or the deadline; returns (last
    info, every active info seen)."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        info = miglib.mig_info(q)
        if info.get("status") == "active":
            seen.append(info)
        if until(info) or time.monotonic() > deadline:
            return info, seen
        time.sleep(0.05)


def running(info):
    return info.get("status") in ("setup", "active", "device")


def controller(q, on):
    q.cmd_ok("migrate-set-parameters", **{"x-convergence-controller": on})


def events_named(q, name):
    q.sync("events")
    return [e for e in q.events if e.get("event") == name]


def off_does_not_complete(tag, kind, mem, src, qs, seconds=OFF_SECONDS):
    """QEMU 7.2's behaviour: never completes, never throttled."""
    controller(qs, False)
    dst, qd, uri = bootguest.new_destination(kind, mem)
    qs.clear_events()
    t0 = time.monotonic()
    qs.cmd_ok("migrate", uri=uri)
    info, seen = watch(qs, lambda i: not running(i) or (i.get("ram", {}).get("dirty-sync-count", 0) >= OFF_SYNCS
                                                        and time.monotonic() - t0 >= seconds), 60 + seconds)
    check("%s, controller off: still active after %d bitmap syncs (%.1f s)" % (
        tag, OFF_SYNCS, time.monotonic() - t0), info.get("status") == "active"
        and info.get("ram", {}).get("dirty-sync-count", 0) >= OFF_SYNCS, info)
    check("%s, controller off: never throttled, no x-convergence" % tag,
          all("cpu-throttle-percentage" not in i and "x-convergence" not in i for i in seen), seen[-1:])
    check("%s, controller off: no controller event" % tag,
          not events_named(qs, "X_MIGRATION_NOT_CONVERGING") and not events_named(qs, "X_MIGRATION_CONVERGENCE"),
          qs.events)
    qs.cmd_ok("migrate_cancel")
    miglib.wait_mig_status(qs, ("cancelled",), 20)
    dst.kill()
    controller(qs, True)


def throttled_then_cancelled(tag, src, qs, base):
    """Controller on, capped (CAP, CAP_BANDWIDTH: it cannot converge): the
    stall is said at once, the throttle follows up to max-cpu-throttle and no
    further; cancel gives the guest its speed back."""
    qs.cmd_ok("migrate-set-parameters", **{"max-cpu-throttle": CAP, "max-bandwidth": CAP_BANDWIDTH})
    dst, qd, uri = bootguest.new_destination("kvm", "256M")
    qs.clear_events()
    qs.cmd_ok("migrate", uri=uri)
    info, seen = watch(qs, lambda i: (i.get("cpu-throttle-percentage") or 0) >= CAP or not running(i), 90)
    qs.sync("events")
    names = [(e["event"], e["data"].get("action")) for e in qs.events if e["event"].startswith("X_MIGRATION")]
    stall = [e["data"] for e in qs.events if e["event"] == "X_MIGRATION_NOT_CONVERGING"]
    check("%s: X_MIGRATION_NOT_CONVERGING" % tag, stall, (names, info))
    if stall:
        d = stall[0]
        check("%s: the event's data: pass >= 2, dirty rate near the bandwidth (%s)" % (tag, d),
              set(d) == {"pass", "dirty-rate", "bandwidth", "remaining"} and d["pass"] >= 2
              and d["dirty-rate"] >= 0.5 * d["bandwidth"] > 0 and d["remaining"] > 0, d)
    check("%s: the stall said before the first throttle step (%s)" % (tag, names),
          ("X_MIGRATION_NOT_CONVERGING", None) in names and ("X_MIGRATION_CONVERGENCE", "throttle") in names
          and names.index(("X_MIGRATION_NOT_CONVERGING", None)) < names.index(("X_MIGRATION_CONVERGENCE", "throttle")),
          names)
    stalled = [i["x-convergence"] for i in seen if i.get("x-convergence", {}).get("converging") is False]
    check("%s: query-migrate x-convergence: not converging, with its reason" % tag,
          stalled and ("dirtied" in stalled[0]["reason"] or "passes to fit" in stalled[0]["reason"])
          and "predicted-completion" not in stalled[0], seen[-1:])
    pcts = [i["cpu-throttle-percentage"] for i in seen if "cpu-throttle-percentage" in i]
    more = []
    throttled = bootguest.pass_rate(src, 3.0, qs, more)     # the bandwidth is measured over the same seconds
    window = [i for i in seen + more if i["ram"]["dirty-sync-count"] >= 2]
    if len(window) >= 2:
        a, b = window[0], window[-1]
        rate = (b["ram"]["transferred"] - a["ram"]["transferred"]) * 1000.0 / max(1, b["total-time"] - a["total-time"])
        check("%s: max-bandwidth kept while throttling (%.1f MiB/s <= 1.2 x %d)" % (tag, rate / (1 << 20),
                                                                                    CAP_BANDWIDTH >> 20),
              rate <= 1.2 * CAP_BANDWIDTH, rate)
    pcts += [i["cpu-throttle-percentage"] for i in more if "cpu-throttle-percentage" in i]
    check("%s: throttle from cpu-throttle-initial %d up to max-cpu-throttle %d, never above (%s)" % (
        tag, INITIAL, CAP, sorted(set(pcts))), pcts and pcts[0] == INITIAL and pcts == sorted(pcts)
        and pcts[-1] == CAP, pcts)
    hmp = qs.hmp("info migrate")
    check("%s: HMP info migrate: x-convergence lines" % tag,
          "\nx-convergence: not converging (" in hmp and "\nx-convergence-decision: " in hmp
          and "\ncpu throttle percentage: " in hmp, hmp)
    qs.cmd_ok("migrate_cancel")
    info = miglib.wait_mig_status(qs, ("cancelled", "completed", "failed"), 20) or {}
    check_eq("%s: cancelled" % tag, info.get("status"), "cancelled")
    check("%s: no throttle, no x-convergence after cancel" % tag,
          "cpu-throttle-percentage" not in info and "x-convergence" not in info, info)
    after = bootguest.pass_rate(src, 2.0)
    print("# figures %s: guest passes/s %.2f before, %.2f at %d %% throttle, %.2f after cancel" % (
        tag, base, throttled, CAP, after), flush=True)
    # Rates on a loaded machine move on their own: back up means near the
    # rate before, or clearly above the throttled one (test-auto-converge
    # checks the slowdown itself).
    check("%s: guest back up after cancel (%.2f >= 0.7 x %.2f before or >= 1.3 x %.2f throttled)" % (
        tag, after, base, throttled), after >= 0.7 * base or after >= 1.3 * throttled)
    qs.cmd_ok("migrate-set-parameters", **{"max-cpu-throttle": MAX_THROTTLE, "max-bandwidth": 128 << 20})
    dst.kill()


def throttled_then_failed(tag, src, qs):
    """The destination dies while the controller throttles: the migration
    fails, the throttle goes with it, the source guest runs on. At the
    default max-bandwidth (where "defaults" below needs the throttle too) the
    first throttle step comes a pass sooner than at CAP_BANDWIDTH."""
    dst, qd, uri = bootguest.new_destination("kvm", "256M")
    qs.cmd_ok("migrate", uri=uri)
    info, seen = watch(qs, lambda i: "cpu-throttle-percentage" in i or not running(i), 90)
    check("%s: nothing left of the cancelled migration's throttle at the start" % tag,
          seen and "cpu-throttle-percentage" not in seen[0], seen[:1])
    check("%s: throttled before the destination dies" % tag, "cpu-throttle-percentage" in info, info)
    dst.kill()
    info = miglib.wait_mig_status(qs, ("failed", "completed", "cancelled"), 60) or {}
    check_eq("%s: failed" % tag, info.get("status"), "failed")
    check("%s: no throttle, no x-convergence after the failure" % tag,
          "cpu-throttle-percentage" not in info and "x-convergence" not in info, info)
    check("%s: source running, its guest goes on" % tag, miglib.wait_run_state(qs, "running", 10)
          and miglib.wait_serial_growth(src.serial_path, 20, 2), info)


def completes(tag, kind, mem, src, qs, base=None, auto_converge=False, deadline=COMPLETE_DEADLINE):
    """Migrate to a new destination: completed before the deadline, downtime
    within the limit, nothing throttled afterwards."""
    dst, qd, uri = bootguest.new_destination(kind, mem)
    qs.clear_events()
    t0 = time.monotonic()
    qs.cmd_ok("migrate", uri=uri)
    info, seen = watch(qs, lambda i: not running(i), deadline)
    took = time.monotonic() - t0
    check("%s: no throttle left from before at the start" % tag, seen and "cpu-throttle-percentage" not in seen[0],
          seen[:1])
    if not check_eq("%s: completed" % tag, info.get("status"), "completed"):
        qs.cmd("migrate_cancel")
        dst.kill()
        return
    print("# figures %s: completed in %.1f s, downtime %d ms (limit %d), %d passes, throttle up to %s %%" % (
        tag, took, info["downtime"], DOWNTIME_LIMIT, info["ram"]["dirty-sync-count"],
        max([i.get("cpu-throttle-percentage", 0) for i in seen] or [0])), flush=True)
    check("%s: downtime %d ms within downtime-limit %d ms" % (tag, info["downtime"], DOWNTIME_LIMIT),
          info["downtime"] <= DOWNTIME_LIMIT, info)
    check("%s: no throttle, no x-convergence once completed" % tag,
          "cpu-throttle-percentage" not in info and "x-convergence" not in info, info)
    if not auto_converge:
        rec = qs.cmd_ok("x-query-migration-history")[-1]
        notes = " | ".join(p.get("convergence", "") for p in rec["passes"])
        check("%s: flight recorder: not-converging, throttle, switch-over (%s)" % (tag, notes[:400]),
              "not-converging: " in notes and "throttle %d%%" % INITIAL in notes and "switch-over: " in notes, notes)
        sw = [e["data"] for e in events_named(qs, "X_MIGRATION_CONVERGENCE") if e["data"]["action"] == "switch-over"]
        check("%s: X_MIGRATION_CONVERGENCE switch-over within the limit" % tag,
              len(sw) == 1 and sw[0]["expected-downtime"] <= DOWNTIME_LIMIT and sw[0]["reason"], sw)
        throttles = [e["data"]["throttle"] for e in events_named(qs, "X_MIGRATION_CONVERGENCE")
                     if e["data"]["action"] == "throttle"]
        check("%s: throttle events rise from %d within %d (%s)" % (tag, INITIAL, MAX_THROTTLE, throttles),
              throttles and throttles[0] == INITIAL and throttles == sorted(throttles)
              and throttles[-1] <= MAX_THROTTLE, throttles)
    check("%s: destination runs the guest" % tag, miglib.wait_run_state(qd, "running", 30)
          and miglib.wait_serial_growth(dst.serial_path, 20, 2), dst.stderr_text())
    if base is not None and LONG:
        rate = bootguest.pass_rate(dst, 2.0)
        print("# figures %s: destination guest passes/s %.2f (source before: %.2f)" % (tag, rate, base), flush=True)
        # A figure only: on a loaded machine the rate moves on its own (the
        # destination never had a throttle; the source's is checked above).
    dst.kill()


def test_kvm():
    src = bootguest.start_workload("kvm", "256M")
    qs = src.qmp()
    check("kvm: guest prints 'A' then 'B's", bootguest.wait_passes(src, 2, 30), src.stderr_text())
    params = qs.cmd_ok("query-migrate-parameters")
    check_eq("x-convergence-controller on by default", params.get("x-convergence-controller"), True)
    check_eq("HMP migrate_set_parameter x-convergence-controller off",
             qs.hmp("migrate_set_parameter x-convergence-controller off"), "")
    check_eq("... shown off", qs.cmd_ok("query-migrate-parameters").get("x-convergence-controller"), False)
    check("... HMP info migrate_parameters: 'x-convergence-controller: off'",
          "x-convergence-controller: off\r\n" in qs.hmp("info migrate_parameters"))
    controller(qs, True)
    base = bootguest.pass_rate(src, 2.0)
    off_does_not_complete("kvm 256M", "kvm", "256M", src, qs)
    throttled_then_cancelled("kvm 256M", src, qs, base)
    throttled_then_failed("kvm 256M, destination killed", src, qs)
    completes("kvm 256M, defaults", "kvm", "256M", src, qs, base)


def test_soft():
    src = bootguest.start_workload("soft", "64M")
    qs = src.qmp()
    check("soft: workload prints 'A' then 'B's", bootguest.wait_passes(src, 2, 30), src.stderr_text())
    if LONG:
        off_does_not_complete("soft 64M", "soft", "64M", src, qs)
    completes("soft 64M, defaults", "soft", "64M", src, qs)


def auto_converge_alone(kind, mem, deadline=COMPLETE_DEADLINE):
    """Controller off: does not complete in 20 s (QEMU 7.2's behaviour); then
    auto-converge on (QEMU 7.2's tool), still without the controller:
    completes."""
    src = bootguest.start_workload(kind, mem)
    qs = src.qmp()
    bootguest.wait_passes(src, 2, 30)
    off_does_not_complete("%s %s" % (kind, mem), kind, mem, src, qs)
    controller(qs, False)
    qs.cmd_ok("migrate-set-capabilities", capabilities=[{"capability": "auto-converge", "state": True}])
    completes("%s %s, auto-converge alone" % (kind, mem), kind, mem, src, qs, auto_converge=True, deadline=deadline)


def test_long_kvm_1g():
    src = bootguest.start_workload("kvm", "1G")
    qs = src.qmp()
    check("kvm 1G: guest runs", bootguest.wait_passes(src, 2, 60), src.stderr_text())
    completes("kvm 1G, defaults", "kvm", "1G", src, qs, bootguest.pass_rate(src, 4.0))


def main():
    migvm.require_binary()
    if migvm.qemu_mode():
        migvm.skip_all("migvm's convergence controller (QEMU 7.2 has none)")
    run("soft", test_soft)
    if LONG:
        run("soft: auto-converge alone", auto_converge_alone, "soft", "64M")
    why = migvm.kvm_usable()
    if why:
        migvm.skip("kvm", why)
    else:
        run("kvm", test_kvm)
        if LONG:
            run("kvm 256M: auto-converge alone", auto_converge_alone, "kvm", "256M")
            run("kvm 1G: auto-converge alone", auto_converge_alone, "kvm", "1G", LONG_DEADLINE)
            run("kvm 1G: defaults", test_long_kvm_1g)
    migvm.finish()


if __name__ == "__main__":
    main()
