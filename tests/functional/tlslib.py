"""TLS test certificates made with certtool (gnutls-bin), the file layout
tls-creds-x509 expects (QEMU 7.2's names), and object-add helpers.

    pki = tlslib.make_pki(tmpdir)      # fails the test when certtool is missing
    pki.dir("dst")                     # ca-cert.pem server-cert.pem server-key.pem
    pki.dir("src")                     # ca-cert.pem client-cert.pem client-key.pem

Directories (each a complete `dir=` for one endpoint):
  dst           the server: certificate for localhost / 127.0.0.1
  src           the client: CN=migvm-client, DN "C=GB,O=migvm test,CN=migvm-client"
  src-wrong-ca  the client trusting another CA (add it with sanity-check=false)
  dst-expired   a server certificate that expired in 2020 (sanity-check=false)
ECDSA keys keep generation fast (well under a second for all of them).
"""

import os
import shutil
import subprocess

from migvm import fail_all

CLIENT_DN = "C=GB,O=migvm test,CN=migvm-client"

CA = """cn = migvm test CA
ca
cert_signing_key
expiration_days = 3650
"""
OTHER_CA = CA.replace("migvm test CA", "some other CA")
SERVER = """organization = migvm test
cn = localhost
dns_name = localhost
ip_address = 127.0.0.1
tls_www_server
encryption_key
signing_key
expiration_days = 3650
"""
EXPIRED_SERVER = SERVER.replace("expiration_days = 3650\n",
                                'activation_date = "2019-01-01 00:00:00"\n'
                                'expiration_date = "2020-01-01 00:00:00"\n')
CLIENT = """country = GB
organization = migvm test
cn = migvm-client
tls_www_client
encryption_key
signing_key
expiration_days = 3650
"""


class Pki:
    def __init__(self, root):
        self.root = root

    def dir(self, name):
        return os.path.join(self.root, name)


def _certtool(args, cwd):
    r = subprocess.run(["certtool"] + args, cwd=cwd, capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError("certtool %s: %s" % (" ".join(args), r.stderr.strip()[-300:]))


def _key(cwd, name):
    _certtool(["--generate-privkey", "--key-type", "ecdsa", "--outfile", name], cwd)


def _template(cwd, name, text):
    with open(os.path.join(cwd, name), "w") as f:
        f.write(text)


def _signed(cwd, key, template, text, ca, out):
    _template(cwd, template, text)
    _certtool(["--generate-certificate", "--load-privkey", key, "--load-ca-certificate", ca + "-cert.pem",
               "--load-ca-privkey", ca + "-key.pem", "--template", template, "--outfile", out], cwd)


def make_pki(root):
    if not shutil.which("certtool"):
        fail_all("certtool is installed (gnutls-bin; scripts/install-deps.sh installs it)")
    work = os.path.join(root, "pki")
    os.makedirs(work, exist_ok=True)
    for ca, text in (("ca", CA), ("other", OTHER_CA)):
        _key(work, ca + "-key.pem")
        _template(work, ca + ".info", text)
        _certtool(["--generate-self-signed", "--load-privkey", ca + "-key.pem", "--template", ca + ".info",
                   "--outfile", ca + "-cert.pem"], work)
    for name in ("server", "client"):
        _key(work, name + "-key.pem")
    _signed(work, "server-key.pem", "server.info", SERVER, "ca", "server-cert.pem")
    _signed(work, "client-key.pem", "client.info", CLIENT, "ca", "client-cert.pem")
    _signed(work, "server-key.pem", "expired.info", EXPIRED_SERVER, "ca", "expired-cert.pem")
    layout = {
        "dst": {"ca-cert.pem": "ca-cert.pem", "server-cert.pem": "server-cert.pem",
                "server-key.pem": "server-key.pem"},
        "src": {"ca-cert.pem": "ca-cert.pem", "client-cert.pem": "client-cert.pem",
                "client-key.pem": "client-key.pem"},
        "src-wrong-ca": {"ca-cert.pem": "other-cert.pem", "client-cert.pem": "client-cert.pem",
                         "client-key.pem": "client-key.pem"},
        "dst-expired": {"ca-cert.pem": "ca-cert.pem", "server-cert.pem": "expired-cert.pem",
                        "server-key.pem": "server-key.pem"},
    }
    for d, files in layout.items():
        os.makedirs(os.path.join(root, d), exist_ok=True)
        for dest, src in files.items():
            shutil.copy(os.path.join(work, src), os.path.join(root, d, dest))
    return Pki(root)


def add_creds(q, id, endpoint, directory, **extra):
    """object-add a tls-creds-x509; returns the QMP response."""
    args = {"qom-type": "tls-creds-x509", "id": id, "endpoint": endpoint, "dir": directory}
    args.update(extra)
    return q.cmd("object-add", args)
