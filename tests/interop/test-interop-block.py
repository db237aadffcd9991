#!/usr/bin/env python3
"""Block migration ("block" section) against QEMU 7.2, with -M none and the
4 MiB image of block-migration.md section 5 on a raw drive d0:

* QEMU 7.2 `migrate blk` into migvm over exec: (a saved stream read with
  -incoming exec:cat), file: (migvm's -incoming file:) and live over tcp:
  the destination's image is byte-identical to the source's;
* migvm -> QEMU: a QEMU 7.2 -M none destination aborts on block data (an
  assertion, spec section 1), so instead both writers' streams for the same
  image are decoded and compared: the same chunks (device name, offsets,
  data), the same ZERO_BLOCK choices with zero-blocks on and off, the same
  PROGRESS percents and section ids (block 1, ram 2); only the order of the
  chunks differs;
* QEMU's stream corrupted (unknown device name, unknown flag, truncated
  payload) or sent to a smaller drive: migvm refuses it with the reason and
  stays alive without starting the guest.
"""

import hashlib
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import qemulib  # noqa: E402
import qemustream  # noqa: E402
from migvm import check, check_eq, finish, free_tcp_port, new_tmpdir, run  # noqa: E402

qemulib.require_qemu_and_migvm()

MiB = 1 << 20
STATE = {}


def spec_image(path):
    """Chunk 0 'MIGVM-BLOCK-TEST' + 'A's, chunk 1 zeros, chunk 2 00..FF
    repeating, chunk 3 4 KiB of 'D' then zeros."""
    img = bytearray(b"A" * MiB)
    img[:16] = b"MIGVM-BLOCK-TEST"
    img += bytes(MiB) + bytes(range(256)) * (MiB // 256) + b"D" * 4096 + bytes(MiB - 4096)
    with open(path, "wb") as f:
        f.write(img)
    return path


def filled(path, size, byte=0xFF):
    with open(path, "wb") as f:
        f.write(bytes([byte]) * size)
    return path


def same_file(a, b):
    return subprocess.run(["cmp", "-s", a, b]).returncode == 0


def drive(path, name="d0"):
    return ["-drive", "if=none,id=%s,file=%s,format=raw" % (name, path)]


def save_stream(kind, image, zero_blocks, path):
    """`kind` migrates `image` with blk into the file `path`."""
    vm, q = qemulib.start_negotiated(kind, drive(image))
    q.cmd_ok("migrate-set-capabilities", capabilities=[{"capability": "zero-blocks", "state": zero_blocks}])
    q.cmd_ok("migrate", uri="exec:cat > %s" % path, blk=True)
    info = qemulib.wait_migration(q)
    vm.kill()
    if not check("%s, zero-blocks %s: migration to a file completed" % (kind, zero_blocks),
                 info and info["status"] == "completed", info):
        return None
    with open(path, "rb") as f:
        return qemustream.Stream(f.read())


def chunks(stream):
    """Sorted (name, offset, 'zero' or the data's sha256) of every chunk."""
    return sorted((n, off, "zero" if d is None else hashlib.sha256(d).hexdigest()[:16])
                  for n, off, d in stream.block_chunks())


def section_ids(stream):
    return {s.idstr: s.section_id for s in stream.sections if s.type == qemustream.START}


def test_same_chunks():
    d = new_tmpdir()
    src = spec_image(os.path.join(d, "src.img"))
    with open(src, "rb") as f:
        image = f.read()
    for zero_blocks in (False, True):
        tag = "zero-blocks %s" % ("on" if zero_blocks else "off")
        q = save_stream("qemu", src, zero_blocks, os.path.join(d, "qemu-%d.stream" % zero_blocks))
        m = save_stream("migvm", src, zero_blocks, os.path.join(d, "migvm-%d.stream" % zero_blocks))
        if not q or not m:
            continue
        STATE["qemu-stream-%d" % zero_blocks] = q
        check_eq("%s: migvm sends the chunks QEMU 7.2 sends (name, offset, data, zero or not)" % tag,
                 chunks(m), chunks(q))
        want_zero = [MiB] if zero_blocks else []
        check_eq("%s: ZERO_BLOCK exactly for the all-zero chunk" % tag,
                 [off for _, off, dg in chunks(m) if dg == "zero"], want_zero)
        check("%s: the chunks' data is the image's" % tag,
              all(data is None or data == image[off:off + MiB] for _, off, data in m.block_chunks()))
        check_eq("%s: the same PROGRESS percents" % tag, m.block_progress(), q.block_progress())
        check_eq("%s: the same section ids" % tag, section_ids(m), section_ids(q))
        check_eq("%s: migvm sends the last chunk first, then the others in order" % tag,
                 [off // MiB for _, off, _ in m.block_chunks()], [3, 0, 1, 2])


def load_into_migvm(tag, incoming, dst_img, src_img):
    vm, q = qemulib.start_negotiated("migvm", drive(dst_img) + ["-incoming", incoming])
    info = qemulib.wait_migration(q)
    check_eq("%s: migvm completed" % tag, info and info["status"], "completed")
    vm.kill()
    check("%s: images byte-identical (cmp)" % tag, same_file(src_img, dst_img))


def test_qemu_to_migvm():
    d = new_tmpdir()
    src = spec_image(os.path.join(d, "src.img"))
    for zero_blocks, transport in ((False, "exec"), (True, "file")):
        stream = os.path.join(d, "q%d.stream" % zero_blocks)
        if save_stream("qemu", src, zero_blocks, stream) is None:
            continue
        incoming = "exec:cat %s" % stream if transport == "exec" else "file:%s" % stream
        load_into_migvm("QEMU -> migvm over %s" % transport, incoming,
                        filled(os.path.join(d, "d%d.img" % zero_blocks), 4 * MiB), src)

    # live, tcp, with a bigger image and a rate limit so the disk copy takes a while
    big = os.path.join(d, "big.img")
    with open(big, "wb") as f:
        f.write(os.urandom(8 * MiB) + bytes(8 * MiB))
    dst_img = filled(os.path.join(d, "dbig.img"), 16 * MiB)
    port = free_tcp_port()
    dst, qd = qemulib.start_negotiated("migvm", drive(dst_img) + ["-incoming", "tcp:127.0.0.1:%d" % port])
    src_vm, qs = qemulib.start_negotiated("qemu", drive(big))
    # QEMU 7.2 may switch over while its last bulk reads are still in
    # flight and then never sends those chunks (seen here about one run in
    # two: "completed" after ~110 ms with the image's last MiBs missing from
    # its stream). A 1 ms downtime limit makes it wait until every chunk is
    # out, so what this checks is migvm's loading, not that QEMU defect.
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 32 * MiB, "downtime-limit": 1})
    qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % port, blk=True)
    info = qemulib.wait_migration(qs, timeout=60)
    check_eq("QEMU -> migvm live over tcp: QEMU completed", info and info["status"], "completed")
    info = qemulib.wait_migration(qd, timeout=30)
    check_eq("QEMU -> migvm live over tcp: migvm completed", info and info["status"], "completed")
    dst.kill()
    src_vm.kill()
    check("QEMU -> migvm live over tcp: 16 MiB images byte-identical (cmp)", same_file(big, dst_img))


