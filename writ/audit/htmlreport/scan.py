"""One streaming pass over a node's log files: what the report draws and judges.

Invariants:
- Memory grows with the orders, hours and nodes, versions and marks, never with the
  number of records (a year of logs fits on a small box).
- Counts decision records (`writ.<component>.decision`); control records give
  the marks: `continue` with reason `restart` or `recovered` (a crash),
  `dropped` (decisions the writer could not log: queue overflow, write error),
  `key_changed` and `error` (the writer's own failures). Signed sets, key
  changes and errors are kept in `NodeScan.controls` (controls.py says how a
  decision is tied to the signed set in force).
- A record naming several orders counts once for each.
- Lines that are not records are counted and skipped: integrity is verify's
  job, and its verdict is printed first in the report.
- Times are the writer's RFC 3339 UTC strings; hours are their first 13
  characters (`2015-09-07T12`), so no record needs a datetime.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from writ.audit.htmlreport.controls import Controls, SignedSet, Unsigned
from writ.audit.htmlreport.windows import Windows
from writ.audit.record import CONTINUE, DROPPED, GENESIS, SIGNED_SET, read_line
from writ.audit.writer import ERROR, KEY_CHANGED

__all__ = ["NO_ORDER", "Mark", "NodeScan", "Outside", "VersionSpan", "first_node", "scan_node"]

NO_ORDER = "(no order)"
MAX_MARKS = 500  # per node; more are counted, not kept
MAX_GAPS = 200


@dataclass(frozen=True, slots=True)
class Mark:
    ts: str
    kind: str  # restart | crash recovery | dropped | log started
    detail: str


@dataclass(slots=True)
class VersionSpan:
    version: str
    first: str
    last: str
    decisions: int = 0


@dataclass(slots=True)
class Outside:
    """Decisions of one node naming one order outside its window, in one interval."""

    count: int
    first: str
    last: str
    example: str  # a target, to look the records up


@dataclass(slots=True)
class NodeScan:
    node: str
    files: list[Path]
    records: int = 0
    decisions: int = 0
    skipped: int = 0
    dropped: int = 0
    first: str | None = None
    last: str | None = None
    hourly: Counter[tuple[str, str]] = field(default_factory=Counter)  # (order, hour)
    total_hourly: Counter[str] = field(default_factory=Counter)  # hour -> decisions
    outside_hourly: Counter[tuple[str, str]] = field(default_factory=Counter)
    kinds: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # comp, dec, action
    order_kinds: Counter[tuple[str, str]] = field(default_factory=Counter)  # order, decision
    versions: list[VersionSpan] = field(default_factory=list)  # in order of first use
    marks: list[Mark] = field(default_factory=list)
    marks_total: int = 0
    gaps: list[tuple[str, str, float]] = field(default_factory=list)  # from, to, seconds
    gaps_total: int = 0
    # (order, interval index, lifted host or "") -> what was seen
    outside: dict[tuple[str, int, str], Outside] = field(default_factory=dict)
    controls: Controls = field(default_factory=Controls)

    def mark(self, ts: str, kind: str, detail: str) -> None:
        self.marks_total += 1
        if len(self.marks) < MAX_MARKS:
            self.marks.append(Mark(ts, kind, detail))


def first_node(path: Path) -> str:
    """The node named by a file's first record ('?' when there is none)."""
    try:
        with path.open("rb") as f:
            rec = read_line(f.readline())
    except (OSError, ValueError):
        return "?"
    return str(rec.get("node", "?")) if isinstance(rec, dict) else "?"


def _record(raw: bytes) -> dict[str, Any] | None:
    try:
        rec = read_line(raw)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


def _minute(ts: str) -> float:
    return datetime.fromisoformat(ts[:16] + ":00+00:00").timestamp()


def scan_node(node: str, paths: Iterable[Path], windows: Windows | None,
              silent_after: float) -> NodeScan:
    out = NodeScan(node, list(paths))
    state = _State(out, windows, silent_after)
    for path in out.files:
        with path.open("rb") as f:
            for raw in f:
                rec = _record(raw)
                ts = rec.get("ts") if rec is not None else None
                event = rec.get("event") if rec is not None else None
                if rec is None or type(ts) is not str or type(event) is not str:
                    out.skipped += 1
                    continue
                try:
                    state.clock(ts)
                except (ValueError, IndexError):  # not a time
                    out.skipped += 1
                    continue
                out.records += 1
                if event.endswith(".decision"):
                    state.decision(rec, ts)
                else:
                    state.control(rec, ts, event)
    out.controls.finish(out.last)
    return out


