"""The report's charts: matplotlib's SVG backend, inlined, deterministic.

Invariants:
- No pyplot (no global figure state, no GUI backend): a Figure on the SVG canvas.
- Same data, same bytes: `svg.hashsalt` is fixed per chart (it seeds the ids
  matplotlib gives clip paths and markers; a salt per chart keeps the ids of
  several charts in one page apart) and the metadata carries no date and no
  matplotlib version. Text stays text (`svg.fonttype: none`): smaller, and
  selectable in the browser and in a PDF printed from it.
- Counts are binned per hour when the period is short, per day otherwise, so
  a chart's size depends on the period, never on the number of records.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["EVENT_COLOUR", "MARK_STYLE", "NODE_COLOURS", "OUTSIDE", "Axis", "activity_chart",
           "kinds_chart", "order_chart", "versions_chart"]

NODE_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f",
                "#bcbd22", "#e377c2")
OUTSIDE = "#d62728"
MARK_STYLE = {  # kind -> (marker, colour)
    "crash recovery": ("X", "#d62728"),
    "restart": ("^", "#1f77b4"),
    "dropped": ("v", "#ff7f0e"),
    "log started": ("o", "#7f7f7f"),
    "key changed": ("D", "#9467bd"),
    "writer error": ("s", "#8c564b"),
}
EVENT_COLOUR = {"issued": "#7f7f7f", "effective": "#2ca02c", "expires": "#8c564b",
                "restored": "#ff7f0e", "revoked": "#d62728"}

# text.parse_math off: node names, orders and actions come from logs, and `$…$` in
# them would be read as TeX (a crash on a bad formula, a wrong label on a good one).
MAX_BINS = 1200

_RC: dict[str, Any] = {"date.epoch": "1970-01-01T00:00:00", "text.parse_math": False,
       "svg.fonttype": "none", "font.family": "sans-serif", "font.size": 8.0,
       "axes.spines.top": False, "axes.spines.right": False, "axes.titlesize": 9.0,
       "legend.fontsize": 7.0, "legend.frameon": False, "path.simplify": True}


@dataclass(frozen=True, slots=True)
class Axis:
    """The common time axis: bins from `start` (inclusive) to `end` (exclusive).

    Bins are hours for up to 14 days, then days, weeks, 4 weeks or 52 weeks:
    the smallest that keeps a chart under MAX_BINS bins, whatever the span of
    the logs' times (a clock set to 1970 on one node must not make a chart of
    half a million days).
    """

    start: datetime
    end: datetime
    step: timedelta

    @classmethod
    def around(cls, first: str, last: str) -> Axis:
        a = _hour(first[:13])
        b = _hour(last[:13]) + timedelta(hours=1)
        if b - a <= timedelta(days=14):
            return cls(a, b, timedelta(hours=1))
        a = a.replace(hour=0)
        if b.hour:
            b = b.replace(hour=0) + timedelta(days=1)
        for days in (1, 7, 28, 364):
            step = timedelta(days=days)
            if (b - a) / step <= MAX_BINS:
                break
        n = -(-(b - a) // step)
        return cls(a, a + n * step, step)

    @property
    def unit(self) -> str:
        days = self.step.days
        return {0: "hour", 1: "day", 7: "week"}.get(days, f"{days // 7} weeks")

    def edges(self) -> list[float]:
        n = int((self.end - self.start) / self.step)
        return [_num(self.start + i * self.step) for i in range(n + 1)]

    def dense(self, hours: Counter[str]) -> list[int]:
        """Counts per bin, from counts keyed by hour (`2015-09-07T12`)."""
        n = int((self.end - self.start) / self.step)
        out = [0] * n
        for hour, count in hours.items():
            i = int((_hour(hour) - self.start) / self.step)
            if 0 <= i < n:
                out[i] += count
        return out

    def x(self, ts: str) -> float:
        return _num(_parse(ts))


def _num(dt: datetime) -> float:
    """matplotlib's date number (days since the `date.epoch` set in _RC)."""
    return dt.timestamp() / 86400.0


def _hour(h: str) -> datetime:
    return datetime.fromisoformat(h + ":00:00+00:00")


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).astimezone(UTC)


@contextmanager
def _figure(name: str, height: float, *, legend: bool = True,
            left: float = 0.7) -> Iterator[tuple[Figure, list[str]]]:
    """A figure whose SVG text is appended to the yielded list on exit.

    Margins are fixed (inches), not computed by a layout engine: that engine
    cost a third of a chart's time, and a report may draw dozens.
    """
    out: list[str] = []
    with matplotlib.rc_context(cast(Any, {**_RC, "svg.hashsalt": f"writ-report-{name}"})):
        width = 9.0
        fig = Figure(figsize=(width, height))
        fig.subplots_adjust(left=left / width, right=1 - (1.5 if legend else 0.15) / width,
                            bottom=0.45 / height, top=1 - 0.1 / height)
        FigureCanvasSVG(fig)
        yield fig, out
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    out.append(svg[svg.index("<svg"):])


def _time_axis(ax: Axes, axis: Axis) -> None:
    loc = AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(loc, tz=UTC))  # type: ignore[no-untyped-call]
    ax.set_xlim(_num(axis.start), _num(axis.end))
    ax.grid(axis="y", color="#dddddd", linewidth=0.5)


