#!/usr/bin/env python3
"""The flight recorder: x-query-migration-history and info migrate_history.

* a live migration of a soft guest over several passes, return path on:
  the source's record has one pass per MIGRATION_PASS event, numbered as
  the events; the passes' bytes add up to query-migrate's ram.transferred,
  their pages to ram.normal and ram.duplicate; the downtime phases come in
  order (stop, live-end, devices, flush, destination) and their durations
  add up to query-migrate's downtime; the destination has its own record
  (completed, the same byte count, load and start phases);
* HMP `info migrate_history` shows the same migration;
* a failed migration (connection refused) is recorded with query-migrate's
  error-desc as its reason, a cancelled one with the state it interrupted;
* at most 8 records are kept, the newest;
* with multifd (2 channels) the passes' bytes add up to ram.transferred,
  multifd-bytes included, and the destination's record counts the
  channels' bytes too: the same total as the source;
* postcopy: the phases end when the package is sent (stop, flush), as
  query-migrate's downtime does, and still add up to it; the passes'
  bytes, postcopy's included, add up to ram.transferred;
* a resumable precopy paused (migrate-pause) and resumed on a new
  connection: one record on each side; the source's passes still add up,
  the destination counts both connections (short of the source's count by
  at most what the pause lost in the sockets' buffers);
* with block migration the passes' disk bytes add up to the block
  section's share: bytes - disk-bytes = ram.transferred;
* to a QEMU 7.2 destination (return path on) the destination's time is one
  phase, "destination": QEMU echoes migvm's PING and sends no start report;
* scripts/migvm-plot draws the migration as a PNG, from the history saved
  as JSON and straight from the source's QMP socket.
"""

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
from migvm import check, check_eq, finish, new_tmpdir, require_binary, run, skip  # noqa: E402
from miglib import (collect_events, mig_info, serial_size, serial_text, set_caps, set_events, start_vm,  # noqa: E402
                    wait_mig_status, qemu_convergence, wait_until)

MEM = "64M"
PHASES = ["stop", "live-end", "devices", "flush", "destination-load", "destination-start"]
PLOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "migvm-plot")


def check_plot(name, args):
    """Run migvm-plot; the output must be a PNG of a real picture, its path printed."""
    out = os.path.join(new_tmpdir(), "plot.png")
    r = subprocess.run([PLOT] + args + ["-o", out], capture_output=True, text=True, timeout=60)
    data = open(out, "rb").read() if os.path.exists(out) else b""
    check("%s: a PNG of more than 10 kB, its path printed" % name,
          r.returncode == 0 and data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10000
          and r.stdout.strip() == os.path.abspath(out), (r.returncode, r.stderr[-500:], len(data)))


def history(q):
    return q.cmd_ok("x-query-migration-history")


