"""Decision counters shared by the shells, rendered by the web server.

Neutral ground: dns, proxy and web never import each other, so the counters
live here. Each shell receives one Metrics through its constructor and calls
`count()` for every decision it makes — also for allowed ones the audit
policy does not record, so the metrics see all traffic either way.

Invariants:
- Pure counters: plain dict increments on the event loop thread, no locks, no
  clock, no I/O. Rendering (Prometheus text) lives in writ.web.
- Label cardinality is bounded by the number of orders, never by clients or
  targets: a target never becomes a label.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

__all__ = ["Metrics"]


class Metrics:
    """Decision counts by (component, decision, action) and by (component, order)."""

    def __init__(self) -> None:
        self.decisions: Counter[tuple[str, str, str]] = Counter()
        self.by_order: Counter[tuple[str, str]] = Counter()

    def count(self, component: str, decision: str, action: str,
              orders: Sequence[str] = ()) -> None:
        self.decisions[component, decision, action] += 1
        for oid in orders:
            self.by_order[component, oid] += 1
