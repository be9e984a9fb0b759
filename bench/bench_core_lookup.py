"""Lookups on a 1,000,000-rule index: name decisions/s and URL decisions/s.

    python bench/bench_core_lookup.py [--rules N] [--quick]

Builds one block act with N domain names (as a bulk list, like `file:`) plus
1,000 URL rules on 100 hosts, then times `decide_name` (canonicalisation from
any spelling included), `decide_canonical_name` (the name already canonical,
as the DNS fast path has it from the wire) and `decide_url` (canonicalisation
included) over a mix of blocked, URL-rule and allowed targets in one process.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from writ.blocklist import (
    Act,
    ActKind,
    Blocklist,
    BulkList,
    Target,
    TargetKind,
    canonical_url,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def build(n: int) -> Blocklist:
    names = tuple(f"site{i}.blocked{i % 97}.example" for i in range(n))
    urls = []
    for h in range(100):
        for k in range(10):
            c = canonical_url(f"http://host{h}.example/v/{k}?id={k}")
            urls.append(Target(TargetKind.URL, c.host, c.path, c.query))
    act = Act(
        id="BENCH-1", kind=ActKind.BLOCK, court="Bench Court", case="1", issued=date(2025, 1, 1),
        effective=datetime(2025, 1, 1, tzinfo=UTC), targets=tuple(urls),
        bulk=(BulkList("bench.txt", names),),
    )
    return Blocklist([act])


def rate(fn, items: list[str], seconds: float, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    """Decisions per CPU-second of this process: the median of `repeat` runs
    (CPU time, so other processes on the machine count less)."""
    rates = []
    for _ in range(repeat):
        done, start = 0, time.process_time()
        while time.process_time() - start < seconds:
            for x in items:
                fn(x)
            done += len(items)
        rates.append(done / (time.process_time() - start))
    return statistics.median(rates)


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    n = 100_000 if args.quick else args.rules
    seconds = 0.5 if args.quick else 2.0
    t0 = time.perf_counter()
    index = build(n).at(NOW)
    build_s = time.perf_counter() - t0
    rnd = random.Random(1)
    names = [f"www.site{rnd.randrange(n)}.blocked{rnd.randrange(97)}.example" for _ in range(500)]
    names += [f"allowed{i}.other.example" for i in range(400)]
    names += [f"host{i}.example" for i in range(100)]
    rnd.shuffle(names)
    urls = [f"https://host{rnd.randrange(100)}.example/v/{rnd.randrange(20)}?id={rnd.randrange(10)}&t=1"
            for _ in range(500)]
    urls += [f"http://site{rnd.randrange(n)}.blocked3.example/watch?v={i}" for i in range(250)]
    urls += [f"http://allowed{i}.other.example/a/b/c?q={i}" for i in range(250)]
    rnd.shuffle(urls)
    name_rate = rate(index.decide_name, names, seconds)
    # what the DNS fast path calls: the name is already lowercase from the wire
    canon_rate = rate(index.decide_canonical_name, names, seconds)
    url_rate = rate(index.decide_url, urls, seconds)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rules={n:,} compile={build_s:.2f}s names={name_rate:,.0f}/s "
          f"canonical_names={canon_rate:,.0f}/s urls={url_rate:,.0f}/s peak_rss={rss_mb:.0f}MB")
    return {"rules": n, "compile_s": build_s, "names_per_s": name_rate,
            "canonical_names_per_s": canon_rate, "urls_per_s": url_rate, "peak_rss_mb": rss_mb}


if __name__ == "__main__":
    main()
