"""The compiled index: one instant's blocklist, answering names and URLs.

Compile once, match many: an Index is built whole from a Fold and never
changes afterwards, so readers need no locks. A name is answered in
O(labels) dict lookups; a URL in O(labels + path segments + rules for that
host). Every answer is a Decision carrying its provenance: the ids of every
act behind it (all of them, not the first) and the rule that matched.
Addresses are answered by writ.blocklist.iptable (longest prefix first,
every covering rule reported).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from writ.blocklist.canon import CanonicalURL, canonical_name, canonical_url
from writ.blocklist.fold import Fold
from writ.blocklist.ipaddr import IpError, Prefix, canonical_ip
from writ.blocklist.iptable import Group, IpTable, RuleHit
from writ.blocklist.iptable import merge_orders as _merge
from writ.blocklist.model import Act, Target, TargetKind

__all__ = ["ALLOW", "Decision", "Index", "Verdict"]


class Verdict(StrEnum):
    BLOCK = "block"
    URL_RULES = "url-rules"  # DNS only: the host has URL rules, the proxy decides
    ALLOW = "allow"


@dataclass(frozen=True, slots=True)
class Decision:
    decision: Verdict
    orders: tuple[str, ...] = ()  # every act behind the decision, sorted
    rule: str | None = None  # the most specific rule that matched
    rules: tuple[str, ...] = ()  # every rule that matched
    host_level: bool = False  # blocked by a host-level rule (domain, ip, ip_prefix)

    @property
    def blocked(self) -> bool:
        return self.decision is Verdict.BLOCK


ALLOW = Decision(Verdict.ALLOW)


# A domain entry is (sub, exact): the orders blocking the name and its
# subdomains, and the orders blocking only this very name. Entries are shared
# tuples, not objects: a million names from one order cost one entry.
_Entry = tuple[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class _UrlRule:
    target: Target
    orders: tuple[str, ...]
    rule: str


@dataclass(slots=True)
class _HostRules:
    exact: dict[str, list[_UrlRule]]  # path -> url rules
    prefix: dict[str, list[_UrlRule]]  # path prefix -> url_prefix rules
    orders: tuple[str, ...] = ()  # every order with a URL rule on this host
    decision: Decision = ALLOW  # the DNS decision for the host (url-rules), set at compile


class Index:
    """The blocklist in force at one instant. Immutable once built."""

    __slots__ = (
        "_decisions",
        "_domains",
        "_hosts",
        "_interior",
        "_ip4",
        "_ip6",
        "_ip_decisions",
        "_ips",
        "acts",
        "at",
        "domain_count",
        "ip_count",
        "restored",
        "url_count",
        "valid_until",
        "version",
    )

    def __init__(self, fold: Fold, version: str, acts: Mapping[str, Act]) -> None:
        self.version = version
        self.at: datetime = fold.at
        self.valid_until: datetime | None = fold.next_change
        self.acts = acts  # every act of the set, by id (for block pages, explain)
        domains: dict[str, _Entry] = {}
        hosts: dict[str, _HostRules] = {}
        self.restored: dict[str, tuple[str, ...]] = {}  # lifted host -> restoration ids
        url_count = 0
        ip_rules: list[Group] = []
        for f in fold.in_force:
            oid = (f.act.id,)
            for host in f.lifted:
                self.restored[host] = _merge(self.restored.get(host, ()), f.restored_by)
            sub_names = [t.host for t in f.act.targets if t.host_level and t.subdomains]
            exact_names = [t.host for t in f.act.targets if t.host_level and not t.subdomains]
            for names in [sub_names] + [list(b.domains) for b in f.act.bulk]:
                _add_domains(domains, names, (oid, ()), f.lifted)
            _add_domains(domains, exact_names, ((), oid), f.lifted)
            for t in f.act.url_targets():
                self._add_url(hosts, t, oid)
                url_count += 1
            ip_rules.append(([t.host for t in f.act.targets if t.is_ip and t.host not in f.lifted],
                             oid, None))
            for b in f.act.bulk:
                if not b.ips:
                    continue
                if f.lifted and not f.lifted.isdisjoint(b.ips):
                    ip_rules.append(([t for t in b.ips if t not in f.lifted], oid, None))
                else:
                    ip_rules.append((b.ips, oid, b.ip_keys))  # type: ignore[arg-type]
        for k in fold.kept:
            self._add_url(hosts, k.target, tuple(sorted(k.orders)))
            url_count += 1
        self._domains = domains
        # Every proper suffix of a blocked name ("blocked3.example", "example"):
        # a lookup walks a name from its last label and stops at the first suffix
        # with nothing blocked at or below it, so most names cost one or two
        # probes of the big table instead of one per label.
        # The interior table is small (it stays in cache) and also holds the
        # entry of an interior name that is blocked itself.
        parents = {h.partition(".")[2] for h in domains}
        interior: dict[str, object] = {}  # _Entry | None
        for parent in parents:
            p = parent
            while p and p not in interior:
                interior[p] = domains.get(p)
                p = p.partition(".")[2]
        self._interior = interior
        # Decisions for a single matching entry, shared by every name under it.
        self._decisions: dict[tuple[str, bool], Decision] = {}
        self._hosts = hosts
        for host, h in hosts.items():
            h.decision = Decision(Verdict.URL_RULES, h.orders, f"url rules for {host}")
        self.domain_count = len(domains)
        self.url_count = url_count
        self._ips = IpTable(ip_rules)
        del ip_rules
        self.ip_count = len(self._ips)
        v4, v6 = self._ips.v4, self._ips.v6
        self._ip4 = (v4.nets, v4.lasts, v4.parent, v4.bucket, v4.shift)
        self._ip6 = (v6.nets, v6.lasts, v6.parent, v6.bucket, v6.shift)
        # Decisions per (family, most specific prefix): shared by every address under it.
        self._ip_decisions: dict[tuple[int, int], Decision] = {}

    @staticmethod
    def _add_url(hosts: dict[str, _HostRules], t: Target, orders: tuple[str, ...]) -> None:
        h = hosts.get(t.host)
        if h is None:
            h = hosts[t.host] = _HostRules({}, {})
        table = h.exact if t.kind is TargetKind.URL else h.prefix
        table.setdefault(t.path, []).append(_UrlRule(t, orders, t.describe()))
        h.orders = _merge(h.orders, orders)

    def __len__(self) -> int:
        return self.domain_count + self.url_count + self.ip_count

    # -- addresses -----------------------------------------------------------

    def decide_address(self, family: int, value: int) -> Decision:
        """Decision for one address (4 or 6, as an int): block or allow. The
        hot path of response-IP policy: a miss is one bisect and allocates nothing."""
        # IpTable._Family.find, inlined: this runs for every address of every answer.
        nets, lasts, parent, bucket, shift = self._ip4 if family == 4 else self._ip6
        b = value >> shift
        pid = bisect_right(nets, value, bucket[b], bucket[b + 1]) - 1
        while pid >= 0 and lasts[pid] < value:
            pid = parent[pid]
        if pid < 0:
            if family == 6 and value >> 32 == 0xFFFF:  # IPv4-mapped: the IPv4 host
                return self.decide_address(4, value & 0xFFFFFFFF)
            return ALLOW
        key = (family, pid)
        d = self._ip_decisions.get(key)
        if d is None:
            if len(self._ip_decisions) > 65536:  # bounded: hits vary, prefixes may be millions
                self._ip_decisions.clear()
            d = self._ip_decisions[key] = _ip_decision(self._ips.hits(family, pid))
        return d

    def decide_packed(self, packed: bytes) -> Decision:
        """Decision for an address in network byte order (an A or AAAA rdata)."""
        return self.decide_address(4 if len(packed) == 4 else 6, int.from_bytes(packed, "big"))

    def decide_ip(self, text: str) -> Decision:
        """Decision for an address, or for a prefix: every rule covering any part
        of it. Raises IpError."""
        p = canonical_ip(text)
        if p.is_address:
            return self.decide_address(p.family, p.net)
        return self.decide_prefix(p)

    def decide_prefix(self, p: Prefix) -> Decision:
        hits = self._ips.covering(p)
        return _ip_decision(hits) if hits else ALLOW

    # -- names -------------------------------------------------------------

    def decide_canonical_name(self, name: str) -> Decision:
        """DNS decision for a canonical name (the hot path: one call, and misses
        allocate nothing).

        Walks the suffixes of `name` from the shortest ("example") to the name
        itself, and stops where no blocked name lies at or below the suffix."""
        interior = self._interior
        hits: list[tuple[str, _Entry]] | None = None
        pos = name.rfind(".")
        while True:
            suffix = name[pos + 1 :] if pos >= 0 else name
            found = interior.get(suffix, _LEAF)
            leaf = found is _LEAF
            # the one probe of the big table, at the first suffix that is not interior
            e: _Entry | None = self._domains.get(suffix) if leaf else found  # type: ignore[assignment]
            if e is not None and (pos < 0 or e[0]):  # below the name only `sub` counts
                if hits is None:
                    hits = [(suffix, e)]
                else:
                    hits.append((suffix, e))
            if pos < 0 or leaf:
                break
            pos = name.rfind(".", 0, pos)
        if hits is None:
            h = self._hosts.get(name)
            return ALLOW if h is None else h.decision
        if len(hits) > 1:
            return _domain_decision(hits, name)
        # One entry: its decision is the same for every name under it, so it is shared.
        host, e = hits[0]
        key = (host, host == name and bool(e[1]))
        hit = self._decisions.get(key)
        if hit is None:
            hit = self._decisions[key] = _domain_decision(hits, name)
        return hit

    def decide_canonical_host(self, host: str) -> Decision:
        """A connection's decision by its host alone (CONNECT target, SNI): the
        name's decision, or for an IP literal (`203.0.113.7`, `[2001:db8::7]`)
        its address rules' when they block it."""
        if self.ip_count and (host[:1] == "[" or host[-1:].isdigit()):
            by_ip = self._decide_ip_host(host)
            if by_ip is not None:
                return by_ip
        return self.decide_canonical_name(host)

    def decide_name(self, name: str) -> Decision:
        """DNS decision for a name: block, url-rules or allow. Raises CanonError."""
        return self.decide_canonical_name(canonical_name(name))

    # -- URLs --------------------------------------------------------------

    def decide_url(self, url: str) -> Decision:
        """HTTP decision for an absolute URL: block or allow. Raises CanonError."""
        return self.decide_canonical_url(canonical_url(url))

    def decide_canonical_url(self, u: CanonicalURL) -> Decision:
        d = self._decide_url(u)
        if self.ip_count and (u.host[:1] == "[" or u.host[-1:].isdigit()):
            by_ip = self._decide_ip_host(u.host)
            if by_ip is not None:
                if not d.blocked:
                    return by_ip
                return Decision(Verdict.BLOCK, _merge(by_ip.orders, d.orders), by_ip.rule,
                                by_ip.rules + d.rules, host_level=True)
        return d

    def _decide_url(self, u: CanonicalURL) -> Decision:
        name = self.decide_canonical_name(u.host)  # one walk: domain rules, url-rules, allow
        if name is ALLOW:
            return ALLOW
        hit = name if name.decision is Verdict.BLOCK else None
        h = self._hosts.get(u.host)
        if h is None:
            return name
        matched: list[_UrlRule] = []
        for r in h.exact.get(u.path, ()):
            if not r.target.query or _query_subset(r.target.query, u.query):
                matched.append(r)
        if h.prefix:
            p = u.path
            while True:
                matched.extend(h.prefix.get(p, ()))
                if p == "/":
                    break
                p = p[: p.rfind("/")] or "/"
        if not matched:
            return hit if hit is not None else ALLOW
        orders: tuple[str, ...] = hit.orders if hit is not None else ()
        rules = list(hit.rules) if hit is not None else []
        for r in matched:
            orders = _merge(orders, r.orders)
            rules.append(r.rule)
        return Decision(
            Verdict.BLOCK, orders, rules[0], tuple(rules), host_level=hit is not None
        )


    def _decide_ip_host(self, host: str) -> Decision | None:
        """An IP-literal URL host blocked by an address rule (the IP decision
        plus any URL rules on the host), or None to decide by name and URL rules."""
        try:
            p = canonical_ip(host[1:-1] if host[:1] == "[" else host)
        except IpError:
            return None
        by_ip = self.decide_address(p.family, p.net)
        if not by_ip.blocked:
            return None
        return by_ip


