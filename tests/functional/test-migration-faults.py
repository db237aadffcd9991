#!/usr/bin/env python3
"""Migration faults that end in one running guest, never two, never none.

* No split brain: after a completed migration the source refuses `cont`
  (QMP GenericError, HMP `c` / `cont` the same text), also after
  system_reset; the guest does not run (query-status, serial output does
  not grow). `cont -f` (HMP) and QMP `cont` with x-force-after-migration
  run it. A cancelled and a failed migration of a paused source leave
  `cont` working.
* The source SIGKILLed mid-stream: the destination fails with an error
  that says the stream ended, stays alive and answers QMP, its guest never
  runs; migrate-incoming retries and a new migration completes.
* `quit` on the source during a migration: exit status 0, no sanitizer
  report; the destination fails cleanly and stays alive.
* A destination stalled with SIGSTOP then resumed with SIGCONT: the
  migration completes (memory identical on both sides and consistent) or
  fails with the source running on.
* `exec:cat > /dev/full` (QEMU 7.2 has no file: URI; this is its way to a
  full disk): failed with QEMU 7.2's "Unable to write to command: Broken
  pipe", the command's own complaint on stderr, the source runs on.
(file:/dev/full is in test-migration-failures.py.)
"""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migvm import check, check_eq, finish, free_tcp_port, wait_until  # noqa: E402
from miglib import (MiB, check_memory_pattern, error_of, mig_info, pmemsave, query_status,  # noqa: E402
                    run_soft_workload_tests, sanitizer_report, serial_size, set_events, start_vm,
                    wait_mig_status, wait_run_state, wait_serial_growth)

MEM = "64M"
MEM_MB = 64
HANDED_OVER = ("The guest was handed over to the destination by a completed migration; running it here "
               "too would run two copies. If the destination is gone, override with 'cont' and "
               "'x-force-after-migration': true (HMP: cont -f)")
ENDED = ("failed", "cancelled", "completed")


def source(hmp=False, dirty_rate=None):
    src = start_vm(MEM, dirty_rate=dirty_rate, hmp=hmp)
    qs = src.qmp()
    set_events(qs)
    if not wait_until(lambda: serial_size(src.serial_path) >= 2, 10):
        raise RuntimeError("source workload not running")
    return src, qs


def dest(paused=False, port=0):
    dst = start_vm(MEM, incoming="tcp:127.0.0.1:%d" % port, paused=paused)
    qd = dst.qmp()
    return dst, qd, "tcp:127.0.0.1:%s" % mig_info(qd)["socket-address"][0]["port"]


def complete_to_new_dest(name, qs):
    """Migrate qs (a source with a bounded dirty rate) to a new destination."""
    dst, qd, uri = dest()
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=0)
    qs.cmd_ok("migrate", uri=uri)
    check_eq("%s: migration completed" % name, (wait_mig_status(qs, ENDED, 30) or {}).get("status"), "completed")
    check("%s: destination runs" % name, wait_run_state(qd, "running", 10) and
          wait_serial_growth(dst.serial_path, 10))
    return dst


def guest_stays_stopped(name, src, qs, state):
    status = qs.cmd_ok("query-status")
    check_eq("%s: query-status" % name, (status["status"], status["running"]), (state, False))
    check("%s: serial output does not grow" % name, not wait_serial_growth(src.serial_path, 1.0))


