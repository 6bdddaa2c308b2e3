"""The smtp delivery agent against a local DNS server and local SMTP sinks.

One private instance runs only smtp services (several master.cf entries of
the same program with different -o settings: plain, TLS levels, AUTH,
LMTP, short timeouts). The test acts as qmgr: it writes queue files with
the qinject helper and sends delivery requests (docs/protocols.md section
3) with attrproto, then checks the per-recipient answers, the log lines
and what the sinks received.

Addressing: every sink listens on the same port (smtp_tcp_port) on its own
loopback address (127.0.0.2, 127.0.0.3, ...), so MX hosts resolved through
the fake DNS server reach different sinks although MX records carry no
port. An address where nothing listens refuses connections.
"""

import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import attrproto
import conftest
from fakedns import FakeDNS
from smtpsink import DEFAULT_EXT, SmtpSink

IS_ROOT = os.geteuid() == 0
SHORT = 3  # seconds: timeouts of the "fast" service


def free_port_all(addrs):
    """A TCP port free on every one of the loopback addresses."""
    for _ in range(50):
        port = conftest.get_free_port()
        ok = True
        for a in addrs:
            with socket.socket() as s:
                try:
                    s.bind((a, port))
                except OSError:
                    ok = False
                    break
        if ok:
            return port
    raise RuntimeError("no common free port")


def make_certs(d):
    """A CA, a server certificate for mx-tls.dest.example signed by it, and
    an unrelated CA; PEM files in d."""
    d = Path(d)
    d.mkdir(exist_ok=True)

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    for ca in ("ca", "wrongca"):
        run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out",
            f"{ca}.pem", "-days", "2", "-subj", f"/CN=Postern test {ca}")
    (d / "ext.cnf").write_text("subjectAltName=DNS:mx-tls.dest.example,DNS:tls.example\n")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=mx-tls.dest.example")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext.cnf")
    for f in d.iterdir():
        os.chmod(f, 0o644)
    return d


def server_tls(certdir):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(certdir / "server.pem"), str(certdir / "server.key"))
    return ctx


class Env:
    pass


class QmgrConn:
    """The queue manager's side of a delivery-agent connection, on
    attrproto's encoder and decoder."""

    def __init__(self, path, timeout=60):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = bytearray()

    def send(self, attrs):
        self.sock.sendall(attrproto.encode(attrs))

    def recv(self, timeout=60):
        """The next message, or None when the agent closed the connection."""
        self.sock.settimeout(timeout)
        while True:
            msg, used = attrproto.decode(bytes(self.buf))
            if msg is not None:
                del self.buf[:used]
                return msg
            data = self.sock.recv(65536)
            if not data:
                assert not self.buf, "connection closed inside a message"
                return None
            self.buf += data

    def close(self):
        self.sock.close()


def connect(env, service):
    return QmgrConn(env.inst.queue_dir / "private" / service)


