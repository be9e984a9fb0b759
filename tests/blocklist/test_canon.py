"""Canonical names and URLs (docs/design.md §3): every spelling of a resource is one form."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from writ.blocklist.canon import (
    CanonError,
    canonical_host,
    canonical_name,
    canonical_path,
    canonical_url,
    separator_reading,
)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("videohost.example", "videohost.example"),
        ("VideoHost.EXAMPLE", "videohost.example"),
        ("videohost.example.", "videohost.example"),
        ("  videohost.example  ", "videohost.example"),
        ("пример.қаз", "xn--e1afmkfd.xn--80ao21a"),
        ("ПРИМЕР.ҚАЗ.", "xn--e1afmkfd.xn--80ao21a"),
        ("xn--e1afmkfd.xn--80ao21a", "xn--e1afmkfd.xn--80ao21a"),
        ("faß.example", "xn--fa-hia.example"),  # UTS-46 non-transitional: ß stays
        ("_dmarc.mail.example", "_dmarc.mail.example"),
        ("a-b.c-d.example", "a-b.c-d.example"),
    ],
)
def test_names_are_canonicalised(raw: str, canonical: str) -> None:
    assert canonical_name(raw) == canonical


@pytest.mark.parametrize(
    "bad",
    ["", ".", "a..example", "a..", ".a", "..", "example..", "a.-b.example", "a-", "-",
     "-lead.example", "trail-.example", "a" * 64 + ".example",
     ("a" * 60 + ".") * 5 + "example", "sp ace.example", "xn--zz-.example", "x@y.example"],
)
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(CanonError):
        canonical_name(bad)


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("http://videohost.example", "videohost.example/"),
        ("https://videohost.example/", "videohost.example/"),
        ("HTTPS://VIDEOHOST.EXAMPLE/v/1", "videohost.example/v/1"),
        ("http://user:secret@videohost.example/v/1", "videohost.example/v/1"),
        ("http://videohost.example:80/v/1", "videohost.example/v/1"),
        ("https://videohost.example:443/v/1", "videohost.example/v/1"),
        ("http://videohost.example:8080/v/1", "videohost.example/v/1"),
        ("http://videohost.example/v/1#comments", "videohost.example/v/1"),
        ("http://videohost.example/v/1/", "videohost.example/v/1"),
        ("http://videohost.example//v///1", "videohost.example/v/1"),
        ("http://videohost.example/x/./v/../../v/1", "videohost.example/v/1"),
        ("http://videohost.example/../../v/1", "videohost.example/v/1"),
        ("http://videohost.example/%76/%31", "videohost.example/v/1"),
        ("http://videohost.example/v%2f1", "videohost.example/v%2F1"),
        ("http://videohost.example/%7Euser", "videohost.example/~user"),
        ("http://videohost.example/a b", "videohost.example/a%20b"),
        ("http://videohost.example/путь", "videohost.example/%D0%BF%D1%83%D1%82%D1%8C"),
        ("http://videohost.example/watch?v=abc", "videohost.example/watch?v=abc"),
        ("http://videohost.example/watch?v=%61bc", "videohost.example/watch?v=abc"),
        ("http://videohost.example/s?q=a+b", "videohost.example/s?q=a%20b"),
        ("http://videohost.example/s?q=a%20b", "videohost.example/s?q=a%20b"),
        ("http://пример.қаз/", "xn--e1afmkfd.xn--80ao21a/"),
        ("http://[::1]:8080/x", "[::1]/x"),
    ],
)
def test_urls_are_canonicalised(raw: str, canonical: str) -> None:
    assert str(canonical_url(raw)) == canonical


@pytest.mark.parametrize(
    "bad",
    ["videohost.example/v/1", "://videohost.example", "http:///v/1", "http://bad..example/",
     "http://videohost.example/%zz", "http://videohost.example/%4", "http://h.example:8o/",
     "http://[::1/x", "http://h.example/" + "a" * 20000],
)
def test_bad_urls_are_refused(bad: str) -> None:
    with pytest.raises(CanonError):
        canonical_url(bad)


def test_paths_resolve_dot_segments_at_root() -> None:
    assert canonical_path("") == "/"
    assert canonical_path("/..") == "/"
    assert canonical_path("/a/b/../../..//c/.") == "/c"


# -- properties -------------------------------------------------------------

label = st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=12)
names = st.lists(label, min_size=1, max_size=4).map(lambda ls: ".".join(ls) + ".example")
segment = st.text(alphabet=string.ascii_letters + string.digits + "-._~!$&'()*+,;=:@ é/",
                  max_size=10)
paths = st.lists(segment, max_size=5).map(lambda ss: "/" + "/".join(ss))


def _url_or_none(u: str) -> str | None:
    try:
        return str(canonical_url(u))
    except CanonError:
        return None


@given(names)
def test_name_canonicalisation_is_idempotent(name: str) -> None:
    once = canonical_name(name)
    assert canonical_name(once) == once
    assert canonical_name(name.upper() + ".") == once


def _name_or_error(name: str) -> str:
    try:
        return canonical_name(name)
    except CanonError:
        return "<refused>"


# spellings near the edges of the fast path: dots, hyphens, case, length, non-ASCII
_pieces = st.sampled_from(["a", "Z", "0", ".", ".", "-", "_", " ", "\t", "é", "xn--",
                           "x" * 20, "y" * 63])


_fastish = st.sampled_from(["a", "Z", "0", ".", ".", "-", "x" * 20, "y" * 30, "xn--"])


@settings(max_examples=1000)
@given(st.one_of(st.lists(_pieces, max_size=12), st.lists(_fastish, max_size=8)).map("".join))
def test_the_fast_spelling_path_agrees_with_the_full_check(name: str) -> None:
    # a leading space always takes the full path (strip, IDNA, label checks)
    assert _name_or_error(name) == _name_or_error(" " + name)


@given(names, paths)
def test_url_canonicalisation_is_idempotent(host: str, path: str) -> None:
    first = _url_or_none(f"http://{host}{path}")
    if first is not None:
        assert _url_or_none("http://" + first) == first


@given(names, paths, st.sampled_from(["http", "https", "HTTP"]),
       st.sampled_from(["", ":80", ":443"]), st.sampled_from(["", "u:p@"]),
       st.sampled_from(["", "#f"]))
def test_equivalent_spellings_are_one_url(host: str, path: str, scheme: str, port: str,
                                          userinfo: str, frag: str) -> None:
    plain = _url_or_none(f"http://{host}{path}")
    if plain is None:
        return
    # percent-encode every unreserved character of the path: still the same resource
    encoded = "".join(f"%{ord(c):02x}" if c.isascii() and c.isalnum() else c for c in path)
    variant = f"{scheme}://{userinfo}{host.upper()}{port}{encoded}{frag}"
    assert _url_or_none(variant) == plain


@given(names, st.text(max_size=40))
def test_any_path_canonicalises_idempotently_or_is_refused(host: str, path: str) -> None:
    """Arbitrary bytes in a path (stray %, controls, non-ASCII): refused or stable."""
    first = _url_or_none(f"http://{host}/{path}")
    if first is not None:
        assert _url_or_none("http://" + first) == first


# -- IP hosts as browsers read them (WHATWG URL host parser) -----------------

@pytest.mark.parametrize("spelling", ["127.0.0.2", "2130706434", "0x7f.0.0.2", "0177.0.0.2",
                                      "127.2", "127.0.2", "0x7F000002", "017700000002",
                                      "127.0.0.2.", "[::ffff:127.0.0.2]", "[::FFFF:7f00:2]"])
def test_ipv4_spellings_are_one_host(spelling: str) -> None:
    assert canonical_host(spelling) == "127.0.0.2"
    assert canonical_url(f"http://{spelling}:8080/phish/login").host == "127.0.0.2"


@pytest.mark.parametrize("spelling", ["[0:0:0:0:0:0:0:1]", "[::1]", "[0::01]", "[::0:1]"])
def test_ipv6_spellings_are_one_host(spelling: str) -> None:
    assert canonical_host(spelling) == "[::1]"


@pytest.mark.parametrize("bad", ["256.0.0.1", "1.2.3.4.5", "0x100.0.0.1", "1.example.123",
                                 "09.0.0.1", "4294967296", "[::1%25eth0]", "[1::2::3]"])
def test_invalid_ip_hosts_are_refused(bad: str) -> None:
    with pytest.raises(CanonError):
        canonical_host(bad)


def test_backslash_is_a_path_separator_as_in_browsers() -> None:
    # Browsers read `\` as `/` in http(s) URLs: the host is good.example.
    assert canonical_url("https://good.example\\@evil.example/").host == "good.example"
    assert str(canonical_url("http://h.example/a\\b")) == "h.example/a/b"


@pytest.mark.parametrize(("path", "reading"), [
    ("/v%2F1001", "/v/1001"), ("/channel%2Fbad/x", "/channel/bad/x"),
    ("/channel/bad%2Fx", "/channel/bad/x"), ("/v/1001;jsessionid=x", "/v/1001"),
    ("/a;p/b;q", "/a/b"), ("/a%5Cb", "/a/b"), ("/plain/path", None), ("/a%2F..%2Fb", "/b"),
])
def test_separator_reading(path: str, reading: str | None) -> None:
    assert separator_reading(canonical_path(path)) == reading


def test_lenient_request_hosts_keep_names_strict_idna_refuses() -> None:
    with pytest.raises(CanonError):
        canonical_host("foo-.other.example")
    assert canonical_host("foo-.other.example", lenient=True) == "foo-.other.example"
    with pytest.raises(CanonError):
        canonical_host("bad..example", lenient=True)


octets = st.integers(min_value=0, max_value=255)


def _spell(n: int, how: str) -> str:
    return {"dec": str(n), "hex": hex(n), "oct": "0" + oct(n)[2:] if n else "0"}[how]


@given(st.integers(min_value=0, max_value=2**32 - 1),
       st.sampled_from([1, 2, 3, 4]), st.lists(st.sampled_from(["dec", "hex", "oct"]),
                                              min_size=4, max_size=4))
def test_property_ipv4_number_forms(value: int, nparts: int, hows: list[str]) -> None:
    """Every WHATWG IPv4 form (1-4 parts, each decimal, hex or octal, the last
    filling the remaining bytes) reads as the one dotted-decimal address."""
    b = value.to_bytes(4, "big")
    head = list(b[: nparts - 1])
    last = int.from_bytes(b[nparts - 1 :], "big")
    parts = [_spell(n, h) for n, h in zip([*head, last], hows, strict=False)]
    assert canonical_host(".".join(parts)) == ".".join(str(x) for x in b)


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_property_ipv6_forms(value: int) -> None:
    import ipaddress

    a = ipaddress.IPv6Address(value)
    expected = str(a.ipv4_mapped) if a.ipv4_mapped else f"[{a.compressed}]"
    assert canonical_host(f"[{a.exploded}]") == expected
    assert canonical_host(f"[{a.compressed.upper()}]") == expected
