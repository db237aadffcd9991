#!/usr/bin/env python3
"""TLS migration between migvm and the real QEMU 7.2, both ways, -M none.

Certificates are made by the test with certtool (tests/functional/tlslib.py);
both implementations load the same directories (QEMU 7.2's file names). A QEMU
source holds a known image (`-device loader`: 3 MiB of random bytes and a page
at the top of RAM) and migrates over TLS to migvm, which migrates it on over
TLS to another QEMU. At each hop both sides complete and the destination's
whole RAM (pmemsave) equals the image. Chains:
  tcp        the host name checked is the URI's (127.0.0.1, in the server
             certificate's SAN); the migvm destination checks the QEMU
             client's DN with tls-authz (authz-list, exact match).
  unix+multifd  2 multifd channels, each its own TLS session; unix has no
             host, so both sources set tls-hostname=localhost.
And a unix migration without tls-hostname fails on both implementations with
QEMU 7.2's words: `No hostname for certificate validation`.
"""

import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qemulib  # noqa: E402
from migvm import check, check_eq, finish, new_tmpdir, run  # noqa: E402
import tlslib  # noqa: E402

qemulib.require_qemu_and_migvm()
TMP = new_tmpdir()
PKI = tlslib.make_pki(TMP)
RAM = 8 << 20
PAGE = 4096
LOADS = [(1 << 20, random.Random(21).randbytes(3 << 20)), (RAM - PAGE, random.Random(22).randbytes(PAGE))]
PATTERN = qemulib.Pattern(LOADS, RAM, TMP)


def object_add(q, args):
    r = q.cmd("object-add", args)
    if r != {"return": {}}:
        raise RuntimeError("object-add %r: %r" % (args, r))


def setup_tls(q, caps, authz=None):
    """Both creds on every VM: server for incoming, client for outgoing."""
    object_add(q, {"qom-type": "tls-creds-x509", "id": "tls-in", "endpoint": "server", "dir": PKI.dir("dst")})
    object_add(q, {"qom-type": "tls-creds-x509", "id": "tls-out", "endpoint": "client", "dir": PKI.dir("src")})
    if authz:
        object_add(q, {"qom-type": "authz-list", "id": "auth0", "policy": "deny",
                       "rules": [{"match": authz, "policy": "allow", "format": "exact"}]})
    qemulib.set_caps(q, **{c: True for c in caps})


def hop(name, src, qs, dst_kind, transport, caps, hostname, authz):
    dst, qd = qemulib.start_negotiated(dst_kind, ["-incoming", "defer"], ram=RAM)
    setup_tls(qd, caps, authz=authz if dst_kind == "migvm" else None)
    params = {"tls-creds": "tls-in"}
    if authz and dst_kind == "migvm":
        params["tls-authz"] = "auth0"
    qd.cmd_ok("migrate-set-parameters", **params)
    qs.cmd_ok("migrate-set-parameters", **{"tls-creds": "tls-out", "tls-hostname": hostname})
    qemulib.migrate_deferred(qs, qd, qemulib.migration_uri(transport, TMP, name))
    sinfo, _, ok = qemulib.check_completed(name, src, qs, dst, qd, timeout=60)
    if not ok:
        return dst, qd, False
    if caps and src.kind == "migvm":
        mb = (sinfo.get("ram") or {}).get("multifd-bytes", 0)
        check("%s: pages went through the multifd channels" % name, mb >= len(LOADS[0][1]), "multifd-bytes %d" % mb)
    PATTERN.check_ram("%s: destination RAM is the image" % name, dst, qd)
    return dst, qd, True


def chain(transport, caps, hostname):
    label = "%s%s" % (transport, "+" + ",".join(caps) if caps else "")
    src, qs = PATTERN.start_source()
    setup_tls(qs, caps)
    mid, qm, ok = hop("%s qemu>migvm" % label, src, qs, "migvm", transport, caps, hostname, tlslib.CLIENT_DN)
    if ok:
        hop("%s migvm>qemu" % label, mid, qm, "qemu", transport, caps, hostname, None)


def no_hostname():
    for kind in ("qemu", "migvm"):
        dst, qd = qemulib.start_negotiated("migvm", ["-incoming", "defer"], ram=RAM)
        setup_tls(qd, [])
        qd.cmd_ok("migrate-set-parameters", **{"tls-creds": "tls-in"})
        src, qs = qemulib.start_negotiated(kind, ["-S"], ram=RAM)
        setup_tls(qs, [])
        qs.cmd_ok("migrate-set-parameters", **{"tls-creds": "tls-out"})
        qemulib.migrate_deferred(qs, qd, qemulib.migration_uri("unix", TMP, "nohost-" + kind))
        info = qemulib.wait_migration(qs, 20) or {}
        check_eq("%s source over unix without tls-hostname" % kind,
                 (info.get("status"), info.get("error-desc")), ("failed", "No hostname for certificate validation"))


run("tcp chain", chain, "tcp", [], "")
run("unix multifd chain", chain, "unix", ["multifd"], "localhost")
run("no host name", no_hostname)
finish()
