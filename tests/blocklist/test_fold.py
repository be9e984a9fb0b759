"""Act folding over time (docs/design.md §2): what is in force at an instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.blocklist.builders import T0, act, domain, prefix, url
from writ.blocklist import Blocklist, fold

DAY = timedelta(days=1)

BLOCK = act(
    "EX-VH",
    targets=(domain("videohost.example"), domain("cdn.videohost.example"),
             url("http://news.example/watch?v=abc")),
)
RESTORE = act(
    "EX-VH-R", "restore", amends="EX-VH", effective=T0 + 21 * DAY,
    restores=(domain("videohost.example"),),
    keep_blocked=(url("https://videohost.example/v/136071201"),),
)
OTHER = act("OTHER-1", targets=(domain("videohost.example"),), effective=T0 + 30 * DAY)
REVOKE = act("EX-VH-A", "revoke", amends="EX-VH", effective=T0 + 60 * DAY)


def decide(acts: tuple, at: datetime, target: str) -> tuple[str, tuple[str, ...]]:
    index = Blocklist(acts).at(at)
    d = index.decide_url(target) if "://" in target else index.decide_name(target)
    return d.decision.value, d.orders


@pytest.mark.parametrize(
    ("acts", "days", "target", "expected"),
    [
        # before effective: nothing
        ((BLOCK,), -1, "videohost.example", ("allow", ())),
        # the block, host and subdomains
        ((BLOCK,), 0, "videohost.example", ("block", ("EX-VH",))),
        ((BLOCK,), 0, "www.videohost.example", ("block", ("EX-VH",))),
        # restoration lifts only the listed host target ...
        ((BLOCK, RESTORE), 21, "videohost.example", ("url-rules", ("EX-VH", "EX-VH-R"))),
        ((BLOCK, RESTORE), 21, "http://videohost.example/v/1", ("allow", ())),
        # ... keeps the named video blocked, with both acts as provenance
        ((BLOCK, RESTORE), 21, "http://videohost.example/v/136071201",
         ("block", ("EX-VH", "EX-VH-R"))),
        # ... and leaves the other host target and the URL target of the order in force
        ((BLOCK, RESTORE), 21, "cdn.videohost.example", ("block", ("EX-VH",))),
        ((BLOCK, RESTORE), 21, "http://news.example/watch?v=abc", ("block", ("EX-VH",))),
        # a restore never lifts what another order blocks
        ((BLOCK, RESTORE, OTHER), 30, "videohost.example", ("block", ("OTHER-1",))),
        ((BLOCK, RESTORE, OTHER), 30, "http://videohost.example/v/136071201",
         ("block", ("EX-VH", "EX-VH-R", "OTHER-1"))),
        # revoke lifts everything the order and its restorations put in force
        ((BLOCK, RESTORE, REVOKE), 60, "http://videohost.example/v/136071201", ("allow", ())),
        ((BLOCK, RESTORE, REVOKE), 60, "cdn.videohost.example", ("allow", ())),
        ((BLOCK, RESTORE, REVOKE), 60, "http://news.example/watch?v=abc", ("allow", ())),
        # ... but not another order's block
        ((BLOCK, RESTORE, OTHER, REVOKE), 60, "videohost.example", ("block", ("OTHER-1",))),
    ],
)
def test_folding_table(acts: tuple, days: int, target: str, expected: tuple) -> None:
    assert decide(acts, T0 + days * DAY, target) == expected


def test_restore_without_restores_lifts_every_host_target() -> None:
    r = act("EX-VH-R2", "restore", amends="EX-VH", effective=T0 + DAY, restores=None)
    assert decide((BLOCK, r), T0 + DAY, "cdn.videohost.example") == ("allow", ())
    assert decide((BLOCK, r), T0 + DAY, "videohost.example") == ("allow", ())
    # the URL target is not host-level: it stays
    assert decide((BLOCK, r), T0 + DAY, "news.example") == ("url-rules", ("EX-VH",))


def test_revoking_a_restoration_brings_the_block_back() -> None:
    undo = act("EX-VH-R-A", "revoke", amends="EX-VH-R", effective=T0 + 40 * DAY)
    acts = (BLOCK, RESTORE, undo)
    assert decide(acts, T0 + 39 * DAY, "videohost.example")[0] == "url-rules"
    assert decide(acts, T0 + 40 * DAY, "videohost.example") == ("block", ("EX-VH",))


def test_expiry_is_exclusive_and_ends_kept_rules() -> None:
    b = act("B", targets=(domain("a.example"),), expires=T0 + 10 * DAY)
    r = act("B-R", "restore", amends="B", effective=T0 + DAY,
            keep_blocked=(prefix("http://a.example/forum/"),))
    assert decide((b, r), T0 + 2 * DAY, "http://a.example/forum/x")[0] == "block"
    assert decide((b, r), T0 + 10 * DAY - timedelta(microseconds=1), "a.example")[0] == "url-rules"
    assert decide((b, r), T0 + 10 * DAY, "http://a.example/forum/x") == ("allow", ())


def test_next_change_is_the_next_effective_or_expires_instant() -> None:
    acts = (BLOCK, RESTORE, OTHER, REVOKE)
    assert fold(acts, T0).next_change == T0 + 21 * DAY
    assert fold(acts, T0 + 21 * DAY).next_change == T0 + 30 * DAY
    assert fold(acts, T0 + 60 * DAY).next_change is None
    assert Blocklist(acts).at(T0 + 25 * DAY).valid_until == T0 + 30 * DAY


def test_fold_needs_an_aware_instant() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        fold((BLOCK,), datetime(2015, 9, 8))


def test_time_zones_compare_as_instants() -> None:
    from zoneinfo import ZoneInfo

    almaty = ZoneInfo("Asia/Almaty")
    b = act("TZ", targets=(domain("tz.example"),),
            effective=datetime(2015, 9, 7, 0, 0, tzinfo=almaty))
    # 2015-09-06 18:00 UTC is 2015-09-07 00:00 at +06:00
    assert decide((b,), datetime(2015, 9, 6, 17, 59, tzinfo=UTC), "tz.example")[0] == "allow"
    assert decide((b,), datetime(2015, 9, 6, 18, 0, tzinfo=UTC), "tz.example")[0] == "block"
