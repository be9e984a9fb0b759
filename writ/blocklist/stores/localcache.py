"""The last good version on local disk, so a node restarting while its source
is down (or invalid) still enforces what it enforced before.

File: `<state_dir>/<name>.blocklist` = one JSON header line (version, sha256,
saved_at, source) followed by the compressed blob exactly as Redis holds it.

Invariants:
- Written to a temporary file, fsynced, then renamed over the old one: a crash
  mid-write leaves the previous copy, never half a file.
- Read back through the same verification as a Redis blob (checksum, parse);
  a bad file is ignored with a reason, never trusted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from writ.blocklist.holder import Blocklist
from writ.blocklist.stores.blob import Encoded, VersionError, decode_acts, encode_acts

__all__ = ["CachedCopy", "LocalCache"]


@dataclass(frozen=True, slots=True)
class CachedCopy:
    blocklist: Blocklist
    saved_at: str
    source: str


class LocalCache:
    def __init__(self, state_dir: Path, name: str) -> None:
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        self.path = state_dir / f"{safe}.blocklist"

    def save(self, blocklist: Blocklist, saved_at: datetime, source: str,
             encoded: Encoded | None = None) -> None:
        """Persist `blocklist` (re-encoding it unless `encoded` is given). Raises OSError."""
        enc = encoded if encoded is not None else encode_acts(blocklist.acts)
        header = {"version": blocklist.version, "sha256": enc.sha256,
                  "saved_at": saved_at.isoformat(), "source": source}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # per process: several DNS workers of one node may save the same version
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(json.dumps(header).encode() + b"\n")
            f.write(enc.data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def load(self) -> CachedCopy | None:
        """The saved copy, or None if there is none. Raises VersionError if unusable."""
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
        except (ValueError, KeyError, TypeError):
            raise VersionError(f"{self.path}: not a writ blocklist copy") from None
        acts = decode_acts(data, sha, str(self.path))
        return CachedCopy(Blocklist(acts, version=version), str(header.get("saved_at", "")),
                          str(header.get("source", "")))
