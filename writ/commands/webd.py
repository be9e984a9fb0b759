"""`writ web (--orders DIR | --redis URL) [--listen HOST:PORT] [--policy FILE]`:
the block-page server and admin API alone."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from writ.commands._common import UsageError

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--orders", type=Path, metavar="DIR", help="compile this folder of orders")
    src.add_argument("--redis", metavar="URL", help="replicate the blocklist published in Redis")
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="address (default: the policy's web.listen, 127.0.0.1:8451)")
    p.add_argument("--policy", metavar="FILE", help="enforcement policy YAML")


async def _serve(args: argparse.Namespace) -> int:
    from writ.commands.proxyd import wait_for_signal
    from writ.metrics import Metrics
    from writ.node import open_holder
    from writ.policies import Policy, PolicyError, load_policy
    from writ.web import WebStartError, read_token, run_web

    try:
        policy = load_policy(Path(args.policy)) if args.policy else Policy()
    except PolicyError as e:
        raise UsageError(f"--policy: {e}") from None
    token = None
    if policy.web.token_file:
        try:
            token = read_token(policy.web.token_file)
        except ValueError as e:
            raise UsageError(str(e)) from None
    holder = open_holder(args.orders, args.redis, policy)
    try:
        handle = await run_web(holder, policy, metrics=Metrics(), token=token,
                               listen=args.listen)
    except WebStartError as e:
        raise UsageError(str(e)) from None
    where = ", ".join(f"{h}:{p}" for h, p in handle.addresses)
    admin = "admin API on" if token else "admin API off (no web.token_file)"
    print(f"writ web: listening on {where}; {admin}", file=sys.stderr, flush=True)
    try:
        await wait_for_signal()
    finally:
        await handle.shutdown()
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))
