"""smtpd: limits and malformed input.

Every limit reached gives its documented reply, and the server goes on
serving other clients (each test ends by checking a second session).
"""

import os
import random
import socket
import threading
import time

import pytest

from smtpd_support import (HOSTNAME, LOCAL_USER, SmtpClient, send_message,  # noqa: F401
                           smtpd_server)

RCPT = f"{LOCAL_USER}@{HOSTNAME}"
MSG = "Subject: test\r\n\r\nhello\r\n.\r\n"


def still_serving(srv):
    """Another client gets a normal session."""
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        assert c.cmd("QUIT") == "221 2.0.0 Bye"


def smtpd_rss_kib(srv):
    pids = srv.inst.service_pids(f"127.0.0.1:{srv.port}")
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def test_overlong_command_lines(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        c.ehlo()
        # 513 octets with CRLF: one over RFC 5321 4.5.3.1.4.
        assert c.cmd("NOOP " + "x" * 506) == "500 5.5.2 Error: command line too long"
        assert c.cmd("NOOP " + "x" * 505) == "250 2.0.0 Ok"
        # MAIL and RCPT may carry ESMTP parameters past 512 octets (RFC 3461 5).
        envid = "e" * 100
        orcpt = "rfc822;" + "o" * 60 + "@example.com"
        line = f"MAIL FROM:<{'s' * 64}@{'d' * 60}.example> RET=HDRS ENVID={envid} SIZE=1000"
        assert c.cmd(line + " " * (600 - len(line))) == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT={orcpt}") == \
            "250 2.1.5 Ok"
        # A huge line (no LF for 200 KB): one reply when it ends, nothing of it runs.
        c.send_raw("RSET " + "y" * 200000 + "\r\n")
        assert c.text() == "500 5.5.2 Error: command line too long"
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        # An overlong line followed by a command in the same write: both answered.
        c.send_raw("RSET " + "z" * 3000 + "\r\nNOOP\r\n")
        assert c.text() == "500 5.5.2 Error: command line too long"
        assert c.text() == "250 2.0.0 Ok"
        # The transaction survived: RSET never ran.
        assert c.cmd("DATA").startswith("354")
        c.send_raw(MSG)
        assert c.text().startswith("250 2.0.0 Ok: queued as")
    still_serving(srv)


def test_nul_bare_cr_and_garbage_in_commands(smtpd_server):
    srv = smtpd_server({"smtpd_hard_error_limit": "100"})
    with srv.client() as c:
        c.ehlo()
        c.send_raw(b"NOOP\x00\r\n")
        assert c.text() == "500 5.5.2 Error: NUL character in command"
        c.send_raw(b"MAIL FROM:<a@b.example>\rRCPT TO:<x@y.example>\r\n")
        assert c.text() == "500 5.5.2 Error: bare <CR> received"
        # Nothing of the refused line happened.
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "503 5.5.1 Error: need MAIL command"
        rnd = random.Random(4711)
        for _ in range(20):
            junk = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300)))
            junk = junk.replace(b"\n", b"")
            c.send_raw(junk + b"\r\n")
            code, _ = c.reply()
            assert 500 <= code <= 599
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
    still_serving(srv)


