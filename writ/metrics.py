"""Decision counters shared by the shells, and what /metrics calls each count.

Neutral ground: dns, proxy and web never import each other, so the counters
live here. Each shell's recorder (writ.audit.Recorder) receives one Metrics
and calls `count()` for every decision, allowed ones included, so the metrics
see all traffic whatever the audit policy logs.

Invariants:
- Pure counters: plain dict increments on the event loop thread, no locks, no
  clock, no I/O. Rendering (Prometheus text) lives in writ.web.prom.
- Label cardinality is bounded by the number of orders, never by clients or
  targets: a target never becomes a label.
- Every number a component reports for /metrics (`STATS`) has one family
  name, type and help text here: what only grows is a counter named `_total`
  (Prometheus' rule; rate() depends on it), what goes up and down a gauge.
- With workers (`writ dns|proxy --workers N`) the parent's /metrics is the sum
  of the workers' snapshots (`WorkerBoard`, docs/operator.md §6): a counter
  never goes backwards, whatever order snapshots arrive in.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = ["STATS", "BlocklistGauge", "Family", "Metrics", "WorkerBoard", "store_gauges"]


class Metrics:
    """Decision counts by (component, decision, action) and by (component, order).

    A hot path may count in its own tally and hand the totals over later: it
    registers a flush with `add_source`, and reading `decisions` or `by_order`
    runs every flush first, so a reader always sees every decision made."""

    def __init__(self) -> None:
        self._decisions: Counter[tuple[str, str, str]] = Counter()
        self._by_order: Counter[tuple[str, str]] = Counter()
        self._sources: list[Callable[[], None]] = []

    def add_source(self, flush: Callable[[], None]) -> None:
        self._sources.append(flush)

    def _flush(self) -> None:
        for flush in self._sources:
            flush()

    @property
    def decisions(self) -> Counter[tuple[str, str, str]]:
        self._flush()
        return self._decisions

    @property
    def by_order(self) -> Counter[tuple[str, str]]:
        self._flush()
        return self._by_order

    def count(self, component: str, decision: str, action: str,
              orders: Sequence[str] = (), n: int = 1) -> None:
        self._decisions[component, decision, action] += n
        for oid in orders:
            self._by_order[component, oid] += n


class Family(NamedTuple):
    name: str
    kind: str  # "counter" | "gauge"
    help: str


def _counter(name: str, help_: str) -> Family:
    return Family(f"writ_{name}_total", "counter", help_)


def _gauge(name: str, help_: str) -> Family:
    return Family(f"writ_{name}", "gauge", help_)


# Key in the node's stats (the audit writer's, the resolver's, the recorders',
# the store's) -> its family. A key not listed is exposed as a gauge `writ_KEY`.
STATS: dict[str, Family] = {
    "records_written": _counter(
        "records_written", "Records the audit writer wrote (decisions and control records)."),
    "waits": _counter(
        "waits", "Times a decision waited for room in the full audit queue."),
    "drops": _counter(
        "drops", "Decisions that could not be written (queue overflow, write or render "
        "error); each drop is also written into the chain as a writ.audit.dropped record."),
    "queue_depth": _gauge("queue_depth", "Decisions queued for the audit writer, not yet written."),
    "write_errors": _counter(
        "write_errors", "Audit write failures (a batch the disk refused, a file that "
        "could not be opened, sealed or rotated)."),
    "batches": _counter("batches", "Batches of records the audit writer wrote."),
    "rotations": _counter("rotations", "Audit log files sealed and rotated to a new file."),
    "checkpoints": _counter("checkpoints", "Signed audit checkpoints written."),
    "checkpoint_push_failures": _counter(
        "checkpoint_push_failures", "Checkpoint copies that could not be pushed off the box "
        "(audit.checkpoint_push_file or checkpoint_push_redis)."),
    "writer_ok": _gauge(
        "writer_ok", "0 while the audit writer cannot write decisions (/readyz fails "
        "meanwhile), else 1."),
    "allows_not_logged": _counter(
        "allows_not_logged", "Allowed decisions kept out of the audit log (audit.log_allowed "
        "off); writ_decisions_total counts them."),
    "dns_refused_clients": _counter(
        "dns_refused_clients", "DNS queries refused by the client ACL (dns.allow_clients); "
        "not court-order decisions, so not in the audit chain."),
    "dns_no_blocklist": _counter(
        "dns_no_blocklist", "DNS queries met before any blocklist was loaded, answered by "
        "the policy's fail mode; not in the audit chain."),
    "dns_formerr": _counter(
        "dns_formerr", "DNS queries answered FORMERR (illegal names, two OPT records, a TSIG)."),
    "dns_servfail_upstream": _counter(
        "dns_servfail_upstream", "DNS queries answered SERVFAIL because no upstream answered "
        "usably (EDE 22 no reachable authority, 23 network error)."),
    "dns_shed": _counter(
        "dns_shed", "DNS queries shed under load (dns.upstream_queries reached), answered "
        "SERVFAIL with EDE 0."),
    "dns_stripped_records": _counter(
        "dns_stripped_records", "Upstream records owned by a blocked name, removed from an "
        "allowed answer."),
    "dns_rate_limited": _counter(
        "dns_rate_limited", "UDP queries over a client's dns.client_qps, answered as "
        "dns.over_limit says."),
    "dns_upstream_in_flight": _gauge(
        "dns_upstream_in_flight", "Upstream exchanges in flight (each holds one socket)."),
    "dns_tcp_connections": _gauge("dns_tcp_connections", "Open DNS TCP connections."),
    "dns_tcp_refused": _counter(
        "dns_tcp_refused", "DNS TCP connections closed at once: over dns.client_tcp_conns "
        "for the client or dns.max_tcp_conns in all."),
    "dns_tcp_aborted": _counter(
        "dns_tcp_aborted", "DNS TCP connections aborted after dns.tcp_idle, idle or stuck "
        "with unread answers (buffers freed)."),
    "dns_tcp_unsent_bytes": _gauge(
        "dns_tcp_unsent_bytes", "Answer bytes written to DNS TCP clients, not yet taken by "
        "the kernel."),
    "dns_udp_dropped": _counter(
        "dns_udp_dropped", "DNS UDP answers the kernel refused (send buffer full)."),
    "store_stale": _gauge(
        "store_stale", "1 while the node enforces its last good copy (the orders folder is "
        "invalid or Redis is unreachable), else 0."),
    "manifest_expired": _gauge(
        "manifest_expired", "1 while the signed set in force is past its manifest's expiry "
        "(still enforced; /readyz says expired), else 0. Only with trust.keyring and --redis."),
    "manifest_sequence": _gauge(
        "manifest_sequence", "Sequence of the signed manifest in force (trust.keyring, --redis)."),
    "sets_refused": _counter(
        "sets_refused", "Published sets this node refused since it started (bad or missing "
        "signature, replay, files not matching the manifest, expired); see the node's log."),
}


def store_gauges(status: Any) -> dict[str, float]:
    """The store's numbers for /metrics from its status (a StoreStatus-like value)."""
    out = {"store_stale": 1.0 if status.stale else 0.0}
    if status.manifest_sequence is not None or status.sets_refused:  # signed sets
        out["manifest_expired"] = 1.0 if status.alarm == "expired" else 0.0
        out["manifest_sequence"] = float(status.manifest_sequence or 0)
        out["sets_refused"] = float(status.sets_refused)
    return out


