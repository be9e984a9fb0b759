"""Matching (docs/design.md §3): the compiled index answers names and URLs with provenance."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.blocklist.builders import T0, act, domain, prefix, url
from writ.blocklist import Blocklist, CanonError, Verdict

ACTS = (
    act("A", targets=(
        domain("videohost.example"),
        domain("www.forum.example", subdomains=False),
        url("http://news.example/watch?v=abc"),
        url("http://news.example/article/7/"),
        prefix("http://news.example/forum/"),
        prefix("http://root.example/"),
        domain("пример.қаз"),
    )),
    act("B", targets=(
        domain("cdn.videohost.example"),
        url("https://news.example/watch?v=abc&list=9"),
    )),
)
INDEX = Blocklist(ACTS).at(T0)


@pytest.mark.parametrize(
    ("name", "decision", "orders", "rule"),
    [
        ("videohost.example", "block", ("A",), "domain videohost.example"),
        ("VIDEOHOST.example.", "block", ("A",), "domain videohost.example"),
        ("a.b.videohost.example", "block", ("A",), "domain videohost.example"),
        ("cdn.videohost.example", "block", ("A", "B"), "domain cdn.videohost.example"),
        ("x.cdn.videohost.example", "block", ("A", "B"), "domain cdn.videohost.example"),
        ("othervideohost.example", "allow", (), None),
        ("example", "allow", (), None),
        ("www.forum.example", "block", ("A",), "domain www.forum.example (exact)"),
        ("m.www.forum.example", "allow", (), None),
        ("forum.example", "allow", (), None),
        ("news.example", "url-rules", ("A", "B"), "url rules for news.example"),
        ("www.news.example", "allow", (), None),
        ("пример.қаз", "block", ("A",), "domain xn--e1afmkfd.xn--80ao21a"),
        ("sub.xn--e1afmkfd.xn--80ao21a", "block", ("A",), "domain xn--e1afmkfd.xn--80ao21a"),
    ],
)
def test_name_decisions(name: str, decision: str, orders: tuple, rule: str | None) -> None:
    d = INDEX.decide_name(name)
    assert (d.decision.value, d.orders, d.rule) == (decision, orders, rule)


@pytest.mark.parametrize(
    ("target", "decision", "orders"),
    [
        # url rule: query parameters of the rule must be present, order/extra do not matter
        ("http://news.example/watch?v=abc", "block", ("A",)),
        ("https://news.example/watch?t=9&v=abc", "block", ("A",)),
        ("http://news.example/watch?v=abcd", "allow", ()),
        ("http://news.example/watch", "allow", ()),
        ("http://news.example/watch?V=abc", "allow", ()),
        ("http://news.example/watch?list=9&v=abc", "block", ("A", "B")),
        ("http://news.example/watch/?v=abc", "block", ("A",)),
        ("http://news.example/watch?v=%61bc", "block", ("A",)),
        ("http://news.example/%77atch?v=abc", "block", ("A",)),
        ("http://news.example/x/../watch?v=abc#t=1", "block", ("A",)),
        ("http://news.example//watch?v=abc", "block", ("A",)),
        ("http://NEWS.example:8080/watch?v=abc", "block", ("A",)),
        ("http://news.example/Watch?v=abc", "allow", ()),  # paths are case-sensitive
        # trailing slash not significant for url rules
        ("http://news.example/article/7", "block", ("A",)),
        ("http://news.example/article/7/", "block", ("A",)),
        ("http://news.example/article/7/comments", "allow", ()),
        # url_prefix at segment boundaries
        ("http://news.example/forum", "block", ("A",)),
        ("http://news.example/forum/", "block", ("A",)),
        ("http://news.example/forum/thread/1?p=2", "block", ("A",)),
        ("http://news.example/forumx", "allow", ()),
        ("http://news.example/for", "allow", ()),
        ("http://root.example/", "block", ("A",)),
        ("http://root.example/anything/at/all", "block", ("A",)),
        # url rules are for their host only, not subdomains
        ("http://www.news.example/forum/x", "allow", ()),
        # domain blocks cover every URL on the host and below
        ("https://www.videohost.example/v/1?x=y", "block", ("A",)),
        ("http://www.forum.example/anything", "block", ("A",)),
        ("http://m.www.forum.example/anything", "allow", ()),
    ],
)
def test_url_decisions(target: str, decision: str, orders: tuple) -> None:
    d = INDEX.decide_url(target)
    assert (d.decision.value, d.orders) == (decision, orders)


def test_every_matching_rule_is_reported() -> None:
    d = INDEX.decide_url("http://news.example/watch?v=abc&list=9")
    assert d.rules == ("url news.example/watch?v=abc", "url news.example/watch?v=abc&list=9")
    assert not d.host_level
    assert INDEX.decide_url("http://cdn.videohost.example/").host_level


def test_bad_targets_raise_canon_error() -> None:
    with pytest.raises(CanonError):
        INDEX.decide_name("bad..example")
    with pytest.raises(CanonError):
        INDEX.decide_url("http://news.example/%zz")


def test_sizes_and_version() -> None:
    assert INDEX.domain_count == 4
    assert INDEX.url_count == 5
    assert Blocklist(tuple(reversed(ACTS))).version == INDEX.version
    assert Blocklist(ACTS[:1]).version != INDEX.version
    assert Verdict.URL_RULES.value == "url-rules"


segment = st.text(alphabet=string.ascii_lowercase + string.digits + "-_", min_size=1, max_size=8)


@given(st.lists(segment, max_size=4), st.sampled_from(["http", "https"]),
       st.sampled_from(["", ":80", ":8080"]), st.booleans(), st.booleans())
def test_spellings_of_one_url_get_one_decision(segs: list[str], scheme: str, port: str,
                                               trailing: bool, encode: bool) -> None:
    path = "/forum/" + "/".join(segs)
    plain = INDEX.decide_url(f"http://news.example{path}")
    spelled = path.replace("/", "//") if trailing else path
    if encode:
        spelled = "".join(f"%{ord(c):02X}" if c.isalnum() else c for c in spelled)
    d = INDEX.decide_url(f"{scheme}://user@News.Example{port}/x/..{spelled}#frag")
    assert d == plain
    assert d.decision is Verdict.BLOCK


# -- the compiled walk agrees with the definition --------------------------------

labels = st.sampled_from(["a", "b", "c", "www", "example", "test"])
gen_names = st.lists(labels, min_size=1, max_size=4).map(".".join)


def _reference(rules: list[tuple[str, str, bool]], name: str) -> tuple[str, ...]:
    """docs/design.md §3 read literally: every rule whose domain is the name, or (with
    subdomains) a parent of it."""
    return tuple(sorted({oid for oid, host, sub in rules
                         if name == host or (sub and name.endswith("." + host))}))


@given(st.lists(st.tuples(st.sampled_from(["O1", "O2", "O3"]), gen_names, st.booleans()),
                max_size=8),
       gen_names)
def test_index_matches_the_literal_definition(rules: list[tuple[str, str, bool]],
                                              name: str) -> None:
    acts = []
    for oid in sorted({r[0] for r in rules}):
        targets = tuple(domain(h, subdomains=sub) for o, h, sub in rules if o == oid)
        acts.append(act(oid, targets=targets))
    d = Blocklist(acts).at(T0).decide_canonical_name(name)
    assert d.orders == _reference(rules, name)
    assert d.blocked == bool(d.orders)
