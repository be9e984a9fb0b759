"""The keyring for commands that load orders: `--keyring FILE`, or the
`trust.keyring` of `--policy FILE`. Either way the same core check runs
(writ/blocklist/signed/sigcheck.py); without both, signatures are not checked.

Commands that load a folder add the flags with `add_trust_args` and pass
`order_trust(args)` to `load_orders` (or to `load_folder`).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from writ.commands._common import UsageError

if TYPE_CHECKING:
    from writ.blocklist.signed.authorities import Keyring
    from writ.blocklist.signed.sigcheck import OrderTrust

__all__ = ["add_trust_args", "keyring_from_args", "order_trust", "read_keyring"]

def add_trust_args(p: argparse.ArgumentParser, policy_flag: bool = True) -> None:
    p.add_argument("--keyring", type=Path, metavar="FILE",
                   help="require signatures by the keys of this keyring (YAML)")
    if policy_flag:
        p.add_argument("--policy", type=Path, metavar="FILE",
                       help="use the keyring named by this policy's trust.keyring")


def read_keyring(path: Path) -> Keyring:
    """The keyring at `path`; UsageError listing every problem in it."""
    from writ.blocklist.signed.authorities import load_keyring

    if not path.is_file():
        raise UsageError(f"keyring: no such file: {path}")
    ring, errors = load_keyring(path)
    if ring is None:
        raise UsageError("invalid keyring:\n" + "\n".join(str(e) for e in errors))
    return ring


def keyring_from_args(args: argparse.Namespace) -> Keyring | None:
    """The keyring asked for (--keyring, else --policy's trust.keyring), or None."""
    path: Path | None = getattr(args, "keyring", None)
    policy_path: Path | None = getattr(args, "policy", None)
    if path is None and policy_path is not None:
        from writ.policies import PolicyError, load_policy

        try:
            named = load_policy(policy_path).trust.keyring
        except PolicyError as e:
            raise UsageError("invalid policy:\n" + "\n".join(e.errors)) from None
        path = Path(named) if named else None
    return None if path is None else read_keyring(path)


def order_trust(args: argparse.Namespace, at: datetime | None = None) -> OrderTrust | None:
    """What `load_orders(…, trust=)` needs, or None (no keyring asked for)."""
    from writ.blocklist.signed.sigcheck import OrderTrust

    ring = keyring_from_args(args)
    return None if ring is None else OrderTrust(ring, at or datetime.now(UTC))
