"""qmgr: the scheduler, with stand-in delivery agents.

Each test runs a private instance whose master.cf has only qmgr; the
delivery agents are Python stand-ins (FakeAgent) listening on
private/local and private/smtp and speaking docs/protocols.md section 3
through attrproto, and bounce(8) is a stand-in too (FakeBounce on
private/bounce, section 7) that records the notices qmgr asks for. Messages are written into the queue with the qinject
helper, which commits files through lib/mail/qfile.h exactly as cleanup
does. The queue files are read back with a small parser of the record
format (docs/queue-format.md) to check what qmgr recorded, and when.
"""

import os
import pwd
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path

import pytest

import attrproto
from conftest import IS_ROOT, MAIL_OWNER

MASTER_CF = "qmgr unix n - n 300 1 qmgr\n"

BASE_MAIN = {
    "myhostname": "mail.example.com",
    "mydestination": "$myhostname, example.com, localhost",
    "minimal_backoff_time": "1s",
    "maximal_backoff_time": "2s",
    "queue_run_delay": "1s",
    "transport_retry_time": "1s",
    "qmgr_incoming_purge_time": "60s",
}

LOCAL_RCPT = "user@example.com"


# -- queue files --------------------------------------------------------------

QFILE_MAGIC = b"\x89PQF\r\n\x1a\n"


class QFile:
    """What a test needs from a queue file: recipients (status, offset of the
    status byte), DEFER records, class, priority, sender."""

    def __init__(self, data):
        if data[:8] != QFILE_MAGIC:
            raise ValueError("not a queue file")
        self.rcpts = []      # dicts: addr, status, status_offset
        self.defers = []     # dicts: index, time, next, dsn, reason
        self.sender = None
        self.msg_class = None
        self.priority = None
        self.committed = False
        self.warned = 0      # WARNED records
        pos = 12
        while pos + 5 <= len(data):
            rtype = data[pos]
            (length,) = struct.unpack(">I", data[pos + 1:pos + 5])
            body = data[pos + 5:pos + 5 + length]
            if len(body) < length:
                break
            t = chr(rtype)
            if t == "S":
                self.sender = body.decode()
            elif t == "C":
                self.msg_class = body[0]
                self.priority = struct.unpack(">b", body[1:2])[0]
            elif t == "R":
                (alen,) = struct.unpack(">H", body[2:4])
                self.rcpts.append({"addr": body[4:4 + alen].decode(), "status": chr(body[0]),
                                   "status_offset": pos + 5})
            elif t == "Z":
                self.committed = True
            elif t == "Y":
                self.warned += 1
            elif t == "W":
                idx, when, nxt = struct.unpack(">IQQ", body[:20])
                dlen = body[20]
                self.defers.append({"index": idx, "time": when, "next": nxt,
                                    "dsn": body[21:21 + dlen].decode(),
                                    "reason": body[21 + dlen:].decode()})
            elif t == "M":
                # Jump over the content to its end record.
                _, end = struct.unpack(">QQ", body[:16])
                if end:
                    pos = end
                    continue
            pos += 5 + length


def read_qfile(path):
    return QFile(Path(path).read_bytes())


def queue_files(inst, queue):
    """{id: path} of the files in a queue directory (any hash depth)."""
    out = {}
    top = inst.queue_dir / queue
    for dirpath, _, names in os.walk(top):
        for n in names:
            if re.fullmatch(r"[0-9A-Z]{17}", n):
                out[n] = Path(dirpath) / n
    return out


def find_file(inst, qid):
    for queue in ("incoming", "immediate", "bulk", "deferred", "hold", "corrupt"):
        p = queue_files(inst, queue).get(qid)
        if p:
            return queue, p
    return None, None


# -- processes as mail_owner ---------------------------------------------------

def owner_ids():
    if not IS_ROOT:
        return None
    pw = pwd.getpwnam(MAIL_OWNER)
    return pw.pw_uid, pw.pw_gid


def as_owner(argv):
    if not IS_ROOT:
        return argv
    return ["setpriv", f"--reuid={MAIL_OWNER}", f"--regid={MAIL_OWNER}", "--init-groups", "--"] + argv


def inject(inst, rcpts, n=1, klass="immediate", priority=0, sender="sender@example.org",
           ago=0, trigger=False, body=None):
    argv = [inst.helper("qinject"), "-c", str(inst.conf_dir), "-C", klass, "-p", str(priority),
            "-n", str(n), "-f", sender]
    for r in rcpts if isinstance(rcpts, (list, tuple)) else [rcpts]:
        argv += ["-r", r]
    if ago:
        argv += ["-a", str(ago)]
    if body is not None:
        argv += ["-b", body]
    if trigger:
        argv.append("-t")
    r = subprocess.run(as_owner(argv), env=inst.env, capture_output=True, text=True, timeout=60,
                       cwd=inst.root)
    assert r.returncode == 0, r.stderr
    ids = r.stdout.split()
    assert len(ids) == n, r.stdout + r.stderr
    return ids


# -- the stand-in delivery agent ----------------------------------------------

class AttrConn:
    """One accepted connection: attribute messages in and out (attrproto)."""

    def __init__(self, sock, timeout=30):
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = bytearray()

    def recv(self, timeout=30):
        """The next message, or None when the peer closed between messages."""
        self.sock.settimeout(timeout)
        while True:
            msg, used = attrproto.decode(self.buf)
            if msg is not None:
                del self.buf[:used]
                return msg
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data

    def send(self, attrs):
        self.sock.sendall(attrproto.encode(attrs))


