"""`writ audit report`: what each court order made the network do.

Invariants:
- Streams: memory grows with orders, days and decision kinds, never with the
  number of records, so a year of logs summarises on a small box.
- Counts decision records only (`writ.<component>.decision`); control records
  are structure, except `dropped`, whose counts are summed so a report never
  hides decisions that the writer could not log.
- A record with several orders counts once for each (every order enforced).
- Lines that are not records are skipped and counted, never fatal. Integrity
  is `verify`'s job; report summarises what is there.
- Times compare as RFC 3339 UTC strings in the writer's own format
  (`2015-09-07T12:00:00.000000Z`), which sort like the instants they name.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from writ.audit.files import Progress
from writ.audit.record import DROPPED, format_ts, read_line

__all__ = ["AuditSummary", "OrderStats", "render_csv", "render_json", "render_table",
           "summarise"]

NO_ORDER = "(no order)"  # allows and other decisions that name no order


@dataclass(slots=True)
class OrderStats:
    decisions: Counter[str] = field(default_factory=Counter)
    per_day_kind: Counter[tuple[str, str]] = field(default_factory=Counter)  # (day, decision)
    first: str | None = None
    last: str | None = None

    @property
    def total(self) -> int:
        return sum(self.decisions.values())

    @property
    def per_day(self) -> Counter[str]:
        days: Counter[str] = Counter()
        for (day, _), n in self.per_day_kind.items():
            days[day] += n
        return days

    def add(self, decision: str, ts: str) -> None:
        self.decisions[decision] += 1
        self.per_day_kind[ts[:10], decision] += 1
        if self.first is None or ts < self.first:
            self.first = ts
        if self.last is None or ts > self.last:
            self.last = ts


@dataclass(slots=True)
class AuditSummary:
    orders: dict[str, OrderStats] = field(default_factory=dict)
    records: int = 0  # decision records that passed the filters
    skipped_lines: int = 0  # lines that are not records
    dropped: int = 0  # decisions the writer says it could not log


def _instant(dt: datetime | None) -> str | None:
    return None if dt is None else format_ts(dt.timestamp())


def summarise(paths: Iterable[Path], *, order: str | None = None,
              since: datetime | None = None, until: datetime | None = None,
              component: str | None = None, progress: Progress | None = None) -> AuditSummary:
    """Per-order counts over the files; `until` is exclusive."""
    paths = list(paths)
    total = sum(p.stat().st_size for p in paths if p.is_file())
    lo, hi = _instant(since), _instant(until)
    out = AuditSummary()
    done = 0
    for path in paths:
        with path.open("rb") as f:
            for n, raw in enumerate(f):
                done += len(raw)
                if progress is not None and n % 65536 == 0:
                    progress(done, total)
                rec = _record(raw)
                if rec is None:
                    out.skipped_lines += 1
                    continue
                ts, event = rec["ts"], rec["event"]
                if (lo is not None and ts < lo) or (hi is not None and ts >= hi):
                    continue
                if event == DROPPED:
                    out.dropped += int(rec.get("count") or 0)
                    continue
                if not event.endswith(".decision"):
                    continue
                if component is not None and rec.get("component") != component:
                    continue
                orders = rec.get("orders") or [NO_ORDER]
                if order is not None and order not in orders:
                    continue
                out.records += 1
                decision = str(rec.get("decision"))
                for oid in orders if order is None else [order]:
                    stats = out.orders.get(oid)
                    if stats is None:
                        stats = out.orders[oid] = OrderStats()
                    stats.add(decision, ts)
    if progress is not None:
        progress(total, total)
    return out


def _record(raw: bytes) -> dict[str, Any] | None:
    try:
        rec = read_line(raw)
    except ValueError:
        return None
    if (not isinstance(rec, dict) or not isinstance(rec.get("ts"), str)
            or not isinstance(rec.get("event"), str)
            or not isinstance(rec.get("orders", []), list)):
        return None
    return rec


def _sorted(summary: AuditSummary) -> list[tuple[str, OrderStats]]:
    return sorted(summary.orders.items())


def render_json(summary: AuditSummary) -> str:
    return json.dumps({
        "records": summary.records,
        "skipped_lines": summary.skipped_lines,
        "dropped": summary.dropped,
        "orders": {oid: {"total": s.total, "decisions": dict(sorted(s.decisions.items())),
                         "first": s.first, "last": s.last,
                         "per_day": dict(sorted(s.per_day.items()))}
                   for oid, s in _sorted(summary)},
    }, indent=2)


def render_csv(summary: AuditSummary) -> str:
    """One row per order, day and decision kind: easy to pivot in a spreadsheet."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["order", "day", "decision", "count", "first", "last"])
    for oid, s in _sorted(summary):
        for (day, decision), count in sorted(s.per_day_kind.items()):
            w.writerow([oid, day, decision, count, s.first, s.last])
    return buf.getvalue()


def render_table(summary: AuditSummary) -> str:
    lines = []
    rows = _sorted(summary)
    width = max([len("order"), *(len(oid) for oid, _ in rows)])
    lines.append(f"{'order':<{width}}  {'total':>8}  {'first enforcement':<27}  "
                 f"{'last enforcement':<27}  decisions")
    for oid, s in rows:
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(s.decisions.items()))
        lines.append(f"{oid:<{width}}  {s.total:>8}  {s.first or '-':<27}  "
                     f"{s.last or '-':<27}  {kinds}")
        days = "  ".join(f"{d} {n}" for d, n in sorted(s.per_day.items()))
        lines.append(f"{'':<{width}}  per day: {days}")
    lines.append("")
    lines.append(f"{summary.records} decision records; {summary.dropped} decisions reported "
                 f"dropped by the writer; {summary.skipped_lines} lines skipped (not records)")
    return "\n".join(lines) + "\n"
