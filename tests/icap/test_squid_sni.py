"""End to end: Squid peeking at TLS hellos, `writ squid-sni` asking `writ icap`.

Squid (an OpenSSL build: Debian's `squid-openssl`) runs as this module's own
process on deploy/squid/squid.conf with deploy/squid/sni.conf included (free
loopback ports, logs in a temporary folder); `writ icap` runs as a
subprocess; the origin is a loopback TLS server with a self-signed
certificate that records every connection it accepts and the SNI it saw.
Clients are curl and raw sockets for the ones that lie: a CONNECT naming
one host and a hello naming another, no SNI, a hello cut into bytes or
records, bytes that are not TLS, names that are no host name.

What is refused where (docs/operator.md, "HTTPS and the SNI"):
- the CONNECT's host: writ's ICAP REQMOD, 451 (`CONNECT host:port` record);
- the hello's SNI: the helper, Squid terminates at step 2 before it dials
  the origin (`TLS name` record, `tls-refused`; a host with only URL rules
  is spliced and recorded `unenforceable`);
- bytes that are not TLS in a tunnel: Squid itself (on_unsupported_protocol),
  after writ allowed the CONNECT; writ's log holds only that CONNECT.

Without an OpenSSL Squid the tests skip locally; in CI (CI=true, .ci/run
installs squid-openssl) they fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.icap.squid import Squid, is_openssl_build, squid_binary, writ_for_squid
from tests.icap.test_squid import start_writ
from tests.icap.tls_origin import TlsOrigin, client_hello
from tests.ports import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NAMES = ("allowed.example", "blocked.example", "news.example")
ORDERS = """\
id: ORD-BLOCKED
court: Northgate District Court
case: "1-1/2026"
issued: 2026-01-05
targets:
  - domain: blocked.example
---
id: ORD-NEWS
court: Northgate District Court
case: "1-2/2026"
issued: 2026-01-05
targets:
  - url: https://news.example/watch?v=abc
"""
BLOCKED = ["ORD-BLOCKED"]


@pytest.fixture(scope="module")
def squid_bin() -> str:
    found = squid_binary()
    if found is None or not is_openssl_build(found):
        message = "no Squid built with OpenSSL (.ci/run installs squid-openssl)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def helper_command() -> Iterator[str]:
    """How Squid runs `writ` for sni.conf's @WRIT@ (tests.icap.squid.writ_for_squid)."""
    lib = Path(tempfile.mkdtemp(prefix="writ-sni-helper-"))
    try:
        command = writ_for_squid(lib)
    except RuntimeError as e:
        shutil.rmtree(lib, ignore_errors=True)
        pytest.fail(str(e))
    yield command
    shutil.rmtree(lib, ignore_errors=True)


@dataclass
class Stack:
    squid: Squid
    origin: TlsOrigin
    writ: subprocess.Popen[str]
    workdir: Path
    mark: int = 0  # decisions already looked at

    def records(self) -> list[dict[str, object]]:
        """writ's decision records so far (whole lines: writ may be writing)."""
        logs = sorted((self.workdir / "state/audit").glob("decisions.*.log"))
        texts = [f.read_text() for f in logs]
        lines = [line for t in texts for line in t[:t.rfind("\n") + 1].splitlines()]
        return [r for r in map(json.loads, lines) if r.get("event") == "writ.http.decision"]

    def decided(self, count: int) -> list[tuple[object, ...]]:
        """(target, decision, action, orders) of every decision since the last
        call, once there are at least `count` (writ writes them a moment later)."""
        deadline = time.monotonic() + 30
        while len(self.records()) < self.mark + count and time.monotonic() < deadline:
            time.sleep(0.05)
        records = self.records()[self.mark:]
        self.mark += len(records)
        return [(r["target"], r["decision"], r["action"], r["orders"]) for r in records]


