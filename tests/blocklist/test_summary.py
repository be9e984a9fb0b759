"""`summary` as text or per language, and `confidential`: what the public pages show."""

from __future__ import annotations

from pathlib import Path

import pytest

from writ.blocklist import load_orders
from writ.blocklist.serial import act_from_dict, act_to_dict

HEAD = """\
id: A-1
court: Northgate District Court
case: "1/2015"
issued: 2015-09-07
targets:
  - domain: videohost.example
"""


def _load(tmp_path: Path, extra: str):  # type: ignore[no-untyped-def]
    (tmp_path / "a.yaml").write_text(HEAD + extra, encoding="utf-8")
    return load_orders(tmp_path)


def test_summary_per_language_and_confidential(tmp_path: Path) -> None:
    r = _load(tmp_path, "summary:\n  ru: Видео\n  kk: Бейне\n  en: Video\nconfidential: true\n")
    assert r.errors == ()
    (a,) = r.acts
    assert a.summaries == (("en", "Video"), ("kk", "Бейне"), ("ru", "Видео"))
    assert a.summary == "Video"
    assert a.summary_in("kk") == "Бейне"
    assert a.summary_in("de") == "Video"
    assert a.confidential is True
    assert act_from_dict(act_to_dict(a)) == a  # the Redis store keeps both


def test_plain_summary_still_works(tmp_path: Path) -> None:
    (a,) = _load(tmp_path, "summary: Video sharing\n").acts
    assert (a.summary, a.summaries, a.confidential) == ("Video sharing", (), False)


def test_without_en_the_first_language_is_the_plain_summary(tmp_path: Path) -> None:
    (a,) = _load(tmp_path, "summary: {ru: Видео, kk: Бейне}\n").acts
    assert a.summary == "Видео"


@pytest.mark.parametrize(("extra", "line", "field"), [
    ("summary:\n  EN!: x\n", 8, "summary.EN!"),
    ("summary:\n  en: [a, b]\n", 8, "summary.en"),
    ("summary:\n  en: ''\n", 8, "summary.en"),
    ("summary: {}\n", 7, "summary"),
    ("confidential: maybe\n", 7, "confidential"),
])
def test_bad_summary_or_confidential_names_the_line(
    tmp_path: Path, extra: str, line: int, field: str
) -> None:
    r = _load(tmp_path, extra)
    assert [(e.line, e.field) for e in r.errors] == [(line, field)]


def test_plain_orders_keep_their_blocklist_version(tmp_path: Path) -> None:
    """The new fields are serialised only when set: version_of (a hash of act_to_dict)
    of an order folder that uses neither is what it was before they existed."""
    (a,) = _load(tmp_path, "summary: Video sharing\n").acts
    d = act_to_dict(a)
    assert "summaries" not in d
    assert "confidential" not in d
