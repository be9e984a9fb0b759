"""`writ dns`: run the resolver.

    writ dns (--orders DIR | --redis URL) [--listen HOST:PORT]… [--upstream HOST:PORT]…
             [--policy FILE] [--audit-log PATH] [--workers N]

Flags override the policy file. Without --audit-log nothing is written to an
audit log (a warning says so).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from writ.audit import DecisionSink
from writ.commands._common import UsageError
from writ.policies import Policy

__all__ = ["configure", "open_audit_sink", "run"]


def configure(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--orders", type=Path, metavar="DIR", help="court orders folder")
    src.add_argument("--redis", metavar="URL", help="published blocklist in Redis")
    parser.add_argument("--listen", action="append", metavar="HOST:PORT",
                        help="address to answer on, UDP and TCP (repeatable; [::1]:5300 for IPv6)")
    parser.add_argument("--upstream", action="append", metavar="HOST:PORT",
                        help="resolver to forward allowed names to (repeatable; failover order)")
    parser.add_argument("--policy", type=Path, metavar="FILE", help="enforcement policy (YAML)")
    parser.add_argument("--audit-log", metavar="PATH", help="decision log (hash-chained)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="processes sharing the port (default: policy, else CPUs)")


def _policy(args: argparse.Namespace) -> Policy:
    if args.policy is None:
        return Policy()
    from writ.policies import load_policy  # being written alongside; fails loudly if absent

    try:
        return load_policy(args.policy)
    except (OSError, ValueError) as e:  # PolicyError is a ValueError
        raise UsageError(f"--policy {args.policy}: {e}") from None


def _addresses(flag: str, values: list[str], default_port: int) -> list[tuple[str, int]]:
    from writ.dns.upstream import parse_hostport

    out = []
    for v in values:
        try:
            out.append(parse_hostport(v, default_port))
        except ValueError as e:
            raise UsageError(f"{flag}: {e}") from None
    return out


def open_audit_sink(policy: Policy, path: str | None
                    ) -> Callable[[], tuple[DecisionSink, Callable[[], None]]]:
    """What run_node calls (after forking workers) to get the one audit writer."""

    def open_() -> tuple[DecisionSink, Callable[[], None]]:
        if path is None:
            print("writ dns: no --audit-log: decisions are not logged", file=sys.stderr)
            return _Discard(), lambda: None
        from writ.audit.writer import AuditLog

        log = AuditLog(replace(policy.audit, path=path), policy.node).start()
        return log, log.close

    return open_


class _Discard:
    def record(self, **_: object) -> None:
        pass


def run(args: argparse.Namespace) -> int:
    from writ.dns.workers import run_node
    from writ.node import open_holder

    policy = _policy(args)
    dns = policy.dns
    listen = _addresses("--listen", args.listen or list(dns.listen), 53)
    upstreams = _addresses("--upstream", args.upstream or list(dns.upstreams), 53)
    workers = args.workers or (dns.workers if args.policy else os.cpu_count() or 1)
    if workers < 1:
        raise UsageError("--workers: must be at least 1")
    dns = replace(dns, listen=tuple(f"[{h}]:{p}" for h, p in listen),
                  upstreams=tuple(f"[{h}]:{p}" for h, p in upstreams), workers=workers)
    policy = replace(policy, dns=dns)
    holder = open_holder(args.orders, args.redis, policy)
    try:
        return run_node(holder, policy, listen, workers, open_audit_sink(policy, args.audit_log))
    except OSError as e:
        raise UsageError(f"cannot listen: {e}") from None
