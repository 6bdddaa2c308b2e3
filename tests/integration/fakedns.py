"""A small authoritative-looking DNS server for integration tests (python3-dnslib).

    dns = FakeDNS()                       # UDP and TCP on 127.0.0.1, a free port
    dns.add("dest.example", "MX", (10, "mx1.dest.example"))
    dns.add("mx1.dest.example", "A", "127.0.0.2")
    dns.add("v6.example", "AAAA", "::1")
    dns.add("7.2.0.192.in-addr.arpa", "PTR", "host.example")
    dns.null_mx("nomail.example")         # RFC 7505: MX 0 .
    dns.servfail("broken.example")        # SERVFAIL for every type
    dns.silent("slow.example")            # no answer at all (timeouts)
    dns.start(); ... dns.stop()
    dns.server_spec                       # "127.0.0.1:PORT" for dns_servers

Names that have records answer NOERROR with the records of the asked type
(none: NODATA); names never added answer NXDOMAIN. A CNAME is followed
inside the zone, as a recursive resolver would return it. Every query is
recorded in .queries as (name, type).

Domains must not end in .test, .invalid or .localhost: libunbound answers
those itself (RFC 6761 local zones) without asking any server. Use
.example names.
"""

import threading

from dnslib import AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, A, DNSError, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

import conftest


class _Resolver(BaseResolver):
    def __init__(self, owner):
        self.owner = owner

    def resolve(self, request, handler):
        return self.owner._answer(request)


class FakeDNS:
    def __init__(self, host="127.0.0.1", port=None):
        self.host = host
        self.port = port or conftest.get_free_port()
        self.records = {}     # name -> list of (type, rdata)
        self.fail = set()
        self.quiet = set()
        self.queries = []
        self.lock = threading.Lock()
        self.servers = []

    @property
    def server_spec(self):
        return f"{self.host}:{self.port}"

    @staticmethod
    def _norm(name):
        return name.lower().rstrip(".")

    def add(self, name, rtype, value):
        with self.lock:
            self.records.setdefault(self._norm(name), []).append((rtype.upper(), value))

    def null_mx(self, name):
        self.add(name, "MX", (0, "."))

    def servfail(self, name):
        with self.lock:
            self.fail.add(self._norm(name))

    def silent(self, name):
        with self.lock:
            self.quiet.add(self._norm(name))

    def clear(self, name):
        with self.lock:
            self.records.pop(self._norm(name), None)
            self.fail.discard(self._norm(name))
            self.quiet.discard(self._norm(name))

    def _rr(self, name, rtype, value):
        if rtype == "A":
            return RR(name, QTYPE.A, rdata=A(value), ttl=1)
        if rtype == "AAAA":
            return RR(name, QTYPE.AAAA, rdata=AAAA(value), ttl=1)
        if rtype == "MX":
            pref, target = value
            return RR(name, QTYPE.MX, rdata=MX(target, pref), ttl=1)
        if rtype == "CNAME":
            return RR(name, QTYPE.CNAME, rdata=CNAME(value), ttl=1)
        if rtype == "PTR":
            return RR(name, QTYPE.PTR, rdata=PTR(value), ttl=1)
        raise ValueError(rtype)

    def _answer(self, request):
        reply = request.reply()
        qname = str(request.q.qname)
        qtype = QTYPE[request.q.qtype]
        name = self._norm(qname)
        with self.lock:
            self.queries.append((name, qtype))
            if name in self.quiet:
                raise DNSError("no answer on purpose")
            if name in self.fail:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            seen = 0
            while seen < 8:
                recs = self.records.get(name)
                if recs is None:
                    reply.header.rcode = RCODE.NXDOMAIN
                    return reply
                cnames = [v for t, v in recs if t == "CNAME"]
                if cnames and qtype != "CNAME":
                    reply.add_answer(self._rr(name + ".", "CNAME", cnames[0]))
                    name = self._norm(cnames[0])
                    seen += 1
                    continue
                for t, v in recs:
                    if t == qtype:
                        reply.add_answer(self._rr(name + ".", t, v))
                return reply
        return reply

    def start(self):
        logger = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
        resolver = _Resolver(self)
        for tcp in (False, True):
            srv = DNSServer(resolver, port=self.port, address=self.host, tcp=tcp, logger=logger)
            srv.start_thread()
            self.servers.append(srv)
        return self

    def stop(self):
        for srv in self.servers:
            try:
                srv.stop()
                srv.server.server_close()
            except Exception:
                pass
        self.servers = []


def query(server_port, name, qtype="A"):
    """Ask the fake server directly (for the tests' own checks)."""
    q = DNSRecord.question(name, qtype)
    return DNSRecord.parse(q.send("127.0.0.1", server_port, timeout=2))
