"""The one recorder: every enforcement decision of every shell goes through here.

The DNS resolver and the HTTP addon call `Recorder.decided()` (or, on the
resolver's hot path, `Recorder.line()`) for EVERY decision they make, allows
included. Only here is it decided (docs/design.md §5):
- that the decision is counted for /metrics (always: allows too, whatever the
  log keeps);
- whether it is kept (`audit.log_allowed`: an allow is dropped here, counted
  in `allows_not_logged`; every other decision is always kept, and so is an
  allow relayed as raw TCP: a tunnel writ could not read is always on record);
- that a kept decision is queued, as one `Record`, on the sink (the node's
  AuditLog, or in a `writ dns --workers` worker the queue to the parent's).

Invariants:
- `Record` is the one shape of a decision record, from the shell to the
  writer: a NamedTuple, so the writer unpacks it in C and a worker can send
  it to its parent as a plain tuple.
- `Outcome` and `Action` are `StrEnum`s: a member IS its string value (equal,
  same hash, same JSON), so the audit log's bytes and hash chain are exactly
  those of the plain strings they replace.
- Nothing here blocks or does I/O: counting is a dict increment, queueing the
  sink's `enqueue()` (a deque append for AuditLog).
- Every decision reaches the metrics before they are read: the hot path's
  tally is flushed by every read (Counts.add_source), and holds at most
  TALLY_MAX distinct (decision, action, orders) in between.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import NamedTuple, Protocol

__all__ = [
    "TALLY_MAX",
    "Action",
    "Component",
    "Counts",
    "Line",
    "Outcome",
    "Record",
    "RecordSink",
    "Recorder",
]


class Component(StrEnum):
    DNS = "dns"
    HTTP = "http"


class Outcome(StrEnum):
    """The record's `decision`: what the blocklist (or the node) said (docs/auditor.md)."""

    BLOCK = "block"
    URL_RULES = "url-rules"
    STEER = "steer"
    UNENFORCEABLE = "unenforceable"
    TLS_REFUSED = "tls-refused"
    NOT_STEERED = "not-steered"
    ALLOW = "allow"
    NO_BLOCKLIST = "no-blocklist"
    INVALID = "invalid"
    ERROR = "error"


class Action(StrEnum):
    """The record's `action`: what the node did (docs/auditor.md)."""

    SINKHOLE = "sinkhole"
    NXDOMAIN = "nxdomain"
    REFUSED = "refused"
    SERVFAIL = "servfail"
    STEER = "steer"
    PASS = "pass"  # noqa: S105 (an action, not a password)
    HTTP_451 = "451"
    HTTP_421 = "421"
    HTTP_400 = "400"
    HTTP_503 = "503"
    TLS_REFUSED = "tls-refused"
    HTTP_502 = "502"  # a non-websocket 101 from an origin: refused, never relayed raw
    INTERCEPT = "intercept"  # TLS opened: each request inside is judged
    RAW_TCP = "raw-tcp"  # bytes neither HTTP nor TLS, relayed to a host no order touches
    CLOSED = "closed"  # bytes that could not be judged: the connection closed


class Record(NamedTuple):
    """One decision, as the audit writer takes it."""

    ts: float  # when it was decided, POSIX seconds (the worker's clock for workers)
    component: str  # Component
    client: str  # raw client address; the writer pseudonymises it
    target: str  # "name. A" for DNS, "GET http://host/path" for HTTP
    decision: Outcome
    action: Action
    orders: tuple[str, ...]
    rule: str | None
    blocklist_version: str | None


# A decision's fields after (ts, component, client): how the resolver caches
# them with an answer (writ.dns.cache.LogLine is this shape).
Line = tuple[str, Outcome, Action, tuple[str, ...], "str | None", "str | None"]

_ALLOW = Outcome.ALLOW  # a global, not an attribute lookup on the class, per decision
_RAW_TCP = Action.RAW_TCP
_new_record = tuple.__new__  # Record(...) without the generated __new__'s Python frame


TALLY_MAX = 4096  # distinct (decision, action, orders) a tally holds before it is flushed


class RecordSink(Protocol):
    def enqueue(self, record: Record) -> None: ...


class Counts(Protocol):
    """What /metrics counts (writ.metrics.Metrics)."""

    def count(self, component: str, decision: str, action: str,
              orders: Sequence[str] = (), n: int = 1) -> None: ...

    def add_source(self, flush: Callable[[], None]) -> None:
        """`flush` runs before every read of the counts (a hot path's tally)."""


