"""Test certificates, made at test time with the openssl command.

    ca = make_ca(directory)                      # a private CA
    rsa = make_cert(directory, ca, "rsa")        # server pair signed by it
    ec = make_cert(directory, ca, "ecdsa")       # another one, P-256
    rsa.cert, rsa.key, rsa.chain, ca.cert        # paths (str)

make_cert names the server "localhost" unless told otherwise and lists
localhost, 127.0.0.1 and ::1 as subjectAltName entries, so clients that
verify against ca.cert accept it on the test addresses. chain is the leaf
followed by the CA certificate (the smtpd_tls_chain_files form); cert is
the leaf alone. Keys are unencrypted PEM files of mode 0600 (owned by the
caller; chown them for a daemon that reads them as another user).

client_context(ca) returns an ssl.SSLContext that trusts only that CA;
insecure_context() one that checks nothing (for tests about the protocol,
not the certificate).
"""

import os
import ssl
import subprocess
from pathlib import Path

OPENSSL = "openssl"
DAYS = 30
CMD_TIMEOUT = 60


class Pair:
    """Paths of one certificate and its key (and the chain file, for leaves)."""

    def __init__(self, cert, key, chain=None):
        self.cert = str(cert)
        self.key = str(key)
        self.chain = str(chain) if chain else None

    def __repr__(self):
        return f"Pair(cert={self.cert!r}, key={self.key!r})"


def _run(args):
    r = subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=CMD_TIMEOUT)
    if r.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stderr}")
    return r


def _key(path, kind):
    if kind == "rsa":
        _run(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
              str(path)])
    elif kind == "ecdsa":
        _run(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
              str(path)])
    else:
        raise ValueError(f"unknown key kind {kind!r}")
    os.chmod(path, 0o600)


def make_ca(directory, name="Postern Test CA"):
    """A self-signed CA in DIRECTORY: Pair(ca.pem, ca.key)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    key, cert = d / "ca.key", d / "ca.pem"
    _key(key, "ecdsa")
    _run(["req", "-x509", "-new", "-key", str(key), "-out", str(cert), "-days", str(DAYS),
          "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    return Pair(cert, key)


def make_cert(directory, ca, kind="rsa", name="localhost", alt_names=None):
    """A server certificate for NAME signed by CA: Pair(NAME-KIND.pem, .key, chain)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{kind}"
    key, csr, cert, chain = (d / f"{stem}.key", d / f"{stem}.csr", d / f"{stem}.pem",
                             d / f"{stem}-chain.pem")
    ext = d / f"{stem}.ext"
    alts = alt_names or [f"DNS:{name}", "DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    ext.write_text("basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n"
                   f"subjectAltName={','.join(dict.fromkeys(alts))}\n")
    _key(key, kind)
    _run(["req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/CN={name}"])
    _run(["x509", "-req", "-in", str(csr), "-CA", ca.cert, "-CAkey", ca.key,
          "-CAcreateserial", "-out", str(cert), "-days", str(DAYS), "-extfile", str(ext)])
    chain.write_text(cert.read_text() + Path(ca.cert).read_text())
    return Pair(cert, key, chain)


def client_context(ca, minimum=None, maximum=None):
    """An SSLContext that verifies the server against CA only."""
    ctx = ssl.create_default_context(cafile=ca.cert)
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def insecure_context(minimum=None, maximum=None):
    """An SSLContext that verifies nothing."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def chown_for(user, *paths):
    """Give PATHS to USER (a daemon that must read the keys), when running as root."""
    if os.geteuid() != 0 or not user:
        return
    import pwd
    pw = pwd.getpwnam(user)
    for p in paths:
        os.chown(p, pw.pw_uid, pw.pw_gid)
