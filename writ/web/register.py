"""The public register: /orders, /orders/ID, /lookup, /orders.atom (no token).

Invariants:
- Open to anyone, rate-limited per client address (pages.rate_limit a
  minute; then 429 + Retry-After). The admin API and its token are apart.
- Reads the same blocklist as the node (`holder`), at the index's instant:
  what the page says is in force is what the node enforces.
- Links are stable: /orders/ID for every act id (a restore's or revoke's id
  shows the order it amends, with its whole history).
- `confidential: true` on any act of an order: targets appear as counts only,
  in HTML, JSON and the lookup alike (the lookup still says "blocked", and
  by which order: that is what the person asking needs).
- Every page is also JSON (`Accept: application/json`); language: `?lang=`,
  Accept-Language, then pages.default_language.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from writ.blocklist import Act, ActKind, Blocklist, BlocklistHolder, Index, fold
from writ.blockpage import register_base, wants_json
from writ.pages.feed import atom, feed_acts
from writ.pages.i18n import N_, Catalogs, catalogs
from writ.pages.lookup import lookup
from writ.pages.render import act_view, fmt_date, render
from writ.policies import Policy
from writ.web.ratelimit import RateLimiter

__all__ = ["PATHS", "is_register_host", "setup_register"]

PATHS = ("/orders", "/orders.atom", "/lookup")
MAX_TARGETS_HTML = 500
MAX_TARGETS_JSON = 10_000
_R_HOLDER = web.AppKey("register_holder", BlocklistHolder)
_R_POLICY = web.AppKey("register_policy", Policy)
_R_LIMIT = web.AppKey("register_limit", RateLimiter)
_R_CATS = web.AppKey("register_catalogs", Catalogs)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_register_host(policy: Policy, host: str | None) -> bool:
    """True when `host` (a Host header) is the register's public name."""
    if not policy.pages.register_url or not host:
        return False
    want = urlsplit(policy.pages.register_url).hostname
    got = urlsplit(f"//{host}").hostname if "//" not in host else None
    return bool(want) and got == want


def is_register_path(path: str) -> bool:
    return path in PATHS or path.startswith("/orders/")


def _now() -> float:
    return time.monotonic()


