"""A Sentinel deployment: publish and replicate through `redis+sentinel://`,
against a real redis-sentinel (redis-server --sentinel) watching the session's
own redis-server on loopback."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.blocklist.stores.conftest import block
from tests.conftest import RedisServer, free_port, redis_binary
from writ.blocklist import Act, Blocklist, BlocklistHolder
from writ.blocklist.stores import RedisStore, Registry, connect, publish


@pytest.fixture
def sentinel_url(redis_server: RedisServer, redis_url: str, tmp_path: Path) -> Iterator[str]:
    binary = redis_binary()
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor writmaster 127.0.0.1 {redis_server.port} 1\n")
    proc = subprocess.Popen([binary, str(conf), "--sentinel"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis+sentinel://127.0.0.1:{port}/writmaster"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_publish_and_replicate_through_sentinel(sentinel_url: str, tmp_path: Path) -> None:
    client = connect(sentinel_url)
    try:
        done = await publish(Registry(client, "writsent"), Blocklist([block("A", "a.example")]),
                             by="x")
    finally:
        await client.aclose()
    store = RedisStore(sentinel_url, prefix="writsent", state_dir=tmp_path / "n")
    holder = BlocklistHolder()
    await store.start(holder)
    try:
        assert store.status().version == done.version
        assert holder.index is not None
        assert holder.index.decide_name("a.example").blocked
    finally:
        await store.stop()


@pytest.fixture
def failover_pair(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer, str]]:
    """A master, its replica and a sentinel that promotes the replica half a
    second after the master stops answering: (master, replica, sentinel URL)."""
    binary = redis_binary()
    (tmp_path / "m").mkdir()
    (tmp_path / "r").mkdir()
    master = RedisServer(binary, tmp_path / "m")
    master.start()
    replica = RedisServer(binary, tmp_path / "r",
                          extra=("--replicaof", "127.0.0.1", str(master.port)))
    replica.start()
    port = free_port()
    conf = tmp_path / "failover-sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor writfo 127.0.0.1 {master.port} 1\n"
                    "sentinel down-after-milliseconds writfo 500\n"
                    "sentinel failover-timeout writfo 5000\n")
    proc = subprocess.Popen([binary, str(conf), "--sentinel"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _until(lambda: _answers(port), 10, "sentinel did not start")
        yield master, replica, f"redis+sentinel://127.0.0.1:{port}/writfo"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        replica.stop()
        master.stop()


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def _until(cond: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(what)
        time.sleep(0.05)


def _replica_has(replica: RedisServer, version: str) -> bool:
    import redis

    c = redis.Redis(port=replica.port)
    try:
        return c.get("{writfo}:current") == version.encode()
    finally:
        c.close()


async def test_a_node_keeps_enforcing_through_a_failover_and_follows_the_new_master(
        failover_pair: tuple[RedisServer, RedisServer, str], tmp_path: Path) -> None:
    import asyncio

    master, replica, url = failover_pair

    async def put(*acts: Act) -> str:
        client = connect(url)
        try:
            return (await publish(Registry(client, "writfo"), Blocklist(acts), by="x")).version
        finally:
            await client.aclose()

    v1 = await put(block("A", "a.example"))
    store = RedisStore(url, prefix="writfo", state_dir=tmp_path / "n", poll_interval=0.5,
                       max_backoff=0.5)
    holder = BlocklistHolder()
    await store.start(holder)
    try:
        assert store.status().version == v1
        await asyncio.to_thread(_until, lambda: _replica_has(replica, v1), 10,
                                "the replica never received the version")
        assert master.proc is not None
        master.proc.kill()  # the master dies without warning
        master.proc.wait()
        await asyncio.sleep(1.0)
        assert holder.index is not None
        assert holder.index.decide_name("a.example").blocked  # fail-static meanwhile
        # once the sentinel has promoted the replica, a publish reaches the node
        deadline = time.monotonic() + 30
        v2 = None
        while v2 is None:
            try:
                v2 = await put(block("A", "a.example"), block("B", "b.example"))
            except Exception:  # still failing over: the sentinel names the dead master
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        while store.status().version != v2:
            if time.monotonic() > deadline:
                pytest.fail(f"the node stayed on {store.status().version}, not {v2}")
            await asyncio.sleep(0.05)
        assert holder.index.decide_name("b.example").blocked
        assert holder.index.decide_name("a.example").blocked
        assert _replica_has(replica, v2)  # published to the promoted replica
    finally:
        await store.stop()
