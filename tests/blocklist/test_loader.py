"""Loading court orders: fields, dates and zones, documents, bulk lists,
hostile YAML, and rules across files (docs/design.md §2)."""

from __future__ import annotations

import os
import textwrap
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from writ.blocklist import (
    ActKind,
    Blocklist,
    Position,
    Target,
    TargetKind,
    Verdict,
    load_orders,
)

REPO = Path(__file__).resolve().parents[2]
PLUS6 = timezone(timedelta(hours=6))


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def block(act_id: str = "A-1", extra: str = "", targets: str = "  - domain: a.example\n") -> str:
    return (f"id: {act_id}\ncourt: Court\ncase: '1/2015'\nissued: 2015-09-07\n{extra}"
            f"targets:\n{targets}")




# -- the sample folder ------------------------------------------------------


def test_sample_orders_are_valid_and_in_force_now() -> None:
    result = load_orders(REPO / "court_orders")
    assert result.errors == ()
    by_id = {a.id: a for a in result.acts}
    assert set(by_id) == {"EX-2015-0907-VH", "EX-2015-0928-VH-R", "EX-2016-0314-RVSD",
                          "EX-2017-0510-BLOG", "EX-2017-0724-BLOG-A"}
    vh = by_id["EX-2015-0907-VH"]
    assert vh.kind is ActKind.BLOCK
    assert vh.court == "Northgate District Court"
    assert vh.case == "2-5678/2015"
    assert vh.issued == date(2015, 9, 7)
    assert vh.effective == datetime(2015, 9, 7, tzinfo=PLUS6)
    assert vh.reference == "https://court.example/orders/2-5678-2015"
    assert vh.targets == (Target(TargetKind.DOMAIN, "videohost.example"),)
    assert vh.targets[0].pos is not None
    assert vh.targets[0].pos.file.endswith("ex-2015-0907-vh.yaml")
    index = Blocklist(result.acts).at(datetime.now(UTC))
    assert index.decide_url("https://videohost.example/v/136071202").blocked
    assert index.decide_url("https://videohost.example/v/1").decision is Verdict.ALLOW
    assert index.decide_name("mirror1.videohost-mirror.example").blocked
    assert index.decide_name("steppe-blog.example").decision is Verdict.ALLOW
    both = index.decide_url("https://videohost.example/v/136071201")
    assert {"EX-2015-0928-VH-R", "EX-2016-0314-RVSD"} <= set(both.orders)


# -- fields -------------------------------------------------------------------


def test_defaults_and_optional_fields(orders: Path) -> None:
    write(orders, "a.yaml", block())
    (a,) = load_orders(orders).acts
    assert a.kind is ActKind.BLOCK
    assert a.effective == datetime(2015, 9, 7, tzinfo=UTC)
    assert a.expires is None
    assert (a.authority, a.legal_basis, a.reference, a.summary) == (None, None, None, None)
    assert a.amends is None
    assert a.restores is None
    assert a.allow_public_suffix is False
    assert a.pos == Position("orders/a.yaml", 1)


def test_every_field_is_read(orders: Path) -> None:
    write(orders, "a.yaml", """\
        id: EX-1
        kind: block
        court: "Court of  Example City"
        case: 2-5678/2015
        issued: 2015-09-07
        effective: 2015-09-08T10:30:00+06:00
        expires: 2016-09-08
        authority: Committee
        legal_basis: Communications Act (example), s. 41
        reference: https://court.example/orders/1
        summary: >
          Suspend access
          to a host
        allow_public_suffix: false
        targets:
          - domain: videohost.example
        """)
    (a,) = load_orders(orders).acts
    assert a.id == "EX-1"
    assert a.court == "Court of  Example City"
    assert a.case == "2-5678/2015"
    assert a.effective == datetime(2015, 9, 8, 10, 30, tzinfo=PLUS6)
    assert a.expires == datetime(2016, 9, 8, tzinfo=UTC)
    assert a.authority == "Committee"
    assert a.legal_basis == 'Communications Act (example), s. 41'
    assert a.reference == "https://court.example/orders/1"
    assert a.summary == "Suspend access to a host"


