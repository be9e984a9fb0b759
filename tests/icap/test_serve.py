"""`writ serve --icap`: the ICAP service beside the web server in one node,
its decisions counted in the node's /metrics like the proxy's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.icap.test_protocol import reqmod
from tests.ports import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def ask(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        return s.recv(65536)


def test_serve_runs_icap_and_counts_its_decisions(tmp_path: Path) -> None:
    icap, web = free_port(), free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "writ.cli", "serve", "--orders", str(ROOT / "court_orders"),
         "--without", "dns", "--without", "proxy", "--icap", f"127.0.0.1:{icap}",
         "--web", f"127.0.0.1:{web}", "--state-dir", str(tmp_path / "state")],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = ask(icap, b"OPTIONS icap://127.0.0.1/writ ICAP/1.0\r\n\r\n")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"writ serve did not start: {proc.stderr and proc.stderr.read()}")
                time.sleep(0.1)
        assert answer.startswith(b"ICAP/1.0 200 OK")
        # court_orders: videohost.example restored, one video kept blocked
        kept = (b"GET http://videohost.example/v/136071201 HTTP/1.1\r\n"
                b"Host: videohost.example\r\n\r\n")
        assert b"HTTP/1.1 451 " in ask(icap, reqmod(kept))
        other = b"GET http://videohost.example/v/1 HTTP/1.1\r\nHost: videohost.example\r\n\r\n"
        assert ask(icap, reqmod(other)).startswith(b"ICAP/1.0 204")
        with urllib.request.urlopen(f"http://127.0.0.1:{web}/metrics", timeout=10) as r:
            metrics = r.read().decode()
        assert 'writ_decisions_total{component="http",decision="block",action="451"} 1' in metrics
        assert 'writ_decisions_total{component="http",decision="allow",action="pass"} 1' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
