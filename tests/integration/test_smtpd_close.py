"""smtpd: how a session ends (graceful close).

When smtpd ends a session with a last reply (421 at a limit or a timeout,
221 after QUIT) while input from the client is still unread in its socket,
a plain close() makes the kernel answer with a TCP reset, and a reset can
make the client's kernel throw away the reply before the client reads it.
smtpd therefore closes gracefully: once the last reply is out it shuts down
its sending side (the client sees that reply, then end of file; over TLS a
close_notify comes first), reads and discards whatever the client still
sends, and closes when the client does, after smtpd_linger_time at most.

Each test is written so that it fails when smtpd simply closes: the client
sends on after the last reply and must never see ECONNRESET or EPIPE.
"""

import socket
import ssl
import time

import tls_support
from smtpd_support import HOSTNAME, SmtpClient, smtpd_server  # noqa: F401

NAMADDR = r"localhost\[127\.0\.0\.1\]"
TOO_MANY_ERRORS = f"421 4.7.0 {HOSTNAME} Error: too many errors"


def send_for(sock, first, seconds, chunk=b"NOOP\r\n" * 50, pause=0.01):
    """Send `first` in one write, then `chunk` every `pause` for `seconds`."""
    sock.sendall(first)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sock.sendall(chunk)
        time.sleep(pause)


def read_to_eof(sock, buf=b"", timeout=10):
    """Everything up to the server's end of file (a reset raises)."""
    sock.settimeout(timeout)
    while True:
        data = sock.recv(65536)
        if not data:
            return buf
        buf += data


def reply_lines(data):
    assert data.endswith(b"\r\n"), data[-200:]
    return [line.decode() for line in data[:-2].split(b"\r\n")]


def still_serving(srv):
    """Another client gets a whole session at once; returns how long it took."""
    start = time.monotonic()
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("NOOP") == "250 2.0.0 Ok"
        assert c.cmd("QUIT") == "221 2.0.0 Bye"
    return time.monotonic() - start


def probe_until_reset(sock, limit, interval=0.1):
    """Send a line every `interval` until the server's socket is gone (the
    kernel answers with a reset); seconds that took, failing after `limit`."""
    start = time.monotonic()
    while True:
        try:
            sock.send(b"NOOP\r\n")
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        assert time.monotonic() - start < limit, "the server never closed"
        time.sleep(interval)


def test_too_many_errors_in_a_pipelined_burst(smtpd_server):
    """A burst of junk far past smtpd_hard_error_limit, in one write, and
    more after it: the client reads the whole 421, then a clean end of file."""
    srv = smtpd_server()
    mark = srv.inst.log_mark()
    with srv.client() as c:
        send_for(c.sock, b"BOGUS\r\n" * 30000, seconds=0.5)
        lines = reply_lines(read_to_eof(c.sock, c.buf))
    assert lines == ["500 5.5.2 Error: command not recognized"] * 20 + [TOO_MANY_ERRORS]
    srv.inst.wait_for_log(rf"too many errors after UNKNOWN from {NAMADDR}", since=mark)
    srv.inst.wait_for_log(rf"disconnect from {NAMADDR} unknown=0/20 commands=0/20", since=mark)
    assert still_serving(srv) < 1


def test_connection_count_refusal_after_a_command(smtpd_server):
    """The 421 of smtpd_client_connection_count_limit reaches a client that
    talked first; the refused session, while it lingers, holds no slot."""
    srv = smtpd_server({"smtpd_client_connection_count_limit": "1",
                        "smtpd_linger_time": "10s"})
    first = srv.client()
    refused = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    try:
        # EHLO before the greeting, then more: all of it unread when smtpd refuses.
        send_for(refused, b"EHLO client.example\r\n", seconds=0.3)
        data = read_to_eof(refused)
        assert reply_lines(data) == [f"421 4.7.0 {HOSTNAME} Error: too many connections "
                                     "from 127.0.0.1"]
        srv.inst.wait_for_log(r"warning: Connection concurrency limit exceeded: 2 from "
                              rf"{NAMADDR} for service 127\.0\.0\.1:{srv.port}")
        # The refused client still has its socket open; once the first one
        # leaves, a new client is served within the linger time.
        assert first.cmd("QUIT") == "221 2.0.0 Bye"
        first.close()
        deadline = time.monotonic() + 5
        while True:
            c = SmtpClient(srv.port)
            code, lines = c.reply()
            c.close()
            if code == 220:
                break
            assert code == 421 and time.monotonic() < deadline, lines
            time.sleep(0.1)
        refused.sendall(b"NOOP\r\n")    # still swallowed, no reset
    finally:
        first.close()
        refused.close()
    assert still_serving(srv) < 1


