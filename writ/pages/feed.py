"""`/orders.atom`: an Atom feed (RFC 4287) of the acts, newest first.

One entry per act (block, restore, revoke), so a journalist's reader sees a
new order, a restoration and a revocation as they are published. Built with
ElementTree, which escapes every text and attribute. Pure: acts and the
register's absolute base URL in, bytes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from xml.etree import ElementTree as ET

from writ.blocklist import Act

__all__ = ["MAX_ENTRIES", "atom", "feed_acts"]

MAX_ENTRIES = 200
_NS = "http://www.w3.org/2005/Atom"


def feed_acts(acts: Sequence[Act]) -> list[Act]:
    return sorted(acts, key=lambda a: (a.effective, a.id), reverse=True)[:MAX_ENTRIES]


def _when(a: Act) -> str:
    return a.effective.isoformat()


def atom(acts: Sequence[Act], base: str, operator: str, at: datetime) -> bytes:
    """The feed; `base` is the register's absolute URL without a trailing slash."""
    entries = feed_acts(acts)
    root = ET.Element("feed", xmlns=_NS)
    ET.SubElement(root, "title").text = f"{operator}: court orders"
    ET.SubElement(root, "id").text = f"{base}/orders.atom"
    ET.SubElement(root, "updated").text = (_when(entries[0]) if entries else at.isoformat())
    ET.SubElement(root, "link", rel="self", href=f"{base}/orders.atom")
    ET.SubElement(root, "link", rel="alternate", href=f"{base}/orders")
    ET.SubElement(ET.SubElement(root, "author"), "name").text = operator
    for a in entries:
        e = ET.SubElement(root, "entry")
        page = f"{base}/orders/{a.amends if a.amends else a.id}"
        ET.SubElement(e, "id").text = f"{base}/orders/{a.id}"
        what = {"block": "Order", "restore": "Restoration", "revoke": "Revocation"}[a.kind.value]
        ET.SubElement(e, "title").text = f"{what} {a.id}: {a.court}, case {a.case}"
        ET.SubElement(e, "updated").text = _when(a)
        ET.SubElement(e, "published").text = _when(a)
        ET.SubElement(e, "link", rel="alternate", href=page)
        summary = a.summary or (f"amends {a.amends}" if a.amends else None)
        if summary:
            ET.SubElement(e, "summary").text = summary
    body: bytes = ET.tostring(root, encoding="utf-8")
    return b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n" + body
