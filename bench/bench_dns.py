"""writ dns vs Unbound and PowerDNS Recursor (same RPZ) under dnsperf: same names,
same query file, same threads.

    python bench/bench_dns.py [--quick] [--duration S] [--threads N] [--names N] [--repeat R]
                              [--no-pdns]

- 100,000 blocked names: one RPZ zone for Unbound (`rpz:`) and for PowerDNS
  Recursor (Lua `rpzFile`), both with the NXDOMAIN policy; one court order
  (bulk list) for writ.
- 1,000 allowed names, served by a stand-in authoritative server on loopback
  (an Unbound instance with `local-data`, not measured); all three resolvers
  forward `allowed.test` to it (writ: as its upstream) and cache the answers.
- Query file: 10% blocked names, 90% allowed names; dnsperf -v gives per-query
  latencies for p99. writ runs with audit logging on.
- Every server gets one unmeasured pass through the query file first (fills
  the caches), then R rounds of unbound, pdns, writ runs in turn (who goes
  first rotates per round), so load drifting on a shared machine hits all
  alike; the ratios are per round.
  Server CPU µs/query (user + system time of the server's processes, writ's
  audit-writing parent included) is less sensitive to other load than QPS.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.ports import free_dns_port as free_port  # noqa: E402

PY = sys.executable




def ensure_tools() -> None:
    missing = [t for t in ("unbound", "dnsperf", "pdns_recursor") if shutil.which(t) is None
               and not Path(f"/usr/sbin/{t}").exists()]
    if missing:
        subprocess.run(["apt-get", "install", "-y", "unbound", "dnsperf", "pdns-recursor"],
                       check=True)


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
        f.write("$ORIGIN rpz.test.\n$TTL 60\n"
                "@ SOA localhost. root.localhost. 1 3600 600 86400 60\n@ NS localhost.\n")
        for n in blocked:
            f.write(f"{n} CNAME .\n")
    rng = random.Random(7)
    with (d / "queries.txt").open("w") as f:
        for _ in range(n_queries):
            name = rng.choice(blocked) if rng.random() < 0.1 else rng.choice(allowed)
            f.write(f"{name} A\n")
    local = "".join(f'local-data: "{n}. 3600 IN A 192.0.2.1"\n' for n in allowed)
    (d / "allowed.conf").write_text('local-zone: "allowed.test." static\n' + local)


_UNBOUND_COMMON = """server:
  interface: 127.0.0.1
  port: {port}
  num-threads: {threads}
  so-reuseport: yes
  do-daemonize: no
  chroot: ""
  username: ""
  directory: "{d}"
  pidfile: "{d}/{name}.pid"
  logfile: ""
  use-syslog: no
  verbosity: 0
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
"""


def auth_conf(d: Path, port: int) -> Path:
    """The stand-in authoritative server for allowed.test (not measured)."""
    conf = d / "auth.conf"
    conf.write_text(_UNBOUND_COMMON.format(port=port, threads=1, d=d, name="auth")
                    + f'  include: "{d}/allowed.conf"\n')
    return conf


def unbound_conf(d: Path, port: int, threads: int, auth: int) -> Path:
    conf = d / "unbound.conf"
    conf.write_text(_UNBOUND_COMMON.format(port=port, threads=threads, d=d, name="unbound") + f"""\
  module-config: "respip iterator"
  local-zone: "test." nodefault
forward-zone:
  name: "allowed.test."
  forward-addr: 127.0.0.1@{auth}
rpz:
  name: rpz.test
  zonefile: "{d}/rpz.zone"
  rpz-action-override: nxdomain
""")
    return conf


def pdns_conf(d: Path, port: int, threads: int, auth: int) -> Path:
    """PowerDNS Recursor 4.x: same RPZ (Lua rpzFile, NXDOMAIN), allowed.test forwarded
    to the stand-in; root hints point at loopback and DNSSEC is off, so nothing it
    does ever leaves 127.0.0.0/8."""
    conf_dir = d / "pdns"
    conf_dir.mkdir(exist_ok=True)
    (conf_dir / "hints").write_text(". 3600000 NS a.root.test.\n"
                                     "a.root.test. 3600000 A 127.0.0.1\n")
    (conf_dir / "rpz.lua").write_text(
        f'rpzFile("{d}/rpz.zone", {{defpol=Policy.NXDOMAIN, policyName="rpz.test"}})\n')
    (conf_dir / "recursor.conf").write_text(f"""\
