"""The one recorder: every decision counted, allows kept only when the policy
asks, one typed Record, enums that leave the log's bytes unchanged."""

from __future__ import annotations

from pathlib import Path

from tests.audit.support import files, policy, records
from writ.audit import Action, AuditLog, Component, MemorySink, Outcome, Record, Recorder
from writ.audit.record import render_line
from writ.audit.recorder import TALLY_MAX
from writ.metrics import Metrics


def _decide(recorder: Recorder, decision: Outcome, action: Action) -> None:
    recorder.decided(Component.DNS, "192.0.2.1", "n.videohost.example. A", decision, action,
                     ("EX-2015-0907-VH",), "domain videohost.example", "v1")


def test_allows_are_counted_always_and_logged_only_when_the_policy_asks(tmp_path: Path) -> None:
    metrics = Metrics()
    with AuditLog(policy(tmp_path / "a"), "n") as log:
        recorder = Recorder(log, log_allowed=False, metrics=metrics)
        _decide(recorder, Outcome.ALLOW, Action.PASS)
        _decide(recorder, Outcome.BLOCK, Action.SINKHOLE)
    assert recorder.allows_not_logged == 1
    assert [r["decision"] for r in records(files(tmp_path / "a")[0])[1:-1]] == ["block"]
    assert metrics.decisions == {("dns", "allow", "pass"): 1, ("dns", "block", "sinkhole"): 1}
    with AuditLog(policy(tmp_path / "b"), "n") as log:
        _decide(Recorder(log, log_allowed=True), Outcome.ALLOW, Action.PASS)
    assert records(files(tmp_path / "b")[0])[1]["decision"] == "allow"


def test_a_target_function_is_called_only_for_a_kept_record() -> None:
    calls: list[str] = []

    def target() -> str:
        calls.append("built")
        return "GET http://news.example/"

    sink = MemorySink()
    recorder = Recorder(sink, log_allowed=False, metrics=Metrics())
    recorder.decided(Component.HTTP, "192.0.2.1", target, Outcome.ALLOW, Action.PASS)
    assert (calls, sink.records) == ([], [])
    recorder.decided(Component.HTTP, "192.0.2.1", target, Outcome.BLOCK, Action.HTTP_451)
    assert calls == ["built"]
    assert sink.records[0]["target"] == "GET http://news.example/"


def test_the_hot_path_line_makes_the_same_record_as_decided() -> None:
    a, b = MemorySink(), MemorySink()
    line = ("n.videohost.example. A", Outcome.BLOCK, Action.NXDOMAIN, ("EX-1",), "r", "v1")
    Recorder(a, log_allowed=False).line(Component.DNS, "192.0.2.1", line)
    Recorder(b, log_allowed=False).decided(Component.DNS, "192.0.2.1", *line)
    assert a.records == b.records
    assert a.records[0]["component"] == "dns"


def test_a_record_of_enums_renders_the_bytes_of_plain_strings() -> None:
    """The audit chain's format does not change: StrEnum members render, and
    hash, exactly as the strings they stand for (fast path and generic path)."""
    for decision in Outcome:
        for action in Action:
            rec = Record(0.0, Component.HTTP, "c", "t", decision, action, ("EX-1",), None, None)
            body = {"event": "writ.http.decision", "ts": "2015-09-07T00:00:00.000000Z",
                    "node": "edge-1", "client_key": None, "prev": "0" * 64, "seq": 1,
                    **rec._asdict()}
            del body["ts"]
            body["ts"] = "2015-09-07T00:00:00.000000Z"
            body["orders"] = list(rec.orders)
            plain = {k: (str(v) if isinstance(v, str) else v) for k, v in body.items()}
            plain["decision"], plain["action"] = decision.value, action.value
            assert type(plain["decision"]) is str
            assert render_line(body) == render_line(plain)
            extra = {**body, "reason": Outcome.ERROR}  # not a decision's keys: generic path
            assert render_line(extra) == render_line({**plain, "reason": "error"})


def test_hot_path_counts_reach_the_metrics_on_every_read_and_the_tally_stays_bounded() -> None:
    """The resolver's hot path tallies instead of counting into the metrics per
    answer: every read of the metrics must still see every decision, and a flood
    of distinct decisions must not grow the tally without end."""
    metrics = Metrics()
    sink = MemorySink()
    recorder = Recorder(sink, log_allowed=False, metrics=metrics)
    hot = recorder.liner(Component.DNS)
    allow = ("news.example. A", Outcome.ALLOW, Action.PASS, (), None, "v1")
    for _ in range(3):
        hot("192.0.2.1", allow)
    assert metrics.decisions == {("dns", "allow", "pass"): 3}
    hot("192.0.2.1", allow)
    assert recorder.allows_not_logged == 4
    for i in range(TALLY_MAX * 2 + 7):  # distinct orders: each a key of its own
        hot("192.0.2.1", (f"n{i}.videohost.example. A", Outcome.BLOCK, Action.NXDOMAIN,
                          (f"EX-{i}",), "r", "v1"))
        assert sum(map(len, recorder._tallies.values())) <= TALLY_MAX
    assert metrics.decisions[("dns", "block", "nxdomain")] == TALLY_MAX * 2 + 7
    assert all(metrics.by_order[("dns", f"EX-{i}")] == 1 for i in range(TALLY_MAX * 2 + 7))
    assert metrics.decisions[("dns", "allow", "pass")] == 4
    assert len(sink.records) == TALLY_MAX * 2 + 7  # every block kept, no allow
