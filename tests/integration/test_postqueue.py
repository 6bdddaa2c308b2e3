"""postqueue and showq: the listing in Postfix's text and JSON formats, who
may see it, flush requests, and every way the command can be misused."""

import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BUILD, IS_ROOT, MAIL_OWNER, SETGID_GROUP, SRC
from queuetools import QueueBench, TriggerSink, make_id, postfix_mailq, run_as

GOLDEN = Path(__file__).resolve().parent / "golden"
SHOWQ_CF = "showq unix n - n - - showq\n"

# 2024-01-02 03:04:05 UTC and a few minutes later
T0 = 1704164645
LONG_REASON = ("host mx1.example.com[192.0.2.25] said: 452 4.2.2 <bob@example.com>: "
               "Recipient address rejected: mailbox full, try again much later (in reply to "
               "RCPT TO command)")
SHORT_REASON = "connect to mx.example.net[192.0.2.7]:25: Connection timed out"
OTHER_REASON = "delivery temporarily suspended: lost connection with mx.example.net"


@pytest.fixture
def bench(postern_instance):
    inst = postern_instance(SHOWQ_CF)
    return QueueBench(inst)


def fill_golden_queue(b):
    """The messages of the golden listing, with fixed ids, times and sizes."""
    ids = {}
    ids["imm"] = b.mkqfile(queue="immediate", id=make_id(T0 * 10**6, 1), t=T0, z=1234,
                           s="john doe@example.org",
                           rcpts=["alice@example.com", "o'brien@example.com"])
    ids["bulk"] = b.mkqfile(queue="bulk", b=1, id=make_id(T0 * 10**6 + 5, 2), t=T0 + 1,
                            z=56789, s="list-bounces@lists.example.org",
                            rcpts=["member@example.com"])
    ids["def"] = b.mkqfile(
        queue="deferred", id=make_id((T0 + 60) * 10**6, 3), t=T0 + 60, z=100000,
        s="carol@example.org",
        rcpts=["bob@example.com", "bob2@example.com", "dave@example.net", "done@example.net",
               "erin@example.net", "pending@example.org"],
        d=[(0, T0 + 120, T0 + 720, "4.2.2", LONG_REASON),
           (1, T0 + 120, T0 + 720, "4.2.2", LONG_REASON),
           (2, T0 + 120, T0 + 720, "4.4.1", SHORT_REASON),
           (4, T0 + 120, T0 + 720, "4.4.2", OTHER_REASON)],
        m=[(3, "D")])
    ids["null"] = b.mkqfile(queue="deferred", id=make_id((T0 + 61) * 10**6, 4), t=T0 + 61,
                            z=512, s="", rcpts=["postmaster@example.net"],
                            d=[(0, T0 + 120, T0 + 720, "4.4.1", SHORT_REASON)])
    ids["hold"] = b.mkqfile(queue="hold", id=make_id((T0 + 3600) * 10**6, 5), t=T0 + 3600,
                            z=2048, s="frank@example.org", rcpts=["grace@example.com"],
                            d=[(0, T0 + 3700, T0 + 9000, "4.4.1", SHORT_REASON)])
    return ids


def golden_entries(ids):
    """The same messages as Postfix's showq would describe them."""
    return [
        {"id": ids["imm"], "mark": "*", "size": 1234, "time": T0,
         "sender": '"john doe"@example.org',
         "rcpts": [("alice@example.com", ""), ("o'brien@example.com", "")]},
        {"id": ids["bulk"], "mark": "*", "size": 56789, "time": T0 + 1,
         "sender": "list-bounces@lists.example.org", "rcpts": [("member@example.com", "")]},
        {"id": ids["def"], "mark": "", "size": 100000, "time": T0 + 60,
         "sender": "carol@example.org",
         "rcpts": [("bob@example.com", LONG_REASON), ("bob2@example.com", LONG_REASON),
                   ("dave@example.net", SHORT_REASON), ("erin@example.net", OTHER_REASON),
                   ("pending@example.org", "")]},
        {"id": ids["null"], "mark": "", "size": 512, "time": T0 + 61, "sender": "MAILER-DAEMON",
         "rcpts": [("postmaster@example.net", SHORT_REASON)]},
        {"id": ids["hold"], "mark": "!", "size": 2048, "time": T0 + 3600,
         "sender": "frank@example.org", "rcpts": [("grace@example.com", SHORT_REASON)]},
    ]


