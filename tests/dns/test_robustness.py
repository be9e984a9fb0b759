"""Hostile input, the client ACL, and swapping the blocklist while serving."""

from __future__ import annotations

import asyncio
import ipaddress
import struct

import pytest
from dnslib import RCODE, DNSRecord

from tests.dns.support import (
    ACTS,
    T0,
    Resolver,
    StandIn,
    block,
    dig,
    ede_of,
    start_resolver,
    udp_exchange,
)
from writ.blocklist import Blocklist

HDR = struct.Struct("!HHHHHH")
QUESTION = b"\x09videohost\x07example\x00\x00\x01\x00\x01"


@pytest.mark.parametrize(("name", "packet", "want"), [
    ("empty", b"", None),
    ("short header", b"\x12\x34\x01", None),
    ("header only, no question", HDR.pack(0x1234, 0x0100, 1, 0, 0, 0), RCODE.FORMERR),
    ("compression loop", HDR.pack(0x1234, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01",
     RCODE.FORMERR),
    ("forward pointer", HDR.pack(0x1234, 0x0100, 1, 0, 0, 0) + b"\xc0\x20\x00\x01\x00\x01",
     RCODE.FORMERR),
    ("huge counts", HDR.pack(0x1234, 0x0100, 65535, 65535, 65535, 65535) + QUESTION,
     RCODE.FORMERR),
    ("label past the end", HDR.pack(0x1234, 0x0100, 1, 0, 0, 0) + b"\x3fabc", RCODE.FORMERR),
    ("bad label type", HDR.pack(0x1234, 0x0100, 1, 0, 0, 0) + b"\x80abc\x00\x00\x01\x00\x01",
     RCODE.FORMERR),
    ("two questions", HDR.pack(0x1234, 0x0100, 2, 0, 0, 0) + QUESTION * 2, RCODE.FORMERR),
    ("a response", HDR.pack(0x1234, 0x8180, 1, 0, 0, 0) + QUESTION, None),
])
async def test_garbage_gets_formerr_or_silence(resolver: Resolver, name: str, packet: bytes,
                                                want: int | None) -> None:
    raw = await asyncio.to_thread(udp_exchange, resolver.port, packet, 0.3)
    if want is None:
        assert raw is None, name
    else:
        assert raw is not None, name
        qid, flags = struct.unpack_from("!HH", raw)
        assert (qid, flags & 0x8000, flags & 0xF) == (0x1234, 0x8000, want), name
    # …and the server still answers the next client.
    r = await dig(resolver.port, "videohost.example")
    assert [str(a.rdata) for a in r.rr] == ["127.0.0.1"]


async def test_odd_bytes_under_a_blocked_domain_are_still_blocked(resolver: Resolver) -> None:
    q = HDR.pack(7, 0x0100, 1, 0, 0, 0) + b"\x03a b" + QUESTION[:-4] + b"\x00\x01\x00\x01"
    raw = await asyncio.to_thread(udp_exchange, resolver.port, q)
    assert raw is not None
    assert [str(a.rdata) for a in DNSRecord.parse(raw).rr] == ["127.0.0.1"]
    assert resolver.sink.records[-1]["target"] == "a\\032b.videohost.example. A"


async def test_clients_outside_the_acl_are_refused_with_ede_18(standin: StandIn) -> None:
    res = await start_resolver(standin, allow_clients=(ipaddress.ip_network("10.0.0.0/8"),))
    try:
        r = await dig(res.port, "news.example")
        assert r.header.rcode == RCODE.REFUSED
        assert ede_of(r)[0] == 18  # type: ignore[index]
        assert standin.queries == []
        r = await dig(res.port, "videohost.example")  # no hint about what is blocked either
        assert r.header.rcode == RCODE.REFUSED and not r.rr  # noqa: PT018
        # not court-order decisions: counted for /metrics, kept out of the audit chain
        assert res.listeners.server.refused_clients == 2
        assert res.sink.records == []
    finally:
        await res.listeners.stop()


async def test_hot_swap_applies_to_the_next_query(resolver: Resolver, standin: StandIn) -> None:
    standin.zone[("news.example", "A")] = ["news.example. 300 IN A 192.0.2.7"]
    assert [str(a.rdata) for a in (await dig(resolver.port, "news.example")).rr] == ["192.0.2.7"]
    assert (await dig(resolver.port, "videohost.example")).rr[0].rdata  # cached block
    # A new order blocks news.example; the old ones are gone.
    resolver.holder.set(Blocklist((block("EX-2017-0001", "news.example"),)), T0)
    r = await dig(resolver.port, "news.example")
    assert ede_of(r) == (16, "blocked by court order EX-2017-0001")
    assert resolver.sink.records[-1]["blocklist_version"] == resolver.holder.index.version  # type: ignore[union-attr]
    r = await dig(resolver.port, "videohost.example")
    assert ede_of(r) is None  # lifted: the cached block answer was flushed
    resolver.holder.set(Blocklist(ACTS), T0)


async def test_swapping_under_load_never_mixes_versions(resolver: Resolver,
                                                        standin: StandIn) -> None:
    standin.zone[("news.example", "*")] = ["news.example. 300 IN A 192.0.2.7"]
    lists = [Blocklist(ACTS), Blocklist((block("EX-2017-0001", "news.example"),))]

    async def swapper() -> None:
        for i in range(40):
            resolver.holder.set(lists[i % 2], T0)
            await asyncio.sleep(0.002)

    async def asker() -> None:
        for _ in range(40):
            await dig(resolver.port, "news.example")

    await asyncio.gather(swapper(), asker(), asker())
    final = resolver.holder.index
    assert final is not None
    r = await dig(resolver.port, "news.example")
    blocked_now = final.decide_name("news.example").blocked
    assert (ede_of(r) is not None) == blocked_now


@pytest.mark.parametrize(("fail", "asked"), [("closed", False), ("open", True)])
async def test_before_any_blocklist_the_fail_mode_answers_and_it_is_counted(
        standin: StandIn, fail: str, asked: bool) -> None:
    from dataclasses import replace

    from writ.audit import MemorySink
    from writ.blocklist import BlocklistHolder
    from writ.dns.server import DnsServer
    from writ.dns.transport import Listeners
    from writ.policies import DnsPolicy, FailMode, Policy

    policy = Policy(fail=FailMode(fail), dns=replace(
        DnsPolicy(), upstreams=(f"127.0.0.1:{standin.port}",), upstream_timeout=0.5))
    sink = MemorySink()
    server = DnsServer(BlocklistHolder(), policy, sink)  # nothing loaded yet
    listeners = Listeners(server)
    await listeners.start([("127.0.0.1", 0)])
    try:
        r = await dig(listeners.addresses[0][1], "videohost.example")
        # closed: SERVFAIL, not even the upstream asked; open: the upstream's answer
        assert (r.header.rcode == RCODE.SERVFAIL) is not asked
        assert bool(standin.queries) is asked
        assert server.no_blocklist == 1
        assert sink.records == []  # no order was decided on: metrics only
    finally:
        await listeners.stop()
