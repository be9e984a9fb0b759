"""DNS rebinding against the proxy's destination check (docs/operator.md §5,
"Addresses"): a real mitmproxy on loopback, two origins on one port — one on
an address no order touches, one inside a blocked ip_prefix — and a hostile
authoritative server for the destination's name.

The hostile server is the event loop's `getaddrinfo`, which both writ's
check (writ.proxy.destination.system_resolve) and mitmproxy's own connect
(asyncio.open_connection) go through: it can answer each resolution
differently, as the blocked site's operator can from its own DNS. The rule
held: what writ judged is exactly what the proxy connects to; a destination
writ could not resolve is refused, never left for mitmproxy to resolve again.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.blocklist.builders import T0, act, url
from tests.certs import self_signed
from tests.proxy.conftest import policy
from tests.proxy.raw import OriginServer, RawClient, RawOrigin
from tests.proxy.tls_helpers import client_hello_bytes
from writ.audit import MemorySink
from writ.blocklist import Blocklist, BlocklistHolder, Target, TargetKind
from writ.policies import FailMode, TlsMode
from writ.proxy import ProxyHandle, run_proxy

pytestmark = pytest.mark.e2e

HOSTILE = "rebind.test"  # no order names it
URLS = "urls.test"  # a host with a URL rule: intercepted under `tls: intercept`
ALLOWED, BLOCKED = "127.0.0.2", "127.0.0.130"  # BLOCKED is inside IP-PFX's prefix
Answer = Sequence[str] | None  # None: the resolution fails (SERVFAIL, timeout)


def ip_holder(with_ip_orders: bool = True) -> BlocklistHolder:
    acts = [act("ORD-URL", targets=(url(f"http://{URLS}/kept"),))]
    if with_ip_orders:
        acts.append(act("IP-PFX", targets=(Target(TargetKind.IP_PREFIX, "127.0.0.128/25"),)))
    h = BlocklistHolder()
    h.set(Blocklist(acts), T0.replace(year=2016))
    return h


class HostileDns:
    """The loop's getaddrinfo, answering each name in `answers` with its
    answers in turn (the last one repeats); other names resolve as usual.
    `asked` counts the resolutions of each hostile name."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.answers: dict[str, list[Answer]] = {}
        self.asked: dict[str, int] = {}

    def set(self, name: str, *answers: Answer) -> None:
        self.answers[name] = list(answers)
        self.asked[name] = 0

    async def getaddrinfo(self, host: Any, port: Any, **kw: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return await type(self.loop).getaddrinfo(self.loop, host, port, **kw)
        self.asked[name] += 1
        queue = self.answers[name]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if answer is None:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (a, int(port)))
                for a in answer]


@pytest.fixture
async def dns() -> AsyncIterator[HostileDns]:
    loop = asyncio.get_running_loop()
    hostile = HostileDns(loop)
    loop_any: Any = loop
    loop_any.getaddrinfo = hostile.getaddrinfo
    try:
        yield hostile
    finally:
        del loop_any.getaddrinfo  # the class's own method again