def test_listing_matches_postfix_format(bench):
    ids = fill_golden_queue(bench)
    r = bench.postqueue("-p")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    # Against the golden file (the reviewed output) ...
    assert r.stdout == (GOLDEN / "postqueue_p.ref").read_text()
    # ... and against Postfix's format strings applied to the same messages.
    assert r.stdout == postfix_mailq(golden_entries(ids))


def test_listing_fields(bench):
    """Field by field, as a person reads Postfix's listing."""
    ids = fill_golden_queue(bench)
    lines = bench.postqueue("-p").stdout.split("\n")
    assert lines[0] == ("----Queue ID----- --Size-- ---Arrival Time---- "
                        "--Sender/Recipient------")
    # An entry line: id with its mark, size right-aligned in 8 columns after
    # one space, asctime() without the year, sender.
    first = lines[1]
    assert first.startswith(ids["imm"] + "*")
    assert first[18:27] == "     1234"
    assert first[28:47] == "Tue Jan  2 03:04:05"
    assert first[48:] == '"john doe"@example.org'
    # Recipients start in column 48 (47 blanks).
    assert lines[2] == " " * 47 + "alice@example.com"
    deferred = lines.index(next(l for l in lines if l.startswith(ids["def"])))
    assert lines[deferred][:17] == ids["def"] and lines[deferred][17] == " "
    # A reason longer than 76 characters starts in column 1; the next
    # recipient with the same reason gets no second reason line.
    assert lines[deferred + 1] == "(" + LONG_REASON + ")"
    assert lines[deferred + 2].strip() == "bob@example.com"
    assert lines[deferred + 3].strip() == "bob2@example.com"
    # A short reason ends in column 78.
    assert lines[deferred + 4] == " " * (76 - len(SHORT_REASON)) + "(" + SHORT_REASON + ")"
    assert len(lines[deferred + 4]) == 78
    assert lines[deferred + 5].strip() == "dave@example.net"
    assert lines[deferred + 6].strip() == "(" + OTHER_REASON + ")"
    assert lines[deferred + 7].strip() == "erin@example.net"
    # A recipient without a reason after one with a reason.
    assert lines[deferred + 8] == " " * 58 + "(reason unavailable)"
    assert lines[deferred + 9].strip() == "pending@example.org"
    # Delivered recipients are not shown; the null sender is MAILER-DAEMON.
    assert "done@example.net" not in "\n".join(lines)
    assert any(l.startswith(ids["null"]) and l.endswith(" MAILER-DAEMON") for l in lines)
    assert any(l.startswith(ids["hold"] + "!") for l in lines)
    # Entries are separated by one empty line; the trailer sums the sizes.
    assert lines[-3] == "" and lines[-1] == ""
    total = 1234 + 56789 + 100000 + 512 + 2048
    assert lines[-2] == f"-- {total // 1024} Kbytes in 5 Requests."


def postfix_internal(sender):
    """An address as Postfix's listing shows it, back to the queue file form."""
    if sender == "MAILER-DAEMON":
        return ""
    m = re.fullmatch(r'"(.*)"(@.*)', sender)
    return m.group(1) + m.group(2) if m else sender


