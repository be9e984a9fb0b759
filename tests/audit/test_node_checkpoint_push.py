"""Issue 12, finding 1, as an operator meets it: a node on `redis+sentinel://`
with `checkpoint_push_redis: true`. Before, its audit writer died at the first
checkpoint (ValueError from redis.Redis.from_url) and SIGTERM left the file
unsealed; now the store and the push share one connection factory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from dnslib import DNSRecord

from tests.blocklist.stores.test_sentinel import sentinel_url  # noqa: F401 - a fixture
from tests.dns.support import ede_of, make_query, udp_exchange
from tests.dns.test_cli import ORDER, _port_of
from writ.cli import main


@pytest.mark.slow
@pytest.mark.e2e
def test_a_sentinel_node_pushes_checkpoints_and_seals_its_log(
        tmp_path: Path, sentinel_url: str, redis_url: str,  # noqa: F811
        capsys: pytest.CaptureFixture[str]) -> None:
    orders = tmp_path / "orders"
    orders.mkdir()
    (orders / "kz.yaml").write_text(ORDER)
    assert main(["orders", "apply", str(orders), "--redis", sentinel_url,
                 "--prefix", "writsent"]) == 0
    audit = tmp_path / "audit"
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"node: edge-s\naudit:\n  path: {audit}/decisions.log\n"
                      f"  key_file: {audit}/client.key\n  signing_key_file: {audit}/signing.key\n"
                      f"  checkpoint_file: {audit}/checkpoints.log\n  checkpoint_every: 5\n"
                      "  checkpoint_push_redis: true\n  fsync: never\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "writ.cli", "dns", "--redis", sentinel_url, "--prefix", "writsent",
         "--policy", str(policy), "--listen", "127.0.0.1:0", "--upstream", "127.0.0.1:9",
         "--state-dir", str(tmp_path / "state")],
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=tmp_path)
    try:
        port = _port_of(proc)
        for i in range(20):
            raw = udp_exchange(port, bytes(make_query(f"h{i}.videohost.example").pack()))
            assert raw is not None
            assert ede_of(DNSRecord.parse(raw))[0] == 16
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    capsys.readouterr()
    logs = sorted(str(p) for p in audit.glob("decisions*.log"))
    assert main(["audit", "verify", "--checkpoints", str(audit / "checkpoints.log"),
                 "--public-key", str(audit / "signing.key"), *logs]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK ")
    assert "NOT PROVEN" not in out  # sealed, and the seal is checkpointed
    client = redis.Redis.from_url(redis_url)
    try:
        pushed = client.lrange("{writsent}:audit:checkpoints:edge-s", 0, -1)
    finally:
        client.close()
    local = (audit / "checkpoints.log").read_text().splitlines()
    assert [p.decode() for p in pushed] == local
