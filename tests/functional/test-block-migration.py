#!/usr/bin/env python3
"""Block migration ("block" section) between real migvm processes, guest-less
(-M none) with drives on raw images:

* over unix, tcp, file: and exec:, with zero-blocks on and off: the
  destination's images are byte-identical to the source's (cmp), a read-only
  source drive is skipped (its namesake on the destination stays as it
  was), the source images are never written, the destination runs;
* a destination drive smaller than the source's is refused with the reason
  before any byte of it is written, and so is a drive name the destination
  does not have; the destination stays alive, the source (return path)
  reports failed and keeps running;
* QMP `migrate` blk / inc switch capability block (and block-incremental) on
  for one migration only, and are refused with QEMU 7.2's text when they are
  already set;
* query-migrate's "disk" (transferred + remaining = total, growing) and HMP
  `info migrate`'s three disk lines during a rate-limited `migrate -d -b`,
  both gone once it completed;
* migrate_cancel and a killed destination during the disk copy: the source
  runs on with its image untouched, and the next migration completes.
"""

import hashlib
import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migvm import VM, check, check_eq, finish, free_tcp_port, new_tmpdir, require_binary, run  # noqa: E402
from miglib import expect_qmp_error, mig_info, query_status, wait_mig_status, wait_until  # noqa: E402

MiB = 1 << 20
KiB = 1 << 10


def make_image(path, size, seed, fill=None):
    """Half pseudo-random data, half zeros (fill: every byte that value)."""
    with open(path, "wb") as f:
        if fill is not None:
            f.write(bytes([fill]) * size)
        else:
            half = size // 2
            f.write(random.Random(seed).randbytes(half) + bytes(size - half))
    return path


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def same_file(a, b):
    return subprocess.run(["cmp", "-s", a, b]).returncode == 0


def drive(name, path, readonly=False):
    return ["-drive", "if=none,id=%s,file=%s,format=raw%s" % (name, path, ",readonly=on" if readonly else "")]


def start(drives, incoming=None, hmp=False, tmpdir=None):
    args = ["-M", "none", "-m", "4M", "-accel", "soft"]
    for d in drives:
        args += drive(*d)
    if incoming:
        args += ["-incoming", incoming]
    vm = VM(args, hmp=hmp, tmpdir=tmpdir).launch()
    return vm, vm.qmp()


def set_caps(q, **caps):
    q.cmd_ok("migrate-set-capabilities",
             capabilities=[{"capability": k.replace("_", "-"), "state": v} for k, v in caps.items()])


def cap(q, name):
    return [c["state"] for c in q.cmd_ok("query-migrate-capabilities") if c["capability"] == name][0]


# --------------------------------------------------------------------------

def transport_case(transport, zero_blocks):
    tag = "%s, zero-blocks %s" % (transport, "on" if zero_blocks else "off")
    d = new_tmpdir()
    src_imgs = [make_image(os.path.join(d, "s0.img"), 3 * MiB + 64 * KiB, 1),
                make_image(os.path.join(d, "s1.img"), 2 * MiB, 2),
                make_image(os.path.join(d, "sro.img"), MiB, 3)]
    dst_imgs = [make_image(os.path.join(d, "d0.img"), 3 * MiB + 64 * KiB, 0, fill=0xFF),
                make_image(os.path.join(d, "d1.img"), 2 * MiB, 0, fill=0xFF),
                make_image(os.path.join(d, "dro.img"), MiB, 0, fill=0xFF)]
    before = [digest(p) for p in src_imgs]
    dst_drives = [("d0", dst_imgs[0]), ("d1", dst_imgs[1]), ("ro", dst_imgs[2])]
    src, qs = start([("d0", src_imgs[0]), ("d1", src_imgs[1]), ("ro", src_imgs[2], True)])
    set_caps(qs, zero_blocks=zero_blocks)
    stream = os.path.join(d, "stream")
    dst = qd = None
    if transport == "unix":
        sock = os.path.join(d, "mig.sock")
        dst, qd = start(dst_drives, incoming="unix:" + sock)
        uri = "unix:" + sock
    elif transport == "tcp":
        port = free_tcp_port()
        dst, qd = start(dst_drives, incoming="tcp:127.0.0.1:%d" % port)
        uri = "tcp:127.0.0.1:%d" % port
    elif transport == "file":
        uri = "file:" + stream
    else:
        uri = "exec:cat > " + stream
    qs.cmd_ok("migrate", uri=uri, blk=True)
    info = wait_mig_status(qs, ("completed", "failed"), 30)
    check_eq("%s: source completed" % tag, info and info.get("status"), "completed")
    if dst is None:
        dst, qd = start(dst_drives, incoming=("file:" if transport == "file" else "exec:cat ") + stream)
    info = wait_mig_status(qd, ("completed", "failed"), 30)
    check_eq("%s: destination completed" % tag, info and info.get("status"), "completed")
    check("%s: destination runs" % tag, wait_until(lambda: query_status(qd) == "running", 10),
          query_status(qd))
    dst.kill()
    for name, s, t in (("d0 (3 MiB + 64 KiB)", src_imgs[0], dst_imgs[0]), ("d1", src_imgs[1], dst_imgs[1])):
        check("%s: %s byte-identical (cmp)" % (tag, name), same_file(s, t))
    check("%s: the read-only drive is not migrated" % tag, open(dst_imgs[2], "rb").read() == b"\xff" * MiB)
    check_eq("%s: source images unchanged" % tag, [digest(p) for p in src_imgs], before)
    check("%s: the destination printed QEMU's progress lines" % tag,
          "Receiving block device images" in dst.stdout_text() and "Completed 100 %" in dst.stdout_text(),
          dst.stdout_text())
    src.kill()


