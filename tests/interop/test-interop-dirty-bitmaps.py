#!/usr/bin/env python3
"""Dirty bitmaps between migvm and QEMU 7.2 (capability dirty-bitmaps, -M none
on both sides, spec shared/docs/block-migration.md section 4):

- QEMU -> migvm through exec: and live over tcp: QEMU's bitmaps (a persistent
  one on a qcow2 image, as spec 4.3, and plain ones on raw images, written by
  HMP qemu-io, one disabled) appear in migvm's query-block with the names,
  granularities, recording and persistent states and counts QEMU showed;
- migvm -> QEMU through exec: and over tcp: QEMU's query-block shows migvm's;
- with block migration too (QEMU 7.2 -b into migvm, and migvm -> migvm): the
  images arrive identical and the bitmaps as the source showed them (the
  destination's bitmaps start recording only once complete, so the copied
  disk does not dirty them);
- for the same drives, bitmaps and writes (raw images), migvm's
  POSTCOPY_ADVISE and "dirty-bitmap" section bodies are byte for byte QEMU's.
The destination lists bitmaps newest first, so it shows the source's list
reversed (both programs do so)."""

import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import qemulib  # noqa: E402
from migvm import check, check_eq, finish, free_tcp_port, new_tmpdir, run  # noqa: E402

MiB = 1 << 20


def image(d, name, size=4 * MiB, fmt="raw"):
    path = os.path.join(d, name)
    if fmt == "raw":
        with open(path, "wb") as f:
            f.truncate(size)
    else:
        subprocess.run(["qemu-img", "create", "-q", "-f", fmt, path, str(size)], check=True)
    return path


def start(kind, drives, incoming=None):
    """drives: [(id, path, format)]."""
    args = ["-nodefaults"]
    for name, path, fmt in drives:
        args += ["-drive", "if=none,id=%s,file=%s,format=%s" % (name, path, fmt)]
    if incoming:
        args += ["-incoming", incoming]
    return qemulib.start_negotiated(kind, args, ram=64 * MiB)


def bitmaps(q):
    """{drive: [bitmap info without busy]} from query-block."""
    out = {}
    for dev in q.cmd_ok("query-block"):
        out[dev["device"]] = [{k: v for k, v in b.items() if k != "busy"}
                              for b in dev.get("inserted", {}).get("dirty-bitmaps", [])]
    return out


def reversed_lists(bms):
    return {k: v[::-1] for k, v in bms.items()}


def hmp(q, line):
    return q.cmd_ok("human-monitor-command", {"command-line": line})


def populate(q, persistent):
    """d0: bm0 (64 KiB, persistent on qcow2) then bm1 (default), both dirtied
    by two writes, bm1 disabled; d1: r (4 KiB) with one write."""
    args = {"node": "d0", "name": "bm0", "granularity": 65536}
    if persistent:
        args["persistent"] = True
    q.cmd_ok("block-dirty-bitmap-add", args)
    q.cmd_ok("block-dirty-bitmap-add", {"node": "d0", "name": "bm1"})
    q.cmd_ok("block-dirty-bitmap-add", {"node": "d1", "name": "r", "granularity": 4096})
    hmp(q, 'qemu-io d0 "write -P 0x11 0 64k"')
    hmp(q, 'qemu-io d0 "write -P 0x22 3M 4k"')
    hmp(q, 'qemu-io d1 "write -P 0x33 1M 12k"')
    q.cmd_ok("block-dirty-bitmap-disable", {"node": "d0", "name": "bm1"})
    q.cmd_ok("migrate-set-capabilities", {"capabilities": [{"capability": "dirty-bitmaps", "state": True}]})


