"""An act set, and the holder every shell reads the current index from.

Swap atomically: a new Index is built whole, off to the side, and published
by one attribute assignment. Readers (`holder.index`) never lock and never
see half a list; a failed build leaves the old index in place. The holder
never reads a clock: the node passes `now` to `set()` and `tick()`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from writ.blocklist.fold import fold
from writ.blocklist.index import Index
from writ.blocklist.model import Act
from writ.blocklist.serial import version_of

__all__ = ["Blocklist", "BlocklistHolder"]


class Blocklist:
    """A validated act set: a function of the instant (`at()`)."""

    __slots__ = ("acts", "by_id", "version")

    def __init__(self, acts: Sequence[Act], version: str | None = None) -> None:
        self.acts: tuple[Act, ...] = tuple(acts)
        self.by_id: dict[str, Act] = {a.id: a for a in self.acts}
        self.version: str = version if version is not None else version_of(self.acts)

    def at(self, instant: datetime) -> Index:
        return Index(fold(self.acts, instant), self.version, self.by_id)

    def __len__(self) -> int:
        return sum(a.target_count() for a in self.acts)


Listener = Callable[[Index], None]


class BlocklistHolder:
    """Holds the index in force; shells read `holder.index` on every lookup."""

    def __init__(self) -> None:
        self.blocklist: Blocklist | None = None
        self.index: Index | None = None  # None until the first set(): not ready
        self._listeners: list[Listener] = []

    def on_swap(self, listener: Listener) -> None:
        """Call `listener(new_index)` after every swap (e.g. to flush a DNS cache)."""
        self._listeners.append(listener)

    def set(self, blocklist: Blocklist, now: datetime) -> Index:
        index = blocklist.at(now)  # built off to the side; may raise, old one stays
        self.blocklist = blocklist
        self._publish(index)
        return index

    def install(self, blocklist: Blocklist, index: Index) -> None:
        """Publish an index built elsewhere (e.g. in a worker thread) from `blocklist`."""
        if index.version != blocklist.version:
            raise ValueError("index was not built from this blocklist")
        self.blocklist = blocklist
        self._publish(index)

    def due(self, now: datetime) -> bool:
        """True when an `effective`/`expires` instant has passed since the last fold."""
        index = self.index
        return (
            index is not None
            and self.blocklist is not None
            and index.valid_until is not None
            and now >= index.valid_until
        )

    def tick(self, now: datetime) -> bool:
        """Re-fold when an `effective`/`expires` instant has passed. True if swapped."""
        blocklist = self.blocklist
        if blocklist is None or not self.due(now):
            return False
        self._publish(blocklist.at(now))
        return True

    @property
    def ready(self) -> bool:
        return self.index is not None

    def _publish(self, index: Index) -> None:
        self.index = index  # the one reference assignment readers see
        for listener in self._listeners:
            listener(index)