def test_same_mail_as_postfix(bench):
    """Postfix 3.7.11 (Debian 12) listed these messages in a private instance
    (golden/postfix-3.7.11-postqueue-[pj].txt: a message in its active queue,
    deferred ones with long and short reasons from a remote server and from a
    failed connection, a null sender, one on hold; TZ=UTC). The same messages
    in Postern's queue are listed byte for byte the same, but for the queue
    ids, and for "immediate" where Postfix says "active" in JSON."""
    pf_json = (GOLDEN / "postfix-3.7.11-postqueue-j.txt").read_text()
    pf_text = (GOLDEN / "postfix-3.7.11-postqueue-p.txt").read_text()
    queue_of = {"active": "immediate", "deferred": "deferred", "hold": "hold"}
    ids = {}
    # Postern lists oldest id first within a queue: ids in Postfix's order.
    for n, o in enumerate(json.loads(line) for line in pf_json.splitlines()):
        qid = make_id((T0 + n) * 10**6, n + 1)
        deferrals = [(i, T0, T0 + 3600, "4.0.0", r["delay_reason"])
                     for i, r in enumerate(o["recipients"]) if "delay_reason" in r]
        bench.mkqfile(queue=queue_of[o["queue_name"]], id=qid, t=o["arrival_time"],
                      z=o["message_size"], s=postfix_internal(o["sender"]),
                      rcpts=[r["address"] for r in o["recipients"]], d=deferrals)
        ids[o["queue_id"]] = qid

    expected = []
    for line in pf_text.splitlines(keepends=True):
        m = re.match(r"([0-9A-Za-z]+)([*!#]*) ", line)
        if m and m.group(1) in ids:
            head = (m.group(1) + m.group(2)).ljust(17)
            line = (ids[m.group(1)] + m.group(2)).ljust(17) + line[len(head):]
        expected.append(line)
    r = bench.postqueue("-p")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "".join(expected)

    expected_json = pf_json.replace('"queue_name": "active"', '"queue_name": "immediate"')
    for pf_id, qid in ids.items():
        expected_json = expected_json.replace(pf_id, qid)
    r = bench.postqueue("-j")
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected_json


def test_json_lines(bench):
    ids = fill_golden_queue(bench)
    r = bench.postqueue("-j")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 5
    objs = [json.loads(l) for l in lines]
    for o in objs:
        assert list(o.keys()) == ["queue_name", "queue_id", "arrival_time", "message_size",
                                  "forced_expire", "sender", "recipients"]
        assert o["forced_expire"] is False
    by_id = {o["queue_id"]: o for o in objs}
    d = by_id[ids["def"]]
    assert d["queue_name"] == "deferred"
    assert d["arrival_time"] == T0 + 60 and d["message_size"] == 100000
    assert d["sender"] == "carol@example.org"
    assert d["recipients"] == [
        {"address": "bob@example.com", "delay_reason": LONG_REASON},
        {"address": "bob2@example.com", "delay_reason": LONG_REASON},
        {"address": "dave@example.net", "delay_reason": SHORT_REASON},
        {"address": "erin@example.net", "delay_reason": OTHER_REASON},
        {"address": "pending@example.org"},
    ]
    assert by_id[ids["imm"]]["queue_name"] == "immediate"
    assert by_id[ids["imm"]]["sender"] == '"john doe"@example.org'
    assert by_id[ids["bulk"]]["queue_name"] == "bulk"
    assert by_id[ids["hold"]]["queue_name"] == "hold"
    assert by_id[ids["null"]]["sender"] == "MAILER-DAEMON"
    # Postfix's separators exactly: ", " between members, ": " after names.
    assert lines[0].startswith('{"queue_name": "immediate", "queue_id": "')
    assert lines[2].endswith('{"address": "pending@example.org"}]}')


