#!/usr/bin/python3
"""auto-converge: migration throttles the vCPUs of a guest that dirties RAM
faster than it can be sent.

The guest is the boot-sector guest on `-accel kvm -m 64M`: it rewrites every
page from 1 MiB up, printing 'B' after each pass (several a second). At
max-bandwidth 64 MiB/s with a 100 ms downtime limit it cannot converge.

  * the capability is accepted (QMP and HMP, as QEMU 7.2), shown by
    query-migrate-capabilities, and refused while a migration runs with
    QEMU's text;
  * without auto-converge the migration is still active after several
    syncs, with no cpu-throttle-percentage;
  * with it (cpu-throttle-initial 40, increment 25) query-migrate's
    cpu-throttle-percentage goes 40, 65, 90 (HMP info migrate prints
    "cpu throttle percentage: N"), the guest's pass rate drops, and
    migrate_cancel puts it back to full speed (the percentage disappears,
    the pass rate recovers);
  * a second migration with auto-converge completes.
The pass rates (baseline, migrating, throttled, after cancel) and the time
to complete are printed as figures.

The same throttle-and-cancel runs on the soft accelerator (dirty-rate=256):
its workload slows down and recovers the same way; then a throttled
migration whose destination is killed fails, and the throttle goes with it
(no cpu-throttle-percentage, the workload back at full speed).

The KVM part skips when /dev/kvm cannot be used."""

import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import migvm  # noqa: E402
import miglib  # noqa: E402
import bootguest  # noqa: E402
from migvm import check, check_eq, run  # noqa: E402

MiB = 1 << 20
MEM = "64M"
BANDWIDTH = 64 * MiB
DOWNTIME_MS = 100
INITIAL, INCREMENT = 40, 25
STEPS = [40, 65, 90, 99]
SOFT_DIRTY_RATE = 256       # MiB/s: four times the bandwidth


def start_guest(accel):
    return bootguest.start_workload(accel, MEM, soft_dirty_rate=SOFT_DIRTY_RATE)


def new_destination(accel):
    return bootguest.new_destination(accel, MEM, soft_dirty_rate=SOFT_DIRTY_RATE)


def set_auto_converge(q, on):
    return q.cmd("migrate-set-capabilities", capabilities=[{"capability": "auto-converge", "state": on}])


def set_params(q):
    """QEMU 7.2's behaviour: migvm's convergence controller off (it would
    throttle a migration without auto-converge too; test-converge.py)."""
    q.cmd_ok("migrate-set-parameters", **{"max-bandwidth": BANDWIDTH, "downtime-limit": DOWNTIME_MS,
                                          "cpu-throttle-initial": INITIAL, "cpu-throttle-increment": INCREMENT,
                                          "x-convergence-controller": False})


def watch(q, until, timeout):
    """Poll query-migrate until until(info) or timeout; returns (info, the
    distinct cpu-throttle-percentage values seen, in order)."""
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        info = miglib.mig_info(q)
        pct = info.get("cpu-throttle-percentage")
        if pct is not None and (not seen or seen[-1] != pct):
            seen.append(pct)
        if until(info) or time.monotonic() > deadline:
            return info, seen
        time.sleep(0.05)


def migrating(info):
    return info.get("status") in ("setup", "active")


def throttle_and_cancel(accel, src, qs):
    """Migrate with auto-converge until the throttle took two steps, measure
    the guest's pass rate, cancel. Returns (throttled rate, rate after)."""
    check_eq("%s: QMP: auto-converge on" % accel, set_auto_converge(qs, True), {"return": {}})
    dst, qd, uri = new_destination(accel)
    qs.cmd_ok("migrate", uri=uri)
    info, seen = watch(qs, lambda i: (i.get("cpu-throttle-percentage") or 0) >= STEPS[1] or not migrating(i), 30)
    check_eq("%s: cpu-throttle-percentage initial, then +increment" % accel, seen, STEPS[:2])
    hmp = qs.hmp("info migrate")
    check("%s: HMP info migrate: 'cpu throttle percentage: %d'" % (accel, STEPS[1]),
          "cpu throttle percentage: %d" % STEPS[1] in [line.strip() for line in hmp.splitlines()], hmp)
    throttled = bootguest.pass_rate(src, 1.5)
    qs.cmd_ok("migrate_cancel")
    info = miglib.wait_mig_status(qs, ("cancelled", "completed", "failed"), 10) or {}
    check_eq("%s: cancelled" % accel, info.get("status"), "cancelled")
    check("%s: no cpu-throttle-percentage after cancel" % accel, "cpu-throttle-percentage" not in info, info)
    check("%s: HMP info migrate: no throttle line after cancel" % accel,
          "cpu throttle percentage" not in qs.hmp("info migrate"), "")
    dst.kill()
    return throttled, bootguest.pass_rate(src, 2.0)


