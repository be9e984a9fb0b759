"""The domain blocks in force as a DNS Response Policy Zone (RPZ) — pure.

For BIND (`response-policy`) and Unbound (`rpz:`) operators who enforce the
same orders in their own resolvers. `render_rpz(fold, version)` turns one
instant's fold into zone-file text; nothing here reads a clock or a file.

Invariants:
- Only host-level blocks (`domain` targets in force, minus what restorations
  lifted) become triggers: `name` always, `*.name` unless `subdomains: false`.
- ip and ip_prefix targets in force become Response IP triggers
  (`24.0.100.51.198.rpz-ip` for 198.51.100.0/24; IPv6 words reversed with
  `zz` for the compressed zero run: `48.zz.db8.2001.rpz-ip`): an answer
  holding such an address gets the zone's action, as writ's resolver does.
- Hosts that only have URL rules are NOT triggers — DNS must not block a
  host for one video (docs/design.md §3) — they are listed in comments only.
- Provenance (order ids, courts, cases) goes in `;` comments, never in
  records: every owner name in an RPZ zone is a QNAME trigger, so a TXT
  record under e.g. `orders.name` would itself block `orders.name` (not part
  of any order), and a TXT beside the `CNAME` at `name` is illegal (RFC 1034
  §3.6.2: a CNAME owner has no other data).
- Names whose last label is one of RPZ's trigger keywords (`rpz-ip`,
  `rpz-nsdname`, …) or that would exceed 255 octets under the origin cannot
  be written faithfully; they are left out with a comment saying so.
- Output is deterministic for a (fold, version, options): names sorted by
  their labels from the right, so a zone diff reads like a blocklist diff.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from writ.blocklist import Act, Fold, Target
from writ.blocklist.ipaddr import Prefix, canonical_ip

__all__ = ["RpzAction", "RpzOptions", "render_rpz", "rpz_ip_owner"]

# RFC draft-vixie-dnsop-dns-rpz §2: owner names ending in these labels are
# not QNAME triggers but IP, NSDNAME, NSIP or client-IP triggers.
_TRIGGER_LABELS = frozenset({"rpz-ip", "rpz-nsip", "rpz-nsdname", "rpz-client-ip"})
_MAX_WIRE = 255


class RpzAction(StrEnum):
    NXDOMAIN = "nxdomain"  # CNAME .
    NODATA = "nodata"  # CNAME *.
    SINKHOLE = "sinkhole"  # A/AAAA local data: the block page


@dataclass(frozen=True, slots=True)
class RpzOptions:
    origin: str = "rpz.writ."
    ttl: int = 60
    serial: int | None = None  # None: the fold's instant as Unix time
    action: RpzAction = RpzAction.NXDOMAIN
    sinkhole: tuple[str, ...] = field(default=())  # IP addresses for SINKHOLE


@dataclass(slots=True)
class _Entry:
    sub: set[str] = field(default_factory=set)  # orders blocking name and subdomains
    exact: set[str] = field(default_factory=set)  # orders blocking only the name


def _sort_key(name: str) -> list[str]:
    return name.split(".")[::-1]


def _wire_len(relative: str, origin: str) -> int:
    # Presentation "a.b" under "o.": labels a, b, o, root → len("a.b.o") + 2.
    return len(f"{relative}.{origin.rstrip('.')}") + 2


def _clean(text: str | None) -> str:
    """A value fit for a one-line `;` comment: no control characters."""
    return " ".join("".join(c if c.isprintable() else " " for c in text or "").split())


def _entries(fold: Fold) -> dict[str, _Entry]:
    entries: dict[str, _Entry] = {}
    for f in fold.in_force:
        for host, sub in f.act.domain_targets():
            if host in f.lifted:
                continue
            e = entries.setdefault(host, _Entry())
            (e.sub if sub else e.exact).add(f.act.id)
    return entries


def _covered(host: str, entries: dict[str, _Entry]) -> bool:
    e = entries.get(host)
    if e is not None:
        return True
    parts = host.split(".")
    return any(
        (p := entries.get(".".join(parts[i:]))) is not None and bool(p.sub)
        for i in range(1, len(parts))
    )


def rpz_ip_owner(p: Prefix) -> str:
    """The Response IP trigger owner (relative to the origin) for a prefix."""
    if p.family == 4:
        octets = p.address_text().split(".")
        return ".".join([str(p.plen), *reversed(octets), "rpz-ip"])
    left, gap, right = p.address_text().partition("::")
    words = (left.split(":") if left else []) + (["zz"] if gap else []) + (
        right.split(":") if right else [])
    return ".".join([str(p.plen), *reversed(words), "rpz-ip"])


def _ip_entries(fold: Fold) -> dict[Prefix, set[str]]:
    rules: dict[Prefix, set[str]] = {}
    for f in fold.in_force:
        for text in f.act.ip_targets():
            if text not in f.lifted:
                rules.setdefault(canonical_ip(text), set()).add(f.act.id)
    return rules


def _url_only(fold: Fold, entries: dict[str, _Entry]) -> dict[str, set[str]]:
    rules: list[tuple[Target, Iterable[str]]] = []
    for f in fold.in_force:
        rules.extend((t, (f.act.id,)) for t in f.act.url_targets())
    rules.extend((k.target, k.orders) for k in fold.kept)
    hosts: dict[str, set[str]] = {}
    for t, orders in rules:
        if not _covered(t.host, entries):
            hosts.setdefault(t.host, set()).update(orders)
    return hosts


def _rdata(options: RpzOptions) -> list[tuple[str, str]]:
    if options.action is RpzAction.NXDOMAIN:
        return [("CNAME", ".")]
    if options.action is RpzAction.NODATA:
        return [("CNAME", "*.")]
    if not options.sinkhole:
        raise ValueError("the sinkhole action needs at least one address")
    out = []
    for a in options.sinkhole:
        ip = ipaddress.ip_address(a)
        out.append(("A" if ip.version == 4 else "AAAA", str(ip)))
    return out


def _describe(act: Act) -> str:
    parts = [_clean(act.court), f"case {_clean(act.case)}", f"issued {act.issued.isoformat()}"]
    if act.reference:
        parts.append(_clean(act.reference))
    return ", ".join(p for p in parts if p)


def render_rpz(
    fold: Fold,
    version: str,
    options: RpzOptions | None = None,
    acts: Mapping[str, Act] | None = None,
) -> str:
    """Zone-file text for the domain blocks in force at `fold.at`.

    `acts` (e.g. `Blocklist.by_id`) lets the header describe restorations
    too; without it only the blocks in force are described."""
    o = options or RpzOptions()
    origin = o.origin if o.origin.endswith(".") else o.origin + "."
    rdata = _rdata(o)
    serial = o.serial if o.serial is not None else int(fold.at.timestamp()) % 2**32
    entries = _entries(fold)
    url_only = _url_only(fold, entries)
    ip_rules = _ip_entries(fold)

    out = [
        f"; writ RPZ export: court-ordered domain blocks in force at {fold.at.isoformat()}",
        f"; blocklist version {_clean(version)}; regenerate with `writ export rpz`, do not edit.",
        f"; Action: {o.action.value}. `name` blocks the name, `*.name` its subdomains.",
        "; Order ids are in comments only: every owner name in an RPZ zone is a trigger.",
        f"$ORIGIN {origin}",
        f"$TTL {o.ttl}",
        f"@ SOA localhost. hostmaster.localhost. {serial} 3600 600 604800 {o.ttl}",
        "@ NS localhost.",
    ]
    ids = sorted({i for e in entries.values() for i in e.sub | e.exact}
                 | {i for s in url_only.values() for i in s}
                 | {i for s in ip_rules.values() for i in s})
    if ids:
        out.append(";")
        out.append("; Orders behind this zone:")
        by_id = {**(acts or {}), **{f.act.id: f.act for f in fold.in_force}}
        out.extend(f";   {i}: {_describe(by_id[i])}" if i in by_id else f";   {i}" for i in ids)
    if entries:
        out.append(";")

    for name in sorted(entries, key=_sort_key):
        e = entries[name]
        if name.rsplit(".", 1)[-1] in _TRIGGER_LABELS:
            out.append(f"; left out {name}: its last label is an RPZ trigger keyword")
            continue
        owners = [(name, e.sub | e.exact)]
        if e.sub:
            owners.append((f"*.{name}", e.sub))
        for owner, orders in owners:
            if _wire_len(owner, origin) > _MAX_WIRE:
                out.append(f"; left out {owner}: longer than 255 octets under {origin}")
                continue
            why = " ".join(sorted(orders))
            out.extend(f"{owner} {rtype} {value} ; {why}" for rtype, value in rdata)

    if ip_rules:
        out.append(";")
        out.append("; Response IP triggers (ip, ip_prefix targets): an answer holding one of")
        out.append("; these addresses gets the action above.")
        for p in sorted(ip_rules, key=lambda p: (p.family, p.net, p.plen)):
            owner = rpz_ip_owner(p)
            why = " ".join(sorted(ip_rules[p]))
            out.extend(f"{owner} {rtype} {value} ; {p.describe()} {why}"
                       for rtype, value in rdata)

    if url_only:
        out.append(";")
        out.append("; Hosts with URL rules only: not blocked in DNS (the HTTP proxy")
        out.append("; enforces these rules per URL):")
        out.extend(
            f";   {h}: {' '.join(sorted(url_only[h]))}" for h in sorted(url_only, key=_sort_key)
        )
    return "\n".join(out) + "\n"

