"""Signed manifests of published sets, and whether a node may switch to one.

A manifest lists every file of a published set (name → SHA-256), with a
sequence number that only grows, its creation and expiry instants and the
SHA-256 of the previous manifest. It is canonical JSON (sorted keys, no
spaces, UTF-8), signed detached with SSHSIG in the `writ-manifest`
namespace by a keyring key with the `publisher` role:

    {"created":"2026-12-01T12:00:00Z","expires":"2026-12-08T12:00:00Z",
     "files":{"acts.json":"9f…","lists/a.txt":"3c…"},"previous":"5e…",
     "sequence":42,"writ_manifest":1}

Rules (docs/auditor.md, "Signed sets (manifests)"):
- A node switches only to a set whose manifest verifies by a publisher key
  valid at the manifest's creation (and not revoked now), whose sequence is
  higher than the highest it has ever seen (kept on disk across restarts),
  that has not expired, whose files all match and which has no file the
  manifest does not list. Anything else: refused, nothing changes, and the
  refusal names its alarm.
- The same manifest offered again is not a switch and not an alarm (a
  restart, a repeated notification). A *different* manifest with the same
  sequence is an equivocation: refused.
- When the candidate follows the one in force directly (sequence + 1), its
  `previous` must be the digest of the one in force (no fork); after a gap
  the node cannot check that link, the auditor can (the chain is in Redis).
- Past its `expires`, the set in force stays in force (a publisher cut off
  must not blank every node) but `in_force_alarm` says `expired`, so the
  node raises the alarm (/readyz, a metric, a log line).
- A rollback is a new manifest with a higher sequence pointing at older
  content: a deliberate, signed act, never a replay.

Pure: no I/O, no clock (every instant is an argument).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from writ.blocklist.signed.authorities import Key, Keyring, Role, Subject
from writ.blocklist.signed.sshsigfmt import (
    MANIFEST_NAMESPACE,
    PrivateKey,
    SigError,
    sign,
    verify,
)

__all__ = [
    "Alarm",
    "InForce",
    "Manifest",
    "ManifestError",
    "Switch",
    "build_manifest",
    "decode_manifest",
    "digest",
    "encode_manifest",
    "files_problem",
    "in_force_alarm",
    "judge_switch",
    "sign_manifest",
    "verify_manifest",
]

FORMAT = 1
MAX_MANIFEST_BYTES = 16 << 20
_NAME_RE = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class Alarm(StrEnum):
    """Why a set was refused (or, for EXPIRED, why the set in force is stale)."""

    MALFORMED = "malformed"  # not a manifest writ can read
    BAD_SIGNATURE = "bad-signature"  # no valid signature, or not by a key that may publish
    ROLLBACK = "rollback"  # sequence not above the highest seen
    EQUIVOCATION = "equivocation"  # same sequence as one seen, different manifest
    FORK = "fork"  # follows the set in force but does not name it as previous
    EXPIRED = "expired"  # past its expiry
    FILE_MISMATCH = "file-mismatch"  # a listed file's bytes differ
    FILE_MISSING = "file-missing"  # a listed file is absent
    FILE_UNLISTED = "file-unlisted"  # a file the manifest does not list


class ManifestError(ValueError):
    def __init__(self, alarm: Alarm, message: str) -> None:
        super().__init__(message)
        self.alarm = alarm


@dataclass(frozen=True, slots=True)
class Manifest:
    sequence: int
    created: datetime  # aware
    expires: datetime  # aware, after created
    files: tuple[tuple[str, str], ...]  # (name, sha256 hex), sorted by name
    previous: str | None  # sha256 hex of the previous manifest's bytes; None: the first


@dataclass(frozen=True, slots=True)
class InForce:
    """What a node keeps on disk about the set it enforces."""

    sequence: int  # the highest sequence ever accepted (never goes down)
    digest: str  # sha256 hex of that manifest's bytes


@dataclass(frozen=True, slots=True)
class Switch:
    """The decision on a candidate set: switch (alarm None), stay (`same`), or refuse."""

    manifest: Manifest | None
    digest: str | None
    signer: Key | None
    alarm: Alarm | None
    message: str
    same: bool = False  # the set in force offered again: nothing to do, nothing wrong

    @property
    def accepted(self) -> bool:
        return self.alarm is None and not self.same


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def build_manifest(files: Mapping[str, bytes], sequence: int, created: datetime,
                   expires: datetime, previous: str | None) -> Manifest:
    """A manifest over `files` (name → bytes). ValueError for a bad argument."""
    if sequence < 1:
        raise ValueError("sequence starts at 1")
    if created.tzinfo is None or expires.tzinfo is None or expires <= created:
        raise ValueError("created and expires are aware instants, expires after created")
    for name in files:
        _check_name(name)
    if previous is not None and not _HEX64.fullmatch(previous):
        raise ValueError("previous is a SHA-256 hex digest")
    return Manifest(sequence, created, expires,
                    tuple(sorted((n, digest(b)) for n, b in files.items())), previous)


def _check_name(name: str) -> None:
    if not _NAME_RE.fullmatch(name) or any(p in (".", "..") for p in name.split("/")):
        raise ValueError(f"{name!r} is not a file name (letters, digits, . _ - and /)")


def _instant(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_manifest(m: Manifest) -> bytes:
    """The canonical bytes that are signed and hashed."""
    doc = {"writ_manifest": FORMAT, "sequence": m.sequence, "created": _instant(m.created),
           "expires": _instant(m.expires), "previous": m.previous, "files": dict(m.files)}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def decode_manifest(data: bytes) -> Manifest:
    """The manifest in `data`; ManifestError(MALFORMED) saying what is wrong.
    Only the canonical encoding is accepted, so one manifest has one digest."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(Alarm.MALFORMED, "manifest larger than 16 MiB")
    try:
        m = _from_doc(json.loads(data))
    except (ValueError, TypeError) as e:  # JSONDecodeError and UnicodeDecodeError included
        raise ManifestError(Alarm.MALFORMED, f"malformed manifest: {e}") from None
    if encode_manifest(m) != data:
        raise ManifestError(Alarm.MALFORMED, "malformed manifest: not in canonical form "
                            "(sorted keys, no spaces, UTC instants with Z)")
    return m