def test_kvm():
    src = start_guest("kvm")
    qs = src.qmp()
    check("kvm: source guest prints 'A' then 'B's", bootguest.wait_passes(src, 2, 30), src.stderr_text())
    caps = {c["capability"]: c["state"] for c in qs.cmd_ok("query-migrate-capabilities")}
    check_eq("auto-converge off by default", caps.get("auto-converge"), False)
    check_eq("HMP migrate_set_capability auto-converge on", qs.hmp("migrate_set_capability auto-converge on"), "")
    caps = {c["capability"]: c["state"] for c in qs.cmd_ok("query-migrate-capabilities")}
    check_eq("query-migrate-capabilities shows it on", caps.get("auto-converge"), True)
    check_eq("QMP: auto-converge off", set_auto_converge(qs, False), {"return": {}})
    set_params(qs)
    base = bootguest.pass_rate(src, 2.0)

    # Without auto-converge: still active after several syncs, never throttled.
    dst, qd, uri = new_destination("kvm")
    qs.cmd_ok("migrate", uri=uri)
    info, seen = watch(qs, lambda i: i.get("ram", {}).get("dirty-sync-count", 0) >= 6 or not migrating(i), 30)
    check("kvm without auto-converge: still active after 6 syncs", info.get("status") == "active"
          and info["ram"]["dirty-sync-count"] >= 6, info)
    check_eq("kvm without auto-converge: no cpu-throttle-percentage", seen, [])
    unthrottled = bootguest.pass_rate(src, 1.5)
    r = set_auto_converge(qs, True)
    check_eq("capability refused while migrating", migvm.error_of(r),
             ("GenericError", "There's a migration process in progress"))
    qs.cmd_ok("migrate_cancel")
    miglib.wait_mig_status(qs, ("cancelled",), 10)
    dst.kill()

    throttled, after = throttle_and_cancel("kvm", src, qs)
    print("# figures kvm: guest passes/s: %.1f idle, %.1f migrating unthrottled, %.1f at %d%% throttle, "
          "%.1f after cancel" % (base, unthrottled, throttled, STEPS[1], after), flush=True)
    check("kvm: throttle slows the guest (%.1f/s at %d%% < 0.7 x %.1f/s unthrottled)" % (
        throttled, STEPS[1], unthrottled), throttled < 0.7 * unthrottled)
    # The KVM guest's rate moves with the machine's load and with what dirty
    # logging left behind (before the first migration it ran up to 1.6x its
    # rate after a cancel, load 6-9): back up means near the rate before, or
    # clearly above the throttled one (a throttle left on keeps it there).
    check("kvm: full speed after cancel (%.1f/s >= 0.7 x %.1f/s before or >= 1.3 x %.1f/s throttled)" % (
        after, base, throttled), after >= 0.7 * base or after >= 1.3 * throttled)

    # With auto-converge to completion.
    dst, qd, uri = new_destination("kvm")
    t0 = time.monotonic()
    qs.cmd_ok("migrate", uri=uri)
    info, seen = watch(qs, lambda i: not migrating(i), 40)
    took = time.monotonic() - t0
    check_eq("kvm with auto-converge: completed", info.get("status"), "completed")
    check("kvm with auto-converge: throttle rose by the increment (%s)" % seen,
          len(seen) >= 2 and seen == STEPS[:len(seen)], seen)
    check("kvm: no cpu-throttle-percentage once completed", "cpu-throttle-percentage" not in info, info)
    rec = qs.cmd_ok("x-query-migration-history")[-1]
    throttles = [p["throttle"] for p in rec["passes"]]
    steps = [t for i, t in enumerate(throttles) if t and (i == 0 or throttles[i - 1] != t)]
    check("kvm: the flight recorder's passes carry the throttle (%s)" % throttles,
          throttles[0] == 0 and steps[:1] == STEPS[:1] and steps == sorted(steps)
          and set(steps) <= set(seen), (throttles, seen))
    print("# figures kvm: completed in %.1f s (total-time %s ms, downtime %s ms), throttle steps %s" % (
        took, info.get("total-time"), info.get("downtime"), seen), flush=True)
    check("kvm: destination guest runs", miglib.wait_run_state(qd, "running", 20)
          and miglib.wait_serial_growth(dst.serial_path, 20, 2), dst.stderr_text())


def test_soft():
    """The soft accelerator's workload slows the same way and recovers."""
    src = start_guest("soft")
    qs = src.qmp()
    check("soft: workload prints 'A' then 'B's", bootguest.wait_passes(src, 2, 30), src.stderr_text())
    set_params(qs)
    base = bootguest.pass_rate(src, 1.0)
    throttled, after = throttle_and_cancel("soft", src, qs)
    print("# figures soft: workload passes/s: %.1f unthrottled, %.1f at %d%% throttle, %.1f after cancel" % (
        base, throttled, STEPS[1], after), flush=True)
    check("soft: throttle slows the workload (%.1f/s at %d%% < 0.6 x %.1f/s)" % (throttled, STEPS[1], base),
          throttled < 0.6 * base)
    check("soft: full speed after cancel (%.1f/s >= 0.8 x %.1f/s before)" % (after, base), after >= 0.8 * base)

    # A failure (the destination killed while throttled) stops the throttle too.
    dst, qd, uri = new_destination("soft")
    qs.cmd_ok("migrate", uri=uri)
    info, seen = watch(qs, lambda i: "cpu-throttle-percentage" in i or not migrating(i), 30)
    check("soft: throttled (%s) before the destination dies" % seen, seen[:1] == STEPS[:1], info)
    dst.kill()
    info = miglib.wait_mig_status(qs, ("failed", "completed", "cancelled"), 30) or {}
    check_eq("soft: destination killed: failed", info.get("status"), "failed")
    check("soft: no cpu-throttle-percentage after the failure", "cpu-throttle-percentage" not in info, info)
    again = bootguest.pass_rate(src, 2.0)
    print("# figures soft: workload passes/s %.1f after the failure" % again, flush=True)
    check("soft: full speed after the failure (%.1f/s >= 0.8 x %.1f/s before)" % (again, base), again >= 0.8 * base)


def main():
    migvm.require_binary()
    if migvm.qemu_mode():
        migvm.skip_all("the figures are migvm's (QEMU 7.2 throttles on its own timer)")
    run("soft", test_soft)
    why = migvm.kvm_usable()
    if why:
        migvm.skip("kvm", why)
    else:
        run("kvm", test_kvm)
    migvm.finish()


if __name__ == "__main__":
    main()
