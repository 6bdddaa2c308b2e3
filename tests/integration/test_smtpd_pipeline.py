"""smtpd with the real pipeline: cleanup, qmgr and local.

What smtpd promises the rest of the system, checked on what really lands:
the Received: header in the delivered message, the DSN parameters in the
queue file, BDAT content byte for byte, and 250 only for committed files.
(The 2,000-message load, crash and end-to-end smuggling tests live in
test_mailin_e2e.py.)
"""

import re
import subprocess
import time

import pytest

from conftest import BUILD
from mailin import (LOCAL_USERS, MaildirIndex, ensure_local_users, mailin_main_cf,
                    maildir_new, prepare_mail_root, wait_for_deliveries)
from smtpd_support import smtpd_server  # noqa: F401

USER = LOCAL_USERS[0]
DOMAIN = "localhost"


def pipeline(smtpd_server, real=True, extra=None):
    """An instance with the real services; 127.0.0.1 is outside mynetworks."""
    ensure_local_users()

    def params(inst):
        prepare_mail_root(inst.root)
        p = mailin_main_cf(inst.root)
        p["mynetworks"] = "192.0.2.0/24"
        p.setdefault("local_recipient_maps", "unix:passwd.byname")
        p.update(extra or {})
        return p

    return smtpd_server(main_cf=params, real=real)


def delivered(root, user, timeout=30):
    new = maildir_new(root, user)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        files = sorted(new.glob("*")) if new.is_dir() else []
        if files:
            return [f.read_bytes() for f in files]
        time.sleep(0.1)
    raise AssertionError(f"nothing delivered to {new}")


def postcat(inst, queue_id):
    r = subprocess.run([str(BUILD / "bin" / "postcat"), "-c", str(inst.conf_dir), "-q",
                        queue_id], capture_output=True, text=True, timeout=30,
                       cwd=inst.root)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_delivery_with_received_header(smtpd_server):
    srv = pipeline(smtpd_server)
    rcpt = f"{USER}@{DOMAIN}"
    with srv.client() as c:
        c.ehlo("client.example")
        assert c.cmd("MAIL FROM:<sender@client.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{rcpt}>") == "250 2.1.5 Ok"
        assert c.cmd("RCPT TO:<nosuchuser4711@localhost>").startswith("550 5.1.1")
        assert c.cmd("RCPT TO:<x@remote.example>") == \
            "554 5.7.1 <x@remote.example>: Relay access denied"
        assert c.cmd("DATA").startswith("354")
        c.send_raw("From: <sender@client.example>\r\nSubject: pipeline\r\n"
                   "Message-ID: <p1@client.example>\r\nDate: Mon, 23 Nov 2026 08:00:00 +0000\r\n"
                   "\r\n..dot\r\nGr\u00fc\u00dfe\r\n.\r\n")
        reply = c.text()
        m = re.match(r"250 2\.0\.0 Ok: queued as (\S+)$", reply)
        assert m, reply
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
    (data,) = delivered(srv.inst.root, USER)
    head, _, body = data.partition(b"\n\n")
    assert body == "dot\nGr\u00fc\u00dfe\n".encode().replace(b"dot", b".dot")
    assert re.search(rb"^Received: from client\.example \(localhost \[127\.0\.0\.1\]\)\n"
                     rb"\tby mx\.e2e\.test \(Postern\) with ESMTP id " + m.group(1).encode() +
                     rb"\n\tfor <" + rcpt.encode() + rb">; \w{3}, [ \d]\d \w{3} \d{4} ", head,
                     re.M), head


def test_dsn_parameters_reach_the_queue_file(smtpd_server):
    srv = pipeline(smtpd_server, real="cleanup")
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@client.example> RET=HDRS ENVID=env+2Bid") == \
            "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{USER}@{DOMAIN}> NOTIFY=SUCCESS,DELAY "
                     "ORCPT=rfc822;Original+40example.org") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        c.send_raw("Subject: dsn\r\n\r\nbody\r\n.\r\n")
        m = re.match(r"250 2\.0\.0 Ok: queued as (\S+)$", c.text())
        assert m
    out = postcat(srv.inst, m.group(1))
    assert "dsn_orig_rcpt: rfc822;Original@example.org" in out, out
    assert re.search(r"dsn_ret: .*(HDRS|2)", out, re.I), out
    assert re.search(r"dsn_envid: env\+id", out), out
    assert re.search(r"dsn_notify_flags: 5\b", out), out   # SUCCESS | DELAY
    assert f"recipient: {USER}@{DOMAIN}" in out


def test_bdat_byte_exact_in_the_queue_file(smtpd_server):
    srv = pipeline(smtpd_server, real="cleanup")
    chunk1 = b"Subject: bdat\r\nMessage-ID: <b1@client.example>\r\n\r\n.dot not stuffed\r\n"
    chunk2 = b"\xc3\xa4 8-bit\r\n" + b"z" * 5000 + b"\r\nno final newline"
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@client.example> BODY=8BITMIME") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{USER}@{DOMAIN}>") == "250 2.1.5 Ok"
        c.send_raw(b"BDAT %d\r\n" % len(chunk1) + chunk1)
        assert c.text() == f"250 2.0.0 Ok: {len(chunk1)} bytes"
        c.send_raw(b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
        m = re.match(r"250 2\.0\.0 Ok: \d+ bytes queued as (\S+)$", c.text())
        assert m
    r = subprocess.run([str(BUILD / "bin" / "postcat"), "-c", str(srv.inst.conf_dir), "-bh",
                        "-q", m.group(1)], capture_output=True, timeout=30, cwd=srv.inst.root)
    assert r.returncode == 0, r.stderr
    stored = r.stdout
    assert stored.startswith(b"Received: from client.example (localhost [127.0.0.1])\n")
    assert stored.endswith(b"\n\n.dot not stuffed\n\xc3\xa4 8-bit\n" + b"z" * 5000 +
                           b"\nno final newline")


def test_refused_content_is_never_committed(smtpd_server):
    srv = pipeline(smtpd_server, extra={"message_size_limit": "2000"})
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<sender@client.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{USER}@{DOMAIN}>") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        c.send_raw("Subject: big\r\n\r\n" + "x" * 78 + "\r\n" * 1 + ("y" * 78 + "\r\n") * 50
                   + ".\r\n")
        assert c.text() == "552 5.3.4 Error: message file too big"
        assert c.cmd("MAIL FROM:<sender@client.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{USER}@{DOMAIN}>") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        c.send_raw("Subject: bare\r\n\r\nbare\nlf\r\n.\r\n")
        assert c.text() == "550 5.5.2 Error: bare <LF> received"
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
    time.sleep(1.5)
    new = maildir_new(srv.inst.root, USER)
    assert not new.is_dir() or list(new.iterdir()) == []
    for sub in ("incoming", "immediate", "bulk", "deferred"):
        d = srv.inst.queue_dir / sub
        assert not d.is_dir() or not [p for p in d.rglob("*") if p.is_file()], sub
