"""Helpers for the smtpd integration tests (test_smtpd_*.py).

FakeCleanup is a stand-in for the cleanup service (docs/protocols.md
section 1): it listens on queue_directory/private/cleanup, speaks the
attribute protocol (docs/ipc.md), answers "open" and "end" like cleanup, and
records every transaction, so that a test can check exactly what smtpd
streamed: the envelope, the Received: header, the content byte for byte,
and that an aborted or refused transaction was never committed.

SmtpClient is a raw SMTP client over a socket: it sends exactly the bytes
a test gives it (pipelined batches, bare CR/LF, NUL, overlong lines) and
reads replies, multi-line ones included.

The smtpd_server fixture (import it into the test module):

    server = smtpd_server(main_cf=None, cleanup="ok", end_delay=0, real=False)

starts a private instance whose master.cf runs smtpd on a free port of
127.0.0.1 (server.port), the anvil service (unless anvil=False) and, unless
real is set, a FakeCleanup on private/cleanup (server.cleanup). With
real=True the instance runs the real cleanup, qmgr and local services
instead; with real="cleanup" only cleanup, so that committed queue files
stay in the queue. server.client() returns a
connected SmtpClient whose greeting has been read.
"""

import os
import pwd
import random
import re
import socket
import struct
import threading
import time

import pytest

from attrproto import AttrClient
from conftest import BUILD, IS_ROOT, MAIL_OWNER

QUEUE_ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# -- the attribute protocol ---------------------------------------------------

T_END, T_STR, T_INT, T_UINT, T_BIN = 0, 1, 2, 3, 4


def attr_encode(pairs):
    """[(name, value)] -> bytes; str -> STR, int -> UINT, bytes -> BIN."""
    out = bytearray()
    for name, value in pairs:
        nb = name.encode()
        if isinstance(value, bytes):
            t, vb = T_BIN, value
        elif isinstance(value, int):
            t, vb = T_UINT, struct.pack(">Q", value)
        else:
            t, vb = T_STR, value.encode()
        out += bytes([t, len(nb)]) + nb + struct.pack(">I", len(vb)) + vb
    out.append(T_END)
    return bytes(out)


