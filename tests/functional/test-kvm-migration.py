#!/usr/bin/python3
"""Live migration of KVM guests, at full size and when it goes wrong.

The guest is the boot-sector guest (build/guest/boot-sector.img) on
`-accel kvm -m 1G`: it prints 'A', then increments the first byte of every
4 KiB page from 1 MiB to the top of its 1 GiB RAM, forever, printing 'B' after
each pass (one pass takes about a second here), so it re-dirties all of its
RAM all the time.

  * 1 GiB over unix and over tcp: as QEMU's migration-test, first a setting
    that cannot converge (capped bandwidth, 1 ms downtime limit) until several
    passes ran while the guest wrote, then max-bandwidth 0 and a 2 s downtime
    limit; the migration completes, the guest goes on printing 'B' on the
    destination, and the destination's memory passes the consistency check
    (see below). The figures (times, bytes, syncs, guest passes) are printed.
  * migrate_cancel in setup (connect() blocked on a listener that never
    accepts) and in active (dirty logging on, several syncs done): status
    cancelled, the source guest keeps running, KVM dirty logging is off again,
    and a second migration completes with good memory.
  * the destination SIGKILLed mid-stream: the source ends failed with an
    error-desc, its guest keeps running, dirty logging is off, and a retry to
    a fresh destination completes with good memory.
  * a paused 1 GiB guest: every page is sent exactly once, and the memory
    check passes after cont on the destination.

Memory check (QEMU migration-test's rule, made exact): stop the destination,
pmemsave its RAM; every page's first byte from 1 MiB up is n or n-1 (mod 256)
with at most one step from n to n-1; and since every completed pass printed a
'B' (on the source or on the destination), with p = the number of 'B's the
first and last pages hold p or p+1 (mod 256). A page that was not migrated
(still 0 on the destination) or migrated stale fails it; the first case
checks that on its own dump with one page zeroed.

"Dirty logging is off" is observed from outside with strace (the last
KVM_SET_USER_MEMORY_REGION of every slot has no KVM_MEM_LOG_DIRTY_PAGES);
that check fails when strace is missing, cannot attach or traces nothing.

Skips when /dev/kvm cannot be used."""

import mmap
import os
import re
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import migvm  # noqa: E402
import miglib  # noqa: E402
import bootguest  # noqa: E402
from migvm import check, check_eq, new_tmpdir, run, wait_until  # noqa: E402

MiB = 1 << 20
PAGE = 4096
MEM = "1G"
MEM_BYTES = 1 << 30
CAP = 512 * MiB             # bandwidth of the non-converging phase: about 2 s per pass over 1 GiB
FINAL_DOWNTIME_MS = 2000    # downtime limit once max-bandwidth is 0 (1 GiB goes in ~0.3 s here)


# ---------------------------------------------------------------------------
# Guests and serial output


def start_source(name):
    src = bootguest.start_guest(mem=MEM)
    qs = src.qmp()
    check("%s: source guest prints 'A' then 'B's" % name, bootguest.wait_passes(src, 1, 30),
          repr(bootguest.serial(src)[:40]) + src.stderr_text())
    return src, qs


def new_destination(transport):
    return bootguest.new_destination("kvm", MEM, transport)


def source_keeps_running(name, src, qs, passes=2):
    check_eq("%s: source query-status running" % name, miglib.query_status(qs), "running")
    n = bootguest.b_count(src)
    check("%s: source guest prints %d new 'B's" % (name, passes),
          wait_until(lambda: bootguest.b_count(src) >= n + passes, 20),
          repr(bootguest.serial(src)[-20:]) + src.stderr_text())


# ---------------------------------------------------------------------------
# Memory check

class ZeroedPage:
    """A read-only view of a dump with one page reading as zeros (a page the
    migration 'forgot'), to show that the check catches it."""

    def __init__(self, dump, page_off):
        self.dump, self.lo, self.hi = dump, page_off, page_off + PAGE

    def __len__(self):
        return len(self.dump)

    def __getitem__(self, i):
        return 0 if self.lo <= i < self.hi else self.dump[i]


def memory_consistent(dump, passes):
    """(ok, detail): QEMU's n / n-1 rule, plus the first and last pages
    agreeing with the number of completed passes ('B's printed)."""
    ok, detail = miglib.check_memory_pattern(dump)
    if not ok:
        return False, detail
    first, last = dump[miglib.WORK_START], dump[len(dump) - PAGE]
    want = {passes % 256, (passes + 1) % 256}
    if first not in want or last not in want:
        return False, "first/last page hold %d/%d but %d passes were printed (want %s)" % (
            first, last, passes, sorted(want))
    return True, "%s; %d passes printed, first/last page %d/%d" % (detail, passes, first, last)


