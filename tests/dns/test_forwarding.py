"""Allowed names go upstream (cache, TCP retry, failover); answers are checked for CNAME chains."""

from __future__ import annotations

import asyncio

from dnslib import QTYPE, RCODE, DNSRecord

from tests.dns.support import (
    Resolver,
    StandIn,
    dig,
    ede_of,
    make_query,
    start_resolver,
    tcp_exchange,
)
from writ.policies import UrlRuleMode


async def test_allowed_name_resolves_through_upstream(resolver: Resolver,
                                                      standin: StandIn) -> None:
    standin.zone[("news.example", "A")] = ["news.example. 300 IN A 192.0.2.7"]
    r = await dig(resolver.port, "news.example", "A")
    assert r.header.rcode == RCODE.NOERROR
    assert [str(a.rdata) for a in r.rr] == ["192.0.2.7"]
    assert ede_of(r) is None
    assert resolver.sink.records == []  # allows are not logged unless the policy asks


async def test_restored_host_resolves_and_is_logged_as_url_rules(resolver: Resolver,
                                                                 standin: StandIn) -> None:
    standin.zone[("restored.example", "A")] = ["restored.example. 300 IN A 192.0.2.8"]
    r = await dig(resolver.port, "restored.example", "A")
    assert [str(a.rdata) for a in r.rr] == ["192.0.2.8"]
    rec = resolver.sink.records[-1]
    assert (rec["decision"], rec["action"]) == ("url-rules", "pass")
    assert rec["orders"] == ["EX-2015-0907-VH", "EX-2015-0928-VH-R"]
    await dig(resolver.port, "restored.example", "A")  # from the cache: logged again
    assert len(resolver.sink.records) == 2
    assert len(standin.queries) == 1


async def test_steer_answers_the_proxy_address(standin: StandIn) -> None:
    res = await start_resolver(standin, url_rules=UrlRuleMode.STEER, steer_ipv4=("127.0.0.9",))
    try:
        r = await dig(res.port, "restored.example", "A")
        assert [str(a.rdata) for a in r.rr] == ["127.0.0.9"]
        assert ede_of(r) is None
        assert res.sink.records[-1]["decision"] == "steer"
        assert standin.queries == []
    finally:
        await res.listeners.stop()


async def test_cname_chain_into_a_blocked_name_is_blocked(resolver: Resolver,
                                                          standin: StandIn) -> None:
    standin.zone[("cdn.example", "A")] = [
        "cdn.example. 300 IN CNAME edge.cdn.example.",
        "edge.cdn.example. 300 IN CNAME media.videohost.example.",
        "media.videohost.example. 300 IN A 192.0.2.9",
    ]
    r = await dig(resolver.port, "cdn.example", "A")
    assert [str(a.rdata) for a in r.rr] == ["127.0.0.1"]
    assert ede_of(r) == (16, "blocked by court order EX-2015-0907-VH")
    rec = resolver.sink.records[-1]
    assert rec["target"] == "cdn.example. A"
    assert rec["decision"] == "block" and rec["orders"] == ["EX-2015-0907-VH"]  # noqa: PT018
    assert "media.videohost.example" in rec["rule"]


async def test_upstream_down_is_servfail_never_nxdomain(resolver: Resolver,
                                                        standin: StandIn) -> None:
    standin.silent.add("slow.example")
    r = await dig(resolver.port, "slow.example", "A")
    assert r.header.rcode == RCODE.SERVFAIL


async def test_failover_to_the_second_upstream(standin: StandIn) -> None:
    standin.zone[("news.example", "A")] = ["news.example. 300 IN A 192.0.2.7"]
    # 127.0.0.1:9 (discard) is not a DNS server: the first attempt fails.
    res = await start_resolver(standin, upstreams=("127.0.0.1:9", f"127.0.0.1:{standin.port}"))
    try:
        r = await dig(res.port, "news.example", "A")
        assert [str(a.rdata) for a in r.rr] == ["192.0.2.7"]
    finally:
        await res.listeners.stop()


