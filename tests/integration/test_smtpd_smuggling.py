"""smtpd: SMTP smuggling. Only CRLF.CRLF ends DATA.

Each variant of a fake end of data is sent inside DATA, followed by a
smuggled second transaction and then the real end. What cleanup receives
must show no early end and no second message: with
smtpd_forbid_bare_newline = reject (the default) the message is refused
whole; with normalize (or for excluded clients) it is accepted as one
message that carries the would-be second message as text.
"""

import pytest

from smtpd_support import HOSTNAME, LOCAL_USER, smtpd_server  # noqa: F401

RCPT = f"{LOCAL_USER}@{HOSTNAME}"

SMUGGLED = ("MAIL FROM:<admin@bank.example>\r\n"
            f"RCPT TO:<{RCPT}>\r\n"
            "DATA\r\n"
            "From: admin@bank.example\r\n"
            "Subject: smuggled\r\n"
            "\r\n"
            "send money\r\n")

# name, fake end of data, which bare character the default policy sees first
VARIANTS = [
    ("LF.LF", "\n.\n", "LF"),
    ("CR.CR", "\r.\r", "CR"),
    ("LF.CRLF", "\n.\r\n", "LF"),
    ("CRLF.LF", "\r\n.\n", "LF"),
    ("CR.CRLF", "\r.\r\n", "CR"),
    ("CRLF.CR", "\r\n.\r", "CR"),
    ("CR.LF", "\r.\n", "CR"),
    ("LF.CR", "\n.\r", "LF"),
    ("CRLF.CRCRLF", "\r\n.\r\r\n", "CR"),
    ("CRLF.NULCRLF", "\r\n.\x00\r\n", None),
]


def transaction(c):
    c.ehlo()
    assert c.cmd("MAIL FROM:<alice@client.example>") == "250 2.1.0 Ok"
    assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
    assert c.cmd("DATA") == "354 End data with <CR><LF>.<CR><LF>"


