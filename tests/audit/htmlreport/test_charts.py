"""The charts' time axis and bytes."""

from __future__ import annotations

from collections import Counter

import pytest

from writ.audit.htmlreport.charts import MAX_BINS, Axis, activity_chart


@pytest.mark.parametrize(("first", "last", "unit", "bins"), [
    ("2015-09-07T10:30:00.000000Z", "2015-09-07T12:00:00.000000Z", "hour", 3),
    ("2015-09-07T00:00:00.000000Z", "2015-09-20T23:59:59.999999Z", "hour", 14 * 24),
    ("2015-09-07T00:00:00.000000Z", "2015-10-06T23:00:00.000000Z", "day", 30),
    ("2015-01-01T00:00:00.000000Z", "2024-12-31T00:00:00.000000Z", "week", 522),
    # one node's clock at 1970: the axis stays a chart, not half a million bins
    ("1970-01-01T00:00:00.000000Z", "2100-01-01T00:00:00.000000Z", "52 weeks", 131),
])
def test_the_bins_fit_the_span(first: str, last: str, unit: str, bins: int) -> None:
    axis = Axis.around(first, last)
    assert axis.unit == unit
    assert len(axis.edges()) - 1 == bins <= MAX_BINS
    assert axis.x(first) >= axis.edges()[0]
    assert axis.x(last) <= axis.edges()[-1]


def test_counts_land_in_their_bins() -> None:
    axis = Axis.around("2015-09-01T00:00:00.000000Z", "2015-09-30T00:00:00.000000Z")
    counts = axis.dense(Counter({"2015-09-01T00": 2, "2015-09-01T23": 3, "2015-09-30T05": 7}))
    assert (counts[0], counts[-1], sum(counts)) == (5, 7, 12)


def test_a_chart_is_the_same_bytes_every_time() -> None:
    axis = Axis.around("2015-09-07T00:00:00.000000Z", "2015-09-08T00:00:00.000000Z")
    series = [("edge-1", Counter({"2015-09-07T03": 4}))]
    marks = [("2015-09-07T05:00:00.000000Z", "restart", 0)]
    a = activity_chart(axis, series, marks, [])
    assert a == activity_chart(axis, series, marks, [])
    assert a.startswith("<svg")
    assert "Date" not in a
    assert "Matplotlib v" not in a
