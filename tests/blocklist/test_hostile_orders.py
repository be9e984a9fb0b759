"""Order sets that passed `orders check` but should not have (issue 12): an
amending act dated before the act it amends, ids differing only by case, YAML
1.1 booleans, symbolic links, and files built to flood the validator."""

from __future__ import annotations

from pathlib import Path

import pytest

from writ.blocklist import load_orders

BLOCK = """\
id: KZ-2015-0907-VH
court: Test District Court
case: "2-5678/2015"
issued: 2015-09-07
targets:
  - domain: videohost.example
"""

REVOKE = """\
id: KZ-2015-0907-VH-R
kind: revoke
amends: KZ-2015-0907-VH
court: Test Appeal Court
case: "2a-1/2016"
issued: {issued}
"""


def _errors(orders: Path) -> list[str]:
    return [str(e) for e in load_orders(orders).errors]


@pytest.mark.parametrize("kind", ["revoke", "restore"])
def test_an_amending_act_dated_before_the_act_it_amends_is_refused(
        orders: Path, kind: str) -> None:
    (orders / "a.yaml").write_text(BLOCK)
    (orders / "b.yaml").write_text(REVOKE.format(issued="2010-01-01")
                                   .replace("kind: revoke", f"kind: {kind}"))
    errors = _errors(orders)
    assert len(errors) == 1, errors
    assert errors[0].startswith("orders/b.yaml:6: issued: ")
    assert "2010-01-01" in errors[0]
    assert "2015-09-07" in errors[0]


def test_an_amending_act_dated_the_same_day_or_later_is_fine(orders: Path) -> None:
    (orders / "a.yaml").write_text(BLOCK)
    (orders / "b.yaml").write_text(REVOKE.format(issued="2015-09-07"))
    assert _errors(orders) == []


def test_ids_differing_only_by_case_are_refused(orders: Path) -> None:
    (orders / "a.yaml").write_text(BLOCK)
    (orders / "b.yaml").write_text(BLOCK.replace("KZ-2015-0907-VH", "kz-2015-0907-vh"))
    errors = _errors(orders)
    assert len(errors) == 1, errors
    assert errors[0].startswith("orders/b.yaml:1: id: ")
    assert "only by case" in errors[0]
    assert "orders/a.yaml:1" in errors[0]


@pytest.mark.parametrize("word", ["no", "yes", "on", "off", "No", "Y", "n"])
def test_yaml_1_1_booleans_are_refused(orders: Path, word: str) -> None:
    (orders / "a.yaml").write_text(BLOCK + f"    subdomains: {word}\n")
    errors = _errors(orders)
    if word in ("Y", "n"):  # plain text to PyYAML: "must be true or false" already
        assert errors
        return
    assert len(errors) == 1, errors
    assert errors[0].startswith("orders/a.yaml:7: targets[1].subdomains: ")
    assert "true or false" in errors[0]


def test_yaml_1_1_boolean_for_allow_public_suffix_is_refused(orders: Path) -> None:
    (orders / "a.yaml").write_text(BLOCK + "allow_public_suffix: yes\n")
    (err,) = _errors(orders)
    assert err.startswith("orders/a.yaml:7: allow_public_suffix: ")


def test_true_and_false_still_read(orders: Path) -> None:
    (orders / "a.yaml").write_text(BLOCK + "    subdomains: false\nallow_public_suffix: true\n")
    assert _errors(orders) == []


def test_a_symlinked_order_file_from_outside_is_refused_with_a_message(
        orders: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "a.yaml").write_text(BLOCK)
    (orders / "a.yaml").symlink_to(outside.resolve() / "a.yaml")
    (err,) = _errors(orders)
    assert err.startswith("orders/a.yaml:1: file: ")
    assert "outside the orders folder" in err


def test_a_symlinked_subfolder_from_outside_is_refused_with_the_same_message(
        orders: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "a.yaml").write_text(BLOCK)
    (orders / "sub").symlink_to(outside.resolve())
    (err,) = _errors(orders)
    assert err.startswith("orders/sub:1: file: ")
    assert "outside the orders folder" in err


def test_links_inside_the_folder_are_followed_and_each_file_read_once(orders: Path) -> None:
    # e.g. a Kubernetes ConfigMap: a.yaml -> ..data/a.yaml, ..data -> ..2026_12_01/
    real = orders / "..2026_12_01"
    real.mkdir()
    (real / "a.yaml").write_text(BLOCK)
    (orders / "..data").symlink_to("..2026_12_01")
    (orders / "a.yaml").symlink_to("..data/a.yaml")
    (orders / "again").symlink_to("..2026_12_01")  # a second way to the same file
    result = load_orders(orders)
    assert result.errors == ()
    assert [a.id for a in result.acts] == ["KZ-2015-0907-VH"]


def test_errors_per_file_are_capped(orders: Path) -> None:
    keys = "".join(f"unknown{i}: x\n" for i in range(5000))
    (orders / "a.yaml").write_text(BLOCK + keys)
    (orders / "b.yaml").write_text(BLOCK.replace("KZ-2015-0907-VH", "B-1") + "colour: red\n")
    errors = _errors(orders)
    a = [e for e in errors if e.startswith("orders/a.yaml")]
    assert len(a) == 101
    assert "4900 more errors in this file not shown" in a[-1]
    b = [e for e in errors if e.startswith("orders/b.yaml")]
    assert len(b) == 1  # another file's errors are not crowded out
    assert b[0].startswith("orders/b.yaml:7: colour: unknown field")
