"""Helpers for the queue command tests (postqueue, postsuper, showq).

    make_id(usec, uniq)          a valid version-1 queue id for a chosen time
    QueueBench(inst)             queue files and commands for one instance:
        .mkqfile(*args, queue=, ...) -> id   (tests/helpers/mkqfile as mail_owner)
        .postqueue(*args, user=None, **kw) / .postsuper(...) -> CompletedProcess
        .path(queue, id)         where a queue file lives (hash subdirectories)
        .where(id)               the queues holding id now
        .files(queue)            ids in a queue
    run_as(user)                 argv prefix: setpriv to user (uid, gid, groups)
    postfix_mailq(entries)       the listing Postfix's postqueue -p prints for
                                 entries (dicts), written from Postfix's format
                                 strings (showq_compat.c, long queue ids), as an
                                 independent reference for the C formatter
    TriggerSink(path)            a UNIX socket that records trigger requests
    read_showq(path)             connect to a showq socket, return every
                                 message as a dict (lists for repeated names)
    DeliveryAgent(path, verdict) a stand-in delivery agent (docs/protocols.md
                                 section 3): answers every recipient with
                                 verdict(queue_id, rcpt) -> (status, dsn,
                                 reason), after an optional pause

Commands run with TZ=UTC so that arrival times are fixed.
"""

import grp
import os
import pwd
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

from conftest import BUILD, IS_ROOT, MAIL_OWNER

ID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CMD_TIMEOUT = 60


def make_id(usec, uniq):
    """queue_id_format() of lib/mail/queue_id.c, in Python."""
    digits = []
    for _ in range(11):
        digits.append(ID_ALPHABET[usec % 32])
        usec //= 32
    tail = []
    for _ in range(5):
        tail.append(ID_ALPHABET[uniq % 32])
        uniq //= 32
    return "1" + "".join(reversed(digits)) + "".join(reversed(tail))


def run_as(user, groups=None):
    """setpriv argv prefix for user, with its primary group and the given
    supplementary groups (names); None: the user's own (--init-groups)."""
    pw = pwd.getpwnam(user)
    argv = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}"]
    if groups is None:
        argv.append("--init-groups")
    elif groups:
        argv.append("--groups=" + ",".join(str(grp.getgrnam(g).gr_gid) for g in groups))
    else:
        argv.append("--clear-groups")
    return argv + ["--"]


class QueueBench:
    """Queue files and queue commands of one private instance."""

    def __init__(self, inst, hash_depth=1, hash_names=("deferred",)):
        self.inst = inst
        self.hash_depth = hash_depth
        self.hash_names = set(hash_names)
        self.env = dict(inst.env, TZ="UTC")
        if IS_ROOT:
            self.owner = inst.user or MAIL_OWNER
        else:
            self.owner = None

    # -- commands ----------------------------------------------------------

    def run(self, argv, user=None, groups=None, input=None, env=None, timeout=CMD_TIMEOUT):
        if user:
            argv = run_as(user, groups) + list(argv)
        e = dict(self.env)
        e.update(env or {})
        return subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                              input=input, env=e, timeout=timeout, cwd=self.inst.root,
                              stdin=None if input is not None else subprocess.DEVNULL)

    def postqueue(self, *args, config=True, **kw):
        argv = [BUILD / "bin" / "postqueue"]
        if config:
            argv += ["-c", self.inst.conf_dir]
        return self.run(argv + list(args), **kw)

    def postsuper(self, *args, config=True, **kw):
        argv = [BUILD / "bin" / "postsuper"]
        if config:
            argv += ["-c", self.inst.conf_dir]
        return self.run(argv + list(args), **kw)

    def mkqfile(self, *args, queue="deferred", rcpts=("rcpt@example.com",), **opts):
        """Write a queue file; opts: id, t (arrival), s (sender), z (size),
        b (bulk), d (list of deferrals), m (list of marks), w (mtime).
        In maildrop/ the file is a local submission in postdrop's format
        unless M=False."""
        argv = [self.inst.helper("mkqfile"), "-c", self.inst.conf_dir, "-q", queue]
        if self.owner:
            argv += ["-u", self.owner]
        for key, flag in (("id", "-i"), ("t", "-t"), ("s", "-s"), ("z", "-z"), ("w", "-w")):
            if key in opts:
                argv += [flag, str(opts[key])]
        if opts.get("b"):
            argv.append("-b")
        if queue == "maildrop" and opts.get("M", True):
            argv.append("-M")  # postdrop's format, as pickup expects
        for r in rcpts:
            argv += ["-r", r]
        for d in opts.get("d", ()):
            argv += ["-d", "|".join(str(x) for x in d)]
        for m in opts.get("m", ()):
            argv += ["-m", "|".join(str(x) for x in m)]
        r = self.run(argv + list(args))
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    # -- the queue on disk ---------------------------------------------------

    def path(self, queue, qid):
        p = self.inst.queue_dir / queue
        if queue in self.hash_names:
            for level in range(self.hash_depth):
                p = p / qid[11 - level]
        return p / qid

    def files(self, queue):
        out = []
        for dirpath, dirnames, filenames in os.walk(self.inst.queue_dir / queue):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            out += [f for f in filenames if len(f) == 17]
        return sorted(out)

    def where(self, qid):
        return [q for q in ("maildrop", "incoming", "immediate", "bulk", "deferred", "hold",
                            "corrupt") if qid in self.files(q)]


