"""HOST:PORT, the one spelling of a listener or an upstream everywhere in writ.

`127.0.0.1:5300`, `[::1]:5300`, `localhost:5300`; with a default port also a
bare `127.0.0.1`, `::1` or `[::1]`. An IPv6 address with a port needs its
brackets: `::1:53` would be ambiguous. Callers add their own rules (the policy
loader wants IP addresses, not names) and their own error type.
"""

from __future__ import annotations

__all__ = ["format_endpoint", "split_hostport"]


def split_hostport(text: str, default_port: int | None = None, *,
                   lowest_port: int = 0) -> tuple[str, int]:
    """→ (host, port), brackets removed. Raises ValueError saying what is wrong."""
    s = text.strip()
    port_text: str | None = None
    if s.startswith("["):
        host, sep, rest = s[1:].partition("]")
        if not sep:
            raise ValueError(f"unterminated '[' in {text!r}")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"expected ]:PORT after the IPv6 address in {text!r}")
            port_text = rest[1:]
    elif s.count(":") == 1:
        host, _, port_text = s.partition(":")
    else:
        host = s  # a name or IPv4 address without a port, or a bare IPv6 address
    if not host:
        raise ValueError(f"no host in {text!r} (expected HOST:PORT)")
    if port_text is None:
        if default_port is None:
            raise ValueError(f"missing port in {text!r} (expected HOST:PORT; "
                             "an IPv6 address with a port as [ADDR]:PORT)")
        return host, default_port
    if not port_text.isdigit() or not lowest_port <= int(port_text) <= 65535:
        raise ValueError(f"port must be a number from {lowest_port} to 65535 in {text!r}")
    return host, int(port_text)


def format_endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