_FIELDS = {"writ_manifest", "sequence", "created", "expires", "previous", "files"}


def _from_doc(doc: object) -> Manifest:
    if not isinstance(doc, dict) or doc.get("writ_manifest") != FORMAT:
        raise ValueError(f"not a writ manifest of format {FORMAT}")
    if set(doc) != _FIELDS:
        raise ValueError(f"fields are {', '.join(sorted(_FIELDS))}")
    seq, files = doc["sequence"], doc["files"]
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise ValueError("sequence is a whole number")  # noqa: TRY004 -- decode catches ValueError
    if not isinstance(files, dict) or not all(
        isinstance(v, str) and _HEX64.fullmatch(v) for v in files.values()
    ):
        raise ValueError("files maps names to SHA-256 hex digests")
    for name in files:
        _check_name(name)
    created, expires = (datetime.fromisoformat(str(doc[k]).replace("Z", "+00:00"))
                        for k in ("created", "expires"))
    m = build_manifest({}, seq, created, expires, doc["previous"])
    return Manifest(m.sequence, m.created, m.expires, tuple(sorted(files.items())), m.previous)


def sign_manifest(m: Manifest, key: PrivateKey) -> tuple[bytes, bytes]:
    """(manifest bytes, armored SSHSIG over them in the writ-manifest namespace)."""
    data = encode_manifest(m)
    return data, sign(data, key, MANIFEST_NAMESPACE)


def verify_manifest(data: bytes, sig: bytes, keyring: Keyring, at: datetime
                    ) -> tuple[Manifest, Key]:
    """The manifest and the publisher key that vouches for it; ManifestError."""
    m = decode_manifest(data)
    try:
        got = verify(data, sig, MANIFEST_NAMESPACE)
    except SigError as e:
        raise ManifestError(Alarm.BAD_SIGNATURE, f"manifest {m.sequence}: {e}") from None
    key, why = keyring.judge(got.key_blob, Role.PUBLISHER,
                             [Subject("", "", m.created.astimezone(UTC).date())], at)
    if key is None:
        raise ManifestError(Alarm.BAD_SIGNATURE, f"manifest {m.sequence}: {why}")
    return m, key


def judge_switch(data: bytes, sig: bytes, files: Mapping[str, bytes], keyring: Keyring, *,
                 in_force: InForce | None, at: datetime) -> Switch:
    """May a node enforcing `in_force` switch to the set (`data`, `sig`, `files`)?"""
    try:
        m, key = verify_manifest(data, sig, keyring, at)
    except ManifestError as e:
        return Switch(None, None, None, e.alarm, str(e))
    d = digest(data)
    name = f"manifest {m.sequence} (signed by {key.id})"
    if in_force is not None and d == in_force.digest:
        return Switch(m, d, key, None, f"{name}: already in force", same=True)
    problem = (_sequence_problem(m, in_force) or _expiry_problem(m, at)
               or files_problem(m, files))
    if problem is not None:
        return Switch(m, d, key, problem[0], f"{name}: {problem[1]}")
    return Switch(m, d, key, None, f"{name}: verified, {len(m.files)} files")


def _sequence_problem(m: Manifest, in_force: InForce | None) -> tuple[Alarm, str] | None:
    if in_force is None:
        return None
    if m.sequence == in_force.sequence:
        return Alarm.EQUIVOCATION, f"another manifest with sequence {m.sequence} is in force"
    if m.sequence < in_force.sequence:
        return Alarm.ROLLBACK, (f"older than the set in force (sequence {in_force.sequence}): "
                                "a replayed set")
    if m.sequence == in_force.sequence + 1 and m.previous != in_force.digest:
        return Alarm.FORK, (f"follows sequence {in_force.sequence} but names {m.previous} as "
                            f"previous, not {in_force.digest}")
    return None


def _expiry_problem(m: Manifest, at: datetime) -> tuple[Alarm, str] | None:
    return (Alarm.EXPIRED, f"expired at {_instant(m.expires)}") if at >= m.expires else None


def files_problem(m: Manifest, files: Mapping[str, bytes]) -> tuple[Alarm, str] | None:
    """What is wrong with `files` as the files of `m` (None: they are exactly its files)."""
    for fname, want in m.files:
        if fname not in files:
            return Alarm.FILE_MISSING, f"{fname} is listed but absent"
        if digest(files[fname]) != want:
            return Alarm.FILE_MISMATCH, f"{fname} does not match its SHA-256 {want}"
    unlisted = sorted(set(files) - {n for n, _ in m.files})
    if unlisted:
        return Alarm.FILE_UNLISTED, f"{', '.join(unlisted[:5])} not listed in the manifest"
    return None


def in_force_alarm(m: Manifest, at: datetime) -> Alarm | None:
    """EXPIRED once the set in force is past its expiry (it stays in force)."""
    return Alarm.EXPIRED if at >= m.expires else None