@web.middleware
async def rate_limited(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_register_path(request.path):
        return await handler(request)
    wait = request.app[_R_LIMIT].take(request.remote or "?", _now())
    if wait > 0:
        return web.json_response(
            {"error": "too many requests: slow down"}, status=429,
            headers={"Retry-After": str(int(wait) + 1), "Cache-Control": "no-store"})
    return await handler(request)


def setup_register(app: web.Application, holder: BlocklistHolder, policy: Policy) -> None:
    """Add the register's routes and its rate limit to `app` (before any catch-all route).
    Raises writ.pages.i18n.CatalogError for a bad message catalog."""
    app[_R_HOLDER] = holder
    app[_R_POLICY] = policy
    app[_R_LIMIT] = RateLimiter(policy.pages.rate_limit)
    app[_R_CATS] = catalogs(policy.pages.languages_dir, policy.pages.default_language)
    app.middlewares.append(rate_limited)
    r = app.router
    r.add_get("/orders", orders_page)
    r.add_get("/orders.atom", feed_page)
    r.add_get("/orders/{id}", order_page)
    r.add_get("/lookup", lookup_page)


class _Ctx:
    """What one request needs: the index, the language and how to answer."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.policy = request.app[_R_POLICY]
        self.holder = request.app[_R_HOLDER]
        self.cats = request.app[_R_CATS]
        self.lang = self.cats.choose(request.headers.get("Accept-Language"),
                                     request.query.get("lang"))
        self._ = self.cats.gettext(self.lang)
        self.json = wants_json(request.headers.get("Accept"))
        # Relative links ("") work here: these pages are on the register's own host.
        self.register = register_base(self.policy) or ""

    def absolute_base(self) -> str:
        return register_base(self.policy) or f"{self.request.scheme}://{self.request.host}"

    def page(self, template: str, status: int = 200, **context: Any) -> web.Response:
        body = render(template, self.cats, self.lang, path=self.request.path,
                      query=dict(self.request.query), operator=self.policy.operator,
                      register=self.register, **context)
        return web.Response(status=status, body=body, headers={
            "Content-Type": "text/html; charset=utf-8", "Content-Language": self.lang,
            "Vary": "Accept, Accept-Language", "Cache-Control": "no-cache"})

    def data(self, payload: dict[str, Any], status: int = 200) -> web.Response:
        return web.json_response(payload, status=status, headers={
            "Vary": "Accept, Accept-Language", "Cache-Control": "no-cache"})

    def message(self, status: int, title: str, text: str) -> web.Response:
        if self.json:
            return self.data({"status": status, "error": text}, status)
        return self.page("message.html", status, title=self._(title), paragraphs=[self._(text)])

    def loaded(self) -> tuple[Blocklist, Index] | None:
        blocklist, index = self.holder.blocklist, self.holder.index
        return None if blocklist is None or index is None else (blocklist, index)


def _confidential(acts: list[Act]) -> bool:
    return any(a.confidential for a in acts)


def _family(blocklist: Blocklist, root: Act) -> list[Act]:
    """The order and every act amending it or its amendments, by effective date."""
    ids, out = {root.id}, [root]
    for a in sorted(blocklist.acts, key=lambda a: (a.effective, a.id)):
        if a.amends in ids and a.id not in ids:
            ids.add(a.id)
            out.append(a)
    return out


def _order_json(a: Act, register: str, targets: int) -> dict[str, Any]:
    return {"id": a.id, "kind": str(a.kind), "court": a.court, "case": a.case,
            "issued": a.issued.isoformat(), "effective": a.effective.isoformat(),
            "expires": a.expires.isoformat() if a.expires else None,
            "authority": a.authority, "legal_basis": a.legal_basis, "reference": a.reference,
            "summary": a.summary, "summaries": dict(a.summaries), "targets": targets,
            "confidential": a.confidential,
            "url": f"{register}/orders/{a.id}" if register else f"/orders/{a.id}"}


async def orders_page(request: web.Request) -> web.Response:
    c = _Ctx(request)
    got = c.loaded()
    if got is None:
        return c.message(503, N_("Service Unavailable"), N_("No blocklist is loaded yet."))
    blocklist, index = got
    in_force = fold(blocklist.acts, index.at).in_force
    if c.json:
        return c.data({"blocklist_version": index.version, "at": index.at.isoformat(),
                       "orders": [_order_json(i.act, c.register, i.act.target_count())
                                  for i in in_force]})
    views = [act_view(i.act, c.lang, targets=i.act.target_count()) for i in in_force]
    return c.page("orders.html", title=c._("Court orders in force"), orders=views,
                  version=index.version, at=fmt_date(index.at, c.lang))


def _status(blocklist: Blocklist, index: Index, root: Act, c: _Ctx) -> tuple[str, str]:
    f = fold(blocklist.acts, index.at)
    mine = next((i for i in f.in_force if i.act.id == root.id), None)
    revoked = any(a.kind is ActKind.REVOKE and a.amends == root.id and a.active_at(index.at)
                  for a in blocklist.acts)
    if mine is not None:
        return ("restored-in-part", c._("In force, partly restored")) if mine.lifted else (
            "in-force", c._("In force"))
    if revoked:
        return "revoked", c._("Revoked")
    if root.effective > index.at:
        return "not-yet", c._("Not yet in force")
    return "expired", c._("Expired")


def _history(family: list[Act], c: _Ctx, secret: bool) -> list[dict[str, Any]]:
    what = {ActKind.BLOCK: c._("Order"), ActKind.RESTORE: c._("Restoration"),
            ActKind.REVOKE: c._("Revocation")}
    out = []
    for a in family:
        v = act_view(a, c.lang)
        v["what"] = what[a.kind]
        v["restores"] = v["kept"] = None
        if a.kind is ActKind.RESTORE:
            restored = None if a.restores is None else [t.describe() for t in a.restores]
            kept = [t.describe() for t in a.keep_blocked]
            if secret:
                v["restores"] = (c._("all its domain targets") if restored is None
                                 else str(len(restored)))
                v["kept"] = str(len(kept))
            else:
                v["restores"] = (c._("all its domain targets") if restored is None
                                 else ", ".join(restored))
                v["kept"] = ", ".join(kept) or "—"
        out.append(v)
    return out


def _targets(root: Act, limit: int) -> list[str]:
    out = [t.describe() for t in root.targets[:limit]]
    for b in root.bulk:
        if len(out) >= limit:
            break
        out += [f"domain {n}" for n in b.domains[: limit - len(out)]]
        out += [t.describe() for t in b.urls[: max(0, limit - len(out))]]
    return out


async def order_page(request: web.Request) -> web.Response:
    c = _Ctx(request)
    got = c.loaded()
    if got is None:
        return c.message(503, N_("Service Unavailable"), N_("No blocklist is loaded yet."))
    blocklist, index = got
    by_id = {a.id: a for a in blocklist.acts}
    act = by_id.get(request.match_info["id"])
    seen: set[str] = set()
    while act is not None and act.amends and act.id not in seen:  # a restore's page: its order's
        seen.add(act.id)
        act = by_id.get(act.amends)
    if act is None:
        return c.message(404, N_("Not found"), N_("No such court order in this register."))
    family = _family(blocklist, act)
    secret = _confidential(family)
    status, status_text = _status(blocklist, index, act, c)
    count = act.target_count()
    if c.json:
        payload = _order_json(act, c.register, count)
        payload.update(status=status, confidential=secret, history=[
            {**_order_json(a, c.register, a.target_count()),
             "amends": a.amends,
             "restores": (None if a.restores is None or secret
                          else [t.describe() for t in a.restores]),
             "keep_blocked": (None if secret else [t.describe() for t in a.keep_blocked])}
            for a in family])
        if not secret:
            payload["target_list"] = _targets(act, MAX_TARGETS_JSON)
            payload["target_list_truncated"] = count > MAX_TARGETS_JSON
        return c.data(payload)
    shown = [] if secret else _targets(act, MAX_TARGETS_HTML)
    return c.page("order.html", title=c._("Court order %(id)s") % {"id": act.id},
                  order=act_view(act, c.lang, targets=count), state=status_text,
                  history=_history(family, c, secret), confidential=secret, count=count,
                  targets=shown, more=max(0, count - len(shown)))


async def lookup_page(request: web.Request) -> web.Response:
    c = _Ctx(request)
    q = request.query.get("q", "").strip()
    result: dict[str, Any] | None = None
    if q:
        index = c.holder.index
        if index is None:
            return c.message(503, N_("Service Unavailable"), N_("No blocklist is loaded yet."))
        result = lookup(index, q)
        acts = index.acts
        result["order_details"] = [
            {"id": i, "court": a.court, "case": a.case,
             "url": f"{c.register}/orders/{i}" if c.register else f"/orders/{i}"}
            for i in result["orders"] if (a := acts.get(i)) is not None]
    if c.json:
        if result is None:
            return c.data({"error": "give ?q=NAME or ?q=URL"}, 400)
        return c.data(result, 400 if result["decision"] == "invalid" else 200)
    view = None
    if result is not None:
        headline = {
            "block": c._("Blocked now by court order."),
            "url-rules": c._(
                "Some web addresses on this site are blocked; the site itself is not."),
            "allow": c._("Not blocked: no court order in force names it."),
            "invalid": c._("This is not a domain name or web address we can check."),
        }[result["decision"]]
        view = {"headline": headline, "orders": result["order_details"], "rule": result["rule"]}
    return c.page("lookup.html", title=c._("Is this address blocked?"), q=q, result=view)


async def feed_page(request: web.Request) -> web.Response:
    c = _Ctx(request)
    got = c.loaded()
    if got is None:
        return c.message(503, N_("Service Unavailable"), N_("No blocklist is loaded yet."))
    blocklist, index = got
    if c.json:
        return c.data({"entries": [_order_json(a, c.register, a.target_count()) | {
            "amends": a.amends} for a in feed_acts(blocklist.acts)]})
    body = atom(blocklist.acts, c.absolute_base(), c.policy.operator, index.at)
    return web.Response(body=body, headers={"Content-Type": "application/atom+xml; charset=utf-8",
                                            "Cache-Control": "no-cache"})
