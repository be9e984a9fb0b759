"""`writ audit report` against a hand-counted fixture (fixtures/report.log)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from writ.audit import summarise, verify
from writ.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "report.log"


def test_the_fixture_is_itself_an_intact_chain() -> None:
    assert verify([FIXTURE]).ok


def test_per_order_counts_match_the_hand_count() -> None:
    s = summarise([FIXTURE])
    assert (s.records, s.dropped, s.skipped_lines) == (8, 3, 0)
    a, b = s.orders["EX-A"], s.orders["EX-B"]
    assert dict(a.decisions) == {"block": 4}
    assert (a.first, a.last) == ("2015-09-07T08:00:00.000000Z", "2015-09-09T13:00:00.000000Z")
    assert dict(a.per_day) == {"2015-09-07": 2, "2015-09-08": 1, "2015-09-09": 1}
    assert dict(b.decisions) == {"block": 2, "unenforceable": 1, "url-rules": 1}
    assert (b.first, b.last) == ("2015-09-07T23:59:59.999999Z", "2015-09-09T12:00:00.000000Z")
    assert dict(b.per_day) == {"2015-09-07": 1, "2015-09-08": 2, "2015-09-09": 1}
    assert dict(s.orders["(no order)"].decisions) == {"allow": 1}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"component": "http"}, {"EX-A": 1, "EX-B": 2}),
        ({"order": "EX-B", "since": datetime(2015, 9, 8, tzinfo=UTC)}, {"EX-B": 3}),
        ({"until": datetime(2015, 9, 8, tzinfo=UTC)}, {"EX-A": 2, "EX-B": 1}),
        ({"since": datetime(2015, 9, 9, 12, tzinfo=UTC),
          "until": datetime(2015, 9, 9, 12, 0, 1, tzinfo=UTC)}, {"EX-B": 1}),
        ({"order": "EX-NONE"}, {}),
    ],
)
def test_filters(filters: dict[str, object], expected: dict[str, int]) -> None:
    s = summarise([FIXTURE], **filters)  # type: ignore[arg-type]
    assert {oid: st.total for oid, st in s.orders.items()} == expected


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "report", "--json", "--order", "EX-A", str(FIXTURE)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["orders"]["EX-A"]["per_day"] == {"2015-09-07": 2, "2015-09-08": 1,
                                                "2015-09-09": 1}
    assert doc["records"] == 4


def test_csv_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "report", "--csv", "--component", "dns", str(FIXTURE)]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    kz_b = [(r["day"], r["decision"], r["count"]) for r in rows if r["order"] == "EX-B"]
    assert kz_b == [("2015-09-07", "url-rules", "1"), ("2015-09-08", "block", "1")]


def test_table_output_names_every_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "report", str(FIXTURE)]) == 0
    out = capsys.readouterr().out
    assert "EX-A" in out
    assert "block 2, unenforceable 1, url-rules 1" in out
    assert "3 decisions reported dropped" in out


def test_bad_lines_are_skipped_with_a_warning(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    messy = tmp_path / "messy.log"
    messy.write_bytes(b"garbage\n" + FIXTURE.read_bytes() + b'{"half\n\x00\xff\n')
    assert main(["audit", "report", "--json", str(messy)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["records"] == 8
    assert "3 line(s) skipped" in captured.err


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["audit", "report", str(tmp_path / "nope.log")]) == 2


def test_a_bad_since_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "report", "--since", "yesterday-ish", str(FIXTURE)]) == 2
    assert "--since" in capsys.readouterr().err


def test_a_folder_given_as_a_log_is_a_usage_error(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "report", str(tmp_path)]) == 2
    assert "a folder, not a log file" in capsys.readouterr().err
