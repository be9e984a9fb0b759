"""One-shot opening of a blocklist source (`--orders DIR` or `--redis URL`),
for callers that do not run a store: `writ explain`, `writ export`, a proxy
started by `mitmdump -s`.

Invariant: every failure is a domain error with a message fit for a user
(SourceError: where, and what is wrong; InvalidOrdersError: the folder's
errors, one `file:line: field: message` each). The commands turn them into
CLI errors (docs/design.md §1); nothing here knows about exit codes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from writ.blocklist.holder import Blocklist, BlocklistHolder
from writ.blocklist.ipaddr import DEFAULT_LIMITS, IpLimits
from writ.blocklist.loader import load_orders
from writ.blocklist.model import OrderError

if TYPE_CHECKING:
    from writ.blocklist.signed.sigcheck import OrderTrust

__all__ = ["InvalidOrdersError", "SourceError", "load_holder", "read_blocklist"]


class SourceError(Exception):
    """No such folder, Redis unreachable, nothing published, or an unusable version."""


class InvalidOrdersError(Exception):
    """The orders folder does not validate; `errors` says where and why."""

    def __init__(self, errors: tuple[OrderError, ...]) -> None:
        super().__init__(f"{len(errors)} error(s) in the orders")
        self.errors = errors


def read_blocklist(orders: Path | None, redis_url: str | None, prefix: str = "writ",
                   tz: str = "UTC", keyring: Path | None = None, *,
                   limits: IpLimits | None = None) -> Blocklist:
    """The act set, read once: the published version from Redis when
    `redis_url` is given, else the orders folder compiled in `tz`. With
    `keyring`, checked now as a node with it checks: a folder's acts and lists
    signed (docs/regulator.md §10), a published set's signed manifest
    (docs/auditor.md "Signed sets"; a SourceError saying what failed)."""
    if redis_url is not None:
        from writ.blocklist.stores.oneshot import PublishedError, read_published

        ring = _trust(keyring)
        try:
            return read_published(redis_url, prefix, ring.keyring if ring else None)
        except PublishedError as e:
            raise SourceError(str(e)) from None
    if orders is None or not orders.is_dir():
        raise SourceError(f"--orders: no such folder: {orders}")
    result = load_orders(orders, ZoneInfo(tz), _trust(keyring), limits or DEFAULT_LIMITS)
    if not result.ok:
        raise InvalidOrdersError(result.errors)
    return Blocklist(result.acts)


def _trust(keyring: Path | None) -> OrderTrust | None:
    if keyring is None:
        return None
    from writ.blocklist.signed.sigcheck import OrderTrust
    from writ.blocklist.stores.setguard import KeyringError, KeyringFile

    try:
        return OrderTrust(KeyringFile(keyring).current(), datetime.now(UTC))
    except KeyringError as e:
        raise SourceError(str(e)) from None


def load_holder(orders: Path | None, redis_url: str | None, tz: str = "UTC",
                prefix: str = "writ", keyring: Path | None = None, *,
                limits: IpLimits | None = None) -> BlocklistHolder:
    """A holder filled once, synchronously, for now. SourceError (an invalid
    folder's errors listed in its message) when there is nothing to enforce."""
    try:
        blocklist = read_blocklist(orders, redis_url, prefix, tz, keyring, limits=limits)
    except InvalidOrdersError as e:
        raise SourceError("invalid orders:\n" + "\n".join(str(x) for x in e.errors)) from None
    holder = BlocklistHolder()
    holder.set(blocklist, datetime.now(UTC))
    return holder
