"""The web server on a real AppRunner at 127.0.0.1:0: block page and admin API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.blocklist.builders import T0, act, domain, url
from writ.blocklist import Blocklist, BlocklistHolder, Target, TargetKind
from writ.metrics import Metrics
from writ.policies import Policy
from writ.web import WebHandle, WebStartError, read_token, run_web

TOKEN = "s3cret-token-for-tests-0123456789"
ACTS = (
    act("ORD-1", court="<b>Court</b>", reference="https://court.example/1",
        targets=(domain("blocked.example"), url("http://mixed.example/bad?id=1"))),
    act("ORD-2", targets=(domain("blocked.example"),
                          Target(TargetKind.IP_PREFIX, "198.51.100.0/24"),
                          Target(TargetKind.IP, "2001:db8::7"))),
)


@dataclass
class Server:
    handle: WebHandle
    holder: BlocklistHolder
    metrics: Metrics

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.handle.port}{path}"


def loaded() -> BlocklistHolder:
    h = BlocklistHolder()
    h.set(Blocklist(ACTS), T0.replace(year=2016))
    return h


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    holder, metrics = loaded(), Metrics()
    handle = await run_web(holder, Policy(), metrics=metrics, token=TOKEN,
                           listen="127.0.0.1:0", sink_stats=lambda: {"drops": 0})
    yield Server(handle, holder, metrics)
    await handle.shutdown()


async def get(url: str, **headers: str) -> tuple[int, str, str, dict[str, str]]:
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers) as r:
        return r.status, r.reason or "", await r.text(), dict(r.headers)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_sinkholed_host_gets_the_451_page_on_any_path(server: Server) -> None:
    for path in ("/", "/metrics", "/v1/orders", "/some/page?x=1"):
        status, reason, body, headers = await get(server.url(path), Host="www.blocked.example")
        assert (status, reason) == (451, "Unavailable For Legal Reasons")
        assert headers["Cache-Control"] == "no-store"
        assert headers["Link"] == '<https://isp.example/blocking>; rel="blocked-by"'
        assert "ORD-1" in body
        assert "ORD-2" in body
        assert "&lt;b&gt;Court&lt;/b&gt;" in body


async def test_block_page_as_json(server: Server) -> None:
    status, _, body, headers = await get(server.url("/"), Host="blocked.example",
                                         Accept="application/json")
    assert status == 451
    assert headers["Content-Type"].startswith("application/json")
    assert '"ORD-1"' in body


async def test_not_blocked_host_is_explained(server: Server) -> None:
    status, _, body, _ = await get(server.url("/"), Host="fine.example")
    assert status == 200
    assert "No court order in force blocks" in body
    status, _, body, _ = await get(server.url("/ok"), Host="mixed.example")
    assert status == 200
    assert "Some addresses on this host are blocked" in body
    status, _, body, _ = await get(server.url("/bad?x=2&id=1"), Host="mixed.example")
    assert status == 451


async def test_bad_host_is_a_400(server: Server) -> None:
    status, _, _body, _ = await get(server.url("/"), Host="bad..name.example")
    assert status == 400


async def test_health_and_readiness(server: Server) -> None:
    assert (await get(server.url("/healthz")))[0] == 200
    status, _, body, _ = await get(server.url("/readyz"))
    assert status == 200
    assert '"ready": true' in body


async def test_not_ready_without_a_blocklist() -> None:
    handle = await run_web(BlocklistHolder(), Policy(), listen="127.0.0.1:0")
    try:
        status, _, body, _ = await get(f"http://127.0.0.1:{handle.port}/readyz")
        assert status == 503
        assert "no blocklist loaded yet" in body
        status, *_ = await get(f"http://127.0.0.1:{handle.port}/", Host="blocked.example")
        assert status == 503
    finally:
        await handle.shutdown()


async def test_metrics(server: Server) -> None:
    server.metrics.count("http", "block", "451", ["ORD-1", "ORD-2"])
    server.metrics.count("dns", "block", "sinkhole", ["ORD-1"])
    status, _, body, headers = await get(server.url("/metrics"))
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    lines = body.splitlines()
    assert 'writ_decisions_total{component="http",decision="block",action="451"} 1' in lines
    assert 'writ_order_decisions_total{component="dns",order="ORD-1"} 1' in lines
    assert f'writ_blocklist_info{{version="{server.holder.index.version}"}} 1' in lines
    assert 'writ_blocklist_rules{kind="domain"} 1' in lines
    assert 'writ_blocklist_rules{kind="url"} 1' in lines
    assert 'writ_blocklist_rules{kind="ip"} 2' in lines  # ip and ip_prefix rules
    assert "writ_drops_total 0" in lines
    assert "# TYPE writ_drops_total counter" in lines
    assert any(line.startswith("writ_blocklist_age_seconds ") for line in lines)


@pytest.mark.parametrize("path", ["/v1/version", "/v1/orders", "/v1/explain?target=x.example"])
async def test_admin_needs_the_token(server: Server, path: str) -> None:
    status, _, _, headers = await get(server.url(path))
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Bearer")
    status, *_ = await get(server.url(path), Authorization="Bearer wrong")
    assert status == 401
    status, *_ = await get(server.url(path), **AUTH)
    assert status == 200


async def test_admin_disabled_without_a_token() -> None:
    handle = await run_web(loaded(), Policy(), listen="127.0.0.1:0")
    try:
        status, _, body, _ = await get(f"http://127.0.0.1:{handle.port}/v1/version", **AUTH)
        assert status == 403
        assert "web.token_file" in body
    finally:
        await handle.shutdown()


async def test_version_orders_explain(server: Server) -> None:
    import json

    _, _, body, _ = await get(server.url("/v1/version"), **AUTH)
    v = json.loads(body)
    assert v["blocklist_version"] == server.holder.index.version
    assert v["rules"] == 4  # a domain, a url, an ip and an ip_prefix
    _, _, body, _ = await get(server.url("/v1/orders"), **AUTH)
    assert [o["id"] for o in json.loads(body)["orders"]] == ["ORD-1", "ORD-2"]
    _, _, body, _ = await get(
        server.url("/v1/explain?target=a.blocked.example&target=http://mixed.example/bad?id=1"),
        **AUTH)
    results = json.loads(body)["results"]
    assert results[0]["decision"] == "block"
    assert results[0]["orders"] == ["ORD-1", "ORD-2"]
    assert results[1]["decision"] == "block"
    assert results[1]["orders"] == ["ORD-1"]
    status, _, body, _ = await get(server.url("/v1/explain?target=bad..x"), **AUTH)
    assert status == 400
    status, _, body, _ = await get(server.url("/v1/nothing"), **AUTH)
    assert status == 404


def test_token_file(tmp_path: Path) -> None:
    p = tmp_path / "token"
    p.write_text(TOKEN + "\n")
    assert read_token(str(p)) == TOKEN
    p.write_text("short")
    with pytest.raises(ValueError, match="shorter than 16"):
        read_token(str(p))
    with pytest.raises(ValueError, match="cannot read"):
        read_token(str(tmp_path / "missing"))


async def test_port_in_use_is_a_clear_error(server: Server) -> None:
    with pytest.raises(WebStartError, match=str(server.handle.port)):
        await run_web(loaded(), Policy(), listen=f"127.0.0.1:{server.handle.port}")
