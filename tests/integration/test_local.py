"""local(8): Maildir and mbox delivery, aliases, .forward, commands, files,
loops, privileges and symlink attacks.

Each test starts a private instance whose master runs the real local
service (and cleanup where forwarding is tested), writes queue files with the
qinject helper, and plays qmgr: it connects to private/local and sends the
delivery request of docs/protocols.md section 3, then checks the answers,
the log lines and what landed on disk, octet for octet.

Run as root, the test users are real system users (created when missing)
and the tests also check that every delivery ran with the right uid, that
commands from a root-owned alias table run as default_privs, and that a
private instance started by another user delivers as that user.
"""

import fcntl
import os
import pwd
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

from attrproto import AttrClient, UInt
from conftest import BUILD, IS_ROOT
from qfilefmt import read_qfile

DOM = "local.test"
USERS = ("plocal-ann", "plocal-bob", "plocal-cat")
ANN, BOB, CAT = USERS
SENDER = "sender@example.org"
MASTER_CF = "local unix - n n - - local\n"
MASTER_CF_CLEANUP = MASTER_CF + "cleanup unix n - n - 0 cleanup\n"
MAILDIR_NAME_RE = re.compile(r"^\d+\.M\d+P\d+Q\d+\.[^/]+$")
LOG_SENT_RE = (r"(?P<id>[0-9A-Z]+): to=<{to}>,{orig} relay=local, delay=[0-9.]+, "
               r"delays=[0-9.]+/[0-9.]+/[0-9.]+/[0-9.]+, dsn={dsn}, status={status} \({reason}\)")

BODY = (b"From: Sender <sender@example.org>\n"
        b"To: ann@local.test\n"
        b"Subject: local test\n"
        b"\n"
        b"first line\n"
        b".leading dot\n"
        b"..two dots\n"
        b"From the start: mbox quotes this line\n"
        b">From already quoted\n"
        b"Fromage is not From_\n"
        b"8-bit: \xc3\xa9\xe2\x82\xac \xff\xfe\n"
        b"\n"
        b"trailing blanks   \n"
        b"last line\n")


def ensure_users():
    """As root, create the test users (system users without a home) when missing."""
    if not IS_ROOT:
        return
    for name in USERS:
        try:
            pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                            "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                            name], check=True)


def uid_of(user):
    """The uid a delivery for user runs as: the user's own, or ours in a private instance."""
    return pwd.getpwnam(user).pw_uid if IS_ROOT else os.geteuid()


def addr(user, ext=None):
    return f"{user}+{ext}@{DOM}" if ext else f"{user}@{DOM}"


class LocalInstance:
    """A private instance running local, with helpers to queue and deliver."""

    def __init__(self, inst):
        self.inst = inst
        self.root = inst.root
        self.mail = inst.root / "mail"

    # -- queue files and requests -------------------------------------------------

    def inject(self, rcpts, body=BODY, sender=SENDER):
        """A committed queue file for rcpts; its queue id."""
        argv = [self.inst.helper("qinject"), "-c", str(self.inst.conf_dir), "-f", sender,
                "-b", body]
        for r in rcpts:
            argv += ["-r", r]
        r = self.inst.command(argv)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def request(self, qid, rcpts, sender=SENDER, queue="immediate", orcpts=None, raw=None):
        """Send one delivery request; the list of answers, then the summary."""
        now = int(time.time() * 1e6)
        attrs = [("queue_name", queue), ("queue_id", qid), ("nexthop", DOM),
                 ("sender", sender), ("envid", ""), ("ret", ""),
                 ("arrival_usec", UInt(now - 20000)), ("active_usec", UInt(now - 10000)),
                 ("request_usec", UInt(now)), ("flags", UInt(0))]
        for i, r in enumerate(rcpts):
            attrs += [("rcpt_index", UInt(i)), ("rcpt", r),
                      ("orcpt", orcpts[i] if orcpts else ""), ("dsn_orcpt", ""),
                      ("notify", UInt(0))]
        attrs.append(("end", UInt(1)))
        if raw is not None:
            attrs = raw
        with AttrClient(self.inst.queue_dir / "private" / "local", timeout=60) as c:
            c.send(attrs)
            answers = []
            while True:
                m = c.recv()
                if m.get("done") is not None:
                    assert m.get("count") == len(answers)
                    return answers, m
                answers.append(m.as_dict())

    def deliver(self, rcpts, body=BODY, sender=SENDER, orcpts=None):
        """Queue and deliver; (queue id, answers)."""
        qid = self.inject(rcpts, body, sender)
        answers, _ = self.request(qid, rcpts, sender, orcpts=orcpts)
        assert [a["rcpt_index"] for a in answers] == list(range(len(rcpts)))
        return qid, answers

    # -- what landed ------------------------------------------------------------

    def maildir(self, user):
        return self.mail / user / "Maildir"

    def new_files(self, user):
        d = self.maildir(user) / "new"
        return sorted(d.iterdir()) if d.is_dir() else []

    def one_message(self, user):
        files = self.new_files(user)
        assert len(files) == 1, f"{user}: {files}"
        return files[0].read_bytes()

    def wait_log(self, regex, since=0):
        return self.inst.wait_for_log(regex, since=since)


