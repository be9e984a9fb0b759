"""The parent's sums over its workers (writ.metrics.WorkerBoard) and how /metrics
shows them (writ.web.prom.render_workers): counters never go backwards, gauges
that differ per worker are shown per worker or as the worst one, labels escaped."""

from __future__ import annotations

import re
import threading
from typing import Any

from writ.metrics import STALE_AFTER, WorkerBoard
from writ.web.prom import render_workers

WRITER = {"records_written": 10, "drops": 0, "queue_depth": 2, "writer_ok": 1}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def snap(blocks: int, *, order: str = "EX-1", stale: float = 0.0, in_flight: float = 0.0,
         version: str = "v1", ready: bool = True, shed: float = 0.0) -> dict[str, Any]:
    return {"decisions": {("dns", "block", "sinkhole"): blocks},
            "by_order": {("dns", order): blocks},
            "stats": {"store_stale": stale, "dns_upstream_in_flight": in_flight,
                      "dns_shed": shed, "allows_not_logged": 0.0},
            "blocklist": (version, 3, 1, 0, 50.0) if ready else None, "ready": ready}


def board(writer: dict[str, int] | None = None) -> tuple[WorkerBoard, Clock]:
    clock = Clock()
    return WorkerBoard(2, lambda: dict(writer or WRITER), clock=clock), clock


def blocks(b: WorkerBoard) -> int:
    return b.totals()[0].decisions["dns", "block", "sinkhole"]


def test_counts_are_summed_over_workers_with_the_parents_writer() -> None:
    b, _ = board()
    b.update(0, 1, snap(5, in_flight=2))
    b.update(1, 1, snap(7, in_flight=3, shed=4))
    metrics, _, extra, _ = b.totals()
    assert metrics.decisions["dns", "block", "sinkhole"] == 12
    assert metrics.by_order["dns", "EX-1"] == 12
    assert extra["dns_upstream_in_flight"] == 5  # load: the node's total
    assert extra["dns_shed"] == 4
    assert extra["records_written"] == 10  # the parent's own audit writer
    assert extra["writer_ok"] == 1


def test_a_late_snapshot_never_takes_a_count_back() -> None:
    b, _ = board()
    b.update(0, 2, snap(9, shed=3))
    b.update(0, 1, snap(4, shed=1))  # sent before seq 2, arrived after it
    assert blocks(b) == 9
    assert b.totals()[2]["dns_shed"] == 3
    b.update(0, 3, snap(6, shed=0))  # a (buggy) smaller count: counters keep their maximum
    assert blocks(b) == 9
    assert b.totals()[2]["dns_shed"] == 3


def test_a_late_snapshot_still_counts_and_its_gauges_are_ignored() -> None:
    """Snapshots carry only the counts that changed: one arriving late still holds
    counts no later one repeats; its gauges are out of date."""
    b, _ = board()
    b.update(0, 2, {"decisions": {("dns", "allow", "pass"): 5}, "stats": {"store_stale": 0.0},
                    "blocklist": ("v2", 1, 0, 0, 0.0), "ready": True})
    b.update(0, 1, {"decisions": {("dns", "block", "sinkhole"): 3},
                    "stats": {"store_stale": 1.0}, "blocklist": ("v1", 1, 0, 0, 0.0),
                    "ready": True})
    metrics, blocklists, extra, _ = b.totals()
    assert metrics.decisions == {("dns", "allow", "pass"): 5, ("dns", "block", "sinkhole"): 3}
    assert extra["store_stale"] == 0
    assert blocklists[0] is not None
    assert blocklists[0].version == "v2"


def test_a_stopped_workers_counts_stay_in_the_sum() -> None:
    b, _ = board()
    b.update(0, 5, snap(5))
    b.update(1, 5, snap(5))
    b.update(1, 6, {"decisions": {}, "by_order": {}, "stats": {}, "blocklist": None,
                    "ready": False})  # an empty last word: the counts it sent before stay
    assert blocks(b) == 10


