"""--redis: the published order set judges the windows; its publish history gives
each node's switch lag. A real redis-server started by the test session."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from tests.audit.htmlreport.page import table
from tests.audit.htmlreport.scenario import ORDERS, build
from writ.blocklist import Blocklist, load_orders
from writ.blocklist.stores.connection import connect
from writ.blocklist.stores.publishing import publish
from writ.blocklist.stores.registry import Registry
from writ.cli import main


def _blocklist(folder: Path, names: list[str]) -> Blocklist:
    folder.mkdir()
    for name in names:
        (folder / name).write_text(ORDERS[name])
    result = load_orders(folder, ZoneInfo("UTC"))
    assert result.ok, result.errors
    return Blocklist(result.acts)


async def _publish(url: str, versions: list[tuple[Blocklist, datetime]]) -> None:
    client = connect(url)
    try:
        registry = Registry(client, "writ")
        for bl, at in versions:
            await publish(registry, bl, by="test", now=at)
    finally:
        await client.aclose()


def test_switch_lags_and_windows_come_from_the_published_version(tmp_path: Path,
                                                                 redis_url: str) -> None:
    v1 = _blocklist(tmp_path / "v1", ["ex-a.yaml", "ex-b.yaml"])
    v2 = _blocklist(tmp_path / "v2", list(ORDERS))
    asyncio.run(_publish(redis_url, [(v1, datetime(2015, 9, 6, 23, tzinfo=UTC)),
                                     (v2, datetime(2015, 9, 8, 11, tzinfo=UTC))]))
    files, _ = build(tmp_path / "logs", v1=v1.version, v2=v2.version)
    out = tmp_path / "r.html"
    assert main(["audit", "report", "--html", str(out), "--redis", redis_url,
                 *map(str, files)]) == 0
    html = out.read_text()
    lags = [(r["version"], r["node"], r["first decision with it"], r["after"])
            for r in table(html, "lags")]
    assert lags == [
        (v1.version[:16], "edge-1", "2015-09-07T00:00:00.000000Z", "1 h 00 min"),
        (v1.version[:16], "edge-2", "2015-09-07T00:00:00.000000Z", "1 h 00 min"),
        (v2.version[:16], "edge-1", "2015-09-08T14:00:00.000000Z", "3 h 00 min"),
        (v2.version[:16], "edge-2", "never seen in this log", "-"),
    ]
    outside = [(r["order"], r["node"]) for r in table(html, "outside")]
    assert outside == [("EX-A", "edge-1"), ("EX-B", "edge-2")]
