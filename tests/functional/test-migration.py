#!/usr/bin/env python3
"""Live migration between two real migvm processes, over every transport.

For each transport (tcp IPv4, tcp [::1], tcp via the host name localhost,
unix, exec, fd with a socketpair passed by getfd, file, file with
,offset=4096 after a header that must stay as it was, fd with a regular
file's descriptor on both sides) two migrations of a running soft workload
are made:

  live:    the destination starts the guest itself. Checked: MIGRATION /
           MIGRATION_PASS / STOP / RESUME events and their order on both
           sides, query-migrate's shape on the source (completed) and the
           destination, final run states (postmigrate / running), and the
           destination's serial port keeps receiving 'B' (a pass of the
           workload) after the switch.
  frozen:  the destination has -S. The source is stopped at the switch
           (postmigrate) and the destination has not run yet, so pmemsave of
           the whole RAM on both sides must give identical files, and the
           destination's dump must pass QEMU's migration-test memory rule.
           Then `cont` starts the destination (RESUME, running, serial grows).

fd: also checks that the consumed descriptor names are gone on both sides
(closefd → "File descriptor named 'x' not found"). file-offset-bad: an
offset that is not a number is refused on both sides with the offset quoted.
"""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migvm import (check, check_eq, finish, free_tcp_port, qemu_mode, require_binary,  # noqa: E402
                   run, skip, skip_all)
from miglib import (MiB, check_memory_pattern, collect_events, drain_events, error_of,  # noqa: E402
                    event_names, is_subsequence, mig_info, pmemsave, query_status, sanitizer_report, send_fd,
                    serial_size, serial_text, set_events, start_vm, wait_mig_status,
                    wait_serial_growth, wait_until)

MEM_MB = 64
MEM = "%dM" % MEM_MB
RATE = 100                 # MiB/s dirtied: one workload pass (63 MiB) every ~0.6 s
COMPLETE_TIMEOUT = 30.0

COMPLETED_KEYS = {"status", "setup-time", "total-time", "downtime", "ram"}
HEADER = bytes(range(256)) * 16      # 4 KiB before the stream in file:...,offset=4096


def ipv6_loopback_works():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def start_source():
    src = start_vm(MEM, dirty_rate=RATE)
    qs = src.qmp()
    set_events(qs)
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=0)     # 0 = unlimited in migvm
    # The guest is really running: 'A' then at least one 'B'.
    if not wait_until(lambda: b"B" in serial_text(src.serial_path), 10):
        raise RuntimeError("source workload never completed a pass: serial %r" % serial_text(src.serial_path)[:40])
    return src, qs


def listening_port(qd):
    info = mig_info(qd)
    addrs = info.get("socket-address") or []
    if not addrs:
        raise RuntimeError("destination query-migrate has no socket-address: %r" % info)
    return addrs[0]["port"]


