"""`writ serve (--orders DIR | --redis URL) [--policy FILE] …`: one box, one process.

Runs the DNS resolver, the HTTP proxy and the web server (block page + admin
API) of one node, sharing one blocklist holder and one audit log; SIGTERM or
SIGINT stops it cleanly (listeners drain, the audit log is sealed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from dataclasses import replace
from pathlib import Path

from writ.commands._common import UsageError

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--orders", type=Path, metavar="DIR",
                     help="compile this folder of orders and reload it when it changes")
    src.add_argument("--redis", metavar="URL", help="replicate the blocklist published in Redis")
    p.add_argument("--prefix", default="writ", help="Redis key prefix (default: writ)")
    p.add_argument("--policy", type=Path, metavar="FILE",
                   help="enforcement policy YAML (default: built-in defaults, as in "
                        "policies/default.yaml)")
    p.add_argument("--node", metavar="NAME", default=os.environ.get("WRIT_NODE"),
                   help="node name in the audit log (default: the policy's node; env WRIT_NODE)")
    p.add_argument("--state-dir", type=Path, default=Path("state"), metavar="DIR",
                   help="where the last good blocklist copy lives (default: state)")
    p.add_argument("--dns", metavar="HOST:PORT", action="append",
                   help="DNS listen address (repeatable; default: the policy's dns.listen)")
    p.add_argument("--upstream", metavar="HOST:PORT", action="append",
                   help="upstream resolver (repeatable; default: the policy's dns.upstreams)")
    p.add_argument("--proxy", metavar="HOST:PORT", help="proxy listen address")
    p.add_argument("--proxy-mode", metavar="MODE",
                   help="regular | transparent | reverse:URL (default: the policy's proxy.mode)")
    p.add_argument("--web", metavar="HOST:PORT", help="web listen address")
    p.add_argument("--audit-log", metavar="PATH", help="decision log path (default: policy)")
    p.add_argument("--confdir", metavar="DIR", help="mitmproxy's folder for its CA")
    p.add_argument("--without", action="append", choices=["dns", "proxy", "web"], default=[],
                   help="leave one component out (repeatable)")


def _policy(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from writ.policies import Policy, PolicyError, load_policy

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
    if args.upstream:
        policy = replace(policy, dns=replace(policy.dns, upstreams=tuple(args.upstream)))
    if args.audit_log:
        policy = replace(policy, audit=replace(policy.audit, path=args.audit_log))
    return policy


def run(args: argparse.Namespace) -> int:
    from writ.node import NodeOptions, run_node, split_hostport

    policy = _policy(args)
    if args.orders is not None and not args.orders.is_dir():
        raise UsageError(f"--orders: no such folder: {args.orders}")
    options = NodeOptions(
        orders=args.orders, redis_url=args.redis, prefix=args.prefix, state_dir=args.state_dir,
        components=frozenset({"dns", "proxy", "web"}) - set(args.without),
        dns_listen=tuple(split_hostport(a) for a in args.dns or ()),
        proxy_listen=args.proxy, proxy_mode=args.proxy_mode, web_listen=args.web,
        confdir=args.confdir,
    )
    from writ.proxy import ProxyStartError
    from writ.web import WebStartError

    try:
        return _run_loop(run_node(policy, options))
    except (OSError, ProxyStartError, WebStartError) as e:
        raise UsageError(f"serve: cannot start: {e}") from None


def _run_loop(main) -> int:  # type: ignore[no-untyped-def]
    try:
        import uvloop
    except ImportError:
        return int(asyncio.run(main))
    return int(uvloop.run(main))