def msg_groups(msg, first):
    """Split a list-carrying message into dicts, each starting at `first`."""
    out, cur = [], None
    for n, _t, v in msg:
        if n == first:
            cur = {}
            out.append(cur)
        if cur is not None:
            cur[n] = v
    return out


class FakeAgent:
    """A delivery agent on private/NAME. For each request it records the
    request and answers each recipient with policy(request, rcpt) ->
    (status, dsn, reason); policy may also return "close" (drop the
    connection without an answer) or "hang" (never answer). before_summary
    is called after the per-recipient answers, before the summary."""

    def __init__(self, inst, name, policy=None, delay=0.0, before_summary=None, accept=True,
                 dest_status=None):
        self.inst = inst
        self.dest_status = dest_status   # function(request) -> "dead", "ok" or None
        self.accept = accept
        self.name = name
        self.path = str(inst.queue_dir / "private" / name)
        self.policy = policy or (lambda req, rcpt: (0, "2.0.0", "delivered"))
        self.delay = delay
        self.before_summary = before_summary
        self.requests = []
        self.errors = []
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.active_ids = {}
        self.max_active_msgs = 0
        self.stopping = threading.Event()
        self.sock = None
        self.thread = None

    def start(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o600)
        if owner_ids():
            os.chown(self.path, *owner_ids())
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping.set()
        if self.thread:
            self.thread.join(timeout=5)
        if self.sock:
            self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def _accept_loop(self):
        while not self.stopping.is_set():
            if not self.accept:
                # A service nobody serves: connections wait in the backlog.
                self.stopping.wait(0.2)
                continue
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            self.handle(AttrConn(conn))
        except Exception as e:  # noqa: BLE001 - recorded for the test to see
            with self.lock:
                self.errors.append(repr(e))
        finally:
            conn.close()

    def handle(self, conn):
        # Requests one after another on the connection, as the real agents
        # serve them (qmgr keeps a connection for the next delivery).
        while True:
            try:
                msg = conn.recv(timeout=60)
            except OSError:
                return
            if msg is None or not self.handle_one(conn, msg):
                return

    def handle_one(self, conn, msg):
        """One request; False when the connection must end."""
        req = {n: v for n, _, v in msg if n not in
               ("rcpt_index", "rcpt", "orcpt", "dsn_orcpt", "notify")}
        req["rcpts"] = msg_groups(msg, "rcpt_index")
        req["received"] = time.time()
        req["answers"] = {}
        qid = req.get("queue_id")
        with self.lock:
            self.requests.append(req)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.active_ids[qid] = self.active_ids.get(qid, 0) + 1
            self.max_active_msgs = max(self.max_active_msgs, len(self.active_ids))
        busy = [True]

        def done():
            # Before the summary: qmgr starts nothing new for this delivery
            # until it has the summary, so the counts never overlap.
            if busy[0]:
                busy[0] = False
                with self.lock:
                    self.active -= 1
                    self.active_ids[qid] -= 1
                    if self.active_ids[qid] == 0:
                        del self.active_ids[qid]

        try:
            if self.delay:
                time.sleep(self.delay)
            answered = 0
            for r in req["rcpts"]:
                verdict = self.policy(req, r)
                if verdict == "close":
                    done()
                    return False
                if verdict == "hang":
                    self.stopping.wait(120)
                    return False
                status, dsn, reason = verdict
                req["answers"][r["rcpt_index"]] = status
                conn.send([("rcpt_index", r["rcpt_index"]), ("status", status), ("dsn", dsn),
                           ("reason", reason), ("relay", self.name)])
                answered += 1
            if self.before_summary:
                self.before_summary(req)
            done()
            summary = [("done", 1), ("count", answered)]
            dest = self.dest_status(req) if self.dest_status else None
            if dest:
                summary.append(("dest_status", dest))
            conn.send(summary)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False
        finally:
            done()

    def delivered(self):
        """(queue_id, rcpt) pairs answered with status 0, in order of requests."""
        out = []
        with self.lock:
            reqs = list(self.requests)
        for req in reqs:
            for r in req["rcpts"]:
                if req["answers"].get(r["rcpt_index"]) == 0:
                    out.append((req["queue_id"], r["rcpt"]))
        return out

    def wait_requests(self, n, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.requests) >= n:
                    return list(self.requests)
            time.sleep(0.05)
        pytest.fail(f"{self.name}: {len(self.requests)} requests, expected {n}; log:\n"
                    + self.inst.log_text()[-3000:])


class FakeBounce(FakeAgent):
    """bounce(8) on private/bounce: records each request (kind, queue id,
    recipients) and answers with status 0 unless told otherwise."""

    def __init__(self, inst, status=0):
        super().__init__(inst, "bounce")
        self.status = status

    def handle(self, conn):
        head = conn.recv()
        if head is None:
            return
        req = {n: v for n, _, v in head}
        req["rcpts"] = []
        for _ in range(req["count"]):
            req["rcpts"].append({n: v for n, _, v in conn.recv()})
        end = conn.recv()
        assert end is not None and dict((n, v) for n, _, v in end).get("end") == 1
        req["received"] = time.time()
        with self.lock:
            self.requests.append(req)
        conn.send([("status", self.status), ("reason", "" if self.status == 0 else "busy"),
                   ("queue_id", "")])

    def kinds(self, qid):
        with self.lock:
            return [(r["kind"], [x["rcpt_index"] for x in r["rcpts"]])
                    for r in self.requests if r["queue_id"] == qid]


