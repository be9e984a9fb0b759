"""Run every benchmark in this folder: `python bench/run_all.py [--quick] [NAME…]`.

Each bench/bench_*.py exposes `main(argv) -> dict | None`; this runner calls
them one after another (never in parallel: they would measure each other).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes, short runs")
    ap.add_argument("names", nargs="*", help="only these (e.g. core_lookup dns)")
    args = ap.parse_args()
    failed = 0
    for path in sorted(HERE.glob("bench_*.py")):
        name = path.stem.removeprefix("bench_")
        if args.names and not any(name.startswith(n) for n in args.names):
            continue
        print(f"== {name}", flush=True)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            print(f"   cannot load {path}")
            failed += 1
            continue
        module = importlib.util.module_from_spec(spec)
        start = time.perf_counter()
        try:
            spec.loader.exec_module(module)
            module.main(["--quick"] if args.quick else [])
        except SystemExit as e:
            if e.code not in (0, None):
                failed += 1
        except Exception:
            traceback.print_exc()
            failed += 1
        print(f"   ({time.perf_counter() - start:.1f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
