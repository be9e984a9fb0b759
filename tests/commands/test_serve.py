"""`writ serve` end to end: one node on loopback from the sample orders.

A block in DNS and in HTTP, a restored host that resolves and passes, a kept
video that stays blocked, and an audit record for each block — in a log that
verifies after SIGTERM sealed it.
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
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from dnslib import EDNS0, QTYPE, DNSRecord

from tests.conftest import free_dns_port, free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class _Origin(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []  # noqa: RUF012 - shared on purpose: the test reads it

    def do_GET(self) -> None:
        _Origin.hits.append(self.path)
        body = b"origin says hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _PortTaken(Exception):
    pass


def _wait_http(url: str, deadline: float, proc: subprocess.Popen[str]) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            if "address already in use" in err.lower():
                raise _PortTaken(err)
            raise AssertionError(f"writ serve exited {proc.returncode}:\n{err}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture
def node(tmp_path: Path) -> Iterator[dict[str, object]]:
    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    upstream = subprocess.Popen([sys.executable, str(ROOT / "scripts/demo_upstream.py"),
                                 "--port", "0"], stdout=subprocess.PIPE, text=True)
    assert upstream.stdout is not None
    # "demo upstream: 127.0.0.1:PORT (udp, tcp)" once it listens on a port it chose
    line = upstream.stdout.readline()
    up_port = int(line.split(":")[2].split()[0])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    try:
        yield from _serve(tmp_path, env, up_port, origin.server_address[1])
    finally:
        upstream.terminate()
        upstream.wait(timeout=5)
        origin.shutdown()


def _serve(tmp_path: Path, env: dict[str, str], up_port: int,
           origin: int) -> Iterator[dict[str, object]]:
    for _attempt in range(3):  # a free port can be taken between our check and the bind
        ports = {"dns": free_dns_port(), "proxy": free_port(), "web": free_port()}
        proc = subprocess.Popen(
            [sys.executable, "-m", "writ.cli", "serve", "--orders", str(ROOT / "court_orders"),
             "--policy", str(ROOT / "policies/default.yaml"), "--node", "e2e-node",
             "--dns", f"127.0.0.1:{ports['dns']}", "--upstream", f"127.0.0.1:{up_port}",
             "--proxy", f"127.0.0.1:{ports['proxy']}",
             "--web", f"127.0.0.1:{ports['web']}", "--state-dir", str(tmp_path / "state"),
             "--confdir", str(tmp_path / "mitmproxy")],
            cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
        try:
            _wait_http(f"http://127.0.0.1:{ports['web']}/healthz", time.monotonic() + 30, proc)
            break
        except _PortTaken:
            continue
        except BaseException:
            proc.kill()
            raise
    else:
        pytest.fail("writ serve found a port taken three times running")
    try:
        yield {"ports": ports, "proc": proc, "dir": tmp_path, "origin": origin}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


def _dig(port: int, name: str) -> DNSRecord:
    q = DNSRecord.question(name, "A")
    q.add_ar(EDNS0(udp_len=1232))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3)
        s.sendto(q.pack(), ("127.0.0.1", port))
        return DNSRecord.parse(s.recv(4096))


def _get(proxy: int, origin: int, host: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET through the proxy to the loopback origin, naming `host` in the Host header
    (the proxy judges every name a request carries, the Host header included)."""
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{proxy}"}))
    req = urllib.request.Request(f"http://127.0.0.1:{origin}{path}", headers={"Host": host})
    try:
        with opener.open(req, timeout=5) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_serve_blocks_in_dns_and_http_and_records_both(node: dict) -> None:
    ports = node["ports"]
    # DNS: an exact host block is sinkholed with EDE 16 naming the order
    r = _dig(ports["dns"], "www.forum.example")
    assert [str(a.rdata) for a in r.rr if a.rtype == QTYPE.A] == ["127.0.0.1"]
    ede = [o.data for o in r.ar[0].rdata if o.code == 15]
    assert ede, "EDE option missing"
    assert ede[0][:2] == b"\x00\x10"  # INFO-CODE 16, Censored
    assert b"EX-2016-0314-RVSD" in ede[0]
    # DNS: the restored video host resolves through the upstream (not blocked)
    r = _dig(ports["dns"], "videohost.example")
    assert r.header.rcode == 0
    assert [str(a.rdata) for a in r.rr] == ["127.0.0.1"]
    # HTTP: the kept video is 451 and never reaches the origin; others pass
    _Origin.hits.clear()
    status, headers, body = _get(ports["proxy"], node["origin"], "videohost.example",
                                 "/v/136071201")
    assert status == 451
    assert headers["Cache-Control"] == "no-store"
    assert b"EX-2015-0928-VH-R" in body
    status, _, body = _get(ports["proxy"], node["origin"], "videohost.example", "/v/42")
    assert (status, body) == (200, b"origin says hello\n")
    assert _Origin.hits == ["/v/42"]

    # /metrics counts both components' decisions (and what the audit writer did)
    with urllib.request.urlopen(f"http://127.0.0.1:{ports['web']}/metrics", timeout=5) as m:
        metrics = m.read().decode()
    assert 'writ_decisions_total{component="dns",decision="block",action="sinkhole"} 1' in metrics
    assert 'writ_decisions_total{component="http",decision="block",action="451"} 1' in metrics
    assert "writ_dns_refused_clients_total 0.0" in metrics
    assert "writ_records_written_total" in metrics

    proc = node["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    logs = sorted((node["dir"] / "state/audit").glob("decisions.*.log"))
    records = [json.loads(line) for f in logs for line in f.read_text().splitlines()]
    blocks = {(r["component"], r["decision"], r["action"]) for r in records
              if r.get("decision") == "block"}
    assert ("dns", "block", "sinkhole") in blocks
    assert ("http", "block", "451") in blocks
    assert all(r["client"] != "127.0.0.1" for r in records if "client" in r)
    verify = subprocess.run([sys.executable, "-m", "writ.cli", "audit", "verify", *map(str, logs)],
                            capture_output=True, text=True, check=False,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--web", "nope"], "--web: missing port"),
        (["--proxy", "::1:8080"], "--proxy: missing port"),
        (["--dns", "127.0.0.1:99999"], "--dns: port must be"),
        (["--upstream", "[::1"], "--upstream: unterminated"),
    ],
)
def test_a_bad_address_flag_is_named_before_anything_starts(tmp_path: Path, flags: list[str],
                                                            says: str) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "writ.cli", "serve", "--orders", str(ROOT / "court_orders"),
         "--state-dir", str(tmp_path / "state"), *flags],
        cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
        text=True, timeout=60, check=False)
    assert r.returncode == 2
    assert says in r.stderr
    assert "Traceback" not in r.stderr
    assert "writ.store.switched" not in r.stdout + r.stderr  # refused before loading orders
