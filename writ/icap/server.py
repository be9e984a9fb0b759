"""The asyncio ICAP server: bytes into writ.icap.protocol, its answers out.

An `asyncio.Protocol` per ICAP connection: the parser's events are handled
as the bytes arrive, in `data_received`, so the common case (a head in, a
`204` out) costs no task, no future and no timer. Connections are persistent
(Squid keeps a pool). Every REQMOD is judged by writ.icap.verdict (the
proxy's `judge`) and recorded like the proxy's decisions: component `http`,
the client address Squid forwards in `X-Client-IP` (pseudonymised by the
audit log), counted in the metrics always, written unless it is an allow the
policy does not log.

Invariants:
- Never a crash: a framing error is answered with its ICAP status and the
  connection closed; a bug while judging answers as the policy's fail mode
  says (503 page, or 204 when failing open) and is recorded as `error`; a
  bug anywhere else closes that one connection, logged.
- Bounded: at most `icap.max_connections` connections (more are answered
  `503 Service Overloaded` and closed); a connection that sends nothing for
  `icap.idle_timeout` seconds is closed; heads are bounded by the protocol
  module; an echoed body stops being read while the client does not read
  (transport flow control), so nothing piles up.
- Bodies never cross for a verdict: OPTIONS asks for `Preview: 0`, so the
  answer (204, or the 451) comes after the head; `100 Continue` is never
  sent. Without a preview and without `Allow: 204`, an allowed request goes
  back unchanged, its body passed through chunk by chunk as it arrives.
- ISTag changes whenever the holder's index does (a new version, or a fold
  at an order's `effective`/`expires`), so a client drops cached answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, cast

from writ.audit import Action, Component, Outcome, Recorder, RecordSink
from writ.blocklist import Index
from writ.endpoints import split_hostport
from writ.icap import protocol as p
from writ.icap.verdict import Judged, judge_icap, page_for
from writ.metrics import Metrics
from writ.policies import FailMode, Policy
from writ.proxy.judge import Ruling

__all__ = ["IcapServer", "run_icap"]

log = logging.getLogger("writ.icap")


class _Tag:
    """The ISTag of the current index: a new one for every new index object."""

    def __init__(self) -> None:
        self._index: Index | None = None
        self._generation = 0
        self._boot = os.urandom(4).hex()
        self.value = self._make("none")

    def _make(self, version: str) -> str:
        digest = hashlib.sha256(f"{self._boot}/{self._generation}/{version}".encode())
        return f'"writ-{digest.hexdigest()[:24]}"'  # RFC 3507 §4.7: at most 32 bytes

    def of(self, index: Index | None) -> str:
        if index is not self._index:
            self._index = index
            self._generation += 1
            self.value = self._make(index.version if index is not None else "none")
        return self.value


@dataclass
class IcapServer:
    holder: Any  # a BlocklistHolder: `.index` read per request
    policy: Policy
    sink: RecordSink | None = None
    metrics: Metrics = field(default_factory=Metrics)
    servers: list[asyncio.Server] = field(default_factory=list)
    connections: set[_Connection] = field(default_factory=set)
    tag: _Tag = field(default_factory=_Tag)
    recorder: Recorder = field(init=False)

    def __post_init__(self) -> None:
        # The one recorder, as for the proxy and the resolver: it counts every
        # decision, filters allows the policy does not log, and queues the rest.
        self.recorder = Recorder(self.sink, log_allowed=self.policy.audit.log_allowed,
                                 metrics=self.metrics)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(str(s.getsockname()[0]), int(s.getsockname()[1]))
                for srv in self.servers for s in srv.sockets]

    async def start(self, listen: str | None = None) -> None:
        host, port = split_hostport(listen or self.policy.icap.listen, 1344)
        loop = asyncio.get_running_loop()
        self.servers.append(await loop.create_server(lambda: _Connection(self), host, port))

    async def shutdown(self) -> None:
        for srv in self.servers:
            srv.close()
        for conn in list(self.connections):
            conn.close()
        for srv in self.servers:
            with contextlib.suppress(Exception):
                await srv.wait_closed()
        self.servers.clear()

    def judge(self, index: Index | None, req: p.IcapRequest) -> Judged:
        try:
            return judge_icap(index, req, self.policy)
        except Exception:  # a bug: the fail mode answers, never open by accident
            log.exception("writ.icap: internal error judging a request")
            action = "pass" if self.policy.fail is FailMode.OPEN else "503"
            return Judged(Ruling("error", action), "HTTP (internal error)", "")

    def record(self, client: str, judged: Judged, index: Index | None) -> None:
        out, d = judged.ruling, judged.ruling.d
        self.recorder.decided(Component.HTTP, client, judged.target, Outcome(out.decision),
                              Action(out.action), d.orders if d is not None else (),
                              d.rule if d is not None else None,
                              index.version if index is not None else None)


class _Connection(asyncio.Protocol):
    """One ICAP connection: the parser's events in, answers out, in order."""

    def __init__(self, server: IcapServer) -> None:
        self.server = server
        self.parser = p.Parser()
        self.transport: asyncio.Transport | None = None
        self.echo = False  # the current request's body goes back chunk by chunk
        self.after_body = b""  # else: what to answer once its body (or preview) is read
        self.last_seen = time.monotonic()
        self.timer: asyncio.TimerHandle | None = None

    # -- asyncio callbacks -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's is no subclass)
        transport = self.transport
        server = self.server
        if len(server.connections) >= server.policy.icap.max_connections:
            transport.write(p.error_response(503, server.tag.value))
            transport.close()
            return
        server.connections.add(self)
        self._arm(server.policy.icap.idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()

    def pause_writing(self) -> None:  # the client is not reading what we echo
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        self.parser.feed(data)
        try:
            while (event := self.parser.next_event()) is not None:
                self._event(event)
        except p.IcapError as e:  # in a head or in a body: answer, then close
            log.info("writ.icap.bad_request from %s: %s", self._peer(), e)
            self._send(p.error_response(e.status, self.server.tag.value))
            self.close()
        except Exception:  # never a crash of the node: this connection only
            log.exception("writ.icap: internal error on a connection")
            self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # -- idle connections ---------------------------------------------------------

    def _arm(self, delay: float) -> None:
        self.timer = asyncio.get_running_loop().call_later(delay, self._idle)

    def _idle(self) -> None:
        # One timer per connection, re-armed for the rest of the time when the
        # connection spoke meanwhile (no timer reset per packet).
        idle = self.server.policy.icap.idle_timeout
        left = self.last_seen + idle - time.monotonic()
        if left > 0:
            self._arm(left)
        else:
            self.close()

    # -- events ---------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _peer(self) -> Any:
        return self.transport.get_extra_info("peername") if self.transport else None

    def _event(self, event: p.IcapRequest | p.Data | p.BodyEnd) -> None:
        if isinstance(event, p.Data):
            if self.echo:
                self._send(p.chunk(event.data))
        elif isinstance(event, p.BodyEnd):
            # The end of the body, or of a preview: its rest never comes (no 100 Continue).
            self.parser.finish()
            self._send(p.last_chunk() if self.echo else self.after_body)
            self.echo, self.after_body = False, b""
        else:
            self._request(event)

    def _request(self, req: p.IcapRequest) -> None:
        server = self.server
        index = server.holder.index if server.holder is not None else None
        istag = server.tag.of(index)
        if req.service != server.policy.icap.service:
            raise p.IcapError(404, f"no ICAP service {req.service[:40]!r}")
        if req.method == "OPTIONS":
            icap = server.policy.icap
            self._send(p.options_response(istag, max_connections=icap.max_connections,
                                          options_ttl=icap.options_ttl))
            return
        judged = server.judge(index, req)
        if judged.ruling.action != "pass":
            accept = req.http.get("accept") if req.http is not None else None
            page = page_for(judged, index, server.policy, accept)
            self._answer(req, p.http_response(istag, page.status, page.reason, page.headers,
                                              page.body))
        elif req.allow_204 or req.preview is not None or req.http is None:
            # RFC 3507 §4.6: 204 with `Allow: 204` or after a preview.
            # (An unreadable head passes only failing open, and gets a 204.)
            self._answer(req, p.no_content_response(istag))
        else:  # the request goes back unchanged, its body (if any) as it comes
            self._send(p.unchanged_response(istag, req.http, req.has_body))
            self.echo = req.has_body
        # X-Client-IP is what the ICAP client says (a trusted Squid): kept short.
        server.record(req.headers.get("x-client-ip", "")[:64], judged, index)

    def _answer(self, req: p.IcapRequest, answer: bytes) -> None:
        """Now, or once the body (or preview) the client is sending has been read."""
        if req.has_body:
            self.after_body = answer
        else:
            self._send(answer)


async def run_icap(holder: Any, policy: Policy, sink: RecordSink | None, *,
                   metrics: Metrics | None = None, listen: str | None = None) -> IcapServer:
    """Start the ICAP server; raises OSError if the address cannot be bound."""
    server = IcapServer(holder, policy, sink, metrics or Metrics())
    await server.start(listen)
    return server
