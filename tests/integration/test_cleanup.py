"""cleanup: the real daemon under master, driven over its attribute protocol.

Each test starts a private instance whose master.cf runs only cleanup, and a
fake qmgr listening on public/qmgr that records the wakeup requests. A
Python client (attrproto) speaks docs/protocols.md section 1; the committed
queue files are read back with qfilefmt (and postcat) and compared octet
for octet with what was sent.
"""

import os
import re
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from attrproto import AttrClient
from conftest import BUILD
from qfilefmt import read_qfile

HOST = "mx.cleanup.test"
F_MISSING, F_RECEIVED, F_EXTRACT, F_BCC = 1, 2, 4, 8
ID_RE = re.compile(r"^1[0-9A-HJKMNP-TV-Z]{16}$")
QUEUES = ("incoming", "immediate", "bulk", "deferred", "hold", "corrupt")
MASTER_CF = "cleanup unix - - n - 0 cleanup\n"  # private/cleanup
WAIT = 10  # seconds for anything asynchronous

SIMPLE = (b"From: sender@example.org\nTo: rcpt@example.com\nSubject: test\n"
          b"Message-ID: <abc.123@example.org>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
          b"\nHello.\n.leading dot\n\n8-bit: \xc3\xa9\xe2\x82\xac\nlast line\n")


