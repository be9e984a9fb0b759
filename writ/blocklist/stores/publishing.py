"""Publishing and rolling back, as the CLI, tests and benchmarks do it.

Order of operations (each step only after the previous one succeeded):
1. read the pointer (the version the caller builds on),
2. write the new version whole, with its checksum and a delta from that one,
3. compare-and-set the pointer, append history, notify, prune — one Lua script,
4. on a lost race, remove the version this caller wrote and raise ConflictError.
The caller reads the pointer (step 1) *before* it validates and compiles the
orders and passes it as `expected`: the compare-and-set then guards the whole
time the caller worked on that base, not just the last milliseconds. An
invalid set never reaches step 2.

A network error once the switch was sent (step 3) is ambiguous: Redis may have
run it. It is raised as SwitchUncertainError, never as a plain RedisError, so
the caller reads the pointer back instead of saying "nothing was changed".
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from writ.blocklist.holder import Blocklist
from writ.blocklist.stores.blob import VersionError, encode_acts
from writ.blocklist.stores.changes import act_changes
from writ.blocklist.stores.registry import ConflictError, Registry, SignedSet, Switched

if TYPE_CHECKING:
    from writ.blocklist.stores.signedset import SetSigner

__all__ = ["Published", "SwitchUncertainError", "history_entry", "publish", "renew", "repair",
           "rollback"]

_UNSET: Any = object()


class SwitchUncertainError(Exception):
    """The switch to `version` was sent but no answer came: it may have run."""

    def __init__(self, version: str, expected: str | None, cause: BaseException) -> None:
        super().__init__(f"no answer to the switch to version {version}: "
                         f"{str(cause).rstrip('.') or type(cause).__name__}")
        self.version, self.expected, self.cause = version, expected, cause


@dataclass(frozen=True, slots=True)
class Published:
    version: str
    previous: str | None
    entry: dict[str, Any]  # the history entry (empty when unchanged)
    pruned: tuple[str, ...] = ()
    unchanged: bool = False
    previous_unusable: str | None = None  # why the live version could not be compared
    manifest: SignedSet | None = None  # the signed manifest written with the switch


def history_entry(action: str, new: Blocklist, old: Blocklist | None, by: str,
                  now: datetime) -> dict[str, Any]:
    ch = act_changes(old.acts if old else (), new.acts)
    return {"action": action, "version": new.version, "previous": old.version if old else None,
            "by": by, "at": now.isoformat(timespec="seconds"), "acts": len(new.acts),
            "rules": len(new), "added": list(ch.added), "removed": list(ch.removed),
            "changed": list(ch.changed)}


async def _previous(registry: Registry, vid: str | None) -> tuple[Blocklist | None, str | None]:
    # A corrupt live version must not stop a regulator from publishing a good one
    # over it: compare with nothing (no delta) and say why.
    if vid is None:
        return None, None
    try:
        return await registry.load(vid), None
    except VersionError as e:
        return None, str(e)


async def publish(registry: Registry, new: Blocklist, *, by: str, keep: int = 10,
                  expected: str | None = _UNSET, now: datetime | None = None,
                  signer: SetSigner | None = None) -> Published:
    """Publish `new`. `expected` (default: the pointer as read now) is the version
    the caller built on. With `signer`, a signed manifest is written with the
    switch (and an unchanged set gets a fresh one: `renew`). Raises
    ConflictError, VersionError, RedisError."""
    now = now or datetime.now(UTC)
    if expected is _UNSET:
        expected = await registry.current()
    if expected == new.version:
        if signer is not None:
            return await renew(registry, new.version, by=by, keep=keep, now=now, signer=signer)
        return Published(new.version, expected, {}, unchanged=True)
    old, why = await _previous(registry, expected)
    entry = history_entry("apply", new, old, by, now)
    encoded = await asyncio.to_thread(encode_acts, new.acts)
    meta = {k: entry[k] for k in ("version", "by", "at", "acts", "rules")}
    written = await registry.put(new, encoded, meta, old)
    try:
        signed = await _signed(registry, new.version, signer, entry, now)
        sw = await _switch(registry, new.version, expected, entry=entry, keep=keep, now=now,
                           signed=signed)
    except (ConflictError, VersionError):
        if written:
            await registry.discard(new.version)
        raise
    return Published(new.version, sw.previous, entry, sw.pruned, previous_unusable=why,
                     manifest=signed)


async def rollback(registry: Registry, version: str, *, by: str, keep: int = 10,
                   now: datetime | None = None, signer: SetSigner | None = None) -> Published:
    """Switch back to a kept version (verified first). Raises VersionError when it is
    not kept or unusable, ConflictError, RedisError. With `signer`: a new manifest,
    with the next sequence, over the older content (never the old manifest again)."""
    now = now or datetime.now(UTC)
    target = await registry.load(version)
    expected = await registry.current()
    if expected == target.version:
        return Published(target.version, expected, {}, unchanged=True)
    old, why = await _previous(registry, expected)
    entry = history_entry("rollback", target, old, by, now)
    signed = await _signed(registry, target.version, signer, entry, now)
    sw = await _switch(registry, target.version, expected, entry=entry, keep=keep,
                       now=now, signed=signed)
    return Published(target.version, sw.previous, entry, sw.pruned, previous_unusable=why,
                     manifest=signed)


async def renew(registry: Registry, version: str, *, by: str, signer: SetSigner,
                keep: int = 10, now: datetime | None = None) -> Published:
    """Sign a fresh manifest (next sequence, new expiry) over the live version
    `version`: how a publisher keeps an unchanged set from expiring."""
    now = now or datetime.now(UTC)
    live = await registry.load(version)
    entry = history_entry("renew", live, live, by, now)
    signed = await _signed(registry, version, signer, entry, now)
    sw = await _switch(registry, version, version, entry=entry, keep=keep, now=now,
                       signed=signed)
    return Published(version, sw.previous, entry, sw.pruned, manifest=signed)


async def _signed(registry: Registry, vid: str, signer: SetSigner | None,
                  entry: dict[str, Any], now: datetime) -> SignedSet | None:
    """The manifest for switching to `vid`; its sequence and digest go into `entry`."""
    if signer is None:
        return None
    from writ.blocklist.signed.setmanifest import digest
    from writ.blocklist.stores.signedset import sign_set

    signed = await sign_set(registry, vid, signer, now)
    entry["manifest"] = signed.sequence
    entry["manifest_digest"] = digest(signed.data)
    return signed


async def repair(registry: Registry, live: Blocklist, *, by: str,
                 now: datetime | None = None) -> bool:
    """Republish the blob of the live version `live` (same acts, same id) when the
    stored one is missing or does not match its checksum. True if rewritten."""
    now = now or datetime.now(UTC)
    encoded = await asyncio.to_thread(encode_acts, live.acts)
    meta = {"version": live.version, "by": by, "at": now.isoformat(timespec="seconds"),
            "acts": len(live.acts), "rules": len(live), "repaired": True}
    return await registry.repair(live, encoded, meta, now.timestamp())


async def _switch(registry: Registry, vid: str, expected: str | None, *,
                  entry: dict[str, Any], keep: int, now: datetime,
                  signed: SignedSet | None = None) -> Switched:
    from redis.exceptions import RedisError

    try:
        return await registry.switch(vid, expected, entry, keep, now.timestamp(), signed=signed)
    except (TimeoutError, RedisError, OSError) as e:
        raise SwitchUncertainError(vid, expected, e) from e
