"""Choosing the page's language, and the register's per-client rate limit."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from writ.pages.i18n import catalogs, parse_accept_language
from writ.web.ratelimit import RateLimiter


@pytest.mark.parametrize(("header", "tags"), [
    ("kk-KZ,kk;q=0.9,ru;q=0.8,en;q=0.5", ["kk-kz", "kk", "ru", "en"]),
    ("en;q=0.1, ru", ["ru", "en"]),
    ("ru;q=0, en", ["en"]),  # q=0: not acceptable (RFC 9110 §12.4.2)
    ("ru;q=abc, en;q=2", []),  # unreadable and out-of-range weights drop the item
    ("<script>, en", ["en"]),
    ("", []),
])
def test_parse_accept_language(header: str, tags: list[str]) -> None:
    assert parse_accept_language(header) == tags


@given(st.text(max_size=2000))
def test_any_header_chooses_a_language_we_have(header: str) -> None:
    cats = catalogs(None, "ru")
    assert cats.choose(header) in cats.languages


def test_a_hostile_header_is_read_only_so_far() -> None:
    assert len(parse_accept_language(",".join(["en"] * 100_000))) == 32


def test_choose() -> None:
    cats = catalogs(None, "en")
    assert cats.choose("kk-KZ") == "kk"
    assert cats.choose("de, *;q=0.5") == "en"
    assert cats.choose("ru", override="kk") == "kk"
    assert cats.choose("ru", override="xx") == "ru"  # an unknown ?lang= is ignored


def test_rate_limiter_refills_and_stays_bounded() -> None:
    rl = RateLimiter(per_minute=2, max_clients=100)
    assert [rl.take("a", 0.0) for _ in range(3)][:2] == [0.0, 0.0]
    assert rl.take("a", 0.0) > 0  # empty: wait
    assert rl.take("b", 0.0) == 0.0  # another client has its own bucket
    assert rl.take("a", 30.0) == 0.0  # one token back after 30 s at 2 a minute
    for i in range(10_000):
        rl.take(f"flood-{i}", 1.0)
    assert len(rl._buckets) <= 100
