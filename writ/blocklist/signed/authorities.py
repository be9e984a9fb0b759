"""The keyring: who may sign what, read from YAML into frozen values.

    keys:
      - id: ex-court-2026              # unique, [A-Za-z0-9._-]
        principal: Example District Court   # the authority, for people
        roles: [issuer]                # issuer: acts and lists; publisher: published sets
        key: ssh-ed25519 AAAA… comment # the OpenSSH public key line
        valid_from: 2015-01-01         # a date, inclusive
        valid_until: 2030-12-31        # a date, inclusive; null: no end
        scope:                         # issuers only; both lists: an act must match both
          acts: ["EX-*"]               # glob patterns of act ids
          courts: ["Example * Court"]  # glob patterns of court names
        revoked: null                  # a date: nothing it signed counts from that day on

Rules (docs/regulator.md §10, "Signing orders"):
- The window is judged at the date the signed thing claims (an act's
  `issued`, a manifest's creation): rotating to a new key does not
  invalidate the acts the old key signed while it was valid, and a key cannot
  sign acts dated before its window (backdating).
- Revocation is judged at the load's instant, whatever the date on the act:
  a revoked key may be in someone else's hands, and they can write any date.
  The acts it signed must be re-signed by a valid key.
- A restore or revoke is also judged against the act it amends: an issuer
  cannot lift another authority's block.
- Parsing never raises for bad input: every problem is a KeyringError with
  file:line.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path

from writ.blocklist._yamlsrc import Map, Node, Scalar, Seq, read_documents
from writ.blocklist.model import Position
from writ.blocklist.signed.sshsigfmt import SigError, fingerprint, parse_public_line

__all__ = ["Key", "Keyring", "KeyringError", "Role", "Scope", "Subject", "load_keyring"]

_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FIELDS = ("id", "principal", "roles", "key", "valid_from", "valid_until", "scope", "revoked")


class Role(StrEnum):
    ISSUER = "issuer"
    PUBLISHER = "publisher"


@dataclass(frozen=True, slots=True)
class KeyringError:
    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class Scope:
    acts: tuple[str, ...] = ()  # glob patterns of act ids (fnmatchcase)
    courts: tuple[str, ...] = ()  # glob patterns of court names

    def covers(self, act_id: str, court: str) -> bool:
        ok_act = not self.acts or any(fnmatch.fnmatchcase(act_id, p) for p in self.acts)
        ok_court = not self.courts or any(fnmatch.fnmatchcase(court, p) for p in self.courts)
        return ok_act and ok_court

    def __str__(self) -> str:
        parts = []
        if self.acts:
            parts.append("acts " + ", ".join(self.acts))
        if self.courts:
            parts.append("courts " + ", ".join(self.courts))
        return "; ".join(parts) or "nothing"


@dataclass(frozen=True, slots=True)
class Subject:
    """One thing a signature vouches for: an act (its id, court and date), or a
    published set (id and court empty, `when` its creation date)."""

    act_id: str
    court: str
    when: date


@dataclass(frozen=True, slots=True)
class Key:
    id: str
    principal: str
    roles: frozenset[Role]
    public: str  # the OpenSSH public key line, as written
    blob: bytes  # its key blob (what a signature names)
    valid_from: date
    valid_until: date | None
    scope: Scope
    revoked: date | None
    pos: Position

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.blob)

    def problem(self, role: Role, subjects: list[Subject], at: datetime) -> str | None:
        """Why this key's signature does not count for `subjects`, or None."""
        if role not in self.roles:
            have = ", ".join(sorted(self.roles))
            article = "an" if role is Role.ISSUER else "a"
            return f"key {self.id} ({self.principal}) has the wrong role: it is not " \
                   f"{article} {role} (roles: {have})"
        if self.revoked is not None and at.date() >= self.revoked:
            return f"key {self.id} ({self.principal}) was revoked on {self.revoked}"
        for s in subjects:
            what = f"{s.act_id} (issued {s.when})" if s.act_id else f"a set created {s.when}"
            if s.when < self.valid_from:
                return f"key {self.id} ({self.principal}) is valid from {self.valid_from}; " \
                       f"it cannot sign {what}"
            if self.valid_until is not None and s.when > self.valid_until:
                return f"key {self.id} ({self.principal}) expired on {self.valid_until}; " \
                       f"it cannot sign {what}"
            if role is Role.ISSUER and not self.scope.covers(s.act_id, s.court):
                return f"key {self.id} ({self.principal}) is out of scope for {s.act_id} " \
                       f"({s.court}): it may sign {self.scope}"
        return None


