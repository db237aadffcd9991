"""Scripted conversations run against QEMU 7.2 and migvm, compared
structurally (shared by test-conformance-qmp.py and test-conformance-hmp.py).

A conversation is a function f(side) that talks to VMs it starts with
side.start(...) and records exchanges with side.record(name, value, mode).
It runs once per implementation; afterwards compare() pairs the records by
name:
    mode "exact"  the normalised values are equal (timestamps dropped)
    mode "shape"  same keys and JSON types, recursively (values may differ)
An exchange listed in DELIBERATE (passed by the test) that differs is counted
as a deliberate difference, with its reason, not as a failure.

migvm's own extensions are named x-... (QEMU's convention for unstable
members): an "x-" key, a list item naming an "x-" capability, or an HMP
"x-name: value" line, that only migvm's reply has is dropped before comparing (drop_migvm_extensions), so
each extension does not need its own DELIBERATE entry. x- names QEMU 7.2
has too (x-checkpoint-delay, x-colo, ...) are still compared.
"""

import difflib
import os
import re
import socket

import qemulib
from migvm import check, free_tcp_port, new_tmpdir, unix_connect, wait_until


def shape(v):
    """Keys and JSON types, recursively; numbers are one type (QEMU prints a
    double 0 as `0`)."""
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        shapes = []
        for x in v:
            s = shape(x)
            if s not in shapes:
                shapes.append(s)
        return ["list of", shapes]
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "str"
    if v is None:
        return "null"
    return type(v).__name__


def strip_timestamps(v):
    if isinstance(v, dict):
        return {k: strip_timestamps(x) for k, x in v.items() if k != "timestamp"}
    if isinstance(v, list):
        return [strip_timestamps(x) for x in v]
    return v


def _x_name(item):
    return isinstance(item, dict) and any(isinstance(v, str) and v.startswith("x-")
                                          for k, v in item.items() if k in ("capability", "name", "parameter"))


def drop_migvm_extensions(qemu_value, migvm_value):
    """migvm_value without the x- members and items QEMU's value lacks."""
    if isinstance(qemu_value, dict) and isinstance(migvm_value, dict):
        return {k: drop_migvm_extensions(qemu_value.get(k), v) for k, v in migvm_value.items()
                if not (k.startswith("x-") and k not in qemu_value)}
    if isinstance(qemu_value, list) and isinstance(migvm_value, list):
        kept = [v for v in migvm_value if not (_x_name(v) and v not in qemu_value)]
        return [drop_migvm_extensions(qemu_value[i] if i < len(qemu_value) else None, v)
                for i, v in enumerate(kept)]
    if isinstance(qemu_value, str) and isinstance(migvm_value, str) and "\n" in migvm_value:
        # HMP: "x-name: value" lines of info migrate_parameters / _capabilities
        lines = migvm_value.split("\n")
        return "\n".join(line for line in lines
                         if not (re.match(r"x-[\w-]+:", line) and line.split(":")[0] + ":" not in qemu_value))
    return migvm_value


class Side:
    def __init__(self, kind):
        self.kind = kind
        self.records = []           # (name, mode, value)
        self.vms = []

    def start(self, args=(), hmp=False, negotiate=True, **kw):
        vm = qemulib.start(self.kind, args, hmp=hmp, **kw)
        self.vms.append(vm)
        return vm

    def record(self, name, value, mode="exact"):
        self.records.append((name, mode, strip_timestamps(value)))
        return value

    def kill_all(self):
        for vm in self.vms:
            vm.kill()
        self.vms = []


def run_both(conversation):
    """Run the conversation on QEMU then migvm; returns (qemu side, migvm side).
    An exception on one side is recorded as an exchange that cannot match."""
    sides = []
    for kind in ("qemu", "migvm"):
        side = Side(kind)
        try:
            conversation(side)
        except Exception as e:  # noqa: BLE001 - record and compare what we have
            side.record("%s (exception)" % conversation.__name__, "%s: %s" % (type(e).__name__, e))
        finally:
            side.kill_all()
        sides.append(side)
    return sides


