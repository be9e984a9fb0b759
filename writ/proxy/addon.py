"""The mitmproxy addon enforcing the blocklist over HTTP (docs/design.md §4 HTTP).

Each hook gathers the facts of what it sees, asks `judge.judge` for the
ruling (`verdict`), and applies it: `apply_request` and `apply_tls` turn a
ruling into an answer (a page, a refused handshake) and a record;
`next_layer` does the same for bytes that are neither (a closed connection).
The steer listeners' hooks live in `writ.proxy.steered`, the server
connections' in `writ.proxy.connecting`, the `mitmdump -s`
lifecycle in `writ.mitmdump_node`, the layer-stack work in
`writ.proxy.stack`, the readers of mitmproxy objects in `writ.proxy.facts`.

Invariants:
- Every connection ends in one of: each request judged, each TLS hello
  judged, refused, or relayed raw only to a destination no order touches,
  recorded `raw-tcp` (next_layer).
- Decide in `requestheaders`, before any body is read; a refused request
  with a body is answered at once, never invites an upload (`Expect:
  100-continue`) and never has its body buffered (stack.REFUSE_EARLY).
- The hot path reads `holder.index` once per request: no Redis, no network,
  no lock; cost independent of the blocklist's size.
- Every decision goes through `record` (one call shape): counted in the
  metrics always, written to the sink unless it is an allow the policy does
  not log. Targets name hosts canonically and what went upstream.
- A bug in a hook fails as the policy's fail mode says, never open by accident.
- While ip/ip_prefix orders are in force, a server connection goes to exactly
  the address judged (the server-connection hooks: writ.proxy.connecting).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any

from mitmproxy import connection, ctx, exceptions, http, tls
from mitmproxy.proxy import layer
from mitmproxy.proxy.layers import TCPLayer
from mitmproxy.proxy.mode_specs import UpstreamMode
from OpenSSL import SSL

from writ.audit import Action, Component, Outcome, Recorder, RecordSink
from writ.blocklist import Index
from writ.blockpage import Page, bad_request_page, blocked_page, unavailable_page
from writ.metrics import Metrics
from writ.policies import FailMode, Policy, TlsMode
from writ.proxy import stack
from writ.proxy.connecting import ConnectAddon
from writ.proxy.facts import (
    JUDGED,
    STREAM_THRESHOLD,
    client_of,
    fails_closed,
    has_body,
    shown,
    streams,
    unreadable,
)
from writ.proxy.judge import Facts, Kind, Ruling, authority_of, judge
from writ.proxy.steer import SteerKind, kind_of
from writ.proxy.steered import SteerAddon

__all__ = ["STREAM_THRESHOLD", "WritAddon"]

log = logging.getLogger("writ.proxy")

_FORBIDDEN_OPTIONS = ("emudhra", "emudhra_old")  # refused at startup if on
_BODYLESS = frozenset(("GET", "HEAD", "OPTIONS", "DELETE", "TRACE"))


class WritAddon:
    """Built by writ with (holder, policy, sink, metrics); under `mitmdump -s`
    the lifecycle addon (writ.mitmdump_node) attaches them."""

    def __init__(self, holder: Any = None, policy: Policy | None = None,
                 sink: RecordSink | None = None, metrics: Metrics | None = None,
                 steer: dict[str, SteerKind] | None = None) -> None:
        self.holder = holder  # a BlocklistHolder: `.index` read per request
        self.policy = policy or Policy()
        self.metrics = metrics or Metrics()
        self.recorder = Recorder(sink, log_allowed=self.policy.audit.log_allowed,
                                 metrics=self.metrics)
        self.steer = steer or {}  # mode spec -> kind of the steer listeners
        self.core = self
        self._refused: set[str] = set()  # client connection ids whose TLS we refuse
        self._websocket = True  # mitmproxy's `websocket` option (read in configure)
        self.steered = SteerAddon(self)
        self.connecting = ConnectAddon(self)
        self.addons = [self.steered, self.connecting]  # mitmproxy: one addon per concern

    def attach(self, holder: Any, policy: Policy, sink: RecordSink | None) -> None:
        """What a `mitmdump -s` node hands over once its options are read."""
        self.holder, self.policy = holder, policy
        self.recorder = Recorder(sink, log_allowed=policy.audit.log_allowed,
                                 metrics=self.metrics)

    @property
    def steer_tls_port(self) -> int:
        """Where steered TLS goes on the SNI host: 443 (tests use a free port)."""
        return self.steered.steer_tls_port

    @steer_tls_port.setter
    def steer_tls_port(self, port: int) -> None:
        self.steered.steer_tls_port = port

    # -- the one place rulings are recorded ---------------------------------

    def record(self, conn: Any, target: str | Callable[[], str], out: Ruling,
               version: str | None) -> None:
        """Every ruling goes to the one recorder (it counts, filters allows the
        policy does not log, and queues; raw-tcp relays are always written).
        `target` may be a function: the common allow never builds its string."""
        d = out.d
        self.recorder.decided(Component.HTTP, client_of(conn), target, Outcome(out.decision),
                              Action(out.action), d.orders if d is not None else (),
                              d.rule if d is not None else None, version)

    def index(self) -> Index | None:
        return self.holder.index if self.holder is not None else None

    def verdict(self, facts: Facts) -> tuple[Ruling, str | None]:
        index = self.index()
        out = judge(index, facts, fail_open=self.policy.fail is FailMode.OPEN,
                    intercept=self.policy.proxy.tls is TlsMode.INTERCEPT)
        return out, index.version if index is not None else None

    def configure(self, updated: set[str]) -> None:
        self._websocket = bool(getattr(ctx.options, "websocket", True))
        for name in _FORBIDDEN_OPTIONS:
            if hasattr(ctx.options, name) and getattr(ctx.options, name):
                raise exceptions.OptionsError(  # type: ignore[no-untyped-call]
                    f"{name}: writ refuses to run with this option on; turn it off")

    # -- HTTP ------------------------------------------------------------------

    @fails_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or kind_of(self.steer, flow.client_conn) is not None:
            return  # answered already, or a steer listener's (SteerAddon)
        req, conn = flow.request, flow.client_conn
        # Absolute-form inside a tunnel or transparently: the request names its
        # own authority. It is judged, and it is what goes upstream as Host.
        absolute = req.authority if req.authority and req.method != "CONNECT" else None
        names = (authority_of(req.host), absolute, req.host_header,
                 conn.sni if conn.tls else None)
        invalid = flow.error.msg if flow.error is not None else unreadable(req)
        out, version = self.verdict(Facts(Kind.REQUEST, names, req.path, invalid))
        if absolute is not None and out.action == "pass":
            req.host_header = absolute
            # Origin-form for an origin server; but in `upstream:` mode a plain
            # request goes to the operator's proxy, which needs the absolute
            # form (its authority is the one judged, and Host now agrees).
            if not isinstance(conn.proxy_mode, UpstreamMode):
                req.authority = ""
        if flow.error is None:
            self.apply_request(flow, out, version)
        else:  # mitmproxy answers its own 400: only the record is ours
            flow.metadata[JUDGED] = True
            self.record(conn, self.request_target(flow), out, version)

    def request_target(self, flow: http.HTTPFlow) -> str:
        req = flow.request
        authority = req.host_header or f"{authority_of(req.host)}:{req.port}"
        # (no scheme yet where mitmproxy refused a request before reading it)
        scheme = req.scheme or ("https" if flow.client_conn.tls else "http")
        return f"{req.method} {scheme}://{shown(authority)}{req.path}"

    def apply_request(self, flow: http.HTTPFlow, out: Ruling, version: str | None) -> None:
        """A ruling on a request: its answer (if refused) and its record."""
        flow.metadata[JUDGED] = True
        req = flow.request
        if out.action == "pass" and req.method not in _BODYLESS and has_body(req.headers) \
                and streams(req.headers):
            req.stream = True  # large upload: forward as it arrives
        if out.action != "pass":
            self.answer(flow, self._page(flow, out, version))
        self.record(flow.client_conn, lambda: self.request_target(flow), out, version)

    def _page(self, flow: http.HTTPFlow, out: Ruling, version: str | None) -> Page:
        accept = flow.request.headers.get("accept")
        index = self.index()
        if out.action == "451" and out.d is not None and index is not None:
            return blocked_page(out.d, index.acts, self.policy, flow.request.pretty_url,
                                accept=accept, blocklist_version=version,
                                accept_language=flow.request.headers.get("accept-language"))
        if out.action == "400":
            log.info("writ.http.bad_request %s: %s", flow.request.pretty_url[:200], out.reason)
            return bad_request_page(out.reason, accept)
        if out.decision == "no-blocklist":
            return unavailable_page("No blocklist is loaded yet; writ fails closed.", accept)
        return unavailable_page("writ could not judge this request (an internal error, "
                                "logged); it fails closed.", accept)

    @staticmethod
    def answer(flow: http.HTTPFlow, page: Page) -> None:
        """Answer a request; one with a body at once, before the body is read."""
        resp = http.Response.make(page.status, page.body, dict(page.headers))
        resp.reason = page.reason  # mitmproxy 11 leaves the reason phrase empty
        req = flow.request
        req.headers.pop("expect", None)  # never invite an upload that is refused
        if req.method != "CONNECT" and has_body(req.headers):
            resp.headers["connection"] = "close"
            flow.metadata[stack.REFUSE_EARLY] = True
        flow.response = resp

    @fails_closed
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        resp = flow.response
        if resp is None:
            return
        if resp.status_code == 101 and not self._websocket_upgrade(flow):
            self._upgrade(flow)
        elif streams(resp.headers):
            resp.stream = True

    def _websocket_upgrade(self, flow: http.HTTPFlow) -> bool:
        """What mitmproxy turns into its WebSocket layer (messages, no more requests)."""
        assert flow.response is not None
        return (self._websocket and flow.response.headers.get("upgrade", "").lower() == "websocket"
                and bool(flow.request.headers.get("sec-websocket-version")))

    def _upgrade(self, flow: http.HTTPFlow) -> None:
        """Any other 101 would make the connection a raw relay in which later
        requests, naming any host, are never judged: refused, recorded."""
        req = flow.request
        index = self.index()
        target = f"{req.method} {req.scheme}://{shown(req.host_header or req.host)}{req.path}"
        self.record(flow.client_conn, target, Ruling("unenforceable", "502"),
                    index.version if index is not None else None)
        body = (b"writ: the upstream switched to a protocol other than WebSocket; what "
                b"follows on this connection could not be judged, so it is refused.\n")
        flow.response = http.Response.make(502, body, {"content-type": "text/plain",
                                                       "connection": "close"})
        flow.response.reason = "Bad Gateway"

    # -- CONNECT, TLS, and what a connection starts with --------------------------

    @fails_closed
    def http_connect(self, flow: http.HTTPFlow) -> None:
        req = flow.request
        out, version = self.verdict(Facts(Kind.CONNECT, (authority_of(req.host),)))
        if out.action != "pass":
            self.answer(flow, self._page(flow, out, version))
        if out.decision != "url-rules":  # url-rules: what the tunnel carries is judged
            target = f"CONNECT {shown(authority_of(req.host))}:{req.port}"
            self.record(flow.client_conn, target, out, version)

    @fails_closed
    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        if kind_of(self.steer, data.context.client) is not None:
            return  # a steer listener's (SteerAddon)
        sni = data.client_hello.sni
        address = data.context.server.address
        dest = authority_of(address[0]) if address else None
        out, version = self.verdict(Facts(Kind.TLS, (sni, dest)))
        self.apply_tls(data, out, f"TLS {shown(sni or dest or '')}", version)

    def apply_tls(self, data: tls.ClientHelloData, out: Ruling, target: str,
                  version: str | None) -> None:
        if out.action == "intercept":
            return  # terminated: requestheaders judges each URL inside TLS
        if out.action == "pass":
            data.ignore_connection = True
        else:
            self.refuse_handshake(data)
        self.record(data.context.client, target, out, version)

    @fails_closed
    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        chosen = stack.decided(nextlayer, ctx.master.addons)
        context, address = nextlayer.context, nextlayer.context.server.address
        names = (authority_of(address[0]) if address else None, context.client.sni)
        where = f"{shown(names[0] or '')}:{address[1] if address else ''}"
        unreadable = functools.partial(self.record, context.client, f"HTTP {where}",
                                       Ruling("invalid", "400"), None)
        if not isinstance(chosen, TCPLayer):  # TLS, HTTP: judged by their own hooks
            stack.adopt(chosen, unreadable)  # (HTTP layers learn the early answer)
            return
        data: bytes = nextlayer.data_client()  # type: ignore[no-untyped-call]
        first = stack.classify(data)
        if first == "http":  # blank lines before a request line
            stack.as_http(nextlayer, unreadable)
            return
        target = f"TCP {where}"
        if first == "wait":  # more bytes within stack.WAIT_SECONDS, or closed and recorded
            index = self.index()
            stack.replace(nextlayer, stack.Wait(context, functools.partial(
                self.record, context.client, target,
                Ruling("invalid", "closed", reason="first bytes too slow"),
                index.version if index is not None else None)))
            return
        out, version = self.verdict(Facts(Kind.TCP, names))  # opaque bytes
        self.record(context.client, target, out, version)
        if out.action not in ("raw-tcp", "pass"):
            stack.replace(nextlayer, stack.Close(context))

    def refuse_handshake(self, data: tls.ClientHelloData) -> None:
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

    def internal_error(self, obj: http.HTTPFlow | tls.ClientHelloData | layer.NextLayer) -> None:
        opened = self.policy.fail is FailMode.OPEN
        out = Ruling("error", "pass")
        # The answer first, the record after: the recording may be what failed.
        if isinstance(obj, http.HTTPFlow):
            if not opened:
                out = Ruling("error", "503")
                self.answer(obj, self._page(obj, out, None))
        elif isinstance(obj, tls.ClientHelloData):
            if opened:
                obj.ignore_connection = True
            else:
                out = Ruling("error", "tls-refused")
                self.refuse_handshake(obj)
        elif not opened or obj.layer is None:
            out = Ruling("error", "closed")
            obj.layer = stack.Close(obj.context)
        with contextlib.suppress(Exception):
            if isinstance(obj, http.HTTPFlow):
                self.record(obj.client_conn, self.request_target(obj), out, None)
            else:
                self.record(obj.context.client, "TLS/TCP", out, None)

