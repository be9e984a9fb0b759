"""With a keyring, an orders folder loads only when every act file and bulk
list is signed by an issuer key entitled to it. Each bad case names the
file, the key and what failed; a refused folder yields no acts."""

from __future__ import annotations

import os
from datetime import UTC
from pathlib import Path

import pytest

from tests.blocklist.signed.sshkeys import keygen, needs_ssh_keygen, public_line, ssh_sign
from tests.blocklist.signed.support import (
    SigningKey,
    key_entry,
    load_signed,
    new_key,
    order,
    write_keyring,
)
from writ.blocklist import load_orders
from writ.blocklist.signed.authorities import Keyring


@pytest.fixture
def issuer() -> SigningKey:
    return new_key("ex-court")


@pytest.fixture
def ring(tmp_path: Path, issuer: SigningKey) -> Keyring:
    return write_keyring(tmp_path / "keyring.yaml", key_entry(issuer))


def _signed_set(orders: Path, issuer: SigningKey) -> tuple[Path, Path]:
    lst = orders / "lists" / "mirrors.txt"
    lst.parent.mkdir()
    lst.write_text("mirror-one.example\nmirror-two.example\n")
    act = order(orders, "ex-1.yaml", "EX-1", targets="  - file: lists/mirrors.txt\n")
    issuer.sign(act)
    issuer.sign(lst)
    return act, lst


def _only_error(result_errors: tuple[object, ...]) -> str:
    assert len(result_errors) == 1, [str(e) for e in result_errors]
    return str(result_errors[0])


def test_a_valid_signed_set_loads_and_names_its_signers(
    orders: Path, issuer: SigningKey, ring: Keyring
) -> None:
    _signed_set(orders, issuer)
    result = load_signed(orders, ring)
    assert result.ok, [str(e) for e in result.errors]
    assert result.acts[0].signers == ("ex-court",)


def test_without_a_keyring_signatures_are_not_required(orders: Path) -> None:
    order(orders, "ex-1.yaml", "EX-1")
    assert load_orders(orders, UTC).ok


def test_a_tampered_byte_in_an_act_is_refused(
    orders: Path, issuer: SigningKey, ring: Keyring
) -> None:
    act, _ = _signed_set(orders, issuer)
    act.write_text(act.read_text().replace("2-1/2015", "2-1/2016"))
    result = load_signed(orders, ring)
    assert result.acts == ()
    assert _only_error(result.errors) == (
        "orders/ex-1.yaml: signature: ex-1.yaml.sig: bad signature: the file's bytes are not "
        "what the key signed (by key ex-court, Example District Court) [EX-1]")


def test_a_tampered_byte_in_a_list_is_refused(
    orders: Path, issuer: SigningKey, ring: Keyring
) -> None:
    _, lst = _signed_set(orders, issuer)
    lst.write_text(lst.read_text() + "innocent.example\n")
    err = _only_error(load_signed(orders, ring).errors)
    assert err.startswith("orders/lists/mirrors.txt: signature: mirrors.txt.sig: bad signature")


@pytest.mark.parametrize("which", ["act", "list"])
def test_a_missing_signature_is_refused(
    orders: Path, issuer: SigningKey, ring: Keyring, which: str
) -> None:
    act, lst = _signed_set(orders, issuer)
    Path(f"{act if which == 'act' else lst}.sig").unlink()
    err = _only_error(load_signed(orders, ring).errors)
    assert "signature: missing: no " in err
    assert ("ex-1.yaml.sig" if which == "act" else "mirrors.txt.sig") in err


def test_a_malformed_signature_is_refused(
    orders: Path, issuer: SigningKey, ring: Keyring
) -> None:
    act, _ = _signed_set(orders, issuer)
    Path(f"{act}.sig").write_text("-----BEGIN SSH SIGNATURE-----\nAAAA\n")
    err = _only_error(load_signed(orders, ring).errors)
    assert err.startswith("orders/ex-1.yaml: signature: ex-1.yaml.sig: not an SSH signature")


def test_an_unknown_key_is_refused(orders: Path, issuer: SigningKey, ring: Keyring) -> None:
    act, _ = _signed_set(orders, issuer)
    stranger = new_key("stranger")
    stranger.sign(act)
    err = _only_error(load_signed(orders, ring).errors)
    assert "signature: signed by a key not in the keyring keyring.yaml (SHA256:" in err


