"""DecisionLines: a decision Record → its chained log line, the writer's hot loop.

The line is exactly what the structlog processors (writ.audit.processors:
add_node → add_timestamp → pseudonymise_client → chain_hash) render for the
same record — the same canonical body (record.py), the same hash, the same
chain head afterwards; tests hold the two to byte equality over arbitrary
records. It is that pipeline with what does not change between records
rendered once:
- the JSON of (component, decision, action, orders, blocklist_version) — a
  node's decisions take a handful of these (the rule, one per blocked name,
  is not among them) — cached as the canonical body's two pieces before the
  client and from it up to `prev`;
- a client's pseudonym and key id, as JSON, cached while the key they were
  made with is the key for the record's time.
Per record that leaves one f-string, one UTF-8 encode and one SHA-256.

A record this path does not expect (a field of an unusual type, text UTF-8
cannot hold) goes through the processors themselves, so every record renders
as it always did; only the cost differs. The caches are bounded
(`_CACHE_MAX` and `_CLIENTS_MAX` entries, then emptied).
"""

from __future__ import annotations

import hashlib
from json.encoder import encode_basestring as _quote
from typing import Any

from writ.audit.privacy import ClientMasker
from writ.audit.processors import AddNode, AddTimestamp, ChainHash, PseudonymiseClient
from writ.audit.record import TsFormatter, decision_event

__all__ = ["DecisionLines"]

_CACHE_MAX = 4096  # distinct (component, decision, action, orders, version)
_CLIENTS_MAX = 65_536  # clients, as the masker's own cache
_sha256 = hashlib.sha256


class DecisionLines:
    """Renders decisions for one chain (`chain`: its head, shared with the writer's
    other records) as `node`, pseudonymising clients with `masker`."""

    def __init__(self, node: str, masker: ClientMasker, chain: ChainHash) -> None:
        self.node = node
        self.masker = masker
        self.chain = chain
        self._ts = TsFormatter()
        self._pieces: dict[tuple[Any, ...], tuple[str, str]] = {}
        self._clients: dict[str, str] = {}
        self._key_window = (0.0, -1.0)  # [from, until) of the key the cached clients used
        # The structlog processors these lines equal (the writer's control records
        # go through them too), and the path for records the fast one does not take.
        self.processors = (AddNode(node), AddTimestamp(), PseudonymiseClient(masker), chain)

    def line(self, ts: float, component: str, client: str, target: str, decision: str,  # noqa: PLR0917 (a Record's fields, in its order: called as line(*record))
             action: str, orders: tuple[str, ...], rule: str | None,
             version: str | None) -> str:
        """The record's line (no newline); advances the chain. Raises whatever the
        processors raise for a record that cannot be rendered at all."""
        try:
            pieces = self._pieces.get((component, decision, action, orders, version))
        except TypeError:  # an unhashable field (a list of orders): not the writer's shape
            pieces = None
        else:
            if pieces is None:
                pieces = self._cache_pieces(component, decision, action, orders, version)
        start, until = self._key_window
        who = self._clients.get(client) if start <= ts < until and type(client) is str else None
        if who is None:
            who = self._cache_client(client, ts)
        if rule is None:
            rule_json = "null"
        elif type(rule) is str:
            rule_json = _quote(rule)
        else:
            rule_json, pieces = "", None
        if pieces is None or who is None or type(target) is not str or type(ts) is not float:
            return self._processors(ts, component, client, target, decision, action, orders,
                                    rule, version)
        head, middle = pieces
        chain = self.chain
        seq = chain.seq
        body = (f'{head}{who}{middle}{chain.prev}","rule":{rule_json},"seq":{seq},'
                f'"target":{_quote(target)},"ts":"{self._ts(ts)}"}}')
        try:
            digest = _sha256(body.encode("utf-8")).hexdigest()
        except UnicodeEncodeError:  # a lone surrogate: the processors spell it out
            return self._processors(ts, component, client, target, decision, action, orders,
                                    rule, version)
        chain.seq = seq + 1
        chain.prev = digest
        return f'{body[:-1]},"hash":"{digest}"}}'

    def _cache_pieces(self, component: str, decision: str, action: str,
                      orders: tuple[str, ...],
                      version: str | None) -> tuple[str, str] | None:
        """The canonical body before the client and from it to prev (keys in sorted order:
        action, blocklist_version, client, client_key, component, decision, event,
        node, orders, prev, rule, seq, target, ts), or None for unusual types."""
        if not (isinstance(component, str) and isinstance(decision, str)
                and isinstance(action, str) and type(orders) is tuple
                and all(type(o) is str for o in orders)
                and (version is None or type(version) is str)):
            return None
        q = _quote
        pieces = (
            f'{{"action":{q(action)},"blocklist_version":'
            f'{"null" if version is None else q(version)},"client":',
            f',"component":{q(component)},"decision":{q(decision)},'
            f'"event":{q(decision_event(component))},"node":{q(self.node)},'
            f'"orders":[{",".join(map(q, orders))}],"prev":"',
        )
        try:
            "".join(pieces).encode("utf-8")
        except UnicodeEncodeError:
            return None
        if len(self._pieces) >= _CACHE_MAX:
            self._pieces.clear()
        self._pieces[(component, decision, action, orders, version)] = pieces
        return pieces

    def _cache_client(self, client: str, ts: float) -> str | None:
        """`"<pseudonym>","client_key":<key id>` for the key in force at `ts`."""
        if type(client) is not str or type(ts) is not float:
            return None
        masked, key_id = self.masker.mask(client, ts)
        window = self.masker.key_window
        if window != self._key_window or len(self._clients) >= _CLIENTS_MAX:
            self._clients.clear()
            self._key_window = window
        who = f'{_quote(masked)},"client_key":{"null" if key_id is None else _quote(key_id)}'
        self._clients[client] = who
        return who

    def _processors(self, ts: float, component: str, client: str, target: str,  # noqa: PLR0917 (as line)
                    decision: str, action: str, orders: tuple[str, ...], rule: str | None,
                    version: str | None) -> str:
        add_node, add_ts, pseudonymise, chain = self.processors
        ed = {"event": decision_event(component), "ts": ts, "component": component,
              "client": client, "target": target, "decision": decision, "action": action,
              "orders": list(orders), "rule": rule, "blocklist_version": version}
        return chain(None, "info", pseudonymise(None, "info",
                                                add_ts(None, "info", add_node(None, "info", ed))))
