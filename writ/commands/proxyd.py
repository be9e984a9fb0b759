"""`writ proxy (--orders DIR | --redis URL) [--listen HOST:PORT] [--mode MODE]
[--policy FILE] [--audit-log PATH] [--workers N] [--metrics HOST:PORT]`: mitmproxy
with the writ addon, in writ's loop.

The same node as `writ serve`, with only the proxy: the blocklist follows the
folder or the Redis replica, and every decision goes to the audit log. With
several workers (`--workers`, else the policy's proxy.workers, 0 or unset: one
per CPU) each process is such a node sharing the port, and this process
writes all their decisions into the one audit log (writ.node.run_proxy_workers).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import replace

from writ.commands._common import UsageError
from writ.commands._nodeargs import (
    add_metrics_arg,
    add_source_args,
    address,
    policy_from_args,
    run_node_with,
)
from writ.commands.dnsd import _preflight as preflight_orders  # the same check before forking

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser) -> None:
    add_source_args(p)
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="proxy address (default: the policy's proxy.listen, 127.0.0.1:8080)")
    p.add_argument("--mode", metavar="MODE",
                   help="regular | transparent | reverse:URL (default: the policy's proxy.mode)")
    p.add_argument("--confdir", metavar="DIR",
                   help="mitmproxy's folder for its CA (default: ~/.mitmproxy)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes sharing the port (default: the policy's proxy.workers; "
                        "0 or unset: one per CPU)")
    add_metrics_arg(p, "proxy")


def run(args: argparse.Namespace) -> int:
    from writ.node import NodeOptions, run_proxy_workers
    from writ.proxy import ProxyStartError

    policy = policy_from_args(args)
    listen = address("--listen", args.listen)
    if args.workers is not None and not 1 <= args.workers <= 64:
        raise UsageError("--workers: must be 1 to 64")
    workers = args.workers or policy.proxy.workers or os.cpu_count() or 1
    policy = replace(policy, proxy=replace(policy.proxy, workers=workers))
    metrics = address("--metrics", args.metrics) or policy.proxy.metrics
    if workers == 1:
        return run_node_with(args, policy, components=frozenset({"proxy"}), proxy_listen=listen,
                             proxy_mode=args.mode, confdir=args.confdir,
                             metrics_listen=metrics)
    preflight_orders(args, policy)
    options = NodeOptions(orders=args.orders, redis_url=args.redis, prefix=args.prefix,
                          state_dir=args.state_dir, components=frozenset({"proxy"}),
                          proxy_listen=listen, proxy_mode=args.mode, confdir=args.confdir,
                          metrics_listen=metrics)
    try:
        return run_proxy_workers(policy, options, workers)
    except (OSError, ValueError, ProxyStartError) as e:
        raise UsageError(f"cannot start: {e}") from None
