"""What judging and pinning the destination costs the proxy (docs/operator.md §5,
"Addresses"): a new upstream connection for every request, so that every
request goes through writ's `server_connect`.

    python bench/bench_proxy_pin.py [--seconds S] [--rounds R] [--old-root DIR]

`mitmdump` in reverse mode in front of a local origin named `localhost` (a
name: it must be resolved for every connection), with writ's addon loaded on
an orders folder holding one domain order, and:

- `no-ip`: nothing else — no ip order, so writ resolves nothing and mitmproxy
  resolves the name itself, as before any ip order existed;
- `ip`: an `ip_prefix 198.51.100.0/24` order that does not cover the origin —
  writ resolves the name, judges it, and pins the connection to the judged
  address (mitmproxy resolves nothing);
- `ip-old` (with `--old-root DIR`, a checkout of the code before pinning):
  the same order, writ resolving and judging, then mitmproxy resolving again.

`wrk -t1 -c8 -H "Connection: close"` drives allowed requests; variants
alternate for R rounds, each round starting with the next variant, so that
a noisy neighbour hurts all of them. Reports
req/s and p99 latency (median of the rounds). Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.bench_proxy import wait_ready  # noqa: E402
from bench.http_load import parse_wrk, start_origin, stop  # noqa: E402
from tests.ports import free_port  # noqa: E402

# mitmdump with `root`'s writ: the venv's editable install of this checkout
# would otherwise win over PYTHONPATH for the ip-old variant.
_LAUNCH = (
    "import sys; root = sys.argv.pop(1); "
    "sys.meta_path[:] = [f for f in sys.meta_path "
    "if 'editable' not in str(getattr(f, '__module__', ''))]; "
    "sys.path.insert(0, root); "
    "from mitmproxy.tools.main import mitmdump; mitmdump()"
)

DOMAIN_ORDER = """\
id: BENCH-PIN-1
court: Bench District Court
case: "1/2026"
issued: 2025-01-01
targets:
  - domain: videohost.example
"""

IP_ORDER = """\
id: BENCH-PIN-IP
court: Bench District Court
case: "2/2026"
issued: 2025-01-01
targets:
  - ip_prefix: 198.51.100.0/24
"""


def orders(work: Path, with_ip: bool) -> Path:
    folder = work / ("orders-ip" if with_ip else "orders")
    folder.mkdir(exist_ok=True)
    (folder / "domain.yaml").write_text(DOMAIN_ORDER)
    if with_ip:
        (folder / "ip.yaml").write_text(IP_ORDER)
    return folder


def run_variant(root: Path, folder: Path, origin: int, work: Path,
                seconds: int) -> dict[str, float]:
    port = free_port()
    cmd = [sys.executable, "-c", _LAUNCH, str(root),
           "-q", "--listen-host", "127.0.0.1", "-p", str(port),
           "--mode", f"reverse:http://localhost:{origin}",
           "--set", "connection_strategy=lazy", "--set", "keep_host_header=true",
           "--set", f"confdir={work / 'mitm'}",
           "-s", str(root / "writ/proxy/mitmdump_addon.py"),
           "--set", f"writ_orders={folder}",
           "--set", f"writ_audit_log={work / 'audit' / 'decisions.log'}"]
    # stderr too: mitmdump's traceback on the SIGINT that stops it is noise.
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, timeout=120)
        if (folder / "ip.yaml").exists():  # the ip order is really in force
            probe = b"GET / HTTP/1.1\r\nHost: 198.51.100.7\r\nConnection: close\r\n\r\n"
            with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
                c.sendall(probe)
                head = c.recv(64)
            if not head.startswith(b"HTTP/1.1 451"):
                raise RuntimeError(f"the ip order is not in force: {head!r}")
        subprocess.run(["wrk", "-t1", "-c8", "-d1s", "-H", "Connection: close",
                        f"http://127.0.0.1:{port}/"], capture_output=True, check=True)
        out = subprocess.run(
            ["wrk", "-t1", "-c8", f"-d{seconds}s", "--latency", "-H", "Connection: close",
             f"http://127.0.0.1:{port}/page"],
            capture_output=True, text=True, check=True).stdout
        return parse_wrk(out)
    finally:
        stop(proc)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--old-root", type=Path, default=None,
                    help="a checkout of writ before pinning: adds the ip-old variant")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="writ-bench-pin-") as tmp:
        work = Path(tmp)
        (work / "audit").mkdir()
        origin_port = free_port()
        origin = start_origin(origin_port, 1024, stderr=subprocess.DEVNULL)
        try:
            variants = {"no-ip": (ROOT, orders(work, False)), "ip": (ROOT, orders(work, True))}
            if args.old_root is not None:
                variants["ip-old"] = (args.old_root.resolve(), orders(work, True))
            runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
            for r in range(args.rounds):
                names = list(variants)  # each round starts with another variant
                for name in names[r % len(names):] + names[:r % len(names)]:
                    root, folder = variants[name]
                    got = run_variant(root, folder, origin_port, work, args.seconds)
                    runs[name].append(got)
                    print(f"round {r + 1} {name}: {got['rps']:.0f} req/s, "
                          f"p99 {got['p99_ms']:.1f} ms, non-2xx {got['non_2xx']:.0f}",
                          flush=True)
        finally:
            stop(origin)
    summary = {name: {"rps_median": statistics.median(x["rps"] for x in rs),
                      "p99_median_ms": statistics.median(x["p99_ms"] for x in rs),
                      "rps_rounds": [round(x["rps"]) for x in rs],
                      "non_2xx": sum(x["non_2xx"] for x in rs)}
               for name, rs in runs.items()}
    summary["in_process_us"] = asyncio.run(in_process())
    print(json.dumps(summary, indent=2))


async def in_process(n: int = 2000) -> dict[str, float]:
    """Per new connection, in-process (steadier than wrk on a shared machine):
    one resolution of `localhost` through the loop (what mitmproxy's connect
    spends when it resolves; what pinning saves over ip-old), and writ's whole
    judgement (resolve + judge) with the ip order in force."""
    from datetime import UTC, datetime

    from tests.blocklist.builders import act
    from writ.blocklist import Blocklist, Target, TargetKind
    from writ.proxy.destination import Connect, judge_destination

    loop = asyncio.get_running_loop()
    index = Blocklist([act("BENCH-PIN-IP", targets=(
        Target(TargetKind.IP_PREFIX, "198.51.100.0/24"),))]).at(datetime.now(UTC))
    assert isinstance(await judge_destination(index, "localhost", 80), Connect)
    t0 = time.perf_counter()
    for _ in range(n):
        await loop.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    resolve = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for _ in range(n):
        await judge_destination(index, "localhost", 80)
    judge = (time.perf_counter() - t0) / n * 1e6
    return {"resolve_localhost": round(resolve, 1), "judge_destination": round(judge, 1)}


if __name__ == "__main__":
    main()
