"""Shared pieces of the mail-in end-to-end tests and the mail-in benchmark.

A mail-in instance is master with smtpd on one TCP port, cleanup, qmgr and
local, delivering to LOCAL_HOME/USER/Maildir (local_home_directory with
home_mailbox = Maildir/). This module writes that configuration, makes the
three local users, builds test messages whose delivered form is known
octet for octet, reads what lands in the Maildirs, and speaks SMTP over a
raw socket for the tests that must control every octet.

Every message carries a unique token in an X-Token: header; deliveries are
counted by token, never by file name, so duplicates and losses show.
"""

import email.utils
import os
import pwd
import re
import socket
import subprocess
import time
from pathlib import Path

IS_ROOT = os.geteuid() == 0
LOCAL_USERS = ("pt-alice", "pt-bob", "pt-carol")
DOMAIN = "localhost"
SENDER_DOMAIN = "client.e2e.test"
CLIENT_HELO = "client.e2e.test"
TOKEN_RE = re.compile(rb"^X-Token: (\S+)$", re.M)
QUEUED_RE = re.compile(r"queued as (\S+)")
MAX_LOG_EXCERPT = 6000


def ensure_local_users(names=LOCAL_USERS):
    """As root, make system users NAMES (no home, no shell) when missing.

    Not root, local delivers for any local part in a private instance, so
    nothing is created; smtpd learns the names from local_recipient_maps.
    """
    if not IS_ROOT:
        return list(names)
    for name in names:
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                            "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                            name], check=True)
    return list(names)


def mailin_master_cf(smtpd_port, smtpd_maxproc="-", qmgr_wakeup="300", smtpd_args=""):
    """master.cf for smtpd on 127.0.0.1:PORT, cleanup, qmgr and local."""
    return (f"127.0.0.1:{smtpd_port} inet n - n - {smtpd_maxproc} smtpd {smtpd_args}\n"
            "cleanup unix n - n - 0 cleanup\n"
            f"qmgr unix n - n {qmgr_wakeup} 1 qmgr\n"
            "local unix - n n - - local\n")


def mailin_main_cf(root, users=LOCAL_USERS, extra=None):
    """main.cf parameters (beyond the harness's defaults) for a mail-in instance."""
    params = {
        "myhostname": "mx.e2e.test",
        "mydomain": "e2e.test",
        "mydestination": "$myhostname, localhost",
        "mynetworks": "127.0.0.0/8",
        "local_home_directory": str(Path(root) / "mail"),
        "home_mailbox": "Maildir/",
        # No system alias database on a test machine; the tests need none.
        "alias_maps": "",
        "alias_database": "",
        # All clients come from 127.0.0.1: no per-client connection cap.
        "smtpd_client_connection_count_limit": "0",
        # Short retry times so that the crash test drains in bounded time.
        "minimal_backoff_time": "1s",
        "maximal_backoff_time": "2s",
        "queue_run_delay": "1s",
    }
    if not IS_ROOT:
        # The test users are not in passwd; tell smtpd they exist.
        params["local_recipient_maps"] = "inline:{" + ", ".join(f"{u}=ok" for u in users) + "}"
    params.update(extra or {})
    return params


def prepare_mail_root(root):
    """The local_home_directory of an instance under ROOT, as mk/run.sh makes it."""
    mail = Path(root) / "mail"
    mail.mkdir(mode=0o755, exist_ok=True)
    return mail


def maildir_new(root, user):
    return Path(root) / "mail" / user / "Maildir" / "new"


# -- messages --------------------------------------------------------------

def message_date():
    return email.utils.formatdate(localtime=False)


