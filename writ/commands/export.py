"""`writ export rpz (--orders DIR | --redis URL) [--at TIME] [--origin NAME] [-o FILE]`.

Writes the domain blocks in force at one instant as an RPZ zone for BIND or
Unbound. The zone is a snapshot: blocks that start or end later need a new
export (e.g. from cron), unlike a writ node, which switches by itself.

With --keyring FILE (or --policy FILE naming trust.keyring) the source is
checked as a writ node with that keyring checks it: a folder's signatures, or
the published set's signed manifest; a source that fails exports nothing.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from writ.blocklist import fold
from writ.commands._common import UsageError, parse_instant, source_blocklist
from writ.commands._trust import add_trust_args, order_trust
from writ.export import RpzAction, RpzOptions, render_rpz

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    rpz = sub.add_parser("rpz", help="the domain blocks as an RPZ zone (BIND, Unbound)",
                         description="Write the domain blocks in force as an RPZ zone file.")
    src = rpz.add_mutually_exclusive_group()
    src.add_argument("--orders", type=Path, metavar="DIR",
                     help="compile this folder of orders (default: court_orders)")
    src.add_argument("--redis", metavar="URL", help="export the version published in Redis")
    rpz.add_argument("--prefix", default="writ", help="Redis key prefix (with --redis)")
    rpz.add_argument("--timezone", default="UTC",
                     help="IANA time zone for bare dates in the orders (default: UTC)")
    rpz.add_argument("--at", metavar="TIME", help="the instant to export (default: now)")
    rpz.add_argument("--origin", default="rpz.writ.", help="zone name (default: rpz.writ.)")
    rpz.add_argument("--ttl", type=int, default=60, help="record TTL in seconds (default: 60)")
    rpz.add_argument("--serial", type=int, help="SOA serial (default: the instant, Unix time)")
    rpz.add_argument("--action", choices=[a.value for a in RpzAction], default="nxdomain",
                     help="answer for blocked names (default: nxdomain)")
    rpz.add_argument("--sinkhole", action="append", default=[], metavar="ADDR",
                     help="block-page address for --action sinkhole (repeatable, A or AAAA)")
    rpz.add_argument("-o", "--output", type=Path, metavar="FILE",
                     help="write the zone here (atomically) instead of stdout")
    add_trust_args(rpz)


def _options(args: argparse.Namespace) -> RpzOptions:
    origin = args.origin if args.origin.endswith(".") else args.origin + "."
    labels = origin[:-1].split(".")
    if not origin[:-1] or any(not 0 < len(label) < 64 for label in labels):
        raise UsageError(f"--origin: not a zone name: {args.origin!r}")
    if not 0 <= args.ttl <= 2**31 - 1:
        raise UsageError("--ttl: must be between 0 and 2147483647")
    if args.serial is not None and not 0 <= args.serial < 2**32:
        raise UsageError("--serial: must be between 0 and 4294967295")
    try:
        ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--timezone: unknown time zone {args.timezone!r}") from None
    action = RpzAction(args.action)
    sinkhole: list[str] = []
    for a in args.sinkhole:
        try:
            sinkhole.append(str(ipaddress.ip_address(a)))
        except ValueError:
            raise UsageError(f"--sinkhole: not an IP address: {a!r}") from None
    if action is RpzAction.SINKHOLE and not sinkhole:
        raise UsageError("--action sinkhole needs at least one --sinkhole ADDR")
    if sinkhole and action is not RpzAction.SINKHOLE:
        raise UsageError("--sinkhole only goes with --action sinkhole")
    return RpzOptions(origin=origin, ttl=args.ttl, serial=args.serial, action=action,
                      sinkhole=tuple(sinkhole))


def _write_atomically(path: Path, text: str) -> None:
    """A resolver reloading the zone never sees half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    options = _options(args)
    at = parse_instant(args.at) if args.at else datetime.now(UTC)
    blocklist = source_blocklist(args, "nothing exported", tz=args.timezone,
                                 trust=order_trust(args))
    if blocklist is None:
        return 1
    zone = render_rpz(fold(blocklist.acts, at), blocklist.version, options, blocklist.by_id)
    if args.output is None:
        sys.stdout.write(zone)
        return 0
    try:
        _write_atomically(args.output, zone)
    except OSError as e:
        raise UsageError(f"-o: cannot write {args.output}: {e.strerror or e}") from None
    return 0
