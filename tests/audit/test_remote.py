"""Several worker processes, one chain per node (AuditLog.serve + SocketSink)."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from tests.audit.support import decide, files, policy, records
from writ.audit import AuditLog, SocketSink, verify

PER_WORKER = 2000


def _worker(sock: str, worker: int) -> None:
    sink = SocketSink(Path(sock))
    for i in range(PER_WORKER):
        decide(sink, worker * PER_WORKER + i)
    sink.close()
    assert sink.drops == 0


def test_worker_processes_write_one_chain(tmp_path: Path) -> None:
    sock = tmp_path / "audit.sock"
    ctx = multiprocessing.get_context("spawn")  # what a resolver with workers would use
    with AuditLog(policy(tmp_path), "edge-1") as log:
        server = log.serve(sock)
        procs = [ctx.Process(target=_worker, args=(str(sock), w)) for w in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
            assert p.exitcode == 0
        deadline = time.monotonic() + 10
        while server.received < 3 * PER_WORKER and time.monotonic() < deadline:
            time.sleep(0.01)
    assert server.received == 3 * PER_WORKER
    (path,) = files(tmp_path)
    recs = records(path)
    assert sum(r["event"] == "writ.dns.decision" for r in recs) == 3 * PER_WORKER
    assert len({r["target"] for r in recs if "target" in r}) == 3 * PER_WORKER
    assert verify([path]).ok


def test_a_worker_whose_parent_is_gone_counts_drops_and_reports_them_later(
        tmp_path: Path) -> None:
    sock = tmp_path / "audit.sock"
    sink = SocketSink(sock, timeout=0.1)
    for i in range(10):
        decide(sink, i)
    deadline = time.monotonic() + 5
    while sink.drops < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sink.drops == 10  # nobody listening: counted, never blocking the caller
    with AuditLog(policy(tmp_path), "edge-1") as log:
        log.serve(sock)
        decide(sink, 99)
        sink.close()
        deadline = time.monotonic() + 5
        while log.stats()["records_written"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    recs = records(files(tmp_path)[0])
    assert [r["count"] for r in recs if r["event"] == "writ.audit.dropped"] == [10]
    assert verify(files(tmp_path)).ok
