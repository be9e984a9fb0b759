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
