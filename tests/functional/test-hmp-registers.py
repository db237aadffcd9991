#!/usr/bin/python3
"""HMP `info registers [-a|vcpu]` with the ring3 guest under migvm's KVM
machine: the lines QEMU 7.2 prints for an x86-64 vCPU, in order, with values
the guest is known to hold (guest/ring3/ring3.h, boot.S); a live guest left
undisturbed by 30 reads; a migration destination showing the source's
registers; -smp 2 with -a; the soft accelerator's and -machine none's error
line; and, when QEMU 7.2 is installed, the same guest's `info registers`
under QEMU compared line by line (labels, not values)."""

import os
import re
import select
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import miglib  # noqa: E402
import migvm  # noqa: E402
from migvm import VM, check, check_eq, new_tmpdir, run, wait_until  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
RING3_IMG = os.path.abspath(os.path.join(BUILD, "guest", "ring3-guest.img"))
RING3_ELF = os.path.abspath(os.path.join(BUILD, "guest", "ring3", "ring3-guest.elf"))
MEM = "256M"
STATUS_RE = re.compile(rb"^seq=(\d+) ", re.M)
H16, H8, H4 = "[0-9a-f]{16}", "[0-9a-f]{8}", "[0-9a-f]{4}"

# QEMU 7.2's lines for a vCPU in 64-bit code, in order ({seg} = a segment).
SEG64 = r"%s=" + H4 + " " + H16 + " " + H8 + " " + H8 + r"( DPL=\d (CS64|CS32|CS16|DS  |DS16) \[[-CREWA]{3}\]| DPL=\d [A-Za-z0-9<>-]+)?"
LINES64 = [
    r"RAX=%s RBX=%s RCX=%s RDX=%s" % ((H16,) * 4),
    r"RSI=%s RDI=%s RBP=%s RSP=%s" % ((H16,) * 4),
    r"R8 =%s R9 =%s R10=%s R11=%s" % ((H16,) * 4),
    r"R12=%s R13=%s R14=%s R15=%s" % ((H16,) * 4),
    r"RIP=%s RFL=%s \[[-D][-O][-S][-Z][-A][-P][-C]\] CPL=[0-3] II=[01] A20=[01] SMM=[01] HLT=[01]" % (H16, H8),
] + [SEG64 % name for name in ("ES ", "CS ", "SS ", "DS ", "FS ", "GS ", "LDT", "TR ")] + [
    r"GDT=     %s %s" % (H16, H8),
    r"IDT=     %s %s" % (H16, H8),
    r"CR0=%s CR2=%s CR3=%s CR4=%s" % (H8, H16, H16, H8),
    r"DR0=%s DR1=%s DR2=%s DR3=%s " % ((H16,) * 4),
    r"DR6=%s DR7=%s" % (H16, H16),
    r"EFER=%s" % H16,
    r"FCW=%s FSW=%s \[ST=[0-7]\] FTW=[0-9a-f]{2} MXCSR=%s" % (H4, H4, H8),
] + [r"FPR%d=%s %s FPR%d=%s %s" % (i, H16, H4, i + 1, H16, H4) for i in range(0, 8, 2)]
YMM_LINES = [r"YMM%02d=%s %s %s %s" % ((i,) + (H16,) * 4) for i in range(16)]
XMM_LINES = [r"XMM%02d=%s %s XMM%02d=%s %s" % (i, H16, H16, i + 1, H16, H16) for i in range(0, 16, 2)]


def start(accel="kvm", extra=(), incoming=None, tmpdir=None, image=RING3_IMG):
    return miglib.start_kvm_guest(image, MEM, accel=accel, extra=extra, incoming=incoming, tmpdir=tmpdir, hmp=True)


def serial(vm):
    return miglib.serial_text(vm.serial_path)


def seqs(vm):
    return [int(m.group(1)) for m in STATUS_RE.finditer(serial(vm))]


def damage(text):
    return [ln for ln in text.split(b"\n") if ln.startswith(b"ERROR") or b"FATAL" in ln]


def wait_lines(vm, n, timeout=60.0):
    return bool(wait_until(lambda: len(seqs(vm)) >= n, timeout, interval=0.1))


def avx_on(vm):
    return b" avx=1 " in serial(vm)


def blocks(text):
    """{cpu index: [lines]} of an `info registers` output ("\\r\\nCPU#n\\r\\n" headers)."""
    out, cur = {}, None
    for line in text.split("\r\n"):
        m = re.fullmatch(r"CPU#(\d+)", line)
        if m:
            cur = out.setdefault(int(m.group(1)), [])
        elif cur is not None and line:
            cur.append(line)
    return out


