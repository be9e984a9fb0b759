"""Where a node's blocklist comes from: the orders folder, or a Redis replica.

A node builds one store with `open_store()` and starts it with its holder:

    store = open_store(orders, redis_url, state_dir=state_dir, tz=tz)
    await store.start(holder)      # first load, or the disk copy; never raises for
                                   # an unreachable/invalid source (see status())
    ...                            # shells read holder.index; lookups never wait on a store
    store.status()                 # StoreStatus: source, version, loaded_at, last_error,
                                   # stale, ready, location  → logs, metrics, /readyz
    await store.stop()

Both stores implement the `Store` protocol:
- `EmbeddedStore` (`--orders DIR`): compiles the folder, polls it every second,
  reloads on change; an invalid edit keeps the last good version.
- `RedisStore` (`--redis URL`): a replica of the published version, switched
  on pub/sub notification, a 5 s pointer poll and every reconnect; deltas when
  on the previous version; fail-static with a copy on disk.
Each store runs its own `Ticker`, which calls `holder.tick(now)` at every
`effective`/`expires` instant, so the node needs no separate timer.

One-shot reads (explain, export, `mitmdump -s`): `read_blocklist(orders, redis_url)`
and `load_holder(...)` (source.py; SourceError / InvalidOrdersError with
user-facing messages), `read_published(url, prefix, keyring) -> Blocklist` (PublishedError; with a
keyring, SetRefusedError when the live set fails the manifest check nodes make).

Publishing (`writ orders apply/diff/history/rollback`) goes through `Registry`,
which owns the Redis key layout (see registry.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path
from typing import Any

from writ.blocklist.ipaddr import DEFAULT_LIMITS, IpLimits
from writ.blocklist.stores.base import Clock, Store, StoreStatus, Ticker, utc_now
from writ.blocklist.stores.blob import VersionError
from writ.blocklist.stores.changes import ActChanges, RuleChanges, act_changes, rule_changes
from writ.blocklist.stores.connection import connect, connect_sync, redact
from writ.blocklist.stores.embedded import EmbeddedStore
from writ.blocklist.stores.localcache import LocalCache
from writ.blocklist.stores.oneshot import (
    PublishedError,
    SetRefusedError,
    fetch_published,
    read_published,
)
from writ.blocklist.stores.publishing import (
    Published,
    SwitchUncertainError,
    publish,
    renew,
    repair,
    rollback,
)
from writ.blocklist.stores.registry import ConflictError, Keys, Registry
from writ.blocklist.stores.replica import RedisStore
from writ.blocklist.stores.source import (
    InvalidOrdersError,
    SourceError,
    load_holder,
    read_blocklist,
)

__all__ = [
    "ActChanges",
    "ConflictError",
    "EmbeddedStore",
    "InvalidOrdersError",
    "Keys",
    "LocalCache",
    "Published",
    "PublishedError",
    "RedisStore",
    "Registry",
    "RuleChanges",
    "SetRefusedError",
    "SourceError",
    "Store",
    "StoreStatus",
    "SwitchUncertainError",
    "Ticker",
    "VersionError",
    "act_changes",
    "connect",
    "connect_sync",
    "fetch_published",
    "load_holder",
    "open_store",
    "publish",
    "read_blocklist",
    "read_published",
    "redact",
    "renew",
    "repair",
    "rollback",
    "rule_changes",
]


def open_store(orders: Path | None, redis_url: str | None, *, state_dir: Path | None,
               tz: tzinfo | None = None, prefix: str = "writ", clock: Clock = utc_now,
               poll_interval: float = 5.0, keyring: Path | None = None,
               on_switch: Callable[[dict[str, Any]], None] | None = None,
               on_disk_refused: Callable[[dict[str, Any]], None] | None = None,
               limits: IpLimits = DEFAULT_LIMITS) -> Store:
    """The store for a node: Redis when `redis_url` is given, else the orders folder.
    With `keyring` (the policy's trust.keyring), a folder's acts and lists must be
    signed, and a Redis set must come with a signed manifest (setguard.py);
    `on_switch` receives each accepted manifest's audit fields (a disk copy put in
    force at start too), `on_disk_refused` why a disk copy was refused at start.
    Raises ValueError for a malformed Redis URL or when neither is given."""
    if redis_url:
        return RedisStore(redis_url, prefix=prefix, state_dir=state_dir, clock=clock,
                          poll_interval=poll_interval, keyring=keyring, on_switch=on_switch,
                          on_disk_refused=on_disk_refused)
    if orders is None:
        raise ValueError("no blocklist source: give --orders DIR or --redis URL")
    return EmbeddedStore(orders, tz=tz, state_dir=state_dir, clock=clock, keyring=keyring,
                         limits=limits)
