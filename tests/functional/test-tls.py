"""TLS migration between two migvm processes (tls-creds-x509, tls-authz).

Certificates are made here with certtool (tlslib.py). Checked:
  objects:  object-add / object-del / HMP object_add / object_del / -object
            with QEMU 7.2's errors (missing files, sanity check, duplicate and
            bad ids, unknown objects); query-migrate-parameters shows the TLS
            parameters as strings, "" when unset.
  refusals: a wrong CA, an expired server certificate, a wrong host name, an
            unauthorized client name, and a plain (non-TLS) source: each fails
            the source with an error naming the cause, the destination prints
            its own reason and listens on, and the source guest keeps running.
  success:  x-migrate-check through TLS answers compatible; then a live migration of the soft workload through TLS with tls-authz
            (authz-list glob) onto a destination with -S: source and
            destination RAM byte-identical and the workload's memory rule
            holds; then `cont` and the guest runs on.
  resume:   a resumable precopy (x-resumable-precopy) over TLS paused with
            migrate-pause: the recovery connection is a new TLS session (a
            wrong host name refuses it, the source stays paused), then the
            resume completes with RAM identical.
"""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from migvm import (VM, check, check_eq, finish, free_tcp_port, new_tmpdir, qemu_mode,  # noqa: E402
                   require_binary, run, skip_all, wait_until)
from miglib import (MiB, check_memory_pattern, mig_info, pmemsave, query_status, serial_size,  # noqa: E402
                    start_vm, wait_mig_status, wait_serial_growth)
import tlslib  # noqa: E402

MEM_MB = 24
RATE = 20                  # MiB/s dirtied: converges quickly through TLS on a loaded machine
require_binary()
if qemu_mode():
    skip_all("needs migvm's soft accelerator workload")
TMP = new_tmpdir()
PKI = tlslib.make_pki(TMP)


def error_desc(resp):
    return resp.get("error", {}).get("desc", "")


