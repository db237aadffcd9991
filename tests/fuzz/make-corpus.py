#!/usr/bin/python3
"""Make the stream seeds of tests/fuzz/corpus/ from real migrations.

    tests/fuzz/make-corpus.py [BUILD] [--text | --kvm]    (BUILD: build, holding migvm)

--text makes only the QMP, HMP and return-path seeds and dictionaries (the
stream seeds differ from run to run: the guest's pages do); --kvm only
fuzz-incoming-kvm's.

Saves streams with `migrate file:` from migvm (-M pc -accel soft -m 8M with
a 2 MiB virtio drive, as fuzz-incoming builds its machine: plain, with
`blk`, with dirty-bitmaps and a bitmap) and from QEMU 7.2 (-M pc and
-M none through exec:cat, when qemu-system-x86_64 is installed), then cuts them into small
seeds (streamcut.py): the whole stream with RAM and block data thinned out,
and one seed per section. QEMU's seeds also come with the machine type
rewritten to "pc", so its sections reach the loaders. Files are named by
content, so running it again adds only what changed.

fuzz-incoming-kvm's seeds come from migvm -M pc -accel kvm -m 8M running the
boot-sector guest from the same 2 MiB virtio drive, cut the same way. Where
/dev/kvm is not usable they are the -accel soft stream with "soft-cpu"
replaced by the KVM sections written as accel-kvm/ lays them out
(kvmsections.py), and the script says so.
"""
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "functional"))
sys.path.insert(0, HERE)
import json  # noqa: E402
import kvmsections  # noqa: E402
import migvm  # noqa: E402
import qapi_names  # noqa: E402
import streamcut  # noqa: E402

CORPUS = os.path.join(HERE, "corpus")


def save(target, data, tag):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    tag = "".join(c if c.isalnum() or c in "-_." else "_" for c in tag)
    name = "%s-%s" % (tag, hashlib.sha1(data).hexdigest()[:12])
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def wait_migration(q, timeout=60):
    st = {}

    def done():
        nonlocal st
        st = q.cmd("query-migrate")["return"]
        return st.get("status") in ("completed", "failed")
    migvm.wait_until(done, timeout)
    if st.get("status") != "completed":
        raise RuntimeError("migration did not complete: %r" % st)


def migvm_streams(tmp, kinds=(("plain", False, False), ("blk", True, False), ("bitmap", True, True))):
    img = os.path.join(tmp, "disk.img")
    with open(img, "wb") as f:
        f.truncate(2 << 20)
        f.write(b"migvm fuzz seed disk\n" * 200)
    out = []
    for name, blk, bitmap in kinds:
        vm = migvm.VM(["-M", "pc", "-accel", "soft", "-m", "8M",
                       "-drive", "file=%s,if=virtio,format=raw" % img])
        vm.launch()
        q = vm.qmp()
        if bitmap:
            q.cmd_ok("block-dirty-bitmap-add", {"node": "virtio0", "name": "bm0", "granularity": 65536})
            q.cmd_ok("migrate-set-capabilities",
                     {"capabilities": [{"capability": "dirty-bitmaps", "state": True}]})
        path = os.path.join(tmp, "migvm-%s.mig" % name)
        q.cmd_ok("migrate", {"uri": "file:" + path, "blk": blk})
        wait_migration(q)
        vm.kill()
        out.append(("migvm-" + name, path))
    return out


