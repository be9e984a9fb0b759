"""`writ orders apply|diff|history|rollback`: publishing through Redis.

Invariants:
- An invalid order set is never published: apply validates first and leaves
  the live version untouched on any error.
- apply reads the live version (its base) *before* it validates, and switches
  only if that is still live (compare-and-set): an apply never silently drops
  an act another publisher put live while it worked. `--expect VERSION` binds
  the base to the one a person reviewed with `writ orders diff`.
- apply writes the new version whole, then moves the pointer by
  compare-and-set, then notifies; a concurrent publisher makes it fail
  cleanly (exit 1, nothing switched, its own unused version removed).
- Same orders → same version id → "no change", nothing written — unless the
  live version's stored blob is missing or corrupt: then it is republished.
- "nothing was changed" is only ever said when it is known. Once the switch
  was sent, an error is ambiguous: the pointer is read back and the message
  says what is live, or that it cannot be known (exit 3).
- A closed stdout after a publish is no Redis error: the report goes to stderr.
- Exit codes (docs/regulator.md): 0 done (or nothing to do), 1 refused /
  unreachable / lost a race / unknown version — nothing was changed, 2 bad
  invocation, 3 the outcome of a switch was not confirmed (the message says
  what was read back).
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
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from writ.blocklist import Blocklist
from writ.blocklist.ipcount import address_changes, rules_in_force_ip
from writ.blocklist.stores import (
    ConflictError,
    Published,
    Registry,
    SwitchUncertainError,
    VersionError,
    act_changes,
    connect,
    publish,
    redact,
    renew,
    repair,
    rollback,
    rule_changes,
)
from writ.commands._common import (
    UsageError,
    check_folder_args,
    ip_limits,
    load_folder,
    parse_instant,
)

if TYPE_CHECKING:
    from writ.blocklist.stores.signedset import SetSigner

__all__ = ["EXIT_UNCONFIRMED", "configure_verb", "run_verb"]

EXIT_UNCONFIRMED = 3  # a switch was sent and its outcome could not be confirmed
READ_BACK_TRIES = 4


def configure_verb(verb: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("--redis", metavar="URL", default=os.environ.get("WRIT_REDIS"),
                   help="redis://, rediss:// or redis+sentinel:// URL (default: $WRIT_REDIS)")
    p.add_argument("--prefix", default="writ", help="key prefix (default: writ)")
    p.add_argument("--timeout", type=float, default=15.0, metavar="SECONDS",
                   help="how long to wait for one Redis reply (default: 15)")
    if verb in ("apply", "diff"):
        p.add_argument("dir", nargs="?", type=Path, default=Path("court_orders"),
                       metavar="DIR", help="the orders folder (default: court_orders)")
        p.add_argument("--tz", default="UTC",
                       help="time zone for bare dates in the orders (default: UTC)")
    if verb == "apply":
        p.add_argument("--expect", metavar="VERSION",
                       help="publish only if VERSION (as printed by `writ orders diff`; "
                            "'none' for nothing published) is still live")
        p.add_argument("--allow-removals", action="store_true",
                       help="publish even an empty set, or one removing more acts than "
                            "the policy's publish.max_removed_acts")
        p.add_argument("--policy", type=Path, metavar="FILE",
                       help="policy file: publish.max_removed_acts (default: built-in) and "
                            "trust.keyring (signatures required when it names one)")
    if verb in ("apply", "diff"):
        from writ.commands._trust import add_trust_args

        add_trust_args(p, policy_flag=verb != "apply")
    if verb == "rollback":
        from writ.commands._trust import add_trust_args

        add_trust_args(p)
    if verb in ("apply", "rollback"):
        from writ.commands._publisher import add_publisher_args

        add_publisher_args(p)
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
    if verb in ("apply", "diff"):
        check_folder_args(verb, args.dir, args.tz)
    if not 0 < args.timeout <= 3600:
        raise UsageError(f"--timeout: {args.timeout}: give seconds between 0 and 3600")
    try:
        connect(args.redis)
    except ValueError as e:
        raise UsageError(f"--redis: {e}") from None
    fn = {"apply": _apply, "diff": _diff, "history": _history, "rollback": _rollback}[verb]
    try:
        return asyncio.run(fn(args))
    except SwitchUncertainError as e:
        return asyncio.run(_read_back(verb, args, e))
    except (RedisError, OSError) as e:
        changed = "; nothing was changed" if verb in ("apply", "rollback") else ""
        _err(verb, f"cannot reach Redis at {redact(args.redis)}: {str(e).rstrip('.')}{changed}")
        return 1
    except VersionError as e:
        _err(verb, str(e))
        return 1


async def _read_back(verb: str, args: argparse.Namespace, e: SwitchUncertainError) -> int:
    """After an ambiguous switch: read the pointer back and say what is live."""
    why = f"{e}"
    for attempt in range(READ_BACK_TRIES):
        if attempt:
            await asyncio.sleep(0.5)
        try:
            async with _registry(args) as registry:
                live = await registry.current()
        except (RedisError, OSError) as err:
            why = f"{e}; reading it back: {str(err).rstrip('.') or type(err).__name__}"
            continue
        if live == e.version:
            _err(verb, f"{e}, but read back afterwards: version {live} is live "
                       f"(the switch went through; see `writ orders history`)")
        else:
            _err(verb, f"{e}; read back afterwards: version {live or 'none'} is live, "
                       f"not {e.version} (expected {e.expected or 'none'}); check "
                       f"`writ orders history` before trying again")
        return EXIT_UNCONFIRMED
    _err(verb, f"{why}; what is live cannot be known now: Redis at {redact(args.redis)} does "
               f"not answer, and it may still run the switch; check `writ orders history` "
               f"once it answers")
    return EXIT_UNCONFIRMED


def _say(text: str) -> None:
    """A line of the report on stdout; if stdout is closed, on stderr (the outcome
    must reach someone: it is not a Redis error)."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # Python's advice: point stdout at devnull so the exit flush does not fail too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        with contextlib.suppress(OSError):
            print(f"{text} (stdout was closed)", file=sys.stderr, flush=True)


