"""The ring-3 test guest's serial protocol (guest/ring3/user.c documents it)."""
import os
import re

BUILD = os.environ.get("BUILD", "build")
IMAGE = os.path.abspath(os.path.join(BUILD, "guest", "ring3-guest.img"))
MEM = "256M"
COUNTERS = ("pit", "lapic", "sirq", "pages", "verified", "kvmclock")
STATUS_RE = re.compile(rb"^seq=\d+( \w+=\d+)*$")


def parse(data):
    """(status dicts, damage lines, other lines) of a serial stream's complete
    lines (a trailing partial line is left out). Damage: ERROR and FATAL lines."""
    status, damage, other = [], [], []
    for line in data.split(b"\n")[:-1]:
        if STATUS_RE.match(line):
            status.append({k.decode(): int(v) for k, v in (kv.split(b"=") for kv in line.split())})
        elif line.startswith(b"ERROR") or b"FATAL" in line:
            damage.append(line.decode(errors="replace"))
        else:
            other.append(line.decode(errors="replace"))
    return status, damage, other
