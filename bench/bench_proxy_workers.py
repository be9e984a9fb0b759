"""`writ proxy --workers 2` vs `writ proxy --workers 1`, side by side in one run.

    python bench/bench_proxy_workers.py [--quick] [--names N] [--seconds S] [--pairs P]

Goal (issue 17): ≥ 1.7x the req/s with 2 workers on 2 cores.

Two `writ proxy` nodes run at the same time on loopback, same orders (N
blocked names as a bulk list, a blocked domain and URL rules on the origin's
host, so every request gets the URL-level check), same policy: one with
`--workers 1`, one with `--workers 2`. A keep-alive origin answers 1 KB.
`wrk` (one thread, 16 connections, a Lua line that makes requests
absolute-form, as a proxy's clients send them) asks for an allowed URL
through one node, then through the other: P pairs of S-second runs, the
order alternating per pair, so a noisy neighbour hurts both. Reports the
median req/s of each side, the median of the per-pair ratios, the CPU
seconds per request and the cores each node got (parent + workers, from
/proc), and the load average before, after and at each pair. On a shared
machine the 2-worker node can only scale as far as the neighbours leave it
a second core: the "cores" column says how far that was. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_icap import cpu_s, get_status, wait_port  # noqa: E402
from bench.bulk_orders import write_bulk_order  # noqa: E402
from bench.http_load import parse_wrk, start_origin  # noqa: E402
from tests.ports import free_port  # noqa: E402

ORDER = """\
id: BENCH-WORKERS-1
court: Bench District Court
case: "1/2026"
issued: 2025-01-01
summary: Mirror names, a blocked host, and URL rules on the origin's host
targets:
  - domain: videohost.example
  - url: http://127.0.0.1/watch?v=blocked
  - url_prefix: http://127.0.0.1/forum/
  - file: lists/names.txt
"""


def wrk(proxy: int, url: str, seconds: int, work: Path) -> dict[str, float]:
    """req/s, p99 and non-2xx of one wrk run through the proxy (16 connections:
    enough for the kernel to spread them over both workers)."""
    script = work / "absolute.lua"
    host = url.split("/")[2]
    script.write_text(f'wrk.path = "{url}"\nwrk.headers["Host"] = "{host}"\n')
    out = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{seconds}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{proxy}/"], capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def _family(pid: int) -> list[int]:
    """`pid` and its children (a node's parent and its workers)."""
    out = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(stat.parent.name))
    return out


def _cpu(pids: list[int]) -> float:
    return sum(cpu_s(p) for p in pids)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short runs (smoke)")
    ap.add_argument("--names", type=int, default=100_000, help="blocked names (100,000)")
    ap.add_argument("--seconds", type=int, default=None, help="wrk duration per run (10)")
    ap.add_argument("--pairs", type=int, default=None, help="1-worker/2-worker pairs (6)")
    args = ap.parse_args(argv)
    seconds = args.seconds or (2 if args.quick else 10)
    pairs = args.pairs or (2 if args.quick else 6)
    if shutil.which("wrk") is None:
        print("bench_proxy_workers: needs wrk (apt-get install -y wrk); skipped")
        return {"skipped": "wrk missing"}

    work = Path(tempfile.mkdtemp(prefix="writ-bench-pworkers-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        write_bulk_order(work / "orders", ORDER, args.names)
        origin = free_port()
        procs.append(start_origin(origin, 1024, stderr=subprocess.DEVNULL))
        nodes: dict[int, tuple[int, int]] = {}  # workers -> (port, pid)
        for n in (1, 2):
            port = free_port()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "writ.cli", "proxy", "--orders", str(work / "orders"),
                 "--listen", f"127.0.0.1:{port}", "--workers", str(n),
                 "--confdir", str(work / "mitm"), "--state-dir", str(work / f"state{n}"),
                 "--audit-log", str(work / f"audit{n}" / "decisions.log")],
                cwd=work, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                stderr=subprocess.DEVNULL))
            nodes[n] = (port, procs[-1].pid)
        wait_port(origin, 30)
        for port, _ in nodes.values():
            wait_port(port, 300)
        url = f"http://127.0.0.1:{origin}/watch?v=other&t=1"
        checks = {n: (get_status(port, url),
                      get_status(port, f"http://127.0.0.1:{origin}/watch?v=blocked"),
                      get_status(port, "http://mirror7.host7.example/"))
                  for n, (port, _) in nodes.items()}
        print("bench_proxy_workers: checks (allowed, URL blocked, name blocked)", checks,
              flush=True)
        if any(c != (200, 451, 451) for c in checks.values()):
            raise RuntimeError(f"a node does not enforce as expected: {checks}")
        families = {n: _family(pid) for n, (_, pid) in nodes.items()}
        assert [len(families[n]) for n in (1, 2)] == [1, 3], families  # parent + 2 workers
        for port, _ in nodes.values():
            wrk(port, url, 1, work)  # warm-up
        load_before = os.getloadavg()
        rows = []
        for i in range(pairs):
            row: dict[str, Any] = {}
            for n in ((1, 2) if i % 2 == 0 else (2, 1)):
                port, _ = nodes[n]
                before = _cpu(families[n])
                row[n] = wrk(port, url, seconds, work)
                done = row[n]["rps"] * seconds
                used = _cpu(families[n]) - before
                row[n]["cpu_us"] = used / done * 1e6
                row[n]["cores"] = used / seconds  # how much CPU the node got
            row["ratio"] = row[2]["rps"] / row[1]["rps"]
            rows.append(row)
            print(f"pair {i + 1}: 1 worker {row[1]['rps']:.0f} req/s "
                  f"({row[1]['cpu_us']:.0f} us CPU/req, {row[1]['cores']:.2f} cores), "
                  f"2 workers {row[2]['rps']:.0f} req/s ({row[2]['cpu_us']:.0f} us CPU/req, "
                  f"{row[2]['cores']:.2f} cores), ratio {row['ratio']:.2f}, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
        result = {
            "names": args.names, "seconds": seconds, "pairs": pairs, "cpus": os.cpu_count(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
            "rps_1": statistics.median(r[1]["rps"] for r in rows),
            "rps_2": statistics.median(r[2]["rps"] for r in rows),
            "ratio_median": statistics.median(r["ratio"] for r in rows),
            "ratios": [round(r["ratio"], 3) for r in rows],
            "cpu_us_per_req_1": statistics.median(r[1]["cpu_us"] for r in rows),
            "cpu_us_per_req_2": statistics.median(r[2]["cpu_us"] for r in rows),
            "cores_1": statistics.median(r[1]["cores"] for r in rows),
            "cores_2": statistics.median(r[2]["cores"] for r in rows),
            "non_2xx": sum(r[n]["non_2xx"] for r in rows for n in (1, 2)),
        }
        print(json.dumps(result, indent=2))
        return result
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
