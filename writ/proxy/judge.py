"""Judging one request on every name it carries (docs/design.md §4 HTTP).

Pure: an Index and strings in, a Decision out. The addon feeds it the
request-target's host, the Host header and the TLS SNI.

Invariants:
- Blocked if any name is blocked: a forged Host header (or an SNI that
  disagrees with it) must not slip through. The combined decision lists the
  orders and rules behind every name that is blocked.
- Each distinct canonical host is looked up once; the cost is O(names *
  (labels + path segments)), independent of the blocklist's size.
- Unreadable input raises CanonError; the caller answers 400.
"""

from __future__ import annotations

from collections.abc import Iterable

from writ.blocklist import (
    ALLOW,
    CanonError,
    CanonicalURL,
    Decision,
    Index,
    Verdict,
    canonical_url,
)

__all__ = ["authority_of", "judge_names", "judge_request"]


def authority_of(host: str) -> str:
    """A bare host as it may stand in a URL (IPv6 literals get brackets)."""
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


_NOT_IN_AUTHORITY = frozenset("/?#@\\ \t\r\n")


def _checked(auth: str) -> str:
    """An authority must be host[:port]: a Host header like `a.example/x` or
    `a.example@b.example` is malformed, not a second URL to parse."""
    if _NOT_IN_AUTHORITY.intersection(auth):
        raise CanonError(f"invalid host {auth[:80]!r}")
    return auth


def _combine(decisions: list[Decision]) -> Decision:
    blocked = [d for d in decisions if d.decision is Verdict.BLOCK]
    if not blocked:
        return decisions[0] if decisions else ALLOW
    if len(blocked) == 1:
        return blocked[0]
    orders = tuple(sorted({o for d in blocked for o in d.orders}))
    rules: list[str] = []
    for d in blocked:
        rules.extend(r for r in d.rules if r not in rules)
    return Decision(Verdict.BLOCK, orders, blocked[0].rule, tuple(rules),
                    host_level=any(d.host_level for d in blocked))


def judge_request(index: Index, authorities: Iterable[str | None], path: str) -> Decision:
    """Decide a request seen under several authorities (host[:port]) and one path.

    `path` is the request's origin-form target (path and query). Raises
    CanonError for a name or path that cannot be read.
    """
    if not path.startswith("/"):
        path = "/"  # `OPTIONS *` and other non-origin forms: judge the host's root
    seen_raw: set[str] = set()
    seen_host: set[str] = set()
    decisions: list[Decision] = []
    first: CanonicalURL | None = None
    for auth in authorities:
        if not auth or auth in seen_raw:
            continue
        seen_raw.add(_checked(auth))
        if first is None:
            first = canonical_url(f"http://{auth}{path}")
            cu = first
        else:
            # Only the host differs; reuse the canonical path and query.
            host = canonical_url(f"http://{auth}/").host
            cu = CanonicalURL(host, first.path, first.query)
        if cu.host in seen_host:
            continue
        seen_host.add(cu.host)
        decisions.append(index.decide_canonical_url(cu))
    return _combine(decisions)


def judge_names(index: Index, names: Iterable[str | None]) -> Decision:
    """Decide a connection by its names alone (CONNECT target, SNI): block,
    url-rules or allow. Raises CanonError."""
    decisions: list[Decision] = []
    seen: set[str] = set()
    for name in names:
        if not name:
            continue
        host = canonical_url(f"http://{_checked(authority_of(name))}/").host
        if host in seen:
            continue
        seen.add(host)
        decisions.append(index.decide_canonical_host(host))  # an IP literal: its ip rules
    blocked = _combine(decisions)
    if blocked.decision is Verdict.BLOCK:
        return blocked
    url_rules = [d for d in decisions if d.decision is Verdict.URL_RULES]
    if url_rules:
        orders = tuple(sorted({o for d in url_rules for o in d.orders}))
        return Decision(Verdict.URL_RULES, orders, url_rules[0].rule,
                        tuple(d.rule for d in url_rules if d.rule))
    return ALLOW
