"""The anvil service and smtpd's per-client limits (anvil(8), docs/protocols.md section 8).

Each test starts a private instance running smtpd on a free port of
127.0.0.1, the anvil service, and a stand-in cleanup (smtpd_support's
FakeCleanup), and drives it over real sockets: SMTP clients for smtpd, the
attribute protocol (attrproto.py) for anvil itself.

To show that counts are shared between processes, smtpd is started through
a wrapper that lowers its descriptor limit so that each process holds at
most two sessions: the third client is then served by a second process,
and anvil still counts it with the first two.
"""

import base64
import os
import re
import signal
import socket
import stat
import time

import pytest

import tls_support
from attrproto import AttrClient, encode
from conftest import BUILD
from smtpd_support import HOSTNAME, LOCAL_USER, FakeCleanup, SmtpClient, base_main_cf

ANVIL_LINE = "anvil unix - - n - 1 anvil\n"
SMTPD_FD_RESERVE = 64        # smtpd.c: descriptors kept back from sessions
SMTPD_FD_PER_SESSION = 2
ANVIL_CLNT_RETRY_DELAY = 2   # lib/mail/anvil_clnt.h: seconds without a try after a failure


class Server:
    def __init__(self, inst, port, cleanup):
        self.inst = inst
        self.port = port
        self.cleanup = cleanup
        self.service = f"127.0.0.1:{port}"
        self.ident = f"{self.service}:127.0.0.1"

    def client(self, greet=True):
        c = SmtpClient(self.port)
        if greet:
            c.greet()
        return c

    def anvil_path(self):
        return self.inst.queue_dir / "private" / "anvil"

    def anvil(self, timeout=30):
        """A protocol connection to anvil (master starts anvil on demand)."""
        return AttrClient(self.anvil_path(), timeout=timeout)

    def lookup(self, ident=None):
        with self.anvil() as a:
            r = a.request([("request", "lookup"), ("ident", ident or self.ident)])
        assert r.get("status") == 0, r
        return r.as_dict()

    def smtpd_pids(self):
        return self.inst.service_pids(self.service)

    def anvil_pids(self):
        return self.inst.service_pids("anvil")


def smtpd_wrapper(inst, sessions):
    """A command that runs smtpd with room for `sessions` sessions per process."""
    path = inst.root / "smtpd-limited"
    nofile = SMTPD_FD_RESERVE + SMTPD_FD_PER_SESSION * sessions
    path.write_text("#!/bin/sh\n"
                    f"ulimit -n {nofile}\n"
                    f"exec {BUILD}/bin/smtpd \"$@\"\n")
    os.chmod(path, 0o755)
    return str(path)


@pytest.fixture
def anvil_server(postern_instance, free_port):
    fakes = []

    def make(main_cf=None, anvil=True, sessions_per_process=None):
        port = free_port()
        inst = postern_instance("", start=False)
        command = smtpd_wrapper(inst, sessions_per_process) if sessions_per_process else "smtpd"
        master_cf = f"127.0.0.1:{port} inet n - n - - {command}\n"
        if anvil:
            master_cf += ANVIL_LINE
        inst.write_master_cf(master_cf)
        main = base_main_cf(inst)
        # main_cf may need the instance's paths: then it is a function of it.
        main.update((main_cf(inst) if callable(main_cf) else main_cf) or {})
        inst.write_main_cf(main)
        (inst.conf_dir / "aliases").write_text("postmaster root\n")
        inst.start()
        fake = FakeCleanup(str(inst.queue_dir))
        fakes.append(fake)
        srv = Server(inst, port, fake)
        if anvil:
            # Let master start anvil before smtpd's first request, so that no
            # request of a test waits for a process start.
            srv.lookup()
        return srv

    yield make
    for f in fakes:
        f.stop()


def quit_session(c):
    assert c.cmd("QUIT").startswith("221")
    c.close()


def wait_count(srv, count, timeout=10):
    deadline = time.monotonic() + timeout
    while srv.lookup()["count"] != count:
        assert time.monotonic() < deadline, f"anvil count stays {srv.lookup()['count']}"
        time.sleep(0.05)


# -- connection count across processes --------------------------------------------

