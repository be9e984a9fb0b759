"""/readyz and /metrics tell the operator when the node enforces a stale blocklist."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from writ.blocklist import BlocklistHolder
from writ.blocklist.stores import EmbeddedStore
from writ.policies import Policy
from writ.web import run_web

GOOD = """id: ORD-1
court: Test Court
case: "1/2016"
issued: 2016-01-01
targets: [{domain: blocked.example}]
"""


async def _get(url: str) -> tuple[int, dict | str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        if r.content_type == "application/json":
            return r.status, await r.json()
        return r.status, await r.text()


async def test_readyz_reports_a_stale_blocklist_after_an_invalid_edit(tmp_path: Path) -> None:
    orders = tmp_path / "orders"
    orders.mkdir()
    (orders / "a.yaml").write_text(GOOD)
    holder = BlocklistHolder()
    store = EmbeddedStore(orders, interval=0.1)
    await store.start(holder)
    web = await run_web(holder, Policy(), listen="127.0.0.1:0", store_status=store.status)
    base = f"http://127.0.0.1:{web.port}"
    try:
        status, body = await _get(base + "/readyz")
        assert status == 200
        assert isinstance(body, dict)
        assert body["stale"] is False
        assert body["store"]["source"] == "orders"

        (orders / "a.yaml").write_text(GOOD.replace("issued: 2016-01-01", "issued: 2016-13-01"))
        for _ in range(50):
            await asyncio.sleep(0.1)
            status, body = await _get(base + "/readyz")
            assert isinstance(body, dict)
            if body["stale"]:
                break
        # still enforcing the last good version, and saying why it is stale
        assert status == 200
        assert body["stale"] is True
        assert body["store"]["last_error"].endswith("1 error(s) in the orders")
        _, text = await _get(base + "/metrics")
        assert "writ_store_stale 1.0" in str(text)
        assert holder.index is not None
        assert holder.index.decide_name("blocked.example").blocked
    finally:
        await web.shutdown()
        await store.stop()


async def test_readyz_is_503_without_any_blocklist() -> None:
    web = await run_web(BlocklistHolder(), Policy(), listen="127.0.0.1:0")
    try:
        status, body = await _get(f"http://127.0.0.1:{web.port}/readyz")
        assert status == 503
        assert isinstance(body, dict)
        assert body["ready"] is False
    finally:
        await web.shutdown()
