"""The audit record: canonical form, hash, timestamps, event names.

Invariants:
- `hash` = SHA-256 hex over the canonical JSON of the record without `hash`:
  keys sorted, no whitespace (`,` `:`), UTF-8, non-ASCII left as is.
- The writer emits each line as that canonical body with `,"hash":"…"}`
  appended, so a verifier can hash the raw bytes without re-serialising
  (fast path) and fall back to re-serialising only when they differ.
- `seq` counts every record of one node's chain, across files, from 0 (the
  genesis record). `prev` of the genesis record is GENESIS_PREV.
- Control records (genesis, continue, seal, dropped) carry the same `ts`,
  `seq`, `node`, `prev`, `hash` as decisions and differ by `event`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from json.encoder import encode_basestring as _quote
from typing import Any

import orjson

__all__ = [
    "CONTINUE",
    "DECISION_KEYS",
    "DISK_COPY_REFUSED",
    "DROPPED",
    "GENESIS",
    "GENESIS_PREV",
    "SEAL",
    "SIGNED_SET",
    "TsFormatter",
    "canonical",
    "decision_event",
    "format_ts",
    "hash_line",
    "read_line",
    "record_hash",
    "render_line",
    "split_line",
]

GENESIS = "writ.audit.genesis"  # the first record of a node's chain
CONTINUE = "writ.audit.continue"  # the first record of every later file
SEAL = "writ.audit.seal"  # the last record of a closed file
DROPPED = "writ.audit.dropped"  # records that could not be written, counted
# A signed set went into force on the node: its manifest's sequence, digest, signer
# key ids and the blocklist version it carries (docs/auditor.md).
SIGNED_SET = "writ.blocklist.signed_set"
# A node with a keyring refused its disk copy at start (tampered, older, unsigned):
# why, and which copy (docs/auditor.md).
DISK_COPY_REFUSED = "writ.blocklist.disk_copy_refused"
GENESIS_PREV = "0" * 64

_HASH_TAIL_LEN = len(',"hash":"') + 64 + len('"}')


def decision_event(component: str) -> str:
    """`writ.dns.decision`, `writ.http.decision` (dotted event names)."""
    return f"writ.{component}.decision"


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
DECISION_KEYS = frozenset({"action", "blocklist_version", "client", "client_key", "component",
                           "decision", "event", "node", "orders", "prev", "rule", "seq",
                           "target", "ts"})


def read_line(raw: bytes) -> Any:
    """One line of a log, parsed. Raises ValueError (not JSON, not UTF-8).

    orjson reads the lines auditors' tools go through by the million, about
    three times as fast as the standard library; what it refuses (a lone
    surrogate escape, NaN, a number too large for a double) goes to the
    standard library. One difference remains: an integer beyond 64 bits reads
    as a float. The writer never writes one (seq and counts are far below), and
    verify judges a line by its bytes' hash and its fields' types, so such a
    line is a finding either way.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            return json.loads(raw.decode("utf-8"))
        except RecursionError:  # "[[[[…" a hundred thousand deep
            raise ValueError("nested too deeply") from None


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes that are hashed: sorted keys, compact, UTF-8."""
    return _CANONICAL.encode(record).encode("utf-8")


def _q(value: object) -> str:
    if value is None:
        return "null"
    if type(value) is str:
        return _quote(value)
    if type(value) is int:
        return str(value)
    return _CANONICAL.encode(value)


def _canonical_decision(r: Mapping[str, Any]) -> str:
    """canonical() for a decision record, written out: the writer's hot loop.

    The keys are in sorted order by hand; tests check it equals canonical()
    for arbitrary field values.
    """
    fields = (r["action"], r["client"], r["component"], r["decision"], r["event"], r["node"],
              r["prev"], r["target"], r["ts"])
    orders = r["orders"]
    key, version, rule, seq = r["client_key"], r["blocklist_version"], r["rule"], r["seq"]
    # isinstance, not type(): decision and action are StrEnum members (str subclasses,
    # quoted as their values by _quote, in C), so the log's bytes are the strings'.
    if (all(isinstance(f, str) for f in fields) and all(type(o) is str for o in orders)
            and type(seq) is int and (key is None or type(key) is str)
            and (version is None or type(version) is str)
            and (rule is None or type(rule) is str)):
        # the writer's records: every field of its usual type, quoted in C
        q = _quote
        action, client, component, decision, event, node, prev, target, ts = map(q, fields)
        return (f'{{"action":{action},"blocklist_version":'
                f'{"null" if version is None else q(version)},'
                f'"client":{client},"client_key":{"null" if key is None else q(key)},'
                f'"component":{component},"decision":{decision},"event":{event},'
                f'"node":{node},"orders":[{",".join(map(q, orders))}],"prev":{prev},'
                f'"rule":{"null" if rule is None else q(rule)},"seq":{seq},'
                f'"target":{target},"ts":{ts}}}')
    if all(type(o) is str for o in orders):
        orders_json = "[" + ",".join(map(_quote, orders)) + "]"
    else:
        orders_json = _CANONICAL.encode(orders)
    return (f'{{"action":{_q(r["action"])},"blocklist_version":{_q(r["blocklist_version"])},'
            f'"client":{_q(r["client"])},"client_key":{_q(r["client_key"])},'
            f'"component":{_q(r["component"])},"decision":{_q(r["decision"])},'
            f'"event":{_q(r["event"])},"node":{_q(r["node"])},"orders":{orders_json},'
            f'"prev":{_q(r["prev"])},"rule":{_q(r["rule"])},"seq":{_q(r["seq"])},'
            f'"target":{_q(r["target"])},"ts":{_q(r["ts"])}}}')


def record_hash(record: dict[str, Any]) -> str:
    """The hash a record must carry (any `hash` key in it is ignored)."""
    if "hash" in record:
        record = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(canonical(record)).hexdigest()


def render_line(record: Mapping[str, Any]) -> tuple[str, str]:
    """(line without newline, hash) for a record that has no `hash` yet."""
    if record.keys() == DECISION_KEYS:
        body = _canonical_decision(record)
    else:
        body = _CANONICAL.encode(record)
    try:
        data = body.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate: bytes that were not UTF-8, carried in a str (as
        # surrogateescape decodes them). UTF-8 cannot hold it, so the record
        # says it as text (`\udc80`) rather than the line being lost.
        return render_line(_spelled_out(record))
    digest = hashlib.sha256(data).hexdigest()
    return f'{body[:-1]},"hash":"{digest}"}}', digest


def _spelled_out(value: Any) -> Any:
    """`value` with every lone surrogate in its strings written as `\\uXXXX` text."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, Mapping):
        return {k: _spelled_out(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_spelled_out(v) for v in value]
    return value


def split_line(line: bytes) -> tuple[bytes, str] | None:
    """Split a line in the writer's own layout into (canonical body, claimed hash).

    None when the line is not in that layout (then re-serialise to check it).
    """
    line = line.rstrip(b"\r\n")
    if len(line) <= _HASH_TAIL_LEN or not line.endswith(b'"}'):
        return None
    tail = line[-_HASH_TAIL_LEN:]
    if not tail.startswith(b',"hash":"'):
        return None
    return line[:-_HASH_TAIL_LEN] + b"}", tail[9:73].decode("ascii", "replace")


def hash_line(line: bytes) -> str | None:
    """SHA-256 of the canonical body of a line in the writer's layout, else None."""
    parts = split_line(line)
    if parts is None:
        return None
    return hashlib.sha256(parts[0]).hexdigest()


class TsFormatter:
    """Formats epoch seconds as RFC 3339 UTC with microseconds, `Z` suffix.

    The date-and-time prefix only changes once a second; caching it keeps the
    writer's per-record cost to one f-string. The cache is one tuple, swapped
    whole, so threads sharing it never pair a second with another's prefix.
    """

    __slots__ = ("cached",)

    def __init__(self) -> None:
        self.cached: tuple[int, str] = (-1, "")

    def __call__(self, epoch: float) -> str:
        second = int(epoch)
        micros = round((epoch - second) * 1_000_000)
        if micros >= 1_000_000:
            second, micros = second + 1, micros - 1_000_000
        cached_second, prefix = self.cached
        if second != cached_second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self.cached = (second, prefix)
        return f"{prefix}.{micros:06d}Z"


format_ts = TsFormatter()
