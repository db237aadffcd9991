#!/usr/bin/env python3
"""Migration over HMP (the human monitor on a unix socket), QEMU 7.2 texts.

* info migrate on a fresh VM: exactly the globals block;
* info migrate_capabilities / migrate_parameters defaults, and their
  changes through migrate_set_capability / migrate_set_parameter (with the
  MiB default unit of max-bandwidth), errors printed as `Error: ...` and
  argument errors with the `Try "help ..."` line;
* migrate_incoming on a `-incoming defer` destination; its info migrate
  lists the socket address; errors for a second call and without -incoming;
* migrate -d returns at once; info migrate while active and after
  completion has the 7.2 layout; info status on both sides;
* migrate without -d blocks the monitor (a command typed meanwhile is
  answered only afterwards) and, not on a terminal, prints nothing, as
  QEMU 7.2; QMP keeps answering meanwhile;
* migrate_cancel; migrate_continue in the wrong state; a refused connection
  shows `Migration status: failed (<error>)`.
"""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migvm import (check, check_eq, finish, free_tcp_port, qemu_mode, require_binary, run,  # noqa: E402
                   strip_ansi)
from miglib import (mig_info, mig_status, run_soft_workload_tests, serial_size, start_vm, wait_mig_status,  # noqa: E402
                    wait_until)

GLOBALS = ("globals:\r\nstore-global-state: on\r\nonly-migratable: off\r\nsend-configuration: on\r\n"
           "send-section-footer: on\r\ndecompress-error-check: on\r\nclear-bitmap-shift: 18\r\n")

CAPS = ["xbzrle", "rdma-pin-all", "auto-converge", "zero-blocks", "compress", "events", "postcopy-ram", "x-colo",
        "release-ram", "block", "return-path", "pause-before-switchover", "multifd", "dirty-bitmaps",
        "postcopy-blocktime", "late-block-activate", "x-ignore-shared", "validate-uuid", "background-snapshot",
        "zero-copy-send", "postcopy-preempt"] + ([] if qemu_mode() else ["x-resumable-precopy"])

PARAMS = """announce-initial: 50 ms
announce-max: 550 ms
announce-rounds: 5
announce-step: 100 ms
compress-level: 1
compress-threads: 8
compress-wait-thread: on
decompress-threads: 2
throttle-trigger-threshold: 50
cpu-throttle-initial: 20
cpu-throttle-increment: 10
cpu-throttle-tailslow: off
max-cpu-throttle: 99
tls-creds: ''
tls-hostname: ''
max-bandwidth: 134217728 bytes/second
downtime-limit: 300 ms
x-checkpoint-delay: 20000 ms
block-incremental: off
multifd-channels: 2
multifd-compression: none
xbzrle-cache-size: 67108864 bytes
max-postcopy-bandwidth: 0
tls-authz: ''
x-dead-link-timeout: 30000 ms
x-convergence-controller: on
x-prefault-ram: on
""".replace("\n", "\r\n")

# 7.2 `info migrate` lines for an active / completed outgoing migration, in order.
ACTIVE_LINES = [r"Migration status: active", r"total time: \d+ ms", r"expected downtime: \d+ ms", r"setup: \d+ ms",
                r"transferred ram: \d+ kbytes", r"throughput: \d+\.\d\d mbps", r"remaining ram: \d+ kbytes",
                r"total ram: 65536 kbytes", r"duplicate: \d+ pages", r"skipped: 0 pages", r"normal: \d+ pages",
                r"normal bytes: \d+ kbytes", r"dirty sync count: \d+", r"page size: 4 kbytes",
                r"multifd bytes: 0 kbytes", r"pages-per-second: \d+"]
COMPLETED_LINES = [r"Migration status: completed", r"total time: \d+ ms", r"downtime: \d+ ms", r"setup: \d+ ms",
                   r"transferred ram: \d+ kbytes", r"throughput: \d+\.\d\d mbps", r"remaining ram: 0 kbytes",
                   r"total ram: 65536 kbytes", r"duplicate: \d+ pages", r"skipped: 0 pages", r"normal: \d+ pages",
                   r"normal bytes: \d+ kbytes", r"dirty sync count: \d+", r"page size: 4 kbytes",
                   r"multifd bytes: 0 kbytes", r"pages-per-second: \d+"]
