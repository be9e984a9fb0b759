"""writ dns vs Unbound on response-IP policy: the same prefixes as rpz-ip triggers.

    python bench/bench_dns_ip.py [--quick] [--prefixes N] [--duration S] [--threads N]
                                 [--repeat R]

- N prefixes and addresses (default 100,000; bench_ip.py's generator: 70% IPv4,
  30% IPv6): one court order (bulk list) for writ, `rpz-ip` triggers (written
  by writ's own RPZ exporter, `rpz_ip_owner`) for Unbound.
- 1,000 names answered by a plain upstream Unbound (local-data, no RPZ); 10%
  of them answer an address inside a rule, the rest 192.0.2.1. Both measured
  servers forward to that upstream and cache: writ dns (audit on) and an
  Unbound with the rpz-ip zone (`respip` module).
- Query file: 200,000 A queries over those names; one unmeasured warm-up pass
  each, then R alternating unbound/writ dnsperf runs (bench_dns.py's helpers:
  QPS, p50/p99, server CPU µs/query).
Goal (issue 14): writ at least 0.8 times Unbound's QPS. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_dns import (  # noqa: E402
    _UNBOUND_COMMON as SERVER,
)
from bench.bench_dns import (  # noqa: E402
    children,
    dnsperf,
    ensure_tools,
    start_writ,
    stop,
    wait_dns,
    warm,
)
from bench.bench_ip import _text, rules  # noqa: E402
from tests.ports import free_dns_port as free_port  # noqa: E402


def write_inputs(d: Path, n_prefixes: int, n_names: int, n_queries: int) -> tuple[str, str]:
    """Write every input; (a name answered inside a rule, a name answered outside)."""
    from writ.blocklist.ipaddr import canonical_ip
    from writ.export.rpz import rpz_ip_owner

    table = rules(n_prefixes)
    texts = list(dict.fromkeys(_text(*r) for r in table))
    (d / "orders" / "lists").mkdir(parents=True)
    (d / "orders" / "lists" / "ips.txt").write_text("\n".join(texts) + "\n")
    (d / "orders" / "bench.yaml").write_text(
        "id: BENCH-IP-DNS\ncourt: Bench Court\ncase: \"14/0\"\nissued: 2015-09-07\n"
        "targets:\n  - file: lists/ips.txt\n")
    with (d / "rpz.zone").open("w") as f:
        f.write("$TTL 60\n@ SOA localhost. root.localhost. 1 3600 600 86400 60\n@ NS localhost.\n")
        for t in texts:
            f.write(f"{rpz_ip_owner(canonical_ip(t))} CNAME .\n")
    rng = random.Random(7)
    v4 = [(net, plen) for fam, plen, net in table if fam == 4]
    local = ['local-zone: "allowed.example." static\n']
    inside = outside = ""
    for i in range(n_names):
        name = f"a{i}.allowed.example"
        if rng.random() < 0.1:  # an address inside a rule
            inside = inside or name
            net, plen = rng.choice(v4)
            a = net | rng.getrandbits(32 - plen) if plen < 32 else net
            addr = f"{a >> 24}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}"
        else:
            outside = outside or name
            addr = "192.0.2.1"
        local.append(f'local-data: "{name}. 3600 IN A {addr}"\n')
    (d / "upstream.conf").write_text(
        SERVER.format(port="{port}", threads=1, d=d, name="upstream") + "".join(local))
    with (d / "queries.txt").open("w") as f:
        for _ in range(n_queries):
            f.write(f"a{rng.randrange(n_names)}.allowed.example A\n")
    return inside, outside


def answer(port: int, name: str) -> tuple[str, list[str]]:
    """(rcode, A records) of one query: the bench checks both servers block alike."""
    import socket

    from dnslib import QTYPE, RCODE, DNSRecord

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(DNSRecord.question(name, "A").pack(), ("127.0.0.1", port))
        r = DNSRecord.parse(s.recv(4096))
    return str(RCODE.get(r.header.rcode)), [str(x.rdata) for x in r.rr if x.rtype == QTYPE.A]


def start_unbound(d: Path, name: str, text: str) -> subprocess.Popen[bytes]:
    conf = d / f"{name}.conf"
    conf.write_text(text)
    return subprocess.Popen(["unbound", "-d", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs, 10,000 prefixes")
    ap.add_argument("--prefixes", type=int, default=None)
    ap.add_argument("--duration", type=int, default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--repeat", type=int, default=None)
    a = ap.parse_args(argv)
    n = a.prefixes or (10_000 if a.quick else 100_000)
    duration = a.duration or (5 if a.quick else 20)
    repeat = a.repeat or (1 if a.quick else 3)
    ensure_tools()
    pairs = []
    with tempfile.TemporaryDirectory(prefix="writ-bench-dns-ip-") as tmp:
        d = Path(tmp)
        queries = d / "queries.txt"
        inside, outside = write_inputs(d, n, 1000, 200_000)
        up_port, ub_port, writ_port = free_port(), free_port(), free_port()
        up_text = (d / "upstream.conf").read_text().replace("{port}", str(up_port))
        up = start_unbound(d, "upstream", up_text)
        ub = start_unbound(d, "measured", SERVER.format(
            port=ub_port, threads=a.threads, d=d, name="measured")
            + '  module-config: "respip iterator"\n'
            + f'forward-zone:\n  name: "."\n  forward-addr: 127.0.0.1@{up_port}\n'
            + f'rpz:\n  name: rpz.test\n  zonefile: "{d}/rpz.zone"\n'
            + "  rpz-action-override: nxdomain\n")
        try:
            wait_dns(up_port)
            wait_dns(ub_port, timeout=600)
            w = start_writ(d, writ_port, up_port, a.threads, d / "orders")
            try:
                wait_dns(writ_port, timeout=600)
                writ_pids = [w.pid, *children(w.pid)]
                warm(ub_port, queries)
                warm(writ_port, queries)
                # Both block the inside answer (Unbound NXDOMAIN, writ its sinkhole) and
                # pass the outside one: the runs below measure the same work.
                assert answer(ub_port, inside) == ("NXDOMAIN", [])
                assert answer(writ_port, inside) == ("NOERROR", ["127.0.0.1"])
                assert answer(ub_port, outside) == answer(writ_port, outside) == (
                    "NOERROR", ["192.0.2.1"])
                for _ in range(repeat):
                    u = dnsperf(ub_port, queries, duration, a.threads, [ub.pid])
                    x = dnsperf(writ_port, queries, duration, a.threads, writ_pids)
                    pairs.append((u, x))
            finally:
                stop(w)
        finally:
            stop(ub)
            stop(up)
    print(f"# bench_dns_ip: {n} prefixes (rpz-ip for Unbound, ip/ip_prefix for writ), 10% of "
          f"answers inside, {duration}s per run, {a.threads} threads/workers")
    print("| run | server | QPS | p50 ms | p99 ms | lost | server CPU µs/query |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for i, pair in enumerate(pairs, 1):
        for name, r in zip(("unbound (rpz-ip)", "writ dns (audit on)"), pair, strict=True):
            print(f"| {i} | {name} | {r['qps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
                  f"| {r['lost']:.0f} | {r['cpu_us']:.1f} |")
    ratios = [x["qps"] / u["qps"] for u, x in pairs]
    print(f"writ/unbound QPS ratio per pair: {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.2f} (goal ≥ 0.8)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