@pytest.mark.parametrize(("entry", "says"), [
    ({"valid_until": "2014-12-31"}, "key ex-court (Example District Court) expired on "
                                    "2014-12-31; it cannot sign EX-1 (issued 2015-09-07)"),
    ({"valid_from": "2026-01-01"}, "key ex-court (Example District Court) is valid from "
                                   "2026-01-01; it cannot sign EX-1 (issued 2015-09-07)"),
    ({"revoked": "2026-06-01"}, "key ex-court (Example District Court) was revoked on "
                                "2026-06-01"),
    ({"acts": '["XY-*"]'}, "key ex-court (Example District Court) is out of scope for EX-1 "
                           "(Example District Court): it may sign acts XY-*"),
    ({"courts": '["Other * Court"]'}, "is out of scope for EX-1 (Example District Court): "
                                      "it may sign acts EX-*; courts Other * Court"),
    ({"roles": "[publisher]"}, "key ex-court (Example District Court) has the wrong role: "
                               "it is not an issuer (roles: publisher)"),
])
def test_a_key_outside_its_window_scope_or_role_is_refused(
    tmp_path: Path, orders: Path, issuer: SigningKey, entry: dict[str, str], says: str
) -> None:
    ring = write_keyring(tmp_path / "keyring.yaml", key_entry(issuer, **entry))
    _signed_set(orders, issuer)
    result = load_signed(orders, ring)
    assert result.acts == ()
    assert len(result.errors) == 2  # the act and its list
    assert all(says in str(e) for e in result.errors), [str(e) for e in result.errors]


def test_a_revocation_in_the_future_does_not_count_yet(
    tmp_path: Path, orders: Path, issuer: SigningKey
) -> None:
    ring = write_keyring(tmp_path / "keyring.yaml", key_entry(issuer, revoked="2027-01-01"))
    _signed_set(orders, issuer)
    assert load_signed(orders, ring).ok


def test_a_list_swapped_between_two_authorities_orders_is_refused(
    tmp_path: Path, orders: Path, issuer: SigningKey
) -> None:
    """EX-1 (court A's key) and XY-1 (court B's key) each sign their list; an
    attacker swaps the two lists and their signatures."""
    other = new_key("xy-court")
    ring = write_keyring(tmp_path / "keyring.yaml", key_entry(issuer),
                         key_entry(other, acts='["XY-*"]', principal="Other Court"))
    (orders / "lists").mkdir()
    a, b = orders / "lists" / "a.txt", orders / "lists" / "b.txt"
    a.write_text("mirror.example\n")
    b.write_text("lawful-news.example\n")
    issuer.sign(order(orders, "ex-1.yaml", "EX-1", targets="  - file: lists/a.txt\n"))
    other.sign(order(orders, "xy-1.yaml", "XY-1", court="Other Court",
                     targets="  - file: lists/b.txt\n"))
    issuer.sign(a)
    other.sign(b)
    assert load_signed(orders, ring).ok
    for p in (a, b):
        p.rename(p.with_suffix(".tmp"))
        Path(f"{p}.sig").rename(p.with_suffix(".tmp.sig"))
    (orders / "lists" / "a.tmp").rename(b)
    (orders / "lists" / "a.tmp.sig").rename(f"{b}.sig")
    (orders / "lists" / "b.tmp").rename(a)
    (orders / "lists" / "b.tmp.sig").rename(f"{a}.sig")
    errors = [str(e) for e in load_signed(orders, ring).errors]
    assert errors == [
        "orders/lists/a.txt: signature: key xy-court (Other Court) is out of scope for EX-1 "
        "(Example District Court): it may sign acts XY-* [EX-1]",
        "orders/lists/b.txt: signature: key ex-court (Example District Court) is out of scope "
        "for XY-1 (Other Court): it may sign acts EX-* [XY-1]",
    ]


def test_an_issuer_cannot_lift_another_authoritys_block(
    tmp_path: Path, orders: Path, issuer: SigningKey
) -> None:
    other = new_key("xy-court")
    ring = write_keyring(tmp_path / "keyring.yaml", key_entry(issuer),
                         key_entry(other, acts='["XY-*"]', principal="Other Court"))
    other.sign(order(orders, "xy-1.yaml", "XY-1", court="Other Court"))
    issuer.sign(order(orders, "ex-9.yaml", "EX-9", targets="",
                      extra="kind: revoke\namends: XY-1\n"))
    err = _only_error(load_signed(orders, ring).errors)
    assert err == ("orders/ex-9.yaml: signature: key ex-court (Example District Court) is out "
                   "of scope for XY-1 (Other Court): it may sign acts EX-* [EX-9]")