@dataclass(frozen=True, slots=True)
class Keyring:
    keys: tuple[Key, ...]
    source: str  # the file, as named to the user

    def with_blob(self, blob: bytes) -> tuple[Key, ...]:
        return tuple(k for k in self.keys if k.blob == blob)

    def judge(self, blob: bytes, role: Role, subjects: list[Subject], at: datetime
              ) -> tuple[Key | None, str | None]:
        """The keyring entry whose signature counts, or (None, why not)."""
        candidates = self.with_blob(blob)
        if not candidates:
            return None, f"signed by a key not in the keyring {self.source} " \
                         f"({fingerprint(blob)})"
        first: str | None = None
        for key in candidates:
            why = key.problem(role, subjects, at)
            if why is None:
                return key, None
            first = first or why
        return None, first


def load_keyring(path: Path, display: str | None = None) -> tuple[Keyring | None,
                                                                    list[KeyringError]]:
    """Read and check a keyring file. (None, errors) when anything is wrong."""
    shown = display or str(path)
    docs, problems = read_documents(path)
    errors = [KeyringError(shown, p.line, p.field, p.message) for p in problems]
    if errors:
        return None, errors
    if len(docs) != 1 or not isinstance(docs[0], Map) or "keys" not in docs[0].items:
        return None, [KeyringError(shown, 1, "keys", "a keyring is one mapping with a "
                                   "`keys:` list")]
    root = docs[0]
    for name, (line, _) in root.items.items():
        if name != "keys":
            errors.append(KeyringError(shown, line, name, "unknown field (known: keys)"))
    node = root.items["keys"][1]
    if not isinstance(node, Seq) or not node.items:
        return None, [KeyringError(shown, node.line, "keys", "must be a non-empty list")]
    keys: list[Key] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(node.items, 1):
        r = _KeyReader(shown, f"keys[{i}]")
        key = r.read(item)
        errors.extend(r.errors)
        if key is not None:
            if key.id in seen:
                errors.append(KeyringError(shown, key.pos.line, f"keys[{i}].id",
                                           f"duplicate id: already used at line {seen[key.id]}"))
            seen.setdefault(key.id, key.pos.line)
            keys.append(key)
    if errors:
        return None, errors
    return Keyring(tuple(keys), shown), []


