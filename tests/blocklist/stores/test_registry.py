"""Publishing: content-addressed versions, the compare-and-set pointer,
history, rollback, pruning — against the real redis-server."""

from __future__ import annotations

import json

import pytest
import redis.asyncio as aioredis

from tests.blocklist.stores.conftest import block, put
from writ.blocklist import Blocklist
from writ.blocklist.stores import ConflictError, Registry, VersionError, publish, rollback


async def test_publish_switches_the_pointer_and_keeps_the_version_whole(
        registry: Registry) -> None:
    v1 = await put(registry, block("A", "a.example"))
    assert await registry.current() == v1
    loaded = await registry.load(v1)
    assert loaded.version == v1
    assert loaded.at(loaded.acts[0].effective).decide_name("www.a.example").blocked


async def test_same_orders_publish_nothing(registry: Registry) -> None:
    v1 = await put(registry, block("A", "a.example"))
    done = await publish(registry, Blocklist([block("A", "a.example")]), by="x")
    assert done.unchanged
    assert done.version == v1
    assert len(await registry.history()) == 1


async def test_history_says_who_when_and_what_changed(registry: Registry) -> None:
    await put(registry, block("A", "a.example"), by="alice@court")
    await put(registry, block("A", "a.example", "b.example"), block("B", "c.example"),
              by="bob@court")
    newest, oldest = await registry.history()
    assert oldest["by"] == "alice@court"
    assert oldest["added"] == ["A"]
    assert newest["by"] == "bob@court"
    assert newest["added"] == ["B"]
    assert newest["changed"] == ["A"]
    assert newest["removed"] == []
    assert newest["acts"] == 2
    assert newest["rules"] == 3


async def test_rollback_switches_back_and_is_recorded(registry: Registry) -> None:
    v1 = await put(registry, block("A", "a.example"))
    v2 = await put(registry, block("B", "b.example"))
    done = await rollback(registry, v1, by="carol@court")
    assert done.previous == v2
    assert await registry.current() == v1
    entry = (await registry.history())[0]
    assert entry["action"] == "rollback"
    assert entry["added"] == ["A"]
    assert entry["removed"] == ["B"]


async def test_rollback_to_an_unknown_version_changes_nothing(registry: Registry) -> None:
    v1 = await put(registry, block("A", "a.example"))
    with pytest.raises(VersionError):
        await rollback(registry, "0123456789abcdef", by="x")
    assert await registry.current() == v1


async def test_concurrent_publishers_cannot_interleave(registry: Registry) -> None:
    v0 = await put(registry, block("A", "a.example"))
    first = Blocklist([block("A", "a.example"), block("B", "b.example")])
    second = Blocklist([block("A", "a.example"), block("C", "c.example")])
    # Both regulators read v0, then both try to switch from it: one must lose.
    await publish(registry, first, by="one", expected=v0)
    with pytest.raises(ConflictError) as lost:
        await publish(registry, second, by="two", expected=v0)
    assert lost.value.actual == first.version
    assert await registry.current() == first.version
    # The loser leaves nothing behind.
    assert not await registry.exists(second.version)
    assert [e["by"] for e in await registry.history()] == ["one", "tester@test"]


async def test_old_versions_are_pruned_but_never_the_live_one(registry: Registry) -> None:
    versions = []
    for i in range(5):
        bl = Blocklist([block(f"O{i}", f"n{i}.example")])
        versions.append((await publish(registry, bl, by="x", keep=3)).version)
    assert await registry.kept() == versions[-3:]
    for gone in versions[:2]:
        assert not await registry.exists(gone)
        assert await registry.client.exists(registry.keys.delta(gone)) == 0


async def test_a_small_change_to_a_large_list_stores_a_delta(registry: Registry) -> None:
    names = tuple(f"h{i}.bulk.example" for i in range(5000))
    v1 = await put(registry, block("BIG", bulk=names))
    v2 = await put(registry, block("BIG", bulk=names), block("NEW", "new.example"))
    delta = await registry.load_delta(v2, v1)
    assert delta is not None
    assert [a.id for a in delta.added] == ["NEW"]
    assert delta.removed == ()
    assert await registry.load_delta(v2, "some-other-base") is None


async def test_a_corrupt_version_is_refused(registry: Registry) -> None:
    v1 = await put(registry, block("A", "a.example"))
    await registry.client.hset(registry.keys.version(v1), "data", b"garbage")
    with pytest.raises(VersionError, match="checksum"):
        await registry.load(v1)


async def test_every_key_lives_under_the_prefix_hash_tag(registry: Registry) -> None:
    await registry.client.set("unrelated", "keep me")
    names = tuple(f"h{i}.bulk.example" for i in range(2000))
    await put(registry, block("BIG", bulk=names))
    await put(registry, block("BIG", bulk=names), block("B", "b.example"))
    keys = sorted(k.decode() for k in await registry.client.keys("*"))
    assert "unrelated" in keys
    assert all(k.startswith("{writtest}:") for k in keys if k != "unrelated")
    assert await registry.client.get("unrelated") == b"keep me"


async def test_a_user_restricted_to_the_prefix_can_publish(redis_url: str) -> None:
    """An ACL user that may only touch `{writacl}:*` keys and channels: proves
    that publishing reads and writes nothing else (and password auth from the URL)."""
    admin = aioredis.Redis.from_url(redis_url)
    await admin.execute_command(
        "ACL", "SETUSER", "regulator", "on", ">s3cret", "resetkeys", "~{writacl}:*",
        "resetchannels", "&{writacl}:*", "+@all", "-flushdb", "-flushall", "-keys")
    try:
        url = redis_url.replace("redis://", "redis://regulator:s3cret@")
        client = aioredis.Redis.from_url(url)
        reg = Registry(client, "writacl")
        v1 = await put(reg, block("A", "a.example"))
        v2 = await put(reg, block("A", "a.example"), block("B", "b.example"))
        await rollback(reg, v1, by="x")
        assert await reg.current() == v1
        assert v2 in await reg.kept()
        entry = json.loads((await client.lrange(reg.keys.history, 0, 0))[0])
        assert entry["action"] == "rollback"
        await client.aclose()
    finally:
        await admin.execute_command("ACL", "DELUSER", "regulator")
        await admin.aclose()