class Counting(RawOrigin):
    """A RawOrigin that also counts the TCP connections it accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.connections = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await super()._serve(reader, writer)


async def _pair(start: Any) -> tuple[Any, Any]:
    """Start an origin on BLOCKED and one on ALLOWED on the same port (retried
    when some other socket holds that port on ALLOWED)."""
    for _ in range(20):
        blocked = await start(BLOCKED, 0)
        try:
            allowed = await start(ALLOWED, blocked.port)
        except OSError:
            await blocked.stop()
            continue
        return allowed, blocked
    raise RuntimeError("no common free port on 127.0.0.2 and 127.0.0.130")


async def _raw_origin(host: str, port: int) -> Counting:
    o = Counting()
    o.port = port
    return await o.start(host)


@pytest.fixture
async def origins() -> AsyncIterator[tuple[Counting, Counting]]:
    """(allowed, blocked): plain-TCP origins on one port."""
    allowed, blocked = await _pair(_raw_origin)
    yield allowed, blocked
    await allowed.stop()
    await blocked.stop()


@pytest.fixture
async def proxy(tmp_path: Path, sink: MemorySink) -> AsyncIterator[ProxyHandle]:
    handle = await run_proxy(ip_holder(), policy(), sink, listen="127.0.0.1:0",
                             mode="regular", confdir=str(tmp_path))
    yield handle
    await handle.shutdown()


async def get(port: int, authority: str, path: str = "/page",
              origin_form: bool = False) -> bytes:
    """One GET through the proxy listening on `port`: the whole answer."""
    c = await RawClient.open(port)
    target = path if origin_form else f"http://{authority}{path}"
    await c.send(f"GET {target} HTTP/1.1\r\nHost: {authority}\r\n"
                 "Connection: close\r\n\r\n".encode())
    got = await c.rest()
    c.close()
    return got


def refused(sink: MemorySink) -> list[tuple[str, str, str]]:
    return [(r["decision"], r["action"], r["target"]) for r in sink.records
            if r["target"].startswith("connect ")]


# -- (a) the first answer allowed, the second blocked ------------------------

async def test_http_connects_to_the_address_writ_judged(
        proxy: ProxyHandle, origins: tuple[Counting, Counting], dns: HostileDns) -> None:
    allowed, blocked = origins
    dns.set(HOSTILE, [ALLOWED], [BLOCKED])
    got = await get(proxy.port, f"{HOSTILE}:{allowed.port}")
    assert blocked.connections == 0, "the proxy reached the blocked address"
    assert got.startswith(b"HTTP/1.1 200"), got
    # The origin is asked by name, as the client asked: Host is untouched.
    assert allowed.requests == [f"GET /page HTTP/1.1 | {HOSTILE}:{allowed.port}"]
    assert dns.asked[HOSTILE] == 1  # one resolution: writ's, judged and used


async def test_reverse_mode_connects_to_the_address_writ_judged(
        tmp_path: Path, sink: MemorySink, origins: tuple[Counting, Counting],
        dns: HostileDns) -> None:
    allowed, blocked = origins
    dns.set(HOSTILE, [ALLOWED], [BLOCKED])
    handle = await run_proxy(ip_holder(), policy(), sink, listen="127.0.0.1:0",
                             mode=f"reverse:http://{HOSTILE}:{allowed.port}",
                             confdir=str(tmp_path))
    try:
        got = await get(handle.port, "front.test", origin_form=True)
    finally:
        await handle.shutdown()
    assert blocked.connections == 0, "the proxy reached the blocked address"
    assert got.startswith(b"HTTP/1.1 200"), got
    assert allowed.requests == [f"GET /page HTTP/1.1 | {HOSTILE}:{allowed.port}"]


async def test_a_raw_tunnel_connects_to_the_address_writ_judged(
        proxy: ProxyHandle, origins: tuple[Counting, Counting], dns: HostileDns,
        sink: MemorySink) -> None:
    allowed, blocked = origins
    dns.set(HOSTILE, [ALLOWED], [BLOCKED])
    c = await RawClient.open(proxy.port)
    head = await c.connect(f"{HOSTILE}:{allowed.port}")
    assert head.startswith(b"HTTP/1.1 200"), head
    await c.send(b"\x00raw bytes, neither HTTP nor TLS\r\n\r\n")
    got = await c.head()
    c.close()
    assert blocked.connections == 0, "the proxy reached the blocked address"
    assert got.startswith(b"HTTP/1.1 200"), got  # the raw origin answered
    assert bytes(allowed.raw).startswith(b"\x00raw bytes")
    assert ("allow", "raw-tcp", f"TCP {HOSTILE}:{allowed.port}") in [
        (r["decision"], r["action"], r["target"]) for r in sink.records]


async def test_a_tls_passthrough_tunnel_connects_to_the_address_writ_judged(
        proxy: ProxyHandle, origins: tuple[Counting, Counting], dns: HostileDns) -> None:
    allowed, blocked = origins
    dns.set(HOSTILE, [ALLOWED], [BLOCKED])
    hello = client_hello_bytes(HOSTILE)
    c = await RawClient.open(proxy.port)
    head = await c.connect(f"{HOSTILE}:{allowed.port}")
    assert head.startswith(b"HTTP/1.1 200"), head
    await c.send(hello)
    for _ in range(200):  # until the hello reached an origin (or the proxy gave up)
        if allowed.raw or blocked.raw or c.reader.at_eof():
            break
        await asyncio.sleep(0.05)
    c.close()
    assert blocked.connections == 0, "the proxy reached the blocked address"
    assert bytes(allowed.raw) == hello  # relayed unopened, to the judged address


# -- (b) writ's resolution fails, mitmproxy's would answer the blocked address --

async def test_a_destination_writ_cannot_resolve_is_refused(
        proxy: ProxyHandle, origins: tuple[Counting, Counting], dns: HostileDns,
        sink: MemorySink) -> None:
    allowed, blocked = origins
    dns.set(HOSTILE, None, [BLOCKED])
    got = await get(proxy.port, f"{HOSTILE}:{allowed.port}")
    assert blocked.connections == 0, "the proxy reached the blocked address"
    assert got.startswith(b"HTTP/1.1 502"), got
    assert b"could not be resolved" in got
    assert dns.asked[HOSTILE] == 1  # nobody asked again
    rec = [r for r in sink.records if r["target"].startswith("connect ")][-1]
    assert (rec["decision"], rec["action"]) == ("error", "refused")
    assert rec["target"] == f"connect {HOSTILE}:{allowed.port} (unresolved)"
    assert (rec["orders"], rec["rule"]) == ([], None)


async def test_a_tunnel_writ_cannot_resolve_is_refused(
        proxy: ProxyHandle, origins: tuple[Counting, Counting], dns: HostileDns,
        sink: MemorySink) -> None:
    allowed, blocked = origins
    dns.set(HOSTILE, None, [BLOCKED])
    c = await RawClient.open(proxy.port)
    head = await c.connect(f"{HOSTILE}:{allowed.port}")
    assert head.startswith(b"HTTP/1.1 200"), head
    await c.send(client_hello_bytes(HOSTILE))
    await c.rest()
    c.close()
    assert blocked.connections == allowed.connections == 0
    assert refused(sink) == [("error", "refused", f"connect {HOSTILE}:{allowed.port} (unresolved)")]


async def test_an_unresolved_destination_is_refused_under_fail_open_too(
        tmp_path: Path, sink: MemorySink, origins: tuple[Counting, Counting],
        dns: HostileDns) -> None:
    """`fail: open` is about writ's own failures; a name that does not resolve
    is the network's, and resolving it again is the attack."""
    allowed, blocked = origins
    dns.set(HOSTILE, None, [BLOCKED])
    handle = await run_proxy(ip_holder(), replace(policy(), fail=FailMode.OPEN), sink,
                             listen="127.0.0.1:0", mode="regular", confdir=str(tmp_path))
    try:
        got = await get(handle.port, f"{HOSTILE}:{allowed.port}")
    finally:
        await handle.shutdown()
    assert blocked.connections == allowed.connections == 0
    assert got.startswith(b"HTTP/1.1 502"), got
    assert refused(sink) == [("error", "refused", f"connect {HOSTILE}:{allowed.port} (unresolved)")]


