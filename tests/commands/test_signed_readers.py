"""`writ explain --redis` and `writ export rpz --redis` with a keyring (`--policy`
naming trust.keyring, or `--keyring`): they read the live set only as a node
with that keyring would take it (docs/auditor.md "Signed sets"). A set the
nodes refuse is refused here too — exit 1, the reason named (alarm, manifest,
key, file) — so an operator or auditor is never told a story the nodes do not
enforce. Without a keyring they read what is published, as before."""

from __future__ import annotations

import json
import shutil
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tests.blocklist.signed.support import new_key
from tests.blocklist.stores.conftest import block
from writ.blocklist import Blocklist
from writ.blocklist.signed.sshsigfmt import load_private_key
from writ.blocklist.stores import Registry, connect, publish, read_blocklist
from writ.blocklist.stores.blob import checksum
from writ.blocklist.stores.signedset import SetSigner
from writ.cli import main

REPO = Path(__file__).resolve().parents[2]
# A name the sample orders block now (court_orders/ex-2016-0314-rvsd.yaml).
BLOCKED = "www.forum.example"


@pytest.fixture
def signed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(REPO / "court_orders", tmp_path / "court_orders")
    shutil.copytree(REPO / "keys" / "demo-DO-NOT-USE", tmp_path / "keys")
    (tmp_path / "policy.yaml").write_text("trust:\n  keyring: keys/keyring.yaml\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _apply(url: str, *publisher: str) -> str:
    assert main(["orders", "apply", "court_orders", "--redis", url,
                 "--keyring", "keys/keyring.yaml", *publisher]) == 0
    client = redis.Redis.from_url(url)
    try:
        vid = client.get("{writ}:current")
    finally:
        client.close()
    assert isinstance(vid, bytes)
    return vid.decode()


def _signed_apply(url: str) -> str:
    return _apply(url, "--publisher-key", "keys/demo-publisher")


READERS = {
    "explain": lambda url, *more: ["explain", "--redis", url, *more, BLOCKED],
    "export": lambda url, *more: ["export", "rpz", "--redis", url, *more],
}


def _run(capsys: pytest.CaptureFixture[str], reader: str, url: str,
         *more: str) -> tuple[int, str, str]:
    code = main(READERS[reader](url, *more))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("trust", [("--policy", "policy.yaml"),
                                   ("--keyring", "keys/keyring.yaml")])
def test_a_signed_set_is_read(signed: Path, redis_url: str, reader: str,
                              trust: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    _signed_apply(redis_url)
    capsys.readouterr()
    code, out, err = _run(capsys, reader, redis_url, *trust)
    assert code == 0, err
    assert BLOCKED in out


def _refused(capsys: pytest.CaptureFixture[str], reader: str, url: str,
             *words: str) -> str:
    capsys.readouterr()
    code, out, err = _run(capsys, reader, url, "--policy", "policy.yaml")
    assert code == 1, (out, err)
    assert BLOCKED not in out  # nothing explained or exported
    nothing = "nothing explained" if reader == "explain" else "nothing exported"
    assert err.strip().endswith(nothing), err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err
    return err


@pytest.mark.parametrize("reader", READERS)
def test_a_set_published_without_a_manifest_is_refused(
        signed: Path, redis_url: str, reader: str, capsys: pytest.CaptureFixture[str]) -> None:
    vid = _apply(redis_url)  # signed orders, but no publisher key: no manifest
    _refused(capsys, reader, redis_url, "malformed", "no signed manifest", vid)
    # without a keyring, read as before
    code, out, _ = _run(capsys, reader, redis_url)
    assert code == 0
    assert BLOCKED in out


def _forge(url: str, vid: str) -> None:
    """Rewrite the live blob with one target fewer and a matching checksum: only
    the manifest can tell."""
    client = redis.Redis.from_url(url)
    try:
        key = f"{{writ}}:version:{vid}"
        doc = json.loads(zlib.decompress(client.hget(key, "data")))  # type: ignore[arg-type]
        act = next(a for a in doc["acts"] if any(BLOCKED in json.dumps(t)
                                                 for t in a["targets"]))
        act["targets"] = [t for t in act["targets"] if BLOCKED not in json.dumps(t)]
        data = zlib.compress(json.dumps(doc).encode())
        client.hset(key, mapping={"data": data, "sha256": checksum(data)})
    finally:
        client.close()


@pytest.mark.parametrize("reader", READERS)
def test_a_forged_blob_is_refused(signed: Path, redis_url: str, reader: str,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    vid = _signed_apply(redis_url)
    _forge(redis_url, vid)
    err = _refused(capsys, reader, redis_url, "file-mismatch", f"version/{vid}",
                   "manifest 1", "demo-publisher")
    assert "refused as a node with this keyring would refuse it" in err


@pytest.mark.parametrize("reader", READERS)
async def test_a_version_the_manifest_does_not_list_is_refused(
        signed: Path, redis_url: str, reader: str, capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    await asyncio.to_thread(_signed_apply, redis_url)
    # a second version published by someone without the publisher key: the pointer
    # moves, the manifest stays
    client = connect(redis_url)
    try:
        done = await publish(Registry(client), Blocklist([block("X-1", BLOCKED)]),
                             by="mallory@test")
    finally:
        await client.aclose()
    await asyncio.to_thread(_refused, capsys, reader, redis_url, "file-unlisted",
                            f"version/{done.version}", "manifest 1")


async def _publish_with(url: str, signer: SetSigner, now: datetime) -> None:
    bl = read_blocklist(REPO / "court_orders", None)
    client = connect(url)
    try:
        await publish(Registry(client), bl, by="tester@test", signer=signer, now=now)
    finally:
        await client.aclose()


@pytest.mark.parametrize("reader", READERS)
async def test_an_expired_manifest_is_refused(
        signed: Path, redis_url: str, reader: str, capsys: pytest.CaptureFixture[str]) -> None:
    key = load_private_key((signed / "keys" / "demo-publisher").read_bytes())
    await _publish_with(redis_url, SetSigner(key, timedelta(seconds=1)),
                        datetime.now(UTC) - timedelta(minutes=1))
    import asyncio

    await asyncio.to_thread(_refused, capsys, reader, redis_url, "expired", "manifest 1")


@pytest.mark.parametrize("reader", READERS)
async def test_a_manifest_by_a_key_outside_the_keyring_is_refused(
        signed: Path, redis_url: str, reader: str, capsys: pytest.CaptureFixture[str]) -> None:
    stranger = new_key("stranger")
    await _publish_with(redis_url, SetSigner(stranger.private), datetime.now(UTC))
    import asyncio

    await asyncio.to_thread(_refused, capsys, reader, redis_url, "bad-signature",
                            "manifest 1")


def test_export_writes_no_file_for_a_refused_set(
        signed: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    vid = _signed_apply(redis_url)
    _forge(redis_url, vid)
    capsys.readouterr()
    out = signed / "zone.rpz"
    assert main(["export", "rpz", "--redis", redis_url, "--policy", "policy.yaml",
                 "-o", str(out)]) == 1
    assert not out.exists()
