"""Mail out, end to end: smtpd -> cleanup -> qmgr -> smtp -> SMTP sinks, and
bounce(8) -> cleanup -> qmgr -> local for the notices that come back.

Real daemons over real sockets: mail is submitted with smtplib to smtpd
(relaying is allowed from 127.0.0.0/8), routed by qmgr, delivered by the
smtp agent to Python SMTP sinks (smtpsink.py) that a local DNS server
(fakedns.py) names as MX or A hosts. Senders are local users
(pt-alice@localhost, ...) so that delivery status notifications land in
their Maildirs, where they are parsed with Python's email package.

Addressing: every sink listens on the same port (smtp_tcp_port) on its own
loopback address (127.0.0.2, ...); an address where nothing listens
refuses connections. transport_maps sends a few test domains elsewhere:

    override.example   smtp:[127.0.0.10]:PORT   (MX says 127.0.0.11)
    rate.example       ratelimited:             (1 s rate delay)
    bad-*.example      fast:                    (3 s SMTP timeouts)

No assertion is about speed, only about order and spacing the acceptance
text asks for; every wait is bounded so that a hang fails.
"""

import email
import email.policy
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

import conftest
import mailin
import qfilefmt
import tls_support
from fakedns import FakeDNS
from smtpsink import SmtpSink

SHORT = 3                  # seconds: SMTP timeouts of the "fast" transport
ALICE = "pt-alice@localhost"
BOB = "pt-bob@localhost"
POSTMASTER = "pt-carol"    # 2bounce_notice_recipient
REUSE_MESSAGES = int(os.environ.get("POSTERN_MAILOUT_REUSE", "500"))


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


def daemons_or_skip():
    missing = [d for d in ("smtpd", "cleanup", "qmgr", "local", "smtp", "bounce")
               if not (conftest.BUILD / "bin" / d).exists()]
    if missing:
        pytest.skip(f"not built yet: {', '.join(missing)}")


