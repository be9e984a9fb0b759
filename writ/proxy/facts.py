"""What a hook sees, read for judging and recording (docs/design.md §4 HTTP).

Small pure readers of mitmproxy objects: whether a message has or streams a
body, why a request cannot be read, how a record shows an authority and a
client; and `fails_closed`, the guard on every judging hook. No decisions
here (judge.py), no answers (addon.py).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from mitmproxy import http, tls
from mitmproxy.net.http.http1 import expected_http_body_size
from mitmproxy.proxy import layer

from writ.blocklist import CanonError
from writ.proxy.judge import host_of

__all__ = ["JUDGED", "STREAM_THRESHOLD", "client_of", "fails_closed", "has_body", "shown",
           "streams", "unreadable"]

log = logging.getLogger("writ.proxy")

JUDGED = "writ.judged"  # flow.metadata: a decision was recorded for this request

# Bodies above this size (or of unknown size) are streamed, never buffered.
STREAM_THRESHOLD = 256 * 1024
_STREAMED_TYPES = ("video/", "audio/", "application/octet-stream", "text/event-stream")


def streams(headers: http.Headers) -> bool:
    length = headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > STREAM_THRESHOLD:
        return True
    return str(headers.get("content-type", "")).lower().startswith(_STREAMED_TYPES)


def has_body(headers: http.Headers) -> bool:
    length = headers.get("content-length")
    return "transfer-encoding" in headers or (length is not None and length.strip() != "0")


def shown(authority: str) -> str:
    """An authority as records show it: the canonical host, the port if given."""
    try:
        host = host_of(authority)
    except CanonError:
        return authority.lower()[:200]
    if authority.startswith("["):
        port = authority.partition("]")[2].lstrip(":")
    elif authority.count(":") == 1:
        port = authority.partition(":")[2]
    else:
        port = ""
    return f"{host}:{port}" if port else host


def client_of(conn: Any) -> str:
    peer = getattr(conn, "peername", None)
    return str(peer[0]) if peer else ""


def unreadable(req: http.Request) -> str | None:
    """Why mitmproxy would forward a request writ cannot read, if it would."""
    if any(b"\n" in v for _, v in req.headers.fields):
        return "a folded header line (obs-fold, RFC 9112 §5.2) is not accepted"
    try:
        expected_http_body_size(req)
    except ValueError as e:
        return str(e)
    return None


Hooked = TypeVar("Hooked", http.HTTPFlow, tls.ClientHelloData, layer.NextLayer)


def fails_closed(hook: Callable[[Any, Hooked], None]) -> Callable[[Any, Hooked], None]:
    """A bug in a judging hook must not let the connection through unjudged
    (mitmproxy logs an addon's exception and carries on): the policy's fail
    mode answers, and it is logged and recorded as an `error` decision."""

    @functools.wraps(hook)
    def guarded(self: Any, obj: Hooked) -> None:
        try:
            hook(self, obj)
        except Exception:  # any bug: the fail mode decides, not mitmproxy
            log.exception("writ: internal error in %s", hook.__name__)
            self.core.internal_error(obj)

    return guarded