def test_handed_over():
    name = "handed over"
    src, qs = source(hmp=True, dirty_rate=50)
    h = src.hmp()
    complete_to_new_dest(name, qs)
    check_eq("%s: source postmigrate" % name, query_status(qs), "postmigrate")
    check_eq("%s: QMP cont refused" % name, error_of(qs.cmd("cont")), ("GenericError", HANDED_OVER))
    check_eq("%s: QMP cont with the override false refused" % name,
             error_of(qs.cmd("cont", x_force_after_migration=False)), ("GenericError", HANDED_OVER))
    for cmd in ("cont", "c"):
        check_eq("%s: HMP %s refused" % (name, cmd), h.cmd(cmd), "Error: %s\r\n" % HANDED_OVER)
    guest_stays_stopped(name, src, qs, "postmigrate")
    check_eq("%s: a second migrate refused (QEMU 7.2)" % name, error_of(qs.cmd("migrate", uri="tcp:127.0.0.1:1")),
             ("GenericError", "Can't migrate the vm that was paused due to previous migration"))

    qs.cmd_ok("system_reset")
    check_eq("%s: cont after system_reset refused" % name, error_of(qs.cmd("cont")), ("GenericError", HANDED_OVER))
    check_eq("%s: HMP c after system_reset refused" % name, h.cmd("c"), "Error: %s\r\n" % HANDED_OVER)
    guest_stays_stopped(name + " after system_reset", src, qs, "prelaunch")

    check_eq("%s: HMP cont -f" % name, h.cmd("cont -f"), "")
    check("%s: running after cont -f" % name, wait_run_state(qs, "running", 5) and
          wait_serial_growth(src.serial_path, 10))

    # Handed over again; now the QMP override.
    complete_to_new_dest(name + " (again)", qs)
    check_eq("%s: QMP cont refused again" % name, error_of(qs.cmd("cont")), ("GenericError", HANDED_OVER))
    check_eq("%s: QMP cont with x-force-after-migration" % name,
             qs.cmd("cont", x_force_after_migration=True), {"return": {}})
    check("%s: running after the override" % name, wait_run_state(qs, "running", 5) and
          wait_serial_growth(src.serial_path, 10))


def test_cancel_and_failure_keep_cont():
    name = "cancelled"
    src, qs = source(hmp=True)
    qs.cmd_ok("stop")
    dst, qd, uri = dest()
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=1 * MiB)
    qs.cmd_ok("migrate", uri=uri)
    check("%s: migration active" % name, wait_mig_status(qs, "active", 10), mig_info(qs))
    qs.cmd_ok("migrate_cancel")
    check_eq("%s: status" % name, (wait_mig_status(qs, ENDED, 10) or {}).get("status"), "cancelled")
    check_eq("%s: source paused" % name, query_status(qs), "paused")
    check_eq("%s: cont works" % name, qs.cmd("cont"), {"return": {}})
    check("%s: guest runs" % name, wait_serial_growth(src.serial_path, 10))

    name = "failed"
    qs.cmd_ok("stop")
    qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % free_tcp_port())
    check_eq("%s: status" % name, (wait_mig_status(qs, ENDED, 10) or {}).get("status"), "failed")
    check_eq("%s: source paused" % name, query_status(qs), "paused")
    check_eq("%s: HMP c works" % name, src.hmp().cmd("c"), "")
    check("%s: guest runs" % name, wait_run_state(qs, "running", 5) and wait_serial_growth(src.serial_path, 10))


def dest_failed_cleanly(name, dst, qd, desc_words):
    info = wait_mig_status(qd, ENDED, 10) or {}
    check_eq("%s: destination status failed" % name, info.get("status"), "failed")
    desc = info.get("error-desc", "")
    check("%s: destination error-desc says the stream ended (%r)" % (name, desc),
          any(w in desc for w in desc_words), info)
    check("%s: destination alive" % name, dst.alive())
    check_eq("%s: destination answers QMP, guest never ran" % name, query_status(qd), "inmigrate")
    check_eq("%s: destination serial silent" % name, serial_size(dst.serial_path), 0)
    check("%s: destination stderr says why" % name, "load of migration failed: " in dst.stderr_text(),
          dst.stderr_text()[-300:])


def slow_to(qs, uri):
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=4 * MiB)
    qs.cmd_ok("migrate", uri=uri)
    check("some data sent",
          wait_until(lambda: mig_info(qs).get("ram", {}).get("transferred", 0) > 2 * MiB, 10), mig_info(qs))


