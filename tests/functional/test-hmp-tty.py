#!/usr/bin/env python3
"""HMP `migrate` without -d on the interactive console (-monitor stdio on a
pseudo-terminal, so readline drives it): a live progress line, rewritten in
place ("\\r", the line, erase to its end) with percent, bytes sent, rate,
remaining and expected downtime, then replaced by the outcome with the
total time and downtime query-migrate reports. (On a socket the same
command prints nothing, as QEMU 7.2: test-hmp-migration.py.)
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import migvm  # noqa: E402
from migvm import check, check_eq, finish, require_binary, run  # noqa: E402
from miglib import mig_info, serial_size, start_vm, wait_until  # noqa: E402
from ptylib import Pty  # noqa: E402

PROGRESS = (rb"\rmigration: active +(\d+)%, \d+ kbytes sent, \d+\.\d\d mbps, remaining \d+ kbytes, "
            rb"expected downtime \d+ ms, pass \d+\x1b\[K")


def test_live_progress():
    # The source's monitor is on the terminal; QMP on a socket for the checks.
    src = start_vm("64M", extra=["-monitor", "stdio"], launch=False)
    qsock = src.qmp_path
    dst = start_vm("64M", incoming="unix:" + os.path.join(src.dir, "mig.sock"))
    dst.qmp()
    p = Pty(src.args, src.dir)
    try:
        check("banner and prompt on the terminal", p.read_until(rb"\(qemu\) ") is not None, p.buf[-300:])
        check("QMP socket up", wait_until(lambda: os.path.exists(qsock), 10))
        q = migvm.QMPClient.unix(qsock)
        q.negotiate()
        # Let the workload fill the memory, then stop it: 64 MiB at 32 MiB/s, about 2 s.
        check("guest workload ran", wait_until(lambda: serial_size(src.serial_path) >= 2, 20))
        for line in (b"stop\r", b"migrate_set_parameter max-bandwidth 32M\r"):
            p.send(line)
            p.read_until(rb"\(qemu\) ")
        p.send(b"migrate unix:%s\r" % os.path.join(src.dir, "mig.sock").encode())
        out = p.read_until(rb"migration: [a-z]+[^\r\n]*\r\n[\s\S]*?\(qemu\) ", timeout=60)
        check("migrate returns with an outcome line", out is not None, p.buf[-500:])
        if out is None:
            return
        info = mig_info(q)
        updates = [int(m.group(1)) for m in re.finditer(PROGRESS, out)]
        check("the progress line was updated several times (%d)" % len(updates), len(updates) >= 3, out[-600:])
        check("percent grows to more than half", updates == sorted(updates) and updates and updates[-1] >= 50, updates)
        first = re.search(PROGRESS, out)
        tail = out[first.start():] if first else b""
        end = re.search(rb"\r\x1b\[Kmigration: completed, total time (\d+) ms, downtime (\d+) ms\r\n", tail)
        check("rewritten in place: no line end until the outcome replaces it",
              end is not None and b"\n" not in tail[:end.start()], tail[-400:])
        if end:
            check_eq("outcome: total time and downtime as query-migrate",
                     (int(end.group(1)), int(end.group(2))), (info.get("total-time"), info.get("downtime")))
        p.send(b"info status\r")
        check("the console answers again", p.read_until(rb"VM status: paused \(postmigrate\)\r\n") is not None,
              p.buf[-300:])
    finally:
        p.close()


if __name__ == "__main__":
    require_binary()
    run("live progress on a terminal", test_live_progress)
    finish()
