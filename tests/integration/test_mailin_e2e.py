"""Mail in, end to end: smtpd -> cleanup -> queue -> qmgr -> local -> Maildir.

Real daemons over real sockets. Deliveries are counted by a unique token in
each message's header, so a lost or doubled message shows whatever the file
names are.

    test_concurrent_load_exactly_once    2,000 messages, 50 clients, 3 users
    test_kill9_during_load_loses_nothing  kill -9 of every mail-in daemon under load
    test_smuggling_end_to_end            no end-of-data variant ends or splits a message
    test_make_run_swaks                  mk/run.sh's instance and swaks, as the README says
    test_readme_shows_make_run_and_swaks

Sizes are parameters (environment) so a slow machine can shrink them; the
defaults are what the acceptance text asks for:
    POSTERN_E2E_MESSAGES (2000), POSTERN_E2E_CLIENTS (50),
    POSTERN_E2E_CRASH_MESSAGES (1000), POSTERN_E2E_CRASH_ROUNDS (4),
    POSTERN_E2E_DRAIN (seconds to wait for delivery, 180).
No assertion is about time: waits are bounded only so that a hang fails.
"""

import email.utils
import os
import pwd
import random
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import BUILD, SRC, get_free_port, proc_stat, all_pids
from mailin import (CLIENT_HELO, DOMAIN, LOCAL_USERS, QUEUED_RE, SENDER_DOMAIN,
                    MaildirIndex, RawSMTP, build_message, ensure_local_users,
                    log_excerpt, mailin_main_cf, mailin_master_cf, prepare_mail_root,
                    queue_files, split_message, wait_for_deliveries)

MESSAGES = int(os.environ.get("POSTERN_E2E_MESSAGES", "2000"))
CLIENTS = int(os.environ.get("POSTERN_E2E_CLIENTS", "50"))
CRASH_MESSAGES = int(os.environ.get("POSTERN_E2E_CRASH_MESSAGES", "1000"))
CRASH_ROUNDS = int(os.environ.get("POSTERN_E2E_CRASH_ROUNDS", "4"))
DRAIN_TIMEOUT = float(os.environ.get("POSTERN_E2E_DRAIN", "180"))
MESSAGES_PER_SESSION = 10     # a client reconnects after this many transactions
ALL_USERS_EVERY = 16          # every Nth message goes to all three users
SMTP_TIMEOUT = 60             # seconds for any one SMTP exchange


def daemons_or_skip():
    missing = [d for d in ("smtpd", "cleanup", "qmgr", "local") if not (BUILD / "bin" / d).exists()]
    if missing:
        pytest.skip(f"not built yet: {', '.join(missing)} (make SANITIZE=1 build-all)")


@pytest.fixture
def mailin(postern_instance):
    """Factory: a started mail-in instance; returns (inst, smtpd_port)."""
    daemons_or_skip()
    users = ensure_local_users()

    def make(main_extra=None, qmgr_wakeup="300", smtpd_maxproc="-"):
        port = get_free_port()
        inst = postern_instance(mailin_master_cf(port, smtpd_maxproc=smtpd_maxproc,
                                                 qmgr_wakeup=qmgr_wakeup), start=False)
        prepare_mail_root(inst.root)
        inst.write_main_cf(mailin_main_cf(inst.root, users, main_extra))
        inst.start()
        inst.smtpd_service = f"127.0.0.1:{port}"
        return inst, port

    return make


def rcpt_addr(user):
    return f"{user}@{DOMAIN}"


def fail_with_log(inst, what, since=0):
    pytest.fail(f"{what}\n{log_excerpt(inst, since)}")


def no_fatal_lines(inst, since=0):
    bad = re.findall(r"^.*\b(?:fatal|panic):.*$", inst.log_text()[since:], re.M)
    assert not bad, "fatal/panic in the log:\n" + "\n".join(bad[:30])


def log_problem_summary(inst, since=0):
    """Warning, error, fatal and panic lines and process exits, counted by kind."""
    kinds = {}
    for line in inst.log_text()[since:].splitlines():
        m = re.search(r"postfix/(\w+)\[\d+\]: (.*\b(?:warning|error|fatal|panic):.*)$", line)
        if not m:
            continue
        text = re.sub(r"\b[0-9A-Z]{12,}\b", "ID", m.group(2))
        text = re.sub(r"\d+", "N", text)
        key = f"{m.group(1)}: {text}"
        kinds[key] = kinds.get(key, 0) + 1
    return "\n".join(f"{n:6} {k}" for k, n in sorted(kinds.items(), key=lambda x: -x[1]))