def migrate(src_kind, dst_kind, transport, persistent=False, blk=False):
    d = new_tmpdir()
    fmt0 = "qcow2" if persistent else "raw"
    src, qs = start(src_kind, [("d0", image(d, "s0", fmt=fmt0), fmt0), ("d1", image(d, "s1"), "raw")])
    populate(qs, persistent)
    want = reversed_lists(bitmaps(qs))
    stream = os.path.join(d, "stream")
    extra = {"blk": True} if blk else {}
    if transport == "exec":
        qs.cmd_ok("migrate", dict({"uri": "exec:cat > %s" % stream}, **extra))
        info = qemulib.wait_migration(qs)
        incoming = "exec:cat %s" % stream
    else:
        port = free_tcp_port()
        incoming = "tcp:127.0.0.1:%d" % port
    dst, qd = start(dst_kind, [("d0", image(d, "d0"), "raw"), ("d1", image(d, "d1"), "raw")], incoming)
    if transport == "tcp":
        qs.cmd_ok("migrate", dict({"uri": incoming}, **extra))
        info = qemulib.wait_migration(qs)
    tag = "%s -> %s over %s%s%s" % (src_kind, dst_kind, transport, " (qcow2 source)" if persistent else "",
                                   " with blk" if blk else "")
    check_eq("%s: source completed" % tag, info and info["status"], "completed")
    dinfo = qemulib.wait_migration(qd)
    check_eq("%s: destination completed" % tag, dinfo and dinfo["status"], "completed")
    got = bitmaps(qd)
    check_eq("%s: destination's bitmaps as the source showed them" % tag, got, want)
    check("%s: counts are not trivial" % tag,
          [b["count"] for b in got.get("d0", [])] == [131072, 131072] and got.get("d1", [{}])[0].get("count") == 12288,
          got)
    if blk:
        # the disks travelled too; the bitmaps recorded none of those writes
        for i in (0, 1):
            src_img, dst_img = os.path.join(d, "s%d" % i), os.path.join(d, "d%d" % i)
            with open(src_img, "rb") as a, open(dst_img, "rb") as b:
                check("%s: d%d image identical" % (tag, i), a.read() == b.read())
    if transport == "exec":
        with open(stream, "rb") as f:
            head = f.read(22)
        check_eq("%s: POSTCOPY_ADVISE with length 0 after the configuration" % tag, head[17:22],
                 b"\x08\x00\x03\x00\x00")
    src.kill()
    dst.kill()
    return stream


def section_bodies(data):
    """(START body, END body) of the "dirty-bitmap" section of a stream."""
    key = b"\x0cdirty-bitmap\x00\x00\x00\x00\x00\x00\x00\x01"
    i = data.find(key)
    if i < 5:
        return None, None
    sid = data[i - 4:i]
    footer = b"\x7e" + sid
    start = i + len(key)
    start_end = data.find(footer, start)
    end_footer = data.rfind(footer)
    end_head = data.rfind(b"\x03" + sid, start_end, end_footer)
    return data[start:start_end], data[end_head + 5:end_footer]


def test_same_bytes():
    """The same setup saved by both programs: identical section bodies."""
    streams = {}
    for kind in ("qemu", "migvm"):
        d = new_tmpdir()
        vm, q = start(kind, [("d0", image(d, "s0"), "raw"), ("d1", image(d, "s1"), "raw")])
        populate(q, False)
        path = os.path.join(d, "stream")
        q.cmd_ok("migrate", {"uri": "exec:cat > %s" % path})
        qemulib.wait_migration(q)
        with open(path, "rb") as f:
            streams[kind] = f.read()
        vm.kill()
    qs, qe = section_bodies(streams["qemu"])
    ms, me = section_bodies(streams["migvm"])
    check("QEMU's stream has the section", qs is not None and qe, repr(qs))
    check_eq("setup body (START records) byte for byte", ms, qs)
    check_eq("completion body (BITS, ZEROES, COMPLETE) byte for byte", me, qe)
    check_eq("POSTCOPY_ADVISE at offset 17 in both", streams["migvm"][17:22], streams["qemu"][17:22])
    check("the END body has a ZEROES-free BITS record per bitmap",
          qe is not None and struct.unpack(">B", qe[:1])[0] & 0x40 != 0, repr(qe[:16]))


def main():
    qemulib.require_qemu_and_migvm()
    for transport in ("exec", "tcp"):
        run("QEMU -> migvm, %s" % transport, migrate, "qemu", "migvm", transport, True)
        run("migvm -> QEMU, %s" % transport, migrate, "migvm", "qemu", transport)
    run("QEMU -> migvm, raw images", migrate, "qemu", "migvm", "exec")
    run("QEMU -> migvm with blk", migrate, "qemu", "migvm", "tcp", False, True)
    run("migvm -> migvm with blk", migrate, "migvm", "migvm", "exec", False, True)
    run("same bytes as QEMU", test_same_bytes)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
