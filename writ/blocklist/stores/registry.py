"""The Redis key layout of published versions, and the operations on it.

Keys (all under one hash tag, so they share a cluster slot; P = prefix):

    {P}:current          string  the version id in force (the source of truth)
    {P}:version:<id>     hash    data (zlib serial JSON), sha256, meta (JSON)
    {P}:delta:<id>       hash    base, data, sha256: acts added/removed since `base`
    {P}:versions         zset    kept version ids, scored by when they last went live
    {P}:history          list    JSON entries, newest first (apply / rollback)
    {P}:events           channel a version id is published on every switch (a hint)
    {P}:manifest         hash    data, sig, sequence, version: the signed manifest of the
                                 set in force (written by the same script as the pointer)
    {P}:manifest:<seq>   hash    data, sig, version: every manifest ever written (the chain
                                 an auditor follows through `previous`)

Invariants:
- A version is written whole before the pointer names it, and never rewritten:
  its id is the hash of its acts (content-addressed).
- The pointer only moves by compare-and-set (a Lua script): the caller names
  the version it saw; if another publisher moved it meanwhile, nothing changes
  and ConflictError says who won.
- The one exception to "never rewritten": `repair` rewrites a version whose
  stored blob is missing or does not match its checksum with the bytes of the
  same acts (same id, so the same content), stamps `repaired` and notifies.
  Only a blob that fails its check is touched; a good one is left alone.
- Pruning removes only versions outside the newest `keep`, never the current
  one, with UNLINK (freed off the main thread). Nothing outside the prefix is
  touched; nothing is ever flushed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from writ.blocklist.holder import Blocklist
from writ.blocklist.model import Act
from writ.blocklist.stores.blob import (
    Delta,
    Encoded,
    VersionError,
    checksum,
    decode_acts,
    decode_delta,
    encode_delta,
)

__all__ = ["ConflictError", "Keys", "Registry", "SignedSet", "Switched"]

HISTORY_MAX = 200

# KEYS: current, versions, history, version key, manifest, manifest:<seq>
# ARGV: expected ('' = no version yet), new id, score, history entry, keep, channel,
#       then manifest data ('' = none), sig, sequence, the sequence in force it follows
_SWITCH = """
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return {'conflict', cur} end
if redis.call('HEXISTS', KEYS[4], 'sha256') == 0 then return {'missing', cur} end
if ARGV[7] ~= '' then
  local seq = redis.call('HGET', KEYS[5], 'sequence') or ''
  if seq ~= ARGV[10] then return {'manifest', seq} end
  redis.call('DEL', KEYS[5])
  redis.call('HSET', KEYS[5], 'data', ARGV[7], 'sig', ARGV[8], 'sequence', ARGV[9],
             'version', ARGV[2])
  redis.call('HSET', KEYS[6], 'data', ARGV[7], 'sig', ARGV[8], 'version', ARGV[2])
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('LPUSH', KEYS[3], ARGV[4])
redis.call('LTRIM', KEYS[3], 0, HISTORY_LAST)
local out = {'ok', cur}
local n = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[5])
if n > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, n - 1)
  for _, v in ipairs(old) do
    if v ~= ARGV[2] then redis.call('ZREM', KEYS[2], v); table.insert(out, v) end
  end
end
redis.call('PUBLISH', ARGV[6], ARGV[2])
return out
""".replace("HISTORY_LAST", str(HISTORY_MAX - 1))

# KEYS: version key, delta key. ARGV: sha, data, meta, delta base, delta sha, delta data.
# Written only if absent: a version is immutable once it exists.
_PUT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'meta', ARGV[3], 'sha256', ARGV[1])
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[2], 'base', ARGV[4], 'data', ARGV[6], 'sha256', ARGV[5])
end
return 1
"""

# KEYS: version key, channel. ARGV: sha, data, meta, stamp, id, then what the caller
# found wrong: SHA-1 of the stored data ('' = none) and the stored sha256 ('' = none).
# Rewrites only if the stored blob is still exactly the bad one the caller checked.
_REPAIR = """
local data = redis.call('HGET', KEYS[1], 'data')
local sha = redis.call('HGET', KEYS[1], 'sha256') or ''
local seen = ''
if data then seen = redis.sha1hex(data) end
if seen ~= ARGV[6] or sha ~= ARGV[7] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'meta', ARGV[3], 'sha256', ARGV[1],
           'repaired', ARGV[4])
redis.call('PUBLISH', KEYS[2], ARGV[5])
return 1
"""