def test_connection_count_limit_across_processes(anvil_server):
    srv = anvil_server({"smtpd_client_connection_count_limit": "2"}, sessions_per_process=2)
    c1 = srv.client()
    c2 = srv.client()
    first = srv.smtpd_pids()
    assert len(first) == 1, "two sessions should fit in one smtpd process"
    # The first process is full: master starts a second one for the third client.
    c3 = srv.client(greet=False)
    assert c3.text() == f"421 4.7.0 {HOSTNAME} Error: too many connections from 127.0.0.1"
    assert c3.closed()
    pids = srv.smtpd_pids()
    assert len(pids) == 2, pids
    m = srv.inst.wait_for_log(r"postfix/smtpd\[(\d+)\]: warning: Connection concurrency limit "
                              r"exceeded: 3 from localhost\[127\.0\.0\.1\] for service "
                              + re.escape(srv.service) + "$")
    assert int(m.group(1)) != first[0], "the refusal must come from the second process"
    c3.close()
    # Sessions that end give their slot back, whichever process served them.
    quit_session(c1)
    wait_count(srv, 1)
    c4 = srv.client()
    assert c4.cmd("NOOP").startswith("250")
    assert srv.lookup()["count"] == 2
    quit_session(c2)
    quit_session(c4)
    wait_count(srv, 0)


def test_killed_smtpd_gives_its_connections_back(anvil_server):
    srv = anvil_server({"smtpd_client_connection_count_limit": "2"})
    c1 = srv.client()
    c2 = srv.client()
    assert srv.lookup()["count"] == 2
    (pid,) = srv.smtpd_pids()
    os.kill(pid, signal.SIGKILL)
    # anvil sees the process's connection close and forgets its sessions.
    wait_count(srv, 0)
    c1.close()
    c2.close()
    c3 = srv.client()
    assert c3.cmd("NOOP").startswith("250")
    quit_session(c3)


# -- rates ------------------------------------------------------------------------

def test_connection_rate_limit(anvil_server):
    srv = anvil_server({"smtpd_client_connection_count_limit": "0",
                        "smtpd_client_connection_rate_limit": "3"})
    for _ in range(3):
        quit_session(srv.client())
    c = srv.client(greet=False)
    assert c.text() == f"421 4.7.0 {HOSTNAME} Error: too many connections from 127.0.0.1"
    assert c.closed()
    c.close()
    srv.inst.wait_for_log(r"warning: Connection rate limit exceeded: 4 from localhost\[127\.0\.0\.1\] "
                          r"for service " + re.escape(srv.service) + "$")
    r = srv.lookup()
    assert r["rate"] == 4 and r["count"] <= 1


def test_connection_rate_window_ends(anvil_server):
    srv = anvil_server({"smtpd_client_connection_rate_limit": "1",
                        "anvil_rate_time_unit": "2s"})
    quit_session(srv.client())
    c = srv.client(greet=False)
    assert c.text().startswith("421 4.7.0")
    c.close()
    time.sleep(2.5)
    quit_session(srv.client())


def test_message_rate_limit(anvil_server):
    srv = anvil_server({"smtpd_client_message_rate_limit": "2"})
    c = srv.client()
    c.ehlo()
    for _ in range(2):
        assert c.cmd("MAIL FROM:<a@example.org>").startswith("250")
        assert c.cmd("RSET").startswith("250")
    assert c.cmd("MAIL FROM:<a@example.org>") == "450 4.7.1 Error: too much mail from 127.0.0.1"
    srv.inst.wait_for_log(r"warning: Message delivery request rate limit exceeded: 3 from "
                          r"localhost\[127\.0\.0\.1\] for service " + re.escape(srv.service) + "$")
    quit_session(c)
    # The rate is per client, not per session.
    c = srv.client()
    c.ehlo()
    assert c.cmd("MAIL FROM:<>") == "450 4.7.1 Error: too much mail from 127.0.0.1"
    quit_session(c)
    assert srv.lookup()["mail"] == 4


