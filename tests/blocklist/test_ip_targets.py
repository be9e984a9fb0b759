"""ip and ip_prefix targets: canonical forms, bulk-list lines, the collateral
guard, overlaps, restore and revoke (writ/blocklist/ipaddr.py, iptable.py)."""

from __future__ import annotations

import ipaddress
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.blocklist.builders import T0, act, url
from writ.blocklist import (
    Blocklist,
    Target,
    TargetKind,
    acts_from_json,
    acts_to_json,
    load_orders,
)
from writ.blocklist.explain import explain
from writ.blocklist.ipaddr import (
    DEFAULT_LIMITS,
    IpError,
    IpLimits,
    canonical_ip,
    guard_problem,
    parse_prefix,
)

LATER = T0 + timedelta(days=1)
IN_2026 = datetime(2026, 6, 1, tzinfo=UTC)  # the YAML orders below are issued in 2026


def ip(text: str) -> Target:
    p = canonical_ip(text)
    kind = TargetKind.IP if p.is_address else TargetKind.IP_PREFIX
    return Target(kind, str(p))


# -- canonical forms -------------------------------------------------------------

@pytest.mark.parametrize(("written", "canonical"), [
    ("203.0.113.7", "203.0.113.7"),
    (" 203.0.113.7 ", "203.0.113.7"),
    ("2001:DB8::7", "2001:db8::7"),
    ("2001:0db8:0000:0000:0000:0000:0000:0007", "2001:db8::7"),
    ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  # the longest zero run, the first of equals
    ("::ffff:203.0.113.7", "203.0.113.7"),  # IPv4-mapped: the IPv4 host
    ("::FFFF:cb00:7107", "203.0.113.7"),
    ("198.51.100.0/24", "198.51.100.0/24"),
    ("198.51.100.0/32", "198.51.100.0"),  # a full-length prefix is the address
    ("2001:db8:0::/48", "2001:db8::/48"),
    ("::ffff:198.51.100.0/120", "198.51.100.0/24"),
])
def test_one_address_one_spelling(written: str, canonical: str) -> None:
    assert str(canonical_ip(written)) == canonical


@pytest.mark.parametrize(("written", "fragment"), [
    ("198.51.100.1/24", "host bits set: the prefix is 198.51.100.0/24"),
    ("2001:db8::1/32", "host bits set: the prefix is 2001:db8::/32"),
    ("010.0.0.1", "leading zero is ambiguous"),
    ("203.0.113", "not an IPv4 address"),
    ("0x7f.0.0.1", "not an IPv4 address"),
    ("203.0.113.256", "not an IPv4 address"),
    ("fe80::1%eth0", "zone id"),
    ("2001:db8::g", "not an IPv6 address"),
    ("198.51.100.0/33", "at most /32"),
    ("198.51.100.0/x", "must be a number"),
])
def test_bad_spellings_say_what_is_wrong(written: str, fragment: str) -> None:
    with pytest.raises(IpError, match=fragment.replace("/", "/").replace(".", r"\.")):
        canonical_ip(written)


def test_ip_and_ip_prefix_are_not_interchangeable() -> None:
    with pytest.raises(IpError, match=r"ip_prefix: 198\.51\.100\.0/24"):
        parse_prefix("198.51.100.0/24", prefix=False)
    with pytest.raises(IpError, match="no /LENGTH"):
        parse_prefix("198.51.100.0", prefix=True)


@given(st.ip_addresses())
def test_every_spelling_python_prints_is_one_address(addr: ipaddress._BaseAddress) -> None:
    p = canonical_ip(addr.exploded)
    assert canonical_ip(str(addr)) == p
    if addr.version == 6 and addr.ipv4_mapped is None:
        assert str(p) == addr.compressed
    assert canonical_ip(str(p)) == p


# -- orders in YAML and in bulk lists -------------------------------------------

HEAD = """\
id: IP-1
court: Northgate District Court
case: "1/2026"
issued: 2026-01-10
"""


def write(orders: Path, text: str, name: str = "a.yaml") -> None:
    (orders / name).write_text(textwrap.dedent(text))