# -- (c) several addresses, one of them blocked -------------------------------

async def test_one_blocked_address_among_several_refuses_the_connection(
        proxy: ProxyHandle, origins: tuple[Counting, Counting], dns: HostileDns,
        sink: MemorySink) -> None:
    allowed, blocked = origins
    dns.set(HOSTILE, [ALLOWED, BLOCKED])
    got = await get(proxy.port, f"{HOSTILE}:{allowed.port}")
    assert got.startswith(b"HTTP/1.1 502"), got
    assert b"blocked by court order IP-PFX" in got
    assert blocked.connections == allowed.connections == 0
    assert refused(sink) == [("block", "refused",
                              f"connect {HOSTILE}:{allowed.port} ({BLOCKED})")]
    assert sink.records[-1]["rule"] == "ip_prefix 127.0.0.128/25"


# -- what pinning must not change ---------------------------------------------

async def test_keep_alive_requests_reuse_the_judged_connection(
        proxy: ProxyHandle, origins: tuple[Counting, Counting], dns: HostileDns) -> None:
    """Pinned to an address, the connection still serves later requests for
    the name (mitmproxy matches connections by the name it was asked for)."""
    allowed, blocked = origins
    dns.set(HOSTILE, [ALLOWED], [BLOCKED])
    authority = f"{HOSTILE}:{allowed.port}"
    c = await RawClient.open(proxy.port)
    for path in ("/one", "/two", "/three"):
        await c.send(f"GET http://{authority}{path} HTTP/1.1\r\nHost: {authority}\r\n\r\n"
                     .encode())
        head = await c.head()
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        await c.reader.readexactly(length)
    c.close()
    assert blocked.connections == 0
    assert allowed.connections == 1
    assert len(allowed.requests) == 3


