#!/usr/bin/python3
"""Command line: -version/-help, bad options (one line on stderr, exit 1),
-name, -m, -smp, -accel/-machine, -S, -incoming defer, -daemonize/-pidfile,
-serial (file, unix socket, stdio) with the soft accelerator's workload."""

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
    migvm.finish()


if __name__ == "__main__":
    main()
