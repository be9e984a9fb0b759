"""`writ squid-sni [--icap HOST:PORT/SERVICE] [--fail closed|open]`: Squid's
external ACL helper for the TLS SNI (writ.icap.sni; docs/operator.md).

Reads `[channel] SNI` lines on stdin, answers `[channel] OK` (blocked:
terminate) or `[channel] ERR` on stdout, asking the running `writ icap`.
"""

from __future__ import annotations

import argparse
import sys

from writ.commands._common import UsageError

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--icap", default="127.0.0.1:1344/writ", metavar="HOST:PORT/SERVICE",
                   help="writ's ICAP service (default: 127.0.0.1:1344/writ)")
    p.add_argument("--fail", choices=["closed", "open"], default="closed",
                   help="writ unreachable: closed answers OK (terminate, the default), "
                        "open answers ERR")


def run(args: argparse.Namespace) -> int:
    from writ.endpoints import split_hostport
    from writ.icap.sni import IcapClient, serve

    address, _, service = args.icap.partition("/")
    try:
        host, port = split_hostport(address, 1344)
    except ValueError as e:
        raise UsageError(f"--icap: {e}") from None
    client = IcapClient(host, port, service or "writ")
    try:
        for answer in serve(client, sys.stdin, fail_open=args.fail == "open"):
            sys.stdout.write(answer + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return 0
