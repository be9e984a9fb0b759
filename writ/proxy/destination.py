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
- Judge once, connect to what was judged: the name is resolved here, once,
  and the connection goes to a judged address (`Connect`), never to a second
  resolution the name's own DNS could answer differently (DNS rebinding,
  docs/operator.md §5 "Addresses").
- Every address the name resolves to is judged (a client could be handed any
  of them), and the decision names every order behind every blocked one.
- A name that cannot be resolved here (SERVFAIL, a timeout, no address) is
  refused (`Unresolved`): left to mitmproxy, it would be resolved again, and
  a hostile server could fail the first answer and give the blocked one next.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from writ.blocklist import Decision, Index, Verdict
from writ.blocklist.ipaddr import IpError, canonical_ip

__all__ = ["Connect", "Refuse", "Resolve", "Unresolved", "judge_destination",
           "system_resolve"]

Resolve = Callable[[str, int], Awaitable[Sequence[str]]]


@dataclass(frozen=True, slots=True)
class Connect:
    """Every address is allowed: connect to `address` (the first one resolved,
    the one mitmproxy's own connect would have tried first; its fallback to
    the others is given up, docs/operator.md §5)."""

    address: str


@dataclass(frozen=True, slots=True)
class Refuse:
    """A blocked address: the decision naming every order behind every blocked
    one, and the first blocked address (canonical)."""

    decision: Decision
    address: str


@dataclass(frozen=True, slots=True)
class Unresolved:
    """No address writ could judge: why (the resolver's error, or `no address`)."""

    reason: str


async def system_resolve(host: str, port: int) -> Sequence[str]:
    """The addresses `host` resolves to, in the order mitmproxy's own connect
    would try them (IPv6 scope ids kept: they are needed to connect)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _literal(host: str) -> str | None:
    try:
        return str(canonical_ip(host.strip("[]")))
    except IpError:
        return None


async def judge_destination(index: Index, host: str, port: int,
                            resolve: Resolve = system_resolve
                            ) -> Connect | Refuse | Unresolved | None:
    """What to do with a connection to (host, port): None when nothing is to
    be done (no ip rules, or an allowed address literal)."""
    if not index.ip_count:
        return None
    literal = _literal(host)
    if literal is not None:
        d = index.decide_ip(literal)
        return Refuse(d, literal) if d.blocked else None
    try:
        addresses = await resolve(host, port)
    except (OSError, UnicodeError) as e:
        return Unresolved(str(e) or type(e).__name__)
    judged: list[str] = []
    blocked: list[tuple[Decision, str]] = []
    for a in addresses:
        try:
            canonical = str(canonical_ip(a.partition("%")[0]))
        except IpError:
            continue  # not an address: never connected to either
        judged.append(a)
        d = index.decide_ip(canonical)
        if d.blocked:
            blocked.append((d, canonical))
    if blocked:
        return Refuse(_merged(blocked), blocked[0][1])
    if not judged:
        return Unresolved("no address")
    return Connect(judged[0])


def _merged(blocked: list[tuple[Decision, str]]) -> Decision:
    if len(blocked) == 1:
        return blocked[0][0]
    orders = tuple(sorted({o for d, _ in blocked for o in d.orders}))
    rules = tuple(dict.fromkeys(r for d, _ in blocked for r in d.rules))
    return Decision(Verdict.BLOCK, orders, blocked[0][0].rule, rules, host_level=True)
