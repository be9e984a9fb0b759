"""`writ orders apply|diff --keyring`: an unsigned or tampered folder is never
published (Redis untouched); a signed one is, as before."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis

from writ.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def signed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(REPO / "court_orders", tmp_path / "court_orders")
    shutil.copytree(REPO / "keys" / "demo-DO-NOT-USE", tmp_path / "keys")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _live(url: str) -> object:
    client = redis.Redis.from_url(url)
    try:
        return client.get("{writ}:current")
    finally:
        client.close()


@pytest.mark.parametrize("verb", ["apply", "diff"])
def test_a_tampered_folder_is_not_published(
    signed: Path, redis_url: str, verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lst = signed / "court_orders" / "lists" / "ex-2016-0314-mirrors.txt"
    lst.write_text(lst.read_text() + "lawful-news.example\n")
    code = main(["orders", verb, "court_orders", "--redis", redis_url,
                 "--keyring", "keys/keyring.yaml"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.splitlines()[0].startswith(
        "court_orders/lists/ex-2016-0314-mirrors.txt: signature: ex-2016-0314-mirrors.txt.sig: "
        "bad signature")
    assert err.splitlines()[-1] == (f"writ orders {verb}: 1 error(s) in court_orders; "
                                    "nothing was published")
    assert _live(redis_url) is None


def test_a_signed_folder_is_published(
    signed: Path, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["orders", "apply", "court_orders", "--redis", redis_url,
                 "--keyring", "keys/keyring.yaml"])
    assert code == 0, capsys.readouterr().err
    assert _live(redis_url) is not None
