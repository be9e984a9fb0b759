"""The answer cache: prebuilt reply bodies by wire key, LRU-bounded.

Invariants:
- An entry is the whole reply (ID zeroed) for one key (see wire.py), plus
  what the audit log needs when it is served (`log`), so a cache hit is a
  dict lookup, an ID patch and a send.
- Upstream answers live as long as their smallest TTL (negative answers:
  min(SOA TTL, SOA MINIMUM), RFC 2308 §5) and are served with TTLs decreased
  by their age. Synthesised block/steer answers never age out by time.
- The cache is emptied on every blocklist swap, and `put()` refuses an
  entry computed under an older generation: a decision taken just before a
  swap can never be stored just after it (no stale block, no stale allow).
- Time is an argument (`now`, monotonic seconds); the cache reads no clock.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from writ.audit import Action, Outcome
from writ.dns.wire import patch_ttls

__all__ = ["AnswerCache", "Entry", "LogLine"]

FOREVER = float("inf")


class LogLine(NamedTuple):
    """The audit fields of a decision, minus the client (writ.audit.recorder.Line)."""

    target: str
    decision: Outcome
    action: Action
    orders: tuple[str, ...]
    rule: str | None
    version: str | None


class Entry:
    __slots__ = ("_aged", "_aged_for", "body", "expires", "log", "stored", "ttls")

    def __init__(
        self,
        body: bytes,
        log: LogLine | None,
        stored: float = 0.0,
        expires: float = FOREVER,
        ttls: list[tuple[int, int]] | None = None,
    ) -> None:
        self.body = body
        self.log = log  # what the recorder gets each time this answer is served
        self.stored = stored
        self.expires = expires
        self.ttls = ttls or []
        self._aged = body
        self._aged_for = 0

    def body_at(self, now: float) -> bytes:
        """The body with TTLs aged to `now`; recomputed at most once a second."""
        if not self.ttls:
            return self.body
        age = int(now - self.stored)
        if age != self._aged_for:
            self._aged = patch_ttls(self.body, self.ttls, age)
            self._aged_for = age
        return self._aged


class AnswerCache:
    def __init__(self, max_entries: int) -> None:
        self.max_entries = max(1, max_entries)
        self.generation = 0
        self._d: OrderedDict[bytes, Entry] = OrderedDict()

    def get(self, key: bytes, now: float) -> Entry | None:
        e = self._d.get(key)
        if e is None:
            return None
        if now >= e.expires:
            del self._d[key]
            return None
        self._d.move_to_end(key)
        return e

    def put(self, key: bytes, entry: Entry, generation: int) -> bool:
        d = self._d  # taken before the check: a clear() after it orphans `d`
        if generation != self.generation:
            return False  # decided under a blocklist that has since been replaced
        d[key] = entry
        d.move_to_end(key)
        while len(d) > self.max_entries:
            d.popitem(last=False)
        return True

    def clear(self) -> None:
        # Bump first: a put() racing with this clear (from a swap listener on
        # another thread) then fails its generation check.
        self.generation += 1
        self._d = OrderedDict()

    def __len__(self) -> int:
        return len(self._d)
