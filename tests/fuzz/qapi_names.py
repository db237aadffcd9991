"""Command, member and enum names of the QAPI schema (qapi/*.json), for the
QMP and HMP seeds and dictionaries."""
import glob
import os

QAPI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "qapi")


def expressions(path):
    text = "\n".join(l for l in open(path).read().splitlines() if not l.lstrip().startswith("#"))
    out, depth, start, quoted = [], 0, 0, False
    for i, c in enumerate(text):
        if quoted:
            quoted = c != "'"
        elif c == "'":
            quoted = True
        elif c == "{":
            start = i if depth == 0 else start
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                out.append(eval(text[start:i + 1], {"true": True, "false": False}))
    return out


def schema():
    exprs = []
    for p in sorted(glob.glob(os.path.join(QAPI, "*.json"))):
        exprs += expressions(p)
    return exprs


def names():
    """(commands {name: data}, every member and enum value name)."""
    cmds, members = {}, set()
    for e in schema():
        if "command" in e:
            cmds[e["command"]] = e.get("data")
        for key in ("data", "base"):
            d = e.get(key)
            if isinstance(d, dict):
                members.update(k.lstrip("*") for k in d)
            elif isinstance(d, list):
                members.update(v if isinstance(v, str) else v.get("name", "") for v in d)
    return cmds, sorted(m for m in members if m)
