"""Per-client limits and TCP backpressure (issue 11, finding 1 and the ISP-edge limits).

Each test failed before its fix: a client that pipelines and never reads grew the
server's unsent buffer without bound; one address could hold every TCP slot; a
UDP client had no query rate limit.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time

from dnslib import RCODE, DNSRecord

from tests.dns.support import StandIn, ede_of, make_query, start_resolver, udp_exchange
from writ.policies import OverLimit


def _frame(name: str) -> bytes:
    q = bytes(make_query(name, "TXT", edns=False).pack())
    return struct.pack("!H", len(q)) + q


async def test_a_client_that_never_reads_is_bounded_then_aborted(standin: StandIn) -> None:
    standin.zone[("big.example", "TXT")] = [  # a 4 KB answer to a 31-byte query
        f'big.example. 300 IN TXT "{chr(97 + i) * 250}"' for i in range(16)]
    res = await start_resolver(standin, tcp_unsent_bytes=16384)
    res.listeners.idle = 1.0
    try:
        frames = _frame("big.example") * 2000  # 62 KB of queries for 8 MB of answers
        sock = socket.create_connection(("127.0.0.1", res.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        most = 0
        sent = 0
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # keep pushing, never read
            try:
                sent += sock.send(frames[sent % len(frames):])
            except BlockingIOError:
                pass
            except ConnectionError:
                break  # aborted by the resolver: the point of the test
            most = max(most, res.listeners.unsent_bytes())
            await asyncio.sleep(0.01)
        # bounded: the limit plus the answers of the queries in flight
        assert most <= 16384 + 17 * 4300
        for _ in range(300):  # stuck past tcp_idle: aborted, buffers released
            if res.listeners.conns == 0:
                break
            await asyncio.sleep(0.01)
        assert res.listeners.conns == 0
        assert res.listeners.unsent_bytes() == 0
        assert res.listeners.stats()["dns_tcp_aborted"] == 1
        sock.close()
    finally:
        await res.listeners.stop()


def _tcp_query(port: int, name: str, source: str = "127.0.0.1") -> bytes | None:
    with socket.socket() as s:
        s.settimeout(3)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        q = bytes(make_query(name).pack())
        s.sendall(struct.pack("!H", len(q)) + q)
        try:
            n = struct.unpack("!H", s.recv(2))[0]
        except (struct.error, ConnectionError):
            return None
        return s.recv(n)


async def test_one_address_cannot_take_every_tcp_connection(standin: StandIn) -> None:
    res = await start_resolver(standin, client_tcp_conns=4)
    held = []
    try:
        for _ in range(10):  # one client holds many connections, sending nothing
            s = socket.create_connection(("127.0.0.1", res.port))
            held.append(s)
        await asyncio.sleep(0.2)
        assert res.listeners.conns == 4
        # another client (127.0.0.2, loopback) is served
        raw = await asyncio.to_thread(_tcp_query, res.port, "videohost.example", "127.0.0.2")
        assert raw is not None
        assert DNSRecord.parse(raw).rr
        assert res.listeners.stats()["dns_tcp_refused"] == 6
    finally:
        for s in held:
            s.close()
        await res.listeners.stop()


def _udp_from(source: str, port: int, q: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.bind((source, 0))
        s.sendto(q, ("127.0.0.1", port))
        return s.recv(4096)


async def test_udp_queries_over_the_client_rate_get_tc(standin: StandIn) -> None:
    res = await start_resolver(standin, client_qps=5)
    try:
        q = bytes(make_query("videohost.example").pack())
        raws = [await asyncio.to_thread(udp_exchange, res.port, q) for _ in range(20)]
        flags = [struct.unpack_from("!H", r, 2)[0] for r in raws if r is not None]
        assert len(flags) == 20
        tc = [f for f in flags if f & 0x0200]
        assert 10 <= len(tc) <= 15  # one-second windows: 5 (or 10 across a boundary) served
        assert res.server.stats()["dns_rate_limited"] == len(tc)
        # another address is not affected
        other = DNSRecord.parse(await asyncio.to_thread(_udp_from, "127.0.0.2", res.port, q))
        assert other.header.tc == 0 and other.rr  # noqa: PT018
    finally:
        await res.listeners.stop()


async def test_over_limit_refused_and_drop(standin: StandIn) -> None:
    for mode, want in ((OverLimit.REFUSED, RCODE.REFUSED), (OverLimit.DROP, None)):
        res = await start_resolver(standin, client_qps=1, over_limit=mode)
        try:
            q = bytes(make_query("videohost.example").pack())
            await asyncio.to_thread(udp_exchange, res.port, q)
            raw = await asyncio.to_thread(udp_exchange, res.port, q, 0.5)
            if want is None:
                assert raw is None
            else:
                assert raw is not None
                assert struct.unpack_from("!H", raw, 2)[0] & 0xF == want
        finally:
            await res.listeners.stop()


async def test_amplification_is_bounded_by_max_udp_size(standin: StandIn) -> None:
    standin.zone[("big.example", "TXT")] = [
        f'big.example. 300 IN TXT "{chr(97 + i) * 250}"' for i in range(16)]
    res = await start_resolver(standin)
    try:
        q = bytes(make_query("big.example", "TXT", payload=65000).pack())
        raw = await asyncio.to_thread(udp_exchange, res.port, q)
        assert raw is not None
        assert len(raw) <= 1232  # whatever the client advertised
        assert DNSRecord.parse(raw).header.tc == 1
    finally:
        await res.listeners.stop()


async def test_upstream_sockets_are_bounded_and_the_rest_is_shed_with_ede(
        standin: StandIn) -> None:
    standin.silent.update(("a.silent.example", "b.silent.example"))
    res = await start_resolver(standin, upstream_queries=1)
    try:
        qa = bytes(make_query("a.silent.example").pack())
        qb = bytes(make_query("b.silent.example").pack())
        slow = asyncio.create_task(asyncio.to_thread(udp_exchange, res.port, qa))
        await asyncio.sleep(0.1)  # a holds the only upstream slot for upstream_timeout
        raw = await asyncio.to_thread(udp_exchange, res.port, qb)
        assert raw is not None
        shed = DNSRecord.parse(raw)
        assert shed.header.rcode == RCODE.SERVFAIL
        assert ede_of(shed) == (0, "resolver overloaded: query shed")
        assert res.server.stats()["dns_shed"] == 1
        first = await slow
        assert first is not None
        assert ede_of(DNSRecord.parse(first))[0] == 22  # type: ignore[index]
    finally:
        await res.listeners.stop()


def test_a_full_task_table_is_answered_not_silent(standin: StandIn) -> None:
    from dataclasses import replace

    from writ.audit import MemorySink
    from writ.blocklist import BlocklistHolder
    from writ.dns.server import DnsServer
    from writ.policies import DnsPolicy, Policy

    server = DnsServer(BlocklistHolder(), Policy(dns=replace(DnsPolicy())), MemorySink())
    q = make_query("news.example")
    shed = DNSRecord.parse(server.shed_reply(bytes(q.pack())) or b"")
    assert shed.header.id == q.header.id
    assert shed.header.rcode == RCODE.SERVFAIL
    assert shed.q.qname == q.q.qname
    assert ede_of(shed) == (0, "resolver overloaded: query shed")
    assert server.stats()["dns_shed"] == 1
