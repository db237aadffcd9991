"""Helpers for migvm's functional tests (Python 3 standard library only).

A test script imports this module, starts real migvm processes with VM(...),
talks to them over real sockets (QMPClient, HMPClient) and reports with
check().  The closing line is exactly one `N passed, N failed[, N skipped]`;
the exit status is 1 when any check failed.  A test that cannot run at all
prints `SKIP: <reason>` (skip_all).

Binary: $MIGVM_TEST_BINARY, else $BUILD/migvm (BUILD defaults to "build").
With MIGVM_TEST_BINARY=qemu-system-x86_64 the same tests run against QEMU 7.2
(qemu_mode() is true; `-accel soft` becomes `-accel tcg`, and tests that need
what only migvm offers, e.g. several clients on one -qmp socket, skip).

Every process started here is killed at the latest when the script exits
(atexit and a SIGTERM/SIGINT handler); a test never waits without a deadline.
"""

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

# --------------------------------------------------------------------------
# Test harness

_passed = 0
_failed = 0
_skipped = 0


def check(name, condition, detail=""):
    """Count one check; print `ok - name` or `FAIL - name: detail`."""
    global _passed, _failed
    if condition:
        _passed += 1
        print("ok - %s" % name, flush=True)
    else:
        _failed += 1
        print("FAIL - %s: %s" % (name, _short(detail)), flush=True)
    return bool(condition)


def check_eq(name, got, expected):
    return check(name, got == expected, "got %r, expected %r" % (got, expected))


def skip(name, reason):
    global _skipped
    _skipped += 1
    print("skip - %s: %s" % (name, reason), flush=True)


def skip_all(reason):
    """The whole test cannot run: print SKIP and exit 0. Only for what the
    project does not control: no usable /dev/kvm, no QEMU, or a QEMU that
    cannot run on this host."""
    print("SKIP: %s" % reason, flush=True)
    cleanup()
    sys.exit(0)


def fail_all(reason):
    """The whole test cannot run because of the project (e.g. something
    `make` builds is missing): one failed check, exit 1."""
    check(reason, False, "the test cannot run")
    finish()


def run(name, fn, *args, **kwargs):
    """Run one test section; an exception counts as one failed check, and the
    section's processes are killed either way."""
    try:
        fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - report and go on with the next section
        tb = traceback.extract_tb(sys.exc_info()[2])
        where = ["%s:%d" % (os.path.basename(f.filename), f.lineno) for f in tb[-3:]]
        check("%s (no exception)" % name, False, "%s: %s at %s" % (type(e).__name__, e, " < ".join(reversed(where))))
    finally:
        kill_all()


def finish():
    """Print the closing line and exit."""
    cleanup()
    line = "%d passed, %d failed" % (_passed, _failed)
    if _skipped:
        line += ", %d skipped" % _skipped
    print(line, flush=True)
    sys.exit(1 if _failed else 0)


def _short(text, limit=600):
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "...(%d more chars)" % (len(text) - limit)


# --------------------------------------------------------------------------
# Waiting

def kvm_usable():
    """None when /dev/kvm opens read-write, else the reason it does not."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        return "/dev/kvm: %s" % e.strerror
    os.close(fd)
    return None


def require_own_kvm(*images):
    """SKIP the whole test unless it can exercise migvm's own KVM machine:
    the binary is built, it is migvm (not QEMU), /dev/kvm opens and every
    guest image named is built."""
    require_binary()
    if qemu_mode():
        skip_all("tests migvm's own KVM machine")
    why = kvm_usable()
    if why:
        skip_all("KVM not usable (%s)" % why)
    for image in images:
        if not os.path.isfile(image):
            fail_all("%s is built (make builds it)" % image)


def read_bytes(path):
    """A file's bytes, or b"" when it does not exist (yet)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def write_boot_sector(path, code):
    """A 512-byte boot sector at `path`: `code` (bytes, entered at 0000:7c00
    in real mode), zeros, the 0x55 0xaa signature. Returns path."""
    img = bytearray(512)
    img[:len(code)] = code
    img[510:512] = b"\x55\xaa"
    with open(path, "wb") as f:
        f.write(img)
    return path


def wait_until(predicate, timeout=10.0, interval=0.01):
    """Poll predicate until it returns something truthy or the deadline passes.
    Returns the truthy value, or None on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, 0.1)


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_status(pid):
    """/proc/PID/status as a dict of strings; {} if the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return {}


