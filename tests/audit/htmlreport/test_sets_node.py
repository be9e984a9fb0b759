"""A real node (writ.node) following Redis with `trust.keyring` writes the switch to a
signed set into its chain; the report ties the node's decisions to that set and sees
the ones made after the manifest expired. A real redis-server, the demo keys."""

from __future__ import annotations

from pathlib import Path

from tests.audit.htmlreport.page import table
from tests.audit.support import files
from tests.blocklist.stores.conftest import wait_for
from tests.test_signed_node import _policy, _publish
from writ.cli import main
from writ.node import Node, NodeOptions


async def test_a_real_nodes_signed_set_and_its_expiry_are_in_the_report(
        redis_url: str, tmp_path: Path) -> None:
    vid = await _publish(redis_url, 2.0)  # the manifest expires 2 s after publishing
    node = Node(_policy(tmp_path), NodeOptions(redis_url=redis_url, state_dir=tmp_path / "s",
                                               components=frozenset()))
    await node.start()
    try:
        assert node.holder.index is not None
        assert node.audit is not None

        def decide(target: str) -> None:
            assert node.audit is not None
            node.audit.record(component="dns", client="192.0.2.7", target=target,
                              decision="block", action="sinkhole", orders=("EX-A",),
                              rule="domain videohost.example", blocklist_version=vid)

        decide("before.videohost.example. A")  # most likely before the expiry: not asserted
        await wait_for(lambda: node.store.status().alarm == "expired", timeout=15)
        decide("after.videohost.example. A")  # after it, surely
    finally:
        await node.stop()
    out = tmp_path / "r.html"
    assert main(["audit", "report", "--html", str(out), *map(str, files(tmp_path))]) == 0
    html = out.read_text()
    (row,) = table(html, "sets-edge-s")
    assert (row["manifest sequence"], row["blocklist version"], row["signers"]) == (
        "1", vid, "demo-publisher")
    assert row["decisions"] == "2"
    late = int(row["after expiry"])
    assert late >= 1
    (expired,) = table(html, "expired")
    assert (expired["node"], expired["decisions after expiry"]) == ("edge-s", str(late))
    assert 'id="unsigned-none"' in html