def test_empty_queue(bench):
    r = bench.postqueue("-p")
    assert (r.returncode, r.stdout, r.stderr) == (0, "Mail queue is empty\n", "")
    r = bench.postqueue("-j")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_many_recipients_and_hostile_text(bench):
    """More recipients than fit one protocol message; a reason with terminal
    escapes and bytes that are not UTF-8."""
    rcpts = [f"user{i:03d}@example.com" for i in range(150)]
    # ESC sequences, BEL, the C1 control CSI (U+009B), and bytes that are not
    # UTF-8 (surrogate escapes become the raw bytes 0xE9 in argv)
    nasty = "bad \x1b[31mred\x1b[0m \x07 text \x9b2J and \udce9t\udce9"
    shown = "bad ?[31mred?[0m ? text ?2J and ?t?"
    qid = bench.mkqfile(queue="deferred", rcpts=rcpts, d=[(7, T0, T0 + 60, "4.0.0", nasty)])
    r = bench.postqueue("-p")
    assert r.returncode == 0, r.stderr
    for a in rcpts:
        assert ("\n" + " " * 47 + a + "\n") in r.stdout
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "(" + shown + ")" in r.stdout
    j = bench.postqueue("-j")
    obj = json.loads(j.stdout)
    assert obj["queue_id"] == qid
    assert len(obj["recipients"]) == 150
    assert obj["recipients"][0] == {"address": "user007@example.com",
                                    "delay_reason": shown}
    assert sorted(x["address"] for x in obj["recipients"]) == rcpts


def test_listing_is_not_broken_by_a_damaged_file(bench):
    good = bench.mkqfile(queue="deferred")
    bad = make_id((T0 + 5) * 10**6, 9)
    p = bench.path("deferred", bad)
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(b"\x89PQF\r\n\x1a\n\x00\x01\x00\x00I\x00\x00\x00\x11" + bad.encode() + b"Q")
    if bench.owner:
        shutil.chown(p, bench.owner)
    r = bench.postqueue("-p")
    assert r.returncode == 0, r.stderr
    assert good in r.stdout and bad not in r.stdout
    bench.inst.wait_for_log(rf"showq\[\d+\]: warning: {bad}: skipping queue file in deferred/")


def test_maildrop_entries(bench):
    """maildrop/ comes first; a file there that is not a queue file (pickup
    judges those) is shown by its owner, as Postfix shows such files."""
    later = bench.mkqfile(queue="deferred")
    dropped = bench.mkqfile(queue="maildrop", s="local@example.org", z=300)
    junk_id = make_id((T0 + 9) * 10**6, 42)
    junk = bench.inst.queue_dir / "maildrop" / junk_id
    junk.write_bytes(b"x" * 2500)
    os.utime(junk, (T0, T0))
    uid = 65534 if IS_ROOT else os.geteuid()
    if IS_ROOT:
        os.chown(junk, uid, -1)
    r = bench.postqueue("-p")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[1] == "%-17s %8d Tue Jan  2 03:04:05 (maildrop queue, sender UID %d)" % (
        junk_id, 2500, uid)
    assert lines[3].startswith("%-17s %8d " % (dropped, 300))
    assert lines[3].endswith(" local@example.org")
    assert later in r.stdout and r.stdout.index(later) > r.stdout.index(dropped)
    objs = [json.loads(x) for x in bench.postqueue("-j").stdout.splitlines()]
    assert [o["queue_name"] for o in objs] == ["maildrop", "maildrop", "deferred"]
    assert objs[0]["recipients"] == []
    assert objs[1]["sender"] == "local@example.org"
    assert objs[1]["recipients"] == [{"address": "rcpt@example.com"}]
    # Without a sender, pickup will use the owner's login: so does the listing.
    anon = bench.mkqfile(queue="maildrop", id=make_id((T0 + 99) * 10**6, 7))
    owner = bench.owner or pwd.getpwuid(os.geteuid()).pw_name
    objs = {o["queue_id"]: o for o in map(json.loads, bench.postqueue("-j").stdout.splitlines())}
    assert objs[anon]["sender"] == owner


def test_reader_gone_early(bench):
    for i in range(30):
        bench.mkqfile(queue="deferred", rcpts=[f"r{i}@example.com"] * 20)
    p = subprocess.Popen(f"{BUILD}/bin/postqueue -c {bench.inst.conf_dir} -p | head -1",
                         shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=bench.env)
    out, err = p.communicate(timeout=30)
    assert out.startswith("----Queue ID-----")
    assert "fatal" not in err