def test_inline_targets_are_stored_canonically(orders: Path) -> None:
    write(orders, HEAD + "targets:\n  - ip: 2001:DB8::0:7\n  - ip_prefix: 198.51.100.0/24\n"
          "  - ip_prefix: 203.0.113.9/32\n")
    r = load_orders(orders)
    assert r.errors == ()
    assert [(t.kind, t.host) for t in r.acts[0].targets] == [
        (TargetKind.IP, "2001:db8::7"), (TargetKind.IP_PREFIX, "198.51.100.0/24"),
        (TargetKind.IP, "203.0.113.9")]


def test_host_bits_name_the_canonical_form_and_the_line(orders: Path) -> None:
    write(orders, HEAD + "targets:\n  - ip_prefix: 198.51.100.77/24\n")
    (e,) = load_orders(orders).errors
    assert (e.line, e.field) == (6, "targets[1].ip_prefix")
    assert "the prefix is 198.51.100.0/24" in e.message


def test_a_list_line_is_an_address_or_prefix_when_it_looks_like_one(orders: Path) -> None:
    (orders / "l.txt").write_text(
        "# mixed list\nblocked.example\n203.0.113.7\n2001:DB8::7  # a comment\n"
        "198.51.100.0/24\nhttp://203.0.113.8/x\n::ffff:203.0.113.9\n")
    write(orders, HEAD + "targets:\n  - file: l.txt\n")
    r = load_orders(orders)
    assert r.errors == ()
    (b,) = r.acts[0].bulk
    assert b.domains == ("blocked.example",)
    assert b.ips == ("203.0.113.7", "2001:db8::7", "198.51.100.0/24", "203.0.113.9")
    assert [u.host for u in b.urls] == ["203.0.113.8"]


def test_a_numeric_list_line_is_never_a_domain(orders: Path) -> None:
    """Before IP targets, `203.0.113.7` in a list became a domain rule that no
    query ever matched: the court's address silently stayed reachable."""
    (orders / "l.txt").write_text("203.0.113.7\n")
    write(orders, HEAD + "targets:\n  - file: l.txt\n")
    (a,) = load_orders(orders).acts
    assert a.bulk[0].domains == ()
    assert Blocklist([a]).at(IN_2026).decide_ip("203.0.113.7").blocked


def test_an_address_is_not_a_domain_target(orders: Path) -> None:
    write(orders, HEAD + "targets:\n  - domain: 203.0.113.7\n")
    (e,) = load_orders(orders).errors
    assert "use ip: or ip_prefix:" in e.message


@pytest.mark.parametrize(("line", "fragment"), [
    ("198.51.100.5/24", "the prefix is 198.51.100.0/24"),
    ("300.1.2.3", "not an IPv4 address"),
    ("10.1.2.0/24", "private range 10.0.0.0/8"),
    ("198.51.0.0/16", "wider than the policy's limit /24"),
])
def test_bad_list_lines_name_the_list_and_line(orders: Path, line: str, fragment: str) -> None:
    (orders / "l.txt").write_text(f"ok.example\n{line}\n")
    write(orders, HEAD + "targets:\n  - file: l.txt\n")
    (e,) = load_orders(orders).errors
    assert (e.file, e.line) == ("orders/l.txt", 2)
    assert fragment in e.message


# -- the collateral guard ---------------------------------------------------------

@pytest.mark.parametrize(("target", "fragment"), [
    ("ip_prefix: 198.51.100.0/23", "covers 512 addresses, wider than the policy's limit /24"),
    ("ip_prefix: 2001:db8::/32", "wider than the policy's limit /48 for IPv6"),
    ("ip: 127.0.0.1", "loopback range 127.0.0.0/8"),
    ("ip: ::1", "loopback range ::1:"),
    ("ip_prefix: 192.168.1.0/24", "private range 192.168.0.0/16"),
    ("ip_prefix: 169.254.0.0/24", "link-local range 169.254.0.0/16"),
    ("ip: fe80::1", "link-local range fe80::/10"),
    ("ip_prefix: fd00::/48", "private range fc00::/7"),
    ("ip_prefix: 0.0.0.0/0", "range"),
])
def test_the_guard_refuses_collateral(orders: Path, target: str, fragment: str) -> None:
    write(orders, HEAD + f"targets:\n  - {target}\n")
    (e,) = load_orders(orders).errors
    assert fragment in e.message


