"""structlog processors that turn a decision into a chained line.

Each is a plain callable `(logger, method_name, event_dict) -> event_dict`, so
they compose in a structlog pipeline and test on plain dicts. The writer
thread is their only caller: chain_hash holds the chain's state and must see
records one at a time, in the order they are written.

Order matters: add_node → add_timestamp → pseudonymise_client → chain_hash
(the renderer; it returns the final line and remembers the new head).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from writ.audit.privacy import ClientMasker
from writ.audit.record import GENESIS_PREV, TsFormatter, render_line

__all__ = ["AddNode", "AddTimestamp", "ChainHash", "PseudonymiseClient"]

EventDict = MutableMapping[str, Any]


class AddNode:
    def __init__(self, node: str) -> None:
        self.node = node

    def __call__(self, _logger: object, _name: str, ed: EventDict) -> EventDict:
        ed["node"] = self.node
        return ed


class AddTimestamp:
    """`ts` (epoch seconds, taken on the hot path) → RFC 3339 UTC, microseconds, Z."""

    def __init__(self) -> None:
        self._fmt = TsFormatter()

    def __call__(self, _logger: object, _name: str, ed: EventDict) -> EventDict:
        epoch = ed["ts"]
        ed["_epoch"] = epoch  # for key rotation; PseudonymiseClient removes it
        ed["ts"] = self._fmt(epoch)
        return ed


class PseudonymiseClient:
    """Replaces the raw client address per policy; adds `client_key` (the key id)."""

    def __init__(self, masker: ClientMasker) -> None:
        self.masker = masker

    def __call__(self, _logger: object, _name: str, ed: EventDict) -> EventDict:
        client = ed.get("client")
        if client is not None:
            ed["client"], ed["client_key"] = self.masker.mask(client, ed["_epoch"])
        ed.pop("_epoch", None)
        return ed


class ChainHash:
    """Assigns `seq` and `prev`, hashes, renders. The chain's head lives here."""

    def __init__(self, seq: int = 0, prev: str = GENESIS_PREV) -> None:
        self.seq = seq  # the seq the next record gets
        self.prev = prev  # the hash of the last record rendered

    def __call__(self, _logger: object, _name: str, ed: EventDict) -> str:
        ed["seq"] = self.seq
        ed["prev"] = self.prev
        line, digest = render_line(ed)
        self.seq += 1
        self.prev = digest
        return line

    def snapshot(self) -> tuple[int, str]:
        return self.seq, self.prev

    def restore(self, state: tuple[int, str]) -> None:
        self.seq, self.prev = state
