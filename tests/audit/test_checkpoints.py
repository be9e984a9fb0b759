"""Signed checkpoints catch what the chain alone cannot (issue 3, §3b)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.audit.support import decide, files, lines, policy, rechain_from, write_log
from writ.audit import AuditLog, load_public_key, read_checkpoints, verify
from writ.audit.checkpoint import Checkpointer
from writ.audit.verify import VerifyReport
from writ.cli import main


def _verify(tmp: Path, paths: list[Path] | None = None) -> VerifyReport:
    audit = tmp / "audit"
    return verify(paths if paths is not None else files(tmp),
                  checkpoints=read_checkpoints(audit / "checkpoints.log"),
                  public_key=load_public_key(audit / "signing.key"),
                  checkpoint_file=str(audit / "checkpoints.log"))


@pytest.fixture
def log(tmp_path: Path) -> list[Path]:
    """40 decisions in four bursts; a checkpoint follows each burst of >= 10."""
    with AuditLog(policy(tmp_path, checkpoint_every=10), "edge-1") as audit:
        for i in range(40):
            decide(audit, i)
            if i % 10 == 9:
                audit.flush()
    return files(tmp_path)


def test_an_intact_log_matches_its_checkpoints(tmp_path: Path, log: list[Path]) -> None:
    report = _verify(tmp_path)
    assert report.ok, report.findings
    assert report.checkpoints_matched >= 4  # every 10 records and at shutdown
    assert not report.unproven  # the last checkpoint is the seal


def test_the_signing_key_is_created_private(tmp_path: Path, log: list[Path]) -> None:
    mode = stat.S_IMODE((tmp_path / "audit" / "signing.key").stat().st_mode)
    assert mode == 0o600


def test_a_rechained_history_passes_the_chain_but_not_the_checkpoints(
        tmp_path: Path, log: list[Path]) -> None:
    rechain_from(log[0], 5, {"decision": "allow", "action": "pass"})
    assert verify(log).ok  # the chain alone is fooled: this is why checkpoints exist
    (f,) = _verify(tmp_path).findings
    assert f.kind == "rechained"
    assert f.file == str(log[0])
    assert f.seq is not None
    assert f.seq >= 5


def test_a_tail_cut_with_a_forged_seal_is_caught_by_a_later_checkpoint(
        tmp_path: Path, log: list[Path]) -> None:
    # Cut the last 15 lines and re-seal: the chain verifies, the checkpoints do not.
    ls = lines(log[0])[:-16]
    log[0].write_text("".join(ls))
    last = json.loads(ls[-1])
    from writ.audit.record import render_line

    seal, _ = render_line({"event": "writ.audit.seal", "seq": last["seq"] + 1,
                           "node": last["node"], "ts": last["ts"], "prev": last["hash"],
                           "count": len(ls), "last": last["hash"]})
    log[0].write_text("".join(ls) + seal + "\n")
    assert verify(log).ok
    f = _verify(tmp_path).findings[0]
    assert f.kind in {"tail cut", "rechained"}  # the forged seal sits where a real record was


def test_a_plain_tail_cut_beyond_the_last_checkpoint_is_caught(tmp_path: Path,
                                                               log: list[Path]) -> None:
    ls = lines(log[0])
    log[0].write_text("".join(ls[:-5]))
    report = verify(log, live=True)  # even an auditor who accepts an unsealed file
    assert report.ok
    audit = tmp_path / "audit"
    live = verify(log, live=True, checkpoints=read_checkpoints(audit / "checkpoints.log"),
                  public_key=load_public_key(audit / "signing.key"))
    (f,) = live.findings
    assert f.kind == "tail cut"
    assert f"log ends at seq {json.loads(ls[-6])['seq']}" in f.message


def test_a_forged_checkpoint_is_named(tmp_path: Path, log: list[Path]) -> None:
    cp_file = tmp_path / "audit" / "checkpoints.log"
    cps = lines(cp_file)
    forged = json.loads(cps[1])
    forged["head"] = "f" * 64
    cps[1] = json.dumps(forged) + "\n"
    cp_file.write_text("".join(cps))
    f = _verify(tmp_path).findings[0]
    assert (f.kind, f.file, f.line) == ("forged checkpoint", str(cp_file), 2)


def test_checkpoints_from_another_key_are_forged(tmp_path: Path, log: list[Path]) -> None:
    other = tmp_path / "other"
    write_log(other, 3)
    report = verify(log, checkpoints=read_checkpoints(tmp_path / "audit" / "checkpoints.log"),
                    public_key=load_public_key(other / "audit" / "signing.key"))
    assert report.findings
    assert all(f.kind == "forged checkpoint" for f in report.findings)


def test_records_after_the_last_checkpoint_are_not_proven(tmp_path: Path,
                                                         log: list[Path]) -> None:
    cp_file = tmp_path / "audit" / "checkpoints.log"
    first = json.loads(lines(cp_file)[0])
    cp_file.write_text(lines(cp_file)[0])
    report = _verify(tmp_path)
    assert report.ok
    assert any(f"records after seq {first['seq']}" in u for u in report.unproven)
    cp_file.write_text("")
    assert any("nothing was anchored" in u for u in _verify(tmp_path).unproven)


def test_checkpoints_are_copied_off_the_box(tmp_path: Path, redis_url: str) -> None:
    import redis

    off_box = tmp_path / "collected" / "checkpoints.log"
    cp = Checkpointer(tmp_path / "k", tmp_path / "cp.log", push_path=off_box,
                      redis_url=redis_url, redis_prefix="writtest:")
    cp.checkpoint("edge-1", 7, "a" * 64, "2015-09-07T00:00:00.000000Z")
    cp.close()
    assert lines(off_box) == lines(tmp_path / "cp.log")
    client = redis.Redis.from_url(redis_url)
    # Inside the prefix's hash tag, on the same cluster slot as the published versions.
    pushed = client.lrange("{writtest}:audit:checkpoints:edge-1", 0, -1)
    client.close()
    assert [p.decode() + "\n" for p in pushed] == lines(off_box)
    (read,) = read_checkpoints(off_box)
    assert read.valid(load_public_key(tmp_path / "k"))


def test_an_unreachable_redis_is_counted_not_raised(tmp_path: Path) -> None:
    from tests.conftest import free_port

    cp = Checkpointer(tmp_path / "k", tmp_path / "cp.log",
                      redis_url=f"redis://127.0.0.1:{free_port()}/0")
    cp.checkpoint("edge-1", 1, "a" * 64, "2015-09-07T00:00:00.000000Z")
    assert cp.written == 1  # the local copy is written at once
    cp.close()  # the Redis copy is tried on its own thread
    assert cp.push_failures == 1
    assert "Connection" in (cp.last_push_error or "")


def test_cli_with_checkpoints_and_keygen(tmp_path: Path, log: list[Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    pub = tmp_path / "node.pub"
    assert main(["audit", "keygen", str(tmp_path / "audit" / "signing.key"),
                 "--out", str(pub)]) == 0
    assert "BEGIN PUBLIC KEY" in capsys.readouterr().out
    args = ["audit", "verify", "--checkpoints", str(tmp_path / "audit" / "checkpoints.log"),
            "--public-key", str(pub), *map(str, log)]
    assert main(args) == 0
    assert "signed checkpoint(s) match" in capsys.readouterr().out
    rechain_from(log[0], 3, {"target": "elsewhere.example. A"})
    assert main(args) == 1
    assert "rechained" in capsys.readouterr().out


def test_a_corrupt_checkpoint_file_is_a_finding(tmp_path: Path, log: list[Path],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    cp_file = tmp_path / "audit" / "checkpoints.log"
    cp_file.write_text(lines(cp_file)[0] + "not a checkpoint\n")
    assert main(["audit", "verify", "--checkpoints", str(cp_file), "--public-key",
                 str(tmp_path / "audit" / "signing.key"), *map(str, log)]) == 1
    assert f"{cp_file}:2" in capsys.readouterr().out