def test_a_wide_prefix_passes_when_the_act_acknowledges_it(orders: Path) -> None:
    write(orders, HEAD + "collateral_acknowledged: true\n"
          "targets:\n  - ip_prefix: 198.51.100.0/23\n  - ip_prefix: 2001:db8::/32\n")
    assert load_orders(orders).ok


def test_acknowledging_collateral_does_not_allow_loopback(orders: Path) -> None:
    write(orders, HEAD + "collateral_acknowledged: true\ntargets:\n  - ip_prefix: 127.0.0.0/8\n")
    (e,) = load_orders(orders).errors
    assert "loopback" in e.message


def test_a_policy_can_allow_loopback_and_change_the_limits(orders: Path) -> None:
    write(orders, HEAD + "targets:\n  - ip_prefix: 127.0.0.0/24\n  - ip_prefix: 198.51.100.0/23\n")
    limits = IpLimits(22, 48, (canonical_ip("127.0.0.0/8"),))
    assert load_orders(orders, limits=limits).ok
    assert len(load_orders(orders).errors) == 2


def test_a_prefix_straddling_an_allowed_range_is_still_refused() -> None:
    limits = IpLimits(0, 0, (canonical_ip("127.0.0.0/24"),))
    assert guard_problem(canonical_ip("127.0.0.0/24"), limits, False) is None
    assert "loopback" in (guard_problem(canonical_ip("127.0.0.0/16"), limits, False) or "")
    assert guard_problem(canonical_ip("203.0.113.0/24"), DEFAULT_LIMITS, False) is None


# -- matching: longest prefix first, every covering order ----------------------

def overlapping() -> Blocklist:
    return Blocklist([
        act("WIDE", targets=(ip("198.51.100.0/24"),)),
        act("NARROW", targets=(ip("198.51.100.0/28"),)),
        act("HOST", targets=(ip("198.51.100.7"),)),
        act("ALSO-WIDE", targets=(ip("198.51.100.0/24"), ip("2001:db8::/48"))),
        act("V6", targets=(ip("2001:db8::7"),)),
    ])


@pytest.mark.parametrize(("address", "rule", "orders"), [
    ("198.51.100.7", "ip 198.51.100.7", ("ALSO-WIDE", "HOST", "NARROW", "WIDE")),
    ("198.51.100.8", "ip_prefix 198.51.100.0/28", ("ALSO-WIDE", "NARROW", "WIDE")),
    ("198.51.100.16", "ip_prefix 198.51.100.0/24", ("ALSO-WIDE", "WIDE")),
    ("198.51.100.255", "ip_prefix 198.51.100.0/24", ("ALSO-WIDE", "WIDE")),
    ("::ffff:198.51.100.7", "ip 198.51.100.7", ("ALSO-WIDE", "HOST", "NARROW", "WIDE")),
    ("2001:DB8::7", "ip 2001:db8::7", ("ALSO-WIDE", "V6")),
    ("2001:db8:0:ffff::1", "ip_prefix 2001:db8::/48", ("ALSO-WIDE",)),
])
def test_longest_prefix_first_and_every_order_names_itself(
        address: str, rule: str, orders: tuple[str, ...]) -> None:
    d = overlapping().at(LATER).decide_ip(address)
    assert d.blocked
    assert d.host_level
    assert (d.rule, d.orders) == (rule, orders)


@pytest.mark.parametrize("address", [
    "198.51.99.255", "198.51.101.0", "203.0.113.7", "2001:db8:1::", "2001:db7:ffff::", "::",
    "255.255.255.255", "0.0.0.0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
])
def test_addresses_outside_every_prefix_are_allowed(address: str) -> None:
    assert not overlapping().at(LATER).decide_ip(address).blocked


