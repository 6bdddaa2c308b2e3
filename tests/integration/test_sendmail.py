"""Local submission: sendmail (and mailq, newaliases), postdrop, pickup.

Real daemons (master, pickup, cleanup, qmgr, local) in a private instance;
messages go in through Postern's sendmail and are looked for in the users'
Maildirs.

    test_t_with_cc_and_bcc            -t: Bcc gone from every copy, Bcc recipient served
    test_dot_line_and_i               a "." line ends input without -i, not with -i / -oi
    test_line_endings_and_long_lines  CR LF in, LF out; lines longer than a record
    test_f_and_F                      envelope sender and From: display name
    test_t_adds_command_line_rcpts    -t plus recipients on the command line (Postfix)
    test_bs_session                   -bs: EHLO, DSN and SIZE, dot-unstuffing, two messages
    test_master_stopped_then_started  sendmail exits 0, the file waits, then is delivered
    test_bad_usage                    unknown flags, bad values, no recipients: sysexits codes
    test_bad_config                   missing and unreadable main.cf: EX_CONFIG
    test_size_limit                   message_size_limit: EX_UNAVAILABLE, nothing queued
    test_submit_acl                   authorized_submit_users: EX_NOPERM
    test_hostile_maildrop             garbage, links, huge lengths, forged submitters,
                                      odd names and devices go to corrupt/; pickup goes on
    test_postdrop_refuses_forgery     a stream claiming a submitter, or garbage, on postdrop
    test_mailq_and_newaliases         the same program by name: postqueue -p, postalias
    test_snail / test_mailutils       s-nail and GNU mailutils' mail through our sendmail
    test_unprivileged_user_setgid     (root) a normal user, postdrop set-gid postdrop:
                                      file owner, uid in the log, no access without it

As root, the instance runs as the harness's mail_owner and sendmail runs as
one of the local test users through setpriv with a set-gid postdrop copy;
otherwise everything runs as the invoking user.
"""

import grp
import os
import pwd
import re
import shutil
import socket
import stat
import struct
import subprocess
import time
from pathlib import Path

import pytest

from conftest import BUILD, IS_ROOT, SETGID_GROUP
from mailin import (LOCAL_USERS, ensure_local_users, log_excerpt, mailin_main_cf,
                    maildir_new, prepare_mail_root)

ALICE, BOB, CAROL = LOCAL_USERS
DELIVERY_TIMEOUT = 30   # seconds any one delivery may take
CMD_TIMEOUT = 60

# sysexits.h
EX_OK, EX_USAGE, EX_DATAERR, EX_UNAVAILABLE = 0, 64, 65, 69
EX_OSERR, EX_TEMPFAIL, EX_NOPERM, EX_CONFIG = 71, 75, 77, 78

MASTER_CF = ("pickup unix n - n 60 1 pickup\n"
             "cleanup unix n - n - 0 cleanup\n"
             "qmgr unix n - n 300 1 qmgr\n"
             "local unix - n n - - local\n"
             "showq unix n - n - - showq\n")


def addr(user):
    return f"{user}@localhost"


def daemons_or_skip():
    missing = [d for d in ("master", "pickup", "postdrop", "sendmail", "cleanup", "qmgr", "local")
               if not (BUILD / "bin" / d).exists()]
    if missing:
        pytest.skip(f"not built yet: {', '.join(missing)} (make SANITIZE=1 build-all)")


class Submit:
    """An instance with the local submission path, and ways to run sendmail."""

    def __init__(self, inst, setgid):
        self.inst = inst
        self.setgid = setgid
        self.bin = inst.root / "bin"

    @property
    def maildrop(self):
        return self.inst.queue_dir / "maildrop"

    @property
    def corrupt(self):
        return self.inst.queue_dir / "corrupt"

    def env(self, extra=None):
        env = dict(self.inst.env)
        env["MAIL_CONFIG"] = str(self.inst.conf_dir)
        env.pop("NAME", None)
        env.update(extra or {})
        return env

    def run(self, argv, input=b"", user=None, env=None, timeout=CMD_TIMEOUT):
        """Run argv (a list) as USER (setpriv) or as ourselves; bytes in and out."""
        if user:
            argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--"] + argv
        return subprocess.run(argv, input=input, env=self.env(env), capture_output=True,
                              timeout=timeout, cwd=self.inst.root)

    def sendmail(self, *args, input=b"", user=None, env=None, name="sendmail"):
        return self.run([str(self.bin / name), *args], input=input, user=user, env=env)

    def user(self):
        """Who submits in the tests: a plain user as root, else ourselves."""
        return ALICE if IS_ROOT else None

    def uid(self, user=None):
        user = user or self.user()
        return pwd.getpwnam(user).pw_uid if user else os.getuid()

    def login(self, user=None):
        return user or self.user() or pwd.getpwuid(os.getuid()).pw_name

    def maildrop_files(self):
        return sorted(p.name for p in self.maildrop.iterdir())

    def corrupt_files(self):
        return sorted(p.name for p in self.corrupt.rglob("*") if not p.is_dir())


