"""ip/ip_prefix targets through the regulator's commands: `writ orders check`
(the collateral guard, the address report), `writ explain` for addresses and
prefixes, `writ orders diff` (added and lifted addresses as counts)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from writ.cli import main

ORDER = """\
id: IP-1
court: Northgate District Court
case: "1/2026"
issued: 2020-01-10
targets:
  - ip: 203.0.113.7
  - ip_prefix: 198.51.100.0/24
  - file: l.txt
"""
NARROW = """\
id: IP-2
court: Southgate District Court
case: "2/2026"
issued: 2020-02-01
targets:
  - ip_prefix: 198.51.100.0/28
"""
LOOPBACK_POLICY = "ip:\n  allow_ranges: [127.0.0.0/8]\n"


def writ(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "orders"
    d.mkdir()
    (d / "a.yaml").write_text(ORDER)
    (d / "b.yaml").write_text(NARROW)
    (d / "l.txt").write_text("2001:db8::/48\n2001:db8:1::7\n")
    return d


def test_check_reports_every_prefix_and_the_union(
        folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = writ(capsys, "orders", "check", str(folder))
    assert code == 0, out
    assert "5 targets (0 domain, 0 url/url_prefix, 5 ip/ip_prefix" in out
    assert "  ip_prefix 198.51.100.0/24: 256 addresses  [IP-1]" in out
    assert "  ip_prefix 198.51.100.0/28: 16 addresses  [IP-2]" in out
    assert ("  ip_prefix 2001:db8::/48: 1,208,925,819,614,629,174,706,176 addresses  "
            "[IP-1 l.txt]") in out
    # the /28 lies inside the /24 and 2001:db8:1::7 outside the /48: counted once each
    assert "covering 257 IPv4 and 1,208,925,819,614,629,174,706,177 IPv6 addresses" in out


def test_check_refuses_a_wide_prefix_and_names_the_fix(
        folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "b.yaml").write_text(NARROW.replace("198.51.100.0/28", "198.51.0.0/16"))
    code, _, err = writ(capsys, "orders", "check", str(folder))
    assert code == 1
    assert "b.yaml:6: targets[1].ip_prefix: 198.51.0.0/16 covers 65,536 addresses" in err
    assert "collateral_acknowledged: true" in err


def test_the_policy_allows_loopback_and_sets_the_limit(
        folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "b.yaml").write_text(NARROW.replace("198.51.100.0/28", "127.0.0.0/24"))
    code, _, err = writ(capsys, "orders", "check", str(folder))
    assert code == 1
    assert "loopback range 127.0.0.0/8" in err
    policy = tmp_path / "lab.yaml"
    policy.write_text(LOOPBACK_POLICY)
    code, _out, err = writ(capsys, "orders", "check", str(folder), "--policy", str(policy))
    assert code == 0, err
    policy.write_text(LOOPBACK_POLICY + "  max_prefix_ipv4: 28\n")
    code, _, err = writ(capsys, "orders", "check", str(folder), "--policy", str(policy))
    assert code == 1
    assert "198.51.100.0/24 covers 256 addresses" in err


@pytest.mark.parametrize(("target", "rule", "orders"), [
    ("203.0.113.7", "ip 203.0.113.7", ["IP-1"]),
    ("198.51.100.9", "ip_prefix 198.51.100.0/28", ["IP-1", "IP-2"]),
    ("::FFFF:198.51.100.200", "ip_prefix 198.51.100.0/24", ["IP-1"]),
    ("198.51.100.0/28", "ip_prefix 198.51.100.0/28", ["IP-1", "IP-2"]),
    ("198.51.0.0/16", "ip_prefix 198.51.100.0/28", ["IP-1", "IP-2"]),
    ("2001:db8:0:1::/64", "ip_prefix 2001:db8::/48", ["IP-1"]),
    ("http://198.51.100.9/x", "ip_prefix 198.51.100.0/28", ["IP-1", "IP-2"]),
])
def test_explain_addresses_and_prefixes(folder: Path, capsys: pytest.CaptureFixture[str],
                                        target: str, rule: str, orders: list[str]) -> None:
    code, out, _ = writ(capsys, "explain", "--orders", str(folder), "--json", target)
    assert code == 0
    e = json.loads(out)
    assert (e["decision"], e["rule"], e["orders"]) == ("block", rule, orders)


def test_explain_sentences_and_bad_addresses(
        folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = writ(capsys, "explain", "--orders", str(folder),
                        "198.51.100.0/28", "203.0.113.8", "198.51.100.1/24")
    lines = out.splitlines()
    assert code == 1
    assert lines[0].startswith("BLOCK      198.51.100.0/28: 2 rule(s) cover part or all")
    assert "Southgate District Court" in lines[0]
    assert lines[1].startswith("ALLOW      203.0.113.8")
    assert lines[2].startswith("INVALID    198.51.100.1/24")
    assert "198.51.100.0/24" in lines[2]


def test_diff_counts_added_and_lifted_addresses(
        folder: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = writ(capsys, "orders", "apply", str(folder), "--redis", redis_url)
    assert code == 0, err
    (folder / "b.yaml").write_text(NARROW.replace("198.51.100.0/28", "203.0.113.0/24"))
    (folder / "l.txt").write_text("2001:db8:1::7\n")
    code, out, _ = writ(capsys, "orders", "diff", str(folder), "--redis", redis_url)
    assert code == 0
    assert "  + ip_prefix 203.0.113.0/24" in out
    assert "  - ip_prefix 2001:db8::/48" in out
    # 203.0.113.0/24 adds 255 (203.0.113.7 was blocked); the /28 lay inside the /24
    assert ("addresses: +255 IPv4 and 0 IPv6 addresses blocked, "
            "-0 IPv4 and 1,208,925,819,614,629,174,706,176 IPv6 addresses lifted") in out