class Recorder:
    """Counts every decision and queues the kept ones (see the module's invariants).

    The resolver's hot path calls `liner(component)`'s function once per
    answer, cache hits included. There, counting is one update of a tally
    keyed by what the metrics count (decision, action, orders); the tally
    is handed to the metrics in one go whenever they are read
    (`Counts.add_source`), when it holds `TALLY_MAX` keys, and by `flush()`.
    A record is built only when the log keeps it. One thread (the event loop's) calls a recorder."""

    __slots__ = ("_enqueue", "_liners", "_not_logged", "_tallies", "clock", "log_allowed",
                 "metrics", "sink")

    def __init__(self, sink: RecordSink | None, *, log_allowed: bool,
                 metrics: Counts | None = None, clock: Callable[[], float] = time.time) -> None:
        self.sink = sink  # None: nothing is logged (a node run with the audit log off)
        self.log_allowed = log_allowed
        self.metrics = metrics
        self.clock = clock
        self._not_logged = 0
        self._enqueue = sink.enqueue if sink is not None else None  # bound once
        # component -> (decision, action, orders) -> count, for the hot path
        self._tallies: dict[str, dict[tuple[Outcome, Action, tuple[str, ...]], int]] = {}
        self._liners: dict[str, Callable[[str, Line], None]] = {}
        if metrics is not None:
            metrics.add_source(self.flush)

    @property
    def allows_not_logged(self) -> int:
        """Allowed decisions the log did not keep (counted, for /metrics)."""
        self.flush()
        return self._not_logged

    def decided(self, component: Component, client: str, target: str | Callable[[], str],  # noqa: PLR0917 (the record's fields, in its order)
                decision: Outcome, action: Action, orders: Sequence[str] = (),
                rule: str | None = None, version: str | None = None) -> None:
        """Record one decision (every decision: the recorder filters, not the caller).
        `target` may be a function giving it, called only if the record is kept
        (an HTTP allow's URL is not built when allows are not logged)."""
        enqueue = self._enqueue
        if self._keep(component, decision, action, orders) and enqueue is not None:
            enqueue(_new_record(Record, (
                self.clock(), component, client, target if isinstance(target, str) else target(),
                decision, action, tuple(orders), rule, version)))

    def line(self, component: Component, client: str, line: Line) -> None:
        """decided() with the fields after the client as one tuple (what the
        resolver's cache holds with each answer)."""
        liner = self._liners.get(component) or self.liner(component)
        liner(client, line)

    def liner(self, component: Component) -> Callable[[str, Line], None]:
        """`line` for one component, as one function of (client, line): the
        resolver's hot path. Same rules as `_keep`; everything it needs is bound
        here, once, so a cache hit costs one Python frame and a dict update."""
        known = self._liners.get(component)
        if known is not None:
            return known
        tally = self._tallies.setdefault(component, {})
        get = tally.get
        enqueue = self._enqueue
        clock = self.clock
        flush = self.flush
        keep_allowed = self.log_allowed

        def line(client: str, line: Line) -> None:
            counted = line[1:4]  # (decision, action, orders): what the metrics count
            n = get(counted)
            if n is None:
                if len(tally) >= TALLY_MAX:  # bounded whatever the orders
                    flush()
                tally[counted] = 1
            else:
                tally[counted] = n + 1
            if enqueue is not None and (keep_allowed or line[1] is not _ALLOW
                                        or line[2] is _RAW_TCP):
                enqueue(_new_record(Record, (clock(), component, client, *line)))

        self._liners[component] = line
        return line

    def flush(self) -> None:
        """Hand the hot path's tallies to the metrics (and to `allows_not_logged`)."""
        metrics = self.metrics
        not_logged = not self.log_allowed
        for component, tally in self._tallies.items():
            if not tally:
                continue
            counted = list(tally.items())
            tally.clear()
            for (decision, action, orders), n in counted:
                if metrics is not None:
                    metrics.count(component, decision, action, orders, n)
                if not_logged and decision is _ALLOW and action is not _RAW_TCP:
                    self._not_logged += n

    def _keep(self, component: Component, decision: Outcome, action: Action,
              orders: Sequence[str]) -> bool:
        """Count the decision; say whether the log keeps it. The one place both
        are decided."""
        if self.metrics is not None:
            self.metrics.count(component, decision, action, orders)
        if decision is _ALLOW and not self.log_allowed and action is not _RAW_TCP:
            self._not_logged += 1
            return False
        return True

    def stats(self) -> dict[str, int]:
        return {"allows_not_logged": self.allows_not_logged}
