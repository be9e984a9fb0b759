"""Bulk `file:` lists: one target a line, errors naming the list's line,
confinement to the orders folder, and a fast path that agrees with the
exact one (docs/design.md §2)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from writ.blocklist import BulkList, Position, TargetKind, load_orders
from writ.blocklist._bulk import MAX_ERRORS, _fast_names, _read_lines, read_list
from writ.blocklist.canon import CanonError, canonical_name
from writ.blocklist.ipaddr import looks_like_ip


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def order_with(list_path: str, act_id: str = "A-1", extra: str = "") -> str:
    return (f"id: {act_id}\ncourt: Court\ncase: x\nissued: 2015-09-07\n{extra}"
            f"targets:\n  - file: {list_path}\n")




def test_names_urls_prefixes_and_comments(orders: Path) -> None:
    write(orders, "lists/a.txt", textwrap.dedent("""\
        \ufeff# mirrors named in the order
        Mirror1.VideoHost-Mirror.example.

          mirror2.videohost-mirror.example   # trailing comment
        https://paste.example/raw/8Kq2vH
        https://files.example/vh-dump/*
        http://news.example/watch?v=abc#frag
        """))
    write(orders, "a.yaml", order_with("lists/a.txt"))
    (a,) = load_orders(orders).acts
    (b,) = a.bulk
    assert b.file == "lists/a.txt"
    assert b.pos == Position("orders/a.yaml", 6)
    assert b.domains == ("mirror1.videohost-mirror.example", "mirror2.videohost-mirror.example")
    assert [(t.kind, t.host, t.path, t.query, t.pos) for t in b.urls] == [
        (TargetKind.URL, "paste.example", "/raw/8Kq2vH", (), Position("orders/lists/a.txt", 5)),
        (TargetKind.URL_PREFIX, "files.example", "/vh-dump", (), Position("orders/lists/a.txt", 6)),
        (TargetKind.URL, "news.example", "/watch", (("v", "abc"),),
         Position("orders/lists/a.txt", 7)),
    ]
    assert a.targets == ()
    assert a.target_count() == 5


def test_plain_list_with_crlf(orders: Path) -> None:
    (orders / "l.txt").write_bytes(b"a.example\r\nB.example\r\n\r\nc.example")
    write(orders, "a.yaml", order_with("l.txt"))
    (a,) = load_orders(orders).acts
    assert a.bulk[0].domains == ("a.example", "b.example", "c.example")


def test_list_relative_to_the_order_file(orders: Path) -> None:
    write(orders, "2016/lists/l.txt", "a.example\n")
    write(orders, "common/common.txt", "b.example\n")
    write(orders, "2016/a.yaml", order_with("lists/l.txt") + "  - file: ../common/common.txt\n")
    (a,) = load_orders(orders).acts
    assert [(b.file, b.domains) for b in a.bulk] == [
        ("2016/lists/l.txt", ("a.example",)), ("common/common.txt", ("b.example",))]


def test_two_orders_may_share_a_list(orders: Path) -> None:
    write(orders, "l.txt", "a.example\n")
    write(orders, "a.yaml", order_with("l.txt", "A") + "---\n" + order_with("l.txt", "B"))
    acts = load_orders(orders).acts
    assert [a.bulk[0].domains for a in acts] == [("a.example",), ("a.example",)]


# (list text, line, field, message fragment)
LINE_ERRORS = [
    ("a.example\nbad!name.example\n", 2, "domain", "invalid host name"),
    ("a.example\n\ncom\n", 3, "domain", "com is a whole top-level domain"),
    ("# c\nco.uk\n", 2, "domain", "co.uk is a public suffix"),
    ("ftp://a.example/x\n", 1, "url", "only http and https"),
    ("https://co.uk/*\n", 1, "url_prefix", "co.uk is a public suffix"),
    ("https://a.example/x?q=1/*\n", 1, "url_prefix", "cannot carry a query"),
    ("a.example b.example\n", 1, "domain", "one target a line"),
    ("http://a.example/%zz\n", 1, "url", "invalid percent-encoding"),
    ("x" * 64 + ".example\n", 1, "domain", "invalid host name"),
]


@pytest.mark.parametrize(("text", "line", "field", "message"), LINE_ERRORS)
def test_errors_name_the_list_file_and_line(
    orders: Path, text: str, line: int, field: str, message: str
) -> None:
    write(orders, "lists/l.txt", text)
    write(orders, "a.yaml", order_with("lists/l.txt"))
    result = load_orders(orders)
    assert result.acts == ()
    assert [(e.file, e.line, e.field, e.order_id) for e in result.errors] == [
        ("orders/lists/l.txt", line, field, "A-1")]
    assert message in result.errors[0].message


def test_allow_public_suffix_applies_to_the_list(orders: Path) -> None:
    write(orders, "l.txt", "co.uk\nuk\n")
    write(orders, "a.yaml", order_with("l.txt", extra="allow_public_suffix: true\n"))
    (a,) = load_orders(orders).acts
    assert a.bulk[0].domains == ("co.uk", "uk")


def test_not_utf8_names_the_line(orders: Path) -> None:
    (orders / "l.txt").write_bytes(b"a.example\nb.example\n\xff\n")
    write(orders, "a.yaml", order_with("l.txt"))
    (err,) = load_orders(orders).errors
    assert (err.file, err.line, err.field, err.message) == (
        "orders/l.txt", 3, "file", "not UTF-8 text")


def test_errors_are_capped_per_list(orders: Path) -> None:
    write(orders, "l.txt", "bad!\n" * (MAX_ERRORS + 50))
    write(orders, "a.yaml", order_with("l.txt"))
    errors = load_orders(orders).errors
    assert len(errors) == MAX_ERRORS + 1
    assert (errors[-1].line, errors[-1].message) == (
        MAX_ERRORS + 50, "50 more errors in this list not shown")


@pytest.mark.parametrize(("path", "message"), [
    ("../outside.txt", "'../outside.txt' is outside the orders folder orders"),
    ("lists/../../outside.txt", "is outside the orders folder"),
    ("/etc/passwd", "'/etc/passwd' is outside the orders folder"),
    ("link.txt", "'link.txt' is outside the orders folder"),  # a symlink out
    ("missing.txt", "no such file: 'missing.txt'"),
    ("lists", "'lists' is not a regular file"),
    ("other.yaml", "a list must not end in .yaml/.yml"),
    ("''", "required, but empty"),
])
def test_list_paths_stay_inside_the_orders_folder(
    orders: Path, path: str, message: str
) -> None:
    write(orders.parent, "outside.txt", "a.example\n")
    (orders / "lists").mkdir()
    (orders / "link.txt").symlink_to(orders.parent.resolve() / "outside.txt")
    write(orders, "other.yaml", "id: O\ncourt: c\ncase: x\nissued: 2015-01-01\n"
          "targets:\n  - domain: o.example\n")
    write(orders, "a.yaml", order_with(path))
    result = load_orders(orders)
    assert result.acts == ()
    (err,) = result.errors
    assert (err.file, err.line, err.field) == ("orders/a.yaml", 6, "targets[1].file")
    assert message in err.message


def test_absolute_path_inside_the_folder_is_fine(orders: Path) -> None:
    write(orders, "l.txt", "a.example\n")
    write(orders, "a.yaml", order_with(str((orders / "l.txt").resolve())))
    (a,) = load_orders(orders).acts
    assert a.bulk == (BulkList("l.txt", ("a.example",)),)


def test_unreadable_list(orders: Path) -> None:
    # a directory where the list should be: unreadable even for root (CI runs as root)
    (orders / "l.txt").mkdir()
    write(orders, "a.yaml", order_with("l.txt"))
    (err,) = load_orders(orders).errors
    assert err.message == "'l.txt' is not a regular file"


@pytest.mark.parametrize(("data", "names"), [
    (b"a.example\nb.example\n", ["a.example", "b.example"]),
    (b"\xef\xbb\xbf# header\r\nA.Example\r\n\r\n  # note\nb.example", ["a.example", "b.example"]),
    (b"a.example\n#", ["a.example"]),
    (b"a.example # inline\n\tb.example\t# tab\n", None),  # a leading tab: exact path
    (b"a.example # inline\nb.example\t# tab\n", ["a.example", "b.example"]),
    (b"a.example#frag\n", None),
    (b"a.example.\n", None),
    (b"-a.example\n", None),
    (b"a..example\n", None),
    (b"xn--e1afmkfd.example\n", None),
    (b"https://a.example/\n", None),
    (b"a.example b.example\n", None),
])
def test_fast_path_takes_only_plain_names(data: bytes, names: list[str] | None) -> None:
    assert _fast_names(data) == names


def test_read_list_directly(tmp_path: Path) -> None:
    path = write(tmp_path, "l.txt", "a.example\nhttps://b.example/x\n")
    got = read_list(path, "l.txt", allow_public_suffix=False)
    assert got.domains == ("a.example",)
    assert [u.host for u in got.urls] == ["b.example"]
    assert got.errors == ()


# -- the fast path says what the exact path says ------------------------------

_label = st.text(alphabet="abcXYZ019-_", min_size=1, max_size=8)
_name = st.lists(_label, min_size=1, max_size=4).map(".".join)
_line = st.one_of(
    _name, _name.map(lambda n: n + "."), _name.map(lambda n: "-" + n), st.just(""),
    st.just("xn--e1afmkfd.example"), st.just("xn--zz.example"), st.just("a--b.example"),
    st.just("co.uk"), st.just("A.Example"), st.just(" a.example"), st.just("x" * 63 + ".example"),
    st.just("x" * 64 + ".example"), st.just(".".join(["x" * 60] * 5)), st.just("пример.example"),
)
_comment = st.sampled_from(["# header", "  # indented", "#", "a.example # inline", "a#b"])


@given(st.lists(st.one_of(_line, _comment), max_size=30), st.sampled_from(["\n", "\r\n"]))
def test_fast_path_agrees_with_the_exact_path(lines: list[str], eol: str) -> None:
    text = eol.join(lines)
    fast = _fast_names(text.encode())
    exact = _read_lines(text, "l.txt", allow_public_suffix=True)
    if fast is not None:
        assert exact.errors == ()
        assert tuple(fast) == exact.domains
    expected = []
    for line in lines:
        line = line.split(" #")[0]  # noqa: PLW2901
        if line.strip() and not line.strip().startswith("#"):
            if looks_like_ip(line.strip()):
                return  # an address line (ends in a number): tests/blocklist/test_ip_targets.py
            try:
                expected.append(canonical_name(line))
            except CanonError:
                return  # the exact path reports it; covered by the table above
    assert exact.domains == tuple(expected)


def test_names_under_public_suffixes_and_psl_exceptions_are_fine(orders: Path) -> None:
    write(orders, "l.txt", "www.ck\ncity.kobe.jp\nx.github.io\nmirror.co.uk\n")
    write(orders, "a.yaml", order_with("l.txt"))
    (a,) = load_orders(orders).acts
    assert a.bulk[0].domains == ("www.ck", "city.kobe.jp", "x.github.io", "mirror.co.uk")


def test_oversized_list_is_refused_without_reading_it(orders: Path) -> None:
    from writ.blocklist._bulk import MAX_LIST_BYTES

    with open(orders / "huge.txt", "wb") as f:
        f.truncate(MAX_LIST_BYTES + 1)  # sparse: no disk, no memory
    write(orders, "a.yaml", order_with("huge.txt"))
    (err,) = load_orders(orders).errors
    assert (err.file, err.line, err.field) == ("orders/huge.txt", 1, "file")
    assert err.message.startswith("larger than 256 MiB")
