"""`writ proxy (--orders DIR | --redis URL) [--listen HOST:PORT] [--mode MODE]
[--policy FILE] [--audit-log PATH]`: mitmproxy with the writ addon, in writ's loop.

The same node as `writ serve`, with only the proxy: the blocklist follows the
folder or the Redis replica, and every decision goes to the audit log.
"""

from __future__ import annotations

import argparse

from writ.commands._nodeargs import add_source_args, address, policy_from_args, run_node_with

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser) -> None:
    add_source_args(p)
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="proxy address (default: the policy's proxy.listen, 127.0.0.1:8080)")
    p.add_argument("--mode", metavar="MODE",
                   help="regular | transparent | reverse:URL (default: the policy's proxy.mode)")
    p.add_argument("--confdir", metavar="DIR",
                   help="mitmproxy's folder for its CA (default: ~/.mitmproxy)")


def run(args: argparse.Namespace) -> int:
    return run_node_with(args, policy_from_args(args), components=frozenset({"proxy"}),
                         proxy_listen=address("--listen", args.listen), proxy_mode=args.mode,
                         confdir=args.confdir)
