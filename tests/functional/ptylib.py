"""A process on a pseudo-terminal (its stdin, stdout and stderr), for the
tests of the interactive monitor (-monitor stdio): readline's editing,
history and completion, and HMP migrate's live progress line."""

import os
import re
import select
import subprocess
import time

import migvm


class Pty:
    def __init__(self, args, cwd=None):
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                     cwd=cwd or migvm.new_tmpdir())
        os.close(slave)
        migvm.track_pid(self.proc.pid)
        self.buf = b""

    def read_until(self, pattern, timeout=10.0):
        """Read until the regex (bytes) matches the accumulated output; return
        the output up to the end of the match (and keep the rest), or None
        at the deadline or once the process is gone and its output read."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf)
            if m:
                out, self.buf = self.buf[:m.end()], self.buf[m.end():]
                return out
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]:
                return None
            r, _, _ = select.select([self.master], [], [], min(remaining, 0.2))
            if r:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    data = b""
                if not data:
                    return None
                # The terminal's output processing (ONLCR) turns "\r\n" into "\r\r\n".
                self.buf = (self.buf + data).replace(b"\r\r\n", b"\r\n")

    def send(self, data):
        os.write(self.master, data)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.close(self.master)
        except OSError:
            pass
