"""The boot-sector guest (guest/boot-sector.S) for the functional tests: it
prints 'A' on COM1, then a 'B' after each pass over its pages. Starting it on
KVM, reading its serial output, waiting for and timing its passes (the soft
accelerator's workload prints the same 'A' and 'B's: pass_rate times both)."""

import os
import time

import miglib
from migvm import free_tcp_port, new_tmpdir, wait_until

BUILD = os.environ.get("BUILD", "build")
GUEST_IMG = os.path.abspath(os.path.join(BUILD, "guest", "boot-sector.img"))
MEM = "128M"


def start_guest(image=GUEST_IMG, mem=MEM, extra=(), incoming=None, tmpdir=None, accel="kvm"):
    return miglib.start_kvm_guest(image, mem, accel, extra, incoming, tmpdir)


def start_workload(kind, mem, incoming=None, tmpdir=None, soft_dirty_rate=0):
    """kind "kvm": this guest; "soft": the soft accelerator's workload at
    soft_dirty_rate MiB/s (0: as fast as it can)."""
    if kind == "kvm":
        return start_guest(mem=mem, incoming=incoming, tmpdir=tmpdir)
    return miglib.start_vm(mem, dirty_rate=soft_dirty_rate, incoming=incoming)


def new_destination(kind, mem, transport="unix", soft_dirty_rate=0):
    """start_workload as a destination listening on a new unix socket or a
    free tcp port: (vm, its QMP, the URI to migrate to)."""
    d = new_tmpdir()
    if transport == "unix":
        uri = "unix:" + os.path.join(d, "mig.sock")
    else:
        uri = "tcp:127.0.0.1:%d" % free_tcp_port()
    dst = start_workload(kind, mem, uri, d, soft_dirty_rate)
    return dst, dst.qmp(), uri


def serial(vm):
    return miglib.serial_text(vm.serial_path)


def b_count(vm):
    return serial(vm).count(b"B")


def wait_passes(vm, n, timeout=30.0):
    """True once the serial output is 'A' followed by at least n 'B's."""
    return bool(wait_until(lambda: serial(vm).startswith(b"A") and serial(vm).count(b"B") >= n, timeout))


def stays_quiet(vm, seconds=2.0):
    """True if the serial file does not grow for `seconds` (guest paused)."""
    start = miglib.serial_size(vm.serial_path)
    return wait_until(lambda: miglib.serial_size(vm.serial_path) != start, seconds) is None


def pass_rate(vm, seconds, q=None, infos=None):
    """Guest passes per second, from the times at which 'B's appear on the
    serial output during a window of about `seconds` (a pass may take a
    second, so counting whole passes in the window would be too coarse).
    With q, query-migrate's active infos meanwhile go to the list infos."""
    stamps, n = [], b_count(vm)
    end = time.monotonic() + seconds
    next_query = 0.0
    while time.monotonic() < end or (len(stamps) < 2 and time.monotonic() < end + 3 * seconds):
        m = b_count(vm)
        if m != n:
            stamps += [time.monotonic()] * (m - n)
            n = m
        if q is not None and time.monotonic() >= next_query:
            info = miglib.mig_info(q)
            if info.get("status") == "active":
                infos.append(info)
            next_query = time.monotonic() + 0.05
        time.sleep(0.005)   # polling the serial file; the window itself is what is measured
    if len(stamps) < 2:
        return len(stamps) / seconds
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])
