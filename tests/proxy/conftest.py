"""Fixtures for the HTTP enforcement tests: one act set covering the matrix."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import pytest

from tests.blocklist.builders import T0, act, domain, prefix, url
from tests.proxy.origin import Origin, start_origin
from writ.audit import MemorySink
from writ.blocklist import Blocklist, BlocklistHolder
from writ.metrics import Metrics
from writ.policies import Policy, ProxyPolicy, TlsMode
from writ.proxy import WritAddon

ACTS = (
    # A video host blocked whole, then restored except two videos.
    act("EX-2015-0907-VH", court="Northgate District Court", case="2-5678/2015",
        legal_basis='The "Communications" Act (example), s. 41',
        reference="https://court.example/orders/2-5678-2015",
        targets=(domain("videohost.example"),)),
    act("EX-2015-0928-VH-R", "restore", amends="EX-2015-0907-VH", issued=date(2015, 9, 28),
        keep_blocked=(url("https://videohost.example/v/136071201"),)),
    # URL rules only.
    act("ORD-NEWS", targets=(url("http://news.example/watch?v=abc"),
                             prefix("http://news.example/forum/"))),
    # Two orders on one host: both must be named.
    act("ORD-A", targets=(domain("overlap.example"),)),
    act("ORD-B", targets=(domain("overlap.example"),)),
    # Hostile order text: must be escaped, never executed.
    act("ORD-X", court="<script>alert(1)</script>", case="\"><img src=x onerror=alert(2)>",
        reference="javascript:alert(3)", targets=(domain("hostile.example"),)),
    act("ORD-BLOCKED", targets=(domain("blocked.example"),)),
)


def make_holder() -> BlocklistHolder:
    holder = BlocklistHolder()
    holder.set(Blocklist(ACTS), T0.replace(year=2016))
    return holder


def policy(tls: TlsMode = TlsMode.PASSTHROUGH, log_allowed: bool = True) -> Policy:
    from dataclasses import replace

    p = Policy(transparency_url="https://isp.example/blocking")
    return replace(p, proxy=ProxyPolicy(tls=tls), audit=replace(p.audit, log_allowed=log_allowed))


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    o, runner = await start_origin()
    yield o
    await runner.cleanup()


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def holder() -> BlocklistHolder:
    return make_holder()


@pytest.fixture
def addon(holder: BlocklistHolder, sink: MemorySink) -> WritAddon:
    return WritAddon(holder, policy(), sink, Metrics())