def test_gauges_that_differ_per_worker_show_the_worst_or_each_worker() -> None:
    b, clock = board()
    b.update(0, 1, snap(1, stale=0.0, version="v1"))
    b.update(1, 1, snap(1, stale=1.0, version="v2"))
    clock.now += 1.5
    metrics, blocklists, extra, ages = b.totals()
    assert extra["store_stale"] == 1  # one stale worker: the node is stale, not "2"
    text = render_workers(metrics, blocklists, 1000.0, extra, ages)
    assert 'writ_blocklist_info{version="v1",worker="0"} 1' in text
    assert 'writ_blocklist_info{version="v2",worker="1"} 1' in text
    assert 'writ_blocklist_rules{kind="domain",worker="1"} 3' in text
    assert 'writ_worker_report_age_seconds{worker="0"} 1.500' in text
    assert "writ_store_stale 1.0" in text
    assert "writ_blocklist_loaded 1" in text


def test_loaded_only_when_every_worker_has_a_blocklist() -> None:
    b, _ = board()
    b.update(0, 1, snap(0))
    b.update(1, 1, snap(0, ready=False))
    metrics, blocklists, extra, ages = b.totals()
    assert "writ_blocklist_loaded 0" in render_workers(metrics, blocklists, 0.0, extra, ages)


def test_ready_only_with_every_worker_reporting_recently_and_the_writer_ok() -> None:
    b, clock = board()
    assert b.readiness() == (False, "worker 0 has not reported yet")
    b.update(0, 1, snap(0))
    assert b.readiness() == (False, "worker 1 has not reported yet")
    b.update(1, 1, snap(0, ready=False))
    assert b.readiness() == (False, "worker 1 has no blocklist loaded yet")
    b.update(1, 2, snap(0))
    assert b.readiness() == (True, "2 workers ready")
    clock.now += STALE_AFTER + 1
    b.update(1, 3, snap(0))
    ready, detail = b.readiness()
    assert not ready
    assert detail == "worker 0 has not reported for 6 s"
    b.update(0, 2, snap(0))
    assert b.readiness()[0]
    down, _ = board({**WRITER, "writer_ok": 0})
    down.update(0, 1, snap(0))
    down.update(1, 1, snap(0))
    assert down.readiness()[0] is False
    assert "audit log cannot be written" in down.readiness()[1]


def test_hostile_label_values_are_escaped_and_each_sample_is_one_line() -> None:
    b, _ = board()
    evil = 'EX-"}\nwrit_fake_total 1e9\\' + "A" * 100_000
    b.update(0, 1, snap(1, order=evil, version='v"\n1'))
    b.update(1, 1, snap(1))
    text = render_workers(*_totals(b, 0.0))
    sample = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-z_]+="([^"\\\n]|\\["\\n])*",?)*\})? '
                        r"[-+0-9.e]+$")
    for line in text.splitlines():
        assert line.startswith("#") or sample.match(line), line[:200]
    assert "\nwrit_fake_total" not in text


def _totals(b: WorkerBoard, now: float) -> tuple[Any, ...]:
    metrics, blocklists, extra, ages = b.totals()
    return metrics, blocklists, now, extra, ages


def test_scrapes_while_workers_report_see_whole_snapshots() -> None:
    """The drainer thread updates (new order keys too) while the metrics thread
    reads: no read trips over a dict changing under it, and sums only grow."""
    b, _ = board()
    stop = threading.Event()

    def report() -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            for w in (0, 1):
                b.update(w, seq, snap(seq, order=f"EX-{seq % 50}"))

    t = threading.Thread(target=report)
    t.start()
    last = 0
    try:
        for _ in range(2000):
            metrics = b.totals()[0]
            n = metrics.decisions["dns", "block", "sinkhole"]
            assert n >= last
            last = n
    finally:
        stop.set()
        t.join()
