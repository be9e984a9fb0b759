"""The steer listeners' hooks (writ.proxy.steer, docs/operator.md §4).

DNS-steered clients land here without knowing about a proxy: origin-form
HTTP with a Host header, or TLS with SNI. The verdict is `judge.judge`, as
for every other request; what is added is the steer rule: a request goes on
only to a host that has URL rules (the hosts DNS steers), named by Host or
SNI; anything else is answered 421 / refused and recorded `not-steered`.
Answers and records go through the main addon (`core`), one place for both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from mitmproxy import http, tls

from writ.blocklist import CanonError, Index, Verdict
from writ.blockpage import Page, unavailable_page
from writ.policies import Policy, TlsMode
from writ.proxy.facts import JUDGED, fails_closed, shown, unreadable
from writ.proxy.judge import Facts, Kind, Ruling, judge_names
from writ.proxy.steer import (
    DEFAULT_PORT,
    NOT_STEERED,
    SteerKind,
    kind_of,
    misdirected_page,
    parse_host,
)

__all__ = ["Core", "SteerAddon"]


class Core(Protocol):
    """What the steer hooks use of the main addon (writ.proxy.addon.WritAddon):
    answers and records go through it, one place for both."""

    steer: dict[str, SteerKind]
    policy: Policy

    def index(self) -> Index | None: ...
    def verdict(self, facts: Facts) -> tuple[Ruling, str | None]: ...
    def record(self, conn: Any, target: str | Callable[[], str], out: Ruling,
               version: str | None) -> None: ...
    def request_target(self, flow: http.HTTPFlow) -> str: ...
    def apply_request(self, flow: http.HTTPFlow, out: Ruling, version: str | None) -> None: ...
    def answer(self, flow: http.HTTPFlow, page: Page) -> None: ...
    def apply_tls(self, data: tls.ClientHelloData, out: Ruling, target: str,
                  version: str | None) -> None: ...


class SteerAddon:
    def __init__(self, core: Core) -> None:
        self.core = core
        # Where steered TLS goes on the host named by SNI: 443 (tests use a free port).
        self.steer_tls_port = DEFAULT_PORT[SteerKind.TLS]

    @fails_closed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        kind = kind_of(self.core.steer, flow.client_conn)
        if kind is not None and flow.response is None:
            self._request(flow, kind)

    def _request(self, flow: http.HTTPFlow, kind: SteerKind) -> None:
        core, req, conn = self.core, flow.request, flow.client_conn
        is_tls = bool(conn.tls)
        if flow.error is not None:  # mitmproxy refuses it itself (400): the record is ours
            flow.metadata[JUDGED] = True
            index = core.index()
            core.record(conn, core.request_target(flow),
                        Ruling("invalid", "400", reason=flow.error.msg),
                        index.version if index is not None else None)
            return
        if core.index() is None:
            # Nothing is steered without a blocklist: no destination to fail open to.
            core.answer(flow, unavailable_page("No blocklist is loaded yet.",
                                               req.headers.get("accept")))
            core.record(conn, core.request_target(flow),
                        Ruling("no-blocklist", "503"), None)
            return
        if kind is SteerKind.TLS and not is_tls:
            self._misdirected(flow, "This address serves TLS only.")
            return
        if not req.host_header:
            self._misdirected(flow, "The request names no host (no Host header).")
            return
        default_port = self.steer_tls_port if is_tls else DEFAULT_PORT[SteerKind.HTTP]
        try:
            host, port = parse_host(req.host_header, default_port)
        except CanonError as e:
            out, version = core.verdict(Facts(Kind.REQUEST, (), invalid=str(e)))
            core.apply_request(flow, out, version)
            return
        # Every name: the Host, an absolute-form target's own authority, the SNI.
        names = (req.host_header, req.authority or None, conn.sni if is_tls else None)
        out, version = core.verdict(Facts(Kind.REQUEST, names, req.path, unreadable(req)))
        # Point the flow at the named host (the Host header stays as the client
        # sent it); a flow answered below is never sent anywhere.
        host_header = req.host_header
        req.scheme, req.host, req.port = "https" if is_tls else "http", host, port
        req.host_header = host_header
        if out.action == "pass" and not self._steerable(host):
            self._misdirected(flow, f"{host} is not served here.")
            return
        core.apply_request(flow, out, version)

    def _steerable(self, host: str) -> bool:
        index = self.core.index()
        try:
            return index is not None and \
                judge_names(index, (host,)).decision is Verdict.URL_RULES
        except CanonError:
            return False

    def _misdirected(self, flow: http.HTTPFlow, message: str) -> None:
        index = self.core.index()
        self.core.answer(flow, misdirected_page(message))
        self.core.record(flow.client_conn, self.core.request_target(flow),
                         Ruling(NOT_STEERED, "421"),
                         index.version if index is not None else None)

    @fails_closed
    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        kind = kind_of(self.core.steer, data.context.client)
        if kind is not None:
            self._tls(data, kind, data.client_hello.sni)

    def _tls(self, data: tls.ClientHelloData, kind: SteerKind, sni: str | None) -> None:
        core = self.core
        target = f"TLS {shown(sni) if sni else ''}"
        if kind is not SteerKind.TLS or not sni:
            # TLS on the HTTP address, or no SNI: no host to steer to.
            index = core.index()
            core.apply_tls(data, Ruling(NOT_STEERED, "tls-refused"), target,
                           index.version if index is not None else None)
            return
        out, version = core.verdict(Facts(Kind.TLS, (sni,)))
        if out.action in ("pass", "intercept") and out.decision != "no-blocklist" \
                and not self._steerable(sni):
            out = Ruling(NOT_STEERED, "tls-refused")
        elif out.decision == "no-blocklist":
            out = Ruling("no-blocklist", "tls-refused")  # no destination to fail open to
        if out.action in ("pass", "intercept"):
            data.context.server.address = (sni, self.steer_tls_port)
        if out.action == "intercept" and core.policy.proxy.tls is TlsMode.INTERCEPT:
            return  # requestheaders judges each URL inside TLS
        core.apply_tls(data, out, target, version)
