"""Node replicas (`--redis URL`): switching on notification, deltas, fail-static
across Redis outages and node restarts, refusing corrupt versions, and switching
at an instant without a re-publish. Real redis-server, real sockets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.blocklist.stores.conftest import Node, block, node_starter, put, version, wait_for
from tests.conftest import RedisServer, free_port
from writ.blocklist import Blocklist, BlocklistHolder
from writ.blocklist.stores import Registry, publish
from writ.blocklist.stores.blob import checksum

StartNode = Callable[..., "AsyncIterator[Node]"]


@pytest.fixture
async def nodes(redis_url: str, tmp_path: Path) -> AsyncIterator[Callable[..., object]]:
    # poll_interval long: switching must come from pub/sub
    async with node_starter(redis_url, tmp_path, poll_interval=30.0, max_backoff=0.3) as start:
        yield start


def blocks(holder: BlocklistHolder, name: str) -> bool:
    return holder.index is not None and holder.index.decide_name(name).blocked


async def test_two_nodes_converge_on_a_publish(registry: Registry, nodes) -> None:  # type: ignore[no-untyped-def]
    v1 = await put(registry, block("A", "a.example"))
    (s1, h1), (_, h2) = await nodes(state="n1"), await nodes(state="n2")
    assert version(h1) == version(h2) == v1
    assert s1.status().ready
    v2 = await put(registry, block("A", "a.example"), block("B", "b.example"))
    await wait_for(lambda: version(h1) == version(h2) == v2, timeout=3)
    assert blocks(h1, "x.b.example")
    assert blocks(h2, "x.b.example")
    st = s1.status()
    assert (st.source, st.version, st.stale, st.last_error) == ("redis", v2, False, None)


async def test_a_missed_notification_is_caught_by_the_poll(registry: Registry, nodes) -> None:  # type: ignore[no-untyped-def]
    await put(registry, block("A", "a.example"))
    _, holder = await nodes(poll_interval=0.2)
    new = Blocklist([block("B", "b.example")])
    from writ.blocklist.stores.blob import encode_acts

    await registry.put(new, encode_acts(new.acts), {}, None)
    await registry.client.set(registry.keys.current, new.version)  # no PUBLISH: a lost hint
    await wait_for(lambda: version(holder) == new.version, timeout=3)


async def test_delta_when_on_the_previous_version_full_load_otherwise(
        registry: Registry, nodes) -> None:  # type: ignore[no-untyped-def]
    names = tuple(f"h{i}.bulk.example" for i in range(5000))
    await put(registry, block("BIG", bulk=names))
    store, holder = await nodes()
    assert store.loads == {"full": 1, "delta": 0}
    v2 = await put(registry, block("BIG", bulk=names), block("NEW", "new.example"))
    await wait_for(lambda: version(holder) == v2)
    assert store.loads == {"full": 1, "delta": 1}
    assert blocks(holder, "new.example")
    assert blocks(holder, "h4999.bulk.example")
    # Jumping two versions at once: the stored delta is from v2's successor's base,
    # not from what this node holds, so it loads the whole version.
    await store.stop()
    v3 = await put(registry, block("BIG", bulk=names), block("NEW", "new.example"),
                   block("N3", "n3.example"))
    v4 = await put(registry, block("BIG", bulk=names), block("N3", "n3.example"))
    assert (await registry.load_delta(v4, v3)) is not None
    await store.start(holder)
    assert version(holder) == v4
    assert store.loads["full"] == 2
    assert not blocks(holder, "new.example")
    assert blocks(holder, "n3.example")


async def test_redis_killed_and_restarted(registry: Registry, nodes,  # type: ignore[no-untyped-def]
                                          redis_server: RedisServer) -> None:
    v1 = await put(registry, block("A", "a.example"))
    store, holder = await nodes()
    try:
        redis_server.stop()
        await wait_for(lambda: store.status().stale, timeout=5)
        st = store.status()
        assert st.ready
        assert st.version == v1
        assert "unreachable" in (st.last_error or "")
        assert blocks(holder, "a.example")  # still enforcing the last good version
    finally:
        redis_server.start()  # the session's server (no persistence: it comes back empty)
    await wait_for(lambda: "nothing published" in (store.status().last_error or ""), timeout=5)
    assert blocks(holder, "a.example")  # an empty Redis does not open the gates
    await registry.client.connection_pool.disconnect()  # the publisher's pooled sockets died
    v2 = await put(registry, block("B", "b.example"))
    await wait_for(lambda: version(holder) == v2, timeout=5)
    assert not store.status().stale
    assert blocks(holder, "b.example")


async def test_node_restart_with_redis_down_enforces_the_disk_copy(
        registry: Registry, nodes) -> None:  # type: ignore[no-untyped-def]
    v1 = await put(registry, block("A", "a.example"))
    store, _ = await nodes(state="shared")
    await wait_for(lambda: store._persist is not None and store._persist.done())
    await store.stop()
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    store2, holder2 = await nodes(url=dead, state="shared")
    st = store2.status()
    assert (st.ready, st.source, st.stale, st.version) == (True, "disk", True, v1)
    assert blocks(holder2, "www.a.example")


async def test_no_redis_and_no_disk_copy_means_not_ready(nodes) -> None:  # type: ignore[no-untyped-def]
    store, holder = await nodes(url=f"redis://127.0.0.1:{free_port()}/0", state="empty")
    st = store.status()
    assert not holder.ready
    assert not st.ready
    assert st.version is None
    assert "unreachable" in (st.last_error or "")


async def test_a_corrupt_disk_copy_is_not_trusted(registry: Registry, nodes,  # type: ignore[no-untyped-def]
                                                  tmp_path: Path) -> None:
    await put(registry, block("A", "a.example"))
    store, _ = await nodes(state="bad")
    await wait_for(lambda: store._persist is not None and store._persist.done())
    await store.stop()
    path = tmp_path / "bad" / "redis-writtest.blocklist"
    path.write_bytes(path.read_bytes()[:-10])  # truncated
    _, holder = await nodes(url=f"redis://127.0.0.1:{free_port()}/0", state="bad")
    assert not holder.ready


async def test_a_corrupt_or_foreign_version_is_refused(registry: Registry, nodes) -> None:  # type: ignore[no-untyped-def]
    v1 = await put(registry, block("A", "a.example"))
    store, holder = await nodes()
    # Someone writes a value under the prefix that is not a writ version, and points at it.
    bad = b"{not writ}"
    await registry.client.hset(registry.keys.version("feedfacefeedface"),
                               mapping={"data": bad, "sha256": checksum(bad), "meta": "{}"})
    await registry.switch("feedfacefeedface", v1, {"action": "apply"}, 10, 0.0)
    await wait_for(lambda: "refused" in (store.status().last_error or ""))
    assert version(holder) == v1
    assert blocks(holder, "a.example")
    assert store.status().stale
    # A good publish afterwards is taken as usual.
    v3 = await publish(registry, Blocklist([block("C", "c.example")]), by="x")
    await wait_for(lambda: version(holder) == v3.version)
    assert json.loads((await registry.client.lrange(registry.keys.history, 0, 0))[0])["by"] == "x"


async def test_nodes_switch_at_an_instant_without_a_republish(registry: Registry, nodes) -> None:  # type: ignore[no-untyped-def]
    soon = datetime.now(UTC) + timedelta(seconds=1)
    await put(registry, block("LATER", "later.example", effective=soon),
              block("BRIEF", "brief.example", expires=soon))
    _, holder = await nodes()
    assert not blocks(holder, "later.example")
    assert blocks(holder, "brief.example")
    await wait_for(lambda: blocks(holder, "later.example"), timeout=3)
    assert datetime.now(UTC) >= soon
    assert not blocks(holder, "brief.example")


async def test_a_node_that_refused_a_missing_live_version_takes_it_once_repaired(
        registry: Registry, nodes) -> None:  # type: ignore[no-untyped-def]
    from writ.blocklist.stores import repair

    live = Blocklist([block("A", "a.example")])
    vid = await put(registry, *live.acts)
    await registry.client.delete(registry.keys.version(vid))
    store, holder = await nodes(state="fresh", poll_interval=0.2)  # no disk copy
    assert holder.index is None
    assert not store.status().ready
    assert await repair(registry, live, by="tester@test")
    await wait_for(lambda: version(holder) == vid, timeout=5)
    assert blocks(holder, "x.a.example")
    assert not store.status().stale


async def test_a_running_node_says_when_the_live_versions_stored_copy_is_gone(
        registry: Registry, nodes) -> None:  # type: ignore[no-untyped-def]
    """It still enforces the live version (not stale), but a node starting now
    could not load it: the operator hears of it on /readyz (store.last_error)."""
    vid = await put(registry, block("A", "a.example"))
    store, holder = await nodes(state="running", poll_interval=0.1)
    assert version(holder) == vid
    await registry.client.delete(registry.keys.version(vid))
    await wait_for(lambda: store.status().last_error is not None, timeout=5)
    st = store.status()
    assert not st.stale
    assert "writ orders apply" in (st.last_error or "")
    assert vid in (st.last_error or "")
