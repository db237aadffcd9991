#!/usr/bin/python3
"""migvm started and driven by QEMU 7.2's own Python tooling, as QEMU's tests,
users' scripts and libvirt do:

- qemu.machine.QEMUMachine launches build/migvm (it passes -display none
  -vga none, -chardev socket,id=mon,path=... -mon chardev=mon,mode=control,
  where migvm connects out to the tool's socket, and a console chardev with
  -serial chardev:console or -device isa-serial,chardev=console): QMP,
  console output, shutdown() with exit 0;
- a live migration between two migvm processes driven by qemu.qmp.QMPClient,
  with the events it sees;
- scripts/qmp/qmp-shell in QMP mode and in HMP mode (-H);
- a libvirt-style command line: the monitor on a listening socket the test
  creates and passes as fd=N, -S -no-user-config -nodefaults -no-shutdown,
  the serial port as a JSON -device;
- a monitor connecting out with reconnect=1 reports a peer that went away
  and connects again, and so does the serial port's chardev;
- -daemonize with a monitor that connects out, options in any order;
- -no-shutdown: a guest shutdown stops the VM, quit still exits (KVM).

QEMU's Python packages come from Debian's source package for qemu, fetched
at test time into $BUILD/qemu-python by scripts/fetch-qemu-python.sh (never
committed); the test skips only when that package cannot be had.
"""

import asyncio
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
from migvm import VM, check, check_eq, run, wait_until  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", "build")
ACCEL = ["-accel", "tcg"] if migvm.qemu_mode() else ["-accel", "soft"]


