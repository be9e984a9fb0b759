"""`writ policy check FILE…`: validate enforcement policies without running anything.

A policy naming a keyring (trust.keyring) is valid only if the keyring is.
Exit 0 when every file is valid, 1 with `FILE:LINE: KEY: message` lines on
stderr when any is not (all errors of all files in one run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from writ.policies import PolicyError, load_policy

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    check = sub.add_parser("check", help="validate policy files",
                           description="Validate policy files (YAML); exit 1 on any error.")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")


def run(args: argparse.Namespace) -> int:
    failed = False
    for path in args.files:
        try:
            policy = load_policy(path)
        except PolicyError as e:
            failed = True
            for line in e.errors:
                print(line, file=sys.stderr)
            continue
        keyring = _keyring_problems(policy.trust.keyring)
        if keyring:
            failed = True
            for line in keyring:
                print(f"{path}: trust.keyring: {line}", file=sys.stderr)
            continue
        signed = f", keyring {policy.trust.keyring}" if policy.trust.keyring else ""
        print(f"{path}: ok (node {policy.node}, dns {', '.join(policy.dns.listen)}, "
              f"proxy {policy.proxy.listen}, web {policy.web.listen}{signed})")
    return 1 if failed else 0


def _keyring_problems(keyring: str | None) -> list[str]:
    """What is wrong with the keyring a policy names (relative to the current
    directory, as the node reads it)."""
    if keyring is None:
        return []
    from writ.blocklist.signed.authorities import load_keyring

    path = Path(keyring)
    if not path.is_file():
        return [f"no such file: {keyring} (relative paths are from the current directory)"]
    return [str(e) for e in load_keyring(path)[1]]