def qemu_streams(tmp):
    if not shutil.which("qemu-system-x86_64"):
        print("make-corpus: qemu-system-x86_64 not installed, QEMU 7.2 streams left out")
        return []
    out = []
    for machine in ("pc", "none"):
        sock = os.path.join(tmp, "qemu-%s.qmp" % machine)
        proc = subprocess.Popen(["qemu-system-x86_64", "-M", machine, "-accel", "tcg", "-m", "8M",
                                 "-nodefaults", "-display", "none", "-S",
                                 "-qmp", "unix:%s,server=on,wait=off" % sock],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            migvm.wait_until(lambda: os.path.exists(sock), 10)
            q = migvm.QMPClient.unix(sock)
            q.negotiate(repeated_greeting_ok=True)
            path = os.path.join(tmp, "qemu-%s.mig" % machine)
            q.cmd_ok("migrate", {"uri": "exec:cat > " + path})     # QEMU 7.2 has no file:
            wait_migration(q)
        finally:
            proc.kill()
            proc.wait()
        out.append(("qemu72-" + machine, path))
    return out


# The sections of a QEMU 7.2 stream that migvm's pc board also has.
SHARED_SECTIONS = {b"ram", b"timer", b"globalstate", b"block", b"dirty-bitmap"}


# QEMU 7.2's RAM blocks seen as the pc board's one block (-m 8M on both).
AS_PC_RAM = {"ram_keep": {b"pc.ram"}, "ram_rename": {b"ram": b"pc.ram"}}


def incoming_seeds(tag, path, machine=None, only=None, ram=None, target="fuzz-incoming"):
    ram = ram or {}
    data = open(path, "rb").read()
    s = streamcut.Stream(data)
    head = s.header(machine)
    eof = bytes([streamcut.TYPE_EOF])
    save(target, head + s.commands() + eof, tag + "-head")
    whole = head + b"".join(it if kind == "cmd" else streamcut.slim_chunk(it, **ram) for kind, it in s.items)
    save(target, whole + eof + (s.vmdesc if len(s.vmdesc) < 16384 else b""), tag + "-whole")
    by_sid = {}
    for ch in s.chunks():
        by_sid.setdefault(ch.sid, []).append(ch)
    for sid, chunks in by_sid.items():
        if only is not None and chunks[0].idstr not in only:
            continue
        body = b"".join(streamcut.slim_chunk(ch, pages=1, zeros=16, **ram) for ch in chunks)
        save(target, head + s.commands() + body + eof,
             "%s-%s" % (tag, chunks[0].idstr.decode(errors="replace")))


def migvm_kvm_stream(tmp):
    """migvm -accel kvm running the boot-sector guest from the fuzz machine's
    2 MiB virtio drive, saved after a second; None without a usable KVM."""
    why = migvm.kvm_usable()
    guest = os.path.join(os.environ["BUILD"], "guest", "boot-sector.img")
    if why or not os.path.isfile(guest):
        print("make-corpus: no KVM guest here (%s): fuzz-incoming-kvm's KVM sections are written by "
              "kvmsections.py" % (why or guest + " not built"))
        return None
    img = os.path.join(tmp, "kvm-disk.img")
    with open(img, "wb") as f:
        f.write(open(guest, "rb").read())
        f.truncate(2 << 20)
    vm = migvm.VM(["-M", "pc", "-accel", "kvm", "-m", "8M", "-drive", "file=%s,if=virtio,format=raw" % img])
    vm.launch()
    q = vm.qmp()
    time.sleep(1)
    path = os.path.join(tmp, "migvm-kvm.mig")
    q.cmd_ok("migrate", {"uri": "file:" + path})
    wait_migration(q)
    vm.kill()
    return path


def kvm_written_stream(tmp, soft_path):
    """The -accel soft stream with "soft-cpu" replaced by kvmsections.py's
    sections (the CPU model among the early sections, before RAM)."""
    s = streamcut.Stream(open(soft_path, "rb").read())
    early, rest = kvmsections.chunks(max(ch.sid for ch in s.chunks()) + 1)
    out = s.header()
    for kind, it in s.items:
        if kind == "chunk" and it.idstr == b"ram" and it.typ == streamcut.TYPE_START:
            out += b"".join(ch.encode() for ch in early)
            early = []
        if kind == "chunk" and it.idstr == b"soft-cpu":
            out += b"".join(ch.encode() for ch in rest)
            continue
        out += it if kind == "cmd" else it.encode()
    path = os.path.join(tmp, "migvm-kvm-written.mig")
    with open(path, "wb") as f:
        f.write(out + bytes([streamcut.TYPE_EOF]))
    return path


def kvm_seeds(tmp):
    path = migvm_kvm_stream(tmp)
    tag = "migvm-kvm"
    if path is None:
        path, tag = kvm_written_stream(tmp, migvm_streams(tmp, (("plain", False, False),))[0][1]), "written-kvm"
    incoming_seeds(tag, path, target="fuzz-incoming-kvm")
    # The vCPU's section alone, with the last byte asking the boundary to
    # fail one KVM answer (fuzz-kvm-ioctl.c): its first and its sixth.
    s = streamcut.Stream(open(path, "rb").read())
    cpu = b"".join(ch.encode() for ch in s.chunks() if ch.idstr == b"cpu")
    for last in (0xe0, 0xf5):
        save("fuzz-incoming-kvm", s.header() + s.commands() + cpu + bytes([streamcut.TYPE_EOF, last]),
             "%s-cpu-fail-%02x" % (tag, last))
    legacy = streamcut.Chunk(streamcut.TYPE_FULL, 99, b"cpu", 0, 2, kvmsections.cpu(legacy_fpu=True))
    save("fuzz-incoming-kvm", s.header() + legacy.encode() + bytes([streamcut.TYPE_EOF]), "written-kvm-cpu-fpu")


# Arguments a QMP client would send (commands not listed get none).
QMP_ARGS = {
    "migrate": {"uri": "tcp:127.0.0.1:4444", "blk": False, "inc": False, "detach": True, "resume": False},
    "migrate-incoming": {"uri": "tcp:0:4444"},
    "x-migrate-check": {"uri": "unix:/nonexistent"},
    "migrate-set-capabilities": {"capabilities": [{"capability": "dirty-bitmaps", "state": True},
                                                  {"capability": "xbzrle", "state": False}]},
    "migrate-set-parameters": {"downtime-limit": 300, "max-bandwidth": 1073741824, "cpu-throttle-initial": 20,
                               "tls-creds": "", "announce-step": 100,
                               "block-bitmap-mapping": [{"node-name": "virtio0", "alias": "a",
                                                         "bitmaps": [{"name": "bm0", "alias": "b",
                                                                      "transform": {"persistent": True}}]}]},
    "block-dirty-bitmap-add": {"node": "virtio0", "name": "bm0", "granularity": 65536, "persistent": False,
                               "disabled": False},
    "block-dirty-bitmap-merge": {"node": "virtio0", "target": "bm0",
                                 "bitmaps": ["bm1", {"node": "virtio0", "name": "bm2"}]},
    "calc-dirty-rate": {"calc-time": 1, "sample-pages": 512, "mode": "page-sampling"},
    "getfd": {"fdname": "fd0"},
    "closefd": {"fdname": "fd0"},
    "human-monitor-command": {"command-line": "info status", "cpu-index": 0},
    "memsave": {"val": 0, "size": 4096, "filename": "/dev/null", "cpu-index": 0},
    "pmemsave": {"val": 0, "size": 4096, "filename": "/dev/null"},
    "cont": {"x-force-after-migration": True},
}
for _n in ("remove", "clear", "enable", "disable"):
    QMP_ARGS["block-dirty-bitmap-" + _n] = {"node": "virtio0", "name": "bm0"}

NEGOTIATE = b'{"execute": "qmp_capabilities"}\n'
# Odd but valid and invalid envelopes, as test-qmp-hostile sends them.
QMP_ODD = [
    b'{"execute": "qmp_capabilities", "arguments": {"enable": ["oob"]}}',
    b'{"exec-oob": "query-status", "id": "x"}',
    b'{"execute": "query-status", "id": [1, {"a": null}]}',
    b'{"execute": "query-status", "arguments": []}',
    b'{"execute": 1}',
    b'{"execute": "query-status", "control": {"run-oob": true}}',
    b'[{"execute": "query-status"}]',
    b'{"execute": "migrate-set-parameters", "arguments": {"max-bandwidth": 18446744073709551616}}',
    b'{"execute": "migrate-set-parameters", "arguments": {"downtime-limit": -1.5e308}}',
    b'{"execute": "query-status", "unknown": 1}',
    b'{"execute": "block-dirty-bitmap-add", "arguments": {"node": "\\u0000", "name": "\\ud800"}}',
    b"{'execute': 'query-version'}",
    b'{"execute": "query-status"',
    b'\xff\xfe{"execute": "query-name"}',
]


def qmp_seeds():
    cmds, members = qapi_names.names()
    for i, name in enumerate(sorted(cmds)):
        msg = {"execute": name, "id": i}
        if name in QMP_ARGS:
            msg["arguments"] = QMP_ARGS[name]
        save("fuzz-qmp", b"\x07" + NEGOTIATE + json.dumps(msg).encode() + b"\n", "cmd-" + name)
        if i % 4 == 0:      # the streamer's target reads the same first byte as a piece size
            save("fuzz-json-streamer", b"\x07" + json.dumps(msg).encode(), "cmd-" + name)
    for i, odd in enumerate(QMP_ODD):
        save("fuzz-qmp", b"\x03" + NEGOTIATE + odd + b"\n", "odd-%d" % i)
        save("fuzz-json-streamer", b"\x03" + odd, "odd-%d" % i)
    save("fuzz-qmp", b"\x00" + b'{"execute": "query-status"}\n', "unnegotiated")
    with open(os.path.join(HERE, "fuzz-qmp.dict"), "w") as f:
        f.write("# libFuzzer dictionary for fuzz-qmp (tests/fuzz/make-corpus.py writes it from the schema).\n")
        for tok in ('{', '}', '[', ']', ':', ',', '"', 'true', 'false', 'null', '"execute"', '"exec-oob"',
                    '"arguments"', '"id"', '"control"', '"run-oob"', '"oob"', '"enable"', '\\u0000', '\\ud800',
                    '1e999', '-9223372036854775809', '18446744073709551616'):
            f.write("%s\n" % json.dumps(tok))
        for name in sorted(cmds) + members:
            f.write("%s\n" % json.dumps('"%s"' % name))


HMP_LINES = [
    "info status", "info migrate", "info block -n -v virtio0", "info registers -a", "info registers 0",
    "info migrate_parameters", "info migrate_capabilities", "info migrate_history", "info dirty_rate",
    "info version", "info name", "info kvm", "info blockstats", "info cpus", "info", "help", "help info",
    "? migrate", "help info status",
    "migrate -d -b tcp:127.0.0.1:4444", "migrate -r unix:/tmp/m", "migrate_cancel", "migrate_check exec:true",
    "migrate_continue pre-switchover", "migrate_incoming tcp:0:4444",
    "migrate_set_capability dirty-bitmaps on", "migrate_set_capability xbzrle off",
    "migrate_set_parameter max-bandwidth 1G", "migrate_set_parameter downtime-limit 300",
    "migrate_set_parameter tls-creds ''", "migrate_set_parameter block-bitmap-mapping x",
    "calc_dirty_rate -b 1 512", "calc_dirty_rate -r -b 1", "calc_dirty_rate 1",
    "memsave 0x1000+4*(2-1) 4096 /dev/null", "pmemsave $pc 0x10 \"/dev/null\"",
    "memsave (1<<12)|0x80 -1 x", "pmemsave 0xffffffffffffffff 18446744073709551616 f",
    "qemu-io virtio0 \"write -P 0xab 0 4k\"", "qemu-io -d virtio0 'read -P 0 0 512'",
    "getfd fd0", "closefd fd0", "cont -f", "c", "stop", "s", "system_reset", "quit",
    "  info   status  ", "info status extra", "migrate", "\"info\" status", "info \"st\\x61tus\"",
]


def hmp_seeds():
    for i, line in enumerate(HMP_LINES):
        save("fuzz-hmp", (line + "\n").encode(), "line-%d" % i)
    save("fuzz-hmp", ("\n".join(HMP_LINES[:12]) + "\n").encode(), "session")
    cmds, _ = qapi_names.names()
    with open(os.path.join(HERE, "fuzz-hmp.dict"), "w") as f:
        f.write("# libFuzzer dictionary for fuzz-hmp (tests/fuzz/make-corpus.py writes it).\n")
        words = set()
        for line in HMP_LINES:
            words.update(line.split())
        for tok in sorted(words) + ["\\", "'", "\"", "$", "(", ")", "<<", ">>", "k", "M", "G", "T", "0x",
                                     "on", "off", "true", "false"]:
            f.write("%s\n" % json.dumps(tok))


def rp_msg(typ, payload):
    return struct.pack(">HH", typ, len(payload)) + payload


def return_path_seeds():
    pong, shut = 2, 1
    save("fuzz-return-path", rp_msg(pong, struct.pack(">I", 1)) + rp_msg(shut, struct.pack(">I", 0)), "qemu72")
    save("fuzz-return-path", rp_msg(pong, struct.pack(">I", 1)) + rp_msg(pong, struct.pack(">I", 0x6d766d00)) +
         rp_msg(pong, struct.pack(">I", 0x80000000 | 1234)) + rp_msg(shut, struct.pack(">I", 0)), "migvm")
    save("fuzz-return-path", rp_msg(shut, struct.pack(">I", 1)), "shut-failed")
    save("fuzz-return-path", rp_msg(4, struct.pack(">QI", 0x1000, 4096)) +
         rp_msg(3, struct.pack(">QI", 0, 4096) + b"\x06pc.ram") + rp_msg(5, b"\x06pc.ram") +
         rp_msg(6, struct.pack(">I", 1)) + rp_msg(7, b""), "postcopy")
    with open(os.path.join(HERE, "fuzz-return-path.dict"), "w") as f:
        f.write("# libFuzzer dictionary for fuzz-return-path (tests/fuzz/make-corpus.py writes it).\n")
        for t in range(9):
            f.write('"\\x00\\x%02x"\n' % t)
        f.write('"\\x00\\x04"\n"\\x02\\x00"\n"\\x6d\\x76\\x6d\\x00"\n"\\x80\\x00\\x00\\x00"\n')


MULTIFD_MAGIC, MULTIFD_PAGES, MULTIFD_HEADER = 0x11223344, 128, 1344


def multifd_packet(flags, offsets, payload, num, block=b"pc.ram", size=None):
    h = struct.pack(">IIIIIIQ", MULTIFD_MAGIC, 1, flags, MULTIFD_PAGES, len(offsets),
                    len(payload) if size is None else size, num)
    h += bytes(32) + block.ljust(256, b"\0")
    h += b"".join(struct.pack(">Q", o) for o in offsets).ljust(8 * MULTIFD_PAGES, b"\0")
    assert len(h) == MULTIFD_HEADER
    return h + payload


def multifd_seeds():
    import zlib
    init = struct.pack(">II", MULTIFD_MAGIC, 1) + bytes(16) + b"\x00" + bytes(39)
    pages = [bytes([i + 1]) * 4096 for i in range(3)]
    offs = [0x1000, 0x5000, 0x7ff000]
    none = multifd_packet(0, offs, b"".join(pages), 1, size=0)
    empty = multifd_packet(1, [], b"", 2, size=0)
    save("fuzz-multifd", b"\x80" + init + none + empty, "none-init")
    save("fuzz-multifd", b"\x00" + none, "none")
    z = zlib.compressobj()
    c1 = z.compress(b"".join(pages)) + z.flush(zlib.Z_SYNC_FLUSH)
    c2 = z.compress(pages[0]) + z.flush(zlib.Z_SYNC_FLUSH)
    save("fuzz-multifd", b"\x81" + init + multifd_packet(2, offs, c1, 1) + multifd_packet(2, [0], c2, 2) +
         multifd_packet(3, [], b"", 3, size=0), "zlib-init")
    save("fuzz-multifd", b"\x02" + multifd_packet(4, [], b"", 1, size=0), "zstd-empty")
    with open(os.path.join(HERE, "fuzz-multifd.dict"), "w") as f:
        f.write("# libFuzzer dictionary for fuzz-multifd (tests/fuzz/make-corpus.py writes it).\n")
        for tok in ("\\x11\\x22\\x33\\x44", "\\x00\\x00\\x00\\x01", "\\x00\\x00\\x00\\x80",
                    "pc.ram", "\\x00\\x00\\x00\\x00\\x00\\x7f\\xf0\\x00", "\\x78\\x9c",
                    "\\x28\\xb5\\x2f\\xfd", "\\x00\\x00\\xff\\xff"):
            f.write('"%s"\n' % tok)


def loadvm_seeds():
    """fuzz-loadvm's own machine: RAM blocks "ram" (16 pages) and "extra" (2
    pages at 4 MiB), machine type "none", the fake device "fuzzdev" (instances
    0 and 1) and the fake live section "block" (fuzz-loadvm.c)."""
    head = b"QEVM" + struct.pack(">I", 3) + b"\x07" + struct.pack(">I", 4) + b"none"
    ram = struct.pack(">Q", (18 * 4096) | 0x04) + streamcut.counted(b"ram") + struct.pack(">Q", 16 * 4096)
    ram += streamcut.counted(b"extra") + struct.pack(">Q", 2 * 4096)
    ram += struct.pack(">Q", 0x1000 | 0x08) + streamcut.counted(b"ram") + bytes(range(256)) * 16
    ram += struct.pack(">Q", 0x2000 | 0x02 | 0x20) + b"\x00"
    ram += struct.pack(">Q", 0x1000 | 0x02) + streamcut.counted(b"extra") + b"\x00" + struct.pack(">Q", 0x10)
    ram_sec = streamcut.Chunk(1, 1, b"ram", 0, 4, ram).encode()
    dev = struct.pack(">I", 7) + struct.pack("<i", 100) + b"\x42" + struct.pack(">I", 2) + struct.pack(">QQ", 1, 2)
    dev += (struct.pack(">H", 5) + b"abc") * 2 + bytes(16) + b"\x01" + bytes(4)
    dev_sub = dev + b"\x05" + streamcut.counted(b"fuzzdev/sub") + struct.pack(">IH", 1, 9)
    live = struct.pack(">Q", 0x04) + struct.pack(">Q", 0x02) + b"\x00" + struct.pack(">Q", 0x10)
    save("fuzz-loadvm", head + ram_sec + b"\x00", "ram")
    save("fuzz-loadvm", head + streamcut.Chunk(4, 2, b"fuzzdev", 0, 3, dev).encode() + b"\x00", "fuzzdev")
    save("fuzz-loadvm", head + streamcut.Chunk(4, 2, b"fuzzdev", 1, 3, dev_sub).encode() + b"\x00", "fuzzdev-sub")
    save("fuzz-loadvm", head + streamcut.Chunk(1, 3, b"block", 0, 4, live).encode() +
         streamcut.Chunk(3, 3, b"block", 0, 4, struct.pack(">Q", 0x10)).encode()[:5] + struct.pack(">Q", 0x10) +
         b"\x7e" + struct.pack(">I", 3) + b"\x00", "live")
    save("fuzz-loadvm", head + b"\x08\x00\x01\x00\x00" + b"\x08\x00\x02\x00\x04" + struct.pack(">I", 1) + ram_sec +
         b"\x00\x06" + struct.pack(">I", 2) + b"{}", "commands")


def main():
    args = [a for a in sys.argv[1:] if a not in ("--text", "--kvm")]
    build = args[0] if args else "build"
    os.environ.setdefault("BUILD", build)
    if "--kvm" in sys.argv:
        tmp = tempfile.mkdtemp(prefix="migvm-corpus-")
        try:
            kvm_seeds(tmp)
        finally:
            migvm.kill_all()
            shutil.rmtree(tmp, ignore_errors=True)
        return
    qmp_seeds()
    hmp_seeds()
    return_path_seeds()
    multifd_seeds()
    loadvm_seeds()
    if "--text" in sys.argv:
        return
    tmp = tempfile.mkdtemp(prefix="migvm-corpus-")
    try:
        for tag, path in migvm_streams(tmp):
            incoming_seeds(tag, path)
        kvm_seeds(tmp)
        for tag, path in qemu_streams(tmp):
            incoming_seeds(tag, path, only=set())
            incoming_seeds(tag + "-as-pc", path, machine=b"pc", only=SHARED_SECTIONS, ram=AS_PC_RAM)
    finally:
        migvm.kill_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