def test_packed_addresses_decide_like_text() -> None:
    index = overlapping().at(LATER)
    for a in ("198.51.100.7", "198.51.101.7", "2001:db8::7"):
        assert index.decide_packed(ipaddress.ip_address(a).packed) == index.decide_ip(a)


def test_a_prefix_query_names_every_order_covering_any_part() -> None:
    index = overlapping().at(LATER)
    d = index.decide_ip("198.51.100.0/29")
    assert d.orders == ("ALSO-WIDE", "HOST", "NARROW", "WIDE")
    assert d.rules == ("ip 198.51.100.7", "ip_prefix 198.51.100.0/28",
                       "ip_prefix 198.51.100.0/24")
    wider = index.decide_ip("198.51.0.0/16")  # contains the rules, is contained by none
    assert wider.orders == d.orders
    assert not index.decide_ip("198.51.101.0/24").blocked


_BASE = int(ipaddress.IPv4Address("198.51.96.0"))
_near = st.integers(0, 4095).map(lambda i: ipaddress.IPv4Address(_BASE + i))  # nesting galore


@settings(deadline=None)  # builds an index per example; the machine's speed varies
@given(st.lists(st.tuples(st.one_of(_near, st.ip_addresses(v=4)), st.integers(20, 32)),
                max_size=30),
       st.lists(st.one_of(_near, st.ip_addresses(v=4)), max_size=30))
def test_the_table_agrees_with_a_linear_scan(
        rules: list[tuple[ipaddress.IPv4Address, int]],
        probes: list[ipaddress.IPv4Address]) -> None:
    nets = [ipaddress.ip_network(f"{a}/{n}", strict=False) for a, n in rules]
    acts = [act(f"A{i}", targets=(ip(str(n)),)) for i, n in enumerate(nets)]
    index = Blocklist(acts).at(LATER)
    edges = [n.network_address for n in nets] + [n.broadcast_address for n in nets]
    edges += [a + 1 for a in edges if int(a) < 2**32 - 1] + [a - 1 for a in edges if int(a)]
    for a in probes + edges:
        want = sorted({f"A{i}" for i, n in enumerate(nets) if a in n})
        d = index.decide_packed(a.packed)
        assert list(d.orders) == want
        if want:  # the most specific rule comes first
            assert d.rule is not None
            most = max(n.prefixlen for n in nets if a in n)
            assert int(d.rule.rpartition("/")[2] if "/" in d.rule else 32) == most
    for n in nets[:5]:  # a prefix query names every rule overlapping it
        want = sorted({f"A{i}" for i, m in enumerate(nets) if m.overlaps(n)})
        assert list(index.decide_ip(str(n)).orders) == want


def test_urls_on_a_blocked_address_are_blocked() -> None:
    index = overlapping().at(LATER)
    d = index.decide_url("http://198.51.100.7:8080/any/path")
    assert d.blocked
    assert d.rule == "ip 198.51.100.7"
    assert index.decide_url("http://[2001:DB8::7]/x").rule == "ip 2001:db8::7"
    assert not index.decide_url("http://198.51.101.7/").blocked


# -- restore and revoke -----------------------------------------------------------

SHARED = act("HOSTING", targets=(ip("203.0.113.7"), ip("198.51.100.0/24"),
                                 url("http://tube.example/v/1")))


def test_a_restore_lifts_an_address_and_keeps_a_url_blocked() -> None:
    """A shared-hosting address restored while one site on it stays blocked."""
    restore = act("HOSTING-R", kind="restore", amends="HOSTING", effective=LATER,
                  restores=(ip("203.0.113.7"),),
                  keep_blocked=(url("http://shop.example/item/9"),))
    index = Blocklist([SHARED, restore]).at(LATER)
    assert not index.decide_ip("203.0.113.7").blocked
    assert index.decide_ip("198.51.100.1").blocked  # not restored
    assert index.decide_url("http://shop.example/item/9").orders == ("HOSTING", "HOSTING-R")
    assert not index.decide_url("http://shop.example/item/8").blocked
    assert index.decide_url("http://tube.example/v/1").blocked
    assert index.restored["203.0.113.7"] == ("HOSTING-R",)
    assert explain(index, "203.0.113.7")["restored_by"] == ["HOSTING-R"]


