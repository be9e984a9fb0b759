"""The bytes a version is stored as: zlib-compressed serial JSON plus a checksum.

Invariants:
- A blob is verified (sha256 of the stored bytes equals the stored checksum,
  then it must parse as a writ act set) before anything is built from it; a
  corrupt or foreign value raises VersionError and is never half-applied.
- A delta names the version it applies to (`base`); it is only ever applied
  on top of exactly that version.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from writ.blocklist.model import Act
from writ.blocklist.serial import act_from_dict, act_to_dict, acts_from_json, acts_to_json

__all__ = [
    "Delta",
    "Encoded",
    "VersionError",
    "checksum",
    "decode_acts",
    "decode_delta",
    "encode_acts",
    "encode_delta",
]

# Level 1: 5.5 MB for a million names in 0.15 s; level 6 saves 7 % for 2.5x the time.
_LEVEL = 1


class VersionError(Exception):
    """A stored version (or delta) that must not be used: corrupt, foreign, missing."""


@dataclass(frozen=True, slots=True)
class Encoded:
    data: bytes  # compressed
    sha256: str  # hex digest of `data`


@dataclass(frozen=True, slots=True)
class Delta:
    base: str  # the version this delta applies to
    added: tuple[Act, ...]  # new acts, and new content of changed acts
    removed: tuple[str, ...]  # ids gone (or replaced by `added`)

    def apply(self, acts: Sequence[Act]) -> tuple[Act, ...]:
        gone = set(self.removed) | {a.id for a in self.added}
        return tuple(a for a in acts if a.id not in gone) + self.added


def checksum(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_acts(acts: Iterable[Act]) -> Encoded:
    data = zlib.compress(acts_to_json(acts), _LEVEL)
    return Encoded(data, checksum(data))


def _verified(data: bytes | None, sha: str | None, what: str) -> bytes:
    if data is None or sha is None:
        raise VersionError(f"{what}: missing data or checksum")
    if checksum(data) != sha:
        raise VersionError(f"{what}: checksum mismatch (corrupt or foreign value)")
    try:
        return zlib.decompress(data)
    except zlib.error as e:
        raise VersionError(f"{what}: not zlib data: {e}") from None


def decode_acts(data: bytes | None, sha: str | None, what: str) -> tuple[Act, ...]:
    raw = _verified(data, sha, what)
    try:
        return acts_from_json(raw)
    except (ValueError, KeyError, TypeError) as e:
        raise VersionError(f"{what}: not a writ act set: {e}") from None


def encode_delta(base: str, added: Sequence[Act], removed: Sequence[str]) -> Encoded:
    doc = {"schema": 1, "base": base, "added": [act_to_dict(a) for a in added],
           "removed": list(removed)}
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    data = zlib.compress(raw, _LEVEL)
    return Encoded(data, checksum(data))


def decode_delta(data: bytes | None, sha: str | None, what: str) -> Delta:
    raw = _verified(data, sha, what)
    try:
        doc = json.loads(raw)
        if doc["schema"] != 1:
            raise VersionError(f"{what}: unknown delta schema {doc['schema']!r}")
        return Delta(
            str(doc["base"]),
            tuple(act_from_dict(d) for d in doc["added"]),
            tuple(str(i) for i in doc["removed"]),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise VersionError(f"{what}: not a writ delta: {e}") from None
