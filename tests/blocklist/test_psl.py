"""Our fast public-suffix check agrees with the publicsuffixlist package."""

from __future__ import annotations

from publicsuffixlist import PSLFILE, PublicSuffixList

from writ.blocklist._psl import candidates, is_public
from writ.blocklist.canon import CanonError, canonical_name


def _names() -> list[str]:
    names: list[str] = []
    with open(PSLFILE, encoding="utf-8") as f:
        for raw in f:
            rule = raw.strip().split(" ")[0]
            if not rule or rule.startswith("//"):
                continue
            rule = rule.lstrip("!").removeprefix("*.")
            try:
                rule = canonical_name(rule)
            except CanonError:
                continue
            names += [rule, f"x.{rule}", f"www.{rule}", f"a.b.{rule}"]
    return names


def test_agrees_with_publicsuffixlist_on_every_rule_and_its_children() -> None:
    reference = PublicSuffixList()
    names = _names()
    assert len(names) > 20_000
    disagree = [n for n in names if is_public(n) != reference.is_public(n)]
    assert disagree == []


def test_examples() -> None:
    assert [is_public(n) for n in ("com", "example", "co.uk", "a.co.uk", "foo.ck", "www.ck",
                                   "kobe.jp", "city.kobe.jp", "github.io", "x.github.io")] == [
        True, True, True, False, True, False, True, False, True, False]


def test_candidates_finds_exactly_the_public_ones() -> None:
    names = ["a.example", "co.uk", "x.co.uk", "foo.ck", "www.ck", "uk"]
    assert candidates(names) == ["co.uk", "foo.ck", "uk"]