class Dest:
    """How one transport is wired: dest() starts the destination (before or
    after the source ran), uri is what the source's migrate gets."""

    def __init__(self, kind, paused):
        self.kind = kind
        self.paused = paused
        self.vm = None
        self.q = None
        self.socks = []

    def _start(self, incoming):
        self.vm = start_vm(MEM, dirty_rate=RATE, incoming=incoming, paused=self.paused)
        self.q = self.vm.qmp()
        set_events(self.q)
        return self.vm

    def before_source(self, src, qs):
        """Start a destination that listens; return the source URI (or None
        if the destination is started after the source finished)."""
        k = self.kind
        if k == "tcp4":
            self._start("tcp:127.0.0.1:0")
            return "tcp:127.0.0.1:%s" % listening_port(self.q)
        if k == "tcp6":
            self._start("tcp:[::1]:0")
            return "tcp:[::1]:%s" % listening_port(self.q)
        if k == "tcphost":
            port = free_tcp_port()
            self._start("tcp:localhost:%d" % port)
            return "tcp:localhost:%d" % port
        if k == "unix":
            path = os.path.join(src.dir, "mig.sock")
            self._start("unix:%s" % path)
            return "unix:%s" % path
        if k == "fd":
            self._start("defer")
            a, b = socket.socketpair()
            self.socks = [a, b]
            r = send_fd(self.q, "fdmig", b.fileno())
            check_eq("fd: getfd on the destination", r, {"return": {}})
            self.q.cmd_ok("migrate-incoming", uri="fd:fdmig")
            r = send_fd(qs, "fdmig", a.fileno())
            check_eq("fd: getfd on the source", r, {"return": {}})
            a.close()
            b.close()
            return "fd:fdmig"
        self.path = os.path.join(src.dir, "stream.mig")
        if k == "exec":
            return "exec:cat > %s" % self.path
        if k == "file":
            return "file:%s" % self.path
        if k == "file-offset":
            # The stream goes after a header the source must leave alone.
            with open(self.path, "wb") as f:
                f.write(HEADER)
            return "file:%s,offset=%d" % (self.path, len(HEADER))
        if k == "fd-file":
            # A regular file's descriptor: a one-way channel, no return path.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            r = send_fd(qs, "fdmig", fd)
            os.close(fd)
            check_eq("fd-file: getfd of a file on the source", r, {"return": {}})
            return "fd:fdmig"
        raise ValueError(k)

    def after_source(self):
        """exec/file: start the destination on the stream the source wrote.
        The live variant uses -incoming defer + migrate-incoming (so the
        events capability is on before the load starts); the frozen one the
        command-line form."""
        if self.vm is not None:
            return
        if self.kind == "file-offset":
            with open(self.path, "rb") as f:
                check_eq("file-offset: the bytes before the offset are untouched", f.read(len(HEADER)), HEADER)
        if self.kind == "fd-file":
            self._start("defer")
            fd = os.open(self.path, os.O_RDONLY)
            r = send_fd(self.q, "fdmig", fd)
            os.close(fd)
            check_eq("fd-file: getfd of a file on the destination", r, {"return": {}})
            self.q.cmd_ok("migrate-incoming", uri="fd:fdmig")
            return
        uri = {"exec": "exec:cat %s" % self.path,
               "file": "file:%s" % self.path,
               "file-offset": "file:%s,offset=%d" % (self.path, len(HEADER))}[self.kind]
        if self.paused:
            self._start(uri)
        else:
            self._start("defer")
            self.q.cmd_ok("migrate-incoming", uri=uri)


def check_source_events(name, events):
    names = event_names(events)
    mig = [n for n in names if n.startswith("MIGRATION:")]
    check_eq("%s: source MIGRATION statuses" % name, mig,
             ["MIGRATION:setup", "MIGRATION:active", "MIGRATION:completed"])
    check("%s: source STOP between active and completed" % name,
          is_subsequence(["MIGRATION:active", "STOP", "MIGRATION:completed"], names), names)
    passes = [int(n.split(":")[1]) for n in names if n.startswith("PASS:")]
    check("%s: MIGRATION_PASS 1, 2, ... in order, at least 2" % name,
          len(passes) >= 2 and passes == list(range(1, len(passes) + 1)), names)
    check("%s: MIGRATION_PASS 1 before active, last pass after STOP" % name,
          is_subsequence(["MIGRATION:setup", "PASS:1", "MIGRATION:active", "STOP",
                          "PASS:%d" % (passes[-1] if passes else -1), "MIGRATION:completed"], names), names)
    return passes


def check_completed_info(name, info, passes):
    check_eq("%s: completed query-migrate members" % name, set(info.keys()), COMPLETED_KEYS)
    ram = info.get("ram", {})
    check_eq("%s: ram.remaining" % name, ram.get("remaining"), 0)
    check("%s: ram.transferred > 0" % name, ram.get("transferred", 0) > 0, ram)
    check_eq("%s: ram.total = RAM size" % name, ram.get("total"), MEM_MB * MiB)
    check("%s: ram.dirty-sync-count >= 2" % name, ram.get("dirty-sync-count", 0) >= 2, ram)
    check_eq("%s: dirty-sync-count = last MIGRATION_PASS" % name, ram.get("dirty-sync-count"),
             passes[-1] if passes else None)
    pages = MEM_MB * MiB // 4096
    check("%s: normal + duplicate covers every page" % name,
          ram.get("normal", 0) + ram.get("duplicate", 0) >= pages, ram)
    check_eq("%s: normal-bytes = normal * page-size" % name, ram.get("normal-bytes"),
             ram.get("normal", 0) * ram.get("page-size", 0))
    check("%s: transferred >= normal-bytes" % name, ram.get("transferred", 0) >= ram.get("normal-bytes", 1 << 62), ram)
    check("%s: times sane (0 <= setup-time, downtime <= total-time)" % name,
          all(isinstance(info.get(k), int) for k in ("setup-time", "downtime", "total-time"))
          and 0 <= info["setup-time"] <= info["total-time"] and 0 <= info["downtime"] <= info["total-time"],
          info)
    check("%s: downtime under 2 s" % name, 0 <= info.get("downtime", -1) < 2000, info)