def expect_sent(answer, reason="delivered to maildir"):
    """A success; reason None: any text (a recipient with several destinations
    is answered with the last one's)."""
    assert answer["status"] == 0, answer
    assert answer["dsn"] == "2.0.0", answer
    assert answer["relay"] == "local"
    assert reason is None or answer["reason"] == reason, answer


def expect_failed(answer, status, dsn, reason_part):
    assert answer["status"] == status, answer
    assert answer["dsn"] == dsn, answer
    assert reason_part in answer["reason"], answer


def log_re(to, dsn="2.0.0", status="sent", reason="delivered to maildir", orig=None):
    return LOG_SENT_RE.format(to=re.escape(to), dsn=re.escape(dsn), status=status,
                              reason=reason,
                              orig=f" orig_to=<{re.escape(orig)}>," if orig else "")


def write_aliases(inst, text, name="aliases"):
    """An aliases(5) file built with postalias; the hash: table name."""
    path = inst.root / name
    path.write_text(text)
    r = inst.command([str(BUILD / "bin" / "postalias"), "-c", str(inst.conf_dir),
                      f"hash:{path}"])
    assert r.returncode == 0, r.stderr
    return f"hash:{path}"


@pytest.fixture
def local(postern_instance):
    """Factory: LocalInstance(main_cf extras, master_cf, user)."""
    if not (BUILD / "bin" / "local").exists():
        pytest.fail(f"{BUILD}/bin/local is missing: build first")
    ensure_users()

    def make(main=None, master_cf=MASTER_CF, user=None, aliases=None, prepare=None):
        params = {
            "myhostname": DOM,
            "mydomain": "test",
            "mydestination": "$myhostname, localhost",
            "recipient_delimiter": "+",
            "home_mailbox": "Maildir/",
            "alias_maps": "",
            "alias_database": "",
            "deliver_lock_attempts": "2",
            "deliver_lock_delay": "1s",
        }
        inst = postern_instance(master_cf, start=False, user=user)
        params["local_home_directory"] = str(inst.root / "mail")
        if aliases is not None:
            params["alias_maps"] = write_aliases(inst, aliases)
        if prepare is not None:
            params.update(prepare(inst))
        params.update(main or {})
        inst.write_main_cf(params)
        inst.start()
        return LocalInstance(inst)

    return make


# -- Maildir ---------------------------------------------------------------------

def test_maildir_byte_exact(local):
    li = local()
    mark = li.inst.log_mark()
    qid, answers = li.deliver([addr(ANN)])
    expect_sent(answers[0])
    got = li.one_message(ANN)
    assert got == (b"Return-Path: <sender@example.org>\n"
                   b"Delivered-To: plocal-ann@local.test\n" + BODY)
    f = li.new_files(ANN)[0]
    assert MAILDIR_NAME_RE.match(f.name), f.name
    st = f.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == uid_of(ANN)
    # tmp/ is empty again, cur/ exists, the directories are private.
    md = li.maildir(ANN)
    assert list((md / "tmp").iterdir()) == []
    assert (md / "cur").is_dir()
    assert stat.S_IMODE(md.stat().st_mode) == 0o700
    m = li.wait_log(log_re(addr(ANN)), since=mark)
    assert m["id"] == qid


def test_maildir_last_line_without_newline_and_null_sender(local):
    li = local()
    qid, answers = li.deliver([addr(ANN)], body=b"Subject: x\n\nno newline at the end",
                              sender="")
    expect_sent(answers[0])
    assert li.one_message(ANN) == (b"Return-Path: <>\nDelivered-To: plocal-ann@local.test\n"
                                   b"Subject: x\n\nno newline at the end\n")


def test_extension_and_case_folding(local):
    li = local()
    mark = li.inst.log_mark()
    _, answers = li.deliver([f"{ANN.upper()}+Folder@{DOM}", addr(BOB, "x+y")])
    expect_sent(answers[0])
    expect_sent(answers[1])
    # The mailbox is the user's; Delivered-To keeps the extension, lower case.
    assert b"Delivered-To: plocal-ann+folder@local.test\n" in li.one_message(ANN)
    assert b"Delivered-To: plocal-bob+x+y@local.test\n" in li.one_message(BOB)
    li.wait_log(log_re(f"{ANN.upper()}+Folder@{DOM}"), since=mark)


def test_many_recipients_one_request(local):
    li = local()
    rcpts = [addr(ANN), addr(BOB), addr(CAT), addr(ANN, "again")]
    qid, answers = li.deliver(rcpts)
    for a in answers:
        expect_sent(a)
    assert len(li.new_files(ANN)) == 2
    assert len(li.new_files(BOB)) == 1 and len(li.new_files(CAT)) == 1