def check_destination_memory(name, src, dst, qd, self_test=False):
    """Stop the destination, dump its RAM and check it; cont again."""
    qd.cmd_ok("stop")
    check_eq("%s: destination paused for the dump" % name, miglib.query_status(qd), "paused")
    passes = bootguest.b_count(src) + bootguest.b_count(dst)
    path = os.path.join(dst.dir, "mem.bin")
    qd.cmd_ok("pmemsave", val=0, size=MEM_BYTES, filename=path)
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            check_eq("%s: pmemsave wrote all of RAM" % name, size, MEM_BYTES)
            dump = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        try:
            ok, detail = memory_consistent(dump, passes)
            check("%s: destination memory consistent (%s)" % (name, detail), ok, detail)
            if self_test:
                hole = MEM_BYTES // 2 + 7 * PAGE
                bad, why = memory_consistent(ZeroedPage(dump, hole), passes)
                check("%s: the check rejects the same dump with the page at 0x%x zeroed (%s)" % (name, hole, why),
                      not bad, why)
        finally:
            dump.close()
    finally:
        os.unlink(path)
    qd.cmd_ok("cont")
    check("%s: destination resumes after the dump" % name, miglib.wait_serial_growth(dst.serial_path, 10, 1))


# ---------------------------------------------------------------------------
# Dirty logging, seen from outside

class MemslotTrace:
    """strace -f on a migvm, logging its ioctls; reads back the flags of
    every KVM_SET_USER_MEMORY_REGION per slot."""
    LINE = re.compile(r"KVM_SET_USER_MEMORY_REGION, \{slot=(\d+), flags=([^,}]*)")

    def __init__(self, vm):
        self.log = os.path.join(new_tmpdir(), "strace.log")
        self.proc = None
        strace = shutil.which("strace")
        if not strace:
            self.why = "strace not installed"
            return
        self.proc = subprocess.Popen([strace, "-f", "-qq", "-e", "trace=ioctl", "-e", "signal=none",
                                      "-o", self.log, "-p", str(vm.pid)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        migvm.track_pid(self.proc.pid)
        # The vCPU leaves KVM_RUN for every serial byte: the log fills once attached.
        if not wait_until(lambda: os.path.exists(self.log) and os.path.getsize(self.log) > 0
                          or self.proc.poll() is not None, 10):
            self.why = "strace wrote nothing in 10 s"
            self.stop()
        elif self.proc.poll() is not None:
            self.why = "strace cannot attach: %s" % self.proc.stderr.read().decode("utf-8", "replace").strip()
            self.proc = None
        else:
            self.why = None

    def slots(self):
        """{slot: [flags, ...]} in call order."""
        out = {}
        try:
            with open(self.log, errors="replace") as f:
                for m in self.LINE.finditer(f.read()):
                    out.setdefault(int(m.group(1)), []).append(m.group(2))
        except OSError:
            pass
        return out

    def logging_off_again(self):
        """True once logging was turned on for some slot and every slot's last
        flags have it off."""
        s = self.slots()
        return (any("KVM_MEM_LOG_DIRTY_PAGES" in f for fl in s.values() for f in fl) and
                all("KVM_MEM_LOG_DIRTY_PAGES" not in fl[-1] for fl in s.values()))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


def check_dirty_logging_off(name, trace):
    # strace is a test dependency (scripts/install-deps.sh); a trace that
    # stays empty is as likely a hung migvm as a tracing problem: both fail.
    if not check("%s: strace traces migvm's ioctls" % name, not trace.why, trace.why):
        return
    off = wait_until(trace.logging_off_again, 10)
    check("%s: KVM dirty logging was on, and is off again on every memory slot" % name, off,
          "KVM_SET_USER_MEMORY_REGION flags per slot: %r" % trace.slots())


# ---------------------------------------------------------------------------
# One live migration as QEMU's migration-test does it

def noconverge_cap(src):
    """A max-bandwidth the guest outruns: CAP, or half of what the guest
    dirties now when a loaded machine slows it (a guest at a sixth of its
    speed let a migration at CAP converge, and the phase that must stay
    active completed)."""
    rate = bootguest.pass_rate(src, 1.0) * MEM_BYTES
    return max(32 * MiB, min(CAP, int(rate / 2)))


def live_migrate(name, src, qs, dst, qd, uri, min_syncs=3, self_test=False):
    """Migrate the running source to dst (listening on uri) and check
    everything on the destination. Returns the final query-migrate info."""
    check_eq("%s: destination waits in inmigrate" % name, miglib.query_status(qd), "inmigrate")
    # Cannot converge: the guest re-dirties its 1 GiB every ~1 s, a pass takes ~2 s. The convergence
    # controller is off while it must stay active (it would throttle the guest until it converges).
    cap = noconverge_cap(src)
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": cap, "downtime-limit": 1,
                                           "x-convergence-controller": False})
    b0 = bootguest.b_count(src)
    t0 = time.monotonic()
    r = qs.cmd("migrate", uri=uri)
    check("%s: migrate accepted" % name, "return" in r, repr(r))
    passes = wait_until(lambda: miglib.mig_info(qs).get("ram", {}).get("dirty-sync-count", 0) >= min_syncs
                        and bootguest.b_count(src) >= b0 + 2, max(40, 1.5 * (min_syncs + 1) * MEM_BYTES / cap))
    info = miglib.mig_info(qs)
    check("%s: %d+ syncs while the guest dirties all of its RAM (%d passes), still active" % (
        name, min_syncs, bootguest.b_count(src) - b0), passes and info.get("status") == "active", repr(info))
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 0, "downtime-limit": FINAL_DOWNTIME_MS,
                                           "x-convergence-controller": True})
    info = miglib.wait_mig_status(qs, ("completed", "failed", "cancelled"), 40) or miglib.mig_info(qs)
    wall = time.monotonic() - t0
    check_eq("%s: migration completed" % name, info.get("status"), "completed")
    ram = info.get("ram", {})
    total = info.get("total-time") or 1
    print("# figures %s: total-time %s ms (wall %.1f s), downtime %s ms, setup %s ms, transferred %.0f MiB "
          "(%.1fx RAM), downtime-bytes %.0f MiB, dirty-sync-count %s, guest passes during migration %d, "
          "%.0f MB/s" % (name, info.get("total-time"), wall, info.get("downtime"), info.get("setup-time"),
                         ram.get("transferred", 0) / MiB, ram.get("transferred", 0) / MEM_BYTES,
                         ram.get("downtime-bytes", 0) / MiB, ram.get("dirty-sync-count"), bootguest.b_count(src) - b0,
                         ram.get("transferred", 0) / total / 1000), flush=True)
    check_eq("%s: source is postmigrate" % name, miglib.query_status(qs), "postmigrate")
    check("%s: destination running" % name, miglib.wait_run_state(qd, "running", 20), dst.stderr_text())
    check("%s: guest prints 'B's on the destination" % name, miglib.wait_serial_growth(dst.serial_path, 20, 2),
          repr(bootguest.serial(dst)) + dst.stderr_text())
    check("%s: destination serial has only 'B's" % name, set(bootguest.serial(dst)) <= {ord("B")},
          repr(bootguest.serial(dst)[:40]))
    check("%s: source stays quiet" % name, bootguest.stays_quiet(src, 1.0))
    check_destination_memory(name, src, dst, qd, self_test)
    return info


