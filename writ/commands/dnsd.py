"""`writ dns`: run the resolver.

    writ dns (--orders DIR | --redis URL) [--listen HOST:PORT]… [--upstream HOST:PORT]…
             [--policy FILE] [--audit-log PATH] [--workers N] [--metrics HOST:PORT]

Flags override the policy file. Every worker process keeps its blocklist
current itself (the folder watched, or the Redis replica followed, with the
last good copy on disk); decisions from all workers reach one audit writer in
the parent, so a node writes one chain.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

from writ.commands._common import UsageError
from writ.commands._nodeargs import (
    add_metrics_arg,
    add_source_args,
    address,
    addresses,
    policy_from_args,
    run_node_with,
)
from writ.policies import Policy

__all__ = ["configure", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    add_source_args(parser)
    parser.add_argument("--listen", action="append", metavar="HOST:PORT",
                        help="address to answer on, UDP and TCP (repeatable; [::1]:5300 for IPv6)")
    parser.add_argument("--upstream", action="append", metavar="HOST:PORT",
                        help="resolver to forward allowed names to (repeatable; failover order)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="processes sharing the port (default: policy, else CPUs)")
    add_metrics_arg(parser, "dns")


def _preflight(args: argparse.Namespace, policy: Policy) -> None:
    """Refuse an invalid folder before forking, unless a last good copy exists
    (then the workers start from it, stale, and say so)."""
    if args.orders is None:
        return
    from writ.blocklist import load_orders
    from writ.blocklist.stores import LocalCache

    trust = None
    if policy.trust.keyring:  # the same check each worker's store makes (docs/regulator.md §10)
        from datetime import UTC, datetime

        from writ.blocklist.signed.sigcheck import OrderTrust
        from writ.commands._trust import read_keyring

        trust = OrderTrust(read_keyring(Path(policy.trust.keyring)), datetime.now(UTC))
    result = load_orders(args.orders, ZoneInfo(policy.timezone), trust, policy.ip.limits())
    if result.ok or LocalCache(args.state_dir, "orders").path.exists():
        return
    lines = "\n".join(str(e) for e in result.errors)
    raise UsageError(f"--orders {args.orders}: invalid orders, nothing to enforce:\n{lines}")


def run(args: argparse.Namespace) -> int:
    from writ.endpoints import format_endpoint
    from writ.node import NodeOptions, run_dns_workers

    policy = policy_from_args(args)
    dns = policy.dns
    listen = addresses("--listen", args.listen or list(dns.listen), 53)
    upstreams = addresses("--upstream", args.upstream or list(dns.upstreams), 53)
    workers = args.workers or (dns.workers if args.policy else os.cpu_count() or 1)
    if workers < 1:
        raise UsageError("--workers: must be at least 1")
    dns = replace(dns, listen=tuple(format_endpoint(*a) for a in listen),
                  upstreams=tuple(format_endpoint(*a) for a in upstreams), workers=workers)
    policy = replace(policy, dns=dns)
    _preflight(args, policy)
    metrics = address("--metrics", args.metrics) or dns.metrics
    # One wiring point (writ.node): one process is a DNS-only node; several are
    # DNS-only nodes in forked workers, writing through this process's audit log.
    if workers == 1:
        return run_node_with(args, policy, components=frozenset({"dns"}),
                             dns_listen=tuple(listen), metrics_listen=metrics)
    options = NodeOptions(orders=args.orders, redis_url=args.redis, prefix=args.prefix,
                          state_dir=args.state_dir, components=frozenset({"dns"}),
                          dns_listen=tuple(listen), metrics_listen=metrics)
    try:
        return run_dns_workers(policy, options, workers)
    except OSError as e:
        raise UsageError(f"cannot listen: {e}") from None
