"""End to end on loopback: a real mitmproxy, a local origin, and ip/ip_prefix
orders on the origin's own address (a lab policy: loopback is normally
refused by the collateral guard, these acts are built directly).

A request or CONNECT whose destination is a blocked address — an IP-literal
host in any spelling, or the address a name resolves to when the proxy is
about to connect — never reaches the origin and is recorded with the rule."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.blocklist.builders import T0, act
from tests.proxy.conftest import policy
from tests.proxy.origin import Origin
from writ.audit import MemorySink
from writ.blocklist import Blocklist, BlocklistHolder, Target, TargetKind
from writ.proxy import ProxyHandle, run_proxy

pytestmark = pytest.mark.e2e


def holder_for(*targets: str) -> BlocklistHolder:
    acts = [act(f"IP-{i}", targets=(Target(
        TargetKind.IP_PREFIX if "/" in t else TargetKind.IP, t),)) for i, t in enumerate(targets)]
    h = BlocklistHolder()
    h.set(Blocklist(acts), T0.replace(year=2016))
    return h


@pytest.fixture
async def blocking_proxy(tmp_path: Path, sink: MemorySink) -> AsyncIterator[ProxyHandle]:
    """127.0.0.0/24 (the origin's address) is blocked by order IP-0."""
    handle = await run_proxy(holder_for("127.0.0.0/24"), policy(), sink,
                             listen="127.0.0.1:0", mode="regular", confdir=str(tmp_path))
    yield handle
    await handle.shutdown()


@pytest.fixture
async def other_proxy(tmp_path: Path, sink: MemorySink) -> AsyncIterator[ProxyHandle]:
    """Only 127.0.0.2 and 2001:db8::/48 are blocked: the origin is not."""
    handle = await run_proxy(holder_for("127.0.0.2", "2001:db8::/48"), policy(), sink,
                             listen="127.0.0.1:0", mode="regular", confdir=str(tmp_path))
    yield handle
    await handle.shutdown()


async def raw(proxy: ProxyHandle, head: str) -> tuple[int, bytes]:
    """Send one request head to the proxy; (status, the response head and body start)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(head.encode())
    await writer.drain()
    got = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
    with contextlib.suppress(TimeoutError):
        got += await asyncio.wait_for(reader.read(4096), 2)
    writer.close()
    return int(got.split(b" ", 2)[1]), got


def get(authority: str, path: str = "/page") -> str:
    return (f"GET http://{authority}{path} HTTP/1.1\r\nHost: {authority}\r\n"
            "Connection: close\r\n\r\n")


@pytest.mark.parametrize("spelling", ["127.0.0.1", "[::ffff:127.0.0.1]", "[::FFFF:7F00:1]"])
async def test_an_ip_literal_host_in_a_blocked_prefix_gets_451(
        blocking_proxy: ProxyHandle, origin: Origin, sink: MemorySink, spelling: str) -> None:
    status, head = await raw(blocking_proxy, get(f"{spelling}:{origin.port}"))
    assert status == 451
    assert b"IP-0" in head
    assert origin.seen == []
    rec = sink.records[-1]
    assert (rec["decision"], rec["action"]) == ("block", "451")
    assert (rec["rule"], rec["orders"]) == ("ip_prefix 127.0.0.0/24", ["IP-0"])


@pytest.mark.parametrize("spelling", ["2130706433", "0x7f.0.0.1", "127.1", "0177.0.0.1",
                                      "[0:0:0:0:0:ffff:127.0.0.1]"])
async def test_browser_spellings_of_a_blocked_address_get_451(
        blocking_proxy: ProxyHandle, origin: Origin, sink: MemorySink, spelling: str) -> None:
    """Hosts a browser reads as 127.0.0.1 (the WHATWG host parser in
    writ/blocklist/canon.py): judged as that address."""
    status, _ = await raw(blocking_proxy, get(f"{spelling}:{origin.port}"))
    assert status == 451
    assert origin.seen == []
    rec = sink.records[-1]
    assert (rec["decision"], rec["action"]) == ("block", "451")
    assert (rec["rule"], rec["orders"]) == ("ip_prefix 127.0.0.0/24", ["IP-0"])


async def test_a_name_resolving_into_a_blocked_prefix_is_never_connected(
        blocking_proxy: ProxyHandle, origin: Origin, sink: MemorySink) -> None:
    # `localhost` is no order's name; it resolves (hosts file) to the blocked 127.0.0.1.
    status, head = await raw(blocking_proxy, get(f"localhost:{origin.port}"))
    assert status == 502
    assert b"blocked by court order IP-0" in head
    assert origin.seen == []
    rec = sink.records[-1]
    assert (rec["decision"], rec["action"]) == ("block", "refused")
    assert rec["rule"] == "ip_prefix 127.0.0.0/24"
    assert rec["target"].startswith(f"connect localhost:{origin.port} (127.0.0.1")


async def test_connect_to_a_blocked_address_gets_451(
        blocking_proxy: ProxyHandle, origin: Origin, sink: MemorySink) -> None:
    status, _ = await raw(blocking_proxy, f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\n\r\n")
    assert status == 451
    rec = sink.records[-1]
    assert (rec["decision"], rec["action"], rec["rule"]) == (
        "block", "451", "ip_prefix 127.0.0.0/24")


async def test_addresses_outside_the_orders_pass(
        other_proxy: ProxyHandle, origin: Origin, sink: MemorySink) -> None:
    status, head = await raw(other_proxy, get(f"127.0.0.1:{origin.port}"))
    assert status == 200, head
    status, head = await raw(other_proxy, get(f"localhost:{origin.port}", "/two"))
    assert status == 200, head
    assert len(origin.seen) == 2
    status, _ = await raw(other_proxy, f"CONNECT 127.0.0.2:{origin.port} HTTP/1.1\r\n\r\n")
    assert status == 451
    assert sink.records[-1]["rule"] == "ip 127.0.0.2"