class FakeQmgr:
    """A listener on public/qmgr that keeps every trigger request it gets."""

    def __init__(self, queue_dir):
        self.path = Path(queue_dir) / "public" / "qmgr"
        if self.path.exists():
            self.path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        os.chmod(self.path, 0o666)  # cleanup may run as mail_owner
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.requests = []
        self.stopped = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            data = b""
            conn.settimeout(5)
            try:
                while True:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except OSError:
                pass
            conn.close()
            self.requests.extend(r.decode() for r in data.split(b"\0") if r)

    def wait_for(self, request, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while request not in self.requests:
            if time.monotonic() > deadline:
                pytest.fail(f"qmgr never got {request!r}; got {self.requests!r}")
            time.sleep(0.02)

    def stop(self):
        self.stopped = True
        self.sock.close()
        self.thread.join(timeout=2)


@pytest.fixture
def cleanup(postern_instance):
    """Factory: (instance, fake qmgr) with main.cf extras."""
    made = []

    def make(qmgr=True, **main):
        main_cf = {"myhostname": HOST, "mydomain": "cleanup.test"}
        main_cf.update({k: str(v) for k, v in main.items()})
        inst = postern_instance(MASTER_CF, main_cf)
        fake = FakeQmgr(inst.queue_dir) if qmgr else None
        if fake:
            made.append(fake)
        return inst, fake

    yield make
    for fake in made:
        fake.stop()


class Txn:
    """One transaction with the cleanup service."""

    def __init__(self, inst, flags=F_RECEIVED, origin="smtpd"):
        self.c = AttrClient(inst.queue_dir / "private" / "cleanup")
        self.open_reply = self.c.request([("req", "open"), ("flags", flags), ("origin", origin)])
        self.id = self.open_reply.get("queue_id")

    def attr(self, name, value):
        self.c.send([("req", "attr"), ("name", name), ("value", value)])

    def sender(self, addr, **params):
        self.c.send([("req", "sender"), ("address", addr)] + list(params.items()))

    def rcpt(self, addr, orcpt=None, notify=None):
        attrs = [("req", "rcpt"), ("address", addr)]
        if orcpt is not None:
            attrs.append(("orcpt", orcpt))
        if notify is not None:
            attrs.append(("notify", notify))
        self.c.send(attrs)

    def data(self, content, chunk=65536):
        for i in range(0, len(content), chunk):
            self.c.send([("req", "data"), ("data", content[i:i + chunk])])

    def end(self):
        reply = self.c.request([("req", "end")])
        self.c.close()
        return reply

    def close(self):
        self.c.close()


def submit(inst, content, rcpts=("rcpt@example.com",), sender="sender@example.org",
           flags=F_RECEIVED, attrs=(), chunk=65536, **sender_params):
    t = Txn(inst, flags)
    assert t.open_reply.get("status") == 0, t.open_reply
    for name, value in attrs:
        t.attr(name, value)
    t.sender(sender, **sender_params)
    for r in rcpts:
        t.rcpt(r)
    t.data(content, chunk)
    return t.end(), t.id


def files_in(inst, queue):
    return sorted(p for p in (inst.queue_dir / queue).rglob("*") if p.is_file())


def find_file(inst, qid):
    for queue in QUEUES:
        for p in files_in(inst, queue):
            if p.name == qid:
                return queue, p
    return None, None


def committed(inst, reply, queue="immediate"):
    """Check a success reply and return the parsed queue file."""
    assert reply.get("status") == 0, reply.as_dict()
    qid = reply.get("queue_id")
    assert ID_RE.match(qid), qid
    assert reply.get("dsn") == "2.0.0"
    assert reply.get("reason") == f"Ok: queued as {qid}"
    where, path = find_file(inst, qid)
    assert where == queue, (where, path)
    assert files_in(inst, "incoming") == []
    q = read_qfile(path)
    assert q.id == qid
    return q


def refused(inst, reply, status, dsn, reason, qid):
    assert (reply.get("status"), reply.get("dsn"), reply.get("reason")) == (status, dsn, reason)
    assert find_file(inst, qid) == (None, None), "a refused message left a file"


def header_lines(content):
    head = content.split(b"\n\n", 1)[0]
    return head.split(b"\n")


# ---------------------------------------------------------------------------


def test_commit_immediate_byte_exact(cleanup):
    inst, qmgr = cleanup()
    t = Txn(inst)
    assert t.open_reply.get("status") == 0
    assert ID_RE.match(t.id)
    # The file exists in incoming/ from "open" on.
    assert [p.name for p in files_in(inst, "incoming")] == [t.id]
    for name, value in (("client_name", "client.example"), ("client_address", "192.0.2.7"),
                        ("helo_name", "helo.example"), ("protocol_name", "ESMTP")):
        t.attr(name, value)
    t.sender("sender@example.org", ret="HDRS", envid="env-1", body="8BITMIME", smtputf8=0,
             size=len(SIMPLE))
    t.rcpt("a@example.com", orcpt="rfc822;a@example.com", notify=2 | 4)
    t.rcpt("b@example.com")
    t.rcpt("a@example.com", orcpt="rfc822;a@example.com", notify=2 | 4)   # duplicate
    t.rcpt("B@Example.COM")                                               # duplicate, case
    t.rcpt("a@example.com")                                               # no ORCPT: kept
    # Chunks that split lines, and the header from the body, anywhere.
    t.data(SIMPLE, chunk=7)
    reply = t.end()
    q = committed(inst, reply)
    assert reply.get("queue_id") == t.id
    assert q.content == SIMPLE
    assert q.sender == "sender@example.org"
    assert (q.dsn_ret, q.dsn_envid) == (2, "env-1")
    assert [(r.address, r.orcpt, r.notify, r.status) for r in q.rcpts] == [
        ("a@example.com", "rfc822;a@example.com", 6, "P"),
        ("b@example.com", "", 0, "P"),
        ("a@example.com", "", 0, "P"),
    ]
    assert q.attr("client_address") == "192.0.2.7"
    assert q.attr("encoding") == "8bit"
    assert q.msg_class == "immediate" and q.priority == 0
    assert abs(q.arrival - time.time()) < 60
    qmgr.wait_for(f"Aimmediate/{t.id}")
    inst.wait_for_log(rf"postfix/cleanup\[\d+\]: {t.id}: message-id=<abc\.123@example\.org>$")


def test_empty_and_unterminated_content(cleanup):
    inst, _ = cleanup()
    t = Txn(inst)
    t.sender("")
    t.rcpt("r@example.com")
    t.data(b"")
    q = committed(inst, t.end())
    assert (q.content, q.sender, q.dsn_ret) == (b"", "", 0)
    # Headers only, the last line without a line end: kept byte for byte...
    reply, _ = submit(inst, b"Subject: x", smtputf8=1)
    q = committed(inst, reply)
    assert q.content == b"Subject: x"
    assert q.attr("smtputf8") == "1"
    # ...unless headers are added after it: then the line is ended first.
    reply, _ = submit(inst, b"Subject: x\nMessage-ID: <m@x>\nDate: d\nFrom: f", flags=F_MISSING
                      | F_RECEIVED)
    assert committed(inst, reply).content == b"Subject: x\nMessage-ID: <m@x>\nDate: d\nFrom: f"
    reply, _ = submit(inst, b"Subject: x", flags=F_MISSING | F_RECEIVED)
    lines = committed(inst, reply).content.split(b"\n")
    assert lines[0] == b"Subject: x" and lines[1].startswith(b"Message-Id: <")
    assert lines[3].startswith(b"From: ") and lines[4] == b""


def test_ids_valid_and_increasing(cleanup):
    inst, qmgr = cleanup()
    ids = []
    for i in range(6):
        reply, _ = submit(inst, b"Subject: %d\n\nbody\n" % i)
        ids.append(committed(inst, reply).id)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for qid in ids:
        qmgr.wait_for(f"Aimmediate/{qid}")


def test_precedence_bulk_goes_to_bulk(cleanup):
    inst, qmgr = cleanup()
    for word in (b"bulk", b"list", b"Junk (auto)"):
        reply, _ = submit(inst, b"Precedence: " + word + b"\nSubject: x\n\nbody\n")
        q = committed(inst, reply, "bulk")
        assert q.msg_class == "bulk"
        qmgr.wait_for(f"Abulk/{q.id}")
    reply, _ = submit(inst, b"Precedence: first-class\n\nbody\n")
    committed(inst, reply, "immediate")


def test_bulk_by_recipient_count_and_class_map(cleanup):
    inst, _ = cleanup(bulk_recipient_threshold=3,
                      message_class_maps="inline:{ news@example.org=bulk, "
                                         "vip@example.org=immediate }")
    reply, _ = submit(inst, b"\nx\n", rcpts=("a@x.test", "b@x.test"))
    committed(inst, reply, "immediate")
    reply, _ = submit(inst, b"\nx\n", rcpts=("a@x.test", "b@x.test", "c@x.test"))
    committed(inst, reply, "bulk")
    reply, _ = submit(inst, b"\nx\n", sender="news@example.org")
    committed(inst, reply, "bulk")
    reply, _ = submit(inst, b"Precedence: bulk\n\nx\n", sender="vip@example.org")
    committed(inst, reply, "immediate")


def test_mt_priority(cleanup):
    inst, _ = cleanup(message_priority_maps="inline:{ boss@example.org=5 }")
    reply, _ = submit(inst, b"\nx\n", attrs=[("mt_priority", "-5")])
    q = committed(inst, reply, "bulk")
    assert q.priority == -5
    reply, _ = submit(inst, b"Precedence: list\n\nx\n", attrs=[("mt_priority", "3")])
    q = committed(inst, reply, "immediate")
    assert q.priority == 3
    # The map raises a lower MT-PRIORITY, and applies when none was given.
    reply, _ = submit(inst, b"\nx\n", sender="boss@example.org", attrs=[("mt_priority", "1")])
    assert committed(inst, reply).priority == 5
    reply, _ = submit(inst, b"\nx\n", sender="boss@example.org")
    assert committed(inst, reply).priority == 5
    # Out of range: ignored with a warning.
    reply, _ = submit(inst, b"\nx\n", attrs=[("mt_priority", "12")])
    assert committed(inst, reply).priority == 0
    inst.wait_for_log(r"ignoring bad mt_priority value \"12\"")


def test_missing_headers_added_only_with_flag(cleanup):
    inst, _ = cleanup()
    bare = b"Subject: no ids\n\nbody\n"
    reply, _ = submit(inst, bare, flags=F_RECEIVED)
    q = committed(inst, reply)
    assert q.content == bare
    inst.wait_for_log(rf"{q.id}: message-id=<>$")

    reply, _ = submit(inst, bare, flags=F_RECEIVED | F_MISSING, sender="joe@example.org",
                      attrs=[("full_name", "Joe \"J\" User")])
    q = committed(inst, reply)
    lines = header_lines(q.content)
    assert lines[0] == b"Subject: no ids"
    stamp = time.strftime("%Y%m%d", time.gmtime(q.arrival))
    assert re.fullmatch(rb"Message-Id: <" + stamp.encode() + rb"\d{6}\." + q.id.encode()
                        + rb"@" + HOST.encode() + rb">", lines[1]), lines
    assert re.fullmatch(rb"Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), [ \d]\d "
                        rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                        rb"\d\d:\d\d:\d\d [+-]\d{4}( \(\S+\))?", lines[2]), lines
    assert lines[3] == b'From: "Joe \\"J\\" User" <joe@example.org>'
    assert q.content.endswith(b"\n\nbody\n")
    inst.wait_for_log(rf"{q.id}: message-id=<\d{{14}}\.{q.id}@{re.escape(HOST)}>$")

    # Present headers are not added twice; the null sender becomes MAILER-DAEMON.
    reply, _ = submit(inst, b"Message-ID: <x@y>\nDate: today\n\nbody\n",
                      flags=F_RECEIVED | F_MISSING, sender="")
    q = committed(inst, reply)
    assert q.content == b"Message-ID: <x@y>\nDate: today\nFrom: MAILER-DAEMON\n\nbody\n"

    # Resent- headers: the missing Resent- ones are added instead.
    reply, _ = submit(inst, SIMPLE.replace(b"Subject", b"Resent-To: x@y\nSubject"),
                      flags=F_RECEIVED | F_MISSING)
    q = committed(inst, reply)
    names = [line.split(b":")[0] for line in header_lines(q.content)]
    assert names[-3:] == [b"Resent-Message-Id", b"Resent-Date", b"Resent-From"]


def test_received_added_without_client_received(cleanup):
    inst, _ = cleanup()
    reply, _ = submit(inst, b"Subject: s\n\nbody\n", flags=0, attrs=[("uid", "1234")])
    q = committed(inst, reply)
    first, second = q.content.split(b"\n")[:2]
    assert first == f"Received: by {HOST} (Postern, from userid 1234)".encode()
    assert re.fullmatch(rb"\tid " + q.id.encode() + rb"; \w\w\w, [ \d]\d \w\w\w \d{4} .*", second)
    assert q.content.endswith(b"Subject: s\n\nbody\n")


def test_header_section_ended_by_non_header_line(cleanup):
    inst, _ = cleanup()
    reply, _ = submit(inst, b"Subject: x\nthis is not a header\nbody\n")
    q = committed(inst, reply)
    # As Postfix: an empty line goes before the line that ended the header.
    assert q.content == b"Subject: x\n\nthis is not a header\nbody\n"
    # Headers added with the flag go before that empty line.
    reply, _ = submit(inst, b"no header at all\n", flags=F_RECEIVED | F_MISSING)
    q = committed(inst, reply)
    lines = q.content.split(b"\n")
    assert [line.split(b":")[0] for line in lines[:3]] == [b"Message-Id", b"Date", b"From"]
    assert lines[3:] == [b"", b"no header at all", b""]


def test_dropped_headers_and_extracted_recipients(cleanup):
    inst, _ = cleanup()
    msg = (b"Return-Path: <forged@example.net>\nTo: Ann <ann@x.test>, bob@x.test\n"
           b"Cc: undisclosed-recipients:;\nBcc: secret@x.test,\n ann@x.test\n"
           b"Content-Length: 12\nSubject: t\n\nbody\n")
    reply, _ = submit(inst, msg, rcpts=(), flags=F_RECEIVED | F_EXTRACT | F_BCC)
    q = committed(inst, reply)
    assert q.content == (b"To: Ann <ann@x.test>, bob@x.test\nCc: undisclosed-recipients:;\n"
                         b"Subject: t\n\nbody\n")
    assert [r.address for r in q.rcpts] == ["ann@x.test", "bob@x.test", "secret@x.test"]
    # Without the extract flag the headers give no recipients at all.
    reply, qid = submit(inst, msg, rcpts=())
    refused(inst, reply, 550, "5.1.0", "Error: no recipients specified", qid)
    # Resent-To/Cc/Bcc win over To/Cc/Bcc; a bare name gets @$myorigin.
    msg = b"To: old@x.test\nResent-To: new@x.test, local\nSubject: t\n\nbody\n"
    reply, _ = submit(inst, msg, rcpts=("envelope@x.test",), flags=F_RECEIVED | F_EXTRACT)
    q = committed(inst, reply)
    assert [r.address for r in q.rcpts] == ["envelope@x.test", "new@x.test", f"local@{HOST}"]


def test_oversize_message(cleanup):
    inst, _ = cleanup(message_size_limit=20000)
    body = b"Subject: big\n\n" + (b"x" * 99 + b"\n") * 300
    reply, qid = submit(inst, body, chunk=4096)
    refused(inst, reply, 552, "5.3.4", "Error: message file too big", qid)
    assert files_in(inst, "incoming") == []
    inst.wait_for_log(rf"{qid}: reject: message from smtpd; from=<sender@example.org> "
                      rf"to=<rcpt@example.com>: 5\.3\.4 Error: message file too big")
    # Just under the limit is fine.
    reply, _ = submit(inst, b"Subject: ok\n\n" + b"y" * (20000 - 14) + b"\n")
    committed(inst, reply)


def test_malformed_header_rejected(cleanup):
    inst, _ = cleanup()
    reply, qid = submit(inst, b"Subject: a\0b\n\nbody\n")
    refused(inst, reply, 550, "5.6.0", "Error: malformed message header: NUL character", qid)
    reply, qid = submit(inst, b"Subject: a\n folded \0 nul\n\nbody\n", chunk=3)
    refused(inst, reply, 550, "5.6.0", "Error: malformed message header: NUL character", qid)
    assert files_in(inst, "incoming") == []
    # NUL in the body is the client's business (BINARYMIME, 8-bit): kept.
    reply, _ = submit(inst, b"Subject: a\n\nb\0dy\n")
    assert committed(inst, reply).content == b"Subject: a\n\nb\0dy\n"


def test_header_limits(cleanup):
    inst, _ = cleanup(header_count_limit=20, header_size_limit=1000, hopcount_limit=5)
    many = b"".join(b"X-H%d: v\n" % i for i in range(21)) + b"\nbody\n"
    reply, qid = submit(inst, many)
    refused(inst, reply, 552, "5.3.4", "Error: too many message header fields", qid)
    reply, _ = submit(inst, many[many.index(b"X-H1:"):])
    committed(inst, reply)

    hops = b"Received: from a by b\n" * 5 + b"\nbody\n"
    reply, qid = submit(inst, hops)
    refused(inst, reply, 554, "5.4.0", "Error: too many hops", qid)
    reply, _ = submit(inst, b"Received: from a by b\n" * 4 + b"\nbody\n")
    committed(inst, reply)

    # One field over header_size_limit is cut there, folds and all (as Postfix).
    long_field = b"X-Long: " + b"a" * 900 + b"\n " + b"b" * 300 + b"\n continued\n"
    reply, _ = submit(inst, long_field + b"Subject: after\n\nbody\n")
    q = committed(inst, reply)
    lines = q.content.split(b"\n")
    assert lines[0] == b"X-Long: " + b"a" * 900
    assert lines[1] == b" " + b"b" * (1000 - 909 - 1)
    assert lines[2:] == [b"Subject: after", b"", b"body", b""]
    inst.wait_for_log(rf"{q.id}: header X-Long: text over header_size_limit=1000 bytes dropped")
    # A long body line is never touched.
    body_line = b"z" * 200000
    reply, _ = submit(inst, b"Subject: s\n\n" + body_line + b"\nend")
    assert committed(inst, reply).content == b"Subject: s\n\n" + body_line + b"\nend"


def test_stray_cr_and_binarymime(cleanup):
    inst, _ = cleanup()
    reply, _ = submit(inst, b"Subject: a\rb\n\nline\rwith cr\n")
    assert committed(inst, reply).content == b"Subject: a b\n\nline with cr\n"
    reply, _ = submit(inst, b"Subject: a\n\nbin\r\0ary\n", body="BINARYMIME")
    q = committed(inst, reply)
    assert q.content == b"Subject: a\n\nbin\r\0ary\n"
    assert q.attr("encoding") == "binary"
    inst2, _ = cleanup(cleanup_replace_stray_cr_lf="no")
    reply, _ = submit(inst2, b"Subject: a\rb\n\nx\r\n")
    assert committed(inst2, reply).content == b"Subject: a\rb\n\nx\r\n"


def test_client_disconnect_leaves_nothing(cleanup):
    inst, qmgr = cleanup()
    for stage in ("open", "sender", "data"):
        t = Txn(inst)
        assert t.open_reply.get("status") == 0
        if stage != "open":
            t.sender("s@example.org")
            t.rcpt("r@example.com")
        if stage == "data":
            t.data(b"Subject: half\n\nthe first half of a messa")
        t.close()
        inst.wait_until(lambda: files_in(inst, "incoming") == [], timeout=WAIT,
                        what="incoming/ to be empty after the client left")
        assert find_file(inst, t.id) == (None, None)
    assert qmgr.requests == []


def test_protocol_errors(cleanup):
    inst, _ = cleanup()
    # A recipient before the sender: answered at "end" with 451, file removed.
    t = Txn(inst)
    t.rcpt("r@example.com")
    t.sender("s@example.org")
    t.rcpt("r@example.com")
    t.data(b"\nx\n")
    refused(inst, t.end(), 451, "4.3.0", "Error: internal protocol error", t.id)
    inst.wait_for_log(rf"{t.id}: protocol error from smtpd client: recipient before the sender")
    # Control characters in a string value.
    t = Txn(inst)
    t.sender("s@exa\x01mple.org")
    t.rcpt("r@example.com")
    refused(inst, t.end(), 451, "4.3.0", "Error: internal protocol error", t.id)
    # A first request that is not "open" gets no answer.
    c = AttrClient(inst.queue_dir / "private" / "cleanup")
    c.send([("req", "sender"), ("address", "x@y")])
    with pytest.raises(EOFError):
        c.recv()
    c.close()
    # Framing garbage: the connection is dropped and nothing stays behind.
    t = Txn(inst)
    t.c.send_raw(b"\x09garbage")
    with pytest.raises((EOFError, ConnectionResetError)):
        t.c.recv()
    inst.wait_until(lambda: files_in(inst, "incoming") == [], timeout=WAIT, what="cleanup")
    # And the service still works.
    committed(inst, submit(inst, b"\nok\n")[0])


def test_queue_minfree(cleanup):
    inst, _ = cleanup(queue_minfree=10 ** 18)
    t = Txn(inst)
    r = t.open_reply
    assert (r.get("status"), r.get("dsn"), r.get("reason")) == (452, "4.3.1",
                                                                "Insufficient system storage")
    with pytest.raises(EOFError):
        t.c.recv()
    assert files_in(inst, "incoming") == []
    inst.wait_for_log(r"warning: not enough free space in mail queue")


def test_qmgr_unreachable_is_only_a_warning(cleanup):
    inst, _ = cleanup(qmgr=False)
    reply, qid = submit(inst, b"Subject: x\n\nbody\n")
    committed(inst, reply)
    inst.wait_for_log(rf"warning: {qid}: cannot wake qmgr through public/qmgr")


def test_blocking_client_library(cleanup):
    """lib/mail/cleanup_clnt through tests/helpers/cleanup_submit."""
    inst, qmgr = cleanup()
    helper = str(BUILD / "tests" / "helpers" / "cleanup_submit")
    path = str(inst.queue_dir / "private" / "cleanup")

    def run(args, data):
        return subprocess.run([helper] + args, input=data, capture_output=True, timeout=30,
                              env=inst.env, cwd=inst.root)

    msg = b"Subject: via cleanup_clnt\n\n" + b"0123456789\n" * 20000
    r = run(["-p", path, "-f", str(F_MISSING), "-a", "uid=42", "-s", "me@example.org",
             "-r", "you@example.com"], msg)
    assert r.returncode == 0, r.stderr
    status, dsn, qid, reason = r.stdout.decode().rstrip("\n").split(" ", 3)
    assert (status, dsn, reason) == ("0", "2.0.0", f"Ok: queued as {qid}")
    q = read_qfile(find_file(inst, qid)[1])
    assert q.content.startswith(f"Received: by {HOST} (Postern, from userid 42)".encode())
    assert q.content.endswith(b"\n\n" + b"0123456789\n" * 20000)
    assert q.attr("uid") == "42"
    qmgr.wait_for(f"Aimmediate/{qid}")
    # A refusal comes back whole.
    r = run(["-p", path, "-s", "me@example.org"], b"\nx\n")
    assert r.returncode == 0, r.stderr
    status, dsn, qid, reason = r.stdout.decode().rstrip("\n").split(" ", 3)
    assert (status, dsn, reason) == ("550", "5.1.0", "Error: no recipients specified")
    assert find_file(inst, qid) == (None, None)
    # An unreachable service is a temporary failure.
    r = run(["-p", str(inst.queue_dir / "private" / "nosuch"), "-s", "me@example.org"], b"")
    assert r.returncode == 1
    assert r.stdout.decode() == "451 4.3.0 - Error: queue file write error\n"


def test_postcat(cleanup):
    inst, _ = cleanup()
    reply, qid = submit(inst, SIMPLE, attrs=[("client_address", "192.0.2.9")])
    q = committed(inst, reply)
    postcat = str(BUILD / "bin" / "postcat")
    r = subprocess.run([postcat, "-c", str(inst.conf_dir), "-q", qid], capture_output=True,
                       timeout=30, env=inst.env)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith(f"*** ENVELOPE RECORDS immediate/{qid} ***\n".encode())
    assert f"queue_id: {qid}\n".encode() in out
    assert b"sender: sender@example.org\n" in out
    assert b"recipient: rcpt@example.com\nrecipient_status: pending\n" in out
    assert b"named_attribute: client_address=192.0.2.9\n" in out
    assert f"*** MESSAGE CONTENTS immediate/{qid} ***\n".encode() + SIMPLE in out
    assert out.endswith(f"*** MESSAGE FILE END immediate/{qid} ***\n".encode())
    path = str(find_file(inst, qid)[1])
    r = subprocess.run([postcat, "-bh", path], capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout == q.content
    r = subprocess.run([postcat, "-h", path], capture_output=True, timeout=30)
    assert r.stdout == SIMPLE.split(b"\n\n")[0] + b"\n"
    r = subprocess.run([postcat, "-b", path], capture_output=True, timeout=30)
    assert r.stdout == b"\n" + SIMPLE.split(b"\n\n", 1)[1]
    r = subprocess.run([postcat, "-q", "-c", str(inst.conf_dir), "1NOSUCHIDXXXXXXXX"],
                       capture_output=True, timeout=30, env=inst.env)
    assert r.returncode == 1