class _KeyReader:
    def __init__(self, file: str, where: str) -> None:
        self.file, self.where = file, where
        self.errors: list[KeyringError] = []
        self.line = 0

    def err(self, line: int, name: str, message: str) -> None:
        self.errors.append(KeyringError(self.file, line, f"{self.where}.{name}", message))

    def read(self, item: Node) -> Key | None:
        if not isinstance(item, Map):
            self.errors.append(KeyringError(self.file, item.line, self.where,
                                            "each key is a mapping (id: …, key: …)"))
            return None
        f = item.items
        self.line = item.line
        for name, (line, _) in f.items():
            if name not in _FIELDS:
                self.err(line, name, f"unknown field (known: {', '.join(_FIELDS)})")
        for name in ("id", "principal", "roles", "key", "valid_from"):
            if name not in f:
                self.err(item.line, name, "required")
        kid = self.text(f, "id")
        if kid is not None and not _ID_RE.fullmatch(kid):
            self.err(f["id"][0], "id", f"{kid!r}: use 1-64 of A-Z a-z 0-9 . _ -")
        principal = self.text(f, "principal")
        roles = self.roles(f)
        blob, public = self.public(f)
        valid_from = self.day(f, "valid_from")
        valid_until = self.day(f, "valid_until", optional=True)
        revoked = self.day(f, "revoked", optional=True)
        if valid_from and valid_until and valid_until < valid_from:
            self.err(f["valid_until"][0], "valid_until", f"{valid_until} is before "
                     f"valid_from {valid_from}")
        scope = self.scope(f, roles)
        if (self.errors or kid is None or principal is None or roles is None or blob is None
                or public is None or valid_from is None or scope is None):
            return None
        return Key(kid, principal, roles, public, blob, valid_from, valid_until, scope,
                   revoked, Position(self.file, item.line))

    def text(self, f: dict[str, tuple[int, Node]], name: str) -> str | None:
        if name not in f:
            return None
        line, node = f[name]
        if not isinstance(node, Scalar) or node.value is None or not node.text.strip():
            self.err(line, name, "must be non-empty text")
            return None
        return str(node.value if isinstance(node.value, str) else node.text).strip()

    def roles(self, f: dict[str, tuple[int, Node]]) -> frozenset[Role] | None:
        if "roles" not in f:
            return None
        line, node = f["roles"]
        items = node.items if isinstance(node, Seq) else (node,)
        out = set()
        for it in items:
            try:
                out.add(Role(str(it.value) if isinstance(it, Scalar) else ""))
            except ValueError:
                self.err(line, "roles", "each role is issuer or publisher")
                return None
        if not out:
            self.err(line, "roles", "at least one of issuer, publisher")
            return None
        return frozenset(out)

    def public(self, f: dict[str, tuple[int, Node]]) -> tuple[bytes | None, str | None]:
        text = self.text(f, "key")
        if text is None:
            return None, None
        try:
            return parse_public_line(text), text
        except SigError as e:
            self.err(f["key"][0], "key", str(e))
            return None, None

    def day(self, f: dict[str, tuple[int, Node]], name: str, optional: bool = False
            ) -> date | None:
        if name not in f:
            return None
        line, node = f[name]
        if isinstance(node, Scalar):
            v = node.value
            if v is None and optional:
                return None
            if isinstance(v, date) and not isinstance(v, datetime):
                return v
        self.err(line, name, "must be a date (YYYY-MM-DD)" + (" or null" if optional else ""))
        return None

    def scope(self, f: dict[str, tuple[int, Node]], roles: frozenset[Role] | None
              ) -> Scope | None:
        if "scope" not in f or (isinstance(f["scope"][1], Scalar) and f["scope"][1].value is None):
            if roles and Role.ISSUER in roles:
                self.err(self.line, "scope", "required for an issuer: the acts it may sign "
                         "(acts: [\"EX-*\"], courts: […])")
                return None
            return Scope()
        line, node = f["scope"]
        if not isinstance(node, Map):
            self.err(line, "scope", "a mapping with acts: and/or courts: lists of patterns")
            return None
        got: dict[str, tuple[str, ...]] = {}
        for name, (kline, value) in node.items.items():
            if name not in ("acts", "courts"):
                self.err(kline, f"scope.{name}", "unknown field (known: acts, courts)")
                continue
            items = value.items if isinstance(value, Seq) else (value,)
            pats = [it.value for it in items if isinstance(it, Scalar)]
            if not pats or len(pats) != len(items) or not all(
                isinstance(p, str) and p.strip() for p in pats
            ):
                self.err(kline, f"scope.{name}", "a non-empty list of text patterns")
                continue
            got[name] = tuple(str(p).strip() for p in pats)
        if not got and not self.errors:
            self.err(line, "scope", "empty: list acts: and/or courts: patterns "
                     "(acts: [\"*\"] for every act)")
            return None
        return Scope(got.get("acts", ()), got.get("courts", ()))
