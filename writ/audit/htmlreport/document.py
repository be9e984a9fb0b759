"""Everything the report says, gathered: verify per node, one scan per node, findings.

Invariants:
- The verdict is `writ.audit.verify`'s, run on each node's files in the order
  given: the report never re-implements the chain check.
- Files are grouped by the node their first record names; a file that names
  none goes to node `?` (verify then says why).
- Pure of the network: the act set and the publish history come in as values
  (the command reads them from a folder or from Redis).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from writ.audit.checkpoint import Checkpoint
from writ.audit.htmlreport import findings
from writ.audit.htmlreport.controls import ErrorTotal, KeyChange, SignedSet, Split, Unsigned
from writ.audit.htmlreport.findings import (
    Lag,
    OutsideFinding,
    Publish,
    Silence,
    lags,
    outside,
    silences,
)
from writ.audit.htmlreport.scan import NodeScan, first_node, scan_node
from writ.audit.htmlreport.windows import Windows
from writ.audit.verify import VerifyReport, verify
from writ.blocklist import Act

__all__ = ["Document", "InputFile", "gather"]


@dataclass(frozen=True, slots=True)
class InputFile:
    path: str
    node: str
    size: int
    sha256: str


@dataclass(slots=True)
class Document:
    inputs: list[InputFile]
    scans: list[NodeScan]
    verdicts: dict[str, VerifyReport]
    acts: dict[str, Act] | None
    windows: Windows | None
    source: str | None  # where the act set came from
    publishes: list[Publish]
    silent_after: float
    outside: list[OutsideFinding] = field(default_factory=list)
    silences: list[Silence] = field(default_factory=list)
    lags: list[Lag] = field(default_factory=list)
    unsigned: list[tuple[str, Unsigned]] = field(default_factory=list)
    expired: list[tuple[str, SignedSet]] = field(default_factory=list)
    splits: list[tuple[str, Split]] = field(default_factory=list)
    key_changes: list[tuple[str, KeyChange]] = field(default_factory=list)
    writer_errors: list[tuple[str, ErrorTotal]] = field(default_factory=list)
    checkpoints_given: bool = False
    stamp: str | None = None  # "generated at", only when asked

    @property
    def first(self) -> str | None:
        ts = [s.first for s in self.scans if s.first]
        return min(ts) if ts else None

    @property
    def last(self) -> str | None:
        ts = [s.last for s in self.scans if s.last]
        return max(ts) if ts else None


def _sha256(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def gather(paths: Sequence[Path], *, acts: Sequence[Act] | None = None,
           source: str | None = None, publishes: Sequence[Publish] = (),
           checkpoints: Sequence[Checkpoint] | None = None,
           public_key: Ed25519PublicKey | None = None, checkpoint_file: str = "checkpoints",
           live: bool = False, silent_after: float = 3600.0,
           stamp: str | None = None) -> Document:
    groups: dict[str, list[Path]] = {}
    inputs = []
    for p in paths:
        node = first_node(p)
        groups.setdefault(node, []).append(p)
        size, digest = _sha256(p)
        inputs.append(InputFile(str(p), node, size, digest))
    windows = Windows(acts) if acts is not None else None
    scans, verdicts = [], {}
    for node in sorted(groups):
        verdicts[node] = verify(groups[node], live=live, checkpoints=checkpoints,
                                public_key=public_key, checkpoint_file=checkpoint_file)
        scans.append(scan_node(node, groups[node], windows, silent_after))
    doc = Document(inputs, scans, verdicts, {a.id: a for a in acts} if acts is not None
                   else None, windows, source, list(publishes), silent_after,
                   checkpoints_given=checkpoints is not None, stamp=stamp)
    if windows is not None:
        doc.outside = outside(scans, windows)
    doc.silences = silences(scans, silent_after)
    doc.lags = lags(scans, list(publishes))
    doc.unsigned = findings.unsigned(scans)
    doc.expired = findings.expired(scans)
    doc.splits = findings.splits(scans)
    doc.key_changes = findings.key_changes(scans)
    doc.writer_errors = findings.writer_errors(scans)
    return doc
