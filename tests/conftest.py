"""Session fixtures shared by every test package.

Redis: the session starts its own `redis-server` on a free loopback port and
never touches any other Redis (a shared one may run on 6379). Without the
binary the Redis tests skip locally; in CI (WRIT_REQUIRE_REDIS=1) they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ports import free_dns_port, free_port

__all__ = ["RedisServer", "free_dns_port", "free_port", "redis_binary"]


class RedisServer:
    """A redis-server process owned by the test session."""

    def __init__(self, binary: str, workdir: Path, tls: tuple[Path, Path] | None = None,
                 extra: tuple[str, ...] = ()) -> None:
        """`tls` (certificate, key): also serve TLS on `tls_port` (clients not asked
        for certificates); the plain port stays for the readiness probe."""
        self.binary = binary
        self.workdir = workdir
        self.tls = tls
        self.extra = extra  # more redis-server arguments, e.g. ("--replicaof", HOST, PORT)
        self.port = free_port()
        self.tls_port = free_port() if tls else 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        for _attempt in range(3):  # the port can be taken between free_port() and the bind
            self.proc = subprocess.Popen(
                [
                    self.binary, "--bind", "127.0.0.1", "--port", str(self.port),
                    "--save", "", "--appendonly", "no", "--dir", str(self.workdir),
                    "--protected-mode", "yes", *self._tls_args(), *self.extra,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._answering():
                return
            self.stop()
            self.port = free_port()
            self.tls_port = free_port() if self.tls else 0
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def _tls_args(self) -> list[str]:
        if self.tls is None:
            return []
        cert, key = self.tls
        return ["--tls-port", str(self.tls_port), "--tls-cert-file", str(cert),
                "--tls-key-file", str(key), "--tls-auth-clients", "no"]

    def _answering(self) -> bool:
        """True once *our* process answers: whatever else holds the port is never used."""
        assert self.proc is not None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as c:
                    c.sendall(b"INFO server\r\n")
                    info = c.recv(65536)
                    if f"process_id:{self.proc.pid}\r".encode() in info:
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def redis_binary() -> str:
    """The redis-server binary; without one, fail in CI (WRIT_REQUIRE_REDIS) or skip."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("WRIT_REQUIRE_REDIS"):
            pytest.fail("redis-server is not installed and WRIT_REQUIRE_REDIS is set")
        pytest.skip("redis-server is not installed")
    return binary


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(redis_binary(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """A clean database on the session's own server (never a shared one)."""
    import redis

    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()  # our own server, started above: never a shared one
    client.close()
    return redis_server.url
