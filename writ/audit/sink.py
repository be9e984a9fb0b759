"""What the enforcement shells call to record a decision.

The DNS resolver and the HTTP addon receive a DecisionSink through their
constructors and call `record()` once per decision. `record()` must return at
once (it only enqueues); the audit writer does the rest off the hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["DecisionSink", "MemorySink"]


class DecisionSink(Protocol):
    def record(
        self,
        *,
        component: str,  # "dns" | "http"
        client: str,  # raw client address; the sink pseudonymises it
        target: str,  # "name. A" for DNS, "GET http://host/path" for HTTP
        decision: str,  # block | url-rules | steer | unenforceable | tls-refused | allow
        action: str,  # nxdomain | sinkhole | refused | servfail | 451 | tls-refused | pass | ...
        orders: Sequence[str],
        rule: str | None,
        blocklist_version: str | None,
    ) -> None: ...


class MemorySink:
    """Keeps records in a list: for tests and for `log_allowed`-less dry runs."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def record(
        self,
        *,
        component: str,
        client: str,
        target: str,
        decision: str,
        action: str,
        orders: Sequence[str],
        rule: str | None,
        blocklist_version: str | None,
    ) -> None:
        self.records.append(
            {
                "component": component,
                "client": client,
                "target": target,
                "decision": decision,
                "action": action,
                "orders": list(orders),
                "rule": rule,
                "blocklist_version": blocklist_version,
            }
        )