def no_errors(name, *vms):
    text = "".join(vm.stderr_text() for vm in vms)
    check("%s: no errors on stderr" % name, not text.strip(), text)


# ---------------------------------------------------------------------------

def migrate_two_passes(qs, uri):
    """Start a migration slower than the guest dirties memory; wait for two
    dirty syncs.  Returns (reached, query-migrate's answer)."""
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": CAP // 2, "downtime-limit": 1,
                                           **miglib.qemu_convergence()})
    qs.cmd_ok("migrate", uri=uri)
    reached = wait_until(lambda: miglib.mig_info(qs).get("ram", {}).get("dirty-sync-count", 0) >= 2, 30)
    return reached, miglib.mig_info(qs)


def test_1g(transport):
    name = "1 GiB over %s" % transport
    src, qs = start_source(name)
    dst, qd, uri = new_destination(transport)
    live_migrate(name, src, qs, dst, qd, uri, self_test=(transport == "unix"))
    no_errors(name, src, dst)


def test_cancel():
    name = "cancel"
    src, qs = start_source(name)
    trace = MemslotTrace(src)
    try:
        # In setup: the source's connect() waits on a listener that never accepts.
        socks = miglib.stuck_unix_listener(os.path.join(new_tmpdir(), "stuck.sock"))
        try:
            qs.cmd_ok("migrate", uri="unix:" + socks[0].getsockname())
            check_eq("cancel in setup: status setup", miglib.mig_status(qs), "setup")
            check_eq("cancel in setup: migrate_cancel", qs.cmd("migrate_cancel"), {"return": {}})
            info = miglib.wait_mig_status(qs, ("cancelled", "failed", "completed"), 10) or miglib.mig_info(qs)
            check_eq("cancel in setup: status cancelled", info.get("status"), "cancelled")
        finally:
            for s in socks:
                s.close()
        source_keeps_running("cancel in setup", src, qs, 1)

        # In active: dirty logging on, syncs done, pages re-protected by KVM.
        dst, qd, uri = new_destination("unix")
        synced, info = migrate_two_passes(qs, uri)
        check("cancel in active: active after 2 syncs (%.0f MiB sent)" % (
            info.get("ram", {}).get("transferred", 0) / MiB), synced and info.get("status") == "active", info)
        check_eq("cancel in active: migrate_cancel", qs.cmd("migrate_cancel"), {"return": {}})
        info = miglib.wait_mig_status(qs, ("cancelled", "failed", "completed"), 10) or miglib.mig_info(qs)
        check_eq("cancel in active: status cancelled", info.get("status"), "cancelled")
        source_keeps_running("cancel in active", src, qs)
        check_dirty_logging_off("cancel in active", trace)
    finally:
        trace.stop()
    dst.kill()
    dst, qd, uri = new_destination("unix")
    live_migrate("after cancel, a second migration", src, qs, dst, qd, uri, min_syncs=2)
    no_errors(name, src)


