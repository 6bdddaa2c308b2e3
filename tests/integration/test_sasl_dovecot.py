"""lib/sasl's dovecot backend against Debian's real Dovecot.

A private Dovecot (dovecot_support.py) serves a passwd-file; the C helper
tests/helpers/sasl_probe drives the library (sasl_server_create,
sasl_server_mechs, sasl_sess_start/step) over Dovecot's auth socket and
prints each result. The exchanges are PLAIN (with and without an initial
response), LOGIN, CRAM-MD5 and SCRAM-SHA-256 (computed here as a real
client would), right and wrong passwords, unknown users, malformed client
data (refused before Dovecot sees it), the security options applied to
Dovecot's MECH flags, the client address and "secured" (TLS) reaching
Dovecot, and a stopped Dovecot.
"""

import base64
import hashlib
import hmac
import os
import subprocess
from pathlib import Path

import pytest

from dovecot_support import dovecot_server  # noqa: F401  (fixture)

BUILD = Path(os.environ.get("POSTERN_BUILD",
                            Path(__file__).resolve().parents[2] / "build-san"))
PROBE = BUILD / "tests" / "helpers" / "sasl_probe"
MECHS = "plain login cram-md5 scram-sha-256"
USERS = {
    "alice": "secret",
    "tim": "tanstaaftanstaaf",
    "erin@example.com": "erin pass",
}

pytestmark = pytest.mark.skipif(not PROBE.exists(), reason=f"{PROBE} is not built")


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


class Probe:
    """sasl_probe as a subprocess: results come as lines, responses go in."""

    def __init__(self, socket_path, mech=None, initial=None, *options):
        args = [str(PROBE), "-p", socket_path, *options]
        if mech is not None:
            args.append(mech)
            if initial is not None:
                args.append(initial)
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def result(self):
        line = self.proc.stdout.readline().rstrip("\n")
        assert line, self.proc.stderr.read()
        kind, _, text = line.partition(" ")
        return kind, text

    def send(self, response):
        self.proc.stdin.write(response + "\n")
        self.proc.stdin.flush()

    def finish(self):
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=30)
        err = self.proc.stderr.read()
        assert "ERROR: AddressSanitizer" not in err and "runtime error" not in err, err
        return rc


def run(socket_path, mech, initial=None, *options, responses=()):
    """One exchange with scripted responses; the list of (kind, text) results."""
    p = Probe(socket_path, mech, initial, *options)
    results = [p.result()]
    assert results[0][0] == "MECHS"
    for response in responses:
        results.append(p.result())
        assert results[-1][0] == "CONTINUE", results
        p.send(response)
    results.append(p.result())
    p.finish()
    return results[1:]


@pytest.fixture
def dv(dovecot_server):  # noqa: F811
    return dovecot_server(users=USERS, mechanisms=MECHS)


def test_mechanisms_and_options(dv):
    p = Probe(dv.socket_path)
    assert p.result() == ("MECHS", "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256")
    assert p.finish() == 0
    # Dovecot's flags: PLAIN/LOGIN "plaintext", CRAM-MD5 "dictionary active",
    # SCRAM-SHA-256 "mutual-auth".
    p = Probe(dv.socket_path, None, None, "-s", "noplaintext, noanonymous")
    assert p.result() == ("MECHS", "CRAM-MD5 SCRAM-SHA-256")
    p.finish()
    p = Probe(dv.socket_path, None, None, "-s", "noplaintext", "-S", "", "-t")
    assert p.result() == ("MECHS", "PLAIN LOGIN CRAM-MD5 SCRAM-SHA-256")
    p.finish()
    p = Probe(dv.socket_path, None, None, "-s", "mutual_auth")
    assert p.result() == ("MECHS", "SCRAM-SHA-256")
    p.finish()
    p = Probe(dv.socket_path, None, None, "-f", "login, cram-md5")
    assert p.result() == ("MECHS", "LOGIN CRAM-MD5")
    p.finish()
    # A mechanism that is not offered.
    p = Probe(dv.socket_path, "PLAIN", b64("\0alice\0secret"), "-s", "noplaintext")
    p.result()
    assert p.result()[0] == "NOMECH"
    assert p.finish() == 5


def test_plain(dv):
    assert run(dv.socket_path, "PLAIN", b64("\0alice\0secret")) == [("OK", "alice")]
    assert run(dv.socket_path, "plain", b64("alice\0alice\0secret")) == [("OK", "alice")]
    assert run(dv.socket_path, "PLAIN", b64("\0erin@example.com\0erin pass")) == \
        [("OK", "erin@example.com")]
    # Wrong password, unknown user: a failure with Dovecot's (empty) reason.
    assert run(dv.socket_path, "PLAIN", b64("\0alice\0wrong")) == [("FAIL", "")]
    assert run(dv.socket_path, "PLAIN", b64("\0nobody\0secret")) == [("FAIL", "")]
    # No initial response: Dovecot's empty challenge first; "=" is an empty one.
    assert run(dv.socket_path, "PLAIN", None, responses=[b64("\0alice\0secret")]) == \
        [("CONTINUE", ""), ("OK", "alice")]
    assert run(dv.socket_path, "PLAIN", "=", responses=[b64("\0alice\0secret")])[-1] == \
        ("OK", "alice")
    assert "Password mismatch" in dv.log_text() or "unknown user" in dv.log_text()