async def test_truncated_upstream_answer_is_retried_over_tcp(resolver: Resolver,
                                                             standin: StandIn) -> None:
    standin.truncate.add("big.example")
    standin.zone[("big.example", "TXT")] = [
        f'big.example. 300 IN TXT "{chr(97 + i) * 200}"' for i in range(4)]
    r = await dig(resolver.port, "big.example", "TXT", payload=4096)
    assert len(r.rr) == 4
    assert [p for p, _, _ in standin.queries] == ["udp", "tcp"]
    # A client with a small buffer is told to use TCP, then gets it all over TCP.
    small = await dig(resolver.port, "big.example", "TXT", edns=False)
    assert small.header.tc == 1 and not small.rr  # noqa: PT018
    q = make_query("big.example", "TXT", edns=False)
    (raw,) = await asyncio.to_thread(tcp_exchange, resolver.port, [bytes(q.pack())])
    assert len(DNSRecord.parse(raw).rr) == 4


async def test_tcp_pipelining(resolver: Resolver, standin: StandIn) -> None:
    standin.zone[("news.example", "A")] = ["news.example. 300 IN A 192.0.2.7"]
    qs = [make_query("news.example"), make_query("videohost.example"),
          make_query("nothing.example")]
    raws = await asyncio.to_thread(tcp_exchange, resolver.port, [bytes(q.pack()) for q in qs])
    got = {DNSRecord.parse(r).header.id: DNSRecord.parse(r) for r in raws}
    assert set(got) == {q.header.id for q in qs}
    assert [str(a.rdata) for a in got[qs[0].header.id].rr] == ["192.0.2.7"]
    assert [str(a.rdata) for a in got[qs[1].header.id].rr] == ["127.0.0.1"]
    assert got[qs[2].header.id].header.rcode == RCODE.NXDOMAIN


async def test_cache_respects_ttl_and_ages_answers(resolver: Resolver, standin: StandIn) -> None:
    now = [1000.0]
    resolver.server.clock = lambda: now[0]
    standin.zone[("news.example", "A")] = ["news.example. 30 IN A 192.0.2.7"]
    await dig(resolver.port, "news.example", "A")
    now[0] += 10
    r = await dig(resolver.port, "news.example", "A")
    assert r.rr[0].ttl == 20 and len(standin.queries) == 1  # noqa: PT018
    now[0] += 21
    await dig(resolver.port, "news.example", "A")
    assert len(standin.queries) == 2


async def test_negative_answers_are_cached_for_the_soa_minimum(resolver: Resolver,
                                                               standin: StandIn) -> None:
    now = [1000.0]
    resolver.server.clock = lambda: now[0]
    await dig(resolver.port, "nothing.example", "A")
    r = await dig(resolver.port, "nothing.example", "A")
    assert r.header.rcode == RCODE.NXDOMAIN and len(standin.queries) == 1  # noqa: PT018
    now[0] += 31  # SOA minimum is 30
    await dig(resolver.port, "nothing.example", "A")
    assert len(standin.queries) == 2


async def test_edns_and_do_get_separate_cache_entries(resolver: Resolver,
                                                      standin: StandIn) -> None:
    standin.zone[("news.example", "A")] = ["news.example. 300 IN A 192.0.2.7"]
    plain = await dig(resolver.port, "news.example", "A", edns=False)
    with_opt = await dig(resolver.port, "news.example", "A")
    with_do = await dig(resolver.port, "news.example", "A", do=True)
    assert not any(rr.rtype == QTYPE.OPT for rr in plain.ar)
    assert any(rr.rtype == QTYPE.OPT for rr in with_opt.ar)
    assert any(rr.rtype == QTYPE.OPT and rr.ttl & 0x8000 for rr in with_do.ar)
    assert len(standin.queries) == 3