class AttrConn:
    """Blocking reader of attribute messages on a connected socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _need(self, n):
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read(self):
        """One message as a list of (name, value); EOFError at the end."""
        msg = []
        while True:
            t = self._need(1)[0]
            if t == T_END:
                return msg
            nlen = self._need(1)[0]
            name = self._need(nlen).decode()
            vlen = struct.unpack(">I", self._need(4))[0]
            value = self._need(vlen)
            if t == T_STR:
                value = value.decode()
            elif t in (T_INT, T_UINT):
                value = struct.unpack(">q" if t == T_INT else ">Q", value)[0]
            elif t != T_BIN:
                raise ValueError(f"bad type byte {t}")
            msg.append((name, value))

    def send(self, pairs):
        self.sock.sendall(attr_encode(pairs))


def new_queue_id():
    usec = int(time.time() * 1e6)
    digits = ""
    for _ in range(11):
        digits = QUEUE_ID_ALPHABET[usec % 32] + digits
        usec //= 32
    uniq = "".join(random.choice(QUEUE_ID_ALPHABET) for _ in range(5))
    return "1" + digits + uniq


class Transaction:
    def __init__(self):
        self.flags = None
        self.origin = None
        self.queue_id = None
        self.attrs = {}
        self.sender = None
        self.sender_attrs = {}
        self.rcpts = []          # [(address, {attrs})]
        self.data = b""
        self.data_requests = 0
        self.ended = False        # "end" received
        self.committed = False    # success reply sent for "end"
        self.closed = False       # connection gone
        self.requests = []        # request names in order


class FakeCleanup:
    """The cleanup service, as far as smtpd can tell.

    mode: "ok" (default), "refuse_open" (452 at open, then close),
    "fail_end" (451 at end), "reject_end" (552 5.3.4 at end),
    "close_at_end" (close without a reply), "slow_end" (answer end after
    end_delay seconds), "stall" (stop reading for end_delay seconds after
    the open reply), "absent" (no socket at all).
    """

    def __init__(self, queue_dir, mode="ok", end_delay=0.0, service="cleanup"):
        self.mode = mode
        self.end_delay = end_delay
        self.transactions = []
        self.lock = threading.Lock()
        self.path = os.path.join(queue_dir, "private", service)
        self.sock = None
        self.stopping = False
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        if IS_ROOT:
            pw = pwd.getpwnam(MAIL_OWNER)
            os.chown(os.path.dirname(self.path), pw.pw_uid, pw.pw_gid)
        if mode == "absent":
            return
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.sock.listen(128)
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        if self.sock:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sock.close()

    def _accept_loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        txn = Transaction()
        with self.lock:
            self.transactions.append(txn)
        ac = AttrConn(conn)
        try:
            while True:
                msg = ac.read()
                d = dict(msg)
                req = d.get("req")
                txn.requests.append(req)
                if req == "open":
                    txn.flags = d.get("flags")
                    txn.origin = d.get("origin")
                    if self.mode == "refuse_open":
                        ac.send([("status", 452), ("dsn", "4.3.1"),
                                 ("reason", "Insufficient system storage")])
                        break
                    txn.queue_id = new_queue_id()
                    ac.send([("status", 0), ("queue_id", txn.queue_id)])
                    if self.mode == "stall":
                        # Stop reading for a while: smtpd must stop reading its client.
                        time.sleep(self.end_delay)
                elif req == "attr":
                    txn.attrs[d["name"]] = d["value"]
                elif req == "sender":
                    txn.sender = d["address"]
                    txn.sender_attrs = d
                elif req == "rcpt":
                    txn.rcpts.append((d["address"], d))
                elif req == "data":
                    txn.data += d["data"]
                    txn.data_requests += 1
                    assert len(d["data"]) <= 64 * 1024
                elif req == "end":
                    txn.ended = True
                    if self.mode == "close_at_end":
                        break
                    if self.mode == "slow_end":
                        time.sleep(self.end_delay)
                    if self.mode == "fail_end":
                        ac.send([("status", 451), ("queue_id", txn.queue_id), ("dsn", "4.3.0"),
                                 ("reason", "Error: queue file write error")])
                    elif self.mode == "reject_end":
                        ac.send([("status", 552), ("queue_id", txn.queue_id), ("dsn", "5.3.4"),
                                 ("reason", "Error: message file too big")])
                    else:
                        txn.committed = True
                        ac.send([("status", 0), ("queue_id", txn.queue_id), ("dsn", "2.0.0"),
                                 ("reason", "")])
                else:
                    raise ValueError(f"unknown request {req!r}")
        except (EOFError, ConnectionError, OSError):
            pass
        finally:
            txn.closed = True
            conn.close()

    # -- observation ----------------------------------------------------------

    def committed(self):
        with self.lock:
            return [t for t in self.transactions if t.committed]

    def wait_committed(self, n, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.committed()) >= n:
                return self.committed()
            time.sleep(0.02)
        raise AssertionError(f"expected {n} committed messages, got {len(self.committed())}")

    def wait_closed(self, timeout=10):
        """Wait until every connection smtpd opened is closed again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if all(t.closed for t in self.transactions):
                    return list(self.transactions)
            time.sleep(0.02)
        raise AssertionError("cleanup connections still open")


# -- an SMTP client that sends exactly what it is told -------------------------

REPLY_RE = re.compile(rb"^(\d{3})([ -])(.*)$")


