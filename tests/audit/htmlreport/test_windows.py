"""Windows: which orders a decision may name at an instant (act folding)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from writ.audit.htmlreport.windows import Windows
from writ.blocklist import load_orders

ACTS = """\
id: EX-C
court: Example District Court
case: "1-3/2015"
issued: 2015-09-07
effective: 2015-09-07T00:00:00Z
expires: 2015-09-20T00:00:00Z
targets:
  - domain: videohost.example
  - domain: forum.example
---
id: EX-C-R
kind: restore
amends: EX-C
court: Example District Court
case: "1-3/2015"
issued: 2015-09-10
effective: 2015-09-10T00:00:00Z
restores:
  - domain: videohost.example
keep_blocked:
  - url: https://videohost.example/v/1
"""


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> Windows:
    d = tmp_path_factory.mktemp("orders")
    (d / "ex-c.yaml").write_text(ACTS)
    result = load_orders(d, ZoneInfo("UTC"))
    assert result.ok, result.errors
    return Windows(result.acts)


@pytest.mark.parametrize(("ts", "order", "rule", "outside", "why"), [
    ("2015-09-06T23:59:59.999999Z", "EX-C", "domain videohost.example", True,
     "before the order was effective (2015-09-07T00:00:00.000000Z)"),
    ("2015-09-07T00:00:00.000000Z", "EX-C", "domain videohost.example", False, None),
    ("2015-09-09T23:59:59.000000Z", "EX-C", "domain videohost.example", False, None),
    # restored: the host lifted, the other host and the kept URL still blocked
    ("2015-09-10T00:00:00.000000Z", "EX-C", "domain videohost.example", True,
     "videohost.example was restored by EX-C-R"),
    ("2015-09-10T00:00:00.000000Z", "EX-C", "domain forum.example", False, None),
    ("2015-09-12T00:00:00.000000Z", "EX-C-R", "url videohost.example/v/1", False, None),
    ("2015-09-20T00:00:00.000000Z", "EX-C", "domain forum.example", True,
     "after the order expired (2015-09-20T00:00:00.000000Z)"),
    ("2015-09-12T00:00:00.000000Z", "EX-NONE", "domain forum.example", True,
     "the order is not in the given order set"),
])
def test_a_decision_is_inside_or_outside_its_orders_window(
        windows: Windows, ts: str, order: str, rule: str, outside: bool,
        why: str | None) -> None:
    i = windows.index(ts)
    assert windows.outside(i, order, rule) is outside
    if why is not None:
        assert windows.why(i, order, rule) == why


def test_the_history_of_an_order_lists_its_restoration(windows: Windows) -> None:
    assert [(e.kind, e.act) for e in windows.events("EX-C")] == [
        ("effective", "EX-C"), ("issued", "EX-C"), ("restored", "EX-C-R"),
        ("expires", "EX-C")]
