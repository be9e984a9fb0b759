"""The recorder's cost per DNS answer: the hot path (`Recorder.liner`) beside the generic one.

    python bench/bench_recorder.py [--quick] [--rounds R] [--calls N]

Every answer the resolver gives, cache hits included, is handed to the
recorder (docs/design.md §5). `liner` tallies what the metrics count and
builds a record only when the log keeps it; `decided` counts into `Metrics`
on every call (what the hot path did before the tally). Both with a
`Metrics`, as writ.node wires them, `audit.log_allowed: false`, and a sink
that keeps each record (one list append). Median over R alternating rounds
of the best of 3 timings each, µs per call (wall clock of a tight loop; on
a shared machine read the ratio, not the absolute numbers).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from writ.audit import Action, Component, Outcome, Record, Recorder
from writ.metrics import Metrics

ALLOW = ("a1.allowed.test. A", Outcome.ALLOW, Action.PASS, (), None, "v1")
BLOCK = ("n1.blocked1.test. A", Outcome.BLOCK, Action.SINKHOLE, ("BENCH-0001",),
         "domain n1.blocked1.test", "v1")


class _Sink:
    def __init__(self) -> None:
        self.records: list[Record] = []

    def enqueue(self, record: Record) -> None:
        self.records.append(record)
        if len(self.records) > 4096:
            self.records.clear()


def _calls(hot: bool, line: tuple) -> Callable[[], None]:  # type: ignore[type-arg]
    recorder = Recorder(_Sink(), log_allowed=False, metrics=Metrics())
    if hot:
        f = recorder.liner(Component.DNS)
        return lambda: f("192.0.2.1", line)
    return lambda: recorder.decided(Component.DNS, "192.0.2.1", *line)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 rounds of 50,000 calls")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--calls", type=int, default=None)
    a = ap.parse_args(argv)
    a.rounds = a.rounds or (3 if a.quick else 7)
    a.calls = a.calls or (50_000 if a.quick else 200_000)
    cases = {(path, kind): _calls(path == "liner", line)
             for path in ("decided", "liner") for kind, line in (("allowed", ALLOW),
                                                                  ("blocked", BLOCK))}
    empty = min(timeit.repeat(lambda: None, number=a.calls, repeat=3)) / a.calls * 1e6
    got: dict[tuple[str, str], list[float]] = {k: [] for k in cases}
    for _ in range(a.rounds):
        for k, f in cases.items():
            best = min(timeit.repeat(f, number=a.calls, repeat=3)) / a.calls * 1e6
            got[k].append(best - empty)
    print(f"# bench_recorder: {a.rounds} rounds x {a.calls} calls, µs per call "
          f"(the empty lambda's {empty:.3f} µs subtracted)")
    print("| answer | decided (per-call Metrics.count) | liner (tally) | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for kind in ("allowed", "blocked"):
        old = statistics.median(got["decided", kind])
        new = statistics.median(got["liner", kind])
        print(f"| {kind} | {old:.3f} | {new:.3f} | {new / old:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
