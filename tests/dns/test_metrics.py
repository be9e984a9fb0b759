"""`writ dns --metrics`: the resolver's own /metrics, /healthz and /readyz, with
workers the sum of every worker's counters served by the parent (docs/operator.md §6)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from dnslib import DNSRecord

from tests.children import child_pids
from tests.dns.support import ORDER, StandIn, ede_of, make_query, udp_exchange
from tests.metrics_scrape import get, ports_of, ready, scrape, total, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BLOCK = 'writ_decisions_total{component="dns",decision="block",action="sinkhole"}'
ALLOW = 'writ_decisions_total{component="dns",decision="allow",action="pass"}'


def _start(tmp_path: Path, upstream: int, *args: str) -> subprocess.Popen[str]:
    (tmp_path / "orders").mkdir(exist_ok=True)
    (tmp_path / "orders" / "kz.yaml").write_text(ORDER)
    return subprocess.Popen(
        [sys.executable, "-m", "writ.cli", "dns", "--orders", str(tmp_path / "orders"),
         "--listen", "127.0.0.1:0", "--upstream", f"127.0.0.1:{upstream}",
         "--audit-log", str(tmp_path / "audit" / "decisions.log"), *args],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=tmp_path)


def _ask(port: int, blocked: int, allowed: int) -> None:
    """Each query from a fresh socket (a fresh source port: SO_REUSEPORT spreads them)."""
    for i in range(blocked):
        raw = udp_exchange(port, bytes(make_query(f"h{i}.videohost.example").pack()))
        assert raw is not None
        assert ede_of(DNSRecord.parse(raw)) == (16, "blocked by court order EX-2015-0907-VH")
    for i in range(allowed):
        raw = udp_exchange(port, bytes(make_query(f"ok{i}.example").pack()))
        assert raw is not None
        assert DNSRecord.parse(raw).rr, f"ok{i}.example got no answer"


def _zone(standin: StandIn, n: int) -> None:
    for i in range(n):
        standin.zone[(f"ok{i}.example", "A")] = [f"ok{i}.example. 60 IN A 192.0.2.{i + 1}"]


def _drain_later(proc: subprocess.Popen[str]) -> None:
    import threading

    assert proc.stderr is not None
    threading.Thread(target=proc.stderr.read, daemon=True).start()


async def _worker_ports(proc: subprocess.Popen[str]) -> list[int]:
    """The metrics port and the DNS port a node with workers says it listens on."""
    return await asyncio.to_thread(ports_of, proc, r"writ dns: metrics on 127\.0\.0\.1:",
                                   r"writ dns: listening on 127\.0\.0\.1:")


async def _until_ready(proc: subprocess.Popen[str], metrics: int, status: int,
                       what: str) -> None:
    """Until the node's /readyz on port `metrics` answers `status`."""
    await asyncio.to_thread(wait_for, lambda: ready(metrics)["status"] == status, proc, what)


async def test_workers_parent_serves_the_sum_of_every_worker(tmp_path: Path,
                                                              standin: StandIn) -> None:
    _zone(standin, 9)
    proc = _start(tmp_path, standin.port, "--workers", "2", "--metrics", "127.0.0.1:0")
    try:
        metrics, port = await _worker_ports(proc)
        _drain_later(proc)
        await _until_ready(proc, metrics, 200, "/readyz 200")
        assert ready(metrics)["detail"] == "2 workers ready"
        # 21 blocked + 9 allowed from 30 source ports: all on one worker has odds 2**-29,
        # so a parent that served one worker's counts would fail here.
        await asyncio.to_thread(_ask, port, 21, 9)
        seen: list[float] = []

        def counted() -> bool:
            s = scrape(metrics)
            seen.append(total(s, "writ_decisions_total{"))
            return seen[-1] >= 30

        await asyncio.to_thread(wait_for, counted, proc, "30 decisions in /metrics")
        assert seen == sorted(seen)  # never backwards between scrapes
        await asyncio.sleep(2.5)  # two more snapshots from each worker: nothing counted twice
        s = scrape(metrics)
        assert s[BLOCK] == 21
        assert s[ALLOW] == 9
        assert total(s, "writ_decisions_total{") == 30
        assert s['writ_order_decisions_total{component="dns",order="EX-2015-0907-VH"}'] == 21
        assert s["writ_allows_not_logged_total"] == 9  # log_allowed off: counted, not logged
        # the parent writes the chain: its writer's numbers are there
        assert s["writ_writer_ok"] == 1
        assert s["writ_drops_total"] == 0
        assert "writ_queue_depth" in s
        assert s["writ_records_written_total"] >= 21
        versions = {k for k in s if k.startswith("writ_blocklist_info{")}
        assert {k.rpartition("worker=")[2] for k in versions} == {'"0"}', '"1"}'}
        assert s["writ_blocklist_loaded"] == 1
        assert s["writ_store_stale"] == 0
        assert {k for k in s if k.startswith("writ_worker_report_age_seconds")} == {
            'writ_worker_report_age_seconds{worker="0"}',
            'writ_worker_report_age_seconds{worker="1"}'}
        assert get(metrics, "/healthz")[:1] == (200,)
        # nothing but the three: no admin API, no block page, no register
        for path in ("/v1/orders", "/orders", "/", "/lookup?q=videohost.example"):
            assert get(metrics, path)[0] == 404, path
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    with pytest.raises(ConnectionRefusedError):  # gone with the node
        socket.create_connection(("127.0.0.1", metrics), timeout=2).close()


