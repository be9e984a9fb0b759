"""`writ icap --metrics`: the ICAP node's own /metrics, /healthz and /readyz, for an
operator running writ behind Squid with no `writ web` beside it (docs/operator.md §6)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.icap.messages import reqmod
from tests.icap.test_serve import ask
from tests.metrics_scrape import get, ports_of, ready, scrape, total

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# court_orders: videohost.example restored, one video kept blocked
KEPT = b"GET http://videohost.example/v/136071201 HTTP/1.1\r\nHost: videohost.example\r\n\r\n"
OTHER = b"GET http://videohost.example/v/1 HTTP/1.1\r\nHost: videohost.example\r\n\r\n"


def test_icap_counts_every_reqmod_with_its_audit_writer(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "writ.cli", "icap", "--orders", str(ROOT / "court_orders"),
         "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
         "--state-dir", str(tmp_path / "state"),
         "--audit-log", str(tmp_path / "audit" / "decisions.log")],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        icap, metrics = ports_of(proc, r"icap listening on 127\.0\.0\.1:",
                                 r"metrics listening on 127\.0\.0\.1:")
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # type: ignore[union-attr]
        assert ready(metrics)["status"] == 200
        for _ in range(2):
            assert b"HTTP/1.1 451 " in ask(icap, reqmod(KEPT))
        for _ in range(3):
            assert ask(icap, reqmod(OTHER)).startswith(b"ICAP/1.0 204")
        assert ask(icap, b"REQMOD nonsense\r\n\r\n").startswith(b"ICAP/1.0 400")  # no decision
        s = scrape(metrics)  # one process: counted as answered
        assert s['writ_decisions_total{component="http",decision="block",action="451"}'] == 2
        assert s['writ_decisions_total{component="http",decision="allow",action="pass"}'] == 3
        assert total(s, "writ_decisions_total{") == 5
        assert s["writ_writer_ok"] == 1
        assert s["writ_allows_not_logged_total"] == 3
        assert "writ_queue_depth" in s
        assert s["writ_blocklist_loaded"] == 1
        assert get(metrics, "/healthz")[0] == 200
        assert get(metrics, "/v1/orders")[0] == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
