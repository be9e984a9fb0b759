"""Arguments shared by the commands that run a node (serve, proxy, web, dns)."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from writ.commands._common import UsageError
from writ.policies import Policy

__all__ = ["add_metrics_arg", "add_source_args", "address", "addresses", "policy_from_args",
           "run_node_with", "with_audit_path"]


def add_source_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--orders", type=Path, metavar="DIR",
                     help="compile this folder of orders and reload it when it changes")
    src.add_argument("--redis", metavar="URL",
                     help="replicate the blocklist published in Redis (fail-static)")
    p.add_argument("--prefix", default="writ", help="Redis key prefix (default: writ)")
    p.add_argument("--policy", type=Path, metavar="FILE",
                   help="enforcement policy YAML (default: built-in defaults, as in "
                        "policies/default.yaml)")
    p.add_argument("--node", metavar="NAME", default=os.environ.get("WRIT_NODE"),
                   help="node name in the audit log (default: the policy's node; env WRIT_NODE)")
    p.add_argument("--state-dir", type=Path, default=Path("state"), metavar="DIR",
                   help="where the last good blocklist copy is kept (default: state)")
    p.add_argument("--audit-log", metavar="PATH",
                   help="decision log path (default: the policy's audit.path)")


def add_metrics_arg(p: argparse.ArgumentParser, key: str) -> None:
    """`--metrics HOST:PORT` for a node without `web` (docs/operator.md §6)."""
    p.add_argument("--metrics", metavar="HOST:PORT",
                   help=f"serve /metrics, /healthz and /readyz here (default: the policy's "
                        f"{key}.metrics; unset: not served)")


def addresses(flag: str, values: list[str], default_port: int | None) -> list[tuple[str, int]]:
    """`HOST:PORT` / `[V6]:PORT` / `HOST` flag values → (host, port); UsageError naming the flag."""
    from writ.endpoints import split_hostport

    out = []
    for v in values:
        try:
            out.append(split_hostport(v, default_port))
        except ValueError as e:
            raise UsageError(f"{flag}: {e}") from None
    return out


def address(flag: str, value: str | None) -> str | None:
    """One `HOST:PORT` flag value, checked now (UsageError naming the flag), or None."""
    if value is None:
        return None
    from writ.endpoints import format_endpoint

    (hostport,) = addresses(flag, [value], None)
    return format_endpoint(*hostport)


def policy_from_args(args: argparse.Namespace) -> Policy:
    """The policy file (or defaults), with --node and --audit-log applied."""
    from writ.policies import PolicyError, load_policy

    if args.orders is not None and not args.orders.is_dir():
        raise UsageError(f"--orders: no such folder: {args.orders}")
    if args.policy is None:
        policy = Policy()
    else:
        if not args.policy.is_file():
            raise UsageError(f"--policy: no such file: {args.policy}")
        try:
            policy = load_policy(args.policy)
        except PolicyError as e:
            raise UsageError("--policy: invalid policy:\n" + "\n".join(e.errors)) from None
    if args.node:
        policy = replace(policy, node=args.node)
    return with_audit_path(policy, args.audit_log)


def run_node_with(args: argparse.Namespace, policy: Policy, **options: Any) -> int:
    """Run one node from the source flags (`add_source_args`) and further
    `NodeOptions` fields, on uvloop when installed, until SIGTERM/SIGINT;
    startup failures become a clear exit 2."""
    from writ import loop
    from writ.node import NodeOptions, StartError, run_node
    from writ.proxy import ProxyStartError
    from writ.web import WebStartError

    node = NodeOptions(orders=args.orders, redis_url=args.redis, prefix=args.prefix,
                       state_dir=args.state_dir, **options)
    try:
        return int(loop.run(run_node(policy, node)))
    except (OSError, ProxyStartError, WebStartError, StartError) as e:
        raise UsageError(f"cannot start: {e}") from None


def with_audit_path(policy: Policy, path: str | None) -> Policy:
    """`--audit-log PATH` over the policy's `audit.path`."""
    return policy if path is None else replace(policy, audit=replace(policy.audit, path=path))
