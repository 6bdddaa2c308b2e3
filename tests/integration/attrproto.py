"""Postern's IPC attribute protocol (docs/ipc.md) for tests: encoder, decoder, client.

A message is a list of (name, value) pairs. Value types on the wire:
    str        -> STR  (0x01)
    bytes      -> BIN  (0x04)
    Int(n)     -> INT  (0x02), signed 64-bit
    int / UInt -> UINT (0x03), unsigned 64-bit (a negative plain int is sent as INT)

    data = encode([("req", "open"), ("flags", 2), ("origin", "test")])
    msg, used = decode(buf)          # msg is None while buf holds no whole message
    msg.get("status"), msg.getall("rcpt")

    with AttrClient(path) as c:
        c.send([("req", "open"), ...])
        reply = c.recv()

Decoded values: STR -> str (UTF-8, undecodable bytes escaped), BIN -> bytes,
INT/UINT -> int. The decoder checks what the C reader checks (type bytes,
name syntax, number sizes, NUL in strings, the default limits); errors raise
AttrError. It is a test tool: it favours clarity over speed.
"""

import re
import socket
import struct

TYPE_END, TYPE_STR, TYPE_INT, TYPE_UINT, TYPE_BIN = 0, 1, 2, 3, 4

NAME_MAX = 64
VALUE_MAX = 256 * 1024
MSG_MAX = 1024 * 1024
COUNT_MAX = 1024

_NAME_RE = re.compile(rb"^[A-Za-z0-9_.-]+$")


class AttrError(Exception):
    """A message that breaks the wire format or the limits."""


class Int(int):
    """A value to send as a signed INT."""


class UInt(int):
    """A value to send as an unsigned UINT."""


class Message(list):
    """Decoded (name, type, value) triples in message order."""

    def get(self, name, default=None):
        for n, _t, v in self:
            if n == name:
                return v
        return default

    def getall(self, name):
        return [v for n, _t, v in self if n == name]

    def type_of(self, name):
        for n, t, _v in self:
            if n == name:
                return t
        return None

    def as_dict(self):
        return {n: v for n, _t, v in self}


def _record(type_, name, payload):
    nb = name.encode() if isinstance(name, str) else name
    if not 1 <= len(nb) <= NAME_MAX or not _NAME_RE.match(nb):
        raise AttrError(f"bad attribute name {name!r}")
    return bytes([type_, len(nb)]) + nb + struct.pack(">I", len(payload)) + payload


def encode(attrs, check_limits=True):
    """Bytes of one message holding attrs (pairs of name and value)."""
    out = bytearray()
    for name, value in attrs:
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, str):
            payload = value.encode("utf-8", "surrogateescape")
            if b"\0" in payload:
                raise AttrError(f"attribute {name}: NUL in a string")
            out += _record(TYPE_STR, name, payload)
        elif isinstance(value, (bytes, bytearray, memoryview)):
            out += _record(TYPE_BIN, name, bytes(value))
        elif isinstance(value, Int) or (isinstance(value, int) and not isinstance(value, UInt)
                                        and value < 0):
            out += _record(TYPE_INT, name, struct.pack(">q", value))
        elif isinstance(value, int):
            out += _record(TYPE_UINT, name, struct.pack(">Q", value))
        else:
            raise AttrError(f"attribute {name}: cannot send {type(value).__name__}")
    out.append(TYPE_END)
    if check_limits:
        if len(attrs) > COUNT_MAX:
            raise AttrError("too many attributes")
        if len(out) > MSG_MAX:
            raise AttrError("message too long")
    return bytes(out)


def decode(buf, limits=(NAME_MAX, VALUE_MAX, MSG_MAX, COUNT_MAX)):
    """(Message, bytes used) for the message at the start of buf, or (None, 0)
    while it is incomplete. Raises AttrError on malformed input."""
    name_max, value_max, msg_max, count_max = limits
    pos, msg = 0, Message()
    while True:
        if pos >= len(buf):
            return None, 0
        type_ = buf[pos]
        if type_ == TYPE_END:
            if pos + 1 > msg_max:
                raise AttrError("message too long")
            return msg, pos + 1
        if type_ not in (TYPE_STR, TYPE_INT, TYPE_UINT, TYPE_BIN):
            raise AttrError(f"unknown type byte 0x{type_:02x}")
        if pos + 2 > len(buf):
            return None, 0
        nlen = buf[pos + 1]
        if nlen == 0 or nlen > name_max:
            raise AttrError(f"bad name length {nlen}")
        if pos + 2 + nlen + 4 > len(buf):
            return None, 0
        name = bytes(buf[pos + 2:pos + 2 + nlen])
        if not _NAME_RE.match(name):
            raise AttrError(f"bad name {name!r}")
        (vlen,) = struct.unpack(">I", buf[pos + 2 + nlen:pos + 6 + nlen])
        if vlen > value_max:
            raise AttrError(f"attribute {name.decode()}: value length {vlen} exceeds limit")
        end = pos + 6 + nlen + vlen
        if end + 1 > msg_max:
            raise AttrError("message too long")
        if len(msg) >= count_max:
            raise AttrError("too many attributes")
        if end > len(buf):
            return None, 0
        payload = bytes(buf[pos + 6 + nlen:end])
        if type_ in (TYPE_INT, TYPE_UINT):
            if vlen != 8:
                raise AttrError(f"attribute {name.decode()}: number of {vlen} bytes")
            value = struct.unpack(">q" if type_ == TYPE_INT else ">Q", payload)[0]
        elif type_ == TYPE_STR:
            if b"\0" in payload:
                raise AttrError(f"attribute {name.decode()}: NUL in a string")
            value = payload.decode("utf-8", "surrogateescape")
        else:
            value = payload
        msg.append((name.decode(), type_, value))
        pos = end


class AttrClient:
    """A blocking client on a UNIX stream socket: send messages, read replies."""

    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = bytearray()

    def send(self, attrs):
        self.sock.sendall(encode(attrs))

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv(self):
        """The next message; EOFError when the peer closed first."""
        while True:
            msg, used = decode(self.buf)
            if msg is not None:
                del self.buf[:used]
                return msg
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed by the server")
            self.buf += data

    def request(self, attrs):
        self.send(attrs)
        return self.recv()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