def make_bin(root, setgid):
    """root/bin: the commands sendmail runs ($command_directory). With setgid,
    postdrop is a copy installed set-gid postdrop, mode 2755, as mk/install.sh
    does it."""
    bindir = Path(root) / "bin"
    bindir.mkdir(mode=0o755)
    for name in ("sendmail", "postqueue", "postalias", "postsuper"):
        if (BUILD / "bin" / name).exists():
            os.symlink(BUILD / "bin" / name, bindir / name)
    for name in ("mailq", "newaliases"):
        os.symlink("sendmail", bindir / name)
    if setgid:
        shutil.copy2(BUILD / "bin" / "postdrop", bindir / "postdrop")
        os.chown(bindir / "postdrop", 0, grp.getgrnam(SETGID_GROUP).gr_gid)
        os.chmod(bindir / "postdrop", 0o2755)
    else:
        os.symlink(BUILD / "bin" / "postdrop", bindir / "postdrop")
    return bindir


@pytest.fixture
def submit(postern_instance):
    """Factory: Submit(main_extra=None, start=True, setgid=IS_ROOT)."""
    daemons_or_skip()
    users = ensure_local_users()

    def make(main_extra=None, start=True, setgid=IS_ROOT, master_cf=MASTER_CF):
        inst = postern_instance(master_cf, start=False)
        prepare_mail_root(inst.root)
        make_bin(inst.root, setgid)
        extra = {"command_directory": str(inst.root / "bin"),
                 "myorigin": "localhost",
                 "trigger_timeout": "5s"}
        extra.update(main_extra or {})
        inst.write_main_cf(mailin_main_cf(inst.root, users, extra))
        # The queue tree exists before the first start, as after installation.
        r = inst.postern("check")
        assert r.returncode == 0, r.stderr
        if start:
            inst.start()
        return Submit(inst, setgid)

    return make


def wait_delivered(s, user, count=1, timeout=DELIVERY_TIMEOUT, since=0):
    """The messages in USER's Maildir/new once there are COUNT of them."""
    new = maildir_new(s.inst.root, user)
    deadline = time.monotonic() + timeout
    while True:
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime) if new.is_dir() else []
        if len(files) >= count:
            return [p.read_bytes() for p in files]
        if time.monotonic() > deadline:
            pytest.fail(f"{user}: {len(files)} of {count} messages after {timeout}s\n"
                        + log_excerpt(s.inst, since))
        time.sleep(0.1)


def headers_of(msg):
    head = msg.split(b"\n\n", 1)[0]
    return head.decode("utf-8", "replace")


def body_of(msg):
    return msg.split(b"\n\n", 1)[1] if b"\n\n" in msg else b""


def assert_ok(r):
    assert r.returncode == 0, (r.returncode, r.stderr.decode(errors="replace"))


# -- the common path -------------------------------------------------------

def test_t_with_cc_and_bcc(submit):
    s = submit()
    user = s.user()
    msg = (f"From: Alice <{addr(ALICE)}>\n"
           f"To: Alice <{addr(ALICE)}>\n"
           f"Cc: \"Bob, the builder\" <{addr(BOB)}>\n"
           f"Bcc: (secret)\n {addr(CAROL)}\n"
           "Subject: to, cc and bcc\n"
           "\n"
           "first line\n"
           ".\n"
           "..two dots\n"
           "last line\n").encode()
    r = s.sendmail("-t", "-i", input=msg, user=user)
    assert_ok(r)
    copies = {u: wait_delivered(s, u)[0] for u in (ALICE, BOB, CAROL)}
    for u, m in copies.items():
        h = headers_of(m)
        assert not re.search(r"(?im)^bcc:", h), f"{u} got a Bcc header:\n{h}"
        assert f"To: Alice <{addr(ALICE)}>" in h
        assert "Subject: to, cc and bcc" in h
        # -i: the lone dot is content; nothing is unstuffed.
        assert body_of(m) == b"first line\n.\n..two dots\nlast line\n", m
        # cleanup added what a local submission lacks.
        assert re.search(r"(?m)^Message-I[Dd]: <", h) and re.search(r"(?m)^Date: ", h)
        assert re.search(rf"(?m)^Received: by \S+ \(Postern, from userid {s.uid()}\)", h), h
    s.inst.wait_for_log(rf"pickup\[\d+\]: \w+: uid={s.uid()} from=<{re.escape(s.login())}>")
    assert s.maildrop_files() == []


