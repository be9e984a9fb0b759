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
- Pushing off the box never stops the writer: failures are counted, not raised.
"""

from __future__ import annotations

import base64
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


def read_checkpoints(path: Path) -> Iterator[Checkpoint]:
    """Checkpoints in a file, one JSON object a line; raises CheckpointReadError."""
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
                yield Checkpoint(str(obj["node"]), int(obj["seq"]), str(obj["head"]),
                                 str(obj["ts"]), str(obj["key"]), str(obj["sig"]), lineno)
            except (ValueError, KeyError, TypeError) as e:
                raise CheckpointReadError(path, lineno, f"not a checkpoint ({e})") from None


class Checkpointer:
    """Signs and appends checkpoints; copies them off the box when asked to."""

    def __init__(self, signing_key_file: Path, checkpoint_file: Path,
                 push_path: Path | None = None, redis_url: str | None = None,
                 redis_prefix: str = "writ:") -> None:
        self.key = load_or_create_signing_key(signing_key_file)
        self.path = checkpoint_file
        self.push_path = push_path
        self.redis_url = redis_url
        self.redis_key_prefix = f"{redis_prefix}audit:checkpoints:"
        self.written = 0
        self.push_failures = 0
        self.last_seq = -1
        self._redis: Any = None

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
            except OSError:
                self.push_failures += 1
        if self.redis_url is not None:
            self._push_redis(node, line)
        return cp

    def _push_redis(self, node: str, line: str) -> None:
        import redis

        try:
            if self._redis is None:
                assert self.redis_url is not None
                self._redis = redis.Redis.from_url(self.redis_url, socket_timeout=0.5,
                                                   socket_connect_timeout=0.5)
            self._redis.rpush(self.redis_key_prefix + node, line.rstrip("\n"))
        except (redis.RedisError, OSError):
            self.push_failures += 1
            self._redis = None

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = None


def _append_durably(path: Path, line: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
