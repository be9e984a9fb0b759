"""A Sentinel deployment: publish and replicate through `redis+sentinel://`,
against a real redis-sentinel (redis-server --sentinel) watching the session's
own redis-server on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.blocklist.stores.conftest import block
from tests.conftest import RedisServer, free_port
from writ.blocklist import Blocklist, BlocklistHolder
from writ.blocklist.stores import RedisStore, Registry, connect, publish


@pytest.fixture
def sentinel_url(redis_server: RedisServer, redis_url: str, tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    assert binary is not None
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