def build_message(token, sender, rcpts, seq=0):
    """A test message: (wire, headers, body).

    wire     the message as the client sends it before dot-stuffing: CRLF
             line endings, 8-bit text, lines that begin with a dot, a line
             of exactly 998 octets (the RFC 5321 4.5.3.1.6 maximum, one of
             them starting with a dot, so 999 octets once stuffed), a mbox
             "From " line that a Maildir must not escape
    headers  the header lines (bytes, no line ending) as they must appear,
             in order, in the delivered copy
    body     the body exactly as it must appear in the Maildir (LF endings)
    """
    headers = [
        f"From: E2E Sender <{sender}>",
        "To: " + ", ".join(f"<{r}>" for r in rcpts),
        f"Subject: e2e message {token}",
        f"Message-ID: <{token}@{SENDER_DOMAIN}>",
        f"Date: {message_date()}",
        f"X-Token: {token}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]
    headers = [h.encode() for h in headers]
    filler = "abcdefghijklmnopqrstuvwxyz0123456789"
    long_line = (filler * 30)[:998].encode()
    body = [
        f"token {token}".encode(),
        b"",
        b".",
        b"..",
        b"...three dots",
        b".leading dot",
        b". dot space",
        b"From the start of a line, as mbox would escape it",
        "Grüße aus Köln, ünïcödé ✓ 日本語 ∀x∈ℝ".encode(),
        bytes(range(0x80, 0x100)),
        b"\ttab first and trailing blanks   ",
        b"   ",
        long_line,
        b"." + long_line[1:],
        b"line with = and =3D and MIME-looking --boundary",
    ]
    body += [f"filler {seq} {k} {filler * (k % 5)}".encode() for k in range(seq % 9)]
    body += [b"", f"end {token}".encode()]
    wire = b"\r\n".join(headers) + b"\r\n\r\n" + b"\r\n".join(body) + b"\r\n"
    return wire, headers, b"\n".join(body) + b"\n"


def dot_stuff(wire):
    """RFC 5321 4.5.2 transparency: a leading dot gets another."""
    return re.sub(rb"(?m)^\.", b"..", wire)


# -- delivered mail --------------------------------------------------------

def split_message(data):
    """(header lines, body) of a delivered file: header lines unfolded."""
    head, sep, body = data.partition(b"\n\n")
    if not sep:
        return None, None
    lines = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and lines:
            lines[-1] += b"\n" + line
        else:
            lines.append(line)
    return lines, body


def header_token(data):
    """The X-Token: of the header section (not one quoted in the body)."""
    head = data.partition(b"\n\n")[0]
    m = TOKEN_RE.search(head)
    return m.group(1).decode() if m else None


class MaildirIndex:
    """What has landed in the users' Maildir/new, indexed by token."""

    def __init__(self, root, users=LOCAL_USERS):
        self.root = Path(root)
        self.users = list(users)
        self.seen = {}         # path -> (user, token)
        self.by_token = {}     # token -> [(user, path)]
        self.untokened = []    # paths without an X-Token header

    def scan(self):
        for user in self.users:
            new = maildir_new(self.root, user)
            try:
                names = os.listdir(new)
            except OSError:
                continue
            for name in names:
                path = new / name
                if path in self.seen:
                    continue
                try:
                    data = path.read_bytes()
                except OSError:
                    continue
                token = header_token(data)
                self.seen[path] = (user, token)
                if token is None:
                    self.untokened.append(path)
                else:
                    self.by_token.setdefault(token, []).append((user, path))
        return self

    def count(self, token, user=None):
        return sum(1 for u, _ in self.by_token.get(token, ()) if user is None or u == user)

    def missing(self, expected):
        """expected: iterable of (token, user); those not delivered yet."""
        return [(t, u) for t, u in expected if self.count(t, u) == 0]

    def total(self):
        return len(self.seen)


def wait_for_deliveries(index, expected, timeout, poll=0.2):
    """Scan until every (token, user) in EXPECTED is delivered or TIMEOUT passes.

    Returns the list still missing (empty on success).
    """
    expected = list(expected)
    deadline = time.monotonic() + timeout
    while True:
        missing = index.scan().missing(expected)
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(poll)


def log_excerpt(inst, since=0, limit=MAX_LOG_EXCERPT):
    """Problem lines of the mail log and its tail, for failure messages."""
    text = inst.log_text()[since:]
    bad = [line for line in text.splitlines()
           if re.search(r"\b(warning|error|fatal|panic):|killed by signal|exit status", line)]
    out = "problem lines (first 60):\n" + "\n".join(bad[:60])
    out += f"\n... log tail:\n{text[-limit:]}"
    return out


def queue_files(inst):
    """Files anywhere under the queue directories that hold messages."""
    out = []
    for sub in ("maildrop", "incoming", "immediate", "bulk", "deferred", "hold", "corrupt",
                "active"):
        d = inst.queue_dir / sub
        if d.is_dir():
            out += [p for p in d.rglob("*") if p.is_file()]
    return out


# -- raw SMTP --------------------------------------------------------------

class RawSMTP:
    """An SMTP client on a plain socket: the test decides every octet."""

    def __init__(self, port, host="127.0.0.1", timeout=30):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def cmd(self, line):
        self.send(line.encode() + b"\r\n")
        return self.reply()

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed; unread: %r" % self.buf)
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line.decode("utf-8", "replace")

    def reply(self):
        """One (possibly multi-line) reply: (code, [text lines])."""
        lines = []
        while True:
            line = self._line()
            if len(line) < 3 or not line[:3].isdigit():
                raise ValueError(f"malformed reply line {line!r}")
            lines.append(line[4:])
            if line[3:4] != "-":
                return int(line[:3]), lines

    def pending(self, wait=0.3):
        """Octets the server sent that nobody asked for, waiting up to WAIT."""
        self.sock.settimeout(wait)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.buf += data
        except (socket.timeout, BlockingIOError):
            pass
        finally:
            self.sock.settimeout(30)
        return self.buf

    def read_to_eof(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.buf += data
        except OSError:
            pass
        return self.buf

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
