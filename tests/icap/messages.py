"""ICAP as a client writes and reads it, for the ICAP tests: REQMOD requests
around an HTTP head (and body), and answers split into line, fields and rest."""

from __future__ import annotations

__all__ = ["GET", "POST", "parse_answer", "reqmod"]

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


def parse_answer(data: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, rest = data.partition(b"\r\n\r\n")
    line, *fields = head.decode().split("\r\n")
    return line, {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}, rest