def migrate_case(kind, paused):
    name = "%s/%s" % (kind, "frozen" if paused else "live")
    src, qs = start_source()
    d = Dest(kind, paused)
    uri = d.before_source(src, qs)
    t0 = time.monotonic()
    r = qs.cmd("migrate", uri=uri)
    check_eq("%s: migrate returns {}" % name, r, {"return": {}})
    info = wait_mig_status(qs, ("completed", "failed", "cancelled"), COMPLETE_TIMEOUT)
    elapsed = time.monotonic() - t0
    if not check_eq("%s: source status completed" % name, (info or {}).get("status"), "completed"):
        print("#   info: %r\n#   source stderr: %s" % (info, src.stderr_text()[-500:]))
        return
    print("#   %s: %.2f s, total-time %s ms, downtime %s ms, transferred %d KiB, normal %d, duplicate %d, syncs %d"
          % (name, elapsed, info["total-time"], info["downtime"], info["ram"]["transferred"] // 1024,
             info["ram"]["normal"], info["ram"]["duplicate"], info["ram"]["dirty-sync-count"]), flush=True)
    src_events = collect_events(qs, "completed", 5)
    passes = check_source_events(name, src_events)
    check_completed_info(name, info, passes)
    check_eq("%s: source run state postmigrate" % name, query_status(qs), "postmigrate")

    d.after_source()
    qd = d.q
    dinfo = wait_mig_status(qd, ("completed", "failed"), COMPLETE_TIMEOUT)
    if not check_eq("%s: destination status completed" % name, (dinfo or {}).get("status"), "completed"):
        print("#   dest info %r\n#   dest stderr: %s" % (dinfo, d.vm.stderr_text()[-500:]))
        return
    if kind == "tcp4":      # same code for every transport: checked once
        check("%s: destination query-migrate has status only" % name, set(dinfo.keys()) == {"status"}, dinfo)
    # exec/file frozen: the load starts at process start, before QMP can turn events on.
    cmdline_load = paused and kind in ("exec", "file", "file-offset")
    dst_events = collect_events(qd, "completed", 5)
    dnames = event_names(dst_events)

    if not paused:
        check_eq("%s: destination events" % name,
                 [n for n in dnames if n in ("MIGRATION:active", "RESUME", "MIGRATION:completed")],
                 ["MIGRATION:active", "RESUME", "MIGRATION:completed"])
        check_eq("%s: destination running" % name, query_status(qd), "running")
    else:
        got = [n for n in dnames if n in ("MIGRATION:active", "RESUME", "MIGRATION:completed")]
        # A command-line load can run before the client turns events on: it
        # sees the end of the sequence only, from none of it (a quiet, fast
        # machine) to all of it (a slow start: loaded machine, sanitizers).
        expected = ["MIGRATION:active", "MIGRATION:completed"]
        if cmdline_load and got in ([], expected[1:]):
            expected = got
        check_eq("%s: destination events (no RESUME with -S)" % name, got, expected)
        check_eq("%s: destination paused (-S)" % name, query_status(qd), "paused")
        check_eq("%s: destination serial silent before cont" % name, serial_size(d.vm.serial_path), 0)
        sdump = pmemsave(qs, os.path.join(src.dir, "src.mem"), 0, MEM_MB * MiB)
        ddump = pmemsave(qd, os.path.join(d.vm.dir, "dst.mem"), 0, MEM_MB * MiB)
        same = sdump == ddump
        detail = ""
        if not same:
            diff = [i for i in range(0, min(len(sdump), len(ddump)), 4096) if sdump[i:i + 4096] != ddump[i:i + 4096]]
            detail = "%d pages differ, first at 0x%x" % (len(diff), diff[0] if diff else -1)
        check("%s: source and destination RAM byte-identical (%d MiB)" % (name, MEM_MB),
              same and len(sdump) == MEM_MB * MiB, detail)
        ok, why = check_memory_pattern(ddump)
        check("%s: destination memory consistent (%s)" % (name, why), ok, why)
        os.unlink(os.path.join(src.dir, "src.mem"))
        os.unlink(os.path.join(d.vm.dir, "dst.mem"))
        check_eq("%s: cont on destination" % name, qd.cmd("cont"), {"return": {}})
        check("%s: RESUME after cont" % name, qd.wait_event("RESUME", 5) is not None)
        check_eq("%s: destination running after cont" % name, query_status(qd), "running")

    grew = wait_until(lambda: b"B" in serial_text(d.vm.serial_path), 10)
    check("%s: destination guest keeps working (serial gets 'B')" % name, grew,
          "serial %r" % serial_text(d.vm.serial_path)[:40])
    text = serial_text(d.vm.serial_path)
    check("%s: destination serial only workload bytes" % name, set(text) <= set(b"AB"), text[:40])
    if wait_serial_growth(d.vm.serial_path, 10):
        check("%s: destination serial keeps growing" % name, True)
    else:
        check("%s: destination serial keeps growing" % name, False, "size stuck at %d" % serial_size(d.vm.serial_path))
    check_eq("%s: source still postmigrate" % name, query_status(qs), "postmigrate")
    if kind in ("fd", "fd-file"):
        for side, q in (("source", qs), ("destination", qd)):
            r = q.cmd("closefd", fdname="fdmig")
            err = error_of(r)
            check_eq("%s: closefd of the consumed name on the %s" % (kind, side), err and err[1],
                     "File descriptor named 'fdmig' not found")
    for side, vm in (("source", src), ("destination", d.vm)):
        report = sanitizer_report(vm)
        check("%s: no sanitizer report on the %s" % (name, side), not report, report)
    if getattr(d, "path", None) and os.path.exists(d.path):
        os.unlink(d.path)
    drain_events(qs, 0.01)