# -- the concurrent load ---------------------------------------------------

class Submitter:
    """Sends a share of the messages over smtplib; records what the server said."""

    def __init__(self, port, jobs, results, lock):
        self.port, self.jobs, self.results, self.lock = port, jobs, results, lock

    def run(self):
        smtp = None
        sent = 0
        try:
            for job in self.jobs:
                if smtp is None or sent == MESSAGES_PER_SESSION:
                    if smtp is not None:
                        smtp.quit()
                    smtp = smtplib.SMTP("127.0.0.1", self.port, local_hostname=CLIENT_HELO,
                                        timeout=SMTP_TIMEOUT)
                    code, _ = smtp.ehlo()
                    if code != 250 or not smtp.has_extn("8bitmime"):
                        raise AssertionError(f"EHLO: {code}, 8BITMIME advertised: "
                                             f"{smtp.has_extn('8bitmime')}")
                    sent = 0
                self.send_one(smtp, job)
                sent += 1
            if smtp is not None:
                smtp.quit()
        except Exception as e:  # reported by the test, with the log
            with self.lock:
                self.results.setdefault("errors", []).append(repr(e))

    def send_one(self, smtp, job):
        token, sender, rcpts, wire = job["token"], job["sender"], job["rcpts"], job["wire"]
        code, text = smtp.mail(sender, ["BODY=8BITMIME"])
        if code != 250:
            raise AssertionError(f"{token}: MAIL FROM: {code} {text!r}")
        for r in rcpts:
            code, text = smtp.rcpt(r)
            if code != 250:
                raise AssertionError(f"{token}: RCPT TO:<{r}>: {code} {text!r}")
        code, text = smtp.data(wire)
        text = text.decode(errors="replace")
        if code != 250:
            raise AssertionError(f"{token}: end of DATA: {code} {text!r}")
        m = QUEUED_RE.search(text)
        if not m:
            raise AssertionError(f"{token}: no queue id in {text!r}")
        with self.lock:
            self.results[token] = m.group(1)


def make_jobs(count, run, users):
    jobs = []
    for i in range(count):
        token = f"{run}-{i:05d}"
        rcpts = [rcpt_addr(u) for u in users] if i % ALL_USERS_EVERY == 0 \
            else [rcpt_addr(users[i % len(users)])]
        sender = f"sender{i % 7}@{SENDER_DOMAIN}"
        wire, headers, body = build_message(token, sender, rcpts, seq=i)
        jobs.append({"token": token, "sender": sender, "rcpts": rcpts, "wire": wire,
                     "headers": headers, "body": body})
    return jobs


RECEIVED_RE = re.compile(
    rb"^Received: from (?P<helo>\S+) \((?P<client>[^)]*)\)\s+by (?P<by>\S+)"
    rb"(?: \([^)]*\))?\s+with (?P<proto>\S+) id (?P<id>\S+)"
    rb"(?:\s+for <(?P<for>[^>]*)>)?;\s+(?P<date>.+)$", re.S)


