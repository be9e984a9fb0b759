"""Response-IP policy: judging the addresses an upstream answer carries.

An answer whose answer section holds an A or AAAA record inside a blocked
address or prefix (an `ip`/`ip_prefix` target in force) is blocked as a
whole, like an RPZ `rpz-ip` trigger: a client must not learn a blocked
address under another name. Every order whose rule holds any of the
answer's addresses is named (all of them, not the first), and the rule is
the most specific one that matched (`ip_prefix 198.51.100.0/24`).

Pure: decisions come from the index (writ.blocklist), records from dnslib's
parse of the cleaned upstream reply.
"""

from __future__ import annotations

from dnslib import QTYPE, DNSRecord

from writ.blocklist import Decision, Index, Verdict

__all__ = ["answer_addresses_decision"]

_ADDRESS_TYPES = frozenset((QTYPE.A, QTYPE.AAAA))


def answer_addresses_decision(parsed: DNSRecord, index: Index) -> Decision | None:
    """The block decision for the answer's blocked addresses, or None."""
    if not index.ip_count:
        return None
    hits: list[Decision] = []
    for rr in parsed.rr:
        rtype = rr.rtype
        if rtype not in _ADDRESS_TYPES:
            continue
        d = index.decide_packed(bytes(rr.rdata.data))
        if d.blocked and d not in hits:
            hits.append(d)
    if not hits:
        return None
    if len(hits) == 1:
        return hits[0]
    orders = tuple(sorted({o for d in hits for o in d.orders}))
    rules = tuple(dict.fromkeys(r for d in hits for r in d.rules))
    return Decision(Verdict.BLOCK, orders, hits[0].rule, rules, host_level=True)
