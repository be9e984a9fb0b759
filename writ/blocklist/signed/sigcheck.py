"""Signatures on an orders folder: every act file and every bulk list signed
by an issuer key entitled to it (the loader's hook, docs/regulator.md §10).

Rules:
- Each order file and each bulk list has a detached `FILE.sig` (SSHSIG,
  namespace `writ-order`) beside it.
- An order file's signer must be in scope for every act in it, and for the
  act each restore/revoke amends (nobody lifts another authority's block).
- A bulk list's signer must be in scope for every act that names it: a list
  moved or swapped between orders of different authorities is refused. A
  list whose first line is `# acts: ID, …` may serve only those acts, so
  even two lists under one key cannot be swapped; without that line they
  can (the key may sign either).
- Errors read `FILE: signature: message` and name the key and what failed;
  the act's own id is appended as in every order error.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from writ.blocklist._bulk import MAX_LIST_BYTES
from writ.blocklist._validate import Draft
from writ.blocklist._yamlsrc import MAX_ORDER_BYTES
from writ.blocklist.model import ActKind, OrderError
from writ.blocklist.signed.authorities import Key, Keyring, Role, Subject
from writ.blocklist.signed.sshsigfmt import (
    MAX_SIG_BYTES,
    ORDER_NAMESPACE,
    SigError,
    claimed_key,
    verify,
)

__all__ = ["OrderTrust", "SignedFile", "check_signatures"]

SIG_SUFFIX = ".sig"
MAX_SIGNED_BYTES = max(MAX_LIST_BYTES, MAX_ORDER_BYTES)  # larger: the loader refused it


@dataclass(frozen=True, slots=True)
class OrderTrust:
    """What the loader needs to demand signatures: the keyring and the instant
    revocations are judged at (an argument: the core never reads the clock)."""

    keyring: Keyring
    at: datetime


@dataclass(slots=True)
class SignedFile:
    path: Path
    display: str
    drafts: list[Draft] = field(default_factory=list)


def check_signatures(
    trust: OrderTrust, files: Sequence[SignedFile], lists: Sequence[SignedFile]
) -> tuple[list[OrderError], dict[str, tuple[str, ...]]]:
    """(errors, act id -> key ids that signed its file and its lists)."""
    by_id = {d.id: d for f in files for d in f.drafts if d.id is not None}
    errors: list[OrderError] = []
    signers: dict[str, list[str]] = {}
    for f in files:
        subjects: list[Subject] = []
        for d in f.drafts:
            subjects.extend(_subjects(d, by_id))
        key = _check_one(trust, f, subjects, errors)
        for d in f.drafts:
            if d.id is not None and key is not None:
                signers.setdefault(d.id, []).append(key.id)
    for lst in lists:
        subjects = [s for d in lst.drafts for s in _subjects(d, by_id)[:1]]
        key = _check_one(trust, lst, subjects, errors, bound_to_acts=True)
        for d in lst.drafts:
            if d.id is not None and key is not None and key.id not in signers.get(d.id, []):
                signers.setdefault(d.id, []).append(key.id)
    return errors, {k: tuple(v) for k, v in signers.items()}


def _subjects(d: Draft, by_id: dict[str, Draft]) -> list[Subject]:
    """The act itself first, then (for a restore/revoke) the act it amends,
    both at the amending act's date. Unreadable fields got their own errors."""
    if d.id is None:
        return []
    when = d.issued or date.min
    out = [Subject(d.id, d.text.get("court") or "", when)]
    if d.kind in (ActKind.RESTORE, ActKind.REVOKE) and d.amends in by_id:
        amended = by_id[d.amends]
        out.append(Subject(d.amends, amended.text.get("court") or "", when))
    return out


def _check_one(trust: OrderTrust, f: SignedFile, subjects: list[Subject],
               errors: list[OrderError], bound_to_acts: bool = False) -> Key | None:
    sig_path = Path(str(f.path) + SIG_SUFFIX)
    order_id = next((d.id for d in f.drafts if d.id), None) if len(f.drafts) == 1 else None

    def fail(message: str) -> None:
        errors.append(OrderError(f.display, 0, "signature", message, order_id))

    data = _read_regular(f.path, MAX_SIGNED_BYTES)
    if not isinstance(data, bytes):
        return None  # not a readable regular file: the loader already said so
    armored = _read_regular(sig_path, MAX_SIG_BYTES)
    if isinstance(armored, _Unread):
        if armored.reason == "missing":
            fail(f"missing: no {sig_path.name} beside it "
                 f"(writ orders sign {f.display} --key KEY)")
        elif armored.reason == "too large":
            fail(f"{sig_path.name}: larger than {MAX_SIG_BYTES >> 10} KiB: not a signature")
        else:
            fail(f"{sig_path.name} {armored.reason}")
        return None
    try:
        got = verify(data, armored, ORDER_NAMESPACE)
    except SigError as e:
        fail(f"{sig_path.name}: {_named(trust.keyring, armored, str(e))}")
        return None
    if not subjects:
        return None  # no readable act: nothing to judge the key against
    key, why = trust.keyring.judge(got.key_blob, Role.ISSUER, subjects, trust.at)
    if why is None and bound_to_acts:
        why = _acts_line_problem(data, subjects)
    if why is not None:
        fail(why)
        return None
    return key


_ACTS_LINE = re.compile(rb"#[ \t]*acts:[ \t]*([^\r\n]*)")


def _acts_line_problem(data: bytes, subjects: list[Subject]) -> str | None:
    """A list whose first line is `# acts: ID, ID…` belongs to those acts only.

    The line is inside the signed bytes, so it binds the list to its acts:
    two lists signed by one key cannot be swapped between that key's acts
    (scope alone cannot tell them apart). Without the line, any act the
    signer may sign may use the list."""
    m = _ACTS_LINE.match(data.removeprefix(b"\xef\xbb\xbf"))
    if m is None:
        return None
    named = {x.strip() for x in m.group(1).decode("utf-8", "replace").split(",") if x.strip()}
    strangers = sorted({s.act_id for s in subjects} - named)
    if not strangers:
        return None
    return (f"the list is signed for acts {', '.join(sorted(named)) or '(none)'} "
            f"(its `# acts:` line), not for {', '.join(strangers)}")


@dataclass(frozen=True, slots=True)
class _Unread:
    reason: str  # "missing", "too large", "is not a regular file", "cannot be read: …"


def _read_regular(path: Path, limit: int) -> bytes | _Unread:
    """The file's bytes if it is a regular file of at most `limit` bytes.

    Opened without blocking and checked on the open descriptor: a FIFO named
    FILE.sig must not hang the load, nor a 4 GiB file fill the memory."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return _Unread("missing")
    except OSError as e:
        return _Unread(f"cannot be read: {e.strerror or e}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return _Unread("is not a regular file")
        if st.st_size > limit:
            return _Unread("too large")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(limit + 1)
    except OSError as e:
        return _Unread(f"cannot be read: {e.strerror or e}")
    finally:
        os.close(fd)
    return data if len(data) <= limit else _Unread("too large")


def _named(keyring: Keyring, armored: bytes, message: str) -> str:
    """A bad signature names the keyring key it claims to be by, when known."""
    if not message.startswith("bad signature"):
        return message
    blob = claimed_key(armored)
    keys = keyring.with_blob(blob) if blob else ()
    if keys:
        return f"{message} (by key {keys[0].id}, {keys[0].principal})"
    return message
