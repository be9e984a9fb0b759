"""Fixtures for the ICAP tests: the proxy tests' act set, a server on loopback,
Debian's squid binary for the tests that start a Squid."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date

import pytest

from tests.blocklist.builders import T0, act, domain, prefix, url
from tests.icap.squid import squid_binary
from writ.audit import MemorySink
from writ.blocklist import Blocklist, BlocklistHolder
from writ.icap import IcapServer, run_icap
from writ.metrics import Metrics
from writ.policies import IcapPolicy, Policy

ACTS = (
    # A video host blocked whole, then restored except one video.
    act("EX-2015-0907-VH", court="Northgate District Court", case="2-5678/2015",
        reference="https://court.example/orders/2-5678-2015",
        targets=(domain("videohost.example"),)),
    act("EX-2015-0928-VH-R", "restore", amends="EX-2015-0907-VH", issued=date(2015, 9, 28),
        keep_blocked=(url("https://videohost.example/v/136071201"),)),
    act("ORD-NEWS", targets=(url("http://news.example/watch?v=abc"),
                             prefix("http://news.example/forum/"))),
    act("ORD-BLOCKED", targets=(domain("blocked.example"),)),
)


def make_holder() -> BlocklistHolder:
    holder = BlocklistHolder()
    holder.set(Blocklist(ACTS), T0.replace(year=2016))
    return holder


def icap_policy(**icap: object) -> Policy:
    p = Policy(transparency_url="https://isp.example/blocking")
    return replace(p, icap=replace(IcapPolicy(listen="127.0.0.1:0"), **icap),  # type: ignore[arg-type]
                   audit=replace(p.audit, log_allowed=True))


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
async def server(sink: MemorySink) -> AsyncIterator[IcapServer]:
    srv = await run_icap(make_holder(), icap_policy(), sink, metrics=Metrics())
    yield srv
    await srv.shutdown()


@pytest.fixture(scope="module")
def squid_bin() -> str:
    found = squid_binary()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("squid is not installed (.ci/run installs it)")
        pytest.skip("squid is not installed")
    return found
