"""A node's replica of the published blocklist (`--redis URL`).

Invariants:
- Lookups never touch Redis: this store only replaces `holder.index`, from
  its own task, with a version loaded and verified whole off to the side.
- The pointer is the truth; pub/sub is only a hint. The node re-reads the
  pointer on every (re)connect, on every notification and every
  `poll_interval` seconds, so a missed message costs at most one poll.
- A node on version B applies the delta B→C when there is one; otherwise it
  loads C whole. Either way the checksum is verified before the switch.
- Fail-static: Redis unreachable → keep enforcing the last good version,
  reconnect with capped exponential backoff, resync on return. A corrupt or
  foreign version is refused (logged once) and the last good one stays; it is
  tried again once its stored copy changes (`writ orders apply` repaired it).
- A node enforcing the live version still checks, every poll, that its stored
  copy exists: when it is gone the status says so (`last_error`, not stale —
  this node enforces what is live, but a node starting now could not).
- With a keyring (`trust.keyring`), a version is switched to only under a
  signed manifest that verifies, lists exactly its blob, has a sequence above
  the highest this node ever accepted (kept on disk) and has not expired
  (setguard.py); the blob is fetched whole (no delta) and checked byte for
  byte before it is decoded. A refused set changes nothing; each switch is
  reported to `on_switch` (the node writes it into the audit chain).
- The last good version is saved to `state_dir`; a node starting while Redis
  is down enforces that copy and reports `stale` with source "disk". With
  neither, the holder stays not ready and the shells apply the policy's
  fail mode (closed by default).
- With a keyring the copy is saved with the signed manifest it was accepted
  under, and at start it is enforced only if that manifest verifies, lists
  exactly its blob and is not older than the kept one (SetGuard.judge_copy);
  going into force it is reported to `on_switch` like a switch (`source`
  "disk"). A copy that fails is refused as if there were none, reported to
  `on_disk_refused` (the node writes it into the audit chain), and the reason
  stays in the status until a set from Redis is in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from redis.exceptions import RedisError

from writ.blocklist.holder import Blocklist, BlocklistHolder
from writ.blocklist.stores.base import (
    Clock,
    StoreState,
    StoreStatus,
    cancel,
    install_off_loop,
    utc_now,
)
from writ.blocklist.stores.blob import Encoded, VersionError, checksum, decode_acts
from writ.blocklist.stores.connection import connect, redact
from writ.blocklist.stores.localcache import LocalCache, RawCopy
from writ.blocklist.stores.registry import Registry
from writ.blocklist.stores.setguard import KeyringError, KeyringFile, Refusal, SetGuard

__all__ = ["RedisStore"]

# Expected failures (corrupt copy, disk full, refused version) are logged with
# log.error and no traceback: the message says everything (hence noqa TRY400).
log = structlog.get_logger("writ.store")

_NET_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


_CLOSING: set[asyncio.Future[None]] = set()  # closes still running (kept referenced)


async def _close_quietly(pubsub: Any, client: Any) -> None:
    with contextlib.suppress(*_NET_ERRORS):
        await pubsub.aclose()
    with contextlib.suppress(*_NET_ERRORS):
        await client.aclose()


def _end_if_cancelled() -> None:
    """Raise CancelledError in a task that stop() cancelled. The Redis client can
    turn a cancellation into an error of its own, which the replica's loops treat
    as a network fault and retry: a stopped store would then go on switching the
    holder (seen under load: a version applied after stop)."""
    me = asyncio.current_task()
    if me is not None and me.cancelling():
        raise asyncio.CancelledError


class RedisStore(StoreState):
    STARTUP_TIMEOUT = 15.0
    MIN_BACKOFF = 0.1

    def __init__(self, url: str, *, prefix: str = "writ", state_dir: Path | None = None,
                 clock: Clock = utc_now, poll_interval: float = 5.0,
                 max_backoff: float = 5.0, keyring: Path | None = None,
                 on_switch: Callable[[dict[str, Any]], None] | None = None,
                 on_disk_refused: Callable[[dict[str, Any]], None] | None = None) -> None:
        connect(url)  # fail early on a malformed URL (ValueError); creates no connection
        self.url = url
        self.prefix = prefix
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        super().__init__(clock, LocalCache(state_dir, f"redis-{prefix}") if state_dir else None)
        self._task: asyncio.Task[None] | None = None
        self._persist: asyncio.Task[None] | None = None
        self._refused: str | None = None
        # (sha256, repaired) of the refused version: `writ orders apply` repairing it
        # changes this, and the replica tries that version again.
        self._refused_stamp: tuple[str | None, str | None] = (None, None)
        self._backoff = self.MIN_BACKOFF
        self.loads = {"full": 0, "delta": 0}  # how versions arrived (tests, metrics)
        self.on_switch = on_switch
        self.on_disk_refused = on_disk_refused
        self._disk_refused: str | None = None  # why the disk copy was refused at start
        self._guard = (SetGuard(KeyringFile(keyring), state_dir, f"redis-{prefix}")
                       if keyring is not None else None)
        self._refused_set: tuple[Any, ...] | None = None

    # -- Store protocol -------------------------------------------------------

    SAVE_ON_STOP_TIMEOUT = 30.0

    async def start(self, holder: BlocklistHolder) -> None:
        self._holder = holder
        try:
            await asyncio.wait_for(self._sync_once(), self.STARTUP_TIMEOUT)
        except _NET_ERRORS as e:
            self._unreachable(e)
        if self._blocklist is None:
            self._from_disk()
        self._start_ticker(holder)
        self._task = asyncio.create_task(self._run(), name="writ-redis-replica")

    async def stop(self) -> None:
        await cancel(self._task)
        persist, self._task, self._persist = self._persist, None, None
        if persist is not None:
            # The last switch's disk copy is finished, not cancelled: a node restarted
            # (or one whose Redis is gone) must find the set it enforced. Bounded: a
            # disk that hangs must not hang the stop.
            try:
                await asyncio.wait_for(asyncio.shield(persist), self.SAVE_ON_STOP_TIMEOUT)
            except (TimeoutError, asyncio.CancelledError, OSError):
                log.error("writ.store.disk_write_unfinished",  # noqa: TRY400 (no traceback: a slow disk)
                          timeout=self.SAVE_ON_STOP_TIMEOUT)
        await self._stop_ticker()

    def status(self) -> StoreStatus:
        st = self._status(redact(self.url))
        g = self._guard
        if g is None:
            return st
        error = st.last_error
        if self._disk_refused is not None and self._blocklist is None:
            # Nothing in force: say why the disk copy is not, whatever Redis says now.
            error = f"{error}; {self._disk_refused}" if error else self._disk_refused
        return replace(st, alarm=g.alarm(self._clock()), manifest_sequence=g.sequence,
                       sets_refused=g.refused, last_error=error)

    # -- background ------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except _NET_ERRORS as e:
                self._unreachable(e)
            # Fail-static includes our own bugs: keep the last good index, retry.
            except Exception:
                self._stale, self._last_error = True, "replica error (see log)"
                log.exception("writ.store.replica_failed")
            _end_if_cancelled()
            # Jitter spreads a fleet's reconnects after an outage.
            await asyncio.sleep(self._backoff * (0.5 + random.random() / 2))  # noqa: S311
            self._backoff = min(self._backoff * 2, self.max_backoff)

    async def _session(self) -> None:
        client = connect(self.url)
        registry = Registry(client, self.prefix)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(registry.keys.channel)
            await self._sync(registry)  # after every (re)connect: messages may have been lost
            self._backoff = self.MIN_BACKOFF
            while True:
                await pubsub.get_message(ignore_subscribe_messages=True,
                                         timeout=self.poll_interval)
                _end_if_cancelled()
                await self._sync(registry)  # a notification, or the low-rate poll
        finally:
            # Closing runs as its own task and is waited for with a bound: closing a
            # pub/sub connection whose read was just cancelled can stall (seen with
            # redis-py 8), and wait_for() would wait for a close that ignores its
            # cancellation. A stalled close is left to finish on its own.
            closing = asyncio.ensure_future(_close_quietly(pubsub, client))
            _CLOSING.add(closing)
            closing.add_done_callback(_CLOSING.discard)
            await asyncio.wait({closing}, timeout=1.0)

    async def _sync_once(self) -> None:
        client = connect(self.url)
        try:
            await self._sync(Registry(client, self.prefix))
        finally:
            with contextlib.suppress(*_NET_ERRORS):
                await client.aclose()

    async def _sync(self, registry: Registry) -> None:
        if self._guard is not None:
            await self._sync_signed(registry, self._guard)
            return
        vid = await registry.current()
        if vid is None:
            self._last_error = f"nothing published under {registry.keys.current}"
            self._stale = self._blocklist is not None  # enforcing what Redis no longer names
            return
        if vid == self._version:
            self._source, self._stale, self._last_error = "redis", False, None
            if not await registry.exists(vid):  # enforced here, but a new node could not load it
                self._last_error = (f"the live version {vid} is missing under "
                                    f"{registry.keys.version(vid)}: nodes starting without a "
                                    f"disk copy cannot load it; `writ orders apply` republishes it")
            return
        if vid == self._refused and await registry.stamp(vid) == self._refused_stamp:
            self._stale = True
            return
        try:
            blocklist, encoded = await self._fetch(registry, vid)
            now = self._clock()
            assert self._holder is not None
            try:
                _end_if_cancelled()
                await install_off_loop(self._holder, blocklist, now)
            # A version that parses but cannot be compiled is refused like a corrupt
            # one; the old index stays (holder.set builds before it assigns).
            except Exception as e:  # noqa: BLE001
                raise VersionError(f"version {vid}: cannot be compiled: {e!r}") from None
        except VersionError as e:
            self._refused, self._stale = vid, True
            self._refused_stamp = await registry.stamp(vid)
            self._last_error = f"refused version {vid}: {e}"
            log.error("writ.store.refused", version=vid, reason=str(e),  # noqa: TRY400
                      keeping=self._version)
            return
        previous, self._blocklist = self._version, blocklist
        self._source, self._loaded_at, self._stale, self._last_error = "redis", now, False, None
        log.info("writ.store.switched", version=vid, previous=previous, source="redis")
        self._save(blocklist, now, encoded)

    async def _sync_signed(self, registry: Registry, guard: SetGuard) -> None:
        """_sync under a keyring: switch only to a set whose manifest passes (setguard.py)."""
        vid, mdata, msig = await registry.live()
        if vid is None:
            self._last_error = f"nothing published under {registry.keys.current}"
            self._stale = self._blocklist is not None
            return
        if guard.is_in_force(vid, mdata, self._version):
            self._source, self._stale, self._last_error = "redis", False, None
            guard.alarm(self._clock())  # logs once when the set in force expires
            return
        seen = (vid, mdata, msig, await registry.stamp(vid), guard.keyring.stamp())
        if seen == self._refused_set:
            self._stale = True  # refused already, nothing changed since: no re-download
            return
        data, sha = await registry.fetch(vid)
        now = self._clock()
        try:
            verdict = await asyncio.to_thread(guard.judge, vid, mdata, msig, data, now)
        except KeyringError as e:  # never loaded (the node checks it at start): refuse
            verdict = Refusal("keyring", str(e))
        if isinstance(verdict, Refusal):
            self._refuse_set(seen, guard, verdict)
            return
        assert data is not None
        assert mdata is not None
        assert msig is not None
        try:
            if self._blocklist is not None and vid == self._version:
                blocklist = self._blocklist  # a renewed manifest over the same set
            else:
                acts = await asyncio.to_thread(decode_acts, data, sha, f"version {vid}")
                blocklist = Blocklist(acts, version=vid)
            assert self._holder is not None
            try:
                if blocklist is not self._blocklist:
                    _end_if_cancelled()
                    await install_off_loop(self._holder, blocklist, now)
            except Exception as e:  # noqa: BLE001 (as in _sync: the old index stays)
                raise VersionError(f"version {vid}: cannot be compiled: {e!r}") from None
        except VersionError as e:
            self._refuse_set(seen, guard, Refusal("unusable", str(e)))
            return
        self.loads["full"] += 1
        try:  # before the switch is reported: a replay must be refused after a restart
            await asyncio.to_thread(guard.accept, verdict, mdata, msig)
        except OSError as e:
            log.error("writ.store.disk_write_failed", path=str(guard.file and guard.file.path),  # noqa: TRY400
                      error=str(e))
        previous, self._blocklist = self._version, blocklist
        self._source, self._loaded_at, self._stale, self._last_error = "redis", now, False, None
        self._refused_set = None
        fields = guard.control_fields(vid, verdict)
        log.info("writ.store.switched", version=vid, previous=previous, source="redis",
                 manifest=fields["manifest_sequence"], signers=fields["signers"])
        if self.on_switch is not None:
            self.on_switch(fields)
        # The blob exactly as the manifest lists it, with the manifest: what the
        # copy is judged by at a restart (SetGuard.judge_copy).
        self._save(blocklist, now, Encoded(data, sha or checksum(data)), (mdata, msig))

    def _refuse_set(self, seen: tuple[Any, ...], guard: SetGuard, why: Refusal) -> None:
        self._refused_set, self._stale = seen, True
        guard.refused += 1
        self._last_error = f"refused set ({why.alarm}): {why.message}"
        log.error("writ.store.refused_set", alarm=str(why.alarm),
                  reason=why.message, keeping=self._version)

    async def _fetch(self, registry: Registry, vid: str) -> tuple[Blocklist, Encoded | None]:
        """Version `vid`, by delta from the version in force when possible. Raises
        VersionError (corrupt, foreign, missing) and the network errors."""
        current = self._blocklist
        if current is not None:
            try:
                delta = await registry.load_delta(vid, current.version)
            except VersionError as e:  # a bad delta is no reason to refuse the version
                log.warning("writ.store.delta_refused", version=vid, reason=str(e))
                delta = None
            if delta is not None:
                self.loads["delta"] += 1
                return Blocklist(delta.apply(current.acts), version=vid), None
        data, sha = await registry.fetch(vid)
        if data is None or sha is None:
            raise VersionError(f"version {vid}: not stored under {registry.keys.version(vid)}")
        acts = await asyncio.to_thread(decode_acts, data, sha, f"version {vid}")
        self.loads["full"] += 1
        return Blocklist(acts, version=vid), Encoded(data, sha)

    @property
    def _version(self) -> str | None:
        return self._blocklist.version if self._blocklist is not None else None

    # -- fail-static -----------------------------------------------------------

    def _unreachable(self, e: BaseException) -> None:
        first = not self._stale or self._source != "redis"
        self._last_error = f"redis unreachable at {redact(self.url)}: {e or type(e).__name__}"
        self._stale = True
        if first:
            log.warning("writ.store.unreachable", url=redact(self.url), error=str(e),
                        keeping=self._version)


    # -- the disk copy under a keyring -------------------------------------------

    def _from_disk(self) -> None:
        if self._guard is None:
            super()._from_disk()
            return
        if self._cache is None or self._holder is None:
            return
        try:
            raw = self._cache.read()
        except VersionError as e:
            self._refuse_copy(self._cache.path, None, Refusal("unusable", str(e)))
            return
        if raw is not None:
            self._from_signed_copy(raw, self._guard, self._holder)

    def _from_signed_copy(self, raw: RawCopy, guard: SetGuard, holder: BlocklistHolder) -> None:
        now = self._clock()
        try:
            verdict = guard.judge_copy(raw, now)
        except KeyringError as e:
            verdict = Refusal("keyring", str(e))
        if isinstance(verdict, Refusal):
            self._refuse_copy(raw.path, raw.version, verdict)
            return
        try:
            acts = decode_acts(raw.data, raw.sha256, str(raw.path))
            blocklist = Blocklist(acts, version=raw.version)
            holder.set(blocklist, now)
        except Exception as e:  # noqa: BLE001 (corrupt or not compilable: as no copy)
            self._refuse_copy(raw.path, raw.version, Refusal("unusable", str(e)))
            return
        assert raw.manifest is not None
        assert raw.manifest_sig is not None
        if verdict.accepted:  # newer than the kept one (its save had failed): keep it now
            try:
                guard.accept(verdict, raw.manifest, raw.manifest_sig)
            except OSError as e:
                log.error("writ.store.disk_write_failed",  # noqa: TRY400
                          path=str(guard.file and guard.file.path), error=str(e))
        self._blocklist, self._source, self._loaded_at, self._stale = blocklist, "disk", now, True
        fields = {**guard.control_fields(raw.version, verdict), "source": "disk"}
        log.warning("writ.store.from_disk", version=raw.version, saved_at=raw.saved_at,
                    path=str(raw.path), manifest=fields["manifest_sequence"],
                    signers=fields["signers"])
        if self.on_switch is not None:
            self.on_switch(fields)

    def _refuse_copy(self, path: Path, version: str | None, why: Refusal) -> None:
        """The disk copy is not enforced (as if there were none): say why, everywhere."""
        assert self._guard is not None
        self._guard.refused += 1
        self._disk_refused = f"disk copy refused ({why.alarm}): {path}: {why.message}"
        log.error("writ.store.disk_copy_refused", path=str(path), alarm=str(why.alarm),
                  reason=why.message, version=version, kept_sequence=self._guard.sequence)
        if self.on_disk_refused is not None:
            self.on_disk_refused({"path": str(path), "alarm": str(why.alarm),
                                  "reason": why.message, "blocklist_version": version,
                                  "kept_sequence": self._guard.sequence})

    def _save(self, blocklist: Blocklist, now: datetime, encoded: Encoded | None,
              manifest: tuple[bytes, bytes] | None = None) -> None:
        if self._cache is None:
            return
        cache, previous = self._cache, self._persist

        async def save() -> None:
            if previous is not None:
                with contextlib.suppress(asyncio.CancelledError, OSError):
                    await previous
            if self._blocklist is not blocklist:
                return  # a newer version arrived; it saves itself
            try:
                await asyncio.to_thread(cache.save, blocklist, now, "redis", encoded, manifest)
            except OSError as e:
                log.error("writ.store.disk_write_failed",  # noqa: TRY400
                          path=str(cache.path), error=str(e))

        self._persist = asyncio.create_task(save(), name="writ-store-save")
