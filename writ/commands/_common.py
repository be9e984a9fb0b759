"""Small pieces shared by the command modules."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from writ.blocklist import Blocklist, LoadResult
    from writ.blocklist.ipaddr import IpLimits
    from writ.blocklist.signed.sigcheck import OrderTrust

__all__ = ["UsageError", "load_folder", "parse_instant", "source_blocklist"]


class UsageError(Exception):
    """A bad invocation (no such folder, bad flag value): exit 2."""


def parse_instant(text: str) -> datetime:
    """`--at` values: RFC 3339 / ISO 8601, a bare date (00:00 UTC), or `now`."""
    if text == "now":
        return datetime.now(UTC)
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--at: not a date or time: {text!r} (e.g. 2015-09-28T12:00:00+06:00)"
        ) from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def load_folder(verb: str, directory: Path, tz: str, trust: OrderTrust | None = None,
                limits: IpLimits | None = None) -> LoadResult:
    """`writ orders VERB DIR --tz ZONE`: the folder loaded and validated (its
    errors are in the result; with `trust`, signature errors too). UsageError
    for no such folder or zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from writ.blocklist import load_orders

    if not directory.is_dir():
        raise UsageError(f"orders {verb}: no such folder: {directory}")
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz: unknown time zone {tz!r}") from None
    if limits is None:
        return load_orders(directory, zone, trust)
    return load_orders(directory, zone, trust, limits)


def source_blocklist(args: argparse.Namespace, nothing: str, tz: str = "UTC",
                     trust: OrderTrust | None = None) -> Blocklist | None:
    """The act set from --orders (default court_orders) or --redis, read once.
    An invalid folder prints its errors and "…; `nothing`", and gives None.
    With `trust`, a folder's signatures are checked as `writ orders check` does."""
    from writ.node import InvalidOrdersError, load_blocklist

    if args.orders is None and args.redis is None:
        args.orders = Path("court_orders")
    if trust is not None and args.redis is None:
        from writ.blocklist import Blocklist

        result = load_folder("explain", args.orders, tz, trust, _limits(args))
        if not result.ok:
            for e in result.errors:
                print(e, file=sys.stderr)
            print(f"writ: {len(result.errors)} error(s) in the orders; {nothing}",
                  file=sys.stderr)
            return None
        return Blocklist(result.acts)
    try:
        limits = _limits(args)
        if limits is not None:
            return load_blocklist(orders=args.orders, redis_url=args.redis, prefix=args.prefix,
                                  tz=tz, limits=limits)
        return load_blocklist(orders=args.orders, redis_url=args.redis, prefix=args.prefix,
                              tz=tz)
    except InvalidOrdersError as e:
        for line in e.errors:
            print(line, file=sys.stderr)
        print(f"writ: {len(e.errors)} error(s) in the orders; {nothing}", file=sys.stderr)
        return None


def _limits(args: argparse.Namespace) -> IpLimits | None:
    from writ.commands._ipreport import ip_limits

    return ip_limits(args)
