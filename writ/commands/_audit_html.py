"""`writ audit report --html OUT FILE…`: the document, written atomically.

The act set comes from `--orders DIR` or `--redis URL` (the published
version, plus its publish history for the switch lags); both are read here,
once, and handed to writ.audit.htmlreport as values.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from writ.commands._common import UsageError

__all__ = ["add_arguments", "refuse_without_html", "run_html"]

_HTML_ONLY = ("orders", "redis", "checkpoints", "public_key", "silent_after")
_HTML_SWITCHES = ("live", "stamp")

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?$")
_UNIT = {None: 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def add_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("--html", type=Path, metavar="OUT",
                   help="write the auditor's document (one self-contained HTML file) here")
    src = r.add_mutually_exclusive_group()
    src.add_argument("--orders", type=Path, metavar="DIR",
                     help="(--html) the order set, to find decisions outside an order's window")
    src.add_argument("--redis", metavar="URL",
                     help="(--html) the published order set and its publish history")
    r.add_argument("--prefix", default="writ", help="Redis key prefix (with --redis)")
    r.add_argument("--tz", default="UTC",
                   help="(--html, --orders) time zone of dates without one (the policy's)")
    r.add_argument("--checkpoints", type=Path, metavar="FILE",
                   help="(--html) signed checkpoints, as for `writ audit verify`")
    r.add_argument("--public-key", type=Path, metavar="KEY",
                   help="(--html) the nodes' checkpoint public key")
    r.add_argument("--live", action="store_true",
                   help="(--html) accept an unsealed last file per node (still being written)")
    r.add_argument("--silent-after", metavar="DURATION",
                   help="(--html) a node without any record for longer is silent "
                        "(e.g. 90s, 15m, 1h, 2d; default 1h)")
    r.add_argument("--stamp", action="store_true",
                   help="(--html) print the time of rendering (the bytes then differ per run)")


def refuse_without_html(args: argparse.Namespace) -> None:
    """The document's flags mean nothing to the text report: say so, do not ignore them."""
    used = [f for f in _HTML_ONLY if getattr(args, f) is not None]
    used += [f for f in _HTML_SWITCHES if getattr(args, f)]
    if used:
        flags = ", ".join("--" + f.replace("_", "-") for f in used)
        raise UsageError(f"{flags}: only with --html OUT (the auditor's document)")


def _duration(text: str) -> float:
    m = _DURATION.match(text.strip())
    if m is None or float(m.group(1)) <= 0:
        raise UsageError(f"--silent-after: not a duration: {text!r} (e.g. 90s, 15m, 1h, 2d)")
    return float(m.group(1)) * _UNIT[m.group(2)]


def run_html(args: argparse.Namespace) -> int:
    from writ.audit.htmlreport import gather, render

    for flag in ("order", "since", "until", "component"):
        if getattr(args, flag) is not None:
            raise UsageError(f"--{flag} does not go with --html: the document covers every "
                             f"order, node and component of the files given")
    if args.json or args.csv:
        raise UsageError("--html, --json and --csv are different outputs: choose one")
    silent_after = _duration(args.silent_after or "1h")
    checkpoints, key = _checkpoints(args)
    acts, source, publishes = _order_set(args)
    out: Path = args.html
    if out.parent and not out.parent.is_dir():
        raise UsageError(f"--html: no such folder: {out.parent}")
    stamp = datetime.now(UTC).isoformat(timespec="seconds") if args.stamp else None
    try:
        doc = gather(args.files, acts=acts, source=source, publishes=publishes,
                     checkpoints=checkpoints, public_key=key,
                     checkpoint_file=str(args.checkpoints), live=args.live,
                     silent_after=silent_after, stamp=stamp)
    except OSError as e:  # a file vanished or became unreadable while being read
        raise UsageError(f"{e.filename or 'a log file'}: {e.strerror or e}") from None
    page = render(doc).encode("utf-8")
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_bytes(page)
        os.replace(tmp, out)
    except OSError as e:
        raise UsageError(f"--html: {out}: {e.strerror or e}") from None
    bad = [n for n, r in doc.verdicts.items() if not r.ok]
    print(f"wrote {out} ({len(page):,} bytes): {len(doc.scans)} node(s), "
          f"{sum(s.decisions for s in doc.scans):,} decisions; verification "
          + (f"FAILED for {', '.join(bad)}" if bad else "intact")
          + f"; {sum(f.count for f in doc.outside):,} decision(s) outside an order's window"
          + ("" if doc.windows is not None else " (not checked: no order set)"),
          file=sys.stderr)
    return 1 if bad else 0


def _checkpoints(args: argparse.Namespace) -> tuple[Any, Any]:
    from writ.audit.checkpoint import CheckpointReadError, load_public_key, read_checkpoints

    if (args.checkpoints is None) != (args.public_key is None):
        raise UsageError("--checkpoints and --public-key go together")
    if args.checkpoints is None:
        return None, None
    try:
        key = load_public_key(args.public_key)
    except (OSError, ValueError, TypeError) as e:
        raise UsageError(f"--public-key: {args.public_key}: {e}") from None
    try:
        return list(read_checkpoints(args.checkpoints)), key
    except OSError as e:
        raise UsageError(f"--checkpoints: {args.checkpoints}: {e.strerror or e}") from None
    except CheckpointReadError as e:
        raise UsageError(f"--checkpoints: {e}") from None


def _order_set(args: argparse.Namespace) -> tuple[Any, str | None, list[Any]]:
    from writ.blocklist.stores import InvalidOrdersError, SourceError, read_blocklist

    if args.orders is None and args.redis is None:
        return None, None, []
    try:
        bl = read_blocklist(orders=args.orders, redis_url=args.redis, prefix=args.prefix,
                            tz=args.tz)
    except SourceError as e:
        raise UsageError(str(e)) from None
    except InvalidOrdersError as e:
        raise UsageError(f"--orders: {len(e.errors)} error(s) in {args.orders}:\n"
                         + "\n".join(str(x) for x in e.errors)) from None
    if args.redis is None:
        return bl.acts, f"the folder {args.orders} (version {bl.version})", []
    from writ.blocklist.stores.connection import redact

    publishes = asyncio.run(_history(args.redis, args.prefix))
    return (bl.acts, f"the version published at {redact(args.redis)} ({bl.version}); "
                     f"{len(publishes)} publish(es) in its history", publishes)


async def _history(url: str, prefix: str) -> list[Any]:
    from redis.exceptions import RedisError

    from writ.audit.htmlreport import Publish
    from writ.audit.record import format_ts
    from writ.blocklist.stores.connection import connect, redact
    from writ.blocklist.stores.registry import Registry

    client = connect(url)
    try:
        entries = await Registry(client, prefix).history(limit=10_000)
    except (RedisError, OSError) as e:
        raise UsageError(f"cannot read the publish history at {redact(url)}: {e}") from None
    finally:
        await client.aclose()
    out = []
    for entry in entries:
        try:
            at = datetime.fromisoformat(str(entry["at"]).replace("Z", "+00:00"))
            at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
            out.append(Publish(str(entry["version"]), format_ts(at.timestamp()),
                               str(entry.get("action", "apply")), str(entry.get("by", ""))))
        except (KeyError, ValueError, TypeError):
            continue  # an entry another tool wrote: not a publish we can place
    return out
