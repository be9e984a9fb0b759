"""`writ proxy` and `mitmdump -s` as an operator runs them: real processes on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _ask(port: int, request: bytes, deadline: float, host: str = "127.0.0.1") -> bytes:
    """The whole answer to `request`, retrying connections until `deadline`."""
    while True:
        try:
            with socket.create_connection((host, port), timeout=5) as c:
                c.sendall(request)
                data = b""
                while chunk := c.recv(65536):
                    data += chunk
                return data
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


BLOCKED = (b"GET http://videohost.example/v/136071201 HTTP/1.1\r\n"
           b"Host: videohost.example\r\nConnection: close\r\n\r\n")


def _run(cmd: list[str], port: int) -> tuple[bytes, str]:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        answer = _ask(port, BLOCKED, time.monotonic() + 30)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    return answer, err.decode()


def test_writ_proxy_serves_451(tmp_path: Path) -> None:
    port = free_port()
    answer, err = _run([str(BIN / "writ"), "proxy", "--orders", "court_orders",
                        "--listen", f"127.0.0.1:{port}", "--confdir", str(tmp_path / "mitm"),
                        "--audit-log", str(tmp_path / "audit" / "decisions.log")], port)
    assert answer.startswith(b"HTTP/1.1 451 Unavailable For Legal Reasons"), err
    assert "listening on 127.0.0.1:" in err
    logs = list((tmp_path / "audit").glob("decisions*"))
    assert any(b'"component":"http"' in p.read_bytes() for p in logs)


def test_mitmdump_script_shim(tmp_path: Path) -> None:
    port = free_port()
    answer, err = _run([str(BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1",
                        "-p", str(port), "--set", f"confdir={tmp_path / 'mitm'}",
                        "-s", "writ/proxy/mitmdump_addon.py",
                        "--set", "writ_orders=court_orders",
                        "--set", f"writ_audit_log={tmp_path / 'audit.log'}"], port)
    assert answer.startswith(b"HTTP/1.1 451 Unavailable For Legal Reasons"), err


def test_mitmdump_script_checks_signatures_when_the_policy_has_a_keyring(
        tmp_path: Path) -> None:
    """`mitmdump -s` is a node like any other: with trust.keyring a tampered act
    stops it at startup naming the file, and the signed samples are enforced."""
    import shutil

    orders = tmp_path / "orders"
    shutil.copytree(ROOT / "court_orders", orders)
    policy = "writ_policy=" + str(ROOT / "policies" / "demo-signed.yaml")
    base = [str(BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1",
            "--set", f"confdir={tmp_path / 'mitm'}", "-s", "writ/proxy/mitmdump_addon.py",
            "--set", policy, "--set", f"writ_audit_log={tmp_path / 'audit.log'}"]
    port = free_port()
    answer, err = _run([*base, "-p", str(port), "--set", f"writ_orders={orders}"], port)
    assert answer.startswith(b"HTTP/1.1 451 Unavailable For Legal Reasons"), err
    act = orders / "ex-2015-0928-vh-r.yaml"
    act.write_text(act.read_text().replace("2015-09-28", "2015-09-29", 1))  # one byte moved
    proc = subprocess.run([*base, "-p", str(free_port()), "--set", f"writ_orders={orders}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode != 0
    assert "ex-2015-0928-vh-r.yaml: signature:" in proc.stdout + proc.stderr


def test_mitmdump_script_refuses_uploads_at_once_and_judges_split_first_bytes(
        tmp_path: Path) -> None:
    """Under `mitmdump -s` the addon's next_layer runs before mitmproxy's own
    (scripts load first): the early answer and the first-bytes rule hold anyway."""
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1", "-p", str(port),
         "--set", f"confdir={tmp_path / 'mitm'}", "-s", "writ/proxy/mitmdump_addon.py",
         "--set", "writ_orders=court_orders", "--set", f"writ_audit_log={tmp_path / 'a.log'}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        _ask(port, BLOCKED, time.monotonic() + 30)  # up and enforcing
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(b"POST http://videohost.example/v/136071201 HTTP/1.1\r\n"
                      b"Host: videohost.example\r\nContent-Length: 314572800\r\n"
                      b"Expect: 100-continue\r\n\r\n")
            assert c.recv(64).startswith(b"HTTP/1.1 451")  # at once: no 100, no body read
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(b"CONNECT 127.0.0.1:9 HTTP/1.1\r\n\r\n")
            assert c.recv(4096).startswith(b"HTTP/1.1 200")
            c.sendall(b"GET")
            time.sleep(0.3)
            c.sendall(b" /v/136071201 HTTP/1.1\r\nHost: videohost.example\r\n\r\n")
            assert c.recv(64).startswith(b"HTTP/1.1 451")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


def test_writ_proxy_bad_invocations_exit_2(tmp_path: Path) -> None:
    for args, says in ((["--orders", str(tmp_path / "none")], "--orders"),
                       (["--orders", str(tmp_path), "--listen", "nope"], "--listen"),
                       (["--orders", str(tmp_path), "--policy", str(tmp_path / "p.yaml")],
                        "--policy")):
        r = subprocess.run([str(BIN / "writ"), "proxy", *args], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, check=False)
        assert r.returncode == 2, r.stderr
        assert says in r.stderr
        assert "Traceback" not in r.stderr


def test_mitmdump_script_follows_an_edit_of_the_orders_folder(tmp_path: Path) -> None:
    """Under `mitmdump -s` the addon keeps its blocklist current, like `writ proxy`."""
    orders = tmp_path / "orders"
    orders.mkdir()
    (orders / "a.yaml").write_text("id: A-1\ncourt: C\ncase: '1'\nissued: 2015-01-01\n"
                                   "targets: [{domain: first.example}]\n")
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1", "-p", str(port),
         "--set", f"confdir={tmp_path / 'mitm'}", "-s", str(ROOT / "writ/proxy/mitmdump_addon.py"),
         "--set", f"writ_orders={orders}", "--set", f"writ_audit_log={tmp_path / 'audit.log'}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)})

    def ask(host: str) -> bytes:
        req = (f"GET http://{host}/ HTTP/1.1\r\nHost: {host}\r\n"
               "Connection: close\r\n\r\n").encode()
        return _ask(port, req, time.monotonic() + 30)

    try:
        assert ask("first.example").startswith(b"HTTP/1.1 451")
        assert not ask("second.example").startswith(b"HTTP/1.1 451")
        (orders / "b.yaml").write_text("id: B-1\ncourt: C\ncase: '2'\nissued: 2015-01-01\n"
                                       "targets: [{domain: second.example}]\n")
        deadline = time.monotonic() + 15
        while not ask("second.example").startswith(b"HTTP/1.1 451"):
            assert time.monotonic() < deadline, "the new order was not picked up"
            time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


def test_mitmdump_script_opens_the_policys_steer_listeners(tmp_path: Path) -> None:
    """`proxy.steer_http` works under `mitmdump -s` as under `writ proxy`: a
    client DNS steered to that address gets the kept URL refused and the rest
    of the host relayed to it."""
    import http.server
    import threading

    class Origin(http.server.BaseHTTPRequestHandler):
        seen: list[str] = []  # noqa: RUF012 - read by the test

        def do_GET(self) -> None:
            Origin.seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"origin")

        def log_message(self, *args: object) -> None:
            pass

    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    orders = tmp_path / "orders"
    orders.mkdir()
    (orders / "s.yaml").write_text("id: S-1\ncourt: C\ncase: '1'\nissued: 2015-01-01\n"
                                   "targets: [{url: 'http://127.0.0.1/v/1'}]\n")
    port, steer = free_port(), free_port()
    (tmp_path / "policy.yaml").write_text(f"proxy:\n  steer_http: ['127.0.0.2:{steer}']\n")
    proc = subprocess.Popen(
        [str(BIN / "mitmdump"), "-q", "--listen-host", "127.0.0.1", "-p", str(port),
         "--set", f"confdir={tmp_path / 'mitm'}", "-s", str(ROOT / "writ/proxy/mitmdump_addon.py"),
         "--set", f"writ_orders={orders}", "--set", f"writ_policy={tmp_path / 'policy.yaml'}",
         "--set", f"writ_audit_log={tmp_path / 'audit.log'}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)})

    def steered(path: str) -> bytes:
        host = f"127.0.0.1:{origin.server_address[1]}"
        req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        try:
            return _ask(steer, req, time.monotonic() + 30, host="127.0.0.2")
        except OSError:
            proc.kill()
            raise AssertionError(f"no steer listener: {proc.communicate()[1].decode()}") from None

    try:
        kept = steered("/v/1")
        assert kept.startswith(b"HTTP/1.1 451"), kept[:200]
        assert b"S-1" in kept
        allowed = steered("/v/2")
        assert allowed.split(b"\r\n")[0].endswith(b" 200 OK"), allowed[:200]
        assert allowed.endswith(b"origin")
        assert Origin.seen == ["/v/2"]  # the kept URL never reached the origin
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
        origin.shutdown()
