#!/usr/bin/env python3
"""The pre-flight check: x-migrate-check / HMP migrate_check against a
listening destination, no guest data, the source never paused.

* compatible: the answer says so, the source kept running, the destination
  is still listening (no MIGRATION event, nothing in its flight recorder),
  and a real migration right after completes; a second check works too;
* RAM size mismatch (64M against 128M): the problem names the block and
  both sizes;
* KVM: a missing device (source -smp 2, destination -smp 1: section cpu
  instance 1 absent) and a CPU feature the destination's KVM lacks
  (x-cpuid-hide=x2apic: the loader's own refusal, naming the feature);
* multifd, which a migration needs at both ends with the same channels
  and compression: on at one end only, 2 channels against 3, zlib against
  none are problems; the same settings are compatible;
* postcopy-ram on the source needs it on the destination (a problem when
  it is off there; compatible when on);
* block migration: a disk of another size is named with both sizes;
* a QEMU 7.2 destination does not speak it: the error says so;
* what the source sends: the MVCP header and a JSON description
  (a fake destination reads it);
* a destination that takes the connection and never answers: the check
  fails within its 10 s, saying so, and the monitor and guest carry on.
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
from migvm import check, check_eq, finish, new_tmpdir, require_binary, run, skip  # noqa: E402
from miglib import (mig_info, query_status, set_events, start_kvm_guest, start_vm, wait_mig_status,  # noqa: E402
                    wait_run_state, wait_until)


def listening_dest(mem, extra=(), accel=None):
    sock = os.path.join(new_tmpdir(), "mig.sock")
    if accel:
        dst = start_kvm_guest(None, mem, accel=accel, extra=extra, incoming="unix:" + sock)
    else:
        dst = start_vm(mem, incoming="unix:" + sock, extra=extra)
    qd = dst.qmp()
    return dst, qd, "unix:" + sock


def problems(r):
    return [(p["item"], p["source"], p["destination"]) for p in r.get("problems", [])]


def test_compatible_then_migrate():
    src = start_vm("64M", dirty_rate=32)
    qs = src.qmp()
    qs.cmd_ok("migrate-set-parameters", downtime_limit=2000)      # converges on a loaded host too
    dst, qd, uri = listening_dest("64M")
    set_events(qd)
    r = qs.cmd_ok("x-migrate-check", uri=uri)
    check_eq("compatible", r, {"compatible": True, "problems": []})
    check_eq("HMP migrate_check", qs.hmp("migrate_check " + uri), "migration check: compatible\r\n")
    check_eq("source still running", query_status(qs), "running")
    check_eq("destination still waiting", query_status(qd), "inmigrate")
    check("destination still listening (socket-address)", "socket-address" in mig_info(qd), mig_info(qd))
    check_eq("no migration on the destination's flight recorder", qd.cmd_ok("x-query-migration-history"), [])
    check_eq("no MIGRATION event on the destination", [e for e in qd.events if e["event"] == "MIGRATION"], [])
    qs.cmd_ok("migrate", uri=uri)
    check("the real migration completes right after", wait_mig_status(qs, "completed", 60) is not None,
          mig_info(qs))
    check("destination running", wait_run_state(qd, "running", 10), query_status(qd))


def test_ram_mismatch():
    src = start_vm("64M")
    qs = src.qmp()
    dst, qd, uri = listening_dest("128M")
    r = qs.cmd_ok("x-migrate-check", uri=uri)
    check_eq("RAM size mismatch", (r["compatible"], problems(r)),
             (False, [("ram block pc.ram", "67108864 bytes", "134217728 bytes")]))
    check_eq("HMP", qs.hmp("migrate_check " + uri),
             "migration check: incompatible\r\n  ram block pc.ram: source 67108864 bytes, "
             "destination 134217728 bytes\r\n")
    check_eq("destination still waiting", query_status(qd), "inmigrate")


def multifd(q, channels, compression="none"):
    q.cmd_ok("migrate-set-capabilities", capabilities=[{"capability": "multifd", "state": True}])
    q.cmd_ok("migrate-set-parameters", multifd_channels=channels, multifd_compression=compression)


def test_multifd():
    src = start_vm("16M")
    qs = src.qmp()
    multifd(qs, 2)
    cases = [("multifd on the source only", None, [("capability multifd", "on", "off")]),
             ("2 channels against 3", (3, "none"), [("parameter multifd-channels", "2", "3")]),
             ("zlib against none", (2, "none"), None),
             ("the same settings", (2, "none"), [])]
    for name, dst_setting, want in cases:
        dst, qd, uri = listening_dest("16M")
        if dst_setting:
            multifd(qd, *dst_setting)
        if want is None:        # the source's compression changes
            qs.cmd_ok("migrate-set-parameters", multifd_compression="zlib")
            want = [("parameter multifd-compression", "zlib", "none")]
        r = qs.cmd_ok("x-migrate-check", uri=uri)
        check_eq("multifd: " + name, (r["compatible"], problems(r)), (not want, want))
        qs.cmd_ok("migrate-set-parameters", multifd_compression="none")
        check_eq("multifd: %s: destination still waiting" % name, query_status(qd), "inmigrate")
        dst.kill()


def test_postcopy():
    src = start_vm("16M")
    qs = src.qmp()
    qs.cmd_ok("migrate-set-capabilities", capabilities=[{"capability": "postcopy-ram", "state": True}])
    dst, qd, uri = listening_dest("16M")
    r = qs.cmd_ok("x-migrate-check", uri=uri)
    check_eq("postcopy-ram on the source only", (r["compatible"], problems(r)),
             (False, [("capability postcopy-ram", "on", "off")]))
    dst2, qd2, uri2 = listening_dest("16M")
    qd2.cmd_ok("migrate-set-capabilities", capabilities=[{"capability": "postcopy-ram", "state": True}])
    check_eq("postcopy-ram at both ends: compatible", qs.cmd_ok("x-migrate-check", uri=uri2),
             {"compatible": True, "problems": []})


def test_disk_size():
    d = new_tmpdir()
    drives = []
    for name, size in (("src", 2 << 20), ("dst", 3 << 20)):
        path = os.path.join(d, name + ".img")
        with open(path, "wb") as f:
            f.truncate(size)
        drives.append(["-drive", "if=none,id=d0,file=%s,format=raw" % path])
    src = start_vm("16M", machine="none", extra=drives[0])
    qs = src.qmp()
    dst, qd, uri = listening_dest("16M", extra=["-M", "none"] + drives[1])
    check_eq("without block migration the disks do not travel: compatible",
             qs.cmd_ok("x-migrate-check", uri=uri), {"compatible": True, "problems": []})
    qs.cmd_ok("migrate-set-capabilities", capabilities=[{"capability": "block", "state": True}])
    r = qs.cmd_ok("x-migrate-check", uri=uri)
    check_eq("block migration: disk size mismatch", (r["compatible"], problems(r)),
             (False, [("disk d0", "2097152 bytes", "3145728 bytes")]))


def test_kvm_device_and_cpu():
    why = migvm.kvm_usable()
    if why:
        skip("missing device and CPU feature", why)
        return
    src = start_kvm_guest(None, "64M", extra=["-smp", "2"])
    qs = src.qmp()
    dst, qd, uri = listening_dest("64M", accel="kvm")
    r = qs.cmd_ok("x-migrate-check", uri=uri)
    check_eq("missing device: the second vCPU", (r["compatible"], problems(r)),
             (False, [("section cpu instance 1", "version 2", "absent")]))
    dst2, qd2, uri2 = listening_dest("64M", extra=["-smp", "2"], accel="kvm,x-cpuid-hide=x2apic")
    r = qs.cmd_ok("x-migrate-check", uri=uri2)
    p = problems(r)
    check("CPU feature: refused, naming x2apic", not r["compatible"] and len(p) == 1
          and "lacks CPU features" in p[0][2] and "x2apic" in p[0][2], r)
    check_eq("destination still waiting", query_status(qd2), "inmigrate")
    dst3, qd3, uri3 = listening_dest("64M", extra=["-smp", "2"], accel="kvm")
    check_eq("the same destination without the hidden feature: compatible",
             qs.cmd_ok("x-migrate-check", uri=uri3), {"compatible": True, "problems": []})


def test_qemu_destination():
    if not shutil.which("qemu-system-x86_64"):
        skip("QEMU destination", "qemu-system-x86_64 is not installed")
        return
    d = new_tmpdir()
    sock = os.path.join(d, "mig.sock")
    q = subprocess.Popen(["qemu-system-x86_64", "-M", "none", "-display", "none", "-nodefaults",
                          "-incoming", "unix:" + sock], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    migvm.track_pid(q.pid)
    try:
        check("QEMU listens", wait_until(lambda: os.path.exists(sock), 10))
        src = start_vm("64M", machine="none")
        qs = src.qmp()
        r = qs.cmd("x-migrate-check", uri="unix:" + sock)
        desc = r.get("error", {}).get("desc", "")
        check("QEMU: says plainly it does not speak the check", "does not speak the pre-flight check" in desc, r)
    finally:
        q.kill()
        q.wait()


def test_request_format():
    sock = os.path.join(new_tmpdir(), "fake.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(sock)
    srv.listen(1)
    got = {}

    def serve():
        c, _ = srv.accept()
        f = c.makefile("rb")
        head = f.read(12)
        magic, version, n = struct.unpack(">III", head)
        got["head"] = (magic, version)
        got["body"] = json.loads(f.read(n))
        answer = json.dumps({"compatible": False, "problems": [{"item": "x", "source": "a",
                                                                  "destination": "b"}]}).encode()
        c.sendall(struct.pack(">II", magic, len(answer)) + answer)
        c.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    src = start_vm("64M")
    qs = src.qmp()
    r = qs.cmd_ok("x-migrate-check", uri="unix:" + sock)
    t.join(10)
    check_eq("header: MVCP, version 1", got.get("head"), (0x4d564350, 1))
    body = got.get("body", {})
    check("description: machine, ram, sections, capabilities, stream",
          body.get("ram") == [{"name": "pc.ram", "size": 64 << 20}] and body.get("machine")
          and {"name": "ram", "instance": 0, "version": 4} in body.get("sections", [])
          and isinstance(body.get("capabilities"), list) and body.get("stream"), body)
    check_eq("the destination's answer, as QMP", r,
             {"compatible": False, "problems": [{"item": "x", "source": "a", "destination": "b"}]})


def test_silent_destination():
    sock = os.path.join(new_tmpdir(), "silent.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(sock)
    srv.listen(1)           # the kernel completes the connection; nobody reads or answers
    try:
        src = start_vm("64M")
        qs = src.qmp()
        t0 = time.monotonic()
        r = qs.cmd("x-migrate-check", uri="unix:" + sock, timeout=40)
        took = time.monotonic() - t0
        check_eq("silent destination: the error says it did not answer in time",
                 r.get("error", {}).get("desc"),
                 "the destination did not answer the pre-flight check within 10 s (waiting for its verdict)")
        check("silent destination: within the check's 10 s (not the 30 s dead-link timeout)", 8 <= took < 15,
              "%.1f s" % took)
        check_eq("silent destination: the source guest still running", query_status(qs), "running")
    finally:
        srv.close()


def timed(name, fn):
    t0 = time.monotonic()
    run(name, fn)
    print("# %s: %.1f s" % (name, time.monotonic() - t0))


if __name__ == "__main__":
    require_binary()
    timed("compatible, then a real migration", test_compatible_then_migrate)
    timed("RAM size mismatch", test_ram_mismatch)
    timed("KVM: missing device, CPU feature", test_kvm_device_and_cpu)
    timed("multifd settings", test_multifd)
    timed("postcopy-ram", test_postcopy)
    timed("disk size with block migration", test_disk_size)
    timed("QEMU destination", test_qemu_destination)
    timed("request format", test_request_format)
    timed("silent destination", test_silent_destination)
    finish()
