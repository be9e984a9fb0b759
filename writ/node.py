"""The one wiring point: store → blocklist holder → shells → audit writer.

PROVISIONAL: loads `--orders DIR` once. The store issue replaces this with
writ.blocklist.stores (watching, Redis replicas, fail-static).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from writ.blocklist import Blocklist, BlocklistHolder, load_orders
from writ.commands._common import UsageError
from writ.policies import Policy

__all__ = ["open_holder"]


def open_holder(orders: Path | None, redis_url: str | None, policy: Policy) -> BlocklistHolder:
    holder = BlocklistHolder()
    if redis_url is not None:
        raise UsageError("--redis is not available yet")
    if orders is None or not orders.is_dir():
        raise UsageError(f"--orders: no such folder: {orders}")
    result = load_orders(orders, ZoneInfo(policy.timezone))
    if not result.ok:
        raise UsageError("invalid orders:\n" + "\n".join(str(e) for e in result.errors))
    holder.set(Blocklist(result.acts), datetime.now(UTC))
    return holder