def fields(lines):
    """{"RAX": "0000...", "CS": "0023 base limit flags ...", ...}."""
    f = {}
    for line in lines:
        seg = re.fullmatch(r"(ES |CS |SS |DS |FS |GS |LDT|TR )=(.*)", line)
        if seg:
            f[seg.group(1).strip()] = seg.group(2)
            continue
        dt = re.fullmatch(r"(GDT|IDT)=\s+(\S+) (\S+)", line)
        if dt:
            f[dt.group(1)] = (int(dt.group(2), 16), int(dt.group(3), 16))
            continue
        for k, v in re.findall(r"([A-Z][A-Z0-9]* ?)=([0-9a-f]+)", line):
            f.setdefault(k.strip(), v)
    return f


def symbols():
    """gdt/idt/tss addresses from the guest ELF (nm), or {} without nm."""
    nm = shutil.which("nm")
    if not nm or not os.path.isfile(RING3_ELF):
        return {}
    out = subprocess.run([nm, RING3_ELF], capture_output=True, text=True).stdout
    return {m.group(2): int(m.group(1), 16) for m in re.finditer(r"^([0-9a-f]+) \w (\w+)$", out, re.M)}


def check_layout64(name, lines, avx):
    want = LINES64 + (YMM_LINES if avx else XMM_LINES)
    bad = [(i, want[i], lines[i] if i < len(lines) else None) for i in range(len(want))
           if i >= len(lines) or not re.fullmatch(want[i], lines[i])]
    check("%s: the %d lines QEMU 7.2 prints for 64-bit code, in order" % (name, len(want)),
          not bad and len(lines) == len(want), repr(bad[:3]) + " lines=%d" % len(lines))


def check_known_values(name, f):
    cr0 = int(f.get("CR0", "0"), 16)
    efer = int(f.get("EFER", "0"), 16)
    check("%s: CR0 has PG and PE (%#x)" % (name, cr0), cr0 & 0x80000001 == 0x80000001)
    check("%s: EFER has LME and LMA (%#x)" % (name, efer), efer & 0x500 == 0x500)
    check("%s: CS is 64-bit code (CS64)" % name, "CS64" in f.get("CS", ""), f.get("CS"))
    check_eq("%s: CR3 = R3_PML4" % name, int(f.get("CR3", "0"), 16), 0x100000)
    for k in range(4):
        check_eq("%s: DR%d holds its canary" % (name, k), int(f.get("DR%d" % k, "0"), 16), 0x1111000 * (k + 1))
    check_eq("%s: GDT limit (9 descriptors)" % name, f.get("GDT", (0, 0))[1], 0x47)
    check_eq("%s: IDT limit (256 gates of 16 bytes)" % name, f.get("IDT", (0, 0))[1], 0xfff)
    check("%s: TR is the busy 64-bit TSS" % name, f.get("TR", "").endswith("TSS64-busy"), f.get("TR"))
    sym = symbols()
    if sym.get("gdt") and sym.get("idt"):
        check_eq("%s: GDT base is the guest's gdt" % name, f.get("GDT", (0, 0))[0], sym["gdt"])
        check_eq("%s: IDT base is the guest's idt" % name, f.get("IDT", (0, 0))[0], sym["idt"])
        check_eq("%s: TR base is the guest's tss" % name, int(f.get("TR", "0 0").split()[1], 16), sym.get("tss"))
    cs_dpl = re.search(r"DPL=(\d)", f.get("CS", ""))
    check("%s: CPL matches the code segment's DPL" % name, cs_dpl and cs_dpl.group(1) == f.get("CPL"),
          "CS %r CPL %r" % (f.get("CS"), f.get("CPL")))


# ---------------------------------------------------------------------------