class MailOut:
    """A private instance with the whole mail path, a DNS server and sinks."""

    def __init__(self, extra_main=None, port=None, dns=None, extra_master=""):
        conftest.ensure_mail_user()
        self.users = mailin.ensure_local_users()
        self.root = Path(tempfile.mkdtemp(prefix="postern-test-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.addrs = [f"127.0.0.{i}" for i in range(2, 60)]
        self.port = port or free_port_all(["127.0.0.1"] + self.addrs)
        self.own_dns = dns is None
        self.dns = dns or FakeDNS().start()
        self.sinks = []
        self.smtpd_port = conftest.get_free_port()
        self.inst = conftest.Instance(self.root)
        mailin.prepare_mail_root(self.root)
        fast = " ".join(f"-o smtp_{t}_timeout={SHORT}s" for t in
                        ("connect", "helo", "mail", "rcpt", "data_init", "data_xfer",
                         "data_done", "quit", "rset"))
        master_cf = mailin.mailin_master_cf(self.smtpd_port) + (
            "bounce    unix - - n - 0 bounce\n"
            "smtp      unix - - n - - smtp\n"
            "relay     unix - - n - - smtp\n"
            "ratelimited unix - - n - - smtp\n"
            f"fast      unix - - n - - smtp {fast}\n") + extra_master
        main = {
            "dns_servers": self.dns.server_spec,
            "dns_timeout": "5s",
            "smtp_tcp_port": str(self.port),
            "inet_protocols": "ipv4",
            "2bounce_notice_recipient": f"{POSTMASTER}@localhost",
            "transport_maps": "inline:{ override.example=smtp:[127.0.0.10]:%d, "
                              "rate.example=ratelimited:, .bad.example=fast:, "
                              "bad.example=fast: }" % self.port,
            "ratelimited_destination_rate_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "queue_run_delay": "1s",
        }
        main.update(extra_main or {})
        self.inst.write_main_cf(mailin.mailin_main_cf(self.root, self.users, main))
        self.inst.write_master_cf(master_cf)
        self.inst.start()

    # -- peers -------------------------------------------------------------

    def sink(self, addr, **kw):
        s = SmtpSink(addr, self.port, name=kw.pop("name", f"sink-{addr}.example"), **kw).start()
        self.sinks.append(s)
        return s

    # -- mail in -----------------------------------------------------------

    def send(self, sender, rcpts, subject="mail out", body="Hello.\n", mail_options=(),
             rcpt_options=()):
        """Submit one message through smtpd; its queue id."""
        token = f"{time.monotonic_ns()}"
        text = (f"From: <{sender or 'nobody@client.example'}>\r\n"
                f"To: {', '.join(f'<{r}>' for r in rcpts)}\r\n"
                f"Subject: {subject}\r\nMessage-ID: <{token}@client.example>\r\n"
                f"X-Token: {token}\r\n\r\n" + body.replace("\n", "\r\n"))
        with smtplib.SMTP("127.0.0.1", self.smtpd_port, local_hostname="client.example",
                          timeout=60) as s:
            s.ehlo()
            code, reply = s.mail(sender, list(mail_options))
            assert code == 250, reply
            for r in rcpts:
                code, reply = s.rcpt(r, list(rcpt_options))
                assert code == 250, (r, reply)
            code, reply = s.data(text.encode())
            assert code == 250, reply
        return re.search(r"queued as (\S+)", reply.decode()).group(1)

    # -- mail back ---------------------------------------------------------

    def maildir(self, user):
        """Messages in the user's Maildir/new, oldest first, parsed."""
        d = mailin.maildir_new(self.root, user)
        if not d.is_dir():
            return []
        paths = sorted(d.iterdir(), key=lambda p: p.stat().st_mtime_ns)
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                for p in paths]

    def wait_maildir(self, user, n, timeout=30, match=None):
        deadline = time.monotonic() + timeout
        while True:
            got = [m for m in self.maildir(user) if match is None or match(m)]
            if len(got) >= n:
                return got
            if time.monotonic() > deadline:
                pytest.fail(f"{user}: {len(got)} messages, wanted {n}; log:\n"
                            + mailin.log_excerpt(self.inst))
            time.sleep(0.1)

    def log_line(self, regex, since=0, timeout=30):
        return self.inst.wait_for_log(regex, timeout=timeout, since=since).group(0)

    def close(self):
        for s in self.sinks:
            s.stop()
        if self.own_dns:
            self.dns.stop()
        leftovers = self.inst.cleanup()
        reports = self.inst.sanitizer_reports()
        problems = []
        if leftovers:
            problems.append(f"processes left after stop: {leftovers}")
        if reports:
            problems.append("sanitizer reports:\n" + "\n".join(reports))
        crashes = re.findall(r".*(?:killed by signal|exit status [1-9]|panic:).*",
                             self.inst.log_text())
        if crashes:
            problems.append("processes died:\n" + "\n".join(crashes[:20]))
        if problems:
            pytest.fail(f"{self.root}: " + "\n".join(problems))
        if not os.environ.get("POSTERN_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)


def dsn(msg):
    """(notification text, per-message fields, [per-recipient fields], third part)
    of a delivery status notification, checked for RFC 3464/6522 shape."""
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    assert msg["Auto-Submitted"] == "auto-replied"
    parts = msg.get_payload()
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    fields = parts[1].get_payload()
    third = parts[2] if len(parts) > 2 else None
    return parts[0].get_content(), fields[0], fields[1:], third


def subject_is(text):
    return lambda m: m["Subject"] == text


@pytest.fixture(scope="module")
def mo(build):
    daemons_or_skip()
    m = MailOut()
    yield m
    m.close()


@pytest.fixture
def make_mo(build):
    """Factory for instances with their own settings (relayhost, lifetimes)."""
    daemons_or_skip()
    made = []

    def make(extra_main, **kw):
        m = MailOut(extra_main, **kw)
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()


# --------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------

def test_mx_preference_order(mo):
    a, b = mo.sink("127.0.0.2"), mo.sink("127.0.0.3")
    mo.dns.add("pref.example", "MX", (20, "mx2.pref.example"))
    mo.dns.add("pref.example", "MX", (10, "mx1.pref.example"))
    mo.dns.add("mx1.pref.example", "A", "127.0.0.2")
    mo.dns.add("mx2.pref.example", "A", "127.0.0.3")
    mark = mo.inst.log_mark()
    qid = mo.send(ALICE, ["u@pref.example"])
    a.wait_messages(1)
    assert not b.messages and a.messages[0].rcpts == ["u@pref.example"]
    assert a.messages[0].mail_from == ALICE
    mo.log_line(rf"{qid}: to=<u@pref\.example>, relay=mx1\.pref\.example\[127\.0\.0\.2\]:\d+, "
                r".*status=sent", since=mark)
    mo.log_line(rf"qmgr\[\d+\]: {qid}: removed", since=mark)


def test_next_mx_when_first_refuses(mo):
    b = mo.sink("127.0.0.5")
    mo.dns.add("refuse.example", "MX", (10, "mx1.refuse.example"))
    mo.dns.add("refuse.example", "MX", (20, "mx2.refuse.example"))
    mo.dns.add("mx1.refuse.example", "A", "127.0.0.4")   # nothing listens there
    mo.dns.add("mx2.refuse.example", "A", "127.0.0.5")
    qid = mo.send(ALICE, ["u@refuse.example"])
    b.wait_messages(1)
    mo.log_line(rf"{qid}: to=<u@refuse\.example>, relay=mx2\.refuse\.example\[127\.0\.0\.5\]")


def test_a_record_without_mx(mo):
    s = mo.sink("127.0.0.6")
    mo.dns.add("nomx.example", "A", "127.0.0.6")
    qid = mo.send(ALICE, ["u@nomx.example"])
    s.wait_messages(1)
    mo.log_line(rf"{qid}: to=<u@nomx\.example>, relay=nomx\.example\[127\.0\.0\.6\]:\d+, .*sent")


def test_null_mx_bounces_to_the_sender(mo):
    mo.dns.null_mx("nullmx.example")
    before = len(mo.maildir("pt-bob"))
    qid = mo.send(BOB, ["u@nullmx.example"])
    mo.log_line(rf"{qid}: to=<u@nullmx\.example>, relay=none, .*dsn=5\.1\.10, status=bounced "
                r"\(Domain nullmx\.example does not accept mail \(nullMX\)\)")
    mo.log_line(rf"bounce\[\d+\]: {qid}: sender non-delivery notification: \w+")
    [notice] = mo.wait_maildir("pt-bob", before + 1)[before:]
    text, head, [r], third = dsn(notice)
    assert notice["Subject"] == "Undelivered Mail Returned to Sender"
    assert "This is the mail system at host mx.e2e.test." in text
    assert "<u@nullmx.example>: Domain nullmx.example does not accept mail (nullMX)" in text
    assert head["Reporting-MTA"] == "dns; mx.e2e.test"
    assert head["X-Postern-Queue-ID"] == qid
    assert r["Final-Recipient"] == "rfc822; u@nullmx.example"
    assert (r["Action"], r["Status"]) == ("failed", "5.1.10")
    assert r["Diagnostic-Code"].startswith("X-Postern; Domain nullmx.example does not accept")
    # The whole message comes back by default (RET not given).
    assert third.get_content_type() == "message/rfc822"
    assert third.get_payload()[0]["Subject"] == "mail out"
    mo.log_line(rf"qmgr\[\d+\]: {qid}: removed")


@pytest.mark.parametrize("relayhost,dns_name", [("[127.0.0.8]:{port}", None),
                                                ("relay.example", "relay.example")])
def test_relayhost_with_and_without_brackets(make_mo, relayhost, dns_name):
    dns = FakeDNS().start()
    try:
        port = free_port_all(["127.0.0.1", "127.0.0.8", "127.0.0.9"])
        m = make_mo({"relayhost": relayhost.format(port=port)}, port=port, dns=dns)
        target = m.sink("127.0.0.8" if dns_name is None else "127.0.0.9")
        if dns_name:
            dns.add("relay.example", "MX", (10, "mx.relay.example"))
            dns.add("mx.relay.example", "A", "127.0.0.9")
        qid = m.send(ALICE, ["u@anywhere.example"])
        target.wait_messages(1)
        assert target.messages[0].rcpts == ["u@anywhere.example"]
        if dns_name is None:
            # [host]:port: no MX lookup, no lookup of the recipient's domain.
            assert not [q for q in dns.queries if q[1] == "MX"]
            m.log_line(rf"{qid}: to=<u@anywhere\.example>, relay=127\.0\.0\.8\[127\.0\.0\.8\]:"
                       rf"{port}, ")
        else:
            assert ("relay.example", "MX") in dns.queries
            assert ("anywhere.example", "MX") not in dns.queries
            m.log_line(rf"{qid}: to=<u@anywhere\.example>, relay=mx\.relay\.example"
                       r"\[127\.0\.0\.9\]")
    finally:
        dns.stop()


def test_transport_maps_override(mo):
    right, wrong = mo.sink("127.0.0.10"), mo.sink("127.0.0.11")
    mo.dns.add("override.example", "MX", (10, "mx.override.example"))
    mo.dns.add("mx.override.example", "A", "127.0.0.11")
    qid = mo.send(ALICE, ["u@override.example"])
    right.wait_messages(1)
    assert not wrong.messages
    mo.log_line(rf"{qid}: to=<u@override\.example>, relay=127\.0\.0\.10\[127\.0\.0\.10\]")
    # The next hop came from the table: the MX was never asked for.
    assert ("override.example", "MX") not in mo.dns.queries


# --------------------------------------------------------------------------
# Deferral, retry, recovery
# --------------------------------------------------------------------------

@pytest.mark.parametrize("mode,addr", [("421", "127.0.0.12"), ("451", "127.0.0.13"),
                                       ("refuse", "127.0.0.14")])
def test_deferred_then_delivered_when_the_sink_recovers(mo, mode, addr):
    dom = f"recover{mode}.example"
    mo.dns.add(dom, "A", addr)
    sink = None
    if mode == "421":
        sink = mo.sink(addr, greeting="421 4.3.2 Service not available, try later")
    elif mode == "451":
        sink = mo.sink(addr, rcpt_reply=lambda a: "451 4.7.1 Greylisted, try later")
    mark = mo.inst.log_mark()
    qid = mo.send(ALICE, [f"u@{dom}"])
    # At least two failed attempts, spaced by the backoff (1 to 2 s here).
    for _ in range(2):
        mo.log_line(rf"{qid}: to=<u@{re.escape(dom)}>, .*status=deferred", since=mark)
        mark = mo.inst.log_mark()
    path = next(p for p in mailin.queue_files(mo.inst) if p.name == qid)
    q = qfilefmt.read_qfile(path)
    assert q.rcpts[0].status == "R"
    _index, when, nxt, dsn_code, reason = q.defers[-1]
    assert 1 <= nxt - when <= 2 and dsn_code.startswith("4.")
    expect = {"421": "refused to talk to me: 421 4.3.2", "451": "451 4.7.1 Greylisted",
              "refuse": "Connection refused"}[mode]
    assert expect in reason, reason
    # The sink recovers: the message goes out on the next retry.
    if sink is not None:
        sink.restart(greeting=None, rcpt_reply=None)
    else:
        sink = mo.sink(addr)
    sink.wait_messages(1, timeout=30)
    mo.log_line(rf"{qid}: to=<u@{re.escape(dom)}>, .*status=sent", since=mark)
    mo.log_line(rf"qmgr\[\d+\]: {qid}: removed", since=mark)


def test_dead_destination_is_backed_off_as_a_whole(mo):
    mo.dns.add("dead.example", "MX", (10, "mx.dead.example"))
    mo.dns.add("mx.dead.example", "A", "127.0.0.26")     # refuses, for now
    mark = mo.inst.log_mark()
    with smtplib.SMTP("127.0.0.1", mo.smtpd_port, local_hostname="client.example",
                      timeout=60) as smtp:
        for i in range(20):
            smtp.sendmail(ALICE, [f"u{i}@dead.example"], f"Subject: dead {i}\r\n\r\nbody\r\n")
    line = mo.log_line(r"qmgr\[\d+\]: transport smtp: destination dead\.example is unavailable "
                       r"-- delivery suspended for 1s", since=mark)
    # Before the verdict only the first window's worth of deliveries went to
    # the agent; after it, recipients are deferred by qmgr itself (relay=none)
    # without a connection attempt.
    before = mo.inst.log_text()[mark:]
    before = before[:before.index(line)]
    tried = len(re.findall(r"smtp\[\d+\]: \w+: to=<u\d+@dead\.example>, .*status=deferred",
                           before))
    assert 1 <= tried <= 5, tried
    mo.log_line(r"qmgr\[\d+\]: \w+: to=<u\d+@dead\.example>, relay=none, .*status=deferred "
                r"\(delivery temporarily suspended: connect to mx\.dead\.example"
                r"\[127\.0\.0\.26\]:\d+: Connection refused\)", since=mark)
    # The server comes up: everything is delivered on the next retries.
    s = mo.sink("127.0.0.26")
    s.wait_messages(20, timeout=60)


def test_550_for_one_of_three_recipients(mo):
    s = mo.sink("127.0.0.15", rcpt_reply=lambda a: "550 5.1.1 <%s>: Recipient address "
                "rejected: User unknown in virtual mailbox table" % a if a.startswith("bad") else None)
    mo.dns.add("three.example", "MX", (10, "mx.three.example"))
    mo.dns.add("mx.three.example", "A", "127.0.0.15")
    before = len(mo.maildir("pt-alice"))
    rcpts = ["one@three.example", "bad@three.example", "two@three.example"]
    qid = mo.send(ALICE, rcpts, subject="three")
    s.wait_messages(1)
    assert sorted(s.messages[0].rcpts) == ["one@three.example", "two@three.example"]
    [notice] = mo.wait_maildir("pt-alice", before + 1)[before:]
    text, head, rs, third = dsn(notice)
    assert len(rs) == 1
    r = rs[0]
    assert r["Final-Recipient"] == "rfc822; bad@three.example"
    assert r["Action"] == "failed"
    assert re.fullmatch(r"5\.\d{1,3}\.\d{1,3}", r["Status"]) and r["Status"] == "5.1.1"
    assert r["Remote-MTA"] == "dns; mx.three.example"
    assert r["Diagnostic-Code"] == ("smtp; 550 5.1.1 <bad@three.example>: Recipient address "
                                    "rejected: User unknown in virtual mailbox table")
    assert head["X-Postern-Queue-ID"] == qid
    assert head["X-Postern-Sender"] == f"rfc822; {ALICE}"
    assert "Arrival-Date" in head
    assert ("<bad@three.example>: host mx.three.example[127.0.0.15] said: 550 5.1.1 "
            "<bad@three.example>: Recipient address rejected") in text
    assert third.get_payload()[0]["Subject"] == "three"
    assert notice["To"].addresses[0].addr_spec == ALICE
    assert notice["Return-Path"] == "<>"
    mo.log_line(rf"qmgr\[\d+\]: {qid}: removed")


def test_ret_hdrs_orcpt_envid_and_success_notice(mo):
    nodsn = mo.sink("127.0.0.16", ehlo_ext=["PIPELINING", "8BITMIME"],
                    rcpt_reply=lambda a: "550 5.7.1 No thanks" if a.startswith("no") else None)
    mo.dns.add("nodsn.example", "A", "127.0.0.16")
    withdsn = mo.sink("127.0.0.17")
    mo.dns.add("withdsn.example", "A", "127.0.0.17")
    before = len(mo.maildir("pt-alice"))
    qid = mo.send(ALICE, ["yes@nodsn.example", "no@nodsn.example", "u@withdsn.example"],
                  subject="dsn options", mail_options=["RET=HDRS", "ENVID=env-42"],
                  rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;first@orig.example"])
    nodsn.wait_messages(1)
    withdsn.wait_messages(1)
    got = mo.wait_maildir("pt-alice", before + 2)[before:]
    by_subject = {m["Subject"]: m for m in got}
    # Failure: headers only (RET=HDRS), the ORCPT and ENVID come back.
    text, head, [r], third = dsn(by_subject["Undelivered Mail Returned to Sender"])
    assert third.get_content_type() == "text/rfc822-headers"
    assert "Subject: dsn options" in third.get_content()
    assert head["Original-Envelope-Id"] == "env-42"
    assert r["Original-Recipient"] == "rfc822; first@orig.example"
    assert r["Final-Recipient"] == "rfc822; no@nodsn.example"
    # Success: the hop without DSN gets a "relayed" notice; the one with DSN
    # took NOTIFY over, so nothing is said about it from here.
    text, head, rs, third = dsn(by_subject["Successful Mail Delivery Report"])
    assert [x["Final-Recipient"] for x in rs] == ["rfc822; yes@nodsn.example"]
    assert (rs[0]["Action"], rs[0]["Status"]) == ("relayed", "2.0.0")
    assert rs[0]["Remote-MTA"] == "dns; nodsn.example"
    assert "<yes@nodsn.example>: delivery via nodsn.example[127.0.0.16]" in text
    mo.log_line(rf"bounce\[\d+\]: {qid}: sender delivery status notification: \w+")
    time.sleep(1)
    assert len(mo.maildir("pt-alice")) == before + 2


def test_notify_never_gets_no_notice(mo):
    mo.sink("127.0.0.27", rcpt_reply=lambda a: "550 5.1.1 No such user")
    mo.dns.add("never.example", "A", "127.0.0.27")
    before = len(mo.maildir("pt-bob"))
    mark = mo.inst.log_mark()
    qid = mo.send(BOB, ["x@never.example"], rcpt_options=["NOTIFY=NEVER"])
    mo.log_line(rf"{qid}: to=<x@never\.example>, .*status=bounced", since=mark)
    mo.log_line(rf"qmgr\[\d+\]: {qid}: removed", since=mark)
    assert "non-delivery notification" not in mo.inst.log_text()[mark:]
    time.sleep(1)
    assert len(mo.maildir("pt-bob")) == before


# --------------------------------------------------------------------------
# Rate delay and connection reuse
# --------------------------------------------------------------------------

def test_rate_delay_spaces_one_destination_only(mo):
    slow, quick = mo.sink("127.0.0.18"), mo.sink("127.0.0.19")
    mo.dns.add("rate.example", "A", "127.0.0.18")
    mo.dns.add("norate.example", "A", "127.0.0.19")
    t0 = time.time()
    for i in range(5):
        mo.send(ALICE, [f"u{i}@rate.example"])
        mo.send(ALICE, [f"u{i}@norate.example"])
    quick.wait_messages(5, timeout=30)
    quick_done = max(m.time for m in quick.messages)
    slow.wait_messages(5, timeout=60)
    times = sorted(m.time for m in slow.messages)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g >= 0.95 for g in gaps), gaps
    # The other destination did not wait for the rate-limited one.
    assert quick_done < times[-1] - 1.5, (quick_done - t0, [t - t0 for t in times])


def test_connection_reuse(mo):
    s = mo.sink("127.0.0.20")
    mo.dns.add("reuse.example", "A", "127.0.0.20")
    clients = 10
    per_client = REUSE_MESSAGES // clients
    errors = []

    def client(c):
        try:
            with smtplib.SMTP("127.0.0.1", mo.smtpd_port, local_hostname="client.example",
                              timeout=120) as smtp:
                for i in range(per_client):
                    smtp.sendmail(ALICE, [f"u{c}-{i}@reuse.example"],
                                  f"Subject: reuse {c}-{i}\r\n\r\nbody\r\n")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    s.wait_messages(clients * per_client, timeout=300)
    # Sessions are reused (RSET between messages) within the agents' caches.
    print(f"reuse: {clients * per_client} messages, {s.connections} connections")
    assert s.connections <= clients * per_client // 10, s.connections
    assert s.commands.count("RSET") >= clients * per_client - 2 * s.connections
    mo.inst.wait_for_log(r"conn_use=\d+")


# --------------------------------------------------------------------------
# Double bounces and notices from <>
# --------------------------------------------------------------------------

def test_undeliverable_bounce_goes_once_to_postmaster(mo):
    rejecting = mo.sink("127.0.0.21", rcpt_reply=lambda a: "550 5.1.1 No such user")
    mo.dns.add("x550.example", "A", "127.0.0.21")
    mo.dns.add("sender550.example", "A", "127.0.0.21")
    before = len(mo.maildir(POSTMASTER))
    mark = mo.inst.log_mark()
    # The bounce to the (remote) sender is itself refused.
    qid = mo.send("someone@sender550.example", ["bad@x550.example"], subject="double")
    mo.log_line(rf"bounce\[\d+\]: {qid}: sender non-delivery notification: (\w+)", since=mark)
    notice_id = re.search(rf"{qid}: sender non-delivery notification: (\w+)",
                          mo.inst.log_text()[mark:]).group(1)
    mo.log_line(rf"{notice_id}: to=<someone@sender550\.example>, .*status=bounced", since=mark)
    mo.log_line(rf"bounce\[\d+\]: {notice_id}: postmaster non-delivery notification: \w+",
                since=mark)
    [pm] = mo.wait_maildir(POSTMASTER, before + 1)[before:]
    text, head, [r], third = dsn(pm)
    assert pm["Subject"] == "Postmaster Copy: Undelivered Mail"
    assert r["Final-Recipient"] == "rfc822; someone@sender550.example"
    # The whole failed notice is attached.
    assert third.get_content_type() == "message/rfc822"
    assert third.get_payload()[0]["Subject"] == "Undelivered Mail Returned to Sender"
    # Nothing more comes: no loop, and no mail was ever sent to <>.
    time.sleep(3)
    assert len(mo.maildir(POSTMASTER)) == before + 1
    assert not any(re.match(r"RCPT TO:\s*<>", c, re.I) for c in rejecting.commands)
    assert not re.search(r"to=<>", mo.inst.log_text())


def test_failure_of_mail_from_null_sender_goes_to_postmaster(mo):
    rejecting = mo.sink("127.0.0.22", rcpt_reply=lambda a: "550 5.1.1 No such user")
    mo.dns.add("nullsender.example", "A", "127.0.0.22")
    before = len(mo.maildir(POSTMASTER))
    mark = mo.inst.log_mark()
    qid = mo.send("", ["bad@nullsender.example"], subject="from the null sender")
    mo.log_line(rf"{qid}: to=<bad@nullsender\.example>, .*status=bounced", since=mark)
    mo.log_line(rf"bounce\[\d+\]: {qid}: postmaster non-delivery notification: \w+", since=mark)
    [pm] = mo.wait_maildir(POSTMASTER, before + 1)[before:]
    # From double_bounce_sender: if this one failed too, it would be dropped.
    assert pm["Return-Path"] == "<double-bounce@mx.e2e.test>"
    assert not re.search(r"sender non-delivery notification", mo.inst.log_text()[mark:])
    assert not any(c.upper().startswith("RCPT TO:<>") for c in rejecting.commands)
    mo.log_line(rf"qmgr\[\d+\]: {qid}: removed", since=mark)


# --------------------------------------------------------------------------
# Queue lifetime and delay warnings
# --------------------------------------------------------------------------

def test_delay_warning_once_then_expiry_bounce(make_mo):
    m = make_mo({"delay_warning_time": "3s", "maximal_queue_lifetime": "10s",
                 "bounce_queue_lifetime": "10s"})
    m.dns.add("down.example", "A", "127.0.0.40")       # refuses connections
    qid = m.send(ALICE, ["u@down.example"], subject="will expire")
    delayed = m.wait_maildir("pt-alice", 1, timeout=30,
                             match=subject_is("Delayed Mail (still being retried)"))
    text, head, [r], third = dsn(delayed[0])
    assert "THIS IS A WARNING ONLY" in text
    assert (r["Action"], r["Final-Recipient"]) == ("delayed", "rfc822; u@down.example")
    assert r["Status"].startswith("4.") and "Will-Retry-Until" in r
    assert "Connection refused" in r["Diagnostic-Code"]
    m.log_line(rf"qmgr\[\d+\]: {qid}: from=<{ALICE}>, status=expired, returned to sender",
               timeout=40)
    failed = m.wait_maildir("pt-alice", 1, timeout=30,
                            match=subject_is("Undelivered Mail Returned to Sender"))
    text, head, [r], third = dsn(failed[0])
    assert (r["Action"], r["Status"]) == ("failed", "5.4.7")
    assert "message is too old" in r["Diagnostic-Code"]
    assert "Connection refused" in r["Diagnostic-Code"]
    m.log_line(rf"qmgr\[\d+\]: {qid}: removed")
    # One delay warning only, though the message was deferred several times.
    assert len([x for x in m.maildir("pt-alice")
                if x["Subject"] == "Delayed Mail (still being retried)"]) == 1


# --------------------------------------------------------------------------
# Bad peers
# --------------------------------------------------------------------------

@pytest.mark.parametrize("mode,addr,expect", [
    ("garbage", "127.0.0.23", "malformed reply while receiving the initial server greeting"),
    ("endless", "127.0.0.24", "performing the EHLO handshake"),
    ("stall_rcpt", "127.0.0.25", "timed out while sending RCPT TO"),
])
def test_bad_peer_defers_and_keeps_the_message(mo, mode, addr, expect):
    dom = f"{mode.replace('_', '-')}.bad.example"
    s = mo.sink(addr, mode=mode)
    mo.dns.add(dom, "A", addr)
    mark = mo.inst.log_mark()
    qid = mo.send(ALICE, [f"u@{dom}"])
    line = mo.log_line(rf"{qid}: to=<u@{re.escape(dom)}>, .*status=deferred.*", since=mark,
                       timeout=6 * SHORT + 20)
    assert expect in line, line
    s.stop()
    # Not lost: still queued, and delivered once a good server answers.
    assert any(p.name == qid for p in mailin.queue_files(mo.inst))
    good = mo.sink(addr)
    good.wait_messages(1, timeout=30)
    mo.log_line(rf"qmgr\[\d+\]: {qid}: removed", since=mark)


# --------------------------------------------------------------------------
# Local submission out over TLS
# --------------------------------------------------------------------------

def test_sendmail_to_a_remote_domain_over_starttls(make_mo):
    """sendmail -> postdrop -> pickup -> cleanup -> qmgr -> smtp -> a TLS sink:
    at smtp_tls_security_level=encrypt the message leaves over STARTTLS; at
    verify, with a CA that did not sign the sink's certificate, it is refused
    after the handshake and deferred, and nothing of it is sent in clear."""
    # Readable by mail_owner (the smtp agent reads the CA file).
    work = Path(tempfile.mkdtemp(prefix="postern-test-tls-", dir="/tmp"))
    try:
        _sendmail_over_starttls(make_mo, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sendmail_over_starttls(make_mo, work):
    certs = work / "certs"
    ca = tls_support.make_ca(certs)
    wrong = tls_support.make_ca(certs / "wrong", name="Postern Wrong CA")
    server = tls_support.make_cert(certs, ca, name="mx.tls-out.example",
                                   alt_names=["DNS:mx.tls-out.example",
                                              "DNS:mx.tls-wrong.example"])
    for d in (work, certs, certs / "wrong"):
        d.chmod(0o755)
    for f in (ca.cert, wrong.cert):
        os.chmod(f, 0o644)
    # sendmail runs postdrop from $command_directory.
    bindir = work / "bin"
    bindir.mkdir(mode=0o755)
    for name in ("sendmail", "postdrop"):
        os.symlink(conftest.BUILD / "bin" / name, bindir / name)
    mo = make_mo({"transport_maps": "inline:{ tls-out.example=tlsencrypt:, "
                                    "tls-wrong.example=tlswrongca: }",
                  "command_directory": str(bindir),
                  "myorigin": "localhost"},
                 extra_master=("pickup    unix n - n 60 1 pickup\n"
                               "tlsencrypt unix - - n - - smtp "
                               "-o smtp_tls_security_level=encrypt\n"
                               "tlswrongca unix - - n - - smtp "
                               f"-o smtp_tls_security_level=verify -o smtp_tls_CAfile={wrong.cert}"
                               "\n"))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(server.chain, server.key)
    ok = mo.sink("127.0.0.50", tls_context=ctx, name="mx.tls-out.example")
    bad = mo.sink("127.0.0.51", tls_context=ctx, name="mx.tls-wrong.example")
    mo.dns.add("tls-out.example", "MX", (10, "mx.tls-out.example"))
    mo.dns.add("mx.tls-out.example", "A", "127.0.0.50")
    mo.dns.add("tls-wrong.example", "MX", (10, "mx.tls-wrong.example"))
    mo.dns.add("mx.tls-wrong.example", "A", "127.0.0.51")

    def sendmail(rcpt, subject):
        text = (f"From: <{ALICE}>\nTo: <{rcpt}>\nSubject: {subject}\n\n"
                "Sent with sendmail.\n").encode()
        env = dict(mo.inst.env, MAIL_CONFIG=str(mo.inst.conf_dir))
        r = subprocess.run([str(bindir / "sendmail"), "-f", ALICE, "-i", rcpt], input=text,
                           env=env, capture_output=True, timeout=60, cwd=mo.root)
        assert r.returncode == 0, r.stderr

    mark = mo.inst.log_mark()
    sendmail("u@tls-out.example", "over tls")
    [msg] = ok.wait_messages(1)
    assert msg.tls and msg.tls_version in ("TLSv1.2", "TLSv1.3")
    assert msg.rcpts == ["u@tls-out.example"] and msg.mail_from == ALICE
    qid = re.search(r"pickup\[\d+\]: (\w+): uid=\d+ from=<",
                    mo.log_line(r"pickup\[\d+\]: \w+: uid=\d+ from=<", since=mark)).group(1)
    mo.log_line(r"(Untrusted|Anonymous|Trusted|Verified) TLS connection established to "
                r"mx\.tls-out\.example\[127\.0\.0\.50\]:\d+: TLSv1\.[23]", since=mark)
    mo.log_line(rf"{qid}: to=<u@tls-out\.example>, relay=mx\.tls-out\.example\[127\.0\.0\.50\]"
                r":\d+, .*status=sent", since=mark)

    mark = mo.inst.log_mark()
    sendmail("v@tls-wrong.example", "wrong ca")
    line = mo.log_line(r"(\w+): to=<v@tls-wrong\.example>, relay=mx\.tls-wrong\.example"
                       r"\[127\.0\.0\.51\]:\d+, .*dsn=4\.7\.5, status=deferred .*", since=mark)
    assert "Server certificate not trusted" in line
    mo.log_line(r"Untrusted TLS connection established to mx\.tls-wrong\.example", since=mark)
    # The handshake happened and then nothing: no envelope, no content.
    assert bad.connections >= 1 and not bad.messages
    assert not any(c.startswith(("MAIL", "RCPT", "DATA")) for c in bad.commands)
    # Kept for a later attempt, in the deferred queue.
    wid = re.search(r"(\w+): to=<v@tls-wrong", line).group(1)
    mo.inst.wait_until(lambda: any(mo.inst.queue_dir.glob(f"deferred/**/{wid}")), timeout=10,
                       what="the message in deferred/")
