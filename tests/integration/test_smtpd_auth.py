"""SMTP AUTH (RFC 4954) and the submission service, end to end.

One private instance per module runs the whole outbound path (smtpd,
cleanup, qmgr, smtp) with relayhost pointing at a local SMTP sink, and
these smtpd services, all on 127.0.0.1:

    sub      the submission service as conf/master.cf ships it (with the
             commented sender restriction enabled): STARTTLS
             required (smtpd_tls_security_level = encrypt), AUTH only after
             TLS, AUTH required before MAIL (smtpd_sasl_auth_required),
             authenticated clients relay, senders checked against
             smtpd_sender_login_maps (reject_sender_login_mismatch);
             syslog_name = postfix/submission, so that fail2ban's stock
             postfix filter reads its lines unchanged
    strict   the same with smtpd_hard_error_limit = 3 (and Postern's own
             syslog_name)
    plain    AUTH over plaintext, not required (a port-25 style service):
             reject_unauthenticated_sender_login_mismatch, AUTH= ignored
             from clients that did not authenticate
    noauth   no AUTH at all (smtpd_sasl_auth_enable = no)
    broken   AUTH required but no password table: must fail closed
    smtps    implicit TLS (smtpd_tls_wrappermode = yes, port 465 style)

Credentials live in a Postern password table (texthash:) with crypt(3)
hashes of three kinds: sha512-crypt (alice), yescrypt (bob), bcrypt
(carol). Certificates and the CA are made by openssl at test time
(tls_support.py).

The Dovecot test starts Debian's dovecot in a private configuration
(dovecot_support.py) and points a second instance at its auth socket;
Dovecot penalises a client address after failed logins (its "auth
penalty"), so each attempt there comes from its own 127.0.0.x address.
"""

import base64
import email
import email.policy
import ctypes
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import pytest

import conftest
import dovecot_support
import tls_support
from fakedns import FakeDNS
from smtpd_support import SmtpClient
from smtpsink import SmtpSink

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt

HOSTNAME = "mx.example.com"
EXTERNAL = "friend@external.example"
USERS = {
    "alice": ("alice-secret", "$6$"),        # sha512-crypt
    "bob": ("bob pass phrase", "$y$"),       # yescrypt
    "carol": ("carol-p\u00e4ss", "$2b$"),    # bcrypt, non-ASCII password
}
# smtpd_sender_login_maps: sender -> owners (Postfix's lookup order:
# full address, then user (local domains), then @domain).
SENDER_LOGINS = {
    "alice@example.com": "alice",
    "shared@example.com": "alice, bob",
    "bob@example.com": "bob",
    "@team.example": "bob",
    "carol@example.com": "carol",
}
FAIL_LINE = re.compile(r"warning: localhost\[127\.0\.0\.1\]: SASL (\S+) authentication failed: (.*)$",
                       re.M)
WAIT = 20      # seconds for a message to reach the sink
F2B_TIMEOUT = 120
# fail2ban's postfix filter, told of a syslog_name other than "postfix/...".
POSTERN_F2B_FILTER = r'postfix[mode=auth, _daemon="postern(-\w+)?/\w+(?:/smtp[ds])?"]'


# -- credentials ----------------------------------------------------------------

def crypt_hash(password, prefix):
    """A crypt(3) hash of the given kind, salted by libcrypt itself."""
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    salt = lib.crypt_gensalt(prefix.encode(), 0, None, 0)
    assert salt, f"libcrypt cannot make {prefix} salts"
    hashed = crypt.crypt(password, salt.decode())
    assert hashed and hashed.startswith(prefix), (prefix, hashed)
    return hashed


def b64(text):
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def plain(user, password, authzid=""):
    """RFC 4616 message: authzid NUL authcid NUL passwd."""
    return b64(f"{authzid}\0{user}\0{password}")


# -- the instance ---------------------------------------------------------------

def shipped_args(service, syslog_name):
    """The -o overrides of SERVICE in the shipped conf/master.cf, with the
    commented-out ones enabled (as the admin would) and SYSLOG_NAME."""
    args, inside = [], False
    for line in (conftest.SRC / "conf" / "master.cf").read_text().splitlines():
        if line.split()[:1] == [service]:
            inside = True
            continue
        if inside and re.match(r"^#?\s+-o\s", line):
            opt = line.lstrip("#").split()[1]
            if not opt.startswith("syslog_name="):
                args.append(f"-o {opt}")
        elif inside and line.strip() and not line.startswith("#"):
            break
    assert args, f"no {service} entry in conf/master.cf"
    return " ".join([f"-o syslog_name={syslog_name}"] + args)


