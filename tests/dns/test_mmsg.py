"""Batched UDP (recvmmsg/sendmmsg): every answer reaches its own sender, whatever the mix."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from dnslib import DNSRecord

from tests.dns.support import StandIn, dig, make_query, start_resolver, udp_exchange
from writ.dns import mmsg

pytestmark = pytest.mark.skipif(not mmsg.available(), reason="recvmmsg/sendmmsg: Linux only")

NAMES = ["videohost.example", "news.example", "www.videohost.example", "forum.example"]
WANT = {"videohost.example": "127.0.0.1", "news.example": "192.0.2.7",
        "www.videohost.example": "127.0.0.1", "forum.example": "127.0.0.1"}


def _burst(port: int, clients: int, rounds: int) -> dict[int, dict[int, str]]:
    """Every client sends all its queries at once, then reads: {client: {id: name answered}}."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(clients)]
    sent: dict[int, dict[int, str]] = {c: {} for c in range(clients)}
    try:
        for r in range(rounds):
            for c, s in enumerate(socks):
                for k, name in enumerate(NAMES):
                    q = make_query(name, edns=False)
                    q.header.id = (c << 10) | (r << 3) | k
                    sent[c][q.header.id] = name
                    s.sendto(bytes(q.pack()), ("127.0.0.1", port))
        got: dict[int, dict[int, str]] = {c: {} for c in range(clients)}
        for c, s in enumerate(socks):
            s.settimeout(3)
            while len(got[c]) < len(sent[c]):
                r = DNSRecord.parse(s.recv(4096))
                assert r.header.id in sent[c], f"client {c} got an answer meant for another"
                assert str(r.q.qname).rstrip(".") == sent[c][r.header.id]
                got[c][r.header.id] = str(r.rr[0].rdata)
        return got
    finally:
        for s in socks:
            s.close()


async def test_burst_with_upstream_misses_amid_cache_hits(standin: StandIn) -> None:
    # news.example goes upstream (full path, answered later and alone) in the middle of
    # batches whose other queries are answered at once: each answer still finds its sender.
    standin.zone[("news.example", "A")] = ["news.example. 300 IN A 192.0.2.7"]
    res = await start_resolver(standin)
    try:
        assert isinstance(res.listeners._udp[0], mmsg.BatchUdp)
        got = await asyncio.to_thread(_burst, res.port, 6, 5)
        for answers in got.values():
            assert len(answers) == 5 * len(NAMES)
        for answers in got.values():
            for qid, addr in answers.items():
                assert addr == WANT[NAMES[qid & 7]]
        blocked = sum(1 for r in res.sink.records if r["decision"] == "block")
        assert blocked == 6 * 5 * 3  # every block answered is logged, memo hits too
        assert res.listeners._udp[0].dropped == 0  # type: ignore[attr-defined]
    finally:
        await res.listeners.stop()


async def test_datagram_longer_than_a_slot_does_not_upset_the_batch(standin: StandIn) -> None:
    res = await start_resolver(standin)
    try:
        q = bytes(make_query("videohost.example", edns=False).pack())
        huge = q[:5] + b"\x01" + q[6:] + b"\0" * 6000  # ARCOUNT 1, then junk past the slot
        raw = await asyncio.to_thread(udp_exchange, res.port, huge, 0.5)
        if raw is not None:  # FORMERR (or silence): never a crash, never a stray answer
            assert raw[:2] == q[:2]
            assert struct.unpack_from("!H", raw, 2)[0] & 0x8000
        r = await dig(res.port, "videohost.example")
        assert [str(a.rdata) for a in r.rr] == ["127.0.0.1"]
    finally:
        await res.listeners.stop()


async def test_ipv6_loopback(standin: StandIn) -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    res = await start_resolver(standin)
    await res.listeners.stop()
    res.listeners._udp.clear()
    res.listeners._tcp.clear()
    res.listeners.addresses.clear()
    await res.listeners.start([("::1", 0)])
    try:
        port = res.listeners.addresses[0][1]
        q = make_query("videohost.example", edns=False)
        raw = await asyncio.to_thread(udp_exchange, port, bytes(q.pack()), 2.0, "::1")
        assert raw is not None
        r = DNSRecord.parse(raw)
        assert r.header.id == q.header.id
        assert [str(a.rdata) for a in r.rr] == ["127.0.0.1"]
        assert res.sink.records[-1]["decision"] == "block"
    finally:
        await res.listeners.stop()
