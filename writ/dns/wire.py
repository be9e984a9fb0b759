"""Reading DNS messages from raw bytes, without dnslib: the fast path.

Invariants:
- `parse_query` accepts only the plain common case (a query, opcode QUERY,
  exactly one question, no answer/authority records, at most one OPT record,
  no compression in the question, nothing after the last record). Anything
  else returns None and the caller falls back to the full dnslib path.
- Nothing here raises on hostile input: every offset is checked against the
  length before use, and name walking is bounded (pointers must point
  backwards, RFC 1035 §4.1.4 says they point to a *prior* occurrence).
- Cache keys are the question as it is on the wire with its NAME lowercased
  (length bytes are ≤ 63 so `bytes.lower()` only touches letters) and its
  QTYPE/QCLASS bytes as they are (lowercasing those made HTTPS (0x41) and
  TYPE97 (0x61) one key), plus the RD/CD bits and the EDNS state (none / OPT /
  OPT+DO): two queries with one key always get the same answer body.
- Upstream data is sanitised before anyone sees it (`clean_reply`): AA is
  cleared (we are not the authority), a TTL with the high bit set is 0
  (RFC 2181 §8: "treated as if the entire value received was zero") and every
  TTL is capped at the policy's max_ttl.
"""

from __future__ import annotations

import struct

from writ.dns.sde import opted_in

__all__ = [
    "TYPE_OPT",
    "Query",
    "add_opt",
    "clean_reply",
    "header_reply",
    "opt_record",
    "parse_query",
    "patch_ttls",
    "plain_reply",
    "record_ttls",
]

TYPE_OPT = 41
TYPE_SOA = 6
_HDR = struct.Struct("!HHHHHH")
_QTAIL = struct.Struct("!HH")
_OPT = struct.Struct("!BHHIH")  # root name, type, class (payload size), ttl (flags), rdlength
_RR = struct.Struct("!HHIH")
_TTL = struct.Struct("!I")


class Query:
    """The parts of a plain query that the fast path and the cache need."""

    __slots__ = ("do", "edns", "flags", "key", "qend", "qid", "qtype", "sde", "udp_size")

    def __init__(  # noqa: PLR0917 (a record of parsed fields)
        self, qid: int, flags: int, qtype: int, qend: int, key: bytes,
        edns: bool, do: bool, udp_size: int, sde: bool = False,
    ) -> None:
        self.qid = qid
        self.flags = flags
        self.qtype = qtype
        self.qend = qend  # offset just after QTYPE/QCLASS
        self.key = key
        self.edns = edns
        self.do = do
        self.udp_size = udp_size
        self.sde = sde  # opted in to structured DNS errors (writ/dns/sde.py)

    @property
    def limit(self) -> int:
        """The largest UDP answer this client accepts (RFC 6891 §6.2.5: < 512 means 512)."""
        return max(512, self.udp_size) if self.edns else 512


def parse_query(data: bytes) -> Query | None:  # noqa: PLR0911 (one early return per rejected shape)
    n = len(data)
    if n < 17:
        return None
    qid, flags, qd, an, ns, ar = _HDR.unpack_from(data)
    # QR=0, opcode QUERY, one question, nothing but at most one OPT after it.
    if flags & 0xF800 or qd != 1 or an or ns or ar > 1:
        return None
    pos = 12
    while True:
        if pos >= n:
            return None
        ln = data[pos]
        if ln == 0:
            pos += 1
            break
        if ln > 63:  # a pointer (or a reserved label type): not the plain case
            return None
        pos += ln + 1
    if pos - 12 > 255 or pos + 4 > n:
        return None
    qtype, qclass = _QTAIL.unpack_from(data, pos)
    qend = pos + 4
    edns = do = sde = False
    udp_size = 512
    if ar:
        if qend + 11 > n:
            return None
        root, rtype, udp_size, ttl, rdlen = _OPT.unpack_from(data, qend)
        if root != 0 or rtype != TYPE_OPT or qend + 11 + rdlen != n or ttl & 0x00FF0000:
            return None  # not an OPT, trailing bytes, or EDNS version > 0 (BADVERS path)
        edns = True
        do = bool(ttl & 0x8000)
        sde = rdlen > 0 and opted_in(data[qend + 11 :])
    elif qend != n:
        return None
    # The cache keeps answers per EDNS state: a structured-error answer (JSON EDE
    # text) is never served to a client that did not opt in, nor the other way.
    state = (2 if do else 1 if edns else 0) | (4 if sde else 0)
    key = data[12:pos].lower() + data[pos:qend] + bytes(((flags & 0x0110) >> 4, state))
    if qclass != 1:
        return None
    return Query(qid, flags, qtype, qend, key, edns, do, udp_size, sde)