def test_objects():
    vm = VM(["-M", "none", "-m", "4M", "-accel", "soft"], hmp=True).launch()
    q = vm.qmp()
    params = q.cmd_ok("query-migrate-parameters")
    check_eq("TLS parameters unset are empty strings",
             [params.get(k) for k in ("tls-creds", "tls-hostname", "tls-authz")], ["", "", ""])
    check_eq("object-add client creds", tlslib.add_creds(q, "tls0", "client", PKI.dir("src")), {"return": {}})
    check_eq("duplicate id", error_desc(tlslib.add_creds(q, "tls0", "client", PKI.dir("src"))),
             "attempt to add duplicate property 'tls0' to object (type 'container')")
    missing = os.path.join(TMP, "nowhere")
    check_eq("missing dir", error_desc(tlslib.add_creds(q, "t1", "client", missing)),
             "Unable to access credentials %s/ca-cert.pem: No such file or directory" % missing)
    check_eq("server endpoint needs server-cert.pem",
             error_desc(tlslib.add_creds(q, "t1", "server", PKI.dir("src"))),
             "Unable to access credentials %s/server-cert.pem: No such file or directory" % PKI.dir("src"))
    check_eq("sanity check: own certificate against another CA",
             error_desc(tlslib.add_creds(q, "t1", "client", PKI.dir("src-wrong-ca"))),
             "Our own certificate %s/client-cert.pem failed validation against %s/ca-cert.pem: "
             "The certificate hasn't got a known issuer" % (PKI.dir("src-wrong-ca"), PKI.dir("src-wrong-ca")))
    check_eq("sanity check: expired certificate",
             error_desc(tlslib.add_creds(q, "t1", "server", PKI.dir("dst-expired"))),
             "The server certificate %s/server-cert.pem has expired" % PKI.dir("dst-expired"))
    check_eq("sanity-check=false accepts it",
             tlslib.add_creds(q, "t1", "server", PKI.dir("dst-expired"), **{"sanity-check": False}),
             {"return": {}})
    check_eq("missing dir property", error_desc(q.cmd("object-add", {"qom-type": "tls-creds-x509", "id": "t2"})),
             "Missing 'dir' property value")
    check_eq("bad id", error_desc(tlslib.add_creds(q, "1x", "client", PKI.dir("src"))),
             "Parameter 'id' expects an identifier")
    check_eq("unknown type", error_desc(q.cmd("object-add", {"qom-type": "nosuch", "id": "x"})),
             "Parameter 'qom-type' does not accept value 'nosuch'")
    check_eq("authz-simple without identity",
             error_desc(q.cmd("object-add", {"qom-type": "authz-simple", "id": "a0"})),
             "Parameter 'identity' is missing")
    check_eq("authz-list rule without policy",
             error_desc(q.cmd("object-add", {"qom-type": "authz-list", "id": "a1", "rules": [{"match": "x"}]})),
             "Parameter 'rules[0].policy' is missing")
    check_eq("object-del", q.cmd("object-del", {"id": "t1"}), {"return": {}})
    check_eq("object-del again", error_desc(q.cmd("object-del", {"id": "t1"})), "object 't1' not found")
    check_eq("tls-creds set to any id (checked at connect time)",
             q.cmd("migrate-set-parameters", {"tls-creds": "nosuch", "tls-authz": "a", "tls-hostname": "h"}),
             {"return": {}})
    params = q.cmd_ok("query-migrate-parameters")
    check_eq("TLS parameters read back",
             [params.get(k) for k in ("tls-creds", "tls-hostname", "tls-authz")], ["nosuch", "h", "a"])
    with socket.socket() as listener:       # credentials are looked up once connected, as in QEMU 7.2
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        q.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % listener.getsockname()[1])
        wait_until(lambda: mig_info(q).get("status") == "failed", 10)
    info = mig_info(q)
    check_eq("unknown credentials fail the migration", info.get("error-desc"), "No TLS credentials with id 'nosuch'")
    check_eq("null clears tls-creds", q.cmd("migrate-set-parameters", {"tls-creds": None}), {"return": {}})
    check_eq("tls-creds is '' again", q.cmd_ok("query-migrate-parameters").get("tls-creds"), "")
    h = vm.hmp()
    check_eq("HMP object_add", h.cmd("object_add authz-list,id=l1,policy=deny,rules.0.match=*CN=x,"
                                     "rules.0.policy=allow,rules.0.format=glob"), "")
    check_eq("HMP object_add duplicate", h.cmd("object_add authz-simple,id=l1,identity=x"),
             "Error: attempt to add duplicate property 'l1' to object (type 'container')\r\n")
    check_eq("HMP object_add with on/off",
             h.cmd("object_add tls-creds-x509,id=h1,endpoint=client,dir=%s,verify-peer=off" % PKI.dir("src")), "")
    check_eq("HMP object_add, JSON with spaces (the rest of the line, as QEMU 7.2)",
             h.cmd('object_add {"qom-type": "authz-simple", "id": "j1", "identity": "CN=x"}'), "")
    check_eq("HMP object_del of it", h.cmd("object_del j1"), "")
    check_eq("HMP object_del", h.cmd("object_del l1"), "")
    check_eq("HMP object_del unknown", h.cmd("object_del l1"), "Error: object 'l1' not found\r\n")
    vm.kill()
    bad = VM(["-M", "none", "-m", "4M", "-accel", "soft", "-object",
              "tls-creds-x509,id=t,endpoint=client,dir=%s" % missing], qmp=False)
    bad.launch(wait_sockets=False)
    code = bad.wait_exit(10)
    check("-object with a missing dir stops migvm with the reason",
          code == 1 and "Unable to access credentials %s/ca-cert.pem" % missing in bad.stderr_text(),
          "exit %r: %s" % (code, bad.stderr_text()[-300:]))


def final_status(q, timeout):
    info = wait_mig_status(q, ("completed", "failed", "cancelled"), timeout)
    return (info or {}).get("status")


def dest(creds_dir, extra_objects=(), sanity=True):
    """A destination with -S and TLS server creds from the command line."""
    objs = ["-object", "tls-creds-x509,id=tls0,endpoint=server,dir=%s%s"
            % (creds_dir, "" if sanity else ",sanity-check=off")]
    for o in extra_objects:
        objs += ["-object", o]
    vm = start_vm("%dM" % MEM_MB, dirty_rate=RATE, incoming="defer", paused=True, extra=objs)
    q = vm.qmp()
    q.cmd_ok("migrate-set-parameters", **{"tls-creds": "tls0"})
    port = free_tcp_port()
    q.cmd_ok("migrate-incoming", uri="tcp:127.0.0.1:%d" % port)
    return vm, q, port


