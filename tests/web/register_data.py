"""Sample orders for the public-pages tests (reserved names only)."""

from __future__ import annotations

from datetime import date, timedelta

from tests.blocklist.builders import T0, act, domain, url
from writ.blocklist import Blocklist, BlocklistHolder, Target, TargetKind

AT = T0.replace(year=2016)
XSS = "<script>alert(1)</script>"

ACTS = (
    act("KZ-2015-001", court="Northgate District Court", case="2-1017/2015",
        authority="Prosecutor of Northgate", legal_basis="Law on Communications, art. 41-1",
        reference="https://court.example/acts/2-1017-2015",
        summary="Video sharing site with unlicensed broadcasts",
        summaries=(("en", "Video sharing site with unlicensed broadcasts"),
                   ("kk", "Лицензиясыз хабар тарататын бейне сайт"),
                   ("ru", "Видеохостинг с нелицензионными трансляциями")),
        targets=(domain("videohost.example"), domain("streams.example"),
                 url("http://news.example/article?id=7"),
                 Target(TargetKind.IP_PREFIX, "198.51.100.0/24"))),
    act("KZ-2015-002", court="Southgate Specialised Court", case="3-55/2015",
        confidential=True, legal_basis="Criminal Code, art. 174",
        targets=(domain("secret-one.example"), domain("secret-two.example"))),
    act("KZ-2015-003", kind="restore", amends="KZ-2015-001",
        court="Northgate District Court", case="2-1017/2015",
        issued=date(2015, 10, 1), effective=T0 + timedelta(days=24),
        restores=(domain("videohost.example"),),
        keep_blocked=(url("http://videohost.example/live/banned"),)),
    act("KZ-2014-009", court="Eastgate City Court", case="1-9/2014", issued=date(2014, 3, 1),
        effective=T0 - timedelta(days=500), expires=T0 - timedelta(days=100),
        targets=(domain("old.example"),)),
    act("KZ-2015-004", court="Westgate Court", case="5-5/2015",
        targets=(domain("appealed.example"),)),
    act("KZ-2015-005", kind="revoke", amends="KZ-2015-004", court="Appeal Court",
        case="5a-5/2015", issued=date(2015, 12, 1), effective=T0 + timedelta(days=90)),
)

EVIL = act("EVIL-1", court=XSS, case=XSS, authority=XSS, legal_basis=XSS, summary=XSS,
           summaries=(("en", XSS), ("kk", XSS), ("ru", XSS)),
           reference="https://court.example/" + XSS.replace(" ", ""),
           targets=(domain("evil.example"),))


def holder(acts: tuple = ACTS) -> BlocklistHolder:  # type: ignore[type-arg]
    h = BlocklistHolder()
    h.set(Blocklist(acts), AT)
    return h
