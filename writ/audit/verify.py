"""`writ audit verify`: is this series of files one intact chain?

Invariants:
- Streams: one pass over the files in the order given, memory bounded by the
  checkpoints (one per N records), never by the log.
- Stops at the first bad record of the chain: after a break, "later records
  are fine" would mean nothing. Checkpoint signatures are all checked first.
- Bad input is a finding with file and line, never an exception.
- A crash leaves an unsealed file and perhaps a half-written last line; that
  is accepted only when the next file's first record says so itself
  (`continue` with reason `recovered`, linking to the last good record), and
  it is then reported as a notice, never silently.
- What cannot be proved is said: without checkpoints, a history re-chained by
  whoever holds the files (and a cut tail with a forged seal) cannot be ruled
  out; after the last checkpoint, the chain alone protects the records.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from writ.audit.checkpoint import Checkpoint
from writ.audit.files import Progress
from writ.audit.record import (
    CONTINUE,
    GENESIS,
    GENESIS_PREV,
    SEAL,
    read_line,
    record_hash,
    split_line,
)

__all__ = ["Finding", "VerifyReport", "verify"]

_LOOKAHEAD = 64


@dataclass(frozen=True, slots=True)
class Finding:
    kind: str  # edited | deleted | reordered | missing head | truncated | unsealed | ...
    file: str
    line: int
    seq: int | None
    message: str

    def __str__(self) -> str:
        seq = f" seq {self.seq}:" if self.seq is not None else ""
        return f"{self.file}:{self.line}:{seq} {self.kind}: {self.message}"


@dataclass(slots=True)
class VerifyReport:
    findings: list[Finding] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    unproven: list[str] = field(default_factory=list)
    records: int = 0
    files: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    checkpoints_matched: int = 0

    @property
    def ok(self) -> bool:
        return not self.findings


class _FirstFindingError(Exception):
    """The first bad record was found; the chain cannot be followed further."""


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        obj = read_line(raw)
    except ValueError:  # UnicodeDecodeError is one too
        return None
    if (not isinstance(obj, dict) or type(obj.get("seq")) is not int
            or not isinstance(obj.get("prev"), str) or not isinstance(obj.get("hash"), str)
            or not isinstance(obj.get("event"), str)):
        return None
    return obj


def _hash_ok(raw: bytes, rec: dict[str, Any]) -> bool:
    parts = split_line(raw)
    if parts is not None and hashlib.sha256(parts[0]).hexdigest() == rec["hash"]:
        return True
    return bool(record_hash(rec) == rec["hash"])  # reformatted by some tool: check the content


class _Verifier:
    def __init__(self, report: VerifyReport, live: bool,
                 checkpoints: dict[tuple[str, int], Checkpoint],
                 progress: Progress | None = None) -> None:
        self.r = report
        self.progress = progress
        self.total = 0  # bytes in all files, for progress
        self.done = 0  # bytes in the files already checked
        self.live = live
        self.cps = checkpoints
        self.expect_seq: int | None = None
        self.expect_prev: str | None = None
        self.last_line = 0
        self.nodes: set[str] = set()

    def fail(self, kind: str, path: Path, line: int, seq: int | None, message: str) -> NoReturn:
        self.r.findings.append(Finding(kind, str(path), line, seq, message))
        raise _FirstFindingError

    def run(self, paths: list[Path]) -> None:
        if self.progress is not None:
            self.total = sum(p.stat().st_size for p in paths if p.is_file())
        for i, path in enumerate(paths):
            nxt = paths[i + 1] if i + 1 < len(paths) else None
            self.file(path, next_path=nxt)
            self.r.files += 1
        if self.progress is not None:
            self.progress(self.total, self.total)

    def file(self, path: Path, next_path: Path | None) -> None:
        try:
            f = path.open("rb")
        except OSError as e:
            self.fail("unreadable", path, 0, None, e.strerror or str(e))
        with f:
            self._file(f, path, next_path)
            self.done += f.tell()

    def _file(self, f: BinaryIO, path: Path, next_path: Path | None) -> None:
        count = 0  # records in this file so far
        sealed = False
        debris: tuple[int, str] | None = None  # a bad line that may be crash debris
        lines: Iterator[bytes] = iter(f)
        lineno = 0
        for raw in lines:
            lineno += 1
            if self.progress is not None and lineno % 65536 == 0:
                self.progress(min(self.done + f.tell(), self.total), self.total)
            rec = _parse(raw)
            if rec is None:
                what = "not JSON" if not _is_json(raw) else "not a decision-log record"
                if count == 0:
                    self.fail("not a log" if lineno == 1 else "corrupt line", path, lineno,
                              None, f"{what}: {_snippet(raw)}")
                if debris is None:
                    debris = (lineno, f"{what}: {_snippet(raw)}")
                continue
            if debris is not None:  # a good record after a bad line: not a crash
                self.fail("corrupt line", path, debris[0], None, debris[1])
            sealed = self._record(rec, raw, path, lineno, count=count, sealed=sealed, lines=lines)
            count += 1
        if count == 0:
            self.fail("empty file", path, 1, None, "no records")
        if sealed:
            return
        self._unsealed_end(path, next_path, debris)

    def _record(self, rec: dict[str, Any], raw: bytes, path: Path, lineno: int, *, count: int,
                sealed: bool, lines: Iterator[bytes]) -> bool:
        """Check one parsed record in its place; True once the file is sealed."""
        first = self.r.files == 0
        seq = rec["seq"]
        if not _hash_ok(raw, rec):
            self.fail("edited", path, lineno, seq,
                      "the record's hash does not match its content")
        if sealed:
            self.fail("records after seal", path, lineno, seq,
                      "a sealed file must end with its seal")
        if count == 0:
            self._head(rec, path, lineno, first)
        else:
            self._link(rec, path, lineno, lines)
        if rec["event"] == SEAL:
            if rec.get("count") != count or rec.get("last") != rec["prev"]:
                self.fail("bad seal", path, lineno, seq,
                          f"seal says count={rec.get('count')}, the file holds {count}")
            sealed = True
        cp = self.cps.get((str(rec.get("node")), seq))
        if cp is not None:
            if cp.head != rec["hash"]:
                self.fail("rechained", path, lineno, seq,
                          f"differs from the signed checkpoint of {cp.ts}: the history up "
                          f"to here was rewritten and re-hashed")
            self.r.checkpoints_matched += 1
        self.nodes.add(str(rec.get("node")))
        self.r.records += 1
        if self.r.first_seq is None:
            self.r.first_seq = seq
        self.r.last_seq = seq
        self.r.last_hash = rec["hash"]
        self.expect_seq, self.expect_prev, self.last_line = seq + 1, rec["hash"], lineno
        return sealed

    def _head(self, rec: dict[str, Any], path: Path, line: int, first: bool) -> None:
        seq, event = rec["seq"], rec["event"]
        if first:
            if event == GENESIS and seq == 0 and rec["prev"] == GENESIS_PREV:
                return
            self.fail("missing head", path, line, seq,
                      "the chain does not start with its genesis record (seq 0); earlier "
                      "files or records are missing" + (
                          " (this file continues from "
                          f"{rec.get('previous_file')})" if event == CONTINUE else ""))
        if event != CONTINUE or seq != self.expect_seq or rec["prev"] != self.expect_prev:
            self.fail("broken rotation link", path, line, seq,
                      f"the file's first record does not continue the previous file (expected "
                      f"a continue record with seq {self.expect_seq} and prev "
                      f"{str(self.expect_prev)[:16]}…)")

    def _link(self, rec: dict[str, Any], path: Path, line: int, rest: Iterator[bytes]) -> None:
        seq = rec["seq"]
        if seq != self.expect_seq:
            assert self.expect_seq is not None
            if seq < self.expect_seq:
                self.fail("reordered", path, line, seq,
                          f"expected seq {self.expect_seq}; this record belongs earlier")
            for ahead in itertools.islice(rest, _LOOKAHEAD):
                other = _parse(ahead)
                if other is not None and other["seq"] == self.expect_seq:
                    self.fail("reordered", path, line, seq,
                              f"expected seq {self.expect_seq}, which comes later in the file")
            missing = seq - self.expect_seq
            self.fail("deleted", path, line, seq,
                      f"{missing} record(s) missing before this one (seq {self.expect_seq}"
                      + (f"..{seq - 1})" if missing > 1 else ")"))
        if rec["prev"] != self.expect_prev:
            self.fail("edited", path, self.last_line, seq - 1,
                      f"the record was altered and its hash recomputed (seq {seq} names a "
                      f"different previous hash)")

    def _unsealed_end(self, path: Path, next_path: Path | None,
                      debris: tuple[int, str] | None) -> None:
        where = f"after seq {self.expect_seq and self.expect_seq - 1} (line {self.last_line})"
        if next_path is None:
            if self.live:
                self.r.notices.append(f"{path}: not sealed yet (--live: still being written), "
                                      f"ends {where}")
                return
            self.fail("truncated", path, self.last_line, self.r.last_seq,
                      "the last file has no seal: its tail was cut or the writer did not "
                      "close it (use --live for a file still being written)")
        head = _first_record(next_path)
        if (head is not None and head.get("event") == CONTINUE
                and head.get("reason") == "recovered" and head.get("prev") == self.expect_prev
                and head.get("seq") == self.expect_seq):
            extra = f"; line {debris[0]} is a half-written record" if debris else ""
            self.r.notices.append(
                f"{path}: not sealed (the writer stopped without closing it), {where}{extra}; "
                f"{next_path.name} says so and continues from there. Decisions made between "
                f"the last record and the restart may be missing.")
            return
        if debris is not None:
            self.fail("corrupt line", path, debris[0], None, debris[1])
        self.fail("truncated", path, self.last_line, self.r.last_seq,
                  "the file has no seal and the next file does not acknowledge a crash: "
                  "records were cut from its end")


def _first_record(path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as f:
            return _parse(f.readline())
    except OSError:
        return None


def _is_json(raw: bytes) -> bool:
    try:
        read_line(raw)
    except ValueError:
        return False
    return True


def _snippet(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace").rstrip("\n")
    return repr(text[:60] + ("…" if len(text) > 60 else ""))


def verify(paths: Iterable[Path], *, live: bool = False,
           checkpoints: Iterable[Checkpoint] | None = None,
           public_key: Ed25519PublicKey | None = None,
           checkpoint_file: str = "checkpoints",
           progress: Progress | None = None) -> VerifyReport:
    """Check the files as one chain, in the order given; the first finding stops it."""
    report = VerifyReport()
    by_seq: dict[tuple[str, int], Checkpoint] = {}
    if checkpoints is not None:
        assert public_key is not None, "checkpoints need the public key to be trusted"
        for cp in checkpoints:
            if not cp.valid(public_key):
                report.findings.append(Finding(
                    "forged checkpoint", checkpoint_file, cp.line, cp.seq,
                    "the signature does not verify with the given public key"))
                continue
            by_seq[(cp.node, cp.seq)] = cp
    v = _Verifier(report, live, by_seq, progress)
    try:
        v.run(list(paths))
    except _FirstFindingError:
        return report
    _tail_and_limits(report, v, by_seq, checkpoints is not None, checkpoint_file)
    return report


def _tail_and_limits(report: VerifyReport, v: _Verifier,
                     cps: dict[tuple[str, int], Checkpoint], have_cps: bool,
                     cp_file: str) -> None:
    last = report.last_seq if report.last_seq is not None else -1
    mine = [cp for (node, _), cp in cps.items() if node in v.nodes]
    beyond = [cp for cp in mine if cp.seq > last]
    if beyond:
        cp = max(beyond, key=lambda c: c.seq)
        report.findings.append(Finding(
            "tail cut", cp_file, cp.line, cp.seq,
            f"the signed checkpoint of {cp.ts} covers seq {cp.seq}, "
            f"but the log ends at seq {last}: records were cut from the end"))
        return
    if not have_cps:
        report.unproven.append(
            "without signed checkpoints (--checkpoints, --public-key) verify cannot rule out "
            "that whoever holds the files rewrote history and re-hashed every record after "
            "the change, or cut the tail and wrote a new seal")
        return
    if not mine:
        report.unproven.append("no valid checkpoint names this log's node "
                               f"({', '.join(sorted(v.nodes))}); nothing was anchored")
        return
    newest = max(mine, key=lambda c: c.seq)
    if newest.seq < last:
        report.unproven.append(
            f"records after seq {newest.seq} (the last checkpoint, {newest.ts}) are protected "
            f"by the chain alone: a rewrite of them, or a cut of the tail after that seq, "
            f"would not show")