def refused(name, src, qs, dst, qd, port, src_text, dst_text, creds="good", hostname=""):
    qs.cmd_ok("migrate-set-parameters", **{"tls-creds": creds, "tls-hostname": hostname})
    before = len(dst.stderr_text())
    qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % port)
    status = final_status(qs, 20)
    desc = mig_info(qs).get("error-desc", "")
    check("%s: source fails naming the cause" % name, status == "failed" and src_text in desc,
          "%s: %r" % (status, desc))
    said = wait_until(lambda: dst_text in dst.stderr_text()[before:], 10)
    check("%s: destination reports the cause" % name, said, dst.stderr_text()[before:][-400:])
    check_eq("%s: source guest still running" % name, query_status(qs), "running")
    check("%s: source guest makes progress" % name, wait_serial_growth(src.serial_path, 10))
    check("%s: destination alive and listening" % name,
          dst.alive() and "socket-address" in mig_info(qd) and query_status(qd) == "inmigrate", mig_info(qd))


def test_migrations():
    src = start_vm("%dM" % MEM_MB, dirty_rate=RATE)
    qs = src.qmp()
    qs.cmd_ok("migrate-set-parameters", **{"max-bandwidth": 4 << 30})
    check_eq("source creds", tlslib.add_creds(qs, "good", "client", PKI.dir("src")), {"return": {}})
    check_eq("source creds trusting another CA",
             tlslib.add_creds(qs, "wrongca", "client", PKI.dir("src-wrong-ca"), **{"sanity-check": False}),
             {"return": {}})
    dst, qd, port = dest(PKI.dir("dst"), [
        "authz-simple,id=deny,identity=C=GB,,O=migvm test,,CN=somebody-else",
        # QEMU's JSON form, as libvirt writes -object
        '{"qom-type": "authz-list", "id": "allow", "policy": "deny", '
        '"rules": [{"match": "*CN=migvm-client", "policy": "allow", "format": "glob"}]}'])
    refused("wrong CA", src, qs, dst, qd, port, "The certificate hasn't got a known issuer", "CA is unknown",
            creds="wrongca")
    refused("wrong host name", src, qs, dst, qd, port, "Certificate does not match the hostname otherhost",
            "it asked for host name 'otherhost'", hostname="otherhost")
    qd.cmd_ok("migrate-set-parameters", **{"tls-authz": "deny"})
    refused("unauthorized client", src, qs, dst, qd, port, "Access was denied",
            "TLS x509 authz check for %s is denied" % tlslib.CLIENT_DN)
    # A source without TLS: the destination insists on a handshake.
    qs.cmd_ok("migrate-set-parameters", **{"tls-creds": ""})
    before = len(dst.stderr_text())
    qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % port)
    status = final_status(qs, 20)
    check_eq("plain source: fails", status, "failed")
    check("plain source: destination reports a failed handshake",
          wait_until(lambda: "TLS handshake failed" in dst.stderr_text()[before:], 10), dst.stderr_text()[-300:])
    check_eq("plain source: source guest running", query_status(qs), "running")

    exp, qe, eport = dest(PKI.dir("dst-expired"), sanity=False)
    refused("expired certificate", src, qs, exp, qe, eport, "The certificate has expired", "Certificate is expired")
    exp.kill()

    qd.cmd_ok("migrate-set-parameters", **{"tls-authz": "allow"})
    qs.cmd_ok("migrate-set-parameters", **{"tls-creds": "good", "tls-hostname": ""})
    r = qs.cmd("x-migrate-check", uri="tcp:127.0.0.1:%d" % port)
    check_eq("pre-flight check through TLS: compatible", r, {"return": {"compatible": True, "problems": []}})
    check("pre-flight check: destination still listening",
          "socket-address" in mig_info(qd) and query_status(qd) == "inmigrate", mig_info(qd))
    qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % port)
    status = final_status(qs, 60)
    check_eq("TLS migration completes", status, "completed")
    if status != "completed":
        print("# source: %r\n# destination: %s" % (mig_info(qs), dst.stderr_text()[-400:]))
        return
    wait_until(lambda: mig_info(qd).get("status") == "completed", 10)
    if not check_eq("destination completed, paused (-S)", (mig_info(qd).get("status"), query_status(qd)),
                    ("completed", "paused")):
        print("# destination: %r\n# its stderr: %s" % (mig_info(qd), dst.stderr_text()[-800:]))
    sdump = pmemsave(qs, os.path.join(src.dir, "src.mem"), 0, MEM_MB * MiB)
    ddump = pmemsave(qd, os.path.join(dst.dir, "dst.mem"), 0, MEM_MB * MiB)
    check("source and destination RAM byte-identical", sdump == ddump and len(sdump) == MEM_MB * MiB)
    ok, why = check_memory_pattern(ddump)
    check("destination memory consistent (%s)" % why, ok, why)
    qd.cmd_ok("cont")
    check("destination guest runs after cont", wait_serial_growth(dst.serial_path, 10),
          "serial %d bytes" % serial_size(dst.serial_path))


