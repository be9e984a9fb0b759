"""The answer a blocked person sees: RFC 7725 451 pages as bytes.

Shared by the mitmproxy addon and the block-page web server, which never
import each other. Pure: a Decision, the acts it names and the policy in,
status + headers + body out. No clock; the only I/O is reading the message
catalogs once (writ/pages/i18n.py caches them; `writ web` loads them at start).

Invariants:
- Every piece of order text is HTML-escaped (writ/pages/render.py: autoescaped
  templates); an order's `reference` becomes a link only if it is an http(s)
  URL (an order file must not inject script).
- The page is in the reader's language: `?lang=`, else Accept-Language, else
  `pages.default_language` (writ/pages/i18n.py).
- Every 451 carries `Cache-Control: no-store` — RFC 7231 §6.1 makes 451
  cacheable by default, and a restoration must take effect at once — and
  `Link: <URL>; rel="blocked-by"` (`blocked_by_url`: pages.blocked_by, else
  the public register, else transparency_url). RFC 7725 §4: "the blocking
  entity" is the operator who implements the block, not the court.
- RFC 7725 §3: the body SHOULD explain "the details of the legal demand: the
  party making it, the applicable legislation or regulation": so the page
  names every order id, court, case, date, legal basis and reference.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from writ.blocklist import Act, Decision
from writ.pages.i18n import N_, Catalogs, catalogs
from writ.pages.render import act_view, render, safe_href
from writ.policies import Policy

__all__ = [
    "REASON_451",
    "Page",
    "bad_request_page",
    "blocked_by_url",
    "blocked_page",
    "not_blocked_page",
    "register_base",
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


def blocked_by_url(policy: Policy) -> str:
    """RFC 7725 §4's `blocked-by` page: the policy's own choice, else the public
    register's list of orders, else the transparency page."""
    pages = policy.pages
    if pages.blocked_by:
        return pages.blocked_by
    if pages.register_url:
        return pages.register_url.rstrip("/") + "/orders"
    return policy.transparency_url


def register_base(policy: Policy) -> str | None:
    """The register's public base URL (None when the policy names none)."""
    url = policy.pages.register_url
    return url.rstrip("/") if url else None


def _link_header(policy: Policy) -> str:
    # Angle brackets, quotes and spaces would break the header's syntax.
    url = quote(blocked_by_url(policy), safe=":/?#[]@!$&'()*+,;=%-._~")
    return f'<{url}>; rel="blocked-by"'


def _order_json(oid: str, act: Act | None, register: str | None) -> dict[str, Any]:
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
        "summaries": dict(act.summaries),
        "url": f"{register}/orders/{act.id}" if register else None,
    }


def _language(policy: Policy, accept_language: str | None, lang: str | None) -> tuple[
        Catalogs, str]:
    cats = catalogs(policy.pages.languages_dir, policy.pages.default_language)
    return cats, cats.choose(accept_language, lang)


def _message(policy: Policy, title: str, paragraphs: list[str], accept_language: str | None,
             lang: str | None) -> bytes:
    cats, language = _language(policy, accept_language, lang)
    _ = cats.gettext(language)
    return render("message.html", cats, language, title=_(title),
                  paragraphs=[_(p) for p in paragraphs], operator=policy.operator,
                  register=register_base(policy))


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
                 *, accept: str | None = None, blocklist_version: str | None = None,
                 accept_language: str | None = None, lang: str | None = None) -> Page:
    """The 451 answer for a blocked request (or a sinkholed host), in the reader's language."""
    register = register_base(policy)
    orders = [(oid, acts.get(oid)) for oid in decision.orders]
    payload = {
        "status": 451,
        "error": REASON_451,
        "target": target,
        "blocked_by": {"operator": policy.operator, "transparency_url": policy.transparency_url,
                       "url": blocked_by_url(policy)},
        "orders": [_order_json(oid, act, register) for oid, act in orders],
        "rule": decision.rule,
        "blocklist_version": blocklist_version,
    }
    if wants_json(accept):
        return _page(451, [("Link", _link_header(policy))], payload, b"", json_wanted=True)
    cats, language = _language(policy, accept_language, lang)
    views = [act_view(a, language) if a is not None else {"id": oid, "kind": "block"}
             for oid, a in orders]
    body = render("blocked.html", cats, language, title=cats.gettext(language)(
        "This address is blocked by court order"), target=target, orders=views,
        operator=policy.operator, register=register, contest=policy.pages.contest,
        more_href=safe_href(policy.transparency_url), rule=decision.rule)
    return _page(451, [("Link", _link_header(policy)), ("Content-Language", language),
                       ("Vary", "Accept, Accept-Language")], payload, body, json_wanted=False)


def bad_request_page(message: str, accept: str | None = None, *, policy: Policy | None = None,
                     accept_language: str | None = None) -> Page:
    """A clear 400 for a request writ cannot judge (bad URL, bad IDN, bad %-escape)."""
    payload = {"status": 400, "error": "Bad Request", "detail": message}
    if wants_json(accept):
        return _page(400, [], payload, b"", json_wanted=True)
    body = _message(policy or Policy(), N_("Bad Request"),
                    [N_("writ could not read this request."), message], accept_language, None)
    return _page(400, [], payload, body, json_wanted=False)


def unavailable_page(message: str, accept: str | None = None, *, policy: Policy | None = None,
                     accept_language: str | None = None) -> Page:
    """503 while no blocklist is loaded and the policy fails closed."""
    payload = {"status": 503, "error": "Service Unavailable", "detail": message}
    if wants_json(accept):
        return _page(503, [], payload, b"", json_wanted=True)
    body = _message(policy or Policy(), N_("Service Unavailable"), [message], accept_language,
                    None)
    return _page(503, [], payload, body, json_wanted=False)


def not_blocked_page(target: str, decision: Decision, policy: Policy,
                     accept: str | None = None, note: Sequence[str] = (), *,
                     accept_language: str | None = None) -> Page:
    """200 for a host the block-page server was asked about but no order blocks."""
    payload = {
        "status": 200,
        "target": target,
        "blocked": False,
        "decision": str(decision.decision),
        "orders": list(decision.orders),
        "detail": list(note),
    }
    if wants_json(accept):
        return _page(200, [], payload, b"", json_wanted=True)
    cats, language = _language(policy, accept_language, None)
    _ = cats.gettext(language)
    first = _("No court order in force blocks %(target)s; %(operator)s does not block it.") % {
        "target": target, "operator": policy.operator}
    body = render("message.html", cats, language, title=_("Not blocked"),
                  paragraphs=[first, *(_(n) for n in note)], operator=policy.operator,
                  register=register_base(policy))
    return _page(200, [], payload, body, json_wanted=False)