def rss_kib(pid, field="VmRSS"):
    value = proc_status(pid).get(field, "")
    m = re.match(r"\s*(\d+)\s*kB", value)
    return int(m.group(1)) if m else None


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def unix_connect(sock, path, timeout=10.0):
    """connect() that waits while the listen backlog is full (a socket with a
    timeout is non-blocking, and AF_UNIX then fails with EAGAIN at once)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return sock.connect(path)
        except (BlockingIOError, ConnectionRefusedError, FileNotFoundError):
            # Full backlog, bound but not listening yet (startup), or a stale
            # socket file being replaced (unlinked, then bound again).
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def pid_alive(pid):
    """True if pid exists and is not a zombie."""
    state = proc_status(pid).get("State", "")
    return bool(state) and not state.startswith("Z")


# --------------------------------------------------------------------------
# The binary

def binary():
    env = os.environ.get("MIGVM_TEST_BINARY")
    if env:
        return os.path.abspath(shutil.which(env) or env)
    return os.path.abspath(os.path.join(os.environ.get("BUILD", "build"), "migvm"))


def qemu_mode():
    return os.path.basename(binary()).startswith("qemu-system")


def asan_build():
    """True when the binary was built with AddressSanitizer (make
    check-sanitize): freed memory then waits in ASan's quarantine (256 MiB by
    default) before it is reused, so RSS counts what was freed as well."""
    try:
        with open(binary(), "rb") as f:
            return b"libasan.so" in f.read()
    except OSError:
        return False


def tsan_build():
    """True when the binary was built with ThreadSanitizer (make check-tsan):
    it then keeps 2-3 bytes of shadow memory for each byte it touches, so
    its RSS grows about three times as fast as the program's own memory."""
    try:
        with open(binary(), "rb") as f:
            return b"libtsan.so" in f.read()
    except OSError:
        return False


def require_binary():
    b = binary()
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        if qemu_mode():
            skip_all("%s is not installed" % b)
        fail_all("%s is built (make builds it)" % b)
    return b


# --------------------------------------------------------------------------
# QEMU 7.2 with KVM, for comparisons

QEMU_NAME = "qemu-system-x86_64"
# -cpu values tried in order. The host's model first; QEMU 7.2 cannot start
# it on some hosts (it asserts after "failed to set MSR 0x10a"), so then a
# named model with what the test guests use: long mode and SSE (qemu64),
# XSAVE and AVX (the ring-3 guest's ymm canaries); kvmclock comes with KVM.
QEMU_KVM_CPUS = ("host", "qemu64,+xsave,+avx")


class QemuKvm:
    """What probe_qemu_kvm() found: .qemu (path or None), .cpu (the -cpu
    value to use, or None), .refused [(cpu, QEMU's error)], .why (None, or
    why QEMU cannot run a KVM guest here, quoting QEMU)."""

    def __init__(self, qemu, cpu, refused, why):
        self.qemu, self.cpu, self.refused, self.why = qemu, cpu, refused, why

    def args(self):
        return [self.qemu, "-accel", "kvm", "-cpu", self.cpu]

    def note(self):
        """One line for the test output: the model used and why others were not."""
        refused = "; ".join("-cpu %s refused: %s" % r for r in self.refused)
        return "QEMU with KVM: -cpu %s%s" % (self.cpu, " (%s)" % refused if refused else "")


def _qemu_error(stderr, rc):
    lines = [ln for ln in stderr.splitlines() if ln.strip() and "warning:" not in ln]
    status = "killed by %s" % signal.Signals(-rc).name if rc < 0 else "exit %d" % rc
    return "%s (%s)" % (" / ".join(lines[-3:]) or "no message", status)


def probe_qemu_kvm(cpus=QEMU_KVM_CPUS):
    """Start QEMU 7.2 with -accel kvm, a pc machine and each -cpu in turn
    (-S: it resets the vCPU, which is where a host/model mismatch fails)
    until one answers query-status; see QemuKvm."""
    qemu = shutil.which(QEMU_NAME)
    if not qemu:
        return QemuKvm(None, None, [], "%s is not installed (scripts/install-deps.sh installs it)" % QEMU_NAME)
    why = kvm_usable()
    if why:
        return QemuKvm(qemu, None, [], "KVM not usable (%s)" % why)
    refused = []
    script = b'{"execute":"qmp_capabilities"}\n{"execute":"query-status"}\n{"execute":"quit"}\n'
    for cpu in cpus:
        try:
            p = subprocess.run([qemu, "-accel", "kvm", "-cpu", cpu, "-M", "pc", "-m", "16M", "-display", "none",
                                "-nodefaults", "-S", "-qmp", "stdio"], input=script, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=60)
        except subprocess.TimeoutExpired:
            refused.append((cpu, "no answer within 60 s"))
            continue
        if p.returncode == 0 and b'"status": "prelaunch"' in p.stdout:
            return QemuKvm(qemu, cpu, refused, None)
        refused.append((cpu, _qemu_error(p.stderr.decode("utf-8", "replace"), p.returncode)))
    return QemuKvm(qemu, None, refused, "QEMU 7.2 cannot run a KVM guest on this host: " +
                   "; ".join("-cpu %s: %s" % r for r in refused))


