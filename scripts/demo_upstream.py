"""A stand-in upstream resolver for demos and end-to-end tests, loopback only.

    python scripts/demo_upstream.py [--port 5353]

Answers A 127.0.0.1 and AAAA ::1 for every name under the reserved `.example`
and `.test` zones (so a restored host "resolves" without any real network),
NXDOMAIN for anything else. UDP and TCP on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import struct

from dnslib import AAAA, QTYPE, RCODE, RR, A, DNSRecord

ZONES = ("example", "test")


def answer(data: bytes) -> bytes | None:
    try:
        q = DNSRecord.parse(data)
    except Exception:  # noqa: BLE001 - a demo server ignores garbage
        return None
    r = q.reply()
    name = str(q.q.qname).rstrip(".").lower()
    if name.rsplit(".", 1)[-1] not in ZONES:
        r.header.rcode = RCODE.NXDOMAIN
    elif q.q.qtype == QTYPE.A:
        r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A("127.0.0.1"), ttl=60))
    elif q.q.qtype == QTYPE.AAAA:
        r.add_answer(RR(q.q.qname, QTYPE.AAAA, rdata=AAAA("::1"), ttl=60))
    return bytes(r.pack())


class _Udp(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        out = answer(data)
        if out is not None:
            self.t.sendto(out, addr)  # type: ignore[attr-defined]


async def _tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            (n,) = struct.unpack("!H", await reader.readexactly(2))
            out = answer(await reader.readexactly(n))
            if out is None:
                break
            writer.write(struct.pack("!H", len(out)) + out)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


async def _listen(port: int) -> tuple[int, asyncio.Server]:
    """UDP and TCP on one port; port 0 picks one that is free for both."""
    loop = asyncio.get_running_loop()
    for _ in range(50):
        udp, _proto = await loop.create_datagram_endpoint(_Udp, local_addr=("127.0.0.1", port))
        chosen = int(udp.get_extra_info("sockname")[1])
        try:
            return chosen, await asyncio.start_server(_tcp, "127.0.0.1", chosen)
        except OSError:
            udp.close()
            if port:
                raise
    raise OSError("no port free for both UDP and TCP on 127.0.0.1")


async def main(port: int) -> None:
    loop = asyncio.get_running_loop()
    port, server = await _listen(port)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"demo upstream: 127.0.0.1:{port} (udp, tcp)", flush=True)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=5353, help="0 picks a free port (printed)")
    asyncio.run(main(ap.parse_args().port))
