"""Longest-prefix matching for ip and ip_prefix rules, from plain sorted arrays.

Per address family the rules' prefixes (nested or disjoint, as CIDR prefixes
always are) are flattened once into covered segments: sorted, disjoint
address intervals `[first, last]`, each naming the most specific prefix that
covers it. A lookup is one `bisect` over the segment starts (C speed) and
one comparison; a miss allocates nothing. Every prefix keeps its parent (the
next wider rule prefix containing it), so a hit reports every rule covering
the address, most specific first, and the orders of all of them: overlapping
rules from different orders all name themselves.

Invariants:
- Built whole, never changed afterwards (the Index it belongs to is swapped
  as one value).
- A prefix listed by several orders is one prefix carrying all their ids.
- Rules are canonical texts from the loader (writ/blocklist/ipaddr.py);
  foreign text (e.g. a corrupt store) raises ValueError at build time, so a
  bad set never replaces a good index.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable

from writ.blocklist.ipaddr import IpError, Prefix, parse_address

__all__ = ["IpTable", "RuleHit"]

RuleHit = tuple[str, tuple[str, ...]]  # (rule text such as `ip_prefix 198.51.100.0/24`, orders)


def _parse(text: str) -> tuple[int, int, int]:
    """(family, net, plen) of a canonical rule text."""
    addr, slash, length = text.partition("/")
    try:
        family, net = parse_address(addr)
    except IpError:
        raise ValueError(f"not a canonical address or prefix: {text!r}") from None
    if family == 4 and ":" in addr:
        raise ValueError(f"not a canonical address or prefix: {text!r}")
    bits = 32 if family == 4 else 128
    plen = int(length) if slash and length.isdigit() else -1 if slash else bits
    if not 0 <= plen <= bits or net & ((1 << (bits - plen)) - 1):
        raise ValueError(f"not a canonical prefix: {text!r}")
    return family, net, plen


def _merge(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    if not a:
        return b
    if not b or a == b:
        return a
    return tuple(sorted(set(a) | set(b)))


class _Family:
    """One family's prefixes and segments."""

    __slots__ = ("bits", "first", "keys", "last", "orders", "parent", "top")

    def __init__(self, bits: int, prefixes: dict[int, tuple[str, ...]]) -> None:
        self.bits = bits
        # key = net << 8 | plen: sorting keys sorts by network, wider prefix first.
        keys = sorted(prefixes)
        self.keys = keys
        self.orders = [prefixes[k] for k in keys]
        n = len(keys)
        self.parent = array("i", bytes(4 * n)) if n else array("i")
        first: list[int] = []
        last: list[int] = []
        top = array("i")
        lasts: list[int] = []  # the open prefixes' last addresses, parallel to `stack`
        stack: list[int] = []
        cur = 0  # the first address not yet in a segment
        for pid, key in enumerate(keys):
            net = key >> 8
            while stack and lasts[-1] < net:
                tl = lasts.pop()
                tp = stack.pop()
                if cur <= tl:
                    first.append(cur)
                    last.append(tl)
                    top.append(tp)
                    cur = tl + 1
            if stack:
                if cur < net:
                    first.append(cur)
                    last.append(net - 1)
                    top.append(stack[-1])
                self.parent[pid] = stack[-1]
            else:
                self.parent[pid] = -1
            cur = net
            stack.append(pid)
            lasts.append(net | ((1 << (bits - (key & 0xFF))) - 1))
        while stack:
            tl = lasts.pop()
            tp = stack.pop()
            if cur <= tl:
                first.append(cur)
                last.append(tl)
                top.append(tp)
                cur = tl + 1
        self.first, self.last, self.top = first, last, top

    def find(self, x: int) -> int:
        """The most specific prefix covering address `x`, or -1."""
        i = bisect_right(self.first, x) - 1
        if i >= 0 and x <= self.last[i]:
            return self.top[i]
        return -1

    def prefix(self, pid: int) -> Prefix:
        key = self.keys[pid]
        return Prefix(4 if self.bits == 32 else 6, key >> 8, key & 0xFF)

    def chain(self, pid: int) -> list[int]:
        """`pid` and every wider rule prefix containing it, most specific first."""
        out = []
        while pid >= 0:
            out.append(pid)
            pid = self.parent[pid]
        return out

    def overlapping(self, net: int, end: int) -> set[int]:
        """Every prefix that contains or lies inside [net, end]."""
        found: set[int] = set()
        i = max(bisect_right(self.first, net) - 1, 0)
        stop = bisect_right(self.first, end)
        for j in range(i, stop):
            if self.last[j] >= net:
                found.update(self.chain(self.top[j]))
        return found


class IpTable:
    """The ip/ip_prefix rules of one instant. Immutable once built."""

    __slots__ = ("count", "v4", "v6")

    def __init__(self, rules: Iterable[tuple[str, tuple[str, ...]]]) -> None:
        by_family: tuple[dict[int, tuple[str, ...]], dict[int, tuple[str, ...]]] = ({}, {})
        for text, orders in rules:
            family, net, plen = _parse(text)
            table = by_family[family == 6]
            key = net << 8 | plen
            had = table.get(key)
            table[key] = orders if had is None else _merge(had, orders)
        self.v4 = _Family(32, by_family[0])
        self.v6 = _Family(128, by_family[1])
        self.count = len(by_family[0]) + len(by_family[1])

    def __len__(self) -> int:
        return self.count

    def find(self, family: int, x: int) -> int:
        return (self.v4 if family == 4 else self.v6).find(x)

    def hits(self, family: int, pid: int) -> list[RuleHit]:
        """The rules covering an address whose most specific rule is `pid`."""
        fam = self.v4 if family == 4 else self.v6
        return [(fam.prefix(p).describe(), fam.orders[p]) for p in fam.chain(pid)]

    def covering(self, p: Prefix) -> list[RuleHit]:
        """Every rule covering any part of `p`, most specific first."""
        fam = self.v4 if p.family == 4 else self.v6
        pids = fam.overlapping(p.net, p.last)
        prefixes = sorted(((fam.prefix(i), i) for i in pids),
                          key=lambda pi: (-pi[0].plen, pi[0].net))
        return [(q.describe(), fam.orders[i]) for q, i in prefixes]
