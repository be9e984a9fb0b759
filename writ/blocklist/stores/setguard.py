"""What a node checks before it enforces a set, when the policy names a keyring
(`trust.keyring`, docs/regulator.md §10, docs/auditor.md "Signed sets").

- `KeyringFile`: the keyring, re-read when its file changes, so a key added,
  revoked or expired takes effect without a restart. An edit that does not
  load keeps the last good keyring (logged); the node never runs without one.
- `SetGuard` (a node following Redis): the set the pointer names is switched to
  only if its manifest verifies by a publisher key, lists exactly the files of
  the set with matching SHA-256, has a sequence above the highest this node
  ever accepted, and has not expired (writ.blocklist.signed.judge_switch). The
  accepted manifest is kept on disk (signedset.InForceFile) before the switch
  is reported, so a replayed older set is refused even after a restart. Past
  its expiry the set in force stays in force and `alarm()` says `expired`.
- The disk copy (localcache.py) is judged as if Redis offered it
  (`judge_copy`): by the manifest and signature saved beside it, against the
  kept manifest. Without a kept manifest no copy is trusted: the node always
  keeps the manifest before it saves the copy, so a copy alone means the
  state folder was tampered with (or the kept file deleted), and nothing then
  shows the copy is not an older set (docs/operator.md §7).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from writ.blocklist.signed.authorities import Keyring, load_keyring
from writ.blocklist.signed.setmanifest import (
    Alarm,
    Switch,
    digest,
    files_problem,
    in_force_alarm,
    judge_switch,
)
from writ.blocklist.stores.localcache import RawCopy
from writ.blocklist.stores.signedset import InForceFile, Kept, set_files

__all__ = ["KEPT_MISSING", "KeyringError", "KeyringFile", "Refusal", "SetGuard", "judge_set"]

# Why a disk copy was refused when the kept manifest is gone (not a manifest alarm).
KEPT_MISSING = "kept-manifest-missing"

log = structlog.get_logger("writ.store")


class KeyringError(Exception):
    """The keyring file cannot be used; the message lists why."""


class KeyringFile:
    """The keyring at `path`, re-read when its size or mtime changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ring: Keyring | None = None
        self._stamp: tuple[int, int] | None = None

    def stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def current(self) -> Keyring:
        """The keyring (re-read if the file changed). KeyringError when there has
        never been a good one; a bad edit later keeps the last good one (logged)."""
        stamp = self.stamp()
        if self._ring is not None and stamp == self._stamp:
            return self._ring
        ring, errors = (load_keyring(self.path) if stamp is not None
                        else (None, ["no such file"]))
        if ring is None:
            why = "; ".join(str(e) for e in errors)
            if self._ring is None:
                raise KeyringError(f"keyring {self.path}: {why}")
            log.error("writ.store.keyring_invalid", path=str(self.path),
                      errors=[str(e) for e in errors][:20], keeping="the last good keyring")
        else:
            self._ring = ring
        self._stamp = stamp
        assert self._ring is not None
        return self._ring


@dataclass(frozen=True, slots=True)
class Refusal:
    alarm: str
    message: str


def judge_set(vid: str, mdata: bytes | None, msig: bytes | None, blob: bytes | None, *,
              keyring: Keyring, kept: Kept | None, now: datetime) -> Switch | Refusal:
    """The rules a node applies to the set the pointer names (version `vid`, its
    stored `blob`, the manifest `mdata` signed `msig`) when it enforces `kept`
    (None: a node that never accepted one, or a one-shot reader)."""
    if mdata is None or msig is None:
        return Refusal(Alarm.MALFORMED, f"version {vid}: no signed manifest beside it "
                       "(publish with `writ orders apply --publisher-key KEY`)")
    files = set_files(vid, blob) if blob is not None else {}
    sw = judge_switch(mdata, msig, files, keyring,
                      in_force=kept.in_force if kept else None, at=now)
    name = f"version/{vid}"
    if (sw.manifest is not None and sw.alarm in (None, Alarm.FILE_MISSING)
            and name not in dict(sw.manifest.files)):
        signer = f" (signed by {sw.signer.id})" if sw.signer else ""
        return Refusal(Alarm.FILE_UNLISTED, f"manifest {sw.manifest.sequence}{signer}: "
                       f"{name}, the version the pointer names, is not listed in it")
    if sw.alarm is not None:
        return Refusal(sw.alarm, sw.message)
    if sw.same:  # the manifest in force, offered again: its files must still match
        assert sw.manifest is not None
        problem = files_problem(sw.manifest, files)
        if problem is not None:
            return Refusal(problem[0], f"{sw.message.removesuffix(': already in force')}"
                           f": {problem[1]}")
    return sw