def _err(verb: str, message: str) -> None:
    print(f"writ orders {verb}: {message}", file=sys.stderr)


def _by(args: argparse.Namespace) -> str:
    return str(args.by) if args.by else f"{getpass.getuser()}@{socket.gethostname()}"


def _load(args: argparse.Namespace, verb: str) -> Blocklist | None:
    from writ.commands._trust import order_trust

    result = load_folder(verb, args.dir, args.tz, order_trust(args), ip_limits(args))
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
    client = connect(args.redis, connect_timeout=min(args.timeout, 2.0),
                     read_timeout=args.timeout)
    try:
        yield Registry(client, args.prefix)
    finally:
        with contextlib.suppress(RedisError, OSError):
            await client.aclose()


async def _live(registry: Registry, vid: str | None) -> Blocklist | None:
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
    if e.get("manifest"):
        parts.append(f"signed manifest {e['manifest']}")
    return "; ".join(parts)


async def _apply(args: argparse.Namespace) -> int:
    from writ.commands._publisher import publisher_from_args

    max_removed = _max_removed(args)
    signer = publisher_from_args(args)
    async with _registry(args) as registry:
        base = await registry.current()  # before validating: see the invariants above
        if args.expect is not None and not _is(base, args.expect):
            _err("apply", f"the live version moved: it is {base or 'none'}, the diff you "
                          f"reviewed was against {args.expect}; nothing was changed — run "
                          f"`writ orders diff` again")
            return 1
        new = _load(args, "apply")
        if new is None:
            return 1
        if base is not None and base == new.version:
            return await _same_as_live(registry, new, args, signer)
        live = await _live_for_apply(registry, base)
        refused = None if base is None or args.allow_removals else _too_many_removals(
            live, new, max_removed)
        if refused:
            _err("apply", f"{refused}; nothing was changed — check the folder, or give "
                          f"--allow-removals if this is meant")
        if refused or (signer is None and await _unsigned_refused("apply", registry)):
            return 1
        try:
            done = await publish(registry, new, by=_by(args), keep=args.keep, expected=base,
                                 signer=signer)
        except ConflictError as e:
            _err("apply", f"{e}; review `writ orders diff` and apply again")
            return 1
    _report(done, new)
    return 0


def _report(done: Published, new: Blocklist) -> None:
    if done.unchanged:
        _say(f"no change: version {new.version} is already live ({len(new.acts)} acts)")
        return
    if done.previous_unusable:
        _err("apply", f"warning: the previous live version was unusable: "
                      f"{done.previous_unusable}")
    _say(f"published version {done.version} (previous: {done.previous or 'none'}): "
         f"{_summary(done.entry)}")
    if done.pruned:
        _say(f"removed old versions: {', '.join(done.pruned)}")
    _say_manifest(done)


async def _unsigned_refused(verb: str, registry: Registry) -> bool:
    """Once sets are signed, an unsigned switch would be refused by every node
    with a keyring: refuse it here instead (docs/regulator.md §9)."""
    current = await registry.manifest()
    if current is None:
        return False
    _err(verb, f"a signed manifest (sequence {current[2]}) is in force under "
               f"{registry.keys.manifest}: give --publisher-key KEY (or the policy's "
               f"trust.publisher_key); nodes with a keyring would refuse an unsigned "
               f"version; nothing was changed")
    return True


