"""`writ orders apply` never says "nothing was changed" when it cannot know
(issue 12, finding 2), and never silently undoes another's act (finding 4).

A Redis that stalls (SIGSTOP) just as the compare-and-set switch is sent: the
switch sits in Redis's socket buffer, the CLI times out, Redis wakes up and
runs it. The tests own their redis-server (stopping the session's would
freeze every other test) and a loopback relay in front of it that stops Redis
the moment the switch script passes through, before Redis has read it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.blocklist.stores.conftest import write
from tests.conftest import RedisServer

_SWITCH_MARK = b"'conflict'"  # a string only the switch script carries

TIMEOUT = ("--timeout", "1")  # seconds the CLI waits for one Redis reply
_CLI = "import sys; from writ.cli import main; sys.exit(main())"


class StallingRelay:
    """127.0.0.1:port → Redis; stops Redis (SIGSTOP) just before forwarding the switch."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.stopped = threading.Event()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.server.port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False),
                             daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_redis: bool) -> None:
        try:
            while data := src.recv(65536):
                if to_redis and _SWITCH_MARK in data and not self.stopped.is_set():
                    assert self.server.proc is not None
                    os.kill(self.server.proc.pid, signal.SIGSTOP)
                    self.stopped.set()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def resume(self) -> None:
        assert self.server.proc is not None
        os.kill(self.server.proc.pid, signal.SIGCONT)

    def close(self) -> None:
        self.sock.close()


def _orders(d: Path, *names: str) -> Path:
    for i, name in enumerate(names):
        write(d / f"o{i}.yaml", f"id: O-{i}\ncourt: Test Court\ncase: \"{i}/2020\"\n"
                                f"issued: 2020-01-01\ntargets:\n  - domain: {name}\n")
    return d


def _cli(*argv: str, stdout: int | None = subprocess.PIPE) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _CLI, *argv], stdout=stdout,
                            stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parents[3])


def _live(url: str) -> str | None:
    client = redis.Redis.from_url(url)
    try:
        v = client.get("{writ}:current")
    finally:
        client.close()
    return v.decode() if v else None


def _publish_first(tmp_path: Path, url: str) -> tuple[Path, str]:
    orders = _orders(tmp_path / "orders", "a.example")
    proc = _cli("orders", "apply", str(orders), "--redis", url)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    first = _live(url)
    assert first is not None
    _orders(tmp_path / "orders", "a.example", "b.example")
    return orders, first


@contextlib.contextmanager
def _stalled_apply(tmp_path: Path, server: RedisServer,
                   ) -> Iterator[tuple[subprocess.Popen[str], StallingRelay, str]]:
    """An apply through a relay that stops Redis as the switch passes; Redis is
    woken on the way out. Yields (the apply, the relay, the version live before)."""
    orders, first = _publish_first(tmp_path, server.url)
    relay = StallingRelay(server)
    try:
        yield _cli("orders", "apply", str(orders), "--redis", relay.url, *TIMEOUT), relay, first
    finally:
        relay.resume()
        relay.close()


def test_a_switch_stalled_in_flight_is_reported_as_unknown_not_unchanged(
        tmp_path: Path, own_redis: RedisServer) -> None:
    with _stalled_apply(tmp_path, own_redis) as (proc, relay, first):
        _out, err = proc.communicate(timeout=120)  # Redis stays stopped throughout
        assert relay.stopped.is_set()
    assert "nothing was changed" not in err
    assert proc.returncode == 3, err
    assert "cannot be known" in err
    assert "writ orders history" in err
    # Redis ran the switch once it woke: "nothing was changed" would have been a lie.
    deadline = time.monotonic() + 10
    while _live(own_redis.url) == first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _live(own_redis.url) != first


