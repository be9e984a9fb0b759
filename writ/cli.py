"""`writ` entry point: parses arguments and calls the command's module.

Commands are imported lazily so that `writ orders check` never pays for
importing mitmproxy. Every command module offers `configure(parser)` and
`run(args) -> int`. Exit codes: 0 fine, 1 a finding (invalid orders, a broken
chain, …), 2 a bad invocation. No traceback reaches a user unless
WRIT_DEBUG=1 asks for it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from writ.commands._common import UsageError

__all__ = ["main"]

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "orders": ("writ.commands.orders", "validate, publish and inspect court orders"),
    "explain": ("writ.commands.explain", "decision and provenance for URLs or names"),
    "dns": ("writ.commands.dnsd", "run the DNS resolver"),
    "proxy": ("writ.commands.proxyd", "run the HTTP proxy (mitmproxy with the writ addon)"),
    "icap": ("writ.commands.icapd", "run the ICAP service (writ's decisions inside Squid)"),
    "squid-sni": ("writ.commands.squidsni", "Squid's external ACL helper for the TLS SNI"),
    "web": ("writ.commands.webd", "run the block-page and admin web server"),
    "serve": ("writ.commands.serve", "run DNS + proxy + web for one box"),
    "audit": ("writ.commands.audit", "verify and summarise decision logs"),
    "export": ("writ.commands.export", "export the blocklist for other resolvers (RPZ)"),
    "policy": ("writ.commands.policy", "validate enforcement policy files"),
    "keys": ("writ.commands.keys", "the keyring of signing keys: check, export for ssh-keygen"),
}


def _parser(argv: Sequence[str]) -> tuple[argparse.ArgumentParser, Any]:
    from writ import __version__

    p = argparse.ArgumentParser(prog="writ", description="Court-order enforcement for ISPs.")
    p.add_argument("--version", action="version", version=f"writ {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    module = None
    for name, (modname, help_) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        if name == wanted:
            module = importlib.import_module(modname)
            module.configure(sp)
    return p, module


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser, module = _parser(args_list)
        args = parser.parse_args(args_list)
        if module is None:
            parser.print_help(sys.stderr)
            return 2
        return int(module.run(args))
    except UsageError as e:
        print(f"writ: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        if os.environ.get("WRIT_DEBUG"):
            raise
        print(f"writ: internal error: {type(e).__name__}: {e} (WRIT_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
