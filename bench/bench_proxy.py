"""Throughput cost of the writ addon in mitmproxy, with a 1,000,000-rule blocklist.

    python bench/bench_proxy.py [--quick] [--names N] [--seconds S] [--rounds R]
                                [--upload-only] [--addon-root DIR]

Goals: the addon costs ≤ 5% of throughput (issue 5); a 300 MB upload to a
blocked URL raises the proxy's RSS by < 10 MB (issue 10: the 451 goes out
before the body, which is never read). The upload part sends two 300 MB POSTs
to a blocked URL (and one with `Expect: 100-continue`) through mitmdump + writ
and compares the process's peak RSS (VmHWM) before and after.

Same run, same binary, same options: `mitmdump` in reverse mode in front of a
local origin, once plain and once with `-s writ/proxy/mitmdump_addon.py` and
an orders folder of N domain rules (a bulk `file:` list). `wrk` (keep-alive,
one thread, 8 connections) drives allowed requests through each in turn,
alternating plain/writ for R rounds so that a noisy neighbour hurts both.
Everything listens on 127.0.0.1. Reports req/s and p99 latency (median of the
rounds) and the overhead = 1 - writ/plain.
"""

from __future__ import annotations

import argparse
import json
import os
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
from bench.bulk_orders import write_bulk_order  # noqa: E402
from tests.ports import free_port  # noqa: E402

BIN = Path(sys.executable).parent

ORDER = """\
id: BENCH-PROXY-1
court: Bench District Court
case: "1/2026"
issued: 2025-01-01
summary: One million mirror names, and URL rules on a news host
targets:
  - domain: videohost.example
  - url: http://news.example/watch?v=abc
  - url_prefix: http://news.example/forum/
  - file: lists/names.txt
"""

# A minimal keep-alive HTTP/1.1 origin: the proxy, not the origin, must be the bottleneck.
ORIGIN = r"""
import asyncio, sys
BODY = b"x" * 512
RESP = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
        % len(BODY)) + BODY
class P(asyncio.Protocol):
    def connection_made(self, t): self.t, self.buf = t, b""
    def data_received(self, d):
        self.buf += d
        while b"\r\n\r\n" in self.buf:
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.t.write(RESP)
async def main():
    srv = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]))
    async with srv: await srv.serve_forever()
asyncio.run(main())
"""






def wait_ready(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    req = b"GET /ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
                c.sendall(req)
                if c.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"nothing answered 200 on 127.0.0.1:{port} within {timeout:.0f}s")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(port: int, seconds: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", "-c8", f"-d{seconds}s", "--latency",
         f"http://127.0.0.1:{port}/watch?v=other&t=1"],
        capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p99_ms": p99, "non_2xx": float(bad.group(1)) if bad else 0.0}