def test_completed():
    src = start_vm("16M")
    dst_sock = os.path.join(new_tmpdir(), "mig.sock")
    dst = start_vm("16M", incoming="unix:" + dst_sock)
    qs, qd = src.qmp(), dst.qmp()
    set_events(qs)
    set_caps(qs, return_path=True)
    # The workload has written all its memory once (a 'B' per round): every pass has pages to send.
    check("source workload filled its memory", wait_until(lambda: serial_size(src.serial_path) >= 2, 20))
    # A 1 ms downtime limit keeps it iterating: let 4 passes run, then let it complete.
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=16 << 20, downtime_limit=1, **qemu_convergence())
    qs.cmd_ok("migrate", uri="unix:" + dst_sock)
    during = wait_until(lambda: next((r for r in history(qs) if r["status"] == "active" and len(r["passes"]) >= 4),
                                     None), 30)
    check("running migration listed with its passes so far", during is not None and during["role"] == "source",
          history(qs))
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=0, downtime_limit=2000)
    events = collect_events(qs, "completed", timeout=60)
    info = wait_mig_status(qs, "completed", 5)
    check("migration completed", info is not None, mig_info(qs))
    if info is None:
        return
    recs = history(qs)
    check_eq("one record on the source", len(recs), 1)
    r = recs[-1]
    check_eq("role", r["role"], "source")
    check_eq("status", r["status"], "completed")
    check_eq("uri", r.get("uri"), "unix:" + dst_sock)
    passes = r["passes"]
    pass_events = [e["data"]["pass"] for e in events if e["event"] == "MIGRATION_PASS"]
    check("several passes", len(passes) >= 3, len(passes))
    check_eq("one pass per MIGRATION_PASS event, same numbers", [p["pass"] for p in passes], pass_events)
    check_eq("passes = dirty-sync-count", len(passes), info["ram"]["dirty-sync-count"])
    check_eq("pass bytes add up to ram.transferred", sum(p["bytes"] for p in passes), info["ram"]["transferred"])
    check_eq("record transferred = ram.transferred", r["transferred"], info["ram"]["transferred"])
    check_eq("normal pages add up to ram.normal", sum(p["normal-pages"] for p in passes), info["ram"]["normal"])
    check_eq("zero pages add up to ram.duplicate", sum(p["zero-pages"] for p in passes), info["ram"]["duplicate"])
    check("only the last pass ran stopped", [p["stopped"] for p in passes] == [False] * (len(passes) - 1) + [True],
          [p["stopped"] for p in passes])
    check("passes start in order, remaining shrinks from the whole RAM",
          all(a["start"] <= b["start"] for a, b in zip(passes, passes[1:])) and passes[0]["remaining"] == 16 << 20,
          passes[:3])
    check("a dirty rate and a bandwidth measured", any(p["dirty-rate"] > 0 for p in passes)
          and any(p["mbps"] > 0 for p in passes), passes)
    phases = r["phases"]
    check_eq("downtime phases in order", [p["phase"] for p in phases], PHASES)
    check_eq("downtime phases add up to query-migrate downtime", sum(p["duration-us"] for p in phases) // 1000,
             info["downtime"])
    check_eq("record downtime = query-migrate downtime", r.get("downtime"), info["downtime"])
    check("total time >= downtime", r["total-time"] >= r["downtime"], r)

    dinfo = wait_mig_status(qd, "completed", 10)
    check("destination completed", dinfo is not None, mig_info(qd))
    drecs = wait_until(lambda: [x for x in history(qd) if x["status"] == "completed"], 5) or history(qd)
    check_eq("destination: one record", len(drecs), 1)
    d = drecs[-1]
    check_eq("destination role", d["role"], "destination")
    check_eq("destination status", d["status"], "completed")
    check_eq("destination received what the source sent", d["transferred"], info["ram"]["transferred"])
    check_eq("destination phases", [p["phase"] for p in d["phases"]], ["load", "start"])

    text = qs.hmp("info migrate_history")
    print("# " + text.replace("\n", "\n# "))
    check("info migrate_history: header line",
          ("migration 1: source, unix:%s, completed" % dst_sock) in text and
          ("downtime %d ms" % info["downtime"]) in text, text)
    check("info migrate_history: one row per pass and the phases",
          sum(1 for line in text.splitlines() if line[:6].strip().isdigit()) == len(passes)
          and "downtime phases: stop " in text and ", destination-start " in text, text)
    text = qd.hmp("info migrate_history")
    check("info migrate_history on the destination", "migration 1: destination, completed" in text
          and "phases: load " in text, text)

    saved = os.path.join(new_tmpdir(), "history.json")
    with open(saved, "w") as f:
        json.dump(recs, f)
    check_plot("migvm-plot HISTORY.json", [saved])
    qs.close()      # one QMP client at a time
    check_plot("migvm-plot --qmp", ["--qmp", src.qmp_path])
    missing = os.path.join(new_tmpdir(), "no.qmp")
    p = subprocess.run([PLOT, "--qmp", missing, "-o", os.path.join(new_tmpdir(), "x.png")], capture_output=True,
                       text=True, timeout=60)
    check_eq("migvm-plot --qmp to no socket: exit 1, one line naming it",
             (p.returncode, p.stderr.splitlines()[:1], len(p.stderr.splitlines())),
             (1, ["migvm-plot: %s: [Errno 2] No such file or directory" % missing], 1))


def test_failed_and_cancelled():
    src = start_vm(MEM)
    qs = src.qmp()
    check_eq("nothing recorded yet", history(qs), [])
    check("info migrate_history with nothing", "No migration recorded" in qs.hmp("info migrate_history"))
    missing = os.path.join(new_tmpdir(), "nobody-listens")
    qs.cmd_ok("migrate", uri="unix:" + missing)
    info = wait_mig_status(qs, "failed", 10)
    r = history(qs)[-1]
    check("failed: recorded with error-desc as reason", info is not None and r["status"] == "failed"
          and r["reason"] == info.get("error-desc") and r["reason"], (r, info))
    check("failed: no passes, no downtime", r["passes"] == [] and "downtime" not in r, r)

    dst_sock = os.path.join(new_tmpdir(), "mig.sock")
    dst = start_vm(MEM, incoming="unix:" + dst_sock)
    dst.qmp()
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=1 << 20)
    qs.cmd_ok("migrate", uri="unix:" + dst_sock)
    check("cancel: migration active", wait_mig_status(qs, "active", 10) is not None)
    qs.cmd_ok("migrate_cancel")
    check("cancelled", wait_mig_status(qs, "cancelled", 10) is not None, mig_info(qs))
    recs = history(qs)
    r = recs[-1]
    check_eq("cancelled: recorded", (r["id"], r["status"], r.get("reason")), (2, "cancelled", "cancelled in state active"))
    check("cancelled: the passes it ran", len(r["passes"]) >= 1 and r["transferred"] > 0, r)
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=0)

    # Bounded: the newest 8 of 11.
    for _ in range(9):
        qs.cmd_ok("migrate", uri="unix:" + missing)
        wait_mig_status(qs, "failed", 10)
    recs = history(qs)
    check_eq("at most 8 records, the newest", [x["id"] for x in recs], list(range(4, 12)))