def test_paused():
    vm = start()
    q = vm.qmp()
    h = vm.hmp()
    if not check("guest prints status lines", wait_lines(vm, 2), serial(vm)[-300:] + vm.stderr_text().encode()):
        return
    h.cmd("stop")
    out = h.cmd("info registers")
    check("output lines end with \\r\\n", "\n" not in out.replace("\r\n", "") and out.endswith("\r\n"),
          repr(out[:200]))
    check("starts with the CPU#0 header as QEMU 7.2 prints it", out.startswith("\r\nCPU#0\r\n"), repr(out[:40]))
    b = blocks(out)
    check_eq("one vCPU shown", sorted(b), [0])
    lines = b.get(0, [])
    check_layout64("stopped guest", lines, avx_on(vm))
    check_known_values("stopped guest", fields(lines))
    check_eq("HLT=0 / SMM=0 / A20=1 (a busy guest)", re.findall(r"A20=(\d) SMM=(\d)", out), [("1", "0")])
    check_eq("`info registers` does not change a paused VM's state", miglib.query_status(q), "paused")
    check_eq("`info registers 0` is the same as the current CPU", h.cmd("info registers 0"), out)
    check_eq("a vCPU that does not exist", h.cmd("info registers 5"), "CPU#5 not available\r\n")
    hmc = q.cmd_ok("human-monitor-command", **{"command-line": "info registers"})
    check_eq("human-monitor-command returns the same text", hmc, out)
    usage = h.cmd("help info registers")
    check("help info registers: QEMU 7.2's usage", usage.startswith("info registers [-a|vcpu] -- "), repr(usage))
    h.cmd("cont")
    n = len(seqs(vm))
    check("guest goes on after cont", wait_lines(vm, n + 2), serial(vm)[-300:])
    check("no ERROR line", not damage(serial(vm)), damage(serial(vm))[:3])


def test_prelaunch():
    """-S: before the first instruction, real mode at 0:7c00 (32-bit layout)."""
    vm = start(extra=["-S"])
    h = vm.hmp()
    b = blocks(h.cmd("info registers"))
    lines = b.get(0, [])
    want = [r"EAX=%s EBX=%s ECX=%s EDX=%s" % ((H8,) * 4), r"ESI=%s EDI=%s EBP=%s ESP=%s" % ((H8,) * 4),
            r"EIP=00007c00 EFL=00000002 \[-------\] CPL=0 II=0 A20=1 SMM=0 HLT=0"] + \
        [r"%s=%s %s %s %s" % (n, H4, H8, H8, H8) for n in ("ES ", "CS ", "SS ", "DS ", "FS ", "GS ", "LDT", "TR ")] + \
        [r"GDT=     %s %s" % (H8, H8), r"IDT=     %s %s" % (H8, H8), r"CR0=60000010 CR2=%s CR3=%s CR4=%s" % (
            (H8,) * 3), r"DR0=%s DR1=%s DR2=%s DR3=%s " % ((H16,) * 4),
         r"DR6=00000000ffff0ff0 DR7=0000000000000400", r"EFER=0000000000000000",
         r"FCW=037f FSW=0000 \[ST=0\] FTW=00 MXCSR=00001f80"] + \
        [r"FPR%d=%s %s FPR%d=%s %s" % (i, H16, H4, i + 1, H16, H4) for i in range(0, 8, 2)] + \
        [r"XMM%02d=%s %s XMM%02d=%s %s" % (i, H16, H16, i + 1, H16, H16) for i in range(0, 8, 2)]
    bad = [(i, lines[i] if i < len(lines) else None) for i in range(len(want))
           if i >= len(lines) or not re.fullmatch(want[i], lines[i])]
    check("-S: real mode at 0:7c00 in the 32-bit layout, 8 XMM registers", not bad and len(lines) == len(want),
          repr(bad[:3]))
    check("-S: CS selector 0, base 0", lines[4:5] == ["CS =0000 00000000 0000ffff 00009b00"], repr(lines[4:5]))


def test_live():
    vm = start()
    q = vm.qmp()
    h = vm.hmp()
    if not check("live: guest prints status lines", wait_lines(vm, 2), serial(vm)[-300:]):
        return
    avx = avx_on(vm)
    first = seqs(vm)[-1]
    bad = []
    for i in range(30):
        b = blocks(h.cmd("info registers"))
        lines = b.get(0, [])
        want = LINES64 + (YMM_LINES if avx else XMM_LINES)
        if len(lines) != len(want) or not all(re.fullmatch(w, ln) for w, ln in zip(want, lines)):
            bad.append((i, lines[:2]))
        time.sleep(0.02)
    check("live: 30 reads, each a complete 64-bit register dump", not bad, repr(bad[:2]))
    check_eq("live: the VM still runs", miglib.query_status(q), "running")
    check("live: the guest keeps counting", wait_until(lambda: seqs(vm) and seqs(vm)[-1] >= first + 3, 60, 0.1),
          serial(vm)[-300:])
    check("live: no ERROR line in the guest's output", not damage(serial(vm)), damage(serial(vm))[:3])
    check("live: nothing on stderr", not vm.stderr_text(), vm.stderr_text())


