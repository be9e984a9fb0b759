"""Block and steer answers built from bytes are the dnslib-built answers, byte for byte."""

from __future__ import annotations

from dataclasses import replace

import pytest
from dnslib import EDNS0, DNSRecord

from writ.blocklist import Decision, Verdict
from writ.dns import answers
from writ.dns.synth import Synth, wire_name
from writ.dns.wire import parse_query
from writ.policies import DnsPolicy

MANY = tuple(f"EX-2016-{i:04d}" for i in range(80))


def _query(name: str, qtype: str, payload: int | None, do: bool) -> bytes:
    q = DNSRecord.question(name, qtype)
    if payload is not None:
        q.add_ar(EDNS0(udp_len=payload, flags="do" if do else ""))
    return bytes(q.pack())


@pytest.mark.parametrize("action", ["sinkhole", "nxdomain", "refused"])
@pytest.mark.parametrize("addrs", [(("127.0.0.1",), ("::1",)), ((), ()),
                                   (("192.0.2.1", "192.0.2.2"), ("2001:db8::1",))])
@pytest.mark.parametrize("qtype", ["A", "AAAA", "MX", "HTTPS"])
def test_block_answers_match_dnslib(action: str, addrs: tuple[tuple[str, ...], ...],
                                    qtype: str) -> None:
    dns = replace(DnsPolicy(), action=action, sinkhole_ipv4=addrs[0], sinkhole_ipv6=addrs[1])
    synth = Synth(dns)
    for payload, do in [(None, False), (512, False), (1232, True), (4096, False), (0, True)]:
        for orders in [("EX-2015-0907-VH",), MANY]:
            for name in ["WWW.VideoHost.example", "x.test"]:
                data = _query(name, qtype, payload, do)
                request = answers.parse_request(data)
                assert request is not None
                edns = answers.edns_of(request)
                limit = edns.limit(False)
                want, action_name = answers.blocked(
                    request, Decision(Verdict.BLOCK, orders, "r"), dns, edns, limit)
                q = parse_query(data)
                assert q is not None
                got = synth.blocked(data, q, orders, limit)
                assert got == b"\0\0" + want[2:], (name, payload, do, len(orders))
                assert len(got) <= limit
                assert synth.action_name == action_name


@pytest.mark.parametrize("qtype", ["A", "AAAA", "HTTPS", "SVCB"])
@pytest.mark.parametrize("payload", [None, 1232])
def test_steer_answers_match_dnslib(qtype: str, payload: int | None) -> None:
    dns = replace(DnsPolicy(), steer_ipv4=("127.0.0.9",), steer_ipv6=("::9",))
    data = _query("Restored.example", qtype, payload, False)
    request = answers.parse_request(data)
    q = parse_query(data)
    assert request is not None and q is not None  # noqa: PT018
    want = answers.steered(request, dns, answers.edns_of(request))
    assert Synth(dns).steered(data, q) == b"\0\0" + want[2:]


def test_other_types_are_not_steered_from_bytes() -> None:
    data = _query("restored.example", "MX", None, False)
    q = parse_query(data)
    assert q is not None
    assert Synth(DnsPolicy()).steered(data, q) is None  # forwarded by the full path


@pytest.mark.parametrize(("wire", "name"), [
    (b"\x03www\x09VideoHost\x07example\x00", "www.videohost.example"),
    (b"\x0cxn--e1afmkfd\x0bxn--80ao21a\x00", "xn--e1afmkfd.xn--80ao21a"),
    (b"\x03a_b\x04test\x00", "a_b.test"),
    (b"\x03a.b\x04test\x00", None),  # a dot inside a label: the full path decides
    (b"\x03a b\x04test\x00", None),  # odd bytes: the full path decides
    (b"\x02-a\x04test\x00", None),
    (b"\x04xn--\x04test\x00", None),  # bad punycode
    (b"\x00", None),  # the root
])
def test_wire_name(wire: bytes, name: str | None) -> None:
    data = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + wire + b"\x00\x01\x00\x01"
    q = parse_query(data)
    assert q is not None
    assert wire_name(data, q.qend) == name