def test_quit_with_pipelined_commands_behind_it(smtpd_server):
    """QUIT and 120 KB of commands after it in one write: 221, then a clean end."""
    srv = smtpd_server()
    mark = srv.inst.log_mark()
    with srv.client() as c:
        c.ehlo()
        c.send_raw(b"RSET\r\nQUIT\r\n" + b"RSET\r\n" * 20000)
        lines = reply_lines(read_to_eof(c.sock, c.buf))
    assert lines == ["250 2.0.0 Ok", "221 2.0.0 Bye"]
    # Nothing behind QUIT was taken as a command.
    srv.inst.wait_for_log(rf"disconnect from {NAMADDR} ehlo=1 rset=1 quit=1 commands=3$",
                          since=mark)


def test_timeout_reply_to_a_client_that_sends_on(smtpd_server):
    """The client sends its next command just as smtpd times out: it still
    reads the 421 and an end of file, and nothing it sends is answered."""
    srv = smtpd_server({"smtpd_timeout": "1s"})
    with srv.client() as c:
        c.ehlo()
        assert c.text() == f"421 4.4.2 {HOSTNAME} Error: timeout exceeded"
        send_for(c.sock, b"MAIL FROM:<a@b.example>\r\n", seconds=0.3)
        assert read_to_eof(c.sock, c.buf) == b""
    srv.inst.wait_for_log(rf"timeout after EHLO from {NAMADDR}")


def test_client_that_never_closes_is_dropped_after_the_linger_time(smtpd_server):
    srv = smtpd_server({"smtpd_linger_time": "2s"})
    mark = srv.inst.log_mark()
    with srv.client() as c:
        c.ehlo()
        c.send_raw("QUIT\r\n")
        assert c.text() == "221 2.0.0 Bye"
        start = time.monotonic()
        # Half-closed at once: the client sees the end of file right away.
        assert read_to_eof(c.sock, c.buf, timeout=1) == b""
        # The session is over for the log and for everyone else meanwhile.
        srv.inst.wait_for_log(rf"disconnect from {NAMADDR} ehlo=1 quit=1 commands=2",
                              since=mark, timeout=1)
        assert still_serving(srv) < 1
        # The socket itself stays open (and swallows input) for the linger time.
        waited = time.monotonic() - start
        gone = waited + probe_until_reset(c.sock, limit=10)
    assert 1.8 <= gone < 4, gone


def test_linger_time_zero_closes_at_once(smtpd_server):
    """smtpd_linger_time = 0: no graceful close (the old behaviour)."""
    srv = smtpd_server({"smtpd_linger_time": "0"})
    with srv.client() as c:
        c.ehlo()
        c.send_raw("QUIT\r\n")
        assert c.text() == "221 2.0.0 Bye"
        assert read_to_eof(c.sock, c.buf, timeout=1) == b""
        assert probe_until_reset(c.sock, limit=3) < 1


def tls_cf(inst):
    tls = inst.root / "tls"
    ca = tls_support.make_ca(tls)
    rsa = tls_support.make_cert(tls, ca, "rsa")
    tls_support.chown_for("postern", rsa.key, rsa.chain)
    return {"smtpd_tls_chain_files": f"{rsa.key}, {rsa.chain}",
            "smtpd_tls_security_level": "may"}


def test_tls_quit_with_pipelined_commands_behind_it(smtpd_server):
    """Over TLS: the 221, then close_notify (a clean TLS end), no reset."""
    srv = smtpd_server(tls_cf)
    with srv.client() as c:
        c.ehlo()
        assert c.cmd("STARTTLS") == "220 2.0.0 Ready to start TLS"
        # suppress_ragged_eofs=False: an end without close_notify would raise.
        c.sock = tls_support.insecure_context().wrap_socket(
            c.sock, server_hostname="localhost", suppress_ragged_eofs=False)
        c.ehlo()
        c.send_raw(b"QUIT\r\n" + b"NOOP\r\n" * 20000)
        send_for(c.sock, b"", seconds=0.3)
        try:
            data = read_to_eof(c.sock, c.buf)
        except ssl.SSLEOFError as e:
            raise AssertionError("no close_notify from the server") from e
        assert reply_lines(data) == ["221 2.0.0 Bye"]
    srv.inst.wait_for_log(rf"disconnect from {NAMADDR} ehlo=2 starttls=1 quit=1 commands=4")
    assert still_serving(srv) < 1
