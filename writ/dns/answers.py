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

from dnslib import AAAA, EDNS0, QTYPE, RCODE, RR, SOA, A, DNSHeader, DNSQuestion, DNSRecord
from dnslib.bimap import BimapError
from dnslib.buffer import BufferError as DnslibBufferError
from dnslib.dns import DNSError
from dnslib.label import DNSBuffer, DNSLabel

from writ.blocklist import Decision
from writ.dns.ede import CENSORED, OPTION_EDE, PROHIBITED, ede_option, fit_text
from writ.dns.sde import Structured
from writ.dns.wire import TYPE_OPT
from writ.policies import DnsAction, DnsPolicy

__all__ = [
    "EdnsInfo",
    "blocked",
    "edns_of",
    "error",
    "name_error",
    "parse_request",
    "prohibited",
    "servfail",
    "steered",
    "truncated",
]

OUR_UDP_SIZE = 1232  # DNS flag day 2020: avoids IP fragmentation on common paths
SOA_MNAME = "blocked.writ.invalid."
SOA_RNAME = "hostmaster.writ.invalid."


class EdnsInfo:
    __slots__ = ("do", "present", "sde", "udp_size", "version")

    def __init__(self, present: bool, do: bool = False, udp_size: int = 512,
                 version: int = 0, sde: bool = False) -> None:
        self.present = present
        self.sde = sde  # opted in to structured DNS errors (writ/dns/sde.py)
        self.do = do
        self.udp_size = udp_size
        self.version = version

    def limit(self, tcp: bool) -> int:
        if tcp:
            return 65535
        return max(512, self.udp_size) if self.present else 512


class _Buffer(DNSBuffer):  # type: ignore[misc]
    """dnslib's buffer without its UTF-8 check on labels.

    RFC 2181 §11: "any binary string whatever can be used as the label of any
    resource record"; dnslib refuses labels that are not UTF-8, which made
    names with bytes ≥ 0x80 unanswerable. Pointers must point backwards, as
    in dnslib (RFC 1035 §4.1.4: a *prior* occurrence), so no loop is possible.
    """

    def decode_name(self, last: int = -1) -> DNSLabel:
        labels: list[bytes] = []
        while True:
            (length,) = self.unpack("!B")
            if length & 0xC0 == 0xC0:
                self.offset: int = self.offset - 1
                pointer = self.unpack("!H")[0] & 0x3FFF
                save: int = self.offset
                if last == save or pointer >= save - 2:
                    raise DnslibBufferError(f"bad pointer at offset {save - 2}")
                self.offset = pointer
                labels.extend(self.decode_name(save).label)
                self.offset = save
                return DNSLabel(labels)
            if length == 0:
                return DNSLabel(labels)
            labels.append(bytes(self.get(length)))


def _parse(data: bytes) -> DNSRecord:
    buffer = _Buffer(data)
    try:
        header = DNSHeader.parse(buffer)
        questions = [DNSQuestion.parse(buffer) for _ in range(header.q)]
        rr = [RR.parse(buffer) for _ in range(header.a)]
        auth = [RR.parse(buffer) for _ in range(header.auth)]
        ar = [RR.parse(buffer) for _ in range(header.ar)]
    except (DnslibBufferError, BimapError) as e:
        raise DNSError(str(e)) from None
    return DNSRecord(header, questions, rr, auth=auth, ar=ar)


def parse_request(data: bytes) -> DNSRecord | None:
    """dnslib's parse (labels of any bytes), every way hostile bytes can fail turned into None."""
    try:
        return _parse(data)
    except (DNSError, ValueError, IndexError, KeyError, UnicodeError, TypeError, OverflowError):
        return None
    except Exception:  # dnslib raises assorted others  # noqa: BLE001 (hostile bytes must never raise out of the parser)
        return None


def name_error(labels: Sequence[bytes]) -> str | None:
    """Why a question name is illegal (RFC 1035 §2.3.4: labels ≤ 63, names ≤ 255 octets)."""
    if any(len(label) > 63 for label in labels):
        return "a label over 63 bytes"
    if sum(len(label) + 1 for label in labels) + 1 > 255:
        return "a name over 255 bytes"
    return None


def edns_of(request: DNSRecord) -> EdnsInfo:
    for rr in request.ar:
        if rr.rtype == TYPE_OPT:
            sde = any(getattr(o, "code", None) == OPTION_EDE and getattr(o, "data", None) == b"\0\0"
                      for o in (rr.rdata if isinstance(rr.rdata, list) else ()))
            return EdnsInfo(True, bool(rr.ttl & 0x8000), int(rr.rclass), (rr.ttl >> 16) & 0xFF,
                            sde)
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
            limit: int, *, structured: Structured | None = None) -> tuple[bytes, str]:
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
    if edns.sde and structured is not None:  # the query opted in: JSON text
        return (_with_ede(r, edns, CENSORED, partial(structured.text, decision.orders), limit),
                str(action))
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


def servfail(request: DNSRecord, edns: EdnsInfo, code: int, text: str) -> bytes:
    """SERVFAIL with an EDE saying why (RFC 8914 §4.23/4.24: 22 no reachable authority,
    23 network error; 0 other), so an outage is never mistaken for a block."""
    return _with_ede(_reply(request, RCODE.SERVFAIL), edns, code,
                     lambda room: text[: max(0, room)], 512)


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
