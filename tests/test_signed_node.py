"""A real node (writ.node) following Redis with `trust.keyring`: it enforces the
signed set, writes the switch into its audit chain (a `writ.blocklist.signed_set`
control record that `writ audit verify` accepts), shows the manifest on /readyz
and /metrics, and raises `expired` past the manifest's expiry."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.audit.support import files, records
from tests.audit.support import policy as audit_policy
from tests.blocklist.stores.conftest import wait_for
from tests.ports import free_port
from writ.audit.verify import verify
from writ.blocklist.signed.sshsigfmt import load_private_key
from writ.blocklist.stores import Registry, connect, publish, read_blocklist
from writ.blocklist.stores.signedset import SetSigner
from writ.node import Node, NodeOptions, StartError
from writ.policies import Policy, TrustPolicy

REPO = Path(__file__).resolve().parents[1]
KEYS = REPO / "keys" / "demo-DO-NOT-USE"


def _policy(tmp: Path) -> Policy:
    return Policy(node="edge-s", audit=audit_policy(tmp),
                  trust=TrustPolicy(keyring=str(KEYS / "keyring.yaml")))


async def _get(node: Node, path: str) -> tuple[int, Any]:
    host, port = node.addresses["web"][0][:2]
    async with aiohttp.ClientSession() as s, s.get(f"http://{host}:{port}{path}") as r:
        body = await (r.json() if path != "/metrics" else r.text())
        return r.status, body


async def _publish(url: str, seconds: float) -> str:
    blocklist = read_blocklist(REPO / "court_orders", None, keyring=KEYS / "keyring.yaml")
    signer = SetSigner(load_private_key((KEYS / "demo-publisher").read_bytes()),
                       timedelta(seconds=seconds))
    client = connect(url)
    try:
        done = await publish(Registry(client), blocklist, by="tester@test", signer=signer)
    finally:
        await client.aclose()
    return done.version


def _web_node(redis_url: str, tmp_path: Path) -> Node:
    """A node following Redis with the demo keyring, serving only /readyz and /metrics."""
    return Node(_policy(tmp_path), NodeOptions(redis_url=redis_url, state_dir=tmp_path / "s",
                                               components=frozenset({"web"}),
                                               web_listen="127.0.0.1:0"))


async def test_a_node_enforces_the_signed_set_and_records_the_switch(
        redis_url: str, tmp_path: Path) -> None:
    vid = await _publish(redis_url, 3600)
    node = _web_node(redis_url, tmp_path)
    await node.start()
    try:
        status, ready = await _get(node, "/readyz")
        assert status == 200
        assert ready["blocklist_version"] == vid
        assert ready["store"]["manifest_sequence"] == 1
        assert "expired" not in ready
        _, metrics = await _get(node, "/metrics")
        assert "writ_manifest_sequence 1" in metrics
        assert "writ_manifest_expired 0" in metrics
    finally:
        await node.stop()
    log = files(tmp_path)
    switched = [r for r in records(log[0]) if r["event"] == "writ.blocklist.signed_set"]
    assert len(switched) == 1
    assert switched[0]["blocklist_version"] == vid
    assert switched[0]["manifest_sequence"] == 1
    assert switched[0]["signers"] == ["demo-publisher"]
    report = verify(log)
    assert report.ok, report.findings


async def test_past_expiry_readyz_says_expired_and_the_set_stays(
        redis_url: str, tmp_path: Path) -> None:
    vid = await _publish(redis_url, 1.5)
    node = _web_node(redis_url, tmp_path)
    await node.start()
    try:
        assert node.holder.index is not None
        assert node.holder.index.version == vid
        await wait_for(lambda: node.store.status().alarm == "expired", timeout=10)
        status, ready = await _get(node, "/readyz")
        assert status == 200  # still enforcing: a cut-off publisher cannot blank the node
        assert ready["expired"] is True
        assert ready["blocklist_version"] == vid
        _, metrics = await _get(node, "/metrics")
        assert "writ_manifest_expired 1" in metrics
    finally:
        await node.stop()


async def test_a_node_refuses_a_tampered_folder_at_start(tmp_path: Path) -> None:
    orders = tmp_path / "orders"
    shutil.copytree(REPO / "court_orders", orders)
    lst = orders / "lists" / "ex-2016-0314-mirrors.txt"
    lst.write_text(lst.read_text() + "lawful-news.example\n")
    node = Node(_policy(tmp_path), NodeOptions(orders=orders, state_dir=tmp_path / "s",
                                               components=frozenset()))
    with pytest.raises(StartError, match="1 error"):
        await node.start()


async def test_a_node_without_its_keyring_does_not_start(tmp_path: Path) -> None:
    policy = Policy(node="edge-s", audit=audit_policy(tmp_path),
                    trust=TrustPolicy(keyring=str(tmp_path / "missing.yaml")))
    node = Node(policy, NodeOptions(orders=REPO / "court_orders", state_dir=tmp_path / "s",
                                    components=frozenset()))
    with pytest.raises(StartError, match=r"trust\.keyring"):
        await node.start()


@pytest.mark.slow
@pytest.mark.e2e
def test_dns_workers_record_the_switch_in_the_parents_chain(redis_url: str,
                                                           tmp_path: Path) -> None:
    """`writ dns --workers 2 --redis`: each worker's switch to the signed set
    reaches the one audit chain the parent writes (a worker has no log of its own)."""
    import asyncio
    import json
    import os
    import signal
    import subprocess
    import sys

    from tests.children import listening_port

    vid = asyncio.run(_publish(redis_url, 3600))
    (tmp_path / "policy.yaml").write_text(f"trust:\n  keyring: {KEYS / 'keyring.yaml'}\n")
    log = tmp_path / "audit" / "decisions.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "writ.cli", "dns", "--redis", redis_url,
         "--policy", str(tmp_path / "policy.yaml"), "--listen", "127.0.0.1:0",
         "--upstream", "127.0.0.1:9", "--workers", "2", "--audit-log", str(log)],
        stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        listening_port(proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    lines = [json.loads(x) for p in sorted(log.parent.glob("decisions*.log"))
             for x in p.read_text().splitlines()]
    switched = [r for r in lines if r["event"] == "writ.blocklist.signed_set"]
    assert [(r["blocklist_version"], r["manifest_sequence"]) for r in switched] == [
        (vid, 1), (vid, 1)]  # one a worker
    assert len({r["worker"] for r in switched}) == 2
    report = verify(sorted(log.parent.glob("decisions*.log")))
    assert report.ok, report.findings


async def _a_stopped_node_with_its_disk_copy(redis_url: str,
                                             tmp_path: Path) -> tuple[str, NodeOptions]:
    """A web-only node that switched to a freshly published set and stopped (the
    disk copy is finished on stop): the set's version and the node's options."""
    vid = await _publish(redis_url, 3600)
    opts = NodeOptions(redis_url=redis_url, state_dir=tmp_path / "s",
                       components=frozenset({"web"}), web_listen="127.0.0.1:0")
    node = Node(_policy(tmp_path), opts)
    await node.start()
    await node.stop()
    return vid, opts


def _redis_gone(opts: NodeOptions) -> NodeOptions:
    """`opts` with Redis at a free port nothing listens on: only the disk copy is left."""
    return replace(opts, redis_url=f"redis://127.0.0.1:{free_port()}/0")


def _drop_a_target(copy: Path) -> str:
    """Edit the node's disk copy as someone with the state folder but no publisher
    key would: one target fewer, the header's checksum fixed. Returns the target."""
    import json
    import zlib

    from writ.blocklist.stores.blob import checksum

    head, _, data = copy.read_bytes().partition(b"\n")
    header, doc = json.loads(head), json.loads(zlib.decompress(data))
    act = next(a for a in doc["acts"] if a["targets"])
    gone = json.dumps(act["targets"].pop())
    new = zlib.compress(json.dumps(doc).encode())
    header["sha256"] = checksum(new)
    copy.write_bytes(json.dumps(header).encode() + b"\n" + new)
    return gone


