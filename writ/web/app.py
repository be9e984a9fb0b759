"""The aiohttp app: block page for DNS-sinkholed clients, and the admin API.

Invariants:
- A request whose Host is a name (not an IP literal, not `localhost`) came
  from a client the DNS resolver sinkholed: it gets the block page, whatever
  its path — a blocked site's `/metrics` is still the blocked site.
- The admin API (/v1/…) needs `Authorization: Bearer <token>`; without a
  token configured it is disabled (403 saying how to enable it). Health,
  readiness and metrics are open: probes and scrapers carry no secrets.
- Handlers read `holder.index` once; nothing here touches the network.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from writ import __version__
from writ.blocklist import BlocklistHolder, CanonError, Verdict, canonical_url, fold
from writ.blocklist.explain import explain as explain_target
from writ.blockpage import Page, bad_request_page, blocked_page, not_blocked_page, unavailable_page
from writ.metrics import Metrics, store_gauges
from writ.policies import Policy
from writ.web import prom
from writ.web.register import is_register_host, setup_register

__all__ = ["make_app", "read_token"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SinkStats = Callable[[], Mapping[str, float]]

HOLDER = web.AppKey("holder", BlocklistHolder)
POLICY = web.AppKey("policy", Policy)
METRICS = web.AppKey("metrics", Metrics)
TOKEN = web.AppKey("token", str)
SINK_STATS = web.AppKey("sink_stats", object)
CLOCK = web.AppKey("clock", object)
STORE_STATUS = web.AppKey("store_status", object)  # () -> StoreStatus-like, or None


def read_token(path: str) -> str:
    """The bearer token in `path` (surrounding whitespace ignored). Raises ValueError."""
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
    except OSError as e:
        raise ValueError(f"web.token_file: cannot read {path}: {e.strerror}") from None
    if len(token) < 16:
        raise ValueError(f"web.token_file: {path}: token missing or shorter than 16 characters")
    return token


def _is_admin_host(host: str | None) -> bool:
    if not host:
        return True
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    name = name.strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _reply(page: Page) -> web.Response:
    return web.Response(status=page.status, reason=page.reason, body=page.body,
                        headers=dict(page.headers))


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, headers={"Cache-Control": "no-store"})


async def block_page(request: web.Request) -> web.Response:
    holder, policy = request.app[HOLDER], request.app[POLICY]
    accept = request.headers.get("Accept")
    lang_of = {"accept_language": request.headers.get("Accept-Language")}
    index = holder.index
    if index is None:
        return _reply(unavailable_page("No blocklist is loaded yet.", accept, policy=policy,
                                       **lang_of))
    path = request.raw_path if request.raw_path.startswith("/") else "/"
    try:
        cu = canonical_url(f"http://{request.host}{path}")
    except CanonError as e:
        return _reply(bad_request_page(str(e), accept, policy=policy, **lang_of))
    by_name = index.decide_canonical_name(cu.host)
    if by_name.decision is Verdict.BLOCK:
        return _reply(blocked_page(by_name, index.acts, policy, cu.host, accept=accept,
                                   blocklist_version=index.version,
                                   lang=request.query.get("lang"), **lang_of))
    by_url = index.decide_canonical_url(cu)
    if by_url.blocked:
        return _reply(blocked_page(by_url, index.acts, policy, f"http://{cu}", accept=accept,
                                   blocklist_version=index.version,
                                   lang=request.query.get("lang"), **lang_of))
    note = ["This is the block-page server: your DNS answer for this name pointed here. "
            "It may be out of date; try again in a minute."]
    if by_name.decision is Verdict.URL_RULES:
        note.append("Some addresses on this host are blocked by court order; this one is not.")
    return _reply(not_blocked_page(cu.host, by_url if by_url.orders else by_name, policy,
                                   accept, note, **lang_of))


@web.middleware
async def sinkhole_first(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not _is_admin_host(request.host) and not is_register_host(request.app[POLICY],
                                                                 request.host):
        return await block_page(request)
    return await handler(request)


@web.middleware
async def admin_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/v1/"):
        return await handler(request)
    token = request.app.get(TOKEN)
    if not token:
        return _json({"error": "admin API disabled: set web.token_file in the policy"}, 403)
    got = request.headers.get("Authorization", "")
    scheme, _, value = got.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(),
                                                             token.encode()):
        resp = _json({"error": "missing or wrong bearer token"}, 401)
        resp.headers["WWW-Authenticate"] = 'Bearer realm="writ"'
        return resp
    return await handler(request)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def _store_detail(app: web.Application) -> dict[str, Any]:
    status_fn: Any = app.get(STORE_STATUS)
    if status_fn is None:
        return {}
    st = status_fn()
    detail = {"source": st.source, "stale": st.stale, "last_error": st.last_error,
              "loaded_at": st.loaded_at.isoformat() if st.loaded_at else None,
              "location": st.location}
    if st.manifest_sequence is not None or st.sets_refused:  # signed sets (trust.keyring)
        detail.update(alarm=st.alarm, manifest_sequence=st.manifest_sequence,
                      sets_refused=st.sets_refused)
    return detail


async def readyz(request: web.Request) -> web.Response:
    """Ready once a blocklist is in force and its decisions can be recorded. A stale
    one (Redis unreachable, a disk copy after a restart) is still enforced, so still
    ready — and says so. An audit writer that cannot write (stats `writer_ok` 0)
    is not ready: decisions would go unrecorded (docs/operator.md)."""
    index = request.app[HOLDER].index
    store = _store_detail(request.app)
    if index is None:
        return _json({"ready": False, "detail": "no blocklist loaded yet", "store": store}, 503)
    stats: Any = request.app[SINK_STATS]
    if stats is not None and not stats().get("writer_ok", 1):
        return _json({"ready": False, "store": store,
                      "detail": "the audit log cannot be written: decisions are not recorded "
                                "(see writ_audit_write_errors and the node's log)"}, 503)
    # Past its manifest's expiry the set stays in force (still ready) and says
    # `expired`: the publisher must sign a fresh manifest (docs/operator.md).
    expired = {"expired": True} if store.get("alarm") == "expired" else {}
    return _json({"ready": True, "blocklist_version": index.version, "rules": len(index),
                  "stale": bool(store.get("stale")), **expired, "store": store})


async def metrics_page(request: web.Request) -> web.Response:
    app = request.app
    stats: Any = app[SINK_STATS]
    clock: Any = app[CLOCK]
    extra = dict(stats()) if stats else {}
    status_fn: Any = app.get(STORE_STATUS)
    if status_fn is not None:
        extra.update(store_gauges(status_fn()))
    text = prom.render(app[METRICS], app[HOLDER].index, clock(), extra or None)
    return web.Response(body=text.encode(), headers={"Content-Type": prom.CONTENT_TYPE})


async def version(request: web.Request) -> web.Response:
    index = request.app[HOLDER].index
    return _json({
        "writ": __version__,
        "node": request.app[POLICY].node,
        "blocklist_version": index.version if index else None,
        "at": index.at.isoformat() if index else None,
        "valid_until": index.valid_until.isoformat() if index and index.valid_until else None,
        "rules": len(index) if index else 0,
    })


async def orders(request: web.Request) -> web.Response:
    holder = request.app[HOLDER]
    index, blocklist = holder.index, holder.blocklist
    if index is None or blocklist is None:
        return _json({"error": "no blocklist loaded yet"}, 503)
    f = fold(blocklist.acts, index.at)  # admin path: O(acts) is fine here
    out = [{
        "id": i.act.id,
        "court": i.act.court,
        "case": i.act.case,
        "issued": i.act.issued.isoformat(),
        "effective": i.act.effective.isoformat(),
        "expires": i.act.expires.isoformat() if i.act.expires else None,
        "legal_basis": i.act.legal_basis,
        "reference": i.act.reference,
        "summary": i.act.summary,
        "targets": i.act.target_count(),
        "lifted": sorted(i.lifted),
        "restored_by": list(i.restored_by),
    } for i in f.in_force]
    kept = [{"rule": k.target.describe(), "orders": list(k.orders)} for k in f.kept]
    return _json({"blocklist_version": index.version, "at": index.at.isoformat(),
                  "orders": out, "kept_blocked": kept})


async def explain(request: web.Request) -> web.Response:
    index = request.app[HOLDER].index
    if index is None:
        return _json({"error": "no blocklist loaded yet"}, 503)
    targets = request.query.getall("target", [])
    if not targets:
        return _json({"error": "give ?target=NAME or ?target=URL (repeatable)"}, 400)
    results = [explain_target(index, t) for t in targets]  # what `writ explain --json` says
    for e in results:
        if e["decision"] == "invalid":
            return _json({"error": f"target {e['target'][:200]!r}: {e['error']}"}, 400)
    return _json({"blocklist_version": index.version, "results": results})


async def not_found(request: web.Request) -> web.Response:
    return _json({"error": f"no such endpoint: {request.path}"}, 404)


def make_app(holder: BlocklistHolder, policy: Policy, *, metrics: Metrics | None = None,
             token: str | None = None, sink_stats: SinkStats | None = None,
             clock: Callable[[], float] = time.time,
             store_status: Callable[[], Any] | None = None) -> web.Application:
    """The web app. `token` None disables the admin API; `sink_stats` adds gauges."""
    app = web.Application(middlewares=[sinkhole_first, admin_auth])
    app[HOLDER] = holder
    app[POLICY] = policy
    app[METRICS] = metrics or Metrics()
    if token:
        app[TOKEN] = token
    app[SINK_STATS] = sink_stats
    app[CLOCK] = clock
    app[STORE_STATUS] = store_status
    r = app.router
    r.add_get("/healthz", healthz)
    r.add_get("/readyz", readyz)
    r.add_get("/metrics", metrics_page)
    r.add_get("/v1/version", version)
    r.add_get("/v1/orders", orders)
    r.add_get("/v1/explain", explain)
    setup_register(app, holder, policy)  # the public register (writ/web/register.py)
    r.add_route("*", "/{tail:.*}", not_found)
    return app

