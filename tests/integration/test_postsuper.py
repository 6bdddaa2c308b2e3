"""postsuper: delete, hold, release, requeue, structure repair and purge,
with the mail system running, and every way the command can be misused."""

import os
import re
import shutil
import socket
import threading
import time

import pytest

from conftest import BUILD, IS_ROOT, MAIL_OWNER, SETGID_GROUP
from queuetools import DeliveryAgent, QueueBench, TriggerSink, make_id

SHOWQ_CF = "showq unix n - n - - showq\n"
T0 = 1704164645
REASON = "connect to mx.example.net[192.0.2.7]:25: Connection timed out"


@pytest.fixture
def bench(postern_instance):
    inst = postern_instance(SHOWQ_CF)
    return QueueBench(inst)


def deferred_msg(b, **kw):
    kw.setdefault("rcpts", ["a@example.com", "b@example.com"])
    kw.setdefault("d", [(0, T0, T0 + 3600, "4.4.1", REASON)])
    return b.mkqfile(queue="deferred", **kw)


def listing(b):
    r = b.postqueue("-p")
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_delete_one(bench):
    keep = deferred_msg(bench)
    gone = deferred_msg(bench)
    r = bench.postsuper("-d", gone)
    assert r.returncode == 0, r.stderr
    assert r.stderr == f"postsuper: {gone}: removed\npostsuper: Deleted: 1 message\n"
    assert bench.where(gone) == [] and bench.where(keep) == ["deferred"]
    bench.inst.wait_for_log(rf"postfix/postsuper\[\d+\]: {gone}: removed$")
    bench.inst.wait_for_log(r"postfix/postsuper\[\d+\]: Deleted: 1 message$")
    # Not there (any more): not an error.
    r = bench.postsuper("-d", gone)
    assert (r.returncode, r.stderr) == (0, "postsuper: Deleted: 0 messages\n")
    assert gone not in listing(bench) and keep in listing(bench)


def test_delete_all_and_by_queue(bench):
    d1, d2 = deferred_msg(bench), deferred_msg(bench)
    h = bench.mkqfile(queue="hold")
    i = bench.mkqfile(queue="immediate")
    r = bench.postsuper("-d", "ALL", "deferred")
    assert r.returncode == 0, r.stderr
    assert r.stderr == "postsuper: Deleted: 2 messages\n"
    assert bench.where(d1) == bench.where(d2) == []
    assert bench.where(h) == ["hold"] and bench.where(i) == ["immediate"]
    # The mass operation logs each message to the log only.
    bench.inst.wait_for_log(rf"postsuper\[\d+\]: {d1}: removed$")
    r = bench.postsuper("-d", "ALL")
    assert r.stderr == "postsuper: Deleted: 2 messages\n"
    assert listing(bench) == "Mail queue is empty\n"


def test_delete_from_stdin(bench):
    ids = [deferred_msg(bench) for _ in range(3)]
    keep = deferred_msg(bench)
    text = f"{ids[0]}\n  {ids[1]}*  \n\n{ids[2]}!\nnot-an-id\n{'x' * 5000}\n"
    r = bench.postsuper("-d", "-", input=text)
    # The valid ids are done; the invalid lines make the exit status 65.
    assert r.returncode == 65, r.stderr
    assert "postsuper: warning: invalid mail queue id: not-an-id" in r.stderr
    assert "line longer than 1024 bytes" in r.stderr
    assert "postsuper: Deleted: 3 messages" in r.stderr
    for qid in ids:
        assert bench.where(qid) == [] and f"postsuper: {qid}: removed" in r.stderr
    assert bench.where(keep) == ["deferred"]


