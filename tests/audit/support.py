"""Helpers for the audit tests: a policy in a temp dir, logs with known content."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from writ.audit import AuditLog
from writ.audit.files import chain_files
from writ.audit.record import render_line
from writ.policies import AuditPolicy


def policy(tmp: Path, **overrides: Any) -> AuditPolicy:
    base = AuditPolicy(
        path=str(tmp / "audit" / "decisions.log"),
        key_file=str(tmp / "audit" / "client.key"),
        signing_key_file=str(tmp / "audit" / "signing.key"),
        checkpoint_file=str(tmp / "audit" / "checkpoints.log"),
        fsync="never",  # tmp files: durability is not what these tests measure
    )
    return dataclasses.replace(base, **overrides)


def on_full_disk(tmp: Path, **overrides: Any) -> AuditPolicy:
    """A policy whose first log file is /dev/full: every write fails with ENOSPC."""
    pol = policy(tmp, **overrides)
    target = Path(pol.path).with_name("decisions.000001.log")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to("/dev/full")
    return pol


def decide(log: Any, i: int, *, component: str = "dns", decision: str = "block",
           orders: tuple[str, ...] = ("EX-2015-0907-VH",)) -> None:
    log.record(component=component, client=f"192.0.2.{i % 250}",
               target=f"n{i}.videohost.example. A",
               decision=decision, action="sinkhole", orders=orders,
               rule="domain:videohost.example", blocklist_version="v1")


def write_log(tmp: Path, n: int, **overrides: Any) -> list[Path]:
    """A closed (sealed) chain with n decisions; returns its files in order."""
    with AuditLog(policy(tmp, **overrides), "edge-1") as log:
        for i in range(n):
            decide(log, i)
    return files(tmp)


def files(tmp: Path) -> list[Path]:
    return [p for _, p in chain_files(tmp / "audit" / "decisions.log")]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines(path)]


def rechain_from(path: Path, start: int, edit: dict[str, Any]) -> None:
    """What a file holder can do without the signing key: edit line `start`
    and recompute every hash from there on (seal included)."""
    original = lines(path)
    recs = records(path)
    recs[start].update(edit)
    prev = recs[start]["prev"]
    out = []
    for i, old in enumerate(recs):
        if i >= start:
            rec = {k: v for k, v in old.items() if k != "hash"}
            rec["prev"] = prev
            if rec["event"] == "writ.audit.seal":
                rec["last"] = prev
            line, prev = render_line(rec)
            out.append(line + "\n")
        else:
            out.append(original[i])
    path.write_text("".join(out))
