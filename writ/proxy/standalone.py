"""What a proxy started on its own needs: a holder, a policy and an audit sink.

Used by `writ proxy` and by the addon when `mitmdump -s` loads it. `writ
serve` does not come here: the node module builds one holder and one sink for
every shell and passes them to the addon's constructor.

PROVISIONAL parts, each behind one clearly named function, for the lead to
replace: `open_audit_sink` (until writ.audit offers its writer) and the
fallback in `load_policy_file` (until writ.policies.load_policy lands).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from writ.audit import DecisionSink
from writ.blocklist import BlocklistHolder
from writ.policies import Policy

__all__ = ["load_policy_file", "open_audit_sink", "open_holder_for"]

log = logging.getLogger("writ.proxy")


def load_policy_file(path: str | None) -> Policy:
    """The policy from `path` (None: the defaults). Raises ValueError naming the file."""
    if path is None:
        return Policy()
    try:
        from writ.policies import load_policy  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        log.warning("writ.policies.load_policy is not available; using default policy "
                    "instead of %s", path)
        return Policy()
    policy: Policy = load_policy(Path(path))
    return policy


def open_holder_for(orders: str | None, redis_url: str | None,
                    policy: Policy) -> BlocklistHolder:
    """The node's holder for one store (`--orders DIR` or `--redis URL`)."""
    from writ.node import open_holder

    return open_holder(Path(orders) if orders else None, redis_url, policy)


class _UnchainedFileSink:
    """One JSON line per decision, no hash chain: only until writ.audit's writer lands."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def record(self, *, component: str, client: str, target: str, decision: str,
               action: str, orders: Sequence[str], rule: str | None,
               blocklist_version: str | None) -> None:
        rec = {"ts": datetime.now(UTC).isoformat(), "component": component, "client": client,
               "target": target, "decision": decision, "action": action,
               "orders": list(orders), "rule": rule, "blocklist_version": blocklist_version}
        self._stream.write(json.dumps(rec, ensure_ascii=False) + "\n")
        self._stream.flush()


def open_audit_sink(path: str | None, policy: Policy) -> DecisionSink:
    """The decision log at `path` (None: the policy's audit path; "-": stderr)."""
    target = path or policy.audit.path
    try:
        from writ.audit import AuditLog  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        log.warning("writ.audit.AuditLog is not available yet: decisions go to %s "
                    "as plain JSON lines WITHOUT a hash chain", target)
        if target == "-":
            return _UnchainedFileSink(sys.stderr)
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        return _UnchainedFileSink(open(target, "a", encoding="utf-8"))  # noqa: SIM115
    sink: DecisionSink = AuditLog(Path(target), policy)
    return sink
