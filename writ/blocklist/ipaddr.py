"""IP addresses and prefixes as order targets: canonical forms and the
collateral guard (docs/design.md §6, docs/regulator.md "Addresses and prefixes").

Invariants:
- One address, one spelling: IPv4 dotted decimal, IPv6 as RFC 5952 prints it
  (lowercase, longest zero run compressed). An IPv4-mapped IPv6 address
  (`::ffff:203.0.113.7`) IS the IPv4 address (a socket connecting to it
  reaches the IPv4 host), so it is stored, matched and reported as IPv4.
- A prefix is `NETWORK/LEN` with no host bits set; a prefix with host bits is
  an error naming the canonical form (the regulator decides what was meant).
  A full-length prefix (`/32`, `/128`) is the address itself: an `ip` target.
- Orders may spell IPv4 only in dotted decimal. A part with a leading zero
  (`010.0.0.1`) is refused as ambiguous: browsers read it as octal (8.0.0.1),
  other software as decimal. Zone ids (`fe80::1%eth0`) are refused.
- The guard refuses prefixes wider than the policy's limit unless the act
  acknowledges the collateral, and special-purpose ranges (private,
  loopback, link-local, …) unless the policy allows them: blocking those cuts
  off the ISP's own network, not a site.
- Pure: no I/O, no clock.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = [
    "DEFAULT_LIMITS",
    "SPECIAL_RANGES",
    "IpError",
    "IpLimits",
    "Prefix",
    "canonical_ip",
    "guard_problem",
    "int_to_text",
    "looks_like_ip",
    "parse_address",
    "parse_prefix",
]

_MAPPED = 0xFFFF << 32  # ::ffff:0:0/96
_V4_BITS, _V6_BITS = 32, 128


class IpError(ValueError):
    """The message says what is wrong with the address or prefix."""


class Prefix(NamedTuple):
    """A canonical prefix: family 4 or 6, network as an int, length."""

    family: int
    net: int
    plen: int

    @property
    def bits(self) -> int:
        return _V4_BITS if self.family == 4 else _V6_BITS

    @property
    def last(self) -> int:
        return self.net | ((1 << (self.bits - self.plen)) - 1)

    @property
    def size(self) -> int:
        """How many addresses the prefix covers."""
        return 1 << (self.bits - self.plen)

    @property
    def is_address(self) -> bool:
        return self.plen == self.bits

    def address_text(self) -> str:
        return int_to_text(self.family, self.net)

    def __str__(self) -> str:
        """`203.0.113.7` for an address, `198.51.100.0/24` for a prefix."""
        a = self.address_text()
        return a if self.is_address else f"{a}/{self.plen}"

    def describe(self) -> str:
        """The rule as people read it: `ip 203.0.113.7`, `ip_prefix 198.51.100.0/24`."""
        return f"ip {self}" if self.is_address else f"ip_prefix {self}"


def int_to_text(family: int, value: int) -> str:
    if family == 4:
        return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"
    return ipaddress.IPv6Address(value).compressed


def _v4(text: str) -> int | None:
    """Dotted decimal, four parts, no leading zeros; None otherwise. (Not
    socket.inet_pton: the core imports no network library.)"""
    parts = text.split(".")
    if len(parts) != 4:
        return None
    v = 0
    for part in parts:
        if not (part.isascii() and part.isdigit()) or len(part) > 3 or (
                len(part) > 1 and part[0] == "0"):
            return None
        n = int(part)
        if n > 255:
            return None
        v = v << 8 | n
    return v


def parse_address(text: str) -> tuple[int, int]:
    """(family, int) for one address in an accepted spelling. Raises IpError."""
    if ":" in text:
        if "%" in text:
            raise IpError(f"{text!r}: a zone id (%…) names a local interface, not an address")
        try:
            v = int(ipaddress.IPv6Address(text))
        except ValueError:
            raise IpError(f"{text!r} is not an IPv6 address") from None
        if v >> 32 == 0xFFFF:
            return 4, v & 0xFFFFFFFF
        return 6, v
    v4 = _v4(text)
    if v4 is None:
        parts = text.split(".")
        if len(parts) == 4 and all(p.isdigit() and p.isascii() and int(p) < 256 for p in parts):
            raise IpError(
                f"{text!r}: a part with a leading zero is ambiguous (browsers read "
                "it as octal); write the address in plain decimal"
            )
        raise IpError(f"{text!r} is not an IPv4 address (write four decimal parts, "
                      "e.g. 203.0.113.7)")
    return 4, v4


def parse_prefix(text: str, prefix: bool) -> Prefix:
    """An `ip:` (prefix=False) or `ip_prefix:` (prefix=True) target. Raises IpError."""
    text = text.strip()
    addr, slash, length = text.partition("/")
    if not prefix and slash:
        raise IpError(f"{text!r} is a prefix: write it as ip_prefix: {text}")
    if prefix and not slash:
        raise IpError(f"{text!r} has no /LENGTH (for one address use ip: {text})")
    family, value = parse_address(addr)
    if not slash:
        return Prefix(family, value, _V4_BITS if family == 4 else _V6_BITS)
    if not (length.isascii() and length.isdigit()) or len(length) > 3:
        raise IpError(f"{text!r}: the prefix length must be a number (e.g. /24)")
    plen = int(length)
    if ":" in addr and family == 4:  # IPv4-mapped: the length counts the 96 mapped bits too
        if plen < 96:
            family, value = 6, value | _MAPPED
        else:
            plen -= 96
    bits = _V4_BITS if family == 4 else _V6_BITS
    if plen > bits:
        raise IpError(f"{text!r}: an IPv{family} prefix is at most /{bits}")
    host = value & ((1 << (bits - plen)) - 1)
    if host:
        canon = Prefix(family, value - host, plen)
        raise IpError(f"{text!r} has host bits set: the prefix is {canon} "
                      f"(or, for the one address, ip: {Prefix(family, value, bits)})")
    return Prefix(family, value, plen)


def canonical_ip(text: str) -> Prefix:
    """An address or prefix as written in a bulk list or asked of `writ explain`."""
    return parse_prefix(text, "/" in text)


def looks_like_ip(line: str) -> bool:
    """How a bulk list line is recognised as an address or prefix: it has a `:`
    but no `://` (IPv6), or a `/LEN` after something that is not a URL, or its
    last dot-separated part is all digits (a host name never ends in a number:
    browsers read such a host as an IPv4 address)."""
    if "://" in line:
        return False
    if ":" in line or "/" in line:
        return True
    last = line.rstrip(".").rpartition(".")[2]
    return last.isascii() and last.isdigit()


# -- the collateral guard --------------------------------------------------

def _nets(*texts: str) -> tuple[tuple[str, Prefix], ...]:
    out = []
    for t in texts:
        name, _, net = t.partition(" ")
        out.append((name, canonical_ip(net)))
    return tuple(out)


# Ranges whose blocking hurts the ISP's own network or is meaningless on the
# Internet (RFC 6890 special-purpose registries). The documentation ranges
# (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are not here:
# samples and tests use them.
SPECIAL_RANGES: tuple[tuple[str, Prefix], ...] = _nets(
    "this-network 0.0.0.0/8",
    "private 10.0.0.0/8",
    "shared-address-space 100.64.0.0/10",
    "loopback 127.0.0.0/8",
    "link-local 169.254.0.0/16",
    "private 172.16.0.0/12",
    "private 192.168.0.0/16",
    "multicast 224.0.0.0/4",
    "reserved 240.0.0.0/4",
    "unspecified ::/128",
    "loopback ::1/128",
    "private fc00::/7",
    "link-local fe80::/10",
    "multicast ff00::/8",
)


@dataclass(frozen=True, slots=True)
class IpLimits:
    """The policy's guard: the widest prefix allowed without
    `collateral_acknowledged: true`, and special-purpose ranges it allows."""

    max_prefix_ipv4: int = 24
    max_prefix_ipv6: int = 48
    allow_ranges: tuple[Prefix, ...] = field(default=())


DEFAULT_LIMITS = IpLimits()


def _contains(outer: Prefix, inner: Prefix) -> bool:
    return (outer.family == inner.family and outer.plen <= inner.plen
            and outer.net <= inner.net <= outer.last)


# Per family: (first, last, name, range) sorted by first; the ranges are disjoint.
_SPECIAL_BY_FAMILY: dict[int, tuple[list[int], list[tuple[int, int, str, Prefix]]]] = {}
for _fam in (4, 6):
    _rows = sorted((r.net, r.last, n, r) for n, r in SPECIAL_RANGES if r.family == _fam)
    _SPECIAL_BY_FAMILY[_fam] = ([r[0] for r in _rows], _rows)


def guard_problem(p: Prefix, limits: IpLimits, acknowledged: bool) -> str | None:
    """Why the guard refuses `p`, or None. (Called once per bulk line: a
    bisect over the special ranges, not a scan.)"""
    firsts, rows = _SPECIAL_BY_FAMILY[p.family]
    i = bisect_right(firsts, p.last) - 1
    while i >= 0 and rows[i][1] >= p.net:  # every special range overlapping p
        _, _, name, special = rows[i]
        overlap = special if special.plen >= p.plen else p
        if not any(_contains(a, overlap) for a in limits.allow_ranges):
            return (f"{p} is in the {name} range {special}: blocking it cuts off the "
                    "ISP's own or local networks, not a site (the policy's "
                    "ip.allow_ranges can allow it)")
        i -= 1
    widest = limits.max_prefix_ipv4 if p.family == 4 else limits.max_prefix_ipv6
    if p.plen < widest and not acknowledged:
        return (f"{p} covers {p.size:,} addresses, wider than the policy's limit "
                f"/{widest} for IPv{p.family}: every site hosted there is cut off "
                "(add `collateral_acknowledged: true` to the act if the court orders "
                "exactly that)")
    return None
