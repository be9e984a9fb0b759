"""The verdict: what the proxy saw → what it does (docs/design.md §4 HTTP).

Pure: an Index (or None before the first load) and the facts of one request
or connection in, one Ruling out (named so as not to be confused with the
audit record's decision field). The addon gathers the facts, applies the
ruling in one place and records it; nothing here touches mitmproxy.

Invariants:
- Blocked if any name is blocked: the request-target's host, its own
  authority (absolute-form, even inside a tunnel), the Host header, the TLS
  SNI, the tunnel's or the original destination. A forged Host header does
  not slip through, nor a URL naming another host than the tunnel.
- Hosts first: a host no order touches is decided by its name alone, so a
  path writ cannot read (a bad percent-escape, a URL over 16 KB) or a label
  strict IDNA refuses never gets a request refused that no order names.
  Paths are canonicalised only for hosts with URL rules, and matched in
  both readings (`separator_reading`: `%2F`, `%5C`, `;params`).
- Every ruling says what to do and how to record it: the action is the
  refusal that fits the kind (451 for a request, `tls-refused` for a TLS
  hello, `closed` for raw bytes), or `pass`, `intercept`, `raw-tcp`.
- Raw TCP goes on only to a destination no order touches (`raw-tcp`);
  anywhere else the bytes cannot be judged and the connection is closed.
- The cost is O(names * (labels + path segments)), independent of the
  blocklist's size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from writ.blocklist import (
    ALLOW,
    CanonError,
    CanonicalURL,
    Decision,
    Index,
    Verdict,
    canonical_host,
    canonical_url,
    separator_reading,
)

__all__ = ["Facts", "Kind", "Ruling", "authority_of", "host_of", "judge", "judge_names",
           "judge_request"]


class Kind(StrEnum):
    REQUEST = "request"  # an HTTP request (plain, in a tunnel, or inside intercepted TLS)
    CONNECT = "connect"  # an explicit proxy's CONNECT
    TLS = "tls"  # a TLS ClientHello
    TCP = "tcp"  # bytes that are neither HTTP nor TLS


@dataclass(frozen=True, slots=True)
class Facts:
    kind: Kind
    names: tuple[str | None, ...]  # every authority (host[:port]) or bare host carried
    path: str = "/"  # requests: the origin-form target (path and query)
    invalid: str | None = None  # why the request cannot be read (found by the shell)


class Ruling(NamedTuple):
    decision: str  # the audit decision (docs/auditor.md)
    action: str  # pass | intercept | raw-tcp | 451 | 400 | 503 | tls-refused | closed
    d: Decision | None = None
    reason: str = ""  # for `invalid`: what could not be read


# The refusal of each kind: for a block, for an unreadable input, without a blocklist.
_BLOCKED = {Kind.REQUEST: "451", Kind.CONNECT: "451", Kind.TLS: "tls-refused",
            Kind.TCP: "closed"}
_BAD = {Kind.REQUEST: "400", Kind.CONNECT: "400", Kind.TLS: "tls-refused", Kind.TCP: "closed"}
_UNAVAILABLE = {Kind.REQUEST: "503", Kind.CONNECT: "503", Kind.TLS: "tls-refused",
                Kind.TCP: "closed"}


def judge(index: Index | None, facts: Facts, *, fail_open: bool = False,
          intercept: bool = False) -> Ruling:
    """The one verdict for every hook (see the module docstring)."""
    kind = facts.kind
    if index is None:
        return Ruling("no-blocklist", "pass" if fail_open else _UNAVAILABLE[kind])
    if facts.invalid is not None:
        return Ruling("invalid", _BAD[kind], reason=facts.invalid)
    try:
        d, rule_hosts = _decide_hosts(index, canonical_hosts(facts.names))
        if d.decision is Verdict.URL_RULES and kind is Kind.REQUEST:
            d = _decide_path(index, rule_hosts, facts.path)  # block or allow
    except CanonError as e:
        return Ruling("invalid", _BAD[kind], reason=str(e))
    if d.decision is Verdict.BLOCK:  # (a refused hello keeps its own audit name)
        return Ruling("tls-refused" if kind is Kind.TLS else "block", _BLOCKED[kind], d)
    if d.decision is Verdict.ALLOW:
        return Ruling("allow", "raw-tcp" if kind is Kind.TCP else "pass", d)
    # A host with URL rules, seen without a URL:
    decision, action = ("url-rules", "intercept") if kind is Kind.TLS and intercept else \
        _URL_RULES_ONLY[kind]  # intercepted: each request inside is judged
    return Ruling(decision, action, d)


# What a host with URL rules gets when no URL is visible: a tunnel opens (what
# it carries is judged next), TLS passes unopened, raw bytes are refused.
_URL_RULES_ONLY = {Kind.CONNECT: ("url-rules", "pass"), Kind.TLS: ("unenforceable", "pass"),
                   Kind.TCP: ("unenforceable", "closed")}


_NOT_IN_AUTHORITY = frozenset("/?#@\\ \t\r\n")


def authority_of(host: str) -> str:
    """A bare host as it may stand in a URL (IPv6 literals get brackets)."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def host_of(authority: str) -> str:
    """The canonical host of an authority (`name`, `name:port`, `[v6]:port`,
    a bare IPv6 address), read leniently (canon.canonical_host). Raises
    CanonError; `a.example/x` or `a.example@b.example` is malformed, not a
    second URL to parse."""
    if _NOT_IN_AUTHORITY.intersection(authority):
        raise CanonError(f"invalid host {authority[:80]!r}")
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise CanonError(f"unterminated IPv6 literal {authority[:80]!r}")
        return canonical_host(authority[: end + 1])
    if authority.count(":") > 1:  # a bare IPv6 address (a socket address, never a Host)
        return canonical_host(f"[{authority}]")
    host, _, port = authority.partition(":")
    if port and not port.isdigit():
        raise CanonError(f"invalid port in {authority[:80]!r}")
    if not host:
        raise CanonError(f"no host in {authority[:80]!r}")
    return canonical_host(host, lenient=True)


