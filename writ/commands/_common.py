"""Small pieces shared by the command modules."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from writ.blocklist import Blocklist, LoadResult
    from writ.blocklist.ipaddr import IpLimits
    from writ.blocklist.signed.sigcheck import OrderTrust

__all__ = ["UsageError", "check_folder_args", "ip_limits", "load_folder", "parse_instant",
           "source_blocklist"]


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


def check_folder_args(verb: str, directory: Path, tz: str) -> tzinfo:
    """`DIR --tz ZONE` checked before anything else is done: the zone, or UsageError
    for no such folder or zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not directory.is_dir():
        raise UsageError(f"orders {verb}: no such folder: {directory}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--tz: unknown time zone {tz!r}") from None


def load_folder(verb: str, directory: Path, tz: str, trust: OrderTrust | None = None,
                limits: IpLimits | None = None) -> LoadResult:
    """`writ orders VERB DIR --tz ZONE`: the folder loaded and validated (its
    errors are in the result; with `trust`, signature errors too). UsageError
    for no such folder or zone."""
    from writ.blocklist import load_orders

    zone = check_folder_args(verb, directory, tz)
    if limits is None:
        return load_orders(directory, zone, trust)
    return load_orders(directory, zone, trust, limits)


def source_blocklist(args: argparse.Namespace, nothing: str, tz: str = "UTC",
                     trust: OrderTrust | None = None) -> Blocklist | None:
    """The act set from --orders (default court_orders) or --redis, read once.
    An invalid folder prints its errors and "…; `nothing`", and gives None.
    With `trust`, a folder's signatures are checked as `writ orders check` does,
    and a published set's signed manifest as a node with that keyring checks it
    (a refused set: its reason and "…; `nothing`" printed, None)."""
    from writ.blocklist.stores import InvalidOrdersError, SourceError, read_blocklist

    if args.orders is None and args.redis is None:
        args.orders = Path("court_orders")
    if trust is not None and args.redis is not None:
        return _verified_published(args, nothing, trust)
    if trust is not None and args.redis is None:
        from writ.blocklist import Blocklist

        result = load_folder("explain", args.orders, tz, trust, ip_limits(args))
        if not result.ok:
            for e in result.errors:
                print(e, file=sys.stderr)
            print(f"writ: {len(result.errors)} error(s) in the orders; {nothing}",
                  file=sys.stderr)
            return None
        return Blocklist(result.acts)
    try:
        return read_blocklist(orders=args.orders, redis_url=args.redis, prefix=args.prefix,
                              limits=ip_limits(args),
                              tz=tz)
    except SourceError as e:
        raise UsageError(str(e)) from None
    except InvalidOrdersError as e:
        for line in e.errors:
            print(line, file=sys.stderr)
        print(f"writ: {len(e.errors)} error(s) in the orders; {nothing}", file=sys.stderr)
        return None


def _verified_published(args: argparse.Namespace, nothing: str,
                        trust: OrderTrust) -> Blocklist | None:
    """--redis with a keyring: the live set only if its signed manifest holds as it
    must for a node with that keyring (docs/auditor.md "Signed sets")."""
    from writ.blocklist.stores import PublishedError, SetRefusedError, read_published

    try:
        return read_published(args.redis, args.prefix, trust.keyring)
    except SetRefusedError as e:
        print(f"writ: {e}; {nothing}", file=sys.stderr)
        return None
    except PublishedError as e:
        raise UsageError(str(e)) from None


def ip_limits(args: argparse.Namespace) -> IpLimits | None:
    """The `ip:` limits (the address collateral guard) of `--policy FILE`, or
    None (the defaults)."""
    path: Path | None = getattr(args, "policy", None)
    if path is None:
        return None
    from writ.policies import PolicyError, load_policy

    try:
        return load_policy(path).ip.limits()
    except PolicyError as e:
        raise UsageError("invalid policy:\n" + "\n".join(e.errors)) from None
