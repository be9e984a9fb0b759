"""End to end: Debian's Squid in front, `writ icap` deciding, a loopback origin.

Squid runs as this test's own process on deploy/squid/squid.conf (free
loopback ports, logs in a temporary folder); `writ icap` runs as a
subprocess. Blocked URLs and hosts get writ's 451 (plain HTTP and CONNECT),
the kept URL of a restored host too, other URLs reach the origin; every
decision is in an audit log that `writ audit verify` accepts. With writ down
(not listening, killed mid-transaction, answering garbage, silent) Squid
refuses with a 503 saying the filtering service is unavailable (bypass=off,
the default here) or passes unjudged, visibly so in its access log
(bypass=on); it asks again as soon as writ is back. An origin's own 500
still reaches the client as a 500.

Without a squid binary the tests skip locally; in CI (CI=true, .ci/run
installs squid) they fail.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import struct
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

from tests.icap.squid import Squid
from tests.ports import closed_port, free_port

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


class _Origin(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []  # one origin per module, reset by its fixture

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append(f"{self.command} {self.headers['host']}{self.path} {body!r}")
        out = b"origin: " + body
        self.send_response(500 if self.path.startswith("/status/500") else 200)
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


def assert_writ_unavailable(status: int, headers: dict[str, str], page: bytes) -> None:
    """Squid's answer while writ cannot judge: a 503 that names the filtering
    service, not a block of the site (docs/operator.md, "writ behind Squid")."""
    assert status == 503, page[:300]
    assert headers.get("X-Squid-Error", "").startswith("503:ERR_WRIT_UNAVAILABLE"), headers
    assert headers.get("Retry-After") == "30"
    assert headers.get("Cache-Control") == "no-store"
    assert b"filtering service is unavailable" in page
    assert b"not a block" in page
    assert b"Legal Reasons" not in page
    assert b"ORD-" not in page


def access_log(squid: Squid, methods: tuple[str, ...], count: int) -> list[list[str]]:
    """The first COUNT lines of Squid's access log for METHODS, split into
    fields (the `writ` logformat: the last field is writ's ISTag, or "-" when
    writ did not judge the request). Squid writes a line as a transaction
    ends, which can be just after its client has read the answer."""
    path = squid.dir / "access.log"
    deadline = time.monotonic() + 20
    while True:
        lines = [line.split() for line in path.read_text().splitlines()] if path.exists() else []
        found = [f for f in lines if len(f) > 5 and f[5] in methods]
        if len(found) >= count or time.monotonic() > deadline:
            return found[:count]
        time.sleep(0.05)


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
        # the origin's own 500 reaches the client as it is: the outage rule
        # below catches Squid's ICAP failures only
        status, headers, page = fetch(squid, f"http://fine.example{o}/status/500")
        assert (status, page) == (500, b"origin: ")
        assert "X-Squid-Error" not in headers
        assert "Retry-After" not in headers
        # every request writ judged carries writ's ISTag in Squid's access log
        judged = access_log(squid, ("GET", "POST"), 6)
        assert len(judged) == 6
        assert all(f[-1].startswith("%22writ-") for f in judged), judged  # URL-quoted

        proc.send_signal(signal.SIGTERM)  # writ stops: the log is sealed
        assert proc.wait(timeout=20) == 0
        # writ down, bypass=off: Squid refuses with its 503, nothing reaches the origin
        seen = len(_Origin.seen)
        assert_writ_unavailable(*fetch(squid, f"http://fine.example{o}/after"))
        assert connect(squid, f"fine.example{o}") == b"HTTP/1.1 503 Service Unavailable"
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
        (f"GET http://fine.example{o}/status/500", "allow", "pass"),
        (f"GET http://blocked.example{o}/again", "block", "451"),  # after the restart
    ]
    clients = {r["client"] for r in records if r.get("event") == "writ.http.decision"}
    assert len(clients) == 1
    assert "127.0.0.1" not in clients
    verify = subprocess.run([sys.executable, "-m", "writ.cli", "audit", "verify", *map(str, logs)],
                            capture_output=True, text=True, check=False,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert verify.returncode == 0, verify.stdout + verify.stderr


OPTIONS = (b"ICAP/1.0 200 OK\r\nMethods: REQMOD\r\nISTag: \"hostile-1\"\r\nPreview: 0\r\n"
           b"Allow: 204\r\nOptions-TTL: 3600\r\nEncapsulated: null-body=0\r\n\r\n")


class _HostileIcap:
    """An ICAP service that answers OPTIONS as writ does, then fails every
    REQMOD in one way: `close` (a killed writ: the connection ends), `reset`,
    `garbage` (not ICAP), `icap503` (an ICAP error status, as writ's answer
    past icap.max_connections), `silent` (never answers), `cut451` (starts a
    451 and dies in its body)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.reqmods = 0
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while True:
                while buf.count(b"\r\n\r\n") < (1 if buf.startswith(b"OPTIONS") else 2):
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                if buf.startswith(b"OPTIONS"):
                    buf = buf.partition(b"\r\n\r\n")[2]
                    conn.sendall(OPTIONS)
                    continue
                self.reqmods += 1
                self._fail(conn)
                return
        except OSError:
            return

    def _fail(self, conn: socket.socket) -> None:
        if self.mode == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif self.mode == "garbage":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        elif self.mode == "icap503":
            conn.sendall(b'ICAP/1.0 503 Service Unavailable\r\nISTag: "hostile-1"\r\n'
                         b"Encapsulated: null-body=0\r\n\r\n")
        elif self.mode == "silent":
            return  # the connection stays open, unanswered, until stop()
        elif self.mode == "cut451":
            head = b"HTTP/1.1 451 Unavailable For Legal Reasons\r\nContent-Type: text/html\r\n\r\n"
            conn.sendall(b'ICAP/1.0 200 OK\r\nISTag: "hostile-1"\r\n'
                         b"Encapsulated: res-hdr=0, res-body=%d\r\n\r\n" % len(head)
                         + head + b"400\r\n" + b"x" * 50)
        conn.close()

    def stop(self) -> None:
        self.listener.close()
        for conn in self.open:
            conn.close()