def test_dot_line_and_i(submit):
    s = submit()
    text = b"Subject: dots\n\nbefore\n.\nafter\n"
    assert_ok(s.sendmail(addr(ALICE), input=text, user=s.user()))
    assert_ok(s.sendmail("-oi", addr(BOB), input=text, user=s.user()))
    # CR LF around the dot ends the input as well.
    assert_ok(s.sendmail(addr(CAROL), input=b"Subject: crlf dot\r\n\r\nkept\r\n.\r\nlost\r\n",
                         user=s.user()))
    assert body_of(wait_delivered(s, ALICE)[0]) == b"before\n"
    assert body_of(wait_delivered(s, BOB)[0]) == b"before\n.\nafter\n"
    assert body_of(wait_delivered(s, CAROL)[0]) == b"kept\n"


def test_line_endings_and_long_lines(submit):
    s = submit()
    long_line = b"x" * 10000
    text = (b"From nobody Mon Jan  1 00:00:00 2024\r\n"      # mbox separator: dropped
            b"Subject: crlf\r\n\r\nline one\r\n" + long_line + b"\r\n"
            b"bare\rcr inside\r\n8bit \xc3\xa9t\xc3\xa9\r\nno final newline")
    assert_ok(s.sendmail("-i", addr(ALICE), input=text, user=s.user()))
    m = wait_delivered(s, ALICE)[0]
    assert b"\r\n" not in m
    assert b"From nobody" not in m
    # The last line gets its line end, as with Postfix.
    assert body_of(m) == (b"line one\n" + long_line + b"\n"
                          b"bare\rcr inside\n8bit \xc3\xa9t\xc3\xa9\nno final newline\n") \
        or body_of(m) == (b"line one\n" + long_line + b"\n"
                          b"bare cr inside\n8bit \xc3\xa9t\xc3\xa9\nno final newline\n"), m


def test_f_and_F(submit):
    s = submit()
    r = s.sendmail("-f", "Envelope Sender <sender@example.org>", "-F", "Fred Q. Sender",
                   addr(ALICE), input=b"Subject: no from header\n\nhello\n", user=s.user())
    assert_ok(r)
    m = wait_delivered(s, ALICE)[0]
    h = headers_of(m)
    assert re.search(r"(?m)^Return-Path: <sender@example\.org>$", h), h
    assert re.search(r'(?m)^From: "?Fred Q\. Sender"? <sender@example\.org>$', h), h
    s.inst.wait_for_log(rf"uid={s.uid()} from=<sender@example\.org>")

    # -r is -f; NAME is the full name when -F is absent; a From: header wins.
    r = s.sendmail("-r", "other@example.org", addr(BOB),
                   input=b"From: Given <given@example.org>\nSubject: has from\n\nx\n",
                   user=s.user(), env={"NAME": "Ignored Name"})
    assert_ok(r)
    h = headers_of(wait_delivered(s, BOB)[0])
    assert re.search(r"(?m)^Return-Path: <other@example\.org>$", h), h
    assert "From: Given <given@example.org>" in h and "Ignored Name" not in h
    r = s.sendmail(addr(CAROL), input=b"Subject: name from env\n\nx\n", user=s.user(),
                   env={"NAME": "Env Name"})
    assert_ok(r)
    h = headers_of(wait_delivered(s, CAROL)[0])
    assert re.search(rf'(?m)^From: "?Env Name"? <{re.escape(s.login())}@localhost>$', h), h
    assert re.search(rf"(?m)^Return-Path: <{re.escape(s.login())}@localhost>$", h), h

    # The null sender.
    assert_ok(s.sendmail("-f", "<>", addr(ALICE), input=b"Subject: null\n\nx\n", user=s.user()))
    msgs = wait_delivered(s, ALICE, 2)
    assert any(re.search(r"(?m)^Return-Path: <>$", headers_of(m)) for m in msgs)


def test_t_adds_command_line_rcpts(submit):
    s = submit()
    r = s.sendmail("-t", addr(BOB), input=f"To: {addr(ALICE)}\nSubject: both\n\nx\n".encode(),
                   user=s.user())
    assert_ok(r)
    wait_delivered(s, ALICE)
    wait_delivered(s, BOB)
    # Comma lists and display names on the command line, as Postfix takes them.
    r = s.sendmail(f"Carol <{addr(CAROL)}>, {addr(ALICE)}", input=b"Subject: list\n\nx\n",
                   user=s.user())
    assert_ok(r)
    wait_delivered(s, CAROL)
    wait_delivered(s, ALICE, 2)


