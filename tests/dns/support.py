"""Loopback helpers for the resolver: a stand-in upstream, the resolver, a dig-like client.

The stand-in upstream answers from a dict of zone lines; names in `silent`
get no answer at all, names in `truncate` get TC=1 over UDP (and the full
answer over TCP). For a hostile upstream, `craft[name]` turns the query into
whatever bytes it likes (None: silence). Everything listens on 127.0.0.1 port 0.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime

import pytest
from dnslib import EDNS0, QTYPE, RCODE, RR, DNSRecord

from writ.audit import MemorySink
from writ.blocklist import Act, ActKind, Blocklist, BlocklistHolder, Target, TargetKind
from writ.dns.server import DnsServer
from writ.dns.transport import Listeners
from writ.policies import DnsPolicy, Policy

T0 = datetime(2016, 1, 1, tzinfo=UTC)


def block(act_id: str, *hosts: str, urls: tuple[Target, ...] = ()) -> Act:
    return Act(
        id=act_id, kind=ActKind.BLOCK, court="Test District Court", case="1/2016",
        issued=date(2015, 9, 7), effective=datetime(2015, 9, 7, tzinfo=UTC),
        targets=tuple(Target(TargetKind.DOMAIN, h) for h in hosts) + urls)


def restore(act_id: str, amends: str, host: str, keep: tuple[Target, ...]) -> Act:
    return Act(
        id=act_id, kind=ActKind.RESTORE, court="Test District Court", case="1/2016",
        issued=date(2015, 9, 28), effective=datetime(2015, 9, 28, tzinfo=UTC),
        amends=amends, restores=(Target(TargetKind.DOMAIN, host),), keep_blocked=keep)


def url(host: str, path: str) -> Target:
    return Target(TargetKind.URL, host, path)


ACTS = (
    block("EX-2015-0907-VH", "videohost.example", "restored.example"),
    block("EX-2016-0001", "forum.example"),
    block("EX-2016-0002", "forum.example", "xn--e1afmkfd.xn--80ao21a"),
    restore("EX-2015-0928-VH-R", "EX-2015-0907-VH", "restored.example",
            (url("restored.example", "/v/136071201"),)),
)

# An order blocking videohost.example (as ACTS' first does), for a `writ dns` process
ORDER = """\
id: EX-2015-0907-VH
court: Test District Court
case: "1/2015"
issued: 2015-09-07
targets:
  - domain: videohost.example
"""


@dataclass
class StandIn:
    """A tiny authoritative-ish upstream answering from `zone`."""

    zone: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)
    truncate: set[str] = field(default_factory=set)
    craft: dict[str, Callable[[bytes], bytes | None]] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)  # seconds before a UDP answer
    last_delay: float = 0.0
    queries: list[tuple[str, str, str]] = field(default_factory=list)  # (proto, name, type)
    port: int = 0

    def reply(self, data: bytes, tcp: bool) -> bytes | None:
        raw = _raw_question(data)
        if raw is not None and raw[0] in self.craft:
            self.queries.append(("tcp" if tcp else "udp", raw[0], QTYPE.get(raw[1])))
            self.last_delay = self.delay.get(raw[0], 0.0)
            return self.craft[raw[0]](data)
        try:
            q = DNSRecord.parse(data)
        except Exception:
            return None
        name = str(q.q.qname).rstrip(".").lower()
        qtype = QTYPE.get(q.q.qtype)
        self.queries.append(("tcp" if tcp else "udp", name, qtype))
        self.last_delay = self.delay.get(name, 0.0)
        if name in self.silent:
            return None
        r = q.reply()
        if name in self.truncate and not tcp:
            r.header.tc = 1
            return bytes(r.pack())
        lines = self.zone.get((name, qtype)) or self.zone.get((name, "*"))
        if lines is None:
            r.header.rcode = RCODE.NXDOMAIN
            r.add_auth(*RR.fromZone("example. 300 IN SOA ns.example. h.example. 1 2 3 4 30"))
        else:
            for line in lines:
                r.add_answer(*RR.fromZone(line))
        return bytes(r.pack())


def _raw_question(data: bytes) -> tuple[str, int] | None:
    """(name as latin-1 text, lowercased; qtype) of a query's plain question."""
    pos, labels = 12, []
    while pos < len(data) and data[pos]:
        labels.append(data[pos + 1 : pos + 1 + data[pos]].decode("latin-1").lower())
        pos += data[pos] + 1
    if pos + 5 > len(data):
        return None
    return ".".join(labels), struct.unpack_from("!H", data, pos + 1)[0]


class _UdpProto(asyncio.DatagramProtocol):
    def __init__(self, standin: StandIn) -> None:
        self.standin = standin

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        out = self.standin.reply(data, False)
        if out is None:
            return
        wait = self.standin.last_delay
        if wait:
            asyncio.get_running_loop().call_later(
                wait, self.transport.sendto, out, addr)  # type: ignore[attr-defined]
        else:
            self.transport.sendto(out, addr)  # type: ignore[attr-defined]


