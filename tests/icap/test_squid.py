"""End to end: Debian's Squid in front, `writ icap` deciding, a loopback origin.

Squid runs as this test's own process on deploy/squid/squid.conf (free
loopback ports, logs in a temporary folder); `writ icap` runs as a
subprocess. Blocked URLs and hosts get writ's 451 (plain HTTP and CONNECT),
the kept URL of a restored host too, other URLs reach the origin; every
decision is in an audit log that `writ audit verify` accepts; with writ down
Squid refuses (bypass=off, the default here) or passes unjudged (bypass=on),
and asks again as soon as writ is back.

Without a squid binary the tests skip locally; in CI (CI=true, .ci/run
installs squid) they fail.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from tests.icap.squid import Squid, squid_binary
from tests.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("blocked.example", "videohost.example", "fine.example")
ORDERS = """\
id: ORD-BLOCKED
court: Northgate District Court
case: "1-1/2026"
issued: 2026-01-05
reference: https://court.example/orders/1-1-2026
targets:
  - domain: blocked.example
---
id: EX-VH
court: Northgate District Court
case: "2-5678/2015"
issued: 2015-09-07
targets:
  - domain: videohost.example
---
id: EX-VH-R
kind: restore
amends: EX-VH
court: Northgate District Court
case: "2-5678/2015"
issued: 2015-09-28
restores:
  - domain: videohost.example
keep_blocked:
  - url: https://videohost.example/v/136071201
"""


@pytest.fixture(scope="module")
def squid_bin() -> str:
    found = squid_binary()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("squid is not installed (.ci/run installs it)")
        pytest.skip("squid is not installed")
    return found


class _Origin(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []  # one origin per module, reset by its fixture

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append(f"{self.command} {self.headers['host']}{self.path} {body!r}")
        out = b"origin: " + body
        self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def origin() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    _Origin.seen = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _icap_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"OPTIONS icap://127.0.0.1/writ ICAP/1.0\r\nHost: x\r\n\r\n")
            return s.recv(64).startswith(b"ICAP/1.0 200")
    except OSError:
        return False


def start_writ(workdir: Path, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "writ.cli", "icap", "--orders", str(workdir / "orders"),
         "--policy", str(workdir / "policy.yaml"), "--listen", f"127.0.0.1:{port}"],
        cwd=workdir, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not _icap_answers(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"writ icap did not start: {proc.communicate()[1][-2000:]}")
        time.sleep(0.1)
    return proc


@pytest.fixture
def writ_icap(tmp_path: Path) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    (tmp_path / "orders").mkdir()
    (tmp_path / "orders" / "orders.yaml").write_text(ORDERS)
    (tmp_path / "policy.yaml").write_text(
        "node: squid-e2e\ntransparency_url: https://isp.example/blocking\n"
        "audit:\n  log_allowed: true\n")
    port = free_port()
    proc = start_writ(tmp_path, port)
    try:
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def fetch(squid: Squid, url: str, body: bytes | None = None
          ) -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": squid.url}))
    try:
        with opener.open(urllib.request.Request(url, data=body), timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def connect(squid: Squid, authority: str) -> bytes:
    """The status line Squid answers a CONNECT with."""
    with socket.create_connection(("127.0.0.1", squid.port), timeout=30) as s:
        s.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        return s.recv(4096).split(b"\r\n")[0]


def test_squid_enforces_writs_decisions(squid_bin: str, origin: int, tmp_path: Path,
                                        writ_icap: tuple[int, subprocess.Popen[str]]) -> None:
    port, proc = writ_icap
    squid = Squid(squid_bin, icap_url=f"127.0.0.1:{port}/writ", names=NAMES).start()
    try:
        o = f":{origin}"
        status, headers, page = fetch(squid, f"http://blocked.example{o}/a?b=1")
        assert status == 451, page[:300]
        assert headers["Link"] == '<https://isp.example/blocking>; rel="blocked-by"'
        assert headers["Cache-Control"] == "no-store"
        assert b"ORD-BLOCKED" in page
        assert b"Northgate District Court" in page
        status, _, page = fetch(squid, f"http://videohost.example{o}/v/136071201")
        assert status == 451
        assert b"EX-VH-R" in page
        status, _, page = fetch(squid, f"http://videohost.example{o}/v/1")
        assert (status, page) == (200, b"origin: ")
        status, _, page = fetch(squid, f"http://fine.example{o}/up", b"hello body")
        assert (status, page) == (200, b"origin: hello body")  # bodies pass through Squid
        status, _, page = fetch(squid, f"http://blocked.example{o}/up", b"secret")
        assert status == 451
        # HTTPS without interception: the CONNECT is judged by its host
        assert connect(squid, "blocked.example:443") == b"HTTP/1.1 451 Unavailable For Legal " \
                                                        b"Reasons"
        assert connect(squid, f"fine.example{o}") == b"HTTP/1.1 200 Connection established"
        assert all("blocked.example" not in s and "136071201" not in s for s in _Origin.seen)
        assert f"GET videohost.example{o}/v/1 b''" in _Origin.seen

        proc.send_signal(signal.SIGTERM)  # writ stops: the log is sealed
        assert proc.wait(timeout=20) == 0
        # writ down, bypass=off: Squid refuses (its ICAP error), nothing reaches the origin
        seen = len(_Origin.seen)
        status, headers, _ = fetch(squid, f"http://fine.example{o}/after")
        assert status == 500
        assert headers.get("X-Squid-Error", "").startswith("ERR_ICAP_FAILURE")
        assert len(_Origin.seen) == seen
        # writ back on its port: Squid asks it again at once (failure_limit -1)
        again = start_writ(tmp_path, port)
        try:
            status, _, page = fetch(squid, f"http://blocked.example{o}/again")
            assert status == 451
            assert b"ORD-BLOCKED" in page
        finally:
            again.send_signal(signal.SIGTERM)
            assert again.wait(timeout=20) == 0
    finally:
        squid.stop()

    logs = sorted((tmp_path / "state/audit").glob("decisions.*.log"))
    records = [json.loads(line) for f in logs for line in f.read_text().splitlines()]
    decided = [(r["target"], r["decision"], r["action"]) for r in records
               if r.get("event") == "writ.http.decision"]
    assert decided == [
        (f"GET http://blocked.example{o}/a?b=1", "block", "451"),
        (f"GET http://videohost.example{o}/v/136071201", "block", "451"),
        (f"GET http://videohost.example{o}/v/1", "allow", "pass"),
        (f"POST http://fine.example{o}/up", "allow", "pass"),
        (f"POST http://blocked.example{o}/up", "block", "451"),
        ("CONNECT blocked.example:443", "block", "451"),
        (f"CONNECT fine.example{o}", "allow", "pass"),
        (f"GET http://blocked.example{o}/again", "block", "451"),  # after the restart
    ]
    clients = {r["client"] for r in records if r.get("event") == "writ.http.decision"}
    assert len(clients) == 1
    assert "127.0.0.1" not in clients
    verify = subprocess.run([sys.executable, "-m", "writ.cli", "audit", "verify", *map(str, logs)],
                            capture_output=True, text=True, check=False,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_with_bypass_on_a_dead_writ_lets_traffic_through(squid_bin: str, origin: int) -> None:
    dead = free_port()  # nothing listens here
    squid = Squid(squid_bin, icap_url=f"127.0.0.1:{dead}/writ", bypass=True,
                  names=NAMES).start()
    try:
        status, _, page = fetch(squid, f"http://blocked.example:{origin}/bypassed")
        assert (status, page) == (200, b"origin: ")  # the operator chose to fail open
    finally:
        squid.stop()
