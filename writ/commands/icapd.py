"""`writ icap (--orders DIR | --redis URL) [--listen HOST:PORT] [--policy FILE]
[--audit-log PATH] [--metrics HOST:PORT]`: writ's decisions as an ICAP service (RFC 3507) for Squid.

The same node as `writ serve`, with only the ICAP server: the blocklist
follows the folder or the Redis replica, and every decision goes to the audit
log. Squid's side of the configuration is in deploy/squid/ and
docs/operator.md ("writ behind Squid").
"""

from __future__ import annotations

import argparse

from writ.commands._nodeargs import (
    add_metrics_arg,
    add_source_args,
    address,
    policy_from_args,
    run_node_with,
)

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser) -> None:
    add_source_args(p)
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="ICAP address (default: the policy's icap.listen, 127.0.0.1:1344)")
    add_metrics_arg(p, "icap")


def run(args: argparse.Namespace) -> int:
    policy = policy_from_args(args)
    return run_node_with(args, policy, components=frozenset({"icap"}),
                         icap_listen=address("--listen", args.listen),
                         metrics_listen=address("--metrics", args.metrics) or policy.icap.metrics)
