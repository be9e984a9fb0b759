"""The Store protocol, its status, and the timer that switches at instants.

Invariants:
- A store only ever hands the holder a whole, verified Blocklist; a failed
  load leaves the holder's current index in place.
- Lookups never wait on a store: shells read `holder.index`; stores update it
  from their own background tasks.
- Every store runs a Ticker: the holder re-folds at each `effective`/`expires`
  instant on this node's clock, without anyone re-publishing (DESIGN §3).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

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


class Store(Protocol):
    async def start(self, holder: BlocklistHolder) -> None:
        """First load (or fall back to the disk copy), then keep `holder` up to date
        from background tasks until stop(). Never raises for an unreachable or
        invalid source: the status says so and the holder may stay not ready."""

    async def stop(self) -> None:
        """Cancel the background tasks and close connections."""

    def status(self) -> StoreStatus: ...


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
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
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
