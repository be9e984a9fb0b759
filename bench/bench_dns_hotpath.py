"""writ dns hot path, in process: µs per datagram through the UDP protocol handler.

    python bench/bench_dns_hotpath.py [--quick] [--names N] [--packets N] [--profile]

Times are CPU time of the serving thread (time.thread_time: user + kernel), so
other load on a shared machine inflates them less than wall time. No sockets
on the hot path: prebuilt query packets go straight into the UDP
protocol's `datagram_received`, answers into a counting transport. A stand-in
upstream on 127.0.0.1 fills the cache first, so allowed names are cache hits,
as they are in bench_dns.py after the first second. Less disturbed by other
load on a shared machine than dnsperf, and profilable (`--profile`: cProfile).

The `batched socket` rows go through the recvmmsg/sendmmsg listener on a real
loopback socket (bursts of 256 queries; system calls included, the client's
work not). Mixes (same names as bench_dns.py): allowed cache hits; blocked names never
asked before (block answer built); blocked names asked again (cache hits, each
still logged); and the bench_dns.py mix (10% blocked from N names, 90% allowed
from 1,000). The audit sink is the one the worker processes use (batching to a
multiprocessing queue that another process drains), so its cost counts.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import socket
import struct
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from writ.blocklist import (  # noqa: E402 (after the path tweak: runnable as a script)
    Act,
    ActKind,
    Blocklist,
    BlocklistHolder,
    Target,
    TargetKind,
)
from writ.dns.server import DnsServer  # noqa: E402
from writ.dns.transport import _Udp  # noqa: E402
from writ.metrics import Metrics  # noqa: E402
from writ.policies import DnsPolicy, Policy  # noqa: E402
from writ.workers import QueueSink  # noqa: E402

T0 = datetime(2016, 1, 1, tzinfo=UTC)
CLIENT = ("127.0.0.1", 40000)


def blocked_name(i: int) -> str:
    return f"n{i}.blocked{i % 97}.test"


def packet(qid: int, name: str, qtype: int = 1) -> bytes:
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", qtype, 1)


class _Counter:
    """A DatagramTransport that counts what would be sent."""

    def __init__(self) -> None:
        self.sent = 0

    def sendto(self, data: bytes, addr: object = None) -> None:
        self.sent += 1

    def is_closing(self) -> bool:
        return False


class _StandIn(asyncio.DatagramProtocol):
    """Answers every A query with 192.0.2.1, TTL 3600 (Unbound's local-data in bench_dns)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: Any = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        end = data.index(b"\0", 12) + 5
        hdr = data[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
        rr = b"\xc0\x0c\x00\x01\x00\x01" + struct.pack("!IH", 3600, 4) + bytes((192, 0, 2, 1))
        self.t.sendto(hdr + data[12:end] + rr, addr)


def _drain(queue: Any, drained: Any) -> None:
    while (item := queue.get()) is not None:
        drained.value += len(item) if isinstance(item, list) else 1


async def _feed(proto: _Udp, server: DnsServer, pkts: list[bytes], chunk: int = 256) -> float:
    recv = proto.datagram_received
    t0 = time.thread_time()
    for i in range(0, len(pkts), chunk):
        for p in pkts[i : i + chunk]:
            recv(p, CLIENT)
        if server.tasks:  # misses: let the full path finish as the loop would
            await asyncio.wait(set(server.tasks))
    return (time.thread_time() - t0) / len(pkts) * 1e6


class _Batched:
    """The recvmmsg/sendmmsg listener on a real loopback socket; only its callback is timed.

    A client socket sends a burst of queries (untimed), the listener's read
    callback answers them (timed: the kernel's work for recvmmsg/sendmmsg
    included), the client reads the answers (untimed).
    """

    def __init__(self, server: DnsServer) -> None:
        from writ.dns.mmsg import BatchUdp

        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        srv.bind(("127.0.0.1", 0))
        srv.setblocking(False)
        self.udp = BatchUdp(server, srv)
        self.cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.cli.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.cli.connect(srv.getsockname())
        self.cli.setblocking(False)
        self.answers = 0

    def run(self, pkts: list[bytes]) -> float:
        spent = 0.0
        for p in pkts:
            self.cli.send(p)
        t0 = time.thread_time()
        self.udp._readable()
        while self.udp._round():
            pass
        spent += time.thread_time() - t0
        while True:
            try:
                self.cli.recv(4096)
                self.answers += 1
            except BlockingIOError:
                break
        return spent

    def close(self) -> None:
        self.udp.close()
        self.cli.close()


async def _feed_batched(b: _Batched, server: DnsServer, pkts: list[bytes],
                        chunk: int = 256) -> float:
    spent = 0.0
    for i in range(0, len(pkts), chunk):
        spent += b.run(pkts[i : i + chunk])
        if server.tasks:
            await asyncio.wait(set(server.tasks))
            spent += b.run([])  # answers the full path produced are already sent
    return spent / len(pkts) * 1e6


async def run(names: int, n: int, profile: bool) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    up, _ = await loop.create_datagram_endpoint(_StandIn, local_addr=("127.0.0.1", 0))
    port = up.get_extra_info("sockname")[1]
    act = Act(id="BENCH-0001", kind=ActKind.BLOCK, court="Bench Court", case="0/0",
              issued=date(2015, 9, 7), effective=datetime(2015, 9, 7, tzinfo=UTC),
              targets=tuple(Target(TargetKind.DOMAIN, blocked_name(i)) for i in range(names)))
    holder = BlocklistHolder()
    holder.set(Blocklist((act,)), T0)
    # The per-client limit on, as in bench_dns.py, but never reached: one client sends it all.
    policy = Policy(dns=DnsPolicy(upstreams=(f"127.0.0.1:{port}",), client_qps=100_000_000))
    ctx = multiprocessing.get_context("fork")
    queue: Any = ctx.Queue()
    drained: Any = ctx.Value("q", 0)
    drainer = ctx.Process(target=_drain, args=(queue, drained), daemon=True)
    drainer.start()  # another process, as the node's audit writer is
    sink = QueueSink(queue)
    server = DnsServer(holder, policy, sink, metrics=Metrics())  # as writ.node wires it
    proto = _Udp(server)
    proto.connection_made(_Counter())  # type: ignore[arg-type]
    allowed = [f"a{i}.allowed.test" for i in range(1000)]
    rng = random.Random(7)
    warmup = [packet(i & 0xFFFF, a) for i, a in enumerate(allowed)]
    await _feed(proto, server, warmup)  # fills the cache
    out: dict[str, float] = {}
    out["allowed hit"] = await _feed(
        proto, server, [packet(i & 0xFFFF, rng.choice(allowed)) for i in range(n)])
    fresh = [blocked_name(i) for i in rng.sample(range(names), min(n, names))]
    out["blocked miss"] = await _feed(
        proto, server, [packet(i & 0xFFFF, b) for i, b in enumerate(fresh)])
    out["blocked hit"] = await _feed(
        proto, server, [packet(i & 0xFFFF, rng.choice(fresh)) for i in range(n)])
    server.cache.clear()
    await _feed(proto, server, warmup)
    mix = [blocked_name(rng.randrange(names)) if rng.random() < 0.1 else rng.choice(allowed)
           for _ in range(n)]
    pkts = [packet(i & 0xFFFF, m) for i, m in enumerate(mix)]
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        out["bench mix (cold blocked)"] = await _feed(proto, server, pkts)
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(18)
    else:
        out["bench mix (cold blocked)"] = await _feed(proto, server, pkts)
    out["bench mix (warm)"] = await _feed(proto, server, pkts)
    from writ.dns import mmsg

    if mmsg.available():
        batched = _Batched(server)
        server.cache.clear()
        server.memo = {}
        await _feed_batched(batched, server, warmup)
        out["batched socket: bench mix (cold blocked)"] = await _feed_batched(
            batched, server, pkts)
        out["batched socket: bench mix (warm)"] = await _feed_batched(batched, server, pkts)
        batched.close()
    flush = getattr(sink, "flush", None)
    if flush is not None:
        flush()
    queue.put(None)
    drainer.join(timeout=10)
    out["audit records drained"] = float(drained.value)
    up.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer names and packets")
    ap.add_argument("--names", type=int, default=None)
    ap.add_argument("--packets", type=int, default=None)
    ap.add_argument("--profile", action="store_true", help="cProfile the cold bench mix")
    a = ap.parse_args(argv)
    names = a.names or (20_000 if a.quick else 100_000)
    n = a.packets or (20_000 if a.quick else 100_000)
    try:
        import uvloop
    except ImportError:
        res = asyncio.run(run(names, n, a.profile))
    else:
        res = uvloop.run(run(names, n, a.profile))
    print(f"# bench_dns_hotpath: {names} blocked names, {n} packets per mix, one process")
    print("| mix | µs/packet | packets/s (one core) |")
    print("| --- | ---: | ---: |")
    for k, v in res.items():
        if k.startswith("audit"):
            continue
        print(f"| {k} | {v:.2f} | {1e6 / v:.0f} |")
    print(f"audit records drained: {res['audit records drained']:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
