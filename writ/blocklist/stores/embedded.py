"""The embedded store (`--orders DIR`, the default for one box): compile the
orders folder in the node itself, watch it, reload on change.

Invariants:
- The folder is polled (every `interval` seconds: names, sizes and mtimes of
  every file under it, list files included); no extra dependency, no inotify
  limits, works on network mounts.
- An invalid edit never reaches the holder: the errors are logged (each with
  file:line) and the last good version stays in force.
- A reload that yields the same version (same content) swaps nothing.
- The last good version is saved to `state_dir`, so a node restarting on a
  folder that is invalid at that moment still enforces its last good version.
- With a keyring (`trust.keyring`) every load demands valid, in-scope issuer
  signatures, judged at the load's own instant; a refused folder is an invalid
  one. The keyring file is watched with the folder, and the folder is
  re-checked every `recheck` seconds even unchanged, so a revocation or a key's
  expiry takes effect without an edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from datetime import tzinfo
from pathlib import Path

import structlog

from writ.blocklist.holder import Blocklist, BlocklistHolder
from writ.blocklist.ipaddr import DEFAULT_LIMITS, IpLimits
from writ.blocklist.loader import load_orders
from writ.blocklist.stores.base import (
    Clock,
    StoreState,
    StoreStatus,
    cancel,
    install_off_loop,
    utc_now,
)
from writ.blocklist.stores.localcache import LocalCache
from writ.blocklist.stores.setguard import KeyringError, KeyringFile

__all__ = ["EmbeddedStore", "folder_snapshot"]

# Expected failures (corrupt copy, disk full, refused version) are logged with
# log.error and no traceback: the message says everything (hence noqa TRY400).
log = structlog.get_logger("writ.store")

Snapshot = dict[str, tuple[int, int]]

_MAX_LOGGED_ERRORS = 50


def folder_snapshot(root: Path) -> Snapshot:
    """path -> (mtime_ns, size) for every visible regular file under `root`."""
    snap: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith(".") or name.endswith(("~", ".swp", ".tmp")):
                continue  # editor scratch files: saving them is not a change
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):  # vanished between walk and stat
                st = os.stat(path)
                snap[path] = (st.st_mtime_ns, st.st_size)
    return snap


class EmbeddedStore(StoreState):
    def __init__(self, orders: Path, *, tz: tzinfo | None = None,
                 state_dir: Path | None = None, clock: Clock = utc_now,
                 interval: float = 1.0, keyring: Path | None = None,
                 recheck: float = 60.0, limits: IpLimits = DEFAULT_LIMITS) -> None:
        self.orders = orders
        self.keyring = KeyringFile(keyring) if keyring is not None else None
        self.recheck = recheck
        self.tz = tz
        self.limits = limits  # the policy's ip collateral guard
        self.interval = interval
        super().__init__(clock, LocalCache(state_dir, "orders") if state_dir else None)
        self._task: asyncio.Task[None] | None = None
        self._snapshot: Snapshot | None = None
        self.reloads = 0  # successful swaps after the first load (tests, metrics)

    async def start(self, holder: BlocklistHolder) -> None:
        self._holder = holder
        self._snapshot = await asyncio.to_thread(self._snap)
        await self._reload()
        if self._blocklist is None:
            self._from_disk()
        self._start_ticker(holder)
        self._task = asyncio.create_task(self._watch(), name="writ-orders-watch")

    async def stop(self) -> None:
        await cancel(self._task)
        self._task = None
        await self._stop_ticker()

    def status(self) -> StoreStatus:
        return self._status(str(self.orders))

    def _snap(self) -> Snapshot:
        snap = folder_snapshot(self.orders)
        if self.keyring is not None:  # a key added or revoked is a change too
            snap[f"keyring:{self.keyring.path}"] = self.keyring.stamp() or (0, -1)
        return snap

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        checked = loop.time()
        while True:
            await asyncio.sleep(self.interval)
            snap = await asyncio.to_thread(self._snap)
            due = self.keyring is not None and loop.time() - checked >= self.recheck
            if snap != self._snapshot or due:
                self._snapshot, checked = snap, loop.time()
                await self._reload()

    async def _reload(self) -> None:
        if not self.orders.is_dir():
            self._problem(f"{self.orders}: no such folder", [])
            return
        trust = None
        if self.keyring is not None:
            from writ.blocklist.signed.sigcheck import OrderTrust

            try:
                trust = OrderTrust(self.keyring.current(), self._clock())
            except KeyringError as e:
                self._problem(str(e), [])
                return
        try:
            result = await asyncio.to_thread(load_orders, self.orders, self.tz, trust,
                                             self.limits)
        # A loader bug must not kill the watcher: keep the last good version.
        except Exception as e:  # noqa: BLE001
            self._problem(f"{self.orders}: loading failed: {type(e).__name__}: {e}", [])
            return
        if result.errors:
            self._problem(f"{self.orders}: {len(result.errors)} error(s) in the orders",
                          [str(e) for e in result.errors])
            return
        blocklist = Blocklist(result.acts)
        if self._blocklist is not None and blocklist.version == self._blocklist.version:
            self._source, self._stale, self._last_error = "orders", False, None
            return
        now = self._clock()
        assert self._holder is not None
        try:
            await install_off_loop(self._holder, blocklist, now)
        except Exception as e:  # noqa: BLE001  (same reason: the old index stays)
            self._problem(f"{self.orders}: compiling failed: {e}", [])
            return
        previous, self._blocklist = self._blocklist, blocklist
        self._source, self._loaded_at, self._stale, self._last_error = "orders", now, False, None
        if previous is not None:
            self.reloads += 1
        log.info("writ.store.switched", version=blocklist.version,
                 previous=previous.version if previous else None, source="orders",
                 acts=len(blocklist.acts), rules=len(blocklist))
        if self._cache is not None:
            try:
                await asyncio.to_thread(self._cache.save, blocklist, now, "orders")
            except OSError as e:
                log.error("writ.store.disk_write_failed", path=str(self._cache.path),  # noqa: TRY400
                          error=str(e))

    def _problem(self, message: str, errors: list[str]) -> None:
        self._last_error = message
        self._stale = self._blocklist is not None
        log.error("writ.store.invalid", problem=message, errors=errors[:_MAX_LOGGED_ERRORS],
                  keeping=self._blocklist.version if self._blocklist else None)

