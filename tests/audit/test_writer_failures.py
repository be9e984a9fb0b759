"""The audit writer never dies silently (issue 12, finding 1).

Nothing raised inside the writer thread ends it; every failure is counted,
logged (rate-limited) and written into the chain once writing works; a writer
that cannot write says so (stats()["writer_ok"], which /readyz reads) and
follows `audit.on_failure`.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from tests.audit.support import decide, files, on_full_disk, policy, records
from tests.blocklist.stores.test_sentinel import sentinel_url  # noqa: F401 - a fixture
from tests.conftest import free_port
from writ.audit import AuditLog, load_public_key, read_checkpoints, verify


def _verify_all(tmp: Path) -> None:
    audit = tmp / "audit"
    report = verify(files(tmp), checkpoints=read_checkpoints(audit / "checkpoints.log"),
                    public_key=load_public_key(audit / "signing.key"))
    assert report.ok, report.findings


def test_a_sentinel_url_for_the_checkpoint_push_does_not_end_the_writer(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # Nothing listens there: the push fails at every checkpoint, the log goes on.
    url = f"redis+sentinel://127.0.0.1:{free_port()}/nomaster"
    caplog.set_level(logging.WARNING, logger="writ.audit")
    log = AuditLog(policy(tmp_path, checkpoint_every=5), "edge-1", redis_url=url)
    with log:
        for i in range(30):
            decide(log, i)
            if i % 5 == 4:
                assert log.flush(timeout=30)
        deadline = time.monotonic() + 60  # a dead Sentinel takes redis-py seconds to give up
        while log.stats()["checkpoint_push_failures"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        decide(log, 30)  # the writer writes the failure down with its next batch
        assert log.flush(timeout=30)
        assert log._thread is not None
        assert log._thread.is_alive()
        assert log.stats()["checkpoint_push_failures"] >= 1
        assert log.stats()["writer_ok"] == 1  # the log itself is written
    recs = [r for p in files(tmp_path) for r in records(p)]
    assert sum(r["event"] == "writ.dns.decision" for r in recs) == 31
    errors = [r for r in recs if r["event"] == "writ.audit.error"]
    assert errors, "the push failures are written into the chain"
    assert "checkpoint push" in errors[0]["what"]
    assert recs[-1]["event"] == "writ.audit.seal"
    _verify_all(tmp_path)
    assert any("checkpoint push" in r.getMessage() for r in caplog.records)


def test_the_checkpoint_push_goes_through_sentinel_inside_the_hash_tag(
        tmp_path: Path, sentinel_url: str, redis_url: str) -> None:  # noqa: F811
    with AuditLog(policy(tmp_path, checkpoint_every=5), "edge-1", redis_url=sentinel_url,
                  redis_prefix="writ") as log:
        for i in range(10):
            decide(log, i)
        log.flush()
    client = redis.Redis.from_url(redis_url)
    try:
        pushed = client.lrange("{writ}:audit:checkpoints:edge-1", 0, -1)
    finally:
        client.close()
    assert pushed
    assert log.stats()["checkpoint_push_failures"] == 0


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_writer_that_cannot_write_is_not_ok_and_says_so_in_the_nodes_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="writ.audit")
    pol = on_full_disk(tmp_path)
    with AuditLog(pol, "n") as log:
        for i in range(50):
            decide(log, i)
            log.flush()
        assert log.stats()["writer_ok"] == 0
        assert log.stats()["write_errors"] >= 1
    failures = [r for r in caplog.records if "cannot write" in r.getMessage()]
    assert failures, "a write failure reaches the node's log"
    assert len(failures) < 10, "rate-limited, not one line per batch"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_on_failure_fail_stops_the_process(tmp_path: Path) -> None:
    on_full_disk(tmp_path, on_failure="fail")
    script = textwrap.dedent(f"""
        import time
        from tests.audit.support import decide, policy
        from writ.audit import AuditLog
        from pathlib import Path
        log = AuditLog(policy(Path({str(tmp_path)!r}), on_failure="fail"), "n").start()
        decide(log, 1)
        time.sleep(30)
        print("still running")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False, cwd=Path(__file__).parents[2])
    assert proc.returncode == -signal.SIGTERM, proc.stderr
    assert "still running" not in proc.stdout
    # With no logging set up at all, the failure still reaches the process's stderr.
    assert "audit log cannot write (write)" in proc.stderr
    assert "audit.on_failure is 'fail'" in proc.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
async def test_readyz_fails_while_the_audit_log_cannot_be_written(tmp_path: Path) -> None:
    import aiohttp

    from writ.blocklist import Blocklist, BlocklistHolder
    from writ.policies import Policy
    from writ.web import run_web

    holder = BlocklistHolder()
    holder.set(Blocklist([]), datetime.now(UTC))
    pol = on_full_disk(tmp_path)
    with AuditLog(pol, "n") as log:
        web = await run_web(holder, Policy(), listen="127.0.0.1:0", sink_stats=log.stats)
        try:
            async with aiohttp.ClientSession() as s:
                decide(log, 1)
                log.flush()
                async with s.get(f"http://127.0.0.1:{web.port}/readyz") as r:
                    body = await r.json()
                    assert r.status == 503
                    assert body["ready"] is False
                    assert "audit" in body["detail"]
        finally:
            await web.shutdown()


def test_a_rotation_that_cannot_open_the_next_file_is_retried_and_loses_nothing_silently(
        tmp_path: Path) -> None:
    pol = policy(tmp_path, rotate_bytes=4096)
    blocker = Path(pol.path).with_name("decisions.000002.log")
    blocker.mkdir(parents=True)  # the next file cannot be opened: a folder is in the way
    with AuditLog(pol, "edge-1") as log:
        for i in range(60):  # ~300 bytes each: past 4096 bytes a rotation is due
            decide(log, i)
            log.flush()
        assert log.stats()["writer_ok"] == 0
        lost = log.stats()["drops"]
        assert lost > 0
        blocker.rmdir()  # the operator clears the way
        for i in range(60, 80):
            decide(log, i)
            log.flush()
        assert log.stats()["writer_ok"] == 1
    paths = files(tmp_path)
    report = verify(paths)
    assert report.ok, report.findings
    recs = [r for p in paths for r in records(p)]
    written = sum(r["event"] == "writ.dns.decision" for r in recs)
    dropped = sum(r["count"] for r in recs if r["event"] == "writ.audit.dropped")
    assert written + dropped == 80
    assert dropped == lost
    assert written > 20


def test_a_checkpoint_that_keeps_failing_is_retried_by_time_not_per_batch(
        tmp_path: Path) -> None:
    """A checkpoint file that cannot be written (here: its folder is a file) while
    decisions still write: the writer must not retry the checkpoint — and write
    one more `writ.audit.error` record — with every batch under load; it retries
    after checkpoint_seconds, as it checkpoints by time."""
    (tmp_path / "not-a-dir").write_text("x")
    pol = policy(tmp_path, checkpoint_every=5,
                 checkpoint_file=str(tmp_path / "not-a-dir" / "checkpoints.log"))
    with AuditLog(pol, "edge-1") as log:
        for i in range(400):  # 80 batches of 5 decisions: each past checkpoint_every
            decide(log, i)
            if i % 5 == 4:
                log.flush()
        stats = log.stats()
    assert stats["records_written"] == 400
    errors = [r for r in records(files(tmp_path)[0]) if r["event"] == "writ.audit.error"]
    assert [e["what"] for e in errors] == ["checkpoint"]  # one failed try, not 80
    assert errors[0]["count"] == 1
    assert stats["write_errors"] == 1
