"""writ as an ICAP service (RFC 3507): Squid and other HTTP engines ask, writ judges.

`writ icap` and `writ serve` (with `icap.enabled`) call `run_icap()`. The
protocol (writ.icap.protocol) is pure; the server (writ.icap.server) is its
asyncio shell; the verdict is the proxy's own `judge` (writ.icap.verdict).
"""

from writ.icap.server import IcapServer, run_icap

__all__ = ["IcapServer", "run_icap"]
