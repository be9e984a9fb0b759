"""Two nodes' logs with signed sets, a key change and writer errors, written by the
real writer (control records through AuditLog.control, as writ.node writes them).

edge-s (one process), 2015-09-07 (UTC):
- 00:10 a decision with version v0, before any signed set (not tied to one);
- 01:00 set v1, manifest 1 (demo-publisher), expires 06:00; decisions at 02:00 and
  04:00, then at 07:00 and 08:00: after its expiry;
- 09:00 set v2, manifest 2 (two signers); a decision at 10:00; at 11:00 one naming
  v9, which no signed set put in force;
- 12:00 manifest 3 renews v2 (expires 09-09); decisions at 13:00 and 18:00;
- 14:00 closed, the signing key deleted, 15:00 started again: a key change;
- 16:00 and 17:00 `checkpoint push` errors (counts 3 and 2), 17:30 a `render` error.

edge-w (workers 101 and 102, after a restart 201 and 202), 2015-09-07:
- 00:01 both workers switch to manifest 1 (v1); a decision at 01:00;
- 02:00 worker 101 switches to manifest 2 (v2), 102 only at 03:30: the workers
  disagree for 1 h 30 min; decisions with v1 and v2 at 02:30;
- 04:00 and 04:00:20 both switch to manifest 3 (v3): 20 s apart; a decision at 04:30;
- 05:00 closed, 05:10 restarted: the new workers switch to manifest 3 at 05:11, a
  decision at 05:30; 06:00 worker 201 switches to manifest 4 (v4) and 202 never
  does before the log ends at 07:00 (a decision with v4 then).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.audit.htmlreport.scenario import Clock, audit_policy
from writ.audit import AuditLog
from writ.audit.files import chain_files
from writ.audit.record import SIGNED_SET

DAY = datetime(2015, 9, 7, tzinfo=UTC)
ERROR = "writ.audit.error"


def at(hours: float, seconds: float = 0) -> datetime:
    return DAY + timedelta(hours=hours, seconds=seconds)


def ts(hours: float, seconds: float = 0) -> str:
    """The writer's `ts` for that instant."""
    return at(hours, seconds).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def signed_set(log: AuditLog, clock: Clock, when: datetime, version: str, sequence: Any,
               expires: datetime | str, *, signers: Any = ("demo-publisher",),
               worker: Any = None, digest: str | None = None) -> None:
    """The record writ.node writes when a set goes into force (SetGuard.control_fields)."""
    clock.at(when)
    fields: dict[str, Any] = {
        "blocklist_version": version, "manifest_sequence": sequence,
        "manifest_digest": digest or hashlib.sha256(f"{version}/{sequence}".encode()).hexdigest(),
        "signers": list(signers) if isinstance(signers, tuple) else signers,
        "manifest_created": (when - timedelta(minutes=30)).isoformat(),
        "manifest_expires": expires.isoformat() if isinstance(expires, datetime) else expires,
        "manifest_previous": None}
    if worker is not None:
        fields["worker"] = worker
    log.control(SIGNED_SET, **fields)


def decide(log: AuditLog, clock: Clock, when: datetime, version: str,
           target: str = "videohost.example. A") -> None:
    clock.at(when)
    log.record(component="dns", client="192.0.2.7", target=target, decision="block",
               action="sinkhole", orders=("EX-A",), rule="domain videohost.example",
               blocklist_version=version)
    log.flush()


def error(log: AuditLog, clock: Clock, when: datetime, what: str, count: int,
          message: str) -> None:
    clock.at(when)
    log.control(ERROR, what=what, count=count, error=message)


def _start(folder: Path, node: str, clock: Clock, when: datetime) -> AuditLog:
    clock.at(when)
    return AuditLog(audit_policy(folder), node, clock=clock).start()


def _close(log: AuditLog, clock: Clock, when: datetime) -> None:
    clock.at(when)
    log.close()


def edge_s(folder: Path) -> list[Path]:
    clock = Clock()
    log = _start(folder, "edge-s", clock, at(0))
    decide(log, clock, at(0, 600), "v0")
    signed_set(log, clock, at(1), "v1", 1, at(6))
    for h in (2, 4, 7, 8):
        decide(log, clock, at(h), "v1")
    signed_set(log, clock, at(9), "v2", 2, at(33), signers=("demo-publisher", "second-publisher"))
    decide(log, clock, at(10), "v2")
    decide(log, clock, at(11), "v9", target="unsigned.example. A")
    signed_set(log, clock, at(12), "v2", 3, at(48))
    decide(log, clock, at(13), "v2")
    _close(log, clock, at(14))
    (folder / "signing.key").unlink()  # a lost disk, or someone covering tracks
    log = _start(folder, "edge-s", clock, at(15))
    error(log, clock, at(16), "checkpoint push", 3, "checkpoint push: /srv/cp.log: No space")
    error(log, clock, at(17), "checkpoint push", 2, "checkpoint push: /srv/cp.log: Read-only")
    error(log, clock, at(17.5), "render", 1, "a decision could not be rendered")
    decide(log, clock, at(18), "v2")
    _close(log, clock, at(18))
    return [p for _, p in chain_files(folder / "decisions.log")]


def edge_w(folder: Path) -> list[Path]:
    clock = Clock()
    log = _start(folder, "edge-w", clock, at(0))
    far = at(72)
    signed_set(log, clock, at(0, 60), "v1", 1, far, worker=101)
    signed_set(log, clock, at(0, 65), "v1", 1, far, worker=102)
    decide(log, clock, at(1), "v1")
    signed_set(log, clock, at(2), "v2", 2, far, worker=101)
    decide(log, clock, at(2.5), "v1")
    decide(log, clock, at(2.5), "v2")
    signed_set(log, clock, at(3.5), "v2", 2, far, worker=102)
    signed_set(log, clock, at(4), "v3", 3, far, worker=101)
    signed_set(log, clock, at(4, 20), "v3", 3, far, worker=102)
    decide(log, clock, at(4.5), "v3")
    _close(log, clock, at(5))
    log = _start(folder, "edge-w", clock, at(5, 600))
    signed_set(log, clock, at(5, 660), "v3", 3, far, worker=201)
    signed_set(log, clock, at(5, 660), "v3", 3, far, worker=202)
    decide(log, clock, at(5.5), "v3")
    signed_set(log, clock, at(6), "v4", 4, far, worker=201)
    decide(log, clock, at(7), "v4")
    _close(log, clock, at(7))
    return [p for _, p in chain_files(folder / "decisions.log")]


def build(tmp: Path) -> list[Path]:
    return edge_s(tmp / "edge-s") + edge_w(tmp / "edge-w")