def test_unknown_user_bounced(local):
    li = local()
    mark = li.inst.log_mark()
    # A private instance delivers to any safe name; these are never safe.
    bad = "nosuch-plocal-user" if IS_ROOT else "-dash"
    _, answers = li.deliver([f"{bad}@{DOM}"])
    expect_failed(answers[0], 550, "5.1.1", f'unknown user: "{bad}"')
    li.wait_log(log_re(f"{bad}@{DOM}", dsn="5.1.1", status="bounced",
                       reason=f'unknown user: "{re.escape(bad)}"'), since=mark)


def test_private_instance_user_not_in_passwd(local):
    if IS_ROOT:
        li = local()
        _, answers = li.deliver([f"zz-not-in-passwd@{DOM}"])
        expect_failed(answers[0], 550, "5.1.1", "unknown user")
        return
    li = local()
    _, answers = li.deliver([f"zz-not-in-passwd@{DOM}"])
    expect_sent(answers[0])
    assert len(li.new_files("zz-not-in-passwd")) == 1


def test_delivered_to_loop_bounced(local):
    li = local()
    mark = li.inst.log_mark()
    body = b"Delivered-To: someone@else.test\nDelivered-To: PLOCAL-ANN@local.test\n\nbody\n"
    _, answers = li.deliver([addr(ANN), addr(BOB)], body=body)
    expect_failed(answers[0], 550, "5.4.6", "mail forwarding loop for plocal-ann@local.test")
    expect_sent(answers[1])
    assert li.new_files(ANN) == []
    li.wait_log(log_re(addr(ANN), dsn="5.4.6", status="bounced",
                       reason="mail forwarding loop for plocal-ann@local.test"), since=mark)
    # A Delivered-To in the body is not a header: no loop.
    li2 = local()
    _, answers = li2.deliver([addr(ANN)], body=b"Subject: x\n\nDelivered-To: plocal-ann@local.test\n")
    expect_sent(answers[0])


# -- mbox ------------------------------------------------------------------------

# Postfix's From_ line: sender, two spaces, the asctime() date.
MBOX_FROM_RE = re.compile(rb"^From (\S+)  (Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
                          rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [ \d]\d "
                          rb"\d\d:\d\d:\d\d \d{4}\n")


def mbox_expect(sender, rcpt, body):
    quoted = re.sub(rb"(?m)^From ", b">From ", body)
    return (f"Return-Path: <{sender}>\nDelivered-To: {rcpt}\n".encode() + quoted + b"\n")


def test_mbox_in_home(local):
    li = local({"home_mailbox": "Mailbox"})
    mark = li.inst.log_mark()
    _, answers = li.deliver([addr(ANN)])
    expect_sent(answers[0], "delivered to mailbox")
    _, answers = li.deliver([addr(ANN)], sender="")
    expect_sent(answers[0], "delivered to mailbox")
    data = (li.mail / ANN / "Mailbox").read_bytes()
    first, second = re.split(rb"(?m)^(?=From \S+  \w\w\w \w\w\w )", data)[1:]
    m = MBOX_FROM_RE.match(first)
    assert m and m.group(1) == b"sender@example.org", first[:80]
    assert first[m.end():] == mbox_expect(SENDER, addr(ANN), BODY)
    m = MBOX_FROM_RE.match(second)
    assert m and m.group(1) == b"MAILER-DAEMON", second[:80]
    assert second[m.end():] == mbox_expect("", addr(ANN), BODY)
    st = (li.mail / ANN / "Mailbox").stat()
    assert st.st_uid == uid_of(ANN) and stat.S_IMODE(st.st_mode) == 0o600
    assert not (li.mail / ANN / "Mailbox.lock").exists()
    li.wait_log(log_re(addr(ANN), reason="delivered to mailbox"), since=mark)


@pytest.fixture
def spool(local):
    """An instance delivering to mail_spool_directory/USER; run as root, the
    spool is made like Debian's /var/mail: root's, not writable by users."""

    def make(**extra):
        def prepare(inst):
            d = inst.root / "spool"
            d.mkdir()
            os.chmod(d, 0o755 if IS_ROOT else 0o1777)
            return {"home_mailbox": "", "mail_spool_directory": str(d)}

        li = local(extra, prepare=prepare)
        li.spool = li.root / "spool"
        return li

    return make


def test_mbox_in_spool_locking_and_stale_lock(spool):
    li = spool()
    box = li.spool / ANN
    _, answers = li.deliver([addr(ANN)])
    expect_sent(answers[0], "delivered to mailbox")
    st = box.stat()
    # Created by root in a root-only spool, it belongs to the user all the same.
    assert st.st_uid == uid_of(ANN) and stat.S_IMODE(st.st_mode) == 0o600
    size = st.st_size

    # Someone holds a kernel lock: the delivery waits, then defers.
    with open(box, "rb+") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        _, answers = li.deliver([addr(ANN)])
        expect_failed(answers[0], 450, "4.2.0", "unable to lock for exclusive access")
    assert box.stat().st_size == size

    # A fresh dot-lock: the same.
    lock = li.spool / f"{ANN}.lock"
    lock.write_text("")
    _, answers = li.deliver([addr(ANN)])
    expect_failed(answers[0], 450, "4.2.0", "unable to lock for exclusive access")
    assert lock.exists()

    # A stale one (older than stale_lock_time) is removed and delivery goes on.
    old = time.time() - 3600
    os.utime(lock, (old, old))
    mark = li.inst.log_mark()
    _, answers = li.deliver([addr(ANN)])
    expect_sent(answers[0], "delivered to mailbox")
    assert not lock.exists()
    li.wait_log(r"warning: removing stale lock file plocal-ann\.lock", since=mark)
    assert len(re.findall(rb"(?m)^From sender@example\.org  ", box.read_bytes())) == 2


