"""Blocked names get the policy's action and EDE 16 naming the orders."""

from __future__ import annotations

import pytest
from dnslib import QTYPE, RCODE

from tests.dns.support import Resolver, StandIn, dig, ede_of, has_opt, start_resolver


async def test_sinkhole_answers_block_page_address_with_ede_naming_the_order(
        resolver: Resolver) -> None:
    r = await dig(resolver.port, "www.videohost.example", "A")
    assert r.header.rcode == RCODE.NOERROR
    assert [str(a.rdata) for a in r.rr] == ["127.0.0.1"]
    assert ede_of(r) == (16, "blocked by court order EX-2015-0907-VH")
    rec = resolver.sink.records[-1]
    assert rec["target"] == "www.videohost.example. A"
    assert (rec["decision"], rec["action"]) == ("block", "sinkhole")
    assert rec["orders"] == ["EX-2015-0907-VH"]
    assert rec["blocklist_version"] == resolver.holder.index.version  # type: ignore[union-attr]


async def test_sinkhole_other_types_get_nodata_with_soa(resolver: Resolver) -> None:
    r = await dig(resolver.port, "videohost.example", "MX")
    assert r.header.rcode == RCODE.NOERROR and not r.rr  # noqa: PT018
    assert [QTYPE.get(a.rtype) for a in r.auth] == ["SOA"]


async def test_all_orders_are_named(resolver: Resolver) -> None:
    r = await dig(resolver.port, "forum.example", "AAAA")
    assert [str(a.rdata) for a in r.rr] == ["::1"]
    assert ede_of(r) == (16, "blocked by court order EX-2016-0001, EX-2016-0002")


@pytest.mark.parametrize(("action", "rcode", "soa"), [
    ("nxdomain", RCODE.NXDOMAIN, True),
    ("refused", RCODE.REFUSED, False),
])
async def test_other_actions(standin: StandIn, action: str, rcode: int, soa: bool) -> None:
    res = await start_resolver(standin, action=action)
    try:
        r = await dig(res.port, "videohost.example", "A")
        assert r.header.rcode == rcode and not r.rr  # noqa: PT018
        assert bool(r.auth) is soa
        assert ede_of(r) == (16, "blocked by court order EX-2015-0907-VH")
        assert res.sink.records[-1]["action"] == action
    finally:
        await res.listeners.stop()


async def test_no_opt_in_query_means_no_opt_in_answer(resolver: Resolver) -> None:
    r = await dig(resolver.port, "videohost.example", "A", edns=False)
    assert [str(a.rdata) for a in r.rr] == ["127.0.0.1"]
    assert not has_opt(r)
    assert resolver.sink.records[-1]["decision"] == "block"


async def test_do_bit_is_echoed(resolver: Resolver) -> None:
    r = await dig(resolver.port, "videohost.example", "A", do=True)
    opt = next(rr for rr in r.ar if rr.rtype == QTYPE.OPT)
    assert opt.ttl & 0x8000


async def test_idn_name_is_blocked_under_its_punycode(resolver: Resolver) -> None:
    # пример.қаз is ordered as xn--e1afmkfd.xn--80ao21a; clients send the punycode.
    r = await dig(resolver.port, "www.xn--e1afmkfd.xn--80ao21a", "A")
    assert ede_of(r) == (16, "blocked by court order EX-2016-0002")


async def test_case_is_ignored_and_echoed(resolver: Resolver) -> None:
    r = await dig(resolver.port, "WWW.VideoHost.Example", "A")
    assert str(r.q.qname) == "WWW.VideoHost.Example."
    assert [str(a.rdata) for a in r.rr] == ["127.0.0.1"]
    r2 = await dig(resolver.port, "www.videohost.EXAMPLE", "A")  # cache hit, other case
    assert str(r2.q.qname) == "www.videohost.EXAMPLE."
    assert [str(a.rdata) for a in r2.rr] == ["127.0.0.1"]
    assert len(resolver.sink.records) == 2  # cache hits are logged too


async def test_ede_text_is_cut_to_fit_a_small_udp_size(standin: StandIn) -> None:
    from tests.dns.support import block
    many = tuple(block(f"EX-2016-{i:04d}", "crowded.example") for i in range(80))
    res = await start_resolver(standin, acts=many)
    try:
        r = await dig(res.port, "crowded.example", "A", payload=512)
        assert not r.header.tc
        code, text = ede_of(r)  # type: ignore[misc]
        assert code == 16 and text.startswith("blocked by court order EX-2016-0000")  # noqa: PT018
        assert text.endswith("more)")
        assert len(r.pack()) <= 512
        assert len(res.sink.records[-1]["orders"]) == 80  # the log keeps them all
    finally:
        await res.listeners.stop()
