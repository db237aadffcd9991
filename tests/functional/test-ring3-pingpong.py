#!/usr/bin/python3
"""Ten live migrations in a row of one ring3 guest, A -> B -> A ...

The ring3 guest (build/guest/ring3-guest.img, protocol at the top of
guest/ring3/user.c) rewrites 64 MiB every ~50 ms, takes PIT and LAPIC timer
interrupts and prints one status line per second with interrupt-driven
serial output:

    seq=<n> pit=<n> lapic=<n> sirq=<n> pages=<n> verified=<n> errors=<n> kvmclock=<ms>

Host 0 (A) boots it; hop i (1..10) starts a fresh migvm with -incoming,
alternating the unix (odd hops) and tcp (even hops) transports, migrates the
guest there live while it dirties at full speed, then quits the previous
host. Hosts alternate the names A and B, each a new process. Per hop:
  * migrate accepted and completed, source postmigrate, destination running;
    the old source quits with status 0;
  * the destination's first status line continues the previous host's last
    (seq exactly +1: the guest counts by 1 and its serial stream is
    lossless across a migration; a partial line is finished on the
    destination), no repeat;
  * pit, lapic, sirq, pages and verified grow from the previous host's last
    line to the destination's first and again to its second (timer ticks
    and serial interrupts keep arriving on the destination);
  * errors=0, no ERROR/FATAL line, nothing on either host's stderr.
At the end the serial files of all eleven hosts, concatenated, are one
stream whose seq is 1, 2, 3, ... with no gap or repeat. The per-hop total
and downtime (query-migrate) are printed as `# hop ...` lines.

Skips when /dev/kvm cannot be used; a missing binary or image fails."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
from migvm import read_bytes  # noqa: E402
from ring3lib import COUNTERS, IMAGE, MEM, parse  # noqa: E402
import miglib  # noqa: E402
from migvm import VM, check, check_eq, new_tmpdir, run, wait_until  # noqa: E402

HOPS = 10
# The guest rewrites its 64 MiB every ~50 ms: full local speed, and a last
# pass allowed up to 2 s.
MIG_PARAMS = {"max-bandwidth": 8 << 30, "downtime-limit": 2000}


class Guest:
    """The one guest: its hosts so far, in order, and their serial files."""

    def __init__(self):
        self.hosts = []

    def stream(self, upto=None):
        hosts = self.hosts if upto is None else self.hosts[:upto]
        return b"".join(read_bytes(h.serial_path) for h in hosts)

    def start_host(self, incoming=None, transport=None):
        d = new_tmpdir()
        serial = os.path.join(d, "serial.out")
        args = ["-accel", "kvm", "-m", MEM, "-drive", "file=%s,format=raw" % IMAGE, "-serial", "file:" + serial]
        uri = None
        if transport == "unix":
            uri = "unix:" + os.path.join(d, "mig.sock")
        elif transport == "tcp":
            uri = "tcp:127.0.0.1:%d" % migvm.free_tcp_port()
        if uri:
            args += ["-incoming", uri]
        vm = VM(args, tmpdir=d).launch()
        vm.serial_path = serial
        vm.name = "AB"[len(self.hosts) % 2]
        vm.q = vm.qmp()
        self.hosts.append(vm)
        return vm, uri


def wait_new_lines(guest, before, n, timeout):
    """Status lines of the whole stream once n past `before` have arrived."""
    def enough():
        status = parse(guest.stream())[0]
        return status if len(status) >= before + n else None
    return wait_until(enough, timeout, interval=0.2)


def hop(guest, i, transport):
    src = guest.hosts[-1]
    dst, uri = guest.start_host(transport=transport)
    name = "hop %d %s->%s %s" % (i, src.name, dst.name, transport)
    if transport == "unix":
        wait_until(lambda: os.path.exists(uri[len("unix:"):]), 10.0)
    check_eq("%s: destination waits (inmigrate)" % name, miglib.query_status(dst.q), "inmigrate")
    src.q.cmd_ok("migrate-set-parameters", MIG_PARAMS)
    r = src.q.cmd("migrate", {"uri": uri})
    if not check("%s: migrate accepted" % name, "return" in r, r):
        return False
    info = miglib.wait_mig_status(src.q, ("completed", "failed", "cancelled"), 60.0)
    if not check_eq("%s: completed" % name, info and info.get("status"), "completed"):
        print("# %s: info=%r src stderr=%s dst stderr=%s" % (name, info, src.stderr_text()[-400:],
                                                           dst.stderr_text()[-400:]), flush=True)
        return False
    print("# %s: total-time=%s ms downtime=%s ms setup-time=%s ms transferred=%s dirty-sync=%s" % (
        name, info.get("total-time"), info.get("downtime"), info.get("setup-time"),
        info.get("ram", {}).get("transferred"), info.get("ram", {}).get("dirty-sync-count")), flush=True)
    check("%s: destination running" % name, miglib.wait_run_state(dst.q, "running", 20.0),
          "%r %s" % (miglib.query_status(dst.q), dst.stderr_text()[-400:]))
    check_eq("%s: source postmigrate" % name, miglib.query_status(src.q), "postmigrate")
    src_err = src.stderr_text()
    src.q.cmd("quit")
    check_eq("%s: old source quits with 0" % name, src.wait_exit(10.0), 0)
    # The previous host's stream is final now: its last line is the reference.
    prev_status, prev_bad, _ = parse(guest.stream(upto=len(guest.hosts) - 1))
    status = wait_new_lines(guest, len(prev_status), 2, 20.0)
    if not check("%s: destination prints two status lines" % name, status is not None,
                 "dst serial=%r dst stderr=%s" % (read_bytes(dst.serial_path)[-400:], dst.stderr_text()[-400:])):
        return False
    last, first, second = prev_status[-1], status[len(prev_status)], status[len(prev_status) + 1]
    check("%s: destination's first line continues seq (%d -> %d)" % (name, last["seq"], first["seq"]),
          first["seq"] == last["seq"] + 1 and second["seq"] == first["seq"] + 1,
          [last["seq"], first["seq"], second["seq"]])
    for key in COUNTERS:
        check("%s: %s keeps increasing on the destination (%d, %d, %d)" % (
              name, key, last[key], first[key], second[key]),
              last[key] < first[key] < second[key])
    bad = parse(guest.stream())[1][len(prev_bad):]
    check_eq("%s: errors" % name, (first["errors"], second["errors"]), (0, 0))
    check_eq("%s: no ERROR/FATAL line on the destination" % name, bad[:10], [])
    check_eq("%s: nothing on stderr" % name, (src_err, dst.stderr_text()), ("", ""))
    return True


def test_pingpong():
    guest = Guest()
    a, _ = guest.start_host()
    if not check("host A boots the guest (3 status lines)", wait_new_lines(guest, 0, 3, 40.0) is not None,
                 "serial=%r stderr=%s" % (read_bytes(a.serial_path)[-400:], a.stderr_text()[-400:])):
        return
    done = 0
    for i in range(1, HOPS + 1):
        if not hop(guest, i, "unix" if i % 2 else "tcp"):
            break
        done += 1
    check_eq("hops completed in a row", done, HOPS)
    status, bad, _ = parse(guest.stream())
    seqs = [s["seq"] for s in status]
    check("whole stream over %d hosts: seq 1..%d without gap or repeat" % (len(guest.hosts), len(seqs)),
          seqs == list(range(1, len(seqs) + 1)), seqs)
    for key in COUNTERS:
        check("whole stream: %s never goes back" % key,
              all(b[key] >= a[key] for a, b in zip(status, status[1:])), [s[key] for s in status])
    check_eq("whole stream: errors", status[-1]["errors"] if status else None, 0)
    check_eq("whole stream: ERROR/FATAL lines", bad[:10], [])
    if status:
        print("# %d hosts, %d status lines, last: %s" % (len(guest.hosts), len(status), status[-1]), flush=True)


def main():
    migvm.require_own_kvm(IMAGE)
    run("pingpong", test_pingpong)
    migvm.finish()


if __name__ == "__main__":
    main()