def test_hold_and_release(bench):
    qid = deferred_msg(bench)
    bulk = bench.mkqfile(queue="deferred", b=1)
    r = bench.postsuper("-h", qid, "-h", bulk)
    assert r.returncode == 0, r.stderr
    assert r.stderr == (f"postsuper: {qid}: placed on hold\npostsuper: {bulk}: placed on hold\n"
                        "postsuper: Placed on hold: 2 messages\n")
    assert bench.where(qid) == ["hold"] and bench.where(bulk) == ["hold"]
    assert qid + "!" in listing(bench)
    # Holding what is on hold finds nothing to do.
    r = bench.postsuper("-h", qid)
    assert r.stderr == "postsuper: Placed on hold: 0 messages\n"
    # Released mail goes to its class queue, where delivery starts at once.
    qmgr = TriggerSink(bench.inst.queue_dir / "public" / "qmgr")
    try:
        r = bench.postsuper("-H", "ALL")
        assert r.returncode == 0, r.stderr
        assert r.stderr == "postsuper: Released from hold: 2 messages\n"
        assert qmgr.wait(1) == [b"W\0"]
    finally:
        qmgr.close()
    assert bench.where(qid) == ["immediate"] and bench.where(bulk) == ["bulk"]
    assert qid + "*" in listing(bench)
    bench.inst.wait_for_log(rf"postsuper\[\d+\]: {qid}: released from hold$")


def test_hold_all_leaves_maildrop_alone(bench):
    d = deferred_msg(bench)
    i = bench.mkqfile(queue="immediate")
    m = bench.mkqfile(queue="maildrop")
    r = bench.postsuper("-h", "ALL")
    assert r.stderr == "postsuper: Placed on hold: 2 messages\n"
    assert bench.where(d) == ["hold"] and bench.where(i) == ["hold"]
    # maildrop/ holds mail not yet sanitized: never held, even when named.
    r = bench.postsuper("-h", m, "maildrop")
    assert r.stderr == "postsuper: Placed on hold: 0 messages\n"
    assert bench.where(m) == ["maildrop"]
    r = bench.postsuper("-H", "ALL", "deferred")
    assert r.stderr == "postsuper: Released from hold: 0 messages\n"
    # Requeue all: everything held goes back to its class queue.
    r = bench.postsuper("-r", "ALL")
    assert r.stderr == "postsuper: Requeued: 2 messages\n"
    assert bench.where(d) == ["immediate"] and bench.where(i) == ["immediate"]
    assert bench.where(m) == ["maildrop"]
    # Delete looks in maildrop/ too.
    r = bench.postsuper("-d", m)
    assert r.stderr == f"postsuper: {m}: removed\npostsuper: Deleted: 1 message\n"


def test_operations_find_files_after_a_hash_change(postern_instance):
    """Until postsuper -s has run, a changed hash setting leaves files where
    they were; listing and operations still find them."""
    inst = postern_instance(SHOWQ_CF)
    b = QueueBench(inst)
    q1, q2 = deferred_msg(b), deferred_msg(b)
    inst.write_main_cf({"hash_queue_depth": "3"})
    b2 = QueueBench(inst, hash_depth=3)
    r = b2.postqueue("-j")
    assert q1 in r.stdout and q2 in r.stdout
    r = b2.postsuper("-h", q1)
    assert r.returncode == 0, r.stderr
    assert f"postsuper: {q1}: placed on hold" in r.stderr
    assert b2.where(q1) == ["hold"]
    r = b2.postsuper("-d", "ALL", "deferred")
    assert r.stderr.endswith("postsuper: Deleted: 1 message\n")
    assert b2.where(q2) == []


def test_requeue(bench):
    qid = deferred_msg(bench, rcpts=["a@example.com", "b@example.com", "c@example.com"],
                       d=[(0, T0, T0 + 3600, "4.4.1", REASON),
                          (1, T0, T0 + 3600, "4.4.1", REASON)],
                       m=[(2, "D")])
    held = bench.mkqfile(queue="hold", d=[(0, T0, T0 + 3600, "4.4.1", REASON)])
    before = listing(bench)
    assert REASON in before
    r = bench.postsuper("-r", qid, "-r", held)
    assert r.returncode == 0, r.stderr
    assert r.stderr == (f"postsuper: {qid}: requeued\npostsuper: {held}: requeued\n"
                        "postsuper: Requeued: 2 messages\n")
    assert bench.where(qid) == ["immediate"] and bench.where(held) == ["immediate"]
    after = listing(bench)
    # Deferred recipients are pending again (no reasons); done ones stay done.
    assert REASON not in after
    assert "a@example.com" in after and "b@example.com" in after
    assert "c@example.com" not in after
    assert qid + "*" in after