def _marks(ax: Axes, axis: Axis, marks: Sequence[tuple[str, str, int]]) -> None:
    """(ts, kind, node index) as symbols along the bottom of the axes."""
    for kind, (marker, colour) in MARK_STYLE.items():
        xs = [axis.x(ts) for ts, k, _ in marks if k == kind]
        if xs:
            ax.scatter(xs, [0.0] * len(xs), marker=marker, color=colour, s=28, zorder=5,
                       label=kind, clip_on=False, transform=ax.get_xaxis_transform())


def activity_chart(axis: Axis, series: Sequence[tuple[str, Counter[str]]],
                   marks: Sequence[tuple[str, str, int]],
                   silences: Sequence[tuple[str, str]]) -> str:
    with _figure("activity", 2.6) as (fig, out):
        ax = fig.add_subplot()
        edges = axis.edges()
        for i, (node, hours) in enumerate(series):
            ax.stairs(axis.dense(hours), edges, color=NODE_COLOURS[i % len(NODE_COLOURS)],
                      linewidth=1.0, label=node)
        for n, (a, b) in enumerate(silences):
            ax.axvspan(axis.x(a), axis.x(b), color="#d62728", alpha=0.12, linewidth=0,
                       label="silent" if n == 0 else None)
        _marks(ax, axis, marks)
        _time_axis(ax, axis)
        ax.set_ylabel(f"decisions per {axis.unit}")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 1.75 decisions
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return out[0]


def order_chart(name: str, axis: Axis, series: Sequence[tuple[str, Counter[str]]], *,
                outside: Counter[str], active: Sequence[tuple[str | None, str | None]],
                events: Sequence[tuple[str, str, str]],
                marks: Sequence[tuple[str, str, int]]) -> str:
    """Decisions naming one order per node, outside-window decisions in red, the act
    history as vertical lines, the order's windows in force shaded green."""
    with _figure(f"order-{name}", 2.2, legend=False) as (fig, out):
        ax = fig.add_subplot()
        edges = axis.edges()
        lo, hi = edges[0], edges[-1]
        for n, (a, b) in enumerate(active):
            x0 = max(lo, axis.x(a)) if a else lo
            x1 = min(hi, axis.x(b)) if b else hi
            if x1 > x0:
                ax.axvspan(x0, x1, color="#2ca02c", alpha=0.08, linewidth=0,
                           label="in force" if n == 0 else None)
        for i, (node, hours) in enumerate(series):
            ax.stairs(axis.dense(hours), edges, color=NODE_COLOURS[i % len(NODE_COLOURS)],
                      linewidth=1.0, label=node)
        if outside:
            ax.stairs(axis.dense(outside), edges, color=OUTSIDE, fill=True, alpha=0.8,
                      label="outside its window")
        seen: set[str] = set()
        for ts, kind, act in events:
            x = axis.x(ts)
            if not lo <= x <= hi:
                continue
            colour = EVENT_COLOUR.get(kind.split(" ")[0], "#7f7f7f")
            ax.axvline(x, color=colour, linewidth=1.2, linestyle="--",
                       label=kind if kind not in seen else None)
            seen.add(kind)
            ax.annotate(f"{kind} ({act})" if act != name else kind, (x, 1.0),
                        xycoords=("data", "axes fraction"), rotation=90, fontsize=6.5,
                        va="top", ha="right", color=colour)
        _marks(ax, axis, marks)
        _time_axis(ax, axis)
        ax.set_ylabel(f"decisions per {axis.unit}")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts: no 1.75 decisions
    return out[0]


def kinds_chart(rows: Sequence[tuple[str, int]]) -> str:
    """Horizontal bars: one per `component decision → action`."""
    height = 0.7 + 0.22 * max(len(rows), 1)
    with _figure("kinds", height, legend=False, left=2.4) as (fig, out):
        ax = fig.add_subplot()
        labels = [r[0] for r in rows][::-1]
        counts = [r[1] for r in rows][::-1]
        bars = ax.barh(range(len(rows)), counts, color="#1f77b4")
        ax.bar_label(bars, labels=[f"{c:,}" for c in counts], padding=3, fontsize=7)
        ax.set_yticks(range(len(rows)), labels)
        ax.set_xlabel("decisions")
        ax.margins(x=0.12)
    return out[0]


def versions_chart(axis: Axis, rows: Sequence[tuple[str, list[tuple[str, str, str]]]],
                   publishes: Sequence[tuple[str, str]]) -> str:
    """Per node, a bar for each blocklist version from its first to its last decision."""
    palette = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
               "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
    colour: dict[str, str] = {}
    with _figure("versions", 0.9 + 0.35 * max(len(rows), 1), left=1.0) as (fig, out):
        ax = fig.add_subplot()
        for y, (_node, spans) in enumerate(rows):
            for version, a, b in spans:
                c = colour.setdefault(version, palette[len(colour) % len(palette)])
                x0, x1 = axis.x(a), axis.x(b)
                ax.broken_barh([(x0, max(x1 - x0, 1e-4))], (y - 0.35, 0.7), color=c,
                               label=version[:12] if version[:12] not in _labelled(ax) else None)
        for ts, version in publishes:
            ax.axvline(axis.x(ts), color="#333333", linewidth=0.8, linestyle=":")
            ax.annotate(f"published {version[:12]}", (axis.x(ts), 1.0), rotation=90,
                        xycoords=("data", "axes fraction"), fontsize=6.5, va="top",
                        ha="right")
        ax.set_yticks(range(len(rows)), [r[0] for r in rows])
        ax.set_ylim(-0.6, len(rows) - 0.4)
        _time_axis(ax, axis)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title="version")
    return out[0]


def _labelled(ax: Axes) -> set[Any]:
    return set(ax.get_legend_handles_labels()[1])