def test_transports():
    for transport, zero_blocks in (("unix", False), ("tcp", True), ("file", False), ("exec", True)):
        transport_case(transport, zero_blocks)


# --------------------------------------------------------------------------

def refused_case(tag, dst_drive, dst_size, want):
    d = new_tmpdir()
    src_img = make_image(os.path.join(d, "s0.img"), 4 * MiB, 4)
    dst_img = make_image(os.path.join(d, "d0.img"), dst_size, 0, fill=0xFF)
    before = digest(src_img)
    src, qs = start([("d0", src_img)])
    set_caps(qs, return_path=True)
    sock = os.path.join(d, "mig.sock")
    dst, qd = start([(dst_drive, dst_img)], incoming="unix:" + sock)
    qs.cmd_ok("migrate", uri="unix:" + sock, blk=True)
    info = wait_mig_status(qd, ("completed", "failed"), 30)
    check_eq("%s: destination failed" % tag, info and info.get("status"), "failed")
    check("%s: the destination says why" % tag,
          wait_until(lambda: want in dst.stderr_text(), 5), dst.stderr_text())
    check("%s: not one byte of the destination drive written" % tag,
          open(dst_img, "rb").read() == b"\xff" * dst_size)
    check_eq("%s: destination alive, guest not started" % tag, query_status(qd), "inmigrate")
    info = wait_mig_status(qs, ("completed", "failed"), 30)
    check_eq("%s: source failed (return path)" % tag, info and info.get("status"), "failed")
    check_eq("%s: source runs on" % tag, query_status(qs), "running")
    check_eq("%s: source image unchanged" % tag, digest(src_img), before)


def test_refused():
    refused_case("smaller destination", "d0", 2 * MiB,
                 "Block device 'd0' is smaller than the source's: 2097152 bytes here, "
                 "the source sends data at offset 3145728")
    refused_case("unknown name", "x0", 4 * MiB, "Unknown block device 'd0': no drive with that id here")


# --------------------------------------------------------------------------

def test_blk_inc_options():
    d = new_tmpdir()
    src, qs = start([("d0", make_image(os.path.join(d, "s0.img"), MiB, 5))])
    params = lambda: qs.cmd_ok("query-migrate-parameters")["block-incremental"]  # noqa: E731
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 1})
    qs.cmd_ok("migrate", uri="exec:cat > /dev/null", inc=True)
    check("inc: capability block and block-incremental on during the migration", cap(qs, "block") and params())
    qs.cmd_ok("migrate_cancel")
    wait_mig_status(qs, ("cancelled",), 30)
    check("inc: both off once it ended", not cap(qs, "block") and not params())
    set_caps(qs, block=True)
    for arg in ("blk", "inc"):
        expect_qmp_error("%s with capability block set: refused" % arg,
                         qs.cmd("migrate", uri="exec:cat > /dev/null", **{arg: True}),
                         "Command options are incompatible with current migration capabilities")
    set_caps(qs, block=False)
    qs.cmd_ok("migrate-set-parameters", **{"block-incremental": True})
    expect_qmp_error("blk with block-incremental set: refused",
                     qs.cmd("migrate", uri="exec:cat > /dev/null", blk=True),
                     "Command options are incompatible with current migration capabilities")
    check("a refused blk leaves capability block off", not cap(qs, "block"))
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 0, "block-incremental": False})
    qs.cmd_ok("migrate", uri="exec:cat > /dev/null", blk=True)
    wait_mig_status(qs, ("completed",), 30)
    check("blk: capability block off once completed", not cap(qs, "block"))


# --------------------------------------------------------------------------

