"""Publish → every node enforcing, through Redis, with replicas in separate processes.

    python bench/bench_redis.py [--quick] [--sizes 100000,1000000] [--nodes 3] [--signed]

Starts its own redis-server on a free loopback port (never 6379), publishes a
list of N names (one bulk act), starts N_NODES replica processes
(`RedisStore`, the code a node runs), then measures:
- node start: each replica's `store.start()` with N rules already published;
- delta: publish a small new act (nodes on the previous version apply the delta);
- full: change one name inside the bulk act (no useful delta: full load).
Latency = from the start of `publish()` (encode + write + CAS switch) to the
last replica's swap, on the same machine clock (time.time()).

--signed: the replicas demand signed manifests (the demonstration keyring,
keys/demo-DO-NOT-USE/) and every publish signs one with the demo publisher
key; such replicas always load the whole version (no delta) and check its
SHA-256 against the manifest first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.ports import free_port
from writ.blocklist import Act, ActKind, Blocklist, BlocklistHolder, BulkList, Target, TargetKind

EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
PREFIX = "writbench"
DEMO_KEYS = Path(__file__).resolve().parent.parent / "keys" / "demo-DO-NOT-USE"


def act(oid: str, names: tuple[str, ...] = (), target: str | None = None) -> Act:
    return Act(id=oid, kind=ActKind.BLOCK, court="Bench Court", case=oid, issued=date(2020, 1, 1),
               effective=EPOCH,
               targets=(Target(TargetKind.DOMAIN, target),) if target else (),
               bulk=(BulkList("lists/big.txt", names),) if names else ())


# -- replica process -----------------------------------------------------------------

async def replica(url: str, state: str, signed: bool = False) -> None:
    from writ.blocklist.stores import RedisStore

    store = RedisStore(url, prefix=PREFIX, state_dir=Path(state), poll_interval=5.0,
                       keyring=DEMO_KEYS / "keyring.yaml" if signed else None)
    holder = BlocklistHolder()
    holder.on_swap(lambda ix: print(json.dumps({"swap": ix.version, "t": time.time()}),
                                    flush=True))
    t0 = time.perf_counter()
    await store.start(holder)
    print(json.dumps({"started": store.status().version,
                      "seconds": time.perf_counter() - t0}), flush=True)
    await asyncio.Event().wait()


# -- driver ----------------------------------------------------------------------------



def start_redis(workdir: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")
    port = free_port()
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", workdir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


class Nodes:
    def __init__(self, url: str, count: int, workdir: str, signed: bool = False) -> None:
        self.procs = [
            subprocess.Popen([sys.executable, __file__, "--replica", url, f"{workdir}/n{i}",
                              *(["--signed"] if signed else [])],
                             stdout=subprocess.PIPE, text=True)
            for i in range(count)
        ]

    def wait(self, key: str, version: str) -> list[dict[str, float]]:
        out = []
        for p in self.procs:
            assert p.stdout is not None
            while True:
                line = p.stdout.readline()
                if not line:
                    raise SystemExit("a replica died")
                if not line.startswith("{"):
                    continue  # the node's own log lines
                msg = json.loads(line)
                if msg.get(key) == version:
                    out.append(msg)
                    break
        return out

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
            p.wait()


async def run_size(url: str, n: int, nodes: int, workdir: str,
                   signed: bool = False) -> dict[str, float]:
    import redis.asyncio as aioredis

    from writ.blocklist.signed import load_private_key
    from writ.blocklist.stores import Registry, publish
    from writ.blocklist.stores.signedset import SetSigner

    signer = (SetSigner(load_private_key((DEMO_KEYS / "demo-publisher").read_bytes()))
              if signed else None)
    shutil.rmtree(workdir + "/nodes", ignore_errors=True)  # no kept manifest from a last size

    names = tuple(f"h{i}.s{i % 7919}.example" for i in range(n))
    client = aioredis.Redis.from_url(url)
    reg = Registry(client, PREFIX)
    await client.unlink(*[k async for k in client.scan_iter(f"{{{PREFIX}}}:*")] or ["_"])
    base = Blocklist([act("BIG", names)])
    t = time.perf_counter()
    await publish(reg, base, by="bench", signer=signer)
    res = {"rules": float(n), "publish_first_s": time.perf_counter() - t}
    group = Nodes(url, nodes, workdir + "/nodes", signed)
    try:
        started = group.wait("started", base.version)
        res["node_start_max_s"] = max(m["seconds"] for m in started)
        for label, new in (
            ("delta", Blocklist([act("BIG", names), act("NEW", target="new.example")])),
            ("full", Blocklist([act("BIG", (*names[:-1], "changed.example")),
                                act("NEW", target="new.example")])),
        ):
            t0 = time.time()
            await publish(reg, new, by="bench", signer=signer)
            t_switched = time.time()
            swaps = group.wait("swap", new.version)
            last = max(m["t"] for m in swaps)
            res[f"{label}_publish_s"] = t_switched - t0
            res[f"{label}_all_nodes_s"] = last - t0
    finally:
        group.stop()
        await client.aclose()
    return res


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="100,000 rules only")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--signed", action="store_true",
                    help="replicas demand signed manifests; publishes sign them")
    ap.add_argument("--replica", nargs=2, metavar=("URL", "STATE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.replica:
        asyncio.run(replica(*args.replica, signed=args.signed))
        return {}
    sizes = [100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    workdir = tempfile.mkdtemp(prefix="writ-bench-redis-")
    proc, url = start_redis(workdir)
    results: dict[str, object] = {"nodes": args.nodes, "cores": os.cpu_count(),
                                  "signed": args.signed}
    try:
        for n in sizes:
            r = asyncio.run(run_size(url, n, args.nodes, workdir, args.signed))
            results[str(n)] = r
            print(f"{n:>9,} rules, {args.nodes} replica processes"
                  f"{' (signed manifests)' if args.signed else ''}: "
                  f"node start {r['node_start_max_s']:.2f} s (slowest); "
                  f"delta: publish {r['delta_publish_s']:.2f} s, all enforcing "
                  f"{r['delta_all_nodes_s']:.2f} s; full: publish {r['full_publish_s']:.2f} s, "
                  f"all enforcing {r['full_all_nodes_s']:.2f} s", flush=True)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    return results


if __name__ == "__main__":
    main()