@pytest.mark.parametrize("mode", ["down", "close", "reset", "garbage", "icap503", "silent"])
def test_writ_unavailable_is_a_503_not_a_block(squid_bin: str, origin: int, mode: str) -> None:
    """bypass=off: whatever way writ fails, Squid answers 503 (the filtering
    service is unavailable) and never asks the origin."""
    hostile = None if mode == "down" else _HostileIcap(mode)
    down = contextlib.ExitStack()  # "down": nothing listens, for the whole test
    port = down.enter_context(closed_port()) if hostile is None else hostile.port
    # `silent`: Squid gives up after icap_io_timeout (30 s shipped; 1 s here)
    squid = Squid(squid_bin, icap_url=f"127.0.0.1:{port}/writ", names=NAMES,
                  extra="icap_io_timeout 1 seconds\n").start()
    try:
        seen = len(_Origin.seen)
        assert_writ_unavailable(*fetch(squid, f"http://fine.example:{origin}/{mode}"))
        assert_writ_unavailable(*fetch(squid, f"http://fine.example:{origin}/up", b"body"))
        assert connect(squid, f"fine.example:{origin}") == b"HTTP/1.1 503 Service Unavailable"
        assert len(_Origin.seen) == seen
        if hostile is not None:
            assert hostile.reqmods >= 3  # Squid did ask, and got no verdict
        logged = access_log(squid, ("GET", "POST", "CONNECT"), 3)
        assert [(f[3], f[-1]) for f in logged] == [("TCP_DENIED_REPLY/503", "-")] * 3
    finally:
        squid.stop()
        down.close()
        if hostile is not None:
            hostile.stop()


def test_writ_dying_inside_its_451_leaves_no_way_through(squid_bin: str, origin: int) -> None:
    """writ killed while sending a block page: Squid has already passed the
    451's head on, so it can only cut the connection; the origin is never asked."""
    hostile = _HostileIcap("cut451")
    squid = Squid(squid_bin, icap_url=f"127.0.0.1:{hostile.port}/writ", names=NAMES).start()
    try:
        seen = len(_Origin.seen)
        with socket.create_connection(("127.0.0.1", squid.port), timeout=30) as s:
            s.sendall(f"GET http://blocked.example:{origin}/cut HTTP/1.1\r\n"
                      f"Host: blocked.example:{origin}\r\n\r\n".encode())
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 451 "), answer[:200]
        assert len(_Origin.seen) == seen
    finally:
        squid.stop()
        hostile.stop()


def _queued_bytes(port: int) -> int:
    """Bytes waiting unread on established connections to 127.0.0.1:PORT (/proc/net/tcp)."""
    total = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "01":
            total += int(fields[4].split(":")[1], 16)
    return total


