"""`/lookup`: is this name, URL, address or prefix blocked now, and by which orders?

Pure: an index and the text asked about in, a JSON-able result out.

Extension point: `LOOKUPS` is tried in order; the first whose `accepts(q)`
is true answers, in one shape (target, kind, decision, orders, rule). Today
one entry answers everything with the index's own explanation
(writ.blocklist.explain, what `writ explain` says): names, URLs, and IP
addresses and prefixes (every `ip`/`ip_prefix` order covering any part).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from writ.blocklist import Index
from writ.blocklist.explain import explain

__all__ = ["LOOKUPS", "MAX_QUERY", "Lookup", "lookup"]

MAX_QUERY = 2048


@dataclass(frozen=True, slots=True)
class Lookup:
    accepts: Callable[[str], bool]
    answer: Callable[[Index, str], dict[str, Any]]


LOOKUPS: list[Lookup] = [
    Lookup(lambda q: True, explain),
]


def lookup(index: Index, q: str) -> dict[str, Any]:
    q = q.strip()
    if len(q) > MAX_QUERY:
        return {"target": q[:200], "kind": "invalid", "decision": "invalid", "orders": [],
                "rule": None, "error": f"longer than {MAX_QUERY} characters"}
    for entry in LOOKUPS:
        if entry.accepts(q):
            return entry.answer(index, q)
    raise AssertionError("the last lookup accepts everything")
