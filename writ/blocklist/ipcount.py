"""How many addresses a set of ip/ip_prefix rules covers — the cost of an
order made visible (`writ orders check`, `writ orders diff`). Pure.

Overlapping rules count once: the rules are merged into disjoint intervals
per family before counting, so an address blocked by two orders is one
address. Set differences follow from unions: |A minus B| = |A or B| - |B|.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from writ.blocklist._ipfast import bulk_keys
from writ.blocklist.fold import fold
from writ.blocklist.ipaddr import Prefix, canonical_ip
from writ.blocklist.model import Act

__all__ = ["AddressChanges", "Coverage", "address_changes", "coverage", "rules_in_force_ip"]


@dataclass(frozen=True, slots=True)
class Coverage:
    ipv4: int
    ipv6: int

    def __str__(self) -> str:
        return f"{self.ipv4:,} IPv4 and {self.ipv6:,} IPv6 addresses"


def _union_size(spans: list[tuple[int, int]]) -> int:
    spans.sort()
    total = 0
    end = -1
    for first, last in spans:
        if last <= end:
            continue  # nested in what is counted already
        total += last - max(first, end + 1) + 1
        end = last
    return total


def coverage(texts: Iterable[str]) -> Coverage:
    """The addresses covered by canonical ip/ip_prefix texts, overlaps once."""
    texts = list(texts)
    keys = bulk_keys(texts, guard=False)  # a million texts at C speed, when canonical
    if keys is None:
        ps: list[Prefix] = [canonical_ip(t) for t in texts]
        keys = ([p.net << 8 | p.plen for p in ps if p.family == 4],
                [p.net << 8 | p.plen for p in ps if p.family == 6])
    spans = [[(k >> 8, (k >> 8) | ((1 << (bits - (k & 0xFF))) - 1)) for k in fam]
             for fam, bits in zip(keys, (32, 128), strict=True)]
    return Coverage(_union_size(spans[0]), _union_size(spans[1]))


def rules_in_force_ip(acts: Iterable[Act], at: datetime) -> set[str]:
    """The canonical texts of every ip/ip_prefix rule in force at `at`."""
    f = fold(list(acts), at)
    return {t for inf in f.in_force for t in inf.act.ip_targets() if t not in inf.lifted}


@dataclass(frozen=True, slots=True)
class AddressChanges:
    added: Coverage  # blocked after, not before
    lifted: Coverage  # blocked before, not after


def address_changes(before: set[str], after: set[str]) -> AddressChanges:
    both = coverage(before | after)
    b, a = coverage(before), coverage(after)
    return AddressChanges(Coverage(both.ipv4 - b.ipv4, both.ipv6 - b.ipv6),
                          Coverage(both.ipv4 - a.ipv4, both.ipv6 - a.ipv6))