def test_bs_session(submit):
    s = submit()
    script = (b"EHLO client.example\r\n"
              b"MAIL FROM:<bs-sender@example.org> SIZE=100 BODY=8BITMIME\r\n"
              b"RCPT TO:<" + addr(ALICE).encode() + b"> NOTIFY=FAILURE\r\n"
              b"RCPT TO:" + addr(BOB).encode() + b"\r\n"
              b"DATA\r\n"
              b"Subject: via -bs\r\n\r\n..stuffed\r\nplain\r\n.\r\n"
              b"MAIL FROM:<>\n"                     # LF alone works too
              b"RCPT TO:<" + addr(CAROL).encode() + b">\n"
              b"DATA\n"
              b"Subject: second\n\nsecond body\n.\n"
              b"RCPT TO:<nobody@localhost>\r\n"     # no MAIL: refused, session goes on
              b"BDAT 10\r\n"
              b"QUIT\r\n")
    r = s.sendmail("-bs", input=script, user=s.user())
    assert_ok(r)
    lines = r.stdout.decode().split("\r\n")
    codes = [ln[:4] for ln in lines if ln]
    assert lines[0].startswith("220 "), lines
    ehlo = [ln for ln in lines if ln.startswith("250-") or ln.startswith("250 ")]
    assert any("SIZE" in ln for ln in ehlo) and any("DSN" in ln for ln in ehlo)
    assert any("PIPELINING" in ln for ln in ehlo) and any("8BITMIME" in ln for ln in ehlo)
    queued = re.findall(r"250 2\.0\.0 Ok: queued as (\w+)", r.stdout.decode())
    assert len(queued) == 2, lines
    assert "503 " in codes and "502 " in codes and lines[-2].startswith("221 "), lines
    m = wait_delivered(s, ALICE)[0]
    assert body_of(m) == b".stuffed\nplain\n"
    assert re.search(r"(?m)^Return-Path: <bs-sender@example\.org>$", headers_of(m))
    wait_delivered(s, BOB)
    m = wait_delivered(s, CAROL)[0]
    assert re.search(r"(?m)^Return-Path: <>$", headers_of(m))

    # Limits and errors inside -bs are answered, not crashed on.
    script = (b"HELO x\r\nMAIL FROM:<a@b> SIZE=999999999999\r\n"
              b"MAIL FROM:<bad address\r\nRCPT TO:<x@y>\r\nDATA\r\n"
              + b"A" * 5000 + b"\r\nNOOP\r\nQUIT\r\n")
    r = s.sendmail("-bs", input=script, user=s.user())
    assert_ok(r)
    out = r.stdout.decode()
    assert "552 5.3.4" in out and "503 5.5.1" in out and "500 5.5.0" in out, out
    assert out.rstrip().endswith("221 2.0.0 Bye")
    # -bs takes no recipients.
    r = s.sendmail("-bs", addr(ALICE), user=s.user())
    assert r.returncode == EX_USAGE


def test_master_stopped_then_started(submit):
    s = submit(start=False)
    r = s.sendmail(addr(ALICE), input=b"Subject: waits\n\nwhile down\n", user=s.user())
    assert_ok(r)
    assert r.stderr == b"", r.stderr          # a mail system that is down is not an error
    files = s.maildrop_files()
    assert len(files) == 1 and re.fullmatch(r"[0-9A-Z]{17}", files[0]), files
    st = (s.maildrop / files[0]).stat()
    assert st.st_uid == s.uid()
    assert stat.S_IMODE(st.st_mode) == 0o444
    assert not maildir_new(s.inst.root, ALICE).exists()
    s.inst.start()
    m = wait_delivered(s, ALICE)[0]
    assert body_of(m) == b"while down\n"
    s.inst.wait_until(lambda: s.maildrop_files() == [], what="maildrop/ empty")


# -- errors ----------------------------------------------------------------