def test_resume():
    """A resumable precopy over TLS, paused and resumed: the recovery connection is a new TLS session
    (a wrong host name refuses it and the source stays paused), then the resume completes."""
    src = start_vm("%dM" % MEM_MB, dirty_rate=RATE)
    qs = src.qmp()
    check_eq("resume: source creds", tlslib.add_creds(qs, "good", "client", PKI.dir("src")), {"return": {}})
    check("resume: workload filled its RAM once", wait_serial_growth(src.serial_path, 10))
    qs.cmd_ok("stop")
    qs.cmd_ok("migrate-set-parameters", **{"tls-creds": "good", "max-bandwidth": 4 << 20})
    qs.cmd_ok("migrate-set-capabilities", capabilities=[{"capability": "x-resumable-precopy", "state": True}])
    dst, qd, port = dest(PKI.dir("dst"))
    qd.cmd_ok("migrate-set-capabilities", capabilities=[{"capability": "x-resumable-precopy", "state": True}])
    qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % port)
    wait_until(lambda: (mig_info(qs).get("ram") or {}).get("transferred", 0) > 4 << 20, 20)
    check_eq("resume: migrate-pause while active", qs.cmd("migrate-pause"), {"return": {}})
    paused = "x-precopy-paused"
    check("resume: both sides paused", wait_mig_status(qs, paused, 20) is not None and
          wait_mig_status(qd, paused, 20) is not None, (mig_info(qs), mig_info(qd)))
    newport = free_tcp_port()
    qd.cmd_ok("migrate-recover", uri="tcp:127.0.0.1:%d" % newport)
    before = len(dst.stderr_text())
    qs.cmd_ok("migrate-set-parameters", **{"tls-hostname": "otherhost", "max-bandwidth": 0})
    qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % newport, resume=True)
    check("resume: the recovery connection's certificate is checked (wrong host name refused)",
          wait_until(lambda: "Certificate does not match the hostname otherhost" in src.stderr_text()
                     and mig_info(qs).get("status") == paused, 20), src.stderr_text()[-300:])
    check("resume: the destination reports it and waits on",
          wait_until(lambda: "otherhost" in dst.stderr_text()[before:], 10), dst.stderr_text()[-300:])
    qs.cmd_ok("migrate-set-parameters", **{"tls-hostname": ""})
    qs.cmd_ok("migrate", uri="tcp:127.0.0.1:%d" % newport, resume=True)
    check_eq("resume: completes through a new TLS session", final_status(qs, 60), "completed")
    check_eq("resume: destination completed", (wait_mig_status(qd, ("completed", "failed"), 20) or {}).get("status"),
             "completed")
    sdump = pmemsave(qs, os.path.join(src.dir, "src.mem"), 0, MEM_MB * MiB)
    ddump = pmemsave(qd, os.path.join(dst.dir, "dst.mem"), 0, MEM_MB * MiB)
    check("resume: source and destination RAM byte-identical", sdump == ddump and len(sdump) == MEM_MB * MiB)
    src.kill()
    dst.kill()


run("objects and parameters", test_objects)
run("migrations", test_migrations)
run("resume", test_resume)
finish()
