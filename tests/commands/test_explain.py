"""`writ explain`: decisions with provenance for the sample orders, over time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ORDERS = str(ROOT / "court_orders")


def writ(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "writ.cli", *args], input=stdin,
                          capture_output=True, text=True, check=False, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def explain_json(*args: str, stdin: str | None = None) -> list[dict]:
    r = writ("explain", "--orders", ORDERS, "--json", *args, stdin=stdin)
    assert r.returncode in (0, 1), r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


@pytest.mark.parametrize(
    ("at", "target", "decision", "orders"),
    [
        # the suspension, before the restoration
        ("2015-09-10", "videohost.example", "block", ["EX-2015-0907-VH"]),
        ("2015-09-10", "https://videohost.example/v/1", "block", ["EX-2015-0907-VH"]),
        ("2015-09-06T17:59:59Z", "videohost.example", "allow", []),  # effective at +06:00
        # three weeks later: the host is restored, the named videos stay blocked
        ("2015-10-01", "https://videohost.example/v/1", "allow", []),
        ("2015-10-01", "http://VIDEOHOST.example:80/v/136071202/#t=5", "block",
         ["EX-2015-0907-VH", "EX-2015-0928-VH-R"]),
        ("2015-10-01", "videohost.example", "url-rules", ["EX-2015-0907-VH", "EX-2015-0928-VH-R"]),
        # the overlapping order of another court also names one of the videos
        ("2016-04-01", "https://videohost.example/v/136071201", "block",
         ["EX-2015-0907-VH", "EX-2015-0928-VH-R", "EX-2016-0314-RVSD"]),
        ("2016-04-01", "www.forum.example", "block", ["EX-2016-0314-RVSD"]),
        ("2016-04-01", "m.www.forum.example", "allow", []),
        ("2016-04-01", "http://news.example/forum/thread/9", "block", ["EX-2016-0314-RVSD"]),
        ("2016-04-01", "http://news.example/forumx", "allow", []),
        # the blog order, and the appeal that revoked it
        ("2017-06-01", "steppe-blog.example", "block", ["EX-2017-0510-BLOG"]),
        ("2017-08-01", "steppe-blog.example", "allow", []),
    ],
)
def test_sample_orders_over_time(at: str, target: str, decision: str, orders: list[str]) -> None:
    [e] = explain_json("--at", at, target)
    assert (e["target"], e["decision"], e["orders"]) == (target, decision, orders)
    assert e["blocklist_version"]


def test_human_output_says_why() -> None:
    r = writ("explain", "--orders", ORDERS, "--at", "2015-10-01", "videohost.example",
             "https://videohost.example/v/136071201", "https://videohost.example/v/7")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith("URL-RULES  videohost.example: DNS resolves this host")
    assert lines[1].startswith("BLOCK      https://videohost.example/v/136071201")
    assert "rule `url videohost.example/v/136071201`" in lines[1]
    assert "restoration of Northgate District Court" in lines[1]
    assert "access was restored by EX-2015-0928-VH-R" in lines[2]


def test_targets_from_stdin_one_a_line() -> None:
    got = explain_json("--at", "2016-04-01", "-",
                       stdin="www.forum.example\n\n# a comment\nnews.example\n")
    assert [(e["target"], e["decision"]) for e in got] == [
        ("www.forum.example", "block"), ("news.example", "url-rules")]


def test_invalid_target_is_reported_and_exits_1() -> None:
    r = writ("explain", "--orders", ORDERS, "bad..example", "videohost.example")
    assert r.returncode == 1
    assert r.stdout.splitlines()[0].startswith("INVALID    bad..example")
    assert "Traceback" not in r.stderr


def test_bad_invocations_exit_2() -> None:
    r = writ("explain", "--orders", "/no/such/folder", "x.example")
    assert r.returncode == 2
    assert "no such folder" in r.stderr
    r = writ("explain", "--orders", ORDERS, "--at", "last tuesday", "x.example")
    assert r.returncode == 2
    assert "--at" in r.stderr


def test_invalid_orders_are_listed_not_explained(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("id: X\ncourt: C\ncase: '1'\nissued: 2015-13-40\n"
                                       "targets: [{domain: a.example}]\n")
    r = writ("explain", "--orders", str(tmp_path), "a.example")
    assert r.returncode == 1
    assert "bad.yaml:4: issued:" in r.stderr
    assert r.stdout == ""


def test_explain_from_redis_answers_the_published_version(redis_url: str) -> None:
    r = writ("orders", "apply", ORDERS, "--redis", redis_url)
    assert r.returncode == 0, r.stderr
    r = writ("explain", "--redis", redis_url, "--json", "--at", "2016-04-01",
             "www.forum.example")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["orders"] == ["EX-2016-0314-RVSD"]


def test_explain_shows_how_a_url_is_read() -> None:
    [e] = explain_json("--at", "2015-10-01", "http://videohost.example/v%2F136071202;jsessionid=x")
    assert e["canonical"] == "videohost.example/v%2F136071202;jsessionid=x"
    assert e["read_as"] == "videohost.example/v/136071202"
    assert (e["decision"], e["orders"]) == ("block", ["EX-2015-0907-VH", "EX-2015-0928-VH-R"])
    r = writ("explain", "--orders", ORDERS, "--at", "2015-10-01", "http://2130706433/x")
    assert "read as 127.0.0.1/x" in r.stdout


def test_explain_from_redis_names_who_signed_each_act(redis_url: str) -> None:
    keyring = str(ROOT / "keys" / "demo-DO-NOT-USE" / "keyring.yaml")
    r = writ("orders", "apply", ORDERS, "--redis", redis_url, "--keyring", keyring)
    assert r.returncode == 0, r.stderr
    r = writ("explain", "--redis", redis_url, "--at", "2016-04-01", "www.forum.example")
    assert r.returncode == 0, r.stderr
    assert "signed by demo-issuer" in r.stdout
