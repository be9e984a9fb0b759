"""HTTPS tunnels through Squid with the SNI judged vs the same Squid without.

    python bench/bench_squid_sni.py [--seconds S] [--pairs P] [--clients C]

What peeking costs (docs/operator.md, "HTTPS and the SNI"): two Squid
processes side by side on loopback, both on deploy/squid/squid.conf with
writ's ICAP service (`writ icap`, one process, shared):
- "sni": deploy/squid/sni.conf included: Squid peeks at every hello, asks
  `writ squid-sni` (one helper process per busy channel) and, as it splices,
  asks writ again over ICAP;
- "connect": without it: writ judges the CONNECT only, the hello is not read.
C client threads each open a tunnel (CONNECT allowed.example, a ClientHello
naming allowed.example), read the origin's first ServerHello byte and
close, for S seconds; P pairs, alternating which goes first. The origin is
a loopback TLS server (tests/icap/tls_origin.py). Prints tunnels/s and the
median time to the ServerHello per side, and their ratio. Everything listens
on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.icap.squid import Squid, is_openssl_build, squid_binary, writ_for_squid  # noqa: E402
from tests.icap.test_squid import start_writ  # noqa: E402
from tests.icap.tls_origin import TlsOrigin, client_hello  # noqa: E402
from tests.ports import free_port  # noqa: E402

ORDERS = """\
id: BENCH-SNI-1
court: Bench District Court
case: "1/2026"
issued: 2025-01-01
targets:
  - domain: blocked.example
"""


def tunnel(proxy: int, authority: str, data: bytes) -> float:
    """Seconds from connecting to the origin's first ServerHello byte."""
    start = time.perf_counter()
    with socket.create_connection(("127.0.0.1", proxy), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("proxy closed before answering the CONNECT")
            head += chunk
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"CONNECT refused: {head[:60]!r}")
        s.sendall(data)
        if s.recv(1) != b"\x16":
            raise RuntimeError("no ServerHello")
    return time.perf_counter() - start


def run(proxy: int, authority: str, seconds: float, clients: int) -> tuple[float, float]:
    """(tunnels/s, median seconds to the ServerHello) with `clients` threads."""
    data = client_hello("allowed.example")
    times: list[float] = []
    errors: list[BaseException] = []
    deadline = time.monotonic() + seconds

    def client() -> None:
        try:
            while time.monotonic() < deadline:
                times.append(tunnel(proxy, authority, data))
        except BaseException as e:  # reported after the run
            errors.append(e)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]!r}")
    return len(times) / (time.monotonic() - start), statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--pairs", type=int, default=6)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    binary = squid_binary()
    if binary is None or not is_openssl_build(binary):
        print("needs a Squid built with OpenSSL (Debian: squid-openssl)", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="writ-bench-sni-"))
    (work / "orders").mkdir()
    (work / "orders" / "orders.yaml").write_text(ORDERS)
    (work / "policy.yaml").write_text("node: bench-sni\n")
    (work / "origin").mkdir()
    lib = Path(tempfile.mkdtemp(prefix="writ-bench-sni-lib-"))  # (read by Squid's user)
    origin = TlsOrigin().start(work / "origin")
    icap = free_port()
    writ = start_writ(work, icap)
    names = ("allowed.example", "blocked.example")
    url = f"127.0.0.1:{icap}/writ"
    sni = Squid(binary, icap_url=url, names=names, sni_helper=writ_for_squid(lib))
    plain = Squid(binary, icap_url=url, names=names)
    try:
        sni.start()
        plain.start()
        sides = {"sni": sni.sni_port, "connect": plain.port}
        authority = f"allowed.example:{origin.port}"
        for port in sides.values():  # warm up: helpers started, connections pooled
            run(port, authority, 1, args.clients)
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in sides}
        for pair in range(args.pairs):
            order = list(sides) if pair % 2 == 0 else list(reversed(sides))
            for side in order:
                results[side].append(run(sides[side], authority, args.seconds, args.clients))
            print(f"pair {pair + 1}: " + ", ".join(
                f"{s} {results[s][-1][0]:.0f}/s {results[s][-1][1] * 1000:.1f} ms"
                for s in sides), flush=True)
        rates = {s: statistics.median(r for r, _ in results[s]) for s in sides}
        medians = {s: statistics.median(m for _, m in results[s]) * 1000 for s in sides}
        ratios = [a[0] / b[0] for a, b in zip(results["sni"], results["connect"], strict=True)]
        print(f"tunnels/s median: sni {rates['sni']:.0f}, connect {rates['connect']:.0f}; "
              f"ratio sni/connect median {statistics.median(ratios):.2f} "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f}); time to ServerHello median: "
              f"sni {medians['sni']:.1f} ms, connect {medians['connect']:.1f} ms")
    finally:
        sni.stop()
        plain.stop()
        writ.terminate()
        writ.wait(30)
        origin.close()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(lib, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