@pytest.fixture(scope="module")
def env(build):
    conftest.ensure_mail_user()
    e = Env()
    e.addrs = [f"127.0.0.{i}" for i in range(2, 50)]
    e.port = free_port_all(["127.0.0.1"] + e.addrs)
    e.dns = FakeDNS().start()
    root = tempfile.mkdtemp(prefix="postern-test-", dir="/tmp")
    os.chmod(root, 0o755)
    e.inst = conftest.Instance(root)
    e.certs = make_certs(Path(root) / "certs")
    (Path(root) / "certs").chmod(0o755)
    passwd = Path(root) / "sasl_passwd"
    e.auth_addr = "127.0.0.30"
    passwd.write_text(f"[{e.auth_addr}]:{e.port} user:secret\n"
                      f"[127.0.0.31]:{e.port} user:wrong\n"
                      f"[127.0.0.33]:{e.port} user:secret\n")
    passwd.chmod(0o644)
    ca, wrong = e.certs / "ca.pem", e.certs / "wrongca.pem"
    fast = " ".join(f"-o smtp_{t}_timeout={SHORT}s" for t in
                    ("connect", "helo", "mail", "rcpt", "data_init", "data_xfer", "data_done",
                     "quit", "rset", "starttls"))
    master_cf = (
        "smtp      unix - - n - - smtp\n"
        "reuse     unix - - n - 1 smtp\n"
        f"fast      unix - - n - - smtp {fast}\n"
        f"tlsmay    unix - - n - - smtp -o smtp_tls_security_level=may -o smtp_tls_CAfile={ca}\n"
        f"tlsverify unix - - n - - smtp -o smtp_tls_security_level=verify -o smtp_tls_CAfile={ca}"
        " -o smtp_tls_servername=hostname\n"
        f"tlssecure unix - - n - - smtp -o smtp_tls_security_level=secure -o smtp_tls_CAfile={ca}\n"
        f"tlswrong  unix - - n - - smtp -o smtp_tls_security_level=verify"
        f" -o smtp_tls_CAfile={wrong}\n"
        f"auth      unix - - n - - smtp -o smtp_sasl_auth_enable=yes"
        f" -o smtp_sasl_password_maps=texthash:{passwd} -o smtp_tls_security_level=may\n"
        "v6pref    unix - - n - - smtp -o smtp_address_preference=ipv6\n"
        "dnsto     unix - - n - - smtp -o dns_timeout=3s\n"
        f"fallback  unix - - n - - smtp -o smtp_fallback_relay=[127.0.0.25]:{e.port}\n"
        f"lmtp      unix - - n - - smtp -o smtp_lmtp=yes -o lmtp_tcp_port={e.port}\n"
    )
    main_cf = {
        "myhostname": "client.example",
        "dns_servers": e.dns.server_spec,
        "dns_timeout": "5s",
        "smtp_tcp_port": str(e.port),
        "smtp_connection_cache_time_limit": "10s",
        "inet_protocols": "all" if conftest.have_ipv6() else "ipv4",
    }
    e.inst.write_main_cf(main_cf)
    e.inst.write_master_cf(master_cf)
    e.inst.start()
    e.sinks = []
    yield e
    for s in e.sinks:
        s.stop()
    e.dns.stop()
    leftovers = e.inst.cleanup()
    reports = e.inst.sanitizer_reports()
    problems = []
    if leftovers:
        problems.append(f"processes left after stop: {leftovers}")
    if reports:
        problems.append("sanitizer reports:\n" + "\n".join(reports))
    crashes = re.findall(r".*(?:killed by signal|exit status [1-9]).*", e.inst.log_text())
    if crashes:
        problems.append("smtp processes died:\n" + "\n".join(crashes))
    if problems:
        pytest.fail(f"{root}: " + "\n".join(problems))
    if not os.environ.get("POSTERN_KEEP"):
        shutil.rmtree(root, ignore_errors=True)


def sink(env, addr, **kw):
    s = SmtpSink(addr, env.port, name=kw.pop("name", f"sink-{addr}.example"), **kw).start()
    env.sinks.append(s)
    return s


def as_owner(argv):
    if not IS_ROOT:
        return argv
    return ["setpriv", f"--reuid={conftest.MAIL_OWNER}", f"--regid={conftest.MAIL_OWNER}",
            "--init-groups", "--"] + argv


def inject(env, rcpts, sender="sender@origin.example", body=None):
    """A committed queue file; its queue id."""
    argv = [env.inst.helper("qinject"), "-c", str(env.inst.conf_dir), "-f", sender]
    for r in rcpts:
        argv += ["-r", r]
    if body is not None:
        argv += ["-b", body]
    r = subprocess.run(as_owner(argv), env=env.inst.env, capture_output=True, text=True,
                       timeout=60, cwd=env.inst.root)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()[0]


def request(qid, nexthop, rcpts, sender="sender@origin.example", envid="", ret="",
            notify=None, dsn_orcpt=None):
    now = int(time.time() * 1e6)
    attrs = [("queue_name", "immediate"), ("queue_id", qid), ("nexthop", nexthop),
             ("sender", sender), ("envid", envid), ("ret", ret), ("arrival_usec", now),
             ("active_usec", now), ("request_usec", now), ("flags", 0)]
    for i, r in enumerate(rcpts):
        attrs += [("rcpt_index", i), ("rcpt", r), ("orcpt", ""),
                  ("dsn_orcpt", (dsn_orcpt or {}).get(r, "")),
                  ("notify", (notify or {}).get(r, 0))]
    attrs.append(("end", 1))
    return attrs


def read_answers(stream, timeout=60):
    answers = {}
    while True:
        m = stream.recv(timeout=timeout)
        assert m is not None, "agent closed the connection before its summary"
        if m.get("done") is not None:
            assert m.get("count") == len(answers)
            return answers
        answers[m.get("rcpt_index")] = {n: v for n, _t, v in m}


def deliver(env, nexthop, rcpts, service="smtp", body=None, sender="sender@origin.example",
            stream=None, **kw):
    """Queue a message and run one delivery; answers by recipient address."""
    qid = inject(env, rcpts, sender=sender, body=body)
    own = stream is None
    if own:
        stream = connect(env, service)
    try:
        stream.send(request(qid, nexthop, rcpts, sender=sender, **kw))
        answers = read_answers(stream)
    finally:
        if own:
            stream.close()
    return qid, {rcpts[i]: a for i, a in answers.items()}


def log_line(env, qid, rcpt, since=0, timeout=10):
    return env.inst.wait_for_log(rf"{qid}: to=<{re.escape(rcpt)}>, .*", timeout=timeout,
                                 since=since).group(0)


# --------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------

