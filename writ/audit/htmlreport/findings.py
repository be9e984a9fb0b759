"""Findings computed from the scans: not only drawn, listed.

- Enforcement outside an order's window: decisions naming an order when the
  act set (the orders folder or the published version) says it was not in
  force: before `effective`, after `expires`, after a revocation, or for a
  host a restoration lifted. Needs the act set; without it, nothing is said.
- Silence: a node with no record for longer than `silent_after`, inside its
  log or before the end of the period the other nodes cover.
- Switch lag: for each published version (from Redis history), when each
  node's decisions first carried it. A node shows a switch only by deciding,
  so the time is an upper bound.
- Signed sets (nodes whose log holds `writ.blocklist.signed_set` records):
  decisions naming a version no earlier signed_set record of the node put in
  force; decisions tied to a set after its manifest expired (the node keeps
  enforcing it by design, docs/auditor.md); workers of one node on different
  sets for longer than a minute. Nodes without signed sets are not judged.
- The log's own records: every key change, and the writer's errors per node
  and kind (`what`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from writ.audit.htmlreport.controls import ErrorTotal, KeyChange, SignedSet, Split, Unsigned
from writ.audit.htmlreport.scan import NodeScan
from writ.audit.htmlreport.windows import Windows

__all__ = ["Lag", "OutsideFinding", "Publish", "Silence", "expired", "key_changes", "lags",
           "outside", "parse_ts", "silences", "splits", "unsigned", "writer_errors"]


@dataclass(frozen=True, slots=True)
class Publish:
    version: str
    at: str  # writer ts format
    action: str  # apply | rollback
    by: str


@dataclass(frozen=True, slots=True)
class OutsideFinding:
    order: str
    node: str
    why: str
    count: int
    first: str
    last: str
    example: str


@dataclass(frozen=True, slots=True)
class Silence:
    node: str
    start: str
    end: str
    seconds: float
    at_end: bool  # the node's log stops while others go on


@dataclass(frozen=True, slots=True)
class Lag:
    version: str
    published: str
    node: str
    first_seen: str | None
    seconds: float | None


def parse_ts(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def outside(scans: list[NodeScan], windows: Windows) -> list[OutsideFinding]:
    found = []
    for s in scans:
        for (order, i, host), seen in s.outside.items():
            rule = f"domain {host}" if host else None
            found.append(OutsideFinding(order, s.node, windows.why(i, order, rule), seen.count,
                                        seen.first, seen.last, seen.example))
    return sorted(found, key=lambda f: (f.order, f.first, f.node, f.why))


def silences(scans: list[NodeScan], silent_after: float) -> list[Silence]:
    ends = [s.last for s in scans if s.last is not None]
    end = max(ends) if ends else None
    out = [Silence(s.node, a, b, secs, False) for s in scans for a, b, secs in s.gaps]
    for s in scans:
        if s.last is None or end is None:
            continue
        secs = (parse_ts(end) - parse_ts(s.last)).total_seconds()
        if secs > silent_after:
            out.append(Silence(s.node, s.last, end, secs, True))
    return sorted(out, key=lambda x: (x.start, x.node))


def lags(scans: list[NodeScan], publishes: list[Publish]) -> list[Lag]:
    out = []
    for p in sorted(publishes, key=lambda p: p.at):
        for s in scans:
            span = next((v for v in s.versions if v.version == p.version), None)
            if span is None:
                out.append(Lag(p.version, p.at, s.node, None, None))
                continue
            secs = (parse_ts(span.first) - parse_ts(p.at)).total_seconds()
            out.append(Lag(p.version, p.at, s.node, span.first, secs))
    return out


def unsigned(scans: list[NodeScan]) -> list[tuple[str, Unsigned]]:
    """(node, decisions of one version no earlier signed set put in force), for the
    nodes that have signed sets; decisions naming no version are not counted."""
    out = [(s.node, u) for s in scans if s.controls.signed_records
           for (v, _), u in s.controls.unsigned.items() if v != "(none)"]
    return sorted(out, key=lambda x: (x[0], x[1].first, x[1].version))


def expired(scans: list[NodeScan]) -> list[tuple[str, SignedSet]]:
    """(node, set) for every set that decisions were tied to after its expiry."""
    return [(s.node, ss) for s in scans for ss in s.controls.sets if ss.late]


def splits(scans: list[NodeScan]) -> list[tuple[str, Split]]:
    return sorted(((s.node, x) for s in scans for x in s.controls.splits),
                  key=lambda x: (x[1].start, x[0]))


def key_changes(scans: list[NodeScan]) -> list[tuple[str, KeyChange]]:
    return sorted(((s.node, k) for s in scans for k in s.controls.keys),
                  key=lambda x: (x[1].ts, x[0]))


def writer_errors(scans: list[NodeScan]) -> list[tuple[str, ErrorTotal]]:
    return [(s.node, t) for s in scans
            for t in sorted(s.controls.error_totals.values(), key=lambda t: (t.first, t.what))]
