"""`writ orders check|sign|apply|diff|history|rollback`.

`check` lives in writ.commands.check (no network), `sign` in
writ.commands.sign; the publishing verbs live in writ.commands.publish
(Redis). This module wires the subcommands, and gates `apply` and `diff`
on signatures: with --keyring (or --policy naming trust.keyring) the folder
must pass the same check as `writ orders check --keyring` before the
publishing verb runs; otherwise it prints the errors, says nothing was
published, and exits 1 without touching Redis. (When writ.commands.publish
takes a keyring itself, this gate goes.)
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["configure", "run"]

VERBS: dict[str, tuple[str, str]] = {
    "check": ("writ.commands.check", "validate a folder of court orders"),
    "sign": ("writ.commands.sign", "sign order files and bulk lists (FILE.sig, OpenSSH format)"),
    "apply": ("writ.commands.publish", "compile and publish the orders to Redis"),
    "diff": ("writ.commands.publish", "show what publishing would change"),
    "history": ("writ.commands.publish", "list published versions"),
    "rollback": ("writ.commands.publish", "switch back to a published version"),
}
SIGNED_VERBS = ("apply", "diff")


def configure(p: argparse.ArgumentParser) -> None:
    from writ.commands._trust import add_trust_args

    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, (modname, help_) in VERBS.items():
        sp = sub.add_parser(verb, help=help_, description=help_)
        module = importlib.import_module(modname)
        module.configure_verb(verb, sp)
        if verb in SIGNED_VERBS:
            add_trust_args(sp)
        sp.set_defaults(_run=module.run_verb)


def run(args: argparse.Namespace) -> int:
    if args.verb in SIGNED_VERBS and not _signatures_ok(args):
        return 1
    return int(args._run(args.verb, args))


def _signatures_ok(args: argparse.Namespace) -> bool:
    from writ.commands._common import load_folder
    from writ.commands._trust import order_trust

    trust = order_trust(args)
    if trust is None:
        return True
    result = load_folder(args.verb, args.dir, args.tz, trust)
    for e in result.errors:
        print(e, file=sys.stderr)
    if result.errors:
        print(f"writ orders {args.verb}: {len(result.errors)} error(s) in {args.dir}; "
              "nothing was published", file=sys.stderr)
    return result.ok
