"""`writ icap (--orders DIR | --redis URL) [--listen HOST:PORT] [--policy FILE]
[--audit-log PATH]`: writ's decisions as an ICAP service (RFC 3507) for Squid.

The same node as `writ serve`, with only the ICAP server: the blocklist
follows the folder or the Redis replica, and every decision goes to the audit
log. Squid's side of the configuration is in deploy/squid/ and
docs/operator.md ("writ behind Squid").
"""

from __future__ import annotations

import argparse

from writ.commands._nodeargs import add_source_args, address, policy_from_args, run_node_with

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser) -> None:
    add_source_args(p)
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="ICAP address (default: the policy's icap.listen, 127.0.0.1:1344)")


def run(args: argparse.Namespace) -> int:
    return run_node_with(args, policy_from_args(args), components=frozenset({"icap"}),
                         icap_listen=address("--listen", args.listen))