@pytest.mark.skipif(not IS_ROOT, reason="needs root to run as another user")
def test_unprivileged_user_allowed_and_denied(postern_instance):
    inst = postern_instance(SHOWQ_CF)
    b = QueueBench(inst)
    qid = b.mkqfile(queue="deferred")
    # nobody in the postdrop group reaches public/ (what set-group-id gives).
    r = b.postqueue("-p", user="nobody", groups=[SETGID_GROUP])
    assert r.returncode == 0, r.stderr
    assert qid in r.stdout
    # Not in the group: public/ is closed, and postqueue says so.
    r = b.postqueue("-p", user="nobody", groups=[])
    assert r.returncode == 70
    assert "postqueue: fatal: Connect to the Postern showq service: Permission denied" \
        in r.stderr
    # authorized_mailq_users decides; root and mail_owner always may.
    inst.write_main_cf({"authorized_mailq_users": "root, !nobody, static:anyone"})
    r = b.postqueue("-p", user="nobody", groups=[SETGID_GROUP])
    assert r.returncode == 77
    assert "postqueue: fatal: User nobody(65534) is not allowed to view the mail queue" \
        in r.stderr
    assert r.stdout == ""
    r = b.postqueue("-j", user=MAIL_OWNER, groups=[])
    assert r.returncode == 0 and qid in r.stdout
    r = b.postqueue("-p")
    assert r.returncode == 0 and qid in r.stdout


@pytest.mark.skipif(not IS_ROOT, reason="needs root to run as another user")
def test_showq_checks_the_peer_itself(postern_instance):
    """A client that skips postqueue's own check still meets showq's, which
    uses the kernel's credentials of the connection."""
    inst = postern_instance(SHOWQ_CF, main_cf={"authorized_mailq_users": "root"})
    b = QueueBench(inst)
    b.mkqfile(queue="deferred")
    script = (
        "import sys; sys.path.insert(0, %r)\n"
        "import queuetools\n"
        "msgs = queuetools.read_showq(%r)\n"
        "print(len(msgs), msgs[0]['kind'], msgs[0]['status'], msgs[0]['reason'])\n"
    ) % (str(Path(__file__).parent), str(inst.queue_dir / "public" / "showq"))
    r = b.run([sys.executable, "-c", script], user="nobody", groups=[SETGID_GROUP])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "1 end 1 User nobody(65534) is not allowed to view the mail queue"]
    inst.wait_for_log(r"showq\[\d+\]: warning: refusing the queue listing to nobody\(65534\): "
                      r"not in authorized_mailq_users")


def test_mail_system_down(postern_instance):
    """An unprivileged user's only way to the queue is the showq service."""
    inst = postern_instance(SHOWQ_CF, start=False)
    b = QueueBench(inst)
    who = {"user": "nobody", "groups": [SETGID_GROUP]} if IS_ROOT else {}
    r = b.postqueue("-p", **who)
    assert r.returncode == 69, r.stderr
    assert r.stderr.endswith("postqueue: fatal: Queue report unavailable - mail system is down\n")
    assert r.stdout == ""
    r = b.postqueue("-j", **who)
    assert r.returncode == 69
    r = b.postqueue("-f", **who)
    assert r.returncode == 69
    assert r.stderr.endswith("postqueue: fatal: Cannot flush mail queue - mail system is down\n")


@pytest.mark.skipif(not IS_ROOT, reason="root lists the queue directly only as root")
def test_root_lists_the_queue_while_down(postern_instance):
    inst = postern_instance(SHOWQ_CF)
    b = QueueBench(inst)
    ids = fill_golden_queue(b)
    inst.stop()
    r = b.postqueue("-p")
    assert r.returncode == 0, r.stderr
    assert "postqueue: warning: Mail system is down -- accessing queue directly" in r.stderr
    assert r.stdout == postfix_mailq(golden_entries(ids))