def test_requeue_leaves_statuses_of_a_locked_file(bench):
    """A process holding a lock on the file (the queue manager at work) keeps
    its recipient statuses; the file still moves."""
    import fcntl
    qid = deferred_msg(bench)
    fd = os.open(bench.path("deferred", qid), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        r = bench.postsuper("-r", qid)
        assert r.returncode == 0, r.stderr
    finally:
        os.close(fd)
    assert bench.where(qid) == ["immediate"]
    assert REASON in listing(bench)


def test_operations_in_the_order_given(bench):
    qid = deferred_msg(bench)
    r = bench.postsuper("-h", qid, "-H", qid, "-d", qid)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        f"postsuper: {qid}: placed on hold",
        f"postsuper: {qid}: released from hold",
        f"postsuper: {qid}: removed",
        "postsuper: Deleted: 1 message",
        "postsuper: Placed on hold: 1 message",
        "postsuper: Released from hold: 1 message",
    ]
    assert bench.where(qid) == []


def test_structure_repair(postern_instance):
    inst = postern_instance(SHOWQ_CF)
    b = QueueBench(inst)
    qid = deferred_msg(b)
    right = b.path("deferred", qid)
    # A file at the top of a hashed queue (as after a hash setting change).
    wrong = inst.queue_dir / "deferred" / qid
    os.rename(right, wrong)
    # A foreign file, a damaged queue file, a symbolic link, a stray directory.
    alien = inst.queue_dir / "deferred" / "core"
    alien.write_text("junk")
    broken = make_id((T0 + 5) * 10**6, 9)
    (inst.queue_dir / "hold" / broken).write_bytes(b"\x89PQF\r\n\x1a\n\x00\x01\x00\x00")
    link = inst.queue_dir / "bulk" / make_id((T0 + 6) * 10**6, 9)
    link.symlink_to("/etc/passwd")
    stray = inst.queue_dir / "immediate" / "lost+found"
    stray.mkdir()
    for p in (alien, inst.queue_dir / "hold" / broken, stray):
        if b.owner:
            shutil.chown(p, b.owner)
    r = b.postsuper("-s")
    assert r.returncode == 0, r.stderr
    assert right.is_file() and not wrong.exists()
    assert f"postsuper: {qid}: moved from {wrong} to {right}" in r.stderr
    assert (inst.queue_dir / "corrupt" / "core").read_text() == "junk"
    assert (inst.queue_dir / "corrupt" / broken).is_file()
    assert f"postsuper: warning: {broken}: corrupt queue file in hold/" in r.stderr
    assert not os.path.lexists(link) and os.path.exists("/etc/passwd")
    assert "removed unexpected symbolic link" in r.stderr
    assert not stray.exists()
    assert qid in listing(b)

    # A deeper hash: files move down, the old level goes once empty.
    inst.write_main_cf({"hash_queue_depth": "2"})
    r = b.postsuper("-s", "deferred")
    assert r.returncode == 0, r.stderr
    deep = inst.queue_dir / "deferred" / qid[11] / qid[10] / qid
    assert deep.is_file()
    # And back to no hashing: files come up, the subdirectories go.
    inst.write_main_cf({"hash_queue_names": "defer"})
    r = b.postsuper()
    assert r.returncode == 0, r.stderr
    assert (inst.queue_dir / "deferred" / qid).is_file()
    assert [p.name for p in (inst.queue_dir / "deferred").iterdir()] == [qid]
    r = b.postqueue("-j")
    assert qid in r.stdout


def test_purge(bench):
    inst = bench.inst
    old_tmp = inst.queue_dir / "deferred" / "stuff.tmp.1234"
    new_tmp = inst.queue_dir / "deferred" / "other.tmp.5678"
    abandoned = inst.queue_dir / "incoming" / make_id((T0 + 7) * 10**6, 3)
    for p in (old_tmp, new_tmp, abandoned):
        p.write_text("x")
        if bench.owner:
            shutil.chown(p, bench.owner)
    week = 8 * 24 * 3600
    os.utime(old_tmp, (time.time() - week, time.time() - week))
    os.utime(abandoned, (time.time() - 3600, time.time() - 3600))
    r = bench.postsuper("-p")
    assert r.returncode == 0, r.stderr
    assert not old_tmp.exists() and new_tmp.exists() and not abandoned.exists()
    inst.wait_for_log(rf"postsuper\[\d+\]: {abandoned.name}: removed incomplete queue file")