def test_mbox_size_limit_truncates_back(spool):
    li = spool(mailbox_size_limit="3000", message_size_limit="1000")
    box = li.spool / ANN
    _, answers = li.deliver([addr(ANN)])
    expect_sent(answers[0], "delivered to mailbox")
    big = b"Subject: big\n\n" + b"x" * 70 + b"\n"
    for _ in range(40):
        _, answers = li.deliver([addr(ANN)], body=big)
        if answers[0]["status"] != 0:
            break
        size = box.stat().st_size
    expect_failed(answers[0], 550, "5.2.2", "cannot update mailbox")
    assert "File too large" in answers[0]["reason"]
    # The failed append left nothing behind.
    assert box.stat().st_size == size
    assert box.read_bytes().endswith(b"\n\n")


def test_mbox_symlink_and_hardlink_refused(spool):
    li = spool()
    victim = li.root / "victim"
    victim.write_bytes(b"precious\n")
    os.chmod(victim, 0o666)
    (li.spool / ANN).symlink_to(victim)
    _, answers = li.deliver([addr(ANN)])
    expect_failed(answers[0], 550, "5.2.0", "symbolic link")
    assert victim.read_bytes() == b"precious\n"

    os.link(victim, li.spool / BOB)
    if IS_ROOT:
        os.chown(li.spool / BOB, uid_of(BOB), -1)
    _, answers = li.deliver([addr(BOB)])
    expect_failed(answers[0], 550, "5.2.0", "hard links")
    assert victim.read_bytes() == b"precious\n"

    if IS_ROOT:
        # A mailbox that belongs to someone else is not written either.
        other = li.spool / CAT
        other.write_bytes(b"")
        os.chown(other, uid_of(ANN), -1)
        _, answers = li.deliver([addr(CAT)])
        expect_failed(answers[0], 550, "5.2.0", "not by the recipient")
        assert other.read_bytes() == b""


# -- Maildir attacks ---------------------------------------------------------------

def test_maildir_symlinks_refused(local):
    li = local()
    target = li.root / "target"
    target.mkdir()
    os.chmod(target, 0o777)
    home = li.mail / CAT
    home.mkdir(parents=True)
    if IS_ROOT:
        os.chown(home, uid_of(CAT), -1)
    (home / "Maildir").symlink_to(target)
    _, answers = li.deliver([addr(CAT)])
    assert answers[0]["status"] in (450, 550), answers
    assert "symbolic link" in answers[0]["reason"], answers
    assert list(target.iterdir()) == []

    # tmp/ or new/ as a link inside a real Maildir: refused too.
    home = li.mail / BOB
    (home / "Maildir").mkdir(parents=True)
    (home / "Maildir" / "new").symlink_to(target)
    if IS_ROOT:
        for p in (home, home / "Maildir"):
            os.chown(p, uid_of(BOB), -1)
    _, answers = li.deliver([addr(BOB)])
    assert answers[0]["status"] in (450, 550), answers
    assert "symbolic link" in answers[0]["reason"], answers
    assert list(target.iterdir()) == []
    assert list((home / "Maildir" / "tmp").iterdir()) == []

    # The home itself as a link under local_home_directory.
    (li.mail / ANN).symlink_to(target)
    _, answers = li.deliver([addr(ANN)])
    assert answers[0]["status"] in (450, 550), answers
    assert list(target.iterdir()) == []


# -- aliases -----------------------------------------------------------------------

ALIASES = f"""# test aliases
chain1: chain2
chain2: {ANN}
list: {ANN}, {BOB},
   {CAT}
dups: {ANN}, {ANN}, chain1, \\{ANN}
{CAT}: {CAT}, {BOB}
Upper: {ANN}
ext: {ANN}
inc: :include:INCLUDE
"""


def alias_instance(local, extra_aliases="", main=None, master_cf=MASTER_CF):
    def prepare(inst):
        inc = inst.root / "list.inc"
        inc.write_text(f"# included\n{BOB}\n\n{ANN}+inc\n")
        text = ALIASES.replace("INCLUDE", str(inc)) + extra_aliases
        return {"alias_maps": write_aliases(inst, text)}

    return local(main, master_cf=master_cf, prepare=prepare)


def aliases_prepare(text_fn):
    """prepare hook: an alias table from text_fn(inst)"""
    return lambda inst: {"alias_maps": write_aliases(inst, text_fn(inst))}


def out_path(inst):
    d = inst.root / "out"
    d.mkdir(exist_ok=True)
    os.chmod(d, 0o777)  # commands from a root-owned table run as nobody
    return d


