"""The Store protocol, its status, and the timer that switches at instants.

Invariants:
- A store only ever hands the holder a whole, verified Blocklist; a failed
  load leaves the holder's current index in place.
- Lookups never wait on a store: shells read `holder.index`; stores update it
  from their own background tasks.
- Every store runs a Ticker: the holder re-folds at each `effective`/`expires`
  instant on this node's clock, without anyone re-publishing (docs/design.md §3).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from writ.blocklist.holder import Blocklist, BlocklistHolder
from writ.blocklist.index import Index

__all__ = ["Clock", "Store", "StoreStatus", "Ticker", "utc_now"]

Clock = Callable[[], datetime]

log = structlog.get_logger("writ.store")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class StoreStatus:
    source: str  # "orders" | "redis" | "disk" | "none": where the version in force came from
    version: str | None  # the version in force, None before the first load
    loaded_at: datetime | None  # when it was loaded on this node
    last_error: str | None  # the most recent problem (cleared when things work again)
    stale: bool  # enforcing a disk copy, or the source is unreachable / invalid
    ready: bool  # the holder has an index (otherwise the shells apply their fail mode)
    location: str = ""  # the orders folder or the Redis URL (password redacted)
    # With a keyring (trust.keyring) on a node following Redis, see setguard.py:
    alarm: str | None = None  # "expired": the signed set in force is past its expiry
    manifest_sequence: int | None = None  # the sequence of the manifest in force
    sets_refused: int = 0  # sets refused since start (bad signature, replay, files…)


class Store(Protocol):
    async def start(self, holder: BlocklistHolder) -> None:
        """First load (or fall back to the disk copy), then keep `holder` up to date
        from background tasks until stop(). Never raises for an unreachable or
        invalid source: the status says so and the holder may stay not ready."""

    async def stop(self) -> None:
        """Cancel the background tasks and close connections."""

    def status(self) -> StoreStatus: ...


class StoreState:
    """What both stores track and report: the version in force, where it came
    from, the last problem, and the last good copy on disk (`_cache`)."""

    def __init__(self, clock: Clock, cache: Any) -> None:
        self._clock = clock
        self._cache = cache  # a LocalCache, or None without a state directory
        self._holder: BlocklistHolder | None = None
        self._ticker: Ticker | None = None
        self._blocklist: Blocklist | None = None
        self._source = "none"
        self._loaded_at: datetime | None = None
        self._last_error: str | None = None
        self._stale = False

    def _status(self, location: str) -> StoreStatus:
        b = self._blocklist
        return StoreStatus(
            source=self._source, version=b.version if b else None, loaded_at=self._loaded_at,
            last_error=self._last_error, stale=self._stale,
            ready=self._holder is not None and self._holder.ready, location=location,
        )

    def _start_ticker(self, holder: BlocklistHolder) -> None:
        self._ticker = Ticker(holder, self._clock)
        self._ticker.start()

    async def _stop_ticker(self) -> None:
        if self._ticker is not None:
            await self._ticker.stop()

    def _from_disk(self) -> None:
        """Put the last good copy on disk in force (at start, when the source is
        unusable); a missing or refused copy leaves the holder as it is."""
        from writ.blocklist.stores.blob import VersionError

        if self._cache is None or self._holder is None:
            return
        try:
            copy = self._cache.load()
        except VersionError as e:
            log.error("writ.store.disk_refused", reason=str(e))  # noqa: TRY400
            return
        if copy is None:
            return
        now = self._clock()
        self._holder.set(copy.blocklist, now)
        self._blocklist, self._source, self._loaded_at = copy.blocklist, "disk", now
        self._stale = True
        log.warning("writ.store.from_disk", version=copy.blocklist.version,
                    saved_at=copy.saved_at, path=str(self._cache.path))


async def cancel(task: asyncio.Task[Any] | None, timeout: float = 3.0) -> None:
    """Cancel a background task and wait (bounded) until it is gone.

    Bounded because a task cancelled inside a client library's cleanup (a Redis
    pub/sub connection being closed) can stall; stopping a node must not."""
    if task is None or task.done():
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        log.warning("writ.store.stop_slow", task=task.get_name(), waited=timeout)
    elif not task.cancelled():
        task.exception()  # retrieved: a failure while stopping is not worth a warning


async def install_off_loop(holder: BlocklistHolder, blocklist: Blocklist, now: datetime) -> None:
    """Fold and compile in a worker thread, then swap on the loop: lookups keep
    being answered from the old index while a big list compiles (about 1 s for
    1,000,000 rules). Raises what the build raises; the old index then stays."""
    index = await asyncio.to_thread(blocklist.at, now)
    holder.install(blocklist, index)


class Ticker:
    """Calls holder.tick(now) when the index in force expires (`valid_until`)."""

    # Sleep at most this long at a time, so a wall-clock step is noticed.
    MAX_SLEEP = 30.0

    def __init__(self, holder: BlocklistHolder, clock: Clock = utc_now) -> None:
        self._holder = holder
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        holder.on_swap(self._swapped)

    def _swapped(self, _index: Index) -> None:
        self._wake.set()  # a new index may expire sooner: recompute the sleep

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="writ-ticker")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            index = self._holder.index
            until = index.valid_until if index is not None else None
            delay = self.MAX_SLEEP
            if until is not None:
                delay = (until - self._clock()).total_seconds()
                if delay <= 0:
                    try:
                        now = self._clock()
                        blocklist = self._holder.blocklist
                        if self._holder.due(now) and blocklist is not None:
                            await install_off_loop(self._holder, blocklist, now)
                            log.info("writ.store.tick", version=self._holder.index and
                                     self._holder.index.version, at=until.isoformat())
                            continue
                        delay = 0.05  # woke a hair early by this clock: try again soon
                    # A failed fold keeps the old index; it must not stop the ticker.
                    except Exception:
                        log.exception("writ.store.tick_failed")
                        delay = 5.0
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(delay, self.MAX_SLEEP))