def refused(tag, data, dst_size, want):
    d = new_tmpdir()
    path = os.path.join(d, "bad.stream")
    with open(path, "wb") as f:
        f.write(data)
    dst_img = filled(os.path.join(d, "d.img"), dst_size)
    vm, q = qemulib.start_negotiated("migvm", drive(dst_img) + ["-incoming", "exec:cat %s" % path])
    info = qemulib.wait_migration(q)
    check_eq("%s: migvm refuses it" % tag, info and info["status"], "failed")
    check("%s: and says why" % tag, want in vm.stderr_text(), vm.stderr_text())
    check_eq("%s: alive, guest not started" % tag, q.cmd_ok("query-status")["status"], "inmigrate")
    vm.kill()
    return dst_img


def test_corrupted():
    q = STATE.get("qemu-stream-0")
    if q is None:
        check("QEMU's stream for the corruption tests", False, "no stream")
        return
    first = [r for s in q.sections for r in s.block_records if r[1] & qemustream.BLK_DEVICE_BLOCK][0]
    at, flags, off, name, data_off = first
    b = bytearray(q.data)
    b[at + 9:at + 11] = b"x0"
    img = refused("unknown device name", bytes(b), 4 * MiB, "Unknown block device 'x0': no drive with that id here")
    check("unknown device name: nothing written", open(img, "rb").read() == b"\xff" * (4 * MiB))
    b = bytearray(q.data)
    b[at + 7] |= 0x10
    refused("unknown flag 0x10", bytes(b), 4 * MiB, "Unknown block migration flags: 0x11")
    refused("truncated in a chunk", q.data[:data_off + 1000], 4 * MiB,
            "Failed to read the chunk at %#x of block device d0: Unexpected end of migration stream" % off)
    refused("smaller drive (2 MiB for 4 MiB)", q.data, 2 * MiB, "Block device 'd0' is smaller than the source's")


run("same chunks", test_same_chunks)
run("QEMU -> migvm", test_qemu_to_migvm)
run("corrupted", test_corrupted)
finish()
