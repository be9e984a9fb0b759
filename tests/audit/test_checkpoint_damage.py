"""What a crash or a careless hand does to the checkpoint side of the log
(issue 12): a torn last line in checkpoints.log, a deleted signing key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.audit.support import decide, files, policy, records
from writ.audit import AuditLog
from writ.audit.checkpoint import key_id, load_public_key
from writ.cli import main


def _run(tmp: Path, n: int, start: int = 0) -> None:
    with AuditLog(policy(tmp, checkpoint_every=5), "edge-1") as log:
        for i in range(start, start + n):
            decide(log, i)
            if i % 5 == 4:
                log.flush()


def test_a_torn_checkpoint_line_is_neither_appended_onto_nor_a_stop_for_verify(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(tmp_path, 10)
    cps = tmp_path / "audit" / "checkpoints.log"
    whole = cps.read_text()
    torn = whole.splitlines()[-1][:40]  # a crash in the middle of a checkpoint write
    cps.write_text(whole + torn)
    _run(tmp_path, 10, start=10)  # the node restarts and writes more checkpoints

    lines = cps.read_text().splitlines()
    assert torn in lines, "the torn fragment stays a line of its own"
    after = lines[lines.index(torn) + 1:]
    assert after
    assert all(json.loads(line)["node"] == "edge-1" for line in after)

    audit = tmp_path / "audit"
    rc = main(["audit", "verify", "--checkpoints", str(cps), "--public-key",
               str(audit / "signing.key"), *map(str, files(tmp_path))])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "OK " in out
    assert f"{cps}:{lines.index(torn) + 1}" in out  # the torn line is named, not hidden
    assert "torn" in out


def test_a_deleted_signing_key_is_a_key_change_recorded_in_the_chain(tmp_path: Path) -> None:
    _run(tmp_path, 10)
    key_file = tmp_path / "audit" / "signing.key"
    old = key_id(load_public_key(key_file))
    key_file.unlink()
    _run(tmp_path, 10, start=10)
    new = key_id(load_public_key(key_file))
    assert new != old
    recs = [r for p in files(tmp_path) for r in records(p)]
    (change,) = [r for r in recs if r["event"] == "writ.audit.key_changed"]
    assert change["previous_key"] == old
    assert change["key"] == new
    assert change["key_created"] is True
    assert "BEGIN PUBLIC KEY" in change["public_key"]


def test_an_unchanged_key_writes_no_key_change(tmp_path: Path) -> None:
    _run(tmp_path, 10)
    _run(tmp_path, 10, start=10)
    recs = [r for p in files(tmp_path) for r in records(p)]
    assert not [r for r in recs if r["event"] == "writ.audit.key_changed"]


def test_a_checkpoint_glued_onto_a_torn_line_by_an_older_node_is_still_read(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _run(tmp_path, 20)
    cps = tmp_path / "audit" / "checkpoints.log"
    lines = cps.read_text().splitlines()
    glued = lines[-2][:30] + lines[-1]  # a crash mid-line, then the next append onto it
    cps.write_text("\n".join([*lines[:-2], glued]) + "\n")
    audit = tmp_path / "audit"
    rc = main(["audit", "verify", "--checkpoints", str(cps), "--public-key",
               str(audit / "signing.key"), *map(str, files(tmp_path))])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"{cps}:{len(lines) - 1}: a torn line" in out
    assert "NOT PROVEN" not in out  # the glued checkpoint (the seal's) was read
