"""`writ explain [--orders DIR | --redis URL] [--at TIME] [--json] TARGET…`.

With --keyring FILE (or --policy FILE naming trust.keyring) a folder's
signatures are checked first, and each act behind a decision names the keys
that signed it ("signed by …"; `signed_by` in --json).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from writ.blocklist.explain import explain, sentence
from writ.commands._common import parse_instant, source_blocklist
from writ.commands._trust import add_trust_args, order_trust

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--orders", type=Path, metavar="DIR",
                     help="compile this folder of orders (default: court_orders)")
    src.add_argument("--redis", metavar="URL", help="answer from the version published in Redis")
    p.add_argument("--prefix", default="writ", help="Redis key prefix (with --redis)")
    p.add_argument("--at", metavar="TIME", help="the instant to judge at (default: now)")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    add_trust_args(p)
    p.add_argument("targets", nargs="+", metavar="TARGET",
                   help="a URL (has ://), a host name, an address or a prefix "
                        "(ADDRESS/LEN); - reads targets from stdin")


def _targets(args: argparse.Namespace) -> Iterator[str]:
    for t in args.targets:
        if t == "-":
            for raw in sys.stdin:
                line = raw.strip()
                if line and not line.startswith("#"):
                    yield line
        else:
            yield t


def run(args: argparse.Namespace) -> int:
    at = parse_instant(args.at) if args.at else datetime.now(UTC)
    blocklist = source_blocklist(args, "nothing explained", trust=order_trust(args))
    if blocklist is None:
        return 1
    index = blocklist.at(at)
    status = 0
    for target in _targets(args):
        e = explain(index, target)
        if e["decision"] == "invalid":
            status = 1
        print(json.dumps(e, ensure_ascii=False) if args.json else sentence(index, e))
    if not args.json:
        print(f"(blocklist {index.version}, at {index.at.isoformat()})", file=sys.stderr)
    return status

