"""The address the proxy is about to connect to (docs/design.md §6, IP targets).

A request or tunnel judged on its names can still lead to a blocked address:
a name no order touches that resolves into a blocked prefix, or a number
mitmproxy dials that writ's URL parser did not read as an address. Just
before mitmproxy opens a server connection (its `server_connect` hook) the
destination is resolved and every address judged; one blocked address and
the connection is never opened.

Invariants:
- Only when the index has ip rules: otherwise nothing is resolved, and the
  proxy behaves as before.
- Every address the name resolves to is judged (a client could be handed any
  of them), and the decision names every order behind every blocked one.
- A resolution failure is not a decision: mitmproxy's own connect then fails
  or succeeds as it would have.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence

from writ.blocklist import Decision, Index, Verdict
from writ.blocklist.ipaddr import IpError, canonical_ip

__all__ = ["Resolve", "destination_decision", "system_resolve"]

Resolve = Callable[[str, int], Awaitable[Sequence[str]]]


async def system_resolve(host: str, port: int) -> Sequence[str]:
    """The addresses `host` resolves to, as mitmproxy's own connect would see them."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]).partition("%")[0] for info in infos))


def _literal(host: str) -> str | None:
    try:
        return str(canonical_ip(host.strip("[]")))
    except IpError:
        return None


async def destination_decision(index: Index, host: str, port: int,
                               resolve: Resolve = system_resolve
                               ) -> tuple[Decision, str] | None:
    """(block decision, the blocked address) when the destination is blocked; None otherwise."""
    if not index.ip_count:
        return None
    literal = _literal(host)
    if literal is not None:
        addresses: Sequence[str] = [literal]
    else:
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError):
            return None  # not resolvable: nothing to connect to, nothing to judge
    blocked: list[tuple[Decision, str]] = []
    for a in addresses:
        try:
            d = index.decide_ip(a)
        except IpError:
            continue
        if d.blocked:
            blocked.append((d, str(canonical_ip(a))))
    if not blocked:
        return None
    if len(blocked) == 1:
        return blocked[0]
    orders = tuple(sorted({o for d, _ in blocked for o in d.orders}))
    rules = tuple(dict.fromkeys(r for d, _ in blocked for r in d.rules))
    first = blocked[0][0]
    return Decision(Verdict.BLOCK, orders, first.rule, rules, host_level=True), blocked[0][1]
