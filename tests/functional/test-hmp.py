#!/usr/bin/python3
"""HMP end to end (hmp-migration.md sections 1, 2 and 6): over a UNIX socket
as socat users drive it, and `-monitor stdio` through a pseudo-terminal with
GNU readline (prompt, history with the up arrow, tab completion)."""

import os
import re
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
from migvm import VM, check, check_eq, run  # noqa: E402
from ptylib import Pty  # noqa: E402

ENTRY = re.compile(r"^(\S+) (.*?) ?-- (.+)$")
REQUIRED = ["cont|c", "help|?", "info", "quit|q", "stop|s", "system_reset"]
REQUIRED_INFO = ["cpus", "kvm", "name", "status", "version"]


def entries(text):
    """Help entries (lines not starting with whitespace), parsed."""
    joined = []
    for line in text.split("\r\n"):
        if not line:
            continue
        if joined and (" -- " not in joined[-1] or line[0] in " \t"):
            joined[-1] += " " + line.strip()       # usage or help text continued on the next line
        else:
            joined.append(line)
    return [(line, ENTRY.match(line)) for line in joined]


def crlf_only(text):
    return "\n" not in text.replace("\r\n", "")


def test_socket():
    vm = VM(["-S", "-name", "hmpvm", "-smp", "2"], hmp=True).launch()
    q = vm.qmp()
    h = vm.hmp()
    check("banner then prompt", re.fullmatch(rb"QEMU \d+\.\d+\.\d+ monitor - type 'help' for more information\r\n"
                                             rb"\(qemu\) ", h.banner) is not None, repr(h.banner))

    # help
    text = h.cmd("help")
    check("help output uses \\r\\n line ends", crlf_only(text) and text.endswith("\r\n"), repr(text[:200]))
    es = entries(text)
    bad = [line for line, m in es if m is None]
    check("help: every entry is `NAME PARAMS -- HELP`", es and not bad, repr(bad[:3]))
    names = [m.group(1) for _, m in es if m]
    check("help: entries sorted by name", names == sorted(names), repr(names))
    missing = [n for n in REQUIRED if n not in names]
    check("help lists cont|c, help|?, info, quit|q, stop|s, system_reset", not missing, "missing %r in %r" % (
        missing, names))
    stop_line = [line for line, m in es if m and m.group(1) == "stop|s"]
    check("help: a command without parameters has two spaces before --",
          stop_line and stop_line[0].startswith("stop|s  -- "), repr(stop_line))
    check_eq("? is help", h.cmd("?"), text)

    t = h.cmd("help stop")
    check("help stop: exactly its entry", re.fullmatch(r"stop\|s  -- .+\r\n", t) is not None, repr(t))
    t = h.cmd("help cont")
    check("help cont: exactly its entry", re.fullmatch(r"cont\|c \[-f\] -- .+\r\n", t) is not None, repr(t))
    t = h.cmd("help help")
    check("help help: [cmd] parameter", re.fullmatch(r"help\|\? \[cmd\] -- .+\r\n", t) is not None, repr(t))
    check_eq("help nosuchcmd", h.cmd("help nosuchcmd"), "unknown command: 'nosuchcmd'\r\n")

    t = h.cmd("help info")
    lines = [x for x in t.split("\r\n") if x]
    check("help info: every line is `info NAME PARAMS -- HELP`",
          lines and all(re.match(r"^info \S+ .*?-- .+$", x) for x in lines), repr(lines[:3]))
    info_names = [x.split()[1] for x in lines if x.startswith("info ")]
    check("help info: sorted", info_names == sorted(info_names), repr(info_names))
    missing = [n for n in REQUIRED_INFO if n not in info_names]
    check("help info lists cpus, kvm, name, status, version", not missing, "missing %r" % missing)
    check_eq("info alone prints the info help", h.cmd("info"), t)
    t2 = h.cmd("help info status")
    check("help info status: one entry", re.fullmatch(r"info status  -- .+\r\n", t2) is not None, repr(t2))

    # info
    v = q.cmd_ok("query-version")
    expect = "%d.%d.%d%s\r\n" % (v["qemu"]["major"], v["qemu"]["minor"], v["qemu"]["micro"], v["package"])
    check_eq("info version is query-version's triple and package", h.cmd("info version"), expect)
    check_eq("info status in prelaunch", h.cmd("info status"), "VM status: paused (prelaunch)\r\n")
    check_eq("info name", h.cmd("info name"), "hmpvm\r\n")
    kvm = q.cmd_ok("query-kvm")
    exp_kvm = "kvm support: %s\r\n" % (("enabled" if kvm["enabled"] else "disabled") if kvm["present"]
                                       else "not compiled")
    check_eq("info kvm (as QEMU: enabled/disabled when present)", h.cmd("info kvm"), exp_kvm)
    t = h.cmd("info cpus")
    cpus = re.findall(r"([* ]) CPU #(\d+): thread_id=(\d+)\r\n", t)
    check("info cpus: one `[*] CPU #N: thread_id=T` line per vCPU (-smp 2)",
          len(cpus) == 2 and "".join("%s CPU #%s: thread_id=%s\r\n" % c for c in cpus) == t, repr(t))
    if len(cpus) == 2:
        check_eq("info cpus: current CPU marked *, numbered 0 and 1", [(c[0], c[1]) for c in cpus],
                 [("*", "0"), (" ", "1")])
        check("info cpus: thread ids are threads of the process",
              all(os.path.isdir("/proc/%d/task/%s" % (vm.pid, c[2])) for c in cpus), repr(cpus))

    # run state commands and aliases
    check_eq("c prints nothing", h.cmd("c"), "")
    check_eq("info status after c", h.cmd("info status"), "VM status: running\r\n")
    check_eq("QMP agrees: running", q.cmd_ok("query-status")["status"], "running")
    check("QMP client got RESUME from HMP c", q.wait_event("RESUME", 5) is not None, repr(q.events))
    check_eq("s prints nothing", h.cmd("s"), "")
    check_eq("info status after s", h.cmd("info status"), "VM status: paused\r\n")
    check("QMP client got STOP from HMP s", q.wait_event("STOP", 5) is not None, repr(q.events))
    check_eq("cont prints nothing", h.cmd("cont"), "")
    check_eq("QMP agrees after cont", q.cmd_ok("query-status")["status"], "running")
    check_eq("stop prints nothing", h.cmd("stop"), "")
    check_eq("QMP agrees after stop", q.cmd_ok("query-status")["status"], "paused")
    check_eq("stop when paused prints nothing", h.cmd("stop"), "")
    h.cmd("c")
    q.clear_events()
    check_eq("system_reset prints nothing", h.cmd("system_reset"), "")
    ev = q.wait_event("RESET", 5)
    check("system_reset from HMP: RESET event", ev is not None, repr(q.events))
    if ev:
        check_eq("RESET reason from HMP", ev.get("data"), {"guest": False, "reason": "host-qmp-system-reset"})
    check_eq("running VM still running after system_reset", h.cmd("info status"), "VM status: running\r\n")

    # errors: printed, and the monitor goes on
    check_eq("unknown command", h.cmd("nosuchcmd"), "unknown command: 'nosuchcmd'\r\n")
    check_eq("unknown info subcommand", h.cmd("info nosuch"), "unknown command: 'info nosuch'\r\n")
    check_eq("stop with extra words", h.cmd("stop x"),
             'stop|s: extraneous characters at the end of line\r\nTry "help stop" for more information\r\n')
    check_eq("cont with extra words", h.cmd("cont now"),
             'cont|c: extraneous characters at the end of line\r\nTry "help cont" for more information\r\n')
    check_eq("info status with extra words", h.cmd("info status x"),
             'status: extraneous characters at the end of line\r\nTry "help info status" for more information\r\n')
    check_eq("VM still running after the refused commands", h.cmd("info status"), "VM status: running\r\n")
    check_eq("empty line prints nothing", h.cmd(""), "")
    check_eq("blank line prints nothing", h.cmd("    "), "")
    check_eq("leading and trailing blanks are ignored", h.cmd("   info   status   "), "VM status: running\r\n")
    t = h.cmd("x" * 600)
    check("600-character line: an error, not a crash", t.startswith("unknown command: 'x"), repr(t[:100]))
    t = h.cmd("\x01\x02\x7f\xff garbage")
    check("control bytes in a line: some output, monitor alive", vm.alive(), repr(t[:100]))
    check_eq("monitor still answers after the hostile lines", h.cmd("info status"), "VM status: running\r\n")

    # A second VM without -name: info name prints nothing.
    vm2 = VM([], hmp=True).launch()
    check_eq("info name without -name prints nothing", vm2.hmp().cmd("info name"), "")
    vm2.kill()

    # Reconnecting gives a new banner and prompt.
    h.close()
    h2 = vm.hmp()
    check("reconnect: banner again", h2.banner.endswith(b"(qemu) "), repr(h2.banner))
    check_eq("reconnect: commands work", h2.cmd("info status"), "VM status: running\r\n")

    # q: the monitor stops and the process exits
    h2.sock.sendall(b"q\n")
    check("q closes the monitor connection", h2.wait_eof(10))
    check_eq("q: process exits with status 0", vm.wait_exit(10), 0)
    check("q: HMP socket file removed", not os.path.exists(vm.hmp_path))
    check("q: QMP client saw SHUTDOWN", q.wait_event("SHUTDOWN", 5) is not None, repr(q.events))


