"""A TCP proxy that tests put between a migration's source and destination
to freeze or cut the connection (test-migration-resume.py,
test-postcopy-recovery.py)."""

import socket
import threading


class _Relay:
    """What both proxies share: the sockets they carry, closed by cut()."""

    def cut(self):
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.cut()
        self.lsock.close()


class Proxy(_Relay):
    """Forwards TCP connections to target_port; cut() closes both ends of
    every connection it carries. With freeze_at, it stops forwarding from the
    source once that many bytes went through: the source then blocks on a full
    socket, so the migration cannot end before the test cuts it."""

    def __init__(self, target_port, freeze_at=None):
        self.target = ("127.0.0.1", target_port)
        self.freeze_at = freeze_at
        self.forwarded = 0
        self.frozen = threading.Event()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4)
        self.port = self.lsock.getsockname()[1]
        self.socks = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                a, _ = self.lsock.accept()
            except OSError:
                return
            b = socket.create_connection(self.target)
            with self.lock:
                self.socks += [a, b]
            for s, d, forward in ((a, b, True), (b, a, False)):
                threading.Thread(target=self._pump, args=(s, d, forward), daemon=True).start()

    def _pump(self, s, d, forward):
        try:
            while True:
                data = s.recv(1 << 16)
                if not data:
                    break
                if forward and self.freeze_at is not None:
                    data = data[:max(0, self.freeze_at - self.forwarded)]
                    self.forwarded += len(data)
                    if self.forwarded >= self.freeze_at:
                        d.sendall(data)
                        self.frozen.set()
                        return          # the rest stays in the socket; cut() closes it
                d.sendall(data)
        except OSError:
            pass
        for x in (s, d):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass



class DeafProxy(_Relay):
    """Forwards one TCP connection to a UNIX socket at dest_path. Just before
    it forwards the first occurrence of `marker` from the source, and once
    the destination has sent `after_reply`, it stops reading from the
    destination with shutdown(SHUT_RD): on a UNIX socket the destination's
    next write then fails (EPIPE) while its reads still work, so a write
    breaks before any read does. Nothing goes back to the source from then
    on; cut() closes both ends."""

    def __init__(self, dest_path, marker, after_reply):
        self.dest_path = dest_path
        self.marker = marker
        self.after_reply = after_reply
        self.replied = threading.Event()
        self.deaf = threading.Event()
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        self.socks = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        try:
            a, _ = self.lsock.accept()
        except OSError:
            return
        b = socket.socket(socket.AF_UNIX)
        b.connect(self.dest_path)
        with self.lock:
            self.socks += [a, b]
        threading.Thread(target=self._forward, args=(a, b), daemon=True).start()
        threading.Thread(target=self._backward, args=(b, a), daemon=True).start()

    @staticmethod
    def _scan(tail, data, pattern):
        """Where pattern starts in tail + data (-1 if not there), and the
        new tail: a pattern may straddle two reads."""
        window = tail + data
        return window.find(pattern), window[-(len(pattern) - 1):]

    def _forward(self, s, d):
        tail = b""
        try:
            while True:
                data = s.recv(1 << 16)
                if not data:
                    break
                if not self.deaf.is_set():
                    at, new_tail = self._scan(tail, data, self.marker)
                    if at >= 0:
                        head = max(0, at - len(tail))
                        d.sendall(data[:head])
                        if not self.replied.wait(20):
                            break
                        d.shutdown(socket.SHUT_RD)
                        self.deaf.set()
                        data = data[head:]
                    tail = new_tail
                d.sendall(data)
        except OSError:
            pass

    def _backward(self, s, d):
        tail = b""
        try:
            while True:
                data = s.recv(1 << 16)
                if not data or self.deaf.is_set():
                    break
                if not self.replied.is_set():
                    at, tail = self._scan(tail, data, self.after_reply)
                    if at >= 0:
                        self.replied.set()
                d.sendall(data)
        except OSError:
            pass
