"""End to end: a real mitmproxy (DumpMaster in this loop) on loopback, a real
HTTP client, a local origin server that counts what reaches it."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.proxy.conftest import make_holder, policy
from tests.proxy.origin import BIG, Origin
from writ.audit import MemorySink
from writ.proxy import ProxyHandle, ProxyStartError, run_proxy

pytestmark = pytest.mark.e2e

@pytest.fixture
async def proxy(tmp_path: Path, sink: MemorySink) -> AsyncIterator[ProxyHandle]:
    handle = await run_proxy(make_holder(), policy(), sink, listen="127.0.0.1:0",
                             mode="regular", confdir=str(tmp_path))
    yield handle
    await handle.shutdown()


async def fetch(proxy: ProxyHandle, origin: Origin, host: str, path: str,
                headers: dict[str, str] | None = None) -> tuple[int, str, bytes, dict[str, str]]:
    """GET http://host:originport/path through the proxy; names resolve via a
    resolver that maps every name to 127.0.0.1 (no real DNS)."""
    hdrs = {"Host": f"{host}:{origin.port}", **(headers or {})}
    async with aiohttp.ClientSession() as s, s.get(
        f"http://127.0.0.1:{origin.port}{path}", headers=hdrs,
        proxy=f"http://127.0.0.1:{proxy.port}",
        timeout=aiohttp.ClientTimeout(total=20),
    ) as r:
        body = await r.read()
        return r.status, r.reason or "", body, dict(r.headers)


async def test_blocked_request_gets_451_and_the_origin_is_never_contacted(
        proxy: ProxyHandle, origin: Origin, sink: MemorySink) -> None:
    status, reason, body, headers = await fetch(proxy, origin, "blocked.example", "/page")
    assert (status, reason) == (451, "Unavailable For Legal Reasons")
    assert headers["Cache-Control"] == "no-store"
    assert 'rel="blocked-by"' in headers["Link"]
    assert b"ORD-BLOCKED" in body
    assert origin.seen == []
    assert sink.records[-1]["decision"] == "block"


async def test_kept_url_blocked_restored_url_reaches_origin(
        proxy: ProxyHandle, origin: Origin) -> None:
    status, *_ = await fetch(proxy, origin, "videohost.example", "/v/136071201")
    assert status == 451
    status, _, body, _ = await fetch(proxy, origin, "videohost.example", "/v/136071202")
    assert status == 200
    assert body.startswith(b"origin says hi")
    assert origin.seen == [f"videohost.example:{origin.port}/v/136071202"]


async def test_allowed_request_reaches_origin(proxy: ProxyHandle, origin: Origin) -> None:
    status, _, _body, _ = await fetch(proxy, origin, "allowed.example", "/x?y=1")
    assert status == 200
    assert origin.seen == [f"allowed.example:{origin.port}/x?y=1"]


async def test_large_streamed_response_passes(proxy: ProxyHandle, origin: Origin) -> None:
    status, _, body, _ = await fetch(proxy, origin, "allowed.example", "/big")
    assert status == 200
    assert len(body) == BIG


async def test_connect_to_blocked_host_gets_451(proxy: ProxyHandle, origin: Origin) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"CONNECT blocked.example:443 HTTP/1.1\r\nHost: blocked.example:443\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    assert head.startswith(b"HTTP/1.1 451 Unavailable For Legal Reasons\r\n")


async def test_tls_with_blocked_sni_is_refused(proxy: ProxyHandle, origin: Origin,
                                               sink: MemorySink) -> None:
    # CONNECT to an allowed address, then a ClientHello naming a blocked host.
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\n\r\n".encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 200")
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # any certificate would do
    with pytest.raises((ssl.SSLError, ConnectionError)):
        await asyncio.wait_for(
            writer.start_tls(ctx, server_hostname="www.blocked.example"), 10)
    writer.close()
    assert origin.seen == []
    assert any(r["decision"] == "tls-refused" for r in sink.records)


async def test_bad_listen_address_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProxyStartError, match="--listen"):
        await run_proxy(make_holder(), policy(), None, listen="nonsense", confdir=str(tmp_path))


async def test_port_in_use_is_a_clear_error(tmp_path: Path, proxy: ProxyHandle) -> None:
    with pytest.raises(ProxyStartError, match=str(proxy.port)):
        await run_proxy(make_holder(), policy(), None, listen=f"127.0.0.1:{proxy.port}",
                        confdir=str(tmp_path))
