"""Steer listeners end to end: a real mitmproxy on loopback with HTTP and TLS
steer listeners, clients that connect to them as DNS-steered clients do (no
proxy protocol: origin-form HTTP with a Host header, TLS with SNI), and local
origins that record what reaches them.

URL-rule hosts are `127.0.0.1` (HTTP: an IP literal needs no DNS) and
`localhost` (TLS: an SNI must be a name; /etc/hosts maps it to 127.0.0.1)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.blocklist.builders import T0, act, domain, url
from tests.certs import self_signed
from tests.proxy.conftest import policy
from tests.proxy.origin import Origin, start_origin
from writ.audit import MemorySink
from writ.blocklist import Blocklist, BlocklistHolder
from writ.policies import Policy, TlsMode
from writ.proxy import ProxyHandle, run_proxy
from writ.proxy.steer import SteerKind

pytestmark = pytest.mark.e2e

ACTS = (
    act("ORD-LOCAL", targets=(url("http://127.0.0.1/v/1"), url("https://localhost/v/1"))),
    act("ORD-BLOCKED", targets=(domain("blocked.example"),)),
)


def holder() -> BlocklistHolder:
    h = BlocklistHolder()
    h.set(Blocklist(ACTS), T0.replace(year=2016))
    return h


def steer_policy(tls: TlsMode = TlsMode.PASSTHROUGH) -> Policy:
    p = policy(tls=tls)
    # mitmproxy refuses two listeners on one address, port 0 included: use
    # other loopback addresses than the main listener's 127.0.0.1.
    return replace(p, proxy=replace(p.proxy, steer_http=("127.0.0.2:0",),
                                    steer_tls=("127.0.0.3:0",)))


@pytest.fixture
async def proxy(tmp_path: Path, sink: MemorySink) -> AsyncIterator[ProxyHandle]:
    handle = await run_proxy(holder(), steer_policy(), sink, listen="127.0.0.1:0",
                             confdir=str(tmp_path))
    yield handle
    await handle.shutdown()


async def get(where: tuple[str, int], host: str | None, path: str) -> tuple[int, bytes]:
    """One origin-form GET, as a client that resolved `host` to the steer address sends it."""
    reader, writer = await asyncio.open_connection(*where)
    head = f"GET {path} HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host is not None else "")
    writer.write(f"{head}Connection: close\r\n\r\n".encode())
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def http_listener(proxy: ProxyHandle) -> tuple[str, int]:
    return proxy.steer_addresses(SteerKind.HTTP)[0]


def tls_listener(proxy: ProxyHandle) -> tuple[str, int]:
    return proxy.steer_addresses(SteerKind.TLS)[0]


# -- HTTP ----------------------------------------------------------------------


async def test_listeners_are_separate_from_the_proxy_port(proxy: ProxyHandle) -> None:
    assert [a[0] for a in proxy.addresses] == ["127.0.0.1"]
    assert http_listener(proxy)[0] == "127.0.0.2"
    assert tls_listener(proxy)[0] == "127.0.0.3"


async def test_allowed_path_on_a_url_rules_host_reaches_the_origin(
        proxy: ProxyHandle, origin: Origin, sink: MemorySink) -> None:
    status, body = await get(http_listener(proxy), f"127.0.0.1:{origin.port}", "/v/2?t=1")
    assert status == 200
    assert body == f"origin says hi to 127.0.0.1:{origin.port}".encode()
    assert origin.seen == [f"127.0.0.1:{origin.port}/v/2?t=1"]  # Host header kept
    assert sink.records[-1]["decision"] == "allow"
    assert sink.records[-1]["target"] == f"GET http://127.0.0.1:{origin.port}/v/2?t=1"


async def test_kept_blocked_path_gets_451_and_the_origin_is_never_contacted(
        proxy: ProxyHandle, origin: Origin, sink: MemorySink) -> None:
    status, body = await get(http_listener(proxy), f"127.0.0.1:{origin.port}", "/v/1")
    assert status == 451
    assert b"ORD-LOCAL" in body
    assert origin.seen == []
    rec = sink.records[-1]
    assert (rec["decision"], rec["action"], rec["orders"]) == ("block", "451", ["ORD-LOCAL"])


async def test_host_without_rules_is_refused_not_relayed(
        proxy: ProxyHandle, origin: Origin, sink: MemorySink) -> None:
    # 127.0.0.2 has no rules: DNS would never steer it, so this is no relay to it.
    status, body = await get(http_listener(proxy), f"127.0.0.2:{origin.port}", "/v/2")
    assert status == 421
    assert b"not an open proxy" in body
    assert origin.seen == []
    rec = sink.records[-1]
    assert (rec["decision"], rec["action"]) == ("not-steered", "421")


async def test_request_without_host_is_refused(proxy: ProxyHandle, origin: Origin) -> None:
    reader, writer = await asyncio.open_connection(*http_listener(proxy))
    writer.write(b"GET /v/2 HTTP/1.0\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert data.startswith((b"HTTP/1.0 421", b"HTTP/1.1 421"))
    assert origin.seen == []


async def test_forged_host_naming_a_blocked_host_gets_451(
        proxy: ProxyHandle, origin: Origin, sink: MemorySink) -> None:
    status, body = await get(http_listener(proxy), "www.blocked.example", "/")
    assert status == 451
    assert b"ORD-BLOCKED" in body
    assert origin.seen == []
    assert sink.records[-1]["decision"] == "block"


async def test_connect_on_a_steer_address_is_refused(proxy: ProxyHandle, origin: Origin) -> None:
    reader, writer = await asyncio.open_connection(*http_listener(proxy))
    writer.write(f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    # mitmproxy itself rejects the authority form on a reverse-mode listener.
    assert head.startswith(b"HTTP/1.1 400")
    assert origin.seen == []


# -- TLS -----------------------------------------------------------------------


def _client_context(cafile: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    if cafile is None:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


async def _tls_refused(where: tuple[str, int], sni: str) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await asyncio.wait_for(asyncio.open_connection(
            *where, ssl=_client_context(), server_hostname=sni), 10)


async def test_tls_with_blocked_sni_is_refused(proxy: ProxyHandle, sink: MemorySink) -> None:
    await _tls_refused(tls_listener(proxy), "www.blocked.example")
    rec = sink.records[-1]
    assert (rec["decision"], rec["action"]) == ("tls-refused", "tls-refused")
    assert rec["orders"] == ["ORD-BLOCKED"]


async def test_tls_for_a_host_without_rules_is_refused(
        proxy: ProxyHandle, sink: MemorySink) -> None:
    await _tls_refused(tls_listener(proxy), "norules.example")
    rec = sink.records[-1]
    assert (rec["decision"], rec["action"], rec["target"]) == (
        "not-steered", "tls-refused", "TLS norules.example")


async def test_tls_on_the_http_address_is_refused(proxy: ProxyHandle, sink: MemorySink) -> None:
    await _tls_refused(http_listener(proxy), "localhost")
    assert sink.records[-1]["decision"] == "not-steered"


async def test_tls_passthrough_relays_the_connection_to_the_sni_host(
        proxy: ProxyHandle, sink: MemorySink) -> None:
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not got.done():
            got.set_result(await reader.read(5))
        writer.close()

    server = await asyncio.start_server(record, "127.0.0.1", 0)
    proxy.addon.steer_tls_port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises((ssl.SSLError, ConnectionError)):  # the recorder speaks no TLS
            await asyncio.wait_for(asyncio.open_connection(
                *tls_listener(proxy), ssl=_client_context(), server_hostname="localhost"), 10)
        first = await asyncio.wait_for(got, 10)
    finally:
        server.close()
    assert first[:1] == b"\x16"  # the client's own ClientHello arrived unopened
    rec = sink.records[-1]
    assert (rec["decision"], rec["action"], rec["target"]) == (
        "unenforceable", "pass", "TLS localhost")


def _self_signed(tmp_path: Path) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*self_signed(tmp_path, "localhost"))
    return ctx


async def test_tls_intercept_judges_urls_inside_and_forwards_to_the_sni_host(
        tmp_path: Path, sink: MemorySink) -> None:
    origin, runner = await start_origin(_self_signed(tmp_path))
    # ssl_insecure: mitmproxy must accept the origin's self-signed certificate.
    handle = await run_proxy(holder(), steer_policy(TlsMode.INTERCEPT), sink,
                             listen="127.0.0.1:0", confdir=str(tmp_path),
                             extra={"ssl_insecure": True})
    handle.addon.steer_tls_port = origin.port
    client_ctx = _client_context(str(tmp_path / "mitmproxy-ca-cert.pem"))

    async def get_tls(path: str) -> bytes:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            *tls_listener(handle), ssl=client_ctx, server_hostname="localhost"), 10)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n"
                     "Connection: close\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return data

    try:
        allowed = await get_tls("/v/2")
        blocked = await get_tls("/v/1")
    finally:
        await handle.shutdown()
        await runner.cleanup()
    assert allowed.startswith(b"HTTP/1.1 200")
    assert allowed.endswith(b"origin says hi to localhost")
    assert blocked.startswith(b"HTTP/1.1 451")
    assert origin.seen == ["localhost/v/2"]
    assert [r["decision"] for r in sink.records] == ["allow", "block"]
    assert sink.records[-1]["target"] == "GET https://localhost/v/1"  # as the client asked


async def test_absolute_form_on_the_steer_listener_is_judged_on_its_own_authority(
        proxy: ProxyHandle, origin: Origin) -> None:
    # Host names a steered host; the request-target names a blocked one.
    status, _ = await get(http_listener(proxy), f"127.0.0.1:{origin.port}",
                          "http://www.blocked.example/x")
    assert status == 451
    assert origin.seen == []


async def test_obs_fold_on_the_steer_listener_is_refused(proxy: ProxyHandle,
                                                         origin: Origin) -> None:
    reader, writer = await asyncio.open_connection(*http_listener(proxy))
    writer.write(f"GET /v/2 HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\nX: y\r\n"
                 " Host: blocked.example\r\nConnection: close\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert data.startswith(b"HTTP/1.1 400"), data[:100]
    assert origin.seen == []


async def test_connect_on_the_steer_listener_is_refused_and_recorded_as_such(
        proxy: ProxyHandle, origin: Origin, sink: MemorySink) -> None:
    reader, writer = await asyncio.open_connection(*http_listener(proxy))
    writer.write(f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    assert head.startswith(b"HTTP/1.1 400"), head[:100]  # mitmproxy's own answer
    assert origin.seen == []
    assert [(r["decision"], r["action"]) for r in sink.records] == [("invalid", "400")]
