"""Squid's external ACL helper for the TLS SNI, asking writ's ICAP service.

Squid (built with OpenSSL) peeks at a tunnel's ClientHello (`ssl_bump peek`
at step 1) and can then ask a helper about `%ssl::>sni` before it splices or
terminates (docs/operator.md, "writ behind Squid"). The ICAP REQMOD of the
CONNECT came earlier, before the hello was read, so it cannot see the SNI.
This helper asks the running `writ icap` service — one verdict, one audit
chain, one set of metrics — with a REQMOD of `CONNECT sni:443` marked
`X-Writ-Check: sni`, which writ judges and records as a TLS hello.

Squid's helper protocol (external_acl_type): one request a line, `[channel]
SNI [CLIENT] [-]` (the channel only with `concurrency=N`, the helper's
`--concurrent`; the client's address from `%>a`, forwarded to writ as
`X-Client-IP` so the record names the client, as Squid's REQMODs do; `-`
stands for the ACL's absent arguments); one answer a line, `[channel] OK`
(the ACL matches: writ allows the name, splice) or `[channel] ERR` (refused:
terminate): only a clear OK splices under the shipped rules. Squid 5 itself
splices when the check ends "unknown" (a BH answer, a helper that died, a
full queue), so deploy/squid/sni.conf also hands the SNI to the CONNECT that
Squid adapts again as it splices, and writ judges it there (writ.icap.verdict).
A missing SNI (`-`) is allowed by the helper: the CONNECT's own host was
judged already (docs/operator.md, "HTTPS and the SNI").

Invariants:
- Squid 5 sends `%ssl::>sni` as the client wrote it — spaces, newlines and
  all — unless the format asks for URL escaping (`%#ssl::>sni`, as the
  shipped deploy/squid/sni.conf does): a raw SNI `a.example\nb.example` is two
  request lines and two answers, and the second answers somebody else's
  question. The helper cannot undo that; it can only refuse to make it worse.
- Every SNI but `-` goes to writ, which judges it as writ's proxy judges a
  hello: a name writ cannot read (`%`, `/`, `@`, a space, too long) is
  refused and recorded, never passed by the helper on its own. Bytes that
  could break the ICAP request are percent-encoded first (a `%` in a name
  is refused by writ whatever follows it).
- Fail closed by default: writ unreachable or an answer that cannot be read
  → `ERR` (terminate), with `--fail open` → `OK`. Each failure is logged.
- One persistent ICAP connection, reopened once per request on failure;
  answers are read by their Encapsulated offsets and chunk sizes.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import string
from collections.abc import Iterable, Iterator

__all__ = ["IcapClient", "answer_line", "serve", "wire_name"]

log = logging.getLogger("writ.icap.sni")
_MAX = 64 * 1024
_WIRE_SAFE = frozenset(string.ascii_letters + string.digits + "-._:[]%")
_WIRE_MAX = 1024  # longer than any name (253) or IPv6 literal: refused all the same


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

    def refused(self, sni: str, client: str = "") -> int:
        """The HTTP status writ answers for a tunnel to `sni` (204: allowed),
        recorded for `client` (an address, or "": this helper's).
        Raises OSError or ValueError when there is no readable answer."""
        for attempt in (1, 2):  # a persistent connection writ closed: reopen once
            try:
                return self._ask(sni, client)
            except (OSError, ValueError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _ask(self, sni: str, client: str) -> int:
        http = f"CONNECT {sni}:443 HTTP/1.1\r\nHost: {sni}:443\r\n\r\n".encode("ascii")
        sock = self._connect()
        forwarded = f"X-Client-IP: {client}\r\n" if client else ""
        sock.sendall(
            f"REQMOD icap://{self.host}:{self.port}/{self.service} ICAP/1.0\r\n"
            f"Host: {self.host}\r\nAllow: 204\r\nX-Writ-Check: sni\r\n{forwarded}"
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


def wire_name(sni: str) -> str:
    """The SNI as it may stand in the ICAP request's `CONNECT name:443`: bytes
    outside letters, digits and `-._:[]%` percent-encoded (writ refuses a name
    with `%`), cut after _WIRE_MAX characters with a `%` that writ refuses."""
    wire = "".join(c if c in _WIRE_SAFE else
                   "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogateescape"))
                   for c in sni[:_WIRE_MAX])
    return wire if len(sni) <= _WIRE_MAX else wire + "%"


def _address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return ""


def answer_line(icap: IcapClient, line: str, *, fail_open: bool = False,
                concurrent: bool = False) -> str:
    """One helper answer for one request line (see the module docstring)."""
    parts = line.rstrip("\r\n").split(" ")
    channel = ""
    if concurrent:  # concurrency=N: `channel SNI …`
        channel, parts = parts[0] + " ", parts[1:]
    if len(parts) > 1 and parts[-1] == "-":  # Squid's `-` for an ACL without arguments
        parts = parts[:-1]
    client = ""
    if len(parts) > 1 and (address := _address(parts[-1])):  # `%>a`, the client
        client, parts = address, parts[:-1]
    sni = " ".join(parts)  # a raw `%ssl::>sni` may hold spaces: judged whole
    if sni in ("-", ""):  # no SNI in the hello
        return f"{channel}OK"
    try:
        status = icap.refused(wire_name(sni), client)
    except (OSError, ValueError) as e:
        log.warning("writ.icap.sni: no answer from writ for %r: %s", sni[:80], e)
        return f"{channel}{'OK' if fail_open else 'ERR'} message=writ-unreachable"
    if status == 204:
        return f"{channel}OK"
    return f"{channel}ERR message=writ-{status}"  # 451 blocked; 400/503 refused (fail closed)


def serve(icap: IcapClient, lines: Iterable[str], *, fail_open: bool = False,
          concurrent: bool = False) -> Iterator[str]:
    """Answers for request lines, one each, in order."""
    for line in lines:
        yield answer_line(icap, line, fail_open=fail_open, concurrent=concurrent)