class SmtpClient:
    def __init__(self, port, host="127.0.0.1", family=socket.AF_INET, timeout=15, source=None):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send_raw(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def _line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed by the server")
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r")

    def reply(self):
        """(code, [lines]) of one reply; lines without the code prefix."""
        lines = []
        while True:
            line = self._line()
            m = REPLY_RE.match(line)
            assert m, f"malformed reply line {line!r}"
            lines.append(m.group(3).decode(errors="replace"))
            if m.group(2) == b" ":
                return int(m.group(1)), lines

    def text(self):
        """One reply as "CODE text" (first line), for exact comparisons."""
        code, lines = self.reply()
        return f"{code} {lines[0]}".rstrip()

    def cmd(self, line):
        self.send_raw(line + "\r\n")
        return self.text()

    def greet(self):
        code, lines = self.reply()
        assert code == 220, lines
        return lines[0]

    def ehlo(self, name="client.example"):
        self.send_raw(f"EHLO {name}\r\n")
        code, lines = self.reply()
        assert code == 250, lines
        return lines

    def closed(self, timeout=5):
        """True when the server closed the connection (after any pending replies)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def send_message(client, sender, rcpts, body, data_cmd=True):
    """A whole transaction without pipelining; returns the final reply text."""
    assert client.cmd(f"MAIL FROM:<{sender}>").startswith("250")
    for r in rcpts:
        reply = client.cmd(f"RCPT TO:<{r}>")
        assert reply.startswith("250"), reply
    assert client.cmd("DATA").startswith("354")
    client.send_raw(body)
    return client.text()


# -- the fixture ----------------------------------------------------------------

HOSTNAME = "mx.example.com"

# Recipients the tests can rely on: present in every passwd(5).
LOCAL_USER = "root"


def base_main_cf(inst):
    return {
        "myhostname": HOSTNAME,
        "mydomain": "example.com",
        "myorigin": "$myhostname",
        "mydestination": "$myhostname, localhost.$mydomain, localhost, example.com",
        "relay_domains": "relay.example",
        # Clients on 127.0.0.1 are "outside" unless a test says otherwise.
        "mynetworks": "192.0.2.0/24",
        "alias_maps": f"texthash:{inst.conf_dir}/aliases",
        "local_recipient_maps": "proxy:unix:passwd.byname $alias_maps",
        "smtpd_error_sleep_time": "0",
        "smtpd_timeout": "30s",
    }


class SmtpdServer:
    def __init__(self, inst, port, cleanup):
        self.inst = inst
        self.port = port
        self.cleanup = cleanup

    def client(self, greet=True, source=None):
        c = SmtpClient(self.port, source=source)
        if greet:
            c.greet()
        return c

    def log(self):
        return self.inst.log_text()


def anvil_wait(inst, timeout=30):
    """Have master start anvil now, so that smtpd's first request finds it running."""
    with AttrClient(inst.queue_dir / "private" / "anvil", timeout=timeout) as a:
        r = a.request([("request", "lookup"), ("ident", "smtp:192.0.2.1")])
    assert r.get("status") == 0, r


@pytest.fixture
def smtpd_server(postern_instance, free_port):
    fakes = []

    def make(main_cf=None, cleanup="ok", end_delay=0.0, real=False, aliases="", anvil=True):
        port = free_port()
        master_cf = f"127.0.0.1:{port} inet n - n - - smtpd\n"
        if anvil:
            # As in conf/master.cf: client limits are counted by anvil(8).
            master_cf += "anvil unix - - n - 1 anvil\n"
        if real:
            master_cf += "cleanup unix n - n - 0 cleanup\n"
        if real is True:
            master_cf += ("qmgr unix n - n 300 1 qmgr\n"
                          "local unix - n n - - local\n")
        inst = postern_instance(master_cf, start=False)
        main = base_main_cf(inst)
        # main_cf may need the instance's paths: then it is a function of it.
        main.update((main_cf(inst) if callable(main_cf) else main_cf) or {})
        inst.write_main_cf(main)
        aliases_path = inst.conf_dir / "aliases"
        aliases_path.write_text(aliases or "postmaster root\n")
        inst.start()
        if anvil:
            anvil_wait(inst)
        fake = None
        if not real:
            fake = FakeCleanup(str(inst.queue_dir), mode=cleanup, end_delay=end_delay)
            fakes.append(fake)
        return SmtpdServer(inst, port, fake)

    yield make
    for f in fakes:
        f.stop()
