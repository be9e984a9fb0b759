"""`writ export rpz` for ip/ip_prefix targets: Response IP (`rpz-ip`) triggers
that BIND's named-checkzone accepts and that a real Unbound enforces on the
same answers writ's index blocks."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord

from tests.export.standin import udp_standin
from tests.export.test_rpz import _tool, start_unbound
from writ.blocklist import Act, ActKind, Blocklist, Target, TargetKind, fold
from writ.export import RpzAction, RpzOptions, render_rpz

T0 = datetime(2020, 1, 1, tzinfo=UTC)
AT = datetime(2020, 6, 1, tzinfo=UTC)


def ip(text: str) -> Target:
    return Target(TargetKind.IP_PREFIX if "/" in text else TargetKind.IP, text)


def block(id_: str, *targets: Target) -> Act:
    return Act(id_, ActKind.BLOCK, "Court", "1/2020", date(2020, 1, 1), T0, targets=targets)


ACTS = (
    block("IP-WIDE", ip("198.51.100.0/24"), ip("2001:db8::/48")),
    block("IP-NARROW", ip("198.51.100.0/28"), ip("203.0.113.7"), ip("2001:db8:5::7")),
    block("IP-LIFTED", ip("192.0.2.0/24")),
    Act("IP-LIFTED-R", ActKind.RESTORE, "Court", "1/2020", date(2020, 2, 1), T0,
        amends="IP-LIFTED"),
)

# What the stand-in upstream answers: name -> addresses (A and AAAA).
ANSWERS = {
    "inside.example": ["198.51.100.200"],
    "narrow.example": ["198.51.100.9"],
    "host.example": ["203.0.113.7"],
    "neighbour.example": ["203.0.113.8"],
    "outside.example": ["198.51.101.9"],
    "mixed.example": ["198.51.101.1", "198.51.100.1"],  # one address inside is enough
    "restored.example": ["192.0.2.10"],
    "v6in.example": ["2001:db8::5"],
    "v6host.example": ["2001:db8:5::7"],
    "v6out.example": ["2001:db8:1::5"],
}


def zone(options: RpzOptions | None = None) -> str:
    return render_rpz(fold(ACTS, AT), "v1", options, {a.id: a for a in ACTS})


def test_ip_rules_become_rpz_ip_triggers() -> None:
    lines = zone().splitlines()
    assert "24.0.100.51.198.rpz-ip CNAME . ; ip_prefix 198.51.100.0/24 IP-WIDE" in lines
    assert "28.0.100.51.198.rpz-ip CNAME . ; ip_prefix 198.51.100.0/28 IP-NARROW" in lines
    assert "32.7.113.0.203.rpz-ip CNAME . ; ip 203.0.113.7 IP-NARROW" in lines
    assert "48.zz.db8.2001.rpz-ip CNAME . ; ip_prefix 2001:db8::/48 IP-WIDE" in lines
    assert "128.7.zz.5.db8.2001.rpz-ip CNAME . ; ip 2001:db8:5::7 IP-NARROW" in lines
    assert not any("192.0.2" in line or "2.0.192" in line for line in lines)  # restored


def test_ip_triggers_load_in_named_checkzone(tmp_path: Path) -> None:
    checkzone = _tool("named-checkzone", required_in_ci=True)
    for options in (RpzOptions(), RpzOptions(action=RpzAction.SINKHOLE,
                                             sinkhole=("192.0.2.80", "2001:db8::80"))):
        path = tmp_path / "writ.rpz"
        path.write_text(zone(options), encoding="utf-8")
        r = subprocess.run([checkzone, "rpz.writ.", str(path)], capture_output=True,
                           text=True, timeout=30, check=False)
        assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def upstream() -> Iterator[int]:
    """A loopback DNS server answering ANSWERS (A and AAAA records)."""

    def answer(q: DNSRecord, reply: DNSRecord) -> None:
        for addr in ANSWERS.get(str(q.q.qname).rstrip("."), []):
            if q.q.qtype == QTYPE.A and ":" not in addr:
                reply.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(addr), ttl=60))
            elif q.q.qtype == QTYPE.AAAA and ":" in addr:
                reply.add_answer(RR(q.q.qname, QTYPE.AAAA, rdata=AAAA(addr), ttl=60))

    with udp_standin(answer) as port:
        yield port


def _ask(port: int, name: str, qtype: str) -> tuple[str, list[str]]:
    q = DNSRecord.question(name, qtype)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(q.pack(), ("127.0.0.1", port))
        r = DNSRecord.parse(s.recv(4096))
    return RCODE.get(r.header.rcode), sorted(str(rr.rdata) for rr in r.rr
                                             if rr.rtype in (QTYPE.A, QTYPE.AAAA))


@pytest.mark.e2e
def test_unbound_blocks_the_answers_writ_blocks(tmp_path: Path, upstream: int) -> None:
    binary = _tool("unbound", required_in_ci=False)

    path = tmp_path / "writ.rpz"
    path.write_text(zone(), encoding="utf-8")
    proc, port = start_unbound(binary, tmp_path, path, upstream)
    index = Blocklist(ACTS).at(AT)
    try:
        for name, addrs in ANSWERS.items():
            writ_blocks = any(index.decide_ip(a).blocked for a in addrs)
            qtype = "AAAA" if ":" in addrs[0] else "A"
            rcode, got = _ask(port, name, qtype)
            if writ_blocks:
                assert (rcode, got) == ("NXDOMAIN", []), name
            else:
                assert (rcode, got) == ("NOERROR", sorted(addrs)), name
        blocked = {n for n, a in ANSWERS.items() if any(index.decide_ip(x).blocked for x in a)}
        assert blocked == {"inside.example", "narrow.example", "host.example", "mixed.example",
                           "v6in.example", "v6host.example"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
