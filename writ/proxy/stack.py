"""Where writ steps into mitmproxy's layer stack (docs/design.md §4 HTTP).

Two things the hooks alone cannot do:

- **First bytes.** mitmproxy's NextLayer addon relays a connection as raw TCP
  when its first segment does not look like TLS or HTTP: 1-2 bytes of a
  ClientHello, a request line cut after the method, a leading CRLF. No hook
  would ever judge what follows. `classify` says what such bytes are: wait for
  more (a TLS record header is 5 bytes, an HTTP request line ends in LF)
  under a short timeout (`Wait`: then the connection is closed), HTTP after
  blank lines (RFC 9112 §2.2: ignored), or opaque.
- **Early answers.** mitmproxy reads a request's whole body before it sends
  a response an addon set in `requestheaders`, and answers `Expect:
  100-continue` itself. A refused request with a body (flow.metadata
  REFUSE_EARLY) is answered right after its headers and, for HTTP/1, the
  connection closed: the body is never read nor buffered.

- **Unparseable heads.** mitmproxy answers 400 itself to an HTTP/1 request
  head it cannot parse, before any flow exists: no hook sees it. The HTTP/1
  server connection calls `on_unreadable` then, so that it is recorded.

mitmproxy's own HttpLayer is kept; only its per-request stream and its
HTTP/1 server connection learn these (`adopt` swaps the class of the layer
NextLayer built).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from typing import Any, Literal

from mitmproxy.proxy import commands, events, layer
from mitmproxy.proxy.layers.http import HttpLayer, HTTPMode, HttpStream
from mitmproxy.proxy.layers.http._http1 import Http1Server

__all__ = ["REFUSE_EARLY", "WAIT_SECONDS", "Close", "Wait", "adopt", "as_http", "classify",
           "decided", "replace", "strip_blank_lines"]

REFUSE_EARLY = "writ.refuse_early"  # flow.metadata key set by the addon
_MAX_WAIT = 8192  # bytes a request line may take before it is called opaque
_REQUEST_LINE = re.compile(rb"[A-Za-z]{1,20} \S+ HTTP/\d(\.\d)?\r?")
_METHOD = re.compile(rb"[A-Za-z]{1,20}( \S*( H?T?T?P?/?\d?\.?\d?)?)?")

Commands = Generator[commands.Command, Any, None]


def classify(data: bytes) -> Literal["wait", "http", "opaque"]:
    """What the first bytes of a connection NextLayer called raw TCP are."""
    if len(data) < 3 and data[:1] == b"\x16" and data[1:2] in (b"", b"\x03"):
        return "wait"  # the start of a TLS record header
    body = data.lstrip(b"\r\n")
    end = body.find(b"\n")
    if end < 0:
        if len(data) < _MAX_WAIT and (not body or _METHOD.fullmatch(body)):
            return "wait"  # blank lines, or a request line not ended yet
        return "opaque"
    return "http" if _REQUEST_LINE.fullmatch(body[:end]) else "opaque"


def decided(nextlayer: layer.NextLayer, addons: Any) -> layer.Layer | None:
    """The layer mitmproxy's NextLayer addon chose. Under `mitmdump -s` writ's
    hook runs before it (scripts load first): then it is asked now."""
    if nextlayer.layer is None:
        decider = addons.get("nextlayer")
        if decider is not None:
            decider.next_layer(nextlayer)
    return nextlayer.layer


def replace(nextlayer: layer.NextLayer, new: layer.Layer | None) -> None:
    """Put `new` in place of the layer NextLayer chose (which leaves the stack)."""
    old = nextlayer.layer
    if old is not None and old in nextlayer.context.layers:
        nextlayer.context.layers.remove(old)
    nextlayer.layer = new


def as_http(nextlayer: layer.NextLayer, on_unreadable: Callable[[], None] | None = None) -> None:
    """HTTP after blank lines: the lines dropped, mitmproxy's HTTP layer next."""
    replace(nextlayer, None)
    strip_blank_lines(nextlayer)
    http_layer = HttpLayer(nextlayer.context, HTTPMode.transparent)
    adopt(http_layer, on_unreadable)
    nextlayer.layer = http_layer


def strip_blank_lines(nextlayer: layer.NextLayer) -> None:
    """Drop the blank lines before the first request line from the buffered data."""
    stripping = True
    kept: list[events.Event] = []
    for e in nextlayer.events:
        if (stripping and isinstance(e, events.DataReceived)
                and e.connection == nextlayer.context.client):
            data = e.data.lstrip(b"\r\n")
            if not data:
                continue
            stripping = False
            kept.append(events.DataReceived(e.connection, data))
            continue
        kept.append(e)
    nextlayer.events = kept


