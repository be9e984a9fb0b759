"""Structured DNS errors (draft-ietf-dnsop-structured-dns-error): EDE 16 text as JSON.

The draft's opt-in, §"Client Generating Request": the client "includes the
Extended DNS Error option ... in the OPT pseudo-RR with the OPTION-LENGTH
field set to 2, the INFO-CODE field set to "0" (Other Error), and an empty
EXTRA-TEXT field". Only such a query gets JSON; every other query keeps the
plain text of writ.dns.ede.

The JSON (I-JSON, minified as the draft asks) names:
- `c` (contact, mandatory, at least one URI): the public register's page of
  each order (pages.register_url + /orders/ID), or the policy's
  transparency_url when no register is published;
- `j` (justification, mandatory): "blocked by court order ID, …";
- `o` (organization): the operator.

Invariant: the text fits the room it is given. Orders are dropped from the
end first ("+N more" in `j`, their `c` entries with them), then `o`; if not
even one order fits, the plain text of writ.dns.ede is used instead.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from writ.dns.ede import OPTION_EDE, censored_text, fit_text
from writ.policies import Policy

__all__ = ["Structured", "opted_in"]

_OPT_HEAD = struct.Struct("!HH")


def opted_in(options: bytes) -> bool:
    """True when an OPT record's RDATA carries the draft's opt-in (EDE 0, no text)."""
    pos, n = 0, len(options)
    while pos + 4 <= n:
        code, length = _OPT_HEAD.unpack_from(options, pos)
        pos += 4
        if code == OPTION_EDE and length == 2 and options[pos:pos + 2] == b"\x00\x00":
            return True
        pos += length
    return False


@dataclass(frozen=True, slots=True)
class Structured:
    operator: str
    register: str | None  # the register's public base URL, without a trailing "/"
    contact: str  # used for `c` when there is no register

    @classmethod
    def of(cls, policy: Policy) -> Structured:
        reg = policy.pages.register_url
        return cls(policy.operator, reg.rstrip("/") if reg else None, policy.transparency_url)

    def _json(self, orders: Sequence[str], dropped: int, with_o: bool) -> str:
        c = [f"{self.register}/orders/{o}" for o in orders] if self.register else [self.contact]
        j = censored_text(orders) + (f" (+{dropped} more)" if dropped else "")
        data: dict[str, object] = {"c": c, "j": j}
        if with_o:
            data["o"] = self.operator
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))

    def text(self, orders: Sequence[str], budget: int) -> str:
        """EXTRA-TEXT of at most `budget` bytes naming as many orders as fit."""
        for with_o in (True, False):
            for keep in range(len(orders), 0, -1):
                text = self._json(orders[:keep], len(orders) - keep, with_o)
                if len(text.encode()) <= budget:
                    return text
        return fit_text(orders, budget + 6)  # fit_text's room counts the option head
