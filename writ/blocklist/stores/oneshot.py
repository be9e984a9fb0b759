"""One-shot reads of the published version, for commands that do not run a
node (`writ explain --redis`, `writ export --redis`, `writ orders diff`).

Invariants:
- Every failure is a PublishedError with a message fit for a user (where, and
  what is wrong); the password in the URL is never shown.
- With a keyring, the live set is read as a node with that keyring would take
  it (setguard.judge_set: a signed manifest by a publisher key, unexpired,
  listing exactly the blob the pointer names, byte for byte), and refused
  otherwise (SetRefusedError naming the alarm, the manifest and the key), so an
  auditor is never shown a set the nodes refuse. A one-shot reader keeps no
  manifest of its own: it cannot tell a replayed older set that is still
  unexpired (docs/auditor.md "What a manifest proves").
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from writ.blocklist.holder import Blocklist
from writ.blocklist.stores.blob import VersionError, decode_acts
from writ.blocklist.stores.connection import connect, redact
from writ.blocklist.stores.registry import Registry

if TYPE_CHECKING:
    from writ.blocklist.signed.authorities import Keyring

__all__ = ["PublishedError", "SetRefusedError", "fetch_published", "read_published"]


class PublishedError(Exception):
    """Redis unreachable, nothing published, or the live version is unusable."""


class SetRefusedError(PublishedError):
    """The live set does not pass the manifest check a node with the keyring makes."""


async def fetch_published(url: str, prefix: str = "writ", keyring: Keyring | None = None,
                          now: datetime | None = None) -> Blocklist:
    """The live version; with `keyring`, only if its signed manifest holds at `now`."""
    try:
        client = connect(url)
    except ValueError as e:
        raise PublishedError(str(e)) from None
    try:
        registry = Registry(client, prefix)
        if keyring is not None:
            return await _fetch_signed(registry, redact(url), keyring, now or datetime.now(UTC))
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


async def _fetch_signed(registry: Registry, where: str, keyring: Keyring,
                        now: datetime) -> Blocklist:
    from writ.blocklist.stores.setguard import Refusal, judge_set

    vid, mdata, msig = await registry.live()  # pointer and manifest, as one read
    if vid is None:
        raise PublishedError(f"nothing published under {registry.keys.current} at {where}")
    data, sha = await registry.fetch(vid)
    verdict = await asyncio.to_thread(judge_set, vid, mdata, msig, data, keyring=keyring,
                                      kept=None, now=now)
    if isinstance(verdict, Refusal):
        raise SetRefusedError(f"{where}: the live set (version {vid}) is refused as a node "
                              f"with this keyring would refuse it ({verdict.alarm}): "
                              f"{verdict.message}")
    acts = await asyncio.to_thread(decode_acts, data, sha, f"version {vid}")
    return Blocklist(acts, version=vid)


def read_published(url: str, prefix: str = "writ", keyring: Keyring | None = None) -> Blocklist:
    """fetch_published() for synchronous callers (not from inside a running loop)."""
    return asyncio.run(fetch_published(url, prefix, keyring))