SUB_ARGS = shipped_args("submission", "postfix/submission")


class Env:
    """The module's instance, sink, DNS server and certificates."""

    def __init__(self):
        conftest.ensure_mail_user()
        self.root = Path(tempfile.mkdtemp(prefix="postern-test-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.inst = conftest.Instance(self.root)
        tls = self.root / "tls"
        self.ca = tls_support.make_ca(tls)
        self.rsa = tls_support.make_cert(tls, self.ca, "rsa")
        self.ecdsa = tls_support.make_cert(tls, self.ca, "ecdsa")
        self.dns = FakeDNS().start()
        self.sink = SmtpSink("127.0.0.1", 0, name="sink.example").start()
        self.ports = {name: conftest.get_free_port()
                      for name in ("sub", "strict", "plain", "noauth", "broken", "smtps")}
        conf = self.inst.conf_dir
        (conf / "sasl_passwd").write_text(
            "".join(f"{u} {crypt_hash(p, kind)}\n" for u, (p, kind) in USERS.items()))
        (conf / "sender_logins").write_text(
            "".join(f"{k} {v}\n" for k, v in SENDER_LOGINS.items()))
        p = self.ports
        master = (
            f"127.0.0.1:{p['sub']} inet n - n - - smtpd {SUB_ARGS}\n"
            f"127.0.0.1:{p['strict']} inet n - n - - smtpd {SUB_ARGS.replace('postfix/submission', 'postern/strict')}"
            " -o smtpd_hard_error_limit=3\n"
            f"127.0.0.1:{p['plain']} inet n - n - - smtpd -o smtpd_sasl_auth_enable=yes"
            " -o smtpd_sender_restrictions=reject_unauthenticated_sender_login_mismatch\n"
            f"127.0.0.1:{p['noauth']} inet n - n - - smtpd\n"
            f"127.0.0.1:{p['broken']} inet n - n - - smtpd -o smtpd_sasl_auth_enable=yes"
            " -o smtpd_sasl_auth_required=yes -o smtpd_sasl_password_maps=\n"
            f"127.0.0.1:{p['smtps']} inet n - n - - smtpd "
            f"{shipped_args('smtps', 'postern/smtps')}\n"
            "cleanup unix n - n - 0 cleanup\n"
            "qmgr unix n - n 300 1 qmgr\n"
            "smtp unix - - n - - smtp\n"
            "bounce unix - - n - 0 bounce\n")
        main = {
            "myhostname": HOSTNAME,
            "mydomain": "example.com",
            "mydestination": "$myhostname, localhost",
            # Clients on 127.0.0.1 are strangers: only AUTH lets them relay.
            "mynetworks": "192.0.2.0/24",
            "relayhost": f"[127.0.0.1]:{self.sink.port}",
            "dns_servers": self.dns.server_spec,
            "inet_protocols": "ipv4",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "inline:{ root=ok }",
            "smtpd_tls_chain_files": f"{self.rsa.key}, {self.rsa.chain}, "
                                     f"{self.ecdsa.key}, {self.ecdsa.chain}",
            "smtpd_sasl_type": "postern",
            "smtpd_sasl_password_maps": f"texthash:{conf}/sasl_passwd",
            "smtpd_sasl_authenticated_header": "yes",
            "smtpd_sender_login_maps": f"texthash:{conf}/sender_logins",
            "smtpd_error_sleep_time": "0",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_timeout": "30s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "queue_run_delay": "1s",
        }
        self.inst.write_main_cf(main)
        self.inst.write_master_cf(master)
        self.inst.start()

    def client(self, service="sub", greet=True):
        c = SmtpClient(self.ports[service])
        if greet:
            c.greet()
        return c

    def tls_client(self, service="sub", ehlo=True):
        """A client on SERVICE after STARTTLS (verified against the test CA) and EHLO."""
        c = self.client(service)
        c.ehlo()
        assert c.cmd("STARTTLS").startswith("220"), "STARTTLS refused"
        assert c.buf == b""
        c.sock = tls_support.client_context(self.ca).wrap_socket(c.sock,
                                                                 server_hostname="localhost")
        if ehlo:
            c.lines = c.ehlo()
        return c

    def smtps_client(self):
        sock = socket.create_connection(("127.0.0.1", self.ports["smtps"]), timeout=15)
        c = SmtpClient.__new__(SmtpClient)
        c.sock = tls_support.client_context(self.ca).wrap_socket(sock, server_hostname="localhost")
        c.buf = b""
        c.greet()
        c.lines = c.ehlo()
        return c

    def login(self, c, user="alice"):
        assert c.cmd(f"AUTH PLAIN {plain(user, USERS[user][0])}") == \
            "235 2.7.0 Authentication successful"

    def log(self, since=0):
        return self.inst.log_text()[since:]

    def wait_sink(self, token, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.sink.lock:
                for m in self.sink.messages:
                    if token.encode() in m.data:
                        return m
            time.sleep(0.05)
        pytest.fail(f"message {token} did not reach the sink; log:\n{self.log()[-5000:]}")

    def close(self):
        self.sink.stop()
        self.dns.stop()
        leftovers = self.inst.cleanup()
        reports = self.inst.sanitizer_reports()
        crashes = re.findall(r".*(?:killed by signal|exit status [1-9]|panic:|fatal:).*",
                             self.inst.log_text())
        problems = []
        if leftovers:
            problems.append(f"processes left after stop: {leftovers}")
        if reports:
            problems.append("sanitizer reports:\n" + "\n".join(reports))
        if crashes:
            problems.append("processes died:\n" + "\n".join(crashes[:20]))
        if problems:
            pytest.fail(f"{self.root}: " + "\n".join(problems))
        if not os.environ.get("POSTERN_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def env(build):
    e = Env()
    yield e
    e.close()


def message(token, sender, rcpt=EXTERNAL):
    return (f"From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: auth test {token}\r\n"
            f"Message-ID: <{token}@client.example>\r\nX-Token: {token}\r\n\r\n"
            f"Body of {token}.\r\n.\r\n")


def send(c, sender, token, rcpt=EXTERNAL, mail_params=""):
    """MAIL, RCPT, DATA on an authenticated session; the queue id."""
    assert c.cmd(f"MAIL FROM:<{sender}>{mail_params}").startswith("250")
    reply = c.cmd(f"RCPT TO:<{rcpt}>")
    assert reply.startswith("250"), reply
    assert c.cmd("DATA").startswith("354")
    c.send_raw(message(token, sender, rcpt))
    reply = c.text()
    assert reply.startswith("250 2.0.0 Ok: queued as "), reply
    return reply.split()[-1]


def token():
    return f"t{time.monotonic_ns()}"


# -- before TLS, before AUTH ----------------------------------------------------

def test_no_auth_before_starttls(env):
    """AUTH is neither offered nor accepted in plaintext; MAIL needs TLS first."""
    with env.client() as c:
        lines = c.ehlo()
        assert "STARTTLS" in lines
        assert not any(line.startswith("AUTH") for line in lines)
        assert c.cmd(f"AUTH PLAIN {plain('alice', USERS['alice'][0])}") == \
            "530 5.7.0 Must issue a STARTTLS command first"
        assert c.cmd("MAIL FROM:<alice@example.com>") == \
            "530 5.7.0 Must issue a STARTTLS command first"
        assert c.cmd("NOOP").startswith("250")


def test_mail_before_auth(env):
    """After STARTTLS: AUTH PLAIN LOGIN offered; MAIL before AUTH gets 530 5.7.0."""
    with env.tls_client() as c:
        assert "AUTH PLAIN LOGIN" in c.lines
        assert not any(line.startswith("AUTH=") for line in c.lines)
        assert c.cmd("MAIL FROM:<alice@example.com>") == "530 5.7.0 Authentication required"
        assert c.cmd("RCPT TO:<friend@external.example>").startswith("503")
        assert c.cmd("RSET").startswith("250")
        env.login(c)
        assert c.cmd("MAIL FROM:<alice@example.com>").startswith("250")


# -- credentials ----------------------------------------------------------------

def test_wrong_password(env):
    """535 5.7.8 and Postfix's log line; the session goes on; the password is never logged."""
    mark = env.inst.log_mark()
    with env.tls_client() as c:
        assert c.cmd(f"AUTH PLAIN {plain('alice', 'guess-1')}") == \
            "535 5.7.8 Error: authentication failed: authentication failure"
        # An unknown user looks exactly the same (no user enumeration).
        assert c.cmd(f"AUTH PLAIN {plain('mallory', 'guess-2')}") == \
            "535 5.7.8 Error: authentication failed: authentication failure"
        assert c.cmd("NOOP").startswith("250")
        env.login(c)
    log = env.log(mark)
    fails = FAIL_LINE.findall(log)
    assert fails == [("PLAIN", "authentication failure")] * 2, log
    assert "guess-1" not in log and "guess-2" not in log
    assert USERS["alice"][0] not in log


@pytest.mark.parametrize("user", sorted(USERS))
def test_plain_relays(env, user):
    """AUTH PLAIN with each hash kind, then relay to an external domain via relayhost."""
    sender = {"alice": "alice@example.com", "bob": "bob@example.com",
              "carol": "carol@example.com"}[user]
    t = token()
    mark = env.inst.log_mark()
    with env.tls_client() as c:
        env.login(c, user)
        qid = send(c, sender, t)
        assert c.cmd("QUIT").startswith("221")
    msg = env.wait_sink(t)
    assert msg.mail_from == sender
    assert msg.rcpts == [EXTERNAL]
    received = [" ".join(str(r).split()) for r in
                email.message_from_bytes(msg.data, policy=email.policy.default).get_all("Received")]
    assert any("with ESMTPSA id" in r and f"(Authenticated sender: {user})" in r
               for r in received), received
    log = env.log(mark)
    assert re.search(rf"{qid}: client=localhost\[127\.0\.0\.1\], sasl_method=PLAIN, "
                     rf"sasl_username={user}$", log, re.M), log


def test_login_mechanism(env):
    """AUTH LOGIN: the two challenges of the de-facto standard, with and without initial response."""
    with env.tls_client() as c:
        assert c.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6"
        assert c.cmd(b64("bob")) == "334 UGFzc3dvcmQ6"
        assert c.cmd(b64(USERS["bob"][0])) == "235 2.7.0 Authentication successful"
        t = token()
        send(c, "member@team.example", t)     # @team.example belongs to bob
    assert env.wait_sink(t).mail_from == "member@team.example"
    with env.tls_client() as c:
        assert c.cmd(f"AUTH LOGIN {b64('carol')}") == "334 UGFzc3dvcmQ6"
        assert c.cmd(b64(USERS["carol"][0])) == "235 2.7.0 Authentication successful"


def test_plain_without_initial_response(env):
    """AUTH PLAIN, an empty 334 challenge, then the response on its own line."""
    with env.tls_client() as c:
        assert c.cmd("AUTH PLAIN") == "334"
        assert c.cmd(plain("alice", USERS["alice"][0])) == "235 2.7.0 Authentication successful"


# -- sender ownership -----------------------------------------------------------

def test_sender_not_owned(env):
    """reject_sender_login_mismatch: 553 5.7.1 at RCPT, as Postfix with smtpd_delay_reject."""
    mark = env.inst.log_mark()
    with env.tls_client() as c:
        env.login(c, "alice")
        for sender in ("bob@example.com", "member@team.example", "nobody@example.com"):
            assert c.cmd(f"MAIL FROM:<{sender}>").startswith("250")
            assert c.cmd(f"RCPT TO:<{EXTERNAL}>") == \
                f"553 5.7.1 <{sender}>: Sender address rejected: not owned by user alice"
            assert c.cmd("RSET").startswith("250")
        t = token()
        send(c, "shared@example.com", t)       # listed for alice and bob
    env.wait_sink(t)
    assert re.search(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 553 5\.7\.1 "
                     r"<bob@example\.com>: Sender address rejected: not owned by user alice; "
                     r"from=<bob@example\.com> to=<friend@external\.example> proto=ESMTP",
                     env.log(mark)), env.log(mark)


def test_unauthenticated_sender_owned(env):
    """reject_unauthenticated_sender_login_mismatch on a service without required AUTH."""
    with env.client("plain") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<alice@example.com>").startswith("250")
        assert c.cmd(f"RCPT TO:<root@{HOSTNAME}>") == \
            "553 5.7.1 <alice@example.com>: Sender address rejected: not logged in"
        assert c.cmd("RSET").startswith("250")
        # An address nobody owns is fine without AUTH.
        assert c.cmd("MAIL FROM:<stranger@elsewhere.example>").startswith("250")
        assert c.cmd(f"RCPT TO:<root@{HOSTNAME}>").startswith("250")
        assert c.cmd("RSET").startswith("250")
        # Unauthenticated clients do not relay.
        assert c.cmd("MAIL FROM:<stranger@elsewhere.example>").startswith("250")
        assert c.cmd(f"RCPT TO:<{EXTERNAL}>").startswith("554 5.7.1")


# -- MAIL FROM ... AUTH= ----------------------------------------------------------

def test_auth_parameter(env):
    """AUTH=<mailbox> is kept and logged for authenticated clients, ignored otherwise."""
    mark = env.inst.log_mark()
    with env.tls_client() as c:
        env.login(c)
        t1, t2 = token(), token()
        qid1 = send(c, "alice@example.com", t1, mail_params=" AUTH=<>")
        qid2 = send(c, "alice@example.com", t2, mail_params=" AUTH=alice+2Blist@example.com")
        assert c.cmd("MAIL FROM:<alice@example.com> AUTH=bad+ZZxtext").startswith("501 5.5.4")
    env.wait_sink(t1)
    env.wait_sink(t2)
    log = env.log(mark)
    assert re.search(rf"{qid1}: client=localhost\[127\.0\.0\.1\], sasl_method=PLAIN, "
                     rf"sasl_username=alice$", log, re.M), log
    assert re.search(rf"{qid2}: client=localhost\[127\.0\.0\.1\], sasl_method=PLAIN, "
                     rf"sasl_username=alice, sasl_sender=alice\+list@example\.com$", log, re.M), log
    # Without AUTH the parameter is accepted but ignored (RFC 4954 5). The
    # queue file opens at the first valid RCPT, which logs "client=".
    mark = env.inst.log_mark()
    with env.client("plain") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<stranger@elsewhere.example> AUTH=<alice@example.com>")\
            .startswith("250")
        assert c.cmd(f"RCPT TO:<root@{HOSTNAME}>").startswith("250")
        assert c.cmd("RSET").startswith("250")
    m = env.inst.wait_for_log(r"^.*: client=localhost\[127\.0\.0\.1\].*$", since=mark)
    assert m.group(0).endswith(": client=localhost[127.0.0.1]"), m.group(0)


# -- protocol errors ------------------------------------------------------------

def test_bad_input(env):
    """Every malformed AUTH gets its reply and the server goes on serving."""
    limit = 12288
    with env.tls_client() as c:
        assert c.cmd("AUTH") == "501 5.5.4 Syntax: AUTH mechanism"
        assert c.cmd("AUTH PLAIN a b") == "501 5.5.4 Syntax: AUTH mechanism"
        assert c.cmd("AUTH FOOBAR") == "504 5.5.4 Unrecognized authentication type"
        assert c.cmd("AUTH " + "X" * 21) == "504 5.5.4 Unrecognized authentication type"
        assert c.cmd("AUTH PLAIN !!!notbase64") == "501 5.5.2 Cannot decode response"
        assert c.cmd("AUTH PLAIN") == "334"
        assert c.cmd("*") == "501 5.7.0 Authentication aborted"
        assert c.cmd("AUTH LOGIN") == "334 VXNlcm5hbWU6"
        assert c.cmd("%%%") == "501 5.5.2 Cannot decode response"
        assert c.cmd("AUTH PLAIN") == "334"
        assert c.cmd("A" * (limit + 4)) == "500 5.5.6 SASL response limit exceeded"
        assert c.cmd("AUTH PLAIN " + "A" * (limit + 4)) == "500 5.5.6 SASL response limit exceeded"
        # Longer than any AUTH line may be: a command line error, not a hang.
        assert c.cmd("AUTH PLAIN " + "A" * (limit + 100)) == "500 5.5.2 Error: command line too long"
        assert c.cmd("AUTH PLAIN =")[:1] == "5"       # "=": an empty response
        assert c.cmd("NOOP").startswith("250")
        env.login(c)
        assert c.cmd(f"AUTH PLAIN {plain('alice', USERS['alice'][0])}") == \
            "503 5.5.1 Error: already authenticated"
        assert c.cmd("MAIL FROM:<alice@example.com>").startswith("250")
        assert c.cmd("AUTH LOGIN") == "503 5.5.1 Error: MAIL transaction in progress"
        assert c.cmd("RSET").startswith("250")
        t = token()
        send(c, "alice@example.com", t)
    env.wait_sink(t)


def test_auth_during_transaction_before_login(env):
    """On a service where AUTH is optional, AUTH inside a transaction is refused."""
    with env.client("plain") as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<stranger@elsewhere.example>").startswith("250")
        assert c.cmd("AUTH PLAIN " + plain("alice", USERS["alice"][0])) == \
            "503 5.5.1 Error: MAIL transaction in progress"
        assert c.cmd("RSET").startswith("250")
        env.login(c)


def test_hard_error_limit(env):
    """Failed AUTH commands are errors: at smtpd_hard_error_limit the session ends."""
    mark = env.inst.log_mark()
    with env.tls_client("strict") as c:
        assert c.cmd(f"AUTH PLAIN {plain('alice', 'x1')}").startswith("535 5.7.8")
        assert c.cmd(f"AUTH PLAIN {plain('alice', 'x2')}").startswith("535 5.7.8")
        assert c.cmd(f"AUTH PLAIN {plain('alice', 'x3')}").startswith("535 5.7.8")
        assert c.text() == f"421 4.7.0 {HOSTNAME} Error: too many errors"
        assert c.closed()
    env.inst.wait_for_log(r"too many errors after AUTH from localhost\[127\.0\.0\.1\]", since=mark)


def test_auth_not_enabled(env):
    """A service without smtpd_sasl_auth_enable neither offers nor takes AUTH or AUTH=."""
    with env.client("noauth") as c:
        lines = c.ehlo()
        assert not any(line.startswith("AUTH") for line in lines)
        assert c.cmd(f"AUTH PLAIN {plain('alice', USERS['alice'][0])}") == \
            "503 5.5.1 Error: authentication not enabled"
        assert c.cmd("MAIL FROM:<x@elsewhere.example> AUTH=<>").startswith("555 5.5.4")
        assert c.cmd("NOOP").startswith("250")
    with env.client("plain") as c:
        assert "AUTH PLAIN LOGIN" in c.ehlo()       # in clear: smtpd_tls_auth_only = no


def test_backend_unusable_fails_closed(env):
    """No password table: AUTH not offered, AUTH refused with 454, no mail without AUTH."""
    with env.client("broken") as c:
        lines = c.ehlo()
        assert not any(line.startswith("AUTH") for line in lines)
        assert c.cmd(f"AUTH PLAIN {plain('alice', USERS['alice'][0])}") == \
            "454 4.7.0 Temporary authentication failure: server configuration error"
        assert c.cmd("MAIL FROM:<alice@example.com>") == "530 5.7.0 Authentication required"
    assert re.search(r"warning: SASL authentication \(smtpd_sasl_type = postern\) is "
                     r"unavailable: smtpd_sasl_password_maps is empty", env.log())


def test_cyrus_is_refused(postern_instance, free_port):
    """smtpd_sasl_type = cyrus: smtpd stops at once and says which types exist."""
    port = free_port()
    inst = postern_instance(f"127.0.0.1:{port} inet n - n - - smtpd -o smtpd_sasl_auth_enable=yes"
                            " -o smtpd_sasl_type=cyrus\n",
                            {"inet_protocols": "ipv4", "service_throttle_time": "60s"})
    # master starts smtpd for the first client; smtpd stops before it greets.
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        inst.wait_for_log(r"fatal: smtpd_sasl_type = cyrus is not supported: use \"postern\" "
                          r".* or \"dovecot\"")


# -- implicit TLS -----------------------------------------------------------------

def test_smtps_auth(env):
    """Port 465 style: TLS from the first octet, AUTH offered at once."""
    try:
        c = env.smtps_client()
    except (ssl.SSLError, OSError, EOFError) as e:
        pytest.fail(f"implicit TLS service unusable: {e}; log:\n{env.log()[-3000:]}")
    with c:
        assert "AUTH PLAIN LOGIN" in c.lines
        assert c.cmd("MAIL FROM:<alice@example.com>") == "530 5.7.0 Authentication required"
        assert c.cmd("AUTH LOGIN " + b64("alice")) == "334 UGFzc3dvcmQ6"
        assert c.cmd(b64(USERS["alice"][0])) == "235 2.7.0 Authentication successful"
        t = token()
        send(c, "alice@example.com", t)
    env.wait_sink(t)


# -- a real client ----------------------------------------------------------------

def test_msmtp_submission(env):
    """Debian's msmtp: STARTTLS (verifying the test CA) and AUTH PLAIN on the submission port."""
    msmtp = shutil.which("msmtp")
    if msmtp is None:
        pytest.skip("msmtp is not installed")
    t = token()
    rc = env.root / "msmtprc"
    rc.write_text(
        "defaults\n"
        f"logfile {env.root}/msmtp.log\n"
        "account submission\n"
        "host 127.0.0.1\n"
        f"port {env.ports['sub']}\n"
        "domain client.example\n"
        "from alice@example.com\n"
        "tls on\n"
        "tls_starttls on\n"
        f"tls_trust_file {env.ca.cert}\n"
        "tls_host_override localhost\n"
        "auth plain\n"
        "user alice\n"
        f"password {USERS['alice'][0]}\n")
    os.chmod(rc, 0o600)
    r = subprocess.run([msmtp, "-C", str(rc), "-a", "submission", EXTERNAL],
                       input=message(t, "alice@example.com").replace("\r\n.\r\n", "\r\n"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"msmtp failed ({r.returncode}):\n{r.stderr}\n{env.log()[-3000:]}"
    msg = env.wait_sink(t)
    assert msg.mail_from == "alice@example.com"
    assert b"with ESMTPSA id" in msg.data


# -- fail2ban ---------------------------------------------------------------------

def fail2ban_regex(log_path, filt):
    """The client addresses fail2ban-regex finds in a log file with a filter (one per match)."""
    r = subprocess.run(["fail2ban-regex", "-o", "ip", str(log_path), filt],
                       capture_output=True, text=True, timeout=F2B_TIMEOUT)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.split()


def test_fail2ban_matches_failed_auth(env, tmp_path):
    """Debian's fail2ban postfix filter (mode auth, the postfix-sasl jail) bans on our line."""
    if shutil.which("fail2ban-regex") is None:
        pytest.skip("fail2ban is not installed")
    mark = env.inst.log_mark()
    with env.tls_client() as c:
        c.cmd("AUTH LOGIN")
        c.cmd(b64("alice"))
        assert c.cmd(b64("wrong")).startswith("535 5.7.8")
    env.inst.wait_for_log(r"SASL LOGIN authentication failed", since=mark)
    lines = [line for line in env.log(mark).splitlines() if "SASL LOGIN authentication failed" in line]
    assert len(lines) == 1, lines
    line = lines[0]
    assert re.search(r" postfix/submission/smtpd\[\d+\]: warning: localhost\[127\.0\.0\.1\]: "
                     r"SASL LOGIN authentication failed: authentication failure$", line), line
    good = tmp_path / "mail.log"
    good.write_text(line + "\n")
    assert fail2ban_regex(good, "postfix[mode=auth]") == ["127.0.0.1"]
    # The test can fail: an altered line must not match.
    bad = tmp_path / "altered.log"
    bad.write_text(line.replace("authentication failed", "authentication fails") + "\n")
    assert fail2ban_regex(bad, "postfix[mode=auth]") == []


def test_fail2ban_postern_syslog_name(env, tmp_path):
    """With syslog_name = postern/... the filter matches once told the daemon name."""
    if shutil.which("fail2ban-regex") is None:
        pytest.skip("fail2ban is not installed")
    mark = env.inst.log_mark()
    with env.tls_client("strict") as c:
        assert c.cmd(f"AUTH PLAIN {plain('bob', 'wrong')}").startswith("535 5.7.8")
    env.inst.wait_for_log(r"postern/strict/smtpd\[\d+\]: warning: .*SASL PLAIN authentication "
                          r"failed", since=mark)
    log = tmp_path / "mail.log"
    log.write_text("".join(line + "\n" for line in env.log(mark).splitlines()
                           if "SASL PLAIN authentication failed" in line))
    assert fail2ban_regex(log, POSTERN_F2B_FILTER) == ["127.0.0.1"]
    # Unchanged, the filter expects Postfix's "postfix/" prefix.
    assert fail2ban_regex(log, "postfix[mode=auth]") == []


# -- Dovecot's auth socket ----------------------------------------------------------

DOVECOT_USERS = {"dave": "dave-secret", "erin@example.com": "erin pass"}


@pytest.fixture
def dovecot():
    """Dovecot with a passwd-file of SHA512-CRYPT hashes; the socket is mode 0666."""
    if not dovecot_support.available():
        pytest.skip("dovecot-core is not installed")
    d = dovecot_support.Dovecot(users={u: "{SHA512-CRYPT}" + crypt_hash(p, "$6$")
                                       for u, p in DOVECOT_USERS.items()}).start()
    yield d
    d.cleanup()


def dovecot_try(port, source, *exchange):
    """One session from SOURCE (Dovecot penalises an address after failures):
    EHLO, then each (line, expected reply prefix); the EHLO lines."""
    with SmtpClient(port, source=source) as c:
        c.greet()
        lines = c.ehlo()
        for line, expect in exchange:
            reply = c.cmd(line)
            assert reply.startswith(expect), (line, reply)
        assert c.cmd("NOOP").startswith("250")
    return lines


def test_dovecot_auth_socket(postern_instance, free_port, dovecot):
    """smtpd_sasl_type = dovecot: mechanisms, success, failure and a dead backend."""
    port = free_port()
    inst = postern_instance(
        f"127.0.0.1:{port} inet n - n - - smtpd -o smtpd_sasl_auth_enable=yes"
        " -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n"
        "cleanup unix n - n - 0 cleanup\n",
        {"smtpd_sasl_type": "dovecot", "smtpd_sasl_path": dovecot.socket_path,
         "inet_interfaces": "127.0.0.1", "inet_protocols": "ipv4", "myhostname": HOSTNAME,
         "mynetworks": "192.0.2.0/24", "smtpd_error_sleep_time": "0", "alias_maps": "",
         "smtpd_peername_lookup": "no"})
    fail = "535 5.7.8 Error: authentication failed: (reason unavailable)"
    lines = dovecot_try(port, "127.0.0.11", (f"AUTH PLAIN {plain('dave', 'wrong')}", fail))
    assert "AUTH PLAIN LOGIN" in lines       # Dovecot's auth_mechanisms
    dovecot_try(port, "127.0.0.12", (f"AUTH PLAIN {plain('nobody', 'wrong')}", fail))
    dovecot_try(port, "127.0.0.13", ("AUTH LOGIN", "334 VXNlcm5hbWU6"),
                (b64("erin@example.com"), "334 UGFzc3dvcmQ6"), (b64("not erin's"), fail))
    dovecot_try(port, "127.0.0.14", ("AUTH LOGIN", "334 VXNlcm5hbWU6"),
                (b64("erin@example.com"), "334 UGFzc3dvcmQ6"),
                (b64(DOVECOT_USERS["erin@example.com"]), "235 2.7.0 Authentication successful"),
                # Authenticated: relaying is allowed.
                ("MAIL FROM:<erin@example.com>", "250"), (f"RCPT TO:<{EXTERNAL}>", "250"),
                ("RSET", "250"))
    dovecot_try(port, "127.0.0.15",
                (f"AUTH PLAIN {plain('dave', DOVECOT_USERS['dave'])}", "235 2.7.0"),
                ("AUTH LOGIN", "503 5.5.1 Error: already authenticated"))
    log = inst.log_text()
    fails = re.findall(r"postfix/smtpd\[\d+\]: warning: unknown\[127\.0\.0\.1[1-5]\]: "
                       r"SASL (PLAIN|LOGIN) authentication failed: ", log)
    assert fails == ["PLAIN", "PLAIN", "LOGIN"], log
    assert "Password mismatch" in dovecot.log_text()
    if shutil.which("fail2ban-regex"):
        f2b = Path(inst.root) / "f2b.log"
        f2b.write_text("".join(line + "\n" for line in log.splitlines()
                               if "authentication failed" in line))
        assert fail2ban_regex(f2b, "postfix[mode=auth]") == [f"127.0.0.{n}" for n in (11, 12, 13)]
    # Dovecot gone: a temporary failure, not a failed login (fail2ban must not ban).
    dovecot.stop()
    mark = inst.log_mark()
    with SmtpClient(port, source="127.0.0.16") as c:
        c.greet()
        c.ehlo()
        reply = c.cmd(f"AUTH PLAIN {plain('dave', DOVECOT_USERS['dave'])}")
        assert reply.startswith("454 4.7.0 Temporary authentication failure") or \
            reply == "504 5.5.4 Unrecognized authentication type", reply
        assert c.cmd("NOOP").startswith("250")
    assert "authentication failed:" not in inst.log_text()[mark:], inst.log_text()[mark:]