@pytest.fixture(scope="module")
def stack(squid_bin: str, helper_command: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("squid-sni")
    (workdir / "orders").mkdir()
    (workdir / "orders" / "orders.yaml").write_text(ORDERS)
    (workdir / "policy.yaml").write_text("node: squid-sni-e2e\naudit:\n  log_allowed: true\n")
    (workdir / "origin").mkdir()
    origin = TlsOrigin().start(workdir / "origin")
    port = free_port()
    writ = start_writ(workdir, port)
    squid = Squid(squid_bin, icap_url=f"127.0.0.1:{port}/writ", names=NAMES,
                  sni_helper=helper_command)
    try:
        squid.start()
        yield Stack(squid, origin, writ, workdir)
    finally:
        squid.stop()
        if writ.poll() is None:
            writ.kill()
            writ.wait()
        origin.close()


def curl(stack: Stack, url: str) -> tuple[int, str]:
    """(curl's exit status, what it printed) for `url` through Squid's SNI port."""
    out = subprocess.run(["curl", "-sS", "-k", "--max-time", "30", "--proxy",
                          f"http://127.0.0.1:{stack.squid.sni_port}", url],
                         capture_output=True, text=True, check=False)
    return out.returncode, out.stdout + out.stderr


def odd_hello(raw_sni: bytes) -> bytes:
    """A ClientHello whose SNI is `raw_sni`, bytes no TLS library would write."""
    stand_in = b"q" * (len(raw_sni) - 8) + b".example"
    data = client_hello(stand_in.decode())
    assert data.count(stand_in) == 1
    return data.replace(stand_in, raw_sni)


def in_records(data: bytes, size: int) -> bytes:
    """The handshake of a one-record hello cut into TLS records of `size` bytes."""
    header, body = data[:3], data[5:]
    return b"".join(header + len(body[i:i + size]).to_bytes(2, "big") + body[i:i + size]
                    for i in range(0, len(body), size))


def tunnel(stack: Stack, authority: str, payload: bytes, *, pieces: int = 1) -> tuple[bytes, bytes]:
    """CONNECT `authority` through the SNI port, send `payload` (in `pieces`
    writes), read until Squid or the origin closes: (status line, reply)."""
    with socket.create_connection(("127.0.0.1", stack.squid.sni_port), timeout=30) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a segment a write
        s.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head and (chunk := s.recv(4096)):
            head += chunk
        status = head.split(b"\r\n")[0]
        if not status.startswith(b"HTTP/1.1 200"):
            return status, b""
        step = -(-len(payload) // pieces)
        for i in range(0, len(payload), step):
            s.sendall(payload[i:i + step])
        reply = b""
        try:
            while chunk := s.recv(65536):
                reply += chunk
                if reply[:1] == b"\x16":  # the origin's ServerHello: it was reached
                    break
        except ConnectionResetError:
            pass
        return status, reply


Decided = tuple[object, ...]


def spliced(authority: str, tls: Decided | None = None,
            connect: Decided = ("allow", "pass", [])) -> list[Decided]:
    """The records of a tunnel Squid splices: the CONNECT; the hello, judged by
    the helper at step 2; then Squid adapts the CONNECT again as it splices,
    with the SNI, and writ judges the hello a second time (without an SNI:
    the CONNECT). Each is a decision writ made, and each is recorded."""
    first = (f"CONNECT {authority}", *connect)
    return [first, tls, tls] if tls else [first, first]


def test_https_by_name_blocked_allowed_and_url_rules_only(stack: Stack) -> None:
    o = stack.origin
    code, out = curl(stack, f"https://allowed.example:{o.port}/")
    assert (code, out) == (0, "origin: allowed.example")
    code, out = curl(stack, f"https://blocked.example:{o.port}/")
    assert code != 0
    assert "CONNECT tunnel failed, response 451" in out
    code, out = curl(stack, f"https://news.example:{o.port}/watch?v=abc")
    assert (code, out) == (0, "origin: news.example")  # no interception: spliced
    assert o.accepted == ["allowed.example", "news.example"]
    assert stack.decided(7) == [
        *spliced(f"allowed.example:{o.port}", ("TLS allowed.example", "allow", "pass", [])),
        (f"CONNECT blocked.example:{o.port}", "block", "451", BLOCKED),
        *spliced(f"news.example:{o.port}",
                 ("TLS news.example", "unenforceable", "pass", ["ORD-NEWS"]),
                 ("unenforceable", "pass", ["ORD-NEWS"])),
    ]


@pytest.mark.parametrize(("connect", "sni"), [
    ("allowed.example", "blocked.example"),
    ("127.0.0.1", "blocked.example"),
    ("allowed.example", "WWW.Blocked.Example."),
])
def test_a_tunnel_to_one_name_with_a_blocked_sni_is_terminated(
        stack: Stack, connect: str, sni: str) -> None:
    seen = len(stack.origin.accepted)
    status, reply = tunnel(stack, f"{connect}:{stack.origin.port}", client_hello(sni))
    assert status == b"HTTP/1.1 200 Connection established"
    assert reply == b""  # terminated: no ServerHello
    assert len(stack.origin.accepted) == seen  # never dialled
    assert stack.decided(2) == [
        (f"CONNECT {connect}:{stack.origin.port}", "allow", "pass", []),
        (f"TLS {sni.lower().rstrip('.')}", "tls-refused", "tls-refused", BLOCKED),
    ]


def test_a_hello_sent_with_the_connect_is_never_forwarded(stack: Stack) -> None:
    """A client that does not wait for the 200: Squid 5.7 does not peek at a
    hello that came in the same write as the CONNECT (it waits for more).
    Sent a second, allowed hello to have judged while the first goes on, it
    closes the tunnel: nothing reaches the origin, writ records the CONNECT."""
    seen = len(stack.origin.accepted)
    authority = f"allowed.example:{stack.origin.port}"
    with socket.create_connection(("127.0.0.1", stack.squid.sni_port), timeout=30) as s:
        s.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()
                  + client_hello("blocked.example"))
        head = b""
        while b"\r\n\r\n" not in head and (chunk := s.recv(4096)):
            head += chunk
        assert head == b"HTTP/1.1 200 Connection established\r\n\r\n"
        s.sendall(client_hello("allowed.example"))
        reply = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                reply += chunk
    assert reply == b""
    assert len(stack.origin.accepted) == seen
    assert stack.decided(1) == [(f"CONNECT {authority}", "allow", "pass", [])]


def test_a_blocked_connect_with_an_allowed_sni_is_refused_before_the_hello(
        stack: Stack) -> None:
    seen = len(stack.origin.accepted)
    status, _ = tunnel(stack, f"blocked.example:{stack.origin.port}",
                       client_hello("allowed.example"))
    assert status == b"HTTP/1.1 451 Unavailable For Legal Reasons"
    assert len(stack.origin.accepted) == seen
    assert stack.decided(1) == [
        (f"CONNECT blocked.example:{stack.origin.port}", "block", "451", BLOCKED)]


def test_a_hello_without_sni_goes_on_by_the_connects_decision(stack: Stack) -> None:
    status, reply = tunnel(stack, f"allowed.example:{stack.origin.port}", client_hello(None))
    assert status == b"HTTP/1.1 200 Connection established"
    assert reply[:1] == b"\x16"  # spliced: the origin's ServerHello
    assert stack.origin.accepted[-1] is None
    # the helper is asked (`-`) and says ERR without asking writ: the
    # CONNECT's host, judged and recorded, is the only name there is
    assert stack.decided(2) == spliced(f"allowed.example:{stack.origin.port}")


@pytest.mark.parametrize("cut", ["bytes", "records"])
def test_a_hello_cut_in_pieces_is_read_whole(stack: Stack, cut: str) -> None:
    """One TCP segment a byte, or one TLS record every 16 bytes of the hello."""
    def send(sni: str) -> bytes:
        data = client_hello(sni)
        authority = f"allowed.example:{stack.origin.port}"
        if cut == "bytes":
            return tunnel(stack, authority, data, pieces=len(data))[1]
        return tunnel(stack, authority, in_records(data, 16))[1]

    seen = len(stack.origin.accepted)
    assert send("blocked.example") == b""
    assert len(stack.origin.accepted) == seen
    # the same cut with an allowed name reaches the origin: Squid read it whole
    assert send("allowed.example")[:1] == b"\x16"
    assert stack.origin.accepted[seen:] == ["allowed.example"]
    assert stack.decided(5) == [
        (f"CONNECT allowed.example:{stack.origin.port}", "allow", "pass", []),
        ("TLS blocked.example", "tls-refused", "tls-refused", BLOCKED),
        *spliced(f"allowed.example:{stack.origin.port}", ("TLS allowed.example", "allow",
                                                          "pass", [])),
    ]


@pytest.mark.parametrize("payload", [
    b"GET / HTTP/1.1\r\nHost: blocked.example\r\n\r\n",
    b"SSH-2.0-OpenSSH_9.2\r\n",
    b"\x00\x01\x02 not tls at all\r\n\r\n",
])
def test_bytes_that_are_not_tls_are_refused_by_squid(stack: Stack, payload: bytes) -> None:
    seen = len(stack.origin.accepted)
    status, reply = tunnel(stack, f"allowed.example:{stack.origin.port}", payload)
    assert status == b"HTTP/1.1 200 Connection established"
    assert b"origin" not in reply
    assert reply[:1] != b"\x16"
    assert len(stack.origin.accepted) == seen
    # Squid's refusal (on_unsupported_protocol) is not writ's: writ's log
    # holds the CONNECT it allowed, and Squid's access.log the rest
    assert stack.decided(1) == [
        (f"CONNECT allowed.example:{stack.origin.port}", "allow", "pass", [])]


@pytest.mark.parametrize("raw_sni", [
    b"allowed.example\nallowed.example",  # two lines to a helper fed raw
    b"allowed.example blocked.example",  # judged as `allowed.example` before
    b"blocked.example/",  # passed unasked before
    b"blocked.example@",
    b"blocked.example\\",
    b"blocked.\xffexample",
])
def test_a_name_that_is_no_host_name_is_refused_and_recorded(
        stack: Stack, raw_sni: bytes) -> None:
    seen = len(stack.origin.accepted)
    status, reply = tunnel(stack, f"allowed.example:{stack.origin.port}", odd_hello(raw_sni))
    assert status == b"HTTP/1.1 200 Connection established"
    assert reply == b""
    assert len(stack.origin.accepted) == seen
    (connect, tls) = stack.decided(2)
    assert connect == (f"CONNECT allowed.example:{stack.origin.port}", "allow", "pass", [])
    assert tls[1:] == ("invalid", "tls-refused", [])
    assert str(tls[0]).startswith("TLS ")


def test_a_connect_on_the_port_that_does_not_peek_is_refused(stack: Stack) -> None:
    with socket.create_connection(("127.0.0.1", stack.squid.port), timeout=30) as s:
        s.sendall(f"CONNECT allowed.example:{stack.origin.port} HTTP/1.1\r\n\r\n".encode())
        assert s.recv(4096).split(b"\r\n")[0] == b"HTTP/1.1 403 Forbidden"
    assert stack.decided(0) == []  # Squid's http_access: writ is not asked


def test_zz_every_decision_is_in_a_log_that_verifies(stack: Stack) -> None:
    """Last in this module: stops writ, which seals its log."""
    stack.writ.send_signal(signal.SIGTERM)
    assert stack.writ.wait(timeout=20) == 0
    clients = {r["client"] for r in stack.records()}
    assert len(clients) == 1  # the helper forwards the client as Squid's REQMODs do
    assert "127.0.0.1" not in clients
    logs = sorted((stack.workdir / "state/audit").glob("decisions.*.log"))
    verify = subprocess.run([sys.executable, "-m", "writ.cli", "audit", "verify",
                             *map(str, logs)], capture_output=True, text=True, check=False,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert verify.returncode == 0, verify.stdout + verify.stderr


@pytest.fixture
def broken_helper() -> Iterator[str]:
    """A helper that answers BH ("broken helper") to every question."""
    folder = Path(tempfile.mkdtemp(prefix="writ-sni-bh-"))
    folder.chmod(0o755)
    script = folder / "bh"
    script.write_text("#!/bin/sh\nwhile read -r line; do echo BH message=broken; done\n")
    script.chmod(0o755)
    yield str(script)  # `@WRIT@ squid-sni …`: the arguments are ignored
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(("raw_sni", "decided"), [
    (b"blocked.example", ("TLS blocked.example", "tls-refused", "tls-refused", BLOCKED)),
    # a header smuggled into the ICAP request would name another SNI: escaped
    (b"allowed.example\r\nX-Writ-SNI: -", ("invalid", "tls-refused", [])),
])
def test_when_the_helper_cannot_answer_the_splice_is_judged_by_writ(
        squid_bin: str, broken_helper: str, tmp_path: Path, raw_sni: bytes,
        decided: tuple[object, ...]) -> None:
    """Squid 5 splices when its step-2 check ends "unknown" (a helper answering
    BH, one that died, a full queue); the CONNECT it then adapts again carries
    the SNI (sni.conf's adaptation_meta), and writ refuses it there: Squid
    writes the 451 into the tunnel instead of dialling the origin."""
    with sni_stack(squid_bin, broken_helper, tmp_path) as stack:
        status, reply = tunnel(stack, f"allowed.example:{stack.origin.port}",
                               odd_hello(raw_sni))
        assert status == b"HTTP/1.1 200 Connection established"
        assert reply.startswith(b"HTTP/1.1 400 " if decided[0] == "invalid" else
                                b"HTTP/1.1 451 ")
        assert reply[:1] != b"\x16"  # no ServerHello: the handshake fails
        assert stack.origin.accepted == []
        connect, tls = stack.decided(2)
        assert connect == (f"CONNECT allowed.example:{stack.origin.port}", "allow", "pass", [])
        assert tls[-len(decided):] == decided


def test_without_the_sni_in_the_adaptation_squid_splices_what_the_helper_cannot_judge(
        squid_bin: str, broken_helper: str, tmp_path: Path) -> None:
    """Why sni.conf has its adaptation_meta line: without it, the same broken
    helper lets a blocked SNI through to the origin (Squid 5.7's behaviour;
    should a later Squid terminate instead, this test says so)."""
    with sni_stack(squid_bin, broken_helper, tmp_path, gate=False) as stack:
        _, reply = tunnel(stack, f"allowed.example:{stack.origin.port}",
                          client_hello("blocked.example"))
        assert reply[:1] == b"\x16"
        assert stack.origin.accepted == ["blocked.example"]


@contextlib.contextmanager
def sni_stack(squid_bin: str, helper: str, workdir: Path, *, gate: bool = True
              ) -> Iterator[Stack]:
    (workdir / "orders").mkdir()
    (workdir / "orders" / "orders.yaml").write_text(ORDERS)
    (workdir / "policy.yaml").write_text("node: squid-sni-bh\naudit:\n  log_allowed: true\n")
    origin = TlsOrigin().start(workdir)
    port = free_port()
    writ = start_writ(workdir, port)
    squid = Squid(squid_bin, icap_url=f"127.0.0.1:{port}/writ", names=NAMES,
                  sni_helper=helper)
    if not gate:
        sni_conf = squid.dir / "sni.conf"
        text = sni_conf.read_text()
        assert "\nadaptation_meta X-Writ-SNI " in text
        sni_conf.write_text(text.replace("\nadaptation_meta X-Writ-SNI ", "\n# "))
    try:
        squid.start()
        yield Stack(squid, origin, writ, workdir)
    finally:
        squid.stop()
        writ.kill()
        writ.wait()
        origin.close()
