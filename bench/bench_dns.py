"""writ dns vs Unbound (RPZ) under dnsperf, same names, same query file, same threads.

    python bench/bench_dns.py [--quick] [--duration S] [--threads N] [--names N] [--repeat R]

- 100,000 blocked names: an RPZ zone for Unbound, one court order (bulk list) for writ.
- 1,000 allowed names: Unbound `local-data`; Unbound is also writ's upstream.
- Query file: 10% blocked names, 90% allowed names; dnsperf -v gives per-query
  latencies for p99. writ runs with audit logging on.
- Both servers get one unmeasured pass through the query file first (writ's
  cache starts empty; Unbound's answers are loaded with its zones), then R
  alternating unbound/writ runs, so load drifting on a shared machine hits
  both alike. Server CPU µs/query (user + system time of the server's
  processes, writ's audit-writing parent included) is less sensitive to
  other load than QPS.
- RSS of writ with 1,000,000 names (skipped with --quick).
Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.ports import free_dns_port as free_port  # noqa: E402

PY = sys.executable




def ensure_tools() -> None:
    missing = [t for t in ("unbound", "dnsperf") if shutil.which(t) is None
               and not Path(f"/usr/sbin/{t}").exists()]
    if missing:
        subprocess.run(["apt-get", "install", "-y", "unbound", "dnsperf"], check=True)


def blocked_name(i: int) -> str:
    return f"n{i}.blocked{i % 97}.test"


def write_inputs(d: Path, n_blocked: int, n_allowed: int, n_queries: int) -> None:
    blocked = [blocked_name(i) for i in range(n_blocked)]
    allowed = [f"a{i}.allowed.test" for i in range(n_allowed)]
    (d / "orders" / "lists").mkdir(parents=True)
    (d / "orders" / "lists" / "blocked.txt").write_text("\n".join(blocked) + "\n")
    (d / "orders" / "bench.yaml").write_text(
        "id: BENCH-0001\ncourt: Bench Court\ncase: \"0/0\"\nissued: 2015-09-07\n"
        "targets:\n  - file: lists/blocked.txt\n")
    with (d / "rpz.zone").open("w") as f:
        f.write("$TTL 60\n@ SOA localhost. root.localhost. 1 3600 600 86400 60\n@ NS localhost.\n")
        for n in blocked:
            f.write(f"{n} CNAME .\n")
    rng = random.Random(7)
    with (d / "queries.txt").open("w") as f:
        for _ in range(n_queries):
            name = rng.choice(blocked) if rng.random() < 0.1 else rng.choice(allowed)
            f.write(f"{name} A\n")
    local = "".join(f'local-data: "{n}. 3600 IN A 192.0.2.1"\n' for n in allowed)
    (d / "allowed.conf").write_text('local-zone: "allowed.test." static\n' + local)


def unbound_conf(d: Path, port: int, threads: int) -> Path:
    conf = d / "unbound.conf"
    conf.write_text(f"""server:
  interface: 127.0.0.1
  port: {port}
  num-threads: {threads}
  so-reuseport: yes
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "{d}"
  pidfile: "{d}/unbound.pid"
  logfile: ""
  use-syslog: no
  verbosity: 0
  access-control: 127.0.0.0/8 allow
  module-config: "respip iterator"
  do-not-query-localhost: no
  include: "{d}/allowed.conf"
rpz:
  name: rpz.test
  zonefile: "{d}/rpz.zone"
  rpz-action-override: nxdomain
