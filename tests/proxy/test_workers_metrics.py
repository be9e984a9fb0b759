"""`writ proxy --workers 2 --metrics`: the parent serves every worker's counts summed,
with its own audit writer's (docs/operator.md §6)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.metrics_scrape import get, ports_of, ready, scrape, total, wait_for
from tests.proxy.test_workers import BLOCKED, _answer, _start

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BLOCK = 'writ_decisions_total{component="http",decision="block",action="451"}'
ALLOW = 'writ_decisions_total{component="http",decision="allow",action="pass"}'


class _Hi(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"hi")

    def log_message(self, *args: object) -> None:
        pass


def test_the_parent_sums_every_workers_decisions(tmp_path: Path) -> None:
    origin = ThreadingHTTPServer(("127.0.0.1", 0), _Hi)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    allowed = (f"GET http://127.0.0.1:{origin.server_port}/x HTTP/1.1\r\n"
               f"Host: 127.0.0.1:{origin.server_port}\r\n\r\n").encode()
    proc = _start(tmp_path, "--listen", "127.0.0.1:0", "--workers", "2",
                  "--metrics", "127.0.0.1:0")
    try:
        metrics, port = ports_of(proc, r"writ proxy: metrics on 127\.0\.0\.1:",
                                 r"writ proxy: listening on 127\.0\.0\.1:")
        threading.Thread(target=proc.stderr.read, daemon=True).start()  # type: ignore[union-attr]
        wait_for(lambda: ready(metrics)["status"] == 200, proc, "/readyz 200")
        # 14 connections, each its own worker pick: all on one worker has odds of 2**-13
        for i in range(14):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(BLOCKED if i % 2 else allowed)
                answer = _answer(c)
                assert answer.startswith(b"HTTP/1.1 451 " if i % 2 else b"HTTP/1.1 200 "), answer
        wait_for(lambda: total(scrape(metrics), "writ_decisions_total{") >= 14, proc,
                 "14 decisions in /metrics")
        time.sleep(2.5)  # more snapshots from each worker: still 14, nothing counted twice
        s = scrape(metrics)
        assert s[BLOCK] == 7
        assert s[ALLOW] == 7
        assert total(s, "writ_decisions_total{") == 14
        assert s['writ_order_decisions_total{component="http",order="EX-2030-0001-W"}'] == 7
        assert s["writ_writer_ok"] == 1
        assert s["writ_records_written_total"] >= 7
        assert s["writ_drops_total"] == 0
        assert len([k for k in s if k.startswith("writ_blocklist_info{")]) == 2
        assert get(metrics, "/v1/version")[0] == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        origin.shutdown()


def test_a_taken_metrics_port_stops_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _start(tmp_path, "--listen", "127.0.0.1:0", "--workers", "2",
                      "--metrics", f"127.0.0.1:{port}")
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 2, err
    assert f"127.0.0.1:{port}: Address already in use" in err
    assert "Traceback" not in err
