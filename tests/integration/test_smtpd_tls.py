"""smtpd: TLS. STARTTLS (RFC 3207) and implicit TLS on a wrapper-mode port
(RFC 8314), TLS 1.2 and 1.3 with an RSA and an ECDSA certificate at once,
TLS 1.0 and 1.1 refused by default, the STARTTLS injection defence
(CVE-2011-0411), the session reset after STARTTLS, the encrypt level,
the Received: header of a message that came over TLS, failed handshakes,
bounded buffers while a TLS client does not read, and a renewed
certificate picked up by `postern reload` without disturbing sessions
already open.

The certificates are made with openssl at test time: a root CA, an
intermediate CA, and for two "generations" an RSA and an ECDSA server
certificate signed by the intermediate. Clients trust the root only, so
every successful verification also shows that the server sent its chain.
The private keys are mode 0600: when the tests run as root, smtpd (mail
owner after its privilege drop) can only have read them in pre_init.
"""

import os
import re
import select
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from conftest import IS_ROOT, MAIL_OWNER
from mailin import (LOCAL_USERS, ensure_local_users, mailin_main_cf, maildir_new,
                    prepare_mail_root)
from smtpd_support import HOSTNAME, LOCAL_USER, FakeCleanup, SmtpClient, base_main_cf

RCPT = f"{LOCAL_USER}@{HOSTNAME}"
MSG = "Subject: tls\r\n\r\nhello over TLS\r\n.\r\n"
NAMADDR = r"localhost\[127\.0\.0\.1\]"


# -- certificates ---------------------------------------------------------------

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Pki:
    """Files of the test PKI; rsa(g) / ec(g) name generation g's certificate."""

    def __init__(self, d):
        self.dir = Path(d)

    def path(self, name):
        return str(self.dir / name)

    def der(self, name):
        return ssl.PEM_cert_to_DER_cert((self.dir / name).read_text())

    def client_ctx(self, version=None, ciphers=None):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.path("root.crt"))
        if version:
            ctx.minimum_version = ctx.maximum_version = version
        if ciphers:
            ctx.set_ciphers(ciphers)
        return ctx


def make_leaf(d, name, keyalg, serial):
    if keyalg == "rsa":
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", f"{name}.key", cwd=d)
    else:
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", f"{name}.key", cwd=d)
    openssl("req", "-new", "-key", f"{name}.key", "-subj", f"/CN={HOSTNAME}",
            "-out", f"{name}.csr", cwd=d)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "inter.crt", "-CAkey", "inter.key",
            "-set_serial", str(serial), "-days", "30", "-extfile", "leaf.ext",
            "-out", f"{name}.crt", cwd=d)
    # The certificate file as administrators keep it: leaf, then the intermediate.
    (d / f"{name}-full.crt").write_text((d / f"{name}.crt").read_text() +
                                        (d / "inter.crt").read_text())
    # A chain file in smtpd_tls_chain_files form: key, leaf, intermediate.
    (d / f"{name}-chain.pem").write_text((d / f"{name}.key").read_text() +
                                         (d / f"{name}-full.crt").read_text())
    for f in (f"{name}.key", f"{name}-chain.pem"):
        os.chmod(d / f, 0o600)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    (d / "ca.ext").write_text("basicConstraints=critical,CA:TRUE\n"
                              "keyUsage=critical,keyCertSign,cRLSign\n"
                              "subjectKeyIdentifier=hash\n")
    (d / "leaf.ext").write_text(f"subjectAltName=DNS:{HOSTNAME}\n"
                                "basicConstraints=CA:FALSE\n"
                                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                                "extendedKeyUsage=serverAuth\n")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "root.key",
            "-out", "root.crt", "-days", "30", "-subj", "/CN=Postern Test Root",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "inter.key",
            "-out", "inter.csr", "-subj", "/CN=Postern Test Intermediate", cwd=d)
    openssl("x509", "-req", "-in", "inter.csr", "-CA", "root.crt", "-CAkey", "root.key",
            "-set_serial", "2", "-days", "30", "-extfile", "ca.ext", "-out", "inter.crt", cwd=d)
    for gen in (1, 2):
        make_leaf(d, f"rsa{gen}", "rsa", 1000 + gen)
        make_leaf(d, f"ec{gen}", "ec", 2000 + gen)
    return Pki(d)


def tls_params(pki, gen=1):
    """Legacy certificate parameters: an RSA and an ECDSA pair at once."""
    return {
        "smtpd_tls_security_level": "may",
        "smtpd_tls_cert_file": pki.path(f"rsa{gen}-full.crt"),
        "smtpd_tls_key_file": pki.path(f"rsa{gen}.key"),
        "smtpd_tls_eccert_file": pki.path(f"ec{gen}-full.crt"),
        "smtpd_tls_eckey_file": pki.path(f"ec{gen}.key"),
    }


