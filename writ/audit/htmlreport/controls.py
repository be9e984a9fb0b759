"""The control records of a node's chain that say what it enforced and how its log
fared: signed sets going into force, key changes, the writer's own errors.

Invariants (docs/auditor.md, *Control records*):
- A decision is tied to the set that most recently (in chain order) put its
  `blocklist_version` in force on the node: decisions carry no manifest, and a
  renewal (a new manifest over the same version) takes the later decisions over.
  A version no earlier `signed_set` record named is tied to nothing: counted per
  version, and a finding only for a node that has signed sets at all.
- A set goes into force once per process tree: the workers of one tree (field
  `worker`) switching to the same manifest share a row; a restart (a `continue`
  record, reason restart or recovered) starts a new tree and new rows.
- The workers of one tree disagree while their last `signed_set` records name
  different sets; the disagreement ends when they agree, the tree restarts or the
  log ends. A node without workers never disagrees with itself.
- Memory grows with sets, versions and kept rows (MAX_KEPT), never with decisions.
- Every field is whatever the log holds: kept as text, judged only when it has the
  expected shape (an expiry that is not a time is shown, never judged).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from writ.audit.record import format_ts

__all__ = ["MAX_KEPT", "Controls", "ErrorTotal", "KeyChange", "SignedSet", "Split", "Unsigned",
           "WriterError", "as_text", "epoch", "seq_key"]

MAX_KEPT = 500  # rows of each kind kept per node; more are counted
MAX_WHATS = 100  # distinct `what` of writer errors per node; the rest are "(other)"
SPLIT_AFTER = 60.0  # seconds workers may disagree (each switches on its own) unremarked


def as_text(value: Any) -> str:
    """A log field as one line of text (a list joined by commas)."""
    if isinstance(value, list):
        return ", ".join(as_text(v) for v in value)
    if value is None:
        return "-"
    return str(value)


def epoch(ts: str) -> float:
    """Seconds of a `ts` the scan's clock has already read (minute + seconds)."""
    return datetime.fromisoformat(ts[:16] + ":00+00:00").timestamp() + int(ts[17:19])


def seq_key(text: str) -> tuple[int, int, str]:
    """Manifest sequences and worker ids in numeric order, anything else after."""
    return (0, int(text), "") if text.isdigit() and len(text) < 20 else (1, 0, text)


def _instant(value: Any) -> str | None:
    """An RFC 3339 time as the writer's `ts` (comparable as text), or None."""
    if type(value) is not str:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return format_ts(dt.timestamp())
    except (ValueError, OverflowError, OSError):
        return None


@dataclass(slots=True)
class SignedSet:
    """One set going into force on one process tree of a node."""

    ts: str  # its first signed_set record
    sequence: str
    version: str
    digest: str
    signers: str
    created: str  # as a writer `ts` when it is a time, else as written
    expires: str  # as written
    expires_ts: str | None  # as a writer `ts`, None when not a time
    workers: list[str] = field(default_factory=list)
    decisions: int = 0
    last: str = ""
    late: int = 0  # decisions after expires_ts
    late_first: str = ""
    late_last: str = ""

    def after_expiry(self, ts: str) -> None:
        if not self.late:
            self.late_first = ts
        self.late += 1
        self.late_first = min(self.late_first, ts)
        self.late_last = max(self.late_last, ts)


@dataclass(slots=True)
class Unsigned:
    """Decisions naming one version that no earlier signed_set record put in force."""

    version: str
    before_first: bool  # before the node's first signed_set record
    first: str
    example: str  # a target, to look the records up
    decisions: int = 0
    last: str = ""
    expires_ts: None = None  # never expires: a tie like SignedSet for the scan's hot path

    def after_expiry(self, ts: str) -> None:  # never called: nothing expires
        raise AssertionError(ts)


@dataclass(frozen=True, slots=True)
class Split:
    start: str
    end: str
    seconds: float
    sequences: tuple[str, ...]
    at_end: bool  # still disagreeing when the log ends


@dataclass(frozen=True, slots=True)
class KeyChange:
    ts: str
    previous: str
    key: str
    created: bool | None  # the key file was missing and a new key was made


@dataclass(frozen=True, slots=True)
class WriterError:
    ts: str
    what: str
    count: str
    error: str


@dataclass(slots=True)
class ErrorTotal:
    what: str
    first: str
    last: str
    error: str  # the last message
    records: int = 0
    count: int = 0


