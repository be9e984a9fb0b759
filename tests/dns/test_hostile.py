"""Hostile clients and a hostile upstream (issue 11): each test failed before its fix.

The malicious upstream is the stand-in with `craft` hooks: raw answers holding
DNAME records, TTLs with the high bit set, AA, records owned by a blocked name,
two OPT records, TSIG.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable

import pytest
from dnslib import QTYPE, RCODE, DNSRecord

from tests.dns.support import (
    Resolver,
    StandIn,
    dig,
    ede_of,
    make_query,
    start_resolver,
    tcp_exchange,
    udp_exchange,
)

HDR = struct.Struct("!HHHHHH")


def wire(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("latin-1")
        out += bytes((len(raw),)) + raw
    return out + b"\0"


def rr(owner: str, rtype: int, rdata: bytes, ttl: int = 300) -> bytes:
    return wire(owner) + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def answer(data: bytes, records: list[bytes], *, flags: int = 0x8180,
           ar: list[bytes] | None = None) -> bytes:
    """A reply to the raw query `data` (its question echoed) with `records` as answers."""
    qend = 12
    while data[qend]:
        qend += data[qend] + 1
    qend += 5
    extra = ar or []
    qid = struct.unpack_from("!H", data)[0]
    return (HDR.pack(qid, flags, 1, len(records), 0, len(extra)) + data[12:qend]
            + b"".join(records) + b"".join(extra))


A = lambda ip: bytes(int(x) for x in ip.split("."))  # noqa: E731


# -- finding 2: the cache key lowercases the name only --------------------------------

async def test_qtype_bytes_are_not_case_folded_into_one_cache_key(resolver: Resolver,
                                                                  standin: StandIn) -> None:
    # TYPE97 is 0x0061 and HTTPS is 0x0041: lowercasing the QTYPE made them one key.
    standin.craft["ok.test"] = lambda d: answer(d, [])
    await dig(resolver.port, "ok.test", "TYPE97")
    await dig(resolver.port, "ok.test", "HTTPS")
    assert [t for _, _, t in standin.queries] == [QTYPE.get(97), "HTTPS"]


# -- finding 3: DNAME (RFC 6672) ---------------------------------------------------------

def _dname_reply(target: str) -> Callable[[bytes], bytes]:
    def craft(d: bytes) -> bytes:
        return answer(d, [
            rr("alias.test", 39, wire(target)),
            rr("www.alias.test", 5, wire(f"www.{target}")),
            rr(f"www.{target}", 1, A("192.0.2.44")),
        ])
    return craft


async def test_names_behind_a_dname_resolve(resolver: Resolver, standin: StandIn,
                                            caplog: pytest.LogCaptureFixture) -> None:
    standin.craft["www.alias.test"] = _dname_reply("target.test")
    with caplog.at_level(logging.ERROR, "writ.dns"):
        r = await dig(resolver.port, "www.alias.test")
    assert r.header.rcode == RCODE.NOERROR
    assert "192.0.2.44" in [str(a.rdata) for a in r.rr]
    assert not caplog.records


async def test_a_dname_into_a_blocked_domain_is_blocked(resolver: Resolver,
                                                        standin: StandIn) -> None:
    standin.craft["www.alias.test"] = _dname_reply("videohost.example")
    r = await dig(resolver.port, "www.alias.test")
    assert [str(a.rdata) for a in r.rr] == ["127.0.0.1"]
    assert ede_of(r) == (16, "blocked by court order EX-2015-0907-VH")
    assert "DNAME" in resolver.sink.records[-1]["rule"]


# -- finding 4: illegal names are FORMERR, one log line, no traceback --------------------

@pytest.mark.parametrize("qname", [
    b"\x40" + b"a" * 64 + b"\x04test\x00",  # a 64-byte label
    (b"\x3c" + b"b" * 60) * 5 + b"\x00",  # a 306-byte name
])
async def test_illegal_names_get_formerr_without_a_traceback(
        resolver: Resolver, caplog: pytest.LogCaptureFixture, qname: bytes) -> None:
    packet = HDR.pack(0x4242, 0x0100, 1, 0, 0, 0) + qname + b"\x00\x01\x00\x01"
    with caplog.at_level(logging.INFO, "writ.dns"):
        for _ in range(20):
            raw = await asyncio.to_thread(udp_exchange, resolver.port, packet)
            assert raw is not None
            assert struct.unpack_from("!HH", raw)[1] & 0xF == RCODE.FORMERR
    assert not [r for r in caplog.records if r.exc_info]
    assert len(caplog.records) <= 1  # rate-limited
    assert resolver.server.stats()["dns_formerr"] >= 20


# -- finding 5: each answer echoes its own client's question bytes ---------------------

async def test_merged_misses_echo_each_clients_letter_case(resolver: Resolver,
                                                           standin: StandIn) -> None:
    standin.zone[("mixed.test", "A")] = ["mixed.test. 300 IN A 192.0.2.5"]
    standin.delay["mixed.test"] = 0.3
    spellings = ["MiXeD.TeSt", "mIxEd.tEsT", "mixed.test", "MIXED.TEST"]
    qs = [bytes(make_query(s).pack()) for s in spellings]
    raws = await asyncio.gather(*(asyncio.to_thread(udp_exchange, resolver.port, q)
                                  for q in qs))
    assert len(standin.queries) == 1  # merged into one upstream query
    for q, raw in zip(qs, raws, strict=True):
        assert raw is not None
        assert raw[12 : 12 + len(q) - 12 - 11] == q[12:-11]  # question as sent, case included
        assert [str(a.rdata) for a in DNSRecord.parse(raw).rr] == ["192.0.2.5"]


async def test_an_upstream_that_lowercases_the_question_is_not_echoed(
        resolver: Resolver, standin: StandIn) -> None:
    def craft(d: bytes) -> bytes:
        low = d[:12] + d[12:].lower()
        return answer(low, [rr("upper.test", 1, A("192.0.2.6"))])
    standin.craft["upper.test"] = craft
    q = bytes(make_query("UpPeR.TeSt").pack())
    raw = await asyncio.to_thread(udp_exchange, resolver.port, q)
    assert raw is not None and raw[12:24] == q[12:24]  # noqa: PT018


# -- finding 7: a cached answer too large for the client is served with TC -------------

async def test_a_cached_answer_too_big_for_udp_is_served_from_the_cache_with_tc(
        resolver: Resolver, standin: StandIn) -> None:
    standin.truncate.add("big.example")
    standin.zone[("big.example", "TXT")] = [
        f'big.example. 300 IN TXT "{chr(97 + i) * 200}"' for i in range(4)]
    first = await dig(resolver.port, "big.example", "TXT", edns=False)
    assert first.header.tc == 1
    asked = len(standin.queries)
    for _ in range(3):
        again = await dig(resolver.port, "big.example", "TXT", edns=False)
        assert again.header.tc == 1 and not again.rr  # noqa: PT018
    assert len(standin.queries) == asked  # never upstream again


# -- upstream data sanitised -----------------------------------------------------------

async def test_ttls_with_the_high_bit_are_zero_and_ttls_are_capped(standin: StandIn) -> None:
    res = await start_resolver(standin, max_ttl=3600)
    try:
        standin.craft["ttl.test"] = lambda d: answer(d, [
            rr("ttl.test", 1, A("192.0.2.1"), ttl=0x80000010),
            rr("ttl.test", 1, A("192.0.2.2"), ttl=7 * 86400)])
        standin.craft["long.test"] = lambda d: answer(d, [
            rr("long.test", 1, A("192.0.2.3"), ttl=7 * 86400)])
        r = await dig(res.port, "ttl.test")
        assert [a.ttl for a in r.rr] == [0, 3600]
        r = await dig(res.port, "long.test")
        assert [a.ttl for a in r.rr] == [3600]
    finally:
        await res.listeners.stop()


async def test_aa_is_cleared_on_forwarded_answers(resolver: Resolver, standin: StandIn) -> None:
    standin.craft["aa.test"] = lambda d: answer(d, [rr("aa.test", 1, A("192.0.2.1"))],
                                                   flags=0x8580)
    r = await dig(resolver.port, "aa.test")
    assert r.header.aa == 0 and len(r.rr) == 1  # noqa: PT018
    r = await dig(resolver.port, "aa.test")  # and from the cache
    assert r.header.aa == 0


async def test_records_owned_by_a_blocked_name_are_stripped(resolver: Resolver,
                                                            standin: StandIn) -> None:
    standin.craft["open.test"] = lambda d: answer(d, [
        rr("open.test", 1, A("192.0.2.1"))],
        ar=[rr("videohost.example", 1, A("198.51.100.66")),
            rr("x.forum.example", 1, A("198.51.100.67"))])
    r = await dig(resolver.port, "open.test", edns=False)
    assert [str(a.rdata) for a in r.rr] == ["192.0.2.1"]
    assert r.ar == []


@pytest.mark.parametrize("extra", ["two OPT", "TSIG"])
async def test_two_opt_records_or_a_tsig_are_formerr(resolver: Resolver, extra: str) -> None:
    q = make_query("news.example")
    raw = bytearray(q.pack())
    opt = struct.pack("!BHHIH", 0, 41, 1232, 0, 0)
    tsig = rr("key.test", 250, b"\x0bhmac-sha256\x00" + b"\0" * 16, ttl=0)
    add = opt if extra == "two OPT" else tsig
    struct.pack_into("!H", raw, 10, 2)
    out = await asyncio.to_thread(udp_exchange, resolver.port, bytes(raw) + add)
    assert out is not None
    assert struct.unpack_from("!HH", out)[1] & 0xF == RCODE.FORMERR


async def test_labels_with_high_bytes_resolve(resolver: Resolver, standin: StandIn) -> None:
    # RFC 2181 §11: any binary string is a legal label.
    name = b"\x03\xe9t\xe9\x04test\x00"
    standin.craft["\xe9t\xe9.test"] = lambda d: answer(d, [
        b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 300, 4) + A("192.0.2.80")])
    packet = HDR.pack(0x77, 0x0100, 1, 0, 0, 0) + name + b"\x00\x01\x00\x01"
    raw = await asyncio.to_thread(udp_exchange, resolver.port, packet)
    assert raw is not None  # (dnslib itself refuses to parse such a name: read the bytes)
    _, flags, qd, an, _, _ = HDR.unpack_from(raw)
    assert (flags & 0xF, qd, an) == (RCODE.NOERROR, 1, 1)
    assert raw[12 : 12 + len(name)] == name
    assert raw.endswith(A("192.0.2.80"))


async def test_servfail_carries_ede_22_or_23(resolver: Resolver, standin: StandIn) -> None:
    standin.silent.add("slow.example")
    r = await dig(resolver.port, "slow.example")
    assert r.header.rcode == RCODE.SERVFAIL
    assert ede_of(r)[0] == 22  # type: ignore[index]
    res = await start_resolver(standin, upstreams=("127.0.0.1:9",))  # refused: ICMP
    try:
        r = await dig(res.port, "news.example")
        assert r.header.rcode == RCODE.SERVFAIL
        assert ede_of(r)[0] in (22, 23)  # type: ignore[index]
    finally:
        await res.listeners.stop()


async def test_tcp_client_sees_the_same_block_as_udp(resolver: Resolver) -> None:
    q = bytes(make_query("videohost.example", "A").pack())
    (raw,) = await asyncio.to_thread(tcp_exchange, resolver.port, [q])
    assert ede_of(DNSRecord.parse(raw))[0] == 16  # type: ignore[index]
    assert DNSRecord.parse(raw).q.qtype == QTYPE.A


async def test_mangled_queries_never_reach_the_bug_handler(
        standin: StandIn, caplog: pytest.LogCaptureFixture) -> None:
    """Random bytes spliced into real queries: FORMERR, an answer, or silence; no traceback."""
    import random

    from tests.dns.support import start_resolver as start

    res = await start(standin)
    rng = random.Random(11)
    base = [bytes(make_query(n, t).pack()) for n, t in
            (("videohost.example", "A"), ("news.example", "HTTPS"), ("x.alias.test", "TXT"))]
    try:
        packets = []
        for _ in range(400):
            data = bytearray(rng.choice(base))
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(2, len(data))] = rng.randrange(256)
            if rng.random() < 0.3:  # a label length past 63 (the 0x40/0x80 label types)
                n = rng.randrange(0x40, 0xC0)
                data[12:12] = bytes((n,)) + bytes(rng.choice(b"abcxyz") for _ in range(n))
            if rng.random() < 0.3:
                data += rng.randbytes(rng.randint(1, 40))
            packets.append((bytes(data), rng.random() < 0.5))
        with caplog.at_level(logging.ERROR, "writ.dns"):
            await asyncio.gather(*(res.server.answer(d, "127.0.0.1", tcp) for d, tcp in packets))
        assert not [r for r in caplog.records if "internal_error" in r.getMessage()]
    finally:
        await res.listeners.stop()
