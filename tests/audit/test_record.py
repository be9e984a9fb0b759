"""The record's canonical form: the hand-written fast path equals canonical()."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from writ.audit.record import (
    canonical,
    format_ts,
    hash_line,
    read_line,
    render_line,
    split_line,
)

text = st.text(max_size=40)
maybe = st.none() | text


@given(action=text, version=maybe, client=text, key=maybe, comp=text, decision=text,
       target=text, orders=st.lists(text, max_size=4), rule=maybe,
       seq=st.integers(min_value=0, max_value=2**63))
def test_decision_lines_hash_their_canonical_form(action: str, version: str | None,
                                                  client: str, key: str | None, comp: str,
                                                  decision: str, target: str,
                                                  orders: list[str], rule: str | None,
                                                  seq: int) -> None:
    rec = {"action": action, "blocklist_version": version, "client": client, "client_key": key,
           "component": comp, "decision": decision, "event": f"writ.{comp}.decision",
           "node": "edge-1", "orders": orders, "prev": "0" * 64, "rule": rule, "seq": seq,
           "target": target, "ts": "2015-09-07T00:00:00.000000Z"}
    line, digest = render_line(rec)
    assert digest == hashlib.sha256(canonical(rec)).hexdigest()
    parsed = json.loads(line)
    assert parsed.pop("hash") == digest
    assert parsed == rec
    assert hash_line(line.encode()) == digest
    assert split_line(line.encode()) == (canonical(rec), digest)


def test_control_records_take_the_general_path() -> None:
    rec = {"event": "writ.audit.seal", "seq": 9, "prev": "a" * 64, "count": 3, "last": "a" * 64}
    line, digest = render_line(rec)
    assert digest == hashlib.sha256(canonical(rec)).hexdigest()
    assert json.loads(line)["hash"] == digest


def test_timestamps_are_rfc3339_utc_with_microseconds() -> None:
    assert format_ts(0.0) == "1970-01-01T00:00:00.000000Z"
    assert format_ts(1441584000.25) == "2015-09-07T00:00:00.250000Z"
    assert format_ts(1441584000.9999996) == "2015-09-07T00:00:01.000000Z"


def _outcome(read: object, raw: bytes) -> str:
    try:
        return repr(read(raw))  # type: ignore[operator]
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both
        return "refused"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)


@given(json_values)
def test_reading_a_line_gives_what_the_standard_library_gives(value: object) -> None:
    raw = json.dumps(value).encode("utf-8") + b"\n"
    assert read_line(raw) == json.loads(raw)


@pytest.mark.parametrize("raw", [
    b'{"t":"\\udc80"}',  # a lone surrogate escape: orjson refuses it, json reads it
    b'{"x":NaN}',
    b'{"a":1,"a":2}',  # the last key wins in both
    b'\xef\xbb\xbf{"a":1}',  # a byte-order mark
    b'{"a":"\xff"}',  # not UTF-8
    b"{not json",
])
def test_lines_orjson_refuses_get_the_standard_librarys_answer(raw: bytes) -> None:
    assert _outcome(read_line, raw) == _outcome(lambda r: json.loads(r.decode("utf-8")), raw)


def test_an_integer_past_64_bits_reads_as_a_float() -> None:
    raw = b'{"seq":123456789012345678901234567890}'
    assert type(read_line(raw)["seq"]) is float  # documented: the writer never writes one
