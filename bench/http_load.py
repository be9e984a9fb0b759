"""The HTTP benchmarks' shared parts: a keep-alive origin, wrk's numbers, stopping a child.

Used by bench_proxy.py (mitmdump in front of the origin) and bench_icap.py
(Squid in front of it). Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys

__all__ = ["parse_wrk", "start_origin", "stop"]

# A minimal keep-alive HTTP/1.1 origin answering BODY_BYTES of "x" to every
# request: the proxy, not the origin, must be the bottleneck.
_ORIGIN = r"""
import asyncio, sys
BODY = b"x" * int(sys.argv[2])
RESP = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
        % len(BODY)) + BODY
class P(asyncio.Protocol):
    def connection_made(self, t): self.t, self.buf = t, b""
    def data_received(self, d):
        self.buf += d
        while b"\r\n\r\n" in self.buf:
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.t.write(RESP)
async def main():
    srv = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]))
    async with srv: await srv.serve_forever()
asyncio.run(main())
"""

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def start_origin(port: int, body_bytes: int, stderr: int | None = None,
                 ) -> subprocess.Popen[bytes]:
    """The origin on 127.0.0.1:`port`, as a child process."""
    return subprocess.Popen([sys.executable, "-c", _ORIGIN, str(port), str(body_bytes)],
                            stderr=stderr)


def parse_wrk(out: str) -> dict[str, float]:
    """req/s, p99 latency in ms (NaN if wrk printed none) and non-2xx/3xx answers
    from `wrk --latency`'s output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    p99 = float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {"rps": rps, "p99_ms": p99, "non_2xx": float(bad.group(1)) if bad else 0.0}


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (a clean shutdown), SIGKILL if it is not gone in 20 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
