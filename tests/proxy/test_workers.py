"""`writ proxy --workers N` as an operator runs it: N mitmproxy processes on one
SO_REUSEPORT port, one audit chain, SIGTERM seals it, a dead worker stops the node."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.children import child_pids

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
WRIT = [sys.executable, "-m", "writ.cli", "proxy"]
ORDER = ("id: EX-2030-0001-W\ncourt: Test Court\ncase: '1'\nissued: 2015-01-01\n"
         "targets: [{domain: blocked.example}]\n")
BLOCKED = b"GET http://blocked.example/a HTTP/1.1\r\nHost: blocked.example\r\n\r\n"


def _start(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    orders = tmp_path / "orders"
    orders.mkdir(exist_ok=True)
    (orders / "w.yaml").write_text(ORDER)
    return subprocess.Popen(
        [*WRIT, "--orders", str(orders), "--confdir", str(tmp_path / "mitm"),
         "--audit-log", str(tmp_path / "audit" / "decisions.log"), *args],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)})


def _port_of(proc: subprocess.Popen[str]) -> int:
    assert proc.stderr is not None
    for _ in range(40):  # store log lines come first
        line = proc.stderr.readline()
        m = re.search(r"writ proxy: listening on 127\.0\.0\.1:(\d+) \(2 workers\)", line)
        if m:
            return int(m.group(1))
        if not line:
            break
    proc.kill()
    raise AssertionError(f"writ proxy never said where it listens: {proc.communicate()[1]}")


def _established_per_process(port: int, pids: list[int]) -> dict[int, int]:
    """How many established connections on local `port` each process holds (from /proc)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if int(f[1].split(":")[1], 16) == port and f[3] == "01":
            inodes.add(f"socket:[{f[9]}]")
    counts = {}
    for pid in pids:
        fds = Path(f"/proc/{pid}/fd").iterdir()
        counts[pid] = sum(1 for fd in fds if os.readlink(fd) in inodes)
    return counts