def test_socket_hostile():
    """HMP socket input is as untrusted as QMP's: long lines, binary, abrupt
    disconnects.  Each time the monitor answers the next command."""
    vm = VM([], hmp=True).launch()
    h = vm.hmp()
    # QEMU reads and echoes byte by byte (far too slow for 1 MiB): a smaller line there.
    size = 8 << 10 if migvm.qemu_mode() else 1 << 20
    t = h.cmd("y" * size, timeout=30)
    check("%d KiB line: an error, the monitor goes on" % (size >> 10), "unknown command" in t and vm.alive(), repr(t[:80]))
    check_eq("after the long line", h.cmd("info status"), "VM status: running\r\n")
    h.cmd(bytes(range(0x7f, 0x100)))   # (control characters are line-editing keys for QEMU's readline)
    check_eq("after non-ASCII bytes in a line", h.cmd("info status"), "VM status: running\r\n")
    h.cmd(b"\x00\x00info status\x00")
    check_eq("after NUL bytes", h.cmd("info status"), "VM status: running\r\n")
    h.cmd('help "unterminated')
    check_eq("after an unterminated quote", h.cmd("info status"), "VM status: running\r\n")
    h.close()
    for i in range(50):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        try:
            migvm.unix_connect(s, vm.hmp_path)
            if i % 2:
                s.sendall(b"info sta")      # half a command, then gone
        except OSError:
            pass
        s.close()
    check("50 abrupt HMP disconnects: process alive", vm.alive(), vm.stderr_text()[-300:])
    h = vm.hmp()
    check_eq("a new HMP client is served after the disconnects", h.cmd("info status"), "VM status: running\r\n")


