"""The signed sets each node enforced, its key changes and its writer's errors, in
`writ audit report --html` (logs from signed.py, written by the real writer)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.audit.htmlreport import signed
from tests.audit.htmlreport.page import table
from tests.audit.htmlreport.scenario import Clock, audit_policy
from tests.audit.htmlreport.scenario import build as build_plain
from tests.audit.htmlreport.signed import at, ts
from tests.audit.support import records
from writ.audit import AuditLog, load_public_key
from writ.audit.checkpoint import key_id
from writ.audit.files import chain_files
from writ.cli import main


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return signed.build(tmp_path_factory.mktemp("signed"))


def report(tmp: Path, files: list[Path], *extra: str, name: str = "report.html") -> str:
    out = tmp / name
    assert main(["audit", "report", "--html", str(out), *extra, *map(str, files)]) == 0
    return out.read_text(encoding="utf-8")


def _rows(html: str, container: str, *cols: str) -> list[tuple[str, ...]]:
    return [tuple(r[c] for c in cols) for r in table(html, container)]


def test_each_signed_set_in_force_is_listed_with_the_decisions_it_covered(
        tmp_path: Path, logs: list[Path]) -> None:
    html = report(tmp_path, logs)
    cols = ("in force from", "manifest sequence", "blocklist version", "signers", "expires",
            "workers", "decisions", "after expiry")
    assert _rows(html, "sets-edge-s", *cols) == [
        (ts(1), "1", "v1", "demo-publisher", ts(6), "-", "4", "2"),
        (ts(9), "2", "v2", "demo-publisher, second-publisher", ts(33), "-", "1", "0"),
        (ts(12), "3", "v2", "demo-publisher", ts(48), "-", "2", "0"),
    ]
    assert _rows(html, "sets-edge-w", "in force from", "manifest sequence", "workers",
                 "decisions") == [
        (ts(0, 60), "1", "101, 102", "2"),
        (ts(2), "2", "101, 102", "1"),
        (ts(4), "3", "101, 102", "1"),
        (ts(5, 660), "3", "201, 202", "1"),  # after a restart: in force again
        (ts(6), "4", "201", "1"),
    ]


def test_decisions_naming_a_version_no_earlier_signed_set_put_in_force_are_findings(
        tmp_path: Path, logs: list[Path]) -> None:
    html = report(tmp_path, logs)
    assert _rows(html, "unsigned", "node", "blocklist version", "decisions", "first",
                 "e.g. target") == [
        ("edge-s", "v0", "1", ts(0, 600), "videohost.example. A"),
        ("edge-s", "v9", "1", ts(11), "unsigned.example. A"),
    ]
    why = [r["why"] for r in table(html, "unsigned")]
    assert why == ["before the node's first signed set",
                   "no earlier signed_set record of this node names this version"]
    assert "2 decision(s) named a blocklist version no signed set had put in force" in html


def test_a_set_in_force_past_its_expiry_is_a_finding(tmp_path: Path, logs: list[Path]) -> None:
    html = report(tmp_path, logs)
    assert _rows(html, "expired", "node", "manifest sequence", "blocklist version", "expires",
                 "decisions after expiry", "first", "last") == [
        ("edge-s", "1", "v1", ts(6), "2", ts(7), ts(8))]


def test_workers_of_one_node_on_different_sets_for_long_are_a_finding(
        tmp_path: Path, logs: list[Path]) -> None:
    html = report(tmp_path, logs)
    assert _rows(html, "splits", "node", "from", "until", "for", "manifest sequences") == [
        ("edge-w", ts(2), ts(3.5), "1 h 30 min", "1, 2"),
        ("edge-w", ts(6), ts(7) + " (end of the log)", "1 h 00 min", "3, 4"),
    ]
    assert "1 shorter disagreement" in html  # the 20 s one at 04:00


def test_a_key_change_and_the_writers_errors_are_listed_and_found(
        tmp_path: Path, logs: list[Path]) -> None:
    html = report(tmp_path, logs)
    changes = [r for p in logs for r in records(p) if r["event"] == "writ.audit.key_changed"]
    assert len(changes) == 1  # the real writer wrote it
    new = key_id(load_public_key(logs[0].parent / "signing.key"))
    assert changes[0]["key"] == new
    assert _rows(html, "key-changes", "node", "time", "previous key", "new key",
                 "key file") == [
        ("edge-s", ts(15), changes[0]["previous_key"], new, "missing: a new key was made")]
    assert _rows(html, "writer-errors", "node", "what", "records", "count", "first", "last",
                 "last error") == [
        ("edge-s", "checkpoint push", "2", "5", ts(16), ts(17),
         "checkpoint push: /srv/cp.log: Read-only"),
        ("edge-s", "render", "1", "1", ts(17.5), ts(17.5), "a decision could not be rendered"),
    ]
    assert _rows(html, "errors-edge-s", "time", "what", "count") == [
        (ts(16), "checkpoint push", "3"), (ts(17), "checkpoint push", "2"),
        (ts(17.5), "render", "1")]
    assert _rows(html, "keys-edge-s", "time", "new key") == [(ts(15), new)]
    gaps = {r["node"]: r for r in table(html, "gaps")}
    assert (gaps["edge-s"]["key changes"], gaps["edge-s"]["writer errors"]) == ("1", "6")
    assert (gaps["edge-w"]["key changes"], gaps["edge-w"]["writer errors"]) == ("0", "0")
    marks = [(r["time"], r["mark"]) for r in table(html, "marks") if r["node"] == "edge-s"]
    assert (ts(15), "key changed") in marks
    assert (ts(16), "writer error") in marks


def test_nodes_without_signed_sets_are_not_judged_by_them(tmp_path: Path,
                                                         logs: list[Path]) -> None:
    plain, _ = build_plain(tmp_path / "plain")
    html = report(tmp_path, [*plain, *logs])
    assert {r["node"] for r in table(html, "unsigned")} == {"edge-s"}
    assert "Not judged, no signed_set record in the log: edge-1, edge-2." in html
    only_plain = report(tmp_path, plain, name="plain.html")
    assert 'id="unsigned-none"' not in only_plain
    assert "Not computed: no node's log holds a <code>writ.blocklist.signed_set</code>" \
        in only_plain
    assert table(only_plain, "key-changes") == []
    assert 'id="keys-none"' in only_plain
    assert 'id="errors-none"' in only_plain


def test_the_new_sections_keep_the_same_bytes_across_hash_seeds(tmp_path: Path,
                                                                logs: list[Path]) -> None:
    import os
    import subprocess
    import sys

    pages = []
    for seed in ("1", "3"):
        out = tmp_path / f"seed{seed}.html"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-m", "writ.cli", "audit", "report", "--html", str(out),
                        *map(str, logs)], env=env, check=True, capture_output=True, timeout=120)
        pages.append(out.read_bytes())
    assert pages[0] == pages[1]
    assert b'id="sets-edge-w"' in pages[0]


HOSTILE = '"><script>alert(1)</script><img src=x onerror=alert(2)>'


def hostile_log(folder: Path) -> list[Path]:
    clock = Clock()
    clock.at(at(0))
    log = AuditLog(audit_policy(folder), "edge-h", clock=clock).start()
    signed.signed_set(log, clock, at(1), f"v{HOSTILE}", f"7{HOSTILE}", f"soon{HOSTILE}",
                      signers=[HOSTILE, "x" * 300], worker=HOSTILE, digest=HOSTILE)
    signed.signed_set(log, clock, at(1, 5), "v2", {"a": HOSTILE}, at(2), signers=HOSTILE,
                      worker=[1])
    signed.decide(log, clock, at(1.5), f"v{HOSTILE}")
    signed.decide(log, clock, at(2.5), "v2")
    signed.decide(log, clock, at(3), HOSTILE)
    signed.error(log, clock, at(4), f"what{HOSTILE}", 2, f"error{HOSTILE}")
    clock.at(at(4, 1))
    log.control(signed.ERROR, what=None, count="many", error=[HOSTILE])
    clock.at(at(5))
    log.close()
    return [p for _, p in chain_files(folder / "decisions.log")]


def test_hostile_signed_set_and_error_fields_stay_text(tmp_path: Path) -> None:
    """Every field of a control record is whatever the log holds: markup stays text,
    odd types (a dict sequence, a string count, a list worker) do not crash the page,
    and an expiry that is not a time is shown, not judged."""
    files = hostile_log(tmp_path / "h")
    assert main(["audit", "verify", *map(str, files)]) == 0
    html = report(tmp_path, files)
    low = html.lower()
    assert "<script" not in low
    assert "<img" not in low
    assert "onerror=alert(2)&gt;" in html
    rows = table(html, "sets-edge-h")
    assert len(rows) == 2
    assert rows[0]["signers"] == f"{HOSTILE}, {'x' * 300}"
    assert rows[0]["expires"] == f"soon{HOSTILE} (not a time)"
    assert rows[0]["decisions"] == "1"
    assert _rows(html, "expired", "node", "decisions after expiry") == [("edge-h", "1")]
    assert _rows(html, "unsigned", "blocklist version", "decisions") == [(HOSTILE, "1")]
    errors = _rows(html, "writer-errors", "what", "count", "last error")
    assert (f"what{HOSTILE}", "2", f"error{HOSTILE}") in errors
    assert len(errors) == 2


def test_a_real_checkpoint_push_failure_is_counted_as_the_log_says(tmp_path: Path) -> None:
    """The writer's own failure path: a checkpoint copy it cannot write."""
    import dataclasses
    import time

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    folder = tmp_path / "n"
    pol = dataclasses.replace(audit_policy(folder), checkpoint_every=3)
    with AuditLog(pol, "edge-p", checkpoint_push=blocker / "cp.log") as log:
        for i in range(4):
            log.record(component="dns", client="192.0.2.7", target=f"n{i}.example. A",
                       decision="block", action="sinkhole", orders=("EX-A",),
                       rule="domain n.example", blocklist_version="v1")
            log.flush()
        deadline = time.monotonic() + 30
        while log.stats()["checkpoint_push_failures"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    files = [p for _, p in chain_files(folder / "decisions.log")]
    written = [r for p in files for r in records(p) if r["event"] == "writ.audit.error"]
    assert written, "the writer wrote its failure into the chain"
    html = report(tmp_path, files)
    assert _rows(html, "writer-errors", "node", "what", "records", "count") == [
        ("edge-p", "checkpoint push", str(len(written)),
         str(sum(r["count"] for r in written)))]
    assert re.search(r'class="finding" id="errors-count"', html)