# KEYS: current, versions, version key, delta key. ARGV: id. Atomic, so a version
# that someone else switched to in the meantime is never removed.
_DISCARD = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
redis.call('UNLINK', KEYS[3], KEYS[4])
return 1
"""


class ConflictError(Exception):
    """The pointer moved between reading it and switching it."""

    def __init__(self, expected: str | None, actual: str | None,
                 message: str | None = None) -> None:
        super().__init__(message or f"another publisher switched the live version to "
                         f"{actual or 'none'} (expected {expected or 'none'}); nothing was "
                         f"changed")
        self.expected, self.actual = expected, actual


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "writ"

    def _k(self, rest: str) -> str:
        return f"{{{self.prefix}}}:{rest}"

    @property
    def current(self) -> str:
        return self._k("current")

    @property
    def versions(self) -> str:
        return self._k("versions")

    @property
    def history(self) -> str:
        return self._k("history")

    @property
    def channel(self) -> str:
        return self._k("events")

    def version(self, vid: str) -> str:
        return self._k(f"version:{vid}")

    def delta(self, vid: str) -> str:
        return self._k(f"delta:{vid}")

    @property
    def manifest(self) -> str:
        return self._k("manifest")

    def manifest_at(self, sequence: int) -> str:
        return self._k(f"manifest:{sequence}")


@dataclass(frozen=True, slots=True)
class SignedSet:
    """A manifest and its signature, to be written with the pointer."""

    data: bytes
    sig: bytes
    sequence: int
    follows: int | None  # the sequence of the manifest in force it was built on


@dataclass(frozen=True, slots=True)
class Switched:
    version: str
    previous: str | None
    pruned: tuple[str, ...]


def _b(v: Any) -> bytes | None:
    return v if isinstance(v, bytes) else None


def _s(v: Any) -> str | None:
    return v.decode() if isinstance(v, bytes) else v


class Registry:
    """Published versions under one prefix, on one client (bytes responses)."""

    def __init__(self, client: aioredis.Redis, prefix: str = "writ") -> None:
        self.client = client
        self.keys = Keys(prefix)

    async def current(self) -> str | None:
        return _s(await self.client.get(self.keys.current))

    async def exists(self, vid: str) -> bool:
        return bool(await self.client.hexists(self.keys.version(vid), "sha256"))

    async def meta(self, vid: str) -> dict[str, Any] | None:
        raw = await self.client.hget(self.keys.version(vid), "meta")
        try:
            meta = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        return meta if isinstance(meta, dict) else None

    async def fetch(self, vid: str) -> tuple[bytes | None, str | None]:
        data, sha = await self.client.hmget(self.keys.version(vid), ["data", "sha256"])
        return _b(data), _s(sha)

    async def load(self, vid: str) -> Blocklist:
        """The version, verified. Raises VersionError (and RedisError when unreachable)."""
        data, sha = await self.fetch(vid)
        what = f"version {vid}"
        if data is None:
            raise VersionError(f"{what}: not found under {self.keys.version(vid)}")
        acts = await asyncio.to_thread(decode_acts, data, sha, what)
        return Blocklist(acts, version=vid)

    async def problem(self, vid: str) -> str | None:
        """What is wrong with the stored blob of `vid` (None: it verifies)."""
        data, sha = await self.fetch(vid)
        if data is None or sha is None:
            return f"version {vid} is missing under {self.keys.version(vid)}"
        if checksum(data) != sha:
            return f"version {vid} does not match its checksum"
        return None

    async def stamp(self, vid: str) -> tuple[str | None, str | None]:
        """(sha256, repaired) of a stored version: changes when it is repaired."""
        sha, repaired = await self.client.hmget(self.keys.version(vid), ["sha256", "repaired"])
        return _s(sha), _s(repaired)

    async def repair(self, blocklist: Blocklist, encoded: Encoded, meta: dict[str, Any],
                     now: float) -> bool:
        """Rewrite `blocklist.version` from its acts if its stored blob does not verify.
        True if rewritten; False if it verifies (or changed while we looked)."""
        vid = blocklist.version
        data, sha = await self.fetch(vid)
        if data is not None and sha is not None and checksum(data) == sha:
            return False
        seen = hashlib.sha1(data, usedforsecurity=False).hexdigest() if data is not None else ""
        return bool(await self.client.eval(
            _REPAIR, 2, self.keys.version(vid), self.keys.channel, encoded.sha256,
            encoded.data, json.dumps(meta), repr(now), vid, seen, sha or ""))

    async def load_delta(self, vid: str, base: str) -> Delta | None:
        """The delta to `vid` if it applies to `base`; None when there is none."""
        stored_base, data, sha = await self.client.hmget(
            self.keys.delta(vid), ["base", "data", "sha256"])
        if _s(stored_base) != base:
            return None
        delta = await asyncio.to_thread(decode_delta, _b(data), _s(sha), f"delta to {vid}")
        if delta.base != base:
            raise VersionError(f"delta to {vid}: names base {delta.base}, stored under {base}")
        return delta

    async def put(self, blocklist: Blocklist, encoded: Encoded, meta: dict[str, Any],
                  base: Blocklist | None) -> bool:
        """Write a version (and its delta from `base`) unless it exists. True if written."""
        if await self.exists(blocklist.version):
            data, sha = await self.fetch(blocklist.version)
            if data is None or sha is None or checksum(data) != sha:
                raise VersionError(f"version {blocklist.version} exists but is corrupt; "
                                   f"remove {self.keys.version(blocklist.version)} by hand")
            return False
        delta = _delta(base, blocklist.acts) if base is not None else None
        # A delta is worth keeping only when it is much smaller than the whole.
        if delta is not None and len(delta.data) * 2 > len(encoded.data):
            delta = None
        args: list[str | bytes] = [encoded.sha256, encoded.data, json.dumps(meta),
                base.version if (base and delta) else "",
                delta.sha256 if delta else "", delta.data if delta else b""]
        keys = [self.keys.version(blocklist.version), self.keys.delta(blocklist.version)]
        return bool(await self.client.eval(_PUT, 2, *keys, *args))

    async def live(self) -> tuple[str | None, bytes | None, bytes | None]:
        """(pointer, manifest data, manifest sig), read in one transaction: the
        switch script writes them together, so they always belong together."""
        pipe = self.client.pipeline(transaction=True)
        pipe.get(self.keys.current)
        pipe.hmget(self.keys.manifest, ["data", "sig"])
        vid, (data, sig) = await pipe.execute()
        return _s(vid), _b(data), _b(sig)

    async def manifest(self) -> tuple[bytes, bytes, int] | None:
        """The manifest in force: (data, sig, sequence), or None."""
        data, sig, seq = await self.client.hmget(self.keys.manifest, ["data", "sig", "sequence"])
        if not isinstance(data, bytes) or not isinstance(sig, bytes) or seq is None:
            return None
        return data, sig, int(seq)

    async def switch(self, vid: str, expected: str | None, entry: dict[str, Any],
                     keep: int, now: float, *, signed: SignedSet | None = None) -> Switched:
        """Compare-and-set the pointer to `vid` (and, with `signed`, the manifest, if
        the one in force is still the one it follows), record history, notify, prune."""
        k = self.keys
        seq = signed.sequence if signed else 0
        res = await self.client.eval(
            _SWITCH, 6, k.current, k.versions, k.history, k.version(vid), k.manifest,
            k.manifest_at(seq),
            expected or "", vid, repr(now), json.dumps(entry), str(max(keep, 1)), k.channel,
            signed.data if signed else b"", signed.sig if signed else b"", str(seq),
            "" if signed is None or signed.follows is None else str(signed.follows),
        )
        status, cur, *old = (_s(x) or "" for x in res)
        if status == "conflict":
            raise ConflictError(expected, cur or None)
        if status == "manifest":
            raise ConflictError(expected, expected, f"another publisher signed manifest "
                                f"{cur or 'none'} meanwhile (this one followed "
                                f"{signed.follows if signed else None}); nothing was changed")
        if status == "missing":
            raise VersionError(f"version {vid} is not stored under this prefix")
        if old:
            await self.client.unlink(*[k.version(v) for v in old], *[k.delta(v) for v in old])
        return Switched(vid, cur or None, tuple(old))

    async def history(self, limit: int = 20) -> list[dict[str, Any]]:
        out = []
        for raw in await self.client.lrange(self.keys.history, 0, max(limit, 1) - 1):
            try:
                e = json.loads(raw)
            except ValueError:
                continue
            if isinstance(e, dict):
                out.append(e)
        return out

    async def kept(self) -> list[str]:
        return [v for v in (_s(x) for x in await self.client.zrange(self.keys.versions, 0, -1))
                if v]

    async def discard(self, vid: str) -> None:
        """Remove a version this caller wrote but could not switch to (lost a race)."""
        k = self.keys
        await self.client.eval(_DISCARD, 4, k.current, k.versions, k.version(vid), k.delta(vid),
                               vid)


def _delta(base: Blocklist, acts: Sequence[Act]) -> Encoded:
    added = [a for a in acts if base.by_id.get(a.id) != a]
    ids = {a.id for a in acts}
    removed = [a.id for a in base.acts if a.id not in ids]
    return encode_delta(base.version, added, removed)