@pytest.mark.parametrize(("written", "text"), [
    ("5678", "5678"),  # a number is taken as the text the court wrote
    ("017", "017"),  # not the octal 15
    ("1_000", "1_000"),
    ("2015-09-07", "2015-09-07"),
    ("'2-5678/2015'", "2-5678/2015"),
])
def test_case_is_the_text_as_written(orders: Path, written: str, text: str) -> None:
    write(orders, "a.yaml", block().replace("case: '1/2015'", f"case: {written}"))
    (a,) = load_orders(orders).acts
    assert a.case == text


# -- dates and time zones -----------------------------------------------------

ALMATY = ZoneInfo("Asia/Almaty")


@pytest.mark.parametrize(("effective", "tz", "expected"), [
    (None, None, datetime(2015, 9, 7, tzinfo=UTC)),  # issued, 00:00 UTC
    (None, ALMATY, datetime(2015, 9, 7, tzinfo=ALMATY)),  # issued, 00:00 in the zone
    ("2015-09-10", ALMATY, datetime(2015, 9, 10, tzinfo=ALMATY)),
    ("'2015-09-10'", None, datetime(2015, 9, 10, tzinfo=UTC)),  # quoted: a string
    ("2015-09-10T08:00:00", ALMATY, datetime(2015, 9, 10, 8, tzinfo=ALMATY)),  # naive: the zone
    ("2015-09-10 08:00:00", None, datetime(2015, 9, 10, 8, tzinfo=UTC)),
    ("2015-09-10T08:00:00+06:00", None, datetime(2015, 9, 10, 8, tzinfo=PLUS6)),  # kept
    ("2015-09-10T02:00:00Z", ALMATY, datetime(2015, 9, 10, 2, tzinfo=UTC)),
    ("2015-09-10 08:00:00 +06:00", None, datetime(2015, 9, 10, 8, tzinfo=PLUS6)),
    ("'2015-09-10T08:00:00+06:00'", ALMATY, datetime(2015, 9, 10, 8, tzinfo=PLUS6)),
    ("'2015-09-10T02:00:00Z'", None, datetime(2015, 9, 10, 2, tzinfo=UTC)),
])
def test_effective(orders: Path, effective: str | None, tz: ZoneInfo | None,
                   expected: datetime) -> None:
    extra = f"effective: {effective}\n" if effective else ""
    write(orders, "a.yaml", block(extra=extra))
    (a,) = load_orders(orders, tz).acts
    assert a.effective == expected
    assert a.effective.tzinfo is not None


def test_issued_as_a_quoted_string_and_expires_in_the_zone(orders: Path) -> None:
    write(orders, "a.yaml", block(extra="expires: 2016-01-01T00:00:00\n").replace(
        "issued: 2015-09-07", "issued: '2015-09-07'"))
    (a,) = load_orders(orders, ALMATY).acts
    assert a.issued == date(2015, 9, 7)
    assert a.expires == datetime(2016, 1, 1, tzinfo=ALMATY)


def test_expires_null_means_no_end(orders: Path) -> None:
    write(orders, "a.yaml", block(extra="expires: null\n"))
    (a,) = load_orders(orders).acts
    assert a.expires is None


# -- targets ------------------------------------------------------------------


def test_targets_are_canonical_with_positions(orders: Path) -> None:
    write(orders, "a.yaml", block(targets="""\
  - domain: VideoHost.Example.
  - domain: www.forum.example
    subdomains: false
  - domain: пример.example
  - url: HTTPS://user@VideoHost.example:8443/v/./1//x/?b=2&a=%7e#frag
  - url_prefix: http://news.example/forum/
"""))
    (a,) = load_orders(orders).acts
    assert [(t.kind, t.host, t.path, t.query, t.subdomains) for t in a.targets] == [
        (TargetKind.DOMAIN, "videohost.example", "", (), True),
        (TargetKind.DOMAIN, "www.forum.example", "", (), False),
        (TargetKind.DOMAIN, "xn--e1afmkfd.example", "", (), True),
        (TargetKind.URL, "videohost.example", "/v/1/x", (("b", "2"), ("a", "~")), True),
        (TargetKind.URL_PREFIX, "news.example", "/forum", (), True),
    ]
    assert [t.pos for t in a.targets] == [Position("orders/a.yaml", n) for n in (6, 7, 9, 10, 11)]


