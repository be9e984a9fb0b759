"""`writ orders check [DIR]`: validate a folder of court orders, publish nothing.

Invariants:
- Exit 0: the set is valid; one summary line on stdout.
- Exit 1: the set is invalid; every error as `FILE:LINE: FIELD: message [ID]`
  on stderr (the same lines and stream as `writ orders apply`), then a count.
- Exit 2: a bad invocation (no such folder, unknown time zone).
- No network, no Redis: a regulator can run it on a laptop.
- ip/ip_prefix targets pass the collateral guard of `--policy FILE`'s `ip:`
  section (default /24 IPv4, /48 IPv6, no special-purpose ranges); a valid
  set reports how many addresses each prefix covers (writ/commands/_ipreport.py).
- With --keyring FILE (or --policy FILE naming trust.keyring) every order
  file and bulk list must carry a valid in-scope signature: errors read
  `FILE: signature: message` and exit 1; a broken keyring exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from writ.blocklist import Act, ActKind
from writ.commands._common import ip_limits, load_folder
from writ.commands._ipreport import ip_report
from writ.commands._trust import add_trust_args, order_trust

__all__ = ["configure_verb", "run_verb", "summary"]


def configure_verb(verb: str, p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", type=Path, default=Path("court_orders"), metavar="DIR",
                   help="the orders folder (default: court_orders)")
    p.add_argument("--tz", default="UTC",
                   help="time zone for bare dates in the orders (default: UTC)")
    add_trust_args(p)
    p.add_argument("--prefixes", action="store_true",
                   help="list every prefix of bulk lists in the address report")


def run_verb(verb: str, args: argparse.Namespace) -> int:
    directory: Path = args.dir
    trust = order_trust(args)
    result = load_folder(verb, directory, args.tz, trust, ip_limits(args))
    if result.errors:
        for e in result.errors:
            print(e, file=sys.stderr)
        n = len(result.errors)
        print(f"writ orders {verb}: {n} error{'s' if n != 1 else ''} in {directory}; "
              "this set would not be published", file=sys.stderr)
        return 1
    signed = f"; every file signed (keyring {trust.keyring.source})" if trust else ""
    print(f"{directory}: valid: {summary(result.acts)}{signed}")
    for line in ip_report(result.acts, every=args.prefixes):
        print(line)
    return 0


def summary(acts: tuple[Act, ...]) -> str:
    """`5 acts (3 block, 1 restore, 1 revoke), 11 targets (…)` for people."""
    kinds = Counter(a.kind for a in acts)
    by_kind = ", ".join(f"{kinds[k]} {k}" for k in ActKind if kinds[k])
    domains = sum(1 for a in acts for _ in a.domain_targets())
    urls = sum(1 for a in acts for _ in a.url_targets())
    ips = sum(1 for a in acts for _ in a.ip_targets())
    kept = sum(len(a.keep_blocked) for a in acts)
    lists = sum(len(a.bulk) for a in acts)
    text = (f"{len(acts)} act{'s' if len(acts) != 1 else ''}"
            + (f" ({by_kind})" if by_kind else "")
            + f", {domains + urls + ips} targets ({domains} domain, {urls} url/url_prefix"
            + (f", {ips} ip/ip_prefix" if ips else ""))
    if lists:
        text += f"; {lists} bulk list{'s' if lists != 1 else ''}"
    text += ")"
    if kept:
        text += f", {kept} URL{'s' if kept != 1 else ''} kept blocked by restorations"
    return text