# Lines printed only when their counter is non-zero (may follow the fixed ones).
OPTIONAL = [r"dirty pages rate: \d+ pages", r"postcopy request count: \d+", r"precopy ram: \d+ kbytes",
            r"downtime ram: \d+ kbytes", r"postcopy ram: \d+ kbytes", r"cpu throttle percentage: \d+",
            # migvm's convergence controller, while a migration runs (x-convergence-controller on)
            r"x-convergence: (converging|not converging) \(.+\)",
            r"x-convergence-decision: [a-z-]+ at pass \d+, throttle \d+ %, dirty rate \d+ kbytes/s, "
            r"bandwidth \d+ kbytes/s, (predicted completion in \d+ ms|no predicted completion)"]


def check_layout(name, text, expected):
    """text = `info migrate` output: globals, then `expected` lines in order,
    then only optional lines (in their 7.2 order)."""
    if not check("%s: starts with the globals block" % name, text.startswith(GLOBALS), text[:300]):
        return
    lines = text[len(GLOBALS):].split("\r\n")
    check_eq("%s: ends with \\r\\n" % name, lines[-1], "")
    lines = lines[:-1]
    head = lines[:len(expected)]
    bad = [(pat, ln) for pat, ln in zip(expected, head) if not re.fullmatch(pat, ln)]
    check("%s: 7.2 lines in order" % name, len(head) == len(expected) and not bad,
          "mismatches %r in %r" % (bad, lines))
    rest = lines[len(expected):]
    idx = []
    for ln in rest:
        m = [i for i, pat in enumerate(OPTIONAL) if re.fullmatch(pat, ln)]
        idx.append(m[0] if m else None)
    check("%s: only optional counters after them, in order" % name,
          None not in idx and idx == sorted(idx) and len(set(idx)) == len(idx), rest)


def field(text, label):
    m = re.search(r"^%s: (\d+)" % re.escape(label), text, re.M)
    return int(m.group(1)) if m else None


def hmp_source(mem="64M", dirty_rate=None):
    """A source whose workload made one full pass ('A' then 'B'): every page
    of the work area is non-zero, so a pass of the migration costs 64 MiB."""
    vm = start_vm(mem, dirty_rate=dirty_rate, hmp=True)
    h = vm.hmp()
    q = vm.qmp()
    if not wait_until(lambda: serial_size(vm.serial_path) >= 2, 10):
        raise RuntimeError("workload did not complete a pass: serial %r" % serial_size(vm.serial_path))
    return vm, h, q


def hmp_dest(mem="64M"):
    """A -incoming defer destination told to listen with HMP migrate_incoming."""
    vm = start_vm(mem, incoming="defer", hmp=True)
    h = vm.hmp()
    out = h.cmd("migrate_incoming tcp:127.0.0.1:0")
    check_eq("migrate_incoming on a defer destination prints nothing", out, "")
    info = h.cmd("info migrate")
    m = re.search(r"socket address: \[\r\n\ttcp:127\.0\.0\.1:(\d+)\r\n\]\r\n", info)
    check("destination info migrate lists the socket address", m and info.startswith(GLOBALS), info)
    check_eq("listening destination: info migrate is globals + socket address only (QEMU 7.2)",
             info, GLOBALS + "socket address: [\r\n\ttcp:127.0.0.1:%s\r\n]\r\n" % (m.group(1) if m else "?"))
    return vm, h, "tcp:127.0.0.1:%s" % (m.group(1) if m else "0")


# ---------------------------------------------------------------------------


