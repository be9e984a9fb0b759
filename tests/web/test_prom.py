"""/metrics as Prometheus reads it: monotonic counts are counters named
`_total`, every family has a TYPE and HELP that says what it counts, every
sample belongs to a declared family."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from writ.blocklist import Act, ActKind, Blocklist, BlocklistHolder, Target, TargetKind
from writ.metrics import STATS, Metrics
from writ.web.prom import render

# What a running node reports (Node._stats): the audit writer's, the resolver's
# and the recorders' counts, and the store's staleness.
NODE_STATS = {"records_written": 7.0, "waits": 0.0, "drops": 1.0, "queue_depth": 3.0,
              "write_errors": 0.0, "batches": 2.0, "rotations": 0.0, "checkpoints": 1.0,
              "checkpoint_push_failures": 0.0, "allows_not_logged": 5.0,
              "dns_refused_clients": 2.0, "dns_no_blocklist": 0.0, "store_stale": 0.0}
MONOTONIC = {"records_written", "waits", "drops", "write_errors", "batches", "rotations",
             "checkpoints", "checkpoint_push_failures", "allows_not_logged",
             "dns_refused_clients", "dns_no_blocklist"}


def _families(text: str) -> tuple[dict[str, str], dict[str, str], list[str]]:
    kinds, helps, samples = {}, {}, []
    for line in text.splitlines():
        if m := re.fullmatch(r"# TYPE (\S+) (counter|gauge)", line):
            kinds[m[1]] = m[2]
        elif m := re.fullmatch(r"# HELP (\S+) (.+)", line):
            helps[m[1]] = m[2]
        else:
            samples.append(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)[0])  # type: ignore[index]
    return kinds, helps, samples


def _text() -> str:
    metrics = Metrics()
    metrics.count("dns", "block", "sinkhole", ("EX-1",))
    holder = BlocklistHolder()
    act = Act(id="EX-1", kind=ActKind.BLOCK, court="Test Court", case="1/1",
              issued=date(2015, 9, 7), effective=datetime(2015, 9, 7, tzinfo=UTC),
              targets=(Target(TargetKind.DOMAIN, "videohost.example"),))
    holder.set(Blocklist((act,)), datetime(2016, 1, 1, tzinfo=UTC))
    return render(metrics, holder.index, datetime(2016, 1, 1, tzinfo=UTC).timestamp(),
                  NODE_STATS)


def test_monotonic_counts_are_counters_named_total() -> None:
    kinds, _, _ = _families(_text())
    for key in MONOTONIC:
        name = STATS[key].name
        assert name.endswith("_total"), name
        assert kinds[name] == "counter", name
    for name, kind in kinds.items():
        assert (kind == "counter") == name.endswith("_total"), name


def test_every_family_says_what_it_counts_and_every_sample_is_declared() -> None:
    kinds, helps, samples = _families(_text())
    assert kinds.keys() == helps.keys()
    assert all("reported by its component" not in h and len(h) > 20 for h in helps.values())
    assert set(samples) <= kinds.keys()
    assert kinds.get("writ_store_stale") == "gauge"


def test_an_unknown_stat_is_still_exposed_as_a_gauge() -> None:
    text = render(Metrics(), None, 0.0, {"something_new": 1.0})
    assert "# TYPE writ_something_new gauge" in text
    assert "writ_something_new 1.0" in text
