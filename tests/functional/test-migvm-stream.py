#!/usr/bin/env python3
"""build/migvm-stream, the offline stream checker.

* accepts streams written by QEMU 7.2 (-M none; -M pc under TCG and, where
  QEMU can run a KVM guest here, under KVM; with a "block" section from
  `migrate blk`, with a "dirty-bitmap" section; the main channel of a multifd
  migration) and by migvm (-M none, -M pc soft, -M pc KVM), with exit status 0
  and one line per section; migvm's with "block", "dirty-bitmap" and
  virtio-blk sections too, and the main channel of its multifd migration;
* rejects every corrupted stream of the loader's corruption suites (the
  functional one, test-migration-failures.py, on a migvm stream, and the
  interop one, test-interop-migration.py, on a QEMU stream) with exit status
  1 and a message naming a byte offset at or just before the corruption;
* `dump` prints JSON lines: the expected sections, RAM pages by type per
  block, block chunks per device;
* in a pipe, `migrate "exec:migvm-stream verify -"` completes, and a stream
  corrupted on its way (in its last bytes, so only the exit status can tell)
  makes the migration fail while the source runs on;
* usage errors and unreadable files exit 2.
"""

import ast
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "interop"))
import migvm  # noqa: E402
from migvm import VM, check, check_eq, finish, kvm_usable, new_tmpdir, qemu_kvm, require_binary, run, skip  # noqa: E402
from miglib import (MiB, StreamMap, flip, mig_info, query_status, serial_size, serial_text, start_vm,  # noqa: E402
                    wait_mig_status, wait_serial_growth, wait_until)

QEMU = shutil.which("qemu-system-x86_64")
STATE = {}


def tool():
    return os.path.abspath(os.path.join(os.environ.get("BUILD", "build"), "migvm-stream"))


