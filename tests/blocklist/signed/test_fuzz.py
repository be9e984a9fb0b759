"""Whatever bytes a .sig or a manifest holds, the only failure is the
module's own error with a message (never a struct, base64, cryptography or
index error reaching a user as a traceback)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from writ.blocklist.signed.setmanifest import ManifestError, decode_manifest
from writ.blocklist.signed.sshsigfmt import SigError, sign, verify

MESSAGE = b"id: EX-1\n"
GOOD = sign(MESSAGE, ed25519.Ed25519PrivateKey.generate(), "writ-order")
RAW = base64.b64decode(b"".join(GOOD.splitlines()[1:-1]))


def _armor(raw: bytes) -> bytes:
    return (b"-----BEGIN SSH SIGNATURE-----\n" + base64.b64encode(raw)
            + b"\n-----END SSH SIGNATURE-----\n")


def _refused_cleanly(sig: bytes) -> None:
    with pytest.raises(SigError, match=r"\w"):
        verify(MESSAGE, sig, "writ-order")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _refused_cleanly(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_armored_bodies(data: bytes) -> None:
    _refused_cleanly(_armor(b"SSHSIG" + data))


@settings(max_examples=500, deadline=None)
@given(st.integers(0, len(RAW) - 1), st.integers(1, 255))
def test_one_flipped_byte_in_a_good_signature(at: int, xor: int) -> None:
    raw = bytearray(RAW)
    raw[at] ^= xor
    _refused_cleanly(_armor(bytes(raw)))  # every byte is covered: none may change


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                              lambda c: st.lists(c, max_size=4)
                              | st.dictionaries(st.text(max_size=12), c, max_size=6),
                              max_leaves=12).map(lambda v: repr(v).encode())))
def test_random_manifests(data: bytes) -> None:
    with pytest.raises(ManifestError, match=r"\w"):
        decode_manifest(data)
