"""SSHSIG: writ and the real `ssh-keygen -Y` agree both ways; bad input is a SigError."""

from __future__ import annotations

import base64
import hashlib
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.blocklist.signed.sshkeys import (
    SSH_KEYGEN,
    keygen,
    needs_ssh_keygen,
    public_line,
    ssh_sign,
    ssh_verify,
)
from writ.blocklist.signed.sshsigfmt import (
    SigError,
    fingerprint,
    load_private_key,
    parse_public_line,
    sign,
    verify,
)

pytestmark = needs_ssh_keygen
KINDS = ["ed25519", "ecdsa", "rsa"]


@pytest.fixture
def message(tmp_path: Path) -> Path:
    p = tmp_path / "order.yaml"
    p.write_bytes(b"id: EX-1\ncourt: Example Court\ncase: '1'\nissued: 2015-09-07\n")
    return p


@pytest.mark.parametrize("kind", KINDS)
def test_ssh_keygen_signatures_verify_in_writ(tmp_path: Path, message: Path, kind: str) -> None:
    key = keygen(tmp_path, f"k-{kind}", kind)
    sig = ssh_sign(key, message)
    got = verify(message.read_bytes(), sig.read_bytes(), "writ-order")
    assert got.key_blob == parse_public_line(public_line(key))
    fp = subprocess.run([str(SSH_KEYGEN), "-l", "-f", f"{key}.pub"], capture_output=True,
                        text=True, check=True).stdout.split()[1]
    assert got.fingerprint == fp == fingerprint(got.key_blob)


@pytest.mark.parametrize("kind", KINDS)
def test_writ_signatures_verify_with_ssh_keygen(tmp_path: Path, message: Path, kind: str) -> None:
    key = keygen(tmp_path, f"k-{kind}", kind)
    sig = Path(f"{message}.sig")
    sig.write_bytes(sign(message.read_bytes(), load_private_key(key.read_bytes()), "writ-order"))
    allowed = tmp_path / "allowed"
    allowed.write_text(f'who namespaces="writ-order" {public_line(key)}\n')
    good = ssh_verify(allowed, "who", message, sig)
    assert good.returncode == 0, good.stderr + good.stdout
    with message.open("rb") as f:
        novalidate = subprocess.run(
            [str(SSH_KEYGEN), "-Y", "check-novalidate", "-n", "writ-order", "-s", str(sig)],
            stdin=f, capture_output=True, text=True, check=False)
    assert novalidate.returncode == 0, novalidate.stderr + novalidate.stdout
    message.write_bytes(message.read_bytes() + b"# one more byte\n")
    assert ssh_verify(allowed, "who", message, sig).returncode != 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_tampered_byte_is_refused(tmp_path: Path, message: Path, kind: str) -> None:
    sig = ssh_sign(keygen(tmp_path, "k", kind), message)
    data = bytearray(message.read_bytes())
    data[4] ^= 0x01
    with pytest.raises(SigError, match="bad signature"):
        verify(bytes(data), sig.read_bytes(), "writ-order")


def test_another_namespace_is_refused(tmp_path: Path, message: Path) -> None:
    sig = ssh_sign(keygen(tmp_path, "k"), message, namespace="git")
    with pytest.raises(SigError, match="namespace 'git'"):
        verify(message.read_bytes(), sig.read_bytes(), "writ-order")


def _body(sig: bytes) -> bytes:
    lines = sig.decode().strip().splitlines()
    return base64.b64decode("".join(lines[1:-1]))


def _armor(raw: bytes) -> bytes:
    return (b"-----BEGIN SSH SIGNATURE-----\n" + base64.b64encode(raw)
            + b"\n-----END SSH SIGNATURE-----\n")


@pytest.mark.parametrize(("sig", "says"), [
    (b"", "first line"),
    (b"\x00\xff\x10binary", "binary"),
    (b"-----BEGIN SSH SIGNATURE-----\nAAAA\n", "last line"),
    (b"-----BEGIN SSH SIGNATURE-----\n!!!!\n-----END SSH SIGNATURE-----\n", "base64"),
    (_armor(b"NOTSIG\x00\x00\x00\x01"), "preamble"),
    (_armor(b"SSHSIG\x00\x00\x00\x02"), "version 2"),
    (_armor(b"SSHSIG\x00\x00\x00\x01\x00\x00\xff\xff"), "truncated"),
    (b"x" * (70 << 10), "larger than"),
])
def test_malformed_signatures_say_what_is_wrong(sig: bytes, says: str) -> None:
    with pytest.raises(SigError, match=says):
        verify(b"anything", sig, "writ-order")


def test_trailing_bytes_and_a_cut_signature_are_malformed(tmp_path: Path, message: Path) -> None:
    raw = _body(ssh_sign(keygen(tmp_path, "k"), message).read_bytes())
    with pytest.raises(SigError, match="trailing"):
        verify(message.read_bytes(), _armor(raw + b"\x00"), "writ-order")
    for cut in (10, 40, len(raw) - 1):
        with pytest.raises(SigError):
            verify(message.read_bytes(), _armor(raw[:cut]), "writ-order")


def test_a_key_swapped_into_a_signature_is_refused(tmp_path: Path, message: Path) -> None:
    """Someone replaces the public key in a good signature with their own: the
    signature no longer verifies (the key is not trusted because it says so)."""
    raw = _body(ssh_sign(keygen(tmp_path, "k"), message).read_bytes())
    other = parse_public_line(public_line(keygen(tmp_path, "other")))
    n = struct.unpack(">I", raw[10:14])[0]
    swapped = raw[:10] + struct.pack(">I", len(other)) + other + raw[14 + n:]
    with pytest.raises(SigError, match="bad signature"):
        verify(message.read_bytes(), _armor(swapped), "writ-order")


