"""`writ orders apply|diff|history|rollback` as a regulator uses them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.blocklist.stores.conftest import write
from tests.conftest import free_port
from writ.cli import main


def writ(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_apply_then_apply_again_is_a_no_op(orders: Path, redis_url: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = writ(capsys, "orders", "apply", str(orders), "--redis", redis_url,
                        "--by", "alice@court")
    assert code == 0
    assert "published version" in out
    assert "added +T-1" in out
    code, out, _ = writ(capsys, "orders", "apply", str(orders), "--redis", redis_url)
    assert code == 0
    assert out.startswith("no change")


def test_an_invalid_set_is_refused_and_the_live_version_stays(
        orders: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    writ(capsys, "orders", "apply", str(orders), "--redis", redis_url)
    write(orders / "t2.yaml", "id: T-2\ncourt: X\n")
    code, out, err = writ(capsys, "orders", "apply", str(orders), "--redis", redis_url)
    assert code == 1
    assert "nothing was published" in err
    assert "t2.yaml:" in err
    code, out, _ = writ(capsys, "orders", "history", "--redis", redis_url)
    assert code == 0
    assert len(out.strip().splitlines()) == 1


def test_diff_names_what_would_be_blocked_and_released(
        orders: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    writ(capsys, "orders", "apply", str(orders), "--redis", redis_url)
    write(orders / "lists" / "t1.txt", "c.example\n")
    code, out, _ = writ(capsys, "orders", "diff", str(orders), "--redis", redis_url)
    assert code == 0
    assert "acts changed: T-1" in out
    assert "  + domain c.example" in out
    assert "  - domain b.example" in out
    _, hist, _ = writ(capsys, "orders", "history", "--redis", redis_url)
    assert len(hist.strip().splitlines()) == 1  # diff published nothing


def test_history_and_rollback(orders: Path, redis_url: str,
                              capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = writ(capsys, "orders", "apply", str(orders), "--redis", redis_url,
                     "--by", "alice@court")
    first = re.search(r"published version (\w+)", out).group(1)  # type: ignore[union-attr]
    write(orders / "lists" / "t1.txt", "c.example\n")
    writ(capsys, "orders", "apply", str(orders), "--redis", redis_url, "--by", "bob@court")
    code, out, _ = writ(capsys, "orders", "rollback", first[:8], "--redis", redis_url,
                        "--by", "carol@court")
    assert code == 0
    assert f"rolled back to version {first}" in out
    _, hist, _ = writ(capsys, "orders", "history", "--redis", redis_url)
    lines = hist.strip().splitlines()
    assert [ln.split()[2] for ln in lines] == ["rollback", "apply", "apply"]
    assert lines[0].startswith("*")
    assert "carol@court" in lines[0]
    code, _, err = writ(capsys, "orders", "rollback", "ffff", "--redis", redis_url)
    assert code == 1
    assert "not a kept version" in err


def test_redis_down_is_a_clear_error(orders: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://user:hunter2@127.0.0.1:{free_port()}/0"
    code, _, err = writ(capsys, "orders", "apply", str(orders), "--redis", url)
    assert code == 1
    assert "cannot reach Redis" in err
    assert "nothing was changed" in err
    assert "hunter2" not in err
    assert "Traceback" not in err
    code, _, err = writ(capsys, "orders", "history", "--redis", url)
    assert code == 1
    assert "cannot reach Redis" in err
    assert "nothing was changed" not in err  # history changes nothing anyway


def test_bad_invocations_exit_2(orders: Path, capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WRIT_REDIS", raising=False)
    assert writ(capsys, "orders", "apply", str(orders))[0] == 2
    assert writ(capsys, "orders", "apply", str(orders), "--redis", "http://x.example")[0] == 2
    assert writ(capsys, "orders", "apply", "/nonexistent", "--redis", "redis://127.0.0.1:1")[0] == 2


def _live_blob(redis_url: str) -> tuple[str, bytes | None, bytes | None]:
    import hashlib

    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        vid = client.get("{writ}:current").decode()  # type: ignore[union-attr]
        data, sha = client.hmget(f"{{writ}}:version:{vid}", ["data", "sha256"])
    finally:
        client.close()
    ok = data is not None and sha is not None and hashlib.sha256(data).hexdigest() == sha.decode()
    return vid, data if ok else None, sha


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_apply_republishes_a_missing_or_corrupt_live_version(
        orders: Path, redis_url: str, capsys: pytest.CaptureFixture[str], damage: str) -> None:
    import redis

    writ(capsys, "orders", "apply", str(orders), "--redis", redis_url)
    vid, data, _ = _live_blob(redis_url)
    assert data is not None
    client = redis.Redis.from_url(redis_url)
    if damage == "delete":
        client.delete(f"{{writ}}:version:{vid}")
    else:
        client.hset(f"{{writ}}:version:{vid}", "data", bytes([data[0] ^ 1]) + data[1:])
    client.close()
    assert _live_blob(redis_url)[1] is None
    code, out, err = writ(capsys, "orders", "apply", str(orders), "--redis", redis_url)
    assert code == 0, err
    assert out.startswith("repaired"), out
    again, fixed, _ = _live_blob(redis_url)
    assert again == vid
    assert fixed == data
    code, out, _ = writ(capsys, "orders", "apply", str(orders), "--redis", redis_url)
    assert out.startswith("no change")


@pytest.mark.parametrize("live", ["readable", "deleted"])
def test_apply_of_an_empty_folder_needs_allow_removals(
        orders: Path, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        live: str) -> None:
    import redis

    writ(capsys, "orders", "apply", str(orders), "--redis", redis_url)
    if live == "deleted":  # what it holds cannot be read: an empty set is still too much
        vid, _, _ = _live_blob(redis_url)
        client = redis.Redis.from_url(redis_url)
        client.delete(f"{{writ}}:version:{vid}")
        client.close()
    empty = tmp_path / "empty"
    empty.mkdir()
    code, out, err = writ(capsys, "orders", "apply", str(empty), "--redis", redis_url)
    assert code == 1
    assert "no act" in err
    assert "--allow-removals" in err
    assert "nothing was changed" in err
    code, out, err = writ(capsys, "orders", "apply", str(empty), "--redis", redis_url,
                          "--allow-removals")
    assert code == 0, err
    assert "published version" in out


def test_apply_removing_more_acts_than_the_policy_allows_needs_allow_removals(
        redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "many"
    for i in range(4):
        write(d / f"o{i}.yaml", f"id: M-{i}\ncourt: C\ncase: \"{i}\"\nissued: 2020-01-01\n"
                                f"targets:\n  - domain: m{i}.example\n")
    writ(capsys, "orders", "apply", str(d), "--redis", redis_url)
    pol = tmp_path / "policy.yaml"
    pol.write_text("publish:\n  max_removed_acts: 2\n")
    for i in range(3):
        (d / f"o{i}.yaml").unlink()
    code, _, err = writ(capsys, "orders", "apply", str(d), "--redis", redis_url,
                        "--policy", str(pol))
    assert code == 1
    assert "3 acts would be removed" in err
    assert "M-0, M-1, M-2" in err
    code, out, _ = writ(capsys, "orders", "apply", str(d), "--redis", redis_url,
                        "--policy", str(pol), "--allow-removals")
    assert code == 0
    assert "removed -M-0, -M-1, -M-2" in out
