"""OpenSSH signatures (SSHSIG): sign and verify detached `FILE.sig` files.

The format is OpenSSH's PROTOCOL.sshsig, so `ssh-keygen -Y sign` makes
signatures writ verifies and `ssh-keygen -Y verify` checks the ones writ makes:

    armor:  -----BEGIN SSH SIGNATURE----- / base64 / -----END SSH SIGNATURE-----
    blob:   "SSHSIG" uint32(1) string(public key) string(namespace)
            string(reserved) string(hash algorithm) string(signature)
    signed: "SSHSIG" string(namespace) string(reserved) string(hash algorithm)
            string(H(message))

Invariants:
- The namespace is part of the signed data: a signature made for another
  purpose (a git commit, a `writ-manifest`) never verifies as a `writ-order`.
- Verification says which public key signed; whether that key may sign is
  the keyring's business (authorities.py), not this module's.
- Bad input raises SigError with a message a person can act on, never
  anything else (struct errors, base64 errors and cryptography's own
  exceptions are all translated here).
- Hardware keys (`sk-ssh-ed25519@openssh.com`, `sk-ecdsa-sha2-nistp256@…`)
  sign SHA-256(application) || flags || counter || SHA-256(signed data); the
  user-presence flag must be set, as `ssh-keygen -Y verify` requires by default.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

__all__ = [
    "MANIFEST_NAMESPACE",
    "ORDER_NAMESPACE",
    "PrivateKey",
    "SigError",
    "Verified",
    "claimed_key",
    "fingerprint",
    "load_private_key",
    "parse_public_line",
    "public_blob",
    "sign",
    "verify",
]

ORDER_NAMESPACE = "writ-order"
MANIFEST_NAMESPACE = "writ-manifest"
MAX_SIG_BYTES = 64 << 10  # an RSA-16384 signature armored is ~6 KiB

_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_END = "-----END SSH SIGNATURE-----"
_MAGIC = b"SSHSIG"
_HASHES = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
_CURVES: dict[bytes, tuple[ec.EllipticCurve, hashes.HashAlgorithm]] = {
    b"nistp256": (ec.SECP256R1(), hashes.SHA256()),
    b"nistp384": (ec.SECP384R1(), hashes.SHA384()),
    b"nistp521": (ec.SECP521R1(), hashes.SHA512()),
}
_SK_ED25519 = b"sk-ssh-ed25519@openssh.com"
_SK_ECDSA = b"sk-ecdsa-sha2-nistp256@openssh.com"
_SK_USER_PRESENT = 0x01

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class SigError(ValueError):
    """A signature that cannot be read or does not verify; the message says why."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.data):
            raise SigError("truncated")
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def u32(self) -> int:
        (n,) = struct.unpack(">I", self.take(4))
        return int(n)

    def string(self) -> bytes:
        return self.take(self.u32())

    def end(self) -> None:
        if self.at != len(self.data):
            raise SigError(f"{len(self.data) - self.at} unexpected trailing bytes")


