"""UDP and TCP listeners around a DnsServer.

Invariants:
- UDP: a cache hit or a block is answered in the read callback (no task, no
  dnslib); everything else becomes one task, so a slow upstream never stalls
  other clients. On Linux datagrams are read and answered in batches
  (writ.dns.mmsg: recvmmsg/sendmmsg); elsewhere through a datagram protocol.
- TCP (RFC 7766): two-byte length framing; queries on one connection are
  read while earlier ones are still being answered (pipelining) and answers
  go out as they are ready, each frame in one write so frames never
  interleave. A connection idle for `idle` seconds is closed; beyond
  `max_conns` in all, or `client_conns` from one address, new connections
  are closed at once (counted).
- Backpressure: when a client leaves more than `unsent` bytes of answers
  unread, or has `_MAX_PENDING` queries in flight, we stop reading its
  queries until it catches up; a client that does not within `idle` seconds
  is aborted, its buffers released at once (close() would keep them until
  the peer reads, with the socket no longer counted). Memory per connection
  is bounded by `unsent` + `_MAX_PENDING` answers.
- `stop()` stops listening, then waits (bounded) for answers in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Sequence
from typing import Protocol, cast

from writ.dns import mmsg
from writ.dns.server import DnsServer
from writ.endpoints import format_endpoint

__all__ = ["Listeners"]

log = logging.getLogger("writ.dns")

_LEN = struct.Struct("!H")
_MAX_PENDING = 16  # queries of one TCP connection being answered at once


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        client = str(addr[0])
        server = self.server
        if server.rate.qps and server.rate.over(client, server.clock()):  # writ.dns.limits
            over = server.rate.reply(data)
            if over is not None and self.transport is not None:
                self.transport.sendto(over, addr)
            return
        try:
            reply = self.server.answer_fast(data, client, False)
        except Exception:  # a bug costs this answer the fast path, never the listener
            log.exception("writ.dns.fast_path_error client=%s", client)
            reply = None
        if reply is not None:
            assert self.transport is not None
            self.transport.sendto(reply, addr)
            return
        if not self.server.spawn(self._slow(data, addr, client)):
            shed = self.server.shed_reply(data)
            if shed is not None and self.transport is not None:
                self.transport.sendto(shed, addr)

    async def _slow(self, data: bytes, addr: tuple[str | object, ...], client: str) -> None:
        reply = await self.server.answer(data, client, False)
        t = self.transport
        if reply is not None and t is not None and not t.is_closing():
            t.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable from a departed client: nothing to do


class _Closable(Protocol):
    def close(self) -> None: ...


def _udp_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    """A bound, non-blocking UDP socket (getaddrinfo blocks only for a host name)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class Listeners:
    def __init__(self, server: DnsServer, idle: float | None = None,
                 max_conns: int | None = None, batched: bool = True) -> None:
        dns = server.dns
        self.server = server
        self.batched = batched  # recvmmsg/sendmmsg where available (writ.dns.mmsg)
        self.idle = dns.tcp_idle if idle is None else idle
        self.max_conns = server.tcp_fds if max_conns is None else max_conns
        self.client_conns = dns.client_tcp_conns
        self.unsent = dns.tcp_unsent_bytes
        self.conns = 0
        self.per_client: dict[str, int] = {}
        self.tcp_refused = 0  # connections closed at once: over max_conns or client_conns
        self.tcp_aborted = 0  # connections aborted with answers unread (backpressure)
        self._writers: set[asyncio.StreamWriter] = set()
        self.addresses: list[tuple[str, int]] = []
        self._udp: list[_Closable] = []
        self._tcp: list[asyncio.Server] = []

    async def start(self, listen: Sequence[tuple[str, int]], reuse_port: bool = False) -> None:
        for host, port in listen:
            for attempt in range(8):
                try:
                    await self._bind(host, port, reuse_port)
                    break
                except OSError as e:
                    # Port 0: UDP picked a port whose TCP twin is taken; pick again.
                    if port != 0 or attempt == 7:
                        where = format_endpoint(host, port)
                        raise OSError(e.errno, f"DNS on {where}: {e.strerror or e}") from None

    async def _bind(self, host: str, port: int, reuse_port: bool) -> None:
        transport: _Closable
        sock = _udp_socket(host, port, reuse_port)
        if self.batched and mmsg.available():
            transport = mmsg.BatchUdp(self.server, sock)
        else:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self.server), sock=sock)
        bound = int(sock.getsockname()[1])
        try:
            tcp = await asyncio.start_server(self._client, host, bound, reuse_port=reuse_port)
        except OSError:
            transport.close()
            raise
        self._udp.append(transport)
        self._tcp.append(tcp)
        self.addresses.append((host, bound))

    def stats(self) -> dict[str, float]:
        """The resolver's counters for /metrics, with the TCP ones (docs/operator.md)."""
        out = self.server.stats()
        out["dns_tcp_connections"] = float(self.conns)
        out["dns_tcp_refused"] = float(self.tcp_refused)
        out["dns_tcp_aborted"] = float(self.tcp_aborted)
        out["dns_tcp_unsent_bytes"] = float(self.unsent_bytes())
        out["dns_udp_dropped"] = float(sum(getattr(t, "dropped", 0) for t in self._udp))
        return out

    def unsent_bytes(self) -> int:
        """Answers written to TCP clients and not yet taken by the kernel."""
        return sum(w.transport.get_write_buffer_size() for w in self._writers)

    async def stop(self, drain: float = 3.0) -> None:
        for t in self._udp:
            t.close()
        for s in self._tcp:
            s.close()
        tasks = set(self.server.tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=drain)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else ""
        mine = self.per_client.get(client, 0)
        if self.conns >= self.max_conns or mine >= self.client_conns:
            self.tcp_refused += 1
            writer.transport.abort()
            return
        self.per_client[client] = mine + 1
        self.conns += 1
        self._writers.add(writer)
        transport = writer.transport
        transport.set_write_buffer_limits(high=self.unsent)  # drain() waits above it
        pending: set[asyncio.Task[None]] = set()
        stuck = False  # the client stopped reading: abort, do not wait for it
        try:
            while True:
                (n,) = _LEN.unpack(await asyncio.wait_for(reader.readexactly(2), self.idle))
                data = await asyncio.wait_for(reader.readexactly(n), self.idle)
                reply = self.server.answer_fast(data, client, True)
                if reply is not None:
                    writer.write(_LEN.pack(len(reply)) + reply)
                else:
                    t = asyncio.get_running_loop().create_task(self._slow(data, client, writer))
                    pending.add(t)
                    t.add_done_callback(pending.discard)
                if transport.get_write_buffer_size() > self.unsent or len(pending) >= _MAX_PENDING:
                    stuck = True
                    await asyncio.wait_for(self._room(writer, pending), self.idle)
                    stuck = False
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass  # idle, closed by the client, or reset: answer what is in flight, then close
        finally:
            if pending and not stuck:
                await asyncio.wait(pending, timeout=self.server.upstream.timeout * 2 + 1)
            self._writers.discard(writer)
            self.conns -= 1
            left = self.per_client.pop(client, 1) - 1
            if left > 0:
                self.per_client[client] = left
            if stuck or transport.get_write_buffer_size():
                self.tcp_aborted += 1
                transport.abort()  # releases the unsent answers now
            else:
                with contextlib.suppress(ConnectionError):
                    writer.close()

    @staticmethod
    async def _room(writer: asyncio.StreamWriter, pending: set[asyncio.Task[None]]) -> None:
        """Wait until the client has read enough and few enough queries are in flight."""
        while len(pending) >= _MAX_PENDING:
            await asyncio.wait(set(pending), return_when=asyncio.FIRST_COMPLETED)
        await writer.drain()

    async def _slow(self, data: bytes, client: str, writer: asyncio.StreamWriter) -> None:
        reply = await self.server.answer(data, client, True)
        if reply is None:
            if len(data) < 12:
                writer.close()  # RFC 7766 §7: nothing sensible to say; drop the connection
            return
        if not writer.is_closing():
            writer.write(_LEN.pack(len(reply)) + reply)