def _say_manifest(done: Published) -> None:
    if done.manifest is not None:
        from writ.commands._publisher import manifest_line

        _say(manifest_line(done.manifest.data))


def _is(version: str | None, expect: str) -> bool:
    """`--expect`: the full id, a prefix of 8+ characters, or 'none'."""
    if expect == "none":
        return version is None
    return version is not None and len(expect) >= 8 and version.startswith(expect)


def _max_removed(args: argparse.Namespace) -> int:
    from writ.policies import PolicyError, load_policy

    if args.policy is None:
        from writ.policies import PublishPolicy

        return PublishPolicy().max_removed_acts
    try:
        return load_policy(args.policy).publish.max_removed_acts
    except PolicyError as e:
        raise UsageError("--policy:\n" + "\n".join(e.errors)) from None


def _too_many_removals(live: Blocklist | None, new: Blocklist, limit: int) -> str | None:
    """Why publishing `new` over `live` (None: live but unreadable) needs
    --allow-removals; None when it does not."""
    if live is None:  # what it holds is unknown: only an empty set is plainly too much
        return ("the folder holds no act, and the live version cannot be read to say what "
                "that would lift") if not new.acts else None
    if live.acts and not new.acts:
        return (f"the folder holds no act: publishing it would lift all {len(live.acts)} "
                f"acts of the live version {live.version}")
    removed = act_changes(live.acts, new.acts).removed
    if len(removed) > limit:
        return (f"{len(removed)} acts would be removed from the live version (more than "
                f"publish.max_removed_acts = {limit}): {', '.join(removed[:10])}"
                f"{', …' if len(removed) > 10 else ''}")
    return None


async def _live_for_apply(registry: Registry, base: str | None) -> Blocklist | None:
    """The live version for the removal check; None when nothing or unusable."""
    if base is None:
        return None
    try:
        return await registry.load(base)
    except VersionError:
        return None  # publish() says why, or _same_as_live repairs it


async def _same_as_live(registry: Registry, new: Blocklist, args: argparse.Namespace,
                        signer: SetSigner | None = None) -> int:
    """The folder is the live version: check its stored blob, republish it if bad;
    with a publisher key, sign a fresh manifest over it (renew: no freeze)."""
    problem = await registry.problem(new.version)
    if problem is None:
        _say(f"no change: version {new.version} is already live ({len(new.acts)} acts)")
        if signer is not None:
            done = await renew(registry, new.version, by=_by(args), signer=signer,
                               keep=args.keep)
            _say_manifest(done)
        return 0
    if await repair(registry, new, by=_by(args)):
        if signer is not None:
            _say_manifest(await renew(registry, new.version, by=_by(args), signer=signer,
                                      keep=args.keep))
        _say(f"repaired: {problem}; republished version {new.version} from the folder "
             f"({len(new.acts)} acts) and notified the nodes")
        return 0
    _say(f"no change: version {new.version} is already live ({len(new.acts)} acts; "
         f"repaired meanwhile by someone else)")
    return 0


async def _diff(args: argparse.Namespace) -> int:
    new = _load(args, "diff")
    if new is None:
        return 1
    at = parse_instant(args.at) if args.at else datetime.now(UTC)
    async with _registry(args) as registry:
        vid = await registry.current()
        old = await _live(registry, vid)
    live = vid or "none"
    print(f"live: {live}  →  {args.dir}: {new.version}")
    if old is not None and old.version == new.version:
        print("no change")
        return 0
    print(f"to publish exactly this change: writ orders apply {args.dir} --expect {live}")
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
    from writ.commands._publisher import publisher_from_args

    signer = publisher_from_args(args)
    async with _registry(args) as registry:
        kept = await registry.kept()
        matches = [v for v in kept if v.startswith(args.version)]
        if len(matches) != 1:
            why = "is ambiguous" if matches else "is not a kept version"
            _err("rollback", f"{args.version} {why}; kept: {', '.join(kept) or 'none'}")
            return 1
        if signer is None and await _unsigned_refused("rollback", registry):
            return 1
        try:
            done = await rollback(registry, matches[0], by=_by(args), keep=args.keep,
                                  signer=signer)
        except ConflictError as e:
            _err("rollback", str(e))
            return 1
    if done.unchanged:
        _say(f"no change: version {done.version} is already live")
        return 0
    _say(f"rolled back to version {done.version} (was {done.previous}): "
          f"{_summary(done.entry)}")
    _say_manifest(done)
    return 0
