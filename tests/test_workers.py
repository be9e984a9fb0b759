"""The record queue between workers and their parent (writ.workers): counters
travel beside the records, never into the chain, and never stop them."""

from __future__ import annotations

import queue
from typing import Any

from writ.audit import MemorySink
from writ.workers import QueueSink, WorkerStats, _drain


def _record_tuple(target: str) -> tuple[Any, ...]:
    from writ.audit import Record

    fields = Record._fields
    values = dict.fromkeys(fields)
    values.update(target=target, orders=())
    return tuple(values[f] for f in fields)


def test_snapshots_go_to_on_stats_and_never_to_the_sink() -> None:
    q: queue.Queue[Any] = queue.Queue()
    sink = QueueSink(q, worker=3)
    sink.stats({"decisions": {}})
    sink.stats({"decisions": {("dns", "block", "sinkhole"): 1}})
    q.put([_record_tuple("a.example")])
    q.put(None)
    got: list[tuple[int, int, dict[str, Any]]] = []
    memory = MemorySink()
    _drain(q, memory, lambda w, seq, snap: got.append((w, seq, snap)))
    assert [(w, seq) for w, seq, _ in got] == [(3, 1), (3, 2)]
    assert [r["target"] for r in memory.records] == ["a.example"]


def test_a_snapshot_that_breaks_on_stats_never_stops_the_records() -> None:
    q: queue.Queue[Any] = queue.Queue()
    q.put(WorkerStats(0, 1, {"blocklist": "not a tuple"}))
    q.put([_record_tuple("after.example")])
    q.put(None)
    memory = MemorySink()

    def broken(worker: int, seq: int, snap: dict[str, Any]) -> None:
        raise TypeError("bad snapshot")

    _drain(q, memory, broken)
    assert [r["target"] for r in memory.records] == ["after.example"]


def test_a_worker_sends_only_the_counts_that_changed() -> None:
    from writ.metrics import WorkerBoard
    from writ.node import _Changes

    changes = _Changes()
    board = WorkerBoard(1, dict)
    snaps = [{"decisions": {("dns", "block", "sinkhole"): 1}, "by_order": {("dns", "A"): 1}},
             {"decisions": {("dns", "block", "sinkhole"): 1}, "by_order": {("dns", "A"): 1}},
             {"decisions": {("dns", "block", "sinkhole"): 2, ("dns", "allow", "pass"): 1},
              "by_order": {("dns", "A"): 1, ("dns", "B"): 1}}]
    sent = [changes({**s, "stats": {}, "blocklist": None, "ready": True}) for s in snaps]
    assert [s["by_order"] for s in sent] == [{("dns", "A"): 1}, {}, {("dns", "B"): 1}]
    for seq, s in enumerate(sent, 1):
        board.update(0, seq, s)
    metrics = board.totals()[0]
    assert metrics.decisions == snaps[2]["decisions"]
    assert metrics.by_order == snaps[2]["by_order"]
