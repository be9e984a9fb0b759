"""The mitmproxy addon enforcing the blocklist over HTTP (docs/design.md §4 HTTP).

Thin hooks around pure parts: `judge` decides, `writ.blockpage` renders.

Invariants:
- Decide in `requestheaders`, before any upload body is read; a blocked
  request is answered here, so the upstream is never contacted.
- Judge every name a request carries (request-target host, Host header, TLS
  SNI); blocked if any is blocked.
- The hot path reads `holder.index` once per request: no Redis, no network,
  no lock; cost independent of the blocklist's size.
- Every decision is recorded with component "http" (allows only when the
  policy asks) and counted in the metrics (always).
- Bad input (unparseable URL, invalid IDN, bad percent-encoding) gets a clear
  400 from the addon and a record; it never raises out of a hook.
- Only this class reads `ctx.options`, and only in `configure()`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from mitmproxy import connection, ctx, exceptions, http, tls
from mitmproxy.proxy import server_hooks
from OpenSSL import SSL

from writ.audit import Action, Component, Outcome, Recorder, RecordSink
from writ.blocklist import CanonError, Decision, Index, Verdict
from writ.blockpage import Page, bad_request_page, blocked_page, unavailable_page
from writ.metrics import Metrics
from writ.policies import FailMode, Policy, TlsMode
from writ.proxy.destination import Resolve, destination_decision, system_resolve
from writ.proxy.judge import authority_of, judge_names, judge_request
from writ.proxy.steer import (
    DEFAULT_PORT,
    NOT_STEERED,
    SteerKind,
    kind_of,
    misdirected_page,
    parse_host,
    steer_modes,
)

__all__ = ["STREAM_THRESHOLD", "WritAddon"]

log = logging.getLogger("writ.proxy")

# Bodies above this size (or of unknown size) are streamed, never buffered:
# video must flow through as it arrives.
STREAM_THRESHOLD = 256 * 1024
_STREAMED_TYPES = ("video/", "audio/", "application/octet-stream", "text/event-stream")
# mitmproxy options that must be off (refused at startup if present and on).
_FORBIDDEN_OPTIONS = ("emudhra", "emudhra_old")
_OPTIONS = ("writ_orders", "writ_redis", "writ_policy", "writ_audit_log")


def _options_error(message: str) -> Exception:
    return exceptions.OptionsError(message)  # type: ignore[no-untyped-call]


def _streams(headers: http.Headers) -> bool:
    length = headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > STREAM_THRESHOLD:
        return True
    return str(headers.get("content-type", "")).lower().startswith(_STREAMED_TYPES)


_BODYLESS = frozenset(("GET", "HEAD", "OPTIONS", "DELETE", "TRACE"))


def _upload_streams(headers: http.Headers) -> bool:
    length = headers.get("content-length")
    if length is None:
        return "transfer-encoding" in headers  # chunked: unknown size
    return not length.isdigit() or int(length) > STREAM_THRESHOLD


def _target(req: http.Request) -> str:
    return f"{req.method} {req.pretty_url}"


def _client(conn: Any) -> str:
    peer = getattr(conn, "peername", None)
    return str(peer[0]) if peer else ""


Hooked = TypeVar("Hooked", http.HTTPFlow, tls.ClientHelloData)


def _fails_closed(hook: Callable[[WritAddon, Hooked], None]) -> Callable[[WritAddon, Hooked], None]:
    """A bug in a judging hook must not let the connection through unjudged
    (mitmproxy logs an addon's exception and carries on): it is answered as
    the policy's fail mode says, logged, and recorded as an `error` decision."""

    @functools.wraps(hook)
    def guarded(self: WritAddon, obj: Hooked) -> None:
        try:
            hook(self, obj)
        except Exception:  # any bug: the fail mode decides, not mitmproxy
            log.exception("writ: internal error in %s", hook.__name__)
            self._internal_error(obj)

    return guarded


class WritAddon:
    """Built by writ with (holder, policy, sink, metrics), or by `mitmdump -s`
    with nothing: then the `writ_*` options say where the orders live."""

    def __init__(self, holder: Any = None, policy: Policy | None = None,
                 sink: RecordSink | None = None, metrics: Metrics | None = None,
                 steer: dict[str, SteerKind] | None = None) -> None:
        self.holder = holder  # a BlocklistHolder: `.index` read per request
        self.steer = steer or {}  # mode spec -> kind of the steer listeners (writ.proxy.steer)
        # Where steered TLS goes on the host named by SNI: 443 (tests use a free port).
        self.steer_tls_port = DEFAULT_PORT[SteerKind.TLS]
        self.policy = policy or Policy()
        self.metrics = metrics or Metrics()
        self.recorder = Recorder(sink, log_allowed=self.policy.audit.log_allowed,
                                 metrics=self.metrics)
        self._given = holder is not None  # built by writ: ignore the writ_* options
        self._refused: set[str] = set()  # client connection ids whose TLS we refuse
        self._own_log: Any = None  # the AuditLog opened under `mitmdump -s`
        self._store: Any = None  # the store keeping the holder current under `mitmdump -s`
        # How a destination name becomes addresses (writ.proxy.destination); tests swap it.
        self.resolve: Resolve = system_resolve

    # -- configuration -----------------------------------------------------

    def load(self, loader: Any) -> None:
        loader.add_option("writ_orders", str | None, None, "writ: folder of court orders")
        loader.add_option("writ_redis", str | None, None, "writ: Redis URL of the blocklist")
        loader.add_option("writ_policy", str | None, None, "writ: enforcement policy YAML")
        loader.add_option("writ_audit_log", str | None, None,
                          "writ: decision log path (default: the policy's)")

    def configure(self, updated: set[str]) -> None:
        for name in _FORBIDDEN_OPTIONS:
            if hasattr(ctx.options, name) and getattr(ctx.options, name):
                raise _options_error(
                    f"{name}: writ refuses to run with this option on; turn it off")
        if self._given or not (updated & set(_OPTIONS)):
            return
        self._configure_standalone()

    def _configure_standalone(self) -> None:
        from writ.proxy import standalone

        o = ctx.options
        if not o.writ_orders and not o.writ_redis:
            # Not an OptionsError: mitmproxy rolls options back to these defaults
            # after a failed update and expects them to configure cleanly. At
            # startup mitmdump's ErrorCheck turns this ERROR into an exit.
            log.error("writ: set writ_orders or writ_redis; until then every request "
                      "is refused (fail closed)")
            self.holder = None
            return
        if o.writ_orders and o.writ_redis:
            raise _options_error("writ_orders, writ_redis: give only one of them")
        try:
            policy = standalone.load_policy_file(o.writ_policy)
        except Exception as e:  # noqa: BLE001 - any failure is a startup error naming the option
            raise _options_error(f"writ_policy: {e}") from None
        try:
            holder = standalone.open_holder_for(o.writ_orders, o.writ_redis, policy)
        except Exception as e:  # noqa: BLE001 - as above
            which = "writ_orders" if o.writ_orders else "writ_redis"
            raise _options_error(f"{which}: {e}") from None
        try:
            log_ = standalone.open_audit_log(o.writ_audit_log, policy, o.writ_redis)
        except Exception as e:  # noqa: BLE001 - as above
            raise _options_error(f"writ_audit_log: {e}") from None
        if self._own_log is not None:
            self._own_log.close()
        self.holder, self.policy, self._own_log = holder, policy, log_
        self.recorder = Recorder(log_, log_allowed=policy.audit.log_allowed, metrics=self.metrics)
        self._open_steer_listeners(policy)
        # A million rules are a million long-lived objects: keep the cyclic GC
        # from walking them again and again (it would stall requests).
        gc.freeze()

    def _open_steer_listeners(self, policy: Policy) -> None:
        """Under `mitmdump -s`: the policy's steer listeners join mitmdump's own
        modes, as `writ proxy` opens them (set before the servers start, so a
        taken address stops mitmdump at startup like any listener of its own)."""
        steer = steer_modes(policy.proxy.steer_http, policy.proxy.steer_tls)
        if steer == self.steer:
            return
        modes = [m for m in ctx.options.mode if m not in self.steer]
        self.steer = steer
        # Steered hosts are reached per request (lazy) under the Host they asked for.
        extra = {"keep_host_header": True, "connection_strategy": "lazy"} if steer else {}
        options: Any = ctx.options  # mitmproxy's OptionsManager is untyped
        options.update(mode=[*modes, *steer], **extra)

    async def running(self) -> None:
        """Under `mitmdump -s`: follow the folder or the Redis replica from now on
        (configure() loaded the blocklist once, so a bad one fails at startup)."""
        if self._given or self.holder is None or self._store is not None:
            return
        from writ.proxy import standalone

        o = ctx.options
        self._store = await standalone.follow(self.holder, o.writ_orders, o.writ_redis,
                                              self.policy)
        if self.steer:
            # mitmproxy 12 brings its servers up before a -s script is configured:
            # start the steer listeners now (a no-op where they already run).
            addons: Any = ctx.master.addons
            ps = addons.get("proxyserver")
            if ps is not None and not await ps.setup_servers():
                log.error("writ: a steer listener (proxy.steer_http/steer_tls) did not start")

    async def done(self) -> None:
        if self._store is not None:
            await self._store.stop()
            self._store = None
        if self._own_log is not None:  # only a log this addon opened; writ closes its own
            self._own_log.close()
            self._own_log = None

    # -- recording ---------------------------------------------------------

    def _record(self, client: str, target: str | Callable[[], str], decision: str,
                action: str, *, d: Decision | None = None, version: str | None = None) -> None:
        orders: Sequence[str] = d.orders if d is not None else ()
        self.recorder.decided(Component.HTTP, client, target, Outcome(decision), Action(action),
                              orders, d.rule if d is not None else None, version)

    def _index(self) -> Index | None:
        return self.holder.index if self.holder is not None else None

    @staticmethod
    def _answer(flow: http.HTTPFlow, page: Page) -> None:
        resp = http.Response.make(page.status, page.body, dict(page.headers))
        resp.reason = page.reason  # mitmproxy 11 leaves the reason phrase empty
        flow.response = resp

    # -- HTTP --------------------------------------------------------------

    @_fails_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return  # already answered (by http_connect or another addon)
        kind = kind_of(self.steer, flow.client_conn)
        if kind is not None:
            self._steered_request(flow, kind)
            return
        req = flow.request
        index = self._index()
        if index is None:
            self._no_blocklist(flow, _client(flow.client_conn), _target(req),
                               req.headers.get("accept"))
            return
        sni = flow.client_conn.sni if flow.client_conn.tls else None
        names = (authority_of(req.host), req.host_header, sni)
        try:
            d = judge_request(index, names, req.path)
        except CanonError as e:
            target = _target(req)
            log.info("writ.http.bad_request %s: %s", target[:200], e)
            self._answer(flow, bad_request_page(str(e), req.headers.get("accept")))
            self._record(_client(flow.client_conn), target, "invalid", "400",
                         version=index.version)
            return
        if d.decision is Verdict.BLOCK:
            self._block(flow, d, index)
            return
        if req.method not in _BODYLESS and _upload_streams(req.headers):
            req.stream = True  # large upload: forward as it arrives
        # The common case stays cheap: no target string unless it is recorded.
        self._record(_client(flow.client_conn), lambda: _target(req), "allow", "pass", d=d,
                     version=index.version)

    def _block(self, flow: http.HTTPFlow, d: Decision, index: Index) -> None:
        """451 with the block page for the request's URL, and its record."""
        req = flow.request
        self._answer(flow, blocked_page(d, index.acts, self.policy, req.pretty_url,
                                        accept=req.headers.get("accept"),
                                        blocklist_version=index.version))
        self._record(_client(flow.client_conn), _target(req), "block", "451", d=d,
                     version=index.version)

    def _internal_error(self, obj: http.HTTPFlow | tls.ClientHelloData) -> None:
        opened = self.policy.fail is FailMode.OPEN
        # The answer first, the record after: the recording may be what failed.
        if isinstance(obj, http.HTTPFlow):
            if not opened:
                self._answer(obj, unavailable_page(
                    "writ could not judge this request (an internal error, logged); "
                    "it fails closed.", obj.request.headers.get("accept")))
        elif opened:
            obj.ignore_connection = True
        else:
            self._refuse_handshake(obj)
        with contextlib.suppress(Exception):
            if isinstance(obj, http.HTTPFlow):
                client, target = _client(obj.client_conn), _target(obj.request)
                action = "pass" if opened else "503"
            else:
                client, target = _client(obj.context.client), f"TLS {obj.client_hello.sni or ''}"
                action = "pass" if opened else "tls-refused"
            self._record(client, target, "error", action)

    def _no_blocklist(self, flow: http.HTTPFlow, client: str, target: str,
                      accept: str | None) -> None:
        if self.policy.fail is FailMode.OPEN:
            self._record(client, target, "no-blocklist", "pass", d=None, version=None)
            return
        self._answer(flow, unavailable_page("No blocklist is loaded yet; writ fails closed.",
                                            accept))
        self._record(client, target, "no-blocklist", "503", d=None, version=None)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None and _streams(flow.response.headers):
            flow.response.stream = True

    # -- steered HTTP (writ.proxy.steer) -----------------------------------

    def _steered_request(self, flow: http.HTTPFlow, kind: SteerKind) -> None:
        req, conn = flow.request, flow.client_conn
        tls = bool(conn.tls)
        scheme = "https" if tls else "http"
        target = f"{req.method} {scheme}://{req.host_header or ''}{req.path}"
        index = self._index()
        if index is None:
            # Nothing was steered without a blocklist: no destination to fail open to.
            self._answer(flow, unavailable_page("No blocklist is loaded yet.",
                                                req.headers.get("accept")))
            self._record(_client(conn), target, "no-blocklist", "503")
            return
        if kind is SteerKind.TLS and not tls:
            self._misdirected(flow, target, "This address serves TLS only.", index.version)
            return
        if not req.host_header:
            self._misdirected(flow, target, "The request names no host (no Host header).",
                              index.version)
            return
        sni = conn.sni if tls else None
        default_port = self.steer_tls_port if tls else DEFAULT_PORT[SteerKind.HTTP]
        try:
            host, port = parse_host(req.host_header, default_port)
            steered = judge_names(index, (host,))
            d = judge_request(index, (req.host_header, sni), req.path)
        except CanonError as e:
            log.info("writ.http.bad_request %s: %s", target[:200], e)
            self._answer(flow, bad_request_page(str(e), req.headers.get("accept")))
            self._record(_client(conn), target, "invalid", "400", version=index.version)
            return
        # Point the flow at the named host (the Host header stays as the client sent
        # it); a flow answered below is never sent anywhere.
        host_header = req.host_header
        req.scheme, req.host, req.port = scheme, host, port
        req.host_header = host_header
        if d.decision is Verdict.BLOCK:
            self._block(flow, d, index)
            return
        if steered.decision is not Verdict.URL_RULES:
            self._misdirected(flow, _target(req), f"{host} is not served here.",
                              index.version)
            return
        if req.method not in _BODYLESS and _upload_streams(req.headers):
            req.stream = True
        self._record(_client(conn), _target(req), "allow", "pass", d=d, version=index.version)

    def _misdirected(self, flow: http.HTTPFlow, target: str, message: str,
                     version: str | None = None) -> None:
        self._answer(flow, misdirected_page(message))
        self._record(_client(flow.client_conn), target, NOT_STEERED, "421", version=version)

    def _steered_tls(self, data: tls.ClientHelloData, kind: SteerKind, sni: str | None) -> None:
        client = _client(data.context.client)
        target = f"TLS {authority_of(sni or '')}"
        index = self._index()
        version = index.version if index is not None else None
        if kind is not SteerKind.TLS or not sni:
            # TLS on the HTTP address, or no SNI: no host to steer to.
            self._refuse(data, client, target, NOT_STEERED, version=version)
            return
        if index is None:
            self._refuse(data, client, target, "no-blocklist")
            return
        try:
            d = judge_names(index, (sni,))
        except CanonError:
            self._refuse(data, client, target, "invalid", version=version)
            return
        if d.decision is Verdict.BLOCK:
            self._refuse(data, client, target, "tls-refused", d=d, version=version)
            return
        if d.decision is not Verdict.URL_RULES:
            self._refuse(data, client, target, NOT_STEERED, version=version)
            return
        data.context.server.address = (sni, self.steer_tls_port)
        if self.policy.proxy.tls is TlsMode.INTERCEPT:
            return  # requestheaders judges each URL inside TLS (_steered_request)
        data.ignore_connection = True
        self._record(client, target, "unenforceable", "pass", d=d, version=version)

    # -- CONNECT and TLS ---------------------------------------------------

    @_fails_closed
    def http_connect(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        target = f"CONNECT {authority_of(req.host)}:{req.port}"
        client = _client(flow.client_conn)
        accept = req.headers.get("accept")
        index = self._index()
        if index is None:
            self._no_blocklist(flow, client, target, accept)
            return
        try:
            d = judge_names(index, (req.host,))
        except CanonError as e:
            self._answer(flow, bad_request_page(str(e), accept))
            self._record(client, target, "invalid", "400", d=None, version=index.version)
            return
        if d.decision is Verdict.BLOCK:
            self._answer(flow, blocked_page(d, index.acts, self.policy, req.host,
                                            accept=accept, blocklist_version=index.version))
            self._record(client, target, "block", "451", d=d, version=index.version)
        elif d.decision is Verdict.ALLOW:
            self._record(client, target, "allow", "pass", d=d, version=index.version)
        # url-rules: the TLS hook (or the requests inside a plain tunnel) decide.

    @_fails_closed
    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        conn = data.context.client
        sni = data.client_hello.sni
        kind = kind_of(self.steer, conn)
        if kind is not None:
            self._steered_tls(data, kind, sni)
            return
        address = data.context.server.address
        dest = address[0] if address else None
        target = f"TLS {authority_of(sni or dest or '')}"
        client = _client(conn)
        index = self._index()
        if index is None:
            if self.policy.fail is FailMode.OPEN:
                data.ignore_connection = True
                self._record(client, target, "no-blocklist", "pass", d=None, version=None)
            else:
                self._refuse(data, client, target, "no-blocklist", d=None, version=None)
            return
        try:
            d = judge_names(index, (sni, dest))
        except CanonError:
            self._refuse(data, client, target, "invalid", d=None, version=index.version)
            return
        if d.decision is Verdict.BLOCK:
            self._refuse(data, client, target, "tls-refused", d=d, version=index.version)
        elif d.decision is Verdict.URL_RULES:
            if self.policy.proxy.tls is TlsMode.INTERCEPT:
                return  # intercepted: requestheaders applies the URL rules inside TLS
            data.ignore_connection = True
            self._record(client, target, "unenforceable", "pass", d=d, version=index.version)
        else:
            data.ignore_connection = True
            self._record(client, target, "allow", "pass", d=d, version=index.version)

    def _refuse(self, data: tls.ClientHelloData, client: str, target: str, decision: str,
                *, d: Decision | None = None, version: str | None = None) -> None:
        self._refuse_handshake(data)
        self._record(client, target, decision, "tls-refused", d=d, version=version)

    def _refuse_handshake(self, data: tls.ClientHelloData) -> None:
        # Never dial the upstream for a refused name; tls_start_client fails the handshake.
        data.establish_server_tls_first = False
        self._refused.add(data.context.client.id)

    def tls_start_client(self, data: tls.TlsData) -> None:
        if data.context.client.id not in self._refused:
            return
        self._refused.discard(data.context.client.id)
        # A server context without a certificate cannot complete any handshake:
        # the client gets a TLS alert and the connection closes, whichever
        # order the addons run in (mitmproxy's tlsconfig skips a set ssl_conn).
        conn = SSL.Connection(SSL.Context(SSL.TLS_SERVER_METHOD))
        conn.set_accept_state()
        data.ssl_conn = conn

    def client_disconnected(self, client: connection.Client) -> None:
        self._refused.discard(client.id)  # closed before its handshake began

    # -- the destination address (writ.proxy.destination) -------------------

    async def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """Never open a connection to an address an ip/ip_prefix order blocks."""
        index = self._index()
        address = data.server.address
        if index is None or not index.ip_count or not address:
            return
        host, port = str(address[0]), int(address[1])
        try:
            got = await destination_decision(index, host, port, self.resolve)
        except Exception:  # a bug: the fail mode decides, as in the other hooks
            log.exception("writ: internal error in server_connect")
            if self.policy.fail is not FailMode.OPEN:
                data.server.error = "writ could not judge the destination (fails closed)"
            return
        if got is None:
            return
        d, blocked = got
        data.server.error = (f"destination {blocked} blocked by court order "
                             f"{', '.join(d.orders)} ({d.rule})")
        self._record(_client(data.client), f"connect {authority_of(host)}:{port} ({blocked})",
                     "block", "refused", d=d, version=index.version)