class BlocklistGauge(NamedTuple):
    """What /metrics says of the blocklist in force; `built` is a POSIX timestamp."""

    version: str
    domain: int
    url: int
    ip: int
    built: float


# Gauges that differ per worker and are summed would lie ("2 stale"): the parent
# shows the worst worker's value instead (docs/operator.md §6).
_WORST: dict[str, Callable[[Sequence[float]], float]] = {
    "store_stale": max, "manifest_expired": max, "manifest_sequence": min,
}
STALE_AFTER = 5.0  # seconds without a worker's snapshot before the parent is not ready


class WorkerBoard:
    """The parent's view of its workers: the latest snapshot of each, summed.

    A snapshot (writ.node.Node.snapshot) is plain data: `decisions`,
    `by_order` (cumulative counts), `stats` (STATS keys), `blocklist` (a
    BlocklistGauge as a tuple, or None) and `ready`; `decisions` and `by_order`
    may hold only the keys that changed since the worker's previous snapshot.
    `update` runs on the drainer thread, the readers on the metrics server's:
    one lock between them.

    Counters are merged per worker by maximum, so no count of a worker ever
    shrinks and the sums never go backwards, whatever order snapshots arrive
    in; the gauges of a snapshot that arrives late (a lower `seq`) are
    ignored. A worker's last snapshot stays after it stopped."""

    def __init__(self, workers: int, local: Callable[[], Mapping[str, float]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.workers = workers
        self.local = local  # this process's own numbers (its audit writer's)
        self.clock = clock
        self._lock = threading.Lock()
        self._seq: dict[int, int] = {}
        self._seen: dict[int, float] = {}
        self._decisions: dict[int, dict[tuple[str, str, str], int]] = {}
        self._by_order: dict[int, dict[tuple[str, str], int]] = {}
        self._stats: dict[int, dict[str, float]] = {}
        self._blocklist: dict[int, BlocklistGauge | None] = {}
        self._ready: dict[int, bool] = {}

    def update(self, worker: int, seq: int, snap: Mapping[str, Any]) -> None:
        with self._lock:
            # Counters: the maximum, whatever order snapshots come in (a worker
            # may send only the counts that changed since its last snapshot).
            _merge_max(self._decisions.setdefault(worker, {}), snap.get("decisions", {}))
            _merge_max(self._by_order.setdefault(worker, {}), snap.get("by_order", {}))
            stats = self._stats.setdefault(worker, {})
            late = seq <= self._seq.get(worker, -1)  # older than the one kept
            for key, value in snap.get("stats", {}).items():
                if (f := STATS.get(key)) is not None and f.kind == "counter":
                    stats[key] = max(stats.get(key, value), value)
                elif not late:
                    stats[key] = value
            if late:
                return  # its gauges are out of date
            self._seq[worker] = seq
            self._seen[worker] = self.clock()
            bl = snap.get("blocklist")
            self._blocklist[worker] = BlocklistGauge(*bl) if bl is not None else None
            self._ready[worker] = bool(snap.get("ready"))

    def totals(self) -> tuple[Metrics, dict[int, BlocklistGauge | None], dict[str, float],
                              dict[int, float]]:
        """(summed decisions, each worker's blocklist, summed and worst stats with this
        process's own, seconds since each worker last reported)."""
        with self._lock:
            metrics = Metrics()
            for per in self._decisions.values():
                metrics.decisions.update(per)
            for per_order in self._by_order.values():
                metrics.by_order.update(per_order)
            gathered: dict[str, list[float]] = {}
            for stats in self._stats.values():
                for key, value in stats.items():
                    gathered.setdefault(key, []).append(value)
            blocklists = dict(self._blocklist)
            now = self.clock()
            ages = {w: now - t for w, t in self._seen.items()}
        extra = {k: _WORST.get(k, sum)(v) for k, v in gathered.items()}
        extra.update(self.local())
        return metrics, blocklists, extra, ages

    def readiness(self) -> tuple[bool, str]:
        """Ready when every worker reported, recently, with a blocklist in force,
        and this process's audit writer can write (docs/operator.md §6)."""
        _, _, extra, ages = self.totals()
        with self._lock:
            ready = dict(self._ready)
        for w in range(self.workers):
            if w not in ages:
                return False, f"worker {w} has not reported yet"
            if ages[w] > STALE_AFTER:
                return False, f"worker {w} has not reported for {ages[w]:.0f} s"
            if not ready[w]:
                return False, f"worker {w} has no blocklist loaded yet"
        if not extra.get("writer_ok", 1):
            return False, ("the audit log cannot be written: decisions are not recorded "
                           "(see writ_write_errors_total and the node's log)")
        return True, f"{self.workers} workers ready"


def _merge_max(into: dict[Any, int], new: Mapping[Any, int]) -> None:
    for key, n in new.items():
        if n > into.get(key, 0):
            into[key] = n