def test_an_encrypted_private_key_gets_a_clear_error(tmp_path: Path) -> None:
    key = keygen(tmp_path, "locked", passphrase="secret words")
    with pytest.raises(SigError, match="passphrase"):
        load_private_key(key.read_bytes())
    with pytest.raises(SigError, match="not an OpenSSH private key"):
        load_private_key(b"hello")


@pytest.mark.parametrize("line", [
    "", "ssh-ed25519", "ssh-ed25519 !!!", "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIA==",
    "ssh-dss AAAAB3NzaC1kc3MAAAA=",
])
def test_bad_public_key_lines(line: str) -> None:
    with pytest.raises(SigError):
        parse_public_line(line)


def _s(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def _sk_signature(key: ed25519.Ed25519PrivateKey, message: bytes, flags: int) -> tuple[str, bytes]:
    """What a FIDO token makes for `ssh-keygen -Y sign` with an ed25519-sk key
    (PROTOCOL.u2f): built by hand, since the tests have no token."""
    from cryptography.hazmat.primitives import serialization

    kind, app = b"sk-ssh-ed25519@openssh.com", b"ssh:"
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    blob = _s(kind) + _s(raw) + _s(app)
    digest = hashlib.sha512(message).digest()
    signed = b"SSHSIG" + _s(b"writ-order") + _s(b"") + _s(b"sha512") + _s(digest)
    counter = 7
    tbs = (hashlib.sha256(app).digest() + bytes([flags]) + struct.pack(">I", counter)
           + hashlib.sha256(signed).digest())
    sig = _s(kind) + _s(key.sign(tbs)) + bytes([flags]) + struct.pack(">I", counter)
    out = (b"SSHSIG" + struct.pack(">I", 1) + _s(blob) + _s(b"writ-order") + _s(b"")
           + _s(b"sha512") + _s(sig))
    line = f"sk-ssh-ed25519@openssh.com {base64.b64encode(blob).decode()} token"
    return line, _armor(out)


def test_hardware_key_signatures_verify_here_and_in_ssh_keygen(
    tmp_path: Path, message: Path
) -> None:
    line, sig = _sk_signature(ed25519.Ed25519PrivateKey.generate(), message.read_bytes(), 0x01)
    got = verify(message.read_bytes(), sig, "writ-order")
    assert got.key_type == "sk-ssh-ed25519@openssh.com"
    assert got.key_blob == parse_public_line(line)
    allowed = tmp_path / "allowed"
    allowed.write_text(f'token namespaces="writ-order" {line}\n')
    sigfile = tmp_path / "order.yaml.sig"
    sigfile.write_bytes(sig)
    done = ssh_verify(allowed, "token", message, sigfile)
    assert done.returncode == 0, done.stderr + done.stdout
    with pytest.raises(SigError, match="bad signature"):
        verify(message.read_bytes() + b"x", sig, "writ-order")


def test_hardware_key_signature_without_touch_is_refused(message: Path) -> None:
    _, sig = _sk_signature(ed25519.Ed25519PrivateKey.generate(), message.read_bytes(), 0x00)
    with pytest.raises(SigError, match="user presence"):
        verify(message.read_bytes(), sig, "writ-order")


def test_hardware_ecdsa_key_signatures_verify_here_and_in_ssh_keygen(
    tmp_path: Path, message: Path
) -> None:
    """sk-ecdsa-sha2-nistp256@openssh.com, built by hand as a token would (PROTOCOL.u2f)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    key = ec.generate_private_key(ec.SECP256R1())
    kind, app = b"sk-ecdsa-sha2-nistp256@openssh.com", b"ssh:"
    point = key.public_key().public_bytes(serialization.Encoding.X962,
                                          serialization.PublicFormat.UncompressedPoint)
    blob = _s(kind) + _s(b"nistp256") + _s(point) + _s(app)
    data = message.read_bytes()
    signed = (b"SSHSIG" + _s(b"writ-order") + _s(b"") + _s(b"sha512")
              + _s(hashlib.sha512(data).digest()))
    flags, counter = 0x05, 3  # user present + verified
    tbs = (hashlib.sha256(app).digest() + bytes([flags]) + struct.pack(">I", counter)
           + hashlib.sha256(signed).digest())
    r, s = decode_dss_signature(key.sign(tbs, ec.ECDSA(hashes.SHA256())))

    def mpint(n: int) -> bytes:
        return _s(n.to_bytes((n.bit_length() + 8) // 8, "big"))

    sig = _s(kind) + _s(mpint(r) + mpint(s)) + bytes([flags]) + struct.pack(">I", counter)
    armored = _armor(b"SSHSIG" + struct.pack(">I", 1) + _s(blob) + _s(b"writ-order") + _s(b"")
                     + _s(b"sha512") + _s(sig))
    assert verify(data, armored, "writ-order").key_type == kind.decode()
    line = f"{kind.decode()} {base64.b64encode(blob).decode()} token"
    (tmp_path / "allowed").write_text(f'token namespaces="writ-order" {line}\n')
    (tmp_path / "order.yaml.sig").write_bytes(armored)
    done = ssh_verify(tmp_path / "allowed", "token", message, tmp_path / "order.yaml.sig")
    assert done.returncode == 0, done.stderr + done.stdout
    with pytest.raises(SigError, match="bad signature"):
        verify(data + b"\n", armored, "writ-order")
