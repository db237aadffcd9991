#!/usr/bin/env python3
"""HMP conformance: the same human-monitor commands against QEMU 7.2 and
migvm (both -M none -m 4M), outputs compared line by line: exactly where the
text is fixed, with numbers masked (`#`) where they are measurements (times,
throughput, counters).  The summary line says how many exchanges matched and
lists each deliberate difference (DELIBERATE below, with the reason)."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemulib  # noqa: E402
import conformance  # noqa: E402
from migvm import finish, free_tcp_port, new_tmpdir, wait_until  # noqa: E402

qemulib.require_qemu_and_migvm()

DELIBERATE = {
    "console: banner": "migvm claims QEMU 7.2.0 (the micro version is the Debian build's 7.2.22); prompt identical",
    r"help .*: text": "help texts are migvm's own words (CONTRIBUTING.md: never copy QEMU's text); usage lines match",
    "help info: all entries": "migvm has only the info sub-commands it implements; their entries are compared apart",
    r"migrate_set_capability (xbzrle|postcopy-preempt) on":
        "migvm refuses capabilities it does not implement (migration/options.c cap_supported)",
    "help cont: usage": "migvm's cont has -f, to start a guest handed over by a completed migration "
                        "(docs/architecture.md: no split brain)",
}


def masked(text):
    return re.sub(r"\d+(\.\d+)?", "#", text)


def hmp(side, q, line, mode="exact", name=None):
    out = q.hmp(line)
    if line.startswith("help") and mode == "exact":
        return help_record(side, name or line, out)
    side.record(name or line, masked(out) if mode == "masked" else out)
    return out


def help_record(side, name, out):
    """Help entries `NAME PARAMS -- TEXT`: usage compared exactly, texts apart."""
    usage, texts = [], []
    for entry in out.split("\r\n"):
        if " -- " in entry:
            u, _, t = entry.partition(" -- ")
            usage.append(u + " --")
            texts.append(t)
        elif entry.strip():
            (texts if entry.startswith("\t") else usage).append(entry)
    if name == "help info":
        side.record("help info: all entries", out)
        wanted = ("info migrate ", "info migrate_capabilities ", "info migrate_parameters ", "info status ")
        side.record("help info: usage of the migration/status entries", [u for u in usage if u.startswith(wanted)])
        return out
    side.record(name + ": usage", usage)
    side.record(name + ": text", texts)
    return out


def conv_info(side):
    vm = side.start(["-S"], hmp=True)
    h = vm.hmp()
    side.record("console: banner", h.banner.decode("utf-8", "replace"))
    side.record("console: prompt", h.banner.endswith(b"(qemu) "))
    out = h.cmd("info status")
    side.record("console: info status over the socket", out)
    out = h.cmd("nosuchcmd")
    side.record("console: unknown command over the socket", out)
    q = vm.qmp()
    # (A calc_dirty_rate that starts measuring is not compared: QEMU 7.2 -M none dies on -b; test-dirty-rate.py.)
    for line in ["info status", "info cpus", "info registers", "info registers -a", "info registers 0",
                 "memsave 0 16 m.bin", "info migrate", "info migrate_capabilities", "info migrate_parameters",
                 "help migrate", "help migrate_cancel", "help migrate_continue", "help migrate_incoming",
                 "help migrate_set_capability", "help migrate_set_parameter", "help cont", "help stop",
                 "help quit", "help info", "help nosuchcmd", "help info migrate", "help info status",
                 "help info migrate_parameters", "help info migrate_capabilities",
                 "help set_vcpu_dirty_limit", "help cancel_vcpu_dirty_limit", "help info vcpu_dirty_limit",
                 "help calc_dirty_rate", "help info dirty_rate", "info dirty_rate", "calc_dirty_rate 0",
                 "calc_dirty_rate 61", "calc_dirty_rate 1 100", "calc_dirty_rate 1 16385",
                 "help object_add", "help object_del",
                 "info vcpu_dirty_limit", "set_vcpu_dirty_limit 10", "set_vcpu_dirty_limit 10 3",
                 "cancel_vcpu_dirty_limit", "cancel_vcpu_dirty_limit 3",
                 "nosuchcmd", "info nosuch", "stop extra", "migrate", "migrate_set_capability xbzrle maybe",
                 "migrate_set_capability bogus on", "migrate_set_parameter bogus 1",
                 "migrate_set_parameter downtime-limit 2000001", "migrate_set_parameter cpu-throttle-initial 0",
                 "migrate_set_parameter xbzrle-cache-size 1000", "migrate_set_parameter multifd-channels x",
                 "migrate_set_parameter block-bitmap-mapping x", "migrate_set_parameter max-bandwidth 100M",
                 "migrate_set_parameter max-bandwidth 1G", "migrate_set_parameter max-bandwidth 100",
                 "migrate_set_parameter downtime-limit 500", "migrate_set_parameter xbzrle-cache-size 1M",
                 "migrate_set_parameter compress-wait-thread off", "migrate_set_parameter multifd-compression zlib",
                 "migrate_set_parameter tls-creds x", "info migrate_parameters",
                 "object_add authz-simple,id=h1,identity=foo", "object_add authz-simple,id=h1,identity=foo",
                 "object_add nosuch,id=x", "object_add tls-creds-x509,id=h2,endpoint=client,dir=/nonexistent",
                 "object_add authz-list,id=l1,policy=deny,rules.0.match=x,rules.0.policy=allow",
                 "object_del h1", "object_del h1", "object_add", "object_del",
                 'object_add {"qom-type": "authz-simple", "id": "j1", "identity": "CN=x"}',
                 'object_add {"qom-type": "authz-simple", "id": "j1", "identity": "CN=x"}',
                 'object_add {"qom-type": "authz-simple", "id": "j2"', 'object_del j1',
                 "migrate_set_capability events on", "migrate_set_capability return-path on",
                 "migrate_set_capability xbzrle on", "migrate_set_capability postcopy-preempt on",
                 "info migrate_capabilities",
                 "migrate_continue pre-switchover", "migrate_continue bogus", "migrate_incoming tcp:127.0.0.1:1",
                 "migrate -r exec:true", "migrate -x exec:true", "migrate foo:bar", "migrate_cancel",
                 "c", "info status", "stop", "info status", "s", "cont", "system_reset", "info status"]:
        hmp(side, q, line)


def conv_migrate(side):
    src = side.start(["-S"])
    q = src.qmp()
    d = new_tmpdir()
    hmp(side, q, "migrate tcp:127.0.0.1:1", name="migrate: connection refused")
    wait_until(lambda: qemulib.migration_status(q) == "failed", 10)
    hmp(side, q, "info migrate", name="info migrate: failed")
    port = free_tcp_port()
    dst = side.start(["-incoming", "tcp:127.0.0.1:%d" % port])
    dq = dst.qmp()
    hmp(side, dq, "info migrate", "masked", name="destination: info migrate while listening")
    hmp(side, dq, "info status", name="destination: info status")
    hmp(side, dq, "migrate exec:true", name="destination: migrate while inmigrate")
    hmp(side, dq, "migrate_incoming tcp:127.0.0.1:1", name="destination: migrate_incoming after -incoming URI")
    hmp(side, q, "cont")
    hmp(side, q, "migrate_set_parameter max-bandwidth 2K", name="slow: max-bandwidth 2K")
    hmp(side, q, "migrate -d tcp:127.0.0.1:%d" % port, name="migrate -d: slow tcp")
    wait_until(lambda: qemulib.migration_status(q) == "active", 10)
    # "precopy ram" is printed once precopy-bytes is not 0: wait for it on
    # both sides (a check under TSan once caught migvm past it, QEMU not yet).
    wait_until(lambda: q.cmd_ok("query-migrate").get("ram", {}).get("precopy-bytes", 0) > 0, 10)
    out = hmp(side, q, "info migrate", "masked", name="info migrate: active")
    hmp(side, q, "migrate exec:true", name="migrate: while one is in progress")
    hmp(side, q, "migrate_set_capability events on", name="migrate_set_capability: while migrating")
    hmp(side, q, "migrate_cancel", name="migrate_cancel: active")
    wait_until(lambda: qemulib.migration_status(q) == "cancelled", 10)
    hmp(side, q, "info migrate", name="info migrate: cancelled")
    hmp(side, q, "info status", name="info status: after cancel")
    dst.kill()
    hmp(side, q, "migrate_set_parameter max-bandwidth 128M", name="max-bandwidth back to 128M")
    path = os.path.join(d, "out.mig")
    hmp(side, q, 'migrate "exec:cat > %s"' % path, name="migrate: exec to a file (synchronous)")
    wait_until(lambda: qemulib.migration_status(q) == "completed", 10)
    wait_until(lambda: q.cmd_ok("query-status")["status"] == "postmigrate", 5)
    out = hmp(side, q, "info migrate", "masked", name="info migrate: completed")
    hmp(side, q, "info status", name="info status: after completion")
    hmp(side, q, "migrate exec:true", name="migrate: again from postmigrate")
    dst2 = side.start(["-incoming", "defer"])
    q2 = dst2.qmp()
    hmp(side, q2, "info migrate", name="destination (defer): info migrate")
    hmp(side, q2, "info status", name="destination (defer): info status")
    hmp(side, q2, "migrate_incoming foo:bar", name="destination (defer): bad protocol")
    hmp(side, q2, 'migrate_incoming "exec:cat %s"' % path, name="destination (defer): migrate_incoming")
    wait_until(lambda: qemulib.migration_status(q2) == "completed", 10)
    hmp(side, q2, "info migrate", "masked", name="destination: info migrate completed")
    hmp(side, q2, "info status", name="destination: info status after completion")
    hmp(side, q2, 'migrate_incoming "exec:cat %s"' % path, name="destination: second migrate_incoming")


# migrate_set_parameter with numbers as QEMU 7.2's HMP reads them: sizes with
# suffixes (max-bandwidth in MiB), negatives, at and beyond 2^63 and 2^64,
# and the integer parameters that wrap "-N" as strtoull does.
INTEGER_TEXTS = ["-1", "-9223372036854775809", "-18446744073709551615", "-18446744073709551616", "2147483648",
                 "4294967296", "9007199254740993", "9223372036854775807", "9223372036854775808",
                 "18446744073709551615", "18446744073709551616", "1.5", "1k", "8E", "16E", "-1k", "0x10", "1e3",
                 "256"]
INTEGER_PARAMETERS = ["max-bandwidth", "downtime-limit", "xbzrle-cache-size", "announce-initial",
                      "max-postcopy-bandwidth", "x-checkpoint-delay", "compress-level"]


def conv_integers(side):
    vm = side.start(["-S"])
    q = vm.qmp()
    for name in INTEGER_PARAMETERS:
        for text in INTEGER_TEXTS:
            hmp(side, q, "migrate_set_parameter %s %s" % (name, text))
            now = [l for l in q.hmp("info migrate_parameters").splitlines() if l.startswith(name + ":")]
            side.record("integers: %s reads back after %s" % (name, text), now)


def conv_chardev(side):
    """info chardev on one command line with every backend and socket state
    (conformance.ChardevLine), lines sorted (QEMU's order is its hash
    table's, migvm's the creation order), over QMP and on the console; then
    after UNIX peers hung up."""
    line = conformance.ChardevLine(side, hmp=True)

    def record(name, out):
        lines = out.split("\r\n")
        side.record(name, [lines[-1] == ""] + sorted(line.mask(l) for l in lines[:-1]))
    record("info chardev: every backend, lines sorted", line.q.hmp("info chardev"))
    h = line.vm.hmp()
    record("info chardev: on the console (its socket connected)", h.cmd("info chardev"))
    hmp(side, line.q, "help info chardev")
    hmp(side, line.q, "info chardev extra")
    line.close_unix_peers()
    record("info chardev: after the UNIX peers hung up", line.q.hmp("info chardev"))
    line.close()


tally = conformance.Tally(DELIBERATE)
for conv in (conv_info, conv_integers, conv_chardev, conv_migrate):
    qemu_side, migvm_side = conformance.run_both(conv)
    tally.compare(qemu_side, migvm_side)
tally.summary("HMP")
finish()
