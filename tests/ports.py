"""Free loopback ports, for the test suite and the benchmarks (no pytest here).

A port found free can be taken before the caller binds it; callers that start a
server on it retry on "address already in use".
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

__all__ = ["closed_port", "free_dns_port", "free_port", "taken_port"]


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback TCP port where nothing listens, held so for the block: bound,
    never listening, so a connection to it is refused every time. (A port
    merely found free can meanwhile be taken by a listener, or be picked as the
    local port of the very connection made to it — a TCP self-connect, which
    then succeeds and hangs.)"""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_dns_port() -> int:
    """A loopback port free for both UDP and TCP, as a DNS listener needs."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise OSError("no loopback port free for both UDP and TCP")


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A loopback TCP port held by a listening socket for the `with` block: a
    listener started on it meets "address already in use"."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])