def run_tool(args, data=None):
    """(exit status, stdout, stderr) of migvm-stream args; data goes to stdin."""
    p = subprocess.run([tool()] + args, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def verify_file(data):
    d = new_tmpdir()
    path = os.path.join(d, "s.mig")
    with open(path, "wb") as f:
        f.write(data)
    return run_tool(["verify", path])


ERR = re.compile(r"invalid stream: offset (\d+) \(0x([0-9a-f]+)\): (.*)")


def expect_valid(name, data, sections):
    """verify (from a file) and dump (from stdin) accept data; the summary
    lines name exactly `sections` in order (None: don't compare)."""
    rc, out, err = verify_file(data)
    check_eq("%s: verify exits 0" % name, (rc, err), (0, ""))
    lines = out.splitlines()
    check("%s: verify's last line says valid, with the stream's size" % name,
          lines and re.search(r": valid migration stream: %d bytes" % len(data), lines[-1]), out[-400:])
    names = [ln.split()[0] for ln in lines[:-1]]
    if sections is not None:
        check_eq("%s: one summary line per section" % name, names, sections)
    rc, out, err = run_tool(["dump", "-"], data=data)
    check_eq("%s: dump - exits 0" % name, (rc, err), (0, ""))
    try:
        objs = [json.loads(ln) for ln in out.splitlines()]
    except ValueError as e:
        check("%s: dump prints JSON lines" % name, False, "%s in %r" % (e, out[:300]))
        return None
    check_eq("%s: dump's sections are verify's" % name, [o.get("section") for o in objs[:-1]], names)
    check_eq("%s: dump's last line: valid, size" % name, (objs[-1].get("stream"), objs[-1].get("bytes")),
             ("valid", len(data)))
    return objs


def expect_invalid(name, data, bad, at=None):
    """verify rejects bad, from a file (where device bodies are read at the
    length the trailing VMDESCRIPTION gives) and from a pipe (where they are
    found by their footer): exit 1, one stderr line naming an offset within
    reach of the first byte where bad differs from data (at: that place,
    when it is not the first difference). Returns (offset, message) of the
    file run."""
    if at is None:
        at = next((i for i in range(min(len(data), len(bad))) if data[i] != bad[i]), min(len(data), len(bad)))
    result = None
    for how in ("file", "pipe"):
        rc, out, err = verify_file(bad) if how == "file" else run_tool(["verify", "-"], data=bad)
        m = ERR.search(err)
        if not check("%s (%s): exit 1 with 'invalid stream: offset N (0xN): ...'" % (name, how), rc == 1 and m,
                     "rc %r, stderr %r" % (rc, err)):
            continue
        off = int(m.group(1))
        if how == "file":
            check_eq("%s: offset in decimal and hex agree" % name, int(m.group(2), 16), off)
            result = (off, m.group(3))
        # The checker names where the element holding the damage starts (a
        # page, a device body, a section), or where a later check fails: never
        # past the end, never long before the damage.
        check("%s (%s): offset %d is near the damage at %d and inside the stream (%d bytes)"
              % (name, how, off, at, len(bad)), at - 8200 <= off <= at + 300 and off <= len(bad), m.group(3))
        if len(bad) < len(data) and bad == data[:len(bad)] and "ends at offset" in err:
            check("%s (%s): names where the stream ends" % (name, how), "ends at offset %d" % len(bad) in err, err)
    return result


# ---------------------------------------------------------------------------
# Writers

def save_stream(vm, q, path, caps=(), blk=False, timeout=30):
    if caps:
        q.cmd_ok("migrate-set-capabilities", capabilities=[{"capability": c, "state": True} for c in caps])
    args = {"uri": "exec:cat > %s" % path}
    if blk:
        args["blk"] = True
    q.cmd_ok("migrate", **args)
    info = wait_mig_status(q, ("completed", "failed"), timeout)
    if (info or {}).get("status") != "completed":
        raise RuntimeError("saving %s: %r" % (path, info))
    with open(path, "rb") as f:
        return f.read()


def qemu_vm(args):
    vm = VM(["-nodefaults", "-display", "none"] + args, defaults=False)
    vm.args[0] = QEMU
    vm.launch()
    return vm, vm.qmp()


def qemu_stream(args, **kw):
    vm, q = qemu_vm(args)
    data = save_stream(vm, q, os.path.join(vm.dir, "q.mig"), **kw)
    vm.kill()
    return data


def migvm_stream(args, **kw):
    vm = VM(args, defaults=False).launch()
    q = vm.qmp()
    data = save_stream(vm, q, os.path.join(vm.dir, "m.mig"), **kw)
    vm.kill()
    return data


# ---------------------------------------------------------------------------
# Tests

def test_qemu_streams():
    if not QEMU:
        skip("QEMU 7.2 streams", "qemu-system-x86_64 is not installed")
        return
    data = qemu_stream(["-M", "none", "-m", "4M", "-accel", "tcg"])
    STATE["qemu_none"] = data
    objs = expect_valid("QEMU -M none", data, ["ram", "timer", "globalstate"])
    if objs:
        ram = objs[0]
        blocks = [(b["name"], b["size"], b["pages"]["zero"] + b["pages"]["normal"]) for b in ram.get("blocks", [])]
        check_eq("QEMU -M none: dump: RAM block 'ram', 4 MiB, every page once", blocks, [("ram", 4 * MiB, 1024)])
        check_eq("QEMU -M none: dump: timer, globalstate described by the VMDESCRIPTION",
                 [(o["section"], o["described"], o["body"]) for o in objs[1:3]],
                 [("timer", True, 24), ("globalstate", True, 104)])
        check("QEMU -M none: dump: EOF and VMDESCRIPTION found", objs[-1].get("eof") and objs[-1].get("vmdesc"),
              objs[-1])
    # With the return path QEMU sends OPEN_RETURN_PATH and PING(1) after the configuration (over a socket,
    # which a file cannot show: put them in).
    cfg_end = 8 + 1 + 4 + 4                                          # "none"
    rp = data[:cfg_end] + b"\x08\x00\x01\x00\x00" + b"\x08\x00\x02\x00\x04\x00\x00\x00\x01" + data[cfg_end:]
    objs = expect_valid("QEMU -M none with OPEN_RETURN_PATH, PING", rp, ["ram", "timer", "globalstate"])
    if objs:
        check_eq("return path: dump counts 2 commands, return-path true",
                 (objs[-1].get("commands"), objs[-1].get("return-path")), (2, True))
    bad = data[:cfg_end] + b"\x08\x00\x01\x00\x00" * 2 + data[cfg_end:]
    expect_invalid("OPEN_RETURN_PATH twice", rp, bad, at=cfg_end + 5)
    bad = data[:cfg_end] + b"\x08\x00\x01\x00\x00" + b"\x08\x00\x02\x00\x03\x00\x00\x00" + data[cfg_end:]
    expect_invalid("PING of length 3", rp, bad)
    data = qemu_stream(["-M", "pc", "-m", "32M", "-accel", "tcg", "-S"])
    objs = expect_valid("QEMU -M pc (TCG)", data, None)
    names = [o["section"] for o in (objs or [])[:-1]]
    check("QEMU -M pc (TCG): cpu, apic, ide, piix4_pm among %d sections, every device described" % len(names),
          {"cpu", "apic", "0000:00:01.1/ide", "0000:00:01.3/piix4_pm"} <= set(names)
          and all(o["described"] for o in objs[:-1] if o["kind"] == "full"), names)
    k = qemu_kvm()
    if k.cpu:
        data = qemu_stream(["-M", "pc", "-m", "32M", "-accel", "kvm", "-cpu", k.cpu, "-S"])
        objs = expect_valid("QEMU -M pc (KVM)", data, None)
        check("QEMU -M pc (KVM): kvmclock section present", "kvmclock" in [o["section"] for o in (objs or [])[:-1]])
    else:
        skip("QEMU -M pc (KVM)", k.why)


def test_qemu_block_streams():
    if not QEMU:
        skip("QEMU 7.2 block streams", "qemu-system-x86_64 is not installed")
        return
    d = new_tmpdir()
    img = os.path.join(d, "d.img")
    with open(img, "wb") as f:                     # chunk 0 data, chunks 1 and 2 zero
        f.write(b"MIGVM-STREAM" + bytes(3 * MiB - 12))
    data = qemu_stream(["-M", "none", "-m", "4M", "-accel", "tcg", "-drive", "if=none,id=d0,file=%s,format=raw" % img],
                       caps=["zero-blocks"], blk=True)
    objs = expect_valid("QEMU block migration", data, ["block", "ram", "timer", "globalstate"])
    if objs:
        dev = objs[0].get("devices", [{}])[0]
        check_eq("QEMU block migration: dump: d0's chunks (offsets, zero ones), progress",
                 (dev.get("name"), sorted(dev.get("chunk-offsets", [])), dev.get("zero-chunks"), objs[0].get("progress")),
                 ("d0", [0, MiB, 2 * MiB], 2, 100))
    chunk = data.find(b"\x00\x00\x00\x00\x00\x00\x00\x01\x02d0")        # the data chunk at offset 0
    check("QEMU block migration: the data chunk is in the stream", chunk > 0)
    expect_invalid("block: chunk offset not 1 MiB aligned", data, data[:chunk + 6] + b"\x10\x01" + data[chunk + 8:])
    expect_invalid("block: unknown flag 0x10", data, data[:chunk + 7] + b"\x11" + data[chunk + 8:])
    expect_invalid("block: empty device name", data, data[:chunk + 8] + b"\x00" + data[chunk + 9:])
    expect_invalid("block: chunk cut short", data, data[:chunk + 11 + 1000])
    img = os.path.join(d, "bm.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img, "4M"], check=True)
    vm, q = qemu_vm(["-M", "none", "-m", "4M", "-accel", "tcg", "-drive", "if=none,id=d0,file=%s,format=qcow2" % img])
    q.cmd_ok("block-dirty-bitmap-add", {"node": "d0", "name": "bm0", "persistent": True, "granularity": 65536})
    q.cmd_ok("human-monitor-command", **{"command-line": 'qemu-io d0 "write -P 0x11 0 64k"'})
    data = save_stream(vm, q, os.path.join(d, "bm.mig"), caps=["dirty-bitmaps"])
    vm.kill()
    objs = expect_valid("QEMU dirty-bitmap migration", data, ["ram", "dirty-bitmap", "timer", "globalstate"])
    if objs:
        bm = objs[1].get("bitmaps", [{}])[0]
        check_eq("QEMU dirty-bitmap migration: dump: bm0 on d0, 64 KiB granules, one dirty, complete",
                 (bm.get("node"), bm.get("name"), bm.get("granularity"), bm.get("dirty-bits"), bm.get("complete")),
                 ("d0", "bm0", 65536, 1, True))
    start = data.find(b"\x1c\x02d0\x03bm0")                          # START with both names
    check("QEMU dirty-bitmap migration: the START record is in the stream", start > 0)
    expect_invalid("dirty-bitmap: granularity not a power of two", data,
                   data[:start + 8] + struct.pack(">I", 65535) + data[start + 12:])
    expect_invalid("dirty-bitmap: reserved bitmap flag", data, data[:start + 12] + b"\x80" + data[start + 13:])
    expect_invalid("dirty-bitmap: unknown record flag", data, data[:start] + b"\x1d" + data[start + 1:])


def multifd_capture(name, start):
    """A multifd migration (2 channels) from the source start() returns as
    (vm, q) to a sink that keeps each connection: {index: bytes}, the first
    connection being the main channel."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(30)
    chans = {}

    def drain(conn, i):
        data = bytearray()
        while True:
            b = conn.recv(1 << 20)
            if not b:
                break
            data += b
        chans[i] = bytes(data)

    def accept_all():
        threads = []
        try:
            for i in range(3):
                conn, _ = srv.accept()
                t = threading.Thread(target=drain, args=(conn, i))
                t.start()
                threads.append(t)
        finally:
            for t in threads:
                t.join(30)
    acceptor = threading.Thread(target=accept_all)
    acceptor.start()
    vm, q = start()
    q.cmd_ok("migrate-set-capabilities", capabilities=[{"capability": "multifd", "state": True}])
    q.cmd_ok("migrate-set-parameters", multifd_channels=2)
    q.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % srv.getsockname()[1])
    info = wait_mig_status(q, ("completed", "failed"), 30)
    vm.kill()
    acceptor.join(30)
    srv.close()
    check_eq("%s: the migration to the sink completed" % name, (info or {}).get("status"), "completed")
    return chans


def test_qemu_multifd_main_channel():
    """QEMU 7.2 with multifd (2 channels) to a sink that keeps each connection:
    the first one is the main channel, an ordinary stream whose RAM section
    has only the zero pages (the others travel on the multifd channels)."""
    if not QEMU:
        skip("QEMU 7.2 multifd main channel", "qemu-system-x86_64 is not installed")
        return
    d = new_tmpdir()
    blob = os.path.join(d, "blob")
    with open(blob, "wb") as f:
        f.write(os.urandom(64 * 4096))
    chans = multifd_capture("QEMU multifd", lambda: qemu_vm(["-M", "none", "-m", "32M", "-accel", "tcg",
                                                            "-device", "loader,file=%s,addr=0x100000,force-raw=on"
                                                            % blob]))
    check("multifd: three connections, the two multifd ones carry the 64 pages",
          len(chans) == 3 and len(chans[1]) + len(chans[2]) > 64 * 4096, {k: len(v) for k, v in chans.items()})
    objs = expect_valid("QEMU multifd main channel", chans.get(0, b""), ["ram", "timer", "globalstate"])
    if objs:
        pages = objs[0]["blocks"][0]["pages"]
        check_eq("multifd main channel: zero pages only (the 64 others went on the multifd channels)",
                 (pages["zero"], pages["normal"]), (8192 - 64, 0))


def test_migvm_multifd_main_channel():
    """The same from migvm (-M pc, the soft workload having written its RAM
    once, then paused): a valid main channel, the multifd channels carrying
    the written pages."""
    def start():
        vm = VM(["-M", "pc", "-m", "16M", "-accel", "soft", "-nodefaults", "-display", "none",
                 "-serial", "file:%s" % os.path.join(new_tmpdir(), "serial")], defaults=False).launch()
        q = vm.qmp()
        serial = vm.args[vm.args.index("-serial") + 1][len("file:"):]
        check("migvm multifd: the workload wrote its RAM once (a 'B' on its serial port)",
              wait_until(lambda: b"B" in serial_text(serial), 20))
        q.cmd_ok("stop")
        return vm, q
    chans = multifd_capture("migvm multifd", start)
    check("migvm multifd: three connections, the multifd ones carry the written RAM (> 8 MiB)",
          len(chans) == 3 and len(chans[1]) + len(chans[2]) > 8 * MiB, {k: len(v) for k, v in chans.items()})
    objs = expect_valid("migvm multifd main channel", chans.get(0, b""),
                        ["ram", "timer", "serial", "soft-cpu", "globalstate"])
    if objs:
        pages = objs[0]["blocks"][0]["pages"]
        check("migvm multifd main channel: no normal page (they went on the multifd channels): %r" % pages,
              pages["normal"] == 0)


def test_migvm_streams():
    data = migvm_stream(["-M", "none", "-m", "4M", "-accel", "soft", "-nodefaults", "-display", "none"])
    expect_valid("migvm -M none", data, ["ram", "timer", "globalstate"])
    fm = load_failures_suite()
    good, _mem = fm.make_good_stream()
    STATE["migvm_good"] = good
    objs = expect_valid("migvm -M pc (soft, the corruption suite's good stream)", good,
                        ["ram", "timer", "serial", "soft-cpu", "globalstate"])
    if objs:
        pages = objs[0]["blocks"][0]["pages"]
        check("migvm -M pc: pc.ram's pages by type add up to 4 MiB at least (%r)" % pages,
              pages["zero"] + pages["normal"] >= 1024)
    # Block migration and dirty bitmaps: -M none with a drive, then -M pc with a virtio-blk disk.
    d = new_tmpdir()
    img = os.path.join(d, "d.img")
    with open(img, "wb") as f:
        f.write(b"MIGVM-STREAM" + bytes(3 * MiB - 12))
    vm = VM(["-M", "none", "-m", "4M", "-accel", "soft", "-nodefaults", "-display", "none",
             "-drive", "if=none,id=d0,file=%s,format=raw" % img], defaults=False).launch()
    q = vm.qmp()
    q.cmd_ok("block-dirty-bitmap-add", {"node": "d0", "name": "bm0", "granularity": 65536})
    q.cmd_ok("human-monitor-command", **{"command-line": 'qemu-io d0 "write -P 0x11 1M 64k"'})
    data = save_stream(vm, q, os.path.join(d, "none.mig"), caps=["zero-blocks", "dirty-bitmaps"], blk=True)
    vm.kill()
    objs = expect_valid("migvm -M none, block migration and a dirty bitmap", data,
                        ["block", "ram", "dirty-bitmap", "timer", "globalstate"])
    if objs:
        dev = objs[0].get("devices", [{}])[0]
        check_eq("migvm block: dump: d0's chunks (offsets, zero ones)",
                 (dev.get("name"), sorted(dev.get("chunk-offsets", [])), dev.get("zero-chunks")),
                 ("d0", [0, MiB, 2 * MiB], 1))
        bm = objs[2].get("bitmaps", [{}])[0]
        check_eq("migvm dirty-bitmap: dump: bm0 on d0, 64 KiB granules, one dirty, complete",
                 (bm.get("node"), bm.get("name"), bm.get("granularity"), bm.get("dirty-bits"), bm.get("complete")),
                 ("d0", "bm0", 65536, 1, True))
    vm = VM(["-M", "pc", "-m", "16M", "-accel", "soft", "-S", "-nodefaults", "-display", "none",
             "-drive", "if=virtio,file=%s,format=raw" % img], defaults=False).launch()
    q = vm.qmp()
    data = save_stream(vm, q, os.path.join(d, "pc.mig"), blk=True)
    vm.kill()
    objs = expect_valid("migvm -M pc with a virtio-blk disk, block migration", data,
                        ["block", "ram", "timer", "serial", "virtio-blk", "soft-cpu", "globalstate"])
    if objs:
        check("migvm -M pc virtio-blk: its device section described by the VMDESCRIPTION",
              objs[4]["described"], objs[4])
    why = kvm_usable()
    if why:
        skip("migvm -M pc (KVM)", why)
        return
    data = migvm_stream(["-M", "pc", "-m", "16M", "-accel", "kvm", "-nodefaults", "-display", "none", "-S"])
    objs = expect_valid("migvm -M pc (KVM)", data, None)
    names = [o["section"] for o in (objs or [])[:-1]]
    check("migvm -M pc (KVM): the early CPU model section, cpu with its subsections, irqchips (%s)" % names,
          names[:1] == ["kvm-cpu-model"] and "cpu" in names and names.count("kvm-irqchip") == 3
          and any(o["section"] == "cpu" and o["subsections"] > 0 for o in objs[:-1]))


def load_failures_suite():
    """test-migration-failures.py as a module: its good stream and corruptions."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("migration_failures", os.path.join(HERE, "test-migration-failures.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def interop_corruptions():
    """The interop suite's corruptions() (test-interop-migration.py runs its
    tests at import, so only that function and what it uses are taken)."""
    path = os.path.join(HERE, "..", "interop", "test-interop-migration.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    keep = [n for n in tree.body if (isinstance(n, ast.FunctionDef) and n.name in ("be32", "corruptions"))
            or (isinstance(n, ast.Assign) and any(getattr(t, "id", "") in ("RAM_ERR", "CORRUPTIONS")
                                                  for t in n.targets))]
    import qemustream
    ns = {"struct": struct, "qemustream": qemustream}
    exec(compile(ast.Module(body=keep, type_ignores=[]), path, "exec"), ns)
    return ns["corruptions"], ns["CORRUPTIONS"]


def test_corruptions():
    good = STATE.get("migvm_good")
    if not good:
        check("the functional suite's good stream exists", False, "not made")
        return
    fm = load_failures_suite()
    cases = fm.corruptions(good)
    results = []
    for name, bad, _cause in cases:
        results.append(expect_invalid("migvm stream, %s" % name, good, bad))
    print("#   functional suite: %d corrupted streams" % len(cases))
    check("functional suite: every case run (%d)" % len(cases), len(cases) >= 60 and all(results))
    data = STATE.get("qemu_none")
    if not data:
        skip("interop corruption suite", "no QEMU stream")
        return
    corruptions, count = interop_corruptions()
    cases = corruptions(data)
    for name, bad, _want in cases:
        expect_invalid("QEMU stream, %s" % name, data, bad)
    check_eq("interop suite: every case run", len(cases), count)
    # A stream cut right after EOF loads (QEMU and migvm): valid, device sections only framed.
    eof = StreamMap(data).eof_off
    rc, out, err = verify_file(data[:eof + 1])
    check_eq("cut after EOF: valid (exit 0)", (rc, err), (0, ""))
    check("cut after EOF: says the device sections are only framed", "framed only" in out and "no VMDESCRIPTION" in out,
          out)
    # A FULL section the VMDESCRIPTION does not list is only framed; one it lists must be there.
    extra = b"\x04" + struct.pack(">I", 99) + b"\x05extra" + struct.pack(">II", 0, 1) + b"body" + b"\x7e" + \
        struct.pack(">I", 99)
    with_extra = data[:eof] + extra + data[eof:]
    objs = expect_valid("a FULL section the VMDESCRIPTION does not describe", with_extra,
                        ["ram", "timer", "globalstate", "extra"])
    if objs:
        check_eq("undescribed section: dump says body 4, not described", (objs[3]["body"], objs[3]["described"]),
                 (4, False))
    rc, out, err = verify_file(with_extra)
    check("undescribed section: verify says framed only", re.search(r"^extra .*framed only \(not in the VMDESCRIPTION\)",
                                                                   out, re.M), out)
    g = StreamMap(data).sections[-1]
    expect_invalid("a described section missing (globalstate)", data,
                   data[:g["off"]] + data[g["footer_off"] + 5:], at=g["off"])
    bad = data[:-1] + b"]"
    off, msg = expect_invalid("VMDESCRIPTION's last byte", data, bad) or (None, "")
    check("VMDESCRIPTION's last byte: says the JSON is wrong (%r)" % msg, "VMDESCRIPTION" in msg)


def test_pipe():
    src = start_vm("16M", dirty_rate=20)
    q = src.qmp()
    if not wait_until(lambda: serial_size(src.serial_path) >= 2, 10):
        raise RuntimeError("workload not running")
    out = os.path.join(src.dir, "verify.out")
    q.cmd_ok("migrate", uri="exec:%s verify - > %s" % (tool(), out))
    info = wait_mig_status(q, ("completed", "failed"), 30)
    check_eq("exec: pipe through verify: completed", (info or {}).get("status"), "completed")
    # The source waited for the command: its flight record still counts every byte of the stream.
    rec = q.cmd_ok("x-query-migration-history")[-1]
    check_eq("exec: pipe: the history's transferred and pass bytes add up to query-migrate's",
             (rec.get("transferred"), sum(p["bytes"] for p in rec.get("passes", []))),
             ((info or {}).get("ram", {}).get("transferred"),) * 2)
    with open(out) as f:
        text = f.read()
    check("exec: pipe: the summary names <stdin> and ram", "<stdin>: valid migration stream" in text
          and text.startswith("ram "), text[-300:])
    src.kill()
    # The same through a filter that damages the VMDESCRIPTION's last byte: the
    # writes all succeed, only the checker's exit status can fail the migration.
    src = start_vm("16M", dirty_rate=20)
    q = src.qmp()
    if not wait_until(lambda: serial_size(src.serial_path) >= 2, 10):
        raise RuntimeError("workload not running")
    damage = ("python3 -c 'import sys; d = sys.stdin.buffer.read(); "
              "sys.stdout.buffer.write(d[:-1] + bytes([d[-1] ^ 0x5a]))'")
    err = os.path.join(src.dir, "verify.err")
    q.cmd_ok("migrate", uri="exec:%s | %s verify - > /dev/null 2> %s" % (damage, tool(), err))
    info = wait_mig_status(q, ("completed", "failed"), 30) or mig_info(q)
    check_eq("exec: damaged stream: migration failed", info.get("status"), "failed")
    check("exec: damaged stream: error-desc gives the checker's exit status 1", "status 1" in info.get("error-desc", ""),
          info)
    with open(err) as f:
        text = f.read()
    check("exec: damaged stream: the checker names the VMDESCRIPTION's offset", ERR.search(text) and "VMDESCRIPTION" in text,
          text)
    check_eq("exec: damaged stream: the source runs on", query_status(q), "running")
    check("exec: damaged stream: the guest makes progress", wait_serial_growth(src.serial_path, 10))
    src.kill()


def test_usage():
    rc, out, err = run_tool([])
    check("no arguments: exit 2 with the usage on stderr", rc == 2 and "usage: migvm-stream" in err, (rc, err))
    rc, out, err = run_tool(["check", "-"])
    check_eq("unknown command: exit 2", rc, 2)
    rc, out, err = run_tool(["verify", "/nonexistent/stream"])
    check("missing file: exit 2, names the file", rc == 2 and "/nonexistent/stream" in err, (rc, err))
    rc, out, err = run_tool(["verify", "/"])
    check("a directory: exit 2 (read error, not an invalid stream)", rc == 2 and "read error" in err, (rc, err))
    rc, out, err = run_tool(["--help"])
    check("--help: exit 0, usage and exit codes on stdout", rc == 0 and "Exit status" in out, (rc, out))
    rc, out, err = run_tool(["verify", "-"], data=b"")
    check("empty input: exit 1, expected the magic at offset 0", rc == 1 and "offset 0 (0x0)" in err, err)


def main():
    require_binary()
    if not os.access(tool(), os.X_OK):
        migvm.fail_all("%s is built (make builds it)" % tool())
    if migvm.qemu_mode():
        migvm.skip_all("tests build/migvm-stream, not the VM")
    run("usage and exit codes", test_usage)
    run("QEMU 7.2 streams", test_qemu_streams)
    run("QEMU 7.2 block and dirty-bitmap streams", test_qemu_block_streams)
    run("QEMU 7.2 multifd main channel", test_qemu_multifd_main_channel)
    run("migvm multifd main channel", test_migvm_multifd_main_channel)
    run("migvm streams", test_migvm_streams)
    run("corruption suites", test_corruptions)
    run("exec: pipe", test_pipe)
    finish()


if __name__ == "__main__":
    main()
