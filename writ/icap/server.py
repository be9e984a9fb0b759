"""The asyncio ICAP server: reads bytes into writ.icap.protocol, writes its answers.

One task per ICAP connection; connections are persistent (Squid keeps a pool).
Every REQMOD is judged by writ.icap.verdict (the proxy's `judge`) and
recorded like the proxy's decisions: component `http`, the client address
Squid forwards in `X-Client-IP` (pseudonymised by the audit log), counted in
the metrics always, written unless it is an allow the policy does not log.

Invariants:
- Never a crash: a framing error is answered with its ICAP status and the
  connection closed; a bug while judging answers as the policy's fail mode
  says (503 page, or 204 when failing open) and is recorded as `error`.
- Bounded: at most `icap.max_connections` connections (more are answered
  `503 Service Overloaded` and closed); idle connections close after
  `icap.idle_timeout` seconds; heads are bounded by the protocol module.
- Bodies never cross for a verdict: OPTIONS asks for `Preview: 0`, so the
  answer (204, or the 451) comes after the head. Without a preview and
  without `Allow: 204`, an allowed request goes back unchanged, its body
  streamed through chunk by chunk (never buffered whole).
- ISTag changes whenever the holder's index does (a new version, or a fold
  at an order's `effective`/`expires`), so a client drops cached answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from writ.audit import DecisionSink
from writ.blocklist import Index
from writ.endpoints import split_hostport
from writ.icap import protocol as p
from writ.icap.verdict import Judged, judge_icap, page_for
from writ.metrics import Metrics
from writ.policies import FailMode, Policy
from writ.proxy.judge import Outcome

__all__ = ["IcapServer", "run_icap"]

log = logging.getLogger("writ.icap")
_READ = 64 * 1024


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
    sink: DecisionSink | None = None
    metrics: Metrics = field(default_factory=Metrics)
    servers: list[asyncio.Server] = field(default_factory=list)
    connections: set[asyncio.Task[None]] = field(default_factory=set)
    _tag: _Tag = field(default_factory=_Tag)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [(str(s.getsockname()[0]), int(s.getsockname()[1]))
                for srv in self.servers for s in srv.sockets]

    async def start(self, listen: str | None = None) -> None:
        host, port = split_hostport(listen or self.policy.icap.listen, 1344)
        self.servers.append(await asyncio.start_server(self._accept, host, port,
                                                       limit=p.MAX_HTTP_HEAD))

    async def shutdown(self) -> None:
        for srv in self.servers:
            srv.close()
        for task in list(self.connections):
            task.cancel()
        for srv in self.servers:
            with contextlib.suppress(Exception):
                await srv.wait_closed()
        self.servers.clear()

    # -- connections ---------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self.connections) >= self.policy.icap.max_connections:
            writer.write(p.error_response(503, self._tag.value))
            await self._close(writer)
            return
        self.connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # never a crash of the node: log, close this connection
            log.exception("writ.icap: internal error on a connection")
        finally:
            self.connections.discard(task)
            await self._close(writer)

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            writer.close()
            await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parser = p.Parser()
        timeout = self.policy.icap.idle_timeout
        peer = writer.get_extra_info("peername")
        while True:
            try:
                event = parser.next_event()
                if event is None:
                    data = await asyncio.wait_for(reader.read(_READ), timeout)
                    if not data:
                        return
                    parser.feed(data)
                elif isinstance(event, p.IcapRequest):
                    await self._request(event, parser, reader, writer)
                # (Data / BodyEnd outside _request: a body nobody waits for is skipped.)
            except p.IcapError as e:  # in a head or in a body: answer, then close
                log.info("writ.icap.bad_request from %s: %s", peer, e)
                writer.write(p.error_response(e.status, self._tag.value))
                await writer.drain()
                return

    async def _request(self, req: p.IcapRequest, parser: p.Parser,
                       reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.holder.index if self.holder is not None else None
        istag = self._tag.of(index)
        if req.service != self.policy.icap.service:
            writer.write(p.error_response(404, istag))
            await writer.drain()
            raise ConnectionResetError("unknown ICAP service")  # closes the connection
        if req.method == "OPTIONS":
            writer.write(p.options_response(istag, max_connections=self.policy.icap.max_connections,
                                            options_ttl=self.policy.icap.options_ttl))
            await writer.drain()
            return
        judged = self._judge(index, req)
        client = req.headers.get("x-client-ip", "")
        if judged.outcome.action == "pass":
            await self._allow(req, parser, reader, writer, istag)
        else:
            accept = req.http.get("accept") if req.http is not None else None
            page = page_for(judged, index, self.policy, accept)
            await self._skip_body(req, parser, reader)
            writer.write(p.http_response(istag, page.status, page.reason, page.headers,
                                         page.body))
            await writer.drain()
        self.record(client, judged, index)

    def _judge(self, index: Index | None, req: p.IcapRequest) -> Judged:
        try:
            return judge_icap(index, req, self.policy)
        except Exception:  # a bug: the fail mode answers, never open by accident
            log.exception("writ.icap: internal error judging a request")
            action = "pass" if self.policy.fail is FailMode.OPEN else "503"
            return Judged(Outcome("error", action), "HTTP (internal error)", "")

    def record(self, client: str, judged: Judged, index: Index | None) -> None:
        out, d = judged.outcome, judged.outcome.d
        orders = d.orders if d is not None else ()
        self.metrics.count("http", out.decision, out.action, orders)
        if self.sink is None or (out.decision == "allow" and not self.policy.audit.log_allowed):
            return
        self.sink.record(component="http", client=client, target=judged.target,
                         decision=out.decision, action=out.action, orders=orders,
                         rule=d.rule if d is not None else None,
                         blocklist_version=index.version if index is not None else None)

    # -- answers -------------------------------------------------------------------

    async def _allow(self, req: p.IcapRequest, parser: p.Parser, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, istag: str) -> None:
        """RFC 3507 §4.6: 204 with `Allow: 204` or after a preview (the rest of
        the body never crosses); otherwise the request goes back unchanged."""
        if req.has_body and (req.preview is not None or req.allow_204):
            await self._skip_body(req, parser, reader)
            writer.write(p.no_content_response(istag))
        elif req.allow_204 or req.http is None:  # (fail open, unreadable head)
            writer.write(p.no_content_response(istag))
        else:
            assert req.http is not None  # (an unreadable head is never passed)
            writer.write(p.unchanged_response(istag, req.http, req.has_body))
            if req.has_body:
                async for data in self._body(parser, reader):
                    writer.write(p.chunk(data))
                    await writer.drain()
                writer.write(p.last_chunk())
        await writer.drain()

    async def _body(self, parser: p.Parser, reader: asyncio.StreamReader) -> Any:
        """Body bytes up to the next zero-length chunk (a preview's end or the body's)."""
        while True:
            event = parser.next_event()
            if event is None:
                data = await asyncio.wait_for(reader.read(_READ),
                                              self.policy.icap.idle_timeout)
                if not data:
                    raise ConnectionResetError("ICAP client closed mid-body")
                parser.feed(data)
                continue
            if isinstance(event, p.Data):
                yield event.data
            elif isinstance(event, p.BodyEnd):
                return
            else:  # pragma: no cover (the parser yields a head only between requests)
                raise p.IcapError(400, "a new request inside a body")

    async def _skip_body(self, req: p.IcapRequest, parser: p.Parser,
                         reader: asyncio.StreamReader) -> None:
        """A refused request: its preview (or whole body) is read and dropped,
        never echoed; after a preview the rest never comes."""
        if not req.has_body:
            return
        async for _ in self._body(parser, reader):
            pass
        parser.finish()


async def run_icap(holder: Any, policy: Policy, sink: DecisionSink | None, *,
                   metrics: Metrics | None = None, listen: str | None = None) -> IcapServer:
    """Start the ICAP server; raises OSError if the address cannot be bound."""
    server = IcapServer(holder, policy, sink, metrics or Metrics())
    await server.start(listen)
    return server
