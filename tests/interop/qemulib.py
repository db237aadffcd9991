"""Helpers for the interop tests: run the same machine (-M none) as migvm and
as the real QEMU 7.2, side by side, through tests/functional/migvm.py.

    qemulib.require_qemu_and_migvm()     # SKIP: ... when a binary is missing
    src, q = qemulib.start_negotiated("qemu", ["-S"], loaders=[(path, addr)])
    dst = qemulib.start("migvm", ["-incoming", "tcp:127.0.0.1:%d" % port])

A pair migration with a known image, as the interop tests run it:

    pattern = qemulib.Pattern([(addr, data), ...], ram, tmpdir)
    src, qs = pattern.start_source("qemu")            # -S, the image loaded
    dst, qd = qemulib.start_negotiated("migvm", ["-incoming", "defer"], ram=ram)
    qemulib.migrate_deferred(qs, qd, qemulib.migration_uri("tcp", tmpdir, "a"))
    sinfo, dinfo, ok = qemulib.check_completed("a", src, qs, dst, qd)
    pattern.check_ram("a: destination RAM is the image", dst, qd)

Both get `-M none -m 4M -nodefaults -display none` and their own accelerator:
accel="soft" (the default here) gives migvm soft and QEMU tcg; accel=None
gives migvm no -accel at all (its default: KVM when /dev/kvm is usable) and
QEMU -accel kvm (QEMU 7.2's own default would be tcg).  -M none has no vCPU,
yet the accelerator decides which sections a writer might add.
"""

import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "functional"))

import migvm  # noqa: E402
from migvm import VM, check, check_eq, free_tcp_port, wait_until  # noqa: E402,F401
import miglib  # noqa: E402

set_caps = miglib.set_caps      # set_caps(q, events=True, return_path=False)
QEMU_NAME = "qemu-system-x86_64"
RAM_SIZE = 4 << 20
PAGE = 4096


def qemu_binary():
    return shutil.which(QEMU_NAME)


def migvm_binary():
    return os.path.abspath(os.path.join(os.environ.get("BUILD", "build"), "migvm"))


def require_qemu_and_migvm():
    """SKIP the whole test when QEMU is missing, fail it when migvm is not
    built; returns the QEMU path."""
    q = qemu_binary()
    if not q:
        migvm.skip_all("%s is not installed (scripts/install-deps.sh installs it)" % QEMU_NAME)
    m = migvm_binary()
    if not (os.path.isfile(m) and os.access(m, os.X_OK)):
        migvm.fail_all("%s is built (make builds it)" % m)
    return q


def machine_args(kind, ram=RAM_SIZE, accel="soft", machine="none"):
    out = ["-M", machine, "-m", "%dM" % (ram >> 20)]
    if accel is None:
        return out + (["-accel", "kvm"] if kind == "qemu" else [])
    return out + ["-accel", "tcg" if kind == "qemu" and accel == "soft" else accel]


def start(kind, args=(), hmp=False, ram=RAM_SIZE, loaders=(), accel="soft", machine="none"):
    """Launch QEMU or migvm with -M none (or `machine`); loaders = [(file,
    guest address)] become QEMU `-device loader,file=F,addr=A,force-raw=on`."""
    full = machine_args(kind, ram, accel, machine) + list(args)
    for path, addr in loaders:
        if kind != "qemu":
            raise ValueError("migvm has no loader device")
        full += ["-device", "loader,file=%s,addr=%#x,force-raw=on" % (path, addr)]
    vm = VM(full, hmp=hmp)
    vm.args[0] = qemu_binary() if kind == "qemu" else migvm_binary()
    vm.kind = kind
    vm.launch()
    return vm


def start_negotiated(kind, args=(), **kw):
    vm = start(kind, args, **kw)
    return vm, vm.qmp()


def migration_status(q):
    return q.cmd_ok("query-migrate").get("status")


def wait_migration(q, timeout=30.0, final=("completed", "failed", "cancelled")):
    """query-migrate's return once the status is final (None on timeout)."""
    box = {}

    def done():
        info = q.cmd_ok("query-migrate")
        box["info"] = info
        return info.get("status") in final

    wait_until(done, timeout, interval=0.02)
    info = box.get("info")
    return info if info and info.get("status") in final else None


def dump_ram(vm, q, name, size=RAM_SIZE):
    """pmemsave the whole RAM of vm into its temp dir; returns the bytes."""
    path = os.path.join(vm.dir, name)
    q.cmd_ok("pmemsave", val=0, size=size, filename=path)
    if not wait_until(lambda: os.path.exists(path) and os.path.getsize(path) == size, 10):
        raise RuntimeError("pmemsave %s did not produce %d bytes" % (path, size))
    with open(path, "rb") as f:
        return f.read()


def migration_uri(transport, tmpdir, name):
    """A listening address for "tcp" (a free port) or "unix" (a socket
    named after `name` in tmpdir)."""
    if transport == "unix":
        return "unix:" + os.path.join(tmpdir, name.replace(" ", "-").replace(">", "") + ".sock")
    return "tcp:127.0.0.1:%d" % free_tcp_port()


def migrate_deferred(qs, qd, uri):
    """Start listening on a destination started with -incoming defer, then
    migrate the source there."""
    qd.cmd_ok("migrate-incoming", uri=uri)
    qs.cmd_ok("migrate", uri=uri)


def wait_destination(dst, qd, timeout=30.0):
    """wait_migration on a destination, {} on timeout; a QEMU destination
    that exited (as it does when a load fails) gives the status "exited:
    <its stderr>"."""
    try:
        return wait_migration(qd, timeout) or {}
    except (EOFError, OSError):
        return {"status": "exited: %s" % " | ".join(dst.stderr_text().splitlines())[-300:]}