@dataclass(slots=True)
class Controls:
    """One node's signed sets, key changes and writer errors, read in chain order."""

    sets: list[SignedSet] = field(default_factory=list)  # in order of going into force
    sets_total: int = 0
    signed_records: int = 0
    unsigned: dict[tuple[str, bool], Unsigned] = field(default_factory=dict)
    splits: list[Split] = field(default_factory=list)  # longer than SPLIT_AFTER
    short_splits: int = 0
    keys: list[KeyChange] = field(default_factory=list)
    keys_total: int = 0
    errors: list[WriterError] = field(default_factory=list)
    errors_records: int = 0
    errors_count: int = 0
    error_totals: dict[str, ErrorTotal] = field(default_factory=dict)
    # running state
    tree: int = 0
    in_force: dict[str, SignedSet] = field(default_factory=dict)  # version -> its latest set
    rows: dict[tuple[str, str, str], SignedSet] = field(default_factory=dict)  # this tree's
    workers: dict[str, SignedSet] = field(default_factory=dict)  # worker -> its set
    split_start: str | None = None
    split_sequences: set[str] = field(default_factory=set)

    def tie(self, version: Any, ts: str, target: Any) -> SignedSet | Unsigned:
        """What a decision naming `version` at `ts` is tied to (see the invariants)."""
        v = "(none)" if version is None else as_text(version)  # as signed() reads it
        ss = self.in_force.get(v)
        if ss is not None:
            return ss
        key = (v, not self.signed_records)
        un = self.unsigned.get(key)
        if un is None:
            un = self.unsigned[key] = Unsigned(v, key[1], ts, str(target), last=ts)
        return un

    def signed(self, rec: dict[str, Any], ts: str) -> None:
        self.signed_records += 1
        version = as_text(rec.get("blocklist_version"))
        sequence = as_text(rec.get("manifest_sequence"))
        digest = as_text(rec.get("manifest_digest"))
        key = (sequence, digest, version)
        row = self.rows.get(key)
        if row is None:
            expires = rec.get("manifest_expires")
            row = SignedSet(ts, sequence, version, digest, as_text(rec.get("signers")),
                            _instant(rec.get("manifest_created"))
                            or as_text(rec.get("manifest_created")), as_text(expires),
                            _instant(expires))
            self.sets_total += 1
            if len(self.sets) < MAX_KEPT * 4:
                self.sets.append(row)
            self.rows[key] = row
        worker = rec.get("worker")
        w = "" if worker is None else as_text(worker)
        if w and w not in row.workers and len(row.workers) < 64:
            row.workers.append(w)
        self.in_force[version] = row
        self.workers[w] = row
        self._agree(ts)

    def _agree(self, ts: str) -> None:
        on = {id(s): s for s in self.workers.values()}
        if len(on) > 1:
            if self.split_start is None:
                self.split_start = ts
            self.split_sequences.update(s.sequence for s in on.values())
        elif self.split_start is not None:
            self._end_split(ts, at_end=False)

    def _end_split(self, ts: str, *, at_end: bool) -> None:
        start = self.split_start
        assert start is not None
        secs = epoch(ts) - epoch(start)
        if secs > SPLIT_AFTER and len(self.splits) < MAX_KEPT:
            self.splits.append(Split(start, ts, secs, tuple(sorted(self.split_sequences,
                                                                   key=seq_key)), at_end))
        elif secs <= SPLIT_AFTER:
            self.short_splits += 1
        self.split_start = None
        self.split_sequences = set()

    def restart(self, ts: str) -> None:
        """A new process tree: its workers start again, its sets go into force anew."""
        if self.split_start is not None:
            self._end_split(ts, at_end=False)
        self.tree += 1
        self.rows = {}
        self.workers = {}

    def key_changed(self, rec: dict[str, Any], ts: str) -> None:
        self.keys_total += 1
        created = rec.get("key_created")
        if len(self.keys) < MAX_KEPT:
            self.keys.append(KeyChange(ts, as_text(rec.get("previous_key")),
                                       as_text(rec.get("key")),
                                       created if type(created) is bool else None))

    def error(self, rec: dict[str, Any], ts: str) -> None:
        what, count, message = (as_text(rec.get("what")), rec.get("count"),
                                as_text(rec.get("error")))
        n = count if type(count) is int and count > 0 else 0
        self.errors_records += 1
        self.errors_count += n
        if len(self.errors) < MAX_KEPT:
            self.errors.append(WriterError(ts, what, as_text(count), message))
        key = what if what in self.error_totals or len(self.error_totals) < MAX_WHATS \
            else "(other)"
        total = self.error_totals.get(key)
        if total is None:
            total = self.error_totals[key] = ErrorTotal(key, ts, ts, message)
        total.records += 1
        total.count += n
        if ts >= total.last:
            total.last, total.error = ts, message
        total.first = min(total.first, ts)

    def finish(self, last: str | None) -> None:
        """The log ends: a disagreement still running lasts until its last record."""
        if self.split_start is not None and last is not None:
            self._end_split(last, at_end=True)
