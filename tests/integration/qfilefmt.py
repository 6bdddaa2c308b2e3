"""A reader of Postern queue files (docs/queue-format.md, version 1) for tests.

    q = read_qfile(path)
    q.id, q.arrival, q.msg_class ("immediate"/"bulk"), q.priority, q.sender,
    q.dsn_ret, q.dsn_envid, q.rcpts (list of Rcpt), q.attrs (list of (name, value)),
    q.content (bytes, LF line ends, exactly as stored), q.content_size,
    q.commit_count, q.defers (list of (index, time, next, dsn, reason))

It checks the framing (magic, version, record lengths, section order) and
raises QfileError on anything wrong. Text fields are decoded as UTF-8 with
surrogate escapes, so any byte survives a round trip.
"""

import struct
from dataclasses import dataclass, field

MAGIC = b"\x89PQF\r\n\x1a\n"
REC_MAX = 65536


class QfileError(Exception):
    pass


@dataclass
class Rcpt:
    address: str
    orig_rcpt: str
    orcpt: str
    notify: int
    status: str


@dataclass
class Qfile:
    id: str = ""
    arrival: float = 0.0
    msg_class: str = "immediate"
    priority: int = 0
    sender: str = None
    dsn_ret: int = 0
    dsn_envid: str = ""
    rcpts: list = field(default_factory=list)
    attrs: list = field(default_factory=list)
    content: bytes = b""
    content_size: int = 0
    content_end_offset: int = 0
    commit_count: int = None
    defers: list = field(default_factory=list)

    def attr(self, name):
        """The last value of the named attribute, or None."""
        value = None
        for n, v in self.attrs:
            if n == name:
                value = v
        return value


def _text(b):
    return b.decode("utf-8", "surrogateescape")


def read_qfile(path):
    data = open(path, "rb").read()
    if data[:8] != MAGIC:
        raise QfileError("bad magic")
    version, flags = struct.unpack(">HH", data[8:12])
    if version != 1 or flags != 0:
        raise QfileError(f"version {version} flags {flags}")
    q = Qfile()
    pos, section, content = 12, "envelope", []
    first = True
    while pos < len(data):
        if pos + 5 > len(data):
            raise QfileError("truncated record header")
        rtype = chr(data[pos])
        (rlen,) = struct.unpack(">I", data[pos + 1:pos + 5])
        if rlen > REC_MAX or pos + 5 + rlen > len(data):
            raise QfileError(f"bad length {rlen} at {pos}")
        p = data[pos + 5:pos + 5 + rlen]
        rec_off = pos
        pos += 5 + rlen
        if first and rtype != "I":
            raise QfileError("QUEUE_ID is not the first record")
        first = False
        if rtype == "I":
            q.id = _text(p)
        elif rtype == "T":
            sec, usec = struct.unpack(">QI", p)
            q.arrival = sec + usec / 1e6
        elif rtype == "C":
            q.msg_class = {0: "immediate", 1: "bulk"}[p[0]]
            q.priority = struct.unpack(">b", p[1:2])[0]
        elif rtype == "S":
            q.sender = _text(p)
        elif rtype == "D":
            q.dsn_ret, q.dsn_envid = p[0], _text(p[1:])
        elif rtype == "R":
            status, notify = chr(p[0]), p[1]
            (alen,) = struct.unpack(">H", p[2:4])
            addr = _text(p[4:4 + alen])
            (olen,) = struct.unpack(">H", p[4 + alen:6 + alen])
            orig = _text(p[6 + alen:6 + alen + olen])
            orcpt = _text(p[6 + alen + olen:])
            if section not in ("envelope", "post"):
                raise QfileError("RCPT inside the content")
            q.rcpts.append(Rcpt(addr, orig, orcpt, notify, status))
        elif rtype == "A":
            nlen = p[0]
            q.attrs.append((_text(p[1:1 + nlen]), _text(p[1 + nlen:])))
        elif rtype == "M":
            if section != "envelope":
                raise QfileError("second CONTENT record")
            q.content_size, q.content_end_offset = struct.unpack(">QQ", p)
            section = "content"
        elif rtype in ("L", "P"):
            if section != "content":
                raise QfileError(f"{rtype} outside the content")
            if rtype == "P" and not p:
                raise QfileError("empty PART")
            content.append(p + (b"\n" if rtype == "L" else b""))
        elif rtype == "E":
            if section != "content":
                raise QfileError("CONTENT_END outside the content")
            if q.content_end_offset != rec_off:
                raise QfileError("CONTENT offset does not point at CONTENT_END")
            section = "post"
        elif rtype == "Z":
            (q.commit_count,) = struct.unpack(">I", p)
            section = "appended"
        elif rtype == "W":
            idx, when, nxt, dlen = struct.unpack(">IQQB", p[:21])
            q.defers.append((idx, when, nxt, _text(p[21:21 + dlen]), _text(p[21 + dlen:])))
        elif rtype == "Y":
            pass
        elif data[rec_off] >= 0x80:
            pass  # ancillary: skipped
        else:
            raise QfileError(f"unknown critical record type {data[rec_off]:#x}")
    q.content = b"".join(content)
    if q.commit_count is None:
        raise QfileError("no COMMIT record")
    if q.commit_count != len(q.rcpts):
        raise QfileError("COMMIT count differs from the recipients")
    if len(q.content) != q.content_size:
        raise QfileError(f"content size {len(q.content)} != recorded {q.content_size}")
    return q