def test_alias_chain_list_and_include(local):
    li = alias_instance(local)
    mark = li.inst.log_mark()
    _, answers = li.deliver([addr("chain1")])
    expect_sent(answers[0])
    # A chain ends at the user's mailbox; the log names where it came from.
    assert b"Delivered-To: plocal-ann@local.test\n" in li.one_message(ANN)
    li.wait_log(log_re(addr(ANN), orig=addr("chain1")), since=mark)

    _, answers = li.deliver([addr("list")])
    expect_sent(answers[0])
    assert len(li.new_files(ANN)) == 2
    assert len(li.new_files(BOB)) == 1
    # cat's alias lists cat itself: cat's mailbox, and bob.
    assert len(li.new_files(CAT)) == 1
    assert len(li.new_files(BOB)) == 1  # bob once: duplicates are delivered once

    _, answers = li.deliver([addr("inc")])
    expect_sent(answers[0])
    assert len(li.new_files(BOB)) == 2
    assert len(li.new_files(ANN)) == 3
    ann_all = b"".join(f.read_bytes() for f in li.new_files(ANN))
    # The included address keeps its extension in Delivered-To.
    assert b"Delivered-To: plocal-ann+inc@local.test\n" in ann_all


def test_alias_duplicates_and_self_reference(local):
    li = alias_instance(local)
    _, answers = li.deliver([addr("dups")])
    expect_sent(answers[0])
    assert len(li.new_files(ANN)) == 1
    _, answers = li.deliver([addr(CAT)])
    expect_sent(answers[0])
    assert len(li.new_files(CAT)) == 1 and len(li.new_files(BOB)) == 1
    # Alias names fold case like local parts; "ext+x" finds "ext".
    _, answers = li.deliver([addr("UPPER"), addr("ext", "x")])
    expect_sent(answers[0])
    expect_sent(answers[1])
    assert len(li.new_files(ANN)) == 3


def test_alias_loop_depth_limit(local):
    chain = "".join(f"deep{i}: deep{i + 1}\n" for i in range(150)) + f"deep150: {ANN}\n"
    chain += "loopa: loopb\nloopb: loopa\n"
    li = alias_instance(local, chain)
    mark = li.inst.log_mark()
    _, answers = li.deliver([addr("deep0")])
    expect_failed(answers[0], 550, "5.4.6", "mail forwarding loop")
    assert li.new_files(ANN) == []
    li.wait_log(r"status=bounced \(mail forwarding loop for deep\d+@local\.test\)", since=mark)
    # Two aliases naming each other end where the loop closes, at loopa's
    # mailbox: there is no such user as root; a private instance has one.
    _, answers = li.deliver([addr("loopa")])
    if IS_ROOT:
        expect_failed(answers[0], 550, "5.1.1", 'unknown user: "loopa"')
    else:
        expect_sent(answers[0])
        assert len(li.new_files("loopa")) == 1 and li.new_files("loopb") == []


def out_dir(li):
    return out_path(li.inst)


def test_alias_command_environment_and_no_shell_injection(local):
    def text(inst):
        out = out_path(inst)
        return f'pipe: "|env > {out}/env.txt; id -u > {out}/uid.txt; cat > {out}/msg.txt"\n'

    li = local(prepare=aliases_prepare(text))
    out = out_dir(li)
    cmd = f'"|env > {out}/env.txt; id -u > {out}/uid.txt; cat > {out}/msg.txt"'
    pwn = li.root / "pwned"
    evil = f"x$(touch${{IFS}}{pwn})`touch {pwn}`;touch|{pwn}&@evil.example"
    mark = li.inst.log_mark()
    _, answers = li.deliver([addr("pipe", "ext")], sender=evil)
    cmd_text = cmd.strip('"')[1:]
    expect_sent(answers[0], f"delivered to command: {cmd_text}")
    time.sleep(0.2)
    assert not pwn.exists()
    env = dict(line.split("=", 1) for line in (out / "env.txt").read_text().splitlines()
               if "=" in line)
    # Envelope data arrives only as filtered environment variables.
    assert env["SENDER"] == re.sub(r"[^0-9A-Za-z!@%\-_=+:,./]", "_", evil)
    assert "$" not in env["SENDER"] and "`" not in env["SENDER"] and ";" not in env["SENDER"]
    assert env["RECIPIENT"] == "pipe+ext@local.test"
    assert env["LOCAL"] == "pipe+ext"
    assert env["USER"] == "pipe"
    assert env["EXTENSION"] == "ext"
    assert env["DOMAIN"] == DOM
    assert env["ORIGINAL_RECIPIENT"] == "pipe+ext@local.test"
    assert env["PATH"] == "/usr/bin:/bin"
    assert "HOME" in env and "SHELL" in env and "LOGNAME" in env
    msg = (out / "msg.txt").read_bytes()
    # In headers and the From_ line the sender's local part is quoted (RFC 5322).
    local_part, domain = evil.rsplit("@", 1)
    quoted = f'"{local_part}"@{domain}'.encode()
    first, rest = msg.split(b"\n", 1)
    assert first.startswith(b"From " + quoted + b"  "), first
    assert re.match(rb"\w\w\w \w\w\w [ \d]\d \d\d:\d\d:\d\d \d{4}$", first[-24:]), first
    assert rest == (b"Return-Path: <" + quoted + b">\n"
                    + b"Delivered-To: pipe+ext@local.test\n" + BODY)
    uid = int((out / "uid.txt").read_text())
    if IS_ROOT:
        # A table owned by root: its commands run as default_privs.
        assert uid == pwd.getpwnam("nobody").pw_uid
    else:
        assert uid == os.geteuid()
    li.wait_log(log_re("pipe+ext@local.test", reason=re.escape(f"delivered to command: {cmd_text}")),
                since=mark)


