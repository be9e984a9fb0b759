"""AuditLog: the record, the chain across rotation and restarts, never losing a record."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.audit.support import decide, files, on_full_disk, policy, records, write_log
from writ.audit import AuditLog, verify
from writ.audit.record import canonical

FIELDS = {"ts", "seq", "node", "event", "component", "client", "client_key", "target",
          "decision", "action", "orders", "rule", "blocklist_version", "prev", "hash"}


def test_a_decision_record_has_the_documented_fields_and_hash(tmp_path: Path) -> None:
    with AuditLog(policy(tmp_path), "edge-1") as log:
        log.record(component="http", client="198.51.100.7", target="GET http://news.example/w",
                   decision="block", action="451", orders=["A-1", "B-2"], rule="url:x",
                   blocklist_version="v9")
    genesis, rec, seal = records(files(tmp_path)[0])
    assert set(rec) == FIELDS
    assert rec["event"] == "writ.http.decision"
    assert (rec["component"], rec["target"], rec["decision"], rec["action"], rec["orders"],
            rec["rule"], rec["blocklist_version"], rec["node"]) == (
        "http", "GET http://news.example/w", "block", "451", ["A-1", "B-2"], "url:x", "v9",
        "edge-1")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", rec["ts"])
    assert "198.51.100.7" not in json.dumps(rec)  # pseudonymised by default
    body = {k: v for k, v in rec.items() if k != "hash"}
    assert rec["hash"] == hashlib.sha256(canonical(body)).hexdigest()
    assert rec["prev"] == genesis["hash"]
    assert seal["prev"] == rec["hash"]
    assert (genesis["event"], genesis["seq"], genesis["prev"]) == (
        "writ.audit.genesis", 0, "0" * 64)
    assert (seal["event"], seal["count"], seal["last"]) == ("writ.audit.seal", 2, rec["hash"])


def test_rotation_by_size_links_files_into_one_chain(tmp_path: Path) -> None:
    paths = write_log(tmp_path, 50, rotate_bytes=4000)
    assert len(paths) > 3
    for older, newer in itertools.pairwise(paths):
        seal, head = records(older)[-1], records(newer)[0]
        assert seal["event"] == "writ.audit.seal"
        assert (head["event"], head["reason"], head["previous_seal"], head["prev"]) == (
            "writ.audit.continue", "rotation", seal["hash"], seal["hash"])
        assert head["previous_file"] == older.name
    assert verify(paths).ok


def test_rotation_by_time(tmp_path: Path) -> None:
    with AuditLog(policy(tmp_path, rotate_seconds=1), "n") as log:
        decide(log, 1)
        time.sleep(1.5)
        decide(log, 2)
    paths = files(tmp_path)
    assert len(paths) == 2
    assert verify(paths).ok


def test_restart_continues_the_chain_in_a_new_file(tmp_path: Path) -> None:
    write_log(tmp_path, 5)
    write_log(tmp_path, 5)
    paths = files(tmp_path)
    assert len(paths) == 2
    head = records(paths[1])[0]
    assert (head["reason"], head["seq"]) == ("restart", records(paths[0])[-1]["seq"] + 1)
    report = verify(paths)
    assert report.ok
    assert report.records == 2 * 7


CRASHING_WRITER = """
import os, sys
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from tests.audit.support import decide, policy
from writ.audit import AuditLog
log = AuditLog(policy(Path(sys.argv[1])), "edge-1").start()
for i in range(10):
    decide(log, i)
log.flush()
with open(log.path, "a") as f:
    f.write('{"seq": 11, "half-writ')  # a line the crash cut short
