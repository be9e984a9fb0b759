"""Every validation error kind: one bad line in, one error out naming file,
line, field and what is wrong (docs/design.md §2)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from writ.blocklist import load_orders

BLOCK = """\
id: A-1
court: Northgate District Court
case: "1/2015"
issued: 2015-09-07
targets:
  - domain: videohost.example
"""

HEAD = BLOCK.split("targets:", maxsplit=1)[0]  # a block without its targets

BLOCK_B = """\
id: B-1
court: Court
case: "2/2015"
issued: 2015-09-07
targets:
  - domain: videohost.example
  - domain: other.example
---
"""

RESTORE = """\
id: R-1
kind: restore
amends: B-1
court: Court
case: "2/2015"
issued: 2015-09-28
"""


def _replace(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


# (case, order file text, line, field, message fragment)
CASES = [
    ("unknown field", BLOCK + "colour: red\n", 7, "colour", "unknown field"),
    ("missing id", BLOCK.replace("id: A-1\n", ""), 1, "id", "required"),
    ("bad id", _replace(BLOCK, "id: A-1", "id: a b"), 1, "id", "is not an id"),
    ("id too long", _replace(BLOCK, "id: A-1", "id: " + "a" * 129), 1, "id", "is not an id"),
    ("id not text", _replace(BLOCK, "id: A-1", "id: [a]"), 1, "id", "must be text, not a list"),
    ("missing court", BLOCK.replace("court: Northgate District Court\n", ""), 1, "court",
     "required"),
    ("empty case", _replace(BLOCK, 'case: "1/2015"', 'case: ""'), 3, "case",
     "required, but empty"),
    ("null case", _replace(BLOCK, 'case: "1/2015"', "case:"), 3, "case", "required, but empty"),
    ("court as mapping", _replace(BLOCK, "court: Northgate District Court", "court: {a: b}"),
     2, "court", "must be text, not a mapping"),
    ("missing issued", BLOCK.replace("issued: 2015-09-07\n", ""), 1, "issued", "required"),
    ("impossible date", _replace(BLOCK, "issued: 2015-09-07", "issued: 2015-02-30"), 4,
     "issued", "'2015-02-30' is not a date"),
    ("issued with a time", _replace(BLOCK, "issued: 2015-09-07", "issued: 2015-09-07T10:00:00"),
     4, "issued", "without a time"),
    ("issued a number", _replace(BLOCK, "issued: 2015-09-07", "issued: 2015"), 4, "issued",
     "must be a date"),
    ("bad effective", BLOCK + "effective: soon\n", 7, "effective", "'soon' is not a date"),
    ("expires before effective", BLOCK + "expires: 2015-09-01\n", 7, "expires",
     "is not after effective 2015-09-07T00:00:00+00:00"),
    ("expires equals effective",
     BLOCK + "effective: 2015-09-08T00:00:00+06:00\nexpires: 2015-09-07T18:00:00Z\n", 8,
     "expires", "is not after effective"),
    ("bad kind", BLOCK + "kind: blok\n", 7, "kind", "'blok' is not a kind"),
    ("block without targets", HEAD, 1, "targets", "required for a block"),
    ("empty targets", HEAD + "targets: []\n", 5, "targets", "empty"),
    ("targets not a list", HEAD + "targets: videohost.example\n", 5,
     "targets", "must be a list of targets"),
    ("target not a mapping", HEAD + "targets:\n  - videohost.example\n",
     6, "targets[1]", "each entry is a mapping"),
    ("two kinds in one target", BLOCK + "    url: http://a.example/x\n", 6, "targets[1]",
     "needs exactly one of domain, url, url_prefix, ip, ip_prefix, file (found domain, url)"),
    ("no kind in a target", BLOCK + "  - subdomains: true\n", 7, "targets[2]",
     "needs exactly one of"),
    ("unknown target key", BLOCK + "    hostname: x\n", 7, "targets[1].hostname", "unknown key"),
    ("subdomains on a url", BLOCK + "  - url: http://a.example/x\n    subdomains: false\n", 8,
     "targets[2].subdomains", "only a domain target has subdomains"),
    ("subdomains not a bool", BLOCK + "    subdomains: maybe\n", 7, "targets[1].subdomains",
     "must be true or false"),
    ("malformed domain", _replace(BLOCK, "videohost.example", "bad!name.example"), 6,
     "targets[1].domain", "invalid host name"),
    ("URL as a domain", _replace(BLOCK, "videohost.example", "http://videohost.example/"), 6,
     "targets[1].domain", "is not a host name (for a URL use url: or url_prefix:)"),
    ("empty domain", _replace(BLOCK, "domain: videohost.example", 'domain: ""'), 6,
     "targets[1].domain", "required, but empty"),
    ("TLD", _replace(BLOCK, "videohost.example", "com"), 6, "targets[1].domain",
     "com is a whole top-level domain"),
    ("public suffix", _replace(BLOCK, "videohost.example", "co.uk"), 6, "targets[1].domain",
     "co.uk is a public suffix"),
    ("private public suffix", _replace(BLOCK, "videohost.example", "GitHub.io."), 6,
     "targets[1].domain", "github.io is a public suffix"),
    ("wildcard public suffix", _replace(BLOCK, "videohost.example", "anything.ck"), 6,
     "targets[1].domain", "anything.ck is a public suffix"),
    ("public suffix as URL host", BLOCK + "  - url: http://co.uk/x\n", 7, "targets[2].url",
     "co.uk is a public suffix"),
    ("ftp URL", BLOCK + "  - url: ftp://a.example/x\n", 7, "targets[2].url",
     "only http and https URLs can be enforced, not ftp:"),
    ("URL without scheme", BLOCK + "  - url: a.example/x\n", 7, "targets[2].url",
     "is not a URL"),
    ("bad percent-encoding", BLOCK + "  - url: http://a.example/%zz\n", 7, "targets[2].url",
     "invalid percent-encoding"),
    ("bad URL host", BLOCK + "  - url: http://bad!host.example/x\n", 7, "targets[2].url",
     "invalid host name"),
    ("url_prefix with a query", BLOCK + "  - url_prefix: http://a.example/f?x=1\n", 7,
     "targets[2].url_prefix", "cannot carry a query"),
    ("url_prefix with *", BLOCK + "  - url_prefix: http://a.example/f/*\n", 7,
     "targets[2].url_prefix", "drop the trailing '*'"),
    ("reference not http", BLOCK + "reference: ftp://court.example/x\n", 7, "reference",
     "is not an http(s) URL"),
    ("allow_public_suffix not a bool", BLOCK + "allow_public_suffix: please\n", 7,
     "allow_public_suffix", "must be true or false"),
    ("block amends", BLOCK + "amends: X\n", 7, "amends", "a block amends nothing"),
    ("block keeps blocked", BLOCK + "keep_blocked: []\n", 7, "keep_blocked",
     "a block has no keep_blocked"),
    ("block with condition", BLOCK + "condition: x\n", 7, "condition", "a block has no condition"),
    ("restore with targets", BLOCK_B + RESTORE + "targets:\n  - domain: a.example\n", 15,
     "targets", "a restore has no targets of its own"),
    ("restore without amends", BLOCK_B + RESTORE.replace("amends: B-1\n", ""), 9, "amends",
     "required for a restore"),
    ("revoke with restores",
     BLOCK_B + _replace(RESTORE, "kind: restore", "kind: revoke") + "restores: []\n", 15,
     "restores", "a revoke has no restores"),
    ("amends unknown", BLOCK_B + _replace(RESTORE, "amends: B-1", "amends: B-9"), 11, "amends",
     "no act with id 'B-9' in orders"),
    ("amends itself", BLOCK_B + _replace(RESTORE, "amends: B-1", "amends: R-1"), 11, "amends",
     "an act cannot amend itself"),
    ("restore of a restore",
     BLOCK_B + RESTORE + "---\n" + RESTORE.replace("R-1", "R-2").replace("B-1", "R-1"), 18,
     "amends", "a restore amends a block, but R-1 is a restore"),
    ("revoke of a revoke",
     BLOCK_B + _replace(RESTORE, "kind: restore", "kind: revoke") + "---\n"
     + RESTORE.replace("R-1", "R-2").replace("B-1", "R-1").replace("restore", "revoke"),
     18, "amends", "a revoke amends a block or a restore, but R-1 is a revoke"),
    ("restores a host the order does not block",
     BLOCK_B + RESTORE + "restores:\n  - domain: elsewhere.example\n", 16, "restores",
     "elsewhere.example is not a domain target of B-1"),
    ("empty restores", BLOCK_B + RESTORE + "restores: []\n", 15, "restores",
     "empty: omit restores to restore every domain target"),
    ("keep_blocked a domain", BLOCK_B + RESTORE + "keep_blocked:\n  - domain: a.example\n", 16,
     "keep_blocked[1].domain", "takes only url or url_prefix entries here"),
    ("duplicate id in one file", BLOCK + "---\n" + BLOCK, 8, "id",
     "duplicate id: already used at orders/a.yaml:1"),
    ("duplicate key", BLOCK + "court: Other\n", 7, "court", "duplicate key (first at line 2)"),
    ("YAML syntax", BLOCK + "summary: [unclosed\n", 8, "yaml", "not valid YAML"),
    ("python object tag", BLOCK + "summary: !!python/object/apply:os.system ['true']\n", 7,
     "summary", "YAML tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed"),
    ("local tag", BLOCK + "summary: !secret x\n", 7, "summary", "YAML tag '!secret'"),
    ("set tag", BLOCK + "summary: !!set {a, b}\n", 7, "summary", "YAML tag"),
    ("alias", BLOCK + "summary: &s text\nlegal_basis: *s\n", 8, "legal_basis",
     "YAML aliases (*name) are not allowed"),
    ("merge key", BLOCK + "<<: {summary: x}\n", 7, "document",
     "YAML tag 'tag:yaml.org,2002:merge'"),
    ("top level a list", "- id: A-1\n- court: x\n", 1, "document",
     "an order must be a mapping of fields (id: …, court: …), not a list"),
    ("top level a value", BLOCK + "---\njust text\n", 8, "document", "not a single value"),
]


@pytest.mark.parametrize(("text", "line", "field", "message"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_one_mistake_one_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, line: int, field: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "orders").mkdir()
    (tmp_path / "orders" / "a.yaml").write_text(text, encoding="utf-8")
    result = load_orders(Path("orders"))
    assert result.acts == ()
    assert [(e.file, e.line, e.field) for e in result.errors] == [("orders/a.yaml", line, field)]
    assert message in result.errors[0].message
    assert str(result.errors[0]).startswith(f"orders/a.yaml:{line}: {field}: ")


def test_valid_bases_are_valid(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BLOCK + "---\n" + BLOCK_B + RESTORE, encoding="utf-8")
    result = load_orders(tmp_path)
    assert result.errors == ()
    assert [a.id for a in result.acts] == ["A-1", "B-1", "R-1"]


def test_all_errors_of_a_set_in_one_run(tmp_path: Path) -> None:
    """Total: errors in several documents and files, reported together, in order."""
    bad_a = textwrap.dedent("""\
        id: A-1
        court: C
        issued: 2015-13-01
        targets:
          - domain: com
        ---
        id: A-2
        kind: restore
        amends: NOPE
        court: C
        case: x
        issued: 2015-01-01
        """)
    (tmp_path / "a.yaml").write_text(bad_a, encoding="utf-8")
    (tmp_path / "b.yml").write_text(BLOCK.replace("A-1", "A-2"), encoding="utf-8")
    result = load_orders(tmp_path)
    got = [(Path(e.file).name, e.line, e.field, e.order_id) for e in result.errors]
    assert got == [
        ("a.yaml", 1, "case", "A-1"),
        ("a.yaml", 3, "issued", "A-1"),
        ("a.yaml", 5, "targets[1].domain", "A-1"),
        ("a.yaml", 9, "amends", "A-2"),
        ("b.yml", 1, "id", "A-2"),
    ]
    assert result.acts == ()


def test_error_lines_name_the_order_id(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(BLOCK + "colour: red\n", encoding="utf-8")
    (err,) = load_orders(tmp_path).errors
    assert str(err).endswith(" [A-1]")
