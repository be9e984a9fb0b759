"""Where a chain's files live, and what the end of an existing chain is.

Invariants:
- The policy's `path` (`state/audit/decisions.log`) names a series:
  `decisions.000001.log`, `decisions.000002.log`, … Zero-padded indexes sort
  the same way in a shell glob as in time, so `writ audit verify
  state/audit/decisions.*.log` checks them in chain order. Files are never
  renamed: a crash can never leave a file under two names or none.
- On restart the writer reads only the tail of the newest non-empty file. The
  last record whose hash is right is the chain's head; anything after it (a
  line half-written at a crash) is left in place for the auditor to see.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from writ.audit.record import SEAL, hash_line, read_line, record_hash

__all__ = ["ChainEnd", "Progress", "chain_files", "file_for", "find_chain_end"]

# Long reads (verify, report) say how far they are: (bytes read, bytes in all files).
Progress = Callable[[int, int], None]

_TAIL_BYTES = 1 << 20


def _pattern(base: Path) -> re.Pattern[str]:
    return re.compile(rf"^{re.escape(base.stem)}\.(\d{{6,}}){re.escape(base.suffix)}$")


def file_for(base: Path, index: int) -> Path:
    return base.with_name(f"{base.stem}.{index:06d}{base.suffix}")


def chain_files(base: Path) -> list[tuple[int, Path]]:
    """(index, path) of every file of the series, oldest first."""
    if not base.parent.is_dir():
        return []
    pat = _pattern(base)
    found = []
    for p in base.parent.iterdir():
        m = pat.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


@dataclass(frozen=True, slots=True)
class ChainEnd:
    path: Path  # the file holding the head
    index: int
    seq: int
    hash: str
    sealed: bool  # the head is a seal record: the file was closed cleanly
    bad_lines_after: int  # lines after the head that are not good records (crash debris)


def _good_record(line: bytes) -> dict[str, object] | None:
    try:
        obj = read_line(line)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("seq"), int):
        return None
    digest = hash_line(line)
    if digest is None or digest != obj.get("hash"):
        digest = record_hash(obj)
    return obj if digest == obj.get("hash") else None


def _last_good(path: Path) -> tuple[dict[str, object], int] | None:
    size = path.stat().st_size
    with path.open("rb") as f:
        if size > _TAIL_BYTES:
            f.seek(size - _TAIL_BYTES)
            f.readline()  # a partial first line
        lines = f.read().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for back, line in enumerate(reversed(lines)):
        rec = _good_record(line)
        if rec is not None:
            return rec, back
    if size > _TAIL_BYTES:  # the whole tail is debris: rare enough to scan it all
        best: tuple[dict[str, object], int] | None = None
        with path.open("rb") as f:
            for line in f:
                rec = _good_record(line)
                best = (rec, 0) if rec is not None else (best[0], best[1] + 1) if best else None
        return best
    return None


def find_chain_end(base: Path) -> tuple[ChainEnd | None, int]:
    """The head of the existing chain (None: start a new one) and the next free index."""
    files = chain_files(base)
    next_index = files[-1][0] + 1 if files else 1
    if files and files[-1][1].stat().st_size == 0:
        next_index = files[-1][0]  # an empty file left by a crash right after creating it
    for index, path in reversed(files):
        if path.stat().st_size == 0:
            continue
        found = _last_good(path)
        if found is None:
            continue
        rec, after = found
        return ChainEnd(path, index, int(rec["seq"]),  # type: ignore[call-overload]
                        str(rec["hash"]), rec.get("event") == SEAL, after), next_index
    return None, next_index