def test_alias_command_exit_codes_and_time_limit(local):
    text = ('tempfail: "|echo try later; exit 75"\n'
            'fail: "|echo oops >&2; exit 1"\n'
            'nouser: "|exit 67"\n'
            'ok: "|cat >/dev/null"\n'
            'quick: "|exit 0"\n'
            'slow: "|sleep 30"\n'
            'signal: "|kill -9 $$"\n')
    li = local({"command_time_limit": "3s"}, prepare=aliases_prepare(lambda inst: text))
    big = b"Subject: big\n\n" + (b"y" * 999 + b"\n") * 100  # more than a pipe holds
    _, answers = li.deliver([addr(x) for x in ("tempfail", "fail", "nouser", "ok", "quick")],
                            body=big)
    expect_failed(answers[0], 450, "4.3.0", 'Command died with status 75: "echo try later; '
                                           'exit 75". Command output: try later')
    expect_failed(answers[1], 550, "5.3.0", "Command died with status 1")
    assert "Command output: oops" in answers[1]["reason"]
    expect_failed(answers[2], 550, "5.1.1", "Command died with status 67")
    expect_sent(answers[3], "delivered to command: cat >/dev/null")
    # A command that does not read its input still succeeds by its exit status.
    expect_sent(answers[4], "delivered to command: exit 0")
    start = time.monotonic()
    _, answers = li.deliver([addr("slow"), addr("signal")])
    assert time.monotonic() - start < 15
    expect_failed(answers[0], 550, "5.3.0", 'Command time limit exceeded: "sleep 30"')
    expect_failed(answers[1], 550, "5.3.0", "Command died with signal 9")


def test_alias_file_destination(local):
    li = local(prepare=aliases_prepare(
        lambda inst: f"tofile: {out_path(inst)}/archive, {out_path(inst)}/md/\nnull: /dev/null\n"))
    out = out_dir(li)
    _, answers = li.deliver([addr("tofile")])
    expect_sent(answers[0], "delivered to maildir")
    data = (out / "archive").read_bytes()
    m = MBOX_FROM_RE.match(data)
    assert m, data[:80]
    assert data[m.end():] == mbox_expect(SENDER, addr("tofile"), BODY)
    md_files = list((out / "md" / "new").iterdir())
    assert len(md_files) == 1
    assert md_files[0].read_bytes() == (b"Return-Path: <sender@example.org>\n"
                                        b"Delivered-To: tofile@local.test\n" + BODY)
    if IS_ROOT:
        nobody = pwd.getpwnam("nobody").pw_uid
        assert (out / "archive").stat().st_uid == nobody
        assert md_files[0].stat().st_uid == nobody
    _, answers = li.deliver([addr("null")])
    expect_sent(answers[0], "delivered to file: /dev/null")


def test_alias_forward_to_remote_through_cleanup(local):
    li = alias_instance(local, "remote: Someone@Elsewhere.Example, " + ANN + "\n",
                        master_cf=MASTER_CF_CLEANUP)
    mark = li.inst.log_mark()
    _, answers = li.deliver([addr("remote")])
    expect_sent(answers[0], None)
    m = li.wait_log(r"to=<Someone@Elsewhere\.Example>, orig_to=<remote@local\.test>, "
                    r"relay=local, .*status=sent \(forwarded as (?P<new>[0-9A-Z]+)\)", since=mark)
    new = m["new"]
    path = li.inst.queue_dir / "immediate" / new
    for _ in range(50):
        if path.exists():
            break
        time.sleep(0.1)
    q = read_qfile(path)
    assert q.sender == SENDER
    assert [r.address for r in q.rcpts] == ["Someone@Elsewhere.Example"]
    # Our Delivered-To is in the new message's header section (cleanup may
    # put its own Received: above it): a copy that comes back is a loop.
    headers = q.content.split(b"\n\n", 1)[0]
    assert re.search(rb"(?m)^Delivered-To: remote@local\.test$", headers), headers
    assert BODY.split(b"\n\n", 1)[1] in q.content
    assert len(li.new_files(ANN)) == 1


def test_alias_table_unavailable_defers(local):
    li = local({"alias_maps": "hash:/nonexistent/aliases"})
    _, answers = li.deliver([addr(ANN)])
    expect_failed(answers[0], 450, "4.3.0", "alias database unavailable")
    assert li.new_files(ANN) == []


# -- .forward ----------------------------------------------------------------------