def trigger(inst, *requests):
    """Trigger requests to qmgr (docs/protocols.md section 2), each ended by NUL."""
    data = b"".join(r.encode() + b"\0" for r in requests)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(str(inst.queue_dir / "public" / "qmgr"))
        s.sendall(data)


# -- fixtures ------------------------------------------------------------------

@pytest.fixture
def qmgr_setup(postern_instance):
    """make(main_cf_extra) -> (instance, local agent, smtp agent): the queue
    tree exists and the agents listen; the instance is not started yet."""
    made = []

    def make(extra=None, local_policy=None, local_delay=0.0, smtp_policy=None, smtp=True,
             before_summary=None, smtp_delay=0.0, smtp_dest_status=None, bounce=True):
        main = dict(BASE_MAIN)
        main.update(extra or {})
        inst = postern_instance(MASTER_CF, main, start=False)
        r = inst.postern("check")
        assert r.returncode == 0, r.stderr
        local = FakeAgent(inst, "local", local_policy, local_delay, before_summary).start()
        made.append(local)
        agents = [local]
        if smtp:
            s = FakeAgent(inst, "smtp", smtp_policy, smtp_delay,
                          dest_status=smtp_dest_status).start()
            made.append(s)
            agents.append(s)
        else:
            agents.append(None)
        inst.bounce = None
        if bounce:
            inst.bounce = FakeBounce(inst).start()
            made.append(inst.bounce)
        return inst, agents[0], agents[1]

    yield make
    for a in made:
        a.stop()
    for a in made:
        assert not a.errors, f"{a.name}: {a.errors}"


def wait_removed(inst, qid, timeout=20):
    inst.wait_for_log(rf"qmgr\[\d+\]: {qid}: removed", timeout=timeout)


def qmgr_pid(inst):
    pids = inst.service_pids("qmgr")
    return pids[0] if pids else None


# -- tests ---------------------------------------------------------------------

def test_delivery_requests_carry_the_right_recipients(qmgr_setup):
    inst, local, smtp = qmgr_setup()
    inst.start()
    [qid_local] = inject(inst, ["a@example.com", "b@EXAMPLE.com", "c@mail.example.com"],
                         trigger=True)
    [qid_remote] = inject(inst, ["x@remote.example", "y@remote.example", "z@other.example"],
                          sender="", trigger=True)
    wait_removed(inst, qid_local)
    wait_removed(inst, qid_remote)

    # local: one recipient per request (local_destination_recipient_limit 1).
    reqs = [r for r in local.requests if r["queue_id"] == qid_local]
    assert sorted(r["rcpts"][0]["rcpt"] for r in reqs) == \
        ["a@example.com", "b@EXAMPLE.com", "c@mail.example.com"]
    for r in reqs:
        assert len(r["rcpts"]) == 1
        assert r["queue_name"] == "immediate"
        assert r["nexthop"] == "mail.example.com"
        assert r["sender"] == "sender@example.org"
        assert r["end"] == 1
        now_usec = time.time() * 1e6
        assert r["arrival_usec"] <= r["active_usec"] <= r["request_usec"] <= now_usec
        assert r["rcpts"][0]["notify"] == 0
    assert sorted(r["rcpts"][0]["rcpt_index"] for r in reqs) == [0, 1, 2]

    # smtp: grouped by next hop, all recipients of a destination in one request.
    reqs = sorted((r for r in smtp.requests if r["queue_id"] == qid_remote),
                  key=lambda r: r["nexthop"])
    assert [r["nexthop"] for r in reqs] == ["other.example", "remote.example"]
    assert [x["rcpt"] for x in reqs[1]["rcpts"]] == ["x@remote.example", "y@remote.example"]
    assert [x["rcpt_index"] for x in reqs[1]["rcpts"]] == [0, 1]
    assert reqs[0]["rcpts"][0]["rcpt"] == "z@other.example"
    assert reqs[0]["sender"] == ""

    log = inst.log_text()
    assert re.search(rf"qmgr\[\d+\]: {qid_local}: from=<sender@example.org>, size=\d+, "
                     r"nrcpt=3 \(queue active\)", log)
    assert re.search(rf"qmgr\[\d+\]: {qid_remote}: from=<>, size=\d+, nrcpt=3 \(queue active\)",
                     log)
    assert not queue_files(inst, "immediate")
    assert not queue_files(inst, "deferred")


def test_wakeup_finds_mail_without_a_trigger(qmgr_setup):
    inst, local, _ = qmgr_setup()
    inst.start()
    inst.wait_for_log(r"qmgr\[\d+\]: ")
    [qid] = inject(inst, LOCAL_RCPT)
    time.sleep(0.5)
    assert not local.requests, "delivered before any trigger or wakeup"
    trigger(inst, "W")
    wait_removed(inst, qid)