local-address=127.0.0.1
local-port={port}
threads={threads}
pdns-distributes-queries=no
reuseport=yes
daemon=no
write-pid=no
socket-dir={conf_dir}
allow-from=127.0.0.0/8
dont-query=
hint-file={conf_dir}/hints
dnssec=off
forward-zones=allowed.test=127.0.0.1:{auth}
lua-config-file={conf_dir}/rpz.lua
quiet=yes
disable-syslog=yes
loglevel=3
""")
    return conf_dir


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
            pids: list[int] | None = None) -> dict[str, Any]:
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
    codes = re.search(r"Response codes:\s+(.*)$", out, re.M)
    p99 = lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan")
    p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
    return {"qps": qps, "p50_ms": p50, "p99_ms": p99, "lost": float(lost.group(1)) if lost else 0,
            "cpu_us": cpu / max(done, 1) * 1e6, "codes": codes.group(1) if codes else "?"}


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
    ap.add_argument("--repeat", type=int, default=None,
                    help="rounds of unbound, pdns, writ runs in turn")
    ap.add_argument("--no-pdns", action="store_true", help="leave PowerDNS Recursor out")
    a = ap.parse_args(argv)
    duration = a.duration or (5 if a.quick else 20)
    repeat = a.repeat or (1 if a.quick else 3)
    ensure_tools()
    rounds: list[dict[str, dict[str, Any]]] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="writ-bench-dns-") as tmp:
        d = Path(tmp)
        queries = d / "queries.txt"
        write_inputs(d, a.names, 1000, 200_000)
        auth_port = free_port()
        procs: dict[str, subprocess.Popen[bytes]] = {}
        ports: dict[str, int] = {}
        try:
            procs["auth"] = subprocess.Popen(["unbound", "-d", "-c", str(auth_conf(d, auth_port))],
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_dns(auth_port)
            ports["unbound"] = free_port()
            procs["unbound"] = subprocess.Popen(
                ["unbound", "-d", "-c", str(unbound_conf(d, ports["unbound"], a.threads,
                                                         auth_port))],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if not a.no_pdns:
                ports["pdns"] = free_port()
                conf_dir = pdns_conf(d, ports["pdns"], a.threads, auth_port)
                procs["pdns"] = subprocess.Popen(
                    ["pdns_recursor", f"--config-dir={conf_dir}"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ports["writ"] = free_port()
            procs["writ"] = start_writ(d, ports["writ"], auth_port, a.threads, d / "orders")
            for port in ports.values():
                wait_dns(port)
            pids = {name: [procs[name].pid, *children(procs[name].pid)] for name in ports}
            for port in ports.values():
                warm(port, queries)
            names = list(ports)
            for i in range(repeat):  # in turn, so drifting load hits all alike; the order
                order = names[i % len(names):] + names[:i % len(names)]  # rotates per round
                got = {name: dnsperf(ports[name], queries, duration, a.threads, pids[name])
                       for name in order}
                rounds.append({name: got[name] for name in names})
            writ_rss = rss_kib(pids["writ"]) / 1024
            million = None if a.quick else rss_million(d, auth_port)
        finally:
            for p in reversed(procs.values()):
                stop(p)
    label = {"unbound": "unbound (RPZ)", "pdns": "pdns-recursor (RPZ)",
             "writ": "writ dns (audit on)"}
    print(f"# bench_dns: {a.names} blocked names, {duration}s per run, {a.threads} "
          f"threads/workers, {repeat} round(s) after one warm-up pass each; "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after "
          f"(this benchmark's own processes included)")
    print("| run | server | QPS | p50 ms | p99 ms | lost | server CPU µs/query | rcodes |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for i, rnd in enumerate(rounds, 1):
        for name, r in rnd.items():
            print(f"| {i} | {label[name]} | {r['qps']:.0f} | {r['p50_ms']:.2f} | "
                  f"{r['p99_ms']:.2f} | {r['lost']:.0f} | {r['cpu_us']:.1f} | {r['codes']} |")
    for ref, goal in (("unbound", 0.9), ("pdns", 1.0)):
        if ref not in ports:
            continue
        ratios = [r["writ"]["qps"] / r[ref]["qps"] for r in rounds]
        cpu = [r[ref]["cpu_us"] / r["writ"]["cpu_us"] for r in rounds]
        print(f"writ/{ref} QPS ratio per round, in run order: "
              f"{', '.join(f'{x:.2f}' for x in ratios)}; median {statistics.median(ratios):.2f} "
              f"(goal ≥ {goal}); {ref}/writ CPU per query: median "
              f"{statistics.median(cpu):.2f}")
    print(f"writ RSS ({a.names} names, {a.threads} workers + parent, total): {writ_rss:.0f} MiB")
    if million is not None:
        print(f"writ RSS (1,000,000 names, 1 worker): {million:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
