"""The answer a blocked person sees: RFC 7725 451 pages as bytes.

Shared by the mitmproxy addon and the block-page web server, which never
import each other. Pure: a Decision, the acts it names and the policy in,
status + headers + body out. No I/O, no clock.

Invariants:
- Every piece of order text is HTML-escaped; an order's `reference` becomes a
  link only if it is an http(s) URL (an order file must not inject script).
- Every 451 carries `Cache-Control: no-store` — RFC 7231 §6.1 makes 451
  cacheable by default, and a restoration must take effect at once — and
  `Link: <transparency URL>; rel="blocked-by"`. RFC 7725 §4: "the blocking
  entity" is the operator who implements the block, not the court.
- RFC 7725 §3: the body SHOULD explain "the details of the legal demand: the
  party making it, the applicable legislation or regulation": so the page
  names every order id, court, case, date, legal basis and reference.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from writ.blocklist import Act, Decision
from writ.policies import Policy

__all__ = [
    "REASON_451",
    "Page",
    "bad_request_page",
    "blocked_page",
    "not_blocked_page",
    "unavailable_page",
    "wants_json",
]

REASON_451 = "Unavailable For Legal Reasons"
_REASONS = {200: "OK", 400: "Bad Request", 451: REASON_451, 503: "Service Unavailable"}


@dataclass(frozen=True, slots=True)
class Page:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def content_type(self) -> str:
        return next(v for k, v in self.headers if k == "Content-Type")


def wants_json(accept: str | None) -> bool:
    """JSON when the client asks for it and does not also ask for HTML."""
    if not accept:
        return False
    a = accept.lower()
    return "application/json" in a and "text/html" not in a


def _link_header(policy: Policy) -> str:
    # Angle brackets, quotes and spaces would break the header's syntax.
    url = quote(policy.transparency_url, safe=":/?#[]@!$&'()*+,;=%-._~")
    return f'<{url}>; rel="blocked-by"'


def _safe_href(url: str | None) -> str | None:
    if url and url.lower().startswith(("https://", "http://")):
        return url
    return None


def _order_json(oid: str, act: Act | None) -> dict[str, Any]:
    if act is None:  # provenance names an act the index no longer knows: say so
        return {"id": oid}
    return {
        "id": act.id,
        "kind": str(act.kind),
        "court": act.court,
        "case": act.case,
        "issued": act.issued.isoformat(),
        "authority": act.authority,
        "legal_basis": act.legal_basis,
        "reference": act.reference,
        "summary": act.summary,
    }


def _order_html(oid: str, act: Act | None) -> str:
    e = html.escape
    if act is None:
        return f"<li><strong>{e(oid)}</strong></li>"
    rows = [
        ("Court", act.court),
        ("Case", act.case),
        ("Date", act.issued.isoformat()),
        ("Authority", act.authority),
        ("Legal basis", act.legal_basis),
        ("Summary", act.summary),
    ]
    dl = "".join(f"<dt>{k}</dt><dd>{e(v)}</dd>" for k, v in rows if v)
    href = _safe_href(act.reference)
    if href is not None:
        dl += f'<dt>Order</dt><dd><a href="{e(href)}">{e(href)}</a></dd>'
    elif act.reference:
        dl += f"<dt>Order</dt><dd>{e(act.reference)}</dd>"
    return f"<li><strong>{e(act.id)}</strong><dl>{dl}</dl></li>"


def _html(title: str, body: str) -> bytes:
    doc = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title>"
        "<meta name=\"viewport\" content=\"width=device-width\"></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )
    return doc.encode("utf-8")


def _page(status: int, headers: list[tuple[str, str]], payload: dict[str, Any] | None,
          html_body: bytes, *, json_wanted: bool) -> Page:
    if json_wanted and payload is not None:
        body = json.dumps(payload, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"
        ctype = "application/json; charset=utf-8"
    else:
        body, ctype = html_body, "text/html; charset=utf-8"
    headers = [("Content-Type", ctype), ("Cache-Control", "no-store"), *headers]
    return Page(status, _REASONS[status], tuple(headers), body)


def blocked_page(decision: Decision, acts: Mapping[str, Act], policy: Policy, target: str,
                 *, accept: str | None = None, blocklist_version: str | None = None) -> Page:
    """The 451 answer for a blocked request (or a sinkholed host)."""
    orders = [(oid, acts.get(oid)) for oid in decision.orders]
    payload = {
        "status": 451,
        "error": REASON_451,
        "target": target,
        "blocked_by": {"operator": policy.operator, "transparency_url": policy.transparency_url},
        "orders": [_order_json(oid, act) for oid, act in orders],
        "rule": decision.rule,
        "blocklist_version": blocklist_version,
    }
    e = html.escape
    href = _safe_href(policy.transparency_url)
    operator = e(policy.operator)
    who = f'<a href="{e(href)}">{operator}</a>' if href else operator
    items = "".join(_order_html(oid, act) for oid, act in orders)
    body = (
        f"<p>Access to <code>{e(target)}</code> is blocked by {who} "
        f"to comply with the following court order{'s' if len(orders) != 1 else ''}.</p>"
        f"<ul>{items}</ul>"
        f"<p>Rule: <code>{e(decision.rule or '')}</code></p>"
    )
    return _page(451, [("Link", _link_header(policy))], payload,
                 _html(REASON_451, body), json_wanted=wants_json(accept))


def bad_request_page(message: str, accept: str | None = None) -> Page:
    """A clear 400 for a request writ cannot judge (bad URL, bad IDN, bad %-escape)."""
    payload = {"status": 400, "error": "Bad Request", "detail": message}
    body = f"<p>writ could not read this request: <code>{html.escape(message)}</code></p>"
    return _page(400, [], payload, _html("Bad Request", body), json_wanted=wants_json(accept))


def unavailable_page(message: str, accept: str | None = None) -> Page:
    """503 while no blocklist is loaded and the policy fails closed."""
    payload = {"status": 503, "error": "Service Unavailable", "detail": message}
    body = f"<p>{html.escape(message)}</p>"
    return _page(503, [], payload, _html("Service Unavailable", body),
                 json_wanted=wants_json(accept))


def not_blocked_page(target: str, decision: Decision, policy: Policy,
                     accept: str | None = None, note: Sequence[str] = ()) -> Page:
    """200 for a host the block-page server was asked about but no order blocks."""
    payload = {
        "status": 200,
        "target": target,
        "blocked": False,
        "decision": str(decision.decision),
        "orders": list(decision.orders),
        "detail": list(note),
    }
    e = html.escape
    body = (
        f"<p>No court order in force blocks <code>{e(target)}</code>; "
        f"{e(policy.operator)} does not block it.</p>"
        + "".join(f"<p>{e(n)}</p>" for n in note)
    )
    return _page(200, [], payload, _html("Not blocked", body), json_wanted=wants_json(accept))