def test_login(dv):
    assert run(dv.socket_path, "LOGIN", None, responses=[b64("alice"), b64("secret")]) == \
        [("CONTINUE", "VXNlcm5hbWU6"), ("CONTINUE", "UGFzc3dvcmQ6"), ("OK", "alice")]
    assert run(dv.socket_path, "LOGIN", b64("alice"), responses=[b64("nope")]) == \
        [("CONTINUE", "UGFzc3dvcmQ6"), ("FAIL", "")]


def test_cram_md5(dv):
    p = Probe(dv.socket_path, "CRAM-MD5")
    p.result()
    kind, challenge = p.result()
    assert kind == "CONTINUE"
    ch = base64.b64decode(challenge)
    assert ch.startswith(b"<") and ch.endswith(b">")
    digest = hmac.new(b"tanstaaftanstaaf", ch, hashlib.md5).hexdigest()
    p.send(b64(f"tim {digest}"))
    assert p.result() == ("OK", "tim")
    assert p.finish() == 0

    p = Probe(dv.socket_path, "CRAM-MD5")
    p.result()
    p.result()
    p.send(b64("tim " + "0" * 32))
    assert p.result() == ("FAIL", "")
    assert p.finish() == 1


def scram(dv, user, password, proof_ok=True):
    """A SCRAM-SHA-256 client (RFC 5802/7677) through the library to Dovecot."""
    cnonce = b64(os.urandom(18))
    first_bare = f"n={user},r={cnonce}"
    p = Probe(dv.socket_path, "SCRAM-SHA-256", b64("n,," + first_bare))
    p.result()
    kind, text = p.result()
    assert kind == "CONTINUE", (kind, text)
    server_first = base64.b64decode(text).decode()
    attrs = dict(a.split("=", 1) for a in server_first.split(","))
    assert attrs["r"].startswith(cnonce)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(attrs["s"]),
                                 int(attrs["i"]))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    final_np = f"c=biws,r={attrs['r']}"
    auth_msg = f"{first_bare},{server_first},{final_np}".encode()
    sig = hmac.new(stored_key, auth_msg, hashlib.sha256).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    if not proof_ok:
        proof = bytes([proof[0] ^ 1]) + proof[1:]
    p.send(b64(f"{final_np},p={b64(proof)}"))
    kind, text = p.result()
    if kind == "CONTINUE":
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        expected = "v=" + b64(hmac.new(server_key, auth_msg, hashlib.sha256).digest())
        assert base64.b64decode(text).decode() == expected
        p.send("")
        kind, text = p.result()
    p.finish()
    return kind, text


def test_scram_sha_256(dv):
    assert scram(dv, "alice", "secret") == ("OK", "alice")
    assert scram(dv, "alice", "wrong")[0] == "FAIL"
    assert scram(dv, "alice", "secret", proof_ok=False)[0] == "FAIL"


def test_malformed_client_data(dv):
    mark = len(dv.log_text())
    # Bad base64 never reaches Dovecot: answered 501 by smtpd (BADPROT).
    assert run(dv.socket_path, "PLAIN", "AGFsaWNl\tAHNlY3JldA==")[0][0] == "BADPROT"
    assert run(dv.socket_path, "PLAIN", "AGFsaWNlAHNlY3JldA=")[0][0] == "BADPROT"
    assert run(dv.socket_path, "LOGIN", None, responses=["YWxp Y2U="])[-1][0] == "BADPROT"
    # Longer than smtpd_sasl_response_limit.
    assert run(dv.socket_path, "PLAIN", "A" * 200, "-l", "100")[0] == \
        ("BADPROT", "initial response too long")
    assert "invalid base64" not in dv.log_text()[mark:].lower()


def test_client_facts(dovecot_server, tmp_path):  # noqa: F811
    """rip= and secured reach Dovecot: its passdb file name depends on them."""
    d = tmp_path / "dv"
    d.mkdir()
    (d / "passwd-secured-192.0.2.7").write_text("alice:{PLAIN}secret\n")
    (d / "passwd--192.0.2.7").write_text("alice:{PLAIN}plain-secret\n")
    dv = dovecot_server(mechanisms=MECHS, passdb_args=f"{d}/passwd-%{{secured}}-%{{rip}}")
    remote = ("-a", "192.0.2.7")
    assert run(dv.socket_path, "PLAIN", b64("\0alice\0secret"), *remote, "-t") == \
        [("OK", "alice")]
    assert run(dv.socket_path, "PLAIN", b64("\0alice\0plain-secret"), *remote) == \
        [("OK", "alice")]
    assert run(dv.socket_path, "PLAIN", b64("\0alice\0secret"), *remote)[0][0] == "FAIL"


def test_dovecot_down(dv):
    path = dv.socket_path
    dv.stop()
    p = Probe(path, "PLAIN", b64("\0alice\0secret"))
    assert p.result() == ("MECHS", "")
    assert p.result()[0] == "NOMECH"
    assert p.finish() == 5