""")
    return conf


def wait_dns(port: int, timeout: float = 120.0) -> None:
    q = bytes.fromhex("abcd01000001000000000000") + b"\x02a0\x07allowed\x04test\x00\x00\x01\x00\x01"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            try:
                s.sendto(q, ("127.0.0.1", port))
                if s.recv(512)[:2] == q[:2]:
                    return
            except OSError:
                time.sleep(0.2)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / os.sysconf("SC_CLK_TCK")


def dnsperf(port: int, queries: Path, duration: int, threads: int,
            pids: list[int] | None = None) -> dict[str, float]:
    cpu0 = cpu_seconds(pids) if pids else 0.0
    out = subprocess.run(
        ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(duration),
         "-c", str(threads * 2), "-T", str(threads), "-q", "200", "-v"],
        capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pids) - cpu0 if pids else float("nan")
    lat = sorted(float(m.group(1)) for m in re.finditer(r"^> \S+ \S+ \S+ ([0-9.]+)$", out, re.M))
    qps = float(re.search(r"Queries per second:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    done = int(re.search(r"Queries completed:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    p99 = lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan")
    p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
    return {"qps": qps, "p50_ms": p50, "p99_ms": p99, "lost": float(lost.group(1)) if lost else 0,
            "cpu_us": cpu / max(done, 1) * 1e6}


def warm(port: int, queries: Path) -> None:
    """One unmeasured pass through the query file (fills writ's cache; Unbound's is loaded)."""
    subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-n", "1",
                    "-q", "200"], capture_output=True, check=True)


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def children(pid: int) -> list[int]:
    p = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in p.read_text().split()] if p.exists() else []


# dnsperf's clients all send from 127.0.0.1: the per-client rate limit stays on (its
# accounting is part of what is measured) with a ceiling dnsperf never reaches. Every
# other limit keeps its default (docs/operator.md, "DNS limits").
POLICY = "dns:\n  client_qps: 100000000\n"


def start_writ(d: Path, port: int, upstream: int, workers: int,
               orders: Path) -> subprocess.Popen[bytes]:
    (d / "policy.yaml").write_text(POLICY)
    return subprocess.Popen(
        [PY, "-m", "writ.cli", "dns", "--orders", str(orders), "--listen", f"127.0.0.1:{port}",
         "--upstream", f"127.0.0.1:{upstream}", "--workers", str(workers),
         "--policy", str(d / "policy.yaml"),
         "--audit-log", str(d / "audit" / "decisions.log")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(p: subprocess.Popen[bytes]) -> None:
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()


def rss_million(d: Path, upstream: int) -> float:
    big = d / "million"
    big.mkdir()
    write_inputs(big, 1_000_000, 10, 10)
    port = free_port()
    p = start_writ(big, port, upstream, 1, big / "orders")
    try:
        wait_dns(port, timeout=600)
        return rss_kib([p.pid, *children(p.pid)]) / 1024
    finally:
        stop(p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs, no 1M-name RSS")
    ap.add_argument("--duration", type=int, default=None)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--names", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=None, help="alternating unbound/writ pairs")
    a = ap.parse_args(argv)
    duration = a.duration or (5 if a.quick else 20)
    repeat = a.repeat or (1 if a.quick else 3)
    ensure_tools()
    pairs: list[tuple[dict[str, float], dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="writ-bench-dns-") as tmp:
        d = Path(tmp)
        queries = d / "queries.txt"
        write_inputs(d, a.names, 1000, 200_000)
        ub_port, writ_port = free_port(), free_port()
        ub = subprocess.Popen(["unbound", "-d", "-c", str(unbound_conf(d, ub_port, a.threads))],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_dns(ub_port)
            w = start_writ(d, writ_port, ub_port, a.threads, d / "orders")
            try:
                wait_dns(writ_port)
                writ_pids = [w.pid, *children(w.pid)]
                warm(ub_port, queries)
                warm(writ_port, queries)
                for _ in range(repeat):  # alternate, so drifting load hits both alike
                    u = dnsperf(ub_port, queries, duration, a.threads, [ub.pid])
                    x = dnsperf(writ_port, queries, duration, a.threads, writ_pids)
                    pairs.append((u, x))
                writ_rss = rss_kib(writ_pids) / 1024
            finally:
                stop(w)
            million = None if a.quick else rss_million(d, ub_port)
        finally:
            stop(ub)
    print(f"# bench_dns: {a.names} blocked names, {duration}s per run, {a.threads} "
          f"threads/workers, {repeat} alternating pair(s) after one warm-up pass each")
    print("| run | server | QPS | p50 ms | p99 ms | lost | server CPU µs/query |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for i, pair in enumerate(pairs, 1):
        for name, r in zip(("unbound (RPZ)", "writ dns (audit on)"), pair, strict=True):
            print(f"| {i} | {name} | {r['qps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} "
                  f"| {r['lost']:.0f} | {r['cpu_us']:.1f} |")
    ratios = [x["qps"] / u["qps"] for u, x in pairs]
    print(f"writ/unbound QPS ratio per pair, in run order: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.2f} (goal ≥ 0.8)")
    print(f"writ RSS ({a.names} names, {a.threads} workers + parent, total): {writ_rss:.0f} MiB")
    if million is not None:
        print(f"writ RSS (1,000,000 names, 1 worker): {million:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
