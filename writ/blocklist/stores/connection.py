"""Opening a Redis client from a URL: plain, TLS, ACL user, Sentinel.

    redis://[user:password@]host:port/db         plain (password/ACL user from the URL)
    rediss://…                                   TLS (redis-py's ssl_* query options apply)
    redis+sentinel://[user:pw@]h1:p1[,h2:p2]/service[/db]   Sentinel; rediss+sentinel for TLS

This module is the one place a Redis client is made — the node's store, the
publisher (`writ orders …`) and the audit writer's checkpoint push all come
here, so a URL that works for one works for all (docs/design.md).

Invariants:
- Every client has connect and read timeouts: a node's background task
  notices a dead Redis instead of hanging on it.
- Passwords never reach logs or status: use `redact(url)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.sentinel
from redis.asyncio.sentinel import Sentinel

__all__ = ["SentinelTarget", "connect", "connect_sync", "parse_sentinel_url", "redact"]

CONNECT_TIMEOUT = 2.0
# Reads include fetching a version of several MB; generous, but finite.
READ_TIMEOUT = 15.0


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None
    ssl: bool


def parse_sentinel_url(url: str) -> SentinelTarget:
    """`redis+sentinel://[user:pw@]h1:p1[,h2:p2]/service[/db]`. Raises ValueError."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis+sentinel", "rediss+sentinel"):
        raise ValueError(f"not a sentinel URL: {redact(url)}")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    username = password = None
    if userinfo:
        user, _, pw = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(pw) or None
    sentinels = []
    for hp in hostlist.split(","):
        host, _, port = hp.rpartition(":") if ":" in hp else (hp, "", "26379")
        host = host.strip("[]")
        if not host or not port.isdigit():
            raise ValueError(f"bad sentinel address {hp!r} in {redact(url)}")
        sentinels.append((host, int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError(f"sentinel URL needs a service name: {redact(url)}")
    db = int(path[1]) if len(path) > 1 and path[1].isdigit() else 0
    return SentinelTarget(tuple(sentinels), unquote(path[0]), db, username, password,
                          parts.scheme.startswith("rediss"))


def _options(url: str, connect_timeout: float, read_timeout: float) -> dict[str, Any]:
    if "+sentinel://" not in url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"not a Redis URL (redis://, rediss://, redis+sentinel://): "
                         f"{redact(url)}")
    return {"socket_connect_timeout": connect_timeout, "socket_timeout": read_timeout,
            "decode_responses": False}


def connect(url: str, *, connect_timeout: float = CONNECT_TIMEOUT,
            read_timeout: float = READ_TIMEOUT) -> aioredis.Redis:
    """An asyncio client for `url` (bytes responses). Raises ValueError on a malformed URL."""
    opts = _options(url, connect_timeout, read_timeout)
    if "+sentinel://" in url:
        t = parse_sentinel_url(url)
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(t.sentinels), socket_connect_timeout=connect_timeout, ssl=t.ssl,
            socket_timeout=read_timeout, username=t.username, password=t.password,
        )
        master: aioredis.Redis = sentinel.master_for(t.service, db=t.db, **opts)
        return master
    return aioredis.Redis.from_url(url, **opts)


def connect_sync(url: str, *, connect_timeout: float = CONNECT_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT) -> redis.Redis:
    """A blocking client for `url`, for threads without an event loop (the audit
    writer's checkpoint push). Same URLs, same rules as `connect`."""
    opts = _options(url, connect_timeout, read_timeout)
    if "+sentinel://" in url:
        t = parse_sentinel_url(url)
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
            list(t.sentinels), socket_connect_timeout=connect_timeout, ssl=t.ssl,
            socket_timeout=read_timeout, username=t.username, password=t.password,
        )
        master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            t.service, db=t.db, **opts)
        return master
    return redis.Redis.from_url(url, **opts)


def redact(url: str) -> str:
    """The URL without its password (for logs, status and error messages)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}:***@{hosts}").geturl()
