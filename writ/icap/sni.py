"""Squid's external ACL helper for the TLS SNI, asking writ's ICAP service.

Squid (built with OpenSSL) peeks at a tunnel's ClientHello (`ssl_bump peek`
at step 1) and can then ask a helper about `%ssl::>sni` before it splices or
terminates (docs/operator.md, "writ behind Squid"). The ICAP REQMOD of the
CONNECT came earlier, before the hello was read, so it cannot see the SNI.
This helper asks the running `writ icap` service — one verdict, one audit
chain, one set of metrics — with a REQMOD of `CONNECT sni:443` marked
`X-Writ-Check: sni`, which writ judges and records as a TLS hello.

Squid's helper protocol (external_acl_type): one request a line, `[channel]
SNI`; one answer a line, `[channel] OK` (the ACL matches: the name is
blocked, terminate) or `[channel] ERR` (it does not). A missing SNI (`-`) is
not blocked by the helper: the CONNECT's own host was judged already.

Invariants:
- Fail closed by default: writ unreachable or an answer that cannot be read
  → `OK` (terminate), with `--fail open` → `ERR`. Each failure is logged.
- One persistent ICAP connection, reopened once per request on failure;
  answers are read by their Encapsulated offsets and chunk sizes.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable, Iterator

__all__ = ["IcapClient", "answer_line", "serve"]

log = logging.getLogger("writ.icap.sni")
_MAX = 64 * 1024


class IcapClient:
    """A blocking ICAP client for one question: is this SNI refused?"""

    def __init__(self, host: str, port: int, service: str, timeout: float = 5.0) -> None:
        self.host, self.port, self.service, self.timeout = host, port, service, timeout
        self.sock: socket.socket | None = None
        self.buf = b""

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buf = b""
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def refused(self, sni: str) -> int:
        """The HTTP status writ answers for a tunnel to `sni` (204: allowed).
        Raises OSError or ValueError when there is no readable answer."""
        for attempt in (1, 2):  # a persistent connection writ closed: reopen once
            try:
                return self._ask(sni)
            except (OSError, ValueError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _ask(self, sni: str) -> int:
        http = f"CONNECT {sni}:443 HTTP/1.1\r\nHost: {sni}:443\r\n\r\n".encode("ascii")
        sock = self._connect()
        sock.sendall(
            f"REQMOD icap://{self.host}:{self.port}/{self.service} ICAP/1.0\r\n"
            f"Host: {self.host}\r\nAllow: 204\r\nX-Writ-Check: sni\r\n"
            f"Encapsulated: req-hdr=0, null-body={len(http)}\r\n\r\n".encode("ascii") + http)
        head = self._until(b"\r\n\r\n")
        status_line, *fields = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ")[1])
        if status == 204:
            return 204
        if status != 200:
            raise ValueError(f"ICAP status {status}")
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (f.partition(":") for f in fields)}
        sections = dict(item.strip().split("=") for item in headers["encapsulated"].split(","))
        body_key = next(k for k in sections if k.endswith("body"))
        http_head = self._exactly(int(sections[body_key]))
        if body_key != "null-body":
            for _ in self._chunks():
                pass
        return int(http_head.split(b" ", 2)[1])

    def _fill(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionResetError("writ closed the ICAP connection")
        self.buf += data
        if len(self.buf) > _MAX * 4:
            raise ValueError("ICAP answer too long")

    def _until(self, sep: bytes) -> bytes:
        while (i := self.buf.find(sep)) < 0:
            if len(self.buf) > _MAX:
                raise ValueError("ICAP head too long")
            self._fill()
        out, self.buf = self.buf[:i], self.buf[i + len(sep):]
        return out

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _chunks(self) -> Iterator[bytes]:
        while True:
            size = int(self._until(b"\r\n").split(b";")[0], 16)
            data = self._exactly(size)
            self._exactly(2)
            if size == 0:
                return
            yield data


def answer_line(client: IcapClient, line: str, *, fail_open: bool = False) -> str:
    """One helper answer for one request line (see the module docstring)."""
    parts = line.split()
    channel = ""
    if len(parts) >= 2 and parts[0].isdigit():  # concurrency=N: `[channel] SNI`
        channel, parts = parts[0] + " ", parts[1:]
    sni = parts[0] if parts else "-"
    if sni == "-" or any(c in sni for c in "/@\\\r\n") or len(sni) > 253:
        return f"{channel}ERR"
    try:
        status = client.refused(sni)
    except (OSError, ValueError) as e:
        log.warning("writ.icap.sni: no answer from writ for %s: %s", sni[:80], e)
        return f"{channel}{'ERR' if fail_open else 'OK'} message=writ-unreachable"
    if status == 204:
        return f"{channel}ERR"
    return f"{channel}OK message=writ-{status}"  # 451 blocked; 400/503 refused (fail closed)


def serve(client: IcapClient, lines: Iterable[str], *, fail_open: bool = False
          ) -> Iterator[str]:
    """Answers for request lines, one each, in order."""
    for line in lines:
        yield answer_line(client, line, fail_open=fail_open)
