"""smtpd: the client's name (asynchronous, forward-confirmed reverse lookup).

The client must come from an address whose reverse zone libunbound does
not answer by itself (RFC 6303 zones such as 127.in-addr.arpa or
2.0.192.in-addr.arpa never reach a forwarder), so these tests put
198.18.0.55 (RFC 2544 benchmarking space) on the loopback interface for
their duration; they need root for that and skip otherwise.
"""

import subprocess
import time

import pytest

from conftest import IS_ROOT
from fakedns import FakeDNS
from smtpd_support import HOSTNAME, LOCAL_USER, send_message, smtpd_server  # noqa: F401

ADDR = "198.18.0.55"
PTR_NAME = "55.0.18.198.in-addr.arpa"
RCPT = f"{LOCAL_USER}@{HOSTNAME}"


@pytest.fixture(scope="module")
def client_addr():
    if not IS_ROOT:
        pytest.skip("needs root to add a loopback address")
    subprocess.run(["ip", "addr", "add", f"{ADDR}/32", "dev", "lo"], check=True)
    yield ADDR
    subprocess.run(["ip", "addr", "del", f"{ADDR}/32", "dev", "lo"], check=False)


@pytest.fixture
def dns():
    d = FakeDNS().start()
    yield d
    d.stop()


def test_verified_name(smtpd_server, client_addr, dns):
    dns.add(PTR_NAME, "PTR", "client.example")
    dns.add("client.example", "A", client_addr)
    srv = smtpd_server({"dns_servers": dns.server_spec})
    with srv.client(source=client_addr) as c:
        c.ehlo("helo.example")
        assert send_message(c, "a@b.example", [RCPT], "Subject: n\r\n\r\n.\r\n") \
            .startswith("250 2.0.0 Ok: queued as")
    (txn,) = srv.cleanup.wait_committed(1)
    assert txn.data.startswith(b"Received: from helo.example (client.example [198.18.0.55])\n")
    assert txn.attrs["client_name"] == "client.example"
    assert txn.attrs["reverse_client_name"] == "client.example"
    srv.inst.wait_for_log(r"connect from client\.example\[198\.18\.0\.55\]")
    srv.inst.wait_for_log(r"\w+: client=client\.example\[198\.18\.0\.55\]")
    assert (PTR_NAME, "PTR") in dns.queries and ("client.example", "A") in dns.queries


def test_name_that_does_not_resolve_back(smtpd_server, client_addr, dns):
    dns.add(PTR_NAME, "PTR", "liar.example")
    dns.add("liar.example", "A", "198.18.0.99")
    srv = smtpd_server({"dns_servers": dns.server_spec})
    with srv.client(source=client_addr) as c:
        c.ehlo("helo.example")
        assert send_message(c, "a@b.example", [RCPT], "Subject: n\r\n\r\n.\r\n") \
            .startswith("250")
    (txn,) = srv.cleanup.wait_committed(1)
    assert txn.data.startswith(b"Received: from helo.example (unknown [198.18.0.55])\n")
    assert txn.attrs["client_name"] == "unknown"
    assert txn.attrs["reverse_client_name"] == "liar.example"
    srv.inst.wait_for_log(r"warning: hostname liar\.example does not resolve to address "
                          r"198\.18\.0\.55")
    srv.inst.wait_for_log(r"connect from unknown\[198\.18\.0\.55\]")


def test_no_ptr_record(smtpd_server, client_addr, dns):
    srv = smtpd_server({"dns_servers": dns.server_spec})
    with srv.client(source=client_addr) as c:
        c.ehlo()
    srv.inst.wait_for_log(r"connect from unknown\[198\.18\.0\.55\]")


def test_silent_dns_delays_only_that_client(smtpd_server, client_addr, dns):
    dns.silent(PTR_NAME)
    srv = smtpd_server({"dns_servers": dns.server_spec})
    start = time.monotonic()
    slow = srv.client(greet=False, source=client_addr)
    try:
        # Meanwhile a loopback client (no lookup) is served at once.
        with srv.client() as fast:
            fast.ehlo()
            assert fast.cmd("NOOP") == "250 2.0.0 Ok"
        assert time.monotonic() - start < 3
        assert slow.text().startswith(f"220 {HOSTNAME}")
        waited = time.monotonic() - start
        assert 9 <= waited < 20, waited
    finally:
        slow.close()
    srv.inst.wait_for_log(r"198\.18\.0\.55: client name lookup timed out after 10 seconds")
    srv.inst.wait_for_log(r"connect from unknown\[198\.18\.0\.55\]")


def test_lookups_can_be_turned_off(smtpd_server, client_addr, dns):
    dns.add(PTR_NAME, "PTR", "client.example")
    dns.add("client.example", "A", client_addr)
    srv = smtpd_server({"dns_servers": dns.server_spec, "smtpd_peername_lookup": "no"})
    with srv.client(source=client_addr) as c:
        c.ehlo()
    srv.inst.wait_for_log(r"connect from unknown\[198\.18\.0\.55\]")
    assert dns.queries == []


def test_localhost_needs_no_lookup(smtpd_server, dns):
    srv = smtpd_server({"dns_servers": dns.server_spec})
    with srv.client() as c:
        c.ehlo()
    srv.inst.wait_for_log(r"connect from localhost\[127\.0\.0\.1\]")
    assert dns.queries == []
