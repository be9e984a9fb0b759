"""The disk copy of a node with `trust.keyring` following Redis, attacked while
the node is down (docs/operator.md §7, docs/auditor.md "Signed sets").

Someone who can write the node's state folder but holds no publisher key edits
the copy (or swaps in an older one, or deletes the kept manifest), then starts
the node while its Redis is gone. The copy must be verified against its own
signed manifest, kept beside it, as if it came from Redis, and its sequence
must not be below the highest the node accepted: a copy that fails is refused
(the node enforces nothing: the policy's fail mode), `/readyz` says why and the
audit chain gets a `writ.blocklist.disk_copy_refused` record. Each test runs
its own redis-server on a free loopback port and kills it before the restart.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.blocklist.signed.support import SigningKey, key_entry, new_key
from tests.blocklist.stores.conftest import block, wait_for
from tests.conftest import RedisServer
from writ.blocklist import Blocklist, BlocklistHolder
from writ.blocklist.stores import RedisStore, Registry, publish
from writ.blocklist.stores.blob import checksum
from writ.blocklist.stores.signedset import SetSigner

A = Blocklist([block("A", "a.example")])
B = Blocklist([block("A", "a.example"), block("B", "b.example", "victim.example")])


@dataclass
class Fleet:
    """One publisher, one node's state folder, a Redis of its own."""

    server: RedisServer
    keyring: Path
    pub: SigningKey
    state: Path
    started: list[RedisStore] = field(default_factory=list)
    switched: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)

    @property
    def copy(self) -> Path:
        return self.state / "redis-writtest.blocklist"

    @property
    def kept(self) -> Path:
        return self.state / "redis-writtest.manifest"

    async def publish(self, bl: Blocklist) -> str:
        client = aioredis.Redis.from_url(self.server.url)
        try:
            done = await publish(Registry(client, "writtest"), bl, by="tester@test",
                                 signer=SetSigner(self.pub.private, timedelta(days=7)))
        finally:
            await client.aclose()
        return done.version

    async def node(self, **kw: Any) -> tuple[RedisStore, BlocklistHolder]:
        store = RedisStore(self.server.url, prefix="writtest", state_dir=self.state,
                           keyring=self.keyring, poll_interval=0.2, max_backoff=0.3,
                           on_switch=self.switched.append,
                           on_disk_refused=self.refused.append, **kw)
        holder = BlocklistHolder()
        await store.start(holder)
        self.started.append(store)
        return store, holder


@pytest.fixture
async def fleet(own_redis: RedisServer, tmp_path: Path) -> AsyncIterator[Fleet]:
    pub = new_key("pub-1")
    keyring = tmp_path / "keyring.yaml"
    keyring.write_text("keys:" + key_entry(pub, roles="[publisher]", acts="",
                                           principal="Example Regulator") + "\n")
    f = Fleet(own_redis, keyring, pub, tmp_path / "state")
    yield f
    for s in f.started:
        await s.stop()


async def _saved(store: RedisStore, version: str) -> None:
    """Wait until the node enforces `version` and its disk copy is written."""
    await wait_for(lambda: store.status().version == version, timeout=5)
    await wait_for(lambda: store._persist is not None and store._persist.done(), timeout=5)


async def _enforcing_b_then_down(fleet: Fleet) -> tuple[Path, str, str]:
    """A node that accepted A (sequence 1), then B (sequence 2), is stopped and its
    Redis killed. Returns (a copy of the state folder as it was on A, vA, vB)."""
    va = await fleet.publish(A)
    store, _ = await fleet.node()
    await _saved(store, va)
    on_a = fleet.state.parent / "state-on-a"
    shutil.copytree(fleet.state, on_a)
    vb = await fleet.publish(B)
    await _saved(store, vb)
    await store.stop()
    fleet.started.remove(store)
    fleet.server.stop()  # Redis gone: the restarted node has only its disk
    fleet.switched.clear()
    return on_a, va, vb


def _rewrite(copy: Path, edit: Callable[[list[Any]], None], version: str | None = None) -> None:
    """Edit the acts inside the disk copy and fix its checksum, as an attacker would."""
    head, _, data = copy.read_bytes().partition(b"\n")
    header = json.loads(head)
    doc = json.loads(zlib.decompress(data))
    edit(doc["acts"] if isinstance(doc, dict) else doc)
    new = zlib.compress(json.dumps(doc).encode())
    header["sha256"] = checksum(new)
    if version is not None:
        header["version"] = version
    copy.write_bytes(json.dumps(header).encode() + b"\n" + new)


