"""Steer listeners: where DNS-steered clients land (docs/design.md §4, docs/operator.md §4).

With `dns.url_rules: steer` the resolver answers a host that has only URL
rules with the proxy's addresses. Those clients do not speak to a proxy: they
connect to the steer address on port 80 (origin-form HTTP with a Host header)
or 443 (TLS with SNI). Each `proxy.steer_http` / `proxy.steer_tls` address
becomes one extra mitmproxy mode on the same master:

    reverse:http://127.0.0.1:9@ADDR:PORT     (HTTP)
    reverse:http://127.0.0.1:10@ADDR:PORT    (TLS)

`reverse:http` makes mitmproxy read HTTP in transparent form (and sniff a TLS
ClientHello first), with no server TLS layer and no UDP listener. The
placeholder upstream is never dialed: the addon answers every steered flow
or points it at the host named by Host/SNI. The spec tells the addon which
kind of listener a connection used (mitmproxy refuses two listeners on one
address, so specs never collide); the placeholder ports differ so that a
spec read in a log says its kind.

Invariants:
- Never an open relay: a steered request goes on only to a host that has URL
  rules (one DNS would steer); anything else is refused and recorded as
  `not-steered`.
- The Host header (name and port) names the destination of steered HTTP,
  the SNI (port 443) that of steered TLS; both are judged like any request.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from writ.blocklist import CanonError
from writ.blockpage import Page

__all__ = ["NOT_STEERED", "SteerKind", "kind_of", "misdirected_page", "parse_host",
           "steer_modes"]

NOT_STEERED = "not-steered"  # the audit decision for a refused steered flow


class SteerKind(StrEnum):
    HTTP = "http"
    TLS = "tls"


# Placeholder upstreams, one per kind (see the module docstring): loopback
# ports nothing listens on, so even a bug could not relay anywhere.
_PLACEHOLDER = {SteerKind.HTTP: "127.0.0.1:9", SteerKind.TLS: "127.0.0.1:10"}
DEFAULT_PORT = {SteerKind.HTTP: 80, SteerKind.TLS: 443}


def _listen_part(endpoint: str) -> str:
    # mitmproxy's spec splits `@HOST:PORT` on the last colon and binds HOST as
    # given: an IPv6 address goes in bare, without brackets.
    host, _, port = endpoint.rpartition(":")
    return f"{host.strip('[]')}:{port}"


def steer_modes(http: Iterable[str], tls: Iterable[str]) -> dict[str, SteerKind]:
    """mitmproxy mode spec → listener kind, for `ADDR:PORT` endpoints."""
    modes: dict[str, SteerKind] = {}
    for kind, endpoints in ((SteerKind.HTTP, http), (SteerKind.TLS, tls)):
        for endpoint in endpoints:
            modes[f"reverse:http://{_PLACEHOLDER[kind]}@{_listen_part(endpoint)}"] = kind
    return modes


def kind_of(modes: dict[str, SteerKind], client: Any) -> SteerKind | None:
    """Which steer listener a client connection came in on (None: not a steer one)."""
    if not modes:
        return None
    mode = getattr(client, "proxy_mode", None)
    return modes.get(getattr(mode, "full_spec", ""))


_NOT_IN_AUTHORITY = frozenset("/?#@\\ \t\r\n")


def parse_host(authority: str, default_port: int) -> tuple[str, int]:
    """A Host header (`name`, `name:port`, `[v6]:port`) → (host, port).
    Raises CanonError for anything else."""
    a = authority.strip()
    if not a or _NOT_IN_AUTHORITY.intersection(a):
        raise CanonError(f"invalid host {authority[:80]!r}")
    if a.startswith("["):
        host, sep, rest = a[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise CanonError(f"invalid host {authority[:80]!r}")
        port_text = rest[1:] if rest else ""
    elif a.count(":") == 1:
        host, _, port_text = a.partition(":")
    elif ":" in a:
        raise CanonError(f"invalid host {authority[:80]!r} (IPv6 needs brackets)")
    else:
        host, port_text = a, ""
    if not host:
        raise CanonError(f"no host in {authority[:80]!r}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise CanonError(f"invalid port in host {authority[:80]!r}")
    return host, int(port_text)


def misdirected_page(message: str) -> Page:
    """421: this address serves only the hosts DNS steers here."""
    body = (f"421 Misdirected Request\n\n{message}\n\nThis address only serves hosts that "
            "writ's resolver steers to it; it is not an open proxy.\n").encode()
    headers = (("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store"))
    return Page(421, "Misdirected Request", headers, body)