def test_writ_killed_mid_transaction_is_a_503(squid_bin: str, origin: int,
                                              writ_icap: tuple[int, subprocess.Popen[str]]
                                              ) -> None:
    """The real `writ icap`, frozen with Squid's REQMOD unread in its socket,
    then killed (SIGKILL): the request in flight gets the 503, so does the next."""
    port, proc = writ_icap
    squid = Squid(squid_bin, icap_url=f"127.0.0.1:{port}/writ", names=NAMES).start()
    try:
        o = f":{origin}"
        status, _, _ = fetch(squid, f"http://fine.example{o}/before")
        assert status == 200
        seen = len(_Origin.seen)
        proc.send_signal(signal.SIGSTOP)
        answer: list[tuple[int, dict[str, str], bytes]] = []
        asker = threading.Thread(
            target=lambda: answer.append(fetch(squid, f"http://fine.example{o}/in-flight")))
        asker.start()
        deadline = time.monotonic() + 20
        while _queued_bytes(port) == 0:  # Squid's REQMOD waits in the frozen writ's socket
            assert time.monotonic() < deadline, "Squid's REQMOD never reached writ"
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        asker.join(30)
        assert_writ_unavailable(*answer[0])
        assert_writ_unavailable(*fetch(squid, f"http://fine.example{o}/after"))
        assert len(_Origin.seen) == seen
    finally:
        squid.stop()


@pytest.mark.parametrize("mode", ["down", "close", "garbage"])
def test_with_bypass_on_a_failing_writ_lets_traffic_through(squid_bin: str, origin: int,
                                                            mode: str) -> None:
    """bypass=on is the operator's choice to fail open: traffic passes
    unjudged, and Squid's access log shows it ("-" where writ's ISTag stands)."""
    hostile = None if mode == "down" else _HostileIcap(mode)
    down = contextlib.ExitStack()  # "down": nothing listens, for the whole test
    port = down.enter_context(closed_port()) if hostile is None else hostile.port
    # icap_io_timeout 1 s, as in the 503 tests: in some full runs Squid sat on
    # an ICAP exchange for the shipped 30 s before bypassing (cause not found;
    # never seen alone); the test is about what passes, not how long Squid waits.
    squid = Squid(squid_bin, icap_url=f"127.0.0.1:{port}/writ", bypass=True,
                  names=NAMES, extra="icap_io_timeout 1 seconds\n").start()
    try:
        status, _, page = fetch(squid, f"http://blocked.example:{origin}/bypassed")
        assert (status, page) == (200, b"origin: ")  # the operator chose to fail open
        status, _, page = fetch(squid, f"http://fine.example:{origin}/status/500")
        assert (status, page) == (500, b"origin: ")
        logged = access_log(squid, ("GET",), 2)
        assert [(f[3], f[-1]) for f in logged] == [("TCP_MISS/200", "-"), ("TCP_MISS/500", "-")]
        assert all(len(f) == 11 for f in logged), logged  # Squid's format + writ's ISTag
    finally:
        squid.stop()
        down.close()
        if hostile is not None:
            hostile.stop()


def test_a_writ_that_never_completes_the_tcp_handshake_is_a_503(squid_bin: str,
                                                                 origin: int) -> None:
    """The connect itself hangs (a host gone quiet, SYNs dropped): a listener
    that never accepts, its backlog full, so the kernel drops Squid's SYNs.
    Squid gives up after icap_connect_timeout (2 s shipped) and refuses: 503."""
    with socket.socket() as quiet:
        quiet.bind(("127.0.0.1", 0))
        quiet.listen(0)
        port = quiet.getsockname()[1]
        fillers = []
        for _ in range(4):  # fill the accept queue: the next SYN goes unanswered
            f = socket.socket()
            f.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                f.connect(("127.0.0.1", port))
            fillers.append(f)
        time.sleep(0.2)
        squid = Squid(squid_bin, icap_url=f"127.0.0.1:{port}/writ", names=NAMES).start()
        try:
            seen = len(_Origin.seen)
            started = time.monotonic()
            assert_writ_unavailable(*fetch(squid, f"http://fine.example:{origin}/quiet"))
            assert time.monotonic() - started >= 1.5  # it did wait for the connect
            assert len(_Origin.seen) == seen
        finally:
            squid.stop()
            for f in fillers:
                f.close()
