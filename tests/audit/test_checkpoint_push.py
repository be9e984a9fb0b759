"""The Redis copy of the checkpoints goes through the one connection factory:
the URL forms and the ACL that work for publishing work for it (issue 12)."""

from __future__ import annotations

from pathlib import Path

import redis

from tests.blocklist.stores.test_tls import tls_redis  # noqa: F401 - a fixture
from writ.audit.checkpoint import Checkpointer

TS = "2015-09-07T00:00:00.000000Z"


def _pushed(url: str, key: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    try:
        return list(client.lrange(key, 0, -1))
    finally:
        client.close()


def test_a_user_restricted_to_the_prefix_can_push_checkpoints(tmp_path: Path,
                                                               redis_url: str) -> None:
    """The publisher's ACL (`~{writacl}:*`) covers the checkpoint list too: it sits
    inside the hash tag (before, `writacl:audit:…` was refused with NOPERM)."""
    admin = redis.Redis.from_url(redis_url)
    admin.execute_command(
        "ACL", "SETUSER", "edgenode", "on", ">s3cret", "resetkeys", "~{writacl}:*",
        "resetchannels", "&{writacl}:*", "+@all", "-flushdb", "-flushall", "-keys")
    try:
        url = redis_url.replace("redis://", "redis://edgenode:s3cret@")
        cp = Checkpointer(tmp_path / "k", tmp_path / "cp.log", redis_url=url,
                          redis_prefix="writacl:")
        cp.checkpoint("edge-1", 7, "a" * 64, TS)
        cp.close()
        assert cp.push_failures == 0, cp.last_push_error
        assert len(_pushed(redis_url, "{writacl}:audit:checkpoints:edge-1")) == 1
    finally:
        admin.execute_command("ACL", "DELUSER", "edgenode")
        admin.close()


def test_checkpoints_are_pushed_over_tls(tmp_path: Path,
                                         tls_redis: tuple[str, Path]) -> None:  # noqa: F811
    url, _ = tls_redis
    cp = Checkpointer(tmp_path / "k", tmp_path / "cp.log", redis_url=url, redis_prefix="tlscp")
    cp.checkpoint("edge-1", 7, "a" * 64, TS)
    cp.close()
    assert cp.push_failures == 0, cp.last_push_error
    client = redis.Redis.from_url(url)
    try:
        assert client.llen("{tlscp}:audit:checkpoints:edge-1") == 1
    finally:
        client.close()
