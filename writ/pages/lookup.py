"""`/lookup`: is this name or URL blocked now, and by which orders?

Pure: an index and the text asked about in, a JSON-able result out.

Extension point: `LOOKUPS` is tried in order; the first whose `accepts(q)`
is true answers. Names and URLs are answered by the index's own explanation
(writ.blocklist.explain, what `writ explain` says). An IP address is
answered by `_address`, which says that address targets are not enforced
yet; when IP targets land, replace `_address` with a lookup in their index
and keep the result's shape (target, kind, decision, orders, rule).
"""

from __future__ import annotations

import ipaddress
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


def _is_address(q: str) -> bool:
    try:
        ipaddress.ip_address(q.strip("[]"))
    except ValueError:
        return False
    return True


def _address(index: Index, q: str) -> dict[str, Any]:
    return {"target": q, "kind": "address", "decision": "allow", "orders": [], "rule": None,
            "note": "address targets are not enforced by this version",
            "blocklist_version": index.version, "at": index.at.isoformat()}


def _name_or_url(index: Index, q: str) -> dict[str, Any]:
    return explain(index, q)


LOOKUPS: list[Lookup] = [
    Lookup(_is_address, _address),
    Lookup(lambda q: True, _name_or_url),
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
