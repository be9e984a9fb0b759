"""ICAP (RFC 3507) as bytes in, events out, and answers as bytes: no I/O.

The asyncio shell (writ.icap.server) feeds what it reads to a `Parser` and
writes what the `*_response` functions return, as h11 does for HTTP.

Only what writ serves is accepted: `OPTIONS` and `REQMOD` on ICAP/1.0. An
ICAP request that cannot be framed raises `IcapError` with the status to
answer (400, 404, 405, 505 …); the shell answers it and closes the
connection, since nothing after a framing error can be trusted.

Invariants:
- Bounded: the ICAP head (`MAX_HEAD`), the encapsulated HTTP head
  (`MAX_HTTP_HEAD`) and a chunk-size line (`MAX_CHUNK_LINE`) are limited;
  body bytes are handed on as they arrive, never buffered whole.
- RFC 3507 §4.4.1: "The Encapsulated header MUST be included in every ICAP
  message"; its offsets must start at 0, increase, and end in one body
  section (`req-body` or `null-body`). REQMOD carries exactly `req-hdr`.
- RFC 3507 §4.5: a preview ends with a zero-length chunk, `0; ieof` when the
  whole body fit in it. After a preview the client waits for `100 Continue`
  (more body follows: call `Parser.expect_more()`) or for a final answer
  (the rest never crosses).
- RFC 3507 §4.6: `204 No Content` only when the client sent `Allow: 204` or
  the answer comes during a preview; otherwise the request goes back whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum, auto
from typing import ClassVar

__all__ = [
    "MAX_CHUNK_LINE",
    "MAX_HEAD",
    "MAX_HTTP_HEAD",
    "BodyEnd",
    "Data",
    "HttpHead",
    "IcapError",
    "IcapRequest",
    "Parser",
    "chunk",
    "continue_response",
    "error_response",
    "http_response",
    "last_chunk",
    "no_content_response",
    "options_response",
    "unchanged_response",
]

MAX_HEAD = 16 * 1024  # the ICAP request line and headers
MAX_HTTP_HEAD = 64 * 1024  # Squid's own request_header_max_size default
MAX_CHUNK_LINE = 256
_HEAD_END = b"\r\n\r\n"
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_FIELD = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\r\n]*"
# Every header line well-formed, checked in one match (the common case);
# only a head that fails it is walked line by line to say which line is bad.
_FIELDS = re.compile(rf"(?:{_FIELD}(?:\r\n{_FIELD})*)?")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_SECTIONS = ("req-hdr", "res-hdr", "req-body", "res-body", "null-body", "opt-body")
_BODIES = frozenset(("req-body", "res-body", "null-body", "opt-body"))
_REASONS = {100: "Continue", 200: "OK", 204: "No Content", 400: "Bad Request",
            404: "ICAP Service Not Found", 405: "Method Not Allowed for Service",
            500: "Server Error", 503: "Service Overloaded",
            505: "ICAP Version Not Supported by Server"}


class IcapError(Exception):
    """An ICAP request writ cannot frame: answer `status`, then close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class HttpHead:
    """The encapsulated HTTP request head, as read (never rewritten)."""

    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    raw: bytes  # exactly the bytes received: what goes back unchanged

    def get(self, name: str) -> str | None:
        """The first header of this name (case-insensitive)."""
        lname = name.lower()
        return next((v for k, v in self.headers if k.lower() == lname), None)

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]


@dataclass(frozen=True, slots=True)
class IcapRequest:
    method: str  # OPTIONS | REQMOD
    uri: str
    service: str  # the path of the URI, without the leading "/" (`writ`)
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    http: HttpHead | None = None  # REQMOD: the HTTP request (None: unreadable)
    http_error: str | None = None  # why the HTTP head could not be read
    has_body: bool = False  # a req-body section follows (chunked)
    preview: int | None = None  # the Preview size, if the client sends one

    @property
    def allow_204(self) -> bool:
        return any(v.strip() == "204" for v in self.headers.get("allow", "").split(","))


@dataclass(frozen=True, slots=True)
class Data:
    """Body bytes of the current request (preview or not), as they arrive."""

    data: bytes


@dataclass(frozen=True, slots=True)
class BodyEnd:
    """A zero-length chunk: the end of a preview or of the whole body."""

    ieof: bool  # `0; ieof`: the preview held the whole body


