"""The order model: legal acts as frozen values (docs/design.md §2).

An act is one YAML document: a `block`, a `restore` (URL-level restoration
of a block) or a `revoke` (an appeal won). Acts are append-only: a later act
amends an earlier one, nobody edits history. Every value here has already
been validated and canonicalised by the loader; nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

__all__ = [
    "Act",
    "ActKind",
    "BulkList",
    "OrderError",
    "Position",
    "Target",
    "TargetKind",
]


class ActKind(StrEnum):
    BLOCK = "block"
    RESTORE = "restore"
    REVOKE = "revoke"


class TargetKind(StrEnum):
    DOMAIN = "domain"
    URL = "url"
    URL_PREFIX = "url_prefix"
    IP = "ip"  # one address: host = its canonical text (writ/blocklist/ipaddr.py)
    IP_PREFIX = "ip_prefix"  # host = canonical `NETWORK/LEN`


_IP_KINDS = (TargetKind.IP, TargetKind.IP_PREFIX)
_URL_KINDS = (TargetKind.URL, TargetKind.URL_PREFIX)


@dataclass(frozen=True, slots=True)
class Position:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class Target:
    """One canonical target.

    domain:     host = the name, path = "", query = ()
    url:        host, canonical path (no trailing "/"), query pairs that must be present
    url_prefix: host, canonical path prefix (matched at segment boundaries)
    ip:         host = the canonical address (`203.0.113.7`, `2001:db8::7`)
    ip_prefix:  host = the canonical prefix (`198.51.100.0/24`)
    """

    kind: TargetKind
    host: str
    path: str = ""
    query: tuple[tuple[str, str], ...] = ()
    subdomains: bool = True
    pos: Position | None = field(default=None, compare=False)

    @property
    def host_level(self) -> bool:
        return self.kind is TargetKind.DOMAIN

    @property
    def is_ip(self) -> bool:
        return self.kind in _IP_KINDS

    def describe(self) -> str:
        """The rule as people read it: `domain videohost.example`, `url a.example/x?v=1`."""
        if self.kind in _IP_KINDS:
            return f"{self.kind.value} {self.host}"
        if self.kind is TargetKind.DOMAIN:
            return f"domain {self.host}" + ("" if self.subdomains else " (exact)")
        q = "&".join(f"{k}={v}" for k, v in self.query)
        text = f"{self.host}{self.path}" + (f"?{q}" if q else "")
        if self.kind is TargetKind.URL_PREFIX:
            return f"url_prefix {text.rstrip('/')}/"
        return f"url {text}"


@dataclass(frozen=True, slots=True)
class BulkList:
    """Targets from a `file:` list, kept compact: a million names are a million
    strings, not a million objects. Names are canonical domain targets with
    subdomains; URL lines become ordinary Targets; address and prefix lines
    are canonical texts (`203.0.113.7`, `198.51.100.0/24`) in `ips`."""

    file: str
    domains: tuple[str, ...]
    urls: tuple[Target, ...] = ()
    pos: Position | None = field(default=None, compare=False)
    ips: tuple[str, ...] = ()
    # The loader's integer keys for `ips` (writ/blocklist/_ipfast.py
    # bulk_keys), kept so that compiling does not parse a million texts
    # twice; None when the acts came from elsewhere (Redis): compile parses.
    ip_keys: object = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Act:
    id: str
    kind: ActKind
    court: str
    case: str
    issued: date
    effective: datetime  # always timezone-aware
    expires: datetime | None = None
    authority: str | None = None
    legal_basis: str | None = None
    reference: str | None = None
    summary: str | None = None
    # `summary: {kk: …, ru: …, en: …}`: (language, text) pairs, sorted; `summary`
    # above is then the English one, else the first (docs/operator.md, "Public pages").
    summaries: tuple[tuple[str, str], ...] = ()
    # `confidential: true`: the public register shows target counts, never the targets.
    confidential: bool = False
    targets: tuple[Target, ...] = ()
    bulk: tuple[BulkList, ...] = ()
    amends: str | None = None
    restores: tuple[Target, ...] | None = None  # None: all domain targets of `amends`
    keep_blocked: tuple[Target, ...] = ()
    condition: str | None = None
    allow_public_suffix: bool = False
    # The court orders a prefix wider than the policy's limit, knowingly
    # (writ/blocklist/ipaddr.py: the collateral guard).
    collateral_acknowledged: bool = False
    pos: Position | None = field(default=None, compare=False)
    # Keyring ids of the keys whose signatures vouched for this act's file and
    # lists, when the folder was loaded with a keyring (empty otherwise).
    signers: tuple[str, ...] = field(default=(), compare=False)

    def active_at(self, at: datetime) -> bool:
        return self.effective <= at and (self.expires is None or at < self.expires)

    def domain_targets(self) -> Iterator[tuple[str, bool]]:
        """(host, subdomains) for every domain target, inline and bulk."""
        for t in self.targets:
            if t.kind is TargetKind.DOMAIN:
                yield t.host, t.subdomains
        for b in self.bulk:
            for name in b.domains:
                yield name, True

    def url_targets(self) -> Iterator[Target]:
        """Every url and url_prefix target, inline and bulk."""
        for t in self.targets:
            if t.kind in _URL_KINDS:
                yield t
        for b in self.bulk:
            yield from b.urls

    def ip_targets(self) -> Iterator[str]:
        """The canonical text of every ip and ip_prefix target, inline and bulk."""
        for t in self.targets:
            if t.kind in _IP_KINDS:
                yield t.host
        for b in self.bulk:
            yield from b.ips
    def summary_in(self, language: str) -> str | None:
        """The summary in `language` when the order has one, else the plain summary."""
        return dict(self.summaries).get(language, self.summary)

    def target_count(self) -> int:
        return len(self.targets) + sum(
            len(b.domains) + len(b.urls) + len(b.ips) for b in self.bulk)


@dataclass(frozen=True, slots=True)
class OrderError:
    """One validation error: `FILE:LINE: FIELD: message` (with the order id when known)."""

    file: str
    line: int
    field: str
    message: str
    order_id: str | None = None

    def __str__(self) -> str:
        where = f" [{self.order_id}]" if self.order_id else ""
        at = f"{self.file}:{self.line}" if self.line else self.file  # 0: the whole file
        return f"{at}: {self.field}: {self.message}{where}"