def test_block_migration():
    d = new_tmpdir()
    imgs = []
    for side in ("src", "dst"):
        path = os.path.join(d, side + ".img")
        with open(path, "wb") as f:
            f.write(os.urandom(2 << 20) if side == "src" else b"\0" * (2 << 20))
        imgs.append(path)
    sock = os.path.join(d, "mig.sock")
    vms = []
    for img, extra in ((imgs[1], ["-incoming", "unix:" + sock]), (imgs[0], [])):
        vms.append(migvm.VM(["-M", "none", "-m", "4M", "-accel", "soft",
                             "-drive", "if=none,id=d0,file=%s,format=raw" % img] + extra).launch())
    dst, src = vms
    dst.qmp()
    qs = src.qmp()
    set_caps(qs, block=True)
    qs.cmd_ok("migrate", uri="unix:" + sock)
    info = wait_mig_status(qs, ("completed", "failed"), 30)
    check_eq("block migration completed", (info or {}).get("status"), "completed")
    if not info or info.get("status") != "completed":
        return
    passes = history(qs)[-1]["passes"]
    disk = sum(p["disk-bytes"] for p in passes)
    check("disk bytes recorded (at least the 2 MiB image)", disk >= 2 << 20, passes)
    check_eq("bytes - disk-bytes = ram.transferred", sum(p["bytes"] for p in passes) - disk,
             info["ram"]["transferred"])


def test_multifd():
    sock = os.path.join(new_tmpdir(), "mig.sock")
    dst = start_vm("16M", incoming="unix:" + sock)
    src = start_vm("16M")
    qs, qd = src.qmp(), dst.qmp()
    check("multifd: source workload wrote its memory once (a 'B')",
          wait_until(lambda: b"B" in serial_text(src.serial_path), 20))
    for q in (qs, qd):
        q.cmd_ok("migrate-set-capabilities", capabilities=[{"capability": "multifd", "state": True}])
        q.cmd_ok("migrate-set-parameters", multifd_channels=2)
    set_caps(qs, return_path=True)
    qs.cmd_ok("migrate", uri="unix:" + sock)
    info = wait_mig_status(qs, ("completed", "failed"), 60)
    check_eq("multifd migration completed", (info or {}).get("status"), "completed")
    if not info or info.get("status") != "completed":
        return
    passes = history(qs)[-1]["passes"]
    check("multifd: RAM on the channels (multifd-bytes %d)" % info["ram"]["multifd-bytes"],
          info["ram"]["multifd-bytes"] > 4 << 20)
    check_eq("multifd: pass bytes add up to ram.transferred", sum(p["bytes"] for p in passes),
             info["ram"]["transferred"])
    drecs = wait_until(lambda: [x for x in history(qd) if x["status"] == "completed"], 10) or history(qd)
    check_eq("multifd: the destination's record counts the channels too: what the source sent",
             drecs[-1]["transferred"], info["ram"]["transferred"])