def test_recipient_rate_limit(anvil_server):
    srv = anvil_server({"smtpd_client_recipient_rate_limit": "2"})
    c = srv.client()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").startswith("250")
    assert c.cmd(f"RCPT TO:<{LOCAL_USER}@example.com>").startswith("250")
    assert c.cmd(f"RCPT TO:<{LOCAL_USER}@example.com>").startswith("250")
    assert c.cmd(f"RCPT TO:<{LOCAL_USER}@example.com>") == \
        "450 4.7.1 Error: too many recipients from 127.0.0.1"
    srv.inst.wait_for_log(r"warning: Recipient address rate limit exceeded: 3 from "
                          r"localhost\[127\.0\.0\.1\] for service " + re.escape(srv.service) + "$")
    # The transaction goes on with the recipients already accepted.
    assert c.cmd("DATA").startswith("354")
    c.send_raw("Subject: x\r\n\r\nbody\r\n.\r\n")
    assert c.text().startswith("250")
    quit_session(c)
    assert srv.cleanup.wait_committed(1)[0].rcpts[0][0] == f"{LOCAL_USER}@example.com"


def test_exempt_clients_are_not_limited_or_counted(anvil_server):
    srv = anvil_server({"smtpd_client_event_limit_exceptions": "127.0.0.0/8",
                        "smtpd_client_connection_count_limit": "1",
                        "smtpd_client_connection_rate_limit": "1",
                        "smtpd_client_message_rate_limit": "1",
                        "smtpd_client_recipient_rate_limit": "1"})
    clients = [srv.client() for _ in range(3)]
    for c in clients:
        c.ehlo()
        for _ in range(2):
            assert c.cmd("MAIL FROM:<a@example.org>").startswith("250")
            assert c.cmd(f"RCPT TO:<{LOCAL_USER}@example.com>").startswith("250")
            assert c.cmd(f"RCPT TO:<{LOCAL_USER}@example.com>").startswith("250")
            assert c.cmd("RSET").startswith("250")
    for c in clients:
        quit_session(c)
    r = srv.lookup()
    assert r["count"] == 0 and r["rate"] == 0 and r["mail"] == 0 and r["rcpt"] == 0
    assert "limit exceeded" not in srv.inst.log_text()


# -- AUTH: the rate and the failure limit across sessions ------------------------

def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def auth_cf(**limits):
    def make(inst):
        (inst.conf_dir / "sasl_passwd").write_text("alice {PLAIN}alice-secret\n")
        cf = {"smtpd_sasl_auth_enable": "yes",
              "smtpd_sasl_type": "postern",
              "smtpd_sasl_password_maps": f"texthash:{inst.conf_dir}/sasl_passwd",
              "smtpd_hard_error_limit": "100"}
        cf.update(limits)
        return cf
    return make


def test_auth_failure_limit_across_sessions(anvil_server):
    srv = anvil_server(auth_cf(smtpd_client_auth_failure_limit="3",
                               anvil_rate_time_unit="4s"))
    for tries in (2, 1):
        c = srv.client()
        c.ehlo()
        for _ in range(tries):
            assert c.cmd("AUTH PLAIN " + plain("alice", "guess")).startswith("535 5.7.8")
        quit_session(c)
    assert srv.lookup()["auth_fail"] == 3
    failed = srv.inst.count_log(r"SASL PLAIN authentication failed")
    assert failed == 3
    # Reached: even the right password is not tried, in this session or another.
    t0 = time.monotonic()
    c = srv.client()
    c.ehlo()
    refusal = "454 4.7.0 Error: too many failed authentications from 127.0.0.1"
    assert c.cmd("AUTH PLAIN " + plain("alice", "alice-secret")) == refusal
    assert c.cmd("AUTH LOGIN") == refusal
    srv.inst.wait_for_log(r"warning: AUTH failure limit reached: 3 from localhost\[127\.0\.0\.1\] "
                          r"for service " + re.escape(srv.service) + "$")
    assert srv.inst.count_log(r"SASL PLAIN authentication failed") == failed
    assert srv.inst.count_log(r"authenticated|sasl_username") == 0
    # Temporary: once the window has passed, the user gets in.
    time.sleep(max(0, 4.5 - (time.monotonic() - t0)))
    assert c.cmd("AUTH PLAIN " + plain("alice", "alice-secret")).startswith("235")
    quit_session(c)