def test_migration():
    """Source stopped, migrated; source (postmigrate) and destination
    (paused, before cont) print the same registers."""
    src = start()
    qs = src.qmp()
    hs = src.hmp()
    if not check("migration: source guest runs", wait_lines(src, 2), serial(src)[-300:]):
        return
    hs.cmd("stop")
    before = hs.cmd("info registers -a")
    d = new_tmpdir()
    uri = "unix:" + os.path.join(d, "mig.sock")
    dst = start(incoming=uri, tmpdir=d)
    qd = dst.qmp()
    hd = dst.hmp()
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 8 << 30})
    qs.cmd_ok("migrate", uri=uri)
    info = miglib.wait_mig_status(qs, ("completed", "failed", "cancelled"), 60)
    check_eq("migration: completed", info and info.get("status"), "completed")
    check("migration: destination done loading", wait_until(
        lambda: (miglib.mig_status(qd) or "completed") == "completed" and miglib.query_status(qd) == "paused", 30),
        miglib.query_status(qd))
    after_src = hs.cmd("info registers -a")
    after_dst = hd.cmd("info registers -a")
    check_eq("migration: source state postmigrate", miglib.query_status(qs), "postmigrate")
    check("migration: the source's registers did not move while stopped", after_src == before,
          diff(before, after_src))
    check("migration: the destination prints the source's registers, line for line", after_dst == after_src,
          diff(after_src, after_dst))
    check("migration: and it is a full dump", len(blocks(after_dst).get(0, [])) >= len(LINES64),
          repr(after_dst[:200]))
    hd.cmd("cont")
    check("migration: destination guest runs on", wait_until(lambda: len(seqs(dst)) >= 2, 60, 0.1),
          serial(dst)[-300:] + dst.stderr_text().encode())
    check("migration: no ERROR line on the destination", not damage(serial(dst)), damage(serial(dst))[:3])


def diff(a, b):
    la, lb = a.split("\r\n"), b.split("\r\n")
    return repr([(x, y) for x, y in zip(la, lb) if x != y][:3]) + " (%d vs %d lines)" % (len(la), len(lb))


def test_smp2():
    vm = start(extra=["-smp", "2"])
    h = vm.hmp()
    if not check("smp 2: guest runs", wait_lines(vm, 2), serial(vm)[-300:]):
        return
    out = h.cmd("info registers -a")
    b = blocks(out)
    check_eq("smp 2: -a shows CPU#0 and CPU#1", sorted(b), [0, 1])
    check("smp 2: headers as QEMU 7.2 prints them", out.startswith("\r\nCPU#0\r\n") and "\r\n\r\nCPU#1\r\n" in out,
          repr(out[:30]))
    # 26 lines in real mode (8 XMM registers, two a line), 40 in 64-bit code.
    check("smp 2: each CPU has a full dump", all(len(v) >= 26 for v in b.values()),
          repr({k: len(v) for k, v in b.items()}))
    check_layout64("smp 2: CPU#0", b.get(0, []), avx_on(vm))
    one = h.cmd("info registers 1")
    check("smp 2: `info registers 1` shows CPU#1 only", sorted(blocks(one)) == [1], repr(one[:40]))
    check("smp 2: no ERROR line", not damage(serial(vm)), damage(serial(vm))[:3])


def test_no_cpu_state():
    vm = VM(["-accel", "soft", "-m", "64M"], hmp=True).launch()
    h = vm.hmp()
    check_eq("soft accelerator: an error line", h.cmd("info registers"),
             "Error: No CPU state to show: the soft accelerator has no CPU registers\r\n")
    check_eq("soft accelerator: -a too", h.cmd("info registers -a"),
             "Error: No CPU state to show: the soft accelerator has no CPU registers\r\n")
    vm2 = VM(["-machine", "none", "-accel", "kvm"], hmp=True).launch()
    h2 = vm2.hmp()
    # QEMU 7.2's answers on a board without vCPUs
    check_eq("-machine none: no CPU", h2.cmd("info registers"), "No CPU available\r\n")
    check_eq("-machine none: -a prints nothing", h2.cmd("info registers -a"), "")
    check_eq("-machine none: vCPU 0 is not there", h2.cmd("info registers 0"), "CPU#0 not available\r\n")


