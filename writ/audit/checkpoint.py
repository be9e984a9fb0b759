"""Signed checkpoints: what stops the key holder from re-chaining history.

A hash chain proves the order and content of records only relative to its own
head; whoever holds the files can edit one record and re-hash everything
after it. A checkpoint is an Ed25519 signature over (node, seq, head hash,
time), written every N records / T seconds, at rotation and at shutdown, and
copied off the box (a second path the auditor collects, a Redis list). Once a
checkpoint has left the box, any later rewrite of records up to its seq, and
any cut of the tail below it, shows.

Invariants:
- The signed bytes are the canonical JSON (record.canonical) of the checkpoint
  without `sig`; `sig` is base64.
- The signing key file is PKCS#8 PEM, created 0600 when missing. The public key
  (`writ audit keygen` prints it) is all an auditor needs.
- Pushing off the box never stops the writer: failures (whatever is raised)
  are counted and the last one kept in `last_push_error`, never raised; the
  Redis copy runs on its own thread (writ.audit.redispush), so the writer never
  waits on the network.
- The Redis copy goes to `{P}:audit:checkpoints:<node>` (inside the `{P}` hash
  tag of the published versions, so a cluster keeps them on one slot) through
  the one Redis connection factory (writ.blocklist.stores.connection): the URLs
  that work for the store work here. Before 2026-12 the key was
  `P:audit:checkpoints:<node>`; docs/auditor.md says how to read both.
- A line torn by a crash is never appended onto: a checkpoint file that does
  not end in a newline gets one first, so the torn fragment stays one bad line.
- The key id of the last checkpoint in the file is read at start: a signing key
  that differs from it (the file was deleted or replaced) is a key change the
  writer records in the chain.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from writ.audit.record import canonical
from writ.audit.redispush import RedisPusher

__all__ = [
    "Checkpoint",
    "CheckpointReadError",
    "Checkpointer",
    "key_id",
    "load_or_create_signing_key",
    "load_public_key",
    "public_pem",
    "read_checkpoints",
]


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            return load_or_create_signing_key(path)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        return key
    loaded = serialization.load_pem_private_key(data, password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise TypeError(f"{path}: not an Ed25519 private key")
    return loaded


def public_pem(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def key_id(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    """A short fingerprint of the public key, so a checkpoint names its signer."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A PEM public key (or a private key file, whose public half is taken)."""
    data = path.read_bytes()
    try:
        pub = serialization.load_pem_public_key(data)
    except ValueError:
        priv = serialization.load_pem_private_key(data, password=None)
        if not isinstance(priv, Ed25519PrivateKey):
            raise TypeError(f"{path}: not an Ed25519 key") from None
        return priv.public_key()
    if not isinstance(pub, Ed25519PublicKey):
        raise TypeError(f"{path}: not an Ed25519 public key")
    return pub


@dataclass(frozen=True, slots=True)
class Checkpoint:
    node: str
    seq: int
    head: str
    ts: str
    key: str
    sig: str
    line: int = 0  # where it was read from (0: made here)

    def body(self) -> dict[str, Any]:
        return {"node": self.node, "seq": self.seq, "head": self.head, "ts": self.ts,
                "key": self.key}

    def to_line(self) -> str:
        return json.dumps({**self.body(), "sig": self.sig}, sort_keys=True,
                          separators=(",", ":"))

    def valid(self, public: Ed25519PublicKey) -> bool:
        try:
            public.verify(base64.b64decode(self.sig, validate=True), canonical(self.body()))
        except (InvalidSignature, ValueError):
            return False
        return True


def sign_checkpoint(key: Ed25519PrivateKey, node: str, seq: int, head: str,
                    ts: str) -> Checkpoint:
    unsigned = Checkpoint(node, seq, head, ts, key_id(key), "")
    sig = base64.b64encode(key.sign(canonical(unsigned.body()))).decode("ascii")
    return Checkpoint(node, seq, head, ts, unsigned.key, sig)


