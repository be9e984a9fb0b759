"""`writ web (--orders DIR | --redis URL) [--listen HOST:PORT] [--policy FILE]`:
the block-page server and admin API alone (it makes no enforcement decisions,
so it writes no audit log)."""

from __future__ import annotations

import argparse

from writ.commands._nodeargs import add_source_args, address, policy_from_args, run_node_with

__all__ = ["configure", "run"]


def configure(p: argparse.ArgumentParser) -> None:
    add_source_args(p)
    p.add_argument("--listen", metavar="HOST:PORT",
                   help="address (default: the policy's web.listen, 127.0.0.1:8451)")


def run(args: argparse.Namespace) -> int:
    return run_node_with(args, policy_from_args(args), components=frozenset({"web"}),
                         web_listen=address("--listen", args.listen), audit=False)