_qemu_kvm = None


def qemu_kvm():
    """probe_qemu_kvm() with the default models, once per test script."""
    global _qemu_kvm
    if _qemu_kvm is None:
        _qemu_kvm = probe_qemu_kvm()
        if _qemu_kvm.cpu:
            print("# " + _qemu_kvm.note(), flush=True)
    return _qemu_kvm


def _adapt_args(args):
    """Translate migvm-only options when running against QEMU."""
    if not qemu_mode():
        return list(args)
    out = []
    for a in args:
        if a == "soft" and out and out[-1] == "-accel":
            a = "tcg"
        out.append(a.replace("accel=soft", "accel=tcg"))
    return out


# --------------------------------------------------------------------------
# Processes

_all_vms = []
_tmpdirs = []
_extra_pids = []     # processes not our children (daemonized), killed at exit


def new_tmpdir():
    d = tempfile.mkdtemp(prefix="migvm-test-")
    _tmpdirs.append(d)
    return d


def track_pid(pid):
    _extra_pids.append(pid)


class VM:
    """One migvm process in its own temp dir.

    VM(args) adds `-display none -nodefaults -accel soft` (unless the args
    choose an accelerator, or defaults=False) and, with qmp=True (default), a
    QMP UNIX socket at self.qmp_path; hmp=True adds an HMP UNIX socket at
    self.hmp_path.  launch() waits for the sockets to appear."""

    def __init__(self, args=(), qmp=True, hmp=False, defaults=True, stdin=subprocess.DEVNULL,
                 stdout=None, stderr=None, tmpdir=None, **popen_kwargs):
        self.dir = tmpdir or new_tmpdir()
        self.qmp_path = os.path.join(self.dir, "qmp.sock") if qmp else None
        self.hmp_path = os.path.join(self.dir, "hmp.sock") if hmp else None
        full = []
        if defaults:
            full += ["-display", "none", "-nodefaults"]
            if not any(a in ("-accel", "-machine", "-M") for a in args):
                full += ["-accel", "soft"]
        if self.qmp_path:
            full += ["-qmp", "unix:%s,server=on,wait=off" % self.qmp_path]
        if self.hmp_path:
            full += ["-monitor", "unix:%s,server=on,wait=off" % self.hmp_path]
        full += list(args)
        self.args = [binary()] + _adapt_args(full)
        self.stdin = stdin
        self.stdout_path = os.path.join(self.dir, "stdout")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self._stdout = stdout
        self._stderr = stderr
        self.popen_kwargs = popen_kwargs
        self.proc = None
        self.clients = []

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def launch(self, wait_sockets=True, timeout=10.0):
        out = self._stdout if self._stdout is not None else open(self.stdout_path, "wb")
        err = self._stderr if self._stderr is not None else open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.args, stdin=self.stdin, stdout=out, stderr=err,
                                     cwd=self.dir, **self.popen_kwargs)
        _all_vms.append(self)
        if wait_sockets:
            paths = [p for p in (self.qmp_path, self.hmp_path) if p]
            ok = wait_until(lambda: all(os.path.exists(p) for p in paths) or self.proc.poll() is not None,
                            timeout)
            if self.proc.poll() is not None:
                raise RuntimeError("migvm exited with %s at startup: %s" % (self.proc.returncode, self.stderr_text()))
            if not ok:
                raise RuntimeError("sockets %s did not appear within %ss" % (paths, timeout))
        return self

    def qmp(self, negotiate=True, timeout=10.0):
        c = QMPClient.unix(self.qmp_path, timeout=timeout)
        self.clients.append(c)
        if negotiate:
            c.negotiate(repeated_greeting_ok=self.is_qemu())
        return c

    def is_qemu(self):
        return os.path.basename(self.args[0]).startswith("qemu-system")

    def hmp(self, timeout=10.0):
        c = HMPClient.unix(self.hmp_path, timeout=timeout)
        self.clients.append(c)
        return c

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout=10.0):
        """Exit status, or None if still running after timeout."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def kill(self):
        for c in self.clients:
            c.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._check_sanitizers()

    _SANITIZER = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
                            r"WARNING: ThreadSanitizer")

    def _check_sanitizers(self):
        """A sanitizer report on stderr is a failure (only reported when seen)."""
        if getattr(self, "_sanitizer_checked", False) or self.proc is None:
            return
        self._sanitizer_checked = True
        text = self.stderr_text()
        m = self._SANITIZER.search(text)
        if m:
            check("no sanitizer report from %s" % " ".join(self.args[1:])[:120], False,
                  text[max(0, m.start() - 200):m.start() + 1500])

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout_text(self):
        try:
            with open(self.stdout_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


def run_migvm(args, timeout=10.0, stdin=subprocess.DEVNULL, cwd=None):
    """Run migvm to completion (for -version, bad options...).
    Returns (exit status or None on timeout, stdout, stderr)."""
    p = subprocess.Popen([binary()] + _adapt_args(args), stdin=stdin, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, cwd=cwd or new_tmpdir())
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        return None, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def kill_all():
    while _all_vms:
        _all_vms.pop().kill()
    while _extra_pids:
        pid = _extra_pids.pop()
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def cleanup():
    kill_all()
    while _tmpdirs:
        shutil.rmtree(_tmpdirs.pop(), ignore_errors=True)


def _on_signal(signum, frame):
    cleanup()
    sys.exit(128 + signum)


atexit.register(cleanup)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


# --------------------------------------------------------------------------
# QMP client

class QMPError(Exception):
    pass


_NOTSET = object()


class _MonitorSocket:
    """What the QMP and HMP clients share: the socket, its receive buffer and
    whether the server has closed it."""

    def __init__(self, sock, timeout):
        self.sock = sock
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    @classmethod
    def unix(cls, path, timeout=10.0):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        unix_connect(s, path, timeout)
        return cls(s, timeout)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv_some(self, remaining):
        """Append what arrives within remaining seconds to self.buf: True if
        bytes came, None if none came in time, False at EOF (self.eof set)."""
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(1 << 16)
        except socket.timeout:
            return None
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True


class QMPClient(_MonitorSocket):
    """A QMP connection.  Messages are read line by line (the server ends each
    with \\r\\n); events arriving while we wait for a response are queued in
    self.events.  self.last_raw is the raw bytes of the last message read."""

    def __init__(self, sock, timeout=10.0):
        super().__init__(sock, timeout)
        self.events = []
        self.last_raw = None
        self.raw_log = []      # every raw line received (for shape checks)
        self.greeting = self.recv(timeout)

    @classmethod
    def tcp(cls, host, port, timeout=10.0):
        s = socket.create_connection((host, port), timeout=timeout)
        return cls(s, timeout)

    # -- raw bytes
    def send_raw(self, data, timeout=None):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.settimeout(max(self.timeout, 30.0) if timeout is None else timeout)
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        got = self._recv_some(remaining) if remaining > 0 else None
        if got is None:
            raise TimeoutError("no complete message from QMP within the deadline; buffered %r" % self.buf[:200])
        if not got:
            raise EOFError("QMP connection closed; buffered %r" % self.buf[:200])

    def recv_line(self, timeout=None):
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\n", 1)
        line += b"\n"
        self.last_raw = line
        self.raw_log.append(line)
        return line

    def recv(self, timeout=None):
        """Next message of any kind (dict)."""
        line = self.recv_line(timeout)
        try:
            return json.loads(line.decode("ascii"))
        except (UnicodeDecodeError, ValueError) as e:
            raise QMPError("server sent a line that is not ASCII JSON: %r (%s)" % (line[:300], e))

    def recv_response(self, timeout=None):
        """Next non-event message; events before it go to self.events."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            msg = self.recv(max(0.001, deadline - time.monotonic()))
            if isinstance(msg, dict) and "event" in msg:
                self.events.append(msg)
                continue
            return msg

    def wait_eof(self, timeout=10.0):
        """True if the server closes the connection within timeout (messages
        received meanwhile are queued as events or returned in self.raw_log)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                msg = self.recv(max(0.001, deadline - time.monotonic()))
                if isinstance(msg, dict) and "event" in msg:
                    self.events.append(msg)
        except EOFError:
            return True
        except TimeoutError:
            return False

    # -- commands
    def cmd(self, name, args=None, id=_NOTSET, timeout=None, **kw):
        """Send a command and return the full response (dict with return or
        error, and id).  Keyword argument names map '_' to '-'."""
        msg = {"execute": name}
        arguments = dict(args or {})
        arguments.update({k.replace("_", "-"): v for k, v in kw.items()})
        if arguments:
            msg["arguments"] = arguments
        if id is not _NOTSET:
            msg["id"] = id
        self.send_raw(json.dumps(msg))
        return self.recv_response(timeout)

    def cmd_ok(self, name, args=None, **kw):
        """Send a command; return its `return` value or raise QMPError."""
        r = self.cmd(name, args, **kw)
        if "return" not in r:
            raise QMPError("%s failed: %r" % (name, r))
        return r["return"]

    def negotiate(self, repeated_greeting_ok=False):
        """qmp_capabilities.  QEMU 7.2 -accel kvm, connected to while it was
        starting on a loaded host, was seen to send its greeting twice (its QMP
        handlers are installed from the monitor iothread, racing the accept).
        For a QEMU peer the repeat is skipped; for migvm it is a failure."""
        r = self.cmd("qmp_capabilities")
        if repeated_greeting_ok and isinstance(r, dict) and "QMP" in r:
            r = self.recv_response()
        if r != {"return": {}}:
            raise QMPError("qmp_capabilities answered %r" % (r,))
        return r

    def hmp(self, command_line):
        """human-monitor-command; returns the output string."""
        return self.cmd_ok("human-monitor-command", {"command-line": command_line})

    # -- events
    def get_event(self, name):
        for i, e in enumerate(self.events):
            if e.get("event") == name:
                return self.events.pop(i)
        return None

    def wait_event(self, name, timeout=10.0):
        """The first queued or newly arriving event called name, or None."""
        deadline = time.monotonic() + timeout
        while True:
            e = self.get_event(name)
            if e is not None:
                return e
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                msg = self.recv(remaining)
            except (TimeoutError, EOFError):
                return self.get_event(name)
            if isinstance(msg, dict) and "event" in msg:
                self.events.append(msg)
            else:
                raise QMPError("unexpected non-event message while waiting for %s: %r" % (name, msg))

    def clear_events(self):
        self.events = []

    def sync(self, tag, timeout=None):
        """Send query-status with id `tag` and return every message received
        before its response (a list of dicts) plus the response itself."""
        self.send_raw(json.dumps({"execute": "query-status", "id": tag}))
        before = []
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            msg = self.recv(max(0.001, deadline - time.monotonic()))
            if isinstance(msg, dict) and msg.get("id") == tag and "event" not in msg:
                return before, msg
            if isinstance(msg, dict) and "event" in msg:
                self.events.append(msg)
                continue
            before.append(msg)


def error_of(resp):
    """(class, desc) of an error response, or None."""
    if isinstance(resp, dict) and isinstance(resp.get("error"), dict):
        return resp["error"].get("class"), resp["error"].get("desc")
    return None


# --------------------------------------------------------------------------
# HMP socket client

PROMPT = b"(qemu) "
_ANSI = re.compile(rb"\x1b\[[0-9;]*[A-Za-z]")


def strip_ansi(data):
    return _ANSI.sub(b"", data)


class HMPClient(_MonitorSocket):
    """An HMP console on a socket: banner up to the first prompt, then one
    command at a time.  The server may echo the line (QEMU's readline redraws
    it with escape sequences); cmd() drops the echo up to the first \\r\\n."""

    def __init__(self, sock, timeout=10.0):
        super().__init__(sock, timeout)
        self.banner = self._until_prompt(timeout)

    def _until_prompt(self, timeout):
        """Bytes up to and including the next prompt (or up to EOF)."""
        deadline = time.monotonic() + timeout
        while PROMPT not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no HMP prompt within %ss; got %r" % (timeout, self.buf[-300:]))
            if self._recv_some(remaining) is False:
                out, self.buf = self.buf, b""
                return out
        i = self.buf.index(PROMPT) + len(PROMPT)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def cmd_raw(self, line, timeout=None):
        """Send line + newline; return the raw bytes up to and including the
        next prompt (echo included)."""
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.sock.settimeout(self.timeout)
        self.sock.sendall(line + b"\n")
        return self._until_prompt(self.timeout if timeout is None else timeout)

    def cmd(self, line, timeout=None):
        """Send one command line; return its output text (str, lines ending
        \\r\\n) without echo and prompt."""
        raw = self.cmd_raw(line, timeout)
        if raw.endswith(PROMPT):
            raw = raw[:-len(PROMPT)]
        first, sep, rest = raw.partition(b"\r\n")
        echo = strip_ansi(first).strip()
        sent = (line.encode("utf-8") if isinstance(line, str) else line).strip()
        if sep and echo.endswith(sent):
            raw = rest
        return raw.decode("utf-8", "replace")

    def wait_eof(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while not self.eof:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._recv_some(remaining) is None:
                return False
        return True
