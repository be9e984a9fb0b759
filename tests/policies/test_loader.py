"""Policy files: the samples load, every key is documented, bad values are
reported with FILE:LINE: KEY, all of them in one run."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from writ.cli import main
from writ.policies import (
    DnsAction,
    Policy,
    PolicyError,
    TlsMode,
    UrlRuleMode,
    format_endpoint,
    load_policy,
    parse_endpoint,
    parse_policy,
)

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"


def errors_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as e:
        parse_policy(text, "p.yaml")
    return e.value.errors


# -- the sample files ------------------------------------------------------


@pytest.mark.parametrize("path", sorted(POLICIES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_sample_policy_loads(path: Path) -> None:
    assert isinstance(load_policy(path), Policy)


def test_default_yaml_is_the_model_default() -> None:
    assert load_policy(POLICIES / "default.yaml") == Policy()


def test_default_policy_is_loopback_and_unprivileged() -> None:
    p = load_policy(POLICIES / "default.yaml")
    assert p.dns.listen == ("127.0.0.1:5300",)
    assert p.proxy.listen == "127.0.0.1:8080"
    assert p.web.listen == "127.0.0.1:8451"
    assert p.dns.upstreams == ("127.0.0.1:53",)
    assert p.dns.sinkhole_ipv4 == ("127.0.0.1",)
    assert p.audit.path.startswith("state/")


def _keys_with_comment(path: Path) -> dict[str, bool]:
    """Every dotted key of the file -> whether a comment line sits right above it."""
    lines = path.read_text().splitlines()
    root = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    out: dict[str, bool] = {}

    def walk(node: yaml.MappingNode, prefix: str) -> None:
        for k, v in node.value:
            line = k.start_mark.line
            out[prefix + k.value] = line > 0 and lines[line - 1].strip().startswith("#")
            if isinstance(v, yaml.MappingNode):
                walk(v, f"{prefix}{k.value}.")

    walk(root, "")
    return out


def _model_keys() -> set[str]:
    keys: set[str] = set()
    for f in dataclasses.fields(Policy):
        default = Policy()
        sub = getattr(default, f.name)
        if dataclasses.is_dataclass(sub):
            keys |= {f"{f.name}.{g.name}" for g in dataclasses.fields(sub)}
        else:
            keys.add(f.name)
    return keys


def test_default_yaml_lists_and_comments_every_key() -> None:
    documented = _keys_with_comment(POLICIES / "default.yaml")
    leaves = {k for k in documented
              if k not in ("dns", "proxy", "icap", "web", "pages", "audit", "trust", "publish",
                           "ip")}
    assert leaves == _model_keys()
    undocumented = [k for k in leaves if not documented[k]]
    assert undocumented == []


def test_isp_edge_sample_shows_steering_interception_and_truncation() -> None:
    p = load_policy(POLICIES / "isp-edge.yaml")
    assert p.dns.url_rules is UrlRuleMode.STEER
    assert p.proxy.tls is TlsMode.INTERCEPT
    assert p.proxy.steer_http == ("192.0.2.8:80", "[2001:db8::8]:80")
    assert p.proxy.steer_tls == ("192.0.2.8:443", "[2001:db8::8]:443")
    assert p.audit.client_privacy.value == "truncate"
    doc = [ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "2001:db8::/32")]
    addrs = [*p.dns.sinkhole_ipv4, *p.dns.sinkhole_ipv6, *p.dns.steer_ipv4, *p.dns.steer_ipv6]
    addrs += [parse_endpoint(e, 53)[0] for e in (*p.dns.listen, *p.dns.upstreams)]
    addrs += [parse_endpoint(e)[0] for e in (*p.proxy.steer_http, *p.proxy.steer_tls)]
    for a in addrs:  # reserved documentation addresses only
        ip = ipaddress.ip_address(a)
        assert any(ip in n for n in doc if n.version == ip.version), a


# -- valid input -----------------------------------------------------------


def test_empty_file_is_the_default_policy() -> None:
    assert parse_policy("") == Policy()
    assert parse_policy("# only a comment\n") == Policy()


def test_values_are_stored_canonically() -> None:
    p = parse_policy(
        """