def check_delivered_copy(data, job, user, qid):
    """Problems with one delivered file (a list of strings; empty when right)."""
    problems = []
    lines, body = split_message(data)
    if lines is None:
        return [f"{job['token']}: no header/body separator"]
    if body != job["body"]:
        # Say where they part, not just that they do.
        exp = job["body"]
        at = next((k for k in range(min(len(body), len(exp))) if body[k] != exp[k]),
                  min(len(body), len(exp)))
        problems.append(f"{job['token']} ({user}): body differs at octet {at}: got "
                        f"{body[max(0, at - 40):at + 40]!r}, want {exp[max(0, at - 40):at + 40]!r}"
                        f" (lengths {len(body)}/{len(exp)})")
    original = job["headers"]
    if lines[-len(original):] != original:
        problems.append(f"{job['token']} ({user}): original header section changed: "
                        f"{lines[-len(original):]!r}")
    added = lines[:-len(original)]
    names = [a.split(b":", 1)[0].lower() for a in added]
    if not added or not added[0].startswith(b"Return-Path: "):
        problems.append(f"{job['token']} ({user}): first line is not Return-Path: {added[:1]!r}")
    elif added[0] != b"Return-Path: <" + job["sender"].encode() + b">":
        problems.append(f"{job['token']} ({user}): {added[0]!r}")
    want_dt = b"Delivered-To: " + rcpt_addr(user).encode()
    if names.count(b"delivered-to") != 1 or want_dt not in added:
        problems.append(f"{job['token']} ({user}): want one {want_dt!r}, added headers {added!r}")
    received = [a for a in added if a.lower().startswith(b"received:")]
    if len(received) != 1:
        problems.append(f"{job['token']} ({user}): {len(received)} Received: headers added")
        return problems
    # local prepends Return-Path and Delivered-To above smtpd's Received:.
    if b"delivered-to" in names and names.index(b"received") < names.index(b"delivered-to"):
        problems.append(f"{job['token']} ({user}): Received: above Delivered-To: {added!r}")
    m = RECEIVED_RE.match(received[0])
    if not m:
        problems.append(f"{job['token']} ({user}): Received: not in the expected shape: "
                        f"{received[0]!r}")
        return problems
    if m["helo"] != CLIENT_HELO.encode():
        problems.append(f"{job['token']}: Received: helo {m['helo']!r}")
    if b"[127.0.0.1]" not in m["client"]:
        problems.append(f"{job['token']}: Received: client {m['client']!r}")
    if m["proto"] != b"ESMTP":
        problems.append(f"{job['token']}: Received: protocol {m['proto']!r}")
    if m["id"].decode() != qid:
        problems.append(f"{job['token']}: Received: id {m['id']!r}, 250 said {qid}")
    want_for = job["rcpts"][0].encode() if len(job["rcpts"]) == 1 else None
    if m["for"] != want_for:
        problems.append(f"{job['token']}: Received: for <{m['for']!r}>, want {want_for!r}")
    try:
        email.utils.parsedate_to_datetime(m["date"].decode().replace("\n", " ").strip())
    except (TypeError, ValueError):
        problems.append(f"{job['token']}: Received: bad date {m['date']!r}")
    return problems


