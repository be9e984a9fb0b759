"""Choosing and building answers: pure functions of a request, a decision and the policy.

"Is it blocked, by what?" is the index's question; "what do we answer?" is
this module's (docs/design.md §7.5). Nothing here opens a socket or reads a clock.

Invariants:
- A blocked name always gets the policy's action and, when the query carried
  an OPT record, an EDE INFO-CODE 16 (Censored) naming the orders. RFC 6891
  §7: "If an OPT record is not present in the request, responders MUST NOT
  include an OPT record in the response" — so no OPT, no EDE.
- nxdomain and sinkhole NODATA answers carry an SOA in the authority section
  so resolvers cache the negative answer (RFC 2308 §3) for `block_ttl`.
- An answer never exceeds `limit` because of our text: EDE text shrinks first.
- The DO bit is copied into the response OPT (RFC 3225 §3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

from dnslib import AAAA, EDNS0, QTYPE, RCODE, RR, SOA, A, DNSHeader, DNSRecord
from dnslib.dns import DNSError

from writ.blocklist import Decision
from writ.dns.ede import CENSORED, PROHIBITED, ede_option, fit_text
from writ.dns.wire import TYPE_OPT
from writ.policies import DnsAction, DnsPolicy

__all__ = [
    "EdnsInfo",
    "blocked",
    "edns_of",
    "error",
    "parse_request",
    "prohibited",
    "steered",
    "truncated",
]

OUR_UDP_SIZE = 1232  # DNS flag day 2020: avoids IP fragmentation on common paths
SOA_MNAME = "blocked.writ.invalid."
SOA_RNAME = "hostmaster.writ.invalid."


class EdnsInfo:
    __slots__ = ("do", "present", "udp_size", "version")

    def __init__(self, present: bool, do: bool = False, udp_size: int = 512,
                 version: int = 0) -> None:
        self.present = present
        self.do = do
        self.udp_size = udp_size
        self.version = version

    def limit(self, tcp: bool) -> int:
        if tcp:
            return 65535
        return max(512, self.udp_size) if self.present else 512


def parse_request(data: bytes) -> DNSRecord | None:
    """dnslib's parse, with every way hostile bytes can make it fail turned into None."""
    try:
        return DNSRecord.parse(data)
    except (DNSError, ValueError, IndexError, KeyError, UnicodeError, TypeError, OverflowError):
        return None
    except Exception:  # dnslib raises BufferError and assorted others  # noqa: BLE001 (hostile bytes must never raise out of the parser)
        return None


def edns_of(request: DNSRecord) -> EdnsInfo:
    for rr in request.ar:
        if rr.rtype == TYPE_OPT:
            return EdnsInfo(True, bool(rr.ttl & 0x8000), int(rr.rclass), (rr.ttl >> 16) & 0xFF)
    return EdnsInfo(False)


def _reply(request: DNSRecord, rcode: int) -> DNSRecord:
    h = request.header
    header = DNSHeader(id=h.id, qr=1, opcode=h.opcode, aa=0, rd=h.rd, ra=1, rcode=rcode)
    header.cd = h.cd
    r = DNSRecord(header)
    for q in request.questions:
        r.add_question(q)
    return r


def _opt(edns: EdnsInfo, options: Sequence[object] = (), ext_rcode: int = 0) -> EDNS0:
    return EDNS0(udp_len=OUR_UDP_SIZE, flags="do" if edns.do else "",
                 ext_rcode=ext_rcode, opts=list(options))


def _soa(qname: object, ttl: int) -> RR:
    return RR(qname, QTYPE.SOA, ttl=ttl,
              rdata=SOA(SOA_MNAME, SOA_RNAME, (1, 3600, 600, 86400, ttl)))


def _with_ede(r: DNSRecord, edns: EdnsInfo, code: int, text: Callable[[int], str],
              limit: int) -> bytes:
    """Add OPT + EDE whose text is `text(room)`, room = bytes left under `limit`."""
    if not edns.present:
        return bytes(r.pack())
    r.add_ar(_opt(edns, [ede_option(code)]))
    room = limit - len(r.pack())
    r.ar = []
    r.add_ar(_opt(edns, [ede_option(code, text(room))]))
    return bytes(r.pack())


def blocked(request: DNSRecord, decision: Decision, dns: DnsPolicy, edns: EdnsInfo,
            limit: int) -> tuple[bytes, str]:
    """The block answer for `decision` under the policy's action: (wire, action)."""
    q = request.q
    action = DnsAction(dns.action)
    if action is DnsAction.REFUSED:
        r = _reply(request, RCODE.REFUSED)
    elif action is DnsAction.NXDOMAIN:
        r = _reply(request, RCODE.NXDOMAIN)
        r.add_auth(_soa(q.qname, dns.block_ttl))
    else:
        r = _reply(request, RCODE.NOERROR)
        addrs = _addresses(q.qtype, dns.sinkhole_ipv4, dns.sinkhole_ipv6)
        for rr in _address_rrs(q.qname, q.qtype, addrs, dns.block_ttl):
            r.add_answer(rr)
        if not addrs:
            r.add_auth(_soa(q.qname, dns.block_ttl))  # NODATA for other types
    text = partial(fit_text, decision.orders)
    return _with_ede(r, edns, CENSORED, lambda room: text(room + 6), limit), str(action)


def steered(request: DNSRecord, dns: DnsPolicy, edns: EdnsInfo) -> bytes:
    """A/AAAA pointing at the HTTP proxy (two-stage: the proxy applies the URL rules)."""
    q = request.q
    r = _reply(request, RCODE.NOERROR)
    addrs = _addresses(q.qtype, dns.steer_ipv4, dns.steer_ipv6)
    for rr in _address_rrs(q.qname, q.qtype, addrs, dns.block_ttl):
        r.add_answer(rr)
    if not addrs:
        r.add_auth(_soa(q.qname, dns.block_ttl))
    if edns.present:
        r.add_ar(_opt(edns))
    return bytes(r.pack())


def prohibited(request: DNSRecord, edns: EdnsInfo) -> bytes:
    """REFUSED with EDE 18 for a client outside the policy's networks."""
    msg = "this resolver does not serve your network"
    return _with_ede(_reply(request, RCODE.REFUSED), edns, PROHIBITED,
                     lambda room: msg[: max(0, room)], 512)


def error(request: DNSRecord, rcode: int, edns: EdnsInfo) -> bytes:
    """SERVFAIL, FORMERR, NOTIMP, REFUSED or BADVERS (rcode 16) with no sections."""
    r = _reply(request, rcode & 0xF)
    if edns.present:
        r.add_ar(_opt(edns, ext_rcode=rcode >> 4))
    return bytes(r.pack())


def truncated(request: DNSRecord, edns: EdnsInfo, rcode: int = 0) -> bytes:
    """TC=1 with the question only (RFC 1035 §4.1.1; the client retries over TCP)."""
    r = _reply(request, rcode)
    r.header.tc = 1
    if edns.present:
        r.add_ar(_opt(edns))
    return bytes(r.pack())


def _addresses(qtype: int, v4: Sequence[str], v6: Sequence[str]) -> Sequence[str]:
    if qtype == QTYPE.A:
        return v4
    if qtype == QTYPE.AAAA:
        return v6
    return ()


def _address_rrs(qname: object, qtype: int, addrs: Sequence[str], ttl: int) -> list[RR]:
    cls = A if qtype == QTYPE.A else AAAA
    return [RR(qname, qtype, ttl=ttl, rdata=cls(a)) for a in addrs]