_LEAF: object = object()  # marks "not an interior name" in the interior table


def _ip_decision(hits: list[RuleHit]) -> Decision:
    orders: tuple[str, ...] = ()
    for _, o in hits:
        orders = _merge(orders, o)
    rules = tuple(r for r, _ in hits)
    return Decision(Verdict.BLOCK, orders, rules[0], rules, host_level=True)


def _domain_decision(hits: list[tuple[str, _Entry]], name: str) -> Decision:
    """The block decision of the domain entries matching `name` (least specific first)."""
    orders: tuple[str, ...] = ()
    rules: list[str] = []
    for host, (sub, exact_orders) in reversed(hits):  # most specific first
        if host == name and exact_orders:
            orders = _merge(orders, exact_orders)
            rules.append(f"domain {host} (exact)")
        if sub:
            orders = _merge(orders, sub)
            rules.append(f"domain {host}")
    return Decision(Verdict.BLOCK, orders, rules[0], tuple(rules), host_level=True)


def _add_domains(
    domains: dict[str, _Entry], names: list[str], value: _Entry, lifted: frozenset[str]
) -> None:
    """Add names with `value`, merging with entries other acts put there."""
    if lifted:
        names = [h for h in names if h not in lifted]
    clashes = {h: domains[h] for h in names if h in domains}
    domains.update(dict.fromkeys(names, value))
    for h, (sub, exact) in clashes.items():
        domains[h] = (_merge(sub, value[0]), _merge(exact, value[1]))


def _query_subset(need: tuple[tuple[str, str], ...], have: tuple[tuple[str, str], ...]) -> bool:
    return all(pair in have for pair in need)
