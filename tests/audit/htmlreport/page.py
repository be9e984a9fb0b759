"""Reading the report page back in tests: tables by the id of their container."""

from __future__ import annotations

from html.parser import HTMLParser


class _Tables(HTMLParser):
    def __init__(self, container: str) -> None:
        super().__init__()
        self.container = container
        self.depth = 0  # >0 while inside the element with that id
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"br", "hr", "img", "meta", "input", "col"}:
            return  # void elements have no end tag
        if self.depth:
            self.depth += 1
            if tag == "tr":
                self.rows.append([])
            elif tag in {"td", "th"}:
                self.cell = []
        elif dict(attrs).get("id") == self.container:
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if not self.depth:
            return
        self.depth -= 1
        if tag in {"td", "th"} and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def table(html: str, container: str) -> list[dict[str, str]]:
    """The rows of the first table inside the element `id=container`, as dicts."""
    p = _Tables(container)
    p.feed(html)
    if not p.rows:
        return []
    head, *rows = p.rows
    return [dict(zip(head, r, strict=True)) for r in rows]
