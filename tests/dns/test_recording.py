"""A node's resolver records through the one recorder: allows reach /metrics
too (they did not: only logged decisions were counted), blocks reach the log."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tests.audit.support import files, records
from tests.audit.support import policy as audit_policy
from tests.dns.support import StandIn, dig
from writ.node import Node, NodeOptions
from writ.policies import DnsPolicy, Policy
from writ.web.prom import render

ORDERS = Path(__file__).resolve().parents[2] / "court_orders"


async def test_allowed_queries_are_counted_for_metrics_and_blocks_logged(
        standin: StandIn, tmp_path: Path) -> None:
    standin.zone[("blog.example", "A")] = ["blog.example. 300 IN A 192.0.2.7"]
    policy = Policy(node="edge-t", audit=audit_policy(tmp_path),
                    dns=replace(DnsPolicy(), upstreams=(f"127.0.0.1:{standin.port}",),
                                upstream_timeout=0.5))
    node = Node(policy, NodeOptions(orders=ORDERS, state_dir=tmp_path / "state",
                                    components=frozenset({"dns"}),
                                    dns_listen=(("127.0.0.1", 0),)))
    await node.start()
    try:
        port = node.addresses["dns"][0][1]
        for _ in range(2):  # the second from the cache: counted again
            await dig(port, "blog.example")
        await dig(port, "vh-archive.example")
    finally:
        await node.stop()
    assert node.metrics.decisions[("dns", "allow", "pass")] == 2
    assert node.metrics.decisions[("dns", "block", "sinkhole")] == 1
    text = render(node.metrics, None, 0.0)
    assert 'writ_decisions_total{component="dns",decision="allow",action="pass"} 2' in text
    logged = [r for r in records(files(tmp_path)[0]) if r.get("component") == "dns"]
    assert [(r["target"], r["decision"]) for r in logged] == [
        ("vh-archive.example. A", "block")]