def _s(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


@dataclass(frozen=True, slots=True)
class Verified:
    """What a good signature says: the key blob that signed, its type and fingerprint."""

    key_blob: bytes
    key_type: str
    fingerprint: str


def fingerprint(key_blob: bytes) -> str:
    """`SHA256:…`, as `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(key_blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def parse_public_line(line: str) -> bytes:
    """The key blob of an OpenSSH public key line (`ssh-ed25519 AAAA… comment`)."""
    parts = line.split()
    if len(parts) < 2:
        raise SigError("not an OpenSSH public key line (TYPE BASE64 [COMMENT])")
    try:
        blob = base64.b64decode(parts[1], validate=True)
        kind = _Reader(blob).string()
    except (binascii.Error, SigError):
        raise SigError(f"not an OpenSSH public key: {parts[1][:20]!r}… is not a key blob") \
            from None
    if kind.decode("ascii", "replace") != parts[0]:
        raise SigError(f"key type {parts[0]!r} does not match the key's own type "
                       f"{kind.decode('ascii', 'replace')!r}")
    _public_key(blob)  # refuse what we could never verify, at the keyring
    return blob


def _unarmor(text: bytes) -> bytes:
    if len(text) > MAX_SIG_BYTES:
        raise SigError(f"larger than {MAX_SIG_BYTES >> 10} KiB: not a signature")
    try:
        lines = text.decode("ascii").strip().splitlines()
    except UnicodeDecodeError:
        raise SigError("not an SSH signature (binary data)") from None
    lines = [ln.strip() for ln in lines]
    if not lines or lines[0] != _BEGIN:
        raise SigError(f"not an SSH signature: the first line must be {_BEGIN}")
    if lines[-1] != _END or len(lines) < 3:
        raise SigError(f"not an SSH signature: the last line must be {_END}")
    try:
        return base64.b64decode("".join(lines[1:-1]), validate=True)
    except binascii.Error:
        raise SigError("not an SSH signature: the armored body is not base64") from None


def claimed_key(armored: bytes) -> bytes | None:
    """The public key blob a signature says it is by (unverified), or None."""
    try:
        r = _Reader(_unarmor(armored))
        if r.take(6) != _MAGIC or r.u32() != 1:
            return None
        return r.string()
    except SigError:
        return None


def _signed_data(namespace: str, hash_alg: str, message: bytes) -> bytes:
    digest = _HASHES[hash_alg](message).digest()
    return (_MAGIC + _s(namespace.encode()) + _s(b"") + _s(hash_alg.encode())
            + _s(digest))


def verify(message: bytes, armored: bytes, namespace: str) -> Verified:
    """Check an armored SSHSIG over `message`. Returns the signer; raises SigError."""
    key_blob, ns, hash_alg, sig = _fields(_unarmor(armored))
    if ns.decode("utf-8", "replace") != namespace:
        raise SigError(f"signed for namespace {ns.decode('utf-8', 'replace')!r}, "
                       f"not {namespace!r}")
    alg = hash_alg.decode("ascii", "replace")
    if alg not in _HASHES:
        raise SigError(f"unsupported hash algorithm {alg!r} (sha256 or sha512)")
    data = _signed_data(namespace, alg, message)
    key = _public_key(key_blob)
    kind = _Reader(key_blob).string()
    try:
        sig_type, sig_body, data = _unwrap(kind, key_blob, sig, data)
        _check(key, kind, sig_type, sig_body, data)
    except SigError as e:
        raise SigError(f"bad signature: {e}") from None
    except InvalidSignature:
        raise SigError("bad signature: the file's bytes are not what the key signed") \
            from None
    return Verified(key_blob, kind.decode("ascii", "replace"), fingerprint(key_blob))


def _fields(raw: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """(public key, namespace, hash algorithm, signature) of an SSHSIG blob."""
    r = _Reader(raw)
    if raw[:6] != _MAGIC:
        raise SigError("not an SSH signature (no SSHSIG preamble)")
    r.take(6)
    try:
        version = r.u32()
        if version != 1:
            raise SigError(f"unsupported SSHSIG version {version}")  # noqa: TRY301 -- one message
        fields = r.string(), r.string(), r.string(), r.string(), r.string()
        r.end()
    except SigError as e:
        raise SigError(f"malformed signature: {e}") from None
    key_blob, ns, _reserved, hash_alg, sig = fields
    return key_blob, ns, hash_alg, sig


def _unwrap(kind: bytes, key_blob: bytes, sig: bytes, data: bytes) -> tuple[bytes, bytes, bytes]:
    """(signature type, signature body, the bytes the key signed).

    A FIDO key signs SHA-256(application) || flags || counter || SHA-256(data)
    (OpenSSH PROTOCOL.u2f), and must have seen the user (flag 0x01)."""
    s = _Reader(sig)
    sig_type, sig_body = s.string(), s.string()
    if kind not in (sig_type, b"ssh-rsa"):  # RSA: rsa-sha2-512 / -256, checked below
        raise SigError(f"signature type {sig_type!r} for a {kind!r} key")
    if kind not in (_SK_ED25519, _SK_ECDSA):
        s.end()
        return sig_type, sig_body, data
    flags, counter = s.take(1), s.u32()
    s.end()
    if not flags[0] & _SK_USER_PRESENT:
        raise SigError("hardware key signature without user presence (touch)")
    kr = _Reader(key_blob)
    kr.string()
    if kind == _SK_ECDSA:
        kr.string()  # curve name
    kr.string()  # the public point / key
    application = kr.string()
    signed = (hashlib.sha256(application).digest() + flags + struct.pack(">I", counter)
              + hashlib.sha256(data).digest())
    return sig_type, sig_body, signed


def _check(key: object, kind: bytes, sig_type: bytes, body: bytes, data: bytes) -> None:
    if isinstance(key, ed25519.Ed25519PublicKey):
        key.verify(body, data)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        _, digest = _CURVES[kind.split(b"-")[-1].split(b"@")[0]]
        b = _Reader(body)
        r_, s_ = _mpint(b.string()), _mpint(b.string())
        b.end()
        key.verify(encode_dss_signature(r_, s_), data, ec.ECDSA(digest))
    elif isinstance(key, rsa.RSAPublicKey):
        algs = {b"rsa-sha2-512": hashes.SHA512(), b"rsa-sha2-256": hashes.SHA256()}
        if sig_type not in algs:  # ssh-rsa (SHA-1) is refused, as OpenSSH does
            raise SigError(f"RSA signature type {sig_type!r} refused: use rsa-sha2-512")
        key.verify(body, data, padding.PKCS1v15(), algs[sig_type])


def _mpint(data: bytes) -> int:
    return int.from_bytes(data, "big", signed=True)


def _public_key(blob: bytes) -> object:
    r = _Reader(blob)
    try:
        kind = r.string()
        if kind in (b"ssh-ed25519", _SK_ED25519):
            raw = r.string()
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
        if kind.startswith(b"ecdsa-sha2-") or kind == _SK_ECDSA:
            name, point = r.string(), r.string()
            if name not in _CURVES:
                raise SigError(f"unsupported curve {name!r}")
            return ec.EllipticCurvePublicKey.from_encoded_point(_CURVES[name][0], point)
        if kind == b"ssh-rsa":
            e, n = _mpint(r.string()), _mpint(r.string())
            if n.bit_length() < 2048:
                raise SigError(f"RSA key of {n.bit_length()} bits refused (2048 at least)")
            return rsa.RSAPublicNumbers(e, n).public_key()
    except ValueError as e:  # cryptography: not a point on the curve, bad length
        raise SigError(f"unreadable public key: {e}") from None
    raise SigError(f"unsupported key type {kind.decode('ascii', 'replace')!r}")


def load_private_key(data: bytes, password: bytes | None = None) -> PrivateKey:
    """An OpenSSH private key file's key. SigError for anything else."""
    try:
        key = serialization.load_ssh_private_key(data, password)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        text = str(e)
        if any(w in text.lower() for w in ("encrypted", "bcrypt", "password")):
            raise SigError("the key is protected by a passphrase: sign with "
                           "`ssh-keygen -Y sign -n writ-order -f KEY FILE` (it asks for "
                           "the passphrase, or uses ssh-agent)") from None
        raise SigError(f"not an OpenSSH private key: {text}") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
                      | rsa.RSAPrivateKey):
        raise SigError(f"unsupported key type {type(key).__name__}")
    return key