def test_immediate_before_bulk_without_starving_bulk(qmgr_setup):
    inst, local, _ = qmgr_setup({"local_destination_concurrency_limit": "1",
                                 "qmgr_immediate_bulk_ratio": "3"}, local_delay=0.02)
    # Written while qmgr is not running: all of it is in memory at once.
    bulk = inject(inst, LOCAL_RCPT, n=8, klass="bulk")
    imm = inject(inst, LOCAL_RCPT, n=10, klass="immediate")
    urgent = inject(inst, LOCAL_RCPT, n=2, klass="immediate", priority=5)
    inst.start()
    reqs = local.wait_requests(20, timeout=60)
    order = [r["queue_id"] for r in reqs]
    classes = "".join("B" if q in bulk else "I" for q in order)
    # Three immediate, then one bulk, while both wait; then the rest of bulk.
    assert classes == "IIIBIIIBIIIBIIIBBBBB", classes
    # Higher MT-PRIORITY first within its class; otherwise oldest first.
    assert order[:2] == urgent
    assert [q for q in order if q in imm] == imm
    assert [q for q in order if q in bulk] == bulk
    for q in order:
        wait_removed(inst, q)


def test_destination_concurrency_limits(qmgr_setup):
    inst, local, _ = qmgr_setup({"local_destination_concurrency_limit": "2"}, local_delay=0.3)
    # One local recipient: at most 2 deliveries to it at once.
    ids = inject(inst, LOCAL_RCPT, n=6)
    inst.start()
    for q in ids:
        wait_removed(inst, q, timeout=30)
    assert local.max_active == 2

    # Three recipients: 2 each, in parallel.
    local.max_active = 0
    ids = inject(inst, ["u1@example.com", "u2@example.com", "u3@example.com"], n=4, trigger=True)
    for q in ids:
        wait_removed(inst, q, timeout=30)
    assert 3 <= local.max_active <= 6


def test_active_message_limit(qmgr_setup):
    inst, local, _ = qmgr_setup({"qmgr_message_active_limit": "2",
                                 "local_destination_concurrency_limit": "20"}, local_delay=0.2)
    ids = inject(inst, ["r1@example.com", "r2@example.com"], n=8)
    inst.start()
    for q in ids:
        wait_removed(inst, q, timeout=30)
    assert local.max_active_msgs <= 2
    assert sorted(set(local.delivered())) == sorted(
        (q, r) for q in ids for r in ("r1@example.com", "r2@example.com"))


def test_recipient_memory_limit(qmgr_setup):
    # 3 recipients in memory at most: one 2-recipient message at a time; a
    # message bigger than the whole budget still goes through on its own.
    inst, local, _ = qmgr_setup({"qmgr_message_recipient_limit": "3",
                                 "local_destination_concurrency_limit": "20"}, local_delay=0.2)
    ids = inject(inst, ["r1@example.com", "r2@example.com"], n=4)
    big = inject(inst, [f"big{i}@example.com" for i in range(5)])
    inst.start()
    for q in ids + big:
        wait_removed(inst, q, timeout=30)
    assert local.max_active_msgs == 1
    assert len(local.delivered()) == 4 * 2 + 5