def test_mx_preference_order(env):
    a, b = sink(env, "127.0.0.2"), sink(env, "127.0.0.3")
    env.dns.add("pref.example", "MX", (20, "mx2.pref.example"))
    env.dns.add("pref.example", "MX", (10, "mx1.pref.example"))
    env.dns.add("mx1.pref.example", "A", "127.0.0.2")
    env.dns.add("mx2.pref.example", "A", "127.0.0.3")
    mark = env.inst.log_mark()
    qid, ans = deliver(env, "pref.example", ["u@pref.example"])
    assert ans["u@pref.example"]["status"] == 0
    assert len(a.messages) == 1 and not b.messages
    assert a.messages[0].rcpts == ["u@pref.example"]
    line = log_line(env, qid, "u@pref.example", mark)
    assert re.search(rf"relay=mx1\.pref\.example\[127\.0\.0\.2\]:{env.port}, delay=[\d.]+, "
                     r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.0\.0, status=sent "
                     r"\(250 2\.0\.0 Ok: queued as SINK1\)", line), line


def test_next_mx_when_first_refuses(env):
    b = sink(env, "127.0.0.5")
    env.dns.add("refuse.example", "MX", (10, "mx1.refuse.example"))
    env.dns.add("refuse.example", "MX", (20, "mx2.refuse.example"))
    env.dns.add("mx1.refuse.example", "A", "127.0.0.4")   # nothing listens there
    env.dns.add("mx2.refuse.example", "A", "127.0.0.5")
    qid, ans = deliver(env, "refuse.example", ["u@refuse.example"])
    assert ans["u@refuse.example"]["status"] == 0
    assert "mx2.refuse.example[127.0.0.5]" in ans["u@refuse.example"]["relay"]
    assert len(b.messages) == 1


def test_a_record_without_mx(env):
    s = sink(env, "127.0.0.6")
    env.dns.add("nomx.example", "A", "127.0.0.6")
    qid, ans = deliver(env, "nomx.example", ["u@nomx.example"])
    assert ans["u@nomx.example"]["status"] == 0
    assert ans["u@nomx.example"]["relay"] == f"nomx.example[127.0.0.6]:{env.port}"
    assert len(s.messages) == 1


def test_cname_mx_target(env):
    s = sink(env, "127.0.0.42")
    env.dns.add("cname.example", "MX", (10, "alias.cname.example"))
    env.dns.add("alias.cname.example", "CNAME", "real.cname.example")
    env.dns.add("real.cname.example", "A", "127.0.0.42")
    qid, ans = deliver(env, "cname.example", ["u@cname.example"])
    assert ans["u@cname.example"]["status"] == 0
    # The MX name is kept for messages and TLS checks (smtp_cname_overrides_servername = no).
    assert ans["u@cname.example"]["relay"] == f"alias.cname.example[127.0.0.42]:{env.port}"
    assert len(s.messages) == 1


def test_null_mx_bounces(env):
    env.dns.null_mx("nullmx.example")
    mark = env.inst.log_mark()
    qid, ans = deliver(env, "nullmx.example", ["u@nullmx.example"])
    a = ans["u@nullmx.example"]
    assert 500 <= a["status"] < 600 and a["dsn"] == "5.1.10"
    line = log_line(env, qid, "u@nullmx.example", mark)
    assert "status=bounced (Domain nullmx.example does not accept mail (nullMX))" in line


def test_nxdomain_bounces_servfail_defers(env):
    qid, ans = deliver(env, "nosuch.example", ["u@nosuch.example"])
    a = ans["u@nosuch.example"]
    assert a["status"] == 550 and a["dsn"] == "5.4.4"
    assert "Name service error for name=nosuch.example type=MX: Host not found" in a["reason"]
    env.dns.servfail("servfail.example")
    qid, ans = deliver(env, "servfail.example", ["u@servfail.example"])
    a = ans["u@servfail.example"]
    assert 400 <= a["status"] < 500 and a["dsn"] == "4.4.3", a
    assert "try again" in a["reason"]


def test_dns_timeout_defers(env):
    env.dns.silent("silent.example")
    t0 = time.monotonic()
    # A service of its own: a resolver that saw timeouts may distrust the
    # server for a while, which must not disturb the other tests.
    qid, ans = deliver(env, "silent.example", ["u@silent.example"], service="dnsto")
    a = ans["u@silent.example"]
    assert a["dsn"] == "4.4.3" and 400 <= a["status"] < 500
    assert time.monotonic() - t0 < 30