@pytest.fixture
async def standin() -> AsyncIterator[StandIn]:
    s = StandIn()
    loop = asyncio.get_running_loop()

    async def tcp_client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                (n,) = struct.unpack("!H", await r.readexactly(2))
                out = s.reply(await r.readexactly(n), True)
                if out is not None:
                    w.write(struct.pack("!H", len(out)) + out)
        except (asyncio.IncompleteReadError, ConnectionError):
            w.close()

    for attempt in range(8):  # port 0 for UDP may pick a port whose TCP twin is taken
        udp, _ = await loop.create_datagram_endpoint(lambda: _UdpProto(s),
                                                     local_addr=("127.0.0.1", 0))
        s.port = udp.get_extra_info("sockname")[1]
        try:
            tcp = await asyncio.start_server(tcp_client, "127.0.0.1", s.port)
            break
        except OSError:
            udp.close()
            if attempt == 7:
                raise
    yield s
    udp.close()
    tcp.close()


@dataclass
class Resolver:
    server: DnsServer
    listeners: Listeners
    holder: BlocklistHolder
    sink: MemorySink
    port: int


async def start_resolver(standin: StandIn, acts: tuple[Act, ...] = ACTS,
                         batched: bool = True, **dns: object) -> Resolver:
    dns.setdefault("upstreams", (f"127.0.0.1:{standin.port}",))
    dns.setdefault("upstream_timeout", 0.5)
    policy = Policy(dns=replace(DnsPolicy(), **dns))  # type: ignore[arg-type]
    return await start_with_policy(policy, acts, batched)


async def start_with_policy(policy: Policy, acts: tuple[Act, ...] = ACTS,
                            batched: bool = True, at: datetime = T0) -> Resolver:
    """A resolver on 127.0.0.1 (a free port) enforcing `acts` at `at` under `policy`."""
    holder = BlocklistHolder()
    holder.set(Blocklist(acts), at)
    sink = MemorySink()
    server = DnsServer(holder, policy, sink)
    listeners = Listeners(server, idle=2.0, max_conns=8, batched=batched)
    await listeners.start([("127.0.0.1", 0)])
    return Resolver(server, listeners, holder, sink, listeners.addresses[0][1])


@pytest.fixture(params=["mmsg", "protocol"])
async def resolver(standin: StandIn, request: pytest.FixtureRequest) -> AsyncIterator[Resolver]:
    """The resolver, once with batched UDP (recvmmsg/sendmmsg), once with a datagram protocol."""
    r = await start_resolver(standin, batched=request.param == "mmsg")
    yield r
    await r.listeners.stop()


# -- the dig-equivalent client (blocking sockets; call through asyncio.to_thread) --

def make_query(name: str, qtype: str = "A", edns: bool = True, do: bool = False,
               payload: int = 1232) -> DNSRecord:
    q = DNSRecord.question(name, qtype)
    if edns:
        q.add_ar(EDNS0(udp_len=payload, flags="do" if do else ""))
    return q


def udp_exchange(port: int, data: bytes, timeout: float = 2.0,
                 host: str = "127.0.0.1") -> bytes | None:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(data, (host, port))
        try:
            return s.recv(65535)
        except TimeoutError:
            return None


def tcp_exchange(port: int, queries: list[bytes], timeout: float = 3.0) -> list[bytes]:
    """Send every query back to back on one connection, then read as many answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"".join(struct.pack("!H", len(q)) + q for q in queries))
        out = []
        buf = b""
        while len(out) < len(queries):
            while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
                chunk = s.recv(65535)
                if not chunk:
                    return out
                buf += chunk
            n = struct.unpack("!H", buf[:2])[0]
            out.append(buf[2 : 2 + n])
            buf = buf[2 + n :]
        return out


def tcp_ask_from(port: int, name: str, source: str) -> bytes | None:
    """One A query over a new TCP connection from `source` (a loopback address):
    the answer, or None when the resolver refuses, resets or stays silent."""
    with socket.socket() as s:
        s.settimeout(3)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        q = bytes(make_query(name).pack())
        s.sendall(struct.pack("!H", len(q)) + q)
        try:
            n = struct.unpack("!H", s.recv(2))[0]
            body = b""
            while len(body) < n:
                chunk = s.recv(n - len(body))
                if not chunk:
                    return None
                body += chunk
        except (struct.error, ConnectionError, TimeoutError):
            return None
        return body


async def dig(port: int, name: str, qtype: str = "A", **kw: object) -> DNSRecord:
    q = make_query(name, qtype, **kw)  # type: ignore[arg-type]
    raw = await asyncio.to_thread(udp_exchange, port, bytes(q.pack()))
    assert raw is not None, f"no answer for {name} {qtype}"
    r = DNSRecord.parse(raw)
    assert r.header.id == q.header.id
    return r


def ede_of(r: DNSRecord) -> tuple[int, str] | None:
    for rr in r.ar:
        if rr.rtype == QTYPE.OPT:
            for opt in rr.rdata:
                if opt.code == 15:
                    return struct.unpack("!H", opt.data[:2])[0], opt.data[2:].decode()
    return None


def has_opt(r: DNSRecord) -> bool:
    return any(rr.rtype == QTYPE.OPT for rr in r.ar)
