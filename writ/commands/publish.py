"""`writ orders apply|diff|history|rollback`: publishing through Redis.

Invariants:
- An invalid order set is never published: apply validates first and leaves
  the live version untouched on any error.
- apply writes the new version whole, then moves the pointer by
  compare-and-set, then notifies; a concurrent publisher makes it fail
  cleanly (exit 1, nothing switched, its own unused version removed).
- Same orders → same version id → "no change", nothing written.
- Exit codes: 0 done (or nothing to do), 1 refused / unreachable / lost a
  race / unknown version, 2 bad invocation.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.exceptions import RedisError

from writ.blocklist import Blocklist
from writ.blocklist.ipcount import address_changes, rules_in_force_ip
from writ.blocklist.stores import (
    ConflictError,
    Registry,
    VersionError,
    act_changes,
    connect,
    redact,
    rule_changes,
)
from writ.blocklist.stores.publishing import publish, rollback
from writ.commands._common import UsageError, load_folder, parse_instant
from writ.commands._ipreport import ip_limits

__all__ = ["configure_verb", "run_verb"]


def configure_verb(verb: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("--redis", metavar="URL", default=os.environ.get("WRIT_REDIS"),
                   help="redis://, rediss:// or redis+sentinel:// URL (default: $WRIT_REDIS)")
    p.add_argument("--prefix", default="writ", help="key prefix (default: writ)")
    if verb in ("apply", "diff"):
        p.add_argument("dir", nargs="?", type=Path, default=Path("court_orders"),
                       metavar="DIR", help="the orders folder (default: court_orders)")
        p.add_argument("--tz", default="UTC",
                       help="time zone for bare dates in the orders (default: UTC)")
    if verb in ("apply", "rollback"):
        p.add_argument("--by", help="who publishes (default: user@host)")
        p.add_argument("--keep", type=int, default=10, help="versions kept (default: 10)")
    if verb == "diff":
        p.add_argument("--at", metavar="TIME", help="judge rules at this instant (default: now)")
    if verb == "history":
        p.add_argument("-n", "--limit", type=int, default=20, help="entries (default: 20)")
        p.add_argument("--json", action="store_true", help="one JSON object a line")
    if verb == "rollback":
        p.add_argument("version", metavar="VERSION", help="a kept version id (or a unique prefix)")


def run_verb(verb: str, args: argparse.Namespace) -> int:
    if not args.redis:
        raise UsageError(f"orders {verb}: --redis URL is required (or set WRIT_REDIS)")
    try:
        connect(args.redis)
    except ValueError as e:
        raise UsageError(f"--redis: {e}") from None
    fn = {"apply": _apply, "diff": _diff, "history": _history, "rollback": _rollback}[verb]
    try:
        return asyncio.run(fn(args))
    except (RedisError, OSError) as e:
        changed = "; nothing was changed" if verb in ("apply", "rollback") else ""
        _err(verb, f"cannot reach Redis at {redact(args.redis)}: {str(e).rstrip('.')}{changed}")
        return 1
    except VersionError as e:
        _err(verb, str(e))
        return 1


def _err(verb: str, message: str) -> None:
    print(f"writ orders {verb}: {message}", file=sys.stderr)


def _by(args: argparse.Namespace) -> str:
    return str(args.by) if args.by else f"{getpass.getuser()}@{socket.gethostname()}"


def _load(args: argparse.Namespace, verb: str) -> Blocklist | None:
    result = load_folder(verb, args.dir, args.tz, limits=ip_limits(args))
    if result.errors:
        for e in result.errors:
            print(e, file=sys.stderr)
        _err(verb, f"{len(result.errors)} error(s) in {args.dir}; nothing was published")
        return None
    return Blocklist(result.acts)


@contextlib.asynccontextmanager
async def _registry(args: argparse.Namespace) -> AsyncIterator[Registry]:
    """The registry under --redis/--prefix; its client is closed on the way out
    (a close that fails on a dead Redis is no error of the verb's)."""
    client = connect(args.redis)
    try:
        yield Registry(client, args.prefix)
    finally:
        with contextlib.suppress(RedisError, OSError):
            await client.aclose()


async def _live(registry: Registry) -> Blocklist | None:
    vid = await registry.current()
    if vid is None:
        return None
    try:
        return await registry.load(vid)
    except VersionError as e:
        _err("diff", f"warning: the live version is unusable ({e}); comparing with nothing")
        return None


def _summary(e: dict[str, Any]) -> str:
    parts = [f"{e.get('acts', '?')} acts, {e.get('rules', '?')} rules"]
    for key, sign in (("added", "+"), ("removed", "-"), ("changed", "~")):
        if e.get(key):
            parts.append(f"{key} {', '.join(sign + str(i) for i in e[key])}")
    return "; ".join(parts)


async def _apply(args: argparse.Namespace) -> int:
    new = _load(args, "apply")
    if new is None:
        return 1
    async with _registry(args) as registry:
        try:
            done = await publish(registry, new, by=_by(args), keep=args.keep)
        except ConflictError as e:
            _err("apply", f"{e}; review `writ orders diff` and apply again")
            return 1
    if done.unchanged:
        print(f"no change: version {new.version} is already live ({len(new.acts)} acts)")
        return 0
    if done.previous_unusable:
        _err("apply", f"warning: the previous live version was unusable: "
                      f"{done.previous_unusable}")
    print(f"published version {done.version} (previous: {done.previous or 'none'}): "
          f"{_summary(done.entry)}")
    if done.pruned:
        print(f"removed old versions: {', '.join(done.pruned)}")
    return 0


async def _diff(args: argparse.Namespace) -> int:
    new = _load(args, "diff")
    if new is None:
        return 1
    at = parse_instant(args.at) if args.at else datetime.now(UTC)
    async with _registry(args) as registry:
        old = await _live(registry)
    print(f"live: {old.version if old else 'none'}  →  {args.dir}: {new.version}")
    if old is not None and old.version == new.version:
        print("no change")
        return 0
    acts = act_changes(old.acts if old else (), new.acts)
    for label, ids in (("acts added", acts.added), ("acts removed", acts.removed),
                       ("acts changed", acts.changed)):
        if ids:
            print(f"{label}: {', '.join(ids)}")
    rules = rule_changes(old.acts if old else (), new.acts, at)
    print(f"at {at.isoformat()}: {len(rules.blocked)} newly blocked, "
          f"{len(rules.released)} released")
    addresses = address_changes(rules_in_force_ip(old.acts if old else (), at),
                                rules_in_force_ip(new.acts, at))
    if addresses.added.ipv4 or addresses.added.ipv6 or addresses.lifted.ipv4 \
            or addresses.lifted.ipv6:
        print(f"addresses: +{addresses.added} blocked, -{addresses.lifted} lifted")
    for r in rules.blocked:
        print(f"  + {r}")
    for r in rules.released:
        print(f"  - {r}")
    return 0


async def _history(args: argparse.Namespace) -> int:
    async with _registry(args) as registry:
        entries = await registry.history(args.limit)
        live = await registry.current()
        kept = set(await registry.kept())
    if not entries:
        print(f"nothing published under {registry.keys.current}")
        return 0
    for e in entries:
        v = str(e.get("version"))
        if args.json:
            print(json.dumps({**e, "live": v == live, "kept": v in kept}))
            continue
        mark = "*" if v == live else ("-" if v in kept else "x")
        print(f"{mark} {e.get('at', '?')}  {e.get('action', '?'):8} {v}  by {e.get('by', '?')}"
              f"  {_summary(e)}")
    if not args.json:
        print("(* live, - kept, x removed)", file=sys.stderr)
    return 0


async def _rollback(args: argparse.Namespace) -> int:
    async with _registry(args) as registry:
        kept = await registry.kept()
        matches = [v for v in kept if v.startswith(args.version)]
        if len(matches) != 1:
            why = "is ambiguous" if matches else "is not a kept version"
            _err("rollback", f"{args.version} {why}; kept: {', '.join(kept) or 'none'}")
            return 1
        try:
            done = await rollback(registry, matches[0], by=_by(args), keep=args.keep)
        except ConflictError as e:
            _err("rollback", str(e))
            return 1
    if done.unchanged:
        print(f"no change: version {done.version} is already live")
        return 0
    print(f"rolled back to version {done.version} (was {done.previous}): "
          f"{_summary(done.entry)}")
    return 0
