"""smtpd: conversation tests for every command and ESMTP extension.

Each test talks raw SMTP to a real smtpd (master-started, private instance)
whose cleanup is the FakeCleanup of smtpd_support, and checks the exact
replies (RFC 5321 codes with RFC 3463 enhanced codes) and what cleanup
received.
"""

import re
import time

import pytest

from smtpd_support import (HOSTNAME, LOCAL_USER, send_message,  # noqa: F401
                           smtpd_server)

RCPT = f"{LOCAL_USER}@{HOSTNAME}"
MSG = "Subject: test\r\n\r\nhello\r\n.\r\n"


def test_greeting_ehlo_helo(smtpd_server):
    srv = smtpd_server({"smtpd_banner": "$myhostname ESMTP $mail_name (test)"})
    with srv.client(greet=False) as c:
        assert c.text() == f"220 {HOSTNAME} ESMTP Postern (test)"
        c.send_raw("EHLO client.example\r\n")
        code, lines = c.reply()
        assert code == 250
        assert lines == [HOSTNAME, "PIPELINING", "SIZE 10240000", "ENHANCEDSTATUSCODES",
                         "8BITMIME", "DSN", "SMTPUTF8", "CHUNKING"]
        assert c.cmd("HELO client.example") == f"250 {HOSTNAME}"
        assert c.cmd("EHLO") == "501 5.5.4 Syntax: EHLO hostname"
        assert c.cmd("HELO") == "501 5.5.4 Syntax: HELO hostname"
        assert c.cmd("EHLO [192.0.2.1]").startswith("250")
        assert c.cmd("EHLO [IPv6:2001:db8::1]").startswith("250")
        assert c.cmd("EHLO 192.0.2.1").startswith("250")
        assert c.cmd("EHLO my_host.example").startswith("250")
        for bad in ("bad..name", "[300.1.1.1]", "[IPv6:zz]", "a,b", "-" * 64 + ".example",
                    "a b", "[192.0.2.1"):
            assert c.cmd(f"EHLO {bad}").startswith("501 5.5.2 <"), bad
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
        assert c.closed()


def test_ehlo_keywords_follow_parameters(smtpd_server):
    srv = smtpd_server({"disable_vrfy_command": "no", "message_size_limit": "0",
                        "smtputf8_enable": "no",
                        "smtpd_discard_ehlo_keywords": "chunking, dsn"})
    with srv.client() as c:
        assert c.ehlo() == [HOSTNAME, "PIPELINING", "SIZE", "VRFY", "ENHANCEDSTATUSCODES",
                            "8BITMIME"]
        # Discarded extensions are refused as parameters and commands too.
        assert c.cmd("MAIL FROM:<a@b.example> RET=HDRS") == "555 5.5.4 Unsupported option: RET"
        assert c.cmd("MAIL FROM:<a@b.example> SMTPUTF8").startswith("555 5.5.4")
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}> NOTIFY=NEVER").startswith("555 5.5.4")
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        c.send_raw("BDAT 5 LAST\r\nhello")
        assert c.text() == "502 5.5.1 Error: command not implemented"
        assert c.cmd("NOOP") == "250 2.0.0 Ok"


