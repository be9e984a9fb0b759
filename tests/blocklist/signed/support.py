"""Keys, keyrings and signed order folders for the signature tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from writ.blocklist import LoadResult, load_orders
from writ.blocklist.signed.authorities import Keyring, load_keyring
from writ.blocklist.signed.sigcheck import OrderTrust
from writ.blocklist.signed.sshsigfmt import sign

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class SigningKey:
    id: str
    private: ed25519.Ed25519PrivateKey

    @property
    def public_line(self) -> str:
        return self.private.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()

    def write_private(self, path: Path) -> Path:
        path.write_bytes(self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption()))
        path.chmod(0o600)
        return path

    def sign(self, file: Path) -> Path:
        sig = Path(f"{file}.sig")
        sig.write_bytes(sign(file.read_bytes(), self.private, "writ-order"))
        return sig


def new_key(kid: str) -> SigningKey:
    return SigningKey(kid, ed25519.Ed25519PrivateKey.generate())


def key_entry(key: SigningKey, *, roles: str = "[issuer]", acts: str = '["EX-*"]',
              courts: str | None = None, valid_from: str = "2010-01-01",
              valid_until: str = "2030-12-31", revoked: str = "null",
              principal: str = "Example District Court") -> str:
    scope = f"\n      acts: {acts}" if acts else ""
    if courts:
        scope += f"\n      courts: {courts}"
    return f"""
  - id: {key.id}
    principal: {principal}
    roles: {roles}
    key: {key.public_line}
    valid_from: {valid_from}
    valid_until: {valid_until}
    {"scope:" if scope else ""}{scope}
    revoked: {revoked}"""


def write_keyring(path: Path, *entries: str) -> Keyring:
    path.write_text("keys:" + "".join(entries) + "\n")
    ring, errors = load_keyring(path, path.name)
    assert ring is not None, errors
    return ring


def load_signed(folder: Path, ring: Keyring, at: datetime = NOW) -> LoadResult:
    return load_orders(folder, UTC, OrderTrust(ring, at))


def order(folder: Path, name: str, act_id: str, *, court: str = "Example District Court",
          extra: str = "", targets: str = "  - domain: blocked.example\n") -> Path:
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    body = (f"id: {act_id}\ncourt: {court}\ncase: '2-1/2015'\nissued: 2015-09-07\n{extra}")
    if targets:
        body += "targets:\n" + targets
    p.write_text(body)
    return p