def fetch_qemu_python():
    dest = os.path.join(BUILD, "qemu-python")
    p = subprocess.run(["sh", os.path.join(ROOT, "scripts", "fetch-qemu-python.sh"), dest],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    if p.returncode != 0:
        migvm.skip_all("QEMU 7.2's Python tooling cannot be had: %s" % p.stderr.decode().strip())
    return p.stdout.decode().strip()


QEMU_SRC = fetch_qemu_python()
sys.path.insert(0, os.path.join(QEMU_SRC, "python"))
from qemu.machine import QEMUMachine  # noqa: E402
from qemu.qmp import QMPClient  # noqa: E402


def machine(args, name=None):
    vm = QEMUMachine(migvm.binary(), args=args, name=name, base_temp_dir=migvm.new_tmpdir())
    return vm


def read_console(sock, want, timeout):
    """Bytes from the console socket until want(buf) or the deadline."""
    buf = b""
    deadline = time.monotonic() + timeout
    sock.settimeout(0.2)
    while not want(buf) and time.monotonic() < deadline:
        try:
            data = sock.recv(4096)
        except socket.timeout:
            continue
        if not data:
            break
        buf += data
    return buf


def test_qemu_machine():
    vm = machine(ACCEL + ["-nodefaults", "-m", "64M", "-name", "qm-guest", "-S"])
    vm.set_console()
    vm.launch()
    try:
        console = vm.console_socket            # connected before the guest runs: nothing is lost
        check_eq("QEMUMachine: launch and query-status", vm.qmp("query-status")["return"]["status"], "prelaunch")
        check_eq("QEMUMachine: cont", vm.qmp("cont"), {"return": {}})
        check_eq("QEMUMachine: query-name", vm.qmp("query-name")["return"], {"name": "qm-guest"})
        out = vm.command("human-monitor-command", command_line="info status")
        check_eq("QEMUMachine: HMP through QMP", out, "VM status: running\r\n")
        got = read_console(console, lambda b: b"B" in b, 20)
        check("QEMUMachine: console shows the guest's output ('A' then 'B's)",
              got[:1] == b"A" and b"B" in got, repr(got[:40]))
        check("QEMUMachine: migvm connected to the tool's monitor socket", "chardev=mon" in " ".join(vm._base_args))
    finally:
        vm.shutdown()
    check_eq("QEMUMachine: shutdown() exit code", vm.exitcode(), 0)
    check_eq("QEMUMachine: nothing on stdout/stderr", vm.get_log(), "")


def test_qemu_machine_isa_serial():
    """set_console(device_type="isa-serial"): the console as -device isa-serial,chardev=console."""
    vm = machine(ACCEL + ["-nodefaults", "-m", "64M", "-S"])
    vm.set_console(device_type="isa-serial")
    vm.launch()
    try:
        check("isa-serial: QEMUMachine passed -device isa-serial,chardev=console",
              "isa-serial,chardev=console" in vm._base_args, vm._base_args)
        console = vm.console_socket
        vm.qmp("cont")
        got = read_console(console, lambda b: b"B" in b, 20)
        check("isa-serial: console shows the guest's output", got[:1] == b"A" and b"B" in got, repr(got[:40]))
    finally:
        vm.shutdown()
    check_eq("isa-serial: shutdown() exit code", vm.exitcode(), 0)
    rc, out, err = run_cmd(ACCEL + ["-nodefaults", "-S", "-display", "none", "-chardev", "null,id=c",
                                    "-device", "isa-serial,chardev=c,iobase=0x2f8"])
    check("isa-serial: a second port's address is refused", rc == 1 and "iobase=0x2f8" in err, (rc, err))


def test_qemu_machine_options():
    """-S, -no-shutdown, -name, -pidfile, -no-user-config in any order with what QEMUMachine adds."""
    d = migvm.new_tmpdir()
    pidfile = os.path.join(d, "vm.pid")
    vm = machine(["-no-shutdown", "-pidfile", pidfile, "-S"] + ACCEL +
                 ["-no-user-config", "-name", "guest=opt,debug-threads=on", "-nodefaults"])
    vm.launch()
    try:
        check_eq("options: -S gives prelaunch", vm.qmp("query-status")["return"]["status"], "prelaunch")
        with open(pidfile) as f:
            check_eq("options: -pidfile holds the pid", int(f.read().strip()), vm.get_pid())
        check_eq("options: cont", vm.qmp("cont"), {"return": {}})
        check_eq("options: running after cont", vm.qmp("query-status")["return"]["status"], "running")
    finally:
        vm.shutdown()
    check_eq("options: exit code 0", vm.exitcode(), 0)
    check("options: pidfile removed", not os.path.exists(pidfile))


def test_daemonize_client_monitor():
    """-daemonize with the monitor connecting out to the tool, options mixed as QEMUMachine's user may."""
    d = migvm.new_tmpdir()
    path, pidfile = os.path.join(d, "tool.sock"), os.path.join(d, "vm.pid")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    try:
        rc, out, err = run_cmd(["-mon", "chardev=mon,mode=control", "-daemonize", "-S", "-name", "dz",
                                "-chardev", "socket,id=mon,path=%s" % path, "-pidfile", pidfile, "-no-shutdown"]
                               + ACCEL + ["-nodefaults", "-display", "none"])
        check_eq("-daemonize: parent exits 0", (rc, err), (0, ""))
        with open(pidfile) as f:
            pid = int(f.read().strip())
        migvm.track_pid(pid)
        conn, greeting = accept_greeting(listener, 10)
    finally:
        listener.close()
    check("-daemonize: the daemon connects to the tool's socket and greets", b'"QMP"' in greeting, greeting)
    conn.sendall(b'{"execute":"qmp_capabilities"}\n{"execute":"query-name"}\n{"execute":"quit"}\n')
    data = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    conn.close()
    check("-daemonize: QMP served (query-name dz)", b'{"return": {"name": "dz"}}' in data, data)
    check("-daemonize: quit ends the daemon", wait_until(lambda: not migvm.pid_alive(pid), 10), pid)
    check("-daemonize: pidfile removed", wait_until(lambda: not os.path.exists(pidfile), 5))


async def migrate_with_qmpclient(src_path, dst_path, uri):
    src, dst = QMPClient("src"), QMPClient("dst")
    await src.connect(src_path)
    await dst.connect(dst_path)
    names = {"src": [], "dst": []}
    try:
        with src.listener() as src_events, dst.listener() as dst_events:
            for c in (src, dst):
                await c.execute("migrate-set-capabilities",
                                {"capabilities": [{"capability": "events", "state": True}]})
            await src.execute("migrate-set-parameters", {"max-bandwidth": 1 << 30})
            await dst.execute("migrate-incoming", {"uri": uri})
            await src.execute("migrate", {"uri": uri})

            async def watch(listener, side, until):
                async for ev in listener:
                    data = ev.get("data", {})
                    names[side].append(ev["event"] + (":" + data["status"] if "status" in data else ""))
                    if until(ev):
                        return

            def done(ev):
                return ev["event"] == "MIGRATION" and ev["data"]["status"] in ("completed", "failed")


            try:
                await asyncio.wait_for(asyncio.gather(watch(src_events, "src", done),
                                                      watch(dst_events, "dst", done)), 60)
            except asyncio.TimeoutError:
                raise RuntimeError("events seen by then: %r" % names) from None
        info = await src.execute("query-migrate")
        dst_status = await dst.execute("query-status")
        src_status = await src.execute("query-status")
    finally:
        await src.disconnect()
        await dst.disconnect()
    return names, info, src_status, dst_status


def test_migration_qmpclient():
    d = migvm.new_tmpdir()
    for side in ("src", "dst"):
        os.makedirs(os.path.join(d, side))
    # The source's workload dirties 20 MiB/s: a live migration that converges in a few passes.
    src = VM(["-m", "64M", "-accel", "soft,dirty-rate=20"], tmpdir=os.path.join(d, "src"))
    dst = VM(["-m", "64M", "-accel", "soft", "-incoming", "defer"], tmpdir=os.path.join(d, "dst"))
    src.launch()
    dst.launch()
    uri = "unix:" + os.path.join(d, "mig.sock")
    names, info, src_status, dst_status = asyncio.run(migrate_with_qmpclient(src.qmp_path, dst.qmp_path, uri))
    check_eq("QMPClient migration: query-migrate completed", info["status"], "completed")
    check("QMPClient migration: source saw MIGRATION setup, active, completed and STOP",
          migvm_subsequence(["MIGRATION:setup", "MIGRATION:active", "STOP", "MIGRATION:completed"], names["src"]),
          names["src"])
    # As QEMU 7.2's destination: the guest resumes, then the migration completes.
    check("QMPClient migration: destination saw MIGRATION active, RESUME and completed",
          migvm_subsequence(["MIGRATION:active", "RESUME", "MIGRATION:completed"], names["dst"]), names["dst"])
    check_eq("QMPClient migration: source postmigrate", src_status["status"], "postmigrate")
    check_eq("QMPClient migration: destination running", dst_status["status"], "running")


def migvm_subsequence(sub, seq):
    it = iter(seq)
    return all(any(x == y for y in it) for x in sub)


def qmp_shell(args, lines, timeout=20):
    env = dict(os.environ, PYTHONPATH=os.path.join(QEMU_SRC, "python"))
    p = subprocess.run([sys.executable, os.path.join(QEMU_SRC, "scripts", "qmp", "qmp-shell")] + args,
                       input="".join(line + "\n" for line in lines).encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout, env=env)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def test_qmp_shell():
    vm = VM(["-S", "-name", "shell-vm"]).launch()
    rc, out = qmp_shell([vm.qmp_path], ["query-name", "cont", "query-status"])
    check_eq("qmp-shell: exit status", rc, 0)
    check("qmp-shell: greeted as QEMU 7.2", "Welcome to the QMP low-level shell!" in out and
          "Connected to QEMU 7.2.0" in out, out)
    check("qmp-shell: query-name answered", "{'return': {'name': 'shell-vm'}}" in out or
          '{"return": {"name": "shell-vm"}}' in out, out)
    check("qmp-shell: cont then query-status running", "'status': 'running'" in out or
          '"status": "running"' in out, out)
    rc, out = qmp_shell(["-H", vm.qmp_path], ["info status", "stop", "info status", "info name"])
    check_eq("qmp-shell -H: exit status", rc, 0)
    check("qmp-shell -H: HMP mode greeting", "Welcome to the HMP shell!" in out, out)
    check("qmp-shell -H: info status, stop, info status",
          "VM status: running" in out and "VM status: paused" in out, out)
    check("qmp-shell -H: info name", "shell-vm" in out, out)
    check_eq("qmp-shell: VM still up", vm.qmp().cmd_ok("query-status")["status"], "paused")


def test_libvirt_style():
    d = migvm.new_tmpdir()
    path = os.path.join(d, "monitor.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    fd = listener.fileno()
    console = os.path.join(d, "console.log")
    # The serial port as libvirt writes it: a chardev and a JSON -device.
    args = ["-name", "guest=lv,debug-threads=on", "-S", "-no-user-config", "-nodefaults", "-no-shutdown",
            "-chardev", "socket,id=charmonitor,fd=%d,server=on,wait=off" % fd,
            "-mon", "chardev=charmonitor,id=monitor,mode=control",
            "-chardev", "file,id=charserial0,path=%s" % console,
            "-device", '{"driver":"isa-serial","chardev":"charserial0","id":"serial0","index":0}']
    args += ACCEL + ["-m", "64M", "-display", "none"]
    vm = VM(args, qmp=False, defaults=False, pass_fds=(fd,), tmpdir=d).launch(wait_sockets=False)
    listener.close()          # migvm holds it now
    q = migvm.QMPClient.unix(path, timeout=10)
    vm.clients.append(q)
    q.negotiate()
    check_eq("libvirt-style: QMP on the inherited fd, prelaunch", q.cmd_ok("query-status")["status"], "prelaunch")
    check_eq("libvirt-style: -name guest=", q.cmd_ok("query-name"), {"name": "lv"})
    q.cmd_ok("cont")
    check_eq("libvirt-style: cont runs it", q.cmd_ok("query-status")["status"], "running")
    check("libvirt-style: the guest's output on the JSON -device's serial port",
          wait_until(lambda: read_file(console)[:1] == b"A" and b"B" in read_file(console), 20), read_file(console)[:40])
    r = q.cmd("quit")
    check_eq("libvirt-style: quit", r.get("return"), {})
    check_eq("libvirt-style: exit status 0", vm.wait_exit(10), 0)

    # An fd that is not a listening socket is refused with a clear message.
    r, w = os.pipe()
    rc, out, err = run_cmd(["-chardev", "socket,id=m,fd=%d,server=on,wait=off" % r, "-mon", "chardev=m,mode=control"]
                           + ACCEL + ["-nodefaults", "-S", "-display", "none"], pass_fds=(r,))
    check("libvirt-style: a pipe as fd= is refused", rc == 1 and "is not a socket" in err, (rc, err))
    os.close(r)
    os.close(w)


def read_file(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def test_serial_client_reconnect():
    """The serial port on a chardev that connects out: the same socket code as the monitors'."""
    d = migvm.new_tmpdir()
    path = os.path.join(d, "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    listener.settimeout(10)
    vm = VM(["-serial", "chardev:con", "-chardev", "socket,id=con,path=%s,reconnect=1" % path], tmpdir=d).launch()
    conn, _ = listener.accept()
    got = read_console(conn, lambda b: b"B" in b, 10)
    check("serial client: the tool's socket receives the guest's output", b"B" in got, repr(got[:40]))
    conn.close()
    check("serial client: the lost peer is reported",
          wait_until(lambda: "chardev 'con': peer unix:%s disconnected" % path in vm.stderr_text(), 10),
          vm.stderr_text())
    conn, _ = listener.accept()
    got = read_console(conn, lambda b: len(b) >= 3, 10)
    check("serial client: connected again, output flows", len(got) >= 3, repr(got[:40]))
    conn.close()
    listener.close()
    check_eq("serial client: VM still running", vm.qmp().cmd_ok("query-status")["status"], "running")


def shutdown_image(path):
    """A boot sector that asks for a guest shutdown at once (debug-exit port)."""
    code = bytes([0xb0, 0x21,              # mov al, 0x21
                  0xba, 0x01, 0x05,        # mov dx, 0x501
                  0xee,                    # out dx, al
                  0xf4, 0xeb, 0xfd])       # hlt; jmp $-1
    return migvm.write_boot_sector(path, code)


def test_no_shutdown():
    why = migvm.kvm_usable()
    if why:
        migvm.skip("-no-shutdown with a guest that shuts down", why)
        return
    d = migvm.new_tmpdir()
    img = shutdown_image(os.path.join(d, "shutdown.img"))
    vm = VM(["-no-shutdown", "-accel", "kvm", "-S", "-drive", "file=%s,format=raw" % img], tmpdir=d).launch()
    q = vm.qmp()
    q.cmd_ok("cont")
    ev = q.wait_event("SHUTDOWN", 20)
    check_eq("-no-shutdown: SHUTDOWN from the guest", ev and ev.get("data"), {"guest": True, "reason": "guest-shutdown"})
    check("-no-shutdown: the VM stops in run state shutdown",
          wait_until(lambda: q.cmd_ok("query-status")["status"] == "shutdown", 10), q.cmd_ok("query-status"))
    check("-no-shutdown: the process stays", vm.alive())
    q.cmd_ok("quit")
    check_eq("-no-shutdown: quit still exits, status 0", vm.wait_exit(10), 0)


def run_cmd(args, pass_fds=()):
    p = subprocess.run([migvm.binary()] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10, pass_fds=pass_fds)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def accept_greeting(listener, timeout):
    listener.settimeout(timeout)
    conn, _ = listener.accept()
    conn.settimeout(timeout)
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return conn, data


def test_client_reconnect():
    d = migvm.new_tmpdir()
    path = os.path.join(d, "tool.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    vm = VM(["-chardev", "socket,id=mon,path=%s,reconnect=1" % path, "-mon", "chardev=mon,mode=control", "-S"],
            qmp=False, tmpdir=d).launch(wait_sockets=False)
    conn, greeting = accept_greeting(listener, 10)
    check("reconnect: migvm connects out and greets", b'"QMP"' in greeting, greeting)
    conn.close()
    check("reconnect: the lost peer is reported on stderr",
          wait_until(lambda: "disconnected" in vm.stderr_text(), 10), vm.stderr_text())
    conn, greeting = accept_greeting(listener, 10)
    check("reconnect: migvm connects again with reconnect=1", b'"QMP"' in greeting, greeting)
    conn.sendall(b'{"execute":"qmp_capabilities"}\n{"execute":"query-status"}\n')
    data = b""
    deadline = time.monotonic() + 10
    while b"prelaunch" not in data and time.monotonic() < deadline:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    check("reconnect: the new connection serves QMP", b'"prelaunch"' in data, data)
    conn.close()
    listener.close()
    check("reconnect: migvm keeps running", vm.alive())

    # Without reconnect=, a tool that is not listening is an error at startup.
    rc, out, err = run_cmd(["-chardev", "socket,id=mon,path=%s" % os.path.join(d, "nobody.sock"),
                            "-mon", "chardev=mon,mode=control"] + ACCEL + ["-nodefaults", "-S", "-display", "none"])
    check("client: nobody listening is refused at startup", rc == 1 and "Failed to connect to" in err, (rc, err))


if __name__ == "__main__":
    migvm.require_binary()
    if migvm.qemu_mode():
        migvm.skip_all("migvm-specific: QEMU 7.2 is what these tools were written for")
    sections = [("QEMUMachine", test_qemu_machine), ("QEMUMachine isa-serial", test_qemu_machine_isa_serial),
                ("QEMUMachine options", test_qemu_machine_options),
                ("daemonize client monitor", test_daemonize_client_monitor),
                ("QMPClient migration", test_migration_qmpclient), ("qmp-shell", test_qmp_shell),
                ("libvirt-style", test_libvirt_style), ("client reconnect", test_client_reconnect),
                ("serial client reconnect", test_serial_client_reconnect), ("no-shutdown", test_no_shutdown)]
    for name, fn in sections:
        # Arguments pick sections by name (for debugging); none runs them all.
        if not sys.argv[1:] or any(a.lower() in name.lower() for a in sys.argv[1:]):
            run(name, fn)
    migvm.finish()