def test_full_transaction_and_cleanup_view(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        c.ehlo("client.example")
        assert c.cmd("MAIL FROM:<Sender@Example.ORG> SIZE=100 BODY=8BITMIME RET=HDRS "
                     "ENVID=abc+2Bdef") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}> NOTIFY=SUCCESS,FAILURE "
                     "ORCPT=rfc822;orig+40example.com") == "250 2.1.5 Ok"
        assert c.cmd("DATA") == "354 End data with <CR><LF>.<CR><LF>"
        c.send_raw("Subject: x\r\n\r\n..leading dot\r\n.\r\n")
        reply = c.text()
        m = re.match(r"250 2\.0\.0 Ok: queued as (\w+)$", reply)
        assert m, reply
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
    txn = srv.cleanup.wait_committed(1)[0]
    assert txn.queue_id == m.group(1)
    assert txn.origin == "smtpd"
    assert txn.flags & 2                          # Received: header written by smtpd
    assert txn.sender == "Sender@example.org"     # domain folded, local part kept
    assert txn.sender_attrs["size"] == 100
    assert txn.sender_attrs["body"] == "8BITMIME"
    assert txn.sender_attrs["ret"] == "HDRS"
    assert txn.sender_attrs["envid"] == "abc+def"
    assert txn.sender_attrs["smtputf8"] == 0
    (addr, rattrs), = txn.rcpts
    assert addr == RCPT
    assert rattrs["notify"] == 1 | 2              # QFILE_NOTIFY_SUCCESS | FAILURE
    assert rattrs["orcpt"] == "rfc822;orig@example.com"
    assert txn.attrs["client_address"] == "127.0.0.1"
    assert txn.attrs["client_name"] == "localhost"
    assert txn.attrs["helo_name"] == "client.example"
    assert txn.attrs["protocol_name"] == "ESMTP"
    lines = txn.data.split(b"\n")
    assert lines[0] == b"Received: from client.example (localhost [127.0.0.1])"
    assert lines[1] == f"\tby {HOSTNAME} (Postern) with ESMTP id {txn.queue_id}".encode()
    assert re.match(rb"\tfor <root@mx\.example\.com>; \w{3}, [ \d]\d \w{3} \d{4} "
                    rb"\d\d:\d\d:\d\d [+-]\d{4}", lines[2]), lines[2]
    assert lines[3:] == [b"Subject: x", b"", b".leading dot", b""]
    log = srv.log()
    assert f"{txn.queue_id}: client=localhost[127.0.0.1]" in log
    srv.inst.wait_for_log(r"disconnect from localhost\[127\.0\.0\.1\] ehlo=1 mail=1 rcpt=1 "
                          r"data=1 quit=1 commands=5")


