"""Per-client limits: queries a second per client address (as Unbound's ip-ratelimit).

Invariants:
- A fixed one-second window per address: the first `qps` UDP queries of a
  client in a window are served; the rest get the policy's `over_limit`
  answer (TC=1, REFUSED, or nothing) and are counted. A window boundary can
  let one burst of up to twice qps through; that is the price of one dict
  update per query.
- Memory is bounded: the table is dropped every window, and when a scan of
  more than `max_clients` source addresses fills it within one second, it
  starts over (those clients get a fresh allowance, never a wrong refusal).
- Time is an argument; nothing here reads a clock or a socket.
- TCP is not rate-limited per query: its sources are proven by the
  handshake, and its connections are limited per client (writ.dns.transport).
"""

from __future__ import annotations

import logging
import resource

from writ.dns.wire import opt_record, parse_query, plain_reply
from writ.policies import OverLimit

__all__ = ["FD_RESERVE", "ClientRate", "fd_budget"]

log = logging.getLogger("writ.dns")
FD_RESERVE = 128  # for the store (re-reading the orders folder, Redis), the audit log, imports


def fd_budget(upstream: int, tcp: int) -> tuple[int, int]:
    """(upstream sockets, TCP connections) that fit the process's file-descriptor limit.

    The soft limit is raised to the hard one first (as Unbound does). What does not
    fit after FD_RESERVE descriptors kept for the store is cut from both, in
    proportion, and said once: a flood must never leave the store unable to open
    the orders folder (issue 11: a new order was not enforced for a whole flood).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = upstream + tcp + FD_RESERVE
    if soft < want and soft != hard:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (ValueError, OSError):
            pass
    room = soft - FD_RESERVE
    if upstream + tcp <= room:
        return upstream, tcp
    scale = max(room, 32) / (upstream + tcp)
    fit = max(16, int(upstream * scale)), max(16, int(tcp * scale))
    log.warning("writ.dns.fd_limit limit=%d upstream_queries=%d max_tcp_conns=%d "
                "(cut to fit, %d kept for the store)", soft, fit[0], fit[1], FD_RESERVE)
    return fit

_TC, _REFUSED = 0x0200, 5


class ClientRate:
    def __init__(self, qps: int, over_limit: OverLimit = OverLimit.TRUNCATE,
                 max_clients: int = 1 << 20) -> None:
        self.qps = qps
        self.over_limit = over_limit
        self.max_clients = max_clients
        self.counts: dict[str, int] = {}
        self.until = 0.0  # end of the current window
        self.limited = 0  # queries over the limit, counted for /metrics

    def window(self, now: float) -> dict[str, int]:
        """The counts of the window `now` falls in (a batch reads it once, then counts)."""
        if now >= self.until or len(self.counts) >= self.max_clients:
            self.counts = {}
            self.until = now + 1.0
        return self.counts

    def over(self, client: str, now: float) -> bool:
        """Count one query of `client`; True when it is over the limit."""
        if not self.qps:
            return False
        counts = self.window(now)
        c = counts.get(client, 0) + 1
        counts[client] = c
        if c > self.qps:
            self.limited += 1
            return True
        return False

    def reply(self, data: bytes) -> bytes | None:
        """The answer for a query over the limit (None: drop it)."""
        if self.over_limit is OverLimit.DROP:
            return None
        q = parse_query(data)
        if q is None:
            return None  # not a plain query: not worth an answer to a client over its limit
        flags = _TC if self.over_limit is OverLimit.TRUNCATE else _REFUSED
        return plain_reply(data, q, flags, opt_record(q.do) if q.edns else b"")