async def test_without_ip_orders_writ_resolves_nothing(
        tmp_path: Path, sink: MemorySink, origins: tuple[Counting, Counting],
        dns: HostileDns) -> None:
    allowed, _ = origins
    dns.set(HOSTILE, [ALLOWED])
    handle = await run_proxy(ip_holder(with_ip_orders=False), policy(), sink,
                             listen="127.0.0.1:0", mode="regular", confdir=str(tmp_path))
    try:
        got = await get(handle.port, f"{HOSTILE}:{allowed.port}")
    finally:
        await handle.shutdown()
    assert got.startswith(b"HTTP/1.1 200"), got
    assert dns.asked[HOSTILE] == 1  # mitmproxy's own, as before


class TlsOrigin(OriginServer):
    """A TLS origin that records the SNI of every handshake and answers 200."""

    def __init__(self, chain: tuple[Path, Path]) -> None:
        super().__init__()
        self.chain = chain
        self.snis: list[str | None] = []

    async def start(self, host: str, port: int) -> TlsOrigin:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.chain)
        ctx.sni_callback = lambda _obj, name, _ctx: self.snis.append(name)  # type: ignore[assignment,func-returns-value]
        await self._listen(host, port, ctx)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        writer.close()


@pytest.mark.parametrize("client_sni", [URLS, None])
async def test_intercepted_tls_connects_to_the_judged_address_with_the_name_as_sni(
        tmp_path: Path, sink: MemorySink, dns: HostileDns, client_sni: str | None) -> None:
    chain = self_signed(tmp_path, URLS)

    async def start(host: str, port: int) -> TlsOrigin:
        return await TlsOrigin(chain).start(host, port)

    allowed, blocked = await _pair(start)
    dns.set(URLS, [ALLOWED], [BLOCKED])
    # ssl_insecure: mitmproxy accepts the origins' self-signed certificate.
    handle = await run_proxy(ip_holder(), policy(tls=TlsMode.INTERCEPT), sink,
                             listen="127.0.0.1:0", mode="regular", confdir=str(tmp_path),
                             extra={"ssl_insecure": True})
    try:
        c = await RawClient.open(handle.port)
        head = await c.connect(f"{URLS}:{allowed.port}")
        assert head.startswith(b"HTTP/1.1 200"), head
        tls_ctx = ssl.create_default_context()
        tls_ctx.check_hostname, tls_ctx.verify_mode = False, ssl.CERT_NONE
        await asyncio.wait_for(c.writer.start_tls(tls_ctx, server_hostname=client_sni), 10)
        await c.send(f"GET /page HTTP/1.1\r\nHost: {URLS}\r\nConnection: close\r\n\r\n"
                     .encode())
        got = await c.rest()
        c.close()
    finally:
        await handle.shutdown()
        await allowed.stop()
        await blocked.stop()
    assert blocked.snis == [], "the proxy reached the blocked address"
    assert got.startswith(b"HTTP/1.1 200"), got
    assert allowed.snis == [URLS]  # the name, never the pinned address


# -- upstream mode: the upstream proxy resolves the destination ---------------

async def test_upstream_mode_leaves_the_destination_to_the_upstream_proxy(
        tmp_path: Path, sink: MemorySink, dns: HostileDns) -> None:
    """In `upstream:` mode mitmproxy connects only to the operator's upstream
    proxy, which resolves the destination itself: writ neither resolves the
    destination nor pins the upstream proxy's address (docs/operator.md §5)."""
    upstream = await Counting().start("127.0.0.1")
    dns.set("upstream.test", ["127.0.0.1"])
    dns.set(HOSTILE, [ALLOWED], [BLOCKED])
    handle = await run_proxy(ip_holder(), policy(), sink, listen="127.0.0.1:0",
                             mode=f"upstream:http://upstream.test:{upstream.port}",
                             confdir=str(tmp_path))
    try:
        got = await get(handle.port, f"{HOSTILE}:8080")
    finally:
        await handle.shutdown()
        await upstream.stop()
    assert got.startswith(b"HTTP/1.1 200"), got
    # The upstream proxy is asked for the destination by name, in absolute form
    # (a forward proxy such as Squid refuses `GET /page` with only a Host header).
    assert len(upstream.requests) == 1
    assert upstream.requests[0] == f"GET http://{HOSTILE}:8080/page HTTP/1.1 | {HOSTILE}:8080"
    assert dns.asked[HOSTILE] == 0
    # Judged by writ, then resolved again by mitmproxy: not pinned.
    assert dns.asked["upstream.test"] == 2
