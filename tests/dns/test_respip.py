"""Response-IP policy on loopback: a stand-in upstream answers addresses inside
and outside blocked prefixes; answers holding a blocked address get the
policy's action with EDE 16 naming every order whose rule holds it, and the
audit record's rule is the prefix rule."""

from __future__ import annotations

import ipaddress
from datetime import UTC, date, datetime

import pytest
from dnslib import AAAA, QTYPE, RCODE, RR, DNSRecord

from tests.dns.support import ACTS, StandIn, dig, ede_of, start_resolver
from writ.blocklist import Act, ActKind, Blocklist, Target, TargetKind


def ip(text: str) -> Target:
    return Target(TargetKind.IP_PREFIX if "/" in text else TargetKind.IP, text)


def block(act_id: str, *targets: Target) -> Act:
    return Act(id=act_id, kind=ActKind.BLOCK, court="Test District Court", case="14/2016",
               issued=date(2015, 9, 7), effective=datetime(2015, 9, 7, tzinfo=UTC),
               targets=targets)


IP_ACTS = (
    *ACTS,
    block("IP-WIDE", ip("198.51.100.0/24"), ip("2001:db8::/48")),
    block("IP-NARROW", ip("198.51.100.0/28")),
    block("IP-HOST", ip("203.0.113.7")),
)

ZONE = {
    ("inside.example", "A"): ["inside.example. 300 IN A 198.51.100.200"],
    ("narrow.example", "A"): ["narrow.example. 300 IN A 198.51.100.9"],
    ("host.example", "A"): ["host.example. 300 IN A 203.0.113.7"],
    ("outside.example", "A"): ["outside.example. 300 IN A 198.51.101.9"],
    ("neighbour.example", "A"): ["neighbour.example. 300 IN A 203.0.113.8"],
    ("mixed.example", "A"): ["mixed.example. 300 IN A 198.51.101.1",
                             "mixed.example. 300 IN A 203.0.113.7",
                             "mixed.example. 300 IN A 198.51.100.9"],
    ("alias.example", "A"): ["alias.example. 300 IN CNAME cdn.hosting.example.",
                             "cdn.hosting.example. 300 IN A 198.51.100.50"],
    ("v6in.example", "AAAA"): ["v6in.example. 300 IN AAAA 2001:db8::5"],
    ("v6out.example", "AAAA"): ["v6out.example. 300 IN AAAA 2001:db8:1::5"],
    ("later.example", "A"): ["later.example. 300 IN A 192.0.2.44"],
}


def _mapped(data: bytes) -> bytes:
    """An AAAA answer holding an IPv4-mapped address (dnslib's zone parser has no such form)."""
    q = DNSRecord.parse(data)
    r = q.reply()
    mapped = tuple(ipaddress.ip_address("::ffff:203.0.113.7").packed)
    r.add_answer(RR(q.q.qname, QTYPE.AAAA, rdata=AAAA(mapped), ttl=300))
    return bytes(r.pack())


@pytest.fixture
async def standin_zone(standin: StandIn) -> StandIn:
    standin.zone.update(ZONE)
    standin.craft["mapped.example"] = _mapped
    return standin


@pytest.mark.parametrize(("name", "qtype", "orders", "rule"), [
    ("inside.example", "A", "IP-WIDE", "ip_prefix 198.51.100.0/24"),
    ("narrow.example", "A", "IP-NARROW, IP-WIDE", "ip_prefix 198.51.100.0/28"),
    ("host.example", "A", "IP-HOST", "ip 203.0.113.7"),
    ("mixed.example", "A", "IP-HOST, IP-NARROW, IP-WIDE", "ip 203.0.113.7"),
    ("alias.example", "A", "IP-WIDE", "ip_prefix 198.51.100.0/24"),
    ("v6in.example", "AAAA", "IP-WIDE", "ip_prefix 2001:db8::/48"),
    ("mapped.example", "AAAA", "IP-HOST", "ip 203.0.113.7"),
])
async def test_answers_inside_a_blocked_prefix_are_blocked(
        standin_zone: StandIn, name: str, qtype: str, orders: str, rule: str) -> None:
    res = await start_resolver(standin_zone, IP_ACTS, action="nxdomain")
    try:
        r = await dig(res.port, name, qtype)
        assert r.header.rcode == RCODE.NXDOMAIN
        assert not r.rr  # the blocked address is never shown
        assert ede_of(r) == (16, f"blocked by court order {orders}")
        rec = res.sink.records[-1]
        assert (rec["decision"], rec["action"], rec["rule"]) == ("block", "nxdomain", rule)
        assert rec["orders"] == orders.split(", ")
        assert rec["target"] == f"{name}. {qtype}"
    finally:
        await res.listeners.stop()


@pytest.mark.parametrize(("name", "qtype", "address"), [
    ("outside.example", "A", "198.51.101.9"),
    ("neighbour.example", "A", "203.0.113.8"),
    ("v6out.example", "AAAA", "2001:db8:1::5"),
])
async def test_answers_outside_pass(standin_zone: StandIn, name: str, qtype: str,
                                    address: str) -> None:
    res = await start_resolver(standin_zone, IP_ACTS)
    try:
        r = await dig(res.port, name, qtype)
        assert r.header.rcode == RCODE.NOERROR
        assert [str(a.rdata) for a in r.rr] == [address]
        assert ede_of(r) is None
    finally:
        await res.listeners.stop()


async def test_sinkhole_action_answers_the_block_page(standin_zone: StandIn) -> None:
    res = await start_resolver(standin_zone, IP_ACTS)  # the default action: sinkhole
    try:
        r = await dig(res.port, "inside.example", "A")
        assert [str(a.rdata) for a in r.rr] == ["127.0.0.1"]
        assert ede_of(r) == (16, "blocked by court order IP-WIDE")
    finally:
        await res.listeners.stop()


async def test_cached_answers_are_judged_again_when_the_blocklist_changes(
        standin_zone: StandIn) -> None:
    res = await start_resolver(standin_zone, IP_ACTS, action="nxdomain")
    try:
        first = await dig(res.port, "later.example", "A")
        assert [str(a.rdata) for a in first.rr] == ["192.0.2.44"]
        asked = len(standin_zone.queries)
        again = await dig(res.port, "later.example", "A")  # from the cache
        assert [str(a.rdata) for a in again.rr] == ["192.0.2.44"]
        assert len(standin_zone.queries) == asked
        later = (*IP_ACTS, block("IP-LATER", ip("192.0.2.0/24")))
        res.holder.set(Blocklist(later), datetime(2016, 1, 2, tzinfo=UTC))
        blocked = await dig(res.port, "later.example", "A")
        assert blocked.header.rcode == RCODE.NXDOMAIN
        assert ede_of(blocked) == (16, "blocked by court order IP-LATER")
        res.holder.set(Blocklist(IP_ACTS), datetime(2016, 1, 3, tzinfo=UTC))  # lifted again
        lifted = await dig(res.port, "later.example", "A")
        assert [str(a.rdata) for a in lifted.rr] == ["192.0.2.44"]
    finally:
        await res.listeners.stop()


async def test_other_record_types_are_not_judged_by_address(standin_zone: StandIn) -> None:
    standin_zone.zone[("txt.example", "TXT")] = ['txt.example. 300 IN TXT "198.51.100.9"']
    res = await start_resolver(standin_zone, IP_ACTS)
    try:
        r = await dig(res.port, "txt.example", "TXT")
        assert r.header.rcode == RCODE.NOERROR
        assert [QTYPE.get(a.rtype) for a in r.rr] == ["TXT"]
    finally:
        await res.listeners.stop()
