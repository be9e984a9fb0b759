"""`writ orders check|sign|apply|diff|history|rollback`.

`check` lives in writ.commands.check (no network), `sign` in
writ.commands.sign; the publishing verbs live in writ.commands.publish
(Redis). This module wires the subcommands. `apply` and `diff` check
signatures in their own folder load (--keyring, or --policy naming
trust.keyring), the same check as `writ orders check --keyring`.
"""

from __future__ import annotations

import argparse
import importlib

__all__ = ["configure", "run"]

VERBS: dict[str, tuple[str, str]] = {
    "check": ("writ.commands.check", "validate a folder of court orders"),
    "sign": ("writ.commands.sign", "sign order files and bulk lists (FILE.sig, OpenSSH format)"),
    "apply": ("writ.commands.publish", "compile and publish the orders to Redis"),
    "diff": ("writ.commands.publish", "show what publishing would change"),
    "history": ("writ.commands.publish", "list published versions"),
    "rollback": ("writ.commands.publish", "switch back to a published version"),
}


def configure(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    for verb, (modname, help_) in VERBS.items():
        sp = sub.add_parser(verb, help=help_, description=help_)
        module = importlib.import_module(modname)
        module.configure_verb(verb, sp)
        sp.set_defaults(_run=module.run_verb)


def run(args: argparse.Namespace) -> int:
    return int(args._run(args.verb, args))