def test_auth_rate_limit(anvil_server):
    srv = anvil_server(auth_cf(smtpd_client_auth_rate_limit="2",
                               smtpd_client_auth_failure_limit="0"))
    c = srv.client()
    c.ehlo()
    assert c.cmd("AUTH PLAIN " + plain("alice", "guess")).startswith("535")
    assert c.cmd("AUTH PLAIN " + plain("alice", "guess")).startswith("535")
    assert c.cmd("AUTH PLAIN " + plain("alice", "alice-secret")) == \
        "450 4.7.1 Error: too many AUTH commands from 127.0.0.1"
    srv.inst.wait_for_log(r"warning: AUTH command rate limit exceeded: 3 from "
                          r"localhost\[127\.0\.0\.1\] for service " + re.escape(srv.service) + "$")
    quit_session(c)
    assert srv.lookup()["auth"] == 3 and srv.lookup()["auth_fail"] == 0


def test_auth_limits_spare_exempt_clients(anvil_server):
    srv = anvil_server(auth_cf(smtpd_client_auth_failure_limit="1",
                               smtpd_client_event_limit_exceptions="127.0.0.1"))
    c = srv.client()
    c.ehlo()
    for _ in range(3):
        assert c.cmd("AUTH PLAIN " + plain("alice", "guess")).startswith("535")
    assert c.cmd("AUTH PLAIN " + plain("alice", "alice-secret")).startswith("235")
    quit_session(c)
    assert srv.lookup()["auth_fail"] == 0


# -- TLS handshakes -----------------------------------------------------------------

def tls_cf(**limits):
    def make(inst):
        tls = inst.root / "tls"
        ca = tls_support.make_ca(tls)
        rsa = tls_support.make_cert(tls, ca, "rsa")
        cf = {"smtpd_tls_chain_files": f"{rsa.key}, {rsa.chain}",
              "smtpd_tls_security_level": "may"}
        cf.update(limits)
        return cf
    return make


def test_new_tls_session_rate_limit(anvil_server):
    srv = anvil_server(tls_cf(smtpd_client_new_tls_session_rate_limit="1"))
    c = srv.client()
    c.ehlo()
    assert c.cmd("STARTTLS").startswith("220")
    c.sock = tls_support.insecure_context().wrap_socket(c.sock, server_hostname="localhost")
    c.ehlo()
    quit_session(c)
    c = srv.client()
    c.ehlo()
    assert c.cmd("STARTTLS") == "454 4.7.0 Error: too many new TLS sessions from 127.0.0.1"
    # The session goes on in plaintext.
    assert c.cmd("NOOP").startswith("250")
    quit_session(c)
    srv.inst.wait_for_log(r"warning: New TLS session rate limit exceeded: 2 from "
                          r"localhost\[127\.0\.0\.1\] for service " + re.escape(srv.service) + "$")
    assert srv.lookup()["newtls"] == 2


def test_new_tls_session_rate_limit_wrapper_mode(anvil_server):
    srv = anvil_server(tls_cf(smtpd_client_new_tls_session_rate_limit="1",
                              smtpd_tls_wrappermode="yes"))
    ctx = tls_support.insecure_context()
    c = SmtpClient(srv.port)
    c.sock = ctx.wrap_socket(c.sock, server_hostname="localhost")
    c.greet()
    quit_session(c)
    # A client that expects TLS first cannot read an SMTP refusal: it is cut off.
    c = SmtpClient(srv.port)
    assert c.closed()
    c.close()
    srv.inst.wait_for_log(r"warning: New TLS session rate limit exceeded: 2 from "
                          r"localhost\[127\.0\.0\.1\] for service " + re.escape(srv.service) + "$")


# -- anvil unavailable: fail open -------------------------------------------------