def wait_queue_file(inst, qid, queue, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p = queue_files(inst, queue).get(qid)
        if p:
            return p
        time.sleep(0.05)
    pytest.fail(f"{qid} not in {queue}/ within {timeout}s; log:\n" + inst.log_text()[-3000:])


def test_4xx_defers_with_backoff_then_retry_succeeds(qmgr_setup):
    attempts = {}

    def policy(req, rcpt):
        n = attempts.get(req["queue_id"], 0)
        attempts[req["queue_id"]] = n + 1
        return (450, "4.2.1", "mailbox busy, try later") if n == 0 else (0, "2.0.0", "ok")

    inst, local, _ = qmgr_setup({"minimal_backoff_time": "3s", "maximal_backoff_time": "6s"},
                                local_policy=policy)
    inst.start()
    [qid] = inject(inst, LOCAL_RCPT, trigger=True)
    path = wait_queue_file(inst, qid, "deferred")
    qf = read_qfile(path)
    assert qf.rcpts[0]["status"] == "R"
    [d] = qf.defers
    assert (d["index"], d["dsn"], d["reason"]) == (0, "4.2.1", "mailbox busy, try later")
    # The message is seconds old: the minimal backoff applies.
    assert d["next"] - d["time"] == 3
    # The next attempt time is also the file's modification time.
    assert int(path.stat().st_mtime) == d["next"]
    assert not queue_files(inst, "immediate")

    wait_removed(inst, qid, timeout=20)
    reqs = [r for r in local.requests if r["queue_id"] == qid]
    assert len(reqs) == 2
    assert reqs[1]["received"] - reqs[0]["received"] >= 2.5
    # Back from deferred/ through its class queue.
    assert reqs[1]["queue_name"] == "immediate"


def test_backoff_follows_the_message_age(qmgr_setup):
    inst, local, _ = qmgr_setup(
        {"minimal_backoff_time": "10s", "maximal_backoff_time": "500s"},
        local_policy=lambda req, rcpt: (451, "4.3.0", "try later"))
    young = inject(inst, LOCAL_RCPT)[0]
    middle = inject(inst, LOCAL_RCPT, ago=100)[0]
    old = inject(inst, LOCAL_RCPT, ago=20000, klass="bulk")[0]
    inst.start()
    delays = {}
    for q in (young, middle, old):
        d = read_qfile(wait_queue_file(inst, q, "deferred")).defers[-1]
        delays[q] = d["next"] - d["time"]
    assert delays[young] == 10                  # minimal_backoff_time
    assert 100 <= delays[middle] <= 103         # as old as the message
    assert delays[old] == 500                   # maximal_backoff_time


def poll_status(inst, qid, index, want, timeout=5):
    """The recipient's status byte as the file has it, once it is `want` (or
    the last value seen)."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        _, path = find_file(inst, qid)
        if path:
            try:
                qf = read_qfile(path)
                seen = qf.rcpts[index]["status"]
                if seen == want:
                    return seen, qf
            except (OSError, ValueError):
                pass
        time.sleep(0.02)
    return seen, None


def test_results_are_recorded_before_qmgr_acts(qmgr_setup):
    """Each answer is in the queue file before the agent's summary (so before
    the file is removed or moved): 'D' delivered, 'R' plus a DEFER record for
    deferred, and for a permanent failure 'R' with its 5.x.x status: 'B' only
    once bounce(8) has queued the notice."""
    verdicts = {"ok@example.com": (0, "2.0.0", "delivered to maildir"),
                "bad@example.com": (550, "5.1.1", "unknown user"),
                "busy@example.com": (452, "4.2.2", "mailbox full")}
    want = {0: "D", 550: "R", 452: "R"}
    seen = []

    def before_summary(req):
        for r in req["rcpts"]:
            status = verdicts[r["rcpt"]][0]
            got, qf = poll_status(inst, req["queue_id"], r["rcpt_index"], want[status])
            seen.append((r["rcpt"], got))
            if status == 452 and qf:
                assert qf.defers[-1]["reason"] == "mailbox full"
            if status == 550 and qf:
                d = [x for x in qf.defers if x["index"] == r["rcpt_index"]][-1]
                assert (d["dsn"], d["reason"]) == ("5.1.1", "unknown user")

    inst, local, _ = qmgr_setup(local_policy=lambda req, r: verdicts[r["rcpt"]],
                                before_summary=before_summary)
    inst.start()
    [qid] = inject(inst, list(verdicts), trigger=True)
    qf = read_qfile(wait_queue_file(inst, qid, "deferred"))
    assert sorted(seen) == [("bad@example.com", "R"), ("busy@example.com", "R"),
                            ("ok@example.com", "D")]
    # The notice was asked for (the bad recipient only), then 'B' recorded.
    assert inst.bounce.kinds(qid) == [("failure", [1])]
    assert [r["status"] for r in qf.rcpts] == ["D", "B", "R"]


def test_5xx_bounces_and_removes_the_file(qmgr_setup):
    inst, local, _ = qmgr_setup(
        local_policy=lambda req, r: (550, "5.1.1", "unknown user") if r["rcpt"].startswith("bad")
        else (0, "2.0.0", "ok"))
    inst.start()
    [both] = inject(inst, ["good@example.com", "bad@example.com"], trigger=True)
    [only_bad] = inject(inst, ["bad2@example.com"], trigger=True)
    wait_removed(inst, both)
    wait_removed(inst, only_bad)
    assert not queue_files(inst, "deferred")
    assert len([r for r in local.requests if r["queue_id"] == only_bad]) == 1
    assert inst.bounce.kinds(both) == [("failure", [1])]
    assert inst.bounce.kinds(only_bad) == [("failure", [0])]
    req = [r for r in inst.bounce.requests if r["queue_id"] == only_bad][0]
    assert req["rcpts"][0]["dsn_status"] == "5.1.1"
    assert req["rcpts"][0]["dsn_action"] == "failed"
    assert req["rcpts"][0]["reason"] == "unknown user"


def test_bounce_service_down_keeps_recipient_until_notice_is_queued(qmgr_setup):
    """No notice, no 'B': the recipient stays deferred with its 5.x.x status,
    is not delivered again, and the notice is asked for again later."""
    inst, local, _ = qmgr_setup({"minimal_backoff_time": "1s", "maximal_backoff_time": "1s"},
                                local_policy=lambda req, r: (550, "5.1.1", "unknown user"),
                                bounce=False)
    inst.start()
    [qid] = inject(inst, "bad@example.com", trigger=True)
    qf = read_qfile(wait_queue_file(inst, qid, "deferred"))
    assert qf.rcpts[0]["status"] == "R" and qf.defers[-1]["dsn"] == "5.1.1"
    inst.wait_for_log(rf"warning: {qid}: cannot queue failure notice: connect to private/bounce")
    # Retried rounds ask for the notice again without a delivery attempt.
    inst.wait_for_log(rf"warning: {qid}: cannot queue failure notice", since=inst.log_mark())
    assert len([r for r in local.requests if r["queue_id"] == qid]) == 1
    inst.bounce = FakeBounce(inst).start()
    try:
        wait_removed(inst, qid, timeout=20)
        assert inst.bounce.kinds(qid) == [("failure", [0])]
        assert len([r for r in local.requests if r["queue_id"] == qid]) == 1
    finally:
        inst.bounce.stop()


def test_delay_notice_once(qmgr_setup):
    """A message deferred past delay_warning_time gets one delay notice, once
    (the WARNED record), for the recipients still deferred."""
    tries = {}

    def policy(req, r):
        tries[r["rcpt"]] = tries.get(r["rcpt"], 0) + 1
        return (451, "4.2.0", "try again") if r["rcpt"].startswith("slow") else (0, "2.0.0", "ok")

    inst, local, _ = qmgr_setup({"delay_warning_time": "2s", "minimal_backoff_time": "1s",
                                 "maximal_backoff_time": "1s"}, local_policy=policy)
    inst.start()
    [qid] = inject(inst, ["slow@example.com", "fast@example.com"], trigger=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and tries.get("slow@example.com", 0) < 6:
        time.sleep(0.1)
    assert tries["slow@example.com"] >= 6
    assert inst.bounce.kinds(qid) == [("delay", [0])]
    req = [r for r in inst.bounce.requests if r["queue_id"] == qid][0]
    assert (req["rcpts"][0]["dsn_status"], req["rcpts"][0]["dsn_action"]) == ("4.2.0", "delayed")
    assert req["rcpts"][0]["reason"] == "try again"
    assert read_qfile(find_file(inst, qid)[1]).warned == 1


def test_dead_destination_defers_without_agent(qmgr_setup):
    """Connection failures at a destination (dest_status "dead") suspend it:
    the rest of its mail is deferred without a delivery request."""
    reason = "connect to mx.dead.example[192.0.2.1]:25: Connection refused"
    inst, _, smtp = qmgr_setup({"minimal_backoff_time": "60s", "maximal_backoff_time": "60s",
                                "initial_destination_concurrency": "2"},
                               smtp_policy=lambda req, r: (450, "4.4.1", reason), smtp_delay=0.3,
                               smtp_dest_status=lambda req: "dead")
    ids = inject(inst, "u@dead.example", n=20)
    inst.start()
    for q in ids:
        wait_queue_file(inst, q, "deferred", timeout=30)
    # Window 2 then 1: 1/2 + 1/1 pseudo-cohorts >= 1 after two failures (and
    # the deliveries that had already started).
    assert len(smtp.requests) <= 4, len(smtp.requests)
    inst.wait_for_log(r"transport smtp: destination dead\.example is unavailable -- delivery "
                      r"suspended for 60s")
    assert inst.count_log(re.escape(f"status=deferred (delivery temporarily suspended: {reason})"))\
        >= 16
    # A flush for the site revives it; the agent now accepts.
    smtp.policy = lambda req, r: (0, "2.0.0", "ok")
    smtp.dest_status = lambda req: "ok"
    trigger(inst, "Sdead.example")
    for q in ids:
        wait_removed(inst, q, timeout=30)


def test_slow_start_and_rate_delay(qmgr_setup):
    inst, _, smtp = qmgr_setup({"initial_destination_concurrency": "2",
                                "default_destination_concurrency_limit": "10",
                                "relay_destination_rate_delay": "1s",
                                "relay_domains": "slow.example"},
                               smtp_delay=0.3)
    relay = FakeAgent(inst, "relay").start()
    try:
        fast = inject(inst, "u@fast.example", n=30)
        slow = inject(inst, "u@slow.example", n=4)
        inst.start()
        for q in fast + slow:
            wait_removed(inst, q, timeout=60)
        # Slow start: two deliveries at first, more once they succeed.
        first = sorted(smtp.requests, key=lambda r: r["received"])
        t0 = first[0]["received"]
        assert len([r for r in first if r["received"] - t0 < 0.2]) == 2
        assert smtp.max_active > 2
        # Rate delay: one delivery per second for slow.example, one at a time;
        # fast.example (another transport's destination) was not held up.
        times = sorted(r["received"] for r in relay.requests)
        assert len(times) == 4
        assert all(b - a >= 0.95 for a, b in zip(times, times[1:])), times
        assert relay.max_active == 1
    finally:
        relay.stop()


def test_transport_maps_and_defer_transports(qmgr_setup):
    inst, local, smtp = qmgr_setup({
        "transport_maps": "inline:{ special.example=relay:[10.0.0.1]:2525, "
                          "user@over.example=smtp:[192.0.2.9], .sub.example=:nexthop.example, "
                          "{ gone.example=error:5.1.2 this domain is gone } }",
        "defer_transports": "relay"})
    relay = FakeAgent(inst, "relay").start()
    try:
        inst.start()
        [a] = inject(inst, ["x@special.example"], trigger=True)
        [b] = inject(inst, ["user@over.example", "other@over.example", "z@a.sub.example"],
                     trigger=True)
        [c] = inject(inst, ["who@gone.example"], trigger=True)
        wait_removed(inst, b)
        hops = sorted((r["nexthop"], r["rcpts"][0]["rcpt"]) for r in smtp.requests
                      if r["queue_id"] == b)
        assert hops == [("[192.0.2.9]", "user@over.example"), ("nexthop.example", "z@a.sub.example"),
                        ("over.example", "other@over.example")]
        # error: bounced by qmgr itself, with the table's status and text.
        wait_removed(inst, c)
        req = [r for r in inst.bounce.requests if r["queue_id"] == c][0]
        assert (req["rcpts"][0]["dsn_status"], req["rcpts"][0]["reason"]) == \
            ("5.1.2", "this domain is gone")
        # defer_transports: held until a flush.
        qf = read_qfile(wait_queue_file(inst, a, "deferred"))
        assert qf.defers[-1]["reason"] == "deferred transport"
        assert not relay.requests
        trigger(inst, "F")
        wait_removed(inst, a)
        assert [r["nexthop"] for r in relay.requests] == ["[10.0.0.1]:2525"]
    finally:
        relay.stop()


def test_expired_mail_is_returned(qmgr_setup):
    inst, local, _ = qmgr_setup(
        {"maximal_queue_lifetime": "10d", "bounce_queue_lifetime": "1d"},
        local_policy=lambda req, r: (450, "4.2.0", "try again"))
    old = inject(inst, LOCAL_RCPT, ago=11 * 86400)[0]
    old_null = inject(inst, LOCAL_RCPT, ago=2 * 86400, sender="")[0]
    young = inject(inst, LOCAL_RCPT, ago=2 * 86400)[0]
    inst.start()
    inst.wait_for_log(rf"qmgr\[\d+\]: {old}: from=<sender@example.org>, status=expired, "
                      r"returned to sender")
    wait_removed(inst, old)
    inst.wait_for_log(rf"qmgr\[\d+\]: {old_null}: from=<>, status=expired, returned to sender")
    wait_removed(inst, old_null)
    # Two days old with a sender: deferred, not expired.
    wait_queue_file(inst, young, "deferred")
    assert not re.search(rf"{young}: from=<[^>]*>, status=expired", inst.log_text())


def test_agent_failure_and_timeout_defer(qmgr_setup):
    def policy(req, r):
        return {"close@example.com": "close", "hang@example.com": "hang"}.get(
            r["rcpt"], (0, "2.0.0", "ok"))

    inst, local, _ = qmgr_setup({"qmgr_delivery_timeout": "2s",
                                 "minimal_backoff_time": "300s",
                                 "maximal_backoff_time": "300s"}, local_policy=policy)
    inst.start()
    [closed] = inject(inst, "close@example.com", trigger=True)
    [hung] = inject(inst, "hang@example.com", trigger=True)
    for q in (closed, hung):
        qf = read_qfile(wait_queue_file(inst, q, "deferred"))
        assert qf.rcpts[0]["status"] == "R"
        assert qf.defers[-1]["reason"] == "delivery agent failed"
        assert qf.defers[-1]["dsn"] == "4.3.0"
    log = inst.log_text()
    assert re.search(rf"qmgr\[\d+\]: {closed}: to=<close@example.com>, relay=none, "
                     r"delay=[0-9.]+, delays=[0-9.]+/[0-9.]+/0/0, dsn=4.3.0, "
                     r"status=deferred \(delivery agent failed\)", log)
    assert re.search(rf"warning: {hung}: private/local: delivery agent timed out after 2s", log)
    # qmgr went on serving meanwhile.
    [ok] = inject(inst, LOCAL_RCPT, trigger=True)
    wait_removed(inst, ok)


def test_transport_unavailable_then_back(qmgr_setup):
    inst, local, _ = qmgr_setup(smtp=False)
    inst.start()
    [qid] = inject(inst, "someone@remote.example", trigger=True)
    qf = read_qfile(wait_queue_file(inst, qid, "deferred"))
    assert qf.defers[-1]["reason"] == "mail transport unavailable"
    inst.wait_for_log(r"warning: transport smtp: connect to private/smtp: .* -- deferring")
    smtp = FakeAgent(inst, "smtp").start()
    try:
        wait_removed(inst, qid, timeout=20)
        assert [r["nexthop"] for r in smtp.requests] == ["remote.example"]
    finally:
        smtp.stop()


def test_agent_that_never_reads_makes_the_transport_unavailable(qmgr_setup):
    inst, _, smtp = qmgr_setup({"qmgr_ipc_timeout": "2s", "transport_retry_time": "30s",
                                "minimal_backoff_time": "300s"})
    smtp.stop()
    stuck = FakeAgent(inst, "smtp", accept=False).start()
    try:
        inst.start()
        [first] = inject(inst, "a@remote.example", trigger=True)
        qf = read_qfile(wait_queue_file(inst, first, "deferred"))
        assert qf.defers[-1]["reason"] == "delivery agent failed"
        inst.wait_for_log(rf"warning: {first}: private/smtp: delivery agent did not read the "
                          r"request within 2s")
        inst.wait_for_log(r"warning: transport smtp: .* -- deferring its mail for 30s")
        # While the transport is unavailable, new mail for it is deferred at once.
        [second] = inject(inst, "b@remote.example", trigger=True)
        qf = read_qfile(wait_queue_file(inst, second, "deferred", timeout=5))
        assert qf.defers[-1]["reason"] == "mail transport unavailable"
    finally:
        stuck.stop()


def test_flush_requests(qmgr_setup):
    tries = {}

    def policy(req, r):
        tries[req["queue_id"]] = tries.get(req["queue_id"], 0) + 1
        return (450, "4.4.1", "no answer") if tries[req["queue_id"]] == 1 else (0, "2.0.0", "ok")

    inst, local, smtp = qmgr_setup({"minimal_backoff_time": "3600s",
                                    "maximal_backoff_time": "7200s"},
                                   local_policy=policy, smtp_policy=policy)
    inst.start()
    [one] = inject(inst, LOCAL_RCPT, trigger=True)
    [two] = inject(inst, LOCAL_RCPT, trigger=True)
    [remote] = inject(inst, "x@remote.example", trigger=True)
    for q in (one, two, remote):
        wait_queue_file(inst, q, "deferred")

    trigger(inst, "I" + one)
    wait_removed(inst, one)
    trigger(inst, "Sremote.example")
    wait_removed(inst, remote)
    assert two in queue_files(inst, "deferred")
    trigger(inst, "F")
    wait_removed(inst, two)
    inst.wait_for_log(r"qmgr\[\d+\]: flush requested")


def test_kill_qmgr_mid_delivery_loses_nothing(qmgr_setup):
    inst, local, _ = qmgr_setup({"local_destination_concurrency_limit": "3"}, local_delay=0.2)
    rcpts = ["one@example.com", "two@example.com"]
    ids = inject(inst, rcpts, n=30)
    inst.start()
    for _round in range(2):
        local.wait_requests(len(local.requests) + 5, timeout=30)
        pid = qmgr_pid(inst)
        assert pid
        os.kill(pid, signal.SIGKILL)
        inst.wait_until(lambda: pid not in inst.service_pids("qmgr"), what="qmgr gone")
        # master starts qmgr again on the next wakeup or trigger.
        trigger(inst, "W")
        inst.wait_until(lambda: qmgr_pid(inst) is not None, what="qmgr restarted")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if not any(queue_files(inst, q) for q in ("immediate", "bulk", "deferred")):
            break
        time.sleep(0.2)
    wanted = {(q, r) for q in ids for r in rcpts}
    got = local.delivered()
    missing = wanted - set(got)
    assert not missing, f"lost: {sorted(missing)[:10]}"
    print(f"\n{len(wanted)} deliveries wanted, {len(got)} made, "
          f"{len(got) - len(set(got))} duplicates")
    assert not queue_files(inst, "corrupt")


def test_recovery_at_start(qmgr_setup):
    inst, local, _ = qmgr_setup({"qmgr_incoming_purge_time": "60s"})
    # A file whose recipients were all recorded final, but never removed.
    [done] = inject(inst, ["a@example.com", "b@example.com"])
    # A file with one recipient final and one pending.
    [half] = inject(inst, ["c@example.com", "d@example.com"])
    for qid, indexes in ((done, (0, 1)), (half, (0,))):
        _, path = find_file(inst, qid)
        qf = read_qfile(path)
        with open(path, "r+b") as f:
            for i in indexes:
                f.seek(qf.rcpts[i]["status_offset"])
                f.write(b"D")
    # Never acknowledged: an old abandoned file in incoming/, and a recent one.
    [stale, fresh] = inject(inst, LOCAL_RCPT, n=2)
    for qid, age in ((stale, 3600), (fresh, 0)):
        _, path = find_file(inst, qid)
        target = inst.queue_dir / "incoming" / qid
        os.rename(path, target)
        t = time.time() - age
        os.utime(target, (t, t))
    inst.start()
    wait_removed(inst, done)
    wait_removed(inst, half)
    inst.wait_for_log(rf"{stale}: removed incomplete queue file \(never acknowledged\)")
    assert fresh in queue_files(inst, "incoming")
    delivered = local.delivered()
    assert delivered == [(half, "d@example.com")]
    assert not re.search(rf"{done}: from=", inst.log_text())


def test_corrupt_files_go_to_corrupt(qmgr_setup):
    inst, local, _ = qmgr_setup()
    garbage, truncated, badrec, newer = inject(inst, LOCAL_RCPT, n=4)
    paths = {q: find_file(inst, q)[1] for q in (garbage, truncated, badrec, newer)}
    paths[garbage].write_bytes(b"this is not a queue file\n" * 10)
    data = paths[truncated].read_bytes()
    paths[truncated].write_bytes(data[:len(data) // 2])
    data = bytearray(paths[badrec].read_bytes())
    data[12] = 0xFF   # the first record's type: never valid
    paths[badrec].write_bytes(bytes(data))
    data = bytearray(paths[newer].read_bytes())
    data[9] = 2       # format version 2: not ours to judge
    paths[newer].write_bytes(bytes(data))
    inst.start()
    inst.wait_until(lambda: len(queue_files(inst, "corrupt")) == 3, what="3 files in corrupt/")
    assert set(queue_files(inst, "corrupt")) == {garbage, truncated, badrec}
    for q in (garbage, truncated, badrec):
        inst.wait_for_log(rf"warning: {q}: corrupt queue file in immediate/: .* -- moved to "
                          r"corrupt/")
    inst.wait_for_log(rf"warning: {newer}: queue file in immediate/ has a format this version "
                      r"cannot read")
    assert newer in queue_files(inst, "immediate")
    pid = qmgr_pid(inst)
    [ok] = inject(inst, LOCAL_RCPT, trigger=True)
    wait_removed(inst, ok)
    assert qmgr_pid(inst) == pid
    assert local.delivered() == [(ok, LOCAL_RCPT)]


def test_bad_triggers_are_ignored(qmgr_setup):
    inst, local, _ = qmgr_setup()
    inst.start()
    inst.wait_for_log(r"qmgr\[\d+\]: ")
    pid = qmgr_pid(inst)
    trigger(inst, "Aimmediate/../../etc/passwd", "Ahold/11K0XMK8CSC8004VT", "A", "Inot-an-id",
            "S", "Sbad site", "Xwhat", "Aimmediate/11K0XMK8CSC8004VT")
    [ok] = inject(inst, LOCAL_RCPT, trigger=True)
    wait_removed(inst, ok)
    assert qmgr_pid(inst) == pid
    log = inst.log_text()
    assert "ignoring trigger for \"immediate/../../etc/passwd\"" in log
    assert "unknown trigger request \"Xwhat\"" in log
