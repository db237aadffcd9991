"""Two network namespaces joined by a veth pair, for migrations that cross a
real (if virtual) link the tests can slow down, make lossy or cut.

    with Link() as link:
        vm = start_vm(..., launch=False); link.run_in(vm, "a"); vm.launch()
        link.shape("a", "200mbit")     # tc tbf on a's side (a -> b traffic)
        link.lose(2)                   # nftables: 2 % of packets dropped each way
        link.cut()                     # every packet dropped each way

Addresses exist only inside the namespaces (10.254.N.1 in "a", .2 in "b"),
so nothing on the host's own network changes; everything is removed on
exit, and stale namespaces of dead test processes are removed first.
This kernel has no netem: loss is an nftables `numgen random` rule and a
slow link is a tbf qdisc. Needs root, `ip`, `tc` and `nft`
(scripts/install-deps.sh); available() says why not when it cannot run.
"""

import os
import re
import shutil
import subprocess

PREFIX = "migvm-t"


def _run(*args, check=True):
    return subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=check)


def available():
    """None when namespaces can be made here, else the reason."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc", "nft"):
        if not shutil.which(tool):
            return "%s is not installed (scripts/install-deps.sh installs it)" % tool
    name = "%s-probe-%d" % (PREFIX, os.getpid())
    r = _run("ip", "netns", "add", name, check=False)
    if r.returncode:
        return "ip netns add failed: %s" % r.stderr.strip()
    _run("ip", "netns", "del", name, check=False)
    return None


def _remove_stale():
    """Namespaces left by test processes that died without cleaning up."""
    r = _run("ip", "netns", "list", check=False)
    for line in r.stdout.splitlines():
        m = re.match(r"(%s-[ab]-(\d+))\b" % PREFIX, line)
        if m and not os.path.exists("/proc/%s" % m.group(2)):
            _run("ip", "netns", "del", m.group(1), check=False)


class Link:
    def __init__(self):
        pid = os.getpid()
        self.ns = {"a": "%s-a-%d" % (PREFIX, pid), "b": "%s-b-%d" % (PREFIX, pid)}
        self.dev = {"a": "mvt%da" % (pid % 100000), "b": "mvt%db" % (pid % 100000)}
        net = 1 + pid % 250
        self.addr = {"a": "10.254.%d.1" % net, "b": "10.254.%d.2" % net}

    def __enter__(self):
        _remove_stale()
        for side in "ab":
            _run("ip", "netns", "add", self.ns[side])
        try:
            _run("ip", "link", "add", self.dev["a"], "netns", self.ns["a"], "type", "veth",
                 "peer", "name", self.dev["b"], "netns", self.ns["b"])
            for side in "ab":
                self.ip(side, "addr", "add", self.addr[side] + "/24", "dev", self.dev[side])
                self.ip(side, "link", "set", self.dev[side], "up")
                self.ip(side, "link", "set", "lo", "up")
                self.nft(side, "add table inet migvmt")
                self.nft(side, "add chain inet migvmt in { type filter hook input priority 0 ; policy accept ; }")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for side in "ab":
            _run("ip", "netns", "del", self.ns[side], check=False)   # takes the veth pair with it

    def exec_prefix(self, side):
        return ["ip", "netns", "exec", self.ns[side]]

    def ip(self, side, *args):
        return _run(*(self.exec_prefix(side) + ["ip"] + list(args)))

    def nft(self, side, rule):
        return _run(*(self.exec_prefix(side) + ["nft", rule]))

    def run_in(self, vm, side):
        """Make a not yet launched migvm VM start inside namespace `side`."""
        vm.args = self.exec_prefix(side) + vm.args

    def uri(self, side, port):
        return "tcp:%s:%d" % (self.addr[side], port)

    def shape(self, side, rate, burst="256kb", latency="100ms"):
        """tbf on `side`'s veth: what leaves that side goes at `rate`."""
        _run(*(self.exec_prefix(side) + ["tc", "qdisc", "replace", "dev", self.dev[side], "root", "tbf",
                                         "rate", rate, "burst", burst, "latency", latency]))

    def lose(self, percent):
        """Drop `percent` % of the packets arriving on each side, at random."""
        for side in "ab":
            self.nft(side, "add rule inet migvmt in iifname %s numgen random mod 100 < %d counter drop"
                     % (self.dev[side], percent))

    def cut(self):
        """Drop every packet on the link, both ways (a cable pulled somewhere
        between the hosts: neither side gets an error, only silence)."""
        for side in "ab":
            self.nft(side, "insert rule inet migvmt in iifname %s counter drop" % self.dev[side])

    def dropped(self):
        """Packets the loss/cut rules dropped so far (both sides)."""
        total = 0
        for side in "ab":
            out = self.nft(side, "list chain inet migvmt in").stdout
            total += sum(int(n) for n in re.findall(r"counter packets (\d+)", out))
        return total