def test_a_restore_without_restores_lifts_every_address_not_urls() -> None:
    restore = act("HOSTING-R", kind="restore", amends="HOSTING", effective=LATER)
    index = Blocklist([SHARED, restore]).at(LATER)
    assert not index.decide_ip("203.0.113.7").blocked
    assert not index.decide_ip("198.51.100.1").blocked
    assert index.decide_url("http://tube.example/v/1").blocked


def test_a_restore_never_lifts_another_orders_address() -> None:
    other = act("OTHER", targets=(ip("203.0.113.0/24"),))
    restore = act("HOSTING-R", kind="restore", amends="HOSTING", effective=LATER)
    d = Blocklist([SHARED, other, restore]).at(LATER).decide_ip("203.0.113.7")
    assert d.blocked
    assert d.orders == ("OTHER",)


def test_a_revoke_lifts_every_address_of_the_order() -> None:
    revoke = act("HOSTING-X", kind="revoke", amends="HOSTING", effective=LATER)
    bl = Blocklist([SHARED, revoke])
    assert bl.at(T0).decide_ip("198.51.100.9").blocked
    index = bl.at(LATER)
    assert not index.decide_ip("198.51.100.9").blocked
    assert not index.decide_ip("203.0.113.7").blocked


def test_a_restore_naming_an_address_the_order_lacks_is_an_error(orders: Path) -> None:
    write(orders, HEAD + "targets:\n  - ip: 203.0.113.7\n---\nid: IP-1-R\nkind: restore\n"
          "amends: IP-1\ncourt: C\ncase: c\nissued: 2026-02-01\nrestores:\n"
          "  - ip: 203.0.113.8\n  - ip: 203.0.113.7\n")
    (e,) = load_orders(orders).errors
    assert "203.0.113.8 is not an ip target of IP-1" in e.message


# -- serialisation (what Redis carries) --------------------------------------------

def test_ip_targets_survive_the_serial_form(orders: Path) -> None:
    (orders / "l.txt").write_text("203.0.113.7\n2001:db8::/48\n")
    write(orders, HEAD + "collateral_acknowledged: true\n"
          "targets:\n  - ip_prefix: 198.51.100.0/22\n  - file: l.txt\n")
    acts = load_orders(orders).acts
    back = acts_from_json(acts_to_json(acts))
    assert back == acts
    assert back[0].collateral_acknowledged
    index = Blocklist(back).at(IN_2026)
    assert index.decide_ip("2001:db8::1").blocked
    assert index.decide_ip("198.51.103.1").blocked
    assert index.ip_count == 3


# -- the fast paths say what the exact path says ---------------------------------

@given(st.one_of(st.ip_addresses(v=6), st.ip_addresses(v=4)), st.integers(0, 128),
       st.sampled_from(["compressed", "exploded", "upper", "zeros"]))
def test_fast_canonical_keys_agree_with_the_exact_path(
        addr: ipaddress._BaseAddress, plen: int, spelling: str) -> None:
    from writ.blocklist._ipfast import bulk_keys, canonical_key

    text = {"compressed": addr.compressed, "exploded": addr.exploded,
            "upper": addr.compressed.upper(),
            "zeros": addr.compressed.replace(":0:", ":00:")}[spelling]
    if plen < addr.max_prefixlen:
        net = ipaddress.ip_network(f"{addr}/{plen}", strict=False)
        text = f"{net.network_address if spelling == 'compressed' else text}/{plen}"
    fast = canonical_key(text)
    try:
        exact = canonical_ip(text)
    except IpError:
        assert fast is None
        return
    if fast is not None:
        assert str(exact) == text
        assert fast == (exact.family, exact.net, exact.plen)
    else:
        assert str(exact) != text, "a canonical text must take the fast path"
    keys = bulk_keys([text], guard=False)
    if fast is not None:
        assert keys is not None
        assert keys[exact.family == 6] == [exact.net << 8 | exact.plen]