os._exit(0)  # no close(): no seal
"""


def test_a_crash_leaves_an_unsealed_file_that_the_restart_names(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(tmp_path), os.getcwd()],
                   check=True, timeout=60)
    write_log(tmp_path, 3)
    first, second = files(tmp_path)
    head = records(second)[0]
    assert head["reason"] == "recovered"
    assert head["last_good_seq"] == 10
    assert head["discarded_lines"] == 1
    report = verify([first, second])
    assert report.ok, report.findings
    assert "not sealed" in report.notices[0]
    assert "half-written" in report.notices[0]


def test_without_the_restart_record_an_unsealed_file_is_a_finding(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(tmp_path), os.getcwd()],
                   check=True, timeout=60)
    (f,) = verify(files(tmp_path)).findings
    assert f.kind in {"truncated", "corrupt line"}


def test_load_from_many_threads_loses_no_record(tmp_path: Path) -> None:
    threads, per_thread = 8, 5000
    log = AuditLog(policy(tmp_path, rotate_bytes=1_000_000), "n", queue_size=2000).start()

    def work(t: int) -> None:
        for i in range(per_thread):
            decide(log, t * per_thread + i)

    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    log.close()
    stats = log.stats()
    assert stats["records_written"] == threads * per_thread
    assert stats["drops"] == 0
    report = verify(files(tmp_path))
    assert report.ok
    decisions = sum(1 for p in files(tmp_path) for r in records(p)
                    if r["event"] == "writ.dns.decision")
    assert decisions == threads * per_thread
    targets = {r["target"] for p in files(tmp_path) for r in records(p) if "target" in r}
    assert len(targets) == threads * per_thread


def test_overflow_drops_are_counted_and_written_into_the_chain(tmp_path: Path) -> None:
    log = AuditLog(policy(tmp_path), "n", queue_size=5, wait_timeout=0.01)
    for i in range(20):  # the writer is not running yet: the queue cannot drain
        decide(log, i)
    assert log.stats()["drops"] == 15
    assert log.stats()["waits"] == 15
    with log:
        pass
    recs = records(files(tmp_path)[0])
    dropped = [r for r in recs if r["event"] == "writ.audit.dropped"]
    assert dropped[0]["count"] == 15
    assert sum(r["event"] == "writ.dns.decision" for r in recs) == 5
    assert verify(files(tmp_path)).ok


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_is_counted_not_hidden(tmp_path: Path) -> None:
    with AuditLog(on_full_disk(tmp_path), "n") as log:
        for i in range(7):
            decide(log, i)
        log.flush()
        assert log.stats()["drops"] == 7
        assert log.stats()["write_errors"] >= 1
        assert log.error is not None
        assert "decisions.000001.log" in log.error
    assert log.stats()["records_written"] == 0


def test_a_target_with_undecodable_bytes_is_logged_as_text_and_verifies(tmp_path: Path) -> None:
    # mitmproxy decodes a path with surrogateescape: bytes that are not UTF-8
    # arrive as lone surrogates, which UTF-8 (and so the log) cannot hold.
    with AuditLog(policy(tmp_path), "edge-1") as log:
        log.record(component="http", client="192.0.2.1", target="GET http://x.example/\udc80",
                   decision="block", action="451", orders=("A-1",), rule="r",
                   blocklist_version="v1")
        decide(log, 1)
    paths = files(tmp_path)
    report = verify(paths)
    assert report.ok, report.findings
    assert report.records == 4  # genesis, the two decisions, seal
    targets = [r["target"] for r in records(paths[0]) if r.get("component") == "http"]
    assert targets == ["GET http://x.example/\\udc80"]


def test_a_decision_that_cannot_be_rendered_is_counted_and_the_log_goes_on(
        tmp_path: Path) -> None:
    with AuditLog(policy(tmp_path), "edge-1") as log:
        decide(log, 0)
        log.flush()
        log.record(component="http", client="192.0.2.1", target=object(),  # type: ignore[arg-type]
                   decision="block", action="451", orders=("A-1",), rule="r",
                   blocklist_version="v1")
        log.flush()
        decide(log, 2)
    assert log.drops == 1
    assert "could not be rendered" in (log.error or "")
    paths = files(tmp_path)
    report = verify(paths)
    assert report.ok, report.findings
    recs = records(paths[0])
    assert [r["event"] for r in recs] == ["writ.audit.genesis", "writ.dns.decision",
                                          "writ.audit.dropped", "writ.audit.error",
                                          "writ.dns.decision", "writ.audit.seal"]
    assert recs[2]["count"] == 1
    assert recs[3]["what"] == "render"
    assert "could not be rendered" in recs[3]["error"]


def test_a_workers_batch_of_plain_tuples_is_written_whole_and_in_order(tmp_path: Path) -> None:
    """enqueue_many (the parent's end of `--workers`): plain tuples in Record's
    order, past the queue's soft bound too, each written once, in order."""
    from writ.audit import Action, Outcome
    log = AuditLog(policy(tmp_path), "edge-1", queue_size=8)
    batch = [(1_441_584_000.0 + i, "dns", "192.0.2.7", f"n{i}.blocked.example. A",
              Outcome.BLOCK, Action.SINKHOLE, ("EX-1",), f"domain:n{i}.blocked.example", "v1")
             for i in range(20)]
    with log:
        log.enqueue_many(batch[:5])  # fits: queued whole
        log.enqueue_many(batch[5:])  # past the bound: one by one, waiting for room
    written = [r for r in records(files(tmp_path)[0]) if r["event"] == "writ.dns.decision"]
    assert [r["target"] for r in written] == [f"n{i}.blocked.example. A" for i in range(20)]
    assert [r["rule"] for r in written][:2] == ["domain:n0.blocked.example",
                                                "domain:n1.blocked.example"]
    assert log.stats()["drops"] == 0
    assert verify(files(tmp_path)).ok
