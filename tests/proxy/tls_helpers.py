"""Real TLS ClientHellos for hook-level tests, made by Python's ssl module."""

from __future__ import annotations

import contextlib
import ssl

from mitmproxy import connection, tls
from mitmproxy.options import Options
from mitmproxy.proxy.context import Context
from mitmproxy.proxy.layers.tls import parse_client_hello
from mitmproxy.test import tflow


def client_hello_bytes(sni: str | None) -> bytes:
    """The first TLS record a client sends, with `sni` (None: no SNI extension)."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def hello(sni: str | None, dest: str | None = None) -> tls.ClientHelloData:
    """ClientHelloData as mitmproxy builds it: SNI, and the server address
    (the CONNECT target or the original destination)."""
    client = tflow.tclient_conn()
    ctx = Context(client, Options())
    ctx.server = connection.Server(address=(dest or sni or "127.0.0.1", 443))
    parsed = parse_client_hello(client_hello_bytes(sni))
    assert parsed is not None
    return tls.ClientHelloData(ctx, parsed)