class _State(Enum):
    HEAD = auto()
    HTTP_HEAD = auto()
    CHUNK_SIZE = auto()
    CHUNK_DATA = auto()
    CHUNK_CRLF = auto()
    TRAILER = auto()
    WAIT = auto()  # after a preview: the shell chooses (expect_more or a final answer)


Event = IcapRequest | Data | BodyEnd


class Parser:
    """Feed bytes with `feed`, take events with `next_event` (None: need more bytes).

    One request at a time on a persistent connection: after the last event
    of one request the next ICAP head is read. Raises IcapError."""

    _steps: ClassVar[dict[_State, Callable[[Parser], Event | None]]]

    def __init__(self) -> None:
        self._buf = bytearray()
        self._state = _State.HEAD
        self._pending: IcapRequest | None = None
        self._http_len = 0
        self._has_body = False
        self._left = 0  # bytes of the current chunk still to come
        self._ieof = False
        self.in_preview = False

    def feed(self, data: bytes) -> None:
        self._buf += data

    @property
    def idle(self) -> bool:
        """Between requests with nothing buffered (a clean place to close)."""
        return self._state is _State.HEAD and not self._buf

    def expect_more(self) -> None:
        """After a preview's BodyEnd(ieof=False): `100 Continue` was sent, the rest follows."""
        if self._state is not _State.WAIT:
            raise RuntimeError("expect_more() outside a preview's end")
        self.in_preview = False
        self._state = _State.CHUNK_SIZE

    def finish(self) -> None:
        """After a preview: a final answer was sent, the rest never comes."""
        if self._state is _State.WAIT:
            self._state = _State.HEAD

    def next_event(self) -> Event | None:
        # Each step consumes what it can; it returns an event, or None having
        # either changed state (go on) or found too few bytes (stop).
        while True:
            state = self._state
            if state is _State.WAIT:
                return None
            event = self._steps[state](self)
            if event is not None or self._state is state:
                return event

    def _chunk_crlf(self) -> None:
        if len(self._buf) < 2:
            return
        if self._buf[:2] != b"\r\n":
            raise IcapError(400, "a chunk's data is not followed by CRLF")
        del self._buf[:2]
        self._state = _State.CHUNK_SIZE

    # -- the ICAP head ---------------------------------------------------------

    def _head(self) -> IcapRequest | None:
        while self._buf[:2] == b"\r\n":  # RFC 9112 §2.2 leniency: blank lines between messages
            del self._buf[:2]
        end = self._buf.find(_HEAD_END)
        if end < 0:
            if len(self._buf) > MAX_HEAD:
                raise IcapError(400, f"ICAP head longer than {MAX_HEAD} bytes")
            return None
        if end > MAX_HEAD:
            raise IcapError(400, f"ICAP head longer than {MAX_HEAD} bytes")
        head = bytes(self._buf[:end])
        del self._buf[: end + 4]
        req = _parse_icap_head(head)
        if req.method == "OPTIONS":
            # An OPTIONS body (opt-body) is not defined for requests: refuse it.
            if "req-body" in req.headers.get("encapsulated", "") or \
                    "opt-body" in req.headers.get("encapsulated", ""):
                raise IcapError(400, "an OPTIONS request with a body")
            return req
        self._http_len, self._has_body = _reqmod_layout(req.headers.get("encapsulated"))
        self._pending = req
        self._state = _State.HTTP_HEAD
        return self._http_head()

    def _http_head(self) -> IcapRequest | None:
        if len(self._buf) < self._http_len:
            return None
        raw = bytes(self._buf[: self._http_len])
        del self._buf[: self._http_len]
        req = self._pending
        assert req is not None
        self._pending = None
        try:
            http, error = _parse_http_head(raw), None
        except ValueError as e:
            http, error = None, str(e)
        preview = req.preview if self._has_body else None
        self.in_preview = preview is not None
        self._state = _State.CHUNK_SIZE if self._has_body else _State.HEAD
        return IcapRequest(req.method, req.uri, req.service, req.headers, http, error,
                           self._has_body, preview)

    # -- chunked body (RFC 9112 §7.1, with ICAP's `ieof` extension) -------------

    def _chunk_size(self) -> BodyEnd | None:
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > MAX_CHUNK_LINE:
                raise IcapError(400, "chunk-size line too long")
            return None
        if end > MAX_CHUNK_LINE:
            raise IcapError(400, "chunk-size line too long")
        line = bytes(self._buf[:end])
        del self._buf[: end + 2]
        size_part, _, ext = line.partition(b";")
        size_part = size_part.strip(b" \t")
        if not _CHUNK_SIZE.fullmatch(size_part):
            raise IcapError(400, f"bad chunk size {line[:40]!r}")
        size = int(size_part, 16)
        ieof = any(e.strip(b" \t").lower() == b"ieof" for e in ext.split(b";")) if ext else False
        if ieof and (size != 0 or not self.in_preview):
            raise IcapError(400, "ieof outside the zero-length chunk of a preview")
        if size:
            self._left = size
            self._state = _State.CHUNK_DATA
            return None
        self._ieof = ieof
        self._state = _State.TRAILER
        return None

    def _chunk_data(self) -> Data | None:
        if not self._buf:
            return None
        n = min(self._left, len(self._buf))
        data = bytes(self._buf[:n])
        del self._buf[:n]
        self._left -= n
        if not self._left:
            self._state = _State.CHUNK_CRLF
        return Data(data)

    def _trailer(self) -> BodyEnd | None:
        # Trailer fields are not used by ICAP; skip any, up to the blank line.
        while True:
            end = self._buf.find(b"\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEAD:
                    raise IcapError(400, "chunked trailer too long")
                return None
            line = bytes(self._buf[:end])
            del self._buf[: end + 2]
            if not line:
                break
        preview_end = self.in_preview and not self._ieof
        self._state = _State.WAIT if preview_end else _State.HEAD
        if not preview_end:
            self.in_preview = False
        return BodyEnd(self._ieof)


Parser._steps = {
    _State.HEAD: Parser._head,
    _State.HTTP_HEAD: Parser._http_head,
    _State.CHUNK_SIZE: Parser._chunk_size,
    _State.CHUNK_DATA: Parser._chunk_data,
    _State.CHUNK_CRLF: Parser._chunk_crlf,
    _State.TRAILER: Parser._trailer,
}


def _parse_icap_head(head: bytes) -> IcapRequest:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover (latin-1 decodes anything)
        raise IcapError(400, "undecodable ICAP head") from None
    line, _, block = text.partition("\r\n")
    fields = block.split("\r\n") if block else []
    parts = line.split(" ")
    if len(parts) != 3:
        raise IcapError(400, f"bad ICAP request line {line[:80]!r}")
    method, uri, version = parts
    if version != "ICAP/1.0":
        raise IcapError(505 if version.startswith("ICAP/") else 400,
                        f"unsupported version {version[:20]!r}")
    if not _TOKEN.fullmatch(method):
        raise IcapError(400, f"bad method {method[:20]!r}")
    if method not in ("OPTIONS", "REQMOD"):
        raise IcapError(405, f"{method[:20]} is not served (REQMOD only)")
    if not uri.lower().startswith("icap://"):
        raise IcapError(400, f"bad ICAP URI {uri[:80]!r}")
    path = uri[7:].partition("/")[2].partition("?")[0]
    if not _FIELDS.fullmatch(block):
        _name_bad_line(fields)
    headers: dict[str, str] = {}
    for f in fields:
        name, _, value = f.partition(":")
        key, value = name.lower(), value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if method == "REQMOD" and "encapsulated" not in headers:
        raise IcapError(400, "no Encapsulated header")
    preview = None
    if "preview" in headers:
        if not headers["preview"].isdigit() or len(headers["preview"]) > 9:
            raise IcapError(400, f"bad Preview {headers['preview'][:20]!r}")
        preview = int(headers["preview"])
    return IcapRequest(method, uri, path, headers, preview=preview)


def _name_bad_line(fields: list[str]) -> None:
    for f in fields:
        name, sep, _ = f.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise IcapError(400, f"bad ICAP header line {f[:80]!r}")


def _reqmod_layout(encapsulated: str | None) -> tuple[int, bool]:
    """(length of the HTTP head, whether a req-body follows) from `Encapsulated`."""
    sections: list[tuple[str, int]] = []
    for item in (encapsulated or "").split(","):
        name, sep, offset = item.strip().partition("=")
        if not sep or name not in _SECTIONS or not offset.isdigit() or len(offset) > 9:
            raise IcapError(400, f"bad Encapsulated {encapsulated!r:.80}")
        sections.append((name, int(offset)))
    names = [n for n, _ in sections]
    if names not in (["req-hdr", "req-body"], ["req-hdr", "null-body"]):
        raise IcapError(400, f"REQMOD needs req-hdr then req-body or null-body, "
                             f"got {', '.join(names)[:80]}")
    (_, start), (body, end) = sections
    if start != 0 or end <= start:
        raise IcapError(400, f"bad Encapsulated offsets {encapsulated!r:.80}")
    if end > MAX_HTTP_HEAD:
        raise IcapError(400, f"encapsulated HTTP head longer than {MAX_HTTP_HEAD} bytes")
    return end, body == "req-body"


def _parse_http_head(raw: bytes) -> HttpHead:
    """Raises ValueError naming what is wrong."""
    if not raw.endswith(_HEAD_END):
        raise ValueError("the encapsulated HTTP head does not end with a blank line")
    text = raw[:-4].decode("latin-1")
    line, _, block = text.partition("\r\n")
    fields = block.split("\r\n") if block else []
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError(f"bad HTTP request line {line[:80]!r}")
    if not _TOKEN.fullmatch(parts[0]) or not parts[1]:
        raise ValueError(f"bad HTTP request line {line[:80]!r}")
    if not _FIELDS.fullmatch(block):
        for f in fields:
            if f[:1] in (" ", "\t"):
                raise ValueError("a folded header line (obs-fold, RFC 9112 §5.2) is not accepted")
            name, sep, _ = f.partition(":")
            if not sep or not _TOKEN.fullmatch(name):
                raise ValueError(f"bad HTTP header line {f[:80]!r}")
    headers = tuple((name, value.strip(" \t"))
                    for name, _, value in (f.partition(":") for f in fields))
    return HttpHead(parts[0], parts[1], parts[2], headers, raw)


# -- answers -------------------------------------------------------------------


def _head(status: int, headers: Iterable[tuple[str, str]]) -> bytes:
    lines = [f"ICAP/1.0 {status} {_REASONS.get(status, 'Error')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def options_response(istag: str, *, max_connections: int, options_ttl: int,
                     service: str = "writ court-order enforcement") -> bytes:
    """RFC 3507 §4.10.2. `Preview: 0`: writ judges a request by its head, so
    no body byte needs to cross; `Transfer-Preview: *` asks that for all."""
    return _head(200, [
        ("Methods", "REQMOD"), ("Service", service), ("ISTag", istag),
        ("Encapsulated", "null-body=0"), ("Max-Connections", str(max_connections)),
        ("Options-TTL", str(options_ttl)), ("Allow", "204"), ("Preview", "0"),
        ("Transfer-Preview", "*"), ("X-Include", "X-Client-IP"),
    ])


def no_content_response(istag: str) -> bytes:
    return _head(204, [("ISTag", istag), ("Encapsulated", "null-body=0")])


def continue_response() -> bytes:
    return b"ICAP/1.0 100 Continue\r\n\r\n"


def error_response(status: int, istag: str) -> bytes:
    return _head(status, [("ISTag", istag), ("Encapsulated", "null-body=0"),
                          ("Connection", "close")])


def http_response(istag: str, status: int, reason: str, headers: Iterable[tuple[str, str]],
                  body: bytes) -> bytes:
    """A REQMOD answered with an HTTP response (RFC 3507 §4.8.3): res-hdr, res-body."""
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    http_head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body:
        encap = f"res-hdr=0, res-body={len(http_head)}"
        return _head(200, [("ISTag", istag), ("Encapsulated", encap)]) + http_head + \
            chunk(body) + last_chunk()
    encap = f"res-hdr=0, null-body={len(http_head)}"
    return _head(200, [("ISTag", istag), ("Encapsulated", encap)]) + http_head


def unchanged_response(istag: str, http: HttpHead, has_body: bool) -> bytes:
    """The request sent back as it came (no `Allow: 204`); the body, if any,
    follows as `chunk()`s and a `last_chunk()`."""
    section = "req-body" if has_body else "null-body"
    encap = f"req-hdr=0, {section}={len(http.raw)}"
    return _head(200, [("ISTag", istag), ("Encapsulated", encap)]) + http.raw


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def last_chunk() -> bytes:
    return b"0\r\n\r\n"
