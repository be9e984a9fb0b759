"""The auditor's HTML report: 1,000,000 records from 3 nodes.

    python bench/bench_audit_html.py [--quick] [--records N] [--keep DIR]

Goal (issue 16): `writ audit report --html` in <= 30 s and <= 500 MB peak RSS,
the HTML <= 3 MB. Measured side by side in the same run, on the same files:
`writ audit verify` (one node's chain at a time, the part of the report that
checks integrity) and the text `writ audit report` (the per-order table).

The logs are written by the real writer (chaining, rotation, seals) with a
clock spread over 7 days: 30 orders (one revoked on day 4, with decisions
after that on one node), 3 blocklist versions, one crash recovery. Each
version goes into force through a `writ.blocklist.signed_set` record (and again
after the restart); edge-0 runs two workers that switch 5 s apart; the third
manifest expires on day 6, so the last day's decisions are made past its expiry.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from writ.audit import AuditLog
from writ.audit.files import chain_files
from writ.audit.record import SIGNED_SET
from writ.policies import AuditPolicy

START = 1441584000.0  # 2015-09-07T00:00:00Z
DAYS = 7
ORDERS = 30
REVOKED_AT = START + 3.5 * 86400  # EX-BENCH-00 revoked here
V2_AT = START + 2 * 86400
EXPIRES = {"v1": START + 8 * 86400, "v2": START + 8 * 86400, "v3": START + 6 * 86400}

ORDER_YAML = """\
id: EX-BENCH-{i:02d}
court: Example District Court
case: "B-{i}/2015"
issued: 2015-09-0{day}
effective: 2015-09-0{day}T00:00:00Z
targets:
  - domain: site{i}.example
