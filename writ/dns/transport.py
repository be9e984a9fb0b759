"""UDP and TCP listeners around a DnsServer.

Invariants:
- UDP: a cache hit or a block is answered in the read callback (no task, no
  dnslib); everything else becomes one task, so a slow upstream never stalls
  other clients. On Linux datagrams are read and answered in batches
  (writ.dns.mmsg: recvmmsg/sendmmsg); elsewhere through a datagram protocol.
- TCP (RFC 7766): two-byte length framing; queries on one connection are
  read while earlier ones are still being answered (pipelining) and answers
  go out as they are ready, each frame in one write so frames never
  interleave. A connection idle for `idle` seconds is closed; beyond `max_conns`
  new connections are closed at once.
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


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        client = str(addr[0])
        try:
            reply = self.server.answer_fast(data, client, False)
        except Exception:  # a bug costs this answer the fast path, never the listener
            log.exception("writ.dns.fast_path_error client=%s", client)
            reply = None
        if reply is not None:
            assert self.transport is not None
            self.transport.sendto(reply, addr)
            return
        self.server.spawn(self._slow(data, addr, client))

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
    def __init__(self, server: DnsServer, idle: float = 10.0, max_conns: int = 1000,
                 batched: bool = True) -> None:
        self.server = server
        self.batched = batched  # recvmmsg/sendmmsg where available (writ.dns.mmsg)
        self.idle = idle
        self.max_conns = max_conns
        self.conns = 0
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

    async def stop(self, drain: float = 3.0) -> None:
        for t in self._udp:
            t.close()
        for s in self._tcp:
            s.close()
        tasks = set(self.server.tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=drain)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.conns >= self.max_conns:
            writer.close()
            return
        self.conns += 1
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else ""
        pending: set[asyncio.Task[None]] = set()
        try:
            while True:
                (n,) = _LEN.unpack(await asyncio.wait_for(reader.readexactly(2), self.idle))
                data = await asyncio.wait_for(reader.readexactly(n), self.idle)
                reply = self.server.answer_fast(data, client, True)
                if reply is not None:
                    writer.write(_LEN.pack(len(reply)) + reply)
                    continue
                t = asyncio.get_running_loop().create_task(self._slow(data, client, writer))
                pending.add(t)
                t.add_done_callback(pending.discard)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass  # idle, closed by the client, or reset: answer what is in flight, then close
        finally:
            if pending:
                await asyncio.wait(pending, timeout=self.server.upstream.timeout * 2 + 1)
            self.conns -= 1
            with contextlib.suppress(ConnectionError):
                writer.close()

    async def _slow(self, data: bytes, client: str, writer: asyncio.StreamWriter) -> None:
        reply = await self.server.answer(data, client, True)
        if reply is None:
            if len(data) < 12:
                writer.close()  # RFC 7766 §7: nothing sensible to say; drop the connection
            return
        if not writer.is_closing():
            writer.write(_LEN.pack(len(reply)) + reply)