WAIT_SECONDS = 10.0  # how long unclassifiable first bytes may wait for more


class Wait(layer.Layer):
    """A connection whose first bytes cannot be classified yet: buffered until
    they can (then mitmproxy's NextLayer decides again, on all of them) or
    until WAIT_SECONDS pass (then closed: fail closed, `on_timeout` records)."""

    def __init__(self, context: Any, on_timeout: Callable[[], None]) -> None:
        super().__init__(context)
        context.layers.remove(self)  # a placeholder, like NextLayer: not in the stack
        self.buffered: list[events.Event] = []
        self.child: layer.Layer | None = None
        self.on_timeout = on_timeout
        self.timer: commands.RequestWakeup | None = None

    def _handle_event(self, event: events.Event) -> Commands:
        if isinstance(event, events.Wakeup) and event.command is self.timer:
            if self.child is None:
                self.on_timeout()
                yield commands.CloseConnection(self.context.client)
            return
        if self.child is not None:
            yield from self.child.handle_event(event)
            return
        self.buffered.append(event)
        if isinstance(event, events.Start):
            self.timer = commands.RequestWakeup(WAIT_SECONDS)
            yield self.timer
        elif isinstance(event, events.ConnectionClosed) and event.connection == self.context.client:
            yield commands.CloseConnection(self.context.client)
        elif isinstance(event, events.DataReceived) and classify(self._data()) != "wait":
            # One event with all the bytes: NextLayer decides on the first data event.
            data = self._data()
            self.child = layer.NextLayer(self.context)
            yield from self.child.handle_event(events.Start())
            yield from self.child.handle_event(events.DataReceived(self.context.client, data))
            self.buffered.clear()

    def _data(self) -> bytes:
        client = self.context.client
        return b"".join(e.data for e in self.buffered
                        if isinstance(e, events.DataReceived) and e.connection == client)


class Close(layer.Layer):
    """A connection refused before any protocol: closed, nothing relayed."""

    def _handle_event(self, event: events.Event) -> Commands:
        if isinstance(event, events.Start):
            yield commands.CloseConnection(self.context.client)


class _Stream(HttpStream):
    def state_wait_for_request_headers(self, event: Any) -> Commands:
        yield from super().state_wait_for_request_headers(event)
        if (self.flow.metadata.get(REFUSE_EARLY)
                and self.client_state == self.state_consume_request_body):
            # Answer now; the body is dropped as it comes, never buffered.
            self.client_state = self.state_drop_body
            yield from self.send_response()
            if not (self.flow.request.is_http2 or self.flow.request.is_http3):
                yield commands.CloseConnection(self.context.client)

    def state_drop_body(self, event: events.Event) -> Commands:
        yield from ()


class _Http1Server(Http1Server):
    on_unreadable: Callable[[], None] | None = None

    def read_headers(self, event: events.ConnectionEvent) -> Commands:
        yield from super().read_headers(event)
        if self.state == self.done and self.request is None and self.on_unreadable:
            self.on_unreadable()  # mitmproxy answered 400 to a head it could not parse


class _HttpLayer(HttpLayer):
    on_unreadable: Callable[[], None] | None = None

    def _handle_event(self, event: events.Event) -> Commands:
        yield from super()._handle_event(event)
        conn: Any = self.connections.get(self.context.client)
        if isinstance(event, events.Start) and type(conn) is Http1Server:
            server: Any = conn  # (a class swap, which mypy does not follow)
            server.__class__ = _Http1Server
            server.on_unreadable = self.on_unreadable
            if server.state.__func__ is Http1Server.read_headers:
                server.state = server.read_headers  # the bound method of the new class

    def make_stream(self, stream_id: int) -> Commands:
        ctx = self.context.fork()
        self.streams[stream_id] = _Stream(ctx, stream_id)
        yield from self.event_to_child(self.streams[stream_id], events.Start())


def adopt(top: layer.Layer | None, on_unreadable: Callable[[], None] | None = None) -> None:
    """Give every HttpLayer in a freshly built stack the early answer, and
    `on_unreadable` to call when mitmproxy answers 400 to an HTTP/1 request
    head it could not parse (no flow exists, so no hook would see it)."""
    seen = 0
    while top is not None and seen < 8:
        if type(top) is HttpLayer:
            top.__class__ = _HttpLayer
        if isinstance(top, _HttpLayer):
            top.on_unreadable = on_unreadable
        top = getattr(top, "child_layer", None)
        seen += 1
