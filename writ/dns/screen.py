"""Screening what crosses the resolver: client queries and upstream answers (pure functions).

Invariants:
- A query is FORMERR unless it has one question whose name is legal (labels
  ≤ 63 bytes, name ≤ 255, RFC 1035 §2.3.4), at most one OPT record (RFC 6891
  §6.1.1) and no TSIG (no keys are configured here).
- The names an answer leads to are every CNAME target and, for a DNAME
  (RFC 6672 §2.2), its target and the question name with the DNAME owner
  replaced by the target; the resolver blocks the answer if any is blocked.
  A DNAME target that cannot be read (RFC 6672 §2.5: it "MUST NOT be sent
  out in compressed form") makes the answer unusable, never unchecked.
"""

from __future__ import annotations

from collections.abc import Sequence

from dnslib import RR, DNSRecord

from writ.dns import answers

__all__ = ["UnusableError", "chain_hops", "malformed"]

_CNAME, _DNAME, _OPT, _TSIG = 5, 39, 41, 250


class UnusableError(Exception):
    """An upstream answer we cannot check for blocked names: SERVFAIL, never served."""


def malformed(request: DNSRecord) -> str | None:
    """Why a query is FORMERR (one question, a legal name, one OPT at most, no TSIG)."""
    if len(request.questions) != 1:
        return "not one question"
    why = answers.name_error(request.q.qname.label)
    if why is not None:
        return why
    types = [rr.rtype for rr in request.ar]
    if types.count(_OPT) > 1:
        # RFC 6891 §6.1.1: "If a query message with more than one OPT RR is received, a
        # FORMERR (RCODE=1) MUST be returned."
        return "two OPT records"
    if _TSIG in types:
        return "TSIG (no keys are configured)"
    return None


def chain_hops(rr: RR, qname: tuple[bytes, ...]) -> list[Sequence[bytes]]:
    """The names a CNAME or DNAME record leads to (RFC 6672 §2.2: the DNAME target, and
    the question name with the DNAME owner replaced by the target)."""
    if rr.rtype == _CNAME:
        return [rr.rdata.label.label]
    if rr.rtype != _DNAME:
        return []
    target = _dname_target(bytes(rr.rdata.data))
    if target is None:
        raise UnusableError("a DNAME whose target cannot be read")
    owner = tuple(x.lower() for x in rr.rname.label)
    hops: list[Sequence[bytes]] = [target]
    if owner and qname[-len(owner):] == owner and len(qname) > len(owner):
        hops.append(qname[: -len(owner)] + tuple(target))
    return hops


def _dname_target(rdata: bytes) -> list[bytes] | None:
    """The uncompressed target name of a DNAME (RFC 6672 §2.5: it MUST NOT be compressed)."""
    labels: list[bytes] = []
    pos = 0
    while pos < len(rdata):
        ln = rdata[pos]
        if ln == 0:
            return labels if pos + 1 == len(rdata) else None
        if ln > 63:
            return None
        labels.append(rdata[pos + 1 : pos + 1 + ln])
        pos += ln + 1
    return None
