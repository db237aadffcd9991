"""Migration helpers for migvm's functional tests (Python 3 stdlib only).

Builds on migvm.py (VM, QMPClient, check, wait_until): starting a source
that runs the soft accelerator's workload with its serial port on a file,
starting destinations, waiting for migration statuses, passing fds with
getfd, comparing memory dumps, and walking a migration stream to corrupt it
at known places.

The soft workload (accel-soft/workload.c): vCPU 0 writes 'A' to the serial
port, then increments the first byte of every 4 KiB page in [1 MiB, top)
forever, writing 'B' after each full pass.  The memory check is QEMU's
migration-test rule: every page's first byte is n or n-1 (mod 256) with at
most one place where the value steps down from n to n-1.
"""

import os
import re
import socket
import struct
import time

from migvm import VM, QMPError, check, error_of, new_tmpdir, qemu_mode, run, skip, wait_until

MiB = 1 << 20
PAGE = 4096
WORK_START = 1 * MiB

# ---------------------------------------------------------------------------
# Processes


def serial_size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def serial_text(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def start_vm(mem="128M", dirty_rate=None, incoming=None, extra=(), paused=False, hmp=False, machine=None,
             serial=True, launch=True, top=None):
    """A migvm with `-m mem`, the soft workload (dirty_rate MiB/s, None = the
    accelerator's default, i.e. unthrottled; top: the end of the addresses it
    writes, e.g. "64M"), its serial port on a file (vm.serial_path) and
    optionally -incoming / -S."""
    d = new_tmpdir()
    args = ["-m", mem]
    if machine:
        args += ["-M", machine]
    accel = "soft"
    if dirty_rate is not None and not qemu_mode():
        accel += ",dirty-rate=%d" % dirty_rate
    if top is not None and not qemu_mode():
        accel += ",top=%s" % top
    args += ["-accel", accel]
    serial_path = os.path.join(d, "serial.out")
    if serial:
        args += ["-serial", "file:%s" % serial_path]
    if paused:
        args += ["-S"]
    if incoming is not None:
        args += ["-incoming", incoming]
    args += list(extra)
    vm = VM(args, tmpdir=d, hmp=hmp)
    vm.serial_path = serial_path
    if launch:
        vm.launch()
    return vm


def start_kvm_guest(image, mem, accel="kvm", extra=(), incoming=None, tmpdir=None, hmp=False, env=None):
    """A migvm on `-accel accel -m mem` booting image (None: no -drive), its
    serial port on a file (vm.serial_path), optionally -incoming; env: the
    process environment (default: this one's)."""
    d = tmpdir or new_tmpdir()
    serial_path = os.path.join(d, "serial.out")
    args = ["-accel", accel, "-m", mem, "-serial", "file:" + serial_path]
    if image:
        args += ["-drive", "file=%s,format=raw" % image]
    if incoming:
        args += ["-incoming", incoming]
    vm = VM(args + list(extra), tmpdir=d, hmp=hmp, env=env).launch()
    vm.serial_path = serial_path
    return vm


def run_soft_workload_tests(tests):
    """Run (name, fn) pairs that need migvm's soft accelerator workload (a
    RAM-only guest and migvm's stream layout); against QEMU each is a SKIP."""
    for name, fn in tests:
        if qemu_mode():
            skip(name, "needs migvm's soft accelerator workload")
        else:
            run(name, fn)


def children_of(pid):
    """Direct children of pid (all its threads), from /proc."""
    out = set()
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out.update(int(x) for x in f.read().split())
    except OSError:
        pass
    return sorted(out)


def descendants_of(pid):
    """pid's children, grandchildren, ... (e.g. `sh -c CMD` and CMD of an exec: URI)."""
    out, todo = [], [pid]
    while todo:
        for c in children_of(todo.pop()):
            out.append(c)
            todo.append(c)
    return out


SANITIZER_MARKS = ("runtime error:", "AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                   "ThreadSanitizer")


def sanitizer_report(vm):
    """The first sanitizer line in vm's stderr (ASan/UBSan/TSan builds), or ''."""
    for line in vm.stderr_text().splitlines():
        if any(m in line for m in SANITIZER_MARKS):
            return line
    return ""


def set_events(q, on=True):
    q.cmd_ok("migrate-set-capabilities", capabilities=[{"capability": "events", "state": on}])


def qemu_convergence():
    """Parameters for QEMU 7.2's convergence where a test keeps a guest from
    converging on purpose: migvm's convergence controller off (it would
    throttle the guest until the migration completes); nothing for QEMU."""
    return {} if qemu_mode() else {"x-convergence-controller": False}


def set_caps(q, **caps):
    q.cmd_ok("migrate-set-capabilities",
             capabilities=[{"capability": k.replace("_", "-"), "state": v} for k, v in caps.items()])


def query_status(q):
    return q.cmd_ok("query-status")["status"]


def mig_info(q):
    return q.cmd_ok("query-migrate")


def mig_status(q):
    return mig_info(q).get("status")


def wait_mig_status(q, statuses, timeout=30.0):
    """Poll query-migrate until its status is one of `statuses` (a str or a
    collection). Returns the info dict, or None on timeout."""
    if isinstance(statuses, str):
        statuses = (statuses,)
    last = {}

    def pred():
        last["info"] = mig_info(q)
        return last["info"] if last["info"].get("status") in statuses else None
    info = wait_until(pred, timeout, interval=0.02)
    return info


def wait_run_state(q, state, timeout=10.0):
    return wait_until(lambda: query_status(q) == state, timeout)


def wait_serial_growth(path, timeout=10.0, by=1):
    """True if the file grows by `by` bytes within timeout (the guest runs)."""
    start = serial_size(path)
    return bool(wait_until(lambda: serial_size(path) >= start + by, timeout))


def send_fd(q, name, fd):
    """getfd NAME with fd passed by SCM_RIGHTS on the same message."""
    msg = ('{"execute": "getfd", "arguments": {"fdname": "%s"}}' % name).encode()
    socket.send_fds(q.sock, [msg], [fd])
    return q.recv_response()


def stuck_unix_listener(path):
    """A unix listener at path that never accepts, its backlog full: a
    blocking connect() to it waits until the listener goes away. Returns
    the sockets to close (the listener first)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(0)
    socks = [srv]
    for _ in range(64):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(path)
        except (BlockingIOError, InterruptedError):
            c.close()
            break
        socks.append(c)
    return socks


def write_failed(desc, channel_error):
    """True when error-desc is exactly the channel's error (a regex): as in
    QEMU 7.2, a failed write is reported in the channel's own words."""
    return isinstance(desc, str) and re.fullmatch(channel_error, desc) is not None


def peer_gone(desc):
    """error-desc of a source whose destination went away mid-stream."""
    return write_failed(desc, r"Unable to write to socket: (Broken pipe|Connection reset by peer)")


def event_names(events, names=("MIGRATION", "MIGRATION_PASS", "STOP", "RESUME")):
    """[(event, data-summary)] for the interesting events, in arrival order."""
    out = []
    for e in events:
        ev = e.get("event")
        if ev not in names:
            continue
        data = e.get("data", {})
        if ev == "MIGRATION":
            out.append("MIGRATION:%s" % data.get("status"))
        elif ev == "MIGRATION_PASS":
            out.append("PASS:%s" % data.get("pass"))
        else:
            out.append(ev)
    return out


def collect_events(q, until_status, timeout=30.0):
    """Read events from q until a MIGRATION event with status in until_status
    arrives (or timeout). Returns all events received (also those queued
    before)."""
    if isinstance(until_status, str):
        until_status = (until_status,)
    got = list(q.events)
    q.events = []
    deadline = time.monotonic() + timeout
    while not any(e.get("event") == "MIGRATION" and e.get("data", {}).get("status") in until_status
                  for e in got):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            msg = q.recv(remaining)
        except (TimeoutError, EOFError):
            break
        if isinstance(msg, dict) and "event" in msg:
            got.append(msg)
    return got


def drain_events(q, quiet=0.2):
    """Read whatever events arrive within `quiet` seconds of silence."""
    got = list(q.events)
    q.events = []
    while True:
        try:
            msg = q.recv(quiet)
        except (TimeoutError, EOFError):
            return got
        if isinstance(msg, dict) and "event" in msg:
            got.append(msg)


def is_subsequence(sub, seq):
    it = iter(seq)
    return all(any(x == y for y in it) for x in sub)


# ---------------------------------------------------------------------------
# Memory


def pmemsave(q, path, start, size):
    q.cmd_ok("pmemsave", val=start, size=size, filename=path)
    with open(path, "rb") as f:
        return f.read()


def check_memory_pattern(dump, start=WORK_START, base=0):
    """QEMU migration-test's rule on a dump of guest memory starting at guest
    address `base`: the first byte of every page in [start, end of dump) is n
    or n-1 (mod 256) with at most one step down from n to n-1.
    Returns (ok, detail)."""
    first = (start - base) // PAGE
    npages = len(dump) // PAGE
    if npages <= first:
        return False, "dump too small"
    last = dump[first * PAGE]
    changes = 0
    for i in range(first + 1, npages):
        b = dump[i * PAGE]
        if b == last:
            continue
        if b == (last - 1) & 0xFF and changes == 0:
            changes += 1
            last = b
            continue
        return False, "page at 0x%x has %d after %d (%d earlier step(s) down)" % (
            base + i * PAGE, b, last, changes)
    if dump[first * PAGE] == 0 and last == 0 and changes == 0:
        return False, "workload never ran (all first bytes 0)"
    return True, "first byte %d, %d step(s)" % (dump[first * PAGE], changes)


# ---------------------------------------------------------------------------
# Migration stream walking (for hostile-stream tests)


class StreamMap:
    """Offsets of the interesting places of a migvm/QEMU precopy stream:
    header, configuration, every section header and footer, RAM records.
    Only the structures this test corrupts are decoded; device bodies are
    skipped by finding their footer (0x7e + section id)."""

    def __init__(self, data):
        self.data = data
        self.sections = []       # dicts: type, off, id, name, body_off, footer_off
        self.ram_records = []    # (offset of the be64 word, flags, page offset)
        self.config_name_off = None
        self.config_name = None
        self.eof_off = None
        self._parse()

    def _parse(self):
        d = self.data
        assert d[:4] == b"QEVM", "not a migration stream"
        pos = 8
        ids = {}
        last_block = None
        while pos < len(d):
            t = d[pos]
            if t == 0x07:
                (n,) = struct.unpack_from(">I", d, pos + 1)
                self.config_name_off = pos + 5
                self.config_name = d[pos + 5:pos + 5 + n]
                pos += 5 + n
                # configuration subsections, if any, are not produced by default
                continue
            if t == 0x08:
                (_cmd, ln) = struct.unpack_from(">HH", d, pos + 1)
                pos += 5 + ln
                continue
            if t == 0x00:
                self.eof_off = pos
                return
            if t in (0x01, 0x04):
                (sid,) = struct.unpack_from(">I", d, pos + 1)
                nl = d[pos + 5]
                name = d[pos + 6:pos + 6 + nl].decode("latin-1")
                inst, ver = struct.unpack_from(">II", d, pos + 6 + nl)
                body = pos + 6 + nl + 8
                ids[sid] = name
                sec = dict(type=t, off=pos, id=sid, name=name, name_off=pos + 6, instance=inst,
                           version=ver, version_off=pos + 6 + nl + 4, body_off=body)
            elif t in (0x02, 0x03):
                (sid,) = struct.unpack_from(">I", d, pos + 1)
                body = pos + 5
                sec = dict(type=t, off=pos, id=sid, name=ids.get(sid), body_off=body)
            else:
                raise ValueError("unknown section type 0x%x at %d" % (t, pos))
            if sec["name"] == "ram":
                end, last_block = self._walk_ram(body, t == 0x01, last_block)
            else:
                end = self._find_footer(body, sid)
            if d[end] != 0x7E or struct.unpack_from(">I", d, end + 1)[0] != sid:
                raise ValueError("no footer for section %d at %d" % (sid, end))
            sec["footer_off"] = end
            self.sections.append(sec)
            pos = end + 5

    def _find_footer(self, pos, sid):
        needle = b"\x7e" + struct.pack(">I", sid)
        i = self.data.find(needle, pos)
        if i < 0:
            raise ValueError("footer of section %d not found" % sid)
        return i

    def _walk_ram(self, pos, setup, last_block):
        d = self.data
        while True:
            (word,) = struct.unpack_from(">Q", d, pos)
            flags = word & (PAGE - 1)
            off = word & ~(PAGE - 1)
            rec = pos
            pos += 8
            if flags & 0x10:
                return pos, last_block
            if flags & 0x04:
                total = off
                while total > 0:
                    nl = d[pos]
                    pos += 1 + nl
                    (ln,) = struct.unpack_from(">Q", d, pos)
                    pos += 8
                    total -= ln
                continue
            if not flags & 0x20:
                nl = d[pos]
                last_block = d[pos + 1:pos + 1 + nl]
                pos += 1 + nl
            self.ram_records.append((rec, flags, off))
            if flags & 0x02:
                pos += 1
            elif flags & 0x08:
                pos += PAGE
            else:
                raise ValueError("unexpected RAM flags 0x%x at %d" % (flags, rec))

    def section(self, name=None, type=None):
        for s in self.sections:
            if (name is None or s["name"] == name) and (type is None or s["type"] == type):
                return s
        return None


def patched(data, off, new):
    return data[:off] + new + data[off + len(new):]


def flip(data, off, mask=0xFF):
    return data[:off] + bytes([data[off] ^ mask]) + data[off + 1:]


def expect_qmp_error(name, resp, text):
    err = error_of(resp)
    return check(name, err is not None and text in (err[1] or ""), "response %r, expected error containing %r"
                 % (resp, text))


__all__ = [n for n in dir() if not n.startswith("_")] + ["QMPError", "VM"]