def test_bad_usage(submit):
    s = submit(start=False)
    u = s.user()
    cases = [
        (["-k", addr(ALICE)], EX_USAGE, "invalid option -- 'k'"),
        (["-f"], EX_USAGE, "option requires an argument -- 'f'"),
        (["-bd"], EX_USAGE, "-bd is not supported; use postern start"),
        (["-bl"], EX_USAGE, "use postern start"),
        (["-bv", addr(ALICE)], EX_USAGE, "not supported"),
        (["-bz"], EX_USAGE, "unsupported: -bz"),
        (["-B", "9BIT", addr(ALICE)], EX_USAGE, "-B option needs 8BITMIME or 7BIT"),
        (["-XV", addr(ALICE)], EX_USAGE, "unsupported: -XV"),
        (["-n", addr(ALICE)], EX_USAGE, "-n option not supported"),
        (["-qS"], EX_USAGE, "-qS is not implemented"),
        (["-qR"], EX_USAGE, "-qRsitename"),
        (["-oA"], EX_USAGE, "-oA requires pathname"),
        (["-bp", addr(ALICE)], EX_USAGE, "requires no recipient"),
        (["-t", "-bp"], EX_USAGE, "-t can be used only in delivery mode"),
        ([], EX_USAGE, "Recipient addresses must be specified on the command line or via the -t option"),
        (["-f", "<<<", addr(ALICE)], EX_USAGE, "malformed sender"),
        (["<>"], EX_USAGE, "bad recipient address syntax"),
    ]
    for args, code, text in cases:
        r = s.sendmail(*args, input=b"Subject: x\n\nx\n", user=u)
        err = r.stderr.decode(errors="replace")
        assert r.returncode == code and text in err, (args, r.returncode, err)
        assert "sanitizer" not in err.lower()
    # -t with no recipient anywhere.
    r = s.sendmail("-t", input=b"Subject: nobody\nTo: undisclosed-recipients:;\n\nx\n", user=u)
    assert r.returncode == EX_USAGE
    assert b"No recipient addresses found in message header" in r.stderr
    # Options after "--" are recipients; ignored options are accepted.
    r = s.sendmail("-oem", "-om", "-o7", "-Am", "-U", "-L", "label", "-h", "10", "-q30m", user=u)
    assert r.returncode == 0, r.stderr          # -q30m alone: nothing to do, as in Postfix
    r = s.sendmail("-bh", user=u)
    assert r.returncode == 0
    # Bad -N / -R / -V values are warned about and ignored, as Postfix does.
    r = s.sendmail("-N", "sometimes", "-R", "most", "-V", "bad\x01id", "--", addr(ALICE),
                   input=b"Subject: x\n\nx\n", user=u)
    assert_ok(r)
    err = r.stderr.decode()
    assert "bad -N option value" in err and "bad -R option value" in err and "-V" in err
    assert len(s.maildrop_files()) == 1
    # Nothing was left behind by the failures.
    assert s.corrupt_files() == []


def test_bad_config(submit):
    s = submit(start=False)
    u = s.user()
    r = s.sendmail("-C", "/nonexistent/dir", addr(ALICE), input=b"x\n", user=u)
    assert r.returncode == EX_CONFIG and b"/nonexistent/dir/main.cf" in r.stderr, r.stderr
    r = s.sendmail(addr(ALICE), input=b"x\n", user=u, env={"MAIL_CONFIG": "/nonexistent"})
    assert r.returncode == EX_CONFIG
    # -C with the file's path works like its directory.
    r = s.sendmail("-C", str(s.inst.conf_dir / "main.cf"), addr(ALICE), input=b"x\n", user=u)
    assert_ok(r)
    # A broken parameter value.
    bad = s.inst.root / "badconf"
    bad.mkdir()
    (bad / "main.cf").write_text((s.inst.conf_dir / "main.cf").read_text()
                                 + "message_size_limit = lots\n")
    r = s.sendmail("-C", str(bad), addr(ALICE), input=b"x\n", user=u)
    assert r.returncode == EX_CONFIG and b"message_size_limit" in r.stderr, r.stderr
    if u:
        # Unreadable for the user.
        os.chmod(bad / "main.cf", 0o600)
        r = s.sendmail("-C", str(bad), addr(ALICE), input=b"x\n", user=u)
        assert r.returncode == EX_CONFIG and b"Permission denied" in r.stderr, r.stderr


def test_size_limit(submit):
    s = submit(main_extra={"message_size_limit": "2000"}, start=False)
    big = b"Subject: big\n\n" + (b"y" * 99 + b"\n") * 50
    r = s.sendmail(addr(ALICE), input=big, user=s.user())
    assert r.returncode == EX_UNAVAILABLE, r.stderr
    assert b"message file too big" in r.stderr
    assert s.maildrop_files() == []
    r = s.sendmail(addr(ALICE), input=b"Subject: small\n\nfits\n", user=s.user())
    assert_ok(r)


