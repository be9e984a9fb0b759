"""Value checks for policy keys: one small function per kind of value.

Invariants:
- A check takes a value already constructed by the safe YAML loader and
  returns the value the policy model stores, or raises `BadValueError` with a message a
  person can act on. Checks never do I/O (the time zone database excepted).
- Addresses are IP literals, never names: a resolver cannot resolve the name
  of its own upstream, and a listener bound to a name is ambiguous.
- Stored forms are canonical: `host:port` with IPv6 in brackets, addresses
  compressed, networks in CIDR form.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from writ.endpoints import format_endpoint, split_hostport

__all__ = ["BadValueError", "format_endpoint", "parse_endpoint"]

E = TypeVar("E", bound=StrEnum)
Check = Callable[[object], object]


class BadValueError(ValueError):
    """A value that does not fit its key; the message says why."""


def _kind(value: object) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"the text {value!r}"
    return f"a {type(value).__name__} ({value!r})"


def text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadValueError(f"expected non-empty text, got {_kind(value)}")
    return value


def optional(check: Check) -> Check:
    def inner(value: object) -> object:
        return None if value is None else check(value)

    return inner


def boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise BadValueError(f"expected true or false, got {_kind(value)}")
    return value


def integer(lo: int, hi: int | None = None) -> Callable[[object], int]:
    def inner(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadValueError(f"expected a whole number, got {_kind(value)}")
        if value < lo or (hi is not None and value > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
            raise BadValueError(f"must be {bound}, got {value}")
        return value

    return inner


def seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadValueError(f"expected a number of seconds, got {_kind(value)}")
    if not 0 < value <= 3600:
        raise BadValueError(f"must be more than 0 and at most 3600 seconds, got {value}")
    return float(value)


def enum(cls: type[E]) -> Callable[[object], E]:
    allowed = ", ".join(m.value for m in cls)

    def inner(value: object) -> E:
        if isinstance(value, str):
            try:
                return cls(value)
            except ValueError:
                pass
        raise BadValueError(f"expected one of {allowed}; got {_kind(value)}")

    return inner


def choice(*allowed: str) -> Callable[[object], str]:
    def inner(value: object) -> str:
        if isinstance(value, str) and value in allowed:
            return value
        raise BadValueError(f"expected one of {', '.join(allowed)}; got {_kind(value)}")

    return inner


_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def node_name(value: object) -> str:
    if not isinstance(value, str) or not _NODE_NAME.fullmatch(value):
        raise BadValueError(
            f"expected a node name of letters, digits, '.', '_' or '-', got {_kind(value)}"
        )
    return value


_LANGUAGE = re.compile(r"[a-z]{2,8}(-[A-Za-z0-9]{2,8})?")


def language(value: object) -> str:
    if not isinstance(value, str) or not _LANGUAGE.fullmatch(value):
        raise BadValueError(f"expected a language tag such as kk, ru or en, got {_kind(value)}")
    return value


def http_url(value: object) -> str:
    if not isinstance(value, str):
        raise BadValueError(f"expected an http(s) URL, got {_kind(value)}")
    try:
        u = urlsplit(value)
        u.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError as e:
        raise BadValueError(f"not a valid URL {value!r}: {e}") from None
    if u.scheme not in ("http", "https") or not u.hostname:
        raise BadValueError(f"expected an absolute http:// or https:// URL, got {value!r}")
    if any(c.isspace() or ord(c) < 0x20 for c in value):
        raise BadValueError(f"URL must not contain spaces or control characters: {value!r}")
    return value


def timezone(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise BadValueError(f"expected an IANA time zone name like Asia/Almaty, got {_kind(value)}")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadValueError(
            f"unknown time zone {value!r} (use an IANA name like Asia/Almaty or UTC)"
        ) from None
    return value


def parse_endpoint(value: str, default_port: int | None = None) -> tuple[str, int]:
    """`127.0.0.1:53`, `[::1]:53` (or a bare address when `default_port` is
    given) → (address, port): an IP address, not a name, and a port from 1.
    Raises BadValueError."""
    try:
        host, port = split_hostport(value, default_port, lowest_port=1)
    except ValueError as e:
        raise BadValueError(str(e)) from None
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise BadValueError(f"expected an IP address (not a name) in {value!r}") from None
    return str(addr), port


def endpoint(default_port: int | None = None) -> Callable[[object], str]:
    def inner(value: object) -> str:
        if isinstance(value, bool) or not isinstance(value, str):
            raise BadValueError(f"expected ADDRESS:PORT like 127.0.0.1:5300, got {_kind(value)}")
        return format_endpoint(*parse_endpoint(value, default_port))

    return inner


def address(version: int) -> Callable[[object], str]:
    def inner(value: object) -> str:
        try:
            addr = ipaddress.ip_address(value) if isinstance(value, str) else None
        except ValueError:
            addr = None
        if addr is None or addr.version != version:
            raise BadValueError(f"expected an IPv{version} address, got {_kind(value)}")
        return str(addr)

    return inner


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def network(value: object) -> Network:
    if not isinstance(value, str):
        raise BadValueError(f"expected a network like 192.0.2.0/24, got {_kind(value)}")
    try:
        net = ipaddress.ip_network(value)
    except ValueError as e:
        if "host bits set" in str(e):
            fixed = ipaddress.ip_network(value, strict=False)
            raise BadValueError(f"{value!r} has host bits set; did you mean {fixed}?") from None
        raise BadValueError(f"expected a network like 192.0.2.0/24, got {value!r}") from None
    if net.prefixlen == 0:
        # docs/design.md §4: only networks the policy allows may query (no open resolver).
        raise BadValueError(
            f"{net} would make an open resolver; list the client networks you serve"
        )
    return net


# Addresses no subscriber of a public resolver would query from (RFC 6890 special-purpose
# ranges): private, shared, loopback, link-local, documentation, multicast, reserved.
_NOT_PUBLIC = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3", "2001:db8::/32"))
_PUBLIC_ROOT = {4: ipaddress.ip_network("0.0.0.0/0"), 6: ipaddress.ip_network("2000::/3")}


def _overlap(a: Network, b: Network) -> int:
    if a.version != b.version:
        return 0
    if a.subnet_of(b):  # type: ignore[arg-type]
        return a.num_addresses
    if b.subnet_of(a):  # type: ignore[arg-type]
        return b.num_addresses
    return 0


def public_addresses(nets: Sequence[Network], version: int) -> int:
    """How many public unicast addresses of IP `version` the union of `nets` covers."""
    mine = [n for n in nets if n.version == version]
    union = list(ipaddress.collapse_addresses(mine))  # type: ignore[type-var]  # one version at a time
    root = _PUBLIC_ROOT[version]
    return sum(_overlap(n, root) - sum(_overlap(n, x) for x in _NOT_PUBLIC) for n in union)
def ip_range(value: object) -> str:
    """A prefix (or one address) the ip collateral guard allows: its canonical text."""
    from writ.blocklist.ipaddr import IpError, canonical_ip

    if not isinstance(value, str):
        raise BadValueError(f"expected a prefix like 127.0.0.0/8, got {_kind(value)}")
    try:
        return str(canonical_ip(value))
    except IpError as e:
        raise BadValueError(str(e)) from None