@pytest.mark.parametrize("name,fake_end,bare", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_smuggling_refused_by_default(smtpd_server, name, fake_end, bare):
    srv = smtpd_server()
    with srv.client() as c:
        transaction(c)
        c.send_raw("From: alice@client.example\r\nSubject: first\r\n\r\nfirst"
                   + fake_end + SMUGGLED + "\r\n.\r\n")
        reply = c.text()
        if bare is None:
            # A NUL is content; the line ".\0" is not an end: one message.
            assert reply.startswith("250 2.0.0 Ok: queued as"), reply
        else:
            assert reply == f"550 5.5.2 Error: bare <{bare}> received"
        # Exactly one reply: the smuggled MAIL/RCPT/DATA never ran.
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
    txns = srv.cleanup.wait_closed()
    assert len(txns) == 1, "a second transaction was opened"
    committed = srv.cleanup.committed()
    if bare is None:
        assert len(committed) == 1
        assert b"Subject: smuggled" in committed[0].data
    else:
        assert committed == []
        assert not txns[0].ended
        srv.inst.wait_for_log(rf"reject: END-OF-MESSAGE from localhost\[127\.0\.0\.1\]: "
                              rf"550 5\.5\.2 Error: bare <{bare}> received")


@pytest.mark.parametrize("name,fake_end,bare", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_smuggling_normalized_is_one_message(smtpd_server, name, fake_end, bare):
    srv = smtpd_server({"smtpd_forbid_bare_newline": "normalize"})
    with srv.client() as c:
        transaction(c)
        c.send_raw("Subject: first\r\n\r\nfirst" + fake_end + SMUGGLED + "\r\n.\r\n")
        assert c.text().startswith("250 2.0.0 Ok: queued as")
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
    txns = srv.cleanup.wait_closed()
    assert len(txns) == 1
    (txn,) = srv.cleanup.committed()
    assert [r for r, _ in txn.rcpts] == [RCPT]
    assert txn.sender == "alice@client.example"
    body = txn.data.split(b"\n", 3)[3]      # after our Received: header
    assert body.startswith(b"Subject: first\n\nfirst")
    # The smuggled transaction is text inside the one message, and no bare CR survives.
    assert b"MAIL FROM:<admin@bank.example>\nRCPT TO:" in body
    assert b"\r" not in body
    assert body.endswith(b"send money\n\n")


def test_smuggling_excluded_client_is_normalized(smtpd_server):
    """smtpd_forbid_bare_newline_exclusions ($mynetworks) get normalize, never LF.LF ends."""
    srv = smtpd_server({"mynetworks": "127.0.0.0/8"})
    with srv.client() as c:
        transaction(c)
        c.send_raw("Subject: first\r\n\r\nfirst\n.\n" + SMUGGLED + "\r\n.\r\n")
        assert c.text().startswith("250 2.0.0 Ok: queued as")
    (txn,) = srv.cleanup.wait_committed(1)
    assert b"\n.\nMAIL FROM:<admin@bank.example>\n" not in txn.data  # the dot was unstuffed
    assert b"first\n\nMAIL FROM:<admin@bank.example>\n" in txn.data
    assert len(srv.cleanup.wait_closed()) == 1


def test_dot_stuffing_exact(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        transaction(c)
        c.send_raw("Subject: dots\r\n\r\n"
                   "..\r\n"
                   "...\r\n"
                   "..leading\r\n"
                   ". space\r\n"
                   "middle . dot\r\n"
                   "trailing.\r\n"
                   "\r\n"
                   "..\r\n"
                   ".\r\n")
        assert c.text().startswith("250 2.0.0 Ok: queued as")
    (txn,) = srv.cleanup.wait_committed(1)
    body = txn.data.split(b"\n", 3)[3]          # after our Received: header
    assert body == (b"Subject: dots\n\n.\n..\n.leading\n space\nmiddle . dot\ntrailing.\n"
                    b"\n.\n")


def test_end_of_data_split_across_packets(smtpd_server):
    """CRLF . CRLF arriving one octet at a time still ends the message exactly once."""
    srv = smtpd_server()
    with srv.client() as c:
        transaction(c)
        c.send_raw("Subject: slow\r\n\r\nbody")
        for ch in "\r\n.\r\n":
            c.send_raw(ch)
        assert c.text().startswith("250 2.0.0 Ok: queued as")
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
    (txn,) = srv.cleanup.wait_committed(1)
    assert txn.data.endswith(b"\n\nbody\n")


def test_bdat_content_cannot_end_early(smtpd_server):
    """In BDAT, CRLF.CRLF and commands are just octets of the chunk."""
    srv = smtpd_server()
    chunk = "Subject: chunk\r\n\r\nfirst\r\n.\r\n" + SMUGGLED
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<alice@client.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        c.send_raw(f"BDAT {len(chunk)} LAST\r\n{chunk}")
        assert c.text().startswith("250 2.0.0 Ok: ")
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
    (txn,) = srv.cleanup.wait_committed(1)
    assert b"\nfirst\n.\nMAIL FROM:<admin@bank.example>\n" in txn.data
    assert len(srv.cleanup.wait_closed()) == 1


def test_bdat_bare_lf_refused(smtpd_server):
    srv = smtpd_server()
    chunk = "Subject: chunk\n\nbare lf\n"
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("MAIL FROM:<alice@client.example>") == "250 2.1.0 Ok"
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        c.send_raw(f"BDAT {len(chunk)} LAST\r\n{chunk}")
        assert c.text() == "550 5.5.2 Error: bare <LF> received"
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
    assert srv.cleanup.committed() == []


def test_bare_newline_reject_code(smtpd_server):
    srv = smtpd_server({"smtpd_forbid_bare_newline_reject_code": "450"})
    with srv.client() as c:
        transaction(c)
        c.send_raw("Subject: x\r\n\r\nbare\nlf\r\n.\r\n")
        assert c.text() == "450 4.5.2 Error: bare <LF> received"
        c.send_raw("NOOP\n")
        assert c.text() == "450 4.5.2 Error: bare <LF> received"
    assert srv.cleanup.committed() == []
