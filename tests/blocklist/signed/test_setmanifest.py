"""Signed manifests: a node switches only to a newer, signed, complete,
unexpired set; every other case is refused with its alarm."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.blocklist.signed.sshkeys import needs_ssh_keygen, ssh_verify
from tests.blocklist.signed.support import SigningKey, key_entry, new_key, write_keyring
from writ.blocklist.signed.allowed import allowed_signers
from writ.blocklist.signed.authorities import Keyring
from writ.blocklist.signed.setmanifest import (
    Alarm,
    InForce,
    Manifest,
    ManifestError,
    build_manifest,
    decode_manifest,
    digest,
    encode_manifest,
    in_force_alarm,
    judge_switch,
    sign_manifest,
)
from writ.blocklist.signed.sshsigfmt import sign

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FILES = {"acts.json": b'{"acts": []}', "lists/a.txt": b"mirror.example\n"}


@pytest.fixture
def publisher() -> SigningKey:
    return new_key("pub")


@pytest.fixture
def issuer() -> SigningKey:
    return new_key("court")


@pytest.fixture
def ring(tmp_path: Path, publisher: SigningKey, issuer: SigningKey) -> Keyring:
    return write_keyring(tmp_path / "keyring.yaml",
                         key_entry(publisher, roles="[publisher]", acts="",
                                   valid_from="2026-01-01"),
                         key_entry(issuer))


def manifest(seq: int = 2, previous: str | None = "0" * 64, files: dict[str, bytes] = FILES,
             created: datetime = NOW - timedelta(hours=1), days: int = 7) -> Manifest:
    return build_manifest(files, seq, created, created + timedelta(days=days), previous)


def test_a_signed_complete_newer_set_is_accepted(ring: Keyring, publisher: SigningKey) -> None:
    data, sig = sign_manifest(manifest(), publisher.private)
    got = judge_switch(data, sig, FILES, ring, in_force=InForce(1, "0" * 64), at=NOW)
    assert got.accepted, got.message
    assert (got.manifest and got.manifest.sequence, got.signer and got.signer.id) == (2, "pub")
    assert got.digest == digest(data)
    assert got.message == "manifest 2 (signed by pub): verified, 2 files"


def test_a_fresh_node_accepts_any_valid_set(ring: Keyring, publisher: SigningKey) -> None:
    data, sig = sign_manifest(manifest(seq=9), publisher.private)
    assert judge_switch(data, sig, FILES, ring, in_force=None, at=NOW).accepted


def test_the_set_in_force_offered_again_is_no_switch_and_no_alarm(
    ring: Keyring, publisher: SigningKey
) -> None:
    data, sig = sign_manifest(manifest(), publisher.private)
    got = judge_switch(data, sig, FILES, ring, in_force=InForce(2, digest(data)), at=NOW)
    assert (got.same, got.alarm, got.accepted) == (True, None, False)


def _refused(got: object, alarm: Alarm, says: str) -> None:
    assert getattr(got, "alarm", None) is alarm, getattr(got, "message", got)
    assert says in getattr(got, "message", ""), getattr(got, "message", got)


def test_a_replayed_older_set_is_refused(ring: Keyring, publisher: SigningKey) -> None:
    data, sig = sign_manifest(manifest(seq=3), publisher.private)
    got = judge_switch(data, sig, FILES, ring, in_force=InForce(5, "0" * 64), at=NOW)
    _refused(got, Alarm.ROLLBACK,
             "manifest 3 (signed by pub): older than the set in force (sequence 5)")


def test_a_second_manifest_with_the_same_sequence_is_refused(
    ring: Keyring, publisher: SigningKey
) -> None:
    data, sig = sign_manifest(manifest(seq=5), publisher.private)
    _refused(judge_switch(data, sig, FILES, ring, in_force=InForce(5, "1" * 64), at=NOW),
             Alarm.EQUIVOCATION, "another manifest with sequence 5")


def test_the_next_set_must_name_the_one_in_force(ring: Keyring, publisher: SigningKey) -> None:
    data, sig = sign_manifest(manifest(seq=6, previous="2" * 64), publisher.private)
    got = judge_switch(data, sig, FILES, ring, in_force=InForce(5, "1" * 64), at=NOW)
    _refused(got, Alarm.FORK, "follows sequence 5")
    data, sig = sign_manifest(manifest(seq=6, previous="1" * 64), publisher.private)
    assert judge_switch(data, sig, FILES, ring, in_force=InForce(5, "1" * 64), at=NOW).accepted


def test_an_expired_set_is_refused_and_the_one_in_force_raises_the_alarm(
    ring: Keyring, publisher: SigningKey
) -> None:
    m = manifest(created=NOW - timedelta(days=10), days=7)
    data, sig = sign_manifest(m, publisher.private)
    _refused(judge_switch(data, sig, FILES, ring, in_force=None, at=NOW), Alarm.EXPIRED,
             "expired at 2026-11-28T12:00:00Z")
    assert in_force_alarm(m, NOW) is Alarm.EXPIRED
    assert in_force_alarm(m, NOW - timedelta(days=4)) is None


@pytest.mark.parametrize(("files", "alarm", "says"), [
    ({**FILES, "lists/a.txt": b"lawful.example\n"}, Alarm.FILE_MISMATCH,
     "lists/a.txt does not match its SHA-256"),
    ({"acts.json": FILES["acts.json"]}, Alarm.FILE_MISSING, "lists/a.txt is listed but absent"),
    ({**FILES, "lists/extra.txt": b"x.example\n"}, Alarm.FILE_UNLISTED,
     "lists/extra.txt not listed in the manifest"),
])
def test_files_must_match_the_manifest_exactly(
    ring: Keyring, publisher: SigningKey, files: dict[str, bytes], alarm: Alarm, says: str
) -> None:
    data, sig = sign_manifest(manifest(), publisher.private)
    got = judge_switch(data, sig, files, ring, in_force=InForce(1, "0" * 64), at=NOW)
    _refused(got, alarm, says)


def test_a_tampered_manifest_is_refused(ring: Keyring, publisher: SigningKey) -> None:
    data, sig = sign_manifest(manifest(), publisher.private)
    forged = data.replace(digest(FILES["lists/a.txt"]).encode(), b"f" * 64)
    _refused(judge_switch(forged, sig, FILES, ring, in_force=None, at=NOW), Alarm.BAD_SIGNATURE,
             "manifest 2: bad signature")


def test_only_a_publisher_key_in_its_window_may_sign(
    tmp_path: Path, ring: Keyring, publisher: SigningKey, issuer: SigningKey
) -> None:
    m = manifest()
    data, sig = sign_manifest(m, issuer.private)
    _refused(judge_switch(data, sig, FILES, ring, in_force=None, at=NOW), Alarm.BAD_SIGNATURE,
             "key court (Example District Court) has the wrong role: it is not a publisher")
    data, sig = sign_manifest(m, new_key("x").private)
    _refused(judge_switch(data, sig, FILES, ring, in_force=None, at=NOW), Alarm.BAD_SIGNATURE,
             "signed by a key not in the keyring")
    revoked = write_keyring(tmp_path / "r.yaml", key_entry(
        publisher, roles="[publisher]", acts="", revoked="2026-11-30"))
    data, sig = sign_manifest(m, publisher.private)
    _refused(judge_switch(data, sig, FILES, revoked, in_force=None, at=NOW), Alarm.BAD_SIGNATURE,
             "key pub (Example District Court) was revoked on 2026-11-30")
    ended = write_keyring(tmp_path / "e.yaml", key_entry(
        publisher, roles="[publisher]", acts="", valid_until="2026-06-30"))
    _refused(judge_switch(data, sig, FILES, ended, in_force=None, at=NOW), Alarm.BAD_SIGNATURE,
             "expired on 2026-06-30; it cannot sign a set created 2026-12-01")


def test_an_order_signature_is_not_a_manifest_signature(
    ring: Keyring, publisher: SigningKey
) -> None:
    data = encode_manifest(manifest())
    sig = sign(data, publisher.private, "writ-order")
    _refused(judge_switch(data, sig, FILES, ring, in_force=None, at=NOW), Alarm.BAD_SIGNATURE,
             "signed for namespace 'writ-order', not 'writ-manifest'")


@pytest.mark.parametrize(("data", "says"), [
    (b"not json", "malformed manifest"),
    (b"[]", "not a writ manifest"),
    (b'{"writ_manifest":1}', "fields are"),
    (b'{"created":"2026-12-01T11:00:00Z","expires":"2026-12-08T11:00:00Z","files":{},'
     b'"previous":null,"sequence":"2","writ_manifest":1}', "sequence is a whole number"),
    (b'{"created":"2026-12-01T11:00:00Z","expires":"2026-12-08T11:00:00Z",'
     b'"files":{"../etc/passwd":"' + b"0" * 64 + b'"},"previous":null,"sequence":2,'
     b'"writ_manifest":1}', "is not a file name"),
    (b'{"created":"2026-12-01T11:00:00Z","expires":"2026-11-08T11:00:00Z","files":{},'
     b'"previous":null,"sequence":2,"writ_manifest":1}', "expires after created"),
    (b'{"writ_manifest":1,"created":"2026-12-01T11:00:00Z","expires":"2026-12-08T11:00:00Z",'
     b'"files":{},"previous":null,"sequence":2}', "not in canonical form"),
    (b"\xff\xfe", "malformed manifest"),
])
def test_malformed_manifests_are_refused_before_anything_else(data: bytes, says: str) -> None:
    with pytest.raises(ManifestError, match=says) as e:
        decode_manifest(data)
    assert e.value.alarm is Alarm.MALFORMED


def test_encoding_round_trips(publisher: SigningKey) -> None:
    m = manifest(previous="a" * 64)
    assert decode_manifest(encode_manifest(m)) == m


def test_a_rollback_is_a_new_higher_manifest_over_older_content(
    ring: Keyring, publisher: SigningKey
) -> None:
    old = {"acts.json": b'{"acts": ["old"]}'}
    current = InForce(7, "3" * 64)
    data, sig = sign_manifest(manifest(seq=8, previous="3" * 64, files=old), publisher.private)
    assert judge_switch(data, sig, old, ring, in_force=current, at=NOW).accepted


@needs_ssh_keygen
def test_manifest_signatures_verify_with_ssh_keygen(
    tmp_path: Path, ring: Keyring, publisher: SigningKey
) -> None:
    data, sig = sign_manifest(manifest(), publisher.private)
    (tmp_path / "manifest.json").write_bytes(data)
    (tmp_path / "manifest.json.sig").write_bytes(sig)
    (tmp_path / "allowed").write_text(allowed_signers(ring, NOW))
    got = ssh_verify(tmp_path / "allowed", "pub", tmp_path / "manifest.json",
                     tmp_path / "manifest.json.sig", namespace="writ-manifest",
                     at="20261201Z")
    assert got.returncode == 0, got.stderr + got.stdout