def make_home(li, user):
    home = li.mail / user
    home.mkdir(parents=True, exist_ok=True)
    if IS_ROOT:
        os.chown(home, uid_of(user), -1)
    return home


def write_forward(li, user, text, name=".forward", mode=0o644):
    path = make_home(li, user) / name
    path.write_text(text)
    os.chmod(path, mode)
    if IS_ROOT:
        os.chown(path, uid_of(user), -1)
    return path


def test_dot_forward(local):
    li = local()
    out = out_dir(li)
    write_forward(li, BOB, f"# bob forwards\n{ANN}\n\\{BOB}\n"
                           f"\"|id -u > {out}/bob-uid.txt\"\n")
    _, answers = li.deliver([addr(BOB)])
    expect_sent(answers[0], None)
    assert len(li.new_files(ANN)) == 1 and len(li.new_files(BOB)) == 1
    uid = int((out / "bob-uid.txt").read_text())
    # Commands from a .forward run as its user.
    assert uid == uid_of(BOB)

    # .forward+ext first; the plain .forward when there is none for the extension.
    write_forward(li, BOB, f"{CAT}\n", name=".forward+list")
    _, answers = li.deliver([addr(BOB, "list"), addr(BOB, "other")])
    expect_sent(answers[0])
    expect_sent(answers[1], None)
    assert len(li.new_files(CAT)) == 1
    assert len(li.new_files(BOB)) == 2 and len(li.new_files(ANN)) == 2


def test_dot_forward_insecure_or_empty_is_ignored(local):
    li = local()
    write_forward(li, BOB, f"{ANN}\n", mode=0o666)
    mark = li.inst.log_mark()
    _, answers = li.deliver([addr(BOB)])
    expect_sent(answers[0])
    assert len(li.new_files(BOB)) == 1 and li.new_files(ANN) == []
    li.wait_log(r"warning: \S+: ignoring \S+/\.forward: \S+ is group or world writable",
                since=mark)
    write_forward(li, BOB, "# nothing but a comment\n")
    _, answers = li.deliver([addr(BOB)])
    expect_sent(answers[0])
    assert len(li.new_files(BOB)) == 2 and li.new_files(ANN) == []


def test_dot_forward_file_restriction(local):
    li = local({"allow_mail_to_files": "alias"})
    out = out_dir(li)
    write_forward(li, BOB, f"{out}/bobfile\n")
    _, answers = li.deliver([addr(BOB)])
    expect_failed(answers[0], 550, "5.7.1", "mail to file is restricted")
    assert not (out / "bobfile").exists()


# -- protocol --------------------------------------------------------------------

def test_request_errors(local):
    li = local()
    qid = li.inject([addr(ANN), addr(BOB)])
    # A recipient that does not match the queue file is deferred, not delivered.
    answers, summary = li.request(qid, [addr(BOB), addr(BOB)])
    expect_failed(answers[0], 450, "4.3.0", "does not match the queue file")
    expect_sent(answers[1])
    assert summary.get("count") == 2
    # A queue file that is not there.
    other = qid[:-1] + ("0" if qid[-1] != "0" else "1")
    answers, _ = li.request(other, [addr(ANN)])
    expect_failed(answers[0], 450, "4.3.0", "cannot access mail queue file")
    # A bad queue id or queue name never names a file: the connection is dropped.
    for bad in ([("queue_name", "../etc"), ("queue_id", qid), ("sender", ""), ("end", UInt(1))],
                [("queue_name", "immediate"), ("queue_id", "../../x"), ("sender", ""),
                 ("end", UInt(1))],
                [("queue_name", "immediate"), ("queue_id", qid), ("sender", ""),
                 ("rcpt", addr(ANN)), ("end", UInt(1))]):
        with pytest.raises(EOFError):
            li.request(qid, [], raw=bad)
    # The service still works.
    answers, _ = li.request(qid, [addr(ANN)])
    expect_sent(answers[0])
    assert li.inst.count_log(r"panic|fatal") == 0


# -- privileges ------------------------------------------------------------------

@pytest.mark.skipif(not IS_ROOT, reason="needs root to start an instance as another user")
def test_private_instance_as_another_user(local):
    li = local(user=ANN)
    owner = pwd.getpwnam(ANN)
    _, answers = li.deliver([addr(BOB), f"zz-private@{DOM}"])
    expect_sent(answers[0])
    expect_sent(answers[1])
    # Everything belongs to the user who started the instance.
    for user in (BOB, "zz-private"):
        f = li.new_files(user)[0]
        assert f.stat().st_uid == owner.pw_uid
        assert (li.mail / user).stat().st_uid == owner.pw_uid
    pids = li.inst.service_pids("local")
    for pid in pids:
        status = open(f"/proc/{pid}/status").read()
        assert re.search(rf"^Uid:\s+{owner.pw_uid}\s", status, re.M)