dns:
  listen: "[0:0::1]:5300"
  upstreams: [192.0.2.1, "[2001:db8::1]", 192.0.2.2:5353]
  action: nxdomain
  allow_clients: 192.0.2.0/24
  upstream_timeout: 1
"""
    )
    assert p.dns.listen == ("[::1]:5300",)
    assert p.dns.upstreams == ("192.0.2.1:53", "[2001:db8::1]:53", "192.0.2.2:5353")
    assert p.dns.action is DnsAction.NXDOMAIN
    assert p.dns.allow_clients == (ipaddress.ip_network("192.0.2.0/24"),)
    assert p.dns.upstream_timeout == 1.0
    assert p.proxy == Policy().proxy  # sections left out keep their defaults


def test_optional_keys_accept_null() -> None:
    p = parse_policy("web: {token_file: null}\naudit: {rotate_seconds: null, key_rotation: daily}")
    assert p.web.token_file is None
    assert p.audit.rotate_seconds is None
    assert p.audit.key_rotation == "daily"


# -- invalid input: one error each, naming line and key ---------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("colour: blue", "p.yaml:1: colour: unknown key"),
        ("dns:\n  listn: [127.0.0.1:53]", "p.yaml:2: dns.listn: unknown key"),
        ("dns:\n  listen: 127.0.0.1", "p.yaml:2: dns.listen: missing port"),
        ("dns:\n  listen: 127.0.0.1:0", "p.yaml:2: dns.listen: port must be"),
        ("dns:\n  listen: 127.0.0.1:65536", "p.yaml:2: dns.listen: port must be"),
        ("dns:\n  listen: ns.example:53", "p.yaml:2: dns.listen: expected an IP address"),
        ("dns:\n  upstreams: ['[::1:53']", "p.yaml:2: dns.upstreams: unterminated"),
        ("dns:\n  action: drop", "dns.action: expected one of nxdomain, refused, sinkhole"),
        ("dns:\n  url_rules: block", "p.yaml:2: dns.url_rules: expected one of pass, steer"),
        ("dns:\n  sinkhole_ipv4: ['::1']", "p.yaml:2: dns.sinkhole_ipv4: expected an IPv4 address"),
        ("dns:\n  steer_ipv6: [192.0.2.8]", "p.yaml:2: dns.steer_ipv6: expected an IPv6 address"),
        ("dns:\n  allow_clients: [0.0.0.0/0]", "p.yaml:2: dns.allow_clients: 0.0.0.0/0 would make"),
        ("dns:\n  allow_clients: ['::/0']", "would make an open resolver"),
        ("dns:\n  allow_clients: [10.1.2.3/8]", "did you mean 10.0.0.0/8?"),
        ("dns:\n  allow_clients: [10.0.0.0/33]", "expected a network"),
        ("dns:\n  block_ttl: '60'", "dns.block_ttl: expected a whole number, got the text '60'"),
        ("dns:\n  block_ttl: -1", "dns.block_ttl: must be between 0 and 86400"),
        ("dns:\n  workers: true", "dns.workers: expected a whole number, got a boolean"),
        ("dns:\n  upstream_timeout: 0", "dns.upstream_timeout: must be more than 0"),
        ("dns:\n  listen: {a: 1}", "p.yaml:2: dns.listen: expected a single value, got a mapping"),
        ("dns: [1, 2]", "p.yaml:1: dns: expected a mapping of keys"),
        ("proxy:\n  tls: mitm", "p.yaml:2: proxy.tls: expected one of passthrough, intercept"),
        ("proxy:\n  mode: socks5", "p.yaml:2: proxy.mode: expected one of regular, transparent"),
        ("proxy:\n  listen: [127.0.0.1:8080]", "proxy.listen: expected a single value, got a list"),
        ("proxy:\n  workers: 65", "p.yaml:2: proxy.workers: must be between 0 and 64, got 65"),
        ("proxy:\n  workers: -1", "p.yaml:2: proxy.workers: must be between 0 and 64"),
        ("web:\n  listen: 8451", "p.yaml:2: web.listen: expected ADDRESS:PORT"),
        ("audit:\n  log_allowed: 'yes please'", "p.yaml:2: audit.log_allowed: expected true"),
        ("audit:\n  client_privacy: hash", "client_privacy: expected one of pseudonymise"),
        ("audit:\n  fsync: always", "audit.fsync: expected one of batch, interval, never"),
        ("audit:\n  key_rotation: hourly", "audit.key_rotation: expected one of daily, weekly"),
        ("audit:\n  path: ''", "audit.path: expected non-empty text"),
        ("audit:\n  rotate_bytes: 10", "audit.rotate_bytes: must be at least 4096"),
        ("timezone: Mars/Olympus", "p.yaml:1: timezone: unknown time zone 'Mars/Olympus'"),
        ("timezone: ../../etc/passwd", "timezone: unknown time zone"),
        ("fail: maybe", "p.yaml:1: fail: expected one of closed, open"),
        ("transparency_url: isp.example/blocking", "transparency_url: expected an absolute http"),
        ("transparency_url: javascript:alert(1)", "transparency_url: expected an absolute http"),
        ("transparency_url: 'https://isp.example:99999/'", "transparency_url: not a valid URL"),
        ("node: 'edge 1'", "p.yaml:1: node: expected a node name"),
        ("operator: null", "operator: expected non-empty text"),
        ("node: a\nnode: b", "p.yaml:2: node: duplicate key"),
        ("- a\n- b", "p.yaml:1: policy: expected a mapping of keys at the top level"),
        ("dns:\n  listen: [127.0.0.1:53\n", "policy: not valid YAML"),
        ("a: 1\n---\nb: 2\n", "policy: not valid YAML"),
        ("node: !!python/name:os.system ''", "p.yaml:1: node: unreadable value"),
        ("node: !!python/object/apply:os.system ['true']", "node: expected a single value"),
        ("dns:\n  action: nxdomain\n  listen: []", "p.yaml:3: dns.listen: needs at least one"),
        ("dns:\n  allow_clients: []", "dns.allow_clients: empty: no client could query"),
        ("dns:\n  sinkhole_ipv4: []\n  sinkhole_ipv6: []", "dns.action: sinkhole needs"),
        ("dns:\n  url_rules: steer\n  steer_ipv4: []\n  steer_ipv6: []", "p.yaml:2: dns.url_rules"),
        ("proxy:\n  listen: 127.0.0.1:8451", "p.yaml:2: proxy.listen: 127.0.0.1:8451 collides"),
        ("web:\n  listen: 0.0.0.0:8080", "web.listen: 0.0.0.0:8080 collides with proxy.listen"),
        ("proxy:\n  steer_http: [192.0.2.8]", "p.yaml:2: proxy.steer_http: missing port"),
        ("proxy:\n  steer_tls: [steer.example:443]", "proxy.steer_tls: expected an IP address"),
        ("proxy:\n  steer_http: [0.0.0.0:8080]", "proxy.steer_http: 0.0.0.0:8080 collides"),
        ("proxy:\n  steer_http: ['[::1]:80']\n  steer_tls: ['[::1]:80']",
         "proxy.steer_tls: [::1]:80 collides with proxy.steer_http"),
        ("dns:\n  metrics: nowhere", "p.yaml:2: dns.metrics: missing port"),
        ("proxy:\n  metrics: [127.0.0.1:9]", "p.yaml:2: proxy.metrics: expected a single value"),
        ("icap:\n  metrics: 127.0.0.1:8451", "p.yaml:2: icap.metrics: 127.0.0.1:8451 collides "
         "with web.listen"),
        ("dns:\n  metrics: 127.0.0.1:9531\nproxy:\n  metrics: 0.0.0.0:9531",
         "proxy.metrics: 0.0.0.0:9531 collides with dns.metrics"),
    ],
)
def test_invalid_value_is_reported_where(text: str, expected: str) -> None:
    errs = errors_of(text)
    assert len(errs) == 1, errs
    assert expected in errs[0]


def test_all_errors_are_reported_in_one_run() -> None:
    errs = errors_of(
        "dns:\n"
        "  listen: [127.0.0.1, 127.0.0.1:53]\n"
        "  action: drop\n"
        "proxy:\n"
        "  tls: mitm\n"
        "audit:\n"
        "  fsync: always\n"
        "timezone: Nowhere/City\n"
        "colour: blue\n"
    )
    assert [e.split(": ")[0] + ": " + e.split(": ")[1] for e in errs] == [
        "p.yaml:2: dns.listen",
        "p.yaml:3: dns.action",
        "p.yaml:5: proxy.tls",
        "p.yaml:7: audit.fsync",
        "p.yaml:8: timezone",
        "p.yaml:9: colour",
    ]


def test_unsafe_yaml_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    errs = errors_of(f"node: !!python/object/apply:os.system ['touch {marker}']")
    assert errs
    assert not marker.exists()


def test_unreadable_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(PolicyError) as e:
        load_policy(tmp_path / "missing.yaml")
    where = tmp_path / "missing.yaml"
    assert e.value.errors == [f"{where}:1: policy: cannot read: No such file or directory"]
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"operator: \xe9\n")
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(bad)


# -- endpoints -------------------------------------------------------------


@given(
    st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
    st.integers(min_value=1, max_value=65535),
)
def test_endpoint_round_trips(
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
) -> None:
    text = format_endpoint(str(addr), port)
    assert parse_endpoint(text) == (str(addr), port)


# -- writ policy check -----------------------------------------------------


def test_policy_check_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(POLICIES / "default.yaml")]) == 0
    assert "default.yaml: ok" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("dns:\n  action: drop\n")
    assert main(["policy", "check", str(POLICIES / "default.yaml"), str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2: dns.action: expected one of" in err
    assert "Traceback" not in err


# -- the no-open-resolver guard looks at the union, not at each network (issue 11, finding 8)

@pytest.mark.parametrize("nets", [
    ["0.0.0.0/1", "128.0.0.0/1"],
    ["'::/1'", "'8000::/1'"],
    ["'2000::/3'"],
    ["1.0.0.0/8", "2.0.0.0/8"],  # two /8s of public space: more than one /8
    ["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"],
])
def test_allow_lists_covering_a_wide_public_range_are_refused(nets: list[str]) -> None:
    (err,) = errors_of("dns:\n  allow_clients: [" + ", ".join(nets) + "]")
    assert err.startswith("p.yaml:2: dns.allow_clients: ")
    assert "open resolver" in err
    assert "public" in err


@pytest.mark.parametrize("nets", [
    ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "'fc00::/7'"],
    ["198.51.100.0/24", "'2001:db8:100::/40'"],
    ["1.0.0.0/8"],  # one /8 of public space: the default allows it
    ["'2a00:1450::/32'"],
])
def test_allow_lists_within_the_public_bound_pass(nets: list[str]) -> None:
    parse_policy("dns:\n  allow_clients: [" + ", ".join(nets) + "]", "p.yaml")


def test_the_public_bound_is_the_policys() -> None:
    text = "dns:\n  allow_clients: [1.0.0.0/8, 2.0.0.0/8]\n  max_public_prefix_v4: 7"
    parse_policy(text, "p.yaml")


def test_audit_on_failure_and_publish_threshold_are_read_and_checked() -> None:
    p = parse_policy("audit:\n  on_failure: fail\npublish:\n  max_removed_acts: 3\n")
    assert p.audit.on_failure == "fail"
    assert p.publish.max_removed_acts == 3
    assert Policy().audit.on_failure == "enforce"
    with pytest.raises(PolicyError) as e:
        parse_policy("audit:\n  on_failure: ignore\npublish:\n  max_removed_acts: -1\n",
                     "p.yaml")
    assert [x.split(":")[1:3] for x in e.value.errors] == [
        ["2", " audit.on_failure"], ["4", " publish.max_removed_acts"]]
def test_the_ip_guard_limits_and_allowed_ranges() -> None:
    p = parse_policy("ip:\n  max_prefix_ipv4: 22\n  allow_ranges: [127.0.0.0/8, '::1']\n")
    assert (p.ip.max_prefix_ipv4, p.ip.max_prefix_ipv6) == (22, 48)
    assert p.ip.allow_ranges == ("127.0.0.0/8", "::1")
    assert p.ip.limits().max_prefix_ipv4 == 22


def test_bad_ip_guard_values_name_their_line() -> None:
    with pytest.raises(PolicyError) as e:
        parse_policy("ip:\n  max_prefix_ipv4: 40\n  allow_ranges: [127.0.0.1/8]\n")
    text = "\n".join(e.value.errors)
    assert "<policy>:2: ip.max_prefix_ipv4" in text
    assert "<policy>:3: ip.allow_ranges" in text
    assert "127.0.0.0/8" in text