def run_clients(port, jobs, clients):
    results, lock = {}, threading.Lock()
    shares = [jobs[k::clients] for k in range(clients)]
    threads = [threading.Thread(target=Submitter(port, share, results, lock).run, daemon=True)
               for share in shares if share]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SMTP_TIMEOUT * (len(jobs) // clients + 2))
    alive = sum(t.is_alive() for t in threads)
    return results, alive


def test_concurrent_load_exactly_once(mailin):
    inst, port = mailin()
    users = list(LOCAL_USERS)
    run = f"L{random.randrange(16**6):06x}"
    jobs = make_jobs(MESSAGES, run, users)
    t0 = time.monotonic()
    results, hung = run_clients(port, jobs, CLIENTS)
    t_submit = time.monotonic() - t0
    errors = results.pop("errors", [])
    if errors or hung:
        fail_with_log(inst, f"{len(errors)} client errors, {hung} clients hung; first: "
                            f"{errors[:5]}")
    assert len(results) == len(jobs)

    expected = [(j["token"], u.split("@")[0]) for j in jobs for u in j["rcpts"]]
    index = MaildirIndex(inst.root, users)
    missing = wait_for_deliveries(index, expected, DRAIN_TIMEOUT)
    t_deliver = time.monotonic() - t0
    if missing:
        fail_with_log(inst, f"{len(missing)} of {len(expected)} deliveries missing after "
                            f"{DRAIN_TIMEOUT}s, e.g. {missing[:5]}")
    # Every queue file is removed once its recipients are final: wait for
    # that, then look again, so that a late second copy would be seen.
    qids = set(results.values())
    inst.wait_until(lambda: qids <= set(re.findall(r"(\S+): removed$", inst.log_text(), re.M)),
                    timeout=DRAIN_TIMEOUT, what="'ID: removed' for every queue id")
    index.scan()

    problems = []
    dups = [(t, u, index.count(t, u)) for t, u in expected if index.count(t, u) != 1]
    if dups:
        problems.append(f"{len(dups)} (token, user) pairs not delivered exactly once: {dups[:10]}")
    extra = set(index.by_token) - {j["token"] for j in jobs}
    if extra or index.untokened:
        problems.append(f"unexpected files: tokens {sorted(extra)[:10]}, "
                        f"without token {index.untokened[:5]}")
    by_token = {j["token"]: j for j in jobs}
    for token, copies in index.by_token.items():
        job = by_token.get(token)
        if not job:
            continue
        for user, path in copies:
            problems += check_delivered_copy(path.read_bytes(), job, user, results[token])
        if len(problems) > 40:
            break
    if problems:
        fail_with_log(inst, "\n".join(problems[:40]))
    assert len(qids) == len(jobs), "queue ids are not unique"
    no_fatal_lines(inst)
    sent = inst.count_log(r"relay=local, .*status=sent \(delivered to maildir\)")
    assert sent == len(expected), f"{sent} 'status=sent (delivered to maildir)' lines, " \
                                  f"want {len(expected)}"
    print(f"\n{len(jobs)} messages ({len(expected)} deliveries) from {CLIENTS} clients: "
          f"submitted in {t_submit:.1f}s, all delivered after {t_deliver:.1f}s")
    assert not queue_files(inst), f"queue not empty: {queue_files(inst)[:10]}"


# -- kill -9 under load ----------------------------------------------------

CRASH_SERVICES = ("smtpd", "cleanup", "qmgr", "local")


class CrashClient:
    """Sends until its quota is accepted; every attempt has its own token.

    An attempt counts as accepted only when the end of DATA got a 250 reply.
    """

    def __init__(self, port, cid, quota, users, run, record, lock, stop):
        self.port, self.cid, self.quota, self.users = port, cid, quota, users
        self.run_id, self.record, self.lock, self.stop = run, record, lock, stop

    def connect(self):
        deadline = time.monotonic() + SMTP_TIMEOUT
        while True:
            try:
                smtp = smtplib.SMTP("127.0.0.1", self.port, local_hostname=CLIENT_HELO,
                                    timeout=SMTP_TIMEOUT)
                if smtp.ehlo()[0] == 250:
                    return smtp
                smtp.close()
            except (OSError, smtplib.SMTPException):
                pass
            if time.monotonic() > deadline or self.stop.is_set():
                raise RuntimeError(f"client {self.cid}: cannot get an SMTP session")
            time.sleep(0.2)

    def run(self):
        accepted = attempt = 0
        smtp = None
        while accepted < self.quota and attempt < self.quota * 4 and not self.stop.is_set():
            attempt += 1
            token = f"{self.run_id}-{self.cid:02d}-{attempt:04d}"
            user = self.users[(self.cid + attempt) % len(self.users)]
            wire, _, _ = build_message(token, f"crash{self.cid}@{SENDER_DOMAIN}",
                                       [rcpt_addr(user)], seq=attempt)
            outcome, detail = "refused", ""
            try:
                if smtp is None:
                    smtp = self.connect()
                code, text = smtp.mail(f"crash{self.cid}@{SENDER_DOMAIN}", ["BODY=8BITMIME"])
                if code == 250:
                    code, text = smtp.rcpt(rcpt_addr(user))
                if code == 250:
                    outcome = "unknown"   # from here on the server may have it
                    code, text = smtp.data(wire)
                    outcome = "accepted" if code == 250 else "refused"
                detail = f"{code} {text.decode(errors='replace')}"
                if code != 250:
                    smtp.rset()
            except (OSError, smtplib.SMTPException, EOFError, RuntimeError) as e:
                detail = repr(e)
                try:
                    if smtp is not None:
                        smtp.close()
                except OSError:
                    pass
                smtp = None
            with self.lock:
                self.record[token] = (outcome, user, detail)
            if outcome == "accepted":
                accepted += 1
        if smtp is not None:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass


def test_kill9_during_load_loses_nothing(mailin):
    # qmgr wakes every second so that, once killed, master starts it again
    # even when no new mail arrives to do so.
    inst, port = mailin(qmgr_wakeup="1")
    users = list(LOCAL_USERS)
    run = f"K{random.randrange(16**6):06x}"
    clients = min(CLIENTS, 20)
    record, lock, stop = {}, threading.Lock(), threading.Event()
    quota = -(-CRASH_MESSAGES // clients)
    threads = [threading.Thread(target=CrashClient(port, c, quota, users, run, record, lock,
                                                   stop).run, daemon=True)
               for c in range(clients)]
    for t in threads:
        t.start()

    # Spread the kills over the load by progress, so that they happen while
    # mail is moving: each round kills one process of every service, in a
    # random order.
    kills, plan = [], []
    for _ in range(CRASH_ROUNDS):
        plan += random.sample(CRASH_SERVICES, len(CRASH_SERVICES))
    step = max(1, CRASH_MESSAGES // (len(plan) + 1))
    deadline = time.monotonic() + DRAIN_TIMEOUT
    for n, service in enumerate(plan, 1):
        while time.monotonic() < deadline and any(t.is_alive() for t in threads):
            with lock:
                done = sum(1 for o in record.values() if o[0] == "accepted")
            if done >= n * step:
                break
            time.sleep(0.02)
        name = inst.smtpd_service if service == "smtpd" else service
        pids = []
        for _ in range(50):         # the service may be between processes
            pids = inst.service_pids(name)
            if pids:
                break
            time.sleep(0.02)
        if not pids:
            kills.append((service, None))
            continue
        pid = random.choice(pids)
        try:
            os.kill(pid, signal.SIGKILL)
            kills.append((service, pid))
        except OSError:
            kills.append((service, None))
    for t in threads:
        t.join(timeout=max(1, deadline - time.monotonic()))
    stop.set()
    if any(t.is_alive() for t in threads):
        fail_with_log(inst, "clients still running when the drain deadline passed")

    accepted = {t: v for t, v in record.items() if v[0] == "accepted"}
    unknown = {t: v for t, v in record.items() if v[0] == "unknown"}
    refused = {t: v for t, v in record.items() if v[0] == "refused"}
    done_kills = [k for k in kills if k[1]]
    assert len(accepted) >= CRASH_MESSAGES, \
        f"only {len(accepted)} of {CRASH_MESSAGES} messages accepted; " \
        f"refusals e.g. {list(refused.values())[:5]}"

    expected = [(t, v[1]) for t, v in accepted.items()]
    index = MaildirIndex(inst.root, users)
    missing = wait_for_deliveries(index, expected, DRAIN_TIMEOUT)
    # Let the queue settle, then count again for late duplicates.
    settle = time.monotonic() + 30
    while queue_files(inst) and time.monotonic() < settle:
        time.sleep(0.2)
    index.scan()
    missing = index.missing(expected)
    dup = sum(max(0, index.count(t, u) - 1) for t, u in expected)
    extra_unknown = sum(1 for t in unknown if index.count(t))
    extra_refused = [t for t in refused if index.count(t)]
    print(f"\ncrash test: {len(record)} attempts, {len(accepted)} accepted (250), "
          f"{len(unknown)} with no reply after the data, {len(refused)} refused; "
          f"kills: {len(done_kills)} "
          f"({', '.join(f'{s}:{p}' for s, p in done_kills)})\n"
          f"duplicates among accepted: {dup}; delivered without a 250: "
          f"{extra_unknown} of the no-reply attempts, {len(extra_refused)} of the refused; "
          f"left in the queue: {[str(p.relative_to(inst.queue_dir)) for p in queue_files(inst)]}")
    print("warnings, errors and exits in the log while processes were killed:\n"
          + log_problem_summary(inst))
    if missing:
        fail_with_log(inst, f"LOST: {len(missing)} accepted messages never delivered, e.g. "
                            f"{missing[:10]}; kills {kills}")
    for s in CRASH_SERVICES:
        assert any(k[0] == s and k[1] for k in kills), f"no {s} process was found to kill: {kills}"
    # Every file in the Maildirs is one the clients sent.
    assert not index.untokened and set(index.by_token) <= set(record), \
        f"unexpected files: {index.untokened[:5]}, {sorted(set(index.by_token) - set(record))[:5]}"


# -- smuggling -------------------------------------------------------------

# Fake ends of data (RFC 5321 2.3.8, 4.1.1.4: only CRLF "." CRLF ends DATA).
SMUGGLE_VARIANTS = {
    "LF.LF": b"\n.\n",
    "CR.CR": b"\r.\r",
    "LF.CRLF": b"\n.\r\n",
    "CRLF.LF": b"\r\n.\n",
    "CR.CRLF": b"\r.\r\n",
    "CRLF.CR": b"\r\n.\r",
    "CR.LF": b"\r.\n",
    "LF.CR": b"\n.\r",
    "CRLF.CRCRLF": b"\r\n.\r\r\n",
}
SMUGGLER = f"smuggler@{SENDER_DOMAIN}"


def smuggle_once(port, name, variant, token, bytewise, rcpt, victim):
    """One session with a fake end of data inside DATA; returns a result dict."""
    smuggled = (f"MAIL FROM:<{SMUGGLER}>\r\nRCPT TO:<{victim}>\r\nDATA\r\n"
                f"X-Token: S{token}\r\nSubject: smuggled\r\n\r\nsmuggled S{token}\r\n").encode()
    head = (f"From: <e2e@{SENDER_DOMAIN}>\r\nTo: <{rcpt}>\r\nSubject: smuggle {name}\r\n"
            f"X-Token: {token}\r\n\r\nbefore {token}\r\ntext").encode()
    tail = f"after {token}\r\n".encode()
    out = {"variant": name, "bytewise": bytewise, "token": token}
    with RawSMTP(port, timeout=SMTP_TIMEOUT) as c:
        code, _ = c.reply()
        assert code == 220, f"banner {code}"
        code, lines = c.cmd(f"EHLO {CLIENT_HELO}")
        assert code == 250, f"EHLO {code} {lines}"
        assert c.cmd(f"MAIL FROM:<e2e@{SENDER_DOMAIN}>")[0] == 250
        assert c.cmd(f"RCPT TO:<{rcpt}>")[0] == 250
        code, lines = c.cmd("DATA")
        assert code == 354, f"DATA {code} {lines}"
        if bytewise:
            c.send(head)
            for b in variant:
                time.sleep(0.02)
                c.send(bytes([b]))
            time.sleep(0.02)
            c.send(smuggled)
            time.sleep(0.02)
            c.send(tail + b".\r\n")
        else:
            c.send(head + variant + smuggled + tail + b".\r\n")
        out["reply"] = c.reply()
        # Nothing else may follow: no replies to smuggled commands.
        out["unasked"] = c.pending()
        c.buf = b""
        out["quit"] = c.cmd("QUIT")
        out["after_quit"] = c.read_to_eof()
    return out


# smtpd_forbid_bare_newline policies and the reply each variant must get:
# every variant holds a bare CR or LF, so "reject" refuses every one of them
# (smtpd_forbid_bare_newline_reject_code, 550) and the others accept every
# one as a single message. Clients in mynetworks are exempt from "reject"
# by default (smtpd_forbid_bare_newline_exclusions = $mynetworks), as in
# Postfix; the tests' client is 127.0.0.1.
SMUGGLE_POLICIES = {
    "reject": ({"smtpd_forbid_bare_newline_exclusions": ""}, 550),
    "reject-exempt-mynetworks": ({}, 250),
    "normalize": ({"smtpd_forbid_bare_newline": "normalize",
                   "smtpd_forbid_bare_newline_exclusions": ""}, 250),
}


@pytest.mark.parametrize("policy", SMUGGLE_POLICIES)
def test_smuggling_end_to_end(mailin, policy):
    settings, want_code = SMUGGLE_POLICIES[policy]
    inst, port = mailin(main_extra=settings)
    run = f"S{random.randrange(16**6):06x}"
    rcpt, victim = rcpt_addr(LOCAL_USERS[0]), rcpt_addr(LOCAL_USERS[1])
    results = []
    for name, variant in SMUGGLE_VARIANTS.items():
        for bytewise in (False, True):
            token = f"{run}-{name}-{'b' if bytewise else 'w'}"
            results.append(smuggle_once(port, name, variant, token, bytewise, rcpt, victim))

    # A plain message after all of them: once it is in, anything smuggled
    # earlier would have been queued before it.
    sentinel = f"{run}-sentinel"
    wire, _, _ = build_message(sentinel, f"e2e@{SENDER_DOMAIN}", [victim])
    with smtplib.SMTP("127.0.0.1", port, local_hostname=CLIENT_HELO, timeout=SMTP_TIMEOUT) as s:
        s.sendmail(f"e2e@{SENDER_DOMAIN}", [victim], wire, mail_options=["BODY=8BITMIME"])
    index = MaildirIndex(inst.root)
    accepted = [r for r in results if r["reply"][0] == 250]
    expected = [(r["token"], LOCAL_USERS[0]) for r in accepted] + [(sentinel, LOCAL_USERS[1])]
    missing = wait_for_deliveries(index, expected, DRAIN_TIMEOUT)
    if missing:
        fail_with_log(inst, f"not delivered: {missing}")
    inst.wait_until(lambda: not queue_files(inst), timeout=DRAIN_TIMEOUT, what="an empty queue")
    index.scan()

    problems, table = [], []
    for r in results:
        code, lines = r["reply"]
        table.append(f"{r['variant']:12} {'bytewise' if r['bytewise'] else 'one write':9} "
                     f"-> {code} {' '.join(lines)[:70]}")
        where = f"{r['variant']} ({'bytewise' if r['bytewise'] else 'one write'})"
        if code != want_code:
            problems.append(f"{where}: end of data answered {code} {lines}, want {want_code}")
        if r["unasked"]:
            problems.append(f"{where}: replies nobody asked for (smuggled commands ran?): "
                            f"{r['unasked']!r}")
        if r["quit"][0] != 221:
            problems.append(f"{where}: QUIT answered {r['quit']}")
        if index.count("S" + r["token"]):
            problems.append(f"{where}: the smuggled message was delivered as a message")
        copies = index.by_token.get(r["token"], [])
        if code == 250:
            if len(copies) != 1:
                problems.append(f"{where}: 250 but {len(copies)} copies delivered")
                continue
            data = copies[0][1].read_bytes()
            body = split_message(data)[1] or b""
            # The fake end and what followed it stayed inside this message.
            for want in (f"before {r['token']}", f"MAIL FROM:<{SMUGGLER}>",
                         f"smuggled S{r['token']}", f"after {r['token']}"):
                if want.encode() not in body:
                    problems.append(f"{where}: delivered body lacks {want!r}: {body!r}")
            if b"\r" in data:
                problems.append(f"{where}: a CR reached the Maildir: {data!r}")
        elif copies:
            problems.append(f"{where}: refused with {code} but delivered")
    if re.search(rf"from=<{re.escape(SMUGGLER)}>", inst.log_text()):
        problems.append("the log shows a transaction from the smuggler's address")
    if any(f"<{SMUGGLER}>" in (split_message(p.read_bytes())[0] or [b""])[0].decode(errors="replace")
           for p in index.seen):
        problems.append("a delivered message has the smuggler as its Return-Path")
    print(f"\nend-of-data variants, policy {policy}:\n" + "\n".join(table))
    if problems:
        fail_with_log(inst, "\n".join(problems))
    no_fatal_lines(inst)


# -- make run + swaks ------------------------------------------------------

RUN_PORTS = (2525, 2587)


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def session_pids(sid):
    return [p for p in all_pids() if (st := proc_stat(p)) and st[1] == sid]


def stop_run(proc, top):
    """SIGTERM the foreground instance (Ctrl-C's effect), then kill what is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    left = session_pids(proc.pid)
    pidfile = top / "run" / "queue" / "pid" / "master.pid"
    try:
        mpid = int(pidfile.read_text().strip())
        left += [p for p in session_pids(mpid) if p not in left]
    except (OSError, ValueError):
        pass
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
    return left


def test_make_run_swaks():
    """What the README shows: `make run`, then swaks to $USER@localhost."""
    daemons_or_skip()
    if not shutil.which("swaks"):
        pytest.skip("swaks is not installed (apt-get install swaks)")
    # mk/run.sh with a throw-away working directory: ./run is created there,
    # and ./build points at the build under test.
    top = Path(tempfile.mkdtemp(prefix="postern-run-", dir="/tmp"))
    os.chmod(top, 0o755)
    (top / "mk").mkdir()
    shutil.copy(SRC / "mk" / "run.sh", top / "mk" / "run.sh")
    os.symlink(BUILD, top / "build")
    user = pwd.getpwuid(os.geteuid()).pw_name
    out_path = top / "run.out"
    env = dict(os.environ, USER=user)
    env["ASAN_OPTIONS"] = "detect_leaks=0"
    ports = RUN_PORTS
    out = open(out_path, "ab")

    def start():
        return subprocess.Popen(["sh", "mk/run.sh", "build"], cwd=top, env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)

    if not all(port_free(p) for p in RUN_PORTS):
        # Someone runs `make run` here already: let run.sh write its
        # configuration, stop it, then move this copy to free ports (run.sh
        # keeps an existing master.cf, as it promises).
        proc = start()
        mcf = top / "run" / "etc" / "master.cf"
        deadline = time.monotonic() + 30
        while not mcf.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        stop_run(proc, top)
        assert mcf.exists(), f"mk/run.sh wrote no master.cf:\n{out_path.read_text()[-3000:]}"
        ports = (get_free_port(), get_free_port())
        text = mcf.read_text()
        for old, new in zip(RUN_PORTS, ports):
            text = text.replace(f"127.0.0.1:{old} ", f"127.0.0.1:{new} ")
        mcf.write_text(text)
    proc = start()
    ok = False
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mk/run.sh exited {proc.returncode}:\n{out_path.read_text()[-4000:]}")
            if not port_free(ports[0]):
                try:
                    with RawSMTP(ports[0], timeout=5) as c:
                        if c.reply()[0] == 220:
                            break
                except (OSError, EOFError, ValueError):
                    pass
            if time.monotonic() > deadline:
                pytest.fail(f"no SMTP banner on {ports[0]} in 30s:\n{out_path.read_text()[-4000:]}")
            time.sleep(0.2)
        r = subprocess.run(["swaks", "--server", f"127.0.0.1:{ports[0]}",
                            "--to", f"{user}@localhost"], capture_output=True, text=True,
                           timeout=120, env=env)
        assert r.returncode == 0, f"swaks failed ({r.returncode}):\n{r.stdout}\n{r.stderr}\n" \
                                  f"instance output:\n{out_path.read_text()[-4000:]}"
        qm = re.search(r"<-\s+250 .*queued as (\S+)", r.stdout)
        assert qm, f"no 'queued as' in swaks output:\n{r.stdout}"
        new = top / "run" / "mail" / user / "Maildir" / "new"
        deadline = time.monotonic() + 60
        while not (new.is_dir() and any(new.iterdir())):
            if time.monotonic() > deadline:
                pytest.fail(f"nothing in {new} after 60s:\n{out_path.read_text()[-6000:]}")
            time.sleep(0.2)
        files = list(new.iterdir())
        assert len(files) == 1, files
        data = files[0].read_bytes()
        assert re.search(rb"(?m)^X-Mailer: swaks", data), data[:2000]
        assert re.search(rb"(?m)^Delivered-To: " + re.escape(user.encode()) + rb"@localhost$",
                         data), data[:2000]
        received = [h for h in split_message(data)[0] or [] if h.startswith(b"Received:")]
        assert received and re.search(rb"\sid " + re.escape(qm.group(1).encode()) + rb"\b",
                                      received[0]), data[:2000]
        ok = True
    finally:
        left = stop_run(proc, top)
        out.close()
        text = out_path.read_text(errors="replace")
        san = re.findall(r"^.*(?:ERROR: AddressSanitizer|runtime error:).*$", text, re.M)
        if ok:
            shutil.rmtree(top, ignore_errors=True)
    assert not san, "sanitizer reports in the instance's output:\n" + "\n".join(san[:20])
    assert not left, f"processes left after SIGTERM: {left}\n{text[-3000:]}"


def test_readme_shows_make_run_and_swaks():
    text = (SRC / "README.md").read_text()
    run_at = text.find("make run")
    swaks_at = text.find("swaks --server 127.0.0.1:2525 --to $USER@localhost")
    assert run_at >= 0, "README.md does not show `make run`"
    assert swaks_at > run_at, \
        "README.md must show `swaks --server 127.0.0.1:2525 --to $USER@localhost` after `make run`"