def test_bracketed_nexthop_skips_mx_lookup(env):
    other = conftest.get_free_port()
    s = SmtpSink("127.0.0.8", other).start()
    env.sinks.append(s)
    before = len(env.dns.queries)
    qid, ans = deliver(env, f"[127.0.0.8]:{other}", ["u@anything.example"])
    assert ans["u@anything.example"]["status"] == 0
    assert ans["u@anything.example"]["relay"] == f"127.0.0.8[127.0.0.8]:{other}"
    assert len(env.dns.queries) == before
    # [name]: an address lookup, never an MX lookup.
    sink(env, "127.0.0.9")
    env.dns.add("relay.bracket.example", "A", "127.0.0.9")
    env.dns.add("relay.bracket.example", "MX", (10, "elsewhere.example"))
    qid, ans = deliver(env, "[relay.bracket.example]", ["u@x.example"])
    assert ans["u@x.example"]["status"] == 0
    assert ("relay.bracket.example", "MX") not in env.dns.queries


def test_fallback_relay_after_mx_failure(env):
    fb = sink(env, "127.0.0.25")
    env.dns.add("fb.example", "MX", (10, "mx.fb.example"))
    env.dns.add("mx.fb.example", "A", "127.0.0.24")   # refuses
    qid, ans = deliver(env, "fb.example", ["u@fb.example"], service="fallback")
    assert ans["u@fb.example"]["status"] == 0
    assert "127.0.0.25" in ans["u@fb.example"]["relay"]
    assert len(fb.messages) == 1


@pytest.mark.skipif(not conftest.have_ipv6(), reason="no IPv6 loopback")
def test_ipv6_preferred_then_ipv4(env):
    s = sink(env, "127.0.0.10")
    env.dns.add("dual.example", "AAAA", "::1")         # nothing on [::1]:port
    env.dns.add("dual.example", "A", "127.0.0.10")
    qid, ans = deliver(env, "dual.example", ["u@dual.example"], service="v6pref")
    assert ans["u@dual.example"]["status"] == 0
    assert ans["u@dual.example"]["relay"] == f"dual.example[127.0.0.10]:{env.port}"
    assert ("dual.example", "AAAA") in env.dns.queries
    # And an IPv6 sink is used when it is there (another name: the session
    # to dual.example is cached and would be reused).
    s6 = SmtpSink("::1", env.port).start()
    env.sinks.append(s6)
    env.dns.add("dual6.example", "AAAA", "::1")
    env.dns.add("dual6.example", "A", "127.0.0.10")
    qid, ans = deliver(env, "dual6.example", ["v@dual6.example"], service="v6pref")
    assert ans["v@dual6.example"]["relay"] == f"dual6.example[::1]:{env.port}"
    assert len(s6.messages) == 1


# --------------------------------------------------------------------------
# The SMTP dialogue
# --------------------------------------------------------------------------

