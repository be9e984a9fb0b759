"""Pieces of HTML the report's sections share; every value passed in is already escaped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

__all__ = ["MAX_ROWS", "Rows", "duration", "figure", "more", "table"]

MAX_ROWS = 200  # rows of a findings table; the rest are counted


def duration(seconds: float) -> str:
    s = round(seconds)
    if s < 120:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    if s < 172800:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


Rows = list[tuple[str, ...]]


def table(head: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()
           ) -> str:
    out = ["<table><thead><tr>", *(f"<th>{escape(h)}</th>" for h in head), "</tr></thead>",
           "<tbody>"]
    for row in rows:
        cells = (f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                 for i, c in enumerate(row))
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def more(total: int, shown: int) -> str:
    return f'<p class="muted">… and {total - shown:,} more.</p>' if total > shown else ""


def figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"
