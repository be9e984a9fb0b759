"""UDP in batches: recvmmsg/sendmmsg (Linux) through ctypes, on the event loop.

A datagram costs two system calls through an asyncio transport (one read,
one write), and those dominate a cache hit. Here one `recvmmsg` reads up to
`batch` queries and one `sendmmsg` sends every answer the fast path could
give; the rest go to the full path as tasks and are sent alone when ready.

Invariants:
- Linux only (`available()`); elsewhere writ.dns.transport uses the plain
  asyncio datagram protocol. Same answers either way: this module only moves
  bytes; `DnsServer.answer_fast`/`answer` decide everything.
- All buffers are allocated once and pinned (their addresses are handed to
  the kernel); nothing on the hot path allocates more than the query and
  answer bytes. Kernel-written lengths are reset from a template before
  every `recvmmsg`.
- A query longer than `slot` bytes arrives cut (MSG_TRUNC) and is answered
  by the full path from what arrived (FORMERR at worst); real queries are
  far smaller (RFC 8467 pads them to 468 bytes).
- The sender's address bytes are the key for the client memo (bounded), so
  the address string is built once per client, not per datagram.
- A full socket send buffer drops answers (counted in `dropped`), as a busy
  UDP server must; it never blocks the loop.
- One readable event handles at most `_ROUNDS` batches, so TCP and timers
  keep their turn under a flood.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import logging
import socket
import struct
import sys
from typing import Any

from writ.dns.server import DnsServer

__all__ = ["BatchUdp", "available"]

log = logging.getLogger("writ.dns")

_ROUNDS = 8
_NAME = 128  # sizeof(struct sockaddr_storage)
_CLIENT_MEMO = 65536


class _Iovec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))


class _Msghdr(ctypes.Structure):
    _fields_ = (("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.c_void_p), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int))


class _Mmsghdr(ctypes.Structure):
    _fields_ = (("hdr", _Msghdr), ("len", ctypes.c_uint32))


_H = ctypes.sizeof(_Mmsghdr)
_OFF_NAMELEN = _Msghdr.namelen.offset
_OFF_LEN = _Mmsghdr.len.offset
_HW = _H // 4  # a header in 32-bit words
_W_LEN = _OFF_LEN // 4
_W_NAMELEN = _OFF_NAMELEN // 4
_HN = _H // ctypes.sizeof(ctypes.c_void_p)  # a header in pointer-sized words (size_t too)
_SOCKADDR_LEN = {socket.AF_INET: 16, socket.AF_INET6: 28}
Peer = tuple[str, tuple[Any, ...], bool]  # (address text, sendto address, ACL verdict)
_MSG_DONTWAIT = 0x40

_libc: Any = None


def available() -> bool:
    """True where recvmmsg/sendmmsg can be called (Linux with a C library we can load)."""
    global _libc  # noqa: PLW0603 (loaded once, on first use)
    if _libc is not None:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.recvmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                                  ctypes.c_void_p)
        libc.sendmmsg.argtypes = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int)
        libc.recvmmsg.restype = libc.sendmmsg.restype = ctypes.c_int
    except (OSError, AttributeError):
        return False
    _libc = libc
    return True


def _pinned(size: int) -> tuple[bytearray, int, Any]:
    buf = bytearray(size)
    view = (ctypes.c_char * size).from_buffer(buf)  # pins buf: it can never move or resize
    return buf, ctypes.addressof(view), view


def _sockaddr(raw: bytes, family: int) -> tuple[str, tuple[Any, ...]]:
    """(client address text, address tuple for sendto) from a struct sockaddr."""
    port = int.from_bytes(raw[2:4], "big")
    if family == socket.AF_INET:
        host = socket.inet_ntop(socket.AF_INET, raw[4:8])
        return host, (host, port)
    # struct sockaddr_in6: family, port, flowinfo, address, scope id (28 bytes)
    host = socket.inet_ntop(socket.AF_INET6, raw[8:24])
    flow = int.from_bytes(raw[4:8], "big")
    scope = struct.unpack_from("=I", raw, 24)[0]
    return host, (host, port, flow, scope)


class BatchUdp:
    """One bound UDP socket served in batches on the running loop."""

    def __init__(self, server: DnsServer, sock: socket.socket, batch: int = 32,
                 slot: int = 4096) -> None:
        assert available()
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.family = sock.family
        self.batch = batch
        self.slot = slot
        self.dropped = 0
        self._clients: dict[bytes, Peer] = {}
        # Receive side: data slots, address slots, iovecs, headers (+ a pristine copy).
        self._rbuf, raddr, self._rpin = _pinned(batch * slot)
        self._names, naddr, self._npin = _pinned(batch * _NAME)
        riov = (_Iovec * batch)()
        rhdr = (_Mmsghdr * batch)()
        for i in range(batch):
            riov[i].base, riov[i].len = raddr + i * slot, slot
            h = rhdr[i].hdr
            h.name, h.namelen, h.iov, h.iovlen = naddr + i * _NAME, _NAME, ctypes.addressof(
                riov[i]), 1
        self._naddr = naddr
        self._riov, self._rhdr = riov, rhdr
        self._rhdr_addr = ctypes.addressof(rhdr)
        self._template = (_Mmsghdr * batch)()
        ctypes.memmove(self._template, rhdr, ctypes.sizeof(rhdr))
        self._rview = memoryview(self._rbuf)
        self._nview = memoryview(self._names)
        self._hwords = memoryview(rhdr).cast("B").cast("I")  # 32-bit words of the headers
        # Send side: answer slots, iovecs, headers. Answer k goes, by default, to the
        # sender of query k (the common case: every query answered in the batch).
        self._sbuf, saddr, self._spin = _pinned(batch * slot)
        siov = (_Iovec * batch)()
        shdr = (_Mmsghdr * batch)()
        namelen = _SOCKADDR_LEN.get(sock.family, _NAME)
        for i in range(batch):
            siov[i].base, siov[i].len = saddr + i * slot, 0
            h = shdr[i].hdr
            h.name, h.namelen = naddr + i * _NAME, namelen
            h.iov, h.iovlen = ctypes.addressof(siov[i]), 1
        self._siov, self._shdr = siov, shdr
        self._sview = memoryview(self._sbuf)
        # Per slot: index, header words of its length and address length, address and
        # data offsets, address pointer. Precomputed: the loop does no arithmetic for them.
        self._slots = [(i, i * _HW + _W_LEN, i * _HW + _W_NAMELEN, i * _NAME, i * slot,
                        naddr + i * _NAME) for i in range(batch)]
        self._shdr_addr = ctypes.addressof(shdr)
        self._iov_words = memoryview(siov).cast("B").cast("P")  # base, len, base, len, …
        self._name_words = memoryview(shdr).cast("B").cast("P")
        self._closed = False
        asyncio.get_running_loop().add_reader(self.fd, self._readable)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        asyncio.get_running_loop().remove_reader(self.fd)
        self.sock.close()

    def is_closing(self) -> bool:
        return self._closed

    # -- the hot path --------------------------------------------------------

    def _readable(self) -> None:
        for _ in range(_ROUNDS):
            if self._round() < self.batch:
                return

    def _round(self) -> int:  # noqa: PLR0912, PLR0915 (one flat loop on purpose: calls cost here)
        ctypes.memmove(self._rhdr_addr, self._template, _H * self.batch)
        n = _libc.recvmmsg(self.fd, self._rhdr_addr, self.batch, _MSG_DONTWAIT, None)
        if n <= 0:
            return 0
        words, rbuf, rv, nv = self._hwords, self._rbuf, self._rview, self._nview
        sbuf, sv, iov, names = self._sbuf, self._sview, self._iov_words, self._name_words
        server, clients = self.server, self._clients
        memo, record, rate = server.memo, server.log_decision, server.rate
        now = server.clock()  # the whole batch arrived by now
        qps = rate.qps  # writ.dns.limits, inlined: one dict update per datagram
        counts = rate.window(now) if qps else {}
        slot = self.slot
        sent = 0
        moved = False
        for i, wl, wn, no, o, name_ptr in self._slots[:n]:
            ln = words[wl]
            peer = clients.get(nv[no : no + words[wn]].tobytes())
            if peer is None:
                peer = self._peer(nv[no : no + words[wn]].tobytes())
                if peer is None:
                    continue
            # ln == slot: maybe cut short (MSG_TRUNC), so the full path judges it. peer[2]:
            # the client ACL, memoised with the address (refusals are the full path's).
            ok = ln < slot and peer[2]
            if ok and qps:
                c = counts.get(peer[0], 0) + 1
                counts[peer[0]] = c
                if c > qps:
                    rate.limited += 1
                    over = rate.reply(rv[o : o + ln].tobytes())
                    if over is not None:
                        self._send_one(over, peer[1])
                    continue
            if ok:
                # A memo hit (as in DnsServer.answer_fast), written straight into the send
                # slot: the query's ID, then the prebuilt rest of the answer.
                hit = memo.get(rv[o + 2 : o + ln].tobytes())
                if hit is not None and now < hit[1]:
                    body = hit[0]
                    m = len(body) + 2
                    if m <= slot:
                        if hit[2] is not None:
                            record(peer[0], hit[2])
                        so = sent * slot
                        sbuf[so] = rbuf[o]
                        sbuf[so + 1] = rbuf[o + 1]
                        sv[so + 2 : so + m] = body
                        iov[sent * 2 + 1] = m
                        if sent != i:  # an earlier query went elsewhere: point at this sender
                            names[sent * _HN] = name_ptr
                            moved = True
                        sent += 1
                        continue
            data = rv[o : o + ln].tobytes()
            reply = None
            if ok:
                try:
                    reply = server.answer_fast(data, peer[0], False)
                except Exception:  # a bug costs this answer the fast path, not the batch
                    log.exception("writ.dns.fast_path_error client=%s", peer[0])
            if reply is None:
                if not server.spawn(self._slow(data, peer)):
                    shed = server.shed_reply(data)
                    if shed is not None:
                        self._send_one(shed, peer[1])
                continue
            m = len(reply)
            if m > slot:
                self._send_one(reply, peer[1])
                continue
            so = sent * slot
            sv[so : so + m] = reply
            iov[sent * 2 + 1] = m
            if sent != i:
                names[sent * _HN] = name_ptr
                moved = True
            sent += 1
        if sent:
            self._flush(sent)
        if moved:  # restore the default pairing (answer k to sender k) for the next batch
            for k in range(sent):
                names[k * _HN] = self._slots[k][5]
        return int(n)

    def _flush(self, count: int) -> None:
        done = 0
        while done < count:
            k = _libc.sendmmsg(self.fd, self._shdr_addr + done * _H, count - done, 0)
            if k > 0:
                done += k
                continue
            err = ctypes.get_errno()
            if err == errno.EINTR:
                continue
            if err in (errno.EAGAIN, errno.ENOBUFS):
                self.dropped += count - done  # the send buffer is full: the rest waits in vain
                return
            self.dropped += 1  # this one destination failed (e.g. a pending ICMP error)
            done += 1

    def _peer(self, raw: bytes) -> Peer | None:
        try:
            host, addr = _sockaddr(raw, self.family)
        except (OSError, ValueError, struct.error):
            return None
        peer = (host, addr, self.server.acl.allowed(host))
        if len(self._clients) >= _CLIENT_MEMO:
            self._clients.clear()  # a scan of many sources: start over, stay bounded
        self._clients[raw] = peer
        return peer

    def _send_one(self, reply: bytes, addr: tuple[Any, ...]) -> None:
        try:
            self.sock.sendto(reply, addr)
        except OSError:
            self.dropped += 1

    async def _slow(self, data: bytes, peer: Peer) -> None:
        reply = await self.server.answer(data, peer[0], False)
        if reply is not None and not self._closed:
            self._send_one(reply, peer[1])
