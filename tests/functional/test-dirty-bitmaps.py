#!/usr/bin/env python3
"""Named dirty bitmaps: the block-dirty-bitmap-* QMP commands with QEMU 7.2's
error texts and query-block's "dirty-bitmaps" (order, members, counts after
HMP qemu-io writes), then migvm -> migvm with capability dirty-bitmaps over
unix and tcp: the destination's query-block shows every bitmap as the source
had it (writes made while the migration ran included), bitmaps are busy on
the source meanwhile, and a destination that has the name already, or lacks
a drive, behaves as QEMU's (failure; ignored bitmaps). The command part also
runs against QEMU 7.2 (MIGVM_TEST_BINARY=qemu-system-x86_64)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migvm import (VM, check, check_eq, error_of, finish, new_tmpdir, qemu_mode,  # noqa: E402
                   require_binary, run, wait_until)
from miglib import expect_qmp_error, qemu_convergence, set_caps, wait_mig_status  # noqa: E402

MiB = 1 << 20
BUSY = "Bitmap '%s' is currently in use by another operation and cannot be used"


def image(d, name, size=4 * MiB):
    path = os.path.join(d, name)
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def start(drives, incoming=None, hmp=True):
    """-M none with raw drives {id: path} (QEMU 7.2's -M none takes drives too)."""
    args = ["-M", "none", "-m", "64M"]
    for name, path in drives.items():
        args += ["-drive", "if=none,id=%s,file=%s,format=raw" % (name, path)]
    if incoming:
        args += ["-incoming", incoming]
    vm = VM(args, hmp=hmp).launch()
    return vm, vm.qmp()


def bitmaps(q, drive="d0"):
    for dev in q.cmd_ok("query-block"):
        if dev.get("device") == drive:
            return dev.get("inserted", {}).get("dirty-bitmaps")
    return "no drive %s" % drive


def qemu_io(q, drive, command):
    return q.cmd_ok("human-monitor-command", {"command-line": 'qemu-io %s "%s"' % (drive, command)})


def add(q, name, node="d0", **kw):
    return q.cmd("block-dirty-bitmap-add", dict(node=node, name=name, **kw))


def info(name, count, granularity=65536, recording=True, busy=False):
    return {"name": name, "recording": recording, "persistent": False, "busy": busy,
            "granularity": granularity, "count": count}


def test_commands():
    d = new_tmpdir()
    vm, q = start({"d0": image(d, "a.img"), "d1": image(d, "b.img")})
    check_eq("no bitmap: member absent", bitmaps(q), None)
    check("add a (defaults)", "return" in add(q, "a"))
    check("add g, 4 KiB", "return" in add(q, "g", granularity=4096))
    check("add dis, disabled", "return" in add(q, "dis", disabled=True))
    check("add on d1", "return" in add(q, "x", node="d1", granularity=512))
    expect_qmp_error("add: exists", add(q, "a"), "Bitmap already exists: a")
    expect_qmp_error("add: unknown node", add(q, "a", node="nope"),
                     "Cannot find device='nope' nor node-name='nope'")
    expect_qmp_error("add: empty name", add(q, ""), "Bitmap name cannot be empty")
    for g in (0, 256, 1000, 65537):
        expect_qmp_error("add: granularity %d" % g, add(q, "bad", granularity=g),
                         "Granularity must be power of 2 and at least 512")
    expect_qmp_error("add: granularity 2^32", add(q, "bad", granularity=1 << 32),
                     "Parameter 'granularity' expects uint32_t")
    expect_qmp_error("add: persistent on raw", add(q, "p", persistent=True),
                     "Can't store persistent bitmaps to d0: Operation not supported")
    expect_qmp_error("add: missing node", q.cmd("block-dirty-bitmap-add", {"name": "z"}),
                     "Parameter 'node' is missing")

    qemu_io(q, "d0", "write -P 0x11 0 64k")
    qemu_io(q, "d0", "write -P 0x22 3M 4k")
    check_eq("qemu-io read back", qemu_io(q, "d0", "read -P 0x22 3M 4k"), "")
    check_eq("qemu-io: unknown drive", qemu_io(q, "nope", "write 0 4k"),
             "Error: Cannot find device='' nor node-name='nope'\r\n")
    # newest first, QEMU 7.2's member order
    check_eq("query-block lists them", bitmaps(q), [
        info("dis", 0, recording=False), info("g", 65536 + 4096, 4096), info("a", 131072)])
    check_eq("d1's own", bitmaps(q, "d1"), [info("x", 0, 512)])
    # a drive's node name (query-block's "node-name") works as well as its id
    nn = [dev["inserted"]["node-name"] for dev in q.cmd_ok("query-block") if dev["device"] == "d1"][0]
    check("add by node name", "return" in add(q, "by-node", node=nn))
    check("remove by node name", "return" in q.cmd("block-dirty-bitmap-remove", {"node": nn, "name": "by-node"}))

    for cmd in ("remove", "clear", "enable", "disable"):
        r = q.cmd("block-dirty-bitmap-" + cmd, {"node": "d0", "name": "zz"})
        expect_qmp_error("%s: unknown bitmap" % cmd, r, "Dirty bitmap 'zz' not found")
        r = q.cmd("block-dirty-bitmap-" + cmd, {"node": "nope", "name": "a"})
        expect_qmp_error("%s: unknown node" % cmd, r, "Node 'nope' not found")

    def merge(target, srcs):
        return q.cmd("block-dirty-bitmap-merge", {"node": "d0", "target": target, "bitmaps": srcs})
    expect_qmp_error("merge: unknown target", merge("zz", ["a"]), "Dirty bitmap 'zz' not found")
    expect_qmp_error("merge: unknown source", merge("dis", ["a", "zz"]), "Dirty bitmap 'zz' not found")
    expect_qmp_error("merge: unknown node", merge("dis", [{"node": "nope", "name": "a"}]),
                     "Node 'nope' not found")
    expect_qmp_error("merge: source name missing", merge("dis", [{"node": "d0"}]),
                     "Parameter 'bitmaps[0].name' is missing")
    check_eq("merge: a failed merge changed nothing", bitmaps(q)[0]["count"], 0)
    check("merge g (4 KiB) and d1's x into dis", "return" in merge("dis", ["g", {"node": "d1", "name": "x"}]))
    check_eq("merge: 64 KiB granules of 4 KiB ones", bitmaps(q)[0]["count"], 131072)
    check("disable a", "return" in q.cmd("block-dirty-bitmap-disable", {"node": "d0", "name": "a"}))
    qemu_io(q, "d0", "write 1M 512")
    check_eq("disabled a does not record", bitmaps(q)[2], info("a", 131072, recording=False))
    check_eq("enabled g does", bitmaps(q)[1]["count"], 65536 + 4096 + 4096)
    check("enable a", "return" in q.cmd("block-dirty-bitmap-enable", {"node": "d0", "name": "a"}))
    # a granule larger than the drive counts whole, as QEMU 7.2 counts it
    check("add huge, 2 GiB granules", "return" in add(q, "huge", node="d1", granularity=1 << 31))
    qemu_io(q, "d1", "write 0 512")
    check_eq("a dirty 2 GiB granule counts 2 GiB", bitmaps(q, "d1")[0], info("huge", 1 << 31, 1 << 31))
    check("remove huge", "return" in q.cmd("block-dirty-bitmap-remove", {"node": "d1", "name": "huge"}))
    check("clear g", "return" in q.cmd("block-dirty-bitmap-clear", {"node": "d0", "name": "g"}))
    check("remove dis", "return" in q.cmd("block-dirty-bitmap-remove", {"node": "d0", "name": "dis"}))
    check_eq("after clear and remove", bitmaps(q), [info("g", 0, 4096), info("a", 131072)])
    vm.kill()


def source_with_bitmaps(d):
    """d0 (4 MiB): a (64 KiB, recording), b (4 KiB, not recording); d1 (1 MiB): c."""
    vm, q = start({"d0": image(d, "src0.img"), "d1": image(d, "src1.img", MiB)})
    add(q, "a")
    add(q, "b", granularity=4096)
    add(q, "c", node="d1", granularity=512)
    qemu_io(q, "d0", "write -P 0x11 0 64k")
    qemu_io(q, "d0", "write -P 0x22 3M 4k")
    qemu_io(q, "d1", "write 1000 2000")
    q.cmd_ok("block-dirty-bitmap-disable", {"node": "d0", "name": "b"})
    set_caps(q, dirty_bitmaps=True, pause_before_switchover=True)
    return vm, q


def migrate_paused(q, uri):
    """Start the migration and wait in pre-switchover (bitmaps set up)."""
    q.cmd_ok("migrate", uri=uri)
    return wait_mig_status(q, ("pre-switchover", "failed"), 30.0)


def test_migvm_to_migvm(transport):
    d = new_tmpdir()
    src, qs = source_with_bitmaps(d)
    uri = "unix:%s" % os.path.join(d, "mig.sock") if transport == "unix" else "tcp:127.0.0.1:0"
    dst, qd = start({"d0": image(d, "dst0.img"), "d1": image(d, "dst1.img", MiB)}, incoming="defer")
    qd.cmd_ok("migrate-incoming", uri=uri)
    if transport == "tcp":
        uri = "tcp:127.0.0.1:%s" % qd.cmd_ok("query-migrate")["socket-address"][0]["port"]
    st = migrate_paused(qs, uri)
    check_eq("%s: source in pre-switchover" % transport, st and st["status"], "pre-switchover")
    busy = bitmaps(qs)
    check("%s: bitmaps busy while migrating" % transport,
          all(b["busy"] for b in busy) and bitmaps(qs, "d1")[0]["busy"], busy)
    expect_qmp_error("%s: remove refused" % transport,
                     qs.cmd("block-dirty-bitmap-remove", {"node": "d0", "name": "a"}), BUSY % "a")
    expect_qmp_error("%s: enable refused" % transport,
                     qs.cmd("block-dirty-bitmap-enable", {"node": "d0", "name": "b"}), BUSY % "b")
    # a write now, after setup, must reach the destination's copy
    qemu_io(qs, "d0", "write -P 0x33 2M 64k")
    want0 = [dict(b, busy=False) for b in bitmaps(qs)]
    want1 = [dict(b, busy=False) for b in bitmaps(qs, "d1")]
    check_eq("%s: write during migration recorded by a" % transport, want0[1]["count"], 3 * 65536)
    qs.cmd_ok("migrate-continue", state="pre-switchover")
    st = wait_mig_status(qs, ("completed", "failed"), 30.0)
    check_eq("%s: source completed" % transport, st and st["status"], "completed")
    check("%s: destination completed" % transport,
          wait_mig_status(qd, ("completed", "failed"), 30.0).get("status") == "completed")
    # created in stream order (the source's newest first), listed newest
    # first: the destination's list is the source's reversed, as with QEMU 7.2
    check_eq("%s: destination d0 bitmaps as the source's" % transport, bitmaps(qd), want0[::-1])
    check_eq("%s: destination d1 bitmaps as the source's" % transport, bitmaps(qd, "d1"), want1[::-1])
    check("%s: source bitmaps free again" % transport, not any(b["busy"] for b in bitmaps(qs)))
    # recording state travelled: a records, b does not
    qemu_io(qd, "d0", "write 1M 4k")
    after = {b["name"]: b["count"] for b in bitmaps(qd)}
    check_eq("%s: destination a records, b does not" % transport, after,
             {"a": 4 * 65536, "b": want0[0]["count"]})
    src.kill()
    dst.kill()


def test_destination_has_the_name():
    d = new_tmpdir()
    src, qs = source_with_bitmaps(d)
    set_caps(qs, pause_before_switchover=False)
    dst, qd = start({"d0": image(d, "dst0.img"), "d1": image(d, "dst1.img", MiB)}, incoming="defer")
    add(qd, "a")
    path = os.path.join(d, "stream")
    qs.cmd_ok("migrate", uri="exec:cat > " + path)
    check_eq("name taken: source completed", wait_mig_status(qs, ("completed", "failed"))["status"],
             "completed")
    qd.cmd_ok("migrate-incoming", uri="exec:cat " + path)
    text = "Bitmap with the same name ('a') already exists on destination"
    if qemu_mode():     # QEMU 7.2 exits when an incoming migration fails
        check("name taken: destination fails", dst.wait_exit(10.0) is not None and text in dst.stderr_text(),
              dst.stderr_text())
    else:
        st = wait_mig_status(qd, ("completed", "failed"))
        check_eq("name taken: destination fails", st["status"], "failed")
        check("name taken: QEMU's error", text in (st.get("error-desc") or ""), st)
        check_eq("name taken: only the destination's own bitmap left", [b["name"] for b in bitmaps(qd)], ["a"])
    # a destination without d1: bitmap migration is cancelled, the migration is not
    dst2, qd2 = start({"d0": image(d, "dst2.img")}, incoming="exec:cat " + path)
    st = wait_mig_status(qd2, ("completed", "failed"))
    check_eq("missing drive: destination completes", st["status"], "completed")
    check_eq("missing drive: no bitmap kept", bitmaps(qd2), None)
    check("missing drive: the cancel is reported", wait_until(
        lambda: "Cannot find device='d1' nor node-name='d1'" in dst2.stderr_text(), 5.0), dst2.stderr_text())
    for vm in (src, dst, dst2):
        vm.kill()


def test_setup_refusals():
    """A name too long for the stream fails the migration at setup, as QEMU
    7.2; the bitmaps are free again afterwards."""
    d = new_tmpdir()
    vm, q = start({"d0": image(d, "a.img")})
    expect_qmp_error("add: name of 1024 bytes", add(q, "y" * 1024), "Bitmap name too long: " + "y" * 1024)
    check("add: name of 1023 bytes", "return" in add(q, "y" * 1023))
    add(q, "short")
    set_caps(q, dirty_bitmaps=True)
    q.cmd_ok("migrate", {"uri": "exec:cat > /dev/null"})
    st = wait_mig_status(q, ("completed", "failed"))
    check_eq("long name: migration fails", st and st["status"], "failed")
    text = "Cannot migrate bitmap '%s' on node 'd0': Name is longer than 255 bytes" % ("y" * 1023)
    check("long name: QEMU's error", wait_until(
        lambda: text in (st.get("error-desc") or "") + vm.stderr_text(), 5.0), st)
    check("long name: bitmaps free again", not any(b["busy"] for b in bitmaps(q)))
    check("long name: removable", "return" in q.cmd("block-dirty-bitmap-remove", {"node": "d0", "name": "y" * 1023}))
    vm.kill()


def test_guest_writer():
    """The soft accelerator's disk workload writes d0 all along; what it wrote
    while the bitmap travelled is in the destination's copy: once both are
    stopped, the destination counts what the source counts."""
    d = new_tmpdir()
    path = image(d, "w.img", 64 * MiB)
    src = VM(["-accel", "soft,dirty-rate=8,disk-rate=2", "-m", "32M",
              "-drive", "if=none,id=d0,file=%s,format=raw" % path]).launch()
    qs = src.qmp()
    add(qs, "w", granularity=4096)
    check("guest writer: the bitmap records the guest's writes",
          wait_until(lambda: bitmaps(qs)[0]["count"] > 0, 30.0), bitmaps(qs))
    dst = VM(["-accel", "soft,dirty-rate=8,disk-rate=2", "-m", "32M", "-S", "-incoming", "defer",
              "-drive", "if=none,id=d0,file=%s,format=raw" % image(d, "wd.img", 64 * MiB)]).launch()
    qd = dst.qmp()
    uri = "unix:%s" % os.path.join(d, "w.sock")
    qd.cmd_ok("migrate-incoming", uri=uri)
    set_caps(qs, dirty_bitmaps=True)
    # RAM dirtied at 8 MiB/s cannot converge at 4 MiB/s: the migration runs
    # until the bandwidth goes up again. Not with migvm's convergence
    # controller, which throttles the guest (and so its disk writes) until it
    # converges: seen under load, the count stopped growing and the migration
    # completed before the test saw it active.
    qs.cmd_ok("migrate-set-parameters", dict({"max-bandwidth": 4 * MiB}, **qemu_convergence()))
    qs.cmd_ok("migrate", uri=uri)
    check("guest writer: bitmap busy, migration running", wait_until(
        lambda: bitmaps(qs)[0]["busy"] and qs.cmd_ok("query-migrate").get("status") == "active", 10.0),
        (bitmaps(qs), qs.cmd_ok("query-migrate")))
    at_setup = bitmaps(qs)[0]["count"]
    grew = wait_until(lambda: bitmaps(qs)[0]["count"] >= at_setup + 64 * 1024, 30.0)
    check("guest writer: the guest writes while the bitmap travels", grew, (at_setup, bitmaps(qs)))
    qs.cmd_ok("migrate-set-parameters", {"max-bandwidth": 1 << 30})
    st = wait_mig_status(qs, ("completed", "failed"), 60.0)
    check_eq("guest writer: completed", st and st["status"], "completed")
    check("guest writer: destination loaded", wait_until(
        lambda: qd.cmd_ok("query-status")["status"] == "paused", 30.0), dst.stderr_text())
    final = bitmaps(qs)[0]
    check("guest writer: the final count includes those writes", final["count"] >= at_setup + 64 * 1024, final)
    check_eq("guest writer: destination counts the same", bitmaps(qd), [dict(final, busy=False)])
    src.kill()
    dst.kill()


def main():
    require_binary()
    run("commands", test_commands)
    run("setup refusals", test_setup_refusals)
    if qemu_mode() and not os.environ.get("DIRTY_BITMAPS_QEMU_MIGRATION"):
        print("# migvm -> migvm parts skipped against QEMU")
        return finish()
    for transport in ("unix", "tcp"):
        run("migvm -> migvm over %s" % transport, test_migvm_to_migvm, transport)
    run("destination checks", test_destination_has_the_name)
    run("guest writer", test_guest_writer)
    return finish()


if __name__ == "__main__":
    sys.exit(main())