def test_settings():
    vm = start_vm("64M", dirty_rate=1, hmp=True)
    h = vm.hmp()
    check_eq("info migrate, fresh VM", h.cmd("info migrate"), GLOBALS)
    check_eq("info migrate_capabilities default", h.cmd("info migrate_capabilities"),
             "".join("%s: off\r\n" % c for c in CAPS))
    check_eq("info migrate_parameters default", h.cmd("info migrate_parameters"), PARAMS)
    check_eq("migrate_set_capability events on", h.cmd("migrate_set_capability events on"), "")
    caps = h.cmd("info migrate_capabilities")
    check("info migrate_capabilities shows events: on", "\r\nevents: on\r\n" in caps and caps.count(": on") == 1, caps)
    for value, shown in (("100M", 104857600), ("100", 104857600), ("1G", 1 << 30), ("1K", 1024), ("0", 0)):
        out = h.cmd("migrate_set_parameter max-bandwidth %s" % value)
        params = h.cmd("info migrate_parameters")
        check("migrate_set_parameter max-bandwidth %s -> %d bytes/second" % (value, shown),
              out == "" and "\r\nmax-bandwidth: %d bytes/second\r\n" % shown in params, (out, params))
    check_eq("migrate_set_parameter downtime-limit 500", h.cmd("migrate_set_parameter downtime-limit 500"), "")
    check("downtime-limit: 500 ms shown", "\r\ndowntime-limit: 500 ms\r\n" in h.cmd("info migrate_parameters"))
    errors = [
        ("migrate_set_parameter downtime-limit 2000001",
         "Error: Parameter 'downtime_limit' expects an integer in the range of 0 to (2000 * 1000) ms\r\n"),
        ("migrate_set_parameter bogus 1", "Error: invalid parameter value: bogus\r\n"),
        ("migrate_set_capability bogus on", "Error: invalid parameter value: bogus\r\n"),
        ("migrate_set_capability events maybe",
         "Expected 'on' or 'off'\r\nTry \"help migrate_set_capability\" for more information\r\n"),
        ("migrate_incoming tcp:127.0.0.1:0", "Error: '-incoming' was not specified on the command line\r\n"),
        ("migrate_continue pre-switchover", "Error: Migration not in expected state: none\r\n"),
        ("migrate_continue bogus", "Error: invalid parameter value: bogus\r\n"),
        ("migrate_cancel", ""),
        ("migrate", "migrate: string expected\r\nTry \"help migrate\" for more information\r\n"),
    ]
    for line, expected in errors:
        check_eq("HMP %s" % line, h.cmd(line), expected)
    check_eq("info migrate still only globals", h.cmd("info migrate"), GLOBALS)
    # As QEMU 7.2: a migrate that fails after starting (URI, fd) leaves status failed.
    check_eq("HMP migrate bogus:1", h.cmd("migrate bogus:1"),
             "Error: Parameter 'uri' expects a valid migration protocol\r\n")
    check_eq("info migrate after migrate bogus:1", h.cmd("info migrate"),
             GLOBALS + "Migration status: failed\r\ntotal time: 0 ms\r\n")
    check_eq("HMP migrate -d fd:nosuch", h.cmd("migrate -d fd:nosuch"),
             "Error: File descriptor named 'nosuch' has not been found\r\n")
    check_eq("info migrate after migrate fd:nosuch", h.cmd("info migrate"),
             GLOBALS + "Migration status: failed (File descriptor named 'nosuch' has not been found)\r\n"
             "total time: 0 ms\r\n")


def test_detached_migration():
    src, h, q = hmp_source(dirty_rate=50)
    dst, hd, uri = hmp_dest()
    check_eq("second migrate_incoming", hd.cmd("migrate_incoming tcp:127.0.0.1:0"),
             "Error: The incoming migration has already been started\r\n")
    check_eq("info status on the destination", hd.cmd("info status"), "VM status: paused (inmigrate)\r\n")
    h.cmd("migrate_set_parameter max-bandwidth 16M")
    t0 = time.monotonic()
    out = h.cmd("migrate -d %s" % uri)
    elapsed = time.monotonic() - t0
    check("migrate -d returns at once and prints nothing (%.3f s)" % elapsed, out == "" and elapsed < 1.0, out)
    wait_until(lambda: mig_status(q) == "active", 5)
    active = h.cmd("info migrate")
    check_layout("info migrate (active)", active, ACTIVE_LINES)
    check_eq("migrate -d while active", h.cmd("migrate -d %s" % uri),
             "Error: There's a migration process in progress\r\n")
    check_eq("migrate_set_capability while active", h.cmd("migrate_set_capability xbzrle on"),
             "Error: There's a migration process in progress\r\n")
    check_eq("info status on the source while active", h.cmd("info status"), "VM status: running\r\n")
    check_eq("migrate_set_parameter max-bandwidth 0 while active", h.cmd("migrate_set_parameter max-bandwidth 0"), "")
    info = wait_mig_status(q, ("completed", "failed", "cancelled"), 30)
    check_eq("detached migration completes", (info or {}).get("status"), "completed")
    done = h.cmd("info migrate")
    check_layout("info migrate (completed)", done, COMPLETED_LINES)
    if info:
        check_eq("info migrate total time = query-migrate", field(done, "total time"), info.get("total-time"))
        check_eq("info migrate downtime = query-migrate", field(done, "downtime"), info.get("downtime"))
        check_eq("transferred ram kbytes = transferred >> 10", field(done, "transferred ram"),
                 info["ram"]["transferred"] >> 10)
        check_eq("dirty sync count = query-migrate", field(done, "dirty sync count"), info["ram"]["dirty-sync-count"])
    check_eq("info status on the source", h.cmd("info status"), "VM status: paused (postmigrate)\r\n")
    check("destination running", wait_until(lambda: hd.cmd("info status") == "VM status: running\r\n", 10))
    check_eq("destination info migrate", hd.cmd("info migrate"), GLOBALS + "Migration status: completed\r\ntotal time: 0 ms\r\n")
    check_eq("migrate from postmigrate", h.cmd("migrate -d %s" % uri),
             "Error: Can't migrate the vm that was paused due to previous migration\r\n")