def test_quit_long_name():
    vm = VM([], hmp=True).launch()
    h = vm.hmp()
    h.sock.sendall(b"quit\n")
    check("quit closes the monitor connection", h.wait_eof(10))
    check_eq("quit: process exits with status 0", vm.wait_exit(10), 0)


# ---------------------------------------------------------------------------
# -monitor stdio on a pseudo-terminal

def test_stdio_pty():
    d = migvm.new_tmpdir()
    qsock = os.path.join(d, "qmp.sock")
    args = [migvm.binary()] + migvm._adapt_args(["-display", "none", "-nodefaults", "-accel", "soft", "-S",
                                                 "-name", "histvm-7", "-monitor", "stdio",
                                                 "-qmp", "unix:%s,server=on,wait=off" % qsock])
    p = Pty(args)
    try:
        out = p.read_until(rb"\(qemu\) ")
        check("stdio: banner and (qemu) prompt on the terminal", out is not None and b"monitor" in out, repr(p.buf))
        if out is None:
            return
        p.send(b"info status\r")
        out = p.read_until(rb"VM status: [^\r\n]*\r\n[\s\S]*?\(qemu\) ")
        check("stdio: info status answers", out is not None and b"VM status: paused (prelaunch)\r\n" in out,
              repr(p.buf[-300:]))
        p.send(b"info name\r")
        out = p.read_until(rb"histvm-7\r\n[\s\S]*?\(qemu\) ")
        check("stdio: info name answers", out is not None, repr(p.buf[-300:]))
        # History: up arrow recalls `info name`, Enter runs it again.
        p.send(b"\x1b[A")
        p.send(b"\r")
        out = p.read_until(rb"histvm-7\r\n[\s\S]*?\(qemu\) ")
        check("stdio: up arrow + Enter re-runs the last command", out is not None, repr(p.buf[-300:]))
        # Up twice reaches `info status`.
        p.send(b"\x1b[A\x1b[A\x1b[A\r")
        out = p.read_until(rb"VM status: [^\r\n]*\r\n[\s\S]*?\(qemu\) ")
        check("stdio: up arrow walks back through the history", out is not None, repr(p.buf[-300:]))
        # Tab completion of a command name: "inf" + TAB -> "info ".
        p.send(b"inf\t")
        p.send(b"name\r")
        out = p.read_until(rb"(histvm-7|unknown command)[^\r\n]*\r\n[\s\S]*?\(qemu\) ")
        check("stdio: TAB completes `inf` to `info `", out is not None and b"histvm-7\r\n" in out,
              "%r (process status %s)" % (out or p.buf[-300:], p.proc.poll()))
        # Tab completion of an info subcommand.
        p.send(b"info ver\t\r")
        out = p.read_until(rb"(\r\n\d+\.\d+\.\d+|unknown command)[^\r\n]*\r\n[\s\S]*?\(qemu\) ")
        check("stdio: TAB completes `info ver` to `info version`", out is not None and b"unknown" not in out,
              "%r (process status %s)" % (out or p.buf[-300:], p.proc.poll()))
        # Two TABs list the candidates.
        p.send(b"info \t\t")
        out = p.read_until(rb"version", timeout=5)
        check("stdio: TAB TAB after `info ` lists the subcommands", out is not None and b"status" in out,
              repr(p.buf[-300:]))
        p.send(b"\x15\r")            # kill the line, empty command
        p.read_until(rb"\(qemu\) ", timeout=5)
        p.send(b"info mig\t_cap\t\r")
        out = p.read_until(rb"(xbzrle: |unknown command)[\s\S]*?\(qemu\) ")
        check("stdio: `info mig` TAB `_cap` TAB completes to info migrate_capabilities",
              out is not None and b"xbzrle: " in out, "%r (process status %s)" % (out or p.buf[-300:], p.proc.poll()))
        died = migvm.wait_until(lambda: p.proc.poll() is not None, 0.5)
        if not check("stdio: process survived the completion requests", not died,
                     "exit status %s" % p.proc.poll()):
            return
        # Commands change state through the terminal too.
        p.send(b"c\r")
        p.read_until(rb"\(qemu\) ")
        qc = migvm.QMPClient.unix(qsock)
        qc.negotiate()
        check_eq("stdio: c from the terminal runs the VM", qc.cmd_ok("query-status")["status"], "running")
        qc.close()
        p.send(b"nosuchcmd\r")
        out = p.read_until(rb"unknown command: 'nosuchcmd'\r\n[\s\S]*?\(qemu\) ")
        check("stdio: unknown command reported, prompt comes back", out is not None, repr(p.buf[-300:]))
        p.send(b"q\r")
        try:
            rc = p.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        check_eq("stdio: q exits with status 0", rc, 0)
    finally:
        p.close()


def main():
    migvm.require_binary()
    run("HMP over a socket", test_socket)
    run("HMP hostile input", test_socket_hostile)
    run("HMP quit", test_quit_long_name)
    run("HMP on stdio (pty)", test_stdio_pty)
    migvm.finish()


if __name__ == "__main__":
    main()