def _skip_name(data: bytes, pos: int) -> int:
    """Offset just after the name at `pos`; -1 if malformed. Pointers end a name."""
    n = len(data)
    for _ in range(128):  # at most 127 labels fit in 255 bytes
        if pos >= n:
            return -1
        ln = data[pos]
        if ln == 0:
            return pos + 1
        if ln & 0xC0 == 0xC0:
            return pos + 2 if pos + 2 <= n else -1
        if ln > 63:
            return -1
        pos += ln + 1
    return -1


def record_ttls(msg: bytes) -> tuple[list[tuple[int, int]], int | None, int] | None:  # noqa: PLR0911 (one early return per malformation)
    """Walk a response: ([(ttl offset, ttl)], SOA negative TTL or None, rcode).

    OPT records are skipped (their "TTL" holds flags). The SOA negative TTL is
    min(SOA TTL, SOA MINIMUM) of an SOA in the authority section (RFC 2308 §5).
    None if the message is malformed.
    """
    n = len(msg)
    if n < 12:
        return None
    _, flags, qd, an, ns, ar = _HDR.unpack_from(msg)
    pos = 12
    for _ in range(qd):
        pos = _skip_name(msg, pos)
        if pos < 0 or pos + 4 > n:
            return None
        pos += 4
    ttls: list[tuple[int, int]] = []
    neg: int | None = None
    for i in range(an + ns + ar):
        pos = _skip_name(msg, pos)
        if pos < 0 or pos + 10 > n:
            return None
        rtype, _cls, ttl, rdlen = _RR.unpack_from(msg, pos)
        end = pos + 10 + rdlen
        if end > n:
            return None
        if rtype != TYPE_OPT:
            ttls.append((pos + 4, ttl))
            if rtype == TYPE_SOA and an <= i < an + ns:
                p = _skip_name(msg, pos + 10)
                p = _skip_name(msg, p) if p >= 0 else -1
                if p < 0 or p + 20 > end:
                    return None
                minimum = _TTL.unpack_from(msg, p + 16)[0]
                neg = min(ttl, minimum)
        pos = end
    if pos != n:
        return None
    return ttls, neg, flags & 0x000F


def patch_ttls(body: bytes, ttls: list[tuple[int, int]], age: int) -> bytes:
    """`body` with every TTL decreased by `age` seconds (never below zero)."""
    out = bytearray(body)
    for off, ttl in ttls:
        _TTL.pack_into(out, off, max(0, ttl - age))
    return bytes(out)


def header_reply(data: bytes, rcode: int) -> bytes | None:
    """A bare reply (no sections) to whatever header `data` starts with.

    None when there is no readable query header: a response (QR=1) is never
    answered (that way lie loops), and neither is anything shorter than 12 bytes.
    """
    if len(data) < 12:
        return None
    qid, flags = struct.unpack_from("!HH", data)
    if flags & 0x8000:
        return None
    # QR=1, opcode and RD copied, RA=1, rcode.
    out_flags = 0x8000 | (flags & 0x7900) | 0x0080 | (rcode & 0xF)
    return _HDR.pack(qid, out_flags, 0, 0, 0, 0)


def add_opt(msg: bytes, do: bool, udp_size: int = 1232) -> bytes:
    """`msg` with an empty OPT record appended (ARCOUNT + 1)."""
    ar = struct.unpack_from("!H", msg, 10)[0]
    opt = _OPT.pack(0, TYPE_OPT, udp_size, 0x8000 if do else 0, 0)
    return msg[:10] + struct.pack("!H", ar + 1) + msg[12:] + opt



def _ttl(ttl: int, max_ttl: int) -> int:
    return 0 if ttl & 0x80000000 else min(ttl, max_ttl)  # RFC 2181 §8


def clean_reply(msg: bytes, max_ttl: int,
                ) -> tuple[bytes, list[tuple[int, int]], int | None, int] | None:
    """`msg` with AA cleared and TTLs sanitised: (msg, ttls, negative TTL, rcode), or None."""
    walk = record_ttls(msg)
    if walk is None:
        return None
    ttls, neg, rcode = walk
    out = bytearray(msg)
    out[2] &= 0xFB  # AA: we forward, we are not the authority
    clean = []
    for off, ttl in ttls:
        t = _ttl(ttl, max_ttl)
        if t != ttl:
            _TTL.pack_into(out, off, t)
        clean.append((off, t))
    return bytes(out), clean, None if neg is None else _ttl(neg, max_ttl), rcode


def plain_reply(data: bytes, q: Query, flags: int, opt: bytes = b"") -> bytes:
    """A reply to the plain query `data` holding its question only (its letter case echoed).

    `flags`: the reply's own bits (TC, rcode); QR, RA, and the query's RD/CD are set
    here. `opt`: the OPT record, when the query had one (RFC 6891 §7).
    """
    f = 0x8080 | (q.flags & 0x0110) | flags
    return _HDR.pack(q.qid, f, 1, 0, 0, 1 if opt else 0) + data[12 : q.qend] + opt


def opt_record(do: bool, options: bytes = b"", udp_size: int = 1232) -> bytes:
    return _OPT.pack(0, TYPE_OPT, udp_size, 0x8000 if do else 0, len(options)) + options
