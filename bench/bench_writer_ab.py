"""The audit writer's CPU per record, this tree against another checkout, alternating.

    python bench/bench_writer_ab.py --old-root DIR [--rounds R] [--records N]

The records are those `writ dns --workers` sends its parent in bench_dns.py's
mix: a blocked name each, with its own rule (`domain:NAME`), from one client or
from 1,000 clients; written in batches of 500 (a worker's 50 ms), fsync per
batch (the policy's default). Each measurement is a fresh process importing
`writ` from its tree; only the writer's loop is timed (CPU time of the process,
the writer thread not started). R rounds, the two trees in turn.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import dataclasses, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from writ.audit import Action, AuditLog, Component, Outcome, Recorder
from writ.policies import AuditPolicy
n, clients = int(sys.argv[2]), int(sys.argv[3])
tmp = Path(tempfile.mkdtemp(prefix="writ-bench-writer-"))
pol = dataclasses.replace(AuditPolicy(), path=str(tmp / "d.log"), key_file=str(tmp / "k"),
                          signing_key_file=str(tmp / "s.key"),
                          checkpoint_file=str(tmp / "cp.log"), fsync="batch")
log = AuditLog(pol, "bench", queue_size=n + 1)
rec = Recorder(log, log_allowed=False)
for i in range(n):
    name = f"n{i}.blocked{i % 97}.test"
    c = i % clients
    rec.decided(Component.DNS, f"10.0.{c >> 8 & 255}.{c & 255}", f"{name}. A", Outcome.BLOCK,
                Action.SINKHOLE, ("EX-1",), f"domain:{name}", "3f2a9c0d1e")
batch = list(log._queue)
log._queue.clear()
log._open_chain()
c0 = time.process_time()
for k in range(0, n, 500):
    log._write_batch(batch[k:k + 500])
print((time.process_time() - c0) / n * 1e6)
"""


def measure(tree: Path, n: int, clients: int) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, str(tree), str(n), str(clients)],
                         capture_output=True, text=True, check=True, cwd=tree).stdout
    return float(out.split()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-root", type=Path, required=True, help="the other checkout")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--records", type=int, default=100_000)
    a = ap.parse_args(argv)
    trees = {"this tree": ROOT, "old root": a.old_root.resolve()}
    got: dict[tuple[str, int], list[float]] = {}
    for _ in range(a.rounds):
        for label, tree in trees.items():
            for clients in (1, 1000):
                got.setdefault((label, clients), []).append(measure(tree, a.records, clients))
    print("| tree | clients | CPU µs per record, per round | median |")
    print("| --- | ---: | --- | ---: |")
    for (label, clients), values in got.items():
        print(f"| {label} | {clients} | {', '.join(f'{v:.2f}' for v in values)} | "
              f"{statistics.median(values):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
