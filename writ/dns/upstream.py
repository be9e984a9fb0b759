"""Forwarding to upstream resolvers: UDP, TCP on truncation, timeouts, failover.

Invariants:
- A reply is accepted only if its ID, QR bit and question match what we
  sent (case-insensitively): a stray or spoofed datagram is ignored, not
  taken for the answer. Each UDP attempt uses a fresh socket (fresh source
  port) and a fresh random ID.
- A truncated UDP reply (TC=1) is retried over TCP to the same server.
- Failure of every upstream returns None; the caller answers SERVFAIL,
  never NXDOMAIN (a timeout is not evidence that a name does not exist).
- The last server that answered is tried first next time.
- At most `max_in_flight` exchanges run at once, each holding one socket, so
  a flood towards a silent zone cannot take every file descriptor (the store
  must still be able to re-read the orders). A query arriving when all are
  busy is shed at once (`Failure.SHED`), not queued: the caller answers
  SERVFAIL + EDE and counts it.
- Failure says why: every attempt timed out (TIMEOUT, EDE 22) or the network
  refused or answered garbage (NETWORK, EDE 23).
"""

from __future__ import annotations

import asyncio
import enum
import secrets
import struct
from collections.abc import Sequence

__all__ = ["Failure", "Upstream", "build_query"]


class Failure(enum.Enum):
    TIMEOUT = "timeout"
    NETWORK = "network"
    SHED = "shed"

_HDR = struct.Struct("!HHHHHH")


def build_query(question: bytes, flags: int, edns: bool, do: bool, udp_size: int = 1232) -> bytes:
    """A query (ID 0) for `question` (QNAME QTYPE QCLASS on the wire).

    Only RD and CD are taken from the client; the client's own EDNS options
    (cookies, padding) are not forwarded, so one cached answer fits every client.
    """
    out = _HDR.pack(0, flags & 0x0110, 1, 0, 0, 1 if edns else 0) + question
    if edns:
        out += struct.pack("!BHHIH", 0, 41, udp_size, 0x8000 if do else 0, 0)
    return out


class _OneShot(asyncio.DatagramProtocol):
    def __init__(self, want_id: int, question: bytes) -> None:
        self.want_id = want_id
        self.question = question.lower()
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: object) -> None:
        if not self.done.done() and _matches(data, self.want_id, self.question):
            self.done.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_exception(exc)


def _matches(reply: bytes, want_id: int, question: bytes) -> bool:
    if len(reply) < 12 + len(question):
        return False
    rid, flags = struct.unpack_from("!HH", reply)
    return (rid == want_id and bool(flags & 0x8000)
            and reply[12 : 12 + len(question)].lower() == question)


class Upstream:
    def __init__(self, servers: Sequence[tuple[str, int]], timeout: float = 2.0,
                 max_in_flight: int = 512) -> None:
        if not servers:
            raise ValueError("no upstream servers")
        self.servers = list(servers)
        self.timeout = timeout
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self._first = 0

    async def resolve(self, query: bytes) -> bytes | Failure:
        """The upstream reply to `query` (its ID is ours, not the client's), or why not."""
        if self.in_flight >= self.max_in_flight:
            return Failure.SHED
        self.in_flight += 1
        try:
            question = _question_of(query)
            n = len(self.servers)
            failure = Failure.TIMEOUT
            for i in range(n):
                k = (self._first + i) % n
                reply = await self._ask(self.servers[k], query, question)
                if isinstance(reply, bytes):
                    self._first = k
                    return reply
                if reply is Failure.NETWORK:
                    failure = reply
            return failure
        finally:
            self.in_flight -= 1

    async def _ask(self, server: tuple[str, int], query: bytes,
                   question: bytes) -> bytes | Failure:
        qid = secrets.randbits(16)
        q = struct.pack("!H", qid) + query[2:]
        try:
            reply = await asyncio.wait_for(self._udp(server, q, qid, question), self.timeout)
            if reply[2] & 0x02:  # TC: RFC 7766 §5, retry over TCP
                reply = await asyncio.wait_for(self._tcp(server, q, qid, question), self.timeout)
        except TimeoutError:
            return Failure.TIMEOUT
        except (OSError, EOFError, asyncio.IncompleteReadError, ValueError):
            return Failure.NETWORK
        return reply

    @staticmethod
    async def _udp(server: tuple[str, int], q: bytes, qid: int, question: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _OneShot(qid, question), remote_addr=server)
        try:
            transport.sendto(q)
            return await proto.done
        finally:
            transport.close()

    @staticmethod
    async def _tcp(server: tuple[str, int], q: bytes, qid: int, question: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(*server)
        try:
            writer.write(struct.pack("!H", len(q)) + q)
            await writer.drain()
            while True:  # skip anything that is not the answer to our query
                (ln,) = struct.unpack("!H", await reader.readexactly(2))
                reply = await reader.readexactly(ln)
                if _matches(reply, qid, question):
                    return reply
        finally:
            writer.close()


def _question_of(query: bytes) -> bytes:
    """The question section of a query we built (one question, no pointers)."""
    pos = 12
    while query[pos]:
        pos += query[pos] + 1
    return query[12 : pos + 5]
