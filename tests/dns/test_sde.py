"""Structured DNS errors: EDE 16 text as the draft's JSON when the query opts in."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

from dnslib import EDNS0, DNSRecord, EDNSOption

from tests.blocklist.builders import T0
from tests.dns.support import (
    ACTS,
    Resolver,
    StandIn,
    block,
    ede_of,
    make_query,
    start_with_policy,
    udp_exchange,
)
from writ.blocklist import Blocklist, BlocklistHolder
from writ.dns import answers
from writ.dns.sde import Structured, opted_in
from writ.policies import DnsPolicy, PagesPolicy, Policy

REGISTER = "https://register.isp.example"


async def _start(standin: StandIn, acts: tuple = ACTS, **pages: str) -> Resolver:  # type: ignore[type-arg]
    dns = replace(DnsPolicy(), upstreams=(f"127.0.0.1:{standin.port}",), upstream_timeout=0.5)
    policy = Policy(operator="Example ISP", dns=dns, pages=PagesPolicy(**pages))  # type: ignore[arg-type]
    return await start_with_policy(policy, acts, batched=False, at=T0)


def _query(name: str, opt_in: bool, payload: int = 1232) -> DNSRecord:
    q = DNSRecord.question(name, "A")
    opts = [EDNSOption(10, b"\x01" * 8)]  # a client cookie, as dig sends
    if opt_in:
        opts.append(EDNSOption(15, b"\x00\x00"))  # the draft's opt-in: EDE 0, no text
    q.add_ar(EDNS0(udp_len=payload, opts=opts))
    return q


async def _ask(port: int, q: DNSRecord) -> DNSRecord:
    raw = await asyncio.to_thread(udp_exchange, port, bytes(q.pack()))
    assert raw is not None
    return DNSRecord.parse(raw)


async def test_opted_in_query_gets_json_others_plain_text(standin: StandIn) -> None:
    res = await _start(standin, register_url=REGISTER)
    try:
        for _ in range(2):  # the second round comes from the caches: still not mixed up
            code, text = ede_of(await _ask(res.port, _query("forum.example", True)))  # type: ignore[misc]
            assert code == 16
            assert json.loads(text) == {
                "c": [f"{REGISTER}/orders/EX-2016-0001", f"{REGISTER}/orders/EX-2016-0002"],
                "j": "blocked by court order EX-2016-0001, EX-2016-0002",
                "o": "Example ISP"}
            assert " " not in text.split('"j"')[0]  # minified
            plain = ede_of(await _ask(res.port, _query("forum.example", False)))
            assert plain == (16, "blocked by court order EX-2016-0001, EX-2016-0002")
    finally:
        await res.listeners.stop()


async def test_without_a_register_c_is_the_transparency_page(standin: StandIn) -> None:
    res = await _start(standin)
    try:
        _, text = ede_of(await _ask(res.port, _query("forum.example", True)))  # type: ignore[misc]
        assert json.loads(text)["c"] == ["https://isp.example/blocking"]
    finally:
        await res.listeners.stop()


async def test_json_shrinks_to_fit_512_bytes(standin: StandIn) -> None:
    many = tuple(block(f"EX-2016-{i:04d}", "crowded.example") for i in range(80))
    res = await _start(standin, acts=many, register_url=REGISTER)
    try:
        r = await _ask(res.port, _query("crowded.example", True, payload=512))
        assert len(r.pack()) <= 512
        assert not r.header.tc
        data = json.loads(ede_of(r)[1])  # type: ignore[index]
        assert data["c"][0] == f"{REGISTER}/orders/EX-2016-0000"
        assert data["j"].endswith("more)")
    finally:
        await res.listeners.stop()


def test_the_full_path_builds_the_same_json() -> None:
    """answers.blocked (dnslib path: odd names, chains) honours the opt-in too."""
    holder = BlocklistHolder()
    index = holder.set(Blocklist(ACTS), T0)
    d = index.decide_canonical_name("forum.example")
    request = DNSRecord.parse(bytes(_query("forum.example", True).pack()))
    edns = answers.edns_of(request)
    assert edns.sde
    structured = Structured("Example ISP", REGISTER, "https://isp.example/")
    body, _ = answers.blocked(request, d, DnsPolicy(), edns, 1232, structured=structured)
    assert json.loads(ede_of(DNSRecord.parse(body))[1])["o"] == "Example ISP"  # type: ignore[index]
    plain = DNSRecord.parse(bytes(make_query("forum.example").pack()))
    assert not answers.edns_of(plain).sde


def test_opt_in_is_exactly_ede_zero_without_text() -> None:
    assert opted_in(b"\x00\x0f\x00\x02\x00\x00")
    assert not opted_in(b"\x00\x0f\x00\x02\x00\x10")  # another INFO-CODE
    assert not opted_in(b"\x00\x0f\x00\x03\x00\x00x")  # with text
    assert not opted_in(b"\x00\x0f\x00")  # truncated
    assert opted_in(b"\x00\x0a\x00\x08" + b"c" * 8 + b"\x00\x0f\x00\x02\x00\x00")