def test_submit_acl(submit):
    who = pwd.getpwuid(os.getuid()).pw_name if not IS_ROOT else ALICE
    s = submit(main_extra={"authorized_submit_users": f"!{who}, static:anyone"}, start=False)
    r = s.sendmail(addr(BOB), input=b"x\n", user=s.user())
    assert r.returncode == EX_NOPERM, r.stderr
    assert f"User {who}({s.uid()}) is not allowed to submit mail".encode() in r.stderr
    r = s.sendmail("-bs", input=b"QUIT\r\n", user=s.user())
    assert r.returncode == EX_NOPERM
    # postdrop enforces it as well, for anyone who runs it directly.
    r = s.run([str(s.bin / "postdrop")], input=b"", user=s.user())
    assert r.returncode == EX_NOPERM and b"not allowed to submit mail" in r.stderr, r.stderr
    assert s.maildrop_files() == []


# -- hostile input -----------------------------------------------------------

MAGIC = b"\x89PMD\r\n\x1a\n\x00\x01\x00\x00"


def rec(t, payload=b""):
    return bytes([t]) + struct.pack(">I", len(payload)) + payload


def good_file(uid, login, rcpt, body=b"hello"):
    content = rec(ord("L"), body)
    return (MAGIC + rec(ord("U"), struct.pack(">I", uid) + login.encode())
            + rec(ord("S"), login.encode()) + rec(ord("R"), b"\x00" + rcpt.encode())
            + rec(ord("M")) + content + rec(ord("X"))
            + rec(ord("Z"), struct.pack(">IQ", 1, len(body) + 1)))


def drop(s, name, data, uid=None):
    """A file in maildrop/ as if someone with access had put it there."""
    path = s.maildrop / name
    path.write_bytes(data)
    if uid is not None and IS_ROOT:
        os.chown(path, uid, -1)
    os.chmod(path, 0o444)
    return path


def wake_pickup(s):
    sock = s.inst.queue_dir / "public" / "pickup"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.connect(str(sock))
        c.sendall(b"W\0")


def test_hostile_maildrop(submit):
    s = submit(start=False)
    me = os.getuid()
    login = pwd.getpwuid(me).pw_name
    ids = ["1" + "0" * 10 + c + "00001" for c in "ABCDEFGHJ"]   # valid queue ids
    drop(s, ids[0], b"\x00garbage that is not a maildrop file\n" * 10)
    drop(s, ids[1], MAGIC + rec(ord("U"), struct.pack(">I", me) + login.encode())
         + rec(ord("L"), b"x"))                                                     # out of place
    drop(s, ids[2], MAGIC + rec(ord("U"), struct.pack(">I", me) + login.encode())
         + rec(ord("M")) + bytes([ord("L")]) + b"\xff\xff\xff\xf0")               # 4 GiB record
    drop(s, ids[3], good_file(me + 1, login, addr(ALICE)))                          # forged submitter
    drop(s, ids[4], good_file(me, login, addr(ALICE))[:-5])                         # cut short
    drop(s, ids[5], good_file(me, login, addr(ALICE)) + b"trailing")               # spliced
    os.symlink("/etc/passwd", s.maildrop / ids[6])                                  # a link
    os.mkfifo(s.maildrop / ids[7])                                                 # a fifo
    drop(s, "bad name\n with\x01controls", good_file(me, login, addr(ALICE)))        # not a name
    drop(s, ids[8], good_file(me, login, addr(BOB), body=b"the one good file"))
    s.inst.start()
    m = wait_delivered(s, BOB)[0]
    assert body_of(m) == b"the one good file\n"
    s.inst.wait_until(lambda: s.maildrop_files() == [], what="maildrop/ emptied")
    log = s.inst.log_text()
    for name, why in [(ids[0], "bad magic"), (ids[1], "out of place"),
                      (ids[2], "exceeds the limit"), (ids[3], "submitted by uid"),
                      (ids[4], "cut short"), (ids[5], "data after the end record"),
                      (ids[6], "symbolic link"), (ids[7], "not a regular file"),
                      ("bad?name??with?controls", "not a maildrop file name")]:
        assert re.search(rf"pickup\[\d+\]: warning: maildrop/{re.escape(name)}: .*{why}.*: "
                         r"moved to corrupt/\w+", log), (name, why, log[-3000:])
    assert len(s.corrupt_files()) == 9
    assert not maildir_new(s.inst.root, ALICE).exists()
    assert not re.search(r"pickup\[\d+\]: (fatal|panic)|pickup.*killed by signal", log)
    # pickup still serves: a normal submission goes through.
    assert_ok(s.sendmail(addr(ALICE), input=b"Subject: after\n\nstill here\n", user=s.user()))
    assert body_of(wait_delivered(s, ALICE)[0]) == b"still here\n"