def test_race_with_a_moving_file(bench):
    """A file that moves between queues while postsuper looks for it (the
    queue manager at work) is never lost and never duplicated."""
    qid = deferred_msg(bench)
    a = bench.path("deferred", qid)
    b_ = bench.inst.queue_dir / "immediate" / qid
    stop = threading.Event()

    def shuffle():
        while not stop.is_set():
            for src, dst in ((a, b_), (b_, a)):
                try:
                    os.rename(src, dst)
                except FileNotFoundError:
                    pass

    t = threading.Thread(target=shuffle)
    t.start()
    try:
        r = bench.postsuper("-h", qid)
    finally:
        stop.set()
        t.join()
    assert r.returncode == 0, r.stderr
    places = bench.where(qid)
    assert len(places) == 1, places
    if "Placed on hold: 1 message" in r.stderr:
        assert places == ["hold"]


def test_bad_usage_and_permissions(bench, tmp_path):
    qid = deferred_msg(bench)
    for args in (["-x"], ["-e", qid], ["-f", qid], ["-d"]):
        r = bench.postsuper(*args)
        assert r.returncode == 64, (args, r.stderr)
        assert "postsuper: fatal:" in r.stderr
    r = bench.postsuper("-x")
    assert "postsuper: invalid option -- 'x'" in r.stderr
    # An invalid id on the command line: nothing at all is done.
    r = bench.postsuper("-d", qid, "-d", "../../etc/passwd")
    assert r.returncode == 64
    assert "postsuper: fatal: invalid mail queue id: ../../etc/passwd" in r.stderr
    assert bench.where(qid) == ["deferred"]
    r = bench.postsuper("-d", "all")
    assert r.returncode == 64 and "invalid mail queue id: all" in r.stderr
    r = bench.postsuper("-d", "-", "-h", "-")
    assert r.returncode == 64
    r = bench.postsuper("-d", qid, "outbox")
    assert (r.returncode, r.stderr) == (64, "postsuper: fatal: invalid directory name: outbox\n")
    r = bench.postsuper("-c", "relative/dir", "-s", config=False)
    assert r.returncode == 64 and "-c requires absolute pathname" in r.stderr
    r = bench.postsuper("-c", tmp_path / "missing", "-s", config=False)
    assert r.returncode == 78
    assert f"postsuper: fatal: open {tmp_path}/missing/main.cf: No such file or directory" \
        in r.stderr
    r = bench.postsuper("--help")
    assert r.returncode == 0 and "usage: postsuper" in r.stdout
    assert bench.where(qid) == ["deferred"]


@pytest.mark.skipif(not IS_ROOT, reason="needs root to run as another user")
def test_only_root_and_mail_owner(bench):
    qid = deferred_msg(bench)
    r = bench.postsuper("-d", qid, user="nobody", groups=[SETGID_GROUP])
    assert r.returncode == 77
    assert "postsuper: fatal: use of this command is reserved for the superuser" in r.stderr
    assert bench.where(qid) == ["deferred"]
    r = bench.postsuper("-h", qid, user=MAIL_OWNER)
    assert r.returncode == 0, r.stderr
    assert bench.where(qid) == ["hold"]
    # Root works as mail_owner: what it creates belongs to mail_owner.
    bench.inst.write_main_cf({"hash_queue_names": "deferred, hold"})
    r = bench.postsuper("-s", "hold")
    assert r.returncode == 0, r.stderr
    sub = bench.inst.queue_dir / "hold" / qid[11]
    assert sub.is_dir() and sub.stat().st_uid == bench.inst.queue_dir.joinpath(
        "hold").stat().st_uid


def test_missing_queue_directory(postern_instance, tmp_path):
    inst = postern_instance(SHOWQ_CF, main_cf={"queue_directory": str(tmp_path / "gone")},
                            start=False)
    b = QueueBench(inst)
    r = b.postsuper("-d", "ALL")
    assert r.returncode == 78
    assert f"postsuper: fatal: chdir {tmp_path}/gone: No such file or directory" in r.stderr


# -- with the real queue manager ---------------------------------------------

QMGR_CF = SHOWQ_CF + "qmgr unix n - n 300 1 qmgr\n"
QMGR_MAIN = {
    "myhostname": "mail.example.com",
    "mydestination": "$myhostname, example.com, localhost",
    "minimal_backoff_time": "1s",
    "maximal_backoff_time": "2s",
    "queue_run_delay": "1s",
}


