"""`verify` names the first bad record and what was done to it (issue 3, §6)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.audit.support import files, lines, records, write_log
from writ.audit import verify
from writ.cli import main


@pytest.fixture
def log(tmp_path: Path) -> list[Path]:
    """Three files: rotation every ~8 records."""
    paths = write_log(tmp_path, 20, rotate_bytes=3000)
    assert len(paths) >= 3
    return paths


def test_an_untouched_rotated_series_is_intact(log: list[Path]) -> None:
    report = verify(log)
    assert report.ok, report.findings
    assert report.records == sum(len(lines(p)) for p in log)
    assert report.first_seq == 0
    assert report.unproven  # no checkpoints given: says what it could not prove


def _rewrite(path: Path, new_lines: list[str]) -> None:
    path.write_text("".join(new_lines))


def test_an_edited_field_is_named_by_file_line_and_seq(log: list[Path]) -> None:
    ls = lines(log[1])
    ls[2] = ls[2].replace('"decision":"block"', '"decision":"allow"')
    _rewrite(log[1], ls)
    report = verify(log)
    (f,) = report.findings
    assert (f.kind, f.file, f.line, f.seq) == ("edited", str(log[1]), 3,
                                              records(log[1])[2]["seq"])


def test_a_deleted_line_is_named(log: list[Path]) -> None:
    ls = lines(log[0])
    gone = json.loads(ls[3])["seq"]
    del ls[3]
    _rewrite(log[0], ls)
    (f,) = verify(log).findings
    assert (f.kind, f.line, f.seq) == ("deleted", 4, gone + 1)
    assert f"seq {gone}" in f.message


def test_two_swapped_lines_are_reordered_not_deleted(log: list[Path]) -> None:
    ls = lines(log[0])
    ls[2], ls[3] = ls[3], ls[2]
    _rewrite(log[0], ls)
    (f,) = verify(log).findings
    assert (f.kind, f.line) == ("reordered", 3)


def test_a_removed_genesis_is_a_missing_head(log: list[Path]) -> None:
    _rewrite(log[0], lines(log[0])[1:])
    (f,) = verify(log).findings
    assert (f.kind, f.line, f.seq) == ("missing head", 1, 1)


def test_starting_from_a_later_file_is_a_missing_head(log: list[Path]) -> None:
    (f,) = verify(log[1:]).findings
    assert f.kind == "missing head"
    assert log[0].name in f.message


def test_a_truncated_tail_is_named_with_the_last_record_left(log: list[Path]) -> None:
    ls = lines(log[-1])
    _rewrite(log[-1], ls[:-2])
    (f,) = verify(log).findings
    assert (f.kind, f.file, f.line) == ("truncated", str(log[-1]), len(ls) - 2)


def test_live_accepts_an_unsealed_last_file_but_says_so(log: list[Path]) -> None:
    _rewrite(log[-1], lines(log[-1])[:-1])  # the seal is not written yet
    report = verify(log, live=True)
    assert report.ok
    assert "not sealed yet" in report.notices[0]


def test_a_file_cut_in_the_middle_of_the_series_is_truncated(log: list[Path]) -> None:
    _rewrite(log[0], lines(log[0])[:-3])
    (f,) = verify(log).findings
    assert (f.kind, f.file) == ("truncated", str(log[0]))


def test_a_missing_middle_file_breaks_the_rotation_link(log: list[Path]) -> None:
    (f,) = verify([log[0], *log[2:]]).findings
    assert (f.kind, f.file, f.line) == ("broken rotation link", str(log[2]), 1)


def test_files_in_the_wrong_order_break_the_rotation_link(log: list[Path]) -> None:
    (f,) = verify([log[0], log[2], log[1]]).findings
    assert f.kind == "broken rotation link"


def test_an_edit_rehashed_in_place_is_caught_by_the_next_link(log: list[Path]) -> None:
    from writ.audit.record import render_line

    ls = lines(log[0])
    rec = json.loads(ls[2])
    del rec["hash"]
    rec["target"] = "innocent.example. A"
    ls[2] = render_line(rec)[0] + "\n"
    _rewrite(log[0], ls)
    (f,) = verify(log).findings
    assert (f.kind, f.line, f.seq) == ("edited", 3, rec["seq"])


@pytest.mark.parametrize(
    ("content", "kind", "line"),
    [
        (b"", "empty file", 1),
        (b"hello, I am a shopping list\n", "not a log", 1),
        (b'{"name": "not a record"}\n', "not a log", 1),
        (b"\x00\xff\xfe binary \x00\n", "not a log", 1),
        (b"[" * 200_000 + b"\n", "not a log", 1),  # deeper than any parser recurses
    ],
)
def test_bad_files_are_findings_not_crashes(tmp_path: Path, content: bytes, kind: str,
                                            line: int) -> None:
    bad = tmp_path / "bad.log"
    bad.write_bytes(content)
    (f,) = verify([bad]).findings
    assert (f.kind, f.file, f.line) == (kind, str(bad), line)


def test_a_corrupt_line_in_the_middle_is_named(log: list[Path]) -> None:
    ls = lines(log[0])
    ls.insert(3, "{not json\n")
    _rewrite(log[0], ls)
    (f,) = verify(log).findings
    assert (f.kind, f.line) == ("corrupt line", 4)


def test_a_missing_file_is_a_finding(tmp_path: Path) -> None:
    (f,) = verify([tmp_path / "nope.log"]).findings
    assert f.kind == "unreadable"


def test_cli_exit_codes_and_output_name_the_record(log: list[Path],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", *map(str, log)]) == 0
    assert "OK" in capsys.readouterr().out
    ls = lines(log[1])
    ls[1] = ls[1].replace("sinkhole", "nxdomain")
    _rewrite(log[1], ls)
    assert main(["audit", "verify", *map(str, log)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {log[1]}:2: seq " in out
    assert "edited" in out


def test_cli_usage_errors_exit_2(log: list[Path]) -> None:
    assert main(["audit", "verify", "--checkpoints", "x", str(log[0])]) == 2


def test_files_listing_is_in_chain_order(tmp_path: Path) -> None:
    paths = write_log(tmp_path, 30, rotate_bytes=2000)
    assert [p.name for p in paths] == sorted(p.name for p in paths)
    assert files(tmp_path) == paths


def test_a_long_verify_reports_progress_up_to_the_whole(tmp_path: Path) -> None:
    paths = write_log(tmp_path, 70_000)  # past one progress step (65,536 lines)
    total = sum(p.stat().st_size for p in paths)
    seen: list[tuple[int, int]] = []
    report = verify(paths, progress=lambda done, of: seen.append((done, of)))
    assert report.ok
    assert len(seen) >= 2
    assert all(of == total for _, of in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert 0 < seen[0][0] < total
    assert seen[-1] == (total, total)