"""
REVOKE_YAML = """\
id: EX-BENCH-00-REV
kind: revoke
amends: EX-BENCH-00
court: Example Appeals Court
case: "A-1/2015"
issued: 2015-09-10
effective: 2015-09-10T12:00:00Z
"""


def _policy(d: Path) -> AuditPolicy:
    return dataclasses.replace(
        AuditPolicy(), path=str(d / "decisions.log"), key_file=str(d / "client.key"),
        signing_key_file=str(d / "signing.key"), checkpoint_file=str(d / "cp.log"),
        fsync="never", rotate_bytes=64 << 20)


def write_orders(d: Path) -> Path:
    d.mkdir(parents=True)
    for i in range(ORDERS):
        (d / f"o{i:02d}.yaml").write_text(ORDER_YAML.format(i=i, day=7))
    (d / "rev.yaml").write_text(REVOKE_YAML)
    return d


def write_node(d: Path, node: int, n: int) -> list[Path]:
    clock = [START]
    step = DAYS * 86400 / n

    def items(lo: int, hi: int) -> list[tuple[object, ...]]:
        out = []
        for i in range(lo, hi):
            ts = START + i * step
            o = (i * 7 + node) % ORDERS
            if o == 0 and ts >= REVOKED_AT:
                o = 1  # nodes stop naming the revoked order...
            if node == 2 and ts >= REVOKED_AT and i % 997 == 0:
                o = 0  # ...except node 2, now and then: findings to list
            version = _version(ts)
            comp = "dns" if i % 3 else "http"
            out.append((ts, comp, f"10.0.{i & 255}.{node}", f"n{i % 1000}.site{o}.example. A",
                        "block", "sinkhole" if comp == "dns" else "451",
                        (f"EX-BENCH-{o:02d}",), f"domain site{o}.example", version))
        return out

    def run(lo: int, hi: int) -> AuditLog:
        log = AuditLog(_policy(d), f"edge-{node}", queue_size=hi - lo + 10,
                       clock=lambda: clock[0])
        clock[0] = START + lo * step  # the genesis / continue record
        log.start()
        bounds = [i for i in range(lo + 1, hi)
                  if _version(START + i * step) != _version(START + (i - 1) * step)]
        for a, b in zip([lo, *bounds], [*bounds, hi], strict=True):
            # the set goes into force (written before the decisions that follow it)
            _signed_set(log, clock, START + a * step, _version(START + a * step), node)
            for it in items(a, b):
                log.enqueue(it)  # type: ignore[arg-type]
            log.flush(timeout=600)
        clock[0] = START + (hi - 1) * step  # the seal
        return log

    half = n // 2
    if node == 1:  # a crash halfway: the first file is never sealed
        log = run(0, half)
        log.close()
        path = chain_files(d / "decisions.log")[-1][1]
        data = path.read_bytes()
        path.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 1])
        run(half, n).close()
    else:
        run(0, n).close()
    return [p for _, p in chain_files(d / "decisions.log")]


def _version(ts: float) -> str:
    return "v1" if ts < V2_AT else "v2" if ts < REVOKED_AT else "v3"


def _signed_set(log: AuditLog, clock: list[float], at: float, version: str, node: int) -> None:
    """What writ.node writes when a set goes into force; edge-0 has two workers."""
    sequence = int(version[1:])
    fields = {"blocklist_version": version, "manifest_sequence": sequence,
              "manifest_digest": f"{sequence:064x}", "signers": ["bench-publisher"],
              "manifest_created": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(at)),
              "manifest_expires": time.strftime("%Y-%m-%dT%H:%M:%S+00:00",
                                                time.gmtime(EXPIRES[version])),
              "manifest_previous": None}
    for worker in ((4001, 4002) if node == 0 else (None,)):
        clock[0] = at + (5 if worker == 4002 else 0)
        log.control(SIGNED_SET, **fields, **({"worker": worker} if worker else {}))


def timed(cmd: list[str]) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS MB of the child, exit code).

    Each command runs under its own `python -c` wrapper that reports its
    child's rusage, so peaks of earlier commands do not mask this one."""
    wrapper = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
               "r = resource.getrusage(resource.RUSAGE_CHILDREN); "
               "print(time.perf_counter() - t, r.ru_utime + r.ru_stime, r.ru_maxrss, rc)")
    p = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, check=True)
    wall, cpu, rss, rc = p.stdout.split()
    if int(rc) not in (0, 1):
        print(p.stderr.decode(), file=sys.stderr)
    return float(wall), float(cpu), int(rss) / 1024, int(rc)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--records", type=int, default=None)
    ap.add_argument("--keep", type=Path, help="write the logs and the report here")
    args = ap.parse_args(argv)
    n = args.records or (60_000 if args.quick else 1_000_000)
    tmp_ctx = tempfile.TemporaryDirectory(prefix="writ-bench-html-")
    root = args.keep or Path(tmp_ctx.name)
    writ = [sys.executable, "-m", "writ.cli"]
    t0 = time.perf_counter()
    files: list[Path] = []
    per_node = [n // 3 + (1 if i < n % 3 else 0) for i in range(3)]
    for node, count in enumerate(per_node):
        files += write_node(root / f"edge-{node}", node, count)
    orders = write_orders(root / "orders")
    print(f"wrote {n:,} records from 3 nodes in {time.perf_counter() - t0:.1f} s "
          f"({sum(f.stat().st_size for f in files) / 1e6:.0f} MB)")
    out = root / "report.html"
    html_s, html_cpu, html_mb, code = timed([*writ, "audit", "report", "--html", str(out),
                                   "--orders", str(orders), *map(str, files)])
    size = out.stat().st_size
    verify_s = verify_cpu = 0.0
    for node in range(3):
        node_files = [f for f in files if f.parent.name == f"edge-{node}"]
        s, c, _, _ = timed([*writ, "audit", "verify", *map(str, node_files)])
        verify_s += s
        verify_cpu += c
    table_s, table_cpu, _, _ = timed([*writ, "audit", "report", *map(str, files)])
    print(f"audit report --html: {html_s:.1f} s wall, {html_cpu:.1f} s CPU, peak RSS "
          f"{html_mb:.0f} MB, HTML {size / 1e6:.2f} MB, exit {code} "
          f"(goal <= 30 s, <= 500 MB, <= 3 MB)")
    print(f"  same run: audit verify (3 nodes, one after another) {verify_s:.1f} s wall, "
          f"{verify_cpu:.1f} s CPU; text audit report {table_s:.1f} s wall, "
          f"{table_cpu:.1f} s CPU")
    if args.keep is None:
        tmp_ctx.cleanup()
    return {"html_s": html_s, "html_cpu_s": html_cpu, "html_peak_mb": html_mb, "html_bytes": size,
            "verify_s": verify_s, "table_report_s": table_s}


if __name__ == "__main__":
    main()