def run_variant(writ: bool, origin: int, work: Path, seconds: int) -> dict[str, float]:
    port = free_port()
    cmd = [str(BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1", "-p", str(port),
           "--mode", f"reverse:http://127.0.0.1:{origin}",
           "--set", "connection_strategy=lazy", "--set", "keep_host_header=true",
           "--set", f"confdir={work / 'mitm'}"]
    if writ:
        cmd += ["-s", str(ROOT / "writ/proxy/mitmdump_addon.py"),
                "--set", f"writ_orders={work / 'orders'}",
                "--set", f"writ_audit_log={work / 'audit' / 'decisions.log'}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        wait_ready(port, timeout=180)
        startup = time.perf_counter() - t0
        if writ:  # the addon is really there, with the big list loaded
            probe = (b"GET / HTTP/1.1\r\nHost: mirror7.host7.example\r\n"
                     b"Connection: close\r\n\r\n")
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(probe)
                head = c.recv(64)
            if not head.startswith(b"HTTP/1.1 451"):
                raise RuntimeError(f"writ addon not enforcing: {head!r}")
            # The store's first load (it follows the folder from `running`)
            # is startup, not the addon's per-request cost: let it finish.
            _steady_rss(proc.pid)
        subprocess.run(["wrk", "-t1", "-c8", "-d1s", f"http://127.0.0.1:{port}/"],
                       capture_output=True, check=True)  # warm-up
        result = wrk(port, seconds)
        result["startup_s"] = startup
        return result
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


UPLOAD = 300 * 1024 * 1024


def _rss_kb(pid: int) -> dict[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    return {k: int(re.search(rf"{k}:\s+(\d+) kB", status).group(1))  # type: ignore[union-attr]
            for k in ("VmRSS", "VmHWM")}


def _steady_rss(pid: int, timeout: float = 180) -> dict[str, int]:
    """RSS once it has stopped moving (< 256 kB over 3 s)."""
    deadline = time.monotonic() + timeout
    last = _rss_kb(pid)
    while time.monotonic() < deadline:
        time.sleep(3)
        now = _rss_kb(pid)
        if abs(now["VmRSS"] - last["VmRSS"]) < 256 and now["VmHWM"] == last["VmHWM"]:
            return now
        last = now
    return last


def _blocked_upload(port: int, expect: bool) -> tuple[bytes, int]:
    """POST 300 MB to a blocked URL: (the answer's first line, body bytes the
    proxy took before it closed the connection)."""
    head = (f"POST /watch?v=abc HTTP/1.1\r\nHost: news.example\r\n"
            f"Content-Length: {UPLOAD}\r\n" + ("Expect: 100-continue\r\n" if expect else "")
            + "\r\n").encode()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as c:
        c.sendall(head)
        if expect:
            return c.recv(64).split(b"\r\n")[0], 0
        chunk = b"u" * (1024 * 1024)
        try:
            while sent < UPLOAD:
                sent += c.send(chunk)
        except OSError:
            pass  # the proxy answered and closed: the rest is never read
        try:
            first = c.recv(64).split(b"\r\n")[0]
        except OSError:
            first = b"(reset)"
    return first, sent


def upload_rss(origin: int, work: Path, addon_root: Path = ROOT) -> dict[str, Any]:
    """Two 300 MB uploads to a blocked URL through mitmdump + writ: the
    proxy's peak RSS before and after (after a warm-up: one blocked upload
    with Expect: 100-continue, which must be answered 451 at once)."""
    port = free_port()
    cmd = [str(BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1", "-p", str(port),
           "--mode", f"reverse:http://127.0.0.1:{origin}",
           "--set", "connection_strategy=lazy", "--set", "keep_host_header=true",
           "--set", f"confdir={work / 'mitm'}",
           "-s", str(addon_root / "writ/proxy/mitmdump_addon.py"),
           "--set", f"writ_orders={work / 'orders'}",
           "--set", f"writ_audit_log={work / 'audit' / 'upload.log'}"]
    env = {**os.environ, "PYTHONPATH": str(addon_root)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        wait_ready(port, timeout=180)
        # Warm-up: the first block page and record load code and fill caches.
        expect_answer, _ = _blocked_upload(port, expect=True)
        before = _steady_rss(proc.pid)  # the store's first load runs after startup
        answers, sent = [], []
        for _ in range(2):
            a, n = _blocked_upload(port, expect=False)
            answers.append(a.decode("latin-1"))
            sent.append(n)
        time.sleep(0.5)
        after = _rss_kb(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return {"expect_answer": expect_answer.decode("latin-1"), "answers": answers,
            "client_sent_mb": [round(n / 2**20, 1) for n in sent],
            "rss_before_mb": round(before["VmRSS"] / 1024, 1),
            "rss_after_mb": round(after["VmRSS"] / 1024, 1),
            "peak_rss_rise_mb": round((after["VmHWM"] - before["VmHWM"]) / 1024, 1)}


def hook_cost(orders: Path, calls: int = 20_000) -> float:
    """Microseconds the addon's requestheaders takes per allowed request, in
    process (immune to a noisy machine's scheduling, unlike the wrk runs)."""
    sys.path.insert(0, str(ROOT))
    from datetime import UTC, datetime

    from mitmproxy.test import taddons, tflow

    from writ.blocklist import Blocklist, BlocklistHolder, load_orders
    from writ.proxy import WritAddon

    holder = BlocklistHolder()
    holder.set(Blocklist(load_orders(orders).acts), datetime.now(UTC))
    addon = WritAddon(holder)
    with taddons.context(addon):
        flows = []
        for i in range(100):
            f = tflow.tflow()
            f.request.url = f"http://www{i}.host{i}.example/watch?v=other&t={i}"
            flows.append(f)
        t0 = time.perf_counter()
        for i in range(calls):
            addon.requestheaders(flows[i % 100])
        return (time.perf_counter() - t0) / calls * 1e6


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200k names, 3 s runs, 1 round")
    ap.add_argument("--names", type=int, default=None, help="domain rules (default 1,000,000)")
    ap.add_argument("--seconds", type=int, default=None, help="wrk duration per run (10)")
    ap.add_argument("--rounds", type=int, default=None, help="plain/writ pairs (3)")
    ap.add_argument("--upload-only", action="store_true", help="only the 300 MB uploads")
    ap.add_argument("--addon-root", type=Path, default=ROOT,
                    help="checkout whose writ/ the upload part loads (e.g. an older commit)")
    args = ap.parse_args(argv)
    names = args.names or (200_000 if args.quick else 1_000_000)
    seconds = args.seconds or (3 if args.quick else 10)
    rounds = args.rounds or (1 if args.quick else 3)
    if shutil.which("wrk") is None:
        print("bench_proxy: wrk is not installed (apt-get install -y wrk); skipped")
        return {"skipped": "wrk missing"}
    with tempfile.TemporaryDirectory(prefix="writ-bench-proxy-") as tmp:
        work = Path(tmp)
        write_bulk_order(work / "orders", ORDER, names)
        hook_us = hook_cost(work / "orders")
        print(f"  addon requestheaders: {hook_us:.1f} us per allowed request "
              f"({names} domain rules)", flush=True)
        origin_port = free_port()
        origin = subprocess.Popen([sys.executable, "-c", ORIGIN, str(origin_port)])
        try:
            wait_ready(origin_port, 10)
            upload = upload_rss(origin_port, work, args.addon_root)
            print(f"  300 MB uploads to a blocked URL: {json.dumps(upload)}", flush=True)
            if args.upload_only:
                return {"upload": upload}
            runs: dict[str, list[dict[str, float]]] = {"plain": [], "writ": []}
            for _ in range(rounds):
                for variant in ("plain", "writ"):
                    r = run_variant(variant == "writ", origin_port, work, seconds)
                    runs[variant].append(r)
                    print(f"  {variant:5} {r['rps']:8.0f} req/s  p99 {r['p99_ms']:6.2f} ms"
                          f"  non-2xx {r['non_2xx']:.0f}  (startup {r['startup_s']:.1f} s)",
                          flush=True)
        finally:
            origin.send_signal(signal.SIGTERM)
            origin.wait(timeout=10)
    summary: dict[str, Any] = {"names": names, "seconds": seconds, "rounds": rounds,
                               "hook_us": hook_us}
    for variant, rs in runs.items():
        summary[f"{variant}_rps"] = statistics.median(r["rps"] for r in rs)
        summary[f"{variant}_p99_ms"] = statistics.median(r["p99_ms"] for r in rs)
    summary["overhead_pct"] = 100.0 * (1 - summary["writ_rps"] / summary["plain_rps"])
    # What the hook costs relative to one request's whole time through plain mitmdump.
    summary["hook_share_pct"] = 100.0 * hook_us * 1e-6 * summary["plain_rps"]
    summary["goal_met"] = summary["overhead_pct"] <= 5.0
    summary["upload"] = upload
    summary["upload_goal_met"] = upload["peak_rss_rise_mb"] < 10.0
    print(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
