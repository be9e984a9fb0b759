"""Signed sets on Redis: what the files of a published set are, how `writ orders
apply/rollback` sign one, and what a node keeps on disk about the set in force
(docs/auditor.md "Signed sets (manifests)").

The files of a published set: one, `version/<id>`, the compressed act blob
exactly as stored under `{P}:version:<id>` (field `data`). A node that checks
manifests fetches that blob whole and compares it byte for byte with the
manifest before it decodes anything; it never uses a delta (a delta is not a
file of the set). The act files and lists are checked where they are read
(`writ orders apply` with a keyring); the blob carries their signers' key ids.

Invariants:
- A manifest's sequence is the one in force + 1; the switch script writes it
  only if the one in force is still that one (two publishers cannot sign the
  same sequence unseen).
- The in-force file (`<state_dir>/<name>.manifest`) holds the manifest and
  signature of the highest sequence this node ever accepted. It is written,
  fsynced and renamed before the node reports the switch, so a replay of an
  older set is refused even after a restart.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from writ.blocklist.signed.setmanifest import (
    InForce,
    Manifest,
    ManifestError,
    build_manifest,
    decode_manifest,
    digest,
    sign_manifest,
)
from writ.blocklist.signed.sshsigfmt import PrivateKey
from writ.blocklist.stores.blob import VersionError, checksum
from writ.blocklist.stores.registry import Registry, SignedSet

__all__ = ["InForceFile", "Kept", "SetSigner", "set_files", "sign_set"]

DEFAULT_LIFETIME = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class SetSigner:
    """A publisher key and how long the manifests it signs stay valid."""

    key: PrivateKey
    lifetime: timedelta = DEFAULT_LIFETIME


def set_files(vid: str, blob: bytes) -> dict[str, bytes]:
    """The files of the published set `vid` whose stored blob is `blob`."""
    return {f"version/{vid}": blob}


async def sign_set(registry: Registry, vid: str, signer: SetSigner, now: datetime) -> SignedSet:
    """A manifest over the stored blob of `vid`, following the one in force.
    Raises VersionError when the blob is missing or does not verify."""
    data, sha = await registry.fetch(vid)
    if data is None or sha is None or checksum(data) != sha:
        raise VersionError(f"version {vid}: its stored blob is missing or corrupt; "
                           f"nothing was signed")
    current = await registry.manifest()
    follows, previous, sequence = None, None, 1
    if current is not None:
        follows, previous, sequence = current[2], digest(current[0]), current[2] + 1
    m = build_manifest(set_files(vid, data), sequence, now, now + signer.lifetime, previous)
    mdata, sig = sign_manifest(m, signer.key)
    return SignedSet(mdata, sig, sequence, follows)


@dataclass(frozen=True, slots=True)
class Kept:
    """The manifest in force on this node, as kept on disk."""

    manifest: Manifest
    data: bytes
    sig: bytes

    @property
    def in_force(self) -> InForce:
        return InForce(self.manifest.sequence, digest(self.data))


class InForceFile:
    def __init__(self, state_dir: Path, name: str) -> None:
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
        self.path = state_dir / f"{safe}.manifest"

    def load(self) -> Kept | None:
        """The kept manifest; None if there is none. ValueError naming the file."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise ValueError(f"{self.path}: {e.strerror}") from None
        try:
            doc = json.loads(raw)
            data, sig = str(doc["manifest"]).encode(), str(doc["sig"]).encode()
            return Kept(decode_manifest(data), data, sig)
        except (ValueError, KeyError, TypeError, ManifestError) as e:
            raise ValueError(f"{self.path}: not a kept manifest: {e}") from None

    def save(self, kept: Kept) -> None:
        """Write atomically (temp file, fsync, rename). Raises OSError."""
        doc = {"sequence": kept.manifest.sequence, "digest": digest(kept.data),
               "manifest": kept.data.decode(), "sig": kept.sig.decode()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(json.dumps(doc).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
