"""Raw-socket parts for the bypass tests: a cooperating origin that records
every byte it receives and serves anything asked of it, and a client that
speaks bytes to the proxy (no HTTP library second-guessing the attack); and
`OriginServer`, the listen/stop part every test origin here shares."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

__all__ = ["OriginServer", "RawClient", "RawOrigin"]


class OriginServer:
    """An asyncio server for a test origin: `port` once it listens, `stop()`
    closes it; a subclass answers each connection in `_serve`."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _listen(self, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        self._server = await asyncio.start_server(self._serve, host, port, ssl=tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class RawOrigin(OriginServer):
    """An origin on 127.0.0.1 that serves every request (200 naming it) and,
    like a blocked site's own server, answers `/upgrade` with a non-websocket
    `101 Switching Protocols` and then keeps serving requests on the
    connection. `raw` is every byte received; `requests` every request line
    and Host it parsed."""

    def __init__(self) -> None:
        super().__init__()
        self.raw = bytearray()
        self.requests: list[str] = []

    async def start(self, host: str = "127.0.0.1") -> RawOrigin:
        await self._listen(host, self.port)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    return
                self.raw += data
                buf += data
                while b"\r\n\r\n" in buf:
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    lines = head.decode("latin-1").split("\r\n")
                    host = next((ln.split(":", 1)[1].strip() for ln in lines[1:]
                                 if ln.lower().startswith("host:")), "")
                    self.requests.append(f"{lines[0]} | {host}")
                    if " /upgrade " in lines[0]:
                        writer.write(b"HTTP/1.1 101 Switching Protocols\r\n"
                                     b"Upgrade: x-raw\r\nConnection: Upgrade\r\n\r\n")
                    else:
                        body = f"origin served {lines[0]}".encode()
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                                     % (len(body), body))
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()


class RawClient:
    """One TCP connection to the proxy."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawClient:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, data: bytes, pause: float = 0.0) -> None:
        """Write `data` as its own TCP segment (drained; then `pause`)."""
        self.writer.write(data)
        await self.writer.drain()
        if pause:
            await asyncio.sleep(pause)

    async def connect(self, authority: str) -> bytes:
        """CONNECT and return the response head."""
        await self.send(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
        return await self.head()

    async def head(self, timeout: float = 10) -> bytes:
        """The next response head, or b"" when the proxy closed the connection."""
        try:
            return await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        except (asyncio.IncompleteReadError, ConnectionError):
            return b""

    async def rest(self, timeout: float = 10) -> bytes:
        """Everything until the proxy closes (b"" if it closed at once)."""
        try:
            return await asyncio.wait_for(self.reader.read(), timeout)
        except ConnectionError:
            return b""

    def close(self) -> None:
        self.writer.close()