@needs_ssh_keygen
def test_a_folder_signed_with_ssh_keygen_loads(tmp_path: Path, orders: Path) -> None:
    key = keygen(tmp_path, "court")
    (tmp_path / "keyring.yaml").write_text(f"""keys:
  - id: court-hw
    principal: Example District Court
    roles: [issuer]
    key: {public_line(key)}
    valid_from: 2015-01-01
    scope: {{acts: ["EX-*"]}}
""")
    from writ.blocklist.signed.authorities import load_keyring

    ring, errors = load_keyring(tmp_path / "keyring.yaml")
    assert ring is not None, errors
    ssh_sign(key, order(orders, "ex-1.yaml", "EX-1"))
    result = load_signed(orders, ring)
    assert result.ok, [str(e) for e in result.errors]
    assert result.acts[0].signers == ("court-hw",)


@pytest.mark.timeout(20)
def test_a_fifo_as_signature_is_refused_not_waited_on(
    orders: Path, issuer: SigningKey, ring: Keyring
) -> None:
    """A FIFO named FILE.sig would block a reader forever (and with it a node's reload)."""
    act, _ = _signed_set(orders, issuer)
    sig = Path(f"{act}.sig")
    sig.unlink()
    os.mkfifo(sig)
    err = _only_error(load_signed(orders, ring).errors)
    assert err == "orders/ex-1.yaml: signature: ex-1.yaml.sig is not a regular file [EX-1]"


@pytest.mark.timeout(20)
def test_a_fifo_named_like_an_order_is_reported_once_not_waited_on(
    orders: Path, issuer: SigningKey, ring: Keyring
) -> None:
    _signed_set(orders, issuer)
    os.mkfifo(orders / "trap.yaml")
    errors = [str(e) for e in load_signed(orders, ring).errors]
    assert errors == ["orders/trap.yaml:1: file: cannot read: not a regular file"]


def test_a_huge_signature_file_is_refused_unread(
    orders: Path, issuer: SigningKey, ring: Keyring
) -> None:
    act, _ = _signed_set(orders, issuer)
    with open(f"{act}.sig", "r+b") as f:
        f.truncate(4 << 30)  # sparse: 4 GiB that must never be read into memory
    err = _only_error(load_signed(orders, ring).errors)
    assert err == ("orders/ex-1.yaml: signature: ex-1.yaml.sig: larger than 64 KiB: "
                   "not a signature [EX-1]")


def _same_key_pair(orders: Path, issuer: SigningKey, header_a: str, header_b: str
                   ) -> tuple[Path, Path]:
    (orders / "lists").mkdir()
    a, b = orders / "lists" / "a.txt", orders / "lists" / "b.txt"
    a.write_text(header_a + "mirror.example\n")
    b.write_text(header_b + "lawful-news.example\n")
    issuer.sign(order(orders, "ex-1.yaml", "EX-1", targets="  - file: lists/a.txt\n"))
    issuer.sign(order(orders, "ex-2.yaml", "EX-2", targets="  - file: lists/b.txt\n"))
    issuer.sign(a)
    issuer.sign(b)
    return a, b


def _swap(a: Path, b: Path) -> None:
    tmp = a.with_suffix(".swap")
    for x, y in ((a, tmp), (b, a), (tmp, b)):
        x.rename(y)
        Path(f"{x}.sig").rename(f"{y}.sig")


def test_a_list_naming_its_acts_cannot_be_swapped_under_one_key(
    orders: Path, issuer: SigningKey, ring: Keyring
) -> None:
    """Both orders are by one key, so scope cannot tell the lists apart; a
    `# acts:` first line (covered by the list's signature) can."""
    a, b = _same_key_pair(orders, issuer, "# acts: EX-1\n", "# acts: EX-2\n")
    assert load_signed(orders, ring).ok
    _swap(a, b)
    errors = [str(e) for e in load_signed(orders, ring).errors]
    assert errors == [
        "orders/lists/a.txt: signature: the list is signed for acts EX-2 (its `# acts:` "
        "line), not for EX-1 [EX-1]",
        "orders/lists/b.txt: signature: the list is signed for acts EX-1 (its `# acts:` "
        "line), not for EX-2 [EX-2]",
    ]


def test_lists_without_an_acts_line_stay_interchangeable_under_one_key(
    orders: Path, issuer: SigningKey, ring: Keyring
) -> None:
    """The documented limit (docs/regulator.md §10): the key may sign either list."""
    a, b = _same_key_pair(orders, issuer, "", "")
    _swap(a, b)
    assert load_signed(orders, ring).ok
