"""`writ icap` and `writ serve --icap` from the command line: bad input is a
clear message and exit 2, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ports import taken_port
from writ.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("argv", "says"), [
    (["icap", "--orders", str(ROOT / "court_orders"), "--listen", "nope"],
     "--listen: missing port"),
    (["icap", "--orders", "/nonexistent/orders"], "--orders: no such folder"),
    (["serve", "--orders", str(ROOT / "court_orders"), "--icap", "::1:1344"],
     "--icap: missing port"),
    (["icap", "--orders", str(ROOT / "court_orders"), "--metrics", "nope"],
     "--metrics: missing port"),
    (["dns", "--orders", str(ROOT / "court_orders"), "--metrics", "127.0.0.1:99999"],
     "--metrics"),
    (["proxy", "--orders", str(ROOT / "court_orders"), "--metrics", "::1:9"],
     "--metrics: missing port"),
])
def test_bad_flags_exit_2(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
                          ) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err
    assert "Traceback" not in err


def test_a_taken_port_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with taken_port() as port:
        code = main(["icap", "--orders", str(ROOT / "court_orders"),
                     "--listen", f"127.0.0.1:{port}", "--state-dir", str(tmp_path / "st")])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot start" in err
    assert "Traceback" not in err


def test_a_bad_icap_policy_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("icap:\n  service: 'a/b'\n  max_connections: 0\n")
    assert main(["icap", "--orders", str(ROOT / "court_orders"), "--policy", str(policy)]) == 2
    err = capsys.readouterr().err
    assert "icap.service" in err
    assert "icap.max_connections" in err


def test_a_taken_metrics_port_is_a_clear_error(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with taken_port() as port:
        code = main(["icap", "--orders", str(ROOT / "court_orders"), "--listen", "127.0.0.1:0",
                     "--metrics", f"127.0.0.1:{port}", "--state-dir", str(tmp_path / "st")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"cannot start: metrics listener on 127.0.0.1:{port}" in err
    assert "Traceback" not in err
