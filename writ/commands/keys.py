"""`writ keys check|allowed-signers`: the keyring, for regulators and auditors.

- `check`: validate the keyring (exit 0, or 1 with `FILE:LINE: FIELD: message`).
- `allowed-signers`: the keyring as an OpenSSH allowed_signers file, so that
  anyone can run `ssh-keygen -Y verify` without writ (see docs/auditor.md).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from writ.commands._common import UsageError, parse_instant
from writ.commands._trust import add_trust_args, keyring_from_args

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    check = sub.add_parser("check", help="validate a keyring",
                           description="Validate a keyring (YAML); exit 1 on any error.")
    check.add_argument("file", type=Path, metavar="FILE")
    out = sub.add_parser(
        "allowed-signers", help="export the keyring as an OpenSSH allowed_signers file",
        description="Print (or write with -o) an allowed_signers file for ssh-keygen -Y verify.")
    add_trust_args(out)
    out.add_argument("--at", metavar="TIME",
                     help="leave out keys revoked by this instant (default: now)")
    out.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here, not stdout")


def run(args: argparse.Namespace) -> int:
    if args.verb == "check":
        from writ.blocklist.signed.authorities import load_keyring

        ring, errors = load_keyring(args.file)
        for e in errors:
            print(e, file=sys.stderr)
        if ring is None:
            return 1
        roles = sorted({r for k in ring.keys for r in k.roles})
        print(f"{args.file}: valid: {len(ring.keys)} key(s) ({', '.join(roles)})")
        return 0
    from writ.blocklist.signed.allowed import allowed_signers

    ring = keyring_from_args(args)
    if ring is None:
        raise UsageError("keys allowed-signers: name the keyring with --keyring FILE "
                         "or --policy FILE")
    at = parse_instant(args.at) if args.at else datetime.now(UTC)
    text = allowed_signers(ring, at)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0
