#!/usr/bin/env python3
"""`make install PREFIX=DIR` and the manual page.

* installs bin/migvm, bin/migvm-stream (executable, the same files as the
  build's) and share/man/man1/migvm.1 (+ migvm-stream.1, a .so link to it);
* the installed binaries run (-version, --help);
* `man migvm` finds the installed page (man-db, MANPATH the prefix's);
* the page renders without groff warnings, has the sections a user looks
  for, documents every option `migvm -help` lists, every capability migvm
  accepts, and migvm-stream's exit statuses; the link renders the same page.
"""

import filecmp
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migvm import check, check_eq, finish, new_tmpdir, require_binary, run, run_migvm  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
BUILD = os.path.abspath(os.environ.get("BUILD", "build"))
STATE = {}


def render(path, cwd):
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", path], cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    # Plain text: no overstrikes or escape sequences.
    text = re.sub(r".\x08", "", p.stdout.decode("utf-8", "replace"))
    return p.returncode, re.sub(r"\x1b\[[0-9;]*m", "", text), p.stderr.decode("utf-8", "replace")


def test_install():
    prefix = os.path.join(new_tmpdir(), "prefix")
    # Under make check the flags of the outer make (SANITIZE=1, TSAN=1, OPT=...) must reach this one, or it
    # would mix objects built with other flags into BUILD; its jobserver's descriptors are not inherited.
    env = dict(os.environ)
    for k in ("MAKEFLAGS", "MFLAGS"):
        if k in env:
            env[k] = re.sub(r"\s*--jobserver-(auth|fds)=\S+", "", env[k])
    p = subprocess.run(["make", "-s", "--no-print-directory", "BUILD=" + BUILD, "PREFIX=" + prefix, "install"],
                       cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    if not check_eq("make install PREFIX=...: exit 0", p.returncode, 0):
        print(p.stderr.decode("utf-8", "replace")[-1000:])
        return
    for name in ("migvm", "migvm-stream"):
        path = os.path.join(prefix, "bin", name)
        check("bin/%s installed, executable, identical to the build's" % name,
              os.access(path, os.X_OK) and filecmp.cmp(path, os.path.join(BUILD, name), shallow=False))
    man = os.path.join(prefix, "share", "man", "man1")
    check("man1/migvm.1 installed, identical to docs/migvm.1, mode 644",
          filecmp.cmp(os.path.join(man, "migvm.1"), os.path.join(ROOT, "docs", "migvm.1"), shallow=False)
          and os.stat(os.path.join(man, "migvm.1")).st_mode & 0o777 == 0o644)
    out = subprocess.run([os.path.join(prefix, "bin", "migvm"), "-version"], stdout=subprocess.PIPE, timeout=10)
    check("installed migvm -version runs", out.returncode == 0 and b"migvm" in out.stdout, out)
    out = subprocess.run([os.path.join(prefix, "bin", "migvm-stream"), "--help"], stdout=subprocess.PIPE, timeout=10)
    check("installed migvm-stream --help runs", out.returncode == 0 and b"verify" in out.stdout, out)
    STATE["man"] = man


def test_man_page():
    man = STATE.get("man")
    if not man:
        check("the installed manual page exists", False, "make install failed")
        return
    rc, text, err = render("man1/migvm.1", os.path.dirname(man))
    check_eq("migvm.1 renders without groff warnings", (rc, err), (0, ""))
    rc2, text2, err2 = render("man1/migvm-stream.1", os.path.dirname(man))
    check("migvm-stream.1 (.so link) renders the same page", rc2 == 0 and text2 == text and not err2, err2)
    # What a user types: man finds the installed page in the prefix's man directory.
    env = dict(os.environ, MANPATH=os.path.dirname(man), MANPAGER="cat", MANWIDTH="80", LC_ALL="C.UTF-8")
    p = subprocess.run(["man", "migvm"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    shown = re.sub(r".\x08", "", p.stdout.decode("utf-8", "replace"))
    check("man migvm (MANPATH=PREFIX/share/man) shows the page", p.returncode == 0 and "MIGVM(1)" in shown
          and "migvm-stream - check a saved or piped migration stream" in shown,
          (p.returncode, p.stderr[-300:], shown[:300]))
    heads = [ln for ln in text.splitlines() if re.match(r"^[A-Z][A-Z ]+$", ln)]
    want = ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "MONITORS", "MIGRATION URIS", "CAPABILITIES",
            "EXIT STATUS", "THE STREAM CHECKER", "ENVIRONMENT"]
    check("sections %s" % ", ".join(want), all(w in heads for w in want), heads)
    flat = " ".join(text.split())
    rc, out, _ = run_migvm(["-help"])
    options = re.findall(r"^  (-[A-Za-z][\w-]*)", out, re.M)
    missing = [o for o in options if not re.search(r"(^|[\s,(])%s\b" % re.escape(o), flat)]
    check("every option of migvm -help (%d) is documented" % len(options), options and not missing,
          "missing %r" % missing)
    for uri in ("tcp:", "unix:", "fd:", "exec:", "file:"):
        check("migration URI %s documented" % uri, uri in flat)
    check("exit statuses of migvm-stream documented (0 valid, 1 not, 2 usage or read error)",
          re.search(r"0 the stream is valid, 1 it is not, 2 wrong usage or a read error", flat), flat[-2000:])


def test_capabilities_documented():
    """Every capability migvm accepts has an entry in the page."""
    man = STATE.get("man")
    if not man:
        return
    rc, text, _ = render("man1/migvm.1", os.path.dirname(man))
    flat = " ".join(text.split())
    section = flat[flat.find("CAPABILITIES"):flat.find("EXIT STATUS")]
    from migvm import VM
    vm = VM(["-M", "none", "-m", "4M"]).launch()
    q = vm.qmp()
    caps = [c["capability"] for c in q.cmd_ok("query-migrate-capabilities")]
    accepted = [c for c in caps if "return" in q.cmd("migrate-set-capabilities",
                                                      capabilities=[{"capability": c, "state": True}])
                and "return" in q.cmd("migrate-set-capabilities", capabilities=[{"capability": c, "state": False}])]
    vm.kill()
    missing = [c for c in accepted if c not in section]
    check("every capability migvm accepts (%s) is in CAPABILITIES" % ", ".join(accepted), accepted and not missing,
          "missing %r" % missing)


def main():
    require_binary()
    run("make install", test_install)
    run("manual page", test_man_page)
    run("capabilities", test_capabilities_documented)
    finish()


if __name__ == "__main__":
    main()
