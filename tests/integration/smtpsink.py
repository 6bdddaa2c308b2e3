"""Local SMTP/LMTP sinks for integration tests, able to misbehave on purpose.

    sink = SmtpSink("127.0.0.2", port).start()
    ... sink.messages, sink.connections, sink.wait_messages(n) ...
    sink.stop()

Every accepted message is recorded as a Message (mail_from, mail_params,
rcpts, rcpt_params, data as bytes exactly as received before the final
".", tls, tls_version, sni, auth_user, peer, time of acceptance). Behaviour is set by keyword
arguments (and may be changed while the sink runs):

    greeting        first reply (default "220 NAME ESMTP sink")
    ehlo_ext        extension lines after the name (default PIPELINING, SIZE
                    10240000, 8BITMIME, DSN, SMTPUTF8, ENHANCEDSTATUSCODES)
    no_ehlo         answer EHLO with 502 (the client must fall back to HELO)
    rcpt_reply      function(addr) -> reply line, or None for "250 2.1.5 Ok"
    mail_reply, data_reply, done_reply   fixed reply lines to override
    tls_context     an ssl.SSLContext: STARTTLS offered and done with it
    tls_broken      STARTTLS is answered 220, then the handshake fails
    tls_inject      plaintext follows the 220 to STARTTLS in the same packet
    auth            {"user": "password"}: AUTH PLAIN/LOGIN offered; with
                    auth_required, MAIL before AUTH gets 530
    lmtp            LHLO instead of EHLO and one reply per recipient after DATA
    mode            None, or one of the bad-peer modes:
                      "garbage"      the greeting is not an SMTP reply
                      "endless"      the EHLO reply never ends (250-... lines)
                      "stall_greeting"  half a greeting line, then silence
                      "stall_rcpt"   "250-" then silence after the first RCPT
                      "close_data"   closes the connection after DATA's 354 content
                      "long_line"    a greeting continued with a 100 kB line

A sink can be stopped and started again on the same address and port
(restart()) to test a server that recovers.
"""

import base64
import socket
import ssl
import threading
import time

DEFAULT_EXT = ["PIPELINING", "SIZE 10240000", "8BITMIME", "DSN", "SMTPUTF8",
               "ENHANCEDSTATUSCODES"]
LINE_MAX = 1 << 20


class Message:
    def __init__(self):
        self.mail_from = None
        self.mail_params = ""
        self.rcpts = []
        self.rcpt_params = []
        self.data = b""
        self.tls = False
        self.tls_version = None
        self.sni = None
        self.auth_user = None
        self.peer = None
        self.conn_id = None
        self.time = None          # time.time() when the message was accepted

    def __repr__(self):
        return f"Message(from={self.mail_from!r}, rcpts={self.rcpts!r}, tls={self.tls})"


