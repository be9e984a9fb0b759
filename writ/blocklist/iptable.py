"""Longest-prefix matching for ip and ip_prefix rules, from plain sorted arrays.

Per address family the rules' prefixes (nested or disjoint, as CIDR prefixes
always are) are kept sorted by network, wider first at one network, with
their last addresses and a parent link each: the nearest wider rule prefix
containing it. A lookup bisects, within the bucket of the address's top
bits, for the last prefix starting at or before the address; if that one
ends before the address, only its ancestors can hold it, so the walk
follows parent links (usually none). A miss allocates nothing. A hit's
chain of parents is every rule covering the address, most specific first,
with the orders of all of them: overlapping rules from different orders all
name themselves.

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
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from itertools import accumulate, chain, compress, islice
from operator import eq, le

from writ.blocklist._ipfast import bulk_keys, canonical_key
from writ.blocklist.ipaddr import IpError, Prefix, parse_address

__all__ = ["IpTable", "RuleHit", "merge_orders"]

_U32 = "I" if array("I").itemsize == 4 else "L"  # an unsigned 32-bit array type
RuleHit = tuple[str, tuple[str, ...]]  # (rule text such as `ip_prefix 198.51.100.0/24`, orders)
# (canonical texts, their orders, their keys per family when already known)
Group = tuple[Sequence[str], tuple[str, ...], "tuple[Sequence[int], Sequence[int]] | None"]


def _parse(text: str) -> tuple[int, int, int]:
    """(family, net, plen) of a canonical rule text."""
    key = canonical_key(text)
    if key is not None:
        return key
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


def merge_orders(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    """Two sorted tuples of order ids as one (shared with writ.blocklist.index)."""
    if not a:
        return b
    if not b or a == b:
        return a
    return tuple(sorted(set(a) | set(b)))


class _Family:
    """One family's prefixes, sorted by network (wider first at one network),
    each with its last address and its parent: the nearest wider rule prefix
    containing it (-1: none)."""

    __slots__ = ("bits", "bucket", "lasts", "nets", "orders", "parent", "plens", "shift")

    def __init__(self, bits: int, keys: list[int],
                 orders: dict[int, tuple[str, ...]] | tuple[str, ...]) -> None:
        """`keys`: sorted, unique (net << 8 | plen: sorted by network, wider
        prefix first); `orders`: per key, or the one tuple every key carries
        (one order's list: no per-prefix lookups to build)."""
        self.bits = bits
        self.orders = [orders] * len(keys) if isinstance(orders, tuple) else list(
            map(orders.__getitem__, keys))
        nets = list(map((8).__rrshift__, keys))  # k >> 8, at C speed
        self.plens = plens = bytes(map((0xFF).__and__, keys))
        keys.clear()  # the caller's list: its million ints are not needed any more
        lasts = [n | ((1 << (bits - p)) - 1) for n, p in zip(nets, plens, strict=True)]
        # Lookups bisect only within the bucket of the address's top bits (16
        # for big tables): a handful of comparisons on a contiguous array
        # instead of twenty cache misses across a million int objects.
        top = min(16, max(1, len(nets).bit_length()))
        self.shift = bits - top
        self.bucket = _buckets(nets, self.shift, top)
        # IPv4: 4-byte arrays (half the cache lines of 8); IPv6: lists of ints.
        self.nets: Sequence[int] = array(_U32, nets) if bits == 32 else nets
        self.lasts: Sequence[int] = array(_U32, lasts) if bits == 32 else lasts
        n = len(nets)
        self.parent = parent = array("i", [-1]) * n
        if n < 2:
            return
        # A prefix starting after every earlier one has ended starts a cluster
        # and has no parent; only clusters of nested prefixes need the stack walk
        # (one C-speed pass finds them, so a register of disjoint prefixes costs
        # no Python loop here).
        nested = list(compress(range(1, n), map(le, islice(nets, 1, None),
                                                accumulate(lasts, max))))
        stack: list[int] = []
        for i in nested:
            j = i - 1
            if not stack or stack[-1] != j:
                stack = [j]  # a new cluster: i's predecessor started it, or
                # lies inside it; rebuild the open chain from j upwards
                k = parent[j]
                while k >= 0:
                    stack.insert(0, k)
                    k = parent[k]
            while stack and lasts[stack[-1]] < nets[i]:
                stack.pop()
            parent[i] = stack[-1] if stack else -1
            stack.append(i)

    def find(self, x: int) -> int:
        """The most specific prefix covering address `x`, or -1. (Index.decide_address
        inlines this: keep the two alike.)"""
        b = x >> self.shift
        i = bisect_right(self.nets, x, self.bucket[b], self.bucket[b + 1]) - 1
        lasts, parent = self.lasts, self.parent
        while i >= 0 and lasts[i] < x:  # i ends before x: only a prefix holding i can hold x
            i = parent[i]
        return i

    def prefix(self, pid: int) -> Prefix:
        return Prefix(4 if self.bits == 32 else 6, self.nets[pid], self.plens[pid])

    def chain(self, pid: int) -> list[int]:
        """`pid` and every wider rule prefix containing it, most specific first."""
        out = []
        while pid >= 0:
            out.append(pid)
            pid = self.parent[pid]
        return out

    def overlapping(self, net: int, end: int) -> set[int]:
        """Every prefix that contains or lies inside [net, end]."""
        found: set[int] = set(self.chain(self.find(net))) - {-1}
        found.update(range(bisect_left(self.nets, net), bisect_right(self.nets, end)))
        return found


def _buckets(nets: list[int], shift: int, top: int) -> array[int]:
    """bucket[b]: the index of the first network whose `top` top bits are ≥ b."""
    return array("I", [bisect_left(nets, b << shift) for b in range((1 << top) + 1)])


def _family(bits: int, parts: list[tuple[Sequence[int], tuple[str, ...]]]) -> _Family:
    """Merge the groups of one family: a prefix in several groups carries
    every group's orders."""
    if all(orders == parts[0][1] for _, orders in parts):  # one order (the usual bulk case)
        # Sorted in list order, then duplicates dropped: sorting a set's
        # hash order costs twice as much.
        keys_sorted = sorted(chain.from_iterable(keys for keys, _ in parts))
        if any(map(eq, keys_sorted, islice(keys_sorted, 1, None))):
            keys_sorted = list(dict.fromkeys(keys_sorted))
        return _Family(bits, keys_sorted, parts[0][1] if parts else ())
    table: dict[int, tuple[str, ...]] = {}
    for keys, orders in parts:
        for key in keys:
            had = table.get(key)
            table[key] = orders if had is None else merge_orders(had, orders)
    return _Family(bits, sorted(table), table)


class IpTable:
    """The ip/ip_prefix rules of one instant. Immutable once built."""

    __slots__ = ("count", "v4", "v6")

    def __init__(self, groups: Iterable[Group]) -> None:
        """`groups`: (canonical texts, the orders behind each of them, and the
        texts' keys when the loader has them)."""
        parts: tuple[list[tuple[Sequence[int], tuple[str, ...]]], ...] = ([], [])
        for texts, orders, known in groups:
            keys = known if known is not None else bulk_keys(texts, guard=False)
            if keys is None:
                keys = ([], [])
                for text in texts:
                    family, net, plen = _parse(text)
                    keys[family == 6].append(net << 8 | plen)
            for f in (0, 1):
                if keys[f]:
                    parts[f].append((keys[f], orders))
        self.v4 = _family(32, parts[0])
        self.v6 = _family(128, parts[1])
        self.count = len(self.v4.plens) + len(self.v6.plens)

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