def test_anvil_stopped_or_killed_fails_open(anvil_server):
    srv = anvil_server({"smtpd_client_connection_count_limit": "1"})
    quit_session(srv.client())          # smtpd now holds a connection to anvil
    (anvil_pid,) = srv.anvil_pids()
    mark = srv.inst.log_mark()
    os.kill(anvil_pid, signal.SIGSTOP)
    try:
        # anvil does not answer: smtpd waits a moment, warns, and serves.
        t0 = time.monotonic()
        c1 = srv.client()
        assert time.monotonic() - t0 < 3
        assert c1.cmd("NOOP").startswith("250")
        srv.inst.wait_for_log(r"postfix/smtpd\[\d+\]: warning: private/anvil: .* -- client "
                              r"connection and rate limits are not enforced", since=mark)
        # Not counted, so not limited either: a second session is served too.
        c2 = srv.client()
        assert c2.cmd("NOOP").startswith("250")
    finally:
        os.kill(anvil_pid, signal.SIGKILL)
    srv.inst.wait_until(lambda: anvil_pid not in srv.anvil_pids(), what="anvil to die")
    # Killed: still served...
    c3 = srv.client()
    assert c3.cmd("NOOP").startswith("250")
    for c in (c1, c2, c3):
        quit_session(c)
    # ...and once smtpd tries again, master has started a new anvil that counts.
    time.sleep(ANVIL_CLNT_RETRY_DELAY + 0.5)
    srv.lookup()
    c4 = srv.client()
    c5 = srv.client(greet=False)
    assert c5.text() == f"421 4.7.0 {HOSTNAME} Error: too many connections from 127.0.0.1"
    c5.close()
    quit_session(c4)
    assert srv.inst.count_log(r"warning: private/anvil:", since=mark) == 1, \
        "the failure is reported once per interval"


def test_without_anvil_the_count_is_per_process(anvil_server):
    srv = anvil_server({"smtpd_client_connection_count_limit": "1",
                        "smtpd_client_message_rate_limit": "5"}, anvil=False)
    c1 = srv.client()
    c2 = srv.client(greet=False)
    assert c2.text() == f"421 4.7.0 {HOSTNAME} Error: too many connections from 127.0.0.1"
    c2.close()
    c1.ehlo()
    for _ in range(7):
        assert c1.cmd("MAIL FROM:<a@example.org>").startswith("250")
        assert c1.cmd("RSET").startswith("250")
    quit_session(c1)
    srv.inst.wait_for_log(r"warning: no anvil service \(private/anvil\): client rate limits are "
                          r"not enforced")


def test_stale_socket_counts_per_process(anvil_server):
    """A socket left behind by an earlier master.cf, with nobody listening."""
    srv = anvil_server({"smtpd_client_connection_count_limit": "1"}, anvil=False)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(srv.anvil_path()))
    stale.close()
    os.chmod(srv.anvil_path(), 0o666)    # smtpd may connect, as to master's own socket
    c1 = srv.client()
    c2 = srv.client(greet=False)
    assert c2.text() == f"421 4.7.0 {HOSTNAME} Error: too many connections from 127.0.0.1"
    c2.close()
    quit_session(c1)
    srv.inst.wait_for_log(r"warning: private/anvil: connect: Connection refused -- no anvil "
                          r"service: client rate limits are not enforced")


# -- the protocol -----------------------------------------------------------------

def test_protocol_counts_and_auth_failures(anvil_server):
    srv = anvil_server()
    ident = "submission:192.0.2.7"
    with srv.anvil() as a:
        for n in range(1, 4):
            r = a.request([("request", "auth_fail"), ("ident", ident)])
            assert r.get("status") == 0 and r.get("auth_fail") == n, r
        r = a.request([("request", "auth"), ("ident", ident)])
        assert r.as_dict() == {"status": 0, "count": 0, "rate": 0, "mail": 0, "rcpt": 0,
                               "newtls": 0, "auth": 1, "auth_fail": 3}
        for req, key in (("message", "mail"), ("recipient", "rcpt"), ("newtls", "newtls")):
            r = a.request([("request", req), ("ident", ident)])
            assert r.get(key) == 1, r
        # Another service is another identity.
        assert a.request([("request", "lookup"),
                          ("ident", "smtp:192.0.2.7")]).get("auth_fail") == 0
    assert srv.lookup(ident)["auth_fail"] == 3


