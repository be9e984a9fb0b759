"""The one wiring point: store → blocklist holder → shells → audit writer.

PROVISIONAL: loads `--orders DIR` once. The store issue replaces this with
writ.blocklist.stores (watching, Redis replicas, fail-static).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from writ.blocklist import Blocklist, BlocklistHolder, OrderError, load_orders
from writ.commands._common import UsageError
from writ.policies import Policy

__all__ = ["InvalidOrdersError", "load_blocklist", "open_holder"]


class InvalidOrdersError(Exception):
    def __init__(self, errors: tuple[OrderError, ...]) -> None:
        super().__init__(f"{len(errors)} error(s) in the orders")
        self.errors = errors


def load_blocklist(
    orders: Path | None, redis_url: str | None, prefix: str = "writ", tz: str = "UTC"
) -> Blocklist:
    """A one-shot read of the act set (for explain, export, diff)."""
    if redis_url is not None:
        from writ.blocklist.stores import PublishedError, read_published

        try:
            return read_published(redis_url, prefix)
        except PublishedError as e:
            raise UsageError(str(e)) from None
    if orders is None or not orders.is_dir():
        raise UsageError(f"--orders: no such folder: {orders}")
    result = load_orders(orders, ZoneInfo(tz))
    if not result.ok:
        raise InvalidOrdersError(result.errors)
    return Blocklist(result.acts)


def open_holder(orders: Path | None, redis_url: str | None, policy: Policy) -> BlocklistHolder:
    holder = BlocklistHolder()
    try:
        blocklist = load_blocklist(orders, redis_url, tz=policy.timezone)
    except InvalidOrdersError as e:
        raise UsageError("invalid orders:\n" + "\n".join(str(x) for x in e.errors)) from None
    holder.set(blocklist, datetime.now(UTC))
    return holder