# -- the server -------------------------------------------------------------------

class TlsServer:
    def __init__(self, inst, port, smtps_port, cleanup):
        self.inst = inst
        self.port = port
        self.smtps_port = smtps_port
        self.cleanup = cleanup

    def client(self, greet=True):
        c = SmtpClient(self.port)
        if greet:
            c.greet()
        return c

    def smtps(self, ctx):
        """A wrapper-mode session: TLS first, then the greeting."""
        c = SmtpClient(self.smtps_port)
        c.sock = ctx.wrap_socket(c.sock, server_hostname=HOSTNAME)
        c.greet()
        return c

    def smtpd_pids(self, port):
        return self.inst.service_pids(f"127.0.0.1:{port}")


@pytest.fixture
def tls_server(postern_instance, free_port, pki):
    """tls_server(extra=None, cert=True, real=False, cleanup="ok", end_delay=0)."""
    fakes = []

    def make(extra=None, cert=True, real=False, cleanup="ok", end_delay=0.0, main_fn=None):
        port, smtps_port = free_port(), free_port()
        master_cf = (f"127.0.0.1:{port} inet n - n - - smtpd\n"
                     f"127.0.0.1:{smtps_port} inet n - n - - smtpd"
                     " -o smtpd_tls_wrappermode=yes\n")
        if real:
            master_cf += ("cleanup unix n - n - 0 cleanup\n"
                          "qmgr unix n - n 300 1 qmgr\n"
                          "local unix - n n - - local\n")
        inst = postern_instance(master_cf, start=False)
        main = base_main_cf(inst)
        if main_fn:
            main.update(main_fn(inst))
        if cert:
            main.update(tls_params(pki))
        main.update(extra or {})
        inst.write_main_cf(main)
        (inst.conf_dir / "aliases").write_text("postmaster root\n")
        inst.start()
        fake = None
        if not real:
            fake = FakeCleanup(str(inst.queue_dir), mode=cleanup, end_delay=end_delay)
            fakes.append(fake)
        return TlsServer(inst, port, smtps_port, fake)

    yield make
    for f in fakes:
        f.stop()


def starttls(c, ctx, ehlo=True):
    """EHLO (STARTTLS offered), STARTTLS, handshake; the session is then TLS."""
    if ehlo:
        assert "STARTTLS" in c.ehlo()
    assert c.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
    assert c.buf == b""
    c.sock = ctx.wrap_socket(c.sock, server_hostname=HOSTNAME)
    return c.sock


def still_serving(srv, pki):
    with srv.client() as c:
        starttls(c, pki.client_ctx())
        assert c.ehlo()[0] == HOSTNAME
        assert c.cmd("QUIT") == "221 2.0.0 Bye"


def s_client(args, port, stdin=b"QUIT\r\n", timeout=30):
    """openssl s_client against a port; (returncode, stdout+stderr)."""
    r = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                        "-servername", HOSTNAME, *args], input=stdin,
                       capture_output=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


def first_pem(text):
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, re.S)
    assert m, text[-2000:]
    return ssl.PEM_cert_to_DER_cert(m.group(0))


# -- STARTTLS with TLS 1.2 and 1.3, RSA and ECDSA ----------------------------------