def test_flush_requests(postern_instance):
    inst = postern_instance(SHOWQ_CF)
    b = QueueBench(inst)
    qmgr = TriggerSink(inst.queue_dir / "public" / "qmgr")
    pickup = TriggerSink(inst.queue_dir / "public" / "pickup")
    try:
        r = b.postqueue("-f")
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
        assert qmgr.wait(1) == [b"F\0"]
        assert pickup.wait(1) == [b"W\0"]
        qid = make_id(T0 * 10**6, 77)
        assert b.postqueue("-i", qid).returncode == 0
        assert b.postqueue("-s", "example.com").returncode == 0
        assert b.postqueue("-s", "[192.0.2.1]").returncode == 0
        assert b.postqueue("-s", "[IPv6:2001:db8::1]").returncode == 0
        assert qmgr.wait(5)[1:] == [b"I" + qid.encode() + b"\0", b"Sexample.com\0",
                                    b"S[192.0.2.1]\0", b"S[IPv6:2001:db8::1]\0"]
    finally:
        qmgr.close()
        pickup.close()
    # Nothing listens: the mail system is down.
    r = b.postqueue("-f")
    assert r.returncode == 69
    assert r.stderr.endswith("postqueue: fatal: Cannot flush mail queue - mail system is down\n")


@pytest.mark.skipif(not IS_ROOT, reason="needs root to run as another user")
def test_flush_permission(postern_instance):
    inst = postern_instance(SHOWQ_CF, main_cf={"authorized_flush_users": "root"})
    b = QueueBench(inst)
    qmgr = TriggerSink(inst.queue_dir / "public" / "qmgr")
    try:
        r = b.postqueue("-f", user="nobody", groups=[SETGID_GROUP])
        assert r.returncode == 77
        assert "postqueue: fatal: User nobody(65534) is not allowed to flush the mail queue" \
            in r.stderr
        assert b.postqueue("-f").returncode == 0
        assert qmgr.wait(1) == [b"F\0"]
    finally:
        qmgr.close()


def test_bad_usage(bench):
    usage = ("postqueue: fatal: usage: postqueue -f | postqueue -i queueid | postqueue -j | "
             "postqueue -p | postqueue -s site")
    for args in ([], ["-p", "-j"], ["-f", "-p"], ["-x"], ["-p", "extra"], ["-i"]):
        r = bench.postqueue(*args)
        assert r.returncode == 64, args
        assert usage in r.stderr, (args, r.stderr)
        assert r.stdout == ""
    r = bench.postqueue("-x")
    assert "postqueue: invalid option -- 'x'" in r.stderr
    for site in ("bad site", "-example.com", "example..com", "192.0.2.1", "[300.1.1.1]",
                 "[IPv6:zz::1]", "a" * 300, "x\x1by.com", ""):
        r = bench.postqueue("-s", site)
        assert r.returncode == 64, site
        assert "postqueue: fatal: Cannot flush mail queue - invalid destination: \"" \
            in r.stderr
        assert "\x1b" not in r.stderr
    for qid in ("bogus", "../../etc/passwd", make_id(T0 * 10**6, 1).lower(), ""):
        r = bench.postqueue("-i", qid)
        assert r.returncode == 64, qid
        assert "postqueue: fatal: Cannot flush mail queue - invalid queue id: \"" in r.stderr
    r = bench.postqueue("--help")
    assert r.returncode == 0 and "usage: postqueue" in r.stdout


def test_missing_configuration(bench, tmp_path):
    r = bench.postqueue("-c", tmp_path / "nowhere", "-p", config=False)
    assert r.returncode == 78
    assert f"postqueue: fatal: open {tmp_path}/nowhere/main.cf: No such file or directory" \
        in r.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "main.cf").write_text("queue_directory = /nonexistent/queue\n")
    r = bench.postqueue("-c", bad, "-p", config=False)
    assert r.returncode == 69
    assert "postqueue: fatal: chdir /nonexistent/queue: No such file or directory" in r.stderr


