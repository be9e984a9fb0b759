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


def _manifest(url: str) -> dict[bytes, bytes]:
    client = redis.Redis.from_url(url)
    try:
        return client.hgetall("{writ}:manifest")  # type: ignore[return-value]
    finally:
        client.close()


def test_apply_with_a_publisher_key_signs_the_set_and_renews_it(
    signed: Path, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--redis", redis_url, "--keyring", "keys/keyring.yaml",
            "--publisher-key", "keys/demo-publisher"]
    assert main(["orders", "apply", "court_orders", *base]) == 0
    out = capsys.readouterr().out
    assert "signed manifest 1 (" in out
    assert _manifest(redis_url)[b"sequence"] == b"1"
    assert main(["orders", "apply", "court_orders", *base]) == 0  # unchanged: renewed
    out = capsys.readouterr().out
    assert out.startswith("no change")
    assert "signed manifest 2 (" in out
    assert _manifest(redis_url)[b"sequence"] == b"2"


def test_a_rollback_is_signed_with_the_next_sequence(
    signed: Path, redis_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = ["--publisher-key", "keys/demo-publisher"]
    assert main(["orders", "apply", "court_orders", "--redis", redis_url, *key]) == 0
    first = _live(redis_url)
    (signed / "court_orders" / "ex-2017-0724-blog-appeal.yaml").unlink()
    (signed / "court_orders" / "ex-2017-0724-blog-appeal.yaml.sig").unlink()
    assert main(["orders", "apply", "court_orders", "--redis", redis_url, *key]) == 0
    capsys.readouterr()
    assert main(["orders", "rollback", str(first, "ascii"), "--redis", redis_url, *key]) == 0
    out = capsys.readouterr().out
    assert "rolled back" in out
    assert "signed manifest 3 (" in out
    assert _live(redis_url) == first
    assert _manifest(redis_url)[b"sequence"] == b"3"


@pytest.mark.parametrize("key", ["keys/demo-issuer", "keys/demo-issuer.pub", "keys/nothing"])
def test_a_key_that_may_not_publish_publishes_nothing(
    signed: Path, redis_url: str, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["orders", "apply", "court_orders", "--redis", redis_url,
                 "--keyring", "keys/keyring.yaml", "--publisher-key", key])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") <= 2
    assert "--publisher-key" in err
    assert key in err
    assert _live(redis_url) is None


@pytest.mark.parametrize("verb", ["apply", "rollback"])
def test_once_sets_are_signed_an_unsigned_switch_is_refused(
    signed: Path, redis_url: str, verb: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key = ["--publisher-key", "keys/demo-publisher"]
    assert main(["orders", "apply", "court_orders", "--redis", redis_url]) == 0
    first = _live(redis_url)
    (signed / "court_orders" / "ex-2017-0724-blog-appeal.yaml").unlink()
    assert main(["orders", "apply", "court_orders", "--redis", redis_url, *key]) == 0
    live = _live(redis_url)
    capsys.readouterr()
    (signed / "court_orders" / "ex-2017-0510-blog.yaml").unlink()
    argv = (["orders", "apply", "court_orders"] if verb == "apply"
            else ["orders", "rollback", str(first, "ascii")])
    code = main([*argv, "--redis", redis_url])
    err = capsys.readouterr().err
    assert code == 1
    assert "a signed manifest (sequence 1) is in force" in err
    assert _live(redis_url) == live
    assert _manifest(redis_url)[b"sequence"] == b"1"
