"""`writ audit report --html` on logs with known enforcement windows (scenario.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.audit.htmlreport.page import table
from tests.audit.htmlreport.scenario import build
from writ.audit.recorder import Outcome, Record
from writ.cli import main


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    return build(tmp_path_factory.mktemp("scenario"))


def report(tmp: Path, files: list[Path], *extra: str, name: str = "report.html") -> str:
    out = tmp / name
    assert main(["audit", "report", "--html", str(out), *extra, *map(str, files)]) == 0
    return out.read_text(encoding="utf-8")


def test_the_decision_after_the_revocation_and_the_one_before_effective_are_findings(
        tmp_path: Path, logs: tuple[list[Path], Path]) -> None:
    files, orders = logs
    html = report(tmp_path, files, "--orders", str(orders), "--silent-after", "3h")
    rows = table(html, "outside")
    assert [(r["order"], r["node"], r["decisions"], r["first"]) for r in rows] == [
        ("EX-A", "edge-1", "1", "2015-09-08T14:00:00.000000Z"),
        ("EX-B", "edge-2", "1", "2015-09-08T06:00:00.000000Z"),
    ]
    assert rows[0]["why"] == "after revocation by EX-A-REV (2015-09-08T12:00:00.000000Z)"
    assert rows[1]["why"] == "before the order was effective (2015-09-09T00:00:00.000000Z)"
    assert "2 decision(s) named an order that was not in force" in html


def test_the_verdict_comes_first_and_names_the_crash_recovery(
        tmp_path: Path, logs: tuple[list[Path], Path]) -> None:
    files, orders = logs
    html = report(tmp_path, files, "--orders", str(orders))
    verdict = html.index('id="verification"')
    assert verdict < html.index('id="findings"') < html.index('id="activity"')
    assert re.search(r'data-node="edge-1">.{0,80}edge-1: INTACT', html)
    assert re.search(r'data-node="edge-2">.{0,80}edge-2: INTACT', html)
    notices = re.findall(r'<li class="notice">NOTICE ([^<]*)</li>', html)
    assert len(notices) == 1
    assert "decisions.000001.log: not sealed" in notices[0]
    assert "NOT PROVEN without signed checkpoints" in html
    gaps = {r["node"]: r for r in table(html, "gaps")}
    assert [gaps["edge-1"][k] for k in ("crash recoveries", "restarts")] == ["1", "0"]
    assert [gaps["edge-2"][k] for k in ("crash recoveries", "restarts")] == ["0", "1"]
    assert gaps["edge-2"]["decisions dropped (not logged)"] == "3"
    marks = [(r["time"], r["node"], r["mark"]) for r in table(html, "marks")]
    assert marks == [("2015-09-07T12:00:00.000000Z", "edge-2", "dropped"),
                     ("2015-09-07T20:00:00.000000Z", "edge-2", "restart"),
                     ("2015-09-08T02:00:00.000000Z", "edge-1", "crash recovery")]


def test_a_node_that_stops_logging_is_silent_until_the_others_end(
        tmp_path: Path, logs: tuple[list[Path], Path]) -> None:
    files, _ = logs
    html = report(tmp_path, files, "--silent-after", "12h")
    rows = table(html, "silences")
    assert [(r["node"], r["silent from"], r["until"], r["for"]) for r in rows] == [
        ("edge-2", "2015-09-08T08:00:00.000000Z",
         "2015-09-09T12:00:00.000000Z (others' last record)", "28 h 00 min")]


def test_without_an_order_set_the_windows_are_not_judged(
        tmp_path: Path, logs: tuple[list[Path], Path]) -> None:
    html = report(tmp_path, logs[0])
    assert "Not computed: give the order set" in html
    assert table(html, "outside") == []


def test_an_edited_record_fails_that_nodes_verdict_and_the_exit_code(
        tmp_path: Path, logs: tuple[list[Path], Path]) -> None:
    files, orders = logs
    edge1 = [f for f in files if f.parent.name == "edge-1"]
    edge2 = [tmp_path / f.name for f in files if f.parent.name == "edge-2"]
    for f in edge2:
        f.write_text((logs[0][0].parent.parent / "edge-2" / f.name).read_text())
    edge2[0].write_text(edge2[0].read_text().replace('"decision":"block"',
                                                     '"decision":"allow"', 1))
    out = tmp_path / "r.html"
    code = main(["audit", "report", "--html", str(out), "--orders", str(orders),
                 *map(str, edge1), *map(str, edge2)])
    html = out.read_text()
    assert code == 1
    assert re.search(r'data-node="edge-1">.{0,80}edge-1: INTACT', html)
    m = re.search(r'data-node="edge-2">.{0,80}edge-2: FAILED</span><br>first finding: '
                  r"<code>[^<]*decisions.000001.log:2</code> seq 1: <b>edited</b>", html)
    assert m, html[html.index('id="verification"'):][:1500]


def test_the_same_inputs_give_the_same_bytes(tmp_path: Path,
                                             logs: tuple[list[Path], Path]) -> None:
    files, orders = logs
    a = report(tmp_path, files, "--orders", str(orders), name="a.html")
    b = report(tmp_path, files, "--orders", str(orders), name="b.html")
    assert a == b
    assert "Generated" not in a
    stamped = report(tmp_path, files, "--stamp", name="c.html")
    assert re.search(r"Generated \d{4}-\d\d-\d\dT", stamped)


def test_the_page_makes_no_request_and_has_no_script(tmp_path: Path,
                                                     logs: tuple[list[Path], Path]) -> None:
    html = report(tmp_path, logs[0], "--orders", str(logs[1]))
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert "default-src 'none'" in html
    assert html.count("<svg") >= 4  # activity, two orders, kinds, versions


@pytest.mark.parametrize(("flags", "message"), [
    (["--silent-after", "soon"], "--silent-after: not a duration"),
    (["--json"], "choose one"),
    (["--order", "EX-A"], "--order does not go with --html"),
    (["--checkpoints", "cp.log"], "--checkpoints and --public-key go together"),
])
def test_bad_invocations_exit_2_with_a_message(tmp_path: Path, logs: tuple[list[Path], Path],
                                               capsys: pytest.CaptureFixture[str],
                                               flags: list[str], message: str) -> None:
    out = tmp_path / "r.html"
    assert main(["audit", "report", "--html", str(out), *flags, str(logs[0][0])]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_missing_output_folder_is_a_usage_error(tmp_path: Path, logs: tuple[list[Path], Path],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "nope" / "r.html"
    assert main(["audit", "report", "--html", str(out), str(logs[0][0])]) == 2
    assert "--html: no such folder" in capsys.readouterr().err


HOSTILE = '"><script>alert(1)</script><img src="http://tracker.example/x.png">'


def test_a_hostile_target_or_node_name_is_text_not_markup(tmp_path: Path,
                                                          logs: tuple[list[Path], Path]) -> None:
    """A target is whatever a client sent and a node name whatever the operator set:
    both land in the page (as the example of a finding) and must stay text."""
    import dataclasses

    from writ.audit import AuditLog
    from writ.audit.files import chain_files
    from writ.policies import AuditPolicy

    d = tmp_path / "hostile"
    pol = dataclasses.replace(AuditPolicy(), path=str(d / "decisions.log"),
                              key_file=str(d / "client.key"),
                              signing_key_file=str(d / "signing.key"),
                              checkpoint_file=str(d / "cp.log"), fsync="never")
    with AuditLog(pol, f"edge{HOSTILE}", clock=lambda: 1441000000.0) as log:  # 2015-08-31
        log.record(component="http", client="192.0.2.1", target=f"GET http://x.example/{HOSTILE}",
                   decision="block", action="451", orders=("EX-A", f"X{HOSTILE}"),
                   rule=f"domain {HOSTILE}", blocklist_version=HOSTILE)
    files = [p for _, p in chain_files(d / "decisions.log")]
    html = report(tmp_path, files, "--orders", str(logs[1]))
    assert "<script" not in html.lower()
    assert "<img" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert len(table(html, "outside")) == 2  # before EX-A was effective; an unknown order


def test_past_forty_orders_the_rest_are_rows_not_charts(tmp_path: Path) -> None:
    import dataclasses

    from writ.audit import AuditLog
    from writ.audit.files import chain_files
    from writ.policies import AuditPolicy

    d = tmp_path / "many"
    pol = dataclasses.replace(AuditPolicy(), path=str(d / "decisions.log"),
                              key_file=str(d / "client.key"),
                              signing_key_file=str(d / "signing.key"),
                              checkpoint_file=str(d / "cp.log"), fsync="never")
    with AuditLog(pol, "edge-1", clock=lambda: 1441584000.0) as log:
        for i in range(45):
            for _ in range(45 - i):  # EX-00 most decisions, EX-44 fewest
                log.record(component="dns", client="192.0.2.1", target=f"s{i}.example. A",
                           decision="block", action="sinkhole", orders=(f"EX-{i:02d}",),
                           rule=f"domain s{i}.example", blocklist_version="v1")
    html = report(tmp_path, [p for _, p in chain_files(d / "decisions.log")])
    charted = re.findall(r'<section class="order" id="order-([^"]+)"', html)
    assert charted == [f"EX-{i:02d}" for i in range(40)]
    rows = table(html, "other-orders-table")
    assert [(r["order"], r["edge-1"]) for r in rows] == [
        ("EX-40", "5"), ("EX-41", "4"), ("EX-42", "3"), ("EX-43", "2"), ("EX-44", "1")]


def test_two_processes_with_different_hash_seeds_write_the_same_bytes(
        tmp_path: Path, logs: tuple[list[Path], Path]) -> None:
    """Set and dict order must not leak into the page (str hashes differ per process)."""
    import os
    import subprocess
    import sys

    files, orders = logs
    pages = []
    for seed in ("1", "2"):
        out = tmp_path / f"seed{seed}.html"
        env = {**os.environ, "PYTHONHASHSEED": seed}
        subprocess.run([sys.executable, "-m", "writ.cli", "audit", "report", "--html", str(out),
                        "--orders", str(orders), *map(str, files)], env=env, check=True,
                       capture_output=True, timeout=120)
        pages.append(out.read_bytes())
    assert pages[0] == pages[1]


def test_the_documents_flags_are_refused_without_html(logs: tuple[list[Path], Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "report", "--orders", str(logs[1]), "--stamp", str(logs[0][0])]) == 2
    assert "--orders, --stamp: only with --html OUT" in capsys.readouterr().err


def test_dollar_signs_in_log_fields_are_text_not_mathtext(tmp_path: Path,
                                                          logs: tuple[list[Path], Path]) -> None:
    """matplotlib reads `$…$` as TeX math; a node, action or order named with dollar
    signs must be drawn as written, not crash the report."""
    import dataclasses

    from writ.audit import AuditLog
    from writ.audit.files import chain_files
    from writ.policies import AuditPolicy

    d = tmp_path / "dollars"
    pol = dataclasses.replace(AuditPolicy(), path=str(d / "decisions.log"),
                              key_file=str(d / "client.key"),
                              signing_key_file=str(d / "signing.key"),
                              checkpoint_file=str(d / "cp.log"), fsync="never")
    with AuditLog(pol, "edge$\\frac{", clock=lambda: 1441584000.0) as log:
        # An action no writ writes (a log from elsewhere, or edited): enqueued as
        # it stands, since AuditLog.record() only takes writ's own actions.
        log.enqueue(Record(1441584000.0, "dns", "192.0.2.1", "x.example. A", Outcome.BLOCK,
                           "$\\undefinedcommand{x}$", ("EX-$^$",),  # type: ignore[arg-type]
                           "domain x.example", "$v$"))
    html = report(tmp_path, [p for _, p in chain_files(d / "decisions.log")])
    assert "$\\undefinedcommand{x}$" in html
