"""Redis URLs: Sentinel parsing and password redaction (no network)."""

from __future__ import annotations

import pytest

from writ.blocklist.stores import connect, redact
from writ.blocklist.stores.connection import SentinelTarget, parse_sentinel_url


@pytest.mark.parametrize(("url", "want"), [
    ("redis+sentinel://127.0.0.1:26379/mymaster",
     SentinelTarget((("127.0.0.1", 26379),), "mymaster", 0, None, None, False)),
    ("rediss+sentinel://writ:pw@127.0.0.1:1,127.0.0.2:2/svc/3",
     SentinelTarget((("127.0.0.1", 1), ("127.0.0.2", 2)), "svc", 3, "writ", "pw", True)),
    ("redis+sentinel://[::1]:26379/m",
     SentinelTarget((("::1", 26379),), "m", 0, None, None, False)),
])
def test_sentinel_urls(url: str, want: SentinelTarget) -> None:
    assert parse_sentinel_url(url) == want


@pytest.mark.parametrize("url", ["redis+sentinel://127.0.0.1:26379/", "redis+sentinel://h:x/m"])
def test_bad_sentinel_urls(url: str) -> None:
    with pytest.raises(ValueError, match="sentinel"):
        parse_sentinel_url(url)


def test_redact_hides_the_password_only() -> None:
    assert redact("redis://writ:s3cret@127.0.0.1:6380/0") == "redis://writ:***@127.0.0.1:6380/0"
    assert redact("redis://127.0.0.1:6380/0") == "redis://127.0.0.1:6380/0"


def test_connect_refuses_foreign_schemes() -> None:
    with pytest.raises(ValueError, match="not a Redis URL"):
        connect("http://127.0.0.1:6380")