def test_allow_public_suffix(orders: Path) -> None:
    write(orders, "a.yaml", block(extra="allow_public_suffix: true\n",
                                  targets="  - domain: co.uk\n  - url: http://github.io/x\n"))
    (a,) = load_orders(orders).acts
    assert a.allow_public_suffix is True
    assert [t.host for t in a.targets] == ["co.uk", "github.io"]


def test_a_name_under_a_public_suffix_is_fine(orders: Path) -> None:
    write(orders, "a.yaml", block(targets="  - domain: court.gov.uk\n  - domain: x.github.io\n"
                                  "  - domain: www.ck\n"))
    (a,) = load_orders(orders).acts
    assert [t.host for t in a.targets] == ["court.gov.uk", "x.github.io", "www.ck"]


# -- restore and revoke -------------------------------------------------------


def test_restore_and_revoke(orders: Path) -> None:
    write(orders, "a.yaml", block("B", targets="  - domain: a.example\n  - domain: b.example\n"))
    write(orders, "b.yaml", """\
        id: R
        kind: restore
        amends: B
        court: Court
        case: '1/2015'
        issued: 2015-09-28
        restores:
          - domain: A.example
        keep_blocked:
          - url: https://a.example/v/1
          - url_prefix: https://a.example/keep/
        condition: Host removed the videos
        ---
        id: R-ALL
        kind: restore
        amends: B
        court: Court
        case: '1/2015'
        issued: 2015-09-29
        ---
        id: V
        kind: revoke
        amends: R
        court: Appeals
        case: '2a/2015'
        issued: 2015-10-01
        """)
    result = load_orders(orders)
    assert result.errors == ()
    r, r_all, v = result.acts[1:]
    assert r.kind is ActKind.RESTORE
    assert r.amends == "B"
    assert r.restores is not None
    assert [t.host for t in r.restores] == ["a.example"]
    assert [(t.kind, t.host, t.path) for t in r.keep_blocked] == [
        (TargetKind.URL, "a.example", "/v/1"), (TargetKind.URL_PREFIX, "a.example", "/keep")]
    assert r.condition == "Host removed the videos"
    assert r_all.restores is None  # omitted: every domain target of B
    assert (v.kind, v.amends) == (ActKind.REVOKE, "R")


def test_amends_across_files_and_wrong_kinds(orders: Path) -> None:
    write(orders, "1.yaml", block("B"))
    write(orders, "2.yaml", """\
        id: V
        kind: revoke
        amends: B
        court: C
        case: x
        issued: 2016-01-01
        """)
    write(orders, "3.yaml", """\
        id: R
        kind: restore
        amends: V
        court: C
        case: x
        issued: 2016-01-01
        """)
    (err,) = load_orders(orders).errors
    assert (err.file, err.line, err.field, err.order_id) == ("orders/3.yaml", 3, "amends", "R")
    assert err.message == "a restore amends a block, but V is a revoke"


def test_duplicate_ids_across_files(orders: Path) -> None:
    write(orders, "x/first.yaml", block("SAME"))
    write(orders, "y/second.yml", block("SAME"))
    result = load_orders(orders)
    assert result.acts == ()
    assert [str(e) for e in result.errors] == [
        "orders/y/second.yml:1: id: duplicate id: already used at orders/x/first.yaml:1 [SAME]"]


def test_restores_may_name_a_host_from_the_amended_bulk_list(orders: Path) -> None:
    write(orders, "lists/l.txt", "mirror.example\n")
    write(orders, "a.yaml", block("B", targets="  - file: lists/l.txt\n"))
    write(orders, "b.yaml", "id: R\nkind: restore\namends: B\ncourt: C\ncase: x\n"
          "issued: 2016-01-01\nrestores:\n  - domain: mirror.example\n")
    assert load_orders(orders).errors == ()


# -- documents and files ------------------------------------------------------


