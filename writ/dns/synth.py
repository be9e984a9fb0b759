"""Block and steer answers built straight from bytes: the fast path's answer builders.

The same answers as writ.dns.answers builds through dnslib (tests compare the
two byte for byte), without a dnslib parse or pack: the header and question
come from the query as it is on the wire, the records from per-policy
templates. Only plain queries (writ.dns.wire.parse_query) get here.

Invariants:
- Header: QR=1, RA=1, AA=0, opcode 0, RD and CD copied, the action's rcode.
  The question is the client's own bytes (its letter case echoed back).
- Records point at the question name (0xC00C); the SOA's RNAME points into
  its MNAME, as dnslib's compression does.
- EDE 16 only when the query had an OPT record (RFC 6891 §7: "If an OPT
  record is not present in the request, responders MUST NOT include an OPT
  record in the response"); its text is cut to fit `limit` (ede.fit_text).
- The DO bit is copied into the response OPT (RFC 3225 §3).
- Nothing reads a clock or a socket.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence

from writ.blocklist import CanonError, canonical_name
from writ.dns.ede import CENSORED, OPTION_EDE, fit_text
from writ.dns.sde import Structured
from writ.dns.wire import Query
from writ.policies import DnsAction, DnsPolicy

__all__ = ["Synth", "wire_name"]

OUR_UDP_SIZE = 1232  # as answers.OUR_UDP_SIZE
_A, _SOA, _AAAA = 1, 6, 28
_STEERED = frozenset((1, 28, 64, 65))  # A, AAAA, SVCB, HTTPS (as server._STEERED_TYPES)
_HDR = struct.Struct("!HHHHHH")
_RR_HEAD = struct.Struct("!HHHIH")  # owner pointer, type, class, ttl, rdlength
_OPT_HEAD = struct.Struct("!BHHIH")
_EDE_HEAD = struct.Struct("!HHH")  # option code, option length, INFO-CODE
_SOA_NAMES = b"\x07blocked\x04writ\x07invalid\x00"  # blocked.writ.invalid.
_RNAME_HEAD = b"\x0ahostmaster"  # hostmaster. + pointer to writ.invalid. in the MNAME
_RCODE = {DnsAction.REFUSED: 5, DnsAction.NXDOMAIN: 3, DnsAction.SINKHOLE: 0}


def wire_name(data: bytes, qend: int) -> str | None:
    """The question name of a plain query, canonical; None if it is not plain LDH.

    None sends the query to the full path (names.decide_labels), which also
    handles odd bytes and labels with dots in them.
    """
    raw = bytearray(data[12 : qend - 5])  # without the root label and QTYPE/QCLASS
    n = len(raw)
    if n == 0:
        return None
    dots = 0
    pos = raw[0] + 1
    while pos < n:
        ln = raw[pos]
        raw[pos] = 0x2E  # the length byte becomes the dot
        dots += 1
        pos += ln + 1
    del raw[0]
    try:
        text = raw.decode("ascii").lower()
        name = canonical_name(text)
    except (UnicodeDecodeError, CanonError):
        return None
    # A label holding a "." would read as two labels: refuse what does not round-trip.
    if name != text or text.count(".") != dots:
        return None
    return name


def _rrs(rtype: int, addrs: Sequence[str], ttl: int) -> bytes:
    out = b""
    for a in addrs:
        packed = ipaddress.ip_address(a).packed
        out += _RR_HEAD.pack(0xC00C, rtype, 1, ttl, len(packed)) + packed
    return out


class Synth:
    """Per-policy templates; `blocked()` and `steered()` splice a query into them."""

    def __init__(self, dns: DnsPolicy, structured: Structured | None = None) -> None:
        self.structured = structured  # EDE text as JSON for queries that opt in
        self.action = DnsAction(dns.action)
        self.action_name = str(self.action)
        self.rcode = _RCODE[self.action]
        self.ttl = dns.block_ttl
        self.sink = {_A: (_rrs(_A, dns.sinkhole_ipv4, self.ttl), len(dns.sinkhole_ipv4)),
                     _AAAA: (_rrs(_AAAA, dns.sinkhole_ipv6, self.ttl), len(dns.sinkhole_ipv6))}
        self.steer = {_A: (_rrs(_A, dns.steer_ipv4, self.ttl), len(dns.steer_ipv4)),
                      _AAAA: (_rrs(_AAAA, dns.steer_ipv6, self.ttl), len(dns.steer_ipv6))}
        self._text: dict[tuple[tuple[str, ...], int], bytes] = {}

    def _soa(self, offset: int) -> bytes:
        """The SOA record for an answer whose SOA starts at `offset`."""
        rname = _RNAME_HEAD + struct.pack("!H", 0xC000 | (offset + 12 + 8))
        tail = struct.pack("!IIIII", 1, 3600, 600, 86400, self.ttl)
        rdata = _SOA_NAMES + rname + tail
        return _RR_HEAD.pack(0xC00C, _SOA, 1, self.ttl, len(rdata)) + rdata

    def _records(self, data: bytes, q: Query, rcode: int, table: dict[int, tuple[bytes, int]],
                 ar: int) -> bytes:
        """Header, question, answers or SOA: everything before the OPT record."""
        flags = 0x8080 | (q.flags & 0x0110) | rcode
        question = data[12 : q.qend]
        if rcode == 5:  # REFUSED: nothing but the question
            return _HDR.pack(0, flags, 1, 0, 0, ar) + question
        rrs, an = table.get(q.qtype, (b"", 0)) if rcode == 0 else (b"", 0)
        if an:
            return _HDR.pack(0, flags, 1, an, 0, ar) + question + rrs
        return _HDR.pack(0, flags, 1, 0, 1, ar) + question + self._soa(q.qend)

    def blocked(self, data: bytes, q: Query, orders: tuple[str, ...], limit: int) -> bytes:
        """The policy's block answer (ID zero) with EDE 16 naming `orders` when EDNS is on."""
        head = self._records(data, q, self.rcode, self.sink, 1 if q.edns else 0)
        if not q.edns:
            return head
        room = limit - len(head) - 11 - 6  # 11: OPT RR, 6: EDE option head + INFO-CODE
        if q.sde and self.structured is not None:
            text = self.structured.text(orders, room).encode()
        else:
            text = self._fit(orders, room)
        opt = _OPT_HEAD.pack(0, 41, OUR_UDP_SIZE, 0x8000 if q.do else 0, 6 + len(text))
        return head + opt + _EDE_HEAD.pack(OPTION_EDE, 2 + len(text), CENSORED) + text

    def steered(self, data: bytes, q: Query) -> bytes | None:
        """A/AAAA to the HTTP proxy, NODATA + SOA for SVCB/HTTPS; None for other types."""
        if q.qtype not in _STEERED:
            return None
        head = self._records(data, q, 0, self.steer, 1 if q.edns else 0)
        if not q.edns:
            return head
        return head + _OPT_HEAD.pack(0, 41, OUR_UDP_SIZE, 0x8000 if q.do else 0, 0)

    def _fit(self, orders: tuple[str, ...], room: int) -> bytes:
        key = (orders, room)
        text = self._text.get(key)
        if text is None:
            if len(self._text) >= 4096:  # many order sets and sizes: start over, stay bounded
                self._text.clear()
            text = self._text[key] = fit_text(orders, room + 6).encode()
        return text