async def test_one_process_from_the_policy_key(tmp_path: Path, standin: StandIn) -> None:
    _zone(standin, 4)
    with socket.socket() as s:  # a free port for the policy (it takes no port 0 twice)
        s.bind(("127.0.0.1", 0))
        want = s.getsockname()[1]
    (tmp_path / "policy.yaml").write_text(f"dns:\n  metrics: 127.0.0.1:{want}\n")
    proc = _start(tmp_path, standin.port, "--workers", "1",
                  "--policy", str(tmp_path / "policy.yaml"))
    try:
        metrics, port = await asyncio.to_thread(
            ports_of, proc, r"metrics listening on 127\.0\.0\.1:",
            r"dns listening on 127\.0\.0\.1:")
        _drain_later(proc)
        assert metrics == want
        assert ready(metrics)["status"] == 200
        await asyncio.to_thread(_ask, port, 3, 4)
        s = scrape(metrics)  # one process: counted as answered
        assert s[BLOCK] == 3
        assert s[ALLOW] == 4
        assert s["writ_writer_ok"] == 1
        assert s['writ_blocklist_info{version="' + ready(metrics)["blocklist_version"] + '"}'] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0


async def test_a_killed_worker_stops_the_node_and_its_metrics(tmp_path: Path,
                                                              standin: StandIn) -> None:
    """No parent serving a dead worker's last counts forever: the node stops (exit 1)."""
    proc = _start(tmp_path, standin.port, "--workers", "2", "--metrics", "127.0.0.1:0")
    try:
        metrics, _ = await _worker_ports(proc)
        await _until_ready(proc, metrics, 200, "/readyz 200")
        os.kill(child_pids(proc.pid)[0], signal.SIGKILL)
        assert await asyncio.to_thread(proc.wait, 30) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", metrics), timeout=2).close()


async def test_a_stopped_worker_makes_the_parent_not_ready(tmp_path: Path,
                                                           standin: StandIn) -> None:
    """A worker alive but stuck (SIGSTOP) sends no counters: /readyz says which, and the
    age of its last report grows, instead of its old counts passing for current."""
    proc = _start(tmp_path, standin.port, "--workers", "2", "--metrics", "127.0.0.1:0")
    victim = None
    try:
        metrics, _ = await _worker_ports(proc)
        _drain_later(proc)
        await _until_ready(proc, metrics, 200, "/readyz 200")
        victim = child_pids(proc.pid)[0]
        os.kill(victim, signal.SIGSTOP)
        await _until_ready(proc, metrics, 503, "/readyz 503 with a stuck worker")
        assert "has not reported for" in str(ready(metrics)["detail"])
        ages = {k: v for k, v in scrape(metrics).items()
                if k.startswith("writ_worker_report_age_seconds")}
        assert max(ages.values()) > 5
        os.kill(victim, signal.SIGCONT)
        await _until_ready(proc, metrics, 200, "/readyz 200 again")
    finally:
        if victim is not None:
            os.kill(victim, signal.SIGCONT)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0


async def test_a_slow_scraper_holds_nobody_up(tmp_path: Path, standin: StandIn) -> None:
    """Scrapers that send half a request, or never read, do not stop other scrapes
    nor the workers' reports."""
    proc = _start(tmp_path, standin.port, "--workers", "2", "--metrics", "127.0.0.1:0")
    held: list[socket.socket] = []
    try:
        metrics, port = await _worker_ports(proc)
        _drain_later(proc)
        for i in range(40):
            c = socket.create_connection(("127.0.0.1", metrics), timeout=5)
            if i % 2:
                c.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # half
            else:  # many requests, never a byte read back
                c.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 200)
            held.append(c)
        await _until_ready(proc, metrics, 200, "/readyz 200 beside slow scrapers")
        await asyncio.to_thread(_ask, port, 5, 0)
        await asyncio.to_thread(wait_for, lambda: scrape(metrics).get(BLOCK) == 5, proc,
                                "5 blocks counted beside slow scrapers")
    finally:
        for c in held:
            c.close()
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