def _drop_victim(acts: list[Any]) -> None:
    for act in acts:
        act["targets"] = [t for t in act["targets"] if "victim" not in json.dumps(t)]


def _flip_byte(acts: list[Any]) -> None:
    for act in acts:
        for t in act["targets"]:
            for k, v in list(t.items()):
                if v == "victim.example":
                    t[k] = "victin.example"  # one byte


def _blocks(holder: BlocklistHolder, name: str) -> bool:
    return holder.index is not None and holder.index.decide_name(name).blocked


async def test_an_untouched_disk_copy_is_enforced_and_recorded(fleet: Fleet) -> None:
    _, _va, vb = await _enforcing_b_then_down(fleet)
    store, holder = await fleet.node()
    st = store.status()
    assert (st.ready, st.source, st.stale, st.version) == (True, "disk", True, vb)
    assert st.manifest_sequence == 2
    assert _blocks(holder, "victim.example")
    # The audit chain says which signed set is in force, and that it came from disk.
    assert [(r["blocklist_version"], r["manifest_sequence"], r.get("source"))
            for r in fleet.switched] == [(vb, 2, "disk")]
    assert fleet.refused == []


async def _refused(fleet: Fleet, *words: str) -> str:
    store, holder = await fleet.node()
    assert not holder.ready, "the tampered disk copy was enforced"
    assert not _blocks(holder, "a.example")
    st = store.status()
    assert not st.ready
    assert st.version is None
    assert st.sets_refused == 1
    err = str(st.last_error)
    assert "unreachable" in err, err
    assert "disk copy refused" in err, err
    for w in words:
        assert w in err, err
    assert fleet.switched == []
    assert len(fleet.refused) == 1
    rec = fleet.refused[0]
    assert rec["path"] == str(fleet.copy)
    for w in words:
        assert w in rec["reason"] or w == rec["alarm"], rec
    # Reconnect attempts (backoff at most 0.3 s here) do not wipe the reason off /readyz.
    await asyncio.sleep(1.0)
    assert not holder.ready
    assert "disk copy refused" in str(store.status().last_error)
    return err


async def test_a_copy_with_one_byte_edited_is_refused(fleet: Fleet) -> None:
    _, _va, vb = await _enforcing_b_then_down(fleet)
    _rewrite(fleet.copy, _flip_byte)
    await _refused(fleet, "file-mismatch", f"version/{vb}", "pub-1")


async def test_a_copy_with_a_target_removed_is_refused(fleet: Fleet) -> None:
    _, _va, vb = await _enforcing_b_then_down(fleet)
    _rewrite(fleet.copy, _drop_victim)
    await _refused(fleet, "file-mismatch", f"version/{vb}")


async def test_an_older_sets_copy_under_the_current_name_is_refused(fleet: Fleet) -> None:
    on_a, _va, vb = await _enforcing_b_then_down(fleet)
    # A's blob under B's header (its checksum fixed): decisions would name vB while
    # the node enforces A, which does not block victim.example.
    _, _, data = (on_a / fleet.copy.name).read_bytes().partition(b"\n")
    head, _, _ = fleet.copy.read_bytes().partition(b"\n")
    header = {**json.loads(head), "sha256": checksum(data)}
    fleet.copy.write_bytes(json.dumps(header).encode() + b"\n" + data)
    await _refused(fleet, "file-mismatch", f"version/{vb}")


async def test_an_older_accepted_sets_copy_is_refused(fleet: Fleet) -> None:
    on_a, _va, _vb = await _enforcing_b_then_down(fleet)
    shutil.copy(on_a / fleet.copy.name, fleet.copy)  # exactly as the node saved it on A
    await _refused(fleet, "rollback", "manifest 1")


async def test_an_older_copy_with_the_kept_manifest_deleted_is_refused(fleet: Fleet) -> None:
    on_a, _va, _vb = await _enforcing_b_then_down(fleet)
    shutil.copy(on_a / fleet.copy.name, fleet.copy)
    fleet.kept.unlink()
    await _refused(fleet, "kept-manifest-missing", str(fleet.kept))