class SetGuard:
    def __init__(self, keyring: KeyringFile, state_dir: Path | None, name: str) -> None:
        self.keyring = keyring
        self.file = InForceFile(state_dir, name) if state_dir is not None else None
        self.kept: Kept | None = None
        self.refused = 0  # sets refused since start (metrics)
        self._expired_logged = False
        self.kept_problem: str | None = None  # why no manifest is kept (unreadable file)
        if self.file is not None:
            try:
                self.kept = self.file.load()
            except ValueError as e:
                self.kept_problem = str(e)
                log.error("writ.store.kept_manifest_unreadable", reason=str(e))  # noqa: TRY400

    def judge(self, vid: str, mdata: bytes | None, msig: bytes | None,
              blob: bytes | None, now: datetime) -> Switch | Refusal:
        """May the node switch to version `vid` under the manifest (`mdata`, `msig`)?"""
        return judge_set(vid, mdata, msig, blob, keyring=self.keyring.current(), kept=self.kept,
                         now=now)

    def judge_copy(self, copy: RawCopy, now: datetime) -> Switch | Refusal:
        """May the node enforce its disk copy at start? As `judge` for a set Redis
        offers (signature, files byte for byte, not below the kept sequence), and
        only while a kept manifest says how new a set must be."""
        if copy.manifest is None or copy.manifest_sig is None:
            return Refusal(Alarm.MALFORMED, "no signed manifest saved beside the copy (a copy "
                           "saved before writ kept one, or stripped); the next set from Redis "
                           "saves a new one")
        if self.kept is None:
            where = self.file.path if self.file is not None else "the state folder"
            why = self.kept_problem or f"{where} is missing"
            return Refusal(KEPT_MISSING, f"{why}: the highest sequence this node accepted is "
                           "unknown, so the copy cannot be shown not to be an older set")
        return self.judge(copy.version, copy.manifest, copy.manifest_sig, copy.data, now)

    def accept(self, sw: Switch, mdata: bytes, msig: bytes) -> None:
        """Keep the accepted manifest (memory, then disk). Raises OSError (disk)."""
        assert sw.manifest is not None
        if self.kept is not None and self.kept.manifest.sequence > sw.manifest.sequence:
            return  # never lower what is kept
        self.kept = Kept(sw.manifest, mdata, msig)
        self._expired_logged = False
        if self.file is not None:
            self.file.save(self.kept)

    def alarm(self, now: datetime) -> str | None:
        """`expired` once the manifest in force is past its expiry (logged once)."""
        if self.kept is None or in_force_alarm(self.kept.manifest, now) is None:
            return None
        if not self._expired_logged:
            self._expired_logged = True
            m = self.kept.manifest
            log.error("writ.store.set_expired", sequence=m.sequence,
                      expired=m.expires.astimezone(UTC).isoformat(),
                      detail="still enforcing the last good set; the publisher must sign "
                             "a new manifest (writ orders apply --publisher-key)")
        return Alarm.EXPIRED.value

    @property
    def sequence(self) -> int | None:
        return self.kept.manifest.sequence if self.kept else None

    def control_fields(self, vid: str, sw: Switch) -> dict[str, Any]:
        """The audit control record for a switch (docs/auditor.md)."""
        assert sw.manifest is not None
        assert sw.digest is not None
        m = sw.manifest
        return {"blocklist_version": vid, "manifest_sequence": m.sequence,
                "manifest_digest": sw.digest, "signers": [sw.signer.id] if sw.signer else [],
                "manifest_created": m.created.astimezone(UTC).isoformat(),
                "manifest_expires": m.expires.astimezone(UTC).isoformat(),
                "manifest_previous": m.previous}

    def is_in_force(self, vid: str, mdata: bytes | None, version_in_force: str | None) -> bool:
        return (self.kept is not None and mdata is not None and vid == version_in_force
                and digest(mdata) == self.kept.in_force.digest)
