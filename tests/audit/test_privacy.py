"""Client addresses never enter the chain raw unless the policy says so (issue 3, §4)."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.audit.support import decide, files, policy, records
from writ.audit import AuditLog, ClientMasker
from writ.policies import ClientPrivacy

DAY1 = datetime(2015, 9, 7, 12, tzinfo=UTC).timestamp()
DAY2 = datetime(2015, 9, 8, 12, tzinfo=UTC).timestamp()


def test_pseudonyms_are_stable_for_a_key(tmp_path: Path) -> None:
    key = tmp_path / "client.key"
    a = ClientMasker(ClientPrivacy.PSEUDONYMISE, key)
    b = ClientMasker(ClientPrivacy.PSEUDONYMISE, key)  # a restart reads the same key
    assert a.mask("192.0.2.7", DAY1) == b.mask("192.0.2.7", DAY2)
    assert a.mask("192.0.2.7", DAY1)[0] == a.mask("192.0.2.7:53000", DAY1)[0]  # port ignored
    assert a.mask("192.0.2.7", DAY1)[0] != a.mask("192.0.2.8", DAY1)[0]
    pseudonym, key_id = a.mask("2001:db8::1", DAY1)
    assert len(pseudonym) == 32
    assert "2001" not in pseudonym
    assert key_id is not None


def test_pseudonyms_differ_across_keys(tmp_path: Path) -> None:
    a = ClientMasker(ClientPrivacy.PSEUDONYMISE, tmp_path / "a.key")
    b = ClientMasker(ClientPrivacy.PSEUDONYMISE, tmp_path / "b.key")
    assert a.mask("192.0.2.7", DAY1)[0] != b.mask("192.0.2.7", DAY1)[0]
    assert a.mask("192.0.2.7", DAY1)[1] != b.mask("192.0.2.7", DAY1)[1]


def test_the_key_file_is_created_private(tmp_path: Path) -> None:
    key = tmp_path / "state" / "client.key"
    ClientMasker(ClientPrivacy.PSEUDONYMISE, key).mask("192.0.2.7", DAY1)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


@pytest.mark.parametrize(("rotation", "id1", "id2"),
                         [("daily", "2015-09-07", "2015-09-08"),
                          ("weekly", "2015-W37", "2015-W37")])
def test_rotating_keys_name_their_period(tmp_path: Path, rotation: str, id1: str,
                                         id2: str) -> None:
    m = ClientMasker(ClientPrivacy.PSEUDONYMISE, tmp_path / "client.key", rotation)
    p1, k1 = m.mask("192.0.2.7", DAY1)
    p2, k2 = m.mask("192.0.2.7", DAY2)
    assert (k1, k2) == (id1, id2)
    assert (p1 == p2) == (id1 == id2)  # a new key unlinks the same client across periods
    assert (tmp_path / f"client.key.{id1}").exists()


def test_truncate_and_raw(tmp_path: Path) -> None:
    t = ClientMasker(ClientPrivacy.TRUNCATE)
    assert t.mask("192.0.2.77", DAY1) == ("192.0.2.0/24", None)
    assert t.mask("[2001:db8:1:2::9]:443", DAY1) == ("2001:db8:1::/48", None)
    assert t.mask("not an address", DAY1) == ("invalid", None)
    assert ClientMasker(ClientPrivacy.RAW).mask("192.0.2.77", DAY1) == ("192.0.2.77", None)


def test_a_bad_rotation_name_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="key_rotation"):
        ClientMasker(ClientPrivacy.PSEUDONYMISE, tmp_path / "k", "hourly")


def test_the_log_holds_no_raw_address_by_default(tmp_path: Path) -> None:
    with AuditLog(policy(tmp_path), "n") as log:
        for i in range(5):
            decide(log, i)
    text = files(tmp_path)[0].read_text()
    assert "192.0.2." not in text
    assert all(r.get("client_key") for r in records(files(tmp_path)[0])[1:-1])


def test_truncate_policy_in_the_log(tmp_path: Path) -> None:
    with AuditLog(policy(tmp_path, client_privacy=ClientPrivacy.TRUNCATE), "n") as log:
        decide(log, 7)
    rec = records(files(tmp_path)[0])[1]
    assert (rec["client"], rec["client_key"]) == ("192.0.2.0/24", None)
