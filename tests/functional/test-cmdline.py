#!/usr/bin/python3
"""Command line: -version/-help, bad options (one line on stderr, exit 1),
-name, -m, -smp, -accel/-machine, -S, -incoming defer, -daemonize/-pidfile,
-serial (file, unix socket, stdio) with the soft accelerator's workload,
query-chardev / info chardev for every backend and socket state."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
from migvm import VM, check, check_eq, run, run_migvm, wait_until  # noqa: E402

BASE = ["-display", "none", "-nodefaults"]

BAD = [
    ("unknown option", ["-foo"]),
    ("unknown long option", ["--no-such-option"]),
    ("-m not a number", ["-m", "abc"]),
    ("-m bad suffix", ["-m", "12Q"]),
    ("-m negative", ["-m", "-5"]),
    ("-m missing argument", ["-m"]),
    ("-smp not a number", ["-smp", "x"]),
    ("-smp missing argument", ["-smp"]),
    ("-accel bogus", ["-accel", "bogus"]),
    ("-accel missing argument", ["-accel"]),
    ("-machine bogus type", ["-machine", "bogus"]),
    ("-machine accel=bogus", ["-machine", "pc,accel=bogus"]),
    ("-qmp bogus backend", ["-qmp", "bogus:"]),
    ("-qmp missing argument", ["-qmp"]),
    ("-qmp unix socket in a missing directory", ["-qmp", "unix:/nonexistent-dir/x.sock,server=on,wait=off"]),
    ("-qmp tcp bad port", ["-qmp", "tcp:127.0.0.1:notaport,server=on,wait=off"]),
    ("-monitor bogus backend", ["-monitor", "nonsense:x"]),
    ("-serial nonsense", ["-serial", "nonsense"]),
    ("-incoming missing argument", ["-incoming"]),
    ("-name missing argument", ["-name"]),
    ("-display bogus", ["-display", "bogus"]),
    ("-smp above the maximum", ["-smp", "100000"]),
    ("-pidfile missing argument", ["-pidfile"]),
]


def test_version_help():
    rc, out, err = run_migvm(["-version"])
    check_eq("-version exits 0", rc, 0)
    check("-version prints a version line", re.search(r"\d+\.\d+", out) is not None, repr(out))
    check_eq("-version writes nothing to stderr", err, "")
    rc, out, err = run_migvm(["-help"])
    check_eq("-help exits 0", rc, 0)
    missing = [o for o in ("-name", "-m ", "-smp", "-accel", "-machine", "-qmp", "-monitor", "-serial", "-S ",
                           "-incoming", "-nodefaults", "-display", "-daemonize", "-pidfile", "-version")
               if o not in out]
    check("-help lists the options", not missing, "missing %r" % missing)
    # Every description starts in one column: after "  -option ARG" and at least two spaces,
    # or alone on the next line, indented to that column, when the option is too long.
    lines = [ln for ln in out.splitlines() if ln.startswith("  ")]
    columns = set()
    for ln in lines:
        m = re.match(r"(  -\S+(?: \S+)?  +)\S", ln) if ln.startswith("  -") else re.match(r"( {3,})\S", ln)
        columns.add(len(m.group(1)) if m else None)
    check("-help: descriptions in one column", len(columns) == 1 and None not in columns,
          "description columns %r in:\n%s" % (columns, out))
    check_eq("-help writes nothing to stderr", err, "")


def test_bad_options():
    for label, args in BAD:
        d = migvm.new_tmpdir()
        accel = [] if "accel" in " ".join(args) else ["-accel", "soft"]
        rc, out, err = run_migvm(BASE + accel + ["-S"] + args, timeout=5, cwd=d)
        lines = err.splitlines()
        check("bad option (%s): exit status 1" % label, rc == 1, "rc=%r stderr=%r" % (rc, err))
        check("bad option (%s): exactly one line on stderr" % label, len(lines) == 1 and lines[0].strip(),
              repr(err))
        check("bad option (%s): nothing on stdout" % label, out == "", repr(out))


def test_name_memory_smp():
    vm = VM(["-name", "cmdline-vm", "-m", "64M", "-smp", "2", "-S"]).launch()
    q = vm.qmp()
    check_eq("-name shows in query-name", q.cmd_ok("query-name"), {"name": "cmdline-vm"})
    cpus = re.findall(r"CPU #(\d+)", q.hmp("info cpus"))
    check_eq("-smp 2: info cpus lists 2 vCPUs", cpus, ["0", "1"])
    check_eq("-S: prelaunch", q.cmd_ok("query-status")["status"], "prelaunch")
    vm.kill()
    for mem in ("1G", "64", "128M", "512m", "65536k"):
        vm = VM(["-m", mem, "-S"]).launch()
        st = vm.qmp().cmd_ok("query-status")
        check("-m %s accepted" % mem, st.get("status") == "prelaunch", repr(st))
        vm.kill()
    vm = VM(["--name", "dashdash", "-smp", "4"]).launch()
    q = vm.qmp()
    check_eq("--name (two dashes) accepted", q.cmd_ok("query-name"), {"name": "dashdash"})
    check_eq("-smp 4: info cpus lists 4 vCPUs", len(re.findall(r"CPU #\d+", q.hmp("info cpus"))), 4)
    check_eq("without -S: running", q.cmd_ok("query-status")["status"], "running")


def test_accel_machine():
    vm = VM(["-machine", "pc,accel=soft", "-S"]).launch()
    kvm = vm.qmp().cmd_ok("query-kvm")
    check_eq("-machine pc,accel=soft: KVM not enabled", kvm.get("enabled"), False)
    vm.kill()
    vm = VM(["-accel", "soft", "-S"]).launch()
    check_eq("-accel soft: KVM not enabled", vm.qmp().cmd_ok("query-kvm").get("enabled"), False)
    vm.kill()


# A command run in a mount namespace of its own with an empty tmpfs on /dev:
# there /dev/kvm does not exist, while the host's stays as it is.
NO_DEV = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none /dev && exec "$@"', "sh"]


def test_without_dev_kvm():
    try:
        p = subprocess.run(NO_DEV + ["true"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
        why = p.stdout.decode("utf-8", "replace").strip() if p.returncode else None
    except OSError as e:
        why = str(e)
    if why:
        migvm.skip("without /dev/kvm", "cannot hide /dev/kvm (unshare -m, tmpfs on /dev): %s" % why)
        return
    p = subprocess.run(NO_DEV + [migvm.binary()] + BASE + migvm._adapt_args(["-accel", "kvm", "-S"]),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       cwd=migvm.new_tmpdir(), timeout=20)
    err = p.stderr.decode("utf-8", "replace")
    check_eq("-accel kvm without /dev/kvm: exit 1", p.returncode, 1)
    if not migvm.qemu_mode():
        check_eq("-accel kvm without /dev/kvm: one line saying why", err,
                 "migvm: -accel kvm: KVM is not available (/dev/kvm: No such file or directory)\n")
    # No accelerator given: KVM is the default when usable, else soft with a warning.
    vm = VM(BASE + ["-S"], defaults=False)
    vm.args = NO_DEV + vm.args
    vm.launch()
    check_eq("no -accel without /dev/kvm: query-kvm", vm.qmp().cmd_ok("query-kvm"),
             {"enabled": False, "present": False})
    if not migvm.qemu_mode():
        check_eq("no -accel without /dev/kvm: the warning", vm.stderr_text(),
                 "migvm: warning: KVM is not available (/dev/kvm: No such file or directory), "
                 "using the soft accelerator\n")


def test_incoming_defer():
    vm = VM(["-incoming", "defer"]).launch()
    q = vm.qmp()
    check_eq("-incoming defer: inmigrate", q.cmd_ok("query-status")["status"], "inmigrate")
    check_eq("-incoming defer: info status", q.hmp("info status"), "VM status: paused (inmigrate)\r\n")
    for cmd in ("cont", "stop", "cont"):
        check_eq("-incoming defer: %s returns {}" % cmd, q.cmd(cmd), {"return": {}})
        check_eq("-incoming defer: still inmigrate after %s" % cmd, q.cmd_ok("query-status")["status"], "inmigrate")
    check("-incoming defer: cont/stop emit no RESUME/STOP (they only toggle autostart)",
          not [e for e in q.events if e.get("event") in ("RESUME", "STOP")], repr(q.events))
    vm.kill()
    port = migvm.free_tcp_port()
    vm = VM(["-incoming", "tcp:127.0.0.1:%d" % port]).launch()
    q = vm.qmp()
    check_eq("-incoming tcp: inmigrate", q.cmd_ok("query-status")["status"], "inmigrate")
    check("-incoming tcp: the port listens", wait_until(lambda: tcp_listening(port), 5), str(port))
    mig = q.cmd_ok("query-migrate")
    addrs = mig.get("socket-address", [])
    check("-incoming tcp: query-migrate lists the listening socket-address",
          any(a.get("type") == "inet" and a.get("port") == str(port) for a in addrs), repr(mig))
    check("-incoming tcp: query-migrate has no status before a source connects (as 7.2)",
          "status" not in mig, repr(mig))


def tcp_listening(port):
    """True if something listens on 127.0.0.1:port (from /proc/net/tcp, without connecting)."""
    try:
        with open("/proc/net/tcp") as f:
            return any(":%04X 00000000:0000 0A" % port in line for line in f)
    except OSError:
        return False


def test_daemonize():
    d = migvm.new_tmpdir()
    pidfile = os.path.join(d, "migvm.pid")
    sock = os.path.join(d, "qmp.sock")
    t0 = time.monotonic()
    rc, out, err = run_migvm(BASE + ["-accel", "soft", "-daemonize", "-pidfile", pidfile,
                                     "-qmp", "unix:%s,server=on,wait=off" % sock], timeout=10, cwd=d)
    elapsed = time.monotonic() - t0
    check_eq("-daemonize: parent exits 0", rc, 0)
    check("-daemonize: parent exits quickly", elapsed < 5, "%.1f s" % elapsed)
    check("-daemonize: QMP socket exists when the parent has exited", os.path.exists(sock))
    pid = None
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError) as e:
        check("-pidfile: holds a pid", False, str(e))
        return
    migvm.track_pid(pid)
    check("-pidfile: holds the pid of a live process", migvm.pid_alive(pid), str(pid))
    check("-daemonize: the daemon runs the migvm binary",
          os.path.realpath("/proc/%d/exe" % pid) == os.path.realpath(migvm.binary()), str(pid))
    check("-daemonize: the daemon left our session", os.getsid(pid) != os.getsid(0))
    q = migvm.QMPClient.unix(sock)
    q.negotiate()
    check_eq("-daemonize: QMP works", q.cmd_ok("query-status")["status"], "running")
    q.cmd("quit")
    q.close()
    gone = wait_until(lambda: not migvm.pid_alive(pid), 10)
    check("-daemonize: quit ends the daemon", gone, str(pid))
    check("-pidfile: removed at exit", wait_until(lambda: not os.path.exists(pidfile), 5), pidfile)
    check("-daemonize: socket removed at exit", not os.path.exists(sock))


def test_pidfile_sigterm():
    d = migvm.new_tmpdir()
    pidfile = os.path.join(d, "p.pid")
    vm = VM(["-pidfile", pidfile], tmpdir=d).launch()
    check("-pidfile without -daemonize holds our child's pid",
          wait_until(lambda: os.path.exists(pidfile) and open(pidfile).read().strip() == str(vm.pid), 5),
          repr(open(pidfile).read() if os.path.exists(pidfile) else None))
    vm.qmp()                        # serving (greeting read) before the signal
    vm.signal(signal.SIGTERM)
    check_eq("SIGTERM: exit status 0", vm.wait_exit(10), 0)
    check("SIGTERM: pidfile removed", not os.path.exists(pidfile))
    check("SIGTERM: QMP socket removed", not os.path.exists(vm.qmp_path))


def read_file(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_serial_file():
    d = migvm.new_tmpdir()
    out = os.path.join(d, "serial.out")
    vm = VM(["-S", "-serial", "file:%s" % out], tmpdir=d).launch()
    q = vm.qmp()
    check("-serial file: file created", wait_until(lambda: os.path.exists(out), 5), out)
    check_eq("-serial file: nothing written while in prelaunch", read_file(out), b"")
    q.cmd_ok("cont")
    data = wait_until(lambda: (lambda b: b if len(b) >= 10 else None)(read_file(out)), 10)
    check("-serial file: the soft workload writes 'A' then 'B's", data is not None and data[:1] == b"A"
          and set(data[1:]) == {ord("B")}, repr((data or read_file(out))[:40]))
    q.cmd_ok("stop")
    q.cmd_ok("query-status")
    size = len(read_file(out))
    grew = wait_until(lambda: len(read_file(out)) > size, 0.5)
    check("-serial file: output stops while paused", not grew, "grew from %d" % size)
    q.cmd_ok("cont")
    check("-serial file: output resumes after cont", wait_until(lambda: len(read_file(out)) > size, 10))


def test_serial_unix_and_stdio():
    d = migvm.new_tmpdir()
    path = os.path.join(d, "serial.sock")
    vm = VM(["-serial", "unix:%s,server=on,wait=off" % path], tmpdir=d).launch()
    ok = wait_until(lambda: os.path.exists(path), 5)
    check("-serial unix: socket created", ok, path)
    if ok:
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        migvm.unix_connect(s, path)
        got = b""
        deadline = time.monotonic() + 10
        try:
            while len(got) < 10 and time.monotonic() < deadline:
                data = s.recv(4096)
                if not data:
                    break
                got += data
        except socket.timeout:
            pass
        s.close()
        check("-serial unix: a client receives B's from the workload", b"B" in got, repr(got[:40]))
    vm.kill()
    vm = VM(["-serial", "stdio"], stdout=subprocess.PIPE).launch()
    os.set_blocking(vm.proc.stdout.fileno(), False)
    buf = bytearray()

    def enough():
        try:
            chunk = os.read(vm.proc.stdout.fileno(), 4096)
            buf.extend(chunk or b"")
        except BlockingIOError:
            pass
        return len(buf) >= 10

    wait_until(enough, 10)
    check("-serial stdio: stdout receives 'A' then 'B's", bytes(buf[:1]) == b"A" and b"B" in buf, repr(bytes(buf[:40])))
    vm.kill()
    vm = VM(["-serial", "none"]).launch()
    check_eq("-serial none: starts and runs", vm.qmp().cmd_ok("query-status")["status"], "running")


def wait_chardevs(q, label, filename, timeout=5):
    """query-chardev once `label` reads `filename` (a state that changes on the main loop)."""
    box = {}

    def ok():
        box["r"] = {c["label"]: c for c in q.cmd_ok("query-chardev")}
        return box["r"].get(label, {}).get("filename") == filename
    wait_until(ok, timeout, interval=0.02)
    return box["r"]


def test_query_chardev():
    """query-chardev and info chardev as QEMU 7.2 gives them: labels
    (compat_monitorN in order of appearance, serial0), each backend's
    filename (null, stdio, file, pipe; sockets by address, disconnected: or
    with the peer), frontend-open for what a monitor or the serial port
    uses; migvm lists them in creation order."""
    d = migvm.new_tmpdir()
    os.mkfifo(os.path.join(d, "p1"))
    peer = socket.socket(socket.AF_UNIX)            # c1 connects to it
    peer_path = os.path.join(d, "peer.sock")
    peer.bind(peer_path)
    peer.listen(1)
    tpeer = socket.socket()                         # c2 connects to it
    tpeer.bind(("127.0.0.1", 0))
    tpeer.listen(1)
    inherited = socket.socket(socket.AF_UNIX)       # fd= listener, as libvirt passes one
    inh_path = os.path.join(d, "inherited.sock")
    inherited.bind(inh_path)
    inherited.listen(1)
    t1, t2 = migvm.free_tcp_port(), migvm.free_tcp_port()
    s1, s2 = os.path.join(d, "s1.sock"), os.path.join(d, "s2.sock")
    serial = os.path.join(d, "serial.sock")
    nobody = os.path.join(d, "nobody.sock")
    args = ["-S",
            "-chardev", "socket,id=t1,host=127.0.0.1,port=%d,server=on,wait=off" % t1,
            "-chardev", "socket,id=t2,host=127.0.0.1,port=%d,server=on,wait=off" % t2,
            "-chardev", "file,id=f1,path=%s" % os.path.join(d, "f1.out"),
            "-chardev", "null,id=n1",
            "-monitor", "stdio",
            "-chardev", "pipe,id=p1,path=%s" % os.path.join(d, "p1"),
            "-chardev", "socket,id=s1,path=%s,server=on,wait=off" % s1,
            "-chardev", "socket,id=s2,path=%s,server=on,wait=off" % s2,
            "-chardev", "socket,id=c1,path=%s" % peer_path,
            "-chardev", "socket,id=c2,host=127.0.0.1,port=%d" % tpeer.getsockname()[1],
            "-chardev", "socket,id=c3,path=%s,reconnect=1" % nobody,
            "-chardev", "socket,id=fd1,fd=%d,server=on,wait=off" % inherited.fileno(),
            "-mon", "chardev=n1,mode=readline",
            "-serial", "unix:%s,server=on,wait=off" % serial]
    vm = VM(args, hmp=True, tmpdir=d, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            pass_fds=(inherited.fileno(),)).launch()
    inherited.close()
    q = vm.qmp()
    c1_conn, _ = peer.accept()
    c2_conn, _ = tpeer.accept()
    s1_client = socket.socket(socket.AF_UNIX)
    migvm.unix_connect(s1_client, s1)
    t2_client = socket.create_connection(("127.0.0.1", t2))
    c2_local, c2_peer = c2_conn.getpeername()[1], c2_conn.getsockname()[1]
    t2_peer = t2_client.getsockname()[1]
    expected = [
        ("compat_monitor0", "unix:%s,server=on" % vm.qmp_path, True),
        ("compat_monitor1", "disconnected:unix:%s,server=on" % vm.hmp_path, True),
        ("t1", "disconnected:tcp:127.0.0.1:%d,server=on" % t1, False),
        ("t2", "tcp:127.0.0.1:%d,server=on <-> 127.0.0.1:%d" % (t2, t2_peer), False),
        ("f1", "file", False),
        ("n1", "null", True),
        ("compat_monitor2", "stdio", True),
        ("p1", "pipe", False),
        ("s1", "unix:%s,server=on" % s1, False),
        ("s2", "disconnected:unix:%s,server=on" % s2, False),
        ("c1", "unix:", False),
        ("c2", "tcp:127.0.0.1:%d <-> 127.0.0.1:%d" % (c2_local, c2_peer), False),
        ("c3", "disconnected:unix:%s" % nobody, False),
        ("fd1", "disconnected:unix:%s,server=on" % inh_path, False),
        ("serial0", "disconnected:unix:%s,server=on" % serial, True),
    ]
    got = wait_chardevs(q, "t2", expected[3][1])
    for label, filename, fe_open in expected:
        check_eq("query-chardev: %s" % label, got.get(label),
                 {"label": label, "filename": filename, "frontend-open": fe_open})
    check_eq("query-chardev: no other chardev", sorted(got), sorted(e[0] for e in expected))
    if not migvm.qemu_mode():           # QEMU's order is its hash table's
        check_eq("query-chardev: creation order", [c["label"] for c in q.cmd_ok("query-chardev")],
                 [e[0] for e in expected])
    text = q.hmp("info chardev")
    lines = text.split("\r\n")
    check_eq("info chardev: one 'LABEL: filename=FILENAME' line per chardev, CRLF",
             sorted(lines[:-1]), sorted("%s: filename=%s" % (e[0], e[1]) for e in expected))
    check_eq("info chardev: ends with CRLF", lines[-1], "")
    h = vm.hmp()
    out = h.cmd("info chardev")
    check("info chardev on the HMP console: its own socket connected",
          "compat_monitor1: filename=unix:%s,server=on" % vm.hmp_path in out, out)
    # UNIX peers going away: the listener and the client read disconnected:
    # again. (A TCP peer's close is no hang-up to a chardev nobody reads:
    # QEMU 7.2 keeps showing it, and so does migvm.)
    for sock in (s1_client, c1_conn):
        sock.close()
    # Each hang-up is its own main-loop event: wait for both, in either order.
    wait_chardevs(q, "s1", "disconnected:unix:%s,server=on" % s1)
    got = wait_chardevs(q, "c1", "disconnected:unix:%s" % peer_path)
    for label, filename in (("s1", "disconnected:unix:%s,server=on" % s1),
                            ("c1", "disconnected:unix:%s" % peer_path)):
        check_eq("query-chardev: %s after its peer left" % label, got.get(label, {}).get("filename"), filename)
    t2_client.close()
    c2_conn.close()
    # The serial port's listener with a client.
    ser = socket.socket(socket.AF_UNIX)
    migvm.unix_connect(ser, serial)
    got = wait_chardevs(q, "serial0", "unix:%s,server=on" % serial)
    check_eq("query-chardev: serial0 with a client", got.get("serial0", {}).get("filename"),
             "unix:%s,server=on" % serial)
    ser.close()
    check("query-chardev: f1 created at start-up, as QEMU does", os.path.exists(os.path.join(d, "f1.out")))
    schema = q.cmd_ok("query-qmp-schema")
    check("query-qmp-schema: query-chardev", any(e.get("name") == "query-chardev" and e["meta-type"] == "command"
                                                 for e in schema))
    check("help info: info chardev", "info chardev" in q.hmp("help info"))
    vm.kill()
    for sock in (peer, tpeer):
        sock.close()
    # A serial port on a file, and -serial on -M none (no port: the chardev is there, nobody uses it).
    for machine, fe_open in (("pc", True), ("none", False)):
        out = os.path.join(d, "serial-%s.out" % machine)
        vm = VM(["-S", "-M", machine, "-serial", "file:%s" % out] + (["-accel", "soft"] if machine == "none" else []),
                tmpdir=d).launch()
        got = vm.qmp().cmd_ok("query-chardev")
        check_eq("query-chardev: -M %s -serial file" % machine, [c for c in got if c["label"] == "serial0"],
                 [{"label": "serial0", "filename": "file", "frontend-open": fe_open}])
        vm.kill()


def test_nographic():
    vm = VM(["-nographic", "-S"], defaults=False, stdout=subprocess.PIPE, stdin=subprocess.PIPE)
    vm.args[1:1] = ["-nodefaults", "-accel", "soft"] if not migvm.qemu_mode() else ["-nodefaults", "-accel", "tcg"]
    vm.launch()
    check_eq("-nographic: starts, QMP works", vm.qmp().cmd_ok("query-status")["status"], "prelaunch")


def main():
    migvm.require_binary()
    run("-version and -help", test_version_help)
    if migvm.qemu_mode():
        migvm.skip("bad options", "QEMU prints some errors on two lines; the one-line rule is migvm's")
    else:
        run("bad options", test_bad_options)
    run("-name, -m, -smp", test_name_memory_smp)
    run("accelerator and machine", test_accel_machine)
    run("without /dev/kvm", test_without_dev_kvm)
    run("-incoming defer", test_incoming_defer)
    run("-daemonize", test_daemonize)
    run("-pidfile and SIGTERM", test_pidfile_sigterm)
    if migvm.qemu_mode():
        migvm.skip("serial", "the A/B workload is migvm's soft accelerator")
    else:
        run("-serial file", test_serial_file)
        run("-serial unix, stdio, none", test_serial_unix_and_stdio)
    run("-nographic", test_nographic)
    run("query-chardev and info chardev", test_query_chardev)
    migvm.finish()


if __name__ == "__main__":
    main()