def test_received_without_for_and_helo_protocol(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        assert c.cmd("HELO old.example") == f"250 {HOSTNAME}"
        assert c.cmd("MAIL FROM:<>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        assert c.cmd("RCPT TO:<postmaster>") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        c.send_raw(MSG)
        assert c.text().startswith("250 2.0.0 Ok: queued as")
    txn = srv.cleanup.wait_committed(1)[0]
    lines = txn.data.split(b"\n")
    assert lines[0] == b"Received: from old.example (localhost [127.0.0.1])"
    assert lines[1] == f"\tby {HOSTNAME} (Postern) with SMTP id {txn.queue_id};".encode()
    assert lines[2].startswith(b"\t") and b"for" not in lines[2]
    assert txn.sender == ""
    assert [r for r, _ in txn.rcpts] == [RCPT, f"postmaster@{HOSTNAME}"]


def test_sequence_errors(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "503 5.5.1 Error: need MAIL command"
        assert c.cmd("DATA") == "503 5.5.1 Error: need RCPT command"
        c.ehlo()
        assert c.cmd("DATA") == "503 5.5.1 Error: need RCPT command"
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd("MAIL FROM:<a@b.example>") == "503 5.5.1 Error: nested MAIL command"
        assert c.cmd("DATA") == "503 5.5.1 Error: need RCPT command"
        assert c.cmd("RCPT TO:<x@elsewhere.example>").startswith("554 5.7.1")
        assert c.cmd("DATA") == "554 5.5.1 Error: no valid recipients"
        assert c.cmd("RSET") == "250 2.0.0 Ok"
        assert c.cmd("RSET extra") == "501 5.5.4 Syntax: RSET"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "503 5.5.1 Error: need MAIL command"
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        assert c.cmd("DATA extra") == "501 5.5.4 Syntax: DATA"
        assert c.cmd("DATA") == "354 End data with <CR><LF>.<CR><LF>"
        c.send_raw(MSG)
        assert c.text().startswith("250 2.0.0 Ok: queued as")
        # The transaction is over: RCPT needs a new MAIL.
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "503 5.5.1 Error: need MAIL command"
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
    srv.cleanup.wait_committed(1)


def test_helo_required(smtpd_server):
    srv = smtpd_server({"smtpd_helo_required": "yes"})
    with srv.client() as c:
        assert c.cmd("MAIL FROM:<a@b.example>") == "503 5.5.1 Error: send HELO/EHLO first"
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"


def test_mail_syntax_and_parameters(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL") == "501 5.5.4 Syntax: MAIL FROM:<address>"
        assert c.cmd("MAIL TO:<a@b.example>") == "501 5.5.4 Syntax: MAIL FROM:<address>"
        assert c.cmd("MAIL FROM:") == "501 5.5.4 Syntax: MAIL FROM:<address>"
        assert c.cmd("MAIL FROM:<a@b@c>") == "501 5.1.7 Bad sender address syntax"
        assert c.cmd("MAIL FROM:<a@[300.0.0.1]>") == "501 5.1.7 Bad sender address syntax"
        assert c.cmd("MAIL FROM:<" + "a" * 65 + "@b.example>") == \
            "501 5.1.7 Sender address too long"
        assert c.cmd("MAIL FROM:<a@b.example> FOO=BAR") == "555 5.5.4 Unsupported option: FOO"
        assert c.cmd("MAIL FROM:<a@b.example> SIZE=abc") == \
            "501 5.5.4 Bad message size syntax"
        assert c.cmd("MAIL FROM:<a@b.example> BODY=BINARYMIME").startswith("501 5.5.4")
        assert c.cmd("MAIL FROM:<a@b.example> RET=FULL RET=HDRS") == \
            "501 5.5.4 Duplicate parameter"
        assert c.cmd("MAIL FROM:<a@b.example> ENVID=a+2") == \
            "501 5.5.4 Bad ENVID parameter syntax"
        assert c.cmd("MAIL FROM:<a@b.example> SIZE=10240001") == \
            "552 5.3.4 Message size exceeds fixed limit"
        assert c.cmd("MAIL FROM:<a@b.example> SIZE=" + "9" * 20) == \
            "552 5.3.4 Message size exceeds fixed limit"
        # Unicode needs SMTPUTF8 (RFC 6531 3.4).
        assert c.cmd("MAIL FROM:<jos\u00e9@b.example>") == \
            "553 5.6.7 Must declare SMTPUTF8 to send unicode address"
        assert c.cmd("MAIL FROM:<jos\u00e9@b.example> SMTPUTF8") == "250 2.1.0 Ok"
        assert c.cmd("RSET") == "250 2.0.0 Ok"
        # Tolerated forms (strict_rfc821_envelopes = no): blanks, no brackets.
        assert c.cmd("MAIL FROM: <a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd("RSET") == "250 2.0.0 Ok"
        assert c.cmd("mail from:a@b.example") == "250 2.1.0 Ok"
        assert c.cmd("RSET") == "250 2.0.0 Ok"
        assert c.cmd("MAIL FROM:<@route.example:a@b.example>") == "250 2.1.0 Ok"
    srv.inst.wait_for_log(r"NOQUEUE: reject: MAIL from localhost\[127\.0\.0\.1\]: 552 5\.3\.4 "
                          r"Message size exceeds fixed limit; proto=ESMTP helo=<client\.example>")


def test_strict_rfc821_envelopes(smtpd_server):
    srv = smtpd_server({"strict_rfc821_envelopes": "yes"})
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:a@b.example") == "501 5.1.7 Bad sender address syntax"
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"


def test_rcpt_syntax_and_dsn(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd("RCPT") == "501 5.5.4 Syntax: RCPT TO:<address>"
        assert c.cmd("RCPT FROM:<x@y.example>") == "501 5.5.4 Syntax: RCPT TO:<address>"
        assert c.cmd("RCPT TO:<>") == "501 5.1.3 Bad recipient address syntax"
        assert c.cmd("RCPT TO:<a b@c.example>") == "501 5.1.3 Bad recipient address syntax"
        assert c.cmd(f"RCPT TO:<{RCPT}> NOTIFY=BOGUS") == "501 5.5.4 Bad NOTIFY parameter syntax"
        assert c.cmd(f"RCPT TO:<{RCPT}> NOTIFY=NEVER,SUCCESS") == \
            "501 5.5.4 Bad NOTIFY parameter syntax"
        assert c.cmd(f"RCPT TO:<{RCPT}> ORCPT=rfc822;a+2") == \
            "501 5.5.4 Bad ORCPT parameter syntax"
        assert c.cmd(f"RCPT TO:<{RCPT}> SIZE=1").startswith("555 5.5.4")
        assert c.cmd(f"RCPT TO:<{RCPT}> NOTIFY=NEVER") == "250 2.1.5 Ok"
        assert c.cmd("RCPT TO:<\"root\"@mx.example.com> NOTIFY=DELAY") == "250 2.1.5 Ok"
        assert c.cmd("RCPT TO:<root@[127.0.0.1]>") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        c.send_raw(MSG)
        assert c.text().startswith("250")
    txn = srv.cleanup.wait_committed(1)[0]
    assert [(a, d["notify"]) for a, d in txn.rcpts] == [(RCPT, 8), (RCPT, 4),
                                                        ("root@[127.0.0.1]", 0)]
    # Several recipients: no "for" clause in Received:.
    assert b"for <" not in txn.data.split(b"\n\n")[0]


def test_smtputf8_transaction(smtpd_server):
    srv = smtpd_server({"mydestination": "$myhostname, localhost, b\u00fccher.example"})
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<postmaster@b\u00fccher.example>") == \
            "553 5.6.7 Must declare SMTPUTF8 to send unicode address"
        assert c.cmd("RSET") == "250 2.0.0 Ok"
        assert c.cmd("MAIL FROM:<\u00e4@b.example> SMTPUTF8") == "250 2.1.0 Ok"
        assert c.cmd("RCPT TO:<postmaster@b\u00fccher.example>") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        c.send_raw("Subject: \u00fcber\r\n\r\n\u00e4\u00f6\u00fc\r\n.\r\n")
        assert c.text().startswith("250")
        # Malformed UTF-8 in a command line.
        c.send_raw(b"NOOP \xc3\x28\r\n")
        assert c.text() == "500 5.5.2 Error: bad UTF-8 syntax"
    txn = srv.cleanup.wait_committed(1)[0]
    assert txn.sender_attrs["smtputf8"] == 1
    assert txn.sender == "\u00e4@b.example"
    assert "\u00e4\u00f6\u00fc\n".encode() in txn.data


def test_vrfy_expn_help_noop_unknown(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        assert c.cmd("VRFY root") == "502 5.5.1 VRFY command is disabled"
        assert c.cmd("EXPN staff") == "502 5.5.1 Error: command not implemented"
        c.send_raw("HELP\r\n")
        code, lines = c.reply()
        assert code == 214 and lines[0].startswith("2.0.0 Commands:")
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        assert c.cmd("NOOP with an argument") == "250 2.0.0 Ok"
        assert c.cmd("FROB") == "500 5.5.2 Error: command not recognized"
        assert c.cmd("") == "500 5.5.2 Error: bad syntax"
        assert c.cmd("STARTTLS") == "502 5.5.1 Error: command not implemented"
        # smtpd_sasl_auth_enable = no (the default): Postfix's answer.
        assert c.cmd("AUTH PLAIN AGFhAGI=") == "503 5.5.1 Error: authentication not enabled"
        assert c.cmd("ETRN example.com") == "502 5.5.1 Error: command not implemented"
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
    srv.inst.wait_for_log(r"disconnect from localhost\[127\.0\.0\.1\] starttls=0/1 auth=0/1 "
                          r"noop=2 vrfy=0/1 expn=0/1 help=1 etrn=0/1 quit=1 unknown=0/2 "
                          r"commands=4/11")


def test_vrfy_enabled(smtpd_server):
    srv = smtpd_server({"disable_vrfy_command": "no"})
    with srv.client() as c:
        assert c.cmd("VRFY") == "501 5.5.4 Syntax: VRFY address"
        assert c.cmd(f"VRFY <{RCPT}>") == f"252 2.0.0 {RCPT}"
        assert c.cmd("VRFY root@localhost") == "252 2.0.0 root@localhost"
        assert c.cmd("VRFY nosuchuser4711@mx.example.com") == \
            "550 5.1.1 <nosuchuser4711@mx.example.com>: Recipient address rejected: " \
            "User unknown in local recipient table"
        assert c.cmd("VRFY a@b@c").startswith("501 5.1.3")


def test_pipelining_batch_in_one_write(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        c.ehlo()
        c.send_raw("MAIL FROM:<a@b.example>\r\n"
                   f"RCPT TO:<{RCPT}>\r\n"
                   "RCPT TO:<nobody@elsewhere.example>\r\n"
                   "RCPT TO:<postmaster@localhost>\r\n"
                   "DATA\r\n")
        assert c.text() == "250 2.1.0 Ok"
        assert c.text() == "250 2.1.5 Ok"
        assert c.text() == "554 5.7.1 <nobody@elsewhere.example>: Relay access denied"
        assert c.text() == "250 2.1.5 Ok"
        assert c.text() == "354 End data with <CR><LF>.<CR><LF>"
        # End of data, then the next transaction and QUIT, all in one write.
        c.send_raw("one\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<postmaster@localhost>\r\nDATA\r\n")
        assert c.text().startswith("250 2.0.0 Ok: queued as")
        assert c.text() == "250 2.1.0 Ok"
        assert c.text() == "250 2.1.5 Ok"
        assert c.text().startswith("354")
        c.send_raw("two\r\n.\r\nQUIT\r\n")
        assert c.text().startswith("250 2.0.0 Ok: queued as")
        assert c.text() == "221 2.0.0 Bye"
        assert c.closed()
    done = srv.cleanup.wait_committed(2)
    assert done[0].data.endswith(b"\none\n") and done[1].data.endswith(b"\ntwo\n")
    assert len(done[0].rcpts) == 2


def test_pipelining_after_data_is_refused(smtpd_server):
    """Text sent right behind DATA is never taken as content before the 354."""
    srv = smtpd_server()
    with srv.client() as c:
        c.ehlo()
        c.send_raw(f"MAIL FROM:<a@b.example>\r\nRCPT TO:<{RCPT}>\r\n"
                   "DATA\r\nSubject: smuggled\r\n\r\nx\r\n.\r\n")
        assert c.text() == "250 2.1.0 Ok"
        assert c.text() == "250 2.1.5 Ok"
        assert c.text() == "554 5.5.0 Error: SMTP protocol synchronization"
        assert c.closed()
    srv.inst.wait_for_log(r"improper command pipelining after DATA from "
                          r"localhost\[127\.0\.0\.1\]: Subject: smuggled<CR><LF>")
    assert srv.cleanup.committed() == []
    srv.cleanup.wait_closed()


def test_pipelining_after_ehlo_is_refused(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        c.send_raw("EHLO client.example\r\nMAIL FROM:<a@b.example>\r\n")
        assert c.text() == "554 5.5.0 Error: SMTP protocol synchronization"
        assert c.closed()
    srv.inst.wait_for_log(r"improper command pipelining after EHLO")


def test_pipelining_tolerated_when_allowed(smtpd_server):
    srv = smtpd_server({"smtpd_forbid_unauth_pipelining": "no"})
    with srv.client() as c:
        c.send_raw(f"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<{RCPT}>\r\n"
                   "DATA\r\nSubject: early\r\n\r\nx\r\n.\r\n")
        code, _ = c.reply()
        assert code == 250
        assert c.text() == "250 2.1.0 Ok"
        assert c.text() == "250 2.1.5 Ok"
        assert c.text().startswith("354")
        assert c.text().startswith("250 2.0.0 Ok: queued as")
    txn = srv.cleanup.wait_committed(1)[0]
    assert txn.data.endswith(b"Subject: early\n\nx\n")
    srv.inst.wait_for_log(r"improper command pipelining after EHLO")


def test_bdat_chunks(smtpd_server):
    srv = smtpd_server()
    body1 = b"Subject: chunked\r\n\r\nline one\r\n.not stuffed\r\n"
    body2 = b"bare\rcr? no: a real CR LF\r\nlast line without end"
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example> BODY=8BITMIME") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        c.send_raw(b"BDAT %d\r\n" % len(body1) + body1)
        assert c.text() == f"250 2.0.0 Ok: {len(body1)} bytes"
        c.send_raw(b"BDAT 0\r\n")
        assert c.text() == "250 2.0.0 Ok: 0 bytes"
        assert c.cmd("DATA") == "503 5.5.1 Error: DATA after BDAT"
        assert c.cmd("MAIL FROM:<x@y.example>") == "503 5.5.1 Error: MAIL after BDAT"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "503 5.5.1 Error: RCPT after BDAT"
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        body2 = b"second chunk\r\nlast line without end"
        c.send_raw(b"BDAT %d LAST\r\n" % len(body2) + body2)
        reply = c.text()
        total = len(body1) + len(body2)
        assert re.match(rf"250 2\.0\.0 Ok: {total} bytes queued as \w+$", reply), reply
        # After BDAT LAST the transaction is over.
        c.send_raw(b"BDAT 3 LAST\r\nabc")
        assert c.text() == "503 5.5.1 Error: need MAIL command"
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
    txn = srv.cleanup.wait_committed(1)[0]
    content = txn.data.split(b"\n", 3)[3]
    assert content == (b"Subject: chunked\n\nline one\n.not stuffed\n"
                       b"second chunk\nlast line without end")


def test_bdat_zero_last_and_pipelined(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        c.ehlo()
        # The whole transaction in one write: BDAT needs no 354.
        c.send_raw(f"MAIL FROM:<a@b.example>\r\nRCPT TO:<{RCPT}>\r\n"
                   "BDAT 7\r\nhello\r\nBDAT 0 LAST\r\n"
                   f"MAIL FROM:<>\r\nRCPT TO:<{RCPT}>\r\nBDAT 5 LAST\r\nworldQUIT\r\n")
        assert c.text() == "250 2.1.0 Ok"
        assert c.text() == "250 2.1.5 Ok"
        assert c.text() == "250 2.0.0 Ok: 7 bytes"
        assert re.match(r"250 2\.0\.0 Ok: 7 bytes queued as \w+$", c.text())
        assert c.text() == "250 2.1.0 Ok"
        assert c.text() == "250 2.1.5 Ok"
        assert re.match(r"250 2\.0\.0 Ok: 5 bytes queued as \w+$", c.text())
        assert c.text() == "221 2.0.0 Bye"
    done = srv.cleanup.wait_committed(2)
    assert done[0].data.endswith(b"\nhello\n")
    assert done[1].data.endswith(b"\nworld")
    srv.inst.wait_for_log(r"ehlo=1 mail=2 rcpt=2 bdat=3 quit=1 commands=9")


def test_bdat_refused_chunks_are_skipped(smtpd_server):
    """A BDAT that cannot be taken is read and discarded, never parsed as commands."""
    srv = smtpd_server()
    with srv.client() as c:
        c.ehlo()
        chunk = "RCPT TO:<x@y.example>\r\nQUIT\r\n"
        c.send_raw(f"BDAT {len(chunk)}\r\n{chunk}")
        assert c.text() == "503 5.5.1 Error: need MAIL command"
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        c.send_raw("BDAT 6 LAST\r\nQUIT\r\n")
        assert c.text() == "503 5.5.1 Error: need RCPT command"
        assert c.cmd("RCPT TO:<nobody@elsewhere.example>").startswith("554 5.7.1")
        c.send_raw("BDAT 6 LAST\r\nQUIT\r\n")
        assert c.text() == "554 5.5.1 Error: no valid recipients"
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        # A size that cannot be parsed leaves no way to resynchronise: 521 and close.
        c.send_raw("BDAT 5 X\r\nhello")
        assert c.text() == "521 5.5.4 Syntax: BDAT count [LAST]"
        assert c.closed()
    assert srv.cleanup.committed() == []


def test_bdat_size_limit(smtpd_server):
    srv = smtpd_server({"message_size_limit": "1000"})
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        c.send_raw(b"BDAT 600\r\n" + b"x" * 600)
        assert c.text() == "250 2.0.0 Ok: 600 bytes"
        c.send_raw(b"BDAT 600 LAST\r\n" + b"y" * 600)
        assert c.text() == "552 5.3.4 Chunk exceeds message size limit"
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        # The transaction is gone: the next BDAT is refused and skipped.
        c.send_raw(b"BDAT 4 LAST\r\nNOOP")
        assert c.text() == "503 5.5.1 Error: need MAIL command"
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
    assert srv.cleanup.committed() == []
    srv.cleanup.wait_closed()


def test_rset_and_quit_abort_the_transaction(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        assert c.cmd("RSET") == "250 2.0.0 Ok"
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        assert c.cmd("EHLO again.example").startswith("250")   # EHLO resets too
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
    txns = srv.cleanup.wait_closed()
    assert len(txns) == 3
    assert not any(t.ended or t.committed for t in txns)


def test_delay_open_no_opens_at_mail(smtpd_server):
    srv = smtpd_server({"smtpd_delay_open_until_valid_rcpt": "no"})
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        srv.inst.wait_for_log(r": client=localhost\[127\.0\.0\.1\]")
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        c.send_raw(MSG)
        assert c.text().startswith("250 2.0.0 Ok: queued as")


def test_cleanup_unreachable_and_failing(smtpd_server):
    srv = smtpd_server(cleanup="absent")
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "451 4.3.0 Error: queue file write error"
        # The session goes on.
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
    srv.inst.wait_for_log(r"warning: connect to private/cleanup: No such file or directory")


@pytest.mark.parametrize("mode,reply", [
    ("refuse_open", "451 4.3.0 Error: queue file write error"),
])
def test_cleanup_refuses_open(smtpd_server, mode, reply):
    srv = smtpd_server(cleanup=mode)
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == reply
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
    srv.inst.wait_for_log(r"cleanup refused a new message: 452 4\.3\.1 Insufficient system "
                          r"storage")


@pytest.mark.parametrize("mode,reply", [
    ("fail_end", "451 4.3.0 Error: queue file write error"),
    ("reject_end", "552 5.3.4 Error: message file too big"),
    ("close_at_end", "451 4.3.0 Error: queue file write error"),
])
def test_cleanup_final_reply_is_relayed(smtpd_server, mode, reply):
    srv = smtpd_server(cleanup=mode)
    with srv.client() as c:
        c.ehlo()
        assert send_message(c, "a@b.example", [RCPT], MSG) == reply
        # Still in step and serving.
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
    assert srv.cleanup.committed() == []


def test_reply_waits_for_commit(smtpd_server):
    """250 comes only after cleanup's reply; other sessions are served meanwhile."""
    srv = smtpd_server(cleanup="slow_end", end_delay=1.5)
    with srv.client() as c, srv.client() as other:
        c.ehlo()
        assert c.cmd("MAIL FROM:<a@b.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        start = time.monotonic()
        c.send_raw(MSG)
        other.ehlo()
        assert other.cmd("NOOP") == "250 2.0.0 Ok"
        assert time.monotonic() - start < 1.0
        assert c.text().startswith("250 2.0.0 Ok: queued as")
        assert time.monotonic() - start >= 1.4