def test_stale_temporary_file(submit):
    s = submit(start=False)
    tmp = s.maildrop / ("tmp.1" + "0" * 10 + "Z00001")
    tmp.write_bytes(b"partial")
    os.chmod(tmp, 0o444)
    old = time.time() - 3600
    os.utime(tmp, (old, old))
    fresh = s.maildrop / ("tmp.1" + "0" * 10 + "Y00001")
    fresh.write_bytes(b"partial")
    os.chmod(fresh, 0o444)
    s.inst.start()
    wake_pickup(s)
    s.inst.wait_until(lambda: not tmp.exists(), what="stale temporary file removed")
    assert fresh.exists()           # could still be in the works
    s.inst.wait_for_log(r"removed the unfinished file of an interrupted postdrop")


def test_postdrop_refuses_forgery(submit):
    s = submit(start=False)
    u = s.user()
    postdrop = str(s.bin / "postdrop")
    # A stream that claims a submitter.
    stream = (MAGIC + rec(ord("U"), struct.pack(">I", 0) + b"root") + rec(ord("S"), b"root")
              + rec(ord("R"), b"\x00" + addr(ALICE).encode()) + rec(ord("M")) + rec(ord("X"))
              + rec(ord("Z"), struct.pack(">IQ", 1, 0)))
    r = s.run([postdrop], input=stream, user=u)
    assert r.returncode == EX_DATAERR and b"submitter record in the input" in r.stderr, r.stderr
    # Text instead of records.
    r = s.run([postdrop], input=b"To: root\n\nhello\n", user=u)
    assert r.returncode == EX_DATAERR and b"malformed input" in r.stderr
    # No recipients.
    stream = MAGIC + rec(ord("S"), b"x") + rec(ord("M")) + rec(ord("X")) + \
        rec(ord("Z"), struct.pack(">IQ", 0, 0))
    r = s.run([postdrop], input=stream, user=u)
    assert r.returncode == EX_DATAERR and b"no recipients" in r.stderr
    # Bad usage.
    r = s.run([postdrop, "-x"], user=u)
    assert r.returncode == EX_USAGE
    # A good one, with -r: the id on standard output, the file in place.
    stream = (MAGIC + rec(ord("S"), b"x") + rec(ord("R"), b"\x00" + addr(ALICE).encode())
              + rec(ord("M")) + rec(ord("L"), b"hi") + rec(ord("X"))
              + rec(ord("Z"), struct.pack(">IQ", 1, 3)))
    r = s.run([postdrop, "-r"], input=stream, user=u)
    assert_ok(r)
    qid = r.stdout.decode().strip()
    assert s.maildrop_files() == [qid]
    data = (s.maildrop / qid).read_bytes()
    assert data.startswith(MAGIC + b"U")
    assert struct.unpack(">I", data[17:21])[0] == s.uid()
    assert s.corrupt_files() == []


# -- other modes and other programs --------------------------------------------

def test_mailq_and_newaliases(submit):
    s = submit()
    u = None      # postqueue's own privileges are not what this test is about
    if not (BUILD / "bin" / "postqueue").exists():
        pytest.skip("postqueue not built")
    r = s.sendmail(name="mailq", user=u)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == "Mail queue is empty\n" or "Kbytes in" in r.stdout.decode()
    r2 = s.sendmail("-bp", user=u)
    assert r2.stdout == r.stdout
    r = s.sendmail("-q", user=u)
    assert r.returncode == 0, r.stderr

    if not (BUILD / "bin" / "postalias").exists():
        pytest.skip("postalias not built")
    aliases = s.inst.root / "aliases"
    aliases.write_text(f"postmaster: {ALICE}\nteam: {ALICE}, {BOB}\n")
    s.inst.write_main_cf(mailin_main_cf(s.inst.root, LOCAL_USERS, {
        "command_directory": str(s.bin), "myorigin": "localhost",
        "alias_database": f"hash:{aliases}", "alias_maps": f"hash:{aliases}"}))
    r = s.sendmail(name="newaliases")          # as root: the table belongs to the file's owner
    assert r.returncode == 0, r.stderr
    assert (s.inst.root / "aliases.db").exists()
    r = s.run([str(s.bin / "postalias"), "-q", "team", f"hash:{aliases}"])
    assert r.stdout.decode().strip() == f"{ALICE}, {BOB}"
    os.unlink(s.inst.root / "aliases.db")
    r = s.sendmail("-bi", "-oA" + f"hash:{aliases}")
    assert r.returncode == 0 and (s.inst.root / "aliases.db").exists(), r.stderr
    r = s.sendmail(name="newaliases", *[addr(ALICE)])
    assert r.returncode == EX_USAGE


