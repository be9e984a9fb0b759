"""writ.icap.protocol as a specification: bytes in, events out; answers as bytes.

Pure: no sockets. Previews and `ieof`, chunked bodies split anywhere,
persistent connections, and every malformed request → an IcapError with the
status to answer, never another exception.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from writ.icap import protocol as p

GET = b"GET http://a.example/x?y=1 HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n"
POST = b"POST http://a.example/up HTTP/1.1\r\nHost: a.example\r\nContent-Length: 11\r\n\r\n"


def reqmod(http: bytes, body: bytes | None = None, *, preview: int | None = None,
           extra: bytes = b"Allow: 204\r\n") -> bytes:
    section = b"req-body" if body is not None else b"null-body"
    head = (b"REQMOD icap://127.0.0.1:1344/writ ICAP/1.0\r\nHost: 127.0.0.1\r\n"
            b"X-Client-IP: 10.0.0.7\r\n" + extra
            + (b"Preview: %d\r\n" % preview if preview is not None else b"")
            + b"Encapsulated: req-hdr=0, " + section + b"=%d\r\n\r\n" % len(http))
    return head + http + (body or b"")


def events(data: bytes, parser: p.Parser | None = None, step: int = 0) -> list[object]:
    """Every event `data` yields, fed whole or `step` bytes at a time."""
    parser = parser or p.Parser()
    out: list[object] = []
    pieces = [data] if not step else [data[i:i + step] for i in range(0, len(data), step)]
    for piece in pieces:
        parser.feed(piece)
        while (ev := parser.next_event()) is not None:
            out.append(ev)
    return out


def merged(evs: list[object]) -> list[object]:
    """Adjacent Data events joined (how bytes arrive does not change the body)."""
    out: list[object] = []
    for ev in evs:
        if isinstance(ev, p.Data) and out and isinstance(out[-1], p.Data):
            out[-1] = p.Data(out[-1].data + ev.data)
        else:
            out.append(ev)
    return out


def test_options() -> None:
    (req,) = events(b"OPTIONS icap://127.0.0.1:1344/writ ICAP/1.0\r\nHost: x\r\n\r\n")
    assert isinstance(req, p.IcapRequest)
    assert (req.method, req.service, req.http) == ("OPTIONS", "writ", None)


def test_reqmod_without_body_reads_the_http_head() -> None:
    (req,) = events(reqmod(GET))
    assert isinstance(req, p.IcapRequest)
    assert req.http is not None
    assert (req.http.method, req.http.target, req.http.get("host")) == \
        ("GET", "http://a.example/x?y=1", "a.example")
    assert req.http.raw == GET
    assert req.allow_204
    assert not req.has_body
    assert req.preview is None
    assert req.headers["x-client-ip"] == "10.0.0.7"


def test_allow_204_is_read_from_a_list() -> None:
    (req,) = events(reqmod(GET, extra=b"Allow: trailers, 204\r\n"))
    assert isinstance(req, p.IcapRequest)
    assert req.allow_204
    (req,) = events(reqmod(GET, extra=b""))
    assert isinstance(req, p.IcapRequest)
    assert not req.allow_204


def test_a_whole_body_without_preview() -> None:
    body = b"5\r\nhello\r\n6; name=v\r\n world\r\n0\r\n\r\n"
    req, *rest = merged(events(reqmod(POST, body)))
    assert isinstance(req, p.IcapRequest)
    assert req.has_body
    assert req.preview is None
    assert rest == [p.Data(b"hello world"), p.BodyEnd(ieof=False)]


def test_preview_zero_with_ieof_holds_the_whole_body() -> None:
    req, end = events(reqmod(POST, b"0; ieof\r\n\r\n", preview=0))
    assert isinstance(req, p.IcapRequest)
    assert req.preview == 0
    assert end == p.BodyEnd(ieof=True)
    (again,) = events(reqmod(GET), parser=_after([reqmod(POST, b"0; ieof\r\n\r\n", preview=0)]))
    assert isinstance(again, p.IcapRequest)


def _after(messages: list[bytes]) -> p.Parser:
    parser = p.Parser()
    events(b"".join(messages), parser)
    return parser


def test_a_preview_waits_for_the_servers_choice() -> None:
    """RFC 3507 §4.5: after a preview without ieof the client waits for 100
    Continue or a final answer; the parser yields nothing until told which."""
    parser = p.Parser()
    first = reqmod(POST, b"4\r\nhell\r\n0\r\n\r\n", preview=4)
    evs = events(first + b"7\r\no world\r\n0\r\n\r\n", parser)
    assert evs[1:] == [p.Data(b"hell"), p.BodyEnd(ieof=False)]
    assert parser.next_event() is None  # the rest is not read before the choice
    parser.expect_more()  # 100 Continue was sent
    assert merged(events(b"", parser)) == [p.Data(b"o world"), p.BodyEnd(ieof=False)]
    assert parser.idle


def test_after_a_final_answer_to_a_preview_the_next_request_is_read() -> None:
    parser = p.Parser()
    events(reqmod(POST, b"0\r\n\r\n", preview=0), parser)
    parser.finish()  # a 204 or a 451 was sent: the body never comes
    (req,) = events(reqmod(GET), parser)
    assert isinstance(req, p.IcapRequest)
    assert req.http is not None


def test_trailers_after_the_last_chunk_are_skipped() -> None:
    evs = events(reqmod(POST, b"1\r\nx\r\n0\r\nX-T: 1\r\n\r\n") + reqmod(GET))
    assert evs[1:3] == [p.Data(b"x"), p.BodyEnd(ieof=False)]
    assert isinstance(evs[3], p.IcapRequest)


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64])
def test_bytes_may_arrive_in_any_pieces(step: int) -> None:
    stream = (reqmod(POST, b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n") + reqmod(GET)
              + reqmod(POST, b"0; ieof\r\n\r\n", preview=0))
    assert merged(events(stream, step=step)) == merged(events(stream))


def test_an_unreadable_http_head_is_reported_not_raised() -> None:
    (req,) = events(reqmod(b"GET http://a.example/ HTTP/1.1\r\n folded\r\n\r\n"))
    assert isinstance(req, p.IcapRequest)
    assert req.http is None
    assert "obs-fold" in (req.http_error or "")


MALFORMED = [
    (b"garbage\r\n\r\n", 400),
    (b"REQMOD icap://h/writ ICAP/2.0\r\nEncapsulated: null-body=0\r\n\r\n", 505),
    (b"REQMOD icap://h/writ HTTP/1.1\r\nEncapsulated: null-body=0\r\n\r\n", 400),
    (b"RESPMOD icap://h/writ ICAP/1.0\r\nEncapsulated: null-body=0\r\n\r\n", 405),
    (b"GE(T icap://h/writ ICAP/1.0\r\n\r\n", 400),
    (b"REQMOD http://h/writ ICAP/1.0\r\nEncapsulated: req-hdr=0, null-body=4\r\n\r\n", 400),
    (b"REQMOD icap://h/writ ICAP/1.0\r\n\r\n", 400),  # no Encapsulated
    (b"REQMOD icap://h/writ ICAP/1.0\r\nno colon\r\n\r\n", 400),
    (b"REQMOD icap://h/writ ICAP/1.0\r\nEncapsulated: res-hdr=0, null-body=4\r\n\r\n", 400),
    (b"REQMOD icap://h/writ ICAP/1.0\r\nEncapsulated: req-hdr=5, null-body=4\r\n\r\n", 400),
    (b"REQMOD icap://h/writ ICAP/1.0\r\nEncapsulated: req-hdr=0, null-body=0\r\n\r\n", 400),
    (b"REQMOD icap://h/writ ICAP/1.0\r\nEncapsulated: req-hdr=0, null-body=x\r\n\r\n", 400),
    (b"REQMOD icap://h/writ ICAP/1.0\r\nEncapsulated: req-hdr=0\r\n\r\n", 400),
    (b"REQMOD icap://h/writ ICAP/1.0\r\nEncapsulated: req-hdr=0, null-body=99999999\r\n\r\n",
     400),
    (b"REQMOD icap://h/writ ICAP/1.0\r\nPreview: -1\r\n"
     b"Encapsulated: req-hdr=0, null-body=4\r\n\r\n", 400),
    (b"OPTIONS icap://h/writ ICAP/1.0\r\nEncapsulated: opt-body=0\r\n\r\n", 400),
    (reqmod(POST, b"zz\r\nhello\r\n0\r\n\r\n"), 400),  # bad chunk size
    (reqmod(POST, b"5\r\nhelloXX0\r\n\r\n"), 400),  # data not followed by CRLF
    (reqmod(POST, b"5; ieof\r\nhello\r\n0\r\n\r\n", preview=5), 400),  # ieof on data
    (reqmod(POST, b"0; ieof\r\n\r\n"), 400),  # ieof without a preview
    (reqmod(POST, b"1" * 300 + b"\r\n"), 400),  # chunk-size line too long
    (reqmod(POST, b"-1\r\n"), 400),
    (b"REQMOD icap://h/writ ICAP/1.0\r\nX: " + b"a" * p.MAX_HEAD + b"\r\n\r\n", 400),
    (b"REQMOD icap://h/writ ICAP/1.0\r\nX: " + b"a" * (p.MAX_HEAD + 10), 400),  # no end yet
]


@pytest.mark.parametrize(("data", "status"), MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_requests_raise_an_icap_status(data: bytes, status: int) -> None:
    with pytest.raises(p.IcapError) as e:
        events(data)
    assert e.value.status == status


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(1, 50))
def test_any_bytes_give_events_or_an_icap_error(data: bytes, step: int) -> None:
    prefixes = [b"", reqmod(GET)[:60], reqmod(POST, b"")[: len(reqmod(POST, b""))]]
    for prefix in prefixes:
        with contextlib.suppress(p.IcapError):
            events(prefix + data, step=step)


# -- answers -------------------------------------------------------------------


def parse_answer(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, rest = data.partition(b"\r\n\r\n")
    line, *fields = head.decode().split("\r\n")
    return line, {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}, rest


def test_options_answer_names_what_the_service_needs() -> None:
    line, h, rest = parse_answer(p.options_response('"t1"', max_connections=9, options_ttl=30))
    assert line == "ICAP/1.0 200 OK"
    assert rest == b""
    assert h["methods"] == "REQMOD"
    assert h["istag"] == '"t1"'
    assert h["preview"] == "0"
    assert h["max-connections"] == "9"
    assert h["options-ttl"] == "30"
    assert h["transfer-preview"] == "*"
    assert h["allow"] == "204"
    assert h["encapsulated"] == "null-body=0"


def test_an_http_answer_is_framed_by_its_offsets() -> None:
    data = p.http_response('"t"', 451, "Unavailable For Legal Reasons",
                           [("Cache-Control", "no-store")], b"<p>blocked</p>")
    line, h, rest = parse_answer(data)
    assert line == "ICAP/1.0 200 OK"
    assert h["istag"] == '"t"'
    assert h["encapsulated"].startswith("res-hdr=0, res-body=")
    offset = int(h["encapsulated"].rpartition("=")[2])
    http_head, body = rest[:offset], rest[offset:]
    assert http_head.startswith(b"HTTP/1.1 451 Unavailable For Legal Reasons\r\n")
    assert b"Content-Length: 14\r\n" in http_head
    assert http_head.endswith(b"\r\n\r\n")
    assert body == b"e\r\n<p>blocked</p>\r\n0\r\n\r\n"


def test_the_unchanged_request_goes_back_byte_for_byte() -> None:
    (req,) = events(reqmod(GET, extra=b""))
    assert isinstance(req, p.IcapRequest)
    assert req.http is not None
    _line, h, rest = parse_answer(p.unchanged_response('"t"', req.http, False))
    assert h["encapsulated"] == f"req-hdr=0, null-body={len(GET)}"
    assert rest == GET


def test_204_and_errors() -> None:
    assert parse_answer(p.no_content_response('"t"'))[0] == "ICAP/1.0 204 No Content"
    line, h, _ = parse_answer(p.error_response(400, '"t"'))
    assert line == "ICAP/1.0 400 Bad Request"
    assert h["connection"] == "close"
