"""smtpd: relay control and recipient validation.

The test client connects from 127.0.0.1 while mynetworks is 192.0.2.0/24,
so it is "outside": it may send to our domains (mydestination,
relay_domains) only, and no address trick may make it a relay.
"""

import pytest

from smtpd_support import HOSTNAME, LOCAL_USER, smtpd_server  # noqa: F401

RCPT = f"{LOCAL_USER}@{HOSTNAME}"


def relay_denied(addr):
    return f"554 5.7.1 <{addr}>: Relay access denied"


def unknown_local(addr):
    return (f"550 5.1.1 <{addr}>: Recipient address rejected: User unknown in local "
            "recipient table")


def start_txn(c, sender="a@b.example"):
    c.ehlo()
    assert c.cmd(f"MAIL FROM:<{sender}>") == "250 2.1.0 Ok"


# (RCPT TO argument, address shown in the reply)
TRICKS = [
    ("<user@remote.example>", "user@remote.example"),
    ("<user%remote.example@mx.example.com>", "user%remote.example@mx.example.com"),
    ("<remote.example!user@mx.example.com>", "remote.example!user@mx.example.com"),
    ('<"user@remote.example"@mx.example.com>', '"user@remote.example"@mx.example.com'),
    ('<"user%remote.example"@mx.example.com>', "user%remote.example@mx.example.com"),
    ('<"remote!user"@localhost>', "remote!user@localhost"),
    ("<user%remote.example@[127.0.0.1]>", "user%remote.example@[127.0.0.1]"),
    ("<@mx.example.com:user@remote.example>", "user@remote.example"),
    ("<@mx.example.com,@localhost:user@remote.example>", "user@remote.example"),
    ("<user@[192.0.2.99]>", "user@[192.0.2.99]"),
    ("<user@[IPv6:2001:db8::1]>", "user@[IPv6:2001:db8::1]"),
    ("<user@mx.example.com.remote.example>", "user@mx.example.com.remote.example"),
    ("<user@notrelay.example>", "user@notrelay.example"),
    ("user@remote.example", "user@remote.example"),
]


@pytest.mark.parametrize("arg,shown", TRICKS, ids=[t[0] for t in TRICKS])
def test_relay_tricks_refused(smtpd_server, arg, shown):
    srv = smtpd_server()
    with srv.client() as c:
        start_txn(c)
        assert c.cmd(f"RCPT TO:{arg}") == relay_denied(shown)
        # The transaction is still usable.
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
    srv.inst.wait_for_log(r"NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: 554 5\.7\.1 "
                          r"<[^>]*>: Relay access denied; from=<a@b\.example> to=<[^>]*> "
                          r"proto=ESMTP helo=<client\.example>")


