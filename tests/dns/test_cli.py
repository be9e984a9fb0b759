"""`writ dns` as a user runs it: workers on one port, one audit chain, SIGTERM seals it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from dnslib import DNSRecord

from tests.dns.support import ede_of, make_query, udp_exchange

ORDER = """\
id: EX-2015-0907-VH
court: Test District Court
case: "1/2015"
issued: 2015-09-07
targets:
  - domain: videohost.example
"""


@pytest.mark.slow
@pytest.mark.e2e
def test_workers_share_one_port_and_one_audit_chain(tmp_path: Path) -> None:
    (tmp_path / "orders").mkdir()
    (tmp_path / "orders" / "kz.yaml").write_text(ORDER)
    log = tmp_path / "audit" / "decisions.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "writ.cli", "dns", "--orders", str(tmp_path / "orders"),
         "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9", "--workers", "2",
         "--audit-log", str(log)],
        stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        port = _port_of(proc)
        for i in range(20):
            raw = udp_exchange(port, bytes(make_query(f"h{i}.videohost.example").pack()))
            assert raw is not None
            assert ede_of(DNSRecord.parse(raw)) == (16, "blocked by court order EX-2015-0907-VH")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    records = [json.loads(x) for p in sorted(log.parent.glob("decisions*.log"))
               for x in p.read_text().splitlines()]
    decisions = [r for r in records if r.get("component") == "dns"]
    assert sorted(r["target"] for r in decisions) == sorted(
        f"h{i}.videohost.example. A" for i in range(20))
    seqs = [r["seq"] for r in records]
    assert seqs == list(range(seqs[0], seqs[0] + len(records)))  # one chain, no gaps


def _port_of(proc: subprocess.Popen[str]) -> int:
    assert proc.stderr is not None
    for _ in range(20):  # store log lines may come first
        line = proc.stderr.readline()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if m:
            return int(m.group(1))
    raise AssertionError("writ dns never said where it listens")


@pytest.mark.slow
@pytest.mark.e2e
def test_every_worker_follows_an_edit_of_the_orders_folder(tmp_path: Path) -> None:
    """A new order reaches all workers without a restart; an invalid edit keeps it."""
    import time

    orders = tmp_path / "orders"
    orders.mkdir()
    (orders / "kz.yaml").write_text(ORDER)
    proc = subprocess.Popen(
        [sys.executable, "-m", "writ.cli", "dns", "--orders", str(orders),
         "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9", "--workers", "2"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=tmp_path)

    def blocked(name: str) -> bool:
        raw = udp_exchange(port, bytes(make_query(name).pack()))
        # EDE 16 (Censored); a SERVFAIL carries EDE 22/23 instead
        return raw is not None and (ede_of(DNSRecord.parse(raw)) or (0,))[0] == 16

    try:
        port = _port_of(proc)
        assert blocked("videohost.example")
        assert not blocked("forum.example")  # upstream 127.0.0.1:9 is down: SERVFAIL
        (orders / "forum.yaml").write_text(
            ORDER.replace("EX-2015-0907-VH", "EX-2016-FORUM").replace("videohost", "forum"))
        deadline = time.monotonic() + 10
        # 40 queries from fresh sockets land on both workers (SO_REUSEPORT hashes ports)
        while not all(blocked("forum.example") for _ in range(40)):
            assert time.monotonic() < deadline, "the workers did not pick up the new order"
            time.sleep(0.2)
        (orders / "forum.yaml").write_text("id: [broken\n")
        time.sleep(2.5)
        assert all(blocked("forum.example") for _ in range(40))  # last good version stays
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0


def test_bad_flags_are_a_usage_error(tmp_path: Path) -> None:
    from writ.cli import main

    assert main(["dns", "--orders", str(tmp_path / "missing")]) == 2
    assert main(["dns", "--orders", str(tmp_path), "--listen", "nonsense:port"]) == 2


@pytest.mark.slow
@pytest.mark.e2e
def test_a_worker_that_cannot_listen_stops_the_node_at_once(tmp_path: Path) -> None:
    import socket
    import time

    (tmp_path / "orders").mkdir()
    (tmp_path / "orders" / "kz.yaml").write_text(ORDER)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]  # TCP taken; the UDP twin is (almost surely) free
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "writ.cli", "dns", "--orders", str(tmp_path / "orders"),
             "--listen", f"127.0.0.1:{port}", "--upstream", "127.0.0.1:9", "--workers", "2"],
            check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path)
        elapsed = time.monotonic() - t0
    assert proc.returncode != 0
    assert "cannot listen" in proc.stderr and "could not start" in proc.stderr  # noqa: PT018
    assert "Traceback" not in proc.stderr
    assert "listening on" not in proc.stderr  # never announced a port it does not serve
    assert elapsed < 30  # not the 60 s readiness timeout


def test_a_taken_port_is_named_in_the_error(tmp_path: Path) -> None:
    import socket

    (tmp_path / "orders").mkdir()
    (tmp_path / "orders" / "kz.yaml").write_text(ORDER)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "writ.cli", "dns", "--orders", str(tmp_path / "orders"),
             "--listen", f"127.0.0.1:{port}", "--upstream", "127.0.0.1:9", "--workers", "1"],
            check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert f"DNS on 127.0.0.1:{port}" in proc.stderr
    assert "in use" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_workers_refuse_an_unsigned_folder_before_forking(tmp_path: Path) -> None:
    """With trust.keyring, the check before forking demands the signatures too."""
    keyring = Path(__file__).resolve().parents[2] / "keys" / "demo-DO-NOT-USE" / "keyring.yaml"
    (tmp_path / "orders").mkdir()
    (tmp_path / "orders" / "kz.yaml").write_text(ORDER)
    (tmp_path / "policy.yaml").write_text(f"trust:\n  keyring: {keyring}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "writ.cli", "dns", "--orders", str(tmp_path / "orders"),
         "--policy", str(tmp_path / "policy.yaml"), "--listen", "127.0.0.1:0",
         "--upstream", "127.0.0.1:9", "--workers", "2"],
        check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2
    assert "invalid orders, nothing to enforce" in proc.stderr
    assert "kz.yaml: signature: missing" in proc.stderr
    assert "Traceback" not in proc.stderr