def test_blocking_migration():
    src, h, q = hmp_source()
    check_eq("stop the source guest (memory full, nothing dirtied any more)", h.cmd("stop"), "")
    dst, hd, uri = hmp_dest()
    h.cmd("migrate_set_parameter max-bandwidth 32M")     # ~2 s for 64 MiB: a few progress lines
    # Type `migrate` and, right behind it, `info status`: the second command
    # must only be answered once the migration is over.
    h.sock.sendall(("migrate %s\ninfo status\n" % uri).encode())
    t0 = time.monotonic()
    seen_active = wait_until(lambda: mig_status(q) == "active", 5)
    check("QMP answers while HMP migrate blocks (status active)", seen_active)
    raw1 = h._until_prompt(60)
    t_first = time.monotonic() - t0
    status_at_prompt = mig_status(q)
    raw2 = h._until_prompt(10)
    text1 = strip_ansi(raw1).decode("utf-8", "replace")
    text2 = strip_ansi(raw2).decode("utf-8", "replace")
    check_eq("prompt returns only when the migration is over", status_at_prompt, "completed")
    # Not a terminal: nothing but the echo and the prompt, as QEMU 7.2 (the
    # live progress line of the interactive console: test-hmp-tty.py).
    check_eq("blocked %.1f s, no output on a socket, as QEMU 7.2" % t_first, text1,
             "migrate %s\r\n(qemu) " % uri)
    check("the next command is answered afterwards", "VM status: paused (postmigrate)" in text2
          and "VM status" not in text1, (text1[-200:], text2))
    check("destination paused like the source was",
          wait_until(lambda: hd.cmd("info status") == "VM status: paused\r\n", 10))


def test_cancel_and_failure():
    src, h, q = hmp_source()
    dst, hd, uri = hmp_dest()
    h.cmd("migrate_set_parameter max-bandwidth 4M")
    check_eq("migrate -d", h.cmd("migrate -d %s" % uri), "")
    wait_until(lambda: mig_status(q) == "active", 5)
    check_eq("migrate_cancel prints nothing", h.cmd("migrate_cancel"), "")
    check("cancelled", wait_mig_status(q, "cancelled", 5))
    check_eq("info migrate after cancel", h.cmd("info migrate"), GLOBALS + "Migration status: cancelled\r\ntotal time: 0 ms\r\n")
    check_eq("info status after cancel", h.cmd("info status"), "VM status: running\r\n")
    port = free_tcp_port()
    t0 = time.monotonic()
    out = h.cmd("migrate tcp:127.0.0.1:%d" % port, timeout=15)
    check("blocking migrate to a refused port returns promptly (%.2f s)" % (time.monotonic() - t0),
          time.monotonic() - t0 < 5, out)
    check_eq("info migrate after a refused connection", h.cmd("info migrate"),
             GLOBALS + "Migration status: failed (Failed to connect to '127.0.0.1:%d': Connection refused)\r\n"
             "total time: 0 ms\r\n" % port)
    check_eq("source still running", h.cmd("info status"), "VM status: running\r\n")


def main():
    require_binary()
    t0 = time.monotonic()
    run("settings", test_settings)
    tests = [("detached migration", test_detached_migration), ("blocking migration", test_blocking_migration),
             ("cancel and failure", test_cancel_and_failure)]
    run_soft_workload_tests(tests)
    print("# total %.1f s" % (time.monotonic() - t0))
    finish()


if __name__ == "__main__":
    main()