def test_bare_lf_commands(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        c.send_raw("EHLO client.example\n")
        assert c.text() == "550 5.5.2 Error: bare <LF> received"
        c.send_raw("NOOP\r\n")
        assert c.text() == "250 2.0.0 Ok"
    srv.inst.wait_for_log(r"bare <LF> received from localhost\[127\.0\.0\.1\]")
    # normalize: a bare LF ends a command line like CRLF.
    srv2 = smtpd_server({"smtpd_forbid_bare_newline": "normalize"})
    with srv2.client() as c:
        c.send_raw("EHLO client.example\n")
        code, _ = c.reply()
        assert code == 250
    # Excluded clients (default: $mynetworks) are not held to it.
    srv3 = smtpd_server({"mynetworks": "127.0.0.0/8"})
    with srv3.client() as c:
        c.send_raw("HELO client.example\n")
        assert c.text() == f"250 {HOSTNAME}"


def test_recipient_limit_and_overshoot(smtpd_server):
    srv = smtpd_server({"smtpd_recipient_limit": "10",
                        "smtpd_recipient_overshoot_limit": "5",
                        "smtpd_hard_error_limit": "3"})
    with srv.client() as c:
        c.ehlo()
        batch = "MAIL FROM:<a@b.example>\r\n" + f"RCPT TO:<{RCPT}>\r\n" * 30
        c.send_raw(batch)
        assert c.text() == "250 2.1.0 Ok"
        for _ in range(10):
            assert c.text() == "250 2.1.5 Ok"
        # 452 beyond the limit; beyond the overshoot each one is an error.
        for _ in range(5 + 3):
            assert c.text() == "452 4.5.3 Error: too many recipients"
        assert c.text() == f"421 4.7.0 {HOSTNAME} Error: too many errors"
        assert c.closed()
    srv.inst.wait_for_log(r"too many errors after RCPT from localhost\[127\.0\.0\.1\]")
    still_serving(srv)


def test_thousands_of_recipients(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        c.ehlo()
        c.send_raw("MAIL FROM:<a@b.example>\r\n" + f"RCPT TO:<{RCPT}>\r\n" * 1200)
        assert c.text() == "250 2.1.0 Ok"
        replies = [c.text() for _ in range(1200)]
        assert replies[:1000] == ["250 2.1.5 Ok"] * 1000
        assert replies[1000:] == ["452 4.5.3 Error: too many recipients"] * 200
        assert c.cmd("DATA").startswith("354")
        c.send_raw(MSG)
        assert c.text().startswith("250 2.0.0 Ok: queued as")
    txn = srv.cleanup.wait_committed(1)[0]
    assert len(txn.rcpts) == 1000
    still_serving(srv)


def test_hard_error_limit(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        for i in range(19):
            assert c.cmd(f"BOGUS{i}") == "500 5.5.2 Error: command not recognized"
        c.send_raw("BOGUS\r\n")
        assert c.text() == "500 5.5.2 Error: command not recognized"
        assert c.text() == f"421 4.7.0 {HOSTNAME} Error: too many errors"
        assert c.closed()
    srv.inst.wait_for_log(r"too many errors after UNKNOWN from localhost\[127\.0\.0\.1\]")
    srv.inst.wait_for_log(r"disconnect from localhost\[127\.0\.0\.1\] unknown=0/20 "
                          r"commands=0/20")
    still_serving(srv)


def test_soft_error_limit_delays_without_blocking_others(smtpd_server):
    srv = smtpd_server({"smtpd_soft_error_limit": "2", "smtpd_error_sleep_time": "1s"})
    with srv.client() as c:
        assert c.cmd("BOGUS") .startswith("500")
        assert c.cmd("BOGUS").startswith("500")
        # Past the soft limit each reply waits smtpd_error_sleep_time.
        start = time.monotonic()
        c.send_raw("NOOP\r\n")
        # Meanwhile another client is served at once: the delay is a timer.
        other_start = time.monotonic()
        still_serving(srv)
        assert time.monotonic() - other_start < 0.8
        assert c.text() == "250 2.0.0 Ok"
        assert time.monotonic() - start >= 0.9
        start = time.monotonic()
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        assert time.monotonic() - start >= 0.9
        # Delivering mail resets the error count: no more delay.
        reply = send_message(c, "a@b.example", [RCPT], MSG)
        assert reply.startswith("250 2.0.0 Ok: queued as")
        start = time.monotonic()
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        assert time.monotonic() - start < 0.5


def test_junk_command_limit(smtpd_server):
    srv = smtpd_server({"smtpd_junk_command_limit": "3", "smtpd_hard_error_limit": "2"})
    with srv.client() as c:
        for _ in range(4):
            assert c.cmd("RSET") == "250 2.0.0 Ok"    # the 4th counts as an error
        c.send_raw("RSET\r\n")
        assert c.text() == "250 2.0.0 Ok"
        assert c.text() == f"421 4.7.0 {HOSTNAME} Error: too many errors"
        assert c.closed()
    still_serving(srv)


def test_idle_timeout(smtpd_server):
    srv = smtpd_server({"smtpd_timeout": "1s"})
    with srv.client() as c:
        c.ehlo()
        start = time.monotonic()
        assert c.text() == f"421 4.4.2 {HOSTNAME} Error: timeout exceeded"
        assert 0.8 <= time.monotonic() - start < 5
        assert c.closed()
    srv.inst.wait_for_log(r"timeout after EHLO from localhost\[127\.0\.0\.1\]")
    still_serving(srv)


def test_timeout_inside_data(smtpd_server):
    srv = smtpd_server({"smtpd_timeout": "1s"})
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        c.send_raw("Subject: partial\r\n\r\nno end")
        assert c.text() == f"421 4.4.2 {HOSTNAME} Error: timeout exceeded"
    srv.inst.wait_for_log(r"timeout after DATA \(\d+ bytes\) from localhost\[127\.0\.0\.1\]")
    txns = srv.cleanup.wait_closed()
    assert not any(t.committed or t.ended for t in txns)


def test_session_time_limit(smtpd_server):
    srv = smtpd_server({"smtpd_session_time_limit": "2s"})
    with srv.client() as c:
        c.ehlo()
        start = time.monotonic()
        replies = []
        while time.monotonic() - start < 6:
            try:
                c.send_raw("NOOP\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass    # the 421 came while we slept: read it below
            replies.append(c.text())
            if replies[-1].startswith("421"):
                break
            time.sleep(0.2)
        assert replies[-1] == f"421 4.4.2 {HOSTNAME} Error: session time limit exceeded"
        assert c.closed()
        assert 1.5 < time.monotonic() - start < 5
    srv.inst.wait_for_log(r"session time limit exceeded after NOOP from "
                          r"localhost\[127\.0\.0\.1\]")
    still_serving(srv)


def test_connection_count_limit(smtpd_server):
    srv = smtpd_server({"smtpd_client_connection_count_limit": "2"})
    a, b = srv.client(), srv.client()
    try:
        with srv.client(greet=False) as c:
            assert c.text() == f"421 4.7.0 {HOSTNAME} Error: too many connections from " \
                               "127.0.0.1"
            assert c.closed()
        srv.inst.wait_for_log(r"warning: Connection concurrency limit exceeded: 3 from "
                              rf"localhost\[127\.0\.0\.1\] for service 127\.0\.0\.1:{srv.port}")
        assert a.cmd("NOOP") == "250 2.0.0 Ok"
    finally:
        a.close()
        b.close()
    time.sleep(0.3)
    still_serving(srv)
    # Clients in smtpd_client_event_limit_exceptions are not counted.
    srv2 = smtpd_server({"smtpd_client_connection_count_limit": "1",
                         "smtpd_client_event_limit_exceptions": "127.0.0.1"})
    with srv2.client() as x, srv2.client() as y:
        assert x.cmd("NOOP") == y.cmd("NOOP") == "250 2.0.0 Ok"


def test_forbidden_commands(smtpd_server):
    srv = smtpd_server()
    for line in ("GET / HTTP/1.1", "POST /x HTTP/1.0", "CONNECT host:25 HTTP/1.1",
                 "Subject: looks like a header"):
        with srv.client() as c:
            assert c.cmd(line) == "521 5.7.0 Error: I can break rules, too. Goodbye."
            assert c.closed()
    srv.inst.wait_for_log(r"warning: non-SMTP command from localhost\[127\.0\.0\.1\]: "
                          r"GET / HTTP/1\.1")
    still_serving(srv)


def test_message_size_limit_in_data(smtpd_server):
    srv = smtpd_server({"message_size_limit": "1000"})
    with srv.client() as c:
        c.ehlo()
        # SIZE= over the limit is refused at MAIL.
        assert c.cmd("MAIL FROM:<a@b.example> SIZE=1001") == \
            "552 5.3.4 Message size exceeds fixed limit"
        body = "Subject: big\r\n\r\n" + ("x" * 70 + "\r\n") * 100 + ".\r\n"
        assert send_message(c, "a@b.example", [RCPT], body) == \
            "552 5.3.4 Error: message file too big"
        # In step: the rest of the big message was read, not taken as commands.
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        assert send_message(c, "a@b.example", [RCPT], MSG).startswith("250 2.0.0 Ok")
    assert len(srv.cleanup.wait_committed(1)) == 1
    srv.inst.wait_for_log(r"reject: END-OF-MESSAGE from localhost\[127\.0\.0\.1\]: 552 5\.3\.4 "
                          r"Error: message file too big; from=<a@b\.example> "
                          r"to=<root@mx\.example\.com> proto=ESMTP helo=<client\.example>")


def test_client_that_does_not_read_replies(smtpd_server):
    """Pipelined commands from a client that never reads: bounded memory, all answered."""
    srv = smtpd_server({"smtpd_junk_command_limit": "1000000"})
    n = 60000
    with srv.client() as c:
        c.ehlo()
        before = smtpd_rss_kib(srv)
        sender = threading.Thread(target=c.send_raw, args=(b"RSET\r\n" * n,))
        sender.start()
        time.sleep(2)
        grown = smtpd_rss_kib(srv) - before
        assert grown < 16 * 1024, f"smtpd grew by {grown} KiB while the client did not read"
        got = 0
        while got < n:
            assert c.text() == "250 2.0.0 Ok"
            got += 1
        sender.join()
        assert c.cmd("QUIT") == "221 2.0.0 Bye"


def test_cleanup_backpressure(smtpd_server):
    """While cleanup does not read, smtpd stops reading its client instead of buffering."""
    srv = smtpd_server({"message_size_limit": "0"}, cleanup="stall", end_delay=3)
    size = 8 * 1024 * 1024
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        before = smtpd_rss_kib(srv)
        line = b"y" * 78 + b"\r\n"
        body = line * (size // len(line)) + b".\r\n"
        sender = threading.Thread(target=c.send_raw, args=(body,))
        sender.start()
        time.sleep(1.5)
        grown = smtpd_rss_kib(srv) - before
        assert grown < 4 * 1024, f"smtpd grew by {grown} KiB while cleanup stalled"
        sender.join(timeout=30)
        assert c.text().startswith("250 2.0.0 Ok: queued as")
    txn = srv.cleanup.wait_committed(1)[0]
    assert txn.data.count(b"\n" + b"y" * 78) == size // len(line)
