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
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import NamedTuple, Protocol

__all__ = ["Action", "Component", "Counts", "Line", "Outcome", "Record", "RecordSink",
           "Recorder"]


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


class RecordSink(Protocol):
    def enqueue(self, record: Record) -> None: ...


class Counts(Protocol):
    """What /metrics counts (writ.metrics.Metrics)."""

    def count(self, component: str, decision: str, action: str,
              orders: Sequence[str] = ()) -> None: ...


class Recorder:
    __slots__ = ("_enqueue", "allows_not_logged", "clock", "log_allowed", "metrics", "sink")

    def __init__(self, sink: RecordSink | None, *, log_allowed: bool,
                 metrics: Counts | None = None, clock: Callable[[], float] = time.time) -> None:
        self.sink = sink  # None: nothing is logged (a node run with the audit log off)
        self.log_allowed = log_allowed
        self.metrics = metrics
        self.clock = clock
        self.allows_not_logged = 0
        self._enqueue = sink.enqueue if sink is not None else None  # bound once

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
        """decided() with the fields after the client as one tuple (the resolver's hot
        path: the tuple is what its cache holds with each answer). The same rules
        as `_keep`, written out: one Python frame per cached answer, not two."""
        decision = line[1]
        if self.metrics is not None:
            self.metrics.count(component, decision, line[2], line[3])
        if decision is _ALLOW and not self.log_allowed and line[2] is not _RAW_TCP:
            self.allows_not_logged += 1
            return
        enqueue = self._enqueue
        if enqueue is not None:
            enqueue(_new_record(Record, (self.clock(), component, client, *line)))

    def _keep(self, component: Component, decision: Outcome, action: Action,
              orders: Sequence[str]) -> bool:
        """Count the decision; say whether the log keeps it. The one place both
        are decided."""
        if self.metrics is not None:
            self.metrics.count(component, decision, action, orders)
        if decision is _ALLOW and not self.log_allowed and action is not _RAW_TCP:
            self.allows_not_logged += 1
            return False
        return True

    def stats(self) -> dict[str, int]:
        return {"allows_not_logged": self.allows_not_logged}