def test_destination_killed():
    name = "destination killed"
    src, qs = start_source(name)
    trace = MemslotTrace(src)
    try:
        dst, qd, uri = new_destination("tcp")
        mid, info = migrate_two_passes(qs, uri)
        check("%s: mid-stream (active, 2 syncs, %.0f MiB sent)" % (
            name, info.get("ram", {}).get("transferred", 0) / MiB), mid and info.get("status") == "active", info)
        dst.signal(signal.SIGKILL)
        check_eq("%s: destination died of SIGKILL" % name, dst.wait_exit(10), -signal.SIGKILL)
        info = miglib.wait_mig_status(qs, ("failed", "cancelled", "completed"), 15) or miglib.mig_info(qs)
        check_eq("%s: source status failed" % name, info.get("status"), "failed")
        desc = info.get("error-desc")
        check("%s: error-desc says the peer went away (%r)" % (name, desc), miglib.peer_gone(desc), repr(info))
        source_keeps_running(name, src, qs)
        check_dirty_logging_off(name, trace)
    finally:
        trace.stop()
    dst, qd, uri = new_destination("tcp")
    live_migrate("%s: retry to a fresh destination" % name, src, qs, dst, qd, uri, min_syncs=2)


def test_paused_guest():
    """A paused guest dirties nothing: each page goes exactly once (as in QEMU, whose setup syncs the dirty
    log before the first pass, which consumes KVM's initially-set bitmap)."""
    name = "paused guest"
    src, qs = start_source(name)
    qs.cmd_ok("stop")
    dst, qd, uri = new_destination("unix")
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 0, "downtime-limit": 300})
    qs.cmd_ok("migrate", uri=uri)
    info = miglib.wait_mig_status(qs, ("completed", "failed", "cancelled"), 30) or miglib.mig_info(qs)
    check_eq("%s: migration completed" % name, info.get("status"), "completed")
    ram = info.get("ram", {})
    pages = ram.get("total", 0) // PAGE
    sent = ram.get("normal", 0) + ram.get("duplicate", 0)
    check("%s: every page sent exactly once (%d pages sent for %d pages of RAM)" % (name, sent, pages),
          pages == MEM_BYTES // PAGE and sent == pages,
          "%d pages sent twice; transferred %.0f MiB for %d MiB of RAM, dirty-sync-count %s" % (
              sent - pages, ram.get("transferred", 0) / MiB, MEM_BYTES // MiB, ram.get("dirty-sync-count")))
    check("%s: destination paused" % name, miglib.wait_run_state(qd, "paused", 20), dst.stderr_text())
    qd.cmd_ok("cont")
    check("%s: guest prints 'B's on the destination after cont" % name,
          miglib.wait_serial_growth(dst.serial_path, 20, 1), repr(bootguest.serial(dst)) + dst.stderr_text())
    check_destination_memory(name, src, dst, qd)


def main():
    migvm.require_own_kvm(bootguest.GUEST_IMG)
    t0 = time.monotonic()
    run("1 GiB over unix", test_1g, "unix")
    run("1 GiB over tcp", test_1g, "tcp")
    run("cancel", test_cancel)
    run("destination killed", test_destination_killed)
    run("paused guest", test_paused_guest)
    print("# took %.1f s" % (time.monotonic() - t0))
    migvm.finish()


if __name__ == "__main__":
    main()
