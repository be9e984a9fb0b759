"""Builders for acts in tests: the model, without going through YAML.

Import as `from tests.blocklist.builders import act, domain, url, prefix`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from writ.blocklist import Act, ActKind, Target, TargetKind, canonical_name, canonical_url

T0 = datetime(2015, 9, 7, tzinfo=UTC)


def domain(name: str, subdomains: bool = True) -> Target:
    return Target(TargetKind.DOMAIN, canonical_name(name), subdomains=subdomains)


def url(u: str) -> Target:
    c = canonical_url(u)
    return Target(TargetKind.URL, c.host, c.path, c.query)


def prefix(u: str) -> Target:
    c = canonical_url(u)
    return Target(TargetKind.URL_PREFIX, c.host, c.path)


def act(act_id: str, kind: str = "block", **kw: Any) -> Act:
    effective = kw.pop("effective", T0)
    return Act(
        id=act_id,
        kind=ActKind(kind),
        court=kw.pop("court", "District Court"),
        case=kw.pop("case", "2-1/2015"),
        issued=kw.pop("issued", date(2015, 9, 7)),
        effective=effective,
        **kw,
    )
