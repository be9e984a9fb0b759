"""writ as an ICAP service (RFC 3507): Squid and other HTTP engines ask, writ judges.

`writ icap` and `writ serve` (with `icap.enabled`) call `run_icap()`. The
protocol (writ.icap.protocol) is pure; the server (writ.icap.server) is its
asyncio shell; the verdict is the proxy's own `judge` (writ.icap.verdict).
`writ squid-sni` (writ.icap.sni) is a small ICAP client: the server and
the proxy's modules (which import mitmproxy) load only when asked for, so
each of the helper processes Squid starts stays small and quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from writ.icap.server import IcapServer, run_icap

__all__ = ["IcapServer", "run_icap"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from writ.icap import server

        return getattr(server, name)
    raise AttributeError(f"module 'writ.icap' has no attribute {name!r}")