def bad_file_offset():
    """file: with an offset that is not a number: refused at once on both
    sides with the offset quoted; the source keeps running, the destination
    keeps waiting and then loads a good file: URI."""
    src, qs = start_source()
    path = os.path.join(src.dir, "stream.mig")
    for text in ("0x20M", "abc", "", "-"):
        r = qs.cmd("migrate", uri="file:%s,offset=%s" % (path, text))
        want = "file URI has bad offset %s" % text
        check_eq("file-offset-bad: migrate with offset=%r refused" % text, error_of(r), ("GenericError", want))
        # As QEMU 7.2 after a bad address: the attempt shows as failed.
        check_eq("file-offset-bad: offset=%r: query-migrate" % text, mig_info(qs),
                 {"status": "failed", "error-desc": want})
    check_eq("file-offset-bad: source still running", query_status(qs), "running")
    check("file-offset-bad: no file written", not os.path.exists(path))
    dst = start_vm(MEM, dirty_rate=RATE, incoming="defer")
    qd = dst.qmp()
    r = qd.cmd("migrate-incoming", uri="file:%s,offset=0x20M" % path)
    check_eq("file-offset-bad: migrate-incoming refused", error_of(r),
             ("GenericError", "file URI has bad offset 0x20M"))
    check_eq("file-offset-bad: destination still inmigrate", query_status(qd), "inmigrate")
    check_eq("file-offset-bad: the source then migrates", qs.cmd("migrate", uri="file:" + path), {"return": {}})
    info = wait_mig_status(qs, ("completed", "failed", "cancelled"), COMPLETE_TIMEOUT)
    check_eq("file-offset-bad: source completed", (info or {}).get("status"), "completed")
    check_eq("file-offset-bad: migrate-incoming with a good URI", qd.cmd("migrate-incoming", uri="file:" + path),
             {"return": {}})
    dinfo = wait_mig_status(qd, ("completed", "failed"), COMPLETE_TIMEOUT)
    check_eq("file-offset-bad: destination completed", (dinfo or {}).get("status"), "completed")


def main():
    require_binary()
    if qemu_mode():
        skip_all("needs migvm's soft accelerator workload (-accel soft)")
    kinds = ["tcp4", "tcp6", "tcphost", "unix", "exec", "fd", "file", "file-offset", "fd-file"]
    have6 = ipv6_loopback_works()
    t0 = time.monotonic()
    for kind in kinds:
        for paused in (False, True):
            label = "%s/%s" % (kind, "frozen" if paused else "live")
            if kind == "tcp6" and not have6:
                skip(label, "no IPv6 loopback")
                continue
            run(label, migrate_case, kind, paused)
    run("file-offset-bad", bad_file_offset)
    print("# total %.1f s" % (time.monotonic() - t0))
    finish()


if __name__ == "__main__":
    main()