@pytest.fixture(scope="module")
def sgid_build():
    """postqueue built without sanitizers (their leak check cannot run in a
    set-group-id process, which is not dumpable, and ignores ASAN_OPTIONS
    there) and with its default configuration directory in a temporary
    place that the test controls."""
    if not IS_ROOT:
        pytest.skip("needs root to install a set-group-id copy")
    etc = Path(tempfile.mkdtemp(prefix="postern-sgid-etc-", dir="/tmp"))
    os.chmod(etc, 0o755)
    out = Path(tempfile.mkdtemp(prefix="postern-sgid-build-", dir="/tmp"))
    r = subprocess.run(["make", "-C", str(SRC), "--no-print-directory", f"BUILD={out}",
                        f"SYSCONFDIR={etc}", "CFLAGS=-O0", f"{out}/bin/postqueue"],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    yield etc, out / "bin" / "postqueue"
    shutil.rmtree(etc, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)


def proc_gids(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Gid:"):
            return [int(x) for x in line.split()[1:]]
    return None


@pytest.mark.skipif(not IS_ROOT, reason="needs root to install a set-group-id copy")
def test_setgid_install(postern_instance, sgid_build):
    """Installed set-group-id, postqueue reaches public/ for a user outside
    the group, has dropped the group for good while it prints, and refuses
    to follow a user's -c or MAIL_CONFIG to a configuration of their own."""
    etc, binary = sgid_build
    inst = postern_instance(SHOWQ_CF)
    b = QueueBench(inst)
    copy = inst.root / "postqueue-sgid"
    shutil.copy(binary, copy)
    shutil.chown(copy, "root", SETGID_GROUP)
    os.chmod(copy, 0o2755)
    mode = os.stat(copy).st_mode
    assert mode & stat.S_ISGID and not mode & stat.S_ISUID
    main_cf = (inst.conf_dir / "main.cf").read_text()
    (etc / "main.cf").write_text(main_cf)
    nobody = {"user": "nobody", "groups": []}

    # The default configuration: any user gets the listing through showq.
    qid = b.mkqfile(queue="deferred", rcpts=[f"user{i:04d}@example.com" for i in range(2500)])
    r = b.run([copy, "-p"], **nobody)
    assert r.returncode == 0, r.stderr
    assert qid in r.stdout and "user2499@example.com" in r.stdout

    # While it writes the listing (blocked on a full pipe) the privilege is gone.
    p = subprocess.Popen(run_as("nobody", []) + [str(copy), "-p"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=b.env, cwd=inst.root)
    try:
        # setpriv execs postqueue in place; wait until it sleeps on the pipe.
        deadline = time.monotonic() + 20
        gids = None
        while time.monotonic() < deadline:
            try:
                running = Path(f"/proc/{p.pid}/exe").resolve() == copy.resolve()
                state = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                gids = proc_gids(p.pid)
            except OSError:
                running = False
            if running and state == "S" and gids and gids[1] != 0:
                break
            time.sleep(0.05)
        assert gids == [65534, 65534, 65534, 65534], gids
    finally:
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert qid.encode() in out

    # Another configuration only when the default one lists it, or for root.
    r = b.run([copy, "-c", inst.conf_dir, "-p"], **nobody)
    assert r.returncode == 77, r.stderr
    assert (f"postqueue: fatal: unauthorized configuration directory name: {inst.conf_dir}. "
            'Specify the name as a value of the "alternate_config_directories" parameter in '
            f"{etc}/main.cf") in r.stderr
    r = b.run([copy, "-p"], env={"MAIL_CONFIG": str(inst.conf_dir)}, **nobody)
    assert r.returncode == 77
    assert "unauthorized configuration directory name" in r.stderr
    r = b.run([copy, "-c", inst.conf_dir, "-p"])
    assert r.returncode == 0 and qid in r.stdout
    (etc / "main.cf").write_text(main_cf + f"alternate_config_directories = {inst.conf_dir}\n")
    r = b.run([copy, "-c", inst.conf_dir, "-p"], **nobody)
    assert r.returncode == 0, r.stderr
    assert qid in r.stdout


def test_postqueue_files_and_docs_present():
    assert (SRC / "man" / "postqueue.1").is_file()
    assert (SRC / "man" / "showq.8").is_file()
    assert "showq" in (SRC / "conf" / "master.cf").read_text()
