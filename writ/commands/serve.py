"""`writ serve (--orders DIR | --redis URL) [--policy FILE] …`: one box, one process.

Runs the DNS resolver, the HTTP proxy and the web server (block page + admin
API) of one node, sharing one blocklist holder and one audit log; SIGTERM or
SIGINT stops it cleanly (listeners drain, the audit log is sealed).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from writ.commands._nodeargs import (
    add_source_args,
    address,
    addresses,
    policy_from_args,
    run_node_with,
)

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser) -> None:
    add_source_args(p)
    p.add_argument("--dns", metavar="HOST:PORT", action="append",
                   help="DNS listen address (repeatable; default: the policy's dns.listen)")
    p.add_argument("--upstream", metavar="HOST:PORT", action="append",
                   help="upstream resolver (repeatable; default: the policy's dns.upstreams)")
    p.add_argument("--proxy", metavar="HOST:PORT", help="proxy listen address")
    p.add_argument("--proxy-mode", metavar="MODE",
                   help="regular | transparent | reverse:URL (default: the policy's proxy.mode)")
    p.add_argument("--web", metavar="HOST:PORT", help="web listen address")
    p.add_argument("--confdir", metavar="DIR", help="mitmproxy's folder for its CA")
    p.add_argument("--icap", metavar="HOST:PORT",
                   help="ICAP listen address (runs it even without the policy's icap.enabled)")
    p.add_argument("--without", action="append", choices=["dns", "proxy", "web", "icap"],
                   default=[],
                   help="leave one component out (repeatable)")


def run(args: argparse.Namespace) -> int:
    policy = policy_from_args(args)
    if args.upstream:
        from writ.endpoints import format_endpoint

        upstreams = tuple(format_endpoint(*a) for a in addresses("--upstream", args.upstream, 53))
        policy = replace(policy, dns=replace(policy.dns, upstreams=upstreams))
    icap = {"icap"} if policy.icap.enabled or args.icap else set()
    return run_node_with(
        args, policy,
        components=frozenset({"dns", "proxy", "web", *icap}) - set(args.without),
        icap_listen=address("--icap", args.icap),
        dns_listen=tuple(addresses("--dns", args.dns or [], 53)),
        proxy_listen=address("--proxy", args.proxy), proxy_mode=args.proxy_mode,
        web_listen=address("--web", args.web),
        confdir=args.confdir,
    )