def test_source_killed():
    name = "source killed"
    src, qs = source()
    port = free_tcp_port()
    dst, qd, uri = dest(port=port)
    set_events(qd)
    slow_to(qs, uri)
    src.signal(signal.SIGKILL)
    src.wait_exit(5)
    dest_failed_cleanly(name, dst, qd, ("Unexpected end of migration stream",))
    check_eq("%s: cont on the failed destination" % name, qd.cmd("cont"), {"return": {}})
    check("%s: its guest still does not run" % name, not wait_serial_growth(dst.serial_path, 0.5))
    check_eq("%s: migrate-incoming retries" % name, qd.cmd("migrate-incoming", uri=uri), {"return": {}})
    src2, qs2 = source(dirty_rate=50)
    qs2.cmd_ok("migrate-set-parameters", max_bandwidth=0)
    qs2.cmd_ok("migrate", uri=uri)
    check_eq("%s: retry completed" % name, (wait_mig_status(qs2, ENDED, 30) or {}).get("status"), "completed")
    check("%s: destination runs after the retry" % name, wait_run_state(qd, "running", 10) and
          wait_serial_growth(dst.serial_path, 10))


def test_quit_source():
    name = "quit on the source"
    src, qs = source()
    dst, qd, uri = dest()
    set_events(qd)
    slow_to(qs, uri)
    check_eq("%s: quit" % name, qs.cmd("quit"), {"return": {}})
    check_eq("%s: exit status" % name, src.wait_exit(10), 0)
    check_eq("%s: no sanitizer report" % name, sanitizer_report(src), "")
    dest_failed_cleanly(name, dst, qd, ("Unexpected end of migration stream",))


def test_destination_stopped():
    name = "destination stopped"
    src, qs = source(dirty_rate=50)
    dst, qd, uri = dest(paused=True)
    slow_to(qs, uri)
    dst.signal(signal.SIGSTOP)
    try:
        last = {"n": -1}

        def stalled():
            n = mig_info(qs).get("ram", {}).get("transferred", 0)
            same, last["n"] = n == last["n"], n
            return same
        check("%s: the source stalls" % name, wait_until(stalled, 15, interval=0.5), mig_info(qs))
        check_eq("%s: source still active" % name, mig_info(qs).get("status"), "active")
        qs.cmd_ok("migrate-set-parameters", max_bandwidth=0)
    finally:
        dst.signal(signal.SIGCONT)
    info = wait_mig_status(qs, ENDED, 30) or {}
    status = info.get("status")
    check("%s: migration ended (%s)" % (name, status), status in ("completed", "failed"), info)
    print("# %s: the migration %s" % (name, status), flush=True)
    if status != "completed":
        check("%s: error-desc says what happened" % name, info.get("error-desc"), info)
        check("%s: source runs on" % name, wait_run_state(qs, "running", 5) and
              wait_serial_growth(src.serial_path, 10))
        return
    check_eq("%s: destination completed" % name, (wait_mig_status(qd, ENDED, 10) or {}).get("status"), "completed")
    check_eq("%s: destination paused (-S)" % name, query_status(qd), "paused")
    sdump = pmemsave(qs, os.path.join(src.dir, "src.mem"), 0, MEM_MB * MiB)
    ddump = pmemsave(qd, os.path.join(dst.dir, "dst.mem"), 0, MEM_MB * MiB)
    check("%s: RAM byte-identical on both sides" % name, sdump == ddump and len(sdump) == MEM_MB * MiB)
    ok, why = check_memory_pattern(ddump)
    check("%s: destination memory consistent (%s)" % (name, why), ok, why)


def test_exec_full_disk():
    name = "exec to a full disk"
    src, qs = source(dirty_rate=50)
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=0)
    qs.cmd_ok("migrate", uri="exec:cat > /dev/full")
    info = wait_mig_status(qs, ENDED, 10) or {}
    check_eq("%s: failed as QEMU 7.2 says it" % name, info,
             {"status": "failed", "error-desc": "Unable to write to command: Broken pipe"})
    check("%s: the command said why on stderr" % name, "No space left on device" in src.stderr_text(),
          src.stderr_text()[-300:])
    check("%s: source runs on" % name, wait_run_state(qs, "running", 5) and wait_serial_growth(src.serial_path, 10))


if __name__ == "__main__":
    run_soft_workload_tests([
        ("handed over", test_handed_over),
        ("cancel and failure keep cont", test_cancel_and_failure_keep_cont),
        ("source killed", test_source_killed),
        ("quit on the source", test_quit_source),
        ("destination stopped", test_destination_stopped),
        ("exec to a full disk", test_exec_full_disk),
    ])
    finish()