# -- Postfix's listing, from its format strings ------------------------------

# showq_compat.c for enable_long_queue_ids = yes:
#   L_STRING_FORMAT "%-17s %8s %-19s %s\n"
#   L_SENDER_FORMAT "%-17s %8ld %19.19s %s\n"
#   reason lines    "%*s(%s)\n" with padding 76 - strlen(reason), at least 0
POSTFIX_HEADINGS = ("----Queue ID-----", "--Size--", "---Arrival Time----",
                    "--Sender/Recipient------")


def _asctime19(t):
    tm = time.gmtime(t)
    return time.strftime("%a %b ", tm) + f"{tm.tm_mday:2d}" + time.strftime(" %H:%M:%S", tm)


def postfix_mailq(entries):
    """entries: dicts with id, mark ('', '*', '!'), size, time, sender,
    rcpts [(address, reason)] in the order showq sends them."""
    if not entries:
        return "Mail queue is empty\n"
    out = []
    total = 0
    for n, e in enumerate(entries):
        if n == 0:
            out.append("%-17s %8s %-19s %s\n" % POSTFIX_HEADINGS)
        else:
            out.append("\n")
        out.append("%-17s %8d %19.19s %s\n" % (e["id"] + e["mark"], e["size"],
                                               _asctime19(e["time"]), e["sender"]))
        saved = ""
        for addr, reason in e["rcpts"]:
            if reason != saved:
                saved = reason
                show = reason or "reason unavailable"
                out.append("%*s(%s)\n" % (max(76 - len(show), 0), "", show))
            out.append("%-17s %8s %-19s %s\n" % ("", "", "", addr))
        total += e["size"]
    n = len(entries)
    out.append("\n-- %d Kbytes in %d Request%s.\n" % (total // 1024, n, "" if n == 1 else "s"))
    return "".join(out)


# -- a stand-in trigger service ----------------------------------------------

class TriggerSink:
    """Listens on a UNIX socket (e.g. queue/public/qmgr) and records each
    connection's bytes, as a trigger service would receive them."""

    def __init__(self, path, mode=0o666):
        self.path = Path(path)
        if self.path.exists():
            self.path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        os.chmod(self.path, mode)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.received = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
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
            with self.lock:
                self.received.append(data)

    def wait(self, count=1, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        with self.lock:
            return list(self.received)

    def close(self):
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()
        try:
            self.path.unlink()
        except OSError:
            pass


# -- a minimal showq client (docs/ipc.md wire format) ------------------------

def read_showq(path, timeout=30):
    """Every message showq sends until it closes; each a dict name -> value,
    with a list for a name that repeats (recipient, reason)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(str(path))
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    msgs, cur, pos = [], {}, 0
    while pos < len(data):
        t = data[pos]
        pos += 1
        if t == 0:
            msgs.append(cur)
            cur = {}
            continue
        nlen = data[pos]
        name = data[pos + 1:pos + 1 + nlen].decode()
        pos += 1 + nlen
        (vlen,) = struct.unpack(">I", data[pos:pos + 4])
        raw = data[pos + 4:pos + 4 + vlen]
        pos += 4 + vlen
        value = raw.decode("utf-8", "surrogateescape") if t == 1 else \
            struct.unpack(">Q" if t == 3 else ">q", raw)[0] if t in (2, 3) else raw
        if name in cur:
            if not isinstance(cur[name], list):
                cur[name] = [cur[name]]
            cur[name].append(value)
        else:
            cur[name] = value
    assert not cur, "the stream ended inside a message"
    return msgs


def attr_encode(pairs):
    """One attribute message: str -> STR, int -> UINT."""
    out = b""
    for name, value in pairs:
        nb = name.encode()
        if isinstance(value, int):
            out += bytes([3, len(nb)]) + nb + struct.pack(">IQ", 8, value)
        else:
            vb = value.encode()
            out += bytes([1, len(nb)]) + nb + struct.pack(">I", len(vb)) + vb
    return out + b"\0"


def attr_read(sock, buf):
    """(message as a list of (name, value), rest of buf), or (None, buf) at
    the end of input."""
    while True:
        items, pos = [], 0
        try:
            while True:
                t = buf[pos]
                pos += 1
                if t == 0:
                    return items, buf[pos:]
                nlen = buf[pos]
                name = buf[pos + 1:pos + 1 + nlen].decode()
                pos += 1 + nlen
                (vlen,) = struct.unpack(">I", buf[pos:pos + 4])
                if pos + 4 + vlen > len(buf):
                    raise IndexError
                raw = buf[pos + 4:pos + 4 + vlen]
                pos += 4 + vlen
                items.append((name, raw.decode("utf-8", "surrogateescape") if t == 1
                              else struct.unpack(">Q" if t == 3 else ">q", raw)[0]
                              if t in (2, 3) else raw))
        except (IndexError, struct.error):
            data = sock.recv(65536)
            if not data:
                return None, buf
            buf += data


class DeliveryAgent:
    """A stand-in delivery agent on a private/ socket."""

    def __init__(self, path, verdict=None, pause=0.0, owner=None):
        self.path = Path(path)
        self.verdict = verdict or (lambda qid, rcpt: (0, "2.0.0", "delivered"))
        self.pause = pause
        self.requests = []  # (queue_id, [rcpt, ...])
        self.started = threading.Event()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        if self.path.exists():
            self.path.unlink()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        if owner:
            pw = pwd.getpwnam(owner)
            os.chown(self.path, pw.pw_uid, pw.pw_gid)
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(30)
        try:
            msg, _ = attr_read(conn, b"")
            if msg is None:
                return
            qid = dict(msg).get("queue_id")
            rcpts = []
            index = None
            for name, value in msg:
                if name == "rcpt_index":
                    index = value
                elif name == "rcpt":
                    rcpts.append((index, value))
            with self.lock:
                self.requests.append((qid, [r for _, r in rcpts]))
            self.started.set()
            if self.pause:
                time.sleep(self.pause)
            for index, rcpt in rcpts:
                status, dsn, reason = self.verdict(qid, rcpt)
                conn.sendall(attr_encode([("rcpt_index", index), ("status", status),
                                          ("dsn", dsn), ("reason", reason),
                                          ("relay", "local")]))
            conn.sendall(attr_encode([("done", 1), ("count", len(rcpts))]))
            attr_read(conn, b"")
        except OSError:
            pass
        finally:
            conn.close()

    def delivered_ids(self):
        with self.lock:
            return [qid for qid, _ in self.requests]

    def close(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        self.sock.close()
        try:
            self.path.unlink()
        except OSError:
            pass
