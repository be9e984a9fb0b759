"""The writer's decision lines (writ.audit.lines) are byte for byte the lines the
structlog processors render for the same records, chain head included — for
arbitrary field values, every privacy mode, and keys that rotate under it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from writ.audit import Action, ClientMasker, Outcome
from writ.audit.lines import DecisionLines
from writ.audit.processors import AddNode, AddTimestamp, ChainHash, PseudonymiseClient
from writ.audit.record import decision_event
from writ.policies import ClientPrivacy

DAY = 86_400.0
MIDNIGHT = 1_441_584_000.0  # 2015-09-07T00:00:00Z, a Monday

text = st.text(max_size=30)  # includes lone surrogates, quotes, control characters
maybe = st.none() | text
clients = st.sampled_from(["192.0.2.7", "192.0.2.7:5353", "[2001:db8::1]:53", "2001:db8::1",
                           "198.51.100.9", "not an address"]) | text
records = st.tuples(
    st.floats(min_value=MIDNIGHT - 3 * DAY, max_value=MIDNIGHT + 10 * DAY),
    st.sampled_from(["dns", "http"]) | text,
    clients,
    text,
    st.sampled_from(list(Outcome)) | text,
    st.sampled_from(list(Action)) | text,
    st.lists(text, max_size=3).map(tuple),
    maybe,
    maybe,
)


def _reference(node: str, masker: ClientMasker, chain: ChainHash):  # type: ignore[no-untyped-def]
    """The pipeline the writer used for every decision before lines.py."""
    add_node, add_ts, pseudonymise = AddNode(node), AddTimestamp(), PseudonymiseClient(masker)

    def line(ts: Any, component: Any, client: Any, target: Any, decision: Any, action: Any,
             orders: Any, rule: Any, version: Any) -> str:
        ed = {"event": decision_event(component), "ts": ts, "component": component,
              "client": client, "target": target, "decision": decision, "action": action,
              "orders": list(orders), "rule": rule, "blocklist_version": version}
        return chain(None, "info", pseudonymise(None, "info",
                                                add_ts(None, "info", add_node(None, "info", ed))))
    return line


def _pair(tmp: Path, mode: ClientPrivacy, rotation: str | None):  # type: ignore[no-untyped-def]
    key = tmp / f"client-{mode}-{rotation}.key"
    fast_chain, slow_chain = ChainHash(), ChainHash()
    fast = DecisionLines("edge-1", ClientMasker(mode, key, rotation), fast_chain)
    slow = _reference("edge-1", ClientMasker(mode, key, rotation), slow_chain)
    return fast, fast_chain, slow, slow_chain


@pytest.mark.parametrize(("mode", "rotation"), [
    (ClientPrivacy.PSEUDONYMISE, None), (ClientPrivacy.PSEUDONYMISE, "daily"),
    (ClientPrivacy.PSEUDONYMISE, "weekly"), (ClientPrivacy.TRUNCATE, None),
    (ClientPrivacy.RAW, None)])
@settings(max_examples=60, deadline=None)
@given(batch=st.lists(records, min_size=1, max_size=25))
def test_lines_equal_the_processors_lines(tmp_path_factory: pytest.TempPathFactory,
                                          mode: ClientPrivacy, rotation: str | None,
                                          batch: list[tuple[Any, ...]]) -> None:
    tmp = tmp_path_factory.getbasetemp()
    fast, fast_chain, slow, slow_chain = _pair(tmp, mode, rotation)
    for record in batch + batch:  # twice: the second time every cache is warm
        assert fast.line(*record) == slow(*record)
        assert fast_chain.snapshot() == slow_chain.snapshot()


def test_a_rotated_key_is_used_from_its_first_second(tmp_path: Path) -> None:
    """Records on both sides of midnight, out of order as workers deliver them:
    each carries the pseudonym and key id of its own day."""
    fast, _, slow, _ = _pair(tmp_path, ClientPrivacy.PSEUDONYMISE, "daily")
    times = [MIDNIGHT - 0.5, MIDNIGHT - 1e-6, MIDNIGHT, MIDNIGHT - 0.25, MIDNIGHT + 3.0,
             MIDNIGHT + DAY, MIDNIGHT - 0.1]
    keys = []
    for ts in times:
        record = (ts, "dns", "192.0.2.7", "blocked.example. A", Outcome.BLOCK,
                  Action.SINKHOLE, ("EX-1",), "domain:blocked.example", "v1")
        line = fast.line(*record)
        assert line == slow(*record)
        keys.append(json.loads(line)["client_key"])
    assert keys == ["2015-09-06", "2015-09-06", "2015-09-07", "2015-09-06", "2015-09-07",
                    "2015-09-08", "2015-09-06"]


def test_an_unusual_record_still_renders_as_before(tmp_path: Path) -> None:
    """Types the fast path does not expect (an int time, a list of orders, no
    client) take the processors' path: same line, same chain."""
    fast, fast_chain, slow, slow_chain = _pair(tmp_path, ClientPrivacy.PSEUDONYMISE, None)
    for record in [(MIDNIGHT, "dns", "192.0.2.7", "a.example. A", "block", "sinkhole",
                    ["EX-1"], None, None),
                   (1_441_584_000, "dns", "192.0.2.7", "a.example. A", "block", "sinkhole",
                    ("EX-1",), None, None),
                   (MIDNIGHT, "dns", None, "a.example. A", "block", "sinkhole", (), None, None),
                   (MIDNIGHT, "dns", "192.0.2.7", "\udc80.example. A", "block", "sinkhole",
                    ("EX-\udcff",), "r\udc80", None)]:
        assert fast.line(*record) == slow(*record)
        assert fast_chain.snapshot() == slow_chain.snapshot()