@pytest.mark.parametrize("version, ciphers, cert", [
    (ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES256-GCM-SHA384", "rsa1"),
    (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-GCM-SHA384", "ec1"),
    (ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-CHACHA20-POLY1305", "rsa1"),
    (ssl.TLSVersion.TLSv1_3, None, "ec1"),
])
def test_starttls_versions_and_certificates(tls_server, pki, version, ciphers, cert):
    srv = tls_server()
    mark = srv.inst.log_mark()
    with srv.client() as c:
        tls = starttls(c, pki.client_ctx(version, ciphers))
        assert tls.version() == version.name.replace("_", ".")
        assert tls.getpeercert(binary_form=True) == pki.der(f"{cert}.crt")
        if ciphers:
            assert tls.cipher()[0] == ciphers
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
    proto = "TLSv1.2" if version == ssl.TLSVersion.TLSv1_2 else "TLSv1.3"
    m = srv.inst.wait_for_log(rf"Anonymous TLS connection established from {NAMADDR}: "
                              rf"{proto} with cipher (\S+) \((\d+)/(\d+) bits\)(.*)$", since=mark)
    if proto == "TLSv1.3":
        # Postfix's TLS 1.3 details: the key share and our signature.
        assert re.fullmatch(r" key-exchange X25519 server-signature ECDSA \(prime256v1\) "
                            r"server-digest SHA256", m.group(4)), m.group(0)
    else:
        assert m.group(1) == ciphers and m.group(4) == "", m.group(0)
    srv.inst.wait_for_log(rf"disconnect from {NAMADDR} ehlo=1 starttls=1 quit=1 commands=3",
                          since=mark)


@pytest.mark.parametrize("sigalgs, cert, sig", [
    ("rsa_pss_rsae_sha256", "rsa1", r"RSA-PSS \(2048 bits\) server-digest SHA256"),
    ("ecdsa_secp256r1_sha256", "ec1", r"ECDSA \(prime256v1\) server-digest SHA256"),
])
def test_starttls_tls13_rsa_and_ecdsa_by_sigalgs(tls_server, pki, sigalgs, cert, sig):
    """TLS 1.3 picks the certificate by the client's signature algorithms."""
    srv = tls_server()
    mark = srv.inst.log_mark()
    rc, out = s_client(["-starttls", "smtp", "-tls1_3", "-sigalgs", sigalgs, "-showcerts",
                        "-CAfile", pki.path("root.crt"), "-verify_return_error"], srv.port)
    assert rc == 0, out
    assert "Verify return code: 0 (ok)" in out, out
    assert first_pem(out) == pki.der(f"{cert}.crt")
    srv.inst.wait_for_log(rf"Anonymous TLS connection established from {NAMADDR}: TLSv1\.3 "
                          rf"with cipher \S+ \(\d+/\d+ bits\) key-exchange \S+ "
                          rf"server-signature {sig}$", since=mark)


# -- wrapper mode (port 465) ----------------------------------------------------------

@pytest.mark.parametrize("version, ciphers, cert", [
    (ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES128-GCM-SHA256", "rsa1"),
    (ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-CHACHA20-POLY1305", "ec1"),
    (ssl.TLSVersion.TLSv1_3, None, "ec1"),
])
def test_wrappermode(tls_server, pki, version, ciphers, cert):
    srv = tls_server()
    mark = srv.inst.log_mark()
    with srv.smtps(pki.client_ctx(version, ciphers)) as c:
        assert c.sock.getpeercert(binary_form=True) == pki.der(f"{cert}.crt")
        lines = c.ehlo()
        assert "STARTTLS" not in lines
        assert c.cmd("STARTTLS") == "554 5.5.1 Error: TLS already active"
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        c.send_raw(MSG)
        assert c.text().startswith("250 2.0.0 Ok: queued as")
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
        # The server ends with close_notify: a clean TLS end of file.
        assert c.sock.recv(100) == b""
    txn = srv.cleanup.wait_committed(1)[0]
    assert txn.attrs["protocol_name"] == "ESMTPS"
    proto = "TLSv1.2" if version == ssl.TLSVersion.TLSv1_2 else "TLSv1.3"
    log = srv.inst.wait_for_log(rf"connect from {NAMADDR}\n.*Anonymous TLS connection "
                                rf"established from {NAMADDR}: {proto} ", since=mark)
    assert log


def test_wrappermode_tls13_rsa_by_sigalgs(tls_server, pki):
    srv = tls_server()
    # openssl s_client until the greeting arrives (its stdin stays open: at EOF,
    # or at a line starting with "Q", it would close before the greeting).
    p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{srv.smtps_port}",
                          "-servername", HOSTNAME, "-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256",
                          "-showcerts", "-CAfile", pki.path("root.crt"),
                          "-verify_return_error"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b""
    deadline = time.monotonic() + 20
    try:
        while f"220 {HOSTNAME} ESMTP".encode() not in out:
            assert time.monotonic() < deadline, out.decode(errors="replace")
            r, _, _ = select.select([p.stdout], [], [], 1)
            if r:
                data = os.read(p.stdout.fileno(), 65536)
                assert data, out.decode(errors="replace")
                out += data
    finally:
        p.kill()
        p.wait()
    # The greeting came over TLS 1.3 with the RSA certificate.
    assert first_pem(out.decode()) == pki.der("rsa1.crt")
    assert b"Verification: OK" in out


def test_wrappermode_without_certificate_drops_connection(tls_server, pki):
    srv = tls_server(cert=False)
    mark = srv.inst.log_mark()
    with SmtpClient(srv.smtps_port) as c:
        assert c.closed()
    srv.inst.wait_for_log(rf"warning: Wrapper-mode request dropped from {NAMADDR} for service "
                          rf"127\.0\.0\.1:{srv.smtps_port}\. TLS context initialization failed",
                          since=mark)


# -- TLS 1.0 and 1.1 ----------------------------------------------------------------------

def old_ctx(version):
    """A client that offers exactly VERSION, with every cipher it has."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    ctx.minimum_version = ctx.maximum_version = version
    return ctx


def try_starttls(srv, ctx):
    """STARTTLS with ctx; the negotiated version, or None when the handshake failed."""
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
        try:
            tls = ctx.wrap_socket(c.sock, server_hostname=HOSTNAME)
        except (ssl.SSLError, ConnectionError):
            return None
        c.sock = tls
        assert c.ehlo()[0] == HOSTNAME
        return tls.version()


def try_smtps(srv, ctx):
    s = socket.create_connection(("127.0.0.1", srv.smtps_port), timeout=15)
    try:
        tls = ctx.wrap_socket(s, server_hostname=HOSTNAME)
    except (ssl.SSLError, ConnectionError):
        s.close()
        return None
    version = tls.version()
    tls.close()
    return version


# Python deprecates asking for these versions; asking for them is the point.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1],
                         ids=["TLSv1", "TLSv1.1"])
def test_old_protocols_refused_by_default(tls_server, pki, version):
    # The control: with TLS 1.0/1.1 and legacy ciphers allowed, this client
    # really negotiates the old protocol, so the refusal below is the server's.
    legacy = tls_server({"smtpd_tls_protocols": ">=TLSv1",
                         "smtpd_tls_mandatory_protocols": ">=TLSv1",
                         "tls_medium_cipherlist": "DEFAULT:@SECLEVEL=0"})
    name = version.name.replace("_", ".")
    assert try_starttls(legacy, old_ctx(version)) == name
    assert try_smtps(legacy, old_ctx(version)) == name

    srv = tls_server()
    mark = srv.inst.log_mark()
    assert try_starttls(srv, old_ctx(version)) is None
    assert try_smtps(srv, old_ctx(version)) is None
    # The server said no: OpenSSL's reason is the protocol version.
    srv.inst.wait_for_log(rf"SSL_accept error from {NAMADDR}: -1\n.*warning: TLS library "
                          rf"problem: error:\w+:SSL routines::unsupported protocol", since=mark)
    srv.inst.wait_for_log(rf"lost connection after STARTTLS from {NAMADDR}", since=mark)
    srv.inst.wait_for_log(rf"lost connection after CONNECT from {NAMADDR}", since=mark)
    still_serving(srv, pki)


def test_old_protocols_refused_by_openssl_s_client(tls_server, pki):
    """The same with openssl's client, which can still offer TLS 1.1 at SECLEVEL 0."""
    srv = tls_server()
    mark = srv.inst.log_mark()
    rc, out = s_client(["-starttls", "smtp", "-tls1_1", "-cipher", "ALL:@SECLEVEL=0"], srv.port)
    assert rc != 0, out
    srv.inst.wait_for_log(rf"SSL_accept error from {NAMADDR}: -1\n.*unsupported protocol",
                          since=mark)


# -- CVE-2011-0411: plaintext pipelined after STARTTLS -----------------------------------

def test_starttls_injection_is_discarded(tls_server, pki):
    srv = tls_server({"smtpd_forbid_unauth_pipelining": "no"})
    mark = srv.inst.log_mark()
    with srv.client() as c:
        c.ehlo()
        # One write: the RSET (and a MAIL) arrive with STARTTLS, before TLS.
        c.send_raw("STARTTLS\r\nRSET\r\nMAIL FROM:<evil@attacker.example>\r\n")
        assert c.text() == "220 2.0.0 Ready to start TLS"
        assert c.buf == b""
        c.sock = pki.client_ctx().wrap_socket(c.sock, server_hostname=HOSTNAME)
        # Inside TLS: no reply to the injected commands, ever.
        c.sock.settimeout(1.5)
        with pytest.raises(socket.timeout):
            c.sock.recv(100)
        c.sock.settimeout(15)
        assert c.ehlo()[0] == HOSTNAME
        # The injected MAIL did not start a transaction either.
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "503 5.5.1 Error: need MAIL command"
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
    srv.inst.wait_for_log(rf"improper command pipelining after STARTTLS from {NAMADDR}: "
                          r"RSET<CR><LF>MAIL FROM", since=mark)
    srv.inst.wait_for_log(rf"disconnect from {NAMADDR} ehlo=2 starttls=1 rcpt=0/1 quit=1 "
                          r"commands=4/5", since=mark)


def test_starttls_injection_with_default_pipelining_rule(tls_server, pki):
    """smtpd_forbid_unauth_pipelining = yes (default): such a client is cut off."""
    srv = tls_server()
    with srv.client() as c:
        c.ehlo()
        c.send_raw("STARTTLS\r\nRSET\r\n")
        assert c.text() == "554 5.5.0 Error: SMTP protocol synchronization"
        assert c.closed()


# -- the session after STARTTLS ----------------------------------------------------------

def test_starttls_resets_the_session(tls_server, pki):
    srv = tls_server()
    with srv.client() as c:
        assert c.cmd("STARTTLS now") == "501 5.5.4 Syntax: STARTTLS"
        lines = c.ehlo()
        assert lines[0] == HOSTNAME and "STARTTLS" in lines
        # Not inside a transaction.
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd("STARTTLS") == "503 5.5.1 Error: MAIL transaction in progress"
        assert c.cmd("RSET") == "250 2.0.0 Ok"
        starttls(c, pki.client_ctx(), ehlo=False)
        # RFC 3207 4.2: the HELO name is forgotten; EHLO comes first.
        assert c.cmd("MAIL FROM:<a@b.example>") == "503 5.5.1 Error: send HELO/EHLO first"
        assert c.cmd("STARTTLS") == "554 5.5.1 Error: TLS already active"
        lines = c.ehlo()
        assert "STARTTLS" not in lines
        assert lines == [HOSTNAME, "PIPELINING", "SIZE 10240000", "ENHANCEDSTATUSCODES",
                         "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"]
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        c.send_raw(MSG)
        assert c.text().startswith("250 2.0.0 Ok: queued as")
    txn = srv.cleanup.wait_committed(1)[0]
    assert txn.attrs["protocol_name"] == "ESMTPS"
    assert txn.attrs["helo_name"] == "client.example"


def test_no_certificate_no_starttls(tls_server, pki):
    srv = tls_server({"smtpd_tls_security_level": "may"}, cert=False)
    with srv.client() as c:
        assert "STARTTLS" not in c.ehlo()
        assert c.cmd("STARTTLS") == "502 5.5.1 Error: command not implemented"
    srv.inst.wait_for_log(r"warning: No server certs available\. TLS won't be enabled")
    # Level none: not offered even with a certificate.
    srv = tls_server({"smtpd_tls_security_level": "none"})
    with srv.client() as c:
        assert "STARTTLS" not in c.ehlo()
        assert c.cmd("STARTTLS") == "502 5.5.1 Error: command not implemented"


def test_unreadable_certificate_disables_tls(tls_server, pki):
    srv = tls_server({"smtpd_tls_key_file": pki.path("ec1.key")})
    with srv.client() as c:
        assert "STARTTLS" not in c.ehlo()
    srv.inst.wait_for_log(r"warning: .*rsa1-full\.crt: the private key does not match the "
                          r"certificate: disabling TLS support")


@pytest.mark.parametrize("params", [
    {"smtpd_tls_security_level": "encrypt"},
    {"smtpd_tls_security_level": "", "smtpd_enforce_tls": "yes"},
])
def test_encrypt_level(tls_server, pki, params):
    srv = tls_server(params)
    with srv.client() as c:
        assert "STARTTLS" in c.ehlo()
        for cmd in ("MAIL FROM:<a@b.example>", f"RCPT TO:<{RCPT}>", "DATA", "VRFY root",
                    "AUTH PLAIN AAAA", "HELP", "ETRN x", "BDAT 0 LAST"):
            assert c.cmd(cmd) == "530 5.7.0 Must issue a STARTTLS command first", cmd
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        assert c.cmd("RSET") == "250 2.0.0 Ok"
        starttls(c, pki.client_ctx())
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        assert c.cmd("QUIT") == "221 2.0.0 Bye"


def test_use_tls_legacy_is_may(tls_server, pki):
    srv = tls_server({"smtpd_tls_security_level": "", "smtpd_use_tls": "yes"})
    with srv.client() as c:
        assert "STARTTLS" in c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"


def test_encrypt_level_without_certificate(tls_server, pki):
    srv = tls_server({"smtpd_tls_security_level": "encrypt"}, cert=False)
    with srv.client() as c:
        assert "STARTTLS" in c.ehlo()
        assert c.cmd("STARTTLS") == "454 4.7.0 TLS not available due to local problem"
        assert c.cmd("MAIL FROM:<a@b.example>") == \
            "530 5.7.0 Must issue a STARTTLS command first"


# -- Received: header --------------------------------------------------------------------

def test_received_header_tls12_exact(tls_server, pki):
    srv = tls_server()
    with srv.client() as c:
        starttls(c, pki.client_ctx(ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES256-GCM-SHA384"))
        c.ehlo("client.example")
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        c.send_raw(MSG)
        assert c.text().startswith("250 2.0.0 Ok")
    txn = srv.cleanup.wait_committed(1)[0]
    lines = txn.data.split(b"\n")
    assert lines[:4] == [
        b"Received: from client.example (localhost [127.0.0.1])",
        b"\t(using TLSv1.2 with cipher ECDHE-RSA-AES256-GCM-SHA384 (256/256 bits))",
        b"\t(No client certificate requested)",
        f"\tby {HOSTNAME} (Postern) with ESMTPS id {txn.queue_id}".encode()], lines[:5]


def test_received_header_can_be_turned_off(tls_server, pki):
    srv = tls_server({"smtpd_tls_received_header": "no"})
    with srv.client() as c:
        starttls(c, pki.client_ctx())
        c.ehlo("client.example")
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        c.send_raw(MSG)
        assert c.text().startswith("250 2.0.0 Ok")
    txn = srv.cleanup.wait_committed(1)[0]
    assert txn.data.split(b"\n")[1] == \
        f"\tby {HOSTNAME} (Postern) with ESMTPS id {txn.queue_id}".encode()


def test_message_over_tls_is_delivered_with_received_header(tls_server, pki):
    """The real pipeline: smtpd, cleanup, qmgr, local; the delivered message."""
    ensure_local_users()
    user = LOCAL_USERS[0]

    def params(inst):
        prepare_mail_root(inst.root)
        p = mailin_main_cf(inst.root)
        p["mynetworks"] = "192.0.2.0/24"
        p.setdefault("local_recipient_maps", "unix:passwd.byname")
        return p

    srv = tls_server(real=True, main_fn=params)
    rcpt = f"{user}@localhost"
    with srv.client() as c:
        starttls(c, pki.client_ctx(ssl.TLSVersion.TLSv1_3))
        c.ehlo("client.example")
        assert c.cmd("MAIL FROM:<sender@client.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{rcpt}>") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        c.send_raw("From: <sender@client.example>\r\nSubject: over TLS\r\n\r\nbody\r\n.\r\n")
        m = re.match(r"250 2\.0\.0 Ok: queued as (\S+)$", c.text())
        assert m
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
    new = maildir_new(srv.inst.root, user)
    deadline = time.monotonic() + 30
    while not (new.is_dir() and list(new.glob("*"))):
        assert time.monotonic() < deadline, "not delivered:\n" + srv.inst.log_text()[-3000:]
        time.sleep(0.1)
    data = next(new.glob("*")).read_bytes()
    head = data.partition(b"\n\n")[0]
    assert re.search(
        rb"^Received: from client\.example \(localhost \[127\.0\.0\.1\]\)\n"
        rb"\t\(using TLSv1\.3 with cipher TLS_AES_256_GCM_SHA384 \(256/256 bits\)\n"
        rb"\t key-exchange X25519 server-signature ECDSA \(prime256v1\) server-digest SHA256\)\n"
        rb"\t\(No client certificate requested\)\n"
        rb"\tby mx\.e2e\.test \(Postern\) with ESMTPS id " + m.group(1).encode() +
        rb"\n\tfor <" + rcpt.encode() + rb">; ", head, re.M), head


# -- failed handshakes --------------------------------------------------------------------

def test_garbage_instead_of_handshake(tls_server, pki):
    srv = tls_server()
    mark = srv.inst.log_mark()
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
        c.send_raw(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n" + b"\x16\x03\x01" + os.urandom(300))
        assert c.closed()
    srv.inst.wait_for_log(rf"SSL_accept error from {NAMADDR}: -1\n.*warning: TLS library "
                          rf"problem: error:\w+:SSL routines::", since=mark)
    srv.inst.wait_for_log(rf"lost connection after STARTTLS from {NAMADDR}\n.*"
                          rf"disconnect from {NAMADDR} ehlo=1 starttls=0/1 commands=1/2",
                          since=mark)
    still_serving(srv, pki)


def test_client_gone_during_handshake(tls_server, pki):
    srv = tls_server()
    mark = srv.inst.log_mark()
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
    srv.inst.wait_for_log(rf"SSL_accept error from {NAMADDR}: lost connection\n.*"
                          rf"lost connection after STARTTLS from {NAMADDR}", since=mark)
    still_serving(srv, pki)


def test_handshake_timeout(tls_server, pki):
    srv = tls_server({"smtpd_starttls_timeout": "2s"})
    mark = srv.inst.log_mark()
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
        start = time.monotonic()
        assert c.closed(timeout=10)
        assert 1.5 < time.monotonic() - start < 8
    srv.inst.wait_for_log(rf"SSL_accept error from {NAMADDR}: Connection timed out", since=mark)
    still_serving(srv, pki)


def test_key_loaded_before_privilege_drop(tls_server, pki):
    """The keys are root's, mode 0600; smtpd runs as mail_owner and still has them."""
    if not IS_ROOT:
        pytest.skip("needs root: the keys must be unreadable for mail_owner")
    assert (os.stat(pki.path("rsa1.key")).st_mode & 0o777) == 0o600
    srv = tls_server()
    still_serving(srv, pki)
    pids = srv.smtpd_pids(srv.port)
    assert pids
    import pwd
    owner = pwd.getpwnam(MAIL_OWNER).pw_uid
    for pid in pids:
        uids = open(f"/proc/{pid}/status").read().split("Uid:")[1].split()[:4]
        assert all(int(u) == owner for u in uids), uids


def test_chain_files(tls_server, pki):
    """smtpd_tls_chain_files: key then chain, two pairs, in one or separate files."""
    srv = tls_server({"smtpd_tls_cert_file": "", "smtpd_tls_eccert_file": "",
                      "smtpd_tls_chain_files": f"{pki.path('rsa2-chain.pem')}, "
                                               f"{pki.path('ec2.key')} "
                                               f"{pki.path('ec2-full.crt')}"})
    for ciphers, cert in (("ECDHE-RSA-AES256-GCM-SHA384", "rsa2"),
                          ("ECDHE-ECDSA-AES256-GCM-SHA384", "ec2")):
        with srv.client() as c:
            tls = starttls(c, pki.client_ctx(ssl.TLSVersion.TLSv1_2, ciphers))
            assert tls.getpeercert(binary_form=True) == pki.der(f"{cert}.crt")


# -- bounded buffers while a TLS client does not read ------------------------------------

class TlsPump:
    """A TLS client over a non-blocking socket (MemoryBIO): it can send
    without ever reading, which a blocking SSLSocket cannot do."""

    def __init__(self, sock, ctx):
        self.sock = sock
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname=HOSTNAME)
        self.raw = b""       # ciphertext not yet on the socket
        self.plain = b""     # decrypted input not yet consumed
        self.sent = 0
        sock.setblocking(False)

    def _pull_out(self):
        self.raw += self.out.read()

    def push(self, wait=0.0):
        """Send queued ciphertext; return when all is sent or the socket stays full."""
        self._pull_out()
        deadline = time.monotonic() + wait
        while self.raw:
            _, w, _ = select.select([], [self.sock], [], max(0.0, deadline - time.monotonic()))
            if not w:
                return False
            n = self.sock.send(self.raw[:65536])
            self.raw = self.raw[n:]
            self.sent += n
        return True

    def pull(self, wait):
        r, _, _ = select.select([self.sock], [], [], wait)
        if r:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.inc.write(data)
        while True:
            try:
                self.plain += self.tls.read(65536)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break

    def handshake(self):
        while True:
            try:
                self.tls.do_handshake()
                self.push(10)
                return
            except ssl.SSLWantReadError:
                self.push(10)
                r, _, _ = select.select([self.sock], [], [], 10)
                assert r, "handshake stalled"
                self.inc.write(self.sock.recv(65536))

    def write(self, data):
        self.tls.write(data)
        self._pull_out()

    def lines(self):
        out = self.plain.split(b"\r\n")
        self.plain = out.pop()
        return out


def smtpd_rss_kib(srv):
    total = 0
    for pid in srv.smtpd_pids(srv.port):
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def tls_pump_session(srv, pki):
    c = srv.client()
    starttls_sock = c.sock
    c.ehlo()
    assert c.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
    pump = TlsPump(starttls_sock, pki.client_ctx())
    pump.handshake()
    pump.write(b"EHLO client.example\r\n")
    pump.push(5)
    deadline = time.monotonic() + 10
    while not any(line.startswith(b"250 ") for line in pump.lines()):
        assert time.monotonic() < deadline
        pump.pull(1)
    return c, pump


def test_tls_client_that_does_not_read(tls_server, pki):
    """HELP pipelined by the hundred thousand: 25 times more reply than command
    octets. smtpd must stop reading instead of buffering replies the client
    does not take, and answer every command once the client reads."""
    srv = tls_server({"smtpd_junk_command_limit": "1000000"})
    n = 200000
    c, pump = tls_pump_session(srv, pki)
    before = smtpd_rss_kib(srv)
    pump.write(b"HELP\r\n" * n)
    # Send for 3 s without reading a single reply.
    pump.push(wait=3)
    grown = smtpd_rss_kib(srv) - before
    assert grown < 16 * 1024, f"smtpd grew by {grown} KiB while the TLS client did not read"
    got = 0
    deadline = time.monotonic() + 120
    while got < n:
        assert time.monotonic() < deadline, f"only {got} replies"
        pump.push(0.01)
        pump.pull(0.5)
        for line in pump.lines():
            assert line.startswith(b"214"), line
            got += line.startswith(b"214 ")
    pump.write(b"QUIT\r\n")
    pump.push(5)
    c.close()


def test_tls_cleanup_backpressure_and_large_message(tls_server, pki):
    """A large message over TLS while cleanup stalls: bounded memory, then completes."""
    srv = tls_server({"message_size_limit": "0"}, cleanup="stall", end_delay=3)
    c, pump = tls_pump_session(srv, pki)
    size = 8 * 1024 * 1024
    for cmd in (b"MAIL FROM:<a@b.example>", f"RCPT TO:<{RCPT}>".encode(), b"DATA"):
        pump.write(cmd + b"\r\n")
        pump.push(5)
        deadline = time.monotonic() + 10
        while not pump.plain.endswith(b"\r\n"):
            assert time.monotonic() < deadline
            pump.pull(1)
        assert pump.lines()[-1][:1] in (b"2", b"3")
    before = smtpd_rss_kib(srv)
    line = b"y" * 78 + b"\r\n"
    pump.write(line * (size // len(line)) + b".\r\n")
    pump.push(wait=1.5)
    grown = smtpd_rss_kib(srv) - before
    assert grown < 6 * 1024, f"smtpd grew by {grown} KiB while cleanup stalled"
    deadline = time.monotonic() + 60
    reply = None
    while reply is None:
        assert time.monotonic() < deadline, "no reply to the end of data"
        pump.push(0.05)
        pump.pull(0.2)
        for got in pump.lines():
            reply = got
    assert reply.startswith(b"250 2.0.0 Ok: queued as"), reply
    txn = srv.cleanup.wait_committed(1)[0]
    assert txn.data.count(b"\n" + b"y" * 78) == size // len(line)
    c.close()


# -- certificate renewal ------------------------------------------------------------------

def test_renewed_certificate_after_reload(tls_server, pki):
    """Let's Encrypt style: new files at the same paths, `postern reload`: new sessions
    get the new certificate, a session already open finishes its transaction."""
    live = pki.dir / "live"
    live.mkdir(exist_ok=True)

    def install(gen):
        for kind in ("rsa", "ec"):
            for suffix in (".key", "-full.crt"):
                tmp = live / f"new{suffix}"
                shutil.copyfile(pki.dir / f"{kind}{gen}{suffix}", tmp)
                os.chmod(tmp, 0o600)
                os.replace(tmp, live / f"{kind}{suffix}")

    install(1)
    srv = tls_server({"smtpd_tls_cert_file": str(live / "rsa-full.crt"),
                      "smtpd_tls_key_file": str(live / "rsa.key"),
                      "smtpd_tls_eccert_file": str(live / "ec-full.crt"),
                      "smtpd_tls_eckey_file": str(live / "ec.key")})
    rsa12 = pki.client_ctx(ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES256-GCM-SHA384")
    old = srv.client()
    tls = starttls(old, rsa12)
    assert tls.getpeercert(binary_form=True) == pki.der("rsa1.crt")
    old.ehlo()
    assert old.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
    assert old.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
    old_pids = set(srv.smtpd_pids(srv.port))

    install(2)
    mark = srv.inst.log_mark()
    srv.inst.reload()
    # New sessions: new processes with the new files, RSA and ECDSA alike.
    deadline = time.monotonic() + 20
    while True:
        with srv.client() as c:
            got = starttls(c, rsa12).getpeercert(binary_form=True)
        if got == pki.der("rsa2.crt"):
            break
        assert time.monotonic() < deadline, "still the old certificate after reload"
        time.sleep(0.2)
    with srv.client() as c:
        tls = starttls(c, pki.client_ctx(ssl.TLSVersion.TLSv1_3))
        assert tls.getpeercert(binary_form=True) == pki.der("ec2.crt")
    assert set(srv.smtpd_pids(srv.port)) - old_pids, "no new smtpd process"

    # The old session goes on, on its old process, and its message is queued.
    assert old.cmd("DATA").startswith("354")
    old.send_raw(MSG)
    assert old.text().startswith("250 2.0.0 Ok: queued as")
    assert old.cmd("QUIT") == "221 2.0.0 Bye"
    old.close()
    assert len(srv.cleanup.wait_committed(1)) == 1
    # The old process exits once its last session is over.
    deadline = time.monotonic() + 20
    while set(srv.smtpd_pids(srv.port)) & old_pids:
        assert time.monotonic() < deadline, "the old smtpd did not exit"
        time.sleep(0.1)
    assert srv.inst.count_log(r"warning", since=mark) == 0, srv.inst.log_text()[mark:]