async def test_the_kept_manifest_deleted_alone_is_refused(fleet: Fleet) -> None:
    await _enforcing_b_then_down(fleet)
    fleet.kept.unlink()  # the copy itself untouched: its newness cannot be shown
    await _refused(fleet, "kept-manifest-missing")


async def test_a_copy_whose_manifest_is_removed_is_refused(fleet: Fleet) -> None:
    await _enforcing_b_then_down(fleet)
    head, _, data = fleet.copy.read_bytes().partition(b"\n")
    header = {k: v for k, v in json.loads(head).items() if not k.startswith("manifest")}
    fleet.copy.write_bytes(json.dumps(header).encode() + b"\n" + data)
    await _refused(fleet, "malformed", "no signed manifest")


async def test_a_copy_with_an_edited_manifest_is_refused(fleet: Fleet) -> None:
    _, _va, vb = await _enforcing_b_then_down(fleet)
    _rewrite(fleet.copy, _drop_victim)
    head, _, data = fleet.copy.read_bytes().partition(b"\n")
    header = json.loads(head)
    m = json.loads(header["manifest"])
    m["files"][f"version/{vb}"] = checksum(data)  # the manifest made to match the edit
    header["manifest"] = json.dumps(m, sort_keys=True, separators=(",", ":"))
    fleet.copy.write_bytes(json.dumps(header).encode() + b"\n" + data)
    await _refused(fleet, "bad-signature", "manifest 2")


async def test_a_hung_redis_at_start_is_no_way_around_the_check(fleet: Fleet) -> None:
    import os
    import signal

    _, _va, _vb = await _enforcing_b_then_down(fleet)
    _rewrite(fleet.copy, _drop_victim)
    fleet.server.start()  # back, empty, and frozen: connections open, nothing answers
    assert fleet.server.proc is not None
    os.kill(fleet.server.proc.pid, signal.SIGSTOP)
    try:
        RedisStore.STARTUP_TIMEOUT, saved = 1.0, RedisStore.STARTUP_TIMEOUT
        try:
            store, holder = await fleet.node()
        finally:
            RedisStore.STARTUP_TIMEOUT = saved
        assert not holder.ready
        assert "disk copy refused" in str(store.status().last_error)
        await store.stop()
        fleet.started.remove(store)
    finally:
        os.kill(fleet.server.proc.pid, signal.SIGCONT)


async def test_without_a_keyring_the_disk_copy_is_taken_as_before(fleet: Fleet) -> None:
    _, _va, vb = await _enforcing_b_then_down(fleet)
    store = RedisStore(fleet.server.url, prefix="writtest", state_dir=fleet.state,
                       poll_interval=0.2, max_backoff=0.3)
    holder = BlocklistHolder()
    await store.start(holder)
    fleet.started.append(store)
    st = store.status()
    assert (st.ready, st.source, st.version) == (True, "disk", vb)
    assert _blocks(holder, "victim.example")


async def test_past_expiry_the_disk_copy_is_enforced_with_the_alarm(fleet: Fleet) -> None:
    """As a running node keeps its set past the manifest's expiry (a cut-off
    publisher must not blank the nodes), a restarted one keeps its copy."""
    from datetime import UTC, datetime

    _, _va, vb = await _enforcing_b_then_down(fleet)
    later = datetime.now(UTC) + timedelta(days=8)
    store, holder = await fleet.node(clock=lambda: later)
    st = store.status()
    assert (st.ready, st.source, st.version, st.alarm) == (True, "disk", vb, "expired")
    assert _blocks(holder, "victim.example")


async def test_a_copy_newer_than_the_kept_manifest_is_taken_and_kept(fleet: Fleet) -> None:
    """The kept manifest lags the copy (its write failed, or an older one was put
    back): the copy's own signed manifest is newer, so it holds, and is kept."""
    on_a, _va, vb = await _enforcing_b_then_down(fleet)
    shutil.copy(on_a / fleet.kept.name, fleet.kept)  # sequence 1 kept, copy on 2
    store, holder = await fleet.node()
    st = store.status()
    assert (st.ready, st.version, st.manifest_sequence) == (True, vb, 2)
    assert json.loads(fleet.kept.read_text())["sequence"] == 2
    assert _blocks(holder, "victim.example")
