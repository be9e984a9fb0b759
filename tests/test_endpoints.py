"""HOST:PORT, as every flag, policy key and upstream spells an address."""

from __future__ import annotations

import re

import pytest

from writ.endpoints import format_endpoint, split_hostport


@pytest.mark.parametrize(
    ("text", "default", "expected"),
    [
        ("127.0.0.1:5300", None, ("127.0.0.1", 5300)),
        ("[::1]:5300", None, ("::1", 5300)),
        ("localhost:8080", None, ("localhost", 8080)),
        (" 127.0.0.1:0 ", None, ("127.0.0.1", 0)),  # port 0: the system picks one
        ("127.0.0.1", 53, ("127.0.0.1", 53)),
        ("::1", 53, ("::1", 53)),  # a bare IPv6 address takes the default port
        ("[::1]", 53, ("::1", 53)),
        ("[fe80::1%eth0]:53", None, ("fe80::1%eth0", 53)),
    ],
)
def test_addresses_split(text: str, default: int | None, expected: tuple[str, int]) -> None:
    assert split_hostport(text, default) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("nope", "missing port"),
        ("::1:53", "missing port"),  # ambiguous without brackets
        ("[::1", "unterminated '['"),
        ("[::1]53", "expected ]:PORT"),
        (":53", "no host"),
        ("127.0.0.1:x", "port must be a number from 0 to 65535"),
        ("127.0.0.1:65536", "port must be a number from 0 to 65535"),
        ("127.0.0.1:-1", "port must be a number"),
    ],
)
def test_bad_addresses_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)) as e:
        split_hostport(text)
    assert repr(text) in str(e.value)


def test_a_lowest_port_is_enforced() -> None:
    with pytest.raises(ValueError, match="from 1 to 65535"):
        split_hostport("127.0.0.1:0", lowest_port=1)


@pytest.mark.parametrize(("host", "port"), [("127.0.0.1", 53), ("::1", 5300), ("localhost", 1)])
def test_formatting_round_trips(host: str, port: int) -> None:
    assert split_hostport(format_endpoint(host, port)) == (host, port)