class CheckpointReadError(ValueError):
    def __init__(self, path: Path, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path, self.line = path, line


def read_checkpoints(path: Path, torn: list[int] | None = None) -> Iterator[Checkpoint]:
    """Checkpoints in a file, one JSON object a line; raises CheckpointReadError.

    With `torn` given, a line torn by a crash (the start of a JSON object cut
    short) is skipped and its number appended there, and a checkpoint an older
    node glued onto such a fragment is read; any other bad line still raises.
    A torn line only means one checkpoint less: what it would have anchored is
    protected by the chain and the next checkpoint."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                yield _checkpoint(raw, lineno)
            except (ValueError, KeyError, TypeError) as e:
                cp = _after_torn(raw, lineno) if torn is not None else None
                if cp is None:
                    raise CheckpointReadError(path, lineno, f"not a checkpoint ({e})") from None
                assert torn is not None
                torn.append(lineno)
                if cp is not _TORN:
                    yield cp


_TORN = Checkpoint("", 0, "", "", "", "")  # a torn line with nothing after it


def _checkpoint(raw: bytes, lineno: int) -> Checkpoint:
    obj = json.loads(raw)
    return Checkpoint(str(obj["node"]), int(obj["seq"]), str(obj["head"]), str(obj["ts"]),
                      str(obj["key"]), str(obj["sig"]), lineno)


def _after_torn(raw: bytes, lineno: int) -> Checkpoint | None:
    """_TORN for a torn line; the checkpoint a node before 2026-12 appended onto
    one; None when the line is bad in any other way."""
    if _is_torn(raw):
        return _TORN
    glued = raw.rfind(b'{"head":')
    if glued <= 0 or not _is_torn(raw[:glued]):
        return None
    try:
        return _checkpoint(raw[glued:], lineno)
    except (ValueError, KeyError, TypeError):
        return None


def _is_torn(raw: bytes) -> bool:
    """The start of a checkpoint line cut short: `{"`… and not valid JSON."""
    text = raw.strip()
    if not text.startswith(b'{"') or text.endswith(b"}"):
        return False
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


class Checkpointer:
    """Signs and appends checkpoints; copies them off the box when asked to."""

    def __init__(self, signing_key_file: Path, checkpoint_file: Path,
                 push_path: Path | None = None, redis_url: str | None = None,
                 redis_prefix: str = "writ") -> None:
        self.key_created = not signing_key_file.exists()
        self.key = load_or_create_signing_key(signing_key_file)
        self.key_id = key_id(self.key)
        self.path = checkpoint_file
        self.previous_key = _last_key_id(checkpoint_file)
        _end_torn_line(checkpoint_file)
        self.push_path = push_path
        if push_path is not None:
            _end_torn_line(push_path)
        self.redis_url = redis_url
        tag = redis_prefix.rstrip(":")
        self.redis_key_prefix = f"{{{tag}}}:audit:checkpoints:"
        self.written = 0
        self._file_push_failures = 0
        self._file_push_error: str | None = None
        self.last_seq = -1
        self._pusher = (RedisPusher(redis_url, self.redis_key_prefix)
                        if redis_url is not None else None)

    @property
    def push_failures(self) -> int:
        """Copies off the box that failed (file and Redis), counted."""
        return self._file_push_failures + (self._pusher.failures if self._pusher else 0)

    @property
    def last_push_error(self) -> str | None:
        return (self._pusher.last_error if self._pusher else None) or self._file_push_error

    @property
    def key_changed(self) -> bool:
        """The key signing from now on is not the one that signed the last checkpoint."""
        return self.previous_key is not None and self.previous_key != self.key_id

    def checkpoint(self, node: str, seq: int, head: str, ts: str) -> Checkpoint | None:
        if seq == self.last_seq:
            return None  # nothing new since the last one
        cp = sign_checkpoint(self.key, node, seq, head, ts)
        line = cp.to_line() + "\n"
        _append_durably(self.path, line)
        self.written += 1
        self.last_seq = seq
        if self.push_path is not None:
            try:
                _append_durably(self.push_path, line)
            except OSError as e:
                self._file_push_failures += 1
                self._file_push_error = f"{self.push_path}: {e.strerror or e}"
        if self._pusher is not None:
            self._pusher.offer(node, line)
        return cp

    def close(self) -> None:
        """Let the Redis copy finish what is queued (a few seconds at most)."""
        if self._pusher is not None:
            self._pusher.close()


def _last_key_id(path: Path) -> str | None:
    """The `key` of the last readable checkpoint in `path` (None: none)."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 65536))
            tail = f.read().splitlines()
    except OSError:
        return None
    for raw in reversed(tail):
        try:
            key = json.loads(raw).get("key")
        except (ValueError, AttributeError):
            continue
        if isinstance(key, str):
            return key
    return None


def _end_torn_line(path: Path) -> None:
    """Give a file whose last line was torn by a crash its newline back."""
    try:
        with path.open("rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return
            f.seek(-1, os.SEEK_END)
            if f.read(1) == b"\n":
                return
    except OSError:
        return
    with contextlib.suppress(OSError):  # a later append reports what is wrong
        _append_durably(path, "\n")


def _append_durably(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
