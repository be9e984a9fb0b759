"""`writ squid-sni [--icap HOST:PORT/SERVICE] [--fail closed|open] [--concurrent]`:
Squid's external ACL helper for the TLS SNI (writ.icap.sni; docs/operator.md).

Reads `[channel] SNI [CLIENT]` lines on stdin, answers `[channel] OK`
(allowed: splice) or `[channel] ERR` (refused: terminate) on stdout, asking
the running `writ icap`.
"""

from __future__ import annotations

import argparse
import io
import sys

from writ.commands._common import UsageError

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--icap", default="127.0.0.1:1344/writ", metavar="HOST:PORT/SERVICE",
                   help="writ's ICAP service (default: 127.0.0.1:1344/writ)")
    p.add_argument("--fail", choices=["closed", "open"], default="closed",
                   help="writ unreachable: closed answers ERR (terminate, the default), "
                        "open answers OK (splice)")
    p.add_argument("--concurrent", action="store_true",
                   help="lines begin with Squid's channel-ID (external_acl_type "
                        "concurrency=N); without it a line is the SNI alone")


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
        # Bytes that are not UTF-8 (a raw SNI) must not end the helper: Squid
        # stops altogether when its helpers die too often.
        lines = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape",
                                 newline="\n")  # Squid ends a request at LF only
        for answer in serve(client, lines, fail_open=args.fail == "open",
                            concurrent=args.concurrent):
            sys.stdout.write(answer + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
    return 0
