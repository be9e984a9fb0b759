"""What a proxy started on its own needs: a holder, a policy and an audit log.

Used by `writ proxy` and by the addon when `mitmdump -s` loads it. `writ
serve` does not come here: the node module builds one holder and one audit
log for every shell and passes them to the addon's constructor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from writ.audit import AuditLog
from writ.blocklist import BlocklistHolder
from writ.policies import Policy, load_policy

__all__ = ["follow", "load_policy_file", "open_audit_log", "open_holder_for"]


def load_policy_file(path: str | None) -> Policy:
    """The policy from `path` (None: the defaults). Raises PolicyError naming the file."""
    return Policy() if path is None else load_policy(Path(path))


def open_holder_for(orders: str | None, redis_url: str | None,
                    policy: Policy) -> BlocklistHolder:
    """The node's holder for one store (`--orders DIR` or `--redis URL`)."""
    from writ.blocklist.stores import load_holder

    return load_holder(Path(orders) if orders else None, redis_url, tz=policy.timezone,
                       limits=policy.ip.limits())


def open_audit_log(path: str | None, policy: Policy, redis_url: str | None = None) -> AuditLog:
    """The node's started decision log at `path` (None: the policy's audit path),
    with the policy's off-box checkpoint copies. The caller closes it on
    shutdown (that seals the file)."""
    return AuditLog.from_policy(policy, path=path, redis_url=redis_url).start()


async def follow(holder: BlocklistHolder, orders: str | None, redis_url: str | None,
                 policy: Policy, state_dir: Path = Path("state")) -> Any:
    """Keep `holder` current from its store (folder watch or Redis replica,
    fail-static with a disk copy), as `writ proxy` does; returns the started
    store, which the caller stops."""
    from zoneinfo import ZoneInfo

    from writ.blocklist.stores import open_store

    store = open_store(Path(orders) if orders else None, redis_url, state_dir=state_dir,
                       tz=ZoneInfo(policy.timezone), limits=policy.ip.limits())
    await store.start(holder)
    return store
