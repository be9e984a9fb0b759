"""The HTML page: one file, inline CSS and SVG, no script, no external request.

Invariants:
- Every value from a log or an order is escaped (html.escape): a target or a
  rule is whatever a client sent, and the page must not become its script.
- Same document, same bytes: everything is sorted, and the page names no
  time of rendering unless the caller passed one (`stamp`).
- Sections come in the order an auditor reads them: was the log intact, what
  was found, then the pictures and tables behind the findings.
"""

from __future__ import annotations

from html import escape

from writ.audit.htmlreport import sections, signedsets
from writ.audit.htmlreport._style import CSS
from writ.audit.htmlreport.document import Document

__all__ = ["render"]


def render(doc: Document) -> str:
    nodes = [s.node for s in doc.scans]
    period = (f"{doc.first} to {doc.last}" if doc.first and doc.last else "no records")
    decisions = sum(s.decisions for s in doc.scans)
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No request may leave the page, whatever a log line holds.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; img-src data:\">",
        "<title>writ audit report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Enforcement audit report</h1>",
        f'<p class="sub">{len(nodes)} node(s): {escape(", ".join(nodes))}. Period (UTC): '
        f"{escape(period)}. {decisions:,} decisions."
        + (f" Generated {escape(doc.stamp)}." if doc.stamp else "") + "</p>",
    ]
    body = [
        sections.inputs(doc),
        sections.verification(doc),
        sections.findings(doc),
        sections.activity(doc),
        sections.orders(doc),
        sections.kinds(doc),
        sections.versions(doc),
        signedsets.section(doc),
        sections.method(doc),
    ]
    return "\n".join([*head, *body, "</body></html>", ""])