@pytest.mark.skipif(not IS_ROOT, reason="needs root to give the alias table to a user")
def test_alias_table_owned_by_user_runs_as_owner(local):
    def prepare(inst):
        d = inst.root / "ann-aliases"
        d.mkdir()
        os.chown(d, uid_of(ANN), -1)
        out = out_path(inst)
        src = d / "aliases"
        src.write_text(f'whoami: "|id -u > {out}/owner-uid.txt"\n')
        os.chown(src, uid_of(ANN), -1)
        # Run by root, postalias builds the table as the source's owner.
        r = inst.command([str(BUILD / "bin" / "postalias"), f"hash:{src}"])
        assert r.returncode == 0, r.stderr
        assert (d / "aliases.db").stat().st_uid == uid_of(ANN)
        return {"alias_maps": f"hash:{src}"}

    li = local(prepare=prepare)
    _, answers = li.deliver([addr("whoami")])
    expect_sent(answers[0], None)
    assert int((li.root / "out" / "owner-uid.txt").read_text()) == uid_of(ANN)


def test_postalias_source_format(local):
    li = local()
    src = li.root / "pa-aliases"
    src.write_text("# comment\n"
                   "PostMaster: root\n"
                   "list: a, b,\n"
                   "  c@example.com,\n"
                   "\t\"|/bin/cat > /dev/null\"\n"
                   "\"odd name: x\": y\n"
                   "no colon here\n"
                   ": empty name\n"
                   "dup: first\n"
                   "DUP: second\n"
                   "nothing:\n")
    pa = str(BUILD / "bin" / "postalias")
    r = li.inst.command([pa, "-c", str(li.inst.conf_dir), f"hash:{src}"])
    assert r.returncode == 0, r.stderr
    assert re.search(r"line 7: need name:value pair -- ignoring this line", r.stderr), r.stderr
    assert re.search(r"line 8: empty alias name", r.stderr), r.stderr
    assert re.search(r'line 10: duplicate entry: "dup"', r.stderr), r.stderr
    assert re.search(r"line 11: empty alias value", r.stderr), r.stderr

    def q(key, *opts):
        return li.inst.command([pa, "-c", str(li.inst.conf_dir), *opts, "-q", key, f"hash:{src}"])

    assert q("postmaster").stdout == "root\n"
    assert q("LIST").stdout == 'a, b,  c@example.com,\t"|/bin/cat > /dev/null"\n'
    assert q("odd name: x").stdout == "y\n"
    assert q("dup").stdout == "first\n"
    assert q("nosuch").returncode == 1
    r = li.inst.command([pa, "-c", str(li.inst.conf_dir), "-s", f"hash:{src}"])
    assert sorted(r.stdout.splitlines()) == sorted(
        ["postmaster: root", 'list: a, b,  c@example.com,\t"|/bin/cat > /dev/null"',
         "odd name: x: y", "dup: first"])
    # -d removes, -i adds from standard input.
    assert li.inst.command([pa, "-c", str(li.inst.conf_dir), "-d", "dup", f"hash:{src}"]
                           ).returncode == 0
    assert q("dup").returncode == 1
    r = subprocess.run([pa, "-c", str(li.inst.conf_dir), "-i", f"hash:{src}"],
                       input="new: value\n", text=True, capture_output=True, env=li.inst.env)
    assert r.returncode == 0, r.stderr
    assert q("new").stdout == "value\n"
    # Without -f names fold to lower case; with it they stay as written.
    r = li.inst.command([pa, "-c", str(li.inst.conf_dir), "-f", f"hash:{src}"])
    assert q("PostMaster", "-f").stdout == "root\n"
    assert q("postmaster", "-f").returncode == 1
    # Bad usage.
    assert li.inst.command([pa, "-q", "x", "-s", f"hash:{src}"]).returncode == 64


def test_mailbox_command_and_execution_directory(local):
    li = local({"mailbox_command": 'cat > "$HOME/mbcmd"; pwd > "$HOME/pwd"; id -u > "$HOME/uid"',
                "command_execution_directory": "$home"})
    mark = li.inst.log_mark()
    _, answers = li.deliver([addr(ANN, "box")])
    cmd = 'cat > "$HOME/mbcmd"; pwd > "$HOME/pwd"; id -u > "$HOME/uid"'
    expect_sent(answers[0], f"delivered to command: {cmd}")
    home = li.mail / ANN
    data = (home / "mbcmd").read_bytes()
    first, rest = data.split(b"\n", 1)
    assert first.startswith(b"From sender@example.org  "), first
    assert rest == (b"Return-Path: <sender@example.org>\n"
                    b"Delivered-To: plocal-ann+box@local.test\n" + BODY)
    assert (home / "pwd").read_text().strip() == str(home)
    assert int((home / "uid").read_text()) == uid_of(ANN)
    li.wait_log(log_re(addr(ANN, "box"), reason=re.escape(f"delivered to command: {cmd}")),
                since=mark)
    # An execution directory that cannot be entered defers.
    li2 = local({"mailbox_command": "cat >/dev/null",
                 "command_execution_directory": "/nonexistent/$user"})
    _, answers = li2.deliver([addr(ANN)])
    expect_failed(answers[0], 450, "4.3.0",
                  f"cannot change to execution directory /nonexistent/{ANN}")
