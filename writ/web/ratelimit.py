"""Per-client rate limit for the public register: a token bucket per address.

Invariants:
- Each client address gets `per_minute` requests per minute, refilled
  smoothly; past that 429 with Retry-After (RFC 6585 §4).
- Memory is bounded: at most MAX_CLIENTS buckets; when full, the
  least-recently-seen half is dropped (a flood of addresses cannot grow it).
- The clock is an argument (a monotonic reading), nothing here reads one.
"""

from __future__ import annotations

__all__ = ["MAX_CLIENTS", "RateLimiter"]

MAX_CLIENTS = 65536


class RateLimiter:
    def __init__(self, per_minute: int, max_clients: int = MAX_CLIENTS) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)

    def take(self, client: str, now: float) -> float:
        """0.0 when `client` may go on, else the seconds until it may."""
        tokens, at = self._buckets.pop(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + max(0.0, now - at) * self.rate)
        if len(self._buckets) >= self.max_clients:
            for old in list(self._buckets)[: self.max_clients // 2]:
                del self._buckets[old]
        if tokens >= 1.0:
            self._buckets[client] = (tokens - 1.0, now)
            return 0.0
        self._buckets[client] = (tokens, now)
        return (1.0 - tokens) / self.rate