def test_stats_and_hmp():
    d = new_tmpdir()
    src_img = make_image(os.path.join(d, "s0.img"), 4 * MiB, 6)
    dst_img = make_image(os.path.join(d, "d0.img"), 4 * MiB, 0, fill=0)
    src, qs = start([("d0", src_img)], hmp=True)
    h = src.hmp()
    sock = os.path.join(d, "mig.sock")
    dst, qd = start([("d0", dst_img)], incoming="unix:" + sock)
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 2 * MiB})
    out = h.cmd("migrate -d -b unix:" + sock)
    check_eq("HMP migrate -d -b: no output", out, "")
    seen = []

    def partway():
        disk = mig_info(qs).get("disk")
        if disk:
            seen.append(disk)
        return disk and 0 < disk["transferred"] < disk["total"]
    check("query-migrate: disk part-way through", wait_until(partway, 20), seen[-3:])
    disk = seen[-1] if seen else {}
    check_eq("query-migrate: disk total is the drive's size", disk.get("total"), 4 * MiB)
    check("query-migrate: transferred + remaining = total",
          all(s["transferred"] + s["remaining"] == s["total"] for s in seen), seen[-3:])
    check("query-migrate: only transferred/remaining/total are set",
          all(v == 0 for k, v in disk.items() if k not in ("transferred", "remaining", "total")), disk)
    text = h.cmd("info migrate")
    lines = [ln for ln in text.splitlines() if "disk" in ln]
    check("info migrate: the three disk lines", len(lines) == 3 and lines[0].startswith("transferred disk: ") and
          lines[1].startswith("remaining disk: ") and lines[2] == "total disk: 4096 kbytes", text)
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 0})
    info = wait_mig_status(qs, ("completed", "failed"), 30)
    check_eq("rate-limited migration completed", info and info.get("status"), "completed")
    check("query-migrate: no disk once completed", "disk" not in info, info)
    check("info migrate: no disk lines once completed", "disk" not in h.cmd("info migrate"))
    wait_mig_status(qd, ("completed", "failed"), 30)
    dst.kill()
    check("rate-limited migration: images identical", same_file(src_img, dst_img))


# --------------------------------------------------------------------------

def test_cancel_and_killed_destination():
    d = new_tmpdir()
    src_img = make_image(os.path.join(d, "s0.img"), 4 * MiB, 7)
    before = digest(src_img)
    src, qs = start([("d0", src_img)])
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": MiB})
    port = free_tcp_port()
    dst, qd = start([("d0", make_image(os.path.join(d, "d0.img"), 4 * MiB, 0, fill=0))],
                    incoming="tcp:127.0.0.1:%d" % port)
    qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % port, blk=True)
    check("cancel: disk copy under way", wait_until(lambda: (mig_info(qs).get("disk") or {}).get("transferred"), 10))
    qs.cmd_ok("migrate_cancel")
    info = wait_mig_status(qs, ("cancelled", "failed", "completed"), 30)
    check_eq("cancel: cancelled", info and info.get("status"), "cancelled")
    check_eq("cancel: source runs on", query_status(qs), "running")
    dst.kill()

    port = free_tcp_port()
    dst, qd = start([("d0", make_image(os.path.join(d, "d0.img"), 4 * MiB, 0, fill=0))],
                    incoming="tcp:127.0.0.1:%d" % port)
    qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % port, blk=True)
    check("killed destination: disk copy under way",
          wait_until(lambda: (mig_info(qs).get("disk") or {}).get("transferred"), 10))
    dst.kill()
    info = wait_mig_status(qs, ("cancelled", "failed", "completed"), 30)
    check_eq("killed destination: failed", info and info.get("status"), "failed")
    check_eq("killed destination: source runs on", query_status(qs), "running")
    check_eq("source image untouched by both", digest(src_img), before)

    dst_img = make_image(os.path.join(d, "d2.img"), 4 * MiB, 0, fill=0xFF)
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 0})
    qs.cmd_ok("migrate", uri="exec:cat > " + os.path.join(d, "stream"), blk=True)
    info = wait_mig_status(qs, ("completed", "failed"), 30)
    check_eq("then a migration completes", info and info.get("status"), "completed")
    dst, qd = start([("d0", dst_img)], incoming="exec:cat " + os.path.join(d, "stream"))
    wait_mig_status(qd, ("completed", "failed"), 30)
    dst.kill()
    check("and its image is identical", same_file(src_img, dst_img))


if __name__ == "__main__":
    require_binary()
    run("transports", test_transports)
    run("refused", test_refused)
    run("blk/inc", test_blk_inc_options)
    run("stats and HMP", test_stats_and_hmp)
    run("cancel", test_cancel_and_killed_destination)
    finish()
