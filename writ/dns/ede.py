"""Extended DNS Errors (RFC 8914) as EDNS options.

RFC 8914 §2: "The EXTRA-TEXT field ... MAY be zero-length". It is UTF-8 and
not NUL-terminated. We use INFO-CODE 16 (Censored: "the requested domain is
on a blocklist due to an external requirement imposed by an entity other
than the operator of the server resolving or forwarding the query") and 18
(Prohibited: the client is not allowed to query).

Invariant: the text never pushes an answer past the room it is given; the
order ids are dropped from the end first ("+N more"), then the text is cut.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from dnslib import EDNSOption

__all__ = [
    "CENSORED",
    "NETWORK_ERROR",
    "NO_REACHABLE_AUTHORITY",
    "OPTION_EDE",
    "OTHER",
    "PROHIBITED",
    "censored_text",
    "ede_option",
    "fit_text",
]

OPTION_EDE = 15
OTHER = 0
CENSORED = 16
PROHIBITED = 18
NO_REACHABLE_AUTHORITY = 22  # every upstream timed out
NETWORK_ERROR = 23  # an upstream refused the connection or sent garbage
_OPTION_OVERHEAD = 4 + 2  # option code + length, INFO-CODE


def censored_text(orders: Sequence[str]) -> str:
    return "blocked by court order " + ", ".join(orders) if orders else "blocked by court order"


def fit_text(orders: Sequence[str], room: int) -> str:
    """The longest text naming as many orders as fit in `room` bytes of option data."""
    budget = room - _OPTION_OVERHEAD
    if budget <= 0:
        return ""
    for keep in range(len(orders), -1, -1):
        text = censored_text(orders[:keep])
        if keep < len(orders):
            text += f" (+{len(orders) - keep} more)"
        if len(text.encode()) <= budget:
            return text
    return censored_text(())[:budget]


def ede_option(code: int, text: str = "") -> EDNSOption:
    return EDNSOption(OPTION_EDE, struct.pack("!H", code) + text.encode())