def test_protocol_connections_belong_to_their_client(anvil_server):
    srv = anvil_server()
    ident = "smtp:192.0.2.9"
    a, b = srv.anvil(), srv.anvil()
    for _ in range(2):
        assert a.request([("request", "connect"), ("ident", ident)]).get("status") == 0
    r = b.request([("request", "connect"), ("ident", ident)])
    assert r.get("count") == 3 and r.get("rate") == 3
    # A disconnect for a connection this client never counted changes nothing.
    with srv.anvil() as c:
        assert c.request([("request", "disconnect"), ("ident", ident)]).get("count") == 3
    assert b.request([("request", "disconnect"), ("ident", ident)]).get("count") == 2
    a.close()
    wait_count_ident(srv, ident, 0)
    assert srv.lookup(ident)["rate"] == 3
    b.close()


def wait_count_ident(srv, ident, count, timeout=10):
    deadline = time.monotonic() + timeout
    while srv.lookup(ident)["count"] != count:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_protocol_bad_requests(anvil_server):
    srv = anvil_server()
    with srv.anvil() as a:
        r = a.request([("request", "connect")])
        assert r.get("status") == 501 and r.get("reason")
        for bad in ("", "has space:1.2.3.4", "x" * 300, "ctl\x01:1.2.3.4"):
            r = a.request([("request", "connect"), ("ident", bad)])
            assert r.get("status") in (501, 502), (bad, r)
        r = a.request([("request", "explode"), ("ident", "smtp:192.0.2.1")])
        assert r.get("status") == 502
        r = a.request([("ident", "smtp:192.0.2.1")])
        assert r.get("status") == 502
        # The connection is still good after refused requests.
        assert a.request([("request", "lookup"), ("ident", "smtp:192.0.2.1")]).get("status") == 0
    # Broken framing: anvil closes that connection and serves the others.
    with srv.anvil() as a:
        a.send_raw(b"\x09\x01x\x00\x00\x00\x00\x00")
        with pytest.raises((EOFError, ConnectionError)):
            a.recv()
    with srv.anvil() as a:
        # A forged huge value length is refused from its header alone.
        a.send_raw(b"\x01\x05ident\xff\xff\xff\xf0")
        with pytest.raises((EOFError, ConnectionError)):
            a.recv()
    with srv.anvil() as a:
        many = [("request", "lookup"), ("ident", "smtp:192.0.2.1")] + \
            [(f"x{i}", "y") for i in range(40)]
        a.send_raw(encode(many))
        with pytest.raises((EOFError, ConnectionError)):
            a.recv()
    assert srv.lookup("smtp:192.0.2.1")["status"] == 0
    assert srv.inst.count_log(r"postfix/anvil\[\d+\]: (fatal|panic)") == 0


def test_protocol_pipelined_requests(anvil_server):
    srv = anvil_server()
    with srv.anvil() as a:
        batch = b"".join(encode([("request", "message"), ("ident", "smtp:192.0.2.3")])
                         for _ in range(200))
        a.send_raw(batch)
        rates = [a.recv().get("mail") for _ in range(200)]
    assert rates == list(range(1, 201))


def test_socket_is_private(anvil_server):
    srv = anvil_server()
    st = os.stat(srv.anvil_path())
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) & 0o077 == 0


# -- statistics -------------------------------------------------------------------

def test_statistics_log(anvil_server):
    srv = anvil_server({"anvil_status_update_time": "1s",
                        "smtpd_client_message_rate_limit": "100"})
    c = srv.client()
    c.ehlo()
    assert c.cmd("MAIL FROM:<a@example.org>").startswith("250")
    quit_session(c)
    svc = re.escape(srv.ident)
    when = r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d$"
    srv.inst.wait_for_log(r"postfix/anvil\[\d+\]: statistics: max connection rate 1/60s for \("
                          + svc + r"\) at " + when)
    srv.inst.wait_for_log(r"postfix/anvil\[\d+\]: statistics: max connection count 1 for \("
                          + svc + r"\) at " + when)
    srv.inst.wait_for_log(r"postfix/anvil\[\d+\]: statistics: max message rate 1/60s for \("
                          + svc + r"\) at " + when)
    srv.inst.wait_for_log(r"postfix/anvil\[\d+\]: statistics: max cache size \d+ at " + when)
