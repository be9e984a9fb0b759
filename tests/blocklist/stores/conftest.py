"""Helpers for the store tests: acts built directly, a registry on the
session's own redis-server (tests/conftest.py; never a shared Redis), and a
redis-server of the test's own (`own_redis`) for tests that stop or stall it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.conftest import RedisServer, redis_binary
from writ.blocklist import Act, ActKind, Blocklist, BlocklistHolder, BulkList, Target, TargetKind
from writ.blocklist.stores import RedisStore, Registry, publish

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)

Node = tuple[RedisStore, BlocklistHolder]


@contextlib.asynccontextmanager
async def node_starter(redis_url: str, state_root: Path, **defaults: object,
                       ) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    """`start(url=redis_url, state="node", **kw)`: a started replica node
    (store, holder) with its state in `state_root/state`, the `defaults` under
    `kw`; every node started is stopped when the block ends."""
    started: list[RedisStore] = []

    async def start(url: str = redis_url, state: str = "node", **kw: object) -> Node:
        store = RedisStore(url, prefix="writtest", state_dir=state_root / state,
                           **{**defaults, **kw})  # type: ignore[arg-type]
        holder = BlocklistHolder()
        await store.start(holder)
        started.append(store)
        return store, holder

    try:
        yield start
    finally:
        for s in started:
            await s.stop()


def version(holder: BlocklistHolder) -> str | None:
    return holder.index.version if holder.index is not None else None

ORDER = """\
id: T-1
court: Test District Court
case: "1/2020"
issued: 2020-01-01
targets:
  - domain: a.example
  - file: lists/t1.txt
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    # Make the change visible to an mtime poll even within one timestamp tick.
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that stop, stall or kill it
    (doing that to the session's would break every other test)."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(redis_binary(), tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:  # a test may have left it stopped (SIGSTOP)
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()


@pytest.fixture
def orders(tmp_path: Path) -> Path:
    d = tmp_path / "orders"
    write(d / "t1.yaml", ORDER)
    write(d / "lists" / "t1.txt", "b.example\n")
    return d



def block(oid: str, *names: str, effective: datetime = EPOCH,
          expires: datetime | None = None, bulk: tuple[str, ...] = ()) -> Act:
    return Act(
        id=oid, kind=ActKind.BLOCK, court="Test District Court", case=f"case-{oid}",
        issued=date(2020, 1, 1), effective=effective, expires=expires,
        targets=tuple(Target(TargetKind.DOMAIN, n) for n in names),
        bulk=(BulkList("lists/bulk.txt", bulk),) if bulk else (),
    )


def blocked(holder_index: object, name: str) -> bool:
    from writ.blocklist import Index

    assert isinstance(holder_index, Index)
    return holder_index.decide_name(name).blocked


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until `cond()` holds; fails the test after `timeout`."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - start


@pytest.fixture
async def registry(redis_url: str) -> AsyncIterator[Registry]:
    client = aioredis.Redis.from_url(redis_url)
    yield Registry(client, "writtest")
    await client.aclose()


async def put(registry: Registry, *acts: Act, by: str = "tester@test") -> str:
    done = await publish(registry, Blocklist(acts), by=by)
    return done.version