class _State:
    """The running part of a scan (current minute, current version)."""

    def __init__(self, out: NodeScan, windows: Windows | None, silent_after: float) -> None:
        self.out = out
        self.windows = windows
        self.silent_after = silent_after
        self.minute = ""
        self.minute_epoch = 0.0
        self.prev_t: float | None = None
        self.prev_ts = ""
        self.span: VersionSpan | None = None
        self.spans: dict[str, VersionSpan] = {}
        self.version: Any = None  # of the last decision, as written
        self.tie: SignedSet | Unsigned | None = None  # what it is tied to

    def clock(self, ts: str) -> None:
        m = ts[:16]
        if m != self.minute:
            self.minute_epoch = _minute(ts)  # ValueError: not a time
            self.minute = m
        t = self.minute_epoch + int(ts[17:19])
        out = self.out
        if self.prev_t is not None and t - self.prev_t > self.silent_after:
            out.gaps_total += 1
            if len(out.gaps) < MAX_GAPS:
                out.gaps.append((self.prev_ts, ts, t - self.prev_t))
        if self.prev_t is None or t >= self.prev_t:
            self.prev_t, self.prev_ts = t, ts
        if out.first is None or ts < out.first:
            out.first = ts
        if out.last is None or ts > out.last:
            out.last = ts

    def decision(self, rec: dict[str, Any], ts: str) -> None:
        out = self.out
        out.decisions += 1
        decision = str(rec.get("decision"))
        out.kinds[str(rec.get("component")), decision, str(rec.get("action"))] += 1
        version = rec.get("blocklist_version")
        span = self.span
        if span is None or span.version != version:
            span = self._switch(str(version) if version is not None else "(none)", ts)
        span.decisions += 1
        span.last = max(span.last, ts)
        tie = self.tie
        if tie is None or version != self.version:
            self.version = version
            tie = self.tie = out.controls.tie(version, ts, rec.get("target"))
        tie.decisions += 1
        tie.last = max(tie.last, ts)
        if tie.expires_ts is not None and ts > tie.expires_ts:
            tie.after_expiry(ts)
        hour = ts[:13]
        out.total_hourly[hour] += 1
        orders = rec.get("orders") or (NO_ORDER,)
        if type(orders) is not list and orders != (NO_ORDER,):
            orders = (NO_ORDER,)
        w = self.windows
        rule = rec.get("rule")
        rule = rule if type(rule) is str else None
        i = w.index(ts) if w is not None else 0
        for item in orders:
            o = str(item)
            out.hourly[o, hour] += 1
            out.order_kinds[o, decision] += 1
            if w is not None and o != NO_ORDER and w.outside(i, o, rule):
                self._outside(o, i, rule, ts, str(rec.get("target")))
                out.outside_hourly[o, hour] += 1

    def _switch(self, version: str, ts: str) -> VersionSpan:
        span = self.spans.get(version)
        if span is None:
            span = self.spans[version] = VersionSpan(version, ts, ts)
            self.out.versions.append(span)
        self.span = span
        return span

    def _outside(self, order: str, i: int, rule: str | None, ts: str, target: str) -> None:
        host = ""
        if rule is not None and rule.startswith("domain ") and self.windows is not None:
            lifted = self.windows.states[i].lifted.get(order)
            name = rule[7:].split(" ", 1)[0]
            if lifted and name in lifted:
                host = name
        key = (order, i, host)
        seen = self.out.outside.get(key)
        if seen is None:
            self.out.outside[key] = Outside(1, ts, ts, target)
            return
        seen.count += 1
        seen.first = min(seen.first, ts)
        seen.last = max(seen.last, ts)

    def control(self, rec: dict[str, Any], ts: str, event: str) -> None:
        controls = self.out.controls
        if event == SIGNED_SET:
            controls.signed(rec, ts)
            self.tie = None  # the version of the next decision may be tied anew
        elif event == CONTINUE:
            reason = rec.get("reason")
            if reason in ("recovered", "restart"):
                controls.restart(ts)
            if reason == "recovered":
                self.out.mark(ts, "crash recovery",
                              f"the writer stopped without closing {rec.get('previous_file')}; "
                              f"last good seq {rec.get('last_good_seq')}, "
                              f"{rec.get('discarded_lines')} line(s) of debris")
            elif reason == "restart":
                self.out.mark(ts, "restart", f"clean restart after {rec.get('previous_file')}")
        elif event == DROPPED:
            n = rec.get("count")
            n = n if type(n) is int else 0
            self.out.dropped += n
            self.out.mark(ts, "dropped", f"{n} decision(s) not logged: {rec.get('reason')}")
        elif event == GENESIS:
            self.out.mark(ts, "log started", "the node's first record (genesis)")
        elif event == KEY_CHANGED:
            controls.key_changed(rec, ts)
            self.out.mark(ts, "key changed",
                          f"checkpoints from here on are signed by key {rec.get('key')}, "
                          f"not {rec.get('previous_key')}")
        elif event == ERROR:
            controls.error(rec, ts)
            self.out.mark(ts, "writer error", f"{rec.get('what')}: {rec.get('count')} "
                                              f"failure(s), the last: {rec.get('error')}")
