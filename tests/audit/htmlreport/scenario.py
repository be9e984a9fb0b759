"""Two nodes' logs with known enforcement windows, written by the real writer.

The order set (a folder of YAML acts):
- EX-A blocks videohost.example from 2015-09-07T00:00Z; EX-A-REV revokes it
  from 2015-09-08T12:00Z.
- EX-B blocks news.example from 2015-09-09T00:00Z.

edge-1 decides every 2 hours from 09-07T00:00 to 09-09T12:00: EX-A until the
revocation, ONE decision naming EX-A at 09-08T14:00 (after the revocation),
then EX-B from 09-09T00:00. It crashes once (its first file is left
unsealed) and restarts at 09-08T02:00 (a crash recovery). Its decisions carry
version v1 until 09-08T12:00, v2 after.

edge-2 decides every 2 hours from 09-07T00:00 to 09-08T08:00 (EX-A, v1), plus
ONE decision naming EX-B at 09-08T06:00 (before EX-B was effective), then
goes silent while edge-1 logs until 09-09T12:00. Its writer reports 3
dropped decisions at 09-07T12:00 and restarts cleanly at 09-07T20:00.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

from writ.audit import AuditLog
from writ.audit.files import chain_files
from writ.policies import AuditPolicy

START = datetime(2015, 9, 7, tzinfo=UTC)
REVOKED = datetime(2015, 9, 8, 12, tzinfo=UTC)
B_EFFECTIVE = datetime(2015, 9, 9, tzinfo=UTC)
AFTER_REVOCATION = datetime(2015, 9, 8, 14, tzinfo=UTC)
BEFORE_EFFECTIVE = datetime(2015, 9, 8, 6, tzinfo=UTC)
CRASH_RESTART = datetime(2015, 9, 8, 2, tzinfo=UTC)
EDGE1_END = datetime(2015, 9, 9, 12, tzinfo=UTC)
EDGE2_END = datetime(2015, 9, 8, 8, tzinfo=UTC)
EDGE2_DROPS = datetime(2015, 9, 7, 12, tzinfo=UTC)
EDGE2_RESTART = datetime(2015, 9, 7, 20, tzinfo=UTC)

ORDERS = {
    "ex-a.yaml": """\
id: EX-A
court: Example District Court
case: "1-1/2015"
issued: 2015-09-07
effective: 2015-09-07T00:00:00Z
summary: Block a video host
targets:
  - domain: videohost.example
""",
    "ex-a-rev.yaml": """\
id: EX-A-REV
kind: revoke
amends: EX-A
court: Example Appeals Court
case: "2-1/2015"
issued: 2015-09-08
effective: 2015-09-08T12:00:00Z
""",
    "ex-b.yaml": """\
id: EX-B
court: Example District Court
case: "1-2/2015"
issued: 2015-09-08
effective: 2015-09-09T00:00:00Z
summary: Block a news site
targets:
  - domain: news.example
""",
}


def write_orders(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in ORDERS.items():
        (folder / name).write_text(text)
    return folder


class Clock:
    def __init__(self) -> None:
        self.now = START.timestamp()

    def __call__(self) -> float:
        return self.now

    def at(self, dt: datetime) -> None:
        self.now = dt.timestamp()


def _policy(folder: Path) -> AuditPolicy:
    return dataclasses.replace(
        AuditPolicy(), path=str(folder / "decisions.log"), key_file=str(folder / "client.key"),
        signing_key_file=str(folder / "signing.key"),
        checkpoint_file=str(folder / "checkpoints.log"), fsync="never")


def _decide(log: AuditLog, clock: Clock, when: datetime, order: str, version: str,
            component: str = "dns") -> None:
    clock.at(when)
    host = "videohost.example" if order == "EX-A" else "news.example"
    log.record(component=component, client="192.0.2.7", target=f"{host}. A", decision="block",
               action="sinkhole", orders=(order,), rule=f"domain {host}",
               blocklist_version=version)
    log.flush()


def _every_2h(a: datetime, b: datetime) -> list[datetime]:
    out = []
    while a <= b:
        out.append(a)
        a += timedelta(hours=2)
    return out


def edge1(folder: Path, v1: str = "v1", v2: str = "v2") -> list[Path]:
    clock = Clock()
    times = _every_2h(START, EDGE1_END)
    log = AuditLog(_policy(folder), "edge-1", clock=clock).start()
    crashed = False
    for t in times:
        if t >= CRASH_RESTART and not crashed:
            clock.at(t - timedelta(minutes=30))
            log.close()
            _unseal(folder)  # what a crash leaves: the file never got its seal
            clock.at(t)
            log = AuditLog(_policy(folder), "edge-1", clock=clock).start()
            crashed = True
        version = v1 if t < REVOKED else v2
        if t < REVOKED:
            _decide(log, clock, t, "EX-A", version)
        elif t >= B_EFFECTIVE:
            _decide(log, clock, t, "EX-B", version, component="http" if t.hour % 4 else "dns")
        if t == AFTER_REVOCATION:
            _decide(log, clock, t, "EX-A", version)
    log.close()
    return [p for _, p in chain_files(folder / "decisions.log")]


def edge2(folder: Path, v1: str = "v1") -> list[Path]:
    clock = Clock()
    log = AuditLog(_policy(folder), "edge-2", clock=clock).start()
    for t in _every_2h(START, EDGE2_END):
        if t == EDGE2_RESTART:
            clock.at(t - timedelta(minutes=30))
            log.close()
            clock.at(t)
            log = AuditLog(_policy(folder), "edge-2", clock=clock).start()
        if t == EDGE2_DROPS:
            clock.at(t)  # first: the writer may write the count down at once
            log.note_dropped(3)
        _decide(log, clock, t, "EX-A", v1)
        if t == BEFORE_EFFECTIVE:
            _decide(log, clock, t, "EX-B", v1)
    log.close()
    return [p for _, p in chain_files(folder / "decisions.log")]


def _unseal(folder: Path) -> None:
    (_, path), *_ = reversed(chain_files(folder / "decisions.log"))
    lines = path.read_text().splitlines(keepends=True)
    assert '"writ.audit.seal"' in lines[-1]
    path.write_text("".join(lines[:-1]))


def build(tmp: Path, v1: str = "v1", v2: str = "v2") -> tuple[list[Path], Path]:
    """(log files of both nodes, orders folder); v1/v2: the blocklist versions the
    decisions carry before and after the revocation."""
    return (edge1(tmp / "edge-1", v1, v2) + edge2(tmp / "edge-2", v1),
            write_orders(tmp / "orders"))