@pytest.fixture
def live(postern_instance):
    """An instance with showq and qmgr, and a stand-in local delivery agent."""
    if not (BUILD / "bin" / "qmgr").exists():
        pytest.skip("qmgr is not built")
    inst = postern_instance(QMGR_CF, main_cf=QMGR_MAIN)
    b = QueueBench(inst)
    agent = DeliveryAgent(inst.queue_dir / "private" / "local",
                          owner=MAIL_OWNER if IS_ROOT else None)
    b.agent = agent
    yield b
    agent.close()


def wakeup(b):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(b.inst.queue_dir / "public" / "qmgr"))
        s.sendall(b"W\0")


def not_due(b, **kw):
    """A deferred message whose next attempt is an hour away."""
    later = int(time.time()) + 3600
    return b.mkqfile(queue="deferred", rcpts=["user@example.com"], w=later,
                     d=[(0, int(time.time()), later, "4.4.1", REASON)], **kw)


def test_hold_keeps_mail_from_delivery_until_released(live):
    qid = not_due(live)
    r = live.postsuper("-h", qid)
    assert r.returncode == 0, r.stderr
    # A flush makes deferred mail due; held mail stays where it is.
    mark = live.inst.log_mark()
    assert live.postqueue("-f").returncode == 0
    live.inst.wait_for_log(r"qmgr\[\d+\]: flush requested", since=mark)
    time.sleep(2)
    assert live.agent.delivered_ids() == []
    assert live.where(qid) == ["hold"]
    assert qid + "!" in listing(live)
    # Released: delivered at once, without waiting for a queue run.
    r = live.postsuper("-H", qid)
    assert r.returncode == 0, r.stderr
    live.inst.wait_for_log(rf"qmgr\[\d+\]: {qid}: removed", since=mark)
    assert live.agent.delivered_ids() == [qid]
    assert listing(live) == "Mail queue is empty\n"


def test_requeue_delivers_now(live):
    qid = not_due(live)
    mark = live.inst.log_mark()
    r = live.postsuper("-r", qid)
    assert r.returncode == 0, r.stderr
    live.inst.wait_for_log(rf"qmgr\[\d+\]: {qid}: removed", since=mark)
    assert live.agent.delivered_ids() == [qid]


def test_delete_while_being_delivered(live):
    live.agent.pause = 2
    qid = live.mkqfile(queue="immediate", rcpts=["user@example.com"])
    mark = live.inst.log_mark()
    wakeup(live)
    assert live.agent.started.wait(10)
    r = live.postsuper("-d", qid)
    assert r.returncode == 0, r.stderr
    assert f"{qid}: removed" in r.stderr
    # The delivery in flight ends; qmgr finds the file gone and goes on.
    time.sleep(3)
    assert live.where(qid) == []
    log = live.inst.log_text()[mark:]
    assert not re.search(rf"qmgr\[\d+\]: (warning|error|fatal|panic): .*{qid}", log), log
    # qmgr still works.
    other = live.mkqfile(queue="immediate", rcpts=["user@example.com"])
    live.agent.pause = 0
    wakeup(live)
    live.inst.wait_for_log(rf"qmgr\[\d+\]: {other}: removed", since=mark)


def test_hold_while_being_delivered_then_release(live):
    """The attempt in flight fails; qmgr finds the file gone from its queue
    (it is on hold now) and must not hold that against it when the
    administrator releases the message."""
    answers = {"status": 450}
    live.agent.pause = 2
    live.agent.verdict = lambda q, r: ((answers["status"], "4.2.0", "try again later")
                                       if answers["status"] else (0, "2.0.0", "delivered"))
    qid = live.mkqfile(queue="immediate", rcpts=["user@example.com"])
    mark = live.inst.log_mark()
    wakeup(live)
    assert live.agent.started.wait(10)
    r = live.postsuper("-h", qid)
    assert r.returncode == 0, r.stderr
    time.sleep(3)
    assert live.where(qid) == ["hold"]
    answers["status"] = 0
    live.agent.pause = 0
    r = live.postsuper("-H", qid)
    assert r.returncode == 0, r.stderr
    live.inst.wait_for_log(rf"qmgr\[\d+\]: {qid}: removed", since=mark, timeout=15)
    assert live.where(qid) == []
