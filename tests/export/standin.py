"""A loopback UDP DNS server for the export tests: what Unbound forwards to when
the RPZ zone does not block a name. `answer` fills the reply to each question."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

from dnslib import DNSRecord

__all__ = ["udp_standin"]


@contextlib.contextmanager
def udp_standin(answer: Callable[[DNSRecord, DNSRecord], None]) -> Iterator[int]:
    """Serve on 127.0.0.1 until the block ends; yields the port. `answer(q, reply)`
    adds the answer records for question `q` to `reply`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)

    def serve() -> None:
        while sock.fileno() >= 0:
            try:
                data, peer = sock.recvfrom(4096)
            except (TimeoutError, OSError):
                continue
            q = DNSRecord.parse(data)
            reply = q.reply()
            answer(q, reply)
            sock.sendto(reply.pack(), peer)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()
        t.join(timeout=2)
