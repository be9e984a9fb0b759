"""A loopback TLS origin for the Squid tests and benchmarks (no pytest here):
it records every connection it accepts and the SNI the client sent; and the
ClientHello a client would send it (`client_hello`)."""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.certs import self_signed

__all__ = ["TlsOrigin", "client_hello"]


def client_hello(sni: str | None) -> bytes:
    """A real ClientHello (Python's OpenSSL) naming `sni` (None: no SNI), as one
    TLS record."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=sni)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:  # the hello is out; the server's answer is awaited
        return outgoing.read()
    raise AssertionError("a TLS handshake finished with no server")


@dataclass
class TlsOrigin:
    """A loopback TLS server: every accepted connection and its SNI, in order."""

    port: int = 0
    accepted: list[str | None] = field(default_factory=list)  # the SNI, None: none sent
    _local: threading.local = field(default_factory=threading.local)

    def start(self, folder: Path) -> TlsOrigin:
        cert, key = self_signed(folder, "allowed.example")
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.sni_callback = self._sni
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def _sni(self, _conn: object, name: str | None, _ctx: object) -> None:
        self.accepted[self._local.index] = name

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed
            self.accepted.append(None)
            threading.Thread(target=self._serve, args=(conn, len(self.accepted) - 1),
                             daemon=True).start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        self._local.index = index
        conn.settimeout(30)
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                head = b""
                while b"\r\n\r\n" not in head and (chunk := tls.recv(4096)):
                    head += chunk
                body = f"origin: {self.accepted[index]}".encode()
                tls.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: "
                            + str(len(body)).encode() + b"\r\n\r\n" + body)
        except (OSError, ssl.SSLError):
            conn.close()  # a client that only wanted the ServerHello

    def close(self) -> None:
        self.sock.close()