def test_mixed_replies_per_recipient(env):
    def rcpt_reply(addr):
        if addr.startswith("bad"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % addr
        if addr.startswith("later"):
            return "451 4.3.0 <%s>: Temporary lookup failure" % addr
        return None
    s = sink(env, "127.0.0.11", rcpt_reply=rcpt_reply)
    env.dns.add("mixed.example", "A", "127.0.0.11")
    rcpts = ["good@mixed.example", "bad@mixed.example", "later@mixed.example"]
    mark = env.inst.log_mark()
    qid, ans = deliver(env, "mixed.example", rcpts)
    assert ans["good@mixed.example"]["status"] == 0
    assert ans["bad@mixed.example"]["status"] == 550
    assert ans["bad@mixed.example"]["dsn"] == "5.1.1"
    assert ans["later@mixed.example"]["status"] == 451
    assert ans["later@mixed.example"]["dsn"] == "4.3.0"
    assert s.messages[0].rcpts == ["good@mixed.example"]
    line = log_line(env, qid, "bad@mixed.example", mark)
    assert (f"status=bounced (host mixed.example[127.0.0.11] said: 550 5.1.1 <bad@mixed.example>: "
            "Recipient address rejected: User unknown (in reply to RCPT TO command))") in line
    line = log_line(env, qid, "later@mixed.example", mark)
    assert "dsn=4.3.0, status=deferred (host mixed.example[127.0.0.11] said: 451" in line
    # PIPELINING: MAIL, the RCPTs and DATA went out before any reply was read.
    assert any(c.startswith("MAIL FROM:<sender@origin.example> SIZE=") for c in s.commands)


def test_421_greeting_tries_next_mx_then_defers(env):
    sink(env, "127.0.0.12", greeting="421 4.3.2 Service shutting down")
    ok = sink(env, "127.0.0.13")
    env.dns.add("greet.example", "MX", (10, "mx1.greet.example"))
    env.dns.add("greet.example", "MX", (20, "mx2.greet.example"))
    env.dns.add("mx1.greet.example", "A", "127.0.0.12")
    env.dns.add("mx2.greet.example", "A", "127.0.0.13")
    qid, ans = deliver(env, "greet.example", ["u@greet.example"])
    assert ans["u@greet.example"]["status"] == 0 and len(ok.messages) == 1
    env.dns.add("greet1.example", "A", "127.0.0.12")
    qid, ans = deliver(env, "greet1.example", ["u@greet1.example"])
    a = ans["u@greet1.example"]
    assert a["status"] == 421 and a["dsn"] == "4.3.2"
    assert "refused to talk to me: 421 4.3.2 Service shutting down" in a["reason"]


def test_451_rcpt_defers_and_550_mail_bounces(env):
    s = sink(env, "127.0.0.14", rcpt_reply=lambda a: "451 4.7.1 Greylisted, try later")
    env.dns.add("grey.example", "A", "127.0.0.14")
    qid, ans = deliver(env, "grey.example", ["u@grey.example"])
    assert ans["u@grey.example"]["status"] == 451
    assert "(in reply to RCPT TO command)" in ans["u@grey.example"]["reason"]
    s.rcpt_reply = None
    s.mail_reply = "550 5.7.1 Sender rejected"
    qid, ans = deliver(env, "grey.example", ["u@grey.example", "v@grey.example"])
    for a in ans.values():
        assert a["status"] == 550 and a["dsn"] == "5.7.1"
        assert "(in reply to MAIL FROM command)" in a["reason"]
    assert not s.messages


def test_helo_fallback_and_no_pipelining(env):
    s = sink(env, "127.0.0.15", no_ehlo=True)
    env.dns.add("helo.example", "A", "127.0.0.15")
    qid, ans = deliver(env, "helo.example", ["a@helo.example", "b@helo.example"])
    assert all(a["status"] == 0 for a in ans.values())
    assert any(c.startswith("HELO client.example") for c in s.commands)
    # No EHLO extensions: no SIZE, no DSN parameters.
    assert "SIZE=" not in s.messages[0].mail_params


def test_content_crlf_dot_stuffing_and_long_lines(env):
    s = sink(env, "127.0.0.16")
    env.dns.add("content.example", "A", "127.0.0.16")
    long = "x" * 1500
    body = f"Subject: dots\n\n.hidden\n..two\n.\n{long}\nlast line without newline"
    qid, ans = deliver(env, "content.example", ["u@content.example"], body=body)
    assert ans["u@content.example"]["status"] == 0
    data = s.messages[0].data
    assert b"\r\n..hidden\r\n...two\r\n..\r\n" in data
    assert b"\r\n" + b"x" * 998 + b"\r\n " + b"x" * 502 + b"\r\n" in data
    assert data.endswith(b"last line without newline\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_size_limit_of_server(env):
    s = sink(env, "127.0.0.17", ehlo_ext=["PIPELINING", "SIZE 100", "8BITMIME"])
    env.dns.add("small.example", "A", "127.0.0.17")
    qid, ans = deliver(env, "small.example", ["u@small.example"], body="Subject: big\n\n" + "y" * 500)
    a = ans["u@small.example"]
    assert a["status"] == 552 and a["dsn"] == "5.3.4"
    assert "exceeds size limit 100 of server small.example[127.0.0.17]" in a["reason"]
    assert not any(c.startswith("MAIL") for c in s.commands)


def test_smtputf8_needed(env):
    plain = sink(env, "127.0.0.18", ehlo_ext=["PIPELINING", "8BITMIME"])
    env.dns.add("noutf8.example", "A", "127.0.0.18")
    qid, ans = deliver(env, "noutf8.example", ["jürgen@noutf8.example"])
    a = ans["jürgen@noutf8.example"]
    assert a["status"] // 100 == 5 and a["dsn"] == "5.6.7"
    assert "SMTPUTF8 is required, but was not offered" in a["reason"]
    assert not plain.messages
    utf = sink(env, "127.0.0.19")
    env.dns.add("utf8.example", "A", "127.0.0.19")
    qid, ans = deliver(env, "utf8.example", ["jürgen@utf8.example"])
    assert ans["jürgen@utf8.example"]["status"] == 0
    assert "SMTPUTF8" in utf.messages[0].mail_params


def test_dsn_parameters_passed_on(env):
    s = sink(env, "127.0.0.20")
    env.dns.add("dsn.example", "A", "127.0.0.20")
    qid, ans = deliver(env, "dsn.example", ["u@dsn.example"], envid="env+id=1", ret="HDRS",
                       notify={"u@dsn.example": 1 | 2}, dsn_orcpt={"u@dsn.example": "rfc822;orig@dsn.example"})
    a = ans["u@dsn.example"]
    assert a["status"] == 0 and a["dsn_passed"] == 1 and a["dsn_action"] == "relayed"
    m = s.messages[0]
    assert "RET=HDRS" in m.mail_params and "ENVID=env+2Bid+3D1" in m.mail_params
    assert m.rcpt_params[0] == "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig@dsn.example"
    # A server without DSN gets none of it, and the answer says so.
    s2 = sink(env, "127.0.0.21", ehlo_ext=["PIPELINING"])
    env.dns.add("nodsn.example", "A", "127.0.0.21")
    qid, ans = deliver(env, "nodsn.example", ["u@nodsn.example"], notify={"u@nodsn.example": 1})
    assert ans["u@nodsn.example"]["dsn_passed"] == 0
    assert s2.messages[0].rcpt_params == [""]


def test_lmtp_per_recipient_replies(env):
    s = sink(env, "127.0.0.22", lmtp=True, rcpt_reply=lambda a: "550 5.1.1 No such user" if a.startswith("x") else None)
    qid, ans = deliver(env, "[127.0.0.22]", ["a@lmtp.example", "x@lmtp.example", "b@lmtp.example"],
                       service="lmtp")
    assert ans["a@lmtp.example"]["status"] == 0 and ans["b@lmtp.example"]["status"] == 0
    assert ans["x@lmtp.example"]["status"] == 550
    assert ans["a@lmtp.example"]["dsn_action"] == "delivered"
    assert any(c.startswith("LHLO client.example") for c in s.commands)
    assert s.messages[0].rcpts == ["a@lmtp.example", "b@lmtp.example"]


# --------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------

def test_tls_may_encrypts(env):
    s = sink(env, "127.0.0.26", tls_context=server_tls(env.certs))
    env.dns.add("tlsmay.example", "A", "127.0.0.26")
    mark = env.inst.log_mark()
    qid, ans = deliver(env, "tlsmay.example", ["u@tlsmay.example"], service="tlsmay")
    assert ans["u@tlsmay.example"]["status"] == 0
    assert s.messages[0].tls and s.messages[0].tls_version in ("TLSv1.2", "TLSv1.3")
    # may checks no name: the chain is trusted through smtp_tls_CAfile.
    env.inst.wait_for_log(rf"Trusted TLS connection established to tlsmay\.example\[127\.0\.0\.26\]"
                          rf":{env.port}: TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)", since=mark)
    # may with a server that offers no STARTTLS: plaintext.
    p = sink(env, "127.0.0.27")
    env.dns.add("plain.example", "A", "127.0.0.27")
    qid, ans = deliver(env, "plain.example", ["u@plain.example"], service="tlsmay")
    assert ans["u@plain.example"]["status"] == 0 and not p.messages[0].tls


def test_tls_may_handshake_failure_retries_in_plaintext(env):
    s = sink(env, "127.0.0.43", tls_context=server_tls(env.certs), tls_broken=True)
    env.dns.add("badtls.example", "A", "127.0.0.43")
    mark = env.inst.log_mark()
    qid, ans = deliver(env, "badtls.example", ["u@badtls.example"], service="tlsmay")
    assert ans["u@badtls.example"]["status"] == 0
    assert not s.messages[0].tls and s.connections == 2
    env.inst.wait_for_log(rf"{qid}: TLS handshake with badtls\.example\[127\.0\.0\.43\] failed .*"
                          r"trying again in plaintext", since=mark)


def test_plaintext_injected_after_starttls_is_refused(env):
    s = sink(env, "127.0.0.44", tls_context=server_tls(env.certs), tls_inject=True)
    env.dns.add("inject.example", "A", "127.0.0.44")
    qid, ans = deliver(env, "inject.example", ["u@inject.example"], service="tlsmay")
    a = ans["u@inject.example"]
    assert a["status"] // 100 == 4 and a["dsn"] == "4.7.5"
    assert "sent data after its reply to STARTTLS" in a["reason"]
    assert not any(c.startswith("MAIL") for c in s.commands)


def test_tls_verify_right_ca(env):
    s = sink(env, "127.0.0.28", tls_context=server_tls(env.certs))
    env.dns.add("verify.example", "MX", (10, "mx-tls.dest.example"))
    env.dns.add("mx-tls.dest.example", "A", "127.0.0.28")
    mark = env.inst.log_mark()
    qid, ans = deliver(env, "verify.example", ["u@verify.example"], service="tlsverify")
    assert ans["u@verify.example"]["status"] == 0
    assert s.messages[0].tls and s.messages[0].sni == "mx-tls.dest.example"
    env.inst.wait_for_log(r"Verified TLS connection established to mx-tls\.dest\.example"
                          r"\[127\.0\.0\.28\]", since=mark)
    # secure: the name must match the nexthop domain; tls.example is in the certificate.
    env.dns.add("tls.example", "MX", (10, "mx-tls.dest.example"))
    qid, ans = deliver(env, "tls.example", ["u@tls.example"], service="tlssecure")
    assert ans["u@tls.example"]["status"] == 0
    qid, ans = deliver(env, "verify.example", ["v@verify.example"], service="tlssecure")
    a = ans["v@verify.example"]
    assert a["status"] // 100 == 4 and a["dsn"] == "4.7.5"
    assert "Server certificate not verified" in a["reason"]


def test_tls_verify_wrong_ca_never_sends_in_clear(env):
    s = sink(env, "127.0.0.29", tls_context=server_tls(env.certs))
    env.dns.add("wrongca.example", "MX", (10, "mx-wrong.example"))
    env.dns.add("mx-wrong.example", "A", "127.0.0.29")
    mark = env.inst.log_mark()
    qid, ans = deliver(env, "wrongca.example", ["u@wrongca.example"], service="tlswrong")
    a = ans["u@wrongca.example"]
    assert a["status"] // 100 == 4 and a["dsn"] == "4.7.5"
    assert "Server certificate not trusted" in a["reason"]
    env.inst.wait_for_log(r"Untrusted TLS connection established to mx-wrong\.example", since=mark)
    assert not s.messages
    assert not any(c.startswith(("MAIL", "RCPT", "DATA")) for c in s.commands)
    # verify against a server without STARTTLS: deferred, nothing sent.
    p = sink(env, "127.0.0.32")
    env.dns.add("notls.example", "A", "127.0.0.32")
    qid, ans = deliver(env, "notls.example", ["u@notls.example"], service="tlsverify")
    a = ans["u@notls.example"]
    assert a["dsn"] == "4.7.4" and "TLS is required, but was not offered" in a["reason"]
    assert not any(c.startswith("MAIL") for c in p.commands)


# --------------------------------------------------------------------------
# AUTH
# --------------------------------------------------------------------------

def test_auth_success_over_tls(env):
    s = sink(env, env.auth_addr, tls_context=server_tls(env.certs), auth={"user": "secret"},
             auth_required=True)
    qid, ans = deliver(env, f"[{env.auth_addr}]:{env.port}", ["u@auth.example"], service="auth")
    assert ans["u@auth.example"]["status"] == 0, ans
    assert s.messages[0].auth_user == "user" and s.messages[0].tls


def test_auth_wrong_password_defers_with_reason(env):
    s = sink(env, "127.0.0.31", tls_context=server_tls(env.certs), auth={"user": "secret"},
             auth_required=True)
    mark = env.inst.log_mark()
    qid, ans = deliver(env, f"[127.0.0.31]:{env.port}", ["u@auth.example"], service="auth")
    a = ans["u@auth.example"]
    assert a["status"] // 100 == 4 and a["dsn"].startswith("4.7.")
    assert (f"SASL authentication failed; server 127.0.0.31[127.0.0.31] said: 535 5.7.8 "
            "Error: authentication failed") in a["reason"]
    assert "status=deferred (SASL authentication failed" in log_line(env, qid, "u@auth.example", mark)
    assert not s.messages


def test_auth_never_in_plaintext_by_default(env):
    # A password is known for this server, but it offers no STARTTLS:
    # PLAIN and LOGIN are not used in clear, the mail goes without AUTH.
    s = sink(env, "127.0.0.33", auth={"user": "secret"})
    qid, ans = deliver(env, f"[127.0.0.33]:{env.port}", ["u@auth.example"], service="auth")
    assert ans["u@auth.example"]["status"] == 0
    assert not any(c.startswith("AUTH") for c in s.commands)
    assert s.messages[0].auth_user is None


# --------------------------------------------------------------------------
# Connection reuse
# --------------------------------------------------------------------------

def test_connection_reuse_on_one_qmgr_connection(env):
    s = sink(env, "127.0.0.34")
    env.dns.add("reuse.example", "A", "127.0.0.34")
    mark = env.inst.log_mark()
    stream = connect(env, "reuse")
    try:
        for i in range(5):
            qid, ans = deliver(env, "reuse.example", [f"u{i}@reuse.example"], stream=stream)
            assert ans[f"u{i}@reuse.example"]["status"] == 0
    finally:
        stream.close()
    assert len(s.messages) == 5
    assert s.connections == 1
    assert s.commands.count("RSET") == 4
    assert env.inst.count_log(r"relay=reuse\.example\[127\.0\.0\.34\]:\d+, conn_use=5, ",
                              since=mark) == 1
    # A later qmgr connection to the same process finds the session too.
    qid, ans = deliver(env, "reuse.example", ["again@reuse.example"], service="reuse")
    assert ans["again@reuse.example"]["status"] == 0
    assert s.connections == 1


def test_many_messages_few_connections(env):
    s = sink(env, "127.0.0.35")
    env.dns.add("bulk.example", "A", "127.0.0.35")
    stream = connect(env, "reuse")
    try:
        for i in range(40):
            deliver(env, "bulk.example", [f"u{i}@bulk.example"], stream=stream)
    finally:
        stream.close()
    assert len(s.messages) == 40
    assert s.connections <= 2


# --------------------------------------------------------------------------
# Bad peers: a clear deferral within the timeouts, never a crash
# --------------------------------------------------------------------------

@pytest.mark.parametrize("mode,addr,expect", [
    ("garbage", "127.0.0.36", "malformed reply while receiving the initial server greeting"),
    ("stall_greeting", "127.0.0.37", "timed out while receiving the initial server greeting"),
    ("endless", "127.0.0.38", "performing the EHLO handshake"),
    ("stall_rcpt", "127.0.0.39", "timed out while sending RCPT TO"),
    ("long_line", "127.0.0.23", "timed out while receiving the initial server greeting"),
    ("close_data", "127.0.0.7", "lost connection with"),
])
def test_bad_peers_defer(env, mode, addr, expect):
    s = sink(env, addr, mode=mode)
    dom = f"bad-{mode.replace('_', '-')}.example"
    env.dns.add(dom, "A", addr)
    t0 = time.monotonic()
    qid, ans = deliver(env, dom, [f"u@{dom}"], service="fast")
    a = ans[f"u@{dom}"]
    assert a["status"] // 100 == 4, a
    assert expect in a["reason"], a
    assert time.monotonic() - t0 < 6 * SHORT + 10
    s.stop()


def test_bad_request_is_refused_cleanly(env):
    stream = connect(env, "smtp")
    try:
        stream.send([("queue_name", "../etc"), ("queue_id", "x"), ("nexthop", "a.example"),
                     ("sender", ""), ("end", 1)])
        assert stream.recv(timeout=30) is None
    finally:
        stream.close()
    env.inst.wait_for_log(r"bad delivery request from the queue manager")
    # The service still works afterwards.
    sink(env, "127.0.0.41")
    env.dns.add("after.example", "A", "127.0.0.41")
    qid, ans = deliver(env, "after.example", ["u@after.example"])
    assert ans["u@after.example"]["status"] == 0


# --------------------------------------------------------------------------
# What qmgr learns: dest_status in the summary, RFC 3464 fields per recipient
# --------------------------------------------------------------------------

def deliver_summary(env, nexthop, rcpts, service="smtp"):
    """Like deliver(), but also returns the summary message as a dict."""
    qid = inject(env, rcpts)
    stream = connect(env, service)
    try:
        stream.send(request(qid, nexthop, rcpts))
        answers = {}
        while True:
            m = stream.recv()
            assert m is not None, "agent closed the connection before its summary"
            d = {n: v for n, _t, v in m}
            if d.get("done") is not None:
                return {rcpts[i]: a for i, a in answers.items()}, d
            answers[d["rcpt_index"]] = d
    finally:
        stream.close()


def test_dest_status_and_dsn_fields(env):
    sink(env, "127.0.0.45", rcpt_reply=lambda a: "550 5.1.1 <%s>: User unknown" % a
         if a.startswith("bad") else None)
    env.dns.add("health.example", "MX", (10, "mx.health.example"))
    env.dns.add("mx.health.example", "A", "127.0.0.45")
    ans, summary = deliver_summary(env, "health.example", ["ok@health.example",
                                                           "bad@health.example"])
    assert summary["dest_status"] == "ok"
    bad = ans["bad@health.example"]
    assert (bad["dsn_mtype"], bad["dsn_mname"]) == ("dns", "mx.health.example")
    assert (bad["dsn_dtype"], bad["dsn_dtext"]) == ("smtp",
                                                    "550 5.1.1 <bad@health.example>: User unknown")
    ok = ans["ok@health.example"]
    assert ok["dsn_dtext"].startswith("250 2.0.0 Ok") and ok["dsn_mname"] == "mx.health.example"
    # Every server refuses: the destination failed as a whole.
    env.dns.add("down.health.example", "A", "127.0.0.46")    # nothing listens
    ans, summary = deliver_summary(env, "down.health.example", ["u@down.health.example"])
    assert summary["dest_status"] == "dead"
    assert ans["u@down.health.example"]["status"] // 100 == 4
    assert ans["u@down.health.example"]["dsn_dtext"] == ""
    # A 4xx greeting is a handshake failure; a null MX is a verdict, not a failure.
    sink(env, "127.0.0.47", greeting="421 4.3.2 Service shutting down")
    env.dns.add("greet.health.example", "A", "127.0.0.47")
    ans, summary = deliver_summary(env, "greet.health.example", ["u@greet.health.example"])
    assert summary["dest_status"] == "dead"
    env.dns.null_mx("nullmx.health.example")
    ans, summary = deliver_summary(env, "nullmx.health.example", ["u@nullmx.health.example"])
    assert summary["dest_status"] == "ok"
    assert ans["u@nullmx.health.example"]["status"] // 100 == 5