def _answer(c: socket.socket | ssl.SSLSocket) -> bytes:
    """One whole HTTP answer (head and Content-Length body) from a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += c.recv(65536) or b"<EOF>"
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    while m and len(body) < int(m.group(1)):
        body += c.recv(65536)
    return head + b"\r\n\r\n" + body


def _records(tmp_path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for p in sorted((tmp_path / "audit").glob("decisions*.log"))
            for x in p.read_text().splitlines()]


def _verify(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    files = [str(p) for p in sorted((tmp_path / "audit").glob("decisions*.log"))]
    return subprocess.run([sys.executable, "-m", "writ.cli", "audit", "verify", *files],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_workers_share_the_port_and_write_one_sealed_chain(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--listen", "127.0.0.1:0", "--workers", "2")
    conns: list[socket.socket] = []
    try:
        port = _port_of(proc)
        workers = child_pids(proc.pid)
        assert len(workers) == 2, workers
        # 16 kept-alive connections: all on one worker has odds of 2**-15
        for _ in range(16):
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            conns.append(c)
            c.sendall(BLOCKED)
            answer = _answer(c)
            assert answer.startswith(b"HTTP/1.1 451 "), answer[:200]
            assert b"EX-2030-0001-W" in answer
        per_worker = _established_per_process(port, workers)
        assert all(n > 0 for n in per_worker.values()), per_worker
        assert sum(per_worker.values()) == 16
    finally:
        for c in conns:
            c.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in workers)  # all stopped
    decisions = [r for r in _records(tmp_path) if r.get("component") == "http"]
    assert len(decisions) == 16
    assert {r["target"] for r in decisions} == {"GET http://blocked.example/a"}
    verified = _verify(tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK ")  # sealed: no --live needed


def test_a_worker_that_dies_stops_the_node(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--listen", "127.0.0.1:0", "--workers", "2")
    try:
        port = _port_of(proc)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(BLOCKED)
            assert _answer(c).startswith(b"HTTP/1.1 451 ")
        victim = child_pids(proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        assert proc.wait(timeout=30) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert f"writ proxy: a worker died (pid {victim}, exit code -9); stopping" in err
    assert "Traceback" not in err
    verified = _verify(tmp_path)  # what was recorded is sealed and verifies
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_a_taken_or_bad_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args, says in ((["--listen", f"127.0.0.1:{port}"],
                            f"cannot start: 127.0.0.1:{port}: Address already in use"),
                           (["--listen", "127.0.0.1:99999"], "--listen"),
                           (["--listen", "127.0.0.1:0", "--workers", "0"], "--workers"),
                           (["--listen", "127.0.0.1:0", "--mode", "nonsense"], "--mode")):
            proc = _start(tmp_path, "--workers", "2", *args)
            try:
                _, err = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:  # it started after all: leave nothing running
                    proc.kill()
                    proc.communicate()
            assert proc.returncode == 2, err
            assert says in err
            assert "Traceback" not in err


def test_every_worker_signs_with_the_one_ca(tmp_path: Path) -> None:
    """With TLS interception, N workers starting on an empty confdir must not
    each make their own CA: a client trusts the one in confdir, so every
    worker's certificate must chain to it."""
    (tmp_path / "policy.yaml").write_text("proxy:\n  tls: intercept\n")
    (tmp_path / "orders").mkdir()
    (tmp_path / "orders" / "k.yaml").write_text(
        "id: EX-2030-0002-K\ncourt: Test Court\ncase: '2'\nissued: 2015-01-01\n"
        "targets: [{url: 'https://kept.example/v/1'}]\n")
    proc = _start(tmp_path, "--listen", "127.0.0.1:0", "--workers", "2",
                  "--policy", str(tmp_path / "policy.yaml"))
    try:
        port = _port_of(proc)
        ctx = ssl.create_default_context(cafile=str(tmp_path / "mitm" / "mitmproxy-ca-cert.pem"))
        for _ in range(12):  # all on one worker: odds of 2**-11
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                raw.sendall(b"CONNECT kept.example:443 HTTP/1.1\r\n"
                            b"Host: kept.example:443\r\n\r\n")
                assert raw.recv(4096).startswith(b"HTTP/1.1 200")
                with ctx.wrap_socket(raw, server_hostname="kept.example") as tls:
                    tls.sendall(b"GET /v/1 HTTP/1.1\r\nHost: kept.example\r\n\r\n")
                    assert b"EX-2030-0002-K" in _answer(tls)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_every_worker_follows_an_edit_of_the_orders_folder(tmp_path: Path) -> None:
    """A new order reaches all workers without a restart: a client retrying on
    fresh connections must not find one worker still allowing the host."""
    class Origin(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, so each client connection stays put

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"origin")

        def log_message(self, *args: object) -> None:
            pass

    origin = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    host = f"127.0.0.1:{origin.server_address[1]}"
    later = f"GET http://{host}/later HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    proc = _start(tmp_path, "--listen", "127.0.0.1:0", "--workers", "2")
    conns: list[socket.socket] = []
    try:
        port = _port_of(proc)
        workers = child_pids(proc.pid)
        for _ in range(16):  # kept alive: each stays on the worker it landed on
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            conns[-1].sendall(later)
            assert _answer(conns[-1]).endswith(b"origin")  # allowed until the order
        per_worker = _established_per_process(port, workers)
        assert all(n > 0 for n in per_worker.values()), per_worker
        (tmp_path / "orders" / "later.yaml").write_text(
            "id: EX-2030-0003-L\ncourt: Test Court\ncase: '3'\nissued: 2015-01-01\n"
            "targets: [{url: 'http://127.0.0.1/later'}]\n")
        pending = list(conns)
        deadline = time.monotonic() + 30
        while pending:
            assert time.monotonic() < deadline, f"{len(pending)} connections still allowed"
            time.sleep(0.5)
            for c in list(pending):
                c.sendall(later)
                answer = _answer(c)
                if b"EX-2030-0003-L" in answer:
                    pending.remove(c)
                else:
                    assert answer.endswith(b"origin"), answer[:200]
    finally:
        for c in conns:
            c.close()
        origin.shutdown()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_workers_start_stops_them_all(tmp_path: Path, sig: int) -> None:
    """SIGINT/SIGTERM as soon as the first worker answers (the others may still
    be starting): the node stops every worker and exits, never hangs or leaves
    a worker enforcing with no audit log behind it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = _start(tmp_path, "--listen", f"127.0.0.1:{port}", "--workers", "2")
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, "no worker ever listened"
            time.sleep(0.005)
    workers = child_pids(proc.pid)
    proc.send_signal(sig)
    try:
        proc.wait(timeout=30)
    finally:
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
        for pid in alive:
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
    assert not alive, "workers outlived their node"


def test_workers_do_not_outlive_a_killed_node(tmp_path: Path) -> None:
    """The node's process killed outright (SIGKILL, the OOM killer): its workers
    stop by themselves instead of enforcing on with no audit log behind them."""
    proc = _start(tmp_path, "--listen", "127.0.0.1:0", "--workers", "2")
    try:
        _port_of(proc)
        workers = child_pids(proc.pid)
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 20
        while alive := [pid for pid in workers if _is_running(pid)]:
            assert time.monotonic() < deadline, f"workers {alive} outlived their node"
            time.sleep(0.2)
    finally:
        for pid in workers:
            if _is_running(pid):
                os.kill(pid, signal.SIGKILL)


def _is_running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