async def test_a_tampered_disk_copy_is_refused_at_start_and_the_chain_says_why(
        redis_url: str, tmp_path: Path) -> None:
    vid, opts = await _a_stopped_node_with_its_disk_copy(redis_url, tmp_path)
    _drop_a_target(tmp_path / "s" / "redis-writ.blocklist")
    node = Node(_policy(tmp_path), _redis_gone(opts))
    await node.start()
    try:
        assert not node.holder.ready  # the fail mode applies, as with no copy
        status, ready = await _get(node, "/readyz")
        assert status == 503
        err = ready["store"]["last_error"]
        assert "disk copy refused (file-mismatch)" in err, err
        assert f"version/{vid}" in err, err
        assert ready["store"]["sets_refused"] == 1
        _, metrics = await _get(node, "/metrics")
        assert "writ_sets_refused_total 1" in metrics
    finally:
        await node.stop()
    log = files(tmp_path)
    chain = [r for f in log for r in records(f)]
    refused = [r for r in chain if r["event"] == "writ.blocklist.disk_copy_refused"]
    assert len(refused) == 1
    assert refused[0]["alarm"] == "file-mismatch"
    assert refused[0]["blocklist_version"] == vid
    assert refused[0]["kept_sequence"] == 1
    assert refused[0]["path"].endswith("redis-writ.blocklist")
    # the first start switched from Redis; the second put nothing in force
    assert [r.get("source") for r in chain if r["event"] == "writ.blocklist.signed_set"] == [
        None]
    report = verify(log)
    assert report.ok, report.findings


async def test_an_untouched_disk_copy_goes_into_force_and_into_the_chain(
        redis_url: str, tmp_path: Path) -> None:
    vid, opts = await _a_stopped_node_with_its_disk_copy(redis_url, tmp_path)
    node = Node(_policy(tmp_path), _redis_gone(opts))
    await node.start()
    try:
        status, ready = await _get(node, "/readyz")
        assert status == 200
        assert (ready["blocklist_version"], ready["stale"]) == (vid, True)
        assert ready["store"]["source"] == "disk"
    finally:
        await node.stop()
    chain = [r for f in files(tmp_path) for r in records(f)]
    switched = [(r["blocklist_version"], r["manifest_sequence"], r.get("source"))
                for r in chain if r["event"] == "writ.blocklist.signed_set"]
    assert switched == [(vid, 1, None), (vid, 1, "disk")]
    assert verify(files(tmp_path)).ok