class Tally:
    def __init__(self, deliberate):
        self.deliberate = deliberate      # {exchange name or regex: reason}
        self.matched = 0
        self.total = 0
        self.deliberate_seen = []         # (name, reason)

    def reason_for(self, name):
        for key, reason in self.deliberate.items():
            if key == name or re.fullmatch(key, name):
                return reason
        return None

    def compare(self, qemu_side, migvm_side):
        q = {}
        for name, mode, value in qemu_side.records:
            q.setdefault(name, (mode, value))
        m = {}
        for name, mode, value in migvm_side.records:
            m.setdefault(name, (mode, value))
        names = [n for n, _, _ in qemu_side.records] + \
                [n for n, _, _ in migvm_side.records if n not in q]
        seen = set()
        for name in names:
            if name in seen:
                continue
            seen.add(name)
            self.total += 1
            if name not in q or name not in m:
                same = False
                detail = "only %s has this exchange: %r" % ("QEMU" if name in q else "migvm",
                                                              (q.get(name) or m.get(name))[1])
            else:
                mode, qv = q[name]
                mv = drop_migvm_extensions(qv, m[name][1])
                if mode == "shape":
                    same = shape(qv) == shape(mv)
                else:
                    same = qv == mv
                detail = "QEMU %r | migvm %r" % (qv, mv)
                if isinstance(qv, str) and isinstance(mv, str) and "\n" in qv + mv:
                    diff = difflib.unified_diff(qv.splitlines(), mv.splitlines(), "QEMU", "migvm", lineterm="", n=0)
                    detail = "line diff: " + " ".join(list(diff)[2:])
            reason = self.reason_for(name)
            if same:
                self.matched += 1
                check("conformance: %s" % name, True)
            elif reason:
                self.deliberate_seen.append((name, reason))
                print("deliberate - %s: %s (%s)" % (name, reason, detail[:300]), flush=True)
            else:
                check("conformance: %s" % name, False, detail)

    def summary(self, what):
        line = "%s conformance: %d of %d exchanges matched QEMU 7.2" % (what, self.matched, self.total)
        if self.deliberate_seen:
            line += "; deliberate differences (%d): %s" % (
                len(self.deliberate_seen), "; ".join("%s [%s]" % d for d in self.deliberate_seen))
        else:
            line += "; no deliberate differences"
        print(line, flush=True)


class ChardevLine:
    """One command line with every chardev backend both implement, in every
    socket state, for query-chardev / info chardev (QMP and HMP tests):
    listening with and without a client, connected out (UNIX and TCP), a
    client still trying to connect, file, null, pipe, stdio, and the
    -qmp/-monitor/-serial shorthands. Relative socket paths (the VM runs in
    its own directory) print the same on both sides; mask() replaces the
    directories and the TCP ports, which differ from run to run."""

    def __init__(self, side, machine="none", hmp=False):
        self.dir = d = new_tmpdir()
        os.mkfifo(os.path.join(d, "p1"))
        self.peer = socket.socket(socket.AF_UNIX)
        self.peer.bind(os.path.join(d, "peer.sock"))
        self.peer.listen(1)
        self.tpeer = socket.socket()
        self.tpeer.bind(("127.0.0.1", 0))
        self.tpeer.listen(1)
        self.ports = {"t1": free_tcp_port(), "t2": free_tcp_port(), "c2": self.tpeer.getsockname()[1]}
        args = ["-S",
                "-chardev", "socket,id=t1,host=127.0.0.1,port=%d,server=on,wait=off" % self.ports["t1"],
                "-chardev", "socket,id=t2,host=127.0.0.1,port=%d,server=on,wait=off" % self.ports["t2"],
                "-chardev", "file,id=f1,path=f1.out",
                "-chardev", "null,id=n1",
                "-monitor", "stdio",
                "-chardev", "pipe,id=p1,path=%s" % os.path.join(d, "p1"),
                "-chardev", "socket,id=s1,path=s1.sock,server=on,wait=off",
                "-chardev", "socket,id=s2,path=s2.sock,server=on,wait=off",
                "-chardev", "socket,id=c1,path=%s" % os.path.join(d, "peer.sock"),
                "-chardev", "socket,id=c2,host=127.0.0.1,port=%d" % self.ports["c2"],
                "-chardev", "socket,id=c3,path=nobody.sock,reconnect=1",
                "-mon", "chardev=n1,mode=readline",
                "-serial", "unix:serial.sock,server=on,wait=off"]
        self.vm = side.start(args, hmp=hmp, machine=machine, ram=16 << 20)
        self.q = self.vm.qmp()
        self.c1_conn, _ = self.peer.accept()
        self.c2_conn, _ = self.tpeer.accept()
        self.ports["c2 local"] = self.c2_conn.getpeername()[1]
        self.s1_client = socket.socket(socket.AF_UNIX)
        unix_connect(self.s1_client, os.path.join(self.vm.dir, "s1.sock"))
        self.t2_client = socket.create_connection(("127.0.0.1", self.ports["t2"]))
        self.ports["t2 peer"] = self.t2_client.getsockname()[1]
        # The chardevs see their peers on the main loop: wait for the last one.
        wait_until(lambda: "<-> 127.0.0.1:%d" % self.ports["t2 peer"] in self.q.hmp("info chardev"), 5)

    def mask(self, text):
        text = text.replace(self.vm.dir + "/", "<dir>/").replace(self.dir + "/", "<peer dir>/")
        for name, port in self.ports.items():
            text = re.sub(r":%d\b" % port, ":<%s port>" % name, text)
        return text

    def close_unix_peers(self):
        """The UNIX peers hang up (a listener's client, a client's server)."""
        self.s1_client.close()
        self.c1_conn.close()
        wait_until(lambda: "c1: filename=disconnected:" in self.q.hmp("info chardev"), 5)

    def close(self):
        for s in (self.s1_client, self.c1_conn, self.t2_client, self.c2_conn, self.peer, self.tpeer):
            s.close()