def test_completion():
    """`info reg` TAB on the readline console (-monitor stdio on a terminal)
    becomes `info registers`: the soft accelerator then answers with its
    error line rather than `unknown command`."""
    master, slave = os.openpty()
    args = [migvm.binary(), "-display", "none", "-nodefaults", "-accel", "soft", "-S", "-monitor", "stdio"]
    p = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=subprocess.DEVNULL, close_fds=True)
    migvm.track_pid(p.pid)
    os.close(slave)
    buf = bytearray()

    def read_until(pattern, timeout=10.0):
        def got():
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                try:
                    buf.extend(os.read(master, 65536))
                except OSError:
                    pass
            return re.search(pattern, bytes(buf))
        return wait_until(got, timeout, interval=0)
    try:
        check("completion: (qemu) prompt on the terminal", read_until(rb"\(qemu\) "), bytes(buf))
        del buf[:]
        os.write(master, b"info reg\t\r")
        m = read_until(rb"(No CPU state to show|unknown command)[^\r\n]*\r\n")
        check("completion: TAB completes `info reg` to `info registers`",
              m and m.group(1) == b"No CPU state to show", bytes(buf)[-300:])
    finally:
        p.kill()
        p.wait()
        os.close(master)


# ---------------------------------------------------------------------------
# The same guest under QEMU 7.2

def labels(line):
    """What a line says, without values: its NAME= labels in order. A
    segment's " DPL=n kind" part is left out: it is printed only for a
    present segment, which depends on where the guest was stopped."""
    return [x for x in re.findall(r"([A-Za-z][A-Za-z0-9]*) ?=", line) if x != "DPL"]


def qemu_registers(qemu):
    d = new_tmpdir()
    sock, ser = os.path.join(d, "hmp.sock"), os.path.join(d, "serial.out")
    p = subprocess.Popen(qemu.args() + ["-m", MEM, "-display", "none", "-nodefaults",
                          "-drive", "file=%s,format=raw" % RING3_IMG, "-serial", "file:" + ser,
                          "-monitor", "unix:%s,server=on,wait=off" % sock],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    migvm.track_pid(p.pid)
    try:
        if not wait_until(lambda: os.path.exists(sock) or p.poll() is not None, 20):
            return None, "no monitor socket"
        if p.poll() is not None:
            return None, p.stderr.read().decode(errors="replace")
        h = migvm.HMPClient.unix(sock)
        ok = wait_until(lambda: len(STATUS_RE.findall(miglib.serial_text(ser))) >= 2, 90, 0.1)
        if not ok:
            return None, "QEMU's guest printed no status lines"
        h.cmd("stop")
        return h.cmd("info registers"), None
    finally:
        p.kill()
        p.wait()


def test_qemu_format():
    qemu = migvm.qemu_kvm()
    if qemu.why:
        migvm.skip("format against QEMU 7.2", qemu.why)
        return
    ref, why = qemu_registers(qemu)
    if not check("QEMU 7.2 runs the guest and prints its registers", ref, why):
        return
    vm = start()
    h = vm.hmp()
    if not check("migvm runs the guest", wait_lines(vm, 2), serial(vm)[-300:]):
        return
    h.cmd("stop")
    ours = h.cmd("info registers")
    check("both start with the CPU#0 header", ref.startswith("\r\nCPU#0\r\n") and ours.startswith("\r\nCPU#0\r\n"),
          repr((ref[:20], ours[:20])))
    a, b = blocks(ref).get(0, []), blocks(ours).get(0, [])
    check_eq("as many lines as QEMU 7.2", len(b), len(a))
    mism = [(x, y) for x, y in zip(a, b) if labels(x) != labels(y)]
    check("every line has QEMU 7.2's labels in QEMU 7.2's order", a and not mism, repr(mism[:3]))
    # The segment kinds (DPL=n CS64 [-R-] ...) depend on the moment the
    # guest stopped; show any difference rather than fail on it.
    kinds = [(x, y) for x, y in zip(a[5:13], b[5:13]) if x.split(" ", 4)[4:] != y.split(" ", 4)[4:]]
    for x, y in kinds:
        print("# segment description differs (guest moment): QEMU %r, migvm %r" % (x, y))
    print("# deliberate differences in line structure: none")


if __name__ == "__main__":
    migvm.require_own_kvm(RING3_IMG)
    run("paused guest", test_paused)
    run("prelaunch (-S)", test_prelaunch)
    run("live guest", test_live)
    run("migration", test_migration)
    run("-smp 2 with -a", test_smp2)
    run("no CPU state", test_no_cpu_state)
    run("tab completion", test_completion)
    run("format against QEMU 7.2", test_qemu_format)
    migvm.finish()