def public_blob(key: PrivateKey) -> bytes:
    line = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                         serialization.PublicFormat.OpenSSH)
    return base64.b64decode(line.split()[1])


def sign(message: bytes, key: PrivateKey, namespace: str) -> bytes:
    """An armored SSHSIG over `message` (sha512, as ssh-keygen does)."""
    data = _signed_data(namespace, "sha512", message)
    blob = public_blob(key)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        sig = _s(b"ssh-ed25519") + _s(key.sign(data))
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        kind = _Reader(blob).string()
        _, digest = _CURVES[kind.split(b"-")[-1]]
        r_, s_ = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
        body = _s(_mpint_bytes(r_)) + _s(_mpint_bytes(s_))
        sig = _s(kind) + _s(body)
    else:
        sig = _s(b"rsa-sha2-512") + _s(key.sign(data, padding.PKCS1v15(), hashes.SHA512()))
    raw = (_MAGIC + struct.pack(">I", 1) + _s(blob) + _s(namespace.encode()) + _s(b"")
           + _s(b"sha512") + _s(sig))
    body64 = base64.b64encode(raw).decode()
    lines = [body64[i:i + 70] for i in range(0, len(body64), 70)]
    return ("\n".join([_BEGIN, *lines, _END]) + "\n").encode()


def _mpint_bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 8) // 8, "big") if n else b""
