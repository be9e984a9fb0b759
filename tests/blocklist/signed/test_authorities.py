"""The keyring file: parsed into frozen values, every problem with file:line."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tests.blocklist.signed.support import key_entry, new_key, write_keyring
from writ.blocklist.signed.authorities import Role, Scope, Subject, load_keyring

PUB = new_key("k").public_line


def test_a_keyring_reads_into_frozen_keys(tmp_path: Path) -> None:
    k = new_key("ex-court")
    ring = write_keyring(tmp_path / "r.yaml", key_entry(k, courts='["Example * Court"]'))
    (key,) = ring.keys
    assert (key.id, key.principal, key.roles) == ("ex-court", "Example District Court",
                                                  frozenset({Role.ISSUER}))
    assert (key.valid_from, key.valid_until, key.revoked) == (
        date(2010, 1, 1), date(2030, 12, 31), None)
    assert key.scope == Scope(("EX-*",), ("Example * Court",))
    assert key.fingerprint.startswith("SHA256:")
    with pytest.raises(AttributeError):
        key.id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(("scope", "act", "court", "covered"), [
    (Scope(("EX-*",)), "EX-1", "Any Court", True),
    (Scope(("EX-*",)), "ex-1", "Any Court", False),  # case matters: ids are exact
    (Scope(("EX-201?-*",)), "EX-2015-1", "C", True),
    (Scope((), ("Northgate *",)), "XY-1", "Northgate District Court", True),
    (Scope(("EX-*",), ("Northgate *",)), "EX-1", "Riverside Court", False),  # both must match
    (Scope(("EX-*", "XY-*")), "XY-9", "C", True),
])
def test_scope(scope: Scope, act: str, court: str, covered: bool) -> None:
    assert scope.covers(act, court) is covered


def test_the_window_is_inclusive_at_both_ends(tmp_path: Path) -> None:
    k = new_key("k")
    (key,) = write_keyring(tmp_path / "r.yaml", key_entry(
        k, valid_from="2015-01-01", valid_until="2015-12-31")).keys
    at = datetime(2026, 1, 1, tzinfo=UTC)

    def ok(d: date) -> bool:
        return key.problem(Role.ISSUER, [Subject("EX-1", "C", d)], at) is None

    assert [ok(date(2014, 12, 31)), ok(date(2015, 1, 1)), ok(date(2015, 12, 31)),
            ok(date(2016, 1, 1))] == [False, True, True, False]


def test_revocation_counts_from_its_day_at_load_time(tmp_path: Path) -> None:
    (key,) = write_keyring(tmp_path / "r.yaml", key_entry(new_key("k"),
                                                          revoked="2026-06-01")).keys
    s = [Subject("EX-1", "C", date(2015, 1, 1))]
    assert key.problem(Role.ISSUER, s, datetime(2026, 5, 31, 23, 59, tzinfo=UTC)) is None
    assert key.problem(Role.ISSUER, s, datetime(2026, 6, 1, tzinfo=UTC)) is not None


@pytest.mark.parametrize(("text", "errors"), [
    ("", ["r.yaml:1: keys: a keyring is one mapping with a `keys:` list"]),
    ("keys: []\n", ["r.yaml:1: keys: must be a non-empty list"]),
    ("keys:\n  - just text\n", ["r.yaml:2: keys[1]: each key is a mapping (id: …, key: …)"]),
    ("keys:\n  - id: k\n", [
        "r.yaml:2: keys[1].principal: required", "r.yaml:2: keys[1].roles: required",
        "r.yaml:2: keys[1].key: required", "r.yaml:2: keys[1].valid_from: required"]),
    (f"keys:\n  - id: a b\n    principal: P\n    roles: [issuer]\n    key: {PUB}\n"
     "    valid_from: 2020-01-01\n    scope: {acts: ['*']}\n    colour: red\n", [
         "r.yaml:8: keys[1].colour: unknown field (known: id, principal, roles, key, "
         "valid_from, valid_until, scope, revoked)",
         "r.yaml:2: keys[1].id: 'a b': use 1-64 of A-Z a-z 0-9 . _ -"]),
    (f"keys:\n  - id: k\n    principal: P\n    roles: [issuer]\n    key: {PUB}\n"
     "    valid_from: 2020-01-01\n    valid_until: 2019-01-01\n    scope: {acts: ['*']}\n",
     ["r.yaml:7: keys[1].valid_until: 2019-01-01 is before valid_from 2020-01-01"]),
    (f"keys:\n  - id: k\n    principal: P\n    roles: [issuer]\n    key: {PUB}\n"
     "    valid_from: 2020-01-01T10:00:00\n    scope: {acts: ['*']}\n",
     ["r.yaml:6: keys[1].valid_from: must be a date (YYYY-MM-DD)"]),
    (f"keys:\n  - id: k\n    principal: P\n    roles: [issuer]\n    key: {PUB}\n"
     "    valid_from: 2020-01-01\n",
     ["r.yaml:2: keys[1].scope: required for an issuer: the acts it may sign "
      "(acts: [\"EX-*\"], courts: […])"]),
    (f"keys:\n  - id: k\n    principal: P\n    roles: [issuer]\n    key: {PUB}\n"
     "    valid_from: 2020-01-01\n    scope: {acts: [], judges: [x]}\n", [
         "r.yaml:7: keys[1].scope.acts: a non-empty list of text patterns",
         "r.yaml:7: keys[1].scope.judges: unknown field (known: acts, courts)"]),
    ("keys: [\n", None),  # YAML syntax: reported with its line, whatever PyYAML says
])
def test_bad_keyrings_name_file_line_and_field(
    tmp_path: Path, text: str, errors: list[str] | None
) -> None:
    (tmp_path / "r.yaml").write_text(text)
    ring, got = load_keyring(tmp_path / "r.yaml", "r.yaml")
    assert ring is None
    if errors is None:
        assert got
        assert all(str(e).startswith("r.yaml:") for e in got)
    else:
        assert [str(e) for e in got] == errors


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    a, b = new_key("same"), new_key("same")
    (tmp_path / "r.yaml").write_text("keys:" + key_entry(a) + key_entry(b) + "\n")
    ring, got = load_keyring(tmp_path / "r.yaml", "r.yaml")
    assert ring is None
    assert [str(e) for e in got] == ["r.yaml:11: keys[2].id: duplicate id: already used at "
                                     "line 2"]