def test_relay_reject_log_line_exact(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        start_txn(c)
        assert c.cmd("RCPT TO:<x@y.example>") == relay_denied("x@y.example")
    srv.inst.wait_for_log(r"postfix/smtpd\[\d+\]: NOQUEUE: reject: RCPT from "
                          r"localhost\[127\.0\.0\.1\]: 554 5\.7\.1 <x@y\.example>: Relay access "
                          r"denied; from=<a@b\.example> to=<x@y\.example> proto=ESMTP "
                          r"helo=<client\.example>$")


def test_source_route_to_us_is_dropped(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        start_txn(c)
        assert c.cmd(f"RCPT TO:<@remote.example:{RCPT}>") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        c.send_raw("Subject: r\r\n\r\n.\r\n")
        assert c.text().startswith("250")
    (txn,) = srv.cleanup.wait_committed(1)
    assert [r for r, _ in txn.rcpts] == [RCPT]


def test_our_domains_accepted(smtpd_server):
    srv = smtpd_server({"recipient_delimiter": "+"},
                       aliases="postmaster root\nstaff root\n")
    with srv.client() as c:
        start_txn(c)
        for addr in (RCPT, "ROOT@MX.Example.COM", "root@localhost", "root@localhost.example.com",
                     "root@example.com", "root@[127.0.0.1]", "root+tag@mx.example.com",
                     "staff@mx.example.com", "staff+x@localhost",
                     "anyone@relay.example", "anyone@sub.relay.example", '"root"@localhost'):
            assert c.cmd(f"RCPT TO:<{addr}>") == "250 2.1.5 Ok", addr
        assert c.cmd("RCPT TO:<nosuch+tag@mx.example.com>") == \
            unknown_local("nosuch+tag@mx.example.com")
        assert c.cmd("RCPT TO:<nosuchuser4711@localhost>") == \
            unknown_local("nosuchuser4711@localhost")
        assert c.cmd("RCPT TO:<nosuchuser4711@[127.0.0.1]>") == \
            unknown_local("nosuchuser4711@[127.0.0.1]")
    # The queue file exists by now: the line starts with its id instead of NOQUEUE.
    srv.inst.wait_for_log(r"\w+: reject: RCPT from localhost\[127\.0\.0\.1\]: 550 5\.1\.1 "
                          r"<nosuchuser4711@localhost>: Recipient address rejected: User unknown "
                          r"in local recipient table; from=<a@b\.example> "
                          r"to=<nosuchuser4711@localhost> proto=ESMTP helo=<client\.example>")


def test_postmaster_always_accepted(smtpd_server):
    # No table knows postmaster here; RFC 5321 4.5.1 wants it accepted anyway.
    srv = smtpd_server({"local_recipient_maps": "inline:{ nobody-here=1 }",
                        "smtpd_recipient_restrictions": "reject_non_fqdn_recipient"})
    with srv.client() as c:
        start_txn(c, sender="")
        for addr in ("postmaster", "Postmaster", "postmaster@mx.example.com",
                     "POSTMASTER@localhost"):
            assert c.cmd(f"RCPT TO:<{addr}>") == "250 2.1.5 Ok", addr
        assert c.cmd("RCPT TO:<postmaster@remote.example>") == \
            relay_denied("postmaster@remote.example")
        assert c.cmd(f"RCPT TO:<{RCPT}>") == unknown_local(RCPT)


def test_null_sender_accepted(smtpd_server):
    srv = smtpd_server()
    with srv.client() as c:
        start_txn(c, sender="")
        assert c.cmd(f"RCPT TO:<{RCPT}>") == "250 2.1.5 Ok"
        assert c.cmd("DATA").startswith("354")
        c.send_raw("Subject: bounce\r\n\r\n.\r\n")
        assert c.text().startswith("250")
    (txn,) = srv.cleanup.wait_committed(1)
    assert txn.sender == ""


def test_mynetworks_may_relay(smtpd_server):
    srv = smtpd_server({"mynetworks": "10.0.0.0/8, [::1]/128, 127.0.0.0/8"})
    with srv.client() as c:
        start_txn(c)
        assert c.cmd("RCPT TO:<user@remote.example>") == "250 2.1.5 Ok"
        assert c.cmd("RCPT TO:<user%remote.example@mx.example.com>") == \
            unknown_local("user%remote.example@mx.example.com")


def test_mynetworks_from_a_cidr_table(smtpd_server, tmp_path):
    table = tmp_path / "trusted.cidr"
    table.write_text("127.0.0.0/8 OK\n")
    table.chmod(0o644)
    tmp_path.chmod(0o755)
    srv = smtpd_server({"mynetworks": f"192.0.2.0/24 cidr:{table}"})
    with srv.client() as c:
        start_txn(c)
        assert c.cmd("RCPT TO:<user@remote.example>") == "250 2.1.5 Ok"


def test_allow_untrusted_routing(smtpd_server):
    srv = smtpd_server({"allow_untrusted_routing": "yes"})
    with srv.client() as c:
        start_txn(c)
        # Now "ours", so the local recipient check decides.
        assert c.cmd("RCPT TO:<user%remote.example@mx.example.com>") == \
            unknown_local("user%remote.example@mx.example.com")


def test_relay_recipient_maps(smtpd_server):
    srv = smtpd_server({"relay_recipient_maps": "inline:{ known@relay.example=1 }"})
    with srv.client() as c:
        start_txn(c)
        assert c.cmd("RCPT TO:<known@relay.example>") == "250 2.1.5 Ok"
        assert c.cmd("RCPT TO:<other@relay.example>") == \
            "550 5.1.1 <other@relay.example>: Recipient address rejected: User unknown in " \
            "relay recipient table"


def test_no_local_recipient_check(smtpd_server):
    srv = smtpd_server({"local_recipient_maps": ""})
    with srv.client() as c:
        start_txn(c)
        assert c.cmd("RCPT TO:<nosuchuser4711@mx.example.com>") == "250 2.1.5 Ok"


def test_lookup_failure_is_temporary(smtpd_server):
    srv = smtpd_server({"local_recipient_maps": "hash:/nonexistent/table"})
    with srv.client() as c:
        start_txn(c)
        assert c.cmd(f"RCPT TO:<{RCPT}>") == f"451 4.3.0 <{RCPT}>: Temporary lookup failure"
        assert c.cmd("RCPT TO:<x@remote.example>") == relay_denied("x@remote.example")


def test_restriction_lists(smtpd_server):
    srv = smtpd_server({
        "smtpd_recipient_restrictions":
            "check_recipient_access inline:{ {bad@mx.example.com=REJECT go away}, "
            "{soon@mx.example.com=450 4.2.1 try later}, ok@remote.example=OK }",
        "smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, "
                                    "check_recipient_access inline:{ ok@remote.example=OK }, "
                                    "reject_unauth_destination",
    })
    with srv.client() as c:
        start_txn(c)
        assert c.cmd("RCPT TO:<bad@mx.example.com>") == \
            "554 5.7.1 <bad@mx.example.com>: Recipient address rejected: go away"
        assert c.cmd("RCPT TO:<soon@mx.example.com>") == \
            "450 4.2.1 <soon@mx.example.com>: Recipient address rejected: try later"
        assert c.cmd("RCPT TO:<ok@remote.example>") == "250 2.1.5 Ok"
        assert c.cmd("RCPT TO:<no@remote.example>") == relay_denied("no@remote.example")


def test_client_restrictions_and_defer(smtpd_server):
    srv = smtpd_server({"smtpd_client_restrictions": "permit_sasl_authenticated, reject"})
    with srv.client() as c:
        start_txn(c)
        assert c.cmd(f"RCPT TO:<{RCPT}>") == \
            "554 5.7.1 <localhost[127.0.0.1]>: Client host rejected: Access denied"
    srv2 = smtpd_server({"smtpd_relay_restrictions": "defer_unauth_destination"})
    with srv2.client() as c:
        start_txn(c)
        assert c.cmd("RCPT TO:<x@remote.example>") == "454 4.7.1 <x@remote.example>: Relay " \
                                                      "access denied"


def test_unsupported_restriction_is_a_configuration_error(smtpd_server):
    srv = smtpd_server({"smtpd_recipient_restrictions": "reject_rbl_client zen.example"})
    with srv.client() as c:
        start_txn(c)
        assert c.cmd(f"RCPT TO:<{RCPT}>") == \
            f"451 4.3.5 <{RCPT}>: Recipient address rejected: Server configuration error"
    srv.inst.wait_for_log(r'warning: unsupported restriction "reject_rbl_client"')