def test_a_switch_stalled_in_flight_then_run_is_read_back_and_reported_live(
        tmp_path: Path, own_redis: RedisServer) -> None:
    with _stalled_apply(tmp_path, own_redis) as (proc, relay, first):
        assert relay.stopped.wait(60)
        time.sleep(1.5)  # the CLI's switch has timed out; Redis wakes while it reads back
        relay.resume()
        _out, err = proc.communicate(timeout=120)
    live = _live(own_redis.url)
    assert live is not None
    assert live != first
    assert "nothing was changed" not in err
    assert proc.returncode == 3, err
    assert f"version {live} is live" in err


def test_a_closed_stdout_after_a_publish_is_not_reported_as_nothing_changed(
        tmp_path: Path, own_redis: RedisServer) -> None:
    orders, first = _publish_first(tmp_path, own_redis.url)
    r, w = os.pipe()
    os.close(r)  # whoever read our output went away
    try:
        proc = _cli("orders", "apply", str(orders), "--redis", own_redis.url, stdout=w)
    finally:
        os.close(w)
    _, err = proc.communicate(timeout=60)
    live = _live(own_redis.url)
    assert live != first
    assert "nothing was changed" not in err
    assert "cannot reach Redis" not in err
    assert f"published version {live}" in err
    assert "Traceback" not in err
    assert proc.returncode == 0


def _with_act(d: Path, who: str, bulk: int = 0) -> Path:
    _orders(d, "a.example")
    extra = "".join(f"  - domain: n{i}.{who}.example\n" for i in range(bulk))
    write(d / f"{who}.yaml", f"id: RT-{who}\ncourt: Test Court\ncase: \"{who}/2020\"\n"
                             f"issued: 2020-01-01\ntargets:\n  - domain: {who}.example\n{extra}")
    return d


def test_a_slow_apply_never_silently_drops_the_act_a_faster_one_published(
        tmp_path: Path, own_redis: RedisServer) -> None:
    """Two regulators start from the same live version, each adding an act. The
    slow one (a large order to validate) must not publish a set lacking the fast
    one's act: it read the base before validating, so the switch is refused."""
    base = _orders(tmp_path / "base", "a.example")
    assert _cli("orders", "apply", str(base), "--redis", own_redis.url).wait(60) == 0
    slow = _cli("orders", "apply", str(_with_act(tmp_path / "y", "y", bulk=100_000)),
                "--redis", own_redis.url)
    time.sleep(0.5)  # the slow one has read the base and is validating
    fast = _cli("orders", "apply", str(_with_act(tmp_path / "x", "x")), "--redis", own_redis.url)
    fast_out, fast_err = fast.communicate(timeout=120)
    slow_out, slow_err = slow.communicate(timeout=120)
    assert fast.returncode == 0, fast_err
    assert "added +RT-x" in fast_out
    assert "removed -RT-x" not in slow_out
    assert slow.returncode == 1, (slow_out, slow_err)
    assert "another publisher" in slow_err
    assert "nothing was changed" in slow_err


def test_apply_expect_binds_to_the_reviewed_diff(tmp_path: Path, own_redis: RedisServer) -> None:
    base = _orders(tmp_path / "base", "a.example")
    assert _cli("orders", "apply", str(base), "--redis", own_redis.url).wait(60) == 0
    v0 = _live(own_redis.url)
    assert v0 is not None
    x, y = _with_act(tmp_path / "x", "x"), _with_act(tmp_path / "y", "y")
    diff = _cli("orders", "diff", str(y), "--redis", own_redis.url)
    out, _ = diff.communicate(timeout=60)
    assert f"live: {v0}" in out  # the version the reviewer saw
    assert diff.returncode == 0
    first = _cli("orders", "apply", str(x), "--redis", own_redis.url, "--expect", v0)
    assert first.wait(60) == 0
    second = _cli("orders", "apply", str(y), "--redis", own_redis.url, "--expect", v0[:12])
    out, err = second.communicate(timeout=60)
    assert second.returncode == 1, (out, err)
    assert "moved" in err
    assert "nothing was changed" in err
    assert "RT-x" in _live_acts(own_redis.url)


def _live_acts(url: str) -> str:
    proc = _cli("explain", "--redis", url, "x.example")
    out, err = proc.communicate(timeout=60)
    return out + err
