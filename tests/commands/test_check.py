"""`writ orders check [DIR]` as a regulator runs it: exit codes and output."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ERROR_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<field>[^:]+): (?P<msg>.+)$")


def writ(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "writ.cli", *args],
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )


def test_sample_orders_are_valid() -> None:
    r = writ("orders", "check", "court_orders", cwd=REPO)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == (
        "court_orders: valid: 5 acts (3 block, 1 restore, 1 revoke), 10 targets "
        "(6 domain, 4 url/url_prefix; 1 bulk list), 3 URLs kept blocked by restorations\n"
    )


def test_default_folder_is_court_orders(tmp_path: Path) -> None:
    shutil.copytree(REPO / "court_orders", tmp_path / "court_orders")
    r = writ("orders", "check", cwd=tmp_path)
    assert r.returncode == 0
    assert r.stdout.startswith("court_orders: valid: 5 acts")


def test_invalid_orders_exit_1_with_one_line_per_error(tmp_path: Path) -> None:
    orders = tmp_path / "orders"
    orders.mkdir()
    (orders / "a.yaml").write_text(
        "id: EX-1\ncourt: Court\ncase: x\nissued: 2015-13-01\ntargets:\n  - domain: com\n"
        "---\n- not an order\n",
        encoding="utf-8",
    )
    r = writ("orders", "check", "orders", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stdout == ""
    *lines, count = r.stderr.splitlines()
    parsed = [ERROR_LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [(m["file"], m["line"], m["field"]) for m in parsed if m] == [
        ("orders/a.yaml", "4", "issued"),
        ("orders/a.yaml", "6", "targets[1].domain"),
        ("orders/a.yaml", "8", "document"),
    ]
    assert lines[0].endswith("[EX-1]")
    assert count == "writ orders check: 3 errors in orders; this set would not be published"
    assert "Traceback" not in r.stderr


def test_hostile_yaml_is_an_error_not_a_crash(tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}" if i > 1 else "*a"] * 10) + "]\n"
        for i in range(1, 20))
    (tmp_path / "bomb.yaml").write_text(bomb, encoding="utf-8")
    (tmp_path / "obj.yaml").write_text("!!python/object/apply:os.system ['true']\n",
                                       encoding="utf-8")
    r = writ("orders", "check", str(tmp_path), cwd=tmp_path)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert "bomb.yaml:2: a1: YAML aliases (*name) are not allowed" in r.stderr
    assert "obj.yaml:1: document: YAML tag" in r.stderr


def test_no_such_folder_is_a_bad_invocation(tmp_path: Path) -> None:
    r = writ("orders", "check", "nope", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == "writ: orders check: no such folder: nope\n"


def test_unknown_time_zone_is_a_bad_invocation(tmp_path: Path) -> None:
    r = writ("orders", "check", str(REPO / "court_orders"), "--tz", "Mars/Olympus", cwd=tmp_path)
    assert r.returncode == 2
    assert "unknown time zone 'Mars/Olympus'" in r.stderr