def canonical_hosts(names: Iterable[str | None]) -> list[str]:
    """The distinct canonical hosts of `names`, in order. Raises CanonError."""
    hosts: list[str] = []
    for name in names:
        if name:
            h = host_of(name)
            if h not in hosts:
                hosts.append(h)
    return hosts


def _decide_hosts(index: Index, hosts: list[str]) -> tuple[Decision, list[str]]:
    """Combined host decision (block > url-rules > allow) and the hosts with URL rules."""
    blocked: list[Decision] = []
    rules: list[tuple[str, Decision]] = []
    for h in hosts:
        d = index.decide_canonical_host(h)  # an IP literal: its ip rules too
        if d.decision is Verdict.BLOCK:
            blocked.append(d)
        elif d.decision is Verdict.URL_RULES:
            rules.append((h, d))
    if blocked:
        return _combine(blocked), []
    if rules:
        ds = [d for _, d in rules]
        orders = tuple(sorted({o for d in ds for o in d.orders}))
        return (Decision(Verdict.URL_RULES, orders, ds[0].rule,
                         tuple(d.rule for d in ds if d.rule)), [h for h, _ in rules])
    return ALLOW, []


def _decide_path(index: Index, hosts: list[str], path: str) -> Decision:
    """The URL decision on each host with URL rules, in both readings of the path."""
    if not path.startswith("/"):
        path = "/"  # `OPTIONS *` and other non-origin forms: judge the host's root
    first = canonical_url(f"http://h.invalid{path}")
    paths = [first.path]
    alt = separator_reading(first.path)
    if alt is not None:
        paths.append(alt)
    blocked = [d for h in hosts for p in paths
               if (d := index.decide_canonical_url(CanonicalURL(h, p, first.query))).blocked]
    return _combine(blocked) if blocked else ALLOW


def _combine(blocked: list[Decision]) -> Decision:
    if len(blocked) == 1:
        return blocked[0]
    orders = tuple(sorted({o for d in blocked for o in d.orders}))
    rules: list[str] = []
    for d in blocked:
        rules.extend(r for r in d.rules if r not in rules)
    return Decision(Verdict.BLOCK, orders, blocked[0].rule, tuple(rules),
                    host_level=any(d.host_level for d in blocked))


def judge_request(index: Index, authorities: Iterable[str | None], path: str) -> Decision:
    """The Decision for one request seen under several authorities (block or
    allow). Raises CanonError."""
    hosts = canonical_hosts(authorities)
    d, rule_hosts = _decide_hosts(index, hosts)
    if d.decision is not Verdict.URL_RULES:
        return d
    return _decide_path(index, rule_hosts, path)


def judge_names(index: Index, names: Iterable[str | None]) -> Decision:
    """Decide a connection by its names alone (CONNECT target, SNI): block,
    url-rules or allow. Raises CanonError."""
    return _decide_hosts(index, canonical_hosts(names))[0]
