"""`writ proxy (--orders DIR | --redis URL) [--listen HOST:PORT] [--mode MODE]
[--policy FILE] [--audit-log PATH]`: mitmproxy with the writ addon, in writ's loop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from writ.commands._common import UsageError

__all__ = ["configure", "run", "wait_for_signal"]


def configure(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--orders", type=Path, metavar="DIR", help="compile this folder of orders")
    src.add_argument("--redis", metavar="URL", help="replicate the blocklist published in Redis")
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="proxy address (default: the policy's proxy.listen, 127.0.0.1:8080)")
    p.add_argument("--mode", metavar="MODE",
                   help="regular | transparent | reverse:URL (default: the policy's proxy.mode)")
    p.add_argument("--policy", metavar="FILE", help="enforcement policy YAML")
    p.add_argument("--audit-log", metavar="PATH",
                   help="decision log (default: the policy's audit.path)")
    p.add_argument("--confdir", metavar="DIR",
                   help="mitmproxy's folder for its CA (default: ~/.mitmproxy)")
    p.add_argument("--verbose", action="store_true", help="show mitmproxy's own log")


async def wait_for_signal() -> None:
    """Return on SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def _serve(args: argparse.Namespace) -> int:
    from writ.metrics import Metrics
    from writ.policies import PolicyError
    from writ.proxy import ProxyStartError, run_proxy
    from writ.proxy.standalone import load_policy_file, open_audit_log, open_holder_for

    try:
        policy = load_policy_file(args.policy)
    except PolicyError as e:
        raise UsageError(f"--policy: {e}") from None
    holder = open_holder_for(str(args.orders) if args.orders else None, args.redis, policy)
    try:
        audit = open_audit_log(args.audit_log, policy)
    except OSError as e:
        raise UsageError(f"--audit-log: {e}") from None
    try:
        handle = await run_proxy(holder, policy, audit, listen=args.listen, mode=args.mode,
                                 metrics=Metrics(), confdir=args.confdir, termlog=args.verbose)
    except ProxyStartError as e:
        audit.close()
        raise UsageError(str(e)) from None
    where = ", ".join(f"{h}:{p}" for h, p in handle.addresses)
    index = holder.index
    print(f"writ proxy: listening on {where} ({args.mode or policy.proxy.mode}), "
          f"blocklist {index.version if index else '-'}", file=sys.stderr, flush=True)
    try:
        await wait_for_signal()
    finally:
        await handle.shutdown()
        audit.close()
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_serve(args))
