"""The last good version on local disk, so a node restarting while its source
is down (or invalid) still enforces what it enforced before.

File: `<state_dir>/<name>.blocklist` = one JSON header line (version, sha256,
saved_at, source; with a keyring also `manifest` and `manifest_sig`, the signed
manifest the set was accepted under) followed by the compressed blob exactly
as Redis holds it.

Invariants:
- Written to a temporary file, fsynced, then renamed over the old one: a crash
  mid-write leaves the previous copy, never half a file.
- Read back through the same verification as a Redis blob (checksum, parse);
  a bad file is ignored with a reason, never trusted.
- The header is written by whoever can write the state folder: its checksum
  only catches a torn or corrupt file. Under a keyring the copy is trusted only
  through its signed manifest (setguard.SetGuard.judge_copy), checked against
  the raw bytes (`read`) before anything is decoded.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from writ.blocklist.holder import Blocklist
from writ.blocklist.stores.blob import Encoded, VersionError, decode_acts, encode_acts

__all__ = ["CachedCopy", "LocalCache", "RawCopy"]


@dataclass(frozen=True, slots=True)
class CachedCopy:
    blocklist: Blocklist
    saved_at: str
    source: str


@dataclass(frozen=True, slots=True)
class RawCopy:
    """The saved copy as it is on disk, nothing decoded yet."""

    path: Path
    version: str  # as the header says: to be checked, not trusted
    sha256: str
    data: bytes  # the compressed blob
    saved_at: str
    source: str
    manifest: bytes | None  # the signed manifest saved beside it (keyring), if any
    manifest_sig: bytes | None


class LocalCache:
    def __init__(self, state_dir: Path, name: str) -> None:
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        self.path = state_dir / f"{safe}.blocklist"

    def save(self, blocklist: Blocklist, saved_at: datetime, source: str,
             encoded: Encoded | None = None,
             manifest: tuple[bytes, bytes] | None = None) -> None:
        """Persist `blocklist` (re-encoding it unless `encoded` is given), with the
        signed `manifest` (data, sig) it was accepted under. Raises OSError."""
        enc = encoded if encoded is not None else encode_acts(blocklist.acts)
        header = {"version": blocklist.version, "sha256": enc.sha256,
                  "saved_at": saved_at.isoformat(), "source": source}
        if manifest is not None:
            header["manifest"], header["manifest_sig"] = (manifest[0].decode(),
                                                          manifest[1].decode())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # per process: several DNS workers of one node may save the same version
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(json.dumps(header).encode() + b"\n")
            f.write(enc.data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def read(self) -> RawCopy | None:
        """The saved copy, undecoded; None if there is none. VersionError if it is
        not a copy at all (unreadable, no header)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise VersionError(f"{self.path}: {e.strerror}") from None
        head, sep, data = raw.partition(b"\n")
        try:
            header = json.loads(head) if sep else {}
            version, sha = str(header["version"]), str(header["sha256"])
            mdata, msig = header.get("manifest"), header.get("manifest_sig")
            manifest = (str(mdata).encode(), str(msig).encode()) if mdata and msig else None
        except (ValueError, KeyError, TypeError, AttributeError):
            raise VersionError(f"{self.path}: not a writ blocklist copy") from None
        return RawCopy(self.path, version, sha, data, str(header.get("saved_at", "")),
                       str(header.get("source", "")), *(manifest or (None, None)))

    def load(self) -> CachedCopy | None:
        """The saved copy, or None if there is none. Raises VersionError if unusable."""
        raw = self.read()
        if raw is None:
            return None
        acts = decode_acts(raw.data, raw.sha256, str(self.path))
        return CachedCopy(Blocklist(acts, version=raw.version), raw.saved_at, raw.source)