def check_completed(label, src, qs, dst, qd, timeout=30.0, dst_timeout=30.0):
    """Wait for both ends and check "LABEL: source completed" and "LABEL:
    destination completed" (a QEMU destination that exits on a failed load
    counts as "exited: its stderr"); prints both stderrs when either did not
    complete. Returns (source info, destination info, both completed)."""
    sinfo = wait_migration(qs, timeout) or {}
    check_eq("%s: source completed" % label, sinfo.get("status"), "completed")
    dinfo = wait_destination(dst, qd, dst_timeout)
    check_eq("%s: destination completed" % label, dinfo.get("status"), "completed")
    ok = sinfo.get("status") == "completed" and dinfo.get("status") == "completed"
    if not ok:
        print("# source: %r %s\n# destination: %r %s" % (sinfo, src.stderr_text()[-300:], dinfo,
                                                         dst.stderr_text()[-300:]))
    return sinfo, dinfo, ok


def start_postcopy(label, qs, kind_dst, ram, tmpdir, postcopy_bandwidth):
    """A new kind_dst destination (-incoming defer) and a postcopy into it
    over tcp: postcopy-ram and events on both sides, a 4 MiB/s precopy
    switched to postcopy after its first MiB, then postcopy_bandwidth
    bytes/s; checks "LABEL: source postcopy-active" and "LABEL: destination
    postcopy-active". Returns (dst, its QMP)."""
    dst, qd = start_negotiated(kind_dst, ["-incoming", "defer"], ram=ram)
    for q in (qs, qd):
        set_caps(q, postcopy_ram=True, events=True)
    qs.cmd_ok("migrate-set-parameters", {"max-bandwidth": 4 << 20, "max-postcopy-bandwidth": postcopy_bandwidth})
    migrate_deferred(qs, qd, migration_uri("tcp", tmpdir, label))
    wait_until(lambda: qs.cmd_ok("query-migrate").get("ram", {}).get("transferred", 0) > 1 << 20, 10.0)
    qs.cmd_ok("migrate-start-postcopy")
    for side, q in (("source", qs), ("destination", qd)):
        check("%s: %s postcopy-active" % (label, side),
              wait_until(lambda: migration_status(q) == "postcopy-active", 15.0), q.cmd_ok("query-migrate"))
    return dst, qd


def round_trip(pattern, hop):
    """QEMU holding `pattern` -> migvm -> QEMU, each step by
    hop(src, its QMP, destination kind, label) -> (dst, its QMP)."""
    src, qs = pattern.start_source()
    mid, qm = hop(src, qs, "migvm", "QEMU -> migvm")
    src.kill()
    end, _ = hop(mid, qm, "qemu", "migvm -> QEMU")
    mid.kill()
    end.kill()


def run_round_trip(pattern, hop):
    """The whole test: round_trip as the one section "round trip", then the
    summary line and the exit status."""
    migvm.run("round trip", round_trip, pattern, hop)
    migvm.finish()


class Pattern:
    """A known RAM image: pieces [(guest address, bytes)] over zeros, put in
    place on a QEMU source by its `-device loader`."""

    def __init__(self, loads, ram, tmpdir):
        self.loads = loads
        self.ram = ram
        self.tmpdir = tmpdir
        img = bytearray(ram)
        for addr, data in loads:
            img[addr:addr + len(data)] = data
        self.image = bytes(img)
        self._files = None

    def loaders(self):
        """The pieces as files, [(path, addr)] for start(loaders=...)."""
        if self._files is None:
            self._files = []
            for i, (addr, data) in enumerate(self.loads):
                path = os.path.join(self.tmpdir, "load%d.bin" % i)
                with open(path, "wb") as f:
                    f.write(data)
                self._files.append((path, addr))
        return self._files

    def start_source(self, kind="qemu", args=("-S",), **kw):
        """(vm, qmp) of a QEMU holding the image (migvm has no loader)."""
        return start_negotiated(kind, args, ram=self.ram, loaders=self.loaders(), **kw)

    def check_arrived(self, label, src, qs, dst, qd):
        """check_completed, then "LABEL: the destination's RAM is the
        pattern"; returns (dst, qd)."""
        check_completed(label, src, qs, dst, qd)
        self.check_ram("%s: the destination's RAM is the pattern" % label, dst, qd)
        return dst, qd

    def check_ram(self, label, vm, q, name="ram.dump"):
        """pmemsave vm's whole RAM and check it is the image."""
        img = dump_ram(vm, q, name, self.ram)
        return check(label, img == self.image, first_difference(img, self.image))


def first_difference(a, b):
    if len(a) != len(b):
        return "lengths %d and %d" % (len(a), len(b))
    for i in range(0, len(a), PAGE):
        if a[i:i + PAGE] != b[i:i + PAGE]:
            for j in range(i, i + PAGE):
                if a[j] != b[j]:
                    return "first difference at %#x: %02x vs %02x" % (j, a[j], b[j])
    return "identical"


def pattern_bytes(seed, length):
    """Deterministic non-trivial bytes (no all-zero page)."""
    out = bytearray(length)
    x = seed & 0xFFFFFFFF or 1
    for i in range(length):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = (x & 0xFF) | 1
    return bytes(out)


def run_incoming_only(kind, stream_path, timeout=10.0):
    """Start a destination with -incoming "exec:cat FILE" and a QMP socket.
    Returns (vm, q)."""
    return start_negotiated(kind, ["-incoming", "exec:cat %s" % stream_path])


def wait_qemu_exit(vm, timeout=10.0):
    return vm.wait_exit(timeout)


def now():
    return time.monotonic()


def run_capture(args, timeout=10.0):
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