def test_snail(submit):
    if shutil.which("s-nail") is None:
        pytest.skip("s-nail is not installed (mk/deps.sh installs it)")
    s = submit()
    r = s.run(["s-nail", "-n", "-#", "-S", f"mta={s.bin / 'sendmail'}", "-S", "sendwait",
               "-s", "from s-nail", addr(ALICE)], input=b"body from s-nail\n", user=s.user())
    assert r.returncode == 0, r.stderr
    m = wait_delivered(s, ALICE)[0]
    assert "Subject: from s-nail" in headers_of(m)
    assert b"body from s-nail" in body_of(m)


def test_mailutils(submit):
    if shutil.which("mail") is None or b"GNU Mailutils" not in subprocess.run(
            ["mail", "--version"], capture_output=True).stdout:
        pytest.skip("GNU mailutils' mail is not installed (mk/deps.sh installs it)")
    s = submit()
    r = s.run(["mail", "--no-config", "-E", f"set sendmail=sendmail://{s.bin / 'sendmail'}",
               "-s", "from mailutils", addr(BOB)], input=b"body from mailutils\n",
              user=s.user())
    assert r.returncode == 0, r.stderr
    m = wait_delivered(s, BOB)[0]
    assert "Subject: from mailutils" in headers_of(m)
    assert b"body from mailutils" in body_of(m)


@pytest.mark.skipif(not IS_ROOT, reason="needs root: a set-gid postdrop and a second user")
def test_unprivileged_user_setgid(submit):
    s = submit()
    pd = s.bin / "postdrop"
    st = pd.stat()
    assert stat.S_IMODE(st.st_mode) == 0o2755 and st.st_gid == grp.getgrnam(SETGID_GROUP).gr_gid
    maildrop = s.maildrop.stat()
    assert stat.S_IMODE(maildrop.st_mode) == 0o1730
    # The user cannot look into maildrop/ or write there without postdrop.
    r = s.run(["ls", str(s.maildrop)], user=BOB)
    assert r.returncode != 0
    r = s.run(["sh", "-c", f"echo x > {s.maildrop}/1000000000000000A"], user=BOB)
    assert r.returncode != 0
    # With postdrop it works, and the file is the user's.
    s.inst.stop()
    assert_ok(s.sendmail(addr(CAROL), input=b"Subject: setgid\n\nfrom bob\n", user=BOB))
    (name,) = s.maildrop_files()
    fst = (s.maildrop / name).stat()
    assert fst.st_uid == pwd.getpwnam(BOB).pw_uid and stat.S_IMODE(fst.st_mode) == 0o444
    s.inst.start()
    m = wait_delivered(s, CAROL)[0]
    assert re.search(rf"(?m)^Return-Path: <{BOB}@localhost>$", headers_of(m))
    s.inst.wait_for_log(rf"uid={pwd.getpwnam(BOB).pw_uid} from=<{BOB}>")
    # postdrop without its group cannot create the file: a clear message, EX_NOPERM.
    plain = s.inst.root / "plainbin"
    plain.mkdir()
    shutil.copy2(BUILD / "bin" / "postdrop", plain / "postdrop")
    os.chmod(plain / "postdrop", 0o755)
    s.inst.write_main_cf(mailin_main_cf(s.inst.root, LOCAL_USERS, {
        "command_directory": str(plain), "myorigin": "localhost"}))
    os.symlink(BUILD / "bin" / "sendmail", plain / "sendmail")
    r = s.run([str(plain / "sendmail"), addr(CAROL)], input=b"x\n", user=BOB)
    assert r.returncode == EX_NOPERM and b"set-gid" in r.stderr, r.stderr
    # A set-gid postdrop ignores a configuration directory the user controls.
    evil = Path(f"/tmp/postern-evil-{os.getpid()}")
    evil.mkdir(mode=0o755, exist_ok=True)
    shutil.copy(s.inst.conf_dir / "main.cf", evil / "main.cf")
    os.chown(evil, pwd.getpwnam(BOB).pw_uid, -1)
    try:
        r = s.run([str(pd), "-c", str(evil)], input=b"", user=BOB)
        assert r.returncode == EX_NOPERM and b"not authorized" in r.stderr, r.stderr
    finally:
        shutil.rmtree(evil)
