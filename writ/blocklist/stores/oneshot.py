"""One-shot reads of the published version, for commands that do not run a
node (`writ explain --redis`, `writ export --redis`, `writ orders diff`).

Invariant: every failure is a PublishedError with a message fit for a
user (where, and what is wrong); the password in the URL is never shown.
"""

from __future__ import annotations

import asyncio
import contextlib

from redis.exceptions import RedisError

from writ.blocklist.holder import Blocklist
from writ.blocklist.stores.blob import VersionError
from writ.blocklist.stores.connection import connect, redact
from writ.blocklist.stores.registry import Registry

__all__ = ["PublishedError", "fetch_published", "read_published"]


class PublishedError(Exception):
    """Redis unreachable, nothing published, or the live version is unusable."""


async def fetch_published(url: str, prefix: str = "writ") -> Blocklist:
    try:
        client = connect(url)
    except ValueError as e:
        raise PublishedError(str(e)) from None
    try:
        registry = Registry(client, prefix)
        vid = await registry.current()
        if vid is None:
            raise PublishedError(
                f"nothing published under {registry.keys.current} at {redact(url)}")
        return await registry.load(vid)
    except VersionError as e:
        raise PublishedError(f"{redact(url)}: {e}") from None
    except (RedisError, OSError) as e:
        raise PublishedError(f"cannot reach Redis at {redact(url)}: {e}") from None
    finally:
        with contextlib.suppress(RedisError, OSError):
            await client.aclose()


def read_published(url: str, prefix: str = "writ") -> Blocklist:
    """fetch_published() for synchronous callers (not from inside a running loop)."""
    return asyncio.run(fetch_published(url, prefix))