def test_several_documents_per_file_and_empty_ones(orders: Path) -> None:
    write(orders, "a.yaml", "---\n" + block("A-1") + "---\n" + block("A-2") + "---\n")
    result = load_orders(orders)
    assert [(a.id, a.pos) for a in result.acts] == [
        ("A-1", Position("orders/a.yaml", 2)), ("A-2", Position("orders/a.yaml", 9))]


def test_files_in_sorted_order_recursively_only_yaml(orders: Path) -> None:
    write(orders, "b.yml", block("B"))
    write(orders, "a/z.yaml", block("AZ"))
    write(orders, "a.YAML", block("A"))
    write(orders, "notes.txt", "not an order\n")
    write(orders, ".#b.yaml", "editor lock file: { not yaml")
    write(orders, ".git/x.yaml", "{ not yaml")
    assert [a.id for a in load_orders(orders).acts] == ["A", "AZ", "B"]


def test_empty_folder_is_a_valid_empty_set(orders: Path) -> None:
    assert load_orders(orders) == load_orders(orders)
    assert load_orders(orders).acts == ()
    assert load_orders(orders).ok


def test_no_such_folder_is_an_error_not_an_exception(tmp_path: Path) -> None:
    result = load_orders(tmp_path / "missing")
    assert result.acts == ()
    assert result.errors[0].message == "no such folder"


def test_absolute_folder_outside_cwd_is_shown_absolute(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", block() + "colour: red\n")
    (err,) = load_orders(tmp_path).errors
    assert err.file == str(tmp_path / "a.yaml")


def test_absolute_folder_under_cwd_is_shown_relative(orders: Path) -> None:
    write(orders, "a.yaml", block() + "colour: red\n")
    (err,) = load_orders(orders.resolve()).errors
    assert err.file == "orders/a.yaml"


# -- hostile YAML -------------------------------------------------------------


def test_alias_bomb_fails_fast(orders: Path) -> None:
    """Billion laughs: 10**20 expanded values if anything expanded them."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 21)]
    write(orders, "bomb.yaml", block() + "summary:\n" + "".join(
        f"  {line}\n" for line in lines))
    result = load_orders(orders)
    assert result.acts == ()
    (err,) = result.errors
    assert "aliases" in err.message


def test_object_tags_construct_nothing(orders: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    write(orders, "a.yaml", block() + f"summary: !!python/object/apply:os.system "
          f"['touch {marker}']\n")
    result = load_orders(orders)
    assert not marker.exists()
    assert "is not allowed in orders" in result.errors[0].message


def test_deep_nesting_is_an_error(orders: Path) -> None:
    write(orders, "a.yaml", block() + "summary: " + "[" * 5000 + "]" * 5000 + "\n")
    (err,) = load_orders(orders).errors
    assert err.field in ("yaml", "summary")


def test_not_yaml_at_all(orders: Path) -> None:
    (orders / "a.yaml").write_bytes(b"\xff\xfe\x00garbage\x00")
    (err,) = load_orders(orders).errors
    assert (err.file, err.field) == ("orders/a.yaml", "yaml")


def test_unreadable_order_file(orders: Path) -> None:
    # a dangling symlink cannot be read, even by root (CI runs as root)
    (orders / "a.yaml").symlink_to(orders / "gone.yaml")
    (err,) = load_orders(orders).errors
    assert (err.field, err.message.startswith("cannot read")) == ("file", True)


def test_a_fifo_named_like_an_order_is_reported_not_read(orders: Path) -> None:
    os.mkfifo(orders / "a.yaml")  # opening it would block forever
    (err,) = load_orders(orders).errors
    assert (err.field, err.message) == ("file", "cannot read: not a regular file")


def test_oversized_order_file_is_refused_without_reading_it(orders: Path) -> None:
    from writ.blocklist._yamlsrc import MAX_ORDER_BYTES

    with open(orders / "huge.yaml", "wb") as f:
        f.truncate(MAX_ORDER_BYTES + 1)
    (err,) = load_orders(orders).errors
    assert (err.file, err.line, err.field) == ("orders/huge.yaml", 1, "file")
    assert "bulk `file:` list" in err.message