def test_postcopy():
    sock = os.path.join(new_tmpdir(), "mig.sock")
    src = start_vm("32M")
    dst = start_vm("32M", incoming="unix:" + sock)
    qs, qd = src.qmp(), dst.qmp()
    check("postcopy: source workload filled its memory", wait_until(lambda: serial_size(src.serial_path) >= 2, 20))
    for q in (qs, qd):
        set_caps(q, **{"postcopy-ram": True})
    set_caps(qs, return_path=True)
    # Slow enough that postcopy starts inside the first pass.
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=32 << 20, max_postcopy_bandwidth=64 << 20)
    qs.cmd_ok("migrate", uri="unix:" + sock)
    wait_until(lambda: mig_info(qs).get("ram", {}).get("transferred", 0) > 2 << 20, 10)
    qs.cmd_ok("migrate-start-postcopy")
    info = wait_mig_status(qs, ("completed", "failed"), 60)
    check_eq("postcopy migration completed", (info or {}).get("status"), "completed")
    if not info or info.get("status") != "completed":
        return
    r = history(qs)[-1]
    check_eq("postcopy: downtime phases end with the package", [p["phase"] for p in r["phases"]], ["stop", "flush"])
    check_eq("postcopy: phases add up to query-migrate downtime", sum(p["duration-us"] for p in r["phases"]) // 1000,
             info["downtime"])
    check_eq("postcopy: record downtime = query-migrate downtime", r.get("downtime"), info["downtime"])
    check_eq("postcopy: pass bytes add up to ram.transferred", sum(p["bytes"] for p in r["passes"]),
             info["ram"]["transferred"])


def test_resumed():
    port = migvm.free_tcp_port()
    src = start_vm("64M", dirty_rate=64)
    dst = start_vm("64M", incoming="tcp:127.0.0.1:%d" % port, paused=True)
    qs, qd = src.qmp(), dst.qmp()
    for q in (qs, qd):
        set_caps(q, x_resumable_precopy=True)
    check("resumed: source workload filled its memory", wait_until(lambda: serial_size(src.serial_path) >= 2, 20))
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=32 << 20)
    qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % port)
    check("resumed: 40 MiB sent on the first connection",
          wait_until(lambda: mig_info(qs).get("ram", {}).get("transferred", 0) > 40 << 20, 20), mig_info(qs))
    qs.cmd_ok("migrate-pause")
    check("resumed: both sides paused", wait_mig_status(qs, "x-precopy-paused", 20) is not None
          and wait_mig_status(qd, "x-precopy-paused", 20) is not None, (mig_info(qs), mig_info(qd)))
    port2 = migvm.free_tcp_port()
    qd.cmd_ok("migrate-recover", uri="tcp:127.0.0.1:%d" % port2)
    qs.cmd_ok("migrate-set-parameters", max_bandwidth=0)
    qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % port2, resume=True)
    info = wait_mig_status(qs, ("completed", "failed"), 60)
    check_eq("resumed migration completed", (info or {}).get("status"), "completed")
    if not info or info.get("status") != "completed":
        return
    recs = history(qs)
    check_eq("resumed: one record on the source", [r["status"] for r in recs], ["completed"])
    check_eq("resumed: pass bytes add up to ram.transferred", sum(p["bytes"] for p in recs[-1]["passes"]),
             info["ram"]["transferred"])
    drecs = wait_until(lambda: [x for x in history(qd) if x["status"] == "completed"], 10) or history(qd)
    sent, got = info["ram"]["transferred"], drecs[-1]["transferred"]
    check("resumed: the destination counts both connections (%d of the source's %d bytes)" % (got, sent),
          len(drecs) == 1 and sent - (16 << 20) <= got <= sent, drecs)


def test_qemu_destination():
    if not shutil.which("qemu-system-x86_64"):
        skip("QEMU destination", "qemu-system-x86_64 is not installed")
        return
    sock = os.path.join(new_tmpdir(), "mig.sock")
    q = subprocess.Popen(["qemu-system-x86_64", "-M", "none", "-m", "16M", "-display", "none", "-nodefaults",
                          "-incoming", "unix:" + sock], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    migvm.track_pid(q.pid)
    try:
        check("QEMU listens", wait_until(lambda: os.path.exists(sock), 10))
        src = start_vm("16M", machine="none")
        qs = src.qmp()
        set_caps(qs, return_path=True)
        qs.cmd_ok("migrate", uri="unix:" + sock)
        info = wait_mig_status(qs, ("completed", "failed"), 30)
        check_eq("migvm -> QEMU 7.2 completed", (info or {}).get("status"), "completed")
        if not info or info.get("status") != "completed":
            return
        phases = history(qs)[-1]["phases"]
        check_eq("QEMU destination: one destination phase", [p["phase"] for p in phases], PHASES[:4] + ["destination"])
        check_eq("QEMU destination: phases add up to downtime", sum(p["duration-us"] for p in phases) // 1000,
                 info["downtime"])
    finally:
        q.kill()
        q.wait()


if __name__ == "__main__":
    require_binary()
    run("completed migration", test_completed)
    run("failed and cancelled", test_failed_and_cancelled)
    run("block migration", test_block_migration)
    run("multifd", test_multifd)
    run("postcopy", test_postcopy)
    run("resumed precopy", test_resumed)
    run("QEMU destination", test_qemu_destination)
    finish()