class _Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, text):
        self.sock.sendall(text.encode() if isinstance(text, str) else text)

    def line(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            self.buf += data
            if len(self.buf) > LINE_MAX:
                raise EOFError
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r")


class SmtpSink:
    def __init__(self, host="127.0.0.1", port=0, name="sink.example", **kw):
        self.host = host
        self.port = port
        self.name = name
        self.greeting = kw.pop("greeting", None)
        self.ehlo_ext = kw.pop("ehlo_ext", list(DEFAULT_EXT))
        self.no_ehlo = kw.pop("no_ehlo", False)
        self.rcpt_reply = kw.pop("rcpt_reply", None)
        self.mail_reply = kw.pop("mail_reply", None)
        self.data_reply = kw.pop("data_reply", None)
        self.done_reply = kw.pop("done_reply", None)
        self.tls_context = kw.pop("tls_context", None)
        self.auth = kw.pop("auth", None)
        self.auth_required = kw.pop("auth_required", False)
        self.lmtp = kw.pop("lmtp", False)
        self.mode = kw.pop("mode", None)
        self.tls_broken = kw.pop("tls_broken", False)
        self.tls_inject = kw.pop("tls_inject", False)
        if kw:
            raise TypeError(f"unknown options {sorted(kw)}")
        self.messages = []
        self.connections = 0
        self.commands = []        # every command line seen, decoded
        self.lock = threading.Lock()
        self.sock = None
        self.stopping = threading.Event()
        self.threads = []
        self.open_socks = set()

    # -- life --------------------------------------------------------------

    def start(self):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, self.port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.stopping.clear()
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def stop(self):
        self.stopping.set()
        if self.sock:
            self.sock.close()
            self.sock = None
        with self.lock:
            socks = list(self.open_socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(timeout=5)
        self.threads = []

    def restart(self, **changes):
        self.stop()
        for k, v in changes.items():
            setattr(self, k, v)
        return self.start()

    def wait_messages(self, n, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"{self.host}:{self.port}: {len(self.messages)} messages, "
                             f"wanted {n}")

    # -- serving -----------------------------------------------------------

    def _accept_loop(self):
        while not self.stopping.is_set():
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            with self.lock:
                self.connections += 1
                conn_id = self.connections
                self.open_socks.add(conn)
            t = threading.Thread(target=self._serve, args=(conn, peer, conn_id), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, sock, peer, conn_id):
        sock.settimeout(60)
        c = _Conn(sock)
        try:
            self._session(c, peer, conn_id)
        except (EOFError, OSError, ssl.SSLError):
            pass
        finally:
            with self.lock:
                self.open_socks.discard(c.sock)
            try:
                c.sock.close()
            except OSError:
                pass

    def _stall(self):
        self.stopping.wait(120)
        raise EOFError

    def _ext_lines(self, tls_active):
        ext = list(self.ehlo_ext)
        if self.tls_context is not None and not tls_active:
            ext.append("STARTTLS")
        if self.auth:
            ext.append("AUTH PLAIN LOGIN")
        return ext

    def _session(self, c, peer, conn_id):
        if self.mode == "garbage":
            c.send("this is not SMTP at all\r\n")
            self._stall()
        if self.mode == "stall_greeting":
            c.send("220-" + self.name)
            self._stall()
        if self.mode == "long_line":
            c.send("220-" + "x" * 100000 + "\r\n")
            self._stall()
        c.send((self.greeting or f"220 {self.name} ESMTP sink") + "\r\n")
        if self.greeting and not self.greeting.startswith("2"):
            # A refusing server waits for QUIT, then closes.
            try:
                c.line()
                c.send("221 2.0.0 Bye\r\n")
            except EOFError:
                pass
            return
        tls_active = False
        tls_version = None
        sni = None
        auth_user = None
        msg = None
        while True:
            raw = c.line()
            line = raw.decode("utf-8", errors="replace")
            with self.lock:
                self.commands.append(line)
            verb = line.split(" ", 1)[0].upper()
            arg = line[len(verb):].strip()
            if verb in ("EHLO", "LHLO"):
                if self.no_ehlo and verb == "EHLO":
                    c.send("502 5.5.2 Error: command not recognized\r\n")
                    continue
                if self.mode == "endless":
                    while True:
                        c.send("250-endless line of extensions\r\n")
                        time.sleep(0.001)
                ext = self._ext_lines(tls_active)
                out = [f"250-{self.name}"] + [f"250-{e}" for e in ext[:-1]] + \
                      ([f"250 {ext[-1]}"] if ext else [])
                if not ext:
                    out = [f"250 {self.name}"]
                c.send("".join(x + "\r\n" for x in out))
            elif verb == "HELO":
                c.send(f"250 {self.name}\r\n")
            elif verb == "STARTTLS" and self.tls_context is not None and not tls_active:
                if self.tls_inject:
                    c.send("220 2.0.0 Ready to start TLS\r\n250 2.0.0 injected\r\n")
                    self._stall()
                c.send("220 2.0.0 Ready to start TLS\r\n")
                if self.tls_broken:
                    c.sock.recv(65536)                              # the ClientHello
                    c.send(b"\x15\x03\x03\x00\x02\x02\x28")   # handshake_failure alert
                    raise EOFError
                names = []

                def sni_cb(sslsock, name, ctx, names=names):
                    names.append(name)
                self.tls_context.sni_callback = sni_cb
                tsock = self.tls_context.wrap_socket(c.sock, server_side=True)
                with self.lock:
                    self.open_socks.discard(c.sock)
                    self.open_socks.add(tsock)
                c = _Conn(tsock)
                tls_active = True
                tls_version = tsock.version()
                sni = names[0] if names else None
            elif verb == "AUTH" and self.auth:
                auth_user = self._auth(c, arg)
            elif verb == "MAIL":
                if self.auth_required and auth_user is None:
                    c.send("530 5.7.0 Authentication required\r\n")
                    continue
                msg = Message()
                msg.peer = peer
                msg.conn_id = conn_id
                msg.tls, msg.tls_version, msg.sni, msg.auth_user = tls_active, tls_version, sni, auth_user
                addr, _, params = arg[5:].strip().partition(" ") if arg.upper().startswith("FROM:") \
                    else (arg, "", "")
                msg.mail_from = addr.strip("<>")
                msg.mail_params = params
                reply = self.mail_reply or "250 2.1.0 Ok"
                if not reply.startswith("2"):
                    msg = None
                c.send(reply + "\r\n")
            elif verb == "RCPT":
                if msg is None:
                    c.send("503 5.5.1 Error: need MAIL command\r\n")
                    continue
                addr, _, params = arg[3:].strip().partition(" ") if arg.upper().startswith("TO:") \
                    else (arg, "", "")
                addr = addr.strip("<>")
                if self.mode == "stall_rcpt":
                    c.send("250-2.1.5 Ok so far")
                    self._stall()
                reply = self.rcpt_reply(addr) if self.rcpt_reply else None
                reply = reply or "250 2.1.5 Ok"
                if reply.startswith("2"):
                    msg.rcpts.append(addr)
                    msg.rcpt_params.append(params)
                c.send(reply + "\r\n")
            elif verb == "DATA":
                if msg is None or not msg.rcpts:
                    c.send("554 5.5.1 Error: no valid recipients\r\n")
                    continue
                if self.data_reply:
                    c.send(self.data_reply + "\r\n")
                    continue
                c.send("354 End data with <CR><LF>.<CR><LF>\r\n")
                data = bytearray()
                while True:
                    l = c.line()
                    if l == b".":
                        break
                    data += l + b"\r\n"
                if self.mode == "close_data":
                    raise EOFError
                msg.data = bytes(data)
                done = self.done_reply or "250 2.0.0 Ok: queued as SINK%d" % (len(self.messages) + 1)
                if done.startswith("2"):
                    msg.time = time.time()
                    with self.lock:
                        self.messages.append(msg)
                if self.lmtp:
                    c.send("".join(f"{done} <{r}>\r\n" for r in msg.rcpts))
                else:
                    c.send(done + "\r\n")
                msg = None
            elif verb == "RSET":
                msg = None
                c.send("250 2.0.0 Ok\r\n")
            elif verb == "NOOP":
                c.send("250 2.0.0 Ok\r\n")
            elif verb == "QUIT":
                c.send("221 2.0.0 Bye\r\n")
                return
            else:
                c.send("502 5.5.2 Error: command not recognized\r\n")

    def _auth(self, c, arg):
        parts = arg.split()
        mech = parts[0].upper() if parts else ""
        user = password = None
        if mech == "PLAIN":
            if len(parts) > 1:
                blob = parts[1]
            else:
                c.send("334 \r\n")
                blob = c.line().decode()
            try:
                _, user, password = base64.b64decode(blob).decode().split("\0")
            except Exception:
                c.send("501 5.5.2 Bad PLAIN data\r\n")
                return None
        elif mech == "LOGIN":
            c.send("334 VXNlcm5hbWU6\r\n")
            user = base64.b64decode(c.line()).decode()
            c.send("334 UGFzc3dvcmQ6\r\n")
            password = base64.b64decode(c.line()).decode()
        else:
            c.send("504 5.5.4 Unrecognized authentication type\r\n")
            return None
        if self.auth.get(user) == password:
            c.send("235 2.7.0 Authentication successful\r\n")
            with self.lock:
                self.commands.append(f"AUTHENTICATED {mech} {user}")
            return user
        c.send("535 5.7.8 Error: authentication failed: bad credentials\r\n")
        return None
