#!/usr/bin/python3
"""Make the stream seeds of tests/fuzz/corpus/ from real migrations.

    tests/fuzz/make-corpus.py [BUILD]      (BUILD: build, holding migvm)

Saves streams with `migrate file:` from migvm (-M pc -accel soft -m 8M with
a 2 MiB virtio drive, as fuzz-incoming builds its machine: plain, with
`blk`, with dirty-bitmaps and a bitmap) and from QEMU 7.2 (-M pc and
-M none through exec:cat, when qemu-system-x86_64 is installed), then cuts them into small
seeds (streamcut.py): the whole stream with RAM and block data thinned out,
and one seed per section. QEMU's seeds also come with the machine type
rewritten to "pc", so its sections reach the loaders. Files are named by
content, so running it again adds only what changed.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "functional"))
sys.path.insert(0, HERE)
import migvm  # noqa: E402
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


def migvm_streams(tmp):
    img = os.path.join(tmp, "disk.img")
    with open(img, "wb") as f:
        f.truncate(2 << 20)
        f.write(b"migvm fuzz seed disk\n" * 200)
    out = []
    for name, blk, bitmap in (("plain", False, False), ("blk", True, False), ("bitmap", True, True)):
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


def incoming_seeds(tag, path, machine=None, only=None, ram=None):
    ram = ram or {}
    data = open(path, "rb").read()
    s = streamcut.Stream(data)
    head = s.header(machine)
    eof = bytes([streamcut.TYPE_EOF])
    save("fuzz-incoming", head + s.commands() + eof, tag + "-head")
    whole = head + b"".join(it if kind == "cmd" else streamcut.slim_chunk(it, **ram) for kind, it in s.items)
    save("fuzz-incoming", whole + eof + (s.vmdesc if len(s.vmdesc) < 16384 else b""), tag + "-whole")
    by_sid = {}
    for ch in s.chunks():
        by_sid.setdefault(ch.sid, []).append(ch)
    for sid, chunks in by_sid.items():
        if only is not None and chunks[0].idstr not in only:
            continue
        body = b"".join(streamcut.slim_chunk(ch, pages=1, zeros=16, **ram) for ch in chunks)
        save("fuzz-incoming", head + s.commands() + body + eof,
             "%s-%s" % (tag, chunks[0].idstr.decode(errors="replace")))


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    os.environ.setdefault("BUILD", build)
    tmp = tempfile.mkdtemp(prefix="migvm-corpus-")
    try:
        for tag, path in migvm_streams(tmp):
            incoming_seeds(tag, path)
        for tag, path in qemu_streams(tmp):
            incoming_seeds(tag, path, only=set())
            incoming_seeds(tag + "-as-pc", path, machine=b"pc", only=SHARED_SECTIONS, ram=AS_PC_RAM)
    finally:
        migvm.kill_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
